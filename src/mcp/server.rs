//! The MCP server object: what qyl says about itself at initialisation, its
//! tools (the routers in `tools/`), and the SQL schema as a resource.

use std::sync::Arc;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Resource, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{prompt_handler, ErrorData, RoleServer, ServerHandler};

use crate::api::AppState;
use crate::storage::schema::MIGRATIONS;

/// The SQL schema `run_sql` queries.
pub const SCHEMA_URI: &str = "qyl://schema/sql";

const INSTRUCTIONS: &str = "qyl stores this application's OpenTelemetry traces, logs, metrics, \
error groups and GenAI (LLM) calls. Start with `overview`, then `list_errors` / `get_error` for \
failures, `get_trace` and `get_span` for a request, `list_sessions` / `get_conversation` for an \
agent's run, `genai_stats` for cost and latency. Lists take `limit` and answer a `next_cursor` \
when there is more: pass it back as `cursor`. `run_sql` runs read-only SQL; the schema is the \
resource qyl://schema/sql. Times are RFC 3339, a duration ago (`15m`, `24h`, `7d`), or Unix \
milliseconds. Answers link to the dashboard.";

#[derive(Clone)]
pub struct QylMcp {
    pub(super) state: Arc<AppState>,
    tools: ToolRouter<QylMcp>,
    prompts: PromptRouter<QylMcp>,
}

impl QylMcp {
    pub fn new(state: Arc<AppState>) -> QylMcp {
        QylMcp {
            state,
            tools: Self::error_tools()
                + Self::trace_tools()
                + Self::genai_tools()
                + Self::release_tools()
                + Self::change_tools()
                + Self::data_tools(),
            prompts: Self::prompt_router(),
        }
    }

    /// Where dashboard links point when the request says nothing better.
    pub(super) fn fallback_base(&self) -> String {
        let s = &self.state.config.server;
        format!("http://{}:{}", s.bind, s.http_port)
    }
}

#[prompt_handler(router = self.prompts)]
impl ServerHandler for QylMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("qyl", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS.to_string())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // As rmcp's own handler answers: the list may change with a new
        // qyl, so clients of the current revision must not cache it.
        let hints = context
            .protocol_version()
            .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(rmcp::model::ResultType::COMPLETE),
            tools: self.tools.list_all(),
            ttl_ms: hints.then_some(0),
            cache_scope: hints.then_some(rmcp::model::CacheScope::Public),
            ..Default::default()
        })
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.tools.get(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The SDK's answer would be a bare "tool not found".
        if !self.tools.has_route(&request.name) {
            let known: Vec<String> = self
                .tools
                .list_all()
                .into_iter()
                .map(|t| t.name.to_string())
                .collect();
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}; qyl's tools are {}",
                    request.name,
                    known.join(", ")
                ),
                None,
            ));
        }
        self.tools
            .call(ToolCallContext::new(self, request, context))
            .await
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let schema = Resource::new(SCHEMA_URI, "sql-schema")
            .with_title("qyl SQL schema")
            .with_description(
                "The tables run_sql reads: the CREATE/ALTER statements of every migration, in order",
            )
            .with_mime_type("text/x-sql");
        Ok(ListResourcesResult {
            resources: vec![schema],
            ..Default::default()
        })
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri != SCHEMA_URI {
            return Err(ErrorData::resource_not_found(
                format!("no resource {:?}; qyl has {SCHEMA_URI}", request.uri),
                None,
            ));
        }
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(schema_text(), SCHEMA_URI).with_mime_type("text/x-sql")
        ])
        .into())
    }
}

/// Every migration's SQL with its version and name, which together are the
/// schema as it is now.
fn schema_text() -> String {
    let mut out = String::from(
        "-- qyl's tables (DuckDB). Later migrations alter earlier tables.\n\
         -- Times are Unix nanoseconds (UBIGINT); attributes are JSON text.\n",
    );
    for m in MIGRATIONS {
        out.push_str(&format!(
            "\n-- migration {}: {}\n{}\n",
            m.version,
            m.name,
            m.sql.trim()
        ));
    }
    out
}
