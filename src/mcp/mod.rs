//! qyl's MCP server at `/mcp`, so a coding assistant can investigate a
//! production failure (error groups, traces, GenAI calls, sessions, logs)
//! with the same data and the same store queries as the dashboard and REST.
//!
//! Streamable HTTP through the official SDK (rmcp), mounted on the HTTP
//! port behind the same guard as the API: the bearer token, or the
//! read-only token, which the tools that change state refuse. Every tool
//! answers with `structuredContent` (its output schema is listed) and a short
//! text for a model: capped lists, long strings cut with a marker, a cursor
//! when there is more, and a dashboard link.

mod answer;
mod prompts;
mod render;
mod server;
pub(crate) mod tools;

use std::net::IpAddr;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::api::AppState;
pub use server::QylMcp;

/// The `/mcp` endpoint: a tower service for `Router::nest_service`. Sessions
/// end when `stop` is cancelled (at shutdown, so their streams do not hold
/// the HTTP server open).
pub fn service(
    state: AppState,
    stop: CancellationToken,
) -> StreamableHttpService<QylMcp, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        // Clients of protocol revisions before sessions were dropped still
        // open one; the current revision is served without.
        .with_legacy_session_mode(true)
        .with_cancellation_token(stop)
        .with_max_request_body_bytes(1024 * 1024);
    let config = match allowed_hosts(&state.config.server.bind) {
        Some(hosts) => config.with_allowed_hosts(hosts),
        None => config.disable_allowed_hosts(),
    };
    let state = Arc::new(state);
    StreamableHttpService::new(
        move || Ok(QylMcp::new(state.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The `Host` values MCP accepts. The SDK's check stops DNS rebinding
/// against a server on this machine: bound to loopback, only loopback names
/// (and the bound address) reach it. Bound beyond loopback, qyl is meant to
/// be reached by names it cannot know (Docker, a hostname, a proxy) and
/// always has a token there (generated if none is configured), which is
/// what keeps a rebinding page out: `None`, no check.
fn allowed_hosts(bind: &str) -> Option<Vec<String>> {
    let loopback = bind == "localhost" || bind.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return None;
    }
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .collect();
    if !hosts.iter().any(|h| h == bind) {
        hosts.push(bind.to_string());
    }
    Some(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_the_bind_address() {
        let local = allowed_hosts("127.0.0.1").unwrap();
        assert!(local.contains(&"localhost".to_string()));
        assert!(local.contains(&"127.0.0.1".to_string()));
        assert!(allowed_hosts("127.0.0.2")
            .unwrap()
            .contains(&"127.0.0.2".to_string()));
        assert_eq!(allowed_hosts("0.0.0.0"), None);
        assert_eq!(allowed_hosts("::"), None);
        assert_eq!(allowed_hosts("192.168.1.5"), None);
    }
}
