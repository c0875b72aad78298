-- Page on-call through PagerDuty (Events API v2) when an SLO burns its
-- error budget at page level, and resolve the incident when the SLO is
-- back to ok. The SLOs are [[errors.slo]] in qyl.toml; qyl checks them every
-- [errors] slo_check_every (15 s by default) and this function gets each
-- level change.
--
--   [functions]
--   http_allow = ["events.pagerduty.com"]
--   [functions.secrets]
--   pagerduty_routing_key = "env:PAGERDUTY_ROUTING_KEY"
--
-- Without the routing key (the default) it pages nobody and says so in its
-- result. Events with one dedup_key (one per SLO and service) are one
-- incident, so a retried trigger never pages twice.

return qyl.fn {
  name = "page-on-slo-burn",
  description = "PagerDuty incident while an SLO burns at page level",
  trigger = {
    on = "slo",
    where = { level = { one_of = { "page", "ok" } } },
  },
  handler = function(slo, runtime)
    -- Back to ok from warning never paged: nothing to resolve.
    if slo.level == "ok" and slo.from ~= "page" then
      return nil
    end
    local key = runtime.secret("pagerduty_routing_key")
    if key == nil then
      return "not paged: set pagerduty_routing_key in [functions.secrets]"
    end
    local alert = qyl.alert.from_slo(slo)
    local r = runtime.http.post(qyl.pagerduty.url, qyl.pagerduty.event(alert, key), {
      timeout = "5s",
      retries = 2,
    })
    return { action = alert.resolved and "resolve" or "trigger", dedup_key = alert.dedup_key, status = r.status }
  end,
  timeout_ms = 30000,
}
