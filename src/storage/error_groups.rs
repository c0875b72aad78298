//! The error tables (`errors`, `error_events`, `releases`), kept current by
//! the writer in each commit's transaction, so an error is counted exactly
//! when its span or log is stored.
//!
//! Every group lives in memory (loaded when the writer starts): matching an
//! occurrence to its group, counting and deciding status is a hash lookup,
//! and only the groups a commit touched are rewritten (deleted and appended
//! again; the table has no key, which keeps appends cheap). Events are
//! appended. Changes are staged and become current only when the commit
//! does, because the writer retries a failed group commit job by job.
//!
//! Status workflow (issue 5): a group is `unresolved` (`new` in its first
//! week, `ongoing`, `regressed`, `escalating`), `resolved` (`now`,
//! `in_next_release`, `auto`), `archived` (`forever`, `until_escalating`)
//! or `merged`. An event regresses a resolved group only if it happened
//! after the resolution and, for a release-based resolution, comes from a
//! newer release in the same environment.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::derived::{Committing, Derived};
use super::duck::{sql_text, Chunk, Col, RawConn};
use super::{Conn, DuckError, StorageError};
use crate::errors::releases::{compare, parse_version, ReleaseInfo};
use crate::model::errors::{
    ErrorCommand, ErrorGroupEvent, ErrorOccurrence, GroupChange, StatusChange,
};
use crate::model::Record;

const HOUR_NS: u64 = 3_600_000_000_000;
const MINUTE_NS: u64 = 60_000_000_000;
/// A group is `new` for this long after its first event.
pub const NEW_FOR_NS: u64 = 7 * 24 * HOUR_NS;
/// Users and trace ids kept per group as samples.
const SAMPLE_USERS: usize = 100;
const SAMPLE_TRACES: usize = 10;
/// Recent exceptions remembered for the duplicate (logs/dup) check.
const RECENT_EXCEPTIONS: usize = 100_000;

/// The tuning of the error tables, from `[errors]`.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub escalation_factor: f64,
    pub escalation_min_events: u64,
    pub duplicate_window_ns: u64,
}

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            escalation_factor: 10.0,
            escalation_min_events: 10,
            duplicate_window_ns: 1_000_000_000,
        }
    }
}

/// One error group: a row of `errors`.
#[derive(Debug, Clone, Default)]
struct Group {
    id: i64,
    fingerprint: String,
    in_app_hash: Option<String>,
    full_stack_hash: Option<String>,
    merged_hashes: Vec<String>,
    fingerprint_rule: String,
    fingerprint_version: i32,
    components: String,
    error_type: Option<String>,
    message_template: Option<String>,
    culprit: Option<String>,
    category: String,
    gen_ai_provider: Option<String>,
    gen_ai_operation: Option<String>,
    gen_ai_model: Option<String>,
    gen_ai_error_class: Option<String>,
    gen_ai_tool: Option<String>,
    first_seen: u64,
    last_seen: u64,
    first_release: Option<String>,
    last_release: Option<String>,
    last_environment: Option<String>,
    event_count: u64,
    unhandled_count: u64,
    user_count: u64,
    services: BTreeSet<String>,
    users: Vec<String>,
    sample_trace_ids: Vec<String>,
    status: String,
    substatus: String,
    resolved_at: Option<u64>,
    resolved_in_release: Option<String>,
    resolved_environment: Option<String>,
    merged_into: Option<i64>,
    hour_start: u64,
    hour_count: u64,
    escalated_hour: Option<u64>,
    regressed_in_release: Option<String>,
}

impl Group {
    fn event(&self, change: GroupChange, o: &ErrorOccurrence) -> ErrorGroupEvent {
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

    fn hashes(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.fingerprint)
            .chain(self.in_app_hash.iter())
            .chain(self.full_stack_hash.iter())
            .chain(self.merged_hashes.iter())
    }
}

fn status_str(s: &str) -> &'static str {
    match s {
        "resolved" => "resolved",
        "archived" => "archived",
        "merged" => "merged",
        _ => "unresolved",
    }
}

fn substatus_str(s: &str) -> &'static str {
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
struct Release {
    first_seen: u64,
    last_seen: u64,
    /// `last_seen` as stored; the row is rewritten when it moves a minute.
    stored_last_seen: u64,
    source: &'static str,
    /// New or recorded as a deploy since last written.
    dirty: bool,
}

type ReleaseKey = (String, Option<String>, String);

/// Everything in memory; `staged` holds a commit's changes until it lands.
#[derive(Default)]
struct State {
    groups: HashMap<i64, Group>,
    by_hash: HashMap<String, i64>,
    next_id: i64,
    releases: HashMap<ReleaseKey, Release>,
    /// Per (service, environment): does every release parse as semver?
    all_semver: HashMap<(String, Option<String>), bool>,
    /// (trace, span, type, message) → time, oldest first, for logs/dup.
    recent: HashMap<(String, String, String, String), u64>,
    recent_order: VecDeque<(String, String, String, String)>,
}

#[derive(Default)]
struct Staged {
    groups: HashMap<i64, Group>,
    by_hash: HashMap<String, i64>,
    next_id: Option<i64>,
    releases: HashMap<ReleaseKey, Release>,
    recent: HashMap<(String, String, String, String), u64>,
    publish: Vec<Record>,
}

pub struct ErrorGroups {
    settings: GroupSettings,
    state: State,
    staged: Staged,
}

impl ErrorGroups {
    /// Loads every group and release.
    pub fn load(conn: &Conn, settings: GroupSettings) -> Result<ErrorGroups, StorageError> {
        let mut state = State {
            next_id: 1,
            ..State::default()
        };
        load_groups(conn, &mut state)?;
        load_releases(conn, &mut state)?;
        Ok(ErrorGroups {
            settings,
            state,
            staged: Staged::default(),
        })
    }

    fn group(&self, id: i64) -> Option<&Group> {
        self.staged
            .groups
            .get(&id)
            .or_else(|| self.state.groups.get(&id))
    }

    fn group_mut(&mut self, id: i64) -> Option<&mut Group> {
        if !self.staged.groups.contains_key(&id) {
            let g = self.state.groups.get(&id)?.clone();
            self.staged.groups.insert(id, g);
        }
        self.staged.groups.get_mut(&id)
    }

    fn find(&self, hash: &str) -> Option<i64> {
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

    fn next_id(&mut self) -> i64 {
        let id = self.staged.next_id.unwrap_or(self.state.next_id);
        self.staged.next_id = Some(id + 1);
        id
    }

    fn release(&self, key: &ReleaseKey) -> Option<&Release> {
        self.staged
            .releases
            .get(key)
            .or_else(|| self.state.releases.get(key))
    }

    /// Records that `version` of `service` ran in `env` at `time`.
    fn see_release(
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

    fn all_semver(&self, service: &str, env: Option<&String>) -> bool {
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
    fn is_newer(&self, service: &str, env: Option<&String>, version: &str, than: &str) -> bool {
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
    fn is_duplicate(&mut self, o: &ErrorOccurrence) -> bool {
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
        let key = (
            trace.clone(),
            span.clone(),
            o.exception_type.clone().unwrap_or_default(),
            message.to_string(),
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
    fn record(&mut self, o: &ErrorOccurrence) -> i64 {
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

    fn command(&mut self, raw: &RawConn, cmd: &ErrorCommand) -> Result<(), DuckError> {
        match cmd {
            ErrorCommand::SetStatus {
                group_id,
                change,
                at_unix_nano,
            } => {
                let Some(g) = self.group_mut(*group_id) else {
                    return Ok(());
                };
                if g.status == "merged" {
                    return Ok(());
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
                    return Ok(());
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
                    return Ok(());
                }
                let Some(t) = self.group_mut(*target) else {
                    return Ok(());
                };
                for src in &moved {
                    t.event_count += src.event_count;
                    t.unhandled_count += src.unhandled_count;
                    t.user_count += src.user_count;
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
                let ids: Vec<String> = moved.iter().map(|g| g.id.to_string()).collect();
                raw.execute(&format!(
                    "UPDATE error_events SET group_id = {target} WHERE group_id IN ({})",
                    ids.join(",")
                ))?;
                let moved_ids: Vec<i64> = moved.iter().map(|g| g.id).collect();
                super::error_notes::merge(raw, *target, &moved_ids)?;
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
                    super::error_notes::insert(raw, *group_id, *at_unix_nano, author, text)?;
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
        Ok(())
    }

    fn write(
        &mut self,
        raw: &RawConn,
        events: &[(i64, &ErrorOccurrence)],
    ) -> Result<(), DuckError> {
        if !events.is_empty() {
            let chunks = Chunk::fill(EVENT_COLS, events, |b, (gid, o)| put_event(b, *gid, o));
            let mut app = raw.appender("error_events")?;
            for c in &chunks {
                app.append(c)?;
            }
            app.flush()?;
        }
        if !self.staged.groups.is_empty() {
            let ids: Vec<String> = self.staged.groups.keys().map(|k| k.to_string()).collect();
            raw.execute(&format!(
                "DELETE FROM errors WHERE id IN ({})",
                ids.join(",")
            ))?;
            let rows: Vec<&Group> = self.staged.groups.values().collect();
            let chunks = Chunk::fill(GROUP_COLS, &rows, |b, g| put_group(b, g));
            let mut app = raw.appender("errors")?;
            for c in &chunks {
                app.append(c)?;
            }
            app.flush()?;
        }
        let dirty: Vec<(&ReleaseKey, &Release)> = self
            .staged
            .releases
            .iter()
            .filter(|(_, r)| {
                r.stored_last_seen == 0 || r.last_seen >= r.stored_last_seen + MINUTE_NS || r.dirty
            })
            .collect();
        if !dirty.is_empty() {
            let conds: Vec<String> = dirty
                .iter()
                .map(|((s, e, v), _)| {
                    format!(
                        "(service_name = {} AND environment IS NOT DISTINCT FROM {} AND version = {})",
                        sql_text(s),
                        e.as_deref().map_or("NULL".to_string(), sql_text),
                        sql_text(v)
                    )
                })
                .collect();
            raw.execute(&format!(
                "DELETE FROM releases WHERE {}",
                conds.join(" OR ")
            ))?;
            let chunks = Chunk::fill(RELEASE_COLS, &dirty, |b, ((s, e, v), r)| {
                b.str(s);
                b.opt_str(e.as_deref());
                b.str(v);
                b.u64(r.first_seen);
                b.u64(r.last_seen);
                b.str(r.source);
            });
            let mut app = raw.appender("releases")?;
            for c in &chunks {
                app.append(c)?;
            }
            app.flush()?;
            let written: Vec<ReleaseKey> = dirty.iter().map(|(k, _)| (*k).clone()).collect();
            for k in written {
                if let Some(r) = self.staged.releases.get_mut(&k) {
                    r.stored_last_seen = r.last_seen;
                    r.dirty = false;
                }
            }
        }
        Ok(())
    }
}

fn new_group(id: i64, o: &ErrorOccurrence) -> Group {
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
fn count_into(g: &mut Group, o: &ErrorOccurrence) {
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
        if !g.users.contains(u) {
            // Distinct users beyond the sample are counted once each
            // while qyl runs (a restart may count one again).
            g.user_count += 1;
            if g.users.len() < SAMPLE_USERS {
                g.users.push(u.clone());
            }
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
}

/// True the first time in an hour that the group's events in that hour
/// reach `factor` times its average hourly rate before it (and the minimum).
/// A group in its first hour has no baseline and does not escalate.
fn escalates(g: &Group, s: &GroupSettings) -> bool {
    if g.escalated_hour == Some(g.hour_start) || g.hour_count < s.escalation_min_events {
        return false;
    }
    if g.first_seen >= g.hour_start {
        return false;
    }
    let hours = (g.hour_start - g.first_seen).div_ceil(HOUR_NS).max(1);
    let before = g.event_count.saturating_sub(g.hour_count);
    let baseline = before as f64 / hours as f64;
    g.hour_count as f64 >= s.escalation_factor * baseline
}

impl Derived for ErrorGroups {
    fn name(&self) -> &'static str {
        "errors"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
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
        for s in rows.spans() {
            if let Some(v) = s.service_version.as_deref() {
                note(
                    &s.service_name,
                    s.deployment_environment.as_deref(),
                    v,
                    s.start_time_unix_nano,
                );
            }
        }
        for l in rows.logs() {
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

        let mut stored: Vec<(i64, &ErrorOccurrence)> = Vec::new();
        for (b, batch) in rows.batches().iter().enumerate() {
            for cmd in &batch.error_commands {
                self.command(raw, cmd)?;
            }
            for o in &batch.errors {
                if o.span_index.is_some_and(|i| !rows.span_kept(b, i)) {
                    continue;
                }
                if self.is_duplicate(o) {
                    continue;
                }
                let id = self.record(o);
                stored.push((id, o));
            }
        }
        self.write(raw, &stored)
    }

    fn committed(&mut self, publish: &mut Vec<Record>) {
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
            if st.recent.insert(k.clone(), t).is_none() {
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

    fn rolled_back(&mut self) {
        self.staged = Staged::default();
    }
}

const EVENT_COLS: &[Col] = &[
    Col::Varchar, // event_id
    Col::Bigint,  // group_id
    Col::UBigint, // time
    Col::Varchar, // source
    Col::Varchar,
    Col::Varchar, // trace, span
    Col::Varchar,
    Col::Varchar,
    Col::Varchar, // service, release, environment
    Col::Varchar,
    Col::Varchar, // session, user
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar, // type, message, stacktrace, frames
    Col::Varchar, // culprit
    Col::Boolean, // handled
    Col::Varchar, // fingerprint
    Col::Varchar,
    Col::Varchar, // gen_ai model, class
];

fn put_event(b: &mut super::duck::ChunkBuilder<'_>, group: i64, o: &ErrorOccurrence) {
    b.str(&o.event_id);
    b.opt_i64(Some(group));
    b.u64(o.time_unix_nano);
    b.str(o.source);
    b.opt_str(o.trace_id.as_deref());
    b.opt_str(o.span_id.as_deref());
    b.str(&o.service_name);
    b.opt_str(o.release.as_deref());
    b.opt_str(o.environment.as_deref());
    b.opt_str(o.session_id.as_deref());
    b.opt_str(o.user.as_deref());
    b.opt_str(o.exception_type.as_deref());
    b.opt_str(o.message.as_deref());
    b.opt_str(o.stacktrace.as_deref());
    b.opt_str(o.frames.as_deref());
    b.opt_str(o.culprit.as_deref());
    b.opt_bool(Some(o.handled));
    b.str(&o.fingerprint);
    b.opt_str(o.genai.as_ref().and_then(|g| g.model.as_deref()));
    b.opt_str(o.genai.as_ref().map(|g| g.error_class));
}

const GROUP_COLS: &[Col] = &[
    Col::Bigint,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar, // fingerprint, hashes, merged
    Col::Varchar,
    Col::Integer,
    Col::Varchar, // rule, version, components
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar, // type, template, culprit, category
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar, // gen_ai
    Col::UBigint,
    Col::UBigint, // first/last seen
    Col::Varchar,
    Col::Varchar,
    Col::Varchar, // first/last release, last env
    Col::UBigint,
    Col::UBigint,
    Col::UBigint, // counts
    Col::Varchar,
    Col::Varchar,
    Col::Varchar, // services, users, traces
    Col::Varchar,
    Col::Varchar, // status, substatus
    Col::UBigint,
    Col::Varchar,
    Col::Varchar, // resolved
    Col::Bigint,  // merged_into
    Col::UBigint,
    Col::UBigint,
    Col::UBigint, // hour, count, escalated
    Col::Varchar, // regressed_in_release
];

fn json_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    serde_json::to_string(&items.into_iter().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

fn put_group(b: &mut super::duck::ChunkBuilder<'_>, g: &Group) {
    b.opt_i64(Some(g.id));
    b.str(&g.fingerprint);
    b.opt_str(g.in_app_hash.as_deref());
    b.opt_str(g.full_stack_hash.as_deref());
    b.str(&json_list(&g.merged_hashes));
    b.str(&g.fingerprint_rule);
    b.i32(g.fingerprint_version);
    b.str(&g.components);
    b.opt_str(g.error_type.as_deref());
    b.opt_str(g.message_template.as_deref());
    b.opt_str(g.culprit.as_deref());
    b.str(&g.category);
    b.opt_str(g.gen_ai_provider.as_deref());
    b.opt_str(g.gen_ai_operation.as_deref());
    b.opt_str(g.gen_ai_model.as_deref());
    b.opt_str(g.gen_ai_error_class.as_deref());
    b.opt_str(g.gen_ai_tool.as_deref());
    b.u64(g.first_seen);
    b.u64(g.last_seen);
    b.opt_str(g.first_release.as_deref());
    b.opt_str(g.last_release.as_deref());
    b.opt_str(g.last_environment.as_deref());
    b.u64(g.event_count);
    b.u64(g.unhandled_count);
    b.u64(g.user_count);
    b.str(&json_list(&g.services));
    b.str(&json_list(&g.users));
    b.str(&json_list(&g.sample_trace_ids));
    b.str(&g.status);
    b.str(&g.substatus);
    b.opt_u64(g.resolved_at);
    b.opt_str(g.resolved_in_release.as_deref());
    b.opt_str(g.resolved_environment.as_deref());
    b.opt_i64(g.merged_into);
    b.u64(g.hour_start);
    b.u64(g.hour_count);
    b.opt_u64(g.escalated_hour);
    b.opt_str(g.regressed_in_release.as_deref());
}

const RELEASE_COLS: &[Col] = &[
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::UBigint,
    Col::UBigint,
    Col::Varchar,
];

fn strings(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

fn load_groups(conn: &Conn, state: &mut State) -> Result<(), StorageError> {
    let ctx = |e| StorageError::sql("loading error groups", e);
    let mut stmt = conn
        .prepare(
            "SELECT id, fingerprint, in_app_hash, full_stack_hash, merged_hashes, fingerprint_rule,
                    fingerprint_version, components, error_type, message_template, culprit, category,
                    gen_ai_provider, gen_ai_operation, gen_ai_model, gen_ai_error_class, gen_ai_tool,
                    first_seen_unix_nano, last_seen_unix_nano, first_release, last_release,
                    last_environment, event_count, unhandled_count, user_count, services, users,
                    sample_trace_ids, status, substatus, resolved_at_unix_nano, resolved_in_release,
                    resolved_environment, merged_into, hour_start_unix_nano, hour_count,
                    escalated_hour_unix_nano, regressed_in_release
             FROM errors",
        )
        .map_err(ctx)?;
    let mut rows = stmt.query([]).map_err(ctx)?;
    while let Some(r) = rows.next().map_err(ctx)? {
        let g = (|| -> duckdb::Result<Group> {
            Ok(Group {
                id: r.get(0)?,
                fingerprint: r.get(1)?,
                in_app_hash: r.get(2)?,
                full_stack_hash: r.get(3)?,
                merged_hashes: strings(&r.get::<_, String>(4)?),
                fingerprint_rule: r.get(5)?,
                fingerprint_version: r.get(6)?,
                components: r.get(7)?,
                error_type: r.get(8)?,
                message_template: r.get(9)?,
                culprit: r.get(10)?,
                category: r.get(11)?,
                gen_ai_provider: r.get(12)?,
                gen_ai_operation: r.get(13)?,
                gen_ai_model: r.get(14)?,
                gen_ai_error_class: r.get(15)?,
                gen_ai_tool: r.get(16)?,
                first_seen: r.get(17)?,
                last_seen: r.get(18)?,
                first_release: r.get(19)?,
                last_release: r.get(20)?,
                last_environment: r.get(21)?,
                event_count: r.get(22)?,
                unhandled_count: r.get(23)?,
                user_count: r.get(24)?,
                services: strings(&r.get::<_, String>(25)?).into_iter().collect(),
                users: strings(&r.get::<_, String>(26)?),
                sample_trace_ids: strings(&r.get::<_, String>(27)?),
                status: r.get(28)?,
                substatus: r.get(29)?,
                resolved_at: r.get(30)?,
                resolved_in_release: r.get(31)?,
                resolved_environment: r.get(32)?,
                merged_into: r.get(33)?,
                hour_start: r.get(34)?,
                hour_count: r.get(35)?,
                escalated_hour: r.get(36)?,
                regressed_in_release: r.get(37)?,
            })
        })()
        .map_err(ctx)?;
        state.next_id = state.next_id.max(g.id + 1);
        for h in g.hashes() {
            state.by_hash.entry(h.clone()).or_insert(g.id);
        }
        state.groups.insert(g.id, g);
    }
    Ok(())
}

fn load_releases(conn: &Conn, state: &mut State) -> Result<(), StorageError> {
    let ctx = |e| StorageError::sql("loading releases", e);
    let mut stmt = conn
        .prepare(
            "SELECT service_name, environment, version, first_seen_unix_nano,
                    last_seen_unix_nano, source FROM releases",
        )
        .map_err(ctx)?;
    let mut rows = stmt.query([]).map_err(ctx)?;
    while let Some(r) = rows.next().map_err(ctx)? {
        let service: String = r.get(0).map_err(ctx)?;
        let env: Option<String> = r.get(1).map_err(ctx)?;
        let version: String = r.get(2).map_err(ctx)?;
        let last_seen: u64 = r.get(4).map_err(ctx)?;
        let source: String = r.get(5).map_err(ctx)?;
        let semver = state
            .all_semver
            .entry((service.clone(), env.clone()))
            .or_insert(true);
        *semver = *semver && parse_version(&version).is_some();
        state.releases.insert(
            (service, env, version),
            Release {
                first_seen: r.get(3).map_err(ctx)?,
                last_seen,
                stored_last_seen: last_seen,
                dirty: false,
                source: if source == "deploy" {
                    "deploy"
                } else {
                    "telemetry"
                },
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::errors::capture::Capture;
    use crate::model::{Batch, SpanRecord};
    use crate::storage::writer::{Writer, WriterConfig, WriterHandle};
    use crate::storage::{open, StorageOptions};
    use crate::stream::Hub;

    const SEC: u64 = 1_000_000_000;

    struct Db {
        writer: Option<Writer>,
        hub: Arc<Hub>,
        reader: Conn,
    }

    impl Db {
        fn new() -> Db {
            let db = open(&StorageOptions::in_memory()).unwrap();
            let reader = db.connect().unwrap();
            let hub = Arc::new(Hub::new(1000));
            let writer = Writer::start(db, hub.clone(), WriterConfig::default(), false).unwrap();
            Db {
                writer: Some(writer),
                hub,
                reader,
            }
        }

        fn handle(&self) -> WriterHandle {
            self.writer.as_ref().unwrap().handle()
        }

        fn send(&self, mut batch: Batch) {
            batch.errors = Capture::default().capture(&batch);
            self.handle()
                .submit(batch)
                .unwrap()
                .blocking_recv()
                .unwrap()
                .unwrap();
        }

        fn command(&self, cmd: ErrorCommand) {
            let batch = Batch {
                error_commands: vec![cmd],
                ..Batch::default()
            };
            self.handle()
                .submit(batch)
                .unwrap()
                .blocking_recv()
                .unwrap()
                .unwrap();
        }

        fn group(&self, id: i64) -> (String, String, u64) {
            self.reader
                .query_row(
                    "SELECT status, substatus, event_count FROM errors WHERE id = ?",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap()
        }

        fn changes(&self) -> Vec<(GroupChange, i64)> {
            self.hub
                .recent(1000, |_| true)
                .iter()
                .filter_map(|e| match &e.record {
                    Record::Error(g) => Some((g.change, g.group_id)),
                    _ => None,
                })
                .collect()
        }

        fn count(&self, sql: &str) -> i64 {
            self.reader.query_row(sql, [], |r| r.get(0)).unwrap()
        }
    }

    impl Drop for Db {
        fn drop(&mut self) {
            if let Some(w) = self.writer.take() {
                w.shutdown();
            }
        }
    }

    /// An ERROR span of `service` from `release` in `env` at `t` seconds.
    fn error_span(id: u64, t: u64, release: &str, env: &str) -> SpanRecord {
        SpanRecord {
            trace_id: format!("{id:032x}"),
            span_id: format!("{id:016x}"),
            name: "POST /pay".into(),
            kind: "SERVER",
            status_code: "ERROR",
            status_message: Some(format!("card {id} declined")),
            start_time_unix_nano: t * SEC,
            end_time_unix_nano: t * SEC + 1,
            service_name: "pay".into(),
            service_version: Some(release.into()),
            deployment_environment: Some(env.into()),
            attributes: r#"{"error.type":"CardDeclined"}"#.into(),
            resource: "{}".into(),
            events: "[]".into(),
            links: "[]".into(),
            ..SpanRecord::default()
        }
    }

    fn spans(spans: Vec<SpanRecord>) -> Batch {
        Batch {
            spans,
            ..Batch::default()
        }
    }

    #[test]
    fn same_error_groups_and_counts_once_per_stored_span() {
        let db = Db::new();
        db.send(spans(vec![
            error_span(1, 100, "1.0.0", "prod"),
            error_span(2, 101, "1.0.0", "prod"),
        ]));
        // A retried export: the spans are duplicates and so are their errors.
        db.send(spans(vec![error_span(2, 101, "1.0.0", "prod")]));
        assert_eq!(db.count("SELECT count(*) FROM errors"), 1);
        assert_eq!(db.group(1), ("unresolved".into(), "new".into(), 2));
        assert_eq!(db.count("SELECT count(*) FROM error_events"), 2);
        assert_eq!(db.changes(), vec![(GroupChange::New, 1)]);
        assert_eq!(
            db.count(
                "SELECT count(*) FROM releases WHERE version = '1.0.0' AND environment = 'prod'"
            ),
            1
        );
    }

    #[test]
    fn resolve_now_regresses_only_on_later_events() {
        let db = Db::new();
        db.send(spans(vec![error_span(1, 100, "1.0.0", "prod")]));
        db.command(ErrorCommand::SetStatus {
            group_id: 1,
            change: StatusChange::ResolveNow,
            at_unix_nano: 200 * SEC,
        });
        assert_eq!(db.group(1).0, "resolved");
        // A late event (it happened before the resolution) does not regress.
        db.send(spans(vec![error_span(2, 150, "1.0.0", "prod")]));
        assert_eq!(db.group(1), ("resolved".into(), "now".into(), 2));
        db.send(spans(vec![error_span(3, 250, "1.0.0", "prod")]));
        assert_eq!(db.group(1), ("unresolved".into(), "regressed".into(), 3));
        assert_eq!(
            db.changes(),
            vec![(GroupChange::New, 1), (GroupChange::Regressed, 1)]
        );
    }

    #[test]
    fn resolve_in_next_release_needs_a_newer_release_in_the_same_environment() {
        let db = Db::new();
        db.send(spans(vec![error_span(1, 100, "1.9.0", "staging")]));
        db.send(spans(vec![error_span(2, 110, "1.9.0", "prod")]));
        db.command(ErrorCommand::SetStatus {
            group_id: 1,
            change: StatusChange::ResolveInNextRelease,
            at_unix_nano: 200 * SEC,
        });
        let resolved_in: (String, String) = db
            .reader
            .query_row(
                "SELECT resolved_in_release, resolved_environment FROM errors WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(resolved_in, ("1.9.0".into(), "prod".into()));
        // The same release keeps failing until the fix ships: no regression.
        db.send(spans(vec![error_span(3, 300, "1.9.0", "prod")]));
        // A newer release in another environment: no regression.
        db.send(spans(vec![error_span(4, 310, "1.10.0", "staging")]));
        // An older release (semver, though first seen later): no regression.
        db.send(spans(vec![error_span(5, 320, "1.8.5", "prod")]));
        assert_eq!(db.group(1).0, "resolved");
        // 1.10.0 > 1.9.0 by semver in prod: regressed.
        db.send(spans(vec![error_span(6, 330, "1.10.0", "prod")]));
        assert_eq!(db.group(1), ("unresolved".into(), "regressed".into(), 6));
    }

    #[test]
    fn non_semver_releases_order_by_first_seen() {
        let db = Db::new();
        db.send(spans(vec![error_span(1, 100, "build-b", "prod")]));
        db.command(ErrorCommand::SetStatus {
            group_id: 1,
            change: StatusChange::ResolveInNextRelease,
            at_unix_nano: 200 * SEC,
        });
        // "build-a" sorts before "build-b" but was deployed later.
        db.send(spans(vec![error_span(2, 300, "build-a", "prod")]));
        assert_eq!(db.group(1).1, "regressed");
    }

    #[test]
    fn archive_until_escalating_and_merge() {
        let db = Db::new();
        db.send(spans(vec![error_span(1, 10, "1", "prod")]));
        db.command(ErrorCommand::SetStatus {
            group_id: 1,
            change: StatusChange::ArchiveUntilEscalating,
            at_unix_nano: 20 * SEC,
        });
        // One event an hour for a few hours: the baseline.
        for h in 1..4u64 {
            db.send(spans(vec![error_span(10 + h, h * 3600 + 5, "1", "prod")]));
        }
        assert_eq!(db.group(1).0, "archived");
        // Then a burst of 12 in one hour: over 10x the baseline and the minimum.
        let burst: Vec<SpanRecord> = (0..12)
            .map(|i| error_span(100 + i, 5 * 3600 + i, "1", "prod"))
            .collect();
        db.send(spans(burst));
        assert_eq!(db.group(1), ("unresolved".into(), "escalating".into(), 16));
        assert!(db.changes().contains(&(GroupChange::Escalating, 1)));

        // A second group (explicit fingerprint), merged into the first.
        let mut other = error_span(500, 9000, "1", "prod");
        other.attributes = r#"{"qyl.fingerprint":"other"}"#.into();
        db.send(spans(vec![other]));
        assert_eq!(db.count("SELECT count(*) FROM errors"), 2);
        db.command(ErrorCommand::Merge {
            target: 1,
            sources: vec![2],
        });
        assert_eq!(db.group(2).0, "merged");
        assert_eq!(db.group(1).2, 17);
        assert_eq!(
            db.count("SELECT count(*) FROM error_events WHERE group_id = 1"),
            17
        );
        // New events of the merged group's fingerprint join the target.
        let mut again = error_span(501, 9100, "1", "prod");
        again.attributes = r#"{"qyl.fingerprint":"other"}"#.into();
        db.send(spans(vec![again]));
        assert_eq!(db.group(1).2, 18);
    }

    #[test]
    fn auto_resolve_and_state_survives_restart_in_memory_cache() {
        let db = Db::new();
        db.send(spans(vec![error_span(1, 100, "1", "prod")]));
        db.command(ErrorCommand::AutoResolve {
            before_unix_nano: 50 * SEC,
            at_unix_nano: 500 * SEC,
        });
        assert_eq!(db.group(1).0, "unresolved");
        db.command(ErrorCommand::AutoResolve {
            before_unix_nano: 150 * SEC,
            at_unix_nano: 500 * SEC,
        });
        assert_eq!(db.group(1), ("resolved".into(), "auto".into(), 1));
        // Loading from the table gives the same groups back.
        let loaded = ErrorGroups::load(&db.reader, GroupSettings::default()).unwrap();
        let g = &loaded.state.groups[&1];
        assert_eq!(g.status, "resolved");
        assert_eq!(g.resolved_at, Some(500 * SEC));
        assert_eq!(loaded.state.next_id, 2);
        assert_eq!(loaded.find(&g.fingerprint), Some(1));
    }

    #[test]
    fn retention_prunes_events_with_their_traces_and_keeps_groups() {
        let db = Db::new();
        db.send(spans(vec![
            error_span(1, 100, "1", "prod"),
            error_span(2, 5000, "1", "prod"),
        ]));
        let report =
            crate::storage::retention::delete_older_than(&db.reader, 1000 * SEC, 1000, &|| false)
                .unwrap();
        assert_eq!((report.traces, report.error_events), (1, 1));
        assert_eq!(db.count("SELECT count(*) FROM error_events"), 1);
        assert_eq!(
            db.count("SELECT count(*) FROM error_events WHERE trace_id = lpad('2', 32, '0')"),
            1
        );
        // The group and its count stay.
        assert_eq!(db.group(1).2, 2);
    }
}
