-- Detect an error message that keeps coming back: on each failed span, look
-- at the last hour of errors and report the most frequent message when it
-- has been seen more than THRESHOLD times. Below that it returns nil, which
-- records the invocation without a result. (The seed's second example.)

local THRESHOLD = 10

return qyl.fn {
  name = "error-pattern-detector",
  description = "Detect recurring error patterns in the last hour",
  trigger = {
    on = "span",
    where = { status = "ERROR" },
  },
  handler = function(span, runtime)
    local recent = runtime.store.query_spans {
      status = "ERROR",
      since = "1h",
      limit = 100,
    }
    local counts = qyl.count_by(recent, function(s)
      return s.status_message
    end)
    local top = qyl.top(counts, 1)[1]
    if top == nil or top.count <= THRESHOLD then
      return nil
    end
    return string.format(
      "Recurring error: '%s' (%d times in the last hour)",
      qyl.str.truncate(top.key, 200),
      top.count
    )
  end,
  -- One look at the last hour per second is plenty, however many errors arrive.
  rate_limit = "1/s",
}
