-- Keep a running token count per model in runtime.state (persisted across
-- restarts) and report each time a model crosses another million tokens.

local MILESTONE = 1000000

return qyl.fn {
  name = "token-milestones",
  description = "Report every million GenAI tokens per model",
  trigger = {
    on = "span",
    where = {
      ["gen_ai.request.model"] = qyl.exists,
      ["gen_ai.usage.input_tokens"] = qyl.exists,
    },
  },
  handler = function(span, runtime)
    local model = span:attr("gen_ai.request.model")
    local tokens = (tonumber(span:attr("gen_ai.usage.input_tokens")) or 0)
      + (tonumber(span:attr("gen_ai.usage.output_tokens")) or 0)
    if tokens <= 0 then
      return nil
    end
    local key = "tokens:" .. model
    local total = runtime.state.incr(key, tokens)
    local before = total - tokens
    if math.floor(total / MILESTONE) == math.floor(before / MILESTONE) then
      return nil
    end
    runtime.log.info(string.format("%s passed %d tokens", model, total))
    return { model = model, total_tokens = total }
  end,
  -- Counting must not race: one invocation at a time.
  max_concurrency = 1,
}
