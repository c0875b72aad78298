// The shapes of qyl's GenAI and session answers (src/model/genai.rs and the
// GenAI part of src/model/query.rs), shared by the GenAI and session pages;
// the GenAI totals other pages read too are in lib/types.ts.
import type { GenAiModelStats } from '../../lib/types';

export interface Counted {
  value: string;
  count: number;
}

export interface GenAiModelDetail extends GenAiModelStats {
  error_types: Counted[];
  finish_reasons: Counted[];
}

export interface GenAiModels {
  since: string;
  until: string;
  models: GenAiModelDetail[];
}

export interface GenAiCall {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  name: string;
  service_name: string;
  session_id: string | null;
  start_time: string;
  start_time_unix_nano: string;
  duration_ms: number;
  status_code: string;
  error_type: string | null;
  provider: string | null;
  operation: string | null;
  request_model: string | null;
  response_model: string | null;
  input_tokens: number | null;
  output_tokens: number | null;
  cache_read_tokens: number | null;
  cache_write_tokens: number | null;
  reasoning_tokens: number | null;
  finish_reasons: string[] | null;
  cost_usd: number | null;
  cost_source: 'sent' | 'priced' | 'missing' | null;
  time_to_first_chunk_ms: number | null;
  tool_name: string | null;
  tool_call_id: string | null;
  agent_name: string | null;
  conversation_id: string | null;
}

export interface UnpricedModel {
  provider: string | null;
  model: string | null;
  requests: number;
  last_seen: string;
}

export interface Pricing {
  prices: { model: string; vendor: string | null; input_per_mtok: number; output_per_mtok: number; source: string }[];
  unpriced_models: UnpricedModel[];
}

export interface SessionSummary {
  session_id: string;
  first_seen: string;
  first_seen_unix_nano: string;
  last_seen: string;
  last_seen_unix_nano: string;
  duration_ms: number;
  active: boolean;
  span_count: number;
  trace_count: number;
  error_count: number;
  gen_ai_requests: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  cost_usd: number | null;
  unpriced_requests: number;
  models: string[];
  services: string[];
  users: string[];
}

export interface SessionTrace {
  trace_id: string;
  root_name: string | null;
  start_time: string;
  start_time_unix_nano: string;
  end_time_unix_nano: string;
  duration_ms: number;
  span_count: number;
  error_count: number;
  gen_ai_requests: number;
  input_tokens: number;
  output_tokens: number;
  cost_usd: number | null;
  models: string[];
}

export interface SessionDetail {
  session: SessionSummary;
  traces: SessionTrace[];
  traces_truncated: boolean;
}

export interface ConversationTurn {
  role: string;
  content: string | null;
  message: Record<string, unknown>;
  finish_reason: string | null;
  time: string;
  time_unix_nano: string;
  trace_id: string;
  span_id: string | null;
  model: string | null;
  source: string;
}

export interface Conversation {
  session_id: string;
  turns: ConversationTurn[];
}

/** A call's model as the tables show it: what answered, else what was asked. */
export const callModel = (c: { response_model: string | null; request_model: string | null }) => c.response_model ?? c.request_model;

/** Agent and workflow roll-ups: their calls are counted on their own. */
export const ROLLUP_OPERATIONS = ['invoke_agent', 'invoke_workflow', 'create_agent'];

/** Python instrumentations record `error.type` as `<class 'openai.RateLimitError'>`;
 *  people read `openai.RateLimitError`. */
export const errorTypeLabel = (t: string) => t.replace(/^<class '([^']+)'>$/, '$1');
