//! How the client commands reach a running qyl: its base URL and token, and
//! JSON requests whose failures carry the server's own message (qyl answers
//! errors as `{"error": {"code": "...", "message": "..."}}`).

use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;

/// Where qyl is; shared by every client command.
#[derive(Args, Debug, Clone, Default)]
pub struct RemoteArgs {
    /// qyl's HTTP address (the port of the API and dashboard), e.g.
    /// http://qyl.internal:5100. Default: http://127.0.0.1 at the HTTP port
    /// of the local configuration (qyl.toml, QYL_SERVER_HTTP_PORT), 5100.
    #[arg(long, env = "QYL_URL", value_name = "URL")]
    pub url: Option<String>,
    /// API token, sent as `Authorization: Bearer` [env: QYL_AUTH_TOKEN, or
    /// auth.token of the local configuration].
    #[arg(long, value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// A running qyl.
#[derive(Debug, Clone)]
pub struct Remote {
    /// No trailing slash, e.g. `http://127.0.0.1:5100`.
    pub base: String,
    pub token: Option<String>,
    /// For calls that answer whole (JSON); the live stream uses
    /// [`Remote::streaming`], which has no overall timeout.
    http: reqwest::Client,
}

impl Remote {
    /// Resolves `--url`/`--token`, falling back on the local configuration
    /// (so `qyl watch` beside `qyl serve` needs no flags, and in a container
    /// the same `QYL_*` variables serve both).
    pub fn from_args(args: &RemoteArgs) -> anyhow::Result<Self> {
        let local = || -> anyhow::Result<crate::config::Config> {
            let file = Some(std::path::PathBuf::from("qyl.toml")).filter(|p| p.is_file());
            crate::config::Config::from_layers(file.as_deref(), std::env::vars())
                .context("reading the local configuration (qyl.toml, QYL_* variables)")
        };
        let mut config = None;
        let base = match &args.url {
            Some(url) => url.clone(),
            None => {
                let c = config.insert(local()?);
                format!("http://127.0.0.1:{}", c.server.http_port)
            }
        };
        let token = match &args.token {
            Some(t) => Some(t.clone()),
            None => match &config {
                Some(c) => Some(c.auth.token.clone()),
                // With --url the server may be anyone's: only an explicit
                // token or QYL_AUTH_TOKEN is sent there, never a local file's.
                None => std::env::var("QYL_AUTH_TOKEN").ok(),
            },
        }
        .filter(|t| !t.is_empty());
        Self::new(&base, token)
    }

    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/');
        let base = if base.contains("://") {
            base.to_string()
        } else {
            format!("http://{base}")
        };
        reqwest::Url::parse(&base).with_context(|| format!("--url {base:?} is not a URL"))?;
        let http = reqwest::Client::builder()
            .default_headers(auth_headers(token.as_deref())?)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .context("building the HTTP client")?;
        Ok(Self { base, token, http })
    }

    /// `base` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The client for whole answers (token set, 120 s timeout).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A client for endless responses (the live stream): connect timeout
    /// only, the token as a default header.
    pub fn streaming(&self) -> anyhow::Result<reqwest::Client> {
        reqwest::Client::builder()
            .default_headers(auth_headers(self.token.as_deref())?)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")
    }

    /// GET `path` (with its query string) and decode the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .with_context(|| format!("cannot reach qyl at {}", self.base))?;
        decode(resp, path).await
    }

    /// POST `body` as JSON to `path` and decode the JSON answer.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<T> {
        let resp = self
            .http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach qyl at {}", self.base))?;
        decode(resp, path).await
    }
}

fn auth_headers(token: Option<&str>) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        let mut v = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| anyhow!("the token has characters an HTTP header cannot carry"))?;
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
    Ok(headers)
}

/// The body as `T` on success; otherwise an error carrying qyl's message.
pub async fn decode<T: DeserializeOwned>(resp: Response, what: &str) -> anyhow::Result<T> {
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("reading the answer to {what}"))?;
    if !status.is_success() {
        return Err(server_error(status, &body));
    }
    serde_json::from_slice(&body)
        .with_context(|| format!("qyl's answer to {what} is not the JSON expected"))
}

/// An error from a non-2xx answer: qyl's error message when there is one,
/// with a hint for the one status a user can fix locally.
pub fn server_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            e.get("message").unwrap_or(e).as_str().map(str::to_string)
        })
        .unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(500)
                .collect()
        });
    let hint = if status == StatusCode::UNAUTHORIZED {
        " (pass --token or set QYL_AUTH_TOKEN)"
    } else {
        ""
    };
    if message.is_empty() {
        anyhow!("qyl answered {status}{hint}")
    } else {
        anyhow!("qyl answered {status}: {message}{hint}")
    }
}
