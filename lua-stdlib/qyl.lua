-- qyl's Lua standard library, preloaded into every function sandbox as the
-- global `qyl`. It is compiled once per process and frozen (read-only) in
-- each VM. The Rust side passes the native helpers this file builds on.

local native = ...

local qyl = {}

-- `where = { key = qyl.exists }`: the attribute or field is present.
qyl.exists = setmetatable({}, {
	__tostring = function()
		return "qyl.exists"
	end,
})

local function fail(msg: string, level: number?)
	error(msg, (level or 1) + 1)
end

-- qyl.fn { name = …, trigger = {…}, handler = function(record, runtime) … end, … }
-- Checks the shape early so that the error points at the definition; the
-- full validation (trigger fields, limits) happens when qyl loads the file.
function qyl.fn(def)
	if type(def) ~= "table" then
		fail("qyl.fn expects a table: qyl.fn { name = ..., trigger = {...}, handler = function(record, runtime) ... end }", 2)
	end
	if type(def.name) ~= "string" or def.name == "" then
		fail("qyl.fn: `name` must be a non-empty string", 2)
	end
	if type(def.trigger) ~= "table" then
		fail(string.format("qyl.fn %q: `trigger` must be a table such as { on = \"span\", where = {...} }", def.name), 2)
	end
	if type(def.handler) ~= "function" then
		fail(string.format("qyl.fn %q: `handler` must be a function(record, runtime)", def.name), 2)
	end
	native.mark(def)
	return def
end

-- JSON with `qyl.json.null` for null and `qyl.json.array(t)` to force `[]`;
-- decoded arrays keep their array-ness when encoded again.
qyl.json = {
	encode = native.json_encode,
	decode = native.json_decode,
	null = native.null,
	array = function(t)
		return setmetatable(t or {}, native.array_mt)
	end,
}

local function key_fn(key)
	if type(key) == "function" then
		return key
	end
	return function(item)
		return item[key]
	end
end

-- Groups a list by a field name or a function of the item: { [key] = {items} }.
-- Items whose key is nil are left out.
function qyl.group_by(list, key)
	local get = key_fn(key)
	local groups = {}
	for _, item in ipairs(list) do
		local k = get(item)
		if k ~= nil then
			local g = groups[k]
			if g == nil then
				g = {}
				groups[k] = g
			end
			table.insert(g, item)
		end
	end
	return groups
end

-- Counts a list by a field name or a function of the item: { [key] = n }.
function qyl.count_by(list, key)
	local get = key_fn(key)
	local counts = {}
	for _, item in ipairs(list) do
		local k = get(item)
		if k ~= nil then
			counts[k] = (counts[k] or 0) + 1
		end
	end
	return counts
end

-- The `n` (default 10) largest entries of a { [key] = number } table as a
-- list of { key = k, count = v }, largest first, ties by key.
function qyl.top(counts, n)
	local entries = {}
	for k, v in pairs(counts) do
		if type(v) == "number" then
			table.insert(entries, { key = k, count = v })
		end
	end
	table.sort(entries, function(a, b)
		if a.count ~= b.count then
			return a.count > b.count
		end
		return tostring(a.key) < tostring(b.key)
	end)
	local limit = n or 10
	while #entries > limit do
		table.remove(entries)
	end
	return entries
end

local UNIT_MS = { ms = 1, s = 1000, m = 60000, h = 3600000, d = 86400000 }

-- "1h30m", "500ms", "30s", "2d" → milliseconds. A number is taken as ms.
function qyl.duration(text)
	if type(text) == "number" then
		return text
	end
	if type(text) ~= "string" or text == "" then
		fail("qyl.duration expects a string such as \"30s\" or \"1h30m\"", 2)
	end
	local total = 0
	local pos = 1
	while pos <= #text do
		local num, unit, next_pos = string.match(text, "^(%d+%.?%d*)(%a+)()", pos)
		if num == nil or UNIT_MS[unit] == nil then
			fail(string.format("qyl.duration: cannot read %q (use ms, s, m, h or d, e.g. \"1h30m\")", text), 2)
		end
		total += tonumber(num) * UNIT_MS[unit]
		pos = next_pos
	end
	return total
end

-- String helpers that the string library lacks.
qyl.str = {}

function qyl.str.starts_with(s: string, prefix: string): boolean
	return string.sub(s, 1, #prefix) == prefix
end

function qyl.str.ends_with(s: string, suffix: string): boolean
	return suffix == "" or string.sub(s, -#suffix) == suffix
end

function qyl.str.contains(s: string, needle: string): boolean
	return string.find(s, needle, 1, true) ~= nil
end

function qyl.str.trim(s: string): string
	return (string.gsub(s, "^%s*(.-)%s*$", "%1"))
end

-- Splits on a plain separator (default ","); empty fields are kept.
function qyl.str.split(s: string, sep: string?): { string }
	local sep_ = sep or ","
	if sep_ == "" then
		fail("qyl.str.split: separator must not be empty", 2)
	end
	local parts = {}
	local start = 1
	while true do
		local i, j = string.find(s, sep_, start, true)
		if i == nil then
			table.insert(parts, string.sub(s, start))
			return parts
		end
		table.insert(parts, string.sub(s, start, i - 1))
		start = j + 1
	end
end

-- Cuts `s` to at most `n` characters (UTF-8 aware), adding "…" when cut.
function qyl.str.truncate(s: string, n: number): string
	if (utf8.len(s) or #s) <= n then
		return s
	end
	local cut = utf8.offset(s, n + 1)
	if cut == nil then
		return string.sub(s, 1, n) .. "…"
	end
	return string.sub(s, 1, cut - 1) .. "…"
end

return qyl
