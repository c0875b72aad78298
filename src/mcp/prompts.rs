//! MCP prompts: `triage_error` and `investigate_cost_spike`, the two
//! investigations qyl is built for, as a starting message that already
//! holds the facts (the tools' own text answers) and the steps to follow.

use rmcp::handler::server::wrapper::Parameters as PromptParameters;
use rmcp::model::{GetPromptResult, PromptMessage, Role};
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{prompt, prompt_router, ErrorData, RoleServer};
use serde::Deserialize;

use super::answer::{Parameters, ToolResult};
use super::tools::{ErrorIdArgs, GenAiStatsArgs, ListSessionsArgs};
use super::QylMcp;

/// Prompt arguments are strings on the wire (MCP's `Record<string, string>`).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TriageErrorArgs {
    /// The error group id (`id` in list_errors).
    pub id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CostSpikeArgs {
    /// How far back to look: `1h`, `24h` (default), `7d`.
    pub window: Option<String>,
    /// One service only.
    pub service: Option<String>,
}

/// A tool's text answer, or its error, to quote in a prompt.
fn quoted<T>(answer: ToolResult<T>) -> String {
    match answer {
        Ok(a) => a.text,
        Err(e) => format!("(the tool failed: {})", e.0),
    }
}

#[prompt_router(vis = "pub(super)")]
impl QylMcp {
    /// Investigate one error group: its cause, the request and session it
    /// hit, and what to change; then resolve or merge it.
    #[prompt(name = "triage_error")]
    async fn triage_error(
        &self,
        PromptParameters(a): PromptParameters<TriageErrorArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResult, ErrorData> {
        let id: i64 = a.id.trim().parse().map_err(|_| {
            ErrorData::invalid_params(format!("id: {:?} is not an error group id", a.id), None)
        })?;
        let report = quoted(self.get_error(Parameters(ErrorIdArgs { id }), ctx).await);
        let text = format!(
            "Triage error group #{id} in qyl. Here is what qyl knows about it:\n\n{report}\n\
             Steps:\n\
             1. Read the in-app frames ([app]) of the exception chain; open the code at the top one.\n\
             2. Call get_trace on the linked trace with mode=errors (and summary) to see the failing request; \
             get_span on the failing span for its attributes and GenAI input/output.\n\
             3. If a session is linked, call get_conversation to see the agent loop that led to it.\n\
             4. Check the tag distributions: one release, model, environment or user over-represented? \
             release_health on the first release shows what else that release brought; \
             find_similar_errors shows the same bug elsewhere.\n\
             5. Search logs around it (search_logs with the trace_id) for what happened before.\n\
             Then state the most likely cause with the evidence, the fix (file and line), and whether \
             to resolve it (update_error, in_next_release once a fix ships) or merge it with a similar group."
        );
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description(format!("Triage error group #{id}")),
        )
    }

    /// Find out why GenAI spend rose: which model, service, session or loop.
    #[prompt(name = "investigate_cost_spike")]
    async fn investigate_cost_spike(
        &self,
        PromptParameters(a): PromptParameters<CostSpikeArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResult, ErrorData> {
        let window = a.window.unwrap_or_else(|| "24h".into());
        let stats = quoted(
            self.genai_stats(
                Parameters(GenAiStatsArgs {
                    since: Some(window.clone()),
                    service: a.service.clone(),
                    ..GenAiStatsArgs::default()
                }),
                ctx.clone(),
            )
            .await,
        );
        let sessions = quoted(
            self.list_sessions(
                Parameters(ListSessionsArgs {
                    since: Some(window.clone()),
                    service: a.service.clone(),
                    sort: Some("cost".into()),
                    limit: Some(5),
                    ..ListSessionsArgs::default()
                }),
                ctx,
            )
            .await,
        );
        let text = format!(
            "Investigate the GenAI spend of the last {window}{} in qyl.\n\n\
             GenAI calls in the window:\n{stats}\n\
             The most expensive sessions:\n{sessions}\n\
             Steps:\n\
             1. In the over-time buckets, find when spend rose and which model's share grew.\n\
             2. Call genai_stats with a narrower since/until and step around the rise, per model or service.\n\
             3. Open the costliest sessions with get_conversation: look for loops (the same tool called \
             again and again), retries after errors, growing context (input tokens rising turn after turn), \
             a more expensive model than needed, or missing prompt caching.\n\
             4. Check list_errors with genai_only=true for rate limits or timeouts that cause retries.\n\
             Then say what drove the cost, with numbers, and what to change (model choice, caching, \
             loop limits, context trimming).",
            a.service
                .as_deref()
                .map(|s| format!(" for service {s}"))
                .unwrap_or_default()
        );
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description(format!("Investigate GenAI spend over {window}")),
        )
    }
}
