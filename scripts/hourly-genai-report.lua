-- Once an hour, summarise GenAI usage (calls, tokens, cost, slowest model)
-- and publish it on the live stream under the "reports" topic.

return qyl.fn {
  name = "hourly-genai-report",
  description = "Hourly GenAI usage summary on the live stream",
  trigger = {
    on = "schedule",
    every = "1h",
  },
  handler = function(_, runtime)
    local stats = runtime.store.genai_stats { window = "1h" }
    if stats == nil or (stats.calls or 0) == 0 then
      return nil
    end
    local report = {
      window = "1h",
      calls = stats.calls,
      input_tokens = stats.input_tokens,
      output_tokens = stats.output_tokens,
      cost_usd = stats.cost_usd,
    }
    runtime.stream.publish("reports", report)
    return report
  end,
  timeout_ms = 10000,
}
