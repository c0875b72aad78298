//! The network side of `runtime.http`: the calls a function makes to the
//! URLs [`AllowList`] lets through, bounded in time and size. Handlers run on the executor's worker threads; a call blocks
//! its worker on a small tokio runtime of its own (one thread), never on
//! the server's, so a slow endpoint holds one invocation and nothing that
//! serves ingest. Redirects are not followed (a 3xx is an answer like any
//! other), TLS is verified (rustls, webpki roots), and every attempt is
//! recorded for the invocation's span.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::Url;

pub use super::http_allow::{origin, AllowList};
use crate::config::FunctionsConfig;
use crate::functions::secrets::SecretsConfig;
use crate::model::now_unix_nano;

/// Retries a call may ask for (`retries = n`).
pub const MAX_RETRIES: u32 = 3;
/// The wait before the first retry; it doubles for each next one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How often a blocked call looks at the executor's shutdown flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);
/// Less time than this left in the invocation: no (further) attempt.
const MIN_ATTEMPT: Duration = Duration::from_millis(10);
/// How much of an error answer's body the error message quotes.
const BODY_SNIPPET: usize = 200;

/// Why a call did not return an answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    NotAllowed(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{origin}: {message}")]
    Failed { origin: String, message: String },
    #[error("{origin}: no answer within {} ms{}", .after.as_millis(), if *.deadline { " (the invocation's deadline)" } else { "" })]
    Timeout {
        origin: String,
        after: Duration,
        /// The invocation's deadline cut the call short, not its own timeout.
        deadline: bool,
    },
    #[error("{origin} answered {status}{}", snippet_suffix(.snippet))]
    Status {
        origin: String,
        status: u16,
        snippet: String,
    },
    #[error("stopped: qyl is shutting down")]
    Cancelled,
}

fn snippet_suffix(snippet: &str) -> String {
    if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    }
}

impl HttpError {
    fn retryable(&self) -> bool {
        match self {
            HttpError::Failed { .. }
            | HttpError::Timeout {
                deadline: false, ..
            } => true,
            HttpError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// `[functions]`'s network settings, shared by every VM, with the client
/// built on first use (no thread for a qyl whose scripts never call out).
pub struct HttpSettings {
    pub allow: AllowList,
    /// A call's timeout unless it asks for less.
    pub timeout: Duration,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    pub secrets: SecretsConfig,
    pub(super) client: OnceLock<Result<Client, String>>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            allow: AllowList::default(),
            timeout: Duration::from_secs(10),
            max_request_bytes: 1 << 20,
            max_response_bytes: 1 << 20,
            secrets: SecretsConfig::default(),
            client: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("allow", &self.allow)
            .field("timeout", &self.timeout)
            .field("max_request_bytes", &self.max_request_bytes)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("secrets", &self.secrets)
            .finish()
    }
}

impl HttpSettings {
    /// From `[functions]` (which `Config::validate` has checked).
    pub fn from_config(f: &FunctionsConfig) -> Result<HttpSettings, String> {
        Ok(HttpSettings {
            allow: AllowList::parse(&f.http_allow)?,
            timeout: Duration::from_millis(f.http_timeout_ms),
            max_request_bytes: usize::try_from(f.http_max_request_kb * 1024).unwrap_or(usize::MAX),
            max_response_bytes: usize::try_from(f.http_max_response_kb * 1024)
                .unwrap_or(usize::MAX),
            secrets: f.secrets.clone(),
            client: OnceLock::new(),
        })
    }

    fn client(&self) -> Result<&Client, HttpError> {
        self.client
            .get_or_init(Client::new)
            .as_ref()
            .map_err(|e| HttpError::BadRequest(format!("the HTTP client is unavailable: {e}")))
    }
}

/// The async client on its own one-thread runtime. Dropped with
/// `shutdown_background`, so dropping it is fine on any thread.
pub(super) struct Client {
    rt: Option<tokio::runtime::Runtime>,
    inner: reqwest::Client,
}

impl Client {
    fn new() -> Result<Client, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qyl-fn-http")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let inner = {
            let _in_rt = rt.enter();
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("qyl/", env!("CARGO_PKG_VERSION")))
                .pool_idle_timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| e.to_string())?
        };
        Ok(Client {
            rt: Some(rt),
            inner,
        })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// A call as the script asked for it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Shorter than the settings' timeout, if asked.
    pub timeout: Option<Duration>,
    /// Return non-2xx answers instead of failing.
    pub any_status: bool,
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names in lower case; repeated headers joined with ", ".
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One attempt, for the invocation's span and the function's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCall {
    pub method: &'static str,
    /// `scheme://host[:port]`, never the path or query.
    pub origin: String,
    pub status: Option<u16>,
    pub started_unix_nano: u64,
    pub duration: Duration,
    pub request_bytes: usize,
    pub response_bytes: usize,
    pub error: Option<String>,
}

impl HttpCall {
    /// Answered 2xx.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Makes `req`, retrying as asked, within `deadline`; every attempt (a
/// refused one too) is pushed on `calls`.
pub fn perform(
    settings: &HttpSettings,
    req: &Request,
    deadline: Instant,
    cancel: &AtomicBool,
    calls: &mut Vec<HttpCall>,
) -> Result<Response, HttpError> {
    let url = Url::parse(req.url.trim())
        .map_err(|e| HttpError::BadRequest(format!("not a URL ({e})")))?;
    let origin = origin(&url);
    let refused = |calls: &mut Vec<HttpCall>, e: HttpError| {
        calls.push(HttpCall {
            method: req.method.as_str(),
            origin: origin.clone(),
            status: None,
            started_unix_nano: now_unix_nano(),
            duration: Duration::ZERO,
            request_bytes: 0,
            response_bytes: 0,
            error: Some(e.to_string()),
        });
        Err(e)
    };
    if let Err(e) = settings.allow.check(&url) {
        return refused(calls, HttpError::NotAllowed(e));
    }
    let body_len = req.body.as_ref().map_or(0, Vec::len);
    if body_len > settings.max_request_bytes {
        return refused(
            calls,
            HttpError::BadRequest(format!(
                "the request body is {body_len} bytes, above [functions] http_max_request_kb ({} KiB)",
                settings.max_request_bytes / 1024
            )),
        );
    }
    let client = settings.client()?;
    let timeout = req
        .timeout
        .map_or(settings.timeout, |t| t.min(settings.timeout));
    let retries = req.retries.min(MAX_RETRIES);
    let mut attempt = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining < MIN_ATTEMPT {
            return Err(HttpError::Timeout {
                origin,
                after: Duration::ZERO,
                deadline: true,
            });
        }
        let limit = timeout.min(remaining);
        let started = Instant::now();
        let started_unix_nano = now_unix_nano();
        let result = attempt_once(client, settings, req, &url, &origin, limit, cancel).map_err(
            |e| match e {
                HttpError::Timeout { origin, after, .. } => HttpError::Timeout {
                    origin,
                    after,
                    deadline: limit < timeout,
                },
                other => other,
            },
        );
        // An error answer still counts its bytes in the record.
        let result: Result<Response, (HttpError, usize)> = match result {
            Ok(r) if !req.any_status && !(200..300).contains(&r.status) => {
                let snippet = cut(String::from_utf8_lossy(&r.body).trim(), BODY_SNIPPET);
                Err((
                    HttpError::Status {
                        origin: origin.clone(),
                        status: r.status,
                        snippet,
                    },
                    r.body.len(),
                ))
            }
            Ok(r) => Ok(r),
            Err(e) => Err((e, 0)),
        };
        calls.push(HttpCall {
            method: req.method.as_str(),
            origin: origin.clone(),
            status: match &result {
                Ok(r) => Some(r.status),
                Err((HttpError::Status { status, .. }, _)) => Some(*status),
                Err(_) => None,
            },
            started_unix_nano,
            duration: started.elapsed(),
            request_bytes: body_len,
            response_bytes: match &result {
                Ok(r) => r.body.len(),
                Err((_, n)) => *n,
            },
            error: result.as_ref().err().map(|(e, _)| e.to_string()),
        });
        let error = match result {
            Ok(r) => return Ok(r),
            Err((e, _)) => e,
        };
        if attempt >= retries || !error.retryable() {
            return Err(error);
        }
        let backoff = FIRST_BACKOFF * 2u32.pow(attempt);
        let left = deadline.saturating_duration_since(Instant::now());
        if left < backoff + MIN_ATTEMPT {
            return Err(error);
        }
        if wait(client, backoff, cancel) {
            return Err(HttpError::Cancelled);
        }
        attempt += 1;
    }
}

/// Sleeps `d` on the client's runtime; true if shutdown began meanwhile.
fn wait(client: &Client, d: Duration, cancel: &AtomicBool) -> bool {
    let Some(rt) = client.rt.as_ref() else {
        return true;
    };
    rt.block_on(async {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = cancelled(cancel) => true,
        }
    })
}

async fn cancelled(cancel: &AtomicBool) {
    while !cancel.load(Ordering::Acquire) {
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

fn attempt_once(
    client: &Client,
    settings: &HttpSettings,
    req: &Request,
    url: &Url,
    origin: &str,
    limit: Duration,
    cancel: &AtomicBool,
) -> Result<Response, HttpError> {
    let Some(rt) = client.rt.as_ref() else {
        return Err(HttpError::Cancelled);
    };
    let method = match req.method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
    };
    let mut builder = client.inner.request(method, url.clone());
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    if let Some(body) = &req.body {
        builder = builder.body(body.clone());
    }
    let max = settings.max_response_bytes;
    let failed = |e: reqwest::Error| HttpError::Failed {
        origin: origin.to_string(),
        message: describe(e),
    };
    let exchange = async {
        let mut resp = builder.send().await.map_err(failed)?;
        let too_large = || HttpError::Failed {
            origin: origin.to_string(),
            message: format!(
                "the answer is larger than [functions] http_max_response_kb ({} KiB)",
                max / 1024
            ),
        };
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let status = resp.status().as_u16();
        let mut headers: Vec<(String, String)> = Vec::new();
        for (name, value) in resp.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            match headers.iter_mut().find(|(n, _)| n == name.as_str()) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(&value);
                }
                None => headers.push((name.as_str().to_string(), value)),
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    };
    rt.block_on(async {
        tokio::select! {
            r = tokio::time::timeout(limit, exchange) => r.unwrap_or_else(|_| Err(HttpError::Timeout {
                origin: origin.to_string(),
                after: limit,
                deadline: false,
            })),
            _ = cancelled(cancel) => Err(HttpError::Cancelled),
        }
    })
}

/// A reqwest error as one line, without its URL (which may hold a token):
/// the kind, then the causes (DNS, refused connection, certificate).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed".to_string()
    } else {
        e.to_string()
    }];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// At most `n` characters of `s`, with "…" when cut.
fn cut(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_failed_without_the_path() {
        let e = HttpError::Status {
            origin: "https://h.example.com".into(),
            status: 500,
            snippet: "boom".into(),
        };
        assert_eq!(e.to_string(), "https://h.example.com answered 500: boom");
        assert!(e.retryable());
        let e = HttpError::Timeout {
            origin: "https://h.example.com".into(),
            after: Duration::from_millis(300),
            deadline: true,
        };
        assert!(e.to_string().contains("the invocation's deadline"), "{e}");
        assert!(!e.retryable());
        assert_eq!(cut("abcdef", 3), "abc…");
        assert_eq!(cut("abc", 3), "abc");
    }
}
