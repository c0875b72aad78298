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
    local stats = runtime.store.genai_stats({ window = "1h" })
    local totals = stats.totals
    if totals.requests == 0 then
      return nil
    end
    local slowest = nil
    for _, m in ipairs(stats.by_model) do
      if slowest == nil or (m.latency_p95_ms or 0) > (slowest.latency_p95_ms or 0) then
        slowest = m
      end
    end
    local report = {
      window = "1h",
      calls = totals.requests,
      errors = totals.errors,
      input_tokens = totals.input_tokens,
      output_tokens = totals.output_tokens,
      cost_usd = totals.cost_usd,
      slowest_model = slowest and slowest.model,
    }
    runtime.stream.publish("reports", report)
    return report
  end,
  timeout_ms = 10000,
}
