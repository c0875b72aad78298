//! Query-string parsing shared by the list endpoints, so `since`, `limit`,
//! `cursor` and `attr.KEY=VALUE` mean the same everywhere and a bad value is
//! a 400 naming the parameter, never silently ignored.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;

use crate::model::query::{Buckets, Cursor, PageRequest, SpanFilter};

use super::ApiError;

/// The query string as ordered pairs; a malformed one is a JSON 400 like
/// every other API error (axum's own rejection is plain text).
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| QueryPairs(pairs))
            .map_err(|e| ApiError::bad_request(format!("query string: {}", e.body_text())))
    }
}

/// The raw pairs of a query string, in order (repeated keys kept).
pub struct Params {
    pairs: Vec<(String, String)>,
    known: Vec<&'static str>,
}

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Params {
        Params {
            pairs,
            known: Vec::new(),
        }
    }

    /// The last value given for `key`, if non-empty.
    pub fn get(&mut self, key: &'static str) -> Option<String> {
        self.known.push(key);
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn parse<T: std::str::FromStr>(
        &mut self,
        key: &'static str,
    ) -> Result<Option<T>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("{key}: cannot read {v:?}"))),
        }
    }

    /// A time bound: RFC 3339 (`2026-11-23T10:00:00Z`), a duration ago
    /// (`15m`, `2h`, `7d`), `now`, or Unix milliseconds.
    pub fn time(&mut self, key: &'static str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_time(&v, SystemTime::now())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{key}: {v:?} is not a time (use RFC 3339, a duration ago like 15m or 2h, or Unix milliseconds)"
                    ))
                }),
        }
    }

    /// A duration in milliseconds (`250`, `1.5`) or with a unit (`2s`, `1m`),
    /// returned in nanoseconds.
    pub fn duration_ms(&mut self, key: &'static str) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_duration_ns(&v).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!("{key}: {v:?} is not a duration in milliseconds"))
            }),
        }
    }

    /// Every `attr.KEY=VALUE` pair.
    pub fn attrs(&mut self) -> Result<Vec<(String, String)>, ApiError> {
        let mut out = Vec::new();
        for (k, v) in &self.pairs {
            if let Some(key) = k.strip_prefix("attr.") {
                if key.is_empty() || key.contains('"') || key.contains('\\') {
                    return Err(ApiError::bad_request(format!(
                        "{k}: attribute keys may not be empty or contain quotes or backslashes"
                    )));
                }
                out.push((key.to_string(), v.clone()));
            }
        }
        Ok(out)
    }

    /// `limit` (default 50, at most `max`) and `cursor`.
    pub fn page(&mut self, max: usize) -> Result<PageRequest, ApiError> {
        let limit = self.parse::<usize>("limit")?.unwrap_or(50);
        if limit == 0 || limit > max {
            return Err(ApiError::bad_request(format!(
                "limit: must be between 1 and {max}"
            )));
        }
        let cursor =
            match self.get("cursor") {
                None => None,
                Some(c) => Some(Cursor::decode(&c).ok_or_else(|| {
                    ApiError::bad_request("cursor: not a cursor this API returned")
                })?),
            };
        Ok(PageRequest { limit, cursor })
    }

    /// The span filters shared by `/traces` and `/spans`.
    pub fn span_filter(&mut self) -> Result<SpanFilter, ApiError> {
        let status = match self.get("status") {
            None => None,
            Some(s) => Some(match s.to_ascii_uppercase().as_str() {
                "OK" => "OK".to_string(),
                "ERROR" => "ERROR".to_string(),
                "UNSET" => "UNSET".to_string(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "status: {s:?} is not one of ok, error, unset"
                    )))
                }
            }),
        };
        let kind = match self.get("kind") {
            None => None,
            Some(k) => {
                let k = k.to_ascii_uppercase();
                let k = k.strip_prefix("SPAN_KIND_").unwrap_or(&k).to_string();
                if !crate::model::SPAN_KINDS.contains(&k.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "kind: {k:?} is not a span kind"
                    )));
                }
                Some(k)
            }
        };
        let trace_id = match self.get("trace_id") {
            None => None,
            Some(t) => Some(trace_id(&t)?),
        };
        let filter = SpanFilter {
            service: self.get("service"),
            name: self.get("name"),
            status,
            kind,
            min_duration_ns: self.duration_ms("min_duration_ms")?,
            max_duration_ns: self.duration_ms("max_duration_ms")?,
            since: self.time("since")?,
            until: self.time("until")?,
            attrs: self.attrs()?,
            session_id: self.get("session_id"),
            trace_id,
        };
        if let (Some(a), Some(b)) = (filter.since, filter.until) {
            if a >= b {
                return Err(ApiError::bad_request("since: must be before until"));
            }
        }
        Ok(filter)
    }

    /// Fails on any parameter no getter asked for (typos should not widen
    /// a search silently). Call after every getter.
    pub fn reject_unknown(&self) -> Result<(), ApiError> {
        for (k, _) in &self.pairs {
            if !k.starts_with("attr.") && !self.known.contains(&k.as_str()) {
                let mut known = self.known.clone();
                known.sort_unstable();
                known.dedup();
                return Err(ApiError::bad_request(format!(
                    "unknown parameter {k:?}; this route takes {}, and attr.KEY=VALUE",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// A 32-hex-digit trace id, lowercased.
/// How a time series divides `[since, until)` into buckets, so every series
/// endpoint refuses and defaults its `step` the same way.
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    /// Without a `step`, about this many buckets…
    pub about: u64,
    /// …each a whole multiple of this (nanoseconds).
    pub unit_ns: u64,
    /// The finest `step` accepted (nanoseconds, at least 1).
    pub min_ns: u64,
    /// Buckets one answer may hold.
    pub max_buckets: u64,
}

/// Buckets a series answer may hold unless its endpoint says otherwise.
pub const MAX_STEPS: u64 = 11_000;

impl Steps {
    /// About 60 buckets on whole seconds, up to [`MAX_STEPS`].
    pub const SECONDS: Steps = Steps {
        about: 60,
        unit_ns: 1_000_000_000,
        min_ns: 1,
        max_buckets: MAX_STEPS,
    };

    /// The buckets of `[since, until)` for `given` (the `step` parameter,
    /// if any): a 400 naming `step` when it is finer than `min_ns` or makes
    /// more than `max_buckets` buckets.
    pub fn buckets(&self, given: Option<u64>, since: u64, until: u64) -> Result<Buckets, ApiError> {
        let step = match given {
            Some(0) => return Err(ApiError::bad_request("step: must be greater than 0")),
            Some(s) if s < self.min_ns => {
                return Err(ApiError::bad_request(format!(
                    "step: must be at least {} ms",
                    self.min_ns as f64 / 1e6
                )))
            }
            Some(s) => s,
            None => {
                let unit = self.unit_ns.max(1);
                ((until.saturating_sub(since)) / self.about.max(1))
                    .div_ceil(unit)
                    .max(1)
                    * unit
            }
        };
        let buckets = Buckets::covering(since, until, step);
        if buckets.count as u64 > self.max_buckets {
            return Err(ApiError::bad_request(format!(
                "step: too fine for the range ({} buckets; at most {})",
                buckets.count, self.max_buckets
            )));
        }
        Ok(buckets)
    }

    /// The bucket width alone, for queries that align buckets themselves.
    pub fn width(&self, given: Option<u64>, since: u64, until: u64) -> Result<u64, ApiError> {
        Ok(self.buckets(given, since, until)?.step)
    }
}

pub fn trace_id(text: &str) -> Result<String, ApiError> {
    hex_id(text, 32, "trace id")
}

pub fn span_id(text: &str) -> Result<String, ApiError> {
    hex_id(text, 16, "span id")
}

fn hex_id(text: &str, len: usize, what: &str) -> Result<String, ApiError> {
    let t = text.trim();
    if t.len() == len && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(t.to_ascii_lowercase())
    } else {
        Err(ApiError::bad_request(format!(
            "{text:?} is not a {what} ({len} hex digits)"
        )))
    }
}

pub(super) fn parse_time(v: &str, now: SystemTime) -> Option<u64> {
    let nanos = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as u64)
    };
    if v.eq_ignore_ascii_case("now") {
        return nanos(now);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(v) {
        return nanos(t);
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok()?.checked_mul(1_000_000);
    }
    let ago = humantime::parse_duration(v.strip_suffix(" ago").unwrap_or(v)).ok()?;
    nanos(now.checked_sub(ago)?)
}

fn parse_duration_ns(v: &str) -> Option<u64> {
    if let Ok(ms) = v.parse::<f64>() {
        return (ms.is_finite() && ms >= 0.0).then_some((ms * 1e6) as u64);
    }
    humantime::parse_duration(v)
        .ok()
        .map(|d: Duration| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_default_refuse_and_bound() {
        let min = 60_000_000_000;
        let s = Steps::SECONDS;
        // An hour: 60 one-minute buckets; 3 minutes: 3 s.
        assert_eq!(s.width(None, 0, 60 * min).unwrap(), min);
        assert_eq!(s.width(None, 0, 3 * min).unwrap(), 3_000_000_000);
        // Never below the unit.
        assert_eq!(s.width(None, 0, 10_000_000).unwrap(), 1_000_000_000);
        assert_eq!(s.width(Some(5), 0, 100).unwrap(), 5);
        assert!(s.width(Some(0), 0, 100).is_err());
        assert!(s.width(Some(1), 0, 100_000).is_err());
        let coarse = Steps {
            about: 24,
            unit_ns: min,
            min_ns: 1_000_000_000,
            max_buckets: 1000,
        };
        assert!(coarse.width(Some(999_999_999), 0, min).is_err());
        assert_eq!(coarse.width(None, 0, 24 * 60 * min).unwrap(), 60 * min);
    }

    #[test]
    fn times_are_rfc3339_relative_or_millis() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_time("15m", now),
            Some((1_000_000 - 900) * 1_000_000_000)
        );
        assert_eq!(
            parse_time("2h ago", now),
            Some((1_000_000 - 7200) * 1_000_000_000)
        );
        assert_eq!(
            parse_time("1970-01-02T00:00:00Z", now),
            Some(86_400 * 1_000_000_000)
        );
        assert_eq!(parse_time("1234", now), Some(1_234_000_000));
        assert_eq!(parse_time("yesterday-ish", now), None);
        assert_eq!(parse_duration_ns("1.5"), Some(1_500_000));
        assert_eq!(parse_duration_ns("2s"), Some(2_000_000_000));
        assert_eq!(parse_duration_ns("-1"), None);
    }

    #[test]
    fn unknown_parameters_and_bad_values_are_named() {
        let mut p = Params::new(vec![("servce".into(), "x".into())]);
        p.span_filter().unwrap();
        let e = p.reject_unknown().unwrap_err();
        assert!(e.message.contains("servce"), "{}", e.message);

        let mut p = Params::new(vec![("limit".into(), "0".into())]);
        assert!(p.page(100).unwrap_err().message.contains("limit"));
        let mut p = Params::new(vec![("status".into(), "bad".into())]);
        assert!(p.span_filter().unwrap_err().message.contains("status"));
        assert!(trace_id("xyz").is_err());
        assert_eq!(trace_id(&"AB".repeat(16)).unwrap(), "ab".repeat(16));
    }
}
