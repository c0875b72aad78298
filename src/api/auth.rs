//! Who may call qyl, and how often: the bearer token (`[auth]`), the
//! per-client rate limits and CORS (`[limits]`), for the HTTP ports (an axum
//! middleware) and the gRPC port (a tonic interceptor). Both sides go through
//! [`check_credentials`], so there is one place where tokens are compared.
//!
//! A token is presented as `Authorization: Bearer …` (or `x-qyl-token: …`,
//! which gRPC exporters configure more easily), or by a browser as `?t=…`
//! once: qyl answers with an HttpOnly SameSite=Strict cookie and a redirect
//! to the same URL without the token, so it does not stay in the address bar
//! or the history. The ingest token only opens OTLP ingest, never reads.
//! The read-only token reads (API GETs, read-only SQL, `/metrics`, MCP) and
//! changes nothing; requests it opens carry [`ReadOnlyToken`] so MCP tools
//! that change state can refuse it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};
use subtle::ConstantTimeEq;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::ApiError;
use crate::config::Config;

/// The cookie a `?t=` login sets.
pub const COOKIE: &str = "qyl_token";
/// The header gRPC exporters may use instead of `authorization`.
pub const TOKEN_HEADER: &str = "x-qyl-token";

/// How often idle clients are dropped from the rate limiters; their state is
/// then indistinguishable from a fresh one, so nothing is lost.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("auth.{key} may only hold letters, digits and - . _ ~ + / = (it travels in headers, cookies and URLs)")]
    BadToken { key: &'static str },
    #[error(
        "limits.cors_origins: {0:?} is not an origin like https://app.example.com (or use \"*\")"
    )]
    BadOrigin(String),
    #[error("--insecure-no-auth was given but an auth token is configured; drop one of them")]
    InsecureWithToken,
    #[error("generating a token: {0}")]
    Random(String),
}

/// Which rules a request falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Health checks: never limited, never guarded.
    Open,
    /// OTLP ingest: the ingest token is enough; `limits.ingest_per_second`.
    Ingest,
    /// The API, MCP and Prometheus text: the full token, or the read-only
    /// token for what only reads; `limits.api_per_second`.
    Api,
    /// The dashboard's files and page routes. They hold no data (the app
    /// reads everything through the API, which is guarded), so they are
    /// served without a token: that is how a visitor without one gets the
    /// login page. `?t=` logs in here as on any route; a wrong one lands on
    /// the login page saying so. Limited like the API.
    Page,
}

pub fn scope_of(path: &str) -> Scope {
    let under = |prefix: &str| super::is_under(path, prefix);
    match path {
        "/health" | "/health/live" | "/health/ready" => Scope::Open,
        p if p.starts_with("/v1/") => Scope::Ingest,
        _ if under("/api") || under("/mcp") || under("/metrics") || under("/health") => Scope::Api,
        _ => Scope::Page,
    }
}

/// A token held in memory; never printed by `Debug`.
#[derive(Clone)]
struct Secret(Box<[u8]>);

impl Secret {
    fn new(s: &str) -> Option<Secret> {
        (!s.is_empty()).then(|| Secret(s.as_bytes().into()))
    }

    // Constant time in the contents; the length is not secret.
    fn matches(&self, presented: &[u8]) -> bool {
        self.0.ct_eq(presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The accepted tokens. A scope that accepts no token is open.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    full: Option<Secret>,
    ingest: Option<Secret>,
    read: Option<Secret>,
}

impl Tokens {
    /// Empty strings mean "none".
    pub fn new(token: &str, ingest_token: &str) -> Tokens {
        Tokens {
            full: Secret::new(token),
            ingest: Secret::new(ingest_token),
            read: None,
        }
    }

    /// Also accept `read_token` (empty: none) for reading.
    pub fn with_read_token(mut self, read_token: &str) -> Tokens {
        self.read = Secret::new(read_token);
        self
    }

    fn is_open(&self, scope: Scope) -> bool {
        match scope {
            Scope::Open => true,
            Scope::Api | Scope::Page => self.full.is_none(),
            Scope::Ingest => self.full.is_none() && self.ingest.is_none(),
        }
    }

    fn grant(&self, presented: &[u8]) -> Grant {
        // Every comparison always runs, so timing does not tell which matched.
        let full = self.full.as_ref().is_some_and(|s| s.matches(presented));
        let ingest = self.ingest.as_ref().is_some_and(|s| s.matches(presented));
        let read = self.read.as_ref().is_some_and(|s| s.matches(presented));
        if full {
            Grant::Full
        } else if read {
            Grant::ReadOnly
        } else if ingest {
            Grant::IngestOnly
        } else {
            Grant::Nothing
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Full,
    ReadOnly,
    IngestOnly,
    Nothing,
}

/// What an allowed request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anything its scope offers (the full token, or auth is off).
    Full,
    /// Reading only: the read-only token.
    ReadOnly,
}

/// Put into the extensions of a request the read-only token opened, so
/// handlers behind the guard (the MCP tools) can tell it from the full token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOnlyToken;

/// Whether a request only reads, so the read-only token may make it: GET and
/// HEAD, MCP (whose tools check for themselves), and ad-hoc SQL, which the
/// store runs read-only whoever asks.
fn only_reads(method: &Method, path: &str) -> bool {
    method == Method::GET
        || method == Method::HEAD
        || super::is_under(path, "/mcp")
        || (method == Method::POST && path == "/api/v1/sql")
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    Missing,
    Invalid,
    /// The ingest token, presented for something other than ingest.
    IngestOnly,
    /// The read-only token, presented for a change (403, not 401: the
    /// token is valid, the request is not allowed with it).
    ReadOnly,
}

impl Denial {
    pub fn message(self) -> &'static str {
        match self {
            Denial::Missing => "a token is required: send `Authorization: Bearer <token>`, or open the login URL (`/?t=<token>`) in a browser",
            Denial::Invalid => "the token is not valid",
            Denial::IngestOnly => "the ingest token may only send telemetry (POST /v1/*); reading needs the auth token",
            Denial::ReadOnly => "the read-only token may only read (GET requests, POST /api/v1/sql and MCP); changes need the auth token",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed to read: the read-only token.
    AllowReadOnly,
    /// A valid `?t=`: set the cookie to `token` and redirect to `location`
    /// (the same path and query without `t`).
    Login {
        location: String,
        token: String,
    },
    /// A wrong `?t=` on a dashboard page: back to the login page, which
    /// says so.
    LoginFailed,
    Deny(Denial),
}

/// The token rules of one HTTP request, without I/O.
pub fn check(
    tokens: &Tokens,
    scope: Scope,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Decision {
    if tokens.is_open(scope) {
        return Decision::Allow;
    }
    // Only for what a browser navigates to: a redirect answering a POST would
    // make the exporter resend its body elsewhere.
    if method == Method::GET || method == Method::HEAD {
        if let Some(t) = uri.query().and_then(query_token) {
            return match tokens.grant(t.as_bytes()) {
                Grant::Full => Decision::Login {
                    location: without_token(uri),
                    token: t,
                },
                _ if scope == Scope::Page => Decision::LoginFailed,
                Grant::IngestOnly if scope == Scope::Api => Decision::Deny(Denial::IngestOnly),
                // A read-only session in the browser is not offered: the
                // dashboard's changes would all fail. Tools send it as a header.
                _ => Decision::Deny(Denial::Invalid),
            };
        }
    }
    if scope == Scope::Page {
        return Decision::Allow;
    }
    match check_credentials(tokens, scope, headers) {
        Ok(Access::Full) => Decision::Allow,
        Ok(Access::ReadOnly) if only_reads(method, uri.path()) => Decision::AllowReadOnly,
        Ok(Access::ReadOnly) => Decision::Deny(Denial::ReadOnly),
        Err(d) => Decision::Deny(d),
    }
}

/// Bearer, `x-qyl-token` or cookie: the one place tokens are judged, for
/// HTTP and gRPC alike. The read-only token opens the API scope only; what
/// it may do there is the caller's to check ([`check`] does).
pub fn check_credentials(
    tokens: &Tokens,
    scope: Scope,
    headers: &HeaderMap,
) -> Result<Access, Denial> {
    if tokens.is_open(scope) {
        return Ok(Access::Full);
    }
    let mut denial = Denial::Missing;
    let mut read_only = false;
    for presented in presented(headers) {
        match tokens.grant(presented.as_bytes()) {
            Grant::Full => return Ok(Access::Full),
            Grant::IngestOnly if scope == Scope::Ingest => return Ok(Access::Full),
            Grant::ReadOnly if scope == Scope::Api => read_only = true,
            Grant::ReadOnly => denial = Denial::ReadOnly,
            Grant::IngestOnly => denial = Denial::IngestOnly,
            Grant::Nothing if denial == Denial::Missing => denial = Denial::Invalid,
            Grant::Nothing => {}
        }
    }
    if read_only {
        return Ok(Access::ReadOnly);
    }
    Err(denial)
}

/// Every token the request carries.
fn presented(headers: &HeaderMap) -> Vec<&str> {
    let mut out = Vec::new();
    for v in headers.get_all(header::AUTHORIZATION) {
        let Ok(v) = v.to_str() else { continue };
        if let Some((scheme, token)) = v.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                out.push(token.trim());
            }
        }
    }
    for v in headers.get_all(TOKEN_HEADER) {
        if let Ok(v) = v.to_str() {
            out.push(v.trim());
        }
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                if name == COOKIE {
                    out.push(value.trim_matches('"'));
                }
            }
        }
    }
    out
}

fn query_token(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "t")
        .map(|(_, v)| v.into_owned())
}

/// `uri`'s path and query with every `t` parameter removed; the other
/// parameters keep their original encoding.
fn without_token(uri: &Uri) -> String {
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    let rest: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| {
            !pair.is_empty()
                && form_urlencoded::parse(pair.as_bytes())
                    .next()
                    .is_none_or(|(k, _)| k != "t")
        })
        .collect();
    if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", rest.join("&"))
    }
}

/// The bearer token grammar (RFC 6750 b64token), which is also safe in a
/// cookie value.
fn valid_token(t: &str) -> bool {
    t.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b))
}

fn generate_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn is_loopback(bind: &str) -> bool {
    bind == "localhost" || bind.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

type Limiter = DefaultKeyedRateLimiter<IpAddr>;

fn limiter(per_second: u32, burst: u32) -> Option<Arc<Limiter>> {
    let rate = NonZeroU32::new(per_second)?;
    let quota = Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate));
    Some(Arc::new(Limiter::keyed(quota)))
}

/// One key per client: IPv4 addresses as they are, IPv6 by /64, since one
/// host usually owns a whole /64 and could otherwise rotate past the limit.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(seg))
        }
        v4 => v4,
    }
}

/// `Err(seconds to wait)` when `ip` is over the limit.
fn admit(limiter: &Limiter, ip: IpAddr) -> Result<(), u64> {
    limiter.check_key(&client_key(ip)).map_err(|not_until| {
        let wait = not_until.wait_time_from(limiter.clock().now());
        wait.as_secs_f64().ceil().max(1.0) as u64
    })
}

/// The auth, rate limit and CORS settings of a running server.
pub struct Guard {
    tokens: Tokens,
    ingest_limit: Option<Arc<Limiter>>,
    api_limit: Option<Arc<Limiter>>,
    cors: Option<CorsLayer>,
    /// Set when qyl made the token up because it listens beyond loopback.
    generated: Option<String>,
    open_beyond_loopback: bool,
}

impl Guard {
    /// Reads `[auth]` and `[limits]`; generates a token when bound beyond
    /// loopback without one. Starts the limiters' pruning on the current
    /// tokio runtime, if any.
    pub fn from_config(config: &Config) -> Result<Arc<Guard>, AuthError> {
        let auth = &config.auth;
        for (key, value) in [
            ("token", &auth.token),
            ("ingest_token", &auth.ingest_token),
            ("read_token", &auth.read_token),
        ] {
            if !valid_token(value) {
                return Err(AuthError::BadToken { key });
            }
        }
        if auth.insecure_no_auth && !auth.token.is_empty() {
            return Err(AuthError::InsecureWithToken);
        }
        let local = is_loopback(&config.server.bind);
        let generated = if auth.token.is_empty() && !local && !auth.insecure_no_auth {
            Some(generate_token()?)
        } else {
            None
        };
        let token = generated.as_deref().unwrap_or(&auth.token);
        let limits = &config.limits;
        let guard = Arc::new(Guard {
            tokens: Tokens::new(token, &auth.ingest_token).with_read_token(&auth.read_token),
            ingest_limit: limiter(limits.ingest_per_second, limits.burst),
            api_limit: limiter(limits.api_per_second, limits.burst),
            cors: cors(&limits.cors_origins)?,
            open_beyond_loopback: !local && token.is_empty(),
            generated,
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let limiters: Vec<Weak<Limiter>> = [&guard.ingest_limit, &guard.api_limit]
                .into_iter()
                .flatten()
                .map(Arc::downgrade)
                .collect();
            if !limiters.is_empty() {
                rt.spawn(prune(limiters));
            }
        }
        Ok(guard)
    }

    /// Tells the operator how to get in, once the HTTP address is known.
    pub fn announce(&self, http: SocketAddr) {
        if let Some(token) = &self.generated {
            tracing::warn!(
                "no auth token is configured and qyl listens beyond this machine, so it generated one for this run. \
                 Log in at http://{http}/?t={token} ; exporters and API clients send `Authorization: Bearer {token}`. \
                 Set auth.token (or QYL_AUTH_TOKEN) to keep a token across restarts."
            );
        } else if self.open_beyond_loopback {
            tracing::warn!(
                "auth is off (--insecure-no-auth) and qyl listens on {http}: anyone who reaches this port can read and write all data"
            );
        }
    }

    /// Guards every route of `router` (health excepted) and adds CORS
    /// outside the guard, so preflights are answered without a token.
    pub fn wrap(self: &Arc<Self>, router: Router) -> Router {
        let router = router.layer(axum::middleware::from_fn_with_state(
            self.clone(),
            middleware,
        ));
        match &self.cors {
            Some(cors) => router.layer(cors.clone()),
            None => router,
        }
    }

    /// The same rules for the gRPC port.
    pub fn grpc(self: &Arc<Self>) -> GrpcGuard {
        GrpcGuard(self.clone())
    }

    fn limiter(&self, scope: Scope) -> Option<&Limiter> {
        match scope {
            Scope::Open => None,
            Scope::Ingest => self.ingest_limit.as_deref(),
            Scope::Api | Scope::Page => self.api_limit.as_deref(),
        }
    }
}

async fn prune(limiters: Vec<Weak<Limiter>>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut alive = false;
        for l in limiters.iter().filter_map(Weak::upgrade) {
            l.retain_recent();
            l.shrink_to_fit();
            alive = true;
        }
        if !alive {
            return; // the server is gone
        }
    }
}

fn cors(origins: &str) -> Result<Option<CorsLayer>, AuthError> {
    let origins = origins.trim();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins == "*" {
        AllowOrigin::any()
    } else {
        let list = origins
            .split(',')
            .map(|o| o.trim().trim_end_matches('/'))
            .filter(|o| !o.is_empty())
            .map(|o| {
                o.contains("://")
                    .then(|| HeaderValue::from_str(o).ok())
                    .flatten()
                    .ok_or_else(|| AuthError::BadOrigin(o.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(list)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::CONTENT_ENCODING,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static(TOKEN_HEADER),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    ))
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn too_many(retry_after: u64) -> Response {
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from this address; retry in {retry_after} s"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    no_store(resp)
}

fn unauthorized(denial: Denial) -> Response {
    if denial == Denial::ReadOnly {
        let resp = ApiError::new(StatusCode::FORBIDDEN, "forbidden", denial.message());
        return no_store(resp.into_response());
    }
    let mut resp =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", denial.message()).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"qyl\""),
    );
    no_store(resp)
}

fn login(location: &str, token: &str) -> Response {
    // Both come from the request, but `location` is a parsed URI's path and
    // query and `token` passed `valid_token` by matching ours.
    let (Ok(location), Ok(cookie)) = (
        HeaderValue::from_str(location),
        HeaderValue::from_str(&format!(
            "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
        )),
    ) else {
        return unauthorized(Denial::Invalid);
    };
    let resp = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
    )
        .into_response();
    no_store(resp)
}

async fn middleware(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let scope = scope_of(req.uri().path());
    if scope == Scope::Open {
        return next.run(req).await;
    }
    if let Some(limiter) = guard.limiter(scope) {
        // Without connection info every client shares one bucket: stricter,
        // never looser.
        let ip = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        if let Err(secs) = admit(limiter, ip) {
            return too_many(secs);
        }
    }
    match check(&guard.tokens, scope, req.method(), req.uri(), req.headers()) {
        Decision::Allow => next.run(req).await,
        Decision::AllowReadOnly => {
            let mut req = req;
            req.extensions_mut().insert(ReadOnlyToken);
            next.run(req).await
        }
        Decision::Login { location, token } => login(&location, &token),
        Decision::LoginFailed => no_store(
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/login?error=invalid")],
            )
                .into_response(),
        ),
        Decision::Deny(denial) => unauthorized(denial),
    }
}

/// The gRPC side of [`Guard`]: every OTLP service is ingest.
#[derive(Clone)]
pub struct GrpcGuard(Arc<Guard>);

impl tonic::service::Interceptor for GrpcGuard {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(limiter) = self.0.limiter(Scope::Ingest) {
            let ip = req
                .remote_addr()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
            if let Err(secs) = admit(limiter, ip) {
                return Err(tonic::Status::resource_exhausted(format!(
                    "too many requests from this address; retry in {secs} s"
                )));
            }
        }
        match check_credentials(&self.0.tokens, Scope::Ingest, req.metadata().as_ref()) {
            Ok(_) => Ok(req),
            Err(d) => Err(tonic::Status::unauthenticated(d.message())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn get(tokens: &Tokens, uri: &str, h: &[(&str, &str)]) -> Decision {
        let uri: Uri = uri.parse().unwrap();
        check(
            tokens,
            scope_of(uri.path()),
            &Method::GET,
            &uri,
            &headers(h),
        )
    }

    fn post(tokens: &Tokens, uri: &str, h: &[(&str, &str)]) -> Decision {
        let uri: Uri = uri.parse().unwrap();
        check(
            tokens,
            scope_of(uri.path()),
            &Method::POST,
            &uri,
            &headers(h),
        )
    }

    #[test]
    fn scopes() {
        assert_eq!(scope_of("/health"), Scope::Open);
        assert_eq!(scope_of("/health/ready"), Scope::Open);
        assert_eq!(scope_of("/health/other"), Scope::Api);
        assert_eq!(scope_of("/v1/traces"), Scope::Ingest);
        assert_eq!(scope_of("/api/v1/traces"), Scope::Api);
        assert_eq!(scope_of("/"), Scope::Page);
        assert_eq!(scope_of("/traces/abc"), Scope::Page);
        assert_eq!(scope_of("/assets/index-1234.js"), Scope::Page);
        assert_eq!(scope_of("/mcp"), Scope::Api);
        assert_eq!(scope_of("/metrics"), Scope::Api);
        assert_eq!(scope_of("/apix"), Scope::Page);
    }

    #[test]
    fn no_token_is_open() {
        let t = Tokens::new("", "");
        assert_eq!(get(&t, "/api/v1/x", &[]), Decision::Allow);
        assert_eq!(post(&t, "/v1/traces", &[]), Decision::Allow);
    }

    #[test]
    fn bearer_header_and_cookie() {
        let t = Tokens::new("s3cret", "");
        let deny = |d| Decision::Deny(d);
        assert_eq!(get(&t, "/api/v1/x", &[]), deny(Denial::Missing));
        assert_eq!(
            get(&t, "/api/v1/x", &[("authorization", "Bearer nope")]),
            deny(Denial::Invalid)
        );
        assert_eq!(
            get(&t, "/api/v1/x", &[("authorization", "Basic czNjcmV0")]),
            deny(Denial::Missing)
        );
        assert_eq!(
            get(&t, "/api/v1/x", &[("authorization", "bearer s3cret")]),
            Decision::Allow
        );
        assert_eq!(
            get(&t, "/api/v1/x", &[("authorization", "Bearer s3cre")]),
            deny(Denial::Invalid)
        );
        assert_eq!(
            get(&t, "/api/v1/x", &[("x-qyl-token", "s3cret")]),
            Decision::Allow
        );
        assert_eq!(
            get(&t, "/api/v1/x", &[("cookie", "a=b; qyl_token=s3cret; c=d")]),
            Decision::Allow
        );
        assert_eq!(
            get(&t, "/api/v1/x", &[("cookie", "qyl_token=wrong")]),
            deny(Denial::Invalid)
        );
        // Dashboard pages hold no data: served to anyone (the app then asks
        // the API, which says 401, and shows the login page).
        assert_eq!(get(&t, "/", &[]), Decision::Allow);
        assert_eq!(
            get(&t, "/traces", &[("cookie", "qyl_token=wrong")]),
            Decision::Allow
        );
        assert_eq!(get(&t, "/metrics", &[]), deny(Denial::Missing));
        assert_eq!(get(&t, "/mcp", &[]), deny(Denial::Missing));
        assert_eq!(get(&t, "/health", &[]), Decision::Allow);
    }

    #[test]
    fn query_token_logs_in_and_is_dropped_from_the_location() {
        let t = Tokens::new("s3cret", "");
        assert_eq!(
            get(&t, "/traces?a=1&t=s3cret&b=x%20y", &[]),
            Decision::Login {
                location: "/traces?a=1&b=x%20y".into(),
                token: "s3cret".into()
            }
        );
        assert_eq!(
            get(&t, "/?t=s3cret", &[]),
            Decision::Login {
                location: "/".into(),
                token: "s3cret".into()
            }
        );
        assert_eq!(
            get(&t, "/?t=wrong", &[("authorization", "Bearer s3cret")]),
            Decision::LoginFailed
        );
        assert_eq!(
            get(
                &t,
                "/api/v1/x?t=wrong",
                &[("authorization", "Bearer s3cret")]
            ),
            Decision::Deny(Denial::Invalid)
        );
        // Never a redirect for a POST: the token in the query does not count.
        assert_eq!(
            post(&t, "/v1/traces?t=s3cret", &[]),
            Decision::Deny(Denial::Missing)
        );
    }

    #[test]
    fn ingest_token_only_ingests() {
        let t = Tokens::new("full", "send");
        let bearer = [("authorization", "Bearer send")];
        assert_eq!(post(&t, "/v1/traces", &bearer), Decision::Allow);
        assert_eq!(
            get(&t, "/api/v1/x", &bearer),
            Decision::Deny(Denial::IngestOnly)
        );
        assert_eq!(get(&t, "/?t=send", &[]), Decision::LoginFailed);
        assert_eq!(
            post(&t, "/v1/traces", &[("authorization", "Bearer full")]),
            Decision::Allow
        );
        let grpc = headers(&[("x-qyl-token", "send")]);
        assert_eq!(
            check_credentials(&t, Scope::Ingest, &grpc),
            Ok(Access::Full)
        );
        assert_eq!(
            check_credentials(&t, Scope::Api, &grpc),
            Err(Denial::IngestOnly)
        );
        // An ingest token alone guards ingest and leaves reads open.
        let only = Tokens::new("", "send");
        assert_eq!(get(&only, "/api/v1/x", &[]), Decision::Allow);
        assert_eq!(
            post(&only, "/v1/traces", &[]),
            Decision::Deny(Denial::Missing)
        );
    }

    #[test]
    fn read_token_reads_and_changes_nothing() {
        let t = Tokens::new("full", "send").with_read_token("look");
        let read = [("authorization", "Bearer look")];
        assert_eq!(get(&t, "/api/v1/errors", &read), Decision::AllowReadOnly);
        assert_eq!(get(&t, "/metrics", &read), Decision::AllowReadOnly);
        assert_eq!(post(&t, "/mcp", &read), Decision::AllowReadOnly);
        assert_eq!(post(&t, "/api/v1/sql", &read), Decision::AllowReadOnly);
        assert_eq!(
            post(&t, "/api/v1/errors/merge", &read),
            Decision::Deny(Denial::ReadOnly)
        );
        assert_eq!(
            post(&t, "/v1/traces", &read),
            Decision::Deny(Denial::ReadOnly)
        );
        // The full token beside it still wins; the browser login is full only.
        assert_eq!(
            post(
                &t,
                "/api/v1/errors/merge",
                &[("authorization", "Bearer look"), ("x-qyl-token", "full")]
            ),
            Decision::Allow
        );
        assert_eq!(get(&t, "/?t=look", &[]), Decision::LoginFailed);
        assert_eq!(
            check_credentials(&t, Scope::Ingest, &headers(&read)),
            Err(Denial::ReadOnly)
        );
    }

    #[test]
    fn token_grammar_and_generation() {
        assert!(valid_token(""));
        assert!(valid_token("abc-DEF_1.2~3+4/5="));
        assert!(!valid_token("has space"));
        assert!(!valid_token("semi;colon"));
        let a = generate_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, generate_token().unwrap());
    }

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("0.0.0.0"));
        assert!(!is_loopback("::"));
        assert!(!is_loopback("192.168.1.5"));
    }

    #[test]
    fn limiter_keys_and_wait() {
        let l = limiter(1, 2).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(admit(&l, ip).is_ok());
        assert!(admit(&l, ip).is_ok());
        assert_eq!(admit(&l, ip), Err(1));
        assert!(admit(&l, "10.0.0.2".parse().unwrap()).is_ok());
        assert!(limiter(0, 5).is_none());
        assert_eq!(
            client_key("2001:db8::1".parse().unwrap()),
            client_key("2001:db8::ffff:2".parse().unwrap())
        );
        assert_eq!(
            client_key("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn cors_origins() {
        assert!(cors("").unwrap().is_none());
        assert!(cors("*").unwrap().is_some());
        assert!(cors("https://a.example, http://localhost:3000/")
            .unwrap()
            .is_some());
        assert!(matches!(cors("a.example"), Err(AuthError::BadOrigin(_))));
    }
}
