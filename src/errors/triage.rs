//! Automatic triage: when an error group becomes new, regressed or
//! escalating, a report on it is written without anyone asking, so whoever
//! (or whatever assistant) looks at the group first starts from evidence
//! rather than from a bare stack trace.
//!
//! The deterministic part always: the suspected cause (the innermost in-app
//! frame), the GenAI class and what it says about the provider, the first
//! release and the deploy right before the first event, `what_changed`,
//! who and what is affected, similar groups, and next steps derived from
//! those. When `[triage]` names an OpenAI-compatible endpoint, a model
//! writes a short summary from the report: the prompt is bounded and has
//! secrets redacted, calls are rate-limited and time-limited, and a failure
//! is recorded on the report (`summary_error`) instead of being retried.
//!
//! None of it runs on the ingest path. A task consumes the hub's `error`
//! records into a small queue that coalesces per group and drops past its
//! size; another builds reports one at a time from the `Store` (the same
//! reads as the MCP tools) and sends them through the writer, which stores
//! them (`storage::writer::derived::triage`) and publishes them again as `error` records
//! with `change: "triaged"` and the report attached.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use regex::Regex;
use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

use crate::config::TriageConfig;
use crate::errors::analysis::{
    exception_chain, group_changes, similar_groups, ChangedValue, Exception,
};
use crate::model::errors::{ErrorEventRow, ErrorGroupEvent, GroupChange, ReleaseRow};
use crate::model::now_unix_nano;
use crate::model::query::{rfc3339, PageRequest};
use crate::model::{Batch, Record};
use crate::storage::writer::WriterHandle;
use crate::storage::Store;
use crate::stream::hub::RecvError;
use crate::stream::Hub;

/// Group changes waiting for a report; past this, new ones are dropped (a
/// burst of new groups is an incident of its own, and reports on the first
/// ones are the useful part).
const QUEUE: usize = 64;
/// The same change of the same group is triaged again only after this long
/// (an escalating group may be published every hour).
const REPEAT_AFTER: Duration = Duration::from_secs(600);
/// The failing window of `what_changed` and its baseline before it.
const CHANGE_WINDOW: Duration = Duration::from_secs(3600);
const CHANGE_BASELINE: Duration = Duration::from_secs(24 * 3600);
/// Events read for the affected users, sessions and models.
const EVENT_SAMPLE: usize = 100;
/// Ids of users and sessions a report names.
const IDS: usize = 5;
/// Reports are built at most this often: the reads behind one (events,
/// span samples for `what_changed`, similar groups) share the machine with
/// ingest, and a burst of new groups waits in (or overflows) the queue
/// rather than turning into a burst of queries.
const MIN_GAP: Duration = Duration::from_secs(1);
/// Groups compared for "similar groups" (the MCP tool compares more).
const SIMILAR_CANDIDATES: usize = 10;
/// Reading the evidence for one report is given up after this long.
const BUILD_DEADLINE: Duration = Duration::from_secs(30);
/// GenAI classes that point at the provider rather than the request.
const PROVIDER_SIDE: &[&str] = &["rate_limited", "overloaded", "timeout"];

/// The innermost in-app frame of the latest event: where to start reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct SuspectedCause {
    /// `path:function:line`.
    pub frame: String,
    pub path: Option<String>,
    pub function: Option<String>,
    pub module: Option<String>,
    pub line: Option<i64>,
    pub exception_type: Option<String>,
    pub exception_message: Option<String>,
}

/// What the GenAI classification says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct GenAiTriage {
    /// `rate_limited`, `context_length_exceeded`, `auth`, …
    pub class: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub operation: Option<String>,
    /// True for classes that point at the provider (rate limits, overload,
    /// timeouts) rather than at the request.
    pub provider_side: bool,
    /// Other GenAI error groups of the same provider seen in the last hour.
    pub provider_groups_last_hour: usize,
    /// One sentence on the provider's state.
    pub provider_status: String,
}

/// The release seen (or deployed) last before the group's first event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct DeployBefore {
    pub version: String,
    pub service: String,
    pub environment: Option<String>,
    pub at: String,
    /// `deploy` (recorded by CI) or `telemetry` (first seen in data).
    pub source: String,
    /// Seconds from it to the group's first event.
    pub seconds_before_first_event: u64,
}

/// A value over-represented among the group's recent failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct Changed {
    pub key: String,
    pub value: String,
    pub failing_share: f64,
    pub baseline_share: f64,
    pub new_value: bool,
}

/// Who and what the group hits.
#[derive(
    Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
pub struct Affected {
    pub events: u64,
    pub users: u64,
    /// Distinct sessions among the sampled events.
    pub sessions: usize,
    pub events_sampled: usize,
    pub user_ids: Vec<String>,
    pub session_ids: Vec<String>,
    pub models: Vec<String>,
    pub services: Vec<String>,
}

/// A group like this one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct SimilarBrief {
    pub id: i64,
    pub title: String,
    pub score: f64,
}

/// A triage report on an error group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct TriageReport {
    pub group_id: i64,
    /// The change that asked for it: `new`, `regressed` or `escalating`.
    pub change: String,
    pub created_at: String,
    pub created_unix_nano: u64,
    /// `KeyError: 'u-<n>'`.
    pub title: String,
    pub suspected_cause: Option<SuspectedCause>,
    pub genai: Option<GenAiTriage>,
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    pub deploy_before_first_event: Option<DeployBefore>,
    /// `what_changed` over the last hour against the 24 hours before
    /// (empty when the baseline holds no spans: everything would look new).
    #[serde(default)]
    pub what_changed: Vec<Changed>,
    /// Spans of the group's services in that baseline.
    #[serde(default)]
    pub baseline_spans: usize,
    #[serde(default)]
    pub affected: Affected,
    #[serde(default)]
    pub similar: Vec<SimilarBrief>,
    #[serde(default)]
    pub next_steps: Vec<String>,
    /// The report as Markdown.
    pub text: String,
    /// A model-written summary (`[triage] endpoint`).
    pub summary: Option<String>,
    pub summary_model: Option<String>,
    /// Why there is no summary although one was asked for.
    pub summary_error: Option<String>,
}

/// Everything a report is made of, read from the store.
pub struct Evidence {
    pub event: ErrorGroupEvent,
    pub group: crate::model::errors::ErrorGroupRow,
    pub exceptions: Vec<Exception>,
    pub events: Vec<ErrorEventRow>,
    pub releases: Vec<ReleaseRow>,
    pub changed: Vec<ChangedValue>,
    /// Spans sampled in the `what_changed` baseline.
    pub baseline_spans: usize,
    pub similar: Vec<SimilarBrief>,
    pub provider_groups_last_hour: usize,
    pub now: u64,
}

/// The innermost in-app frame of the first exception that has one.
pub fn suspected_cause(exceptions: &[Exception]) -> Option<SuspectedCause> {
    exceptions.iter().find_map(|e| {
        let f = e
            .frames
            .iter()
            .filter(|f| f.in_app)
            .min_by_key(|f| f.index)?;
        Some(SuspectedCause {
            frame: format!(
                "{}:{}:{}",
                f.path.as_deref().or(f.module.as_deref()).unwrap_or("?"),
                f.function.as_deref().unwrap_or("?"),
                f.line.map(|l| l.to_string()).unwrap_or_else(|| "?".into())
            ),
            path: f.path.clone(),
            function: f.function.clone(),
            module: f.module.clone(),
            line: f.line,
            exception_type: e.type_name.clone(),
            exception_message: e.message.as_deref().map(|m| cut(m, 500)),
        })
    })
}

/// The release of the group's service (and environment) first seen last
/// at or before `first_seen`.
pub fn deploy_before(releases: &[ReleaseRow], first_seen: u64) -> Option<DeployBefore> {
    releases
        .iter()
        .filter_map(|r| Some((r.first_seen_unix_nano.parse::<u64>().ok()?, r)))
        .filter(|(at, _)| *at <= first_seen)
        // A recorded deploy wins over telemetry of the same instant.
        .max_by_key(|(at, r)| (*at, r.source == "deploy"))
        .map(|(at, r)| DeployBefore {
            version: r.version.clone(),
            service: r.service_name.clone(),
            environment: r.environment.clone(),
            at: rfc3339(at),
            source: r.source.clone(),
            seconds_before_first_event: (first_seen - at) / 1_000_000_000,
        })
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…[cut]", &s[..i]),
        None => s.to_string(),
    }
}

fn provider_status(class: Option<&str>, provider: &str, others: usize) -> (bool, String) {
    let side = class.is_some_and(|c| PROVIDER_SIDE.contains(&c));
    let text = match (side, others) {
        (true, 0) => format!("{provider} is refusing or slow for this group only ({}); no other {provider} error group in the last hour", class.unwrap_or("?")),
        (true, n) => format!("{provider} looks degraded: {} here and {n} other {provider} error group(s) in the last hour", class.unwrap_or("?")),
        (false, 0) => format!("{provider} answered: the request itself was refused ({}); no other {provider} error group in the last hour", class.unwrap_or("other")),
        (false, n) => format!("{provider} answered: the request itself was refused ({}); {n} other {provider} error group(s) in the last hour", class.unwrap_or("other")),
    };
    (side, text)
}

fn genai_step(class: &str, provider: &str, model: &str) -> Option<String> {
    Some(match class {
        "rate_limited" => format!("Rate limited by {provider}: add retries with backoff and jitter, lower concurrency, or raise the quota for {model}."),
        "context_length_exceeded" => format!("The prompt outgrew {model}'s context: trim the history or retrieved context, or route long inputs to a larger-context model."),
        "content_filtered" => "The provider's content filter refused the input or output: look at the prompt of the failing call (get_span) and handle the refusal.".into(),
        "auth" => format!("Authentication with {provider} failed: check the API key the service uses (rotated, expired, wrong project)."),
        "timeout" | "overloaded" => format!("{provider} was slow or overloaded: set a client timeout with retries, and a fallback model for {model}."),
        "invalid_request" => format!("{provider} rejected the request: compare its parameters (model name, tools schema, max_tokens) with what {model} accepts."),
        "tool_error" => "A tool the model called failed: open the failing tool span in the trace and fix the tool or validate its arguments.".into(),
        "output_parse_error" => "The model's output did not parse: use structured outputs / JSON mode or make the parser tolerant, and log the raw output.".into(),
        "truncated" => format!("{model}'s answers are cut off: raise max_tokens or ask for shorter output."),
        _ => return None,
    })
}

/// The deterministic report from its evidence.
pub fn assemble(ev: &Evidence) -> TriageReport {
    let g = &ev.group;
    let title = match (&g.error_type, &g.message_template) {
        (Some(t), Some(m)) => format!("{t}: {}", cut(m, 200)),
        (Some(t), None) => t.clone(),
        (None, Some(m)) => cut(m, 200),
        (None, None) => g.culprit.clone().unwrap_or_else(|| "(no message)".into()),
    };
    let cause = suspected_cause(&ev.exceptions);
    let genai = g.gen_ai.as_ref().map(|x| {
        let provider = x.provider.clone().unwrap_or_else(|| "the provider".into());
        let (side, status) = provider_status(
            x.error_class.as_deref(),
            &provider,
            ev.provider_groups_last_hour,
        );
        GenAiTriage {
            class: x.error_class.clone(),
            provider: x.provider.clone(),
            model: x.model.clone(),
            operation: x.operation.clone(),
            provider_side: side,
            provider_groups_last_hour: ev.provider_groups_last_hour,
            provider_status: status,
        }
    });
    let first_seen = g.first_seen_unix_nano.parse::<u64>().unwrap_or(0);
    let deploy = deploy_before(&ev.releases, first_seen);
    let what_changed: Vec<Changed> = ev
        .changed
        .iter()
        .filter(|_| ev.baseline_spans > 0)
        .take(8)
        .map(|c| Changed {
            key: c.key.clone(),
            value: c.value.clone(),
            failing_share: c.failing_share,
            baseline_share: c.baseline_share,
            new_value: c.new_value,
        })
        .collect();
    let distinct = |f: &dyn Fn(&ErrorEventRow) -> Option<&String>| -> Vec<String> {
        let mut seen = BTreeSet::new();
        ev.events
            .iter()
            .filter_map(f)
            .filter(|v| seen.insert(v.as_str()))
            .cloned()
            .collect()
    };
    let sessions = distinct(&|e| e.session_id.as_ref());
    let models = distinct(&|e| e.gen_ai_model.as_ref());
    let mut user_ids = g.users.clone();
    if user_ids.is_empty() {
        user_ids = distinct(&|e| e.user.as_ref());
    }
    user_ids.truncate(IDS);
    let affected = Affected {
        events: g.count,
        users: g.user_count,
        sessions: sessions.len(),
        events_sampled: ev.events.len(),
        user_ids,
        session_ids: sessions.iter().take(IDS).cloned().collect(),
        models: models.into_iter().take(IDS).collect(),
        services: g.services.clone(),
    };

    let mut steps: Vec<String> = Vec::new();
    if let Some(c) = &cause {
        steps.push(format!(
            "Read {} first: the innermost frame of your own code when {} was raised.",
            c.frame,
            c.exception_type.as_deref().unwrap_or("the error")
        ));
    }
    if let (Some(x), Some(gen)) = (g.gen_ai.as_ref(), genai.as_ref()) {
        if let Some(step) = x.error_class.as_deref().and_then(|c| {
            genai_step(
                c,
                x.provider.as_deref().unwrap_or("the provider"),
                x.model.as_deref().unwrap_or("the model"),
            )
        }) {
            steps.push(step);
        }
        if gen.provider_side && gen.provider_groups_last_hour > 0 {
            steps.push(format!(
                "Check {}'s status page: other GenAI error groups of it failed in the last hour too.",
                x.provider.as_deref().unwrap_or("the provider")
            ));
        }
    }
    match ev.event.change {
        GroupChange::Regressed => steps.push(format!(
            "It was resolved{} and came back in {}: diff that release against the fix.",
            g.resolved_in_release
                .as_deref()
                .map(|r| format!(" in {r}"))
                .unwrap_or_default(),
            g.last_release.as_deref().unwrap_or("a later release")
        )),
        GroupChange::Escalating => steps.push(format!(
            "The rate jumped ({} events so far): check whether traffic, a release or one host changed in the last hour.",
            g.count
        )),
        _ => {}
    }
    if let Some(d) = &deploy {
        if d.seconds_before_first_event <= 24 * 3600 {
            steps.push(format!(
                "Release {} of {} {} {}s before the first event: review its changes and roll back if the error rate rose.",
                d.version,
                d.service,
                if d.source == "deploy" { "was deployed" } else { "was first seen" },
                d.seconds_before_first_event
            ));
        }
    }
    if let Some(c) = what_changed.first() {
        steps.push(format!(
            "{}={} is over-represented ({:.0}% of recent failures vs {:.0}% before){}: start there.",
            c.key,
            c.value,
            c.failing_share * 100.0,
            c.baseline_share * 100.0,
            if c.new_value { ", new in the last hour" } else { "" }
        ));
    }
    if let Some(s) = affected.session_ids.first() {
        steps.push(format!(
            "Replay session {s} (get_conversation) to see what led up to the error."
        ));
    } else if let Some(t) = ev.events.iter().find_map(|e| e.trace_id.as_ref()) {
        steps.push(format!(
            "Open trace {t} (get_trace) around the failing span."
        ));
    }
    if let Some(s) = ev.similar.iter().find(|s| s.score >= 0.5) {
        steps.push(format!(
            "Group #{} looks like the same bug (similarity {:.2}): merge it into this one if so.",
            s.id, s.score
        ));
    }
    steps.push(
        "Once fixed, resolve it in the next release so a recurrence reopens it as regressed."
            .into(),
    );

    let now = ev.now;
    let mut report = TriageReport {
        group_id: g.id,
        change: ev.event.change.as_str().to_string(),
        created_at: rfc3339(now),
        created_unix_nano: now,
        title,
        suspected_cause: cause,
        genai,
        first_release: g.first_release.clone(),
        last_release: g.last_release.clone(),
        deploy_before_first_event: deploy,
        what_changed,
        baseline_spans: ev.baseline_spans,
        affected,
        similar: ev.similar.clone(),
        next_steps: steps,
        text: String::new(),
        summary: None,
        summary_model: None,
        summary_error: None,
    };
    report.text = render(&report);
    report
}

/// The report as Markdown (without the model summary).
pub fn render(r: &TriageReport) -> String {
    let mut t = format!(
        "## Triage of error group #{} ({})\n\n**{}**\n\n",
        r.group_id, r.change, r.title
    );
    match &r.suspected_cause {
        Some(c) => t.push_str(&format!(
            "- **Suspected cause:** `{}`{}\n",
            c.frame,
            match (&c.exception_type, &c.exception_message) {
                (Some(ty), Some(m)) => format!(" raising {ty}: {m}"),
                (Some(ty), None) => format!(" raising {ty}"),
                _ => String::new(),
            }
        )),
        None => t.push_str("- **Suspected cause:** no in-app frame in the latest event\n"),
    }
    if let Some(gen) = &r.genai {
        t.push_str(&format!(
            "- **GenAI:** {} on {} ({}); {}\n",
            gen.class.as_deref().unwrap_or("other"),
            gen.model.as_deref().unwrap_or("?"),
            gen.provider.as_deref().unwrap_or("?"),
            gen.provider_status
        ));
    }
    t.push_str(&format!(
        "- **Releases:** first seen in {}, last in {}",
        r.first_release.as_deref().unwrap_or("-"),
        r.last_release.as_deref().unwrap_or("-")
    ));
    if let Some(d) = &r.deploy_before_first_event {
        t.push_str(&format!(
            "; before the first event: {} of {} ({}, {}s before, at {})",
            d.version, d.service, d.source, d.seconds_before_first_event, d.at
        ));
    }
    t.push('\n');
    if r.baseline_spans == 0 {
        t.push_str("- **What changed (1h vs 24h before):** no baseline (no spans of these services in the 24h before)\n");
    } else if r.what_changed.is_empty() {
        t.push_str("- **What changed (1h vs 24h before):** nothing stands out\n");
    } else {
        t.push_str("- **What changed (1h vs 24h before):**\n");
        for c in &r.what_changed {
            t.push_str(&format!(
                "  - {}={}: {:.0}% of failures vs {:.0}% of baseline{}\n",
                c.key,
                c.value,
                c.failing_share * 100.0,
                c.baseline_share * 100.0,
                if c.new_value { " (new)" } else { "" }
            ));
        }
    }
    let a = &r.affected;
    t.push_str(&format!(
        "- **Affected:** {} events, {} users{}, {} sessions in the last {} events{}{}\n",
        a.events,
        a.users,
        list(&a.user_ids),
        a.sessions,
        a.events_sampled,
        list(&a.session_ids),
        if a.models.is_empty() {
            String::new()
        } else {
            format!(", models {}", a.models.join(", "))
        }
    ));
    if !r.similar.is_empty() {
        t.push_str("- **Similar groups:**");
        for s in &r.similar {
            t.push_str(&format!(" #{} ({:.2}) {};", s.id, s.score, s.title));
        }
        t.push('\n');
    }
    t.push_str("\n**Next steps**\n\n");
    for (i, s) in r.next_steps.iter().enumerate() {
        t.push_str(&format!("{}. {s}\n", i + 1));
    }
    t
}

fn list(ids: &[String]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(" ({})", ids.join(", "))
    }
}

/// Reads the evidence for a report on `event`'s group; `None` when the group
/// is gone (merged away or deleted).
pub async fn build(
    store: &Store,
    event: &ErrorGroupEvent,
    now: u64,
) -> anyhow::Result<Option<TriageReport>> {
    let id = event.group_id;
    let Some(detail) = store.get_error(id, now).await? else {
        return Ok(None);
    };
    let events = store
        .error_events(
            id,
            PageRequest {
                limit: EVENT_SAMPLE,
                cursor: None,
            },
        )
        .await?
        .items;
    let latest = match events.first() {
        Some(e) => store.error_event(id, e.event_id.clone()).await?,
        None => None,
    };
    let exceptions = exception_chain(latest.as_ref().and_then(|e| e.frames.as_ref()));
    let g = &detail.group;
    let service = g
        .services
        .first()
        .cloned()
        .unwrap_or_else(|| event.service_name.clone());
    let releases = store
        .releases(Some(service), g.last_environment.clone(), 200)
        .await?;
    let (changed, _, baseline_spans) = group_changes(
        store,
        g,
        CHANGE_WINDOW.as_nanos() as u64,
        CHANGE_BASELINE.as_nanos() as u64,
        now,
    )
    .await?;
    let (similar, _) = similar_groups(store, &detail, 5, SIMILAR_CANDIDATES).await?;
    let similar = similar
        .into_iter()
        .map(|s| SimilarBrief {
            id: s.group.id,
            title: match (&s.group.error_type, &s.group.message_template) {
                (Some(t), Some(m)) => format!("{t}: {}", cut(m, 120)),
                (Some(t), None) => t.clone(),
                (None, m) => cut(m.as_deref().unwrap_or("(no message)"), 120),
            },
            score: s.score,
        })
        .collect();
    let provider = g.gen_ai.as_ref().and_then(|x| x.provider.clone());
    let provider_groups_last_hour = match provider {
        Some(p) => store
            .list_errors(crate::model::errors::ErrorQuery {
                category: Some("genai".into()),
                since: Some(now.saturating_sub(CHANGE_WINDOW.as_nanos() as u64)),
                page: PageRequest {
                    limit: 100,
                    cursor: None,
                },
                now_unix_nano: now,
                ..Default::default()
            })
            .await?
            .items
            .iter()
            .filter(|o| {
                o.id != id
                    && o.gen_ai
                        .as_ref()
                        .is_some_and(|x| x.provider.as_deref() == Some(&p))
            })
            .count(),
        None => 0,
    };
    let evidence = Evidence {
        event: event.clone(),
        group: detail.group.clone(),
        exceptions,
        events,
        releases,
        changed,
        baseline_spans,
        similar,
        provider_groups_last_hour,
        now,
    };
    Ok(Some(assemble(&evidence)))
}

static JWT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\beyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*")
        .expect("JWT pattern compiles")
});
static SHORT_KEYS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:sk|pk|rk)[-_](?:live|test|proj|ant)?[-_]?[A-Za-z0-9_\-]{6,}|\b(?:AKIA|ASIA)[0-9A-Z]{12,}")
        .expect("key pattern compiles")
});
/// `<anything with token/secret/password/key/authorization/credential in
/// its name>` followed by `=` or `:` and a value.
static SECRET_KV: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)([A-Za-z0-9_.\-]*(?:token|secret|passw|key|authorization|credential|cookie)[A-Za-z0-9_.\-]*["']?\s*[=:]\s*["']?)(?:(?:bearer|basic)\s+)?[^\s"',;&()<>*\[\]]+"#,
    )
    .expect("secret pattern compiles")
});

/// The text with API keys, bearer tokens, JWTs, AWS keys and the values of
/// anything named like a secret replaced by `<redacted>`: stricter than
/// what storage redacts, because this leaves the machine.
pub fn redact_for_model(text: &str, api_key: &str) -> String {
    let mut out = crate::errors::message::redact_secrets(text).into_owned();
    if api_key.len() >= 4 {
        out = out.replace(api_key, "<redacted>");
    }
    out = JWT.replace_all(&out, "<redacted>").into_owned();
    out = SHORT_KEYS.replace_all(&out, "<redacted>").into_owned();
    SECRET_KV.replace_all(&out, "${1}<redacted>").into_owned()
}

/// The user prompt for the model: the report, redacted, at most `max`
/// characters.
pub fn prompt(report: &TriageReport, max: usize, api_key: &str) -> String {
    cut(&redact_for_model(&render(report), api_key), max)
}

const SYSTEM_PROMPT: &str = "You are an SRE triaging a production error in an application that calls LLMs. From the triage report, write a summary of at most 5 sentences: the most likely cause, how confident you are and why, and the single next action. Do not repeat the report; do not invent facts that are not in it.";

/// The OpenAI-compatible client that writes summaries.
pub struct Summarizer {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: String,
    timeout: Duration,
    max_prompt_chars: usize,
    per_minute: u32,
    limiter: DefaultDirectRateLimiter,
}

impl Summarizer {
    /// `None` when `[triage]` names no endpoint.
    pub fn from_config(c: &TriageConfig) -> anyhow::Result<Option<Summarizer>> {
        if !c.summaries() {
            return Ok(None);
        }
        let per_minute = NonZeroU32::new(c.summaries_per_minute)
            .ok_or_else(|| anyhow::anyhow!("triage.summaries_per_minute must be at least 1"))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(c.timeout_ms))
            .build()
            .map_err(|e| anyhow::anyhow!("building the triage model client: {e}"))?;
        Ok(Some(Summarizer {
            client,
            url: format!(
                "{}/chat/completions",
                c.endpoint.trim().trim_end_matches('/')
            ),
            model: c.model.trim().to_string(),
            api_key: c.api_key.clone(),
            timeout: Duration::from_millis(c.timeout_ms),
            max_prompt_chars: c.max_prompt_chars,
            per_minute: c.summaries_per_minute,
            limiter: RateLimiter::direct(Quota::per_minute(per_minute)),
        }))
    }

    /// Fills `summary` or `summary_error`, within the time limit.
    pub async fn summarise(&self, report: &mut TriageReport) {
        report.summary_model = Some(self.model.clone());
        match self.ask(report).await {
            Ok(text) => report.summary = Some(text),
            Err(e) => report.summary_error = Some(e),
        }
    }

    async fn ask(&self, report: &TriageReport) -> Result<String, String> {
        if self.limiter.check().is_err() {
            return Err(format!(
                "skipped: more than {} summaries in a minute (triage.summaries_per_minute)",
                self.per_minute
            ));
        }
        let body = serde_json::json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt(report, self.max_prompt_chars, &self.api_key)},
            ],
            "temperature": 0.2,
            "max_tokens": 400,
        });
        let mut request = self.client.post(&self.url).json(&body);
        if !self.api_key.is_empty() {
            request = request.bearer_auth(&self.api_key);
        }
        let ms = self.timeout.as_millis();
        let call = async {
            let response = request
                .send()
                .await
                .map_err(|e| format!("the model endpoint failed: {}", e.without_url()))?;
            let status = response.status();
            let text = response
                .text()
                .await
                .map_err(|e| format!("reading the model's answer: {}", e.without_url()))?;
            if !status.is_success() {
                return Err(format!(
                    "the model endpoint answered {status}: {}",
                    cut(&text, 300)
                ));
            }
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| format!("the model's answer is not JSON: {e}"))?;
            v.pointer("/choices/0/message/content")
                .and_then(|c| c.as_str())
                .map(|c| cut(c.trim(), 4000))
                .filter(|c| !c.is_empty())
                .ok_or_else(|| "the model's answer has no choices[0].message.content".to_string())
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(format!(
                "the model endpoint did not answer within {ms} ms (triage.timeout_ms)"
            )),
        }
    }
}

/// Group changes waiting for a report, coalesced per group.
#[derive(Default)]
struct Queue {
    pending: Mutex<VecDeque<ErrorGroupEvent>>,
    ready: Notify,
    dropped: AtomicU64,
}

impl Queue {
    fn push(&self, e: &ErrorGroupEvent) {
        let mut q = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waiting) = q.iter_mut().find(|w| w.group_id == e.group_id) {
            // The newer change supersedes (new → escalating in one burst).
            *waiting = e.clone();
        } else if q.len() < QUEUE {
            q.push_back(e.clone());
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        drop(q);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<ErrorGroupEvent> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

/// Runs automatic triage until `stop` turns true: consumes the hub's
/// `error` records and writes a report for each through the writer.
pub async fn run(
    config: TriageConfig,
    hub: Arc<Hub>,
    store: Arc<Store>,
    writer: WriterHandle,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let summarizer = Summarizer::from_config(&config)?;
    let queue = Arc::new(Queue::default());
    let worker = tokio::spawn(triage_loop(
        queue.clone(),
        store,
        writer,
        summarizer,
        stop.clone(),
    ));
    let mut rx = hub.subscribe();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            got = rx.recv() => match got {
                Ok(event) => {
                    if let Record::Error(e) = &event.record {
                        if e.change != GroupChange::Triaged {
                            queue.push(e);
                        }
                    }
                }
                // Missed records are missed reports, which is the drop
                // this consumer is allowed; it never slows the writer.
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(missed = n, "triage fell behind the hub");
                }
                Err(RecvError::Closed) => break,
            },
        }
    }
    let dropped = queue.dropped.load(Ordering::Relaxed);
    if dropped > 0 {
        tracing::info!(
            dropped,
            "group changes left without a triage report (queue full)"
        );
    }
    worker
        .await
        .map_err(|e| anyhow::anyhow!("the triage worker panicked: {e}"))
}

async fn triage_loop(
    queue: Arc<Queue>,
    store: Arc<Store>,
    writer: WriterHandle,
    summarizer: Option<Summarizer>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last: HashMap<(i64, &'static str), Instant> = HashMap::new();
    loop {
        let Some(event) = queue.pop() else {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = queue.ready.notified() => continue,
            }
        };
        if last
            .get(&(event.group_id, event.change.as_str()))
            .is_some_and(|t| t.elapsed() < REPEAT_AFTER)
        {
            continue;
        }
        if last.len() > 10_000 {
            last.retain(|_, t| t.elapsed() < REPEAT_AFTER);
        }
        last.insert((event.group_id, event.change.as_str()), Instant::now());
        let job = async {
            let built =
                tokio::time::timeout(BUILD_DEADLINE, build(&store, &event, now_unix_nano())).await;
            let mut report = match built {
                Ok(Ok(Some(r))) => r,
                Ok(Ok(None)) => return,
                Ok(Err(e)) => {
                    tracing::warn!(group = event.group_id, error = %e, "triage report not built");
                    return;
                }
                Err(_) => {
                    tracing::warn!(group = event.group_id, "triage report not built in time");
                    return;
                }
            };
            if let Some(s) = &summarizer {
                s.summarise(&mut report).await;
            }
            let mut published = event.clone();
            published.change = GroupChange::Triaged;
            published.triage = Some(Arc::new(report));
            let batch = Batch {
                triage: vec![Arc::new(published)],
                ..Batch::default()
            };
            if let Err(e) = writer.write(batch).await {
                tracing::warn!(group = event.group_id, error = %e, "triage report not stored");
            }
        };
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = job => {}
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(MIN_GAP) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::analysis::Frame;

    fn frame(path: &str, function: &str, line: i64, in_app: bool, index: usize) -> Frame {
        Frame {
            module: None,
            function: Some(function.into()),
            path: Some(path.into()),
            line: Some(line),
            column: None,
            in_app,
            index,
        }
    }

    #[test]
    fn the_innermost_in_app_frame_is_the_suspect() {
        let e = Exception {
            type_name: Some("KeyError".into()),
            message: Some("'u-7'".into()),
            // In-app first (as get_error sorts them), innermost = index 0.
            frames: vec![
                frame("app/shop.py", "checkout", 40, true, 2),
                frame("app/cart.py", "lookup", 12, true, 1),
                frame("site-packages/dict.py", "get", 3, false, 0),
            ],
        };
        let c = suspected_cause(&[e]).expect("an in-app frame");
        assert_eq!(c.frame, "app/cart.py:lookup:12");
        assert_eq!(c.exception_type.as_deref(), Some("KeyError"));
        assert!(suspected_cause(&[]).is_none());
    }

    fn release(version: &str, at: u64, source: &str) -> ReleaseRow {
        ReleaseRow {
            service_name: "shop".into(),
            environment: Some("prod".into()),
            version: version.into(),
            first_seen: rfc3339(at),
            last_seen: rfc3339(at),
            first_seen_unix_nano: at.to_string(),
            last_seen_unix_nano: at.to_string(),
            source: source.into(),
            new_groups: 0,
            regressed_groups: 0,
            error_rate_before: None,
            error_rate_after: None,
        }
    }

    #[test]
    fn the_deploy_before_the_first_event_is_the_latest_one_not_after_it() {
        let s = 1_000_000_000;
        let releases = vec![
            release("1.0", 10 * s, "telemetry"),
            release("1.1", 50 * s, "deploy"),
            release("1.2", 90 * s, "deploy"),
        ];
        let d = deploy_before(&releases, 60 * s).expect("a release before");
        assert_eq!((d.version.as_str(), d.source.as_str()), ("1.1", "deploy"));
        assert_eq!(d.seconds_before_first_event, 10);
        assert!(deploy_before(&releases, 5 * s).is_none());
    }

    #[test]
    fn secrets_never_reach_the_prompt() {
        let text = "call failed: key sk-live-abcdef123456 Authorization: Bearer tok.en-xyz123 \
                    api_key=hunter22 jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-nature \
                    aws AKIAABCDEFGHIJKLMNOP x-session-token: s3cr3tvalue db_password=pw \
                    myconfiguredkey";
        let out = redact_for_model(text, "myconfiguredkey");
        for secret in [
            "sk-live-abcdef123456",
            "tok.en-xyz123",
            "hunter22",
            "eyJhbGciOiJIUzI1NiJ9",
            "AKIAABCDEFGHIJKLMNOP",
            "s3cr3tvalue",
            "=pw",
            "myconfiguredkey",
        ] {
            assert!(!out.contains(secret), "{secret} left in {out}");
        }
        assert!(out.contains("call failed"), "{out}");
    }

    #[test]
    fn provider_side_classes_point_at_the_provider() {
        let (side, text) = provider_status(Some("rate_limited"), "openai", 2);
        assert!(side);
        assert!(text.contains("degraded"), "{text}");
        let (side, _) = provider_status(Some("context_length_exceeded"), "openai", 0);
        assert!(!side);
    }
    fn genai_group() -> crate::model::errors::ErrorGroupRow {
        crate::model::errors::ErrorGroupRow {
            id: 7,
            fingerprint: "f".into(),
            error_type: Some("RateLimitError".into()),
            message_template: Some("Rate limit reached for <model>".into()),
            culprit: Some("chat".into()),
            category: "genai".into(),
            status: "unresolved".into(),
            substatus: "regressed".into(),
            first_seen: rfc3339(100_000_000_000),
            last_seen: rfc3339(200_000_000_000),
            first_seen_unix_nano: "100000000000".into(),
            last_seen_unix_nano: "200000000000".into(),
            first_release: Some("1.0".into()),
            last_release: Some("1.1".into()),
            last_environment: Some("prod".into()),
            count: 12,
            unhandled_count: 12,
            user_count: 2,
            services: vec!["shop".into()],
            users: vec!["u-1".into(), "u-2".into()],
            sample_trace_ids: vec![],
            resolved_at: None,
            resolved_in_release: Some("1.0".into()),
            resolved_environment: Some("prod".into()),
            merged_into: None,
            gen_ai: Some(crate::model::errors::ErrorGenAiRow {
                provider: Some("openai".into()),
                operation: Some("chat".into()),
                model: Some("gpt-4o".into()),
                error_class: Some("rate_limited".into()),
                tool: None,
            }),
        }
    }

    #[test]
    fn a_regressed_rate_limit_gets_provider_and_release_steps() {
        let s = 1_000_000_000;
        let event = ErrorGroupEvent {
            change: GroupChange::Regressed,
            group_id: 7,
            fingerprint: "f".into(),
            status: "unresolved",
            substatus: "regressed",
            error_type: None,
            message_template: None,
            culprit: None,
            category: "genai",
            service_name: "shop".into(),
            release: Some("1.1".into()),
            environment: Some("prod".into()),
            count: 12,
            first_seen_unix_nano: 100 * s,
            last_seen_unix_nano: 200 * s,
            trace_id: None,
            event_id: "e".into(),
            genai_error_class: Some("rate_limited"),
            genai_model: Some("gpt-4o".into()),
            triage: None,
        };
        let changed = ChangedValue {
            key: "release".into(),
            value: "1.1".into(),
            failing_count: 10,
            failing_share: 0.9,
            baseline_count: 0,
            baseline_share: 0.0,
            lift: None,
            new_value: true,
        };
        let evidence = Evidence {
            event,
            group: genai_group(),
            exceptions: vec![],
            events: vec![],
            releases: vec![release("1.0", 90 * s, "deploy")],
            changed: vec![changed.clone()],
            baseline_spans: 40,
            similar: vec![SimilarBrief {
                id: 3,
                title: "RateLimitError: Rate limit".into(),
                score: 0.8,
            }],
            provider_groups_last_hour: 2,
            now: 300 * s,
        };
        let r = assemble(&evidence);
        assert_eq!(r.change, "regressed");
        assert!(r.suspected_cause.is_none());
        let g = r.genai.as_ref().expect("GenAI part");
        assert!(
            g.provider_side && g.provider_status.contains("degraded"),
            "{g:?}"
        );
        let steps = r.next_steps.join("\n");
        for expected in [
            "Rate limited by openai",
            "status page",
            "resolved in 1.0 and came back in 1.1",
            "Release 1.0 of shop was deployed 10s before",
            "release=1.1 is over-represented (90%",
            "Group #3 looks like the same bug",
        ] {
            assert!(steps.contains(expected), "{expected:?} not in\n{steps}");
        }
        assert!(
            r.text.contains("release=1.1: 90% of failures"),
            "{}",
            r.text
        );
        // Without a baseline nothing is claimed to have changed.
        let r = assemble(&Evidence {
            baseline_spans: 0,
            ..evidence
        });
        assert!(r.what_changed.is_empty());
        assert!(r.text.contains("no baseline"), "{}", r.text);
    }
}
