-- Once a day, post the last 24 hours of GenAI spend to Slack: calls,
-- errors, tokens, cost, and the models that cost the most. The summary is
-- also the function's result (and on the live stream under "reports"), so
-- it is useful without Slack too.
--
--   [functions]
--   http_allow = ["hooks.slack.com"]
--   [functions.secrets]
--   slack_webhook = "env:SLACK_WEBHOOK_URL"

local TOP_MODELS = 5

return qyl.fn {
  name = "daily-genai-spend",
  description = "Daily GenAI spend summary to Slack",
  trigger = {
    on = "schedule",
    every = "24h",
  },
  handler = function(_, runtime)
    local stats = runtime.store.genai_stats({ window = "24h" })
    local t = stats.totals
    if t.requests == 0 then
      return nil
    end
    table.sort(stats.by_model, function(a, b)
      return (a.cost_usd or 0) > (b.cost_usd or 0)
    end)
    local fields = {
      { "Calls", string.format("%d (%d errors)", t.requests, t.errors) },
      { "Tokens", string.format("%d in / %d out", t.input_tokens, t.output_tokens) },
      { "Cost", string.format("$%.2f", t.cost_usd) },
    }
    if t.requests_without_cost > 0 then
      table.insert(fields, { "Unpriced calls", t.requests_without_cost })
    end
    local top = {}
    for i, m in ipairs(stats.by_model) do
      if i > TOP_MODELS then
        break
      end
      table.insert(top, string.format("%s: $%.2f (%d calls)", m.model or "?", m.cost_usd or 0, m.requests))
    end
    local report = {
      window = "24h",
      calls = t.requests,
      errors = t.errors,
      cost_usd = t.cost_usd,
      top_models = top,
    }
    runtime.stream.publish("reports", report)
    local slack = runtime.secret("slack_webhook")
    if slack ~= nil then
      local alert = qyl.alert.new({
        title = string.format("GenAI spend, last 24 h: $%.2f", t.cost_usd),
        text = #top > 0 and ("Top models:\n" .. table.concat(top, "\n")) or nil,
        severity = "info",
        fields = fields,
      })
      runtime.http.post(slack, qyl.slack.message(alert), { timeout = "5s" })
      report.sent = "slack"
    end
    return report
  end,
  timeout_ms = 20000,
}
