-- Alert when a GenAI call takes longer than 5 seconds, naming the trace's
-- root operation so the alert says which user-facing request was slow.
-- (The seed's first example, in Lua.)

return qyl.fn {
  name = "alert-high-latency",
  description = "Alert when GenAI calls exceed 5s",
  trigger = {
    on = "span",
    -- Checked natively against every span: only GenAI calls over 5 s get here.
    where = {
      ["gen_ai.provider.name"] = qyl.exists,
      duration_ms = { gt = 5000 },
    },
    -- Test traffic is not worth an alert.
    when = function(span)
      return span:attr("gen_ai.request.model") ~= "test"
    end,
  },
  handler = function(span, runtime)
    local trace = runtime.store.get_trace(span.trace_id)
    local root = trace and trace.root and trace.root.name or "unknown"
    return string.format(
      "Slow GenAI call: %s (%d ms), root: %s",
      span.name,
      span.duration_ms,
      root
    )
  end,
  max_concurrency = 1,
  timeout_ms = 30000,
  memory_mb = 16,
  rate_limit = "20/s",
}
