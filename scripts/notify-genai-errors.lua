-- Tell a channel when a new kind of GenAI failure appears (a new error
-- group of category "genai": rate limits, context overflows, refusals...).
-- Sends to Slack, a generic webhook, or both, whichever is configured:
--
--   [functions]
--   http_allow = ["hooks.slack.com", "alerts.example.com"]
--   [functions.secrets]
--   slack_webhook = "env:SLACK_WEBHOOK_URL"
--   alert_webhook = "env:ALERT_WEBHOOK_URL"
--
-- With neither secret set (the default) it sends nothing and says so in
-- its result, so a fresh install shows why no message went out.

return qyl.fn {
  name = "notify-genai-errors",
  description = "Slack / webhook message on each new GenAI error group",
  trigger = {
    on = "error",
    where = { change = "new", category = "genai" },
  },
  handler = function(group, runtime)
    local slack = runtime.secret("slack_webhook")
    local webhook = runtime.secret("alert_webhook")
    if slack == nil and webhook == nil then
      return "not sent: set slack_webhook or alert_webhook in [functions.secrets]"
    end
    local alert = qyl.alert.from_error(group)
    local sent = {}
    if slack ~= nil then
      -- A failed post (not allowed, timed out, an error status) raises:
      -- the invocation fails and shows why. Slack posts are not retried,
      -- so a channel never gets the message twice.
      runtime.http.post(slack, qyl.slack.message(alert), { timeout = "5s" })
      table.insert(sent, "slack")
    end
    if webhook ~= nil then
      runtime.http.post(webhook, qyl.webhook.payload(alert), { timeout = "5s", retries = 2 })
      table.insert(sent, "webhook")
    end
    return { sent = sent, group_id = group.group_id }
  end,
  -- A burst of new groups is a burst of messages; keep it readable.
  rate_limit = "10/m",
  timeout_ms = 20000,
}
