// The shapes of qyl's REST answers that more than one page reads: spans,
// traces, logs, error groups and GenAI totals. Names and fields follow the
// Rust types they mirror (src/model/query.rs, src/model/errors.rs), so a
// change there has one place to land here.

/** One page of a list; pass `next_cursor` back as `cursor` for the next. */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** A span's GenAI columns (present only on GenAI spans). */
export interface GenAiRow {
  provider: string | null;
  operation: string | null;
  request_model: string | null;
  response_model: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cache_read_tokens: number | null;
  finish_reasons: string[] | null;
  cost_usd: number | null;
}

export interface SpanEvent {
  time_unix_nano: number | string;
  name: string;
  attributes?: Record<string, unknown>;
}

export interface SpanLink {
  trace_id: string;
  span_id: string;
  trace_state?: string | null;
  attributes?: Record<string, unknown>;
}

/** A stored span as readers see it. */
export interface SpanRow {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  kind: string;
  service_name: string;
  service_version: string | null;
  deployment_environment: string | null;
  scope_name: string | null;
  start_time: string;
  start_time_unix_nano: string;
  end_time_unix_nano: string;
  duration_ms: number;
  status_code: string;
  status_message: string | null;
  session_id: string | null;
  gen_ai?: GenAiRow;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  events: SpanEvent[];
  links: SpanLink[];
  ingest_seq: number;
}

/** A span with its children, for the trace view. */
export interface SpanNode extends SpanRow {
  children: SpanNode[];
}

/** One row of the trace list. */
export interface TraceSummary {
  trace_id: string;
  root_name: string;
  root_service: string;
  services: string[];
  start_time: string;
  start_time_unix_nano: string;
  duration_ms: number;
  span_count: number;
  error_count: number;
  gen_ai_input_tokens: number;
  gen_ai_output_tokens: number;
  gen_ai_cost_usd: number | null;
}

/** A log record as /api/v1/logs, a trace and the live stream return it. */
export interface LogRow {
  time: string;
  time_unix_nano: string;
  observed_time_unix_nano: string;
  trace_id: string | null;
  span_id: string | null;
  severity_number: number;
  severity_text: string | null;
  body: string | null;
  service_name: string;
  service_version: string | null;
  deployment_environment: string | null;
  scope_name: string | null;
  session_id: string | null;
  event_name: string | null;
  attributes: Record<string, unknown>;
  resource: Record<string, unknown>;
  ingest_seq: number;
}

/** A whole trace: its span tree (several roots when parents are missing)
 *  and the logs that carry its id. */
export interface TraceTree {
  summary: TraceSummary;
  roots: SpanNode[];
  logs: LogRow[];
}

/** The GenAI tags of an error group. */
export interface ErrorGenAiRow {
  provider: string | null;
  operation: string | null;
  model: string | null;
  error_class: string | null;
  tool: string | null;
}

/** One error group as the API shows it. */
export interface ErrorGroupRow {
  id: number;
  fingerprint: string;
  error_type: string | null;
  message_template: string | null;
  culprit: string | null;
  category: 'exception' | 'status' | 'genai' | 'genai_soft' | string;
  status: 'unresolved' | 'resolved' | 'archived' | 'merged' | string;
  substatus: string;
  first_seen: string;
  last_seen: string;
  first_seen_unix_nano: string;
  last_seen_unix_nano: string;
  first_release: string | null;
  last_release: string | null;
  last_environment: string | null;
  count: number;
  unhandled_count: number;
  user_count: number;
  services: string[];
  users: string[];
  sample_trace_ids: string[];
  resolved_at: string | null;
  resolved_in_release: string | null;
  resolved_environment: string | null;
  merged_into: number | null;
  gen_ai?: ErrorGenAiRow;
}

/** Totals of a set of GenAI calls. */
export interface GenAiTotals {
  requests: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  /** Known costs only; calls without a price are in requests_without_cost. */
  cost_usd: number;
  requests_without_cost: number;
  latency_p50_ms: number | null;
  latency_p95_ms: number | null;
  latency_p99_ms: number | null;
  time_to_first_chunk_p50_ms: number | null;
  time_to_first_chunk_p95_ms: number | null;
}

export interface GenAiModelStats extends GenAiTotals {
  provider: string | null;
  model: string | null;
}

export interface GenAiBucket extends GenAiTotals {
  time: string;
  time_unix_nano: string;
}

export interface GenAiModelBucket extends GenAiModelStats {
  time: string;
  time_unix_nano: string;
}

/** GET /api/v1/genai/stats. */
export interface GenAiStats {
  since: string;
  until: string;
  step_ms: number;
  totals: GenAiTotals;
  by_model: GenAiModelStats[];
  over_time: GenAiBucket[];
  by_model_over_time: GenAiModelBucket[];
}

/** The innermost in-app frame of a group's latest event (automatic triage). */
export interface TriageSuspectedCause {
  /** `path:function:line`. */
  frame: string;
  path: string | null;
  function: string | null;
  module: string | null;
  line: number | null;
  exception_type: string | null;
  exception_message: string | null;
}

/** What the GenAI classification says about a failed call. */
export interface TriageGenAi {
  class: string | null;
  provider: string | null;
  model: string | null;
  operation: string | null;
  /** Rate limits, overload, timeouts: the provider's side, not the request's. */
  provider_side: boolean;
  provider_groups_last_hour: number;
  provider_status: string;
}

/** The release seen (or deployed) last before the group's first event. */
export interface TriageDeployBefore {
  version: string;
  service: string;
  environment: string | null;
  at: string;
  /** `deploy` (recorded by CI) or `telemetry` (first seen in data). */
  source: string;
  seconds_before_first_event: number;
}

/** A value over-represented among the group's recent failures. */
export interface TriageChanged {
  key: string;
  value: string;
  failing_share: number;
  baseline_share: number;
  new_value: boolean;
}

export interface TriageAffected {
  events: number;
  users: number;
  /** Distinct sessions among the sampled events. */
  sessions: number;
  events_sampled: number;
  user_ids: string[];
  session_ids: string[];
  models: string[];
  services: string[];
}

export interface TriageSimilar {
  id: number;
  title: string;
  score: number;
}

/** GET /api/v1/errors/{id}/triage: the newest automatic triage report. */
export interface TriageReport {
  group_id: number;
  /** The change that asked for it: `new`, `regressed` or `escalating`. */
  change: 'new' | 'regressed' | 'escalating' | string;
  created_at: string;
  created_unix_nano: number | string;
  title: string;
  suspected_cause: TriageSuspectedCause | null;
  genai: TriageGenAi | null;
  first_release: string | null;
  last_release: string | null;
  deploy_before_first_event: TriageDeployBefore | null;
  /** Last hour against the 24 hours before (empty without a baseline). */
  what_changed: TriageChanged[];
  /** Spans of the group's services in that baseline. */
  baseline_spans: number;
  affected: TriageAffected;
  similar: TriageSimilar[];
  next_steps: string[];
  /** The report as Markdown. */
  text: string;
  /** Model-written (`[triage] endpoint`). */
  summary: string | null;
  summary_model: string | null;
  /** Why there is no summary although one was asked for. */
  summary_error: string | null;
}

/** A note on an error group (Sentry's issue comment). */
export interface ErrorNote {
  note_id: number;
  created_at: string;
  created_unix_nano: string;
  /** `api`, `mcp` (or the MCP client's name), or a token's role. */
  author: string;
  text: string;
}
