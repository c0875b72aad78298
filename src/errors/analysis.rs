//! Evidence about an error group that both the MCP tools and automatic
//! triage present: its exception chain with the application's own frames
//! first, the groups that look like it, and what is different about its
//! recent failures against a baseline (`what_changed`). Everything here
//! reads through the [`Store`], from samples, so it answers quickly on any
//! amount of data; how it is shown (capped, cut, linked) is the caller's.

use std::collections::BTreeMap;

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stacktrace::StackTrace;
use crate::model::errors::{ErrorEventRow, ErrorGroupDetail, ErrorGroupRow, ErrorQuery, ErrorSort};
use crate::model::now_unix_nano;
use crate::model::query::{PageRequest, SpanFilter, SpanQuery, SpanRow};
use crate::storage::{QueryError, Store};

// ---- exception chains

/// A stack frame.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Frame {
    pub module: Option<String>,
    pub function: Option<String>,
    pub path: Option<String>,
    pub line: Option<i64>,
    pub column: Option<i64>,
    /// The application's own code rather than a dependency's.
    #[serde(default)]
    pub in_app: bool,
    /// Position in the stack as sent (0 = innermost).
    #[serde(default)]
    pub index: usize,
}

/// One exception of the chain, its in-app frames first.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Exception {
    pub type_name: Option<String>,
    pub message: Option<String>,
    #[serde(default)]
    pub frames: Vec<Frame>,
}

/// The exception chain of a stack trace as error events store it (the
/// parsed [`StackTrace`] as JSON), with in-app frames before the others
/// (each keeps its original position in `index`). Callers cap it for their
/// readers.
pub fn exception_chain(frames: Option<&Value>) -> Vec<Exception> {
    let Some(trace) = frames.and_then(|f| serde_json::from_value::<StackTrace>(f.clone()).ok())
    else {
        return Vec::new();
    };
    let named = |s: String| Some(s).filter(|s| !s.is_empty());
    trace
        .exceptions
        .into_iter()
        .map(|e| {
            let mut frames: Vec<Frame> = e
                .frames
                .into_iter()
                .enumerate()
                .map(|(index, f)| Frame {
                    module: named(f.module),
                    function: named(f.function),
                    path: f.path,
                    line: f.line.map(i64::from),
                    column: f.column.map(i64::from),
                    in_app: f.in_app,
                    index,
                })
                .collect();
            frames.sort_by_key(|f| !f.in_app);
            Exception {
                type_name: e.type_name,
                message: e.message,
                frames,
            }
        })
        .collect()
}

// ---- similar groups

/// Groups compared at most, and found per search.
pub const SIMILAR_CANDIDATES: usize = 40;
const SIMILAR_PER_SEARCH: usize = 20;

/// A group like the one asked about, and why.
#[derive(Debug, Clone)]
pub struct Similar {
    pub group: ErrorGroupRow,
    /// 0 to 1: fingerprint parts shared (weight 0.6) and message template
    /// words shared (weight 0.4).
    pub score: f64,
    /// Fingerprint parts (type, frames, message…) both groups have.
    pub shared_parts: Vec<String>,
    /// Word overlap of the message templates (Jaccard, 0 to 1).
    pub message_similarity: f64,
}

/// The words of a message template, its placeholders (`<num>`…) among them,
/// so two templates that differ only in text around the same values match.
fn words(template: Option<&str>) -> std::collections::BTreeSet<String> {
    template
        .unwrap_or("")
        .split(|c: char| !c.is_alphanumeric() && !"_<>".contains(c))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn jaccard<T: Ord>(a: &std::collections::BTreeSet<T>, b: &std::collections::BTreeSet<T>) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(b).count() as f64 / union as f64
}

/// Groups like `target`, most similar first, at most `limit`, and the ids
/// compared (at most `max_candidates`, found by type, culprit and message
/// words).
pub async fn similar_groups(
    store: &Store,
    target: &ErrorGroupDetail,
    limit: usize,
    max_candidates: usize,
) -> Result<(Vec<Similar>, Vec<i64>), QueryError> {
    let t = &target.group;
    // Searches the store can answer: the type, the culprit, and the
    // longest words of the message template.
    let mut searches: Vec<String> = Vec::new();
    searches.extend(t.error_type.clone());
    searches.extend(t.culprit.clone());
    let mut long_words: Vec<String> = words(t.message_template.as_deref()).into_iter().collect();
    long_words.sort_by_key(|w| std::cmp::Reverse(w.len()));
    searches.extend(
        long_words
            .into_iter()
            .filter(|w| w.len() >= 4 && !w.starts_with('<'))
            .take(2),
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut candidates = Vec::new();
    for q in searches {
        let found = store
            .list_errors(ErrorQuery {
                q: Some(q),
                sort: ErrorSort::Count,
                page: PageRequest {
                    limit: SIMILAR_PER_SEARCH,
                    cursor: None,
                },
                now_unix_nano: now_unix_nano(),
                ..ErrorQuery::default()
            })
            .await?;
        for g in found.items {
            if g.id != t.id && candidates.len() < max_candidates && seen.insert(g.id) {
                candidates.push(g.id);
            }
        }
    }
    let parts: std::collections::BTreeSet<String> = target
        .fingerprint_explanation
        .components
        .iter()
        .cloned()
        .collect();
    let target_words = words(t.message_template.as_deref());
    let mut similar = Vec::new();
    for id in &candidates {
        let Some(other) = store.get_error(*id, now_unix_nano()).await? else {
            continue;
        };
        let other_parts: std::collections::BTreeSet<String> = other
            .fingerprint_explanation
            .components
            .iter()
            .cloned()
            .collect();
        let shared: Vec<String> = parts.intersection(&other_parts).cloned().collect();
        let message_similarity = jaccard(
            &target_words,
            &words(other.group.message_template.as_deref()),
        );
        let score = 0.6 * jaccard(&parts, &other_parts) + 0.4 * message_similarity;
        if score > 0.0 {
            similar.push(Similar {
                group: other.group,
                score: (score * 1000.0).round() / 1000.0,
                shared_parts: shared,
                message_similarity: (message_similarity * 1000.0).round() / 1000.0,
            });
        }
    }
    similar.sort_by(|x, y| y.score.total_cmp(&x.score));
    similar.truncate(limit);
    Ok((similar, candidates))
}

// ---- what changed

/// Largest sample on each side.
pub const SAMPLE: usize = 1000;
/// Services of a group whose spans make its baseline.
pub const GROUP_SERVICES: usize = 3;
/// A value counts as changed when its share among failures is at least
/// this much above its share in the baseline...
const MIN_SHARE_GAIN: f64 = 0.2;
/// ...and it occurs in at least this many failures.
const MIN_FAILURES: u64 = 2;

/// A value over-represented among the failures.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChangedValue {
    /// `release`, `environment`, `service`, `host`, `model`,
    /// `prompt_version`, `span` or `user`.
    pub key: String,
    pub value: String,
    pub failing_count: u64,
    /// Share of the failures that have this value.
    pub failing_share: f64,
    pub baseline_count: u64,
    pub baseline_share: f64,
    /// failing_share / baseline_share; null when the baseline never had it.
    pub lift: Option<f64>,
    /// True when the baseline never had the value: new in the window.
    pub new_value: bool,
}

/// The values of one failure or baseline span, by key.
pub type Values = Vec<(&'static str, String)>;

/// The model without a snapshot date (`gpt-4o-mini-2024-07-18` →
/// `gpt-4o-mini`), as error groups keep it.
pub fn model_family(model: &str) -> String {
    let b = model.as_bytes();
    let dated = b.len() > 11
        && b[b.len() - 11] == b'-'
        && model[b.len() - 10..].bytes().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if dated {
        model[..b.len() - 11].to_string()
    } else {
        model.to_string()
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn span_values(s: &SpanRow) -> Values {
    let mut out: Values = Vec::new();
    out.push(("service", s.service_name.clone()));
    out.push(("span", s.name.clone()));
    if let Some(v) = &s.service_version {
        out.push(("release", v.clone()));
    }
    if let Some(e) = &s.deployment_environment {
        out.push(("environment", e.clone()));
    }
    if let Some(g) = &s.gen_ai {
        if let Some(m) = g.response_model.as_ref().or(g.request_model.as_ref()) {
            out.push(("model", model_family(m)));
        }
    }
    let resource: Value = serde_json::from_str(s.resource.get()).unwrap_or(Value::Null);
    if let Some(h) = resource.get("host.name").and_then(text_of) {
        out.push(("host", h));
    }
    let attrs: Value = serde_json::from_str(s.attributes.get()).unwrap_or(Value::Null);
    for k in ["user.id", "enduser.id"] {
        if let Some(u) = attrs.get(k).and_then(text_of) {
            out.push(("user", u));
            break;
        }
    }
    // Prompt versions go by several names; any attribute that names one.
    if let Value::Object(map) = &attrs {
        if let Some(v) = map.iter().find_map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            (k.contains("prompt") && k.contains("version"))
                .then(|| text_of(v))
                .flatten()
        }) {
            out.push(("prompt_version", v));
        }
    }
    out
}

pub fn event_values(e: &ErrorEventRow) -> Values {
    let mut out: Values = vec![("service", e.service_name.clone())];
    if let Some(v) = &e.release {
        out.push(("release", v.clone()));
    }
    if let Some(v) = &e.environment {
        out.push(("environment", v.clone()));
    }
    if let Some(v) = &e.gen_ai_model {
        out.push(("model", model_family(v)));
    }
    if let Some(v) = &e.user {
        out.push(("user", v.clone()));
    }
    out
}

fn count(sample: &[Values]) -> BTreeMap<(&'static str, String), u64> {
    let mut out = BTreeMap::new();
    for values in sample {
        for (k, v) in values {
            *out.entry((*k, v.clone())).or_default() += 1;
        }
    }
    out
}

/// Values whose share among failures rose by at least [`MIN_SHARE_GAIN`],
/// over the keys both samples can have.
pub fn compare(failing: &[Values], baseline: &[Values]) -> Vec<ChangedValue> {
    if failing.is_empty() {
        return Vec::new();
    }
    let f = count(failing);
    let b = count(baseline);
    let (nf, nb) = (failing.len() as f64, baseline.len().max(1) as f64);
    let mut out: Vec<ChangedValue> = f
        .iter()
        .filter_map(|((key, value), &fc)| {
            let bc = b.get(&(*key, value.clone())).copied().unwrap_or(0);
            let (fs, bs) = (fc as f64 / nf, bc as f64 / nb);
            (fc >= MIN_FAILURES && fs - bs >= MIN_SHARE_GAIN).then(|| ChangedValue {
                key: key.to_string(),
                value: value.clone(),
                failing_count: fc,
                failing_share: (fs * 1000.0).round() / 1000.0,
                baseline_count: bc,
                baseline_share: (bs * 1000.0).round() / 1000.0,
                lift: (bc > 0).then(|| ((fs / bs) * 100.0).round() / 100.0),
                new_value: bc == 0 && !baseline.is_empty(),
            })
        })
        .collect();
    out.sort_by(|x, y| {
        (y.failing_share - y.baseline_share).total_cmp(&(x.failing_share - x.baseline_share))
    });
    out.truncate(20);
    out
}

/// The newest spans matching `filter`, at most [`SAMPLE`].
pub async fn span_sample(store: &Store, filter: SpanFilter) -> Result<Vec<SpanRow>, QueryError> {
    Ok(store
        .query_spans(SpanQuery {
            filter,
            page: PageRequest {
                limit: SAMPLE,
                cursor: None,
            },
        })
        .await?
        .items)
}

/// The values of group `id`'s events since `since`, newest first, at most
/// [`SAMPLE`].
pub async fn group_failures(store: &Store, id: i64, since: u64) -> Result<Vec<Values>, QueryError> {
    let mut events: Vec<ErrorEventRow> = Vec::new();
    let mut cursor = None;
    // Newest first: read until the window's start.
    'pages: loop {
        let page = store
            .error_events(id, PageRequest { limit: 200, cursor })
            .await?;
        for e in page.items {
            if e.time_unix_nano.parse::<u64>().unwrap_or(0) < since || events.len() >= SAMPLE {
                break 'pages;
            }
            events.push(e);
        }
        match page
            .next_cursor
            .and_then(|c| crate::model::query::Cursor::decode(&c))
        {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(events.iter().map(event_values).collect())
}

/// The values of the spans of `services` between `since` and `until`.
pub async fn baseline_values(
    store: &Store,
    services: &[String],
    since: u64,
    until: u64,
) -> Result<Vec<Values>, QueryError> {
    let mut out: Vec<Values> = Vec::new();
    for service in services {
        let spans = span_sample(
            store,
            SpanFilter {
                service: Some(service.clone()),
                since: Some(since),
                until: Some(until),
                ..SpanFilter::default()
            },
        )
        .await?;
        out.extend(spans.iter().map(span_values));
    }
    Ok(out)
}

/// What changed for one error group over the `window_ns` before `now`
/// against the `baseline_ns` before that. Returns the changed values and the
/// failing and baseline sample sizes.
pub async fn group_changes(
    store: &Store,
    group: &ErrorGroupRow,
    window_ns: u64,
    baseline_ns: u64,
    now: u64,
) -> Result<(Vec<ChangedValue>, usize, usize), QueryError> {
    let since = now.saturating_sub(window_ns);
    let failing = group_failures(store, group.id, since).await?;
    let services: Vec<String> = group
        .services
        .iter()
        .take(GROUP_SERVICES)
        .cloned()
        .collect();
    let baseline =
        baseline_values(store, &services, since.saturating_sub(baseline_ns), since).await?;
    Ok((compare(&failing, &baseline), failing.len(), baseline.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_dates_are_dropped() {
        assert_eq!(model_family("gpt-4o-mini-2024-07-18"), "gpt-4o-mini");
        assert_eq!(model_family("gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(
            model_family("claude-3-5-sonnet-20241022"),
            "claude-3-5-sonnet-20241022"
        );
    }

    #[test]
    fn over_represented_values_are_found() {
        let v = |release: &str, host: &str| -> Values {
            vec![("release", release.into()), ("host", host.into())]
        };
        let failing = vec![v("2.0", "a"), v("2.0", "b"), v("2.0", "a"), v("1.9", "b")];
        let baseline = vec![v("1.9", "a"), v("1.9", "b"), v("1.9", "a"), v("1.9", "b")];
        let changed = compare(&failing, &baseline);
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(
            (changed[0].key.as_str(), changed[0].value.as_str()),
            ("release", "2.0")
        );
        assert!(changed[0].new_value);
        assert_eq!(changed[0].failing_share, 0.75);
    }
}
