//! The web dashboard at `/`: the single-page app built from `dashboard/`
//! (see build.rs), embedded with rust-embed in release builds and read from
//! disk in debug builds, so `vite build` is enough while working on it.
//!
//! Hashed assets (`/assets/*`) are immutable; `index.html` is revalidated
//! every time (ETag), so a new qyl is picked up on the next load. Text files
//! are gzipped once, on first request, and kept. Page routes fall back to
//! `index.html`; machine routes (`/api`, `/v1`, `/mcp`, `/metrics`,
//! `/health`, `/.well-known`) and file-like paths never do, so a client
//! probing them gets a plain 404 rather than an HTML 200 (MCP clients read
//! `/.well-known/oauth-protected-resource` that way).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "$QYL_DASHBOARD_DIR"]
struct Assets;

/// Changes whenever the built files do (build.rs), so a release build
/// re-embeds a rebuilt dashboard; also part of every ETag.
const STAMP: &str = env!("QYL_DASHBOARD_STAMP");

/// Paths that belong to machines, never to the single-page app.
fn is_reserved(path: &str) -> bool {
    const PREFIXES: [&str; 6] = ["/api", "/v1", "/mcp", "/metrics", "/health", "/.well-known"];
    PREFIXES.iter().any(|p| super::is_under(path, p))
}

/// The router's fallback on the main HTTP port: a file of the dashboard, the
/// app itself for page routes, or 404.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if is_reserved(path) {
        return not_found();
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "the dashboard only answers GET and HEAD\n",
        )
            .into_response();
    }
    let name = path.trim_start_matches('/');
    let (name, file) = match Assets::get(name).filter(|_| !name.is_empty()) {
        Some(file) => (name, file),
        // A missing file (a stale asset hash, a typo'd `.js`) is a 404; only
        // extension-less page routes get the app.
        None if last_segment_has_extension(name) => return not_found(),
        None => match Assets::get("index.html") {
            Some(file) => ("index.html", file),
            None => return not_found(),
        },
    };
    let etag = format!("\"{}-{}\"", STAMP, hex(&file.metadata.sha256_hash()[..12]));
    let immutable = name.starts_with("assets/");
    let mut resp_headers = HeaderMap::new();
    resp_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp_headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        resp_headers.insert(header::CONTENT_TYPE, v);
    }
    resp_headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if name == "index.html" {
        // The app renders everything itself; no framing by other sites.
        resp_headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    let compressible = is_compressible(file.metadata.mimetype()) && file.data.len() > 512;
    if compressible {
        resp_headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return (StatusCode::NOT_MODIFIED, resp_headers).into_response();
    }
    let gz = (compressible && accepts_gzip(&headers))
        .then(|| gzipped(name, &etag, &file.data))
        .flatten();
    let body = match gz {
        Some(gz) => {
            resp_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            Body::from(bytes::Bytes::from_owner(gz))
        }
        None => Body::from(file.data.into_owned()),
    };
    if method == Method::HEAD {
        return (StatusCode::OK, resp_headers).into_response();
    }
    (StatusCode::OK, resp_headers, body).into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

fn last_segment_has_extension(name: &str) -> bool {
    name.rsplit('/').next().is_some_and(|s| s.contains('.'))
}

fn is_compressible(mime: &str) -> bool {
    mime.starts_with("text/")
        || mime.contains("javascript")
        || mime.contains("json")
        || mime.contains("svg")
        || mime.contains("xml")
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Each file is compressed once per content (the ETag names it), then served
/// from memory: the dashboard is a few hundred KB at most.
fn gzipped(name: &str, etag: &str, data: &[u8]) -> Option<Arc<[u8]>> {
    type Cache = Mutex<HashMap<String, (String, Arc<[u8]>)>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some((tag, gz)) = cache.lock().ok().and_then(|c| c.get(name).cloned()) {
        if tag == etag {
            return Some(gz);
        }
    }
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec does not fail; if it did, the file goes out as is.
    let gz: Arc<[u8]> = enc.write_all(data).and_then(|()| enc.finish()).ok()?.into();
    if let Ok(mut c) = cache.lock() {
        c.insert(name.to_string(), (etag.to_string(), gz.clone()));
    }
    Some(gz)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_routes_are_reserved_and_pages_are_not() {
        for p in [
            "/api",
            "/api/v1/nope",
            "/v1/traces",
            "/mcp",
            "/mcp/x",
            "/metrics",
            "/health",
            "/health/ready",
            "/.well-known/oauth-protected-resource",
        ] {
            assert!(is_reserved(p), "{p}");
        }
        for p in [
            "/",
            "/traces",
            "/traces/abc",
            "/metricsx",
            "/apix",
            "/login",
        ] {
            assert!(!is_reserved(p), "{p}");
        }
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&h("gzip;q=0")));
        assert!(!accepts_gzip(&h("br")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
