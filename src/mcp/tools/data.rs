//! Tools over qyl itself: the Lua functions (their diagnostics and recent
//! invocations), and read-only SQL over the stored tables.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::answer::{dashboard_base, Answer, Parameters, ToolError, ToolResult};
use super::super::render::{capped, cut, line, or_dash, Text, MAX_ITEMS};
use super::super::QylMcp;
use crate::functions::lint::check_dir_with;
use crate::model::function::InvocationQuery;
use crate::model::query::PageRequest;

/// Invocations `list_functions` shows per function.
const RECENT_INVOCATIONS: usize = 5;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFunctionsArgs {
    /// One function only.
    pub name: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FunctionReport {
    /// Name, trigger, state (`active`, `paused`, `error`), limits, counters,
    /// last error.
    pub function: Value,
    /// Newest first.
    pub recent_invocations: Vec<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct FunctionList {
    pub dir: String,
    pub functions: Vec<FunctionReport>,
    /// What `qyl check` says about the scripts as they are on disk.
    pub diagnostics: Vec<String>,
    /// Files whose last save did not load.
    pub load_errors: Vec<String>,
    pub link: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSqlArgs {
    /// One read-only DuckDB statement (SELECT, WITH…). The schema is the
    /// resource qyl://schema/sql.
    pub sql: String,
    /// Rows to return (default 50; at most query.sql_row_limit).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SqlAnswer {
    pub columns: Vec<SqlColumnBrief>,
    pub rows: Vec<Vec<Value>>,
    /// True when the row limit cut the result.
    pub truncated: bool,
    pub elapsed_ms: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SqlColumnBrief {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

#[tool_router(router = data_tools, vis = "pub(in crate::mcp)")]
impl QylMcp {
    #[tool(
        description = "The Lua functions qyl runs on spans, logs and schedules: trigger, state (active, paused by the circuit breaker, error), counters, last error, recent invocations, and what the linter says about the scripts.",
        output_schema = schema_for_output::<FunctionList>(),
        annotations(title = "List functions", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_functions(
        &self,
        Parameters(a): Parameters<ListFunctionsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<FunctionList> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let engine = &self.state.functions;
        let listed: Vec<_> = engine
            .list()
            .into_iter()
            .filter(|f| a.name.as_ref().is_none_or(|n| &f.name == n))
            .collect();
        if let Some(n) = &a.name {
            if listed.is_empty() {
                return Err(ToolError(format!(
                    "name: no function named {n:?} is loaded"
                )));
            }
        }
        let mut functions = Vec::new();
        for f in listed.iter().take(MAX_ITEMS) {
            let recent = self
                .state
                .store
                .function_invocations(InvocationQuery {
                    function: f.name.clone(),
                    status: None,
                    page: PageRequest {
                        limit: RECENT_INVOCATIONS,
                        cursor: None,
                    },
                })
                .await?;
            functions.push(FunctionReport {
                function: capped(f),
                recent_invocations: recent.items.iter().map(capped).collect(),
            });
        }
        let dir = engine.config.dir.clone();
        let allow = engine.registry.http_allow().clone();
        let diagnostics = if dir.is_dir() {
            // Loading a script runs Lua: not on a tokio worker.
            let report = tokio::task::spawn_blocking(move || check_dir_with(&dir, &allow))
                .await
                .map_err(|e| ToolError(format!("the check task failed: {e}")))?
                .map_err(|e| ToolError(format!("reading the scripts directory: {e}")))?;
            report
                .diagnostics
                .iter()
                .take(MAX_ITEMS)
                .map(|d| cut(&d.to_string(), 500))
                .collect()
        } else {
            Vec::new()
        };
        let load_errors: Vec<String> = engine
            .load_errors()
            .into_iter()
            .map(|(_, e)| {
                format!(
                    "{}:{}: {}",
                    e.file.display(),
                    e.line.map(|l| l.to_string()).unwrap_or_default(),
                    cut(&e.message, 500)
                )
            })
            .collect();
        let mut text = Text::new();
        text.line(format!(
            "{} functions in {}.",
            listed.len(),
            engine.config.dir.display()
        ));
        for f in &listed {
            text.line(format!(
                "{} ({}:{}) on {}: {} — {} runs, {} failed, {} timed out, {} skipped{}",
                f.name,
                f.file,
                f.line,
                f.trigger,
                f.state,
                f.invocation_count,
                f.failed,
                f.timed_out,
                f.skipped,
                f.last_error
                    .as_deref()
                    .map(|e| format!("; last error: {}", line(e)))
                    .unwrap_or_default()
            ));
        }
        for r in &functions {
            for i in &r.recent_invocations {
                text.line(format!(
                    "  {} {} {} {}",
                    i["function"].as_str().unwrap_or(""),
                    i["started_at"].as_str().unwrap_or(""),
                    i["status"].as_str().unwrap_or(""),
                    line(or_dash(i["error"].as_str()))
                ));
            }
        }
        for d in &diagnostics {
            text.line(format!("check: {}", line(d)));
        }
        for e in &load_errors {
            text.line(format!("load error: {}", line(e)));
        }
        let link = format!("{base}/functions");
        text.link(&link);
        Ok(Answer {
            text: text.finish(),
            data: FunctionList {
                dir: engine.config.dir.display().to_string(),
                functions,
                diagnostics,
                load_errors,
                link,
            },
        })
    }

    #[tool(
        description = "Runs one read-only SQL statement (DuckDB) over qyl's tables: spans, logs, metrics, error groups and events, sessions… Capped in rows (limit, at most query.sql_row_limit) and time (query.timeout_ms), exactly as POST /api/v1/sql. Read the resource qyl://schema/sql for the tables.",
        output_schema = schema_for_output::<SqlAnswer>(),
        annotations(title = "Run read-only SQL", read_only_hint = true, open_world_hint = false)
    )]
    async fn run_sql(
        &self,
        Parameters(a): Parameters<RunSqlArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<SqlAnswer> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let cap = self.state.config.query.sql_row_limit;
        let limit = a.limit.unwrap_or(MAX_ITEMS).min(cap);
        if limit == 0 {
            return Err(ToolError::new("limit: at least 1"));
        }
        let result = self
            .state
            .store
            .sql(a.sql, limit)
            .await
            .map_err(|e| ToolError(e.to_string()))?;
        let columns: Vec<SqlColumnBrief> = result
            .columns
            .iter()
            .map(|c| SqlColumnBrief {
                name: c.name.clone(),
                type_name: c.type_name.clone(),
            })
            .collect();
        let rows: Vec<Vec<Value>> = result
            .rows
            .iter()
            .map(|r| r.iter().map(capped).collect())
            .collect();
        let mut text = Text::new();
        text.line(
            columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(" | "),
        );
        for r in rows.iter().take(MAX_ITEMS) {
            text.line(
                r.iter()
                    .map(|v| match v {
                        Value::String(s) => line(s),
                        other => line(&other.to_string()),
                    })
                    .collect::<Vec<_>>()
                    .join(" | "),
            );
        }
        if rows.len() > MAX_ITEMS {
            text.line(format!(
                "…[cut {} rows from this text; all {} are in structuredContent]",
                rows.len() - MAX_ITEMS,
                rows.len()
            ));
        }
        text.line(format!(
            "({} rows{}, {:.1} ms)",
            rows.len(),
            if result.truncated {
                format!("; cut at limit {limit}, more exist")
            } else {
                String::new()
            },
            result.elapsed_ms
        ));
        text.link(&format!("{base}/sql"));
        Ok(Answer {
            text: text.finish(),
            data: SqlAnswer {
                columns,
                rows,
                truncated: result.truncated,
                elapsed_ms: result.elapsed_ms,
            },
        })
    }
}
