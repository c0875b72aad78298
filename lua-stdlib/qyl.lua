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

-- Notifications -------------------------------------------------------------
-- Builders only: each returns a table to send with runtime.http.post, which
-- encodes a table as JSON. An alert is the common shape they share:
--   { title, text, severity = "critical" | "error" | "warning" | "info",
--     source, dedup_key, resolved = false, fields = { { "Name", "value" }, … },
--     details = { … }, link = "https://…" (optional) }
-- qyl.alert.from_error(record) and qyl.alert.from_slo(record) make one from an
-- `on = "error"` or `on = "slo"` record; qyl.alert.new{…} from your own fields.

local SEVERITIES = { critical = true, error = true, warning = true, info = true }

local function as_table(record)
	if type(record) == "userdata" then
		return record:table()
	end
	if type(record) ~= "table" then
		fail("expected a record (or record:table())", 3)
	end
	return record
end

local function iso_time(unix_nano)
	if type(unix_nano) ~= "number" or unix_nano <= 0 then
		return nil
	end
	return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(unix_nano / 1e9))
end

-- A number for people: at most `digits` decimals, without trailing zeros.
local function show_number(n, digits)
	if n == math.floor(n) and math.abs(n) < 1e15 then
		return string.format("%d", n)
	end
	local s = string.format("%." .. tostring(digits or 2) .. "f", n)
	s = string.gsub(s, "0+$", "")
	s = string.gsub(s, "%.$", "")
	return s
end

qyl.alert = {}

function qyl.alert.new(a)
	if type(a) ~= "table" or type(a.title) ~= "string" or a.title == "" then
		fail("qyl.alert.new expects { title = \"...\", ... }", 2)
	end
	local severity = a.severity or "error"
	if not SEVERITIES[severity] then
		fail(string.format("qyl.alert.new: severity %q is not critical, error, warning or info", tostring(severity)), 2)
	end
	local fields = {}
	for _, f in ipairs(a.fields or {}) do
		if f[2] ~= nil then
			table.insert(fields, { tostring(f[1]), tostring(f[2]) })
		end
	end
	return {
		title = a.title,
		text = a.text,
		severity = severity,
		source = a.source or "qyl",
		dedup_key = a.dedup_key,
		resolved = a.resolved == true,
		fields = fields,
		details = a.details,
		link = a.link,
		time = a.time,
	}
end

-- From an `on = "error"` record: new, regressed or escalating error group.
function qyl.alert.from_error(record)
	local g = as_table(record)
	local what = g.error_type or g.category or "error"
	local title = string.format("%s %s in %s: %s", g.change or "new", g.category == "genai" and "GenAI error" or "error",
		g.service_name or "?", what)
	return qyl.alert.new({
		title = title,
		text = g.message_template,
		severity = g.change == "escalating" and "critical" or "error",
		source = g.service_name,
		dedup_key = "qyl-error-" .. tostring(g.group_id),
		fields = {
			{ "Service", g.service_name },
			{ "Change", g.change },
			{ "Category", g.category },
			{ "Events", g.count },
			{ "Release", g.release },
			{ "Model", g.genai_model },
			{ "GenAI class", g.genai_error_class },
			{ "Culprit", g.culprit },
			{ "Trace", g.trace_id },
		},
		details = g,
		time = iso_time(g.last_seen_unix_nano),
	})
end

-- From an `on = "slo"` record: an SLO's level changed. Reaching `page` is
-- critical, `warning` a warning; back to `ok` resolves (same dedup_key).
function qyl.alert.from_slo(record)
	local t = as_table(record)
	local resolved = t.to == "ok"
	local title
	if resolved then
		title = string.format("SLO %s of %s is back to ok (was %s)", t.slo, t.service_name, t.from)
	else
		title = string.format("SLO %s of %s: %s level burn", t.slo, t.service_name, t.to)
	end
	return qyl.alert.new({
		title = title,
		text = t.tier and string.format("Tier %s: error budget burning %sx (long window), %sx (short window); %s%% of the budget left.",
			t.tier, show_number(t.burn_rate_long or 0, 1), show_number(t.burn_rate_short or 0, 1),
			show_number((t.budget_remaining or 0) * 100, 1)) or nil,
		severity = t.to == "page" and "critical" or (t.to == "warning" and "warning" or "info"),
		source = t.service_name,
		dedup_key = string.format("qyl-slo-%s-%s", tostring(t.slo), tostring(t.service_name)),
		resolved = resolved,
		fields = {
			{ "Service", t.service_name },
			{ "Objective", t.objective and (show_number(t.objective, 3) .. "%") },
			{ "Level", string.format("%s → %s", tostring(t.from), tostring(t.to)) },
			{ "Burn rate", t.burn_rate_long and (show_number(t.burn_rate_long, 1) .. "x") },
			{ "Budget left", t.budget_remaining and (show_number(t.budget_remaining * 100, 1) .. "%") },
		},
		details = t,
		time = iso_time(t.at_unix_nano),
	})
end

local function plain_alert(a, who)
	if type(a) == "string" then
		return qyl.alert.new({ title = a })
	end
	if type(a) ~= "table" or type(a.title) ~= "string" then
		fail(who .. " expects an alert (qyl.alert.new, from_error, from_slo) or a string", 3)
	end
	return a
end

-- Slack incoming webhooks (https://api.slack.com/messaging/webhooks):
-- `text` for notifications and clients without blocks, then blocks.
qyl.slack = {}

local function slack_escape(s)
	return (string.gsub(tostring(s), "[&<>]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;" }))
end

local SLACK_ICON = { critical = ":rotating_light:", error = ":red_circle:", warning = ":warning:", info = ":information_source:" }

function qyl.slack.message(alert)
	local a = plain_alert(alert, "qyl.slack.message")
	local title = a.resolved and (":white_check_mark: " .. a.title) or ((SLACK_ICON[a.severity] or "") .. " " .. a.title)
	local blocks = {
		{ type = "header", text = { type = "plain_text", text = qyl.str.truncate(title, 150), emoji = true } },
	}
	if a.text ~= nil and a.text ~= "" then
		table.insert(blocks, { type = "section", text = { type = "mrkdwn", text = qyl.str.truncate(slack_escape(a.text), 3000) } })
	end
	local fields = {}
	for _, f in ipairs(a.fields or {}) do
		if #fields < 10 then
			table.insert(fields, {
				type = "mrkdwn",
				text = qyl.str.truncate("*" .. slack_escape(f[1]) .. "*\n" .. slack_escape(f[2]), 2000),
			})
		end
	end
	if #fields > 0 then
		table.insert(blocks, { type = "section", fields = fields })
	end
	local context = "qyl · " .. a.severity .. (a.source and (" · " .. slack_escape(a.source)) or "")
	if a.link then
		context = context .. " · <" .. a.link .. "|open>"
	end
	table.insert(blocks, { type = "context", elements = { { type = "mrkdwn", text = context } } })
	local fallback = a.title
	if a.text ~= nil and a.text ~= "" then
		fallback = fallback .. ": " .. a.text
	end
	return { text = qyl.str.truncate(fallback, 3000), blocks = blocks }
end

-- PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):
-- trigger, or resolve when the alert is resolved; the same dedup_key ties
-- them to one incident. The routing key is a secret: runtime.secret(...).
qyl.pagerduty = { url = "https://events.pagerduty.com/v2/enqueue" }

function qyl.pagerduty.event(alert, routing_key)
	local a = plain_alert(alert, "qyl.pagerduty.event")
	if type(routing_key) ~= "string" or routing_key == "" then
		fail("qyl.pagerduty.event: the routing key (an integration key) is missing", 2)
	end
	local dedup_key = a.dedup_key and qyl.str.truncate(a.dedup_key, 255) or nil
	if a.resolved then
		if dedup_key == nil then
			fail("qyl.pagerduty.event: resolving needs the alert's dedup_key", 2)
		end
		return { routing_key = routing_key, event_action = "resolve", dedup_key = dedup_key }
	end
	local details = {}
	for _, f in ipairs(a.fields or {}) do
		details[f[1]] = f[2]
	end
	if a.text ~= nil and a.text ~= "" then
		details.text = a.text
	end
	local event = {
		routing_key = routing_key,
		event_action = "trigger",
		dedup_key = dedup_key,
		client = "qyl",
		payload = {
			summary = qyl.str.truncate(a.title, 1024),
			source = a.source or "qyl",
			severity = a.severity,
			timestamp = a.time,
			component = a.source,
			custom_details = details,
		},
	}
	if a.link then
		event.links = { { href = a.link, text = "qyl" } }
	end
	return event
end

-- A generic webhook: the alert as plain JSON, with `fields` as an object.
qyl.webhook = {}

function qyl.webhook.payload(alert)
	local a = plain_alert(alert, "qyl.webhook.payload")
	local fields = {}
	for _, f in ipairs(a.fields or {}) do
		fields[f[1]] = f[2]
	end
	return {
		source = "qyl",
		title = a.title,
		text = a.text,
		severity = a.severity,
		service = a.source,
		dedup_key = a.dedup_key,
		resolved = a.resolved,
		fields = fields,
		details = a.details,
		link = a.link,
		time = a.time or os.date("!%Y-%m-%dT%H:%M:%SZ"),
	}
end

return qyl
