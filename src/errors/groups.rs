//! Error groups in memory: which group an occurrence belongs to, its
//! counts, and the status workflow. The writer keeps a [`GroupBook`] with
//! every group (loaded at start; `storage::writer::derived::error_groups`
//! stores it), so matching, counting and deciding status is a hash lookup.
//! Changes are staged and become current only when the commit does
//! ([`GroupBook::commit`]), because the writer retries a failed group
//! commit job by job.
//!
//! Status workflow: a group is `unresolved` (`new` in its first week,
//! `ongoing`, `regressed`, `escalating`), `resolved` (`now`,
//! `in_next_release`, `auto`), `archived` (`forever`, `until_escalating`)
//! or `merged`. An event regresses a resolved group only if it happened
//! after the resolution and, for a release-based resolution, comes from a
//! newer release in the same environment.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use crate::errors::baseline::RecentDays;
use crate::errors::inapp::InAppRules;
use crate::errors::regroup::Rekeyed;
use crate::errors::releases::{compare, parse_version, ReleaseInfo};
use crate::errors::users::{user_hash, UserSketch};
use crate::errors::FINGERPRINT_VERSION;
use crate::model::errors::{
    ErrorCommand, ErrorGroupEvent, ErrorOccurrence, GroupChange, StatusChange,
};
use crate::model::{LogRecord, Record, SpanRecord};

pub const HOUR_NS: u64 = 3_600_000_000_000;
pub const MINUTE_NS: u64 = 60_000_000_000;
/// A group is `new` for this long after its first event.
pub const NEW_FOR_NS: u64 = 7 * 24 * HOUR_NS;
/// Users and trace ids kept per group as samples.
const SAMPLE_USERS: usize = 100;
const SAMPLE_TRACES: usize = 10;
/// Recent exceptions remembered for the duplicate (logs/dup) check, as
/// 64-bit keys (`duplicate_key`): 16 bytes each in the map and 8 in the
/// order, where the four strings of each, kept twice, took ~0.5 KB with a
/// short message (50 MB once 100,000 had been seen) and without bound on
/// long ones.
const RECENT_EXCEPTIONS: usize = 100_000;
/// The tuning of the error tables, from `[errors]`.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub escalation_factor: f64,
    pub escalation_min_events: u64,
    pub duplicate_window_ns: u64,
    /// The in-app rules of `[errors]`, for fingerprinting stored events
    /// again when the fingerprint version changes.
    pub in_app: Arc<InAppRules>,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            escalation_factor: 10.0,
            escalation_min_events: 10,
            duplicate_window_ns: 1_000_000_000,
            in_app: Arc::default(),
        }
    }
}

/// One error group: a row of `errors`.
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub id: i64,
    pub fingerprint: String,
    pub in_app_hash: Option<String>,
    pub full_stack_hash: Option<String>,
    pub merged_hashes: Vec<String>,
    pub fingerprint_rule: String,
    pub fingerprint_version: i32,
    pub components: String,
    pub error_type: Option<String>,
    pub message_template: Option<String>,
    pub culprit: Option<String>,
    pub category: String,
    pub gen_ai_provider: Option<String>,
    pub gen_ai_operation: Option<String>,
    pub gen_ai_model: Option<String>,
    pub gen_ai_error_class: Option<String>,
    pub gen_ai_tool: Option<String>,
    pub first_seen: u64,
    pub last_seen: u64,
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    pub last_environment: Option<String>,
    pub event_count: u64,
    pub unhandled_count: u64,
    pub user_count: u64,
    /// Every distinct user, so none is counted twice (stored with the
    /// group: a restart does not forget them).
    pub user_sketch: UserSketch,
    pub services: BTreeSet<String>,
    /// A sample of the users, for display.
    pub users: Vec<String>,
    pub sample_trace_ids: Vec<String>,
    pub status: String,
    pub substatus: String,
    pub resolved_at: Option<u64>,
    pub resolved_in_release: Option<String>,
    pub resolved_environment: Option<String>,
    pub merged_into: Option<i64>,
    pub hour_start: u64,
    pub hour_count: u64,
    pub escalated_hour: Option<u64>,
    pub regressed_in_release: Option<String>,
    /// Events per day over the last week: the escalation baseline (in
    /// memory only; loaded from `error_events` at start).
    pub recent_days: RecentDays,
}

impl Group {
    pub fn event(&self, change: GroupChange, o: &ErrorOccurrence) -> ErrorGroupEvent {
        ErrorGroupEvent {
            change,
            group_id: self.id,
            fingerprint: self.fingerprint.clone(),
            status: status_str(&self.status),
            substatus: substatus_str(&self.substatus),
            error_type: self.error_type.clone(),
            message_template: self.message_template.clone(),
            culprit: self.culprit.clone(),
            category: o.category,
            service_name: o.service_name.clone(),
            release: o.release.clone(),
            environment: o.environment.clone(),
            count: self.event_count,
            first_seen_unix_nano: self.first_seen,
            last_seen_unix_nano: self.last_seen,
            trace_id: o.trace_id.clone(),
            event_id: o.event_id.clone(),
            genai_error_class: o.genai.as_ref().map(|g| g.error_class),
            genai_model: o.genai.as_ref().and_then(|g| g.model.clone()),
            triage: None,
        }
    }

    pub fn hashes(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.fingerprint)
            .chain(self.in_app_hash.iter())
            .chain(self.full_stack_hash.iter())
            .chain(self.merged_hashes.iter())
    }
}

pub fn status_str(s: &str) -> &'static str {
    match s {
        "resolved" => "resolved",
        "archived" => "archived",
        "merged" => "merged",
        _ => "unresolved",
    }
}

pub fn substatus_str(s: &str) -> &'static str {
    match s {
        "ongoing" => "ongoing",
        "regressed" => "regressed",
        "escalating" => "escalating",
        "now" => "now",
        "in_next_release" => "in_next_release",
        "auto" => "auto",
        "forever" => "forever",
        "until_escalating" => "until_escalating",
        "" => "",
        _ => "new",
    }
}

/// A row of `releases`.
#[derive(Debug, Clone)]
pub struct Release {
    pub first_seen: u64,
    pub last_seen: u64,
    /// `last_seen` as stored; the row is rewritten when it moves a minute.
    pub stored_last_seen: u64,
    pub source: &'static str,
    /// New or recorded as a deploy since last written.
    pub dirty: bool,
}

pub type ReleaseKey = (String, Option<String>, String);

/// Everything in memory; `staged` holds a commit's changes until it lands.
#[derive(Default)]
pub struct State {
    pub groups: HashMap<i64, Group>,
    pub by_hash: HashMap<String, i64>,
    pub next_id: i64,
    pub releases: HashMap<ReleaseKey, Release>,
    /// Per (service, environment): does every release parse as semver?
    pub all_semver: HashMap<(String, Option<String>), bool>,
    /// `duplicate_key` of (trace, span, type, message) → time, oldest
    /// first, for logs/dup.
    pub recent: HashMap<u64, u64>,
    pub recent_order: VecDeque<u64>,
}

#[derive(Default)]
pub struct Staged {
    pub groups: HashMap<i64, Group>,
    pub by_hash: HashMap<String, i64>,
    pub next_id: Option<i64>,
    pub releases: HashMap<ReleaseKey, Release>,
    pub recent: HashMap<u64, u64>,
    pub publish: Vec<Record>,
}

/// What a command means for stored rows besides the groups themselves.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    Nothing,
    /// `sources` joined `target`: their events and notes move with them.
    Merged {
        target: i64,
        sources: Vec<i64>,
    },
    /// A note to store on an existing group.
    Note {
        group_id: i64,
        author: String,
        text: String,
        at_unix_nano: u64,
    },
}

/// Every group and release, current and staged.
pub struct GroupBook {
    settings: GroupSettings,
    pub state: State,
    pub staged: Staged,
}

impl GroupBook {
    /// A book over groups and releases loaded from storage.
    pub fn new(settings: GroupSettings, state: State) -> GroupBook {
        GroupBook {
            settings,
            state,
            staged: Staged::default(),
        }
    }

    pub fn group(&self, id: i64) -> Option<&Group> {
        self.staged
            .groups
            .get(&id)
            .or_else(|| self.state.groups.get(&id))
    }

    pub fn group_mut(&mut self, id: i64) -> Option<&mut Group> {
        if !self.staged.groups.contains_key(&id) {
            let g = self.state.groups.get(&id)?.clone();
            self.staged.groups.insert(id, g);
        }
        self.staged.groups.get_mut(&id)
    }

    pub fn find(&self, hash: &str) -> Option<i64> {
        let mut id = self
            .staged
            .by_hash
            .get(hash)
            .or_else(|| self.state.by_hash.get(hash))
            .copied()?;
        // Follow merges (a chain is short: merges point at live groups, but
        // a target may itself be merged later).
        for _ in 0..16 {
            match self.group(id).and_then(|g| g.merged_into) {
                Some(next) => id = next,
                None => break,
            }
        }
        Some(id)
    }

    pub fn next_id(&mut self) -> i64 {
        let id = self.staged.next_id.unwrap_or(self.state.next_id);
        self.staged.next_id = Some(id + 1);
        id
    }

    pub fn release(&self, key: &ReleaseKey) -> Option<&Release> {
        self.staged
            .releases
            .get(key)
            .or_else(|| self.state.releases.get(key))
    }

    /// Records that `version` of `service` ran in `env` at `time`.
    pub fn see_release(
        &mut self,
        service: &str,
        env: Option<&str>,
        version: &str,
        time: u64,
        source: &'static str,
    ) {
        let key = (
            service.to_string(),
            env.map(str::to_string),
            version.to_string(),
        );
        let current = self.release(&key).cloned();
        let updated = match current {
            None => Release {
                first_seen: time,
                last_seen: time,
                stored_last_seen: 0,
                source,
                dirty: true,
            },
            Some(mut r) => {
                if time >= r.first_seen && time <= r.last_seen && source != "deploy" {
                    return;
                }
                r.first_seen = r.first_seen.min(time);
                r.last_seen = r.last_seen.max(time);
                if source == "deploy" {
                    r.source = "deploy";
                    r.dirty = true;
                }
                r
            }
        };
        self.staged.releases.insert(key, updated);
    }

    pub fn all_semver(&self, service: &str, env: Option<&String>) -> bool {
        let known = self
            .state
            .all_semver
            .get(&(service.to_string(), env.cloned()))
            .copied()
            .unwrap_or(true);
        known
            && self
                .staged
                .releases
                .keys()
                .filter(|(s, e, _)| s == service && e.as_ref() == env)
                .all(|(_, _, v)| parse_version(v).is_some())
    }

    /// Is `version` a newer release of `service` in `env` than `than`?
    pub fn is_newer(&self, service: &str, env: Option<&String>, version: &str, than: &str) -> bool {
        let first_seen = |v: &str| {
            let key = (service.to_string(), env.cloned(), v.to_string());
            self.release(&key).map_or(u64::MAX, |r| r.first_seen)
        };
        let a = ReleaseInfo {
            version,
            first_seen: first_seen(version),
        };
        let b = ReleaseInfo {
            version: than,
            first_seen: first_seen(than),
        };
        compare(a, b, self.all_semver(service, env)) == std::cmp::Ordering::Greater
    }

    /// The logs/dup rule: the same exception on the same span within the
    /// window is reported once.
    pub fn is_duplicate(&mut self, o: &ErrorOccurrence) -> bool {
        let (Some(trace), Some(span)) = (&o.trace_id, &o.span_id) else {
            return false;
        };
        if !matches!(o.source, "span_event" | "log") {
            return false;
        }
        // SDKs print the same message differently in the two places
        // (Python: `'u-7'` in the span event, `u-7` in the log record), so
        // quotes around it do not count.
        let message = o
            .message
            .as_deref()
            .unwrap_or("")
            .trim()
            .trim_matches(|c| c == '\'' || c == '"');
        let key = duplicate_key(
            trace,
            span,
            o.exception_type.as_deref().unwrap_or(""),
            message,
        );
        let window = self.settings.duplicate_window_ns;
        let seen = self
            .state
            .recent
            .get(&key)
            .copied()
            .into_iter()
            .chain(self.staged.recent.get(&key).copied())
            .any(|t| t.abs_diff(o.time_unix_nano) <= window);
        if !seen {
            self.staged.recent.insert(key, o.time_unix_nano);
        }
        seen
    }

    /// Counts one occurrence; returns its group id.
    pub fn record(&mut self, o: &ErrorOccurrence) -> i64 {
        let candidates: Vec<&str> = if o.fingerprint_rule == "explicit" {
            vec![o.fingerprint.as_str()]
        } else {
            std::iter::once(o.fingerprint.as_str())
                .chain(o.in_app_hash.as_deref())
                .chain(o.full_stack_hash.as_deref())
                .collect()
        };
        let found = candidates.iter().find_map(|h| self.find(h));
        let id = match found {
            Some(id) => id,
            None => {
                let id = self.next_id();
                let g = new_group(id, o);
                for h in g.hashes() {
                    self.staged.by_hash.insert(h.clone(), id);
                }
                self.staged.groups.insert(id, g);
                let g = &self.staged.groups[&id];
                self.staged
                    .publish
                    .push(Record::Error(g.event(GroupChange::New, o).into()));
                return id;
            }
        };
        let settings = self.settings.clone();
        let newer_release = match (&o.release, self.group(id)) {
            (Some(rel), Some(g)) => match (&g.status[..], &g.resolved_in_release) {
                ("resolved", Some(fixed)) => {
                    g.resolved_environment == o.environment
                        && self.is_newer(&o.service_name, o.environment.as_ref(), rel, fixed)
                }
                _ => false,
            },
            _ => false,
        };
        let Some(g) = self.group_mut(id) else {
            return id;
        };
        count_into(g, o);
        let mut change = None;
        if g.status == "resolved" && g.resolved_at.is_some_and(|at| o.time_unix_nano > at) {
            let regress = match g.resolved_in_release {
                None => true,
                Some(_) => newer_release,
            };
            if regress {
                g.status = "unresolved".into();
                g.substatus = "regressed".into();
                g.regressed_in_release = o.release.clone();
                g.resolved_at = None;
                g.resolved_in_release = None;
                g.resolved_environment = None;
                change = Some(GroupChange::Regressed);
            }
        }
        if change.is_none() && escalates(g, &settings) {
            let eligible = matches!(
                (&g.status[..], &g.substatus[..]),
                ("unresolved", _) | ("archived", "until_escalating")
            );
            if eligible {
                g.status = "unresolved".into();
                g.substatus = "escalating".into();
                g.escalated_hour = Some(g.hour_start);
                change = Some(GroupChange::Escalating);
            }
        }
        if let Some(change) = change {
            let ev = g.event(change, o);
            self.staged.publish.push(Record::Error(ev.into()));
        }
        id
    }

    /// Records the releases seen on a commit's spans and logs (first and
    /// last seen per service, environment and version).
    pub fn see_telemetry_releases<'a>(
        &mut self,
        spans: impl Iterator<Item = &'a SpanRecord>,
        logs: impl Iterator<Item = &'a LogRecord>,
    ) {
        // Releases from every span and log: compare with the previous
        // record first, since one export is usually one resource.
        let mut seen_releases: Vec<(String, Option<String>, String, u64, u64)> = Vec::new();
        let mut note = |service: &str, env: Option<&str>, version: &str, t: u64| {
            if let Some(r) = seen_releases.last_mut() {
                if r.0 == service && r.1.as_deref() == env && r.2 == version {
                    r.3 = r.3.min(t);
                    r.4 = r.4.max(t);
                    return;
                }
            }
            seen_releases.push((
                service.to_string(),
                env.map(str::to_string),
                version.to_string(),
                t,
                t,
            ));
        };
        for s in spans {
            if let Some(v) = s.service_version.as_deref() {
                note(
                    &s.service_name,
                    s.deployment_environment.as_deref(),
                    v,
                    s.start_time_unix_nano,
                );
            }
        }
        for l in logs {
            if let Some(v) = l.service_version.as_deref() {
                note(
                    &l.service_name,
                    l.deployment_environment.as_deref(),
                    v,
                    l.time_unix_nano,
                );
            }
        }
        for (service, env, version, first, lastt) in seen_releases {
            self.see_release(&service, env.as_deref(), &version, first, "telemetry");
            if lastt != first {
                self.see_release(&service, env.as_deref(), &version, lastt, "telemetry");
            }
        }
    }

    /// Applies a user's or a job's change to the groups in memory; what
    /// it means for stored rows besides the groups is returned.
    pub fn command(&mut self, cmd: &ErrorCommand) -> Applied {
        let mut applied = Applied::Nothing;
        match cmd {
            ErrorCommand::SetStatus {
                group_id,
                change,
                at_unix_nano,
            } => {
                let Some(g) = self.group_mut(*group_id) else {
                    return Applied::Nothing;
                };
                if g.status == "merged" {
                    return Applied::Nothing;
                }
                let (status, sub) = match change {
                    StatusChange::Unresolve => ("unresolved", "ongoing"),
                    StatusChange::ResolveNow => ("resolved", "now"),
                    StatusChange::ResolveInNextRelease => ("resolved", "in_next_release"),
                    StatusChange::ArchiveForever => ("archived", "forever"),
                    StatusChange::ArchiveUntilEscalating => ("archived", "until_escalating"),
                };
                g.status = status.into();
                g.substatus = sub.into();
                g.resolved_at = None;
                g.resolved_in_release = None;
                g.resolved_environment = None;
                if status == "resolved" {
                    g.resolved_at = Some(*at_unix_nano);
                    if *change == StatusChange::ResolveInNextRelease {
                        g.resolved_in_release = g.last_release.clone();
                        g.resolved_environment = g.last_environment.clone();
                    }
                }
                if status == "archived" {
                    // Escalation is measured from now on, not from the
                    // burst that made someone archive it.
                    g.escalated_hour = Some(g.hour_start);
                }
            }
            ErrorCommand::Merge { target, sources } => {
                if self.group(*target).is_none_or(|g| g.status == "merged") {
                    return Applied::Nothing;
                }
                let mut moved = Vec::new();
                for &s in sources.iter().filter(|s| **s != *target) {
                    let Some(src) = self.group_mut(s) else {
                        continue;
                    };
                    if src.status == "merged" {
                        continue;
                    }
                    let taken = src.clone();
                    src.status = "merged".into();
                    src.substatus = String::new();
                    src.merged_into = Some(*target);
                    moved.push(taken);
                }
                if moved.is_empty() {
                    return Applied::Nothing;
                }
                let Some(t) = self.group_mut(*target) else {
                    return Applied::Nothing;
                };
                for src in &moved {
                    t.event_count += src.event_count;
                    t.unhandled_count += src.unhandled_count;
                    // Users of both groups count once.
                    let union = t.user_sketch.union(&src.user_sketch);
                    let shared = (t.user_sketch.count() + src.user_sketch.count())
                        .saturating_sub(union.count());
                    t.user_count = (t.user_count + src.user_count).saturating_sub(shared);
                    t.user_sketch = union;
                    if src.first_seen < t.first_seen {
                        t.first_seen = src.first_seen;
                        t.first_release = src.first_release.clone();
                    }
                    if src.last_seen > t.last_seen {
                        t.last_seen = src.last_seen;
                        t.last_release = src.last_release.clone();
                        t.last_environment = src.last_environment.clone();
                    }
                    t.services.extend(src.services.iter().cloned());
                    t.recent_days.merge(&src.recent_days);
                    for u in &src.users {
                        if t.users.len() < SAMPLE_USERS && !t.users.contains(u) {
                            t.users.push(u.clone());
                        }
                    }
                    for tr in &src.sample_trace_ids {
                        if t.sample_trace_ids.len() < SAMPLE_TRACES {
                            t.sample_trace_ids.push(tr.clone());
                        }
                    }
                    for h in src.hashes() {
                        if !t.merged_hashes.contains(h) && *h != t.fingerprint {
                            t.merged_hashes.push(h.clone());
                        }
                    }
                }
                applied = Applied::Merged {
                    target: *target,
                    sources: moved.iter().map(|g| g.id).collect(),
                };
            }
            ErrorCommand::AddNote {
                group_id,
                author,
                text,
                at_unix_nano,
            } => {
                // The API checked the group before sending; a merge in
                // between leaves the note on the group it was written on.
                if self.group(*group_id).is_some() {
                    applied = Applied::Note {
                        group_id: *group_id,
                        author: author.clone(),
                        text: text.clone(),
                        at_unix_nano: *at_unix_nano,
                    };
                }
            }
            ErrorCommand::AutoResolve {
                before_unix_nano,
                at_unix_nano,
            } => {
                let stale: Vec<i64> = self
                    .state
                    .groups
                    .values()
                    .chain(self.staged.groups.values())
                    .filter(|g| g.status == "unresolved" && g.last_seen < *before_unix_nano)
                    .map(|g| g.id)
                    .collect();
                for id in stale {
                    if let Some(g) = self.group_mut(id) {
                        if g.status == "unresolved" && g.last_seen < *before_unix_nano {
                            g.status = "resolved".into();
                            g.substatus = "auto".into();
                            g.resolved_at = Some(*at_unix_nano);
                        }
                    }
                }
            }
            // Needs the releases' deploy times and writes change rows:
            // `errors::deploys` applies it for the writer.
            ErrorCommand::ResolveQuietAfterDeploy { .. } => {}
            ErrorCommand::RecordRelease {
                service,
                environment,
                version,
                at_unix_nano,
            } => {
                let env = (!environment.is_empty()).then_some(environment.as_str());
                self.see_release(service, env, version, *at_unix_nano, "deploy");
            }
        }
        applied
    }

    /// Gives a group the keys of the current fingerprint version; its old
    /// keys (and other variants') keep finding it.
    pub fn rekey(&mut self, r: &Rekeyed) {
        let Some(g) = self.group_mut(r.id) else {
            return;
        };
        let f = &r.fingerprint;
        g.fingerprint = f.hash.clone();
        g.in_app_hash = f.in_app_hash.clone();
        g.full_stack_hash = f.full_stack_hash.clone();
        if g.fingerprint_rule != "genai" {
            g.fingerprint_rule = f.rule.as_str().to_string();
        }
        g.fingerprint_version = f.version as i32;
        g.components = serde_json::to_string(&f.components).unwrap_or_else(|_| "[]".into());
        for h in &r.aliases {
            if !g.merged_hashes.contains(h) && *h != g.fingerprint {
                g.merged_hashes.push(h.clone());
            }
        }
        let hashes: Vec<String> = g.hashes().cloned().collect();
        for h in hashes {
            if self.find(&h).is_none() {
                self.staged.by_hash.insert(h, r.id);
            }
        }
    }

    /// Marks a group as keyed by the current version (its keys did not
    /// change).
    pub fn mark_current(&mut self, id: i64) {
        if let Some(g) = self.group_mut(id) {
            g.fingerprint_version = FINGERPRINT_VERSION as i32;
        }
    }

    /// The commit landed: its changes become current; the group events it
    /// produced go to `publish`.
    pub fn commit(&mut self, publish: &mut Vec<Record>) {
        let staged = std::mem::take(&mut self.staged);
        let st = &mut self.state;
        for (h, id) in staged.by_hash {
            st.by_hash.insert(h, id);
        }
        for (id, g) in staged.groups {
            st.groups.insert(id, g);
        }
        if let Some(n) = staged.next_id {
            st.next_id = n;
        }
        for ((s, e, v), r) in staged.releases {
            let semver = st.all_semver.entry((s.clone(), e.clone())).or_insert(true);
            *semver = *semver && parse_version(&v).is_some();
            st.releases.insert((s, e, v), r);
        }
        for (k, t) in staged.recent {
            if st.recent.insert(k, t).is_none() {
                st.recent_order.push_back(k);
            }
            while st.recent_order.len() > RECENT_EXCEPTIONS {
                if let Some(old) = st.recent_order.pop_front() {
                    st.recent.remove(&old);
                }
            }
        }
        publish.extend(staged.publish);
    }

    /// The commit failed: forget its changes.
    pub fn rollback(&mut self) {
        self.staged = Staged::default();
    }
}

/// The duplicate check's key for one exception ([`crate::model::keyed_hash`]:
/// the set lives only in memory); by chance, two of the 100,000 remembered
/// collide with probability ~3e-10.
fn duplicate_key(trace: &str, span: &str, exception_type: &str, message: &str) -> u64 {
    crate::model::keyed_hash((trace, span, exception_type, message))
}

pub fn new_group(id: i64, o: &ErrorOccurrence) -> Group {
    let mut g = Group {
        id,
        fingerprint: o.fingerprint.clone(),
        in_app_hash: o.in_app_hash.clone(),
        full_stack_hash: o.full_stack_hash.clone(),
        fingerprint_rule: o.fingerprint_rule.to_string(),
        fingerprint_version: o.fingerprint_version as i32,
        components: o.components.clone(),
        error_type: o.exception_type.clone(),
        message_template: o.message_template.clone(),
        culprit: o.culprit.clone(),
        category: o.category.to_string(),
        gen_ai_provider: o.genai.as_ref().and_then(|g| g.provider.clone()),
        gen_ai_operation: o.genai.as_ref().and_then(|g| g.operation.clone()),
        gen_ai_model: o.genai.as_ref().and_then(|g| g.model.clone()),
        gen_ai_error_class: o.genai.as_ref().map(|g| g.error_class.to_string()),
        gen_ai_tool: o.genai.as_ref().and_then(|g| g.tool.clone()),
        first_seen: o.time_unix_nano,
        last_seen: o.time_unix_nano,
        first_release: o.release.clone(),
        status: "unresolved".into(),
        substatus: "new".into(),
        hour_start: o.time_unix_nano - o.time_unix_nano % HOUR_NS,
        ..Group::default()
    };
    count_into(&mut g, o);
    g
}

/// Adds one occurrence to the group's counters and samples.
pub fn count_into(g: &mut Group, o: &ErrorOccurrence) {
    g.event_count += 1;
    if !o.handled {
        g.unhandled_count += 1;
    }
    if o.time_unix_nano < g.first_seen {
        g.first_seen = o.time_unix_nano;
        g.first_release = o.release.clone().or(g.first_release.take());
    }
    if o.time_unix_nano >= g.last_seen {
        g.last_seen = o.time_unix_nano;
        if o.release.is_some() {
            g.last_release = o.release.clone();
        }
        g.last_environment = o.environment.clone();
    }
    if g.first_release.is_none() {
        g.first_release = o.release.clone();
    }
    if let Some(model) = o.genai.as_ref().and_then(|x| x.model.clone()) {
        g.gen_ai_model = Some(model);
    }
    if !g.services.contains(&o.service_name) {
        g.services.insert(o.service_name.clone());
    }
    if let Some(u) = &o.user {
        let before = g.user_sketch.count();
        if g.user_sketch.insert(user_hash(u)) {
            g.user_count += g.user_sketch.count().saturating_sub(before);
        }
        if g.users.len() < SAMPLE_USERS && !g.users.contains(u) {
            g.users.push(u.clone());
        }
    }
    if let Some(t) = &o.trace_id {
        if g.sample_trace_ids.len() < SAMPLE_TRACES && !g.sample_trace_ids.contains(t) {
            g.sample_trace_ids.push(t.clone());
        }
    }
    let hour = o.time_unix_nano - o.time_unix_nano % HOUR_NS;
    if hour > g.hour_start {
        g.hour_start = hour;
        g.hour_count = 0;
    }
    if hour == g.hour_start {
        g.hour_count += 1;
    }
    g.recent_days.add(o.time_unix_nano, 1);
}

/// True the first time in an hour that the group's events in that hour
/// reach `factor` times its hourly rate over the week before it (the
/// rolling baseline of [`RecentDays`]; since first seen for a younger
/// group), and the minimum. A group in its first hour has no baseline and
/// does not escalate.
pub fn escalates(g: &Group, s: &GroupSettings) -> bool {
    if g.escalated_hour == Some(g.hour_start) || g.hour_count < s.escalation_min_events {
        return false;
    }
    if g.first_seen >= g.hour_start {
        return false;
    }
    let (before, hours) = g
        .recent_days
        .before_hour(g.hour_start, g.hour_count, g.first_seen);
    let baseline = before as f64 / hours as f64;
    g.hour_count as f64 >= s.escalation_factor * baseline
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occurrence(source: &'static str, span: &str, message: &str, at_ms: u64) -> ErrorOccurrence {
        ErrorOccurrence {
            source,
            time_unix_nano: at_ms * 1_000_000,
            trace_id: Some("a".repeat(32)),
            span_id: Some(span.to_string()),
            exception_type: Some("KeyError".into()),
            message: Some(message.into()),
            ..ErrorOccurrence::default()
        }
    }

    #[test]
    fn one_exception_seen_as_span_event_and_log_counts_once() {
        let mut book = GroupBook::new(GroupSettings::default(), State::default());
        let span = "b".repeat(16);
        assert!(!book.is_duplicate(&occurrence("span_event", &span, "'u-7'", 1_000)));
        // The same exception as a log record, its quotes printed differently.
        assert!(book.is_duplicate(&occurrence("log", &span, "u-7", 1_200)));
        // Another message, another span, or past the window: not the same.
        assert!(!book.is_duplicate(&occurrence("log", &span, "u-8", 1_200)));
        assert!(!book.is_duplicate(&occurrence("log", &"c".repeat(16), "u-7", 1_200)));
        assert!(!book.is_duplicate(&occurrence("log", &span, "u-7", 5_000)));
        // Remembered across commits too.
        book.commit(&mut Vec::new());
        assert_eq!(book.state.recent.len(), 3);
        assert!(book.is_duplicate(&occurrence("span_event", &span, "u-7", 5_100)));
    }
}
