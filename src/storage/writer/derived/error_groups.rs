//! The error tables (`errors`, `error_event_rows` under the `error_events`
//! view, `releases`), kept current by the writer in each commit's
//! transaction, so an error is counted exactly when its span or log is
//! stored. Which group an occurrence joins and what its status becomes is
//! the error engine's ([`crate::errors::groups`]);
//! this module loads its book at start and writes what a commit changed:
//! only the groups a commit touched are rewritten (deleted and appended
//! again; the table has no key, which keeps appends cheap), events are
//! appended. Each group's distinct users are stored beside it
//! (`error_group_users`), so a restart does not count a user again.
//!
//! When the fingerprint version changed since groups were stored, the
//! first commit after start moves them to the current one
//! ([`crate::errors::regroup`]): groups take their new keys, keep the old
//! ones as aliases, and groups the new rules see as one bug are merged. It
//! counts as pending summary work, so it runs at once, before any event is
//! grouped, and readers that settle wait for it.

use std::collections::{HashMap, HashSet};

use xxhash_rust::xxh3::xxh3_64;

use super::{Committing, Derived};
use crate::errors::baseline::{BASELINE_DAYS, DAY_NS};
use crate::errors::deploys;
use crate::errors::groups::{
    Applied, Group, GroupBook, GroupSettings, Release, ReleaseKey, State, MINUTE_NS,
};
use crate::errors::regroup::{self, OldGroup, Plan, StoredEvent};
use crate::errors::releases::parse_version;
use crate::errors::users::{user_hash, UserSketch};
use crate::errors::FINGERPRINT_VERSION;
use crate::model::errors::{ErrorCommand, ErrorOccurrence};
use crate::model::Record;
use crate::storage::duck::{sql_text, Chunk, Col, RawConn};
use crate::storage::ids::{parse_span_id, parse_trace_id};
use crate::storage::{Conn, DuckError, StorageError};

/// The [`Derived`] writer of the error tables.
pub struct ErrorGroups {
    book: GroupBook,
    /// Work left from older versions, done by the first commit.
    upgrade: Option<Upgrade>,
    /// The open transaction holds the upgrade.
    upgrading: bool,
    /// Commits that held the upgrade and failed.
    upgrade_failures: u32,
    /// Per group, a hash of its user sketch as stored, so a commit that
    /// brings no new user to a group does not rewrite its sketch (a
    /// DELETE and an append of up to 5 KB per group and commit).
    stored_sketches: HashMap<i64, u64>,
    /// What this commit stores, made current when it commits.
    staged_sketches: Vec<(i64, u64)>,
}

/// After this many failed commits the upgrade is given up (and logged), so
/// that it cannot keep every export from being stored.
const UPGRADE_ATTEMPTS: u32 = 3;

/// What the stored groups need once: new fingerprint keys, and user
/// sketches for groups stored before users were.
#[derive(Debug, Default)]
struct Upgrade {
    plan: Plan,
    users: Vec<(i64, UserSketch)>,
}

impl ErrorGroups {
    /// Loads every group and release, and plans what groups stored by an
    /// older version need.
    pub fn load(conn: &Conn, settings: GroupSettings) -> Result<ErrorGroups, StorageError> {
        let mut state = State {
            next_id: 1,
            ..State::default()
        };
        load_groups(conn, &mut state)?;
        load_recent_days(conn, &mut state, crate::model::now_unix_nano())?;
        let with_sketch = load_user_sketches(conn, &mut state)?;
        load_releases(conn, &mut state)?;
        let plan = plan_regroup(conn, &state, &settings)?;
        let users = backfill_users(conn, &state, &with_sketch)?;
        let upgrade = (!plan.is_empty() || !users.is_empty()).then_some(Upgrade { plan, users });
        let stored_sketches = state
            .groups
            .values()
            .filter(|g| with_sketch.contains(&g.id))
            .map(|g| (g.id, xxh3_64(g.user_sketch.encode().as_bytes())))
            .collect();
        Ok(ErrorGroups {
            book: GroupBook::new(settings, state),
            upgrade,
            upgrading: false,
            upgrade_failures: 0,
            stored_sketches,
            staged_sketches: Vec::new(),
        })
    }

    /// Moves stored groups to the current fingerprint version and stores
    /// their user sketches, inside the open transaction.
    fn run_upgrade(&mut self, raw: &RawConn) -> Result<(), DuckError> {
        let Some(up) = self.upgrade.as_ref() else {
            return Ok(());
        };
        self.upgrading = true;
        for (id, sketch) in &up.users {
            if let Some(g) = self.book.group_mut(*id) {
                g.user_count = g.user_count.max(sketch.count());
                g.user_sketch = sketch.clone();
            }
        }
        for r in &up.plan.rekeyed {
            self.book.rekey(r);
        }
        for id in &up.plan.version_only {
            self.book.mark_current(*id);
        }
        let merges: Vec<ErrorCommand> = up
            .plan
            .merges
            .iter()
            .map(|(target, sources)| ErrorCommand::Merge {
                target: *target,
                sources: sources.clone(),
            })
            .collect();
        for cmd in &merges {
            self.command(raw, cmd)?;
        }
        Ok(())
    }

    /// Applies a user's or a job's command and moves the rows it concerns.
    fn command(&mut self, raw: &RawConn, cmd: &ErrorCommand) -> Result<(), DuckError> {
        match self.book.command(cmd) {
            Applied::Nothing => Ok(()),
            Applied::Merged { target, sources } => {
                let ids: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
                raw.execute(&format!(
                    "UPDATE error_event_rows SET group_id = {target} WHERE group_id IN ({})",
                    ids.join(",")
                ))?;
                super::error_notes::merge(raw, target, &sources)?;
                super::deploys::merge(raw, target, &sources)
            }
            Applied::Note {
                group_id,
                author,
                text,
                at_unix_nano,
            } => super::error_notes::insert(raw, group_id, at_unix_nano, &author, &text),
        }
    }

    fn write(
        &mut self,
        raw: &RawConn,
        events: &[(i64, &ErrorOccurrence)],
    ) -> Result<(), DuckError> {
        if !events.is_empty() {
            let chunks = Chunk::fill(EVENT_COLS, events, |b, (gid, o)| put_event(b, *gid, o));
            raw.append_chunks("error_event_rows", &chunks)?;
        }
        if !self.book.staged.groups.is_empty() {
            let ids: Vec<String> = self
                .book
                .staged
                .groups
                .keys()
                .map(|k| k.to_string())
                .collect();
            raw.execute(&format!(
                "DELETE FROM errors WHERE id IN ({})",
                ids.join(",")
            ))?;
            let rows: Vec<&Group> = self.book.staged.groups.values().collect();
            let chunks = Chunk::fill(GROUP_COLS, &rows, |b, g| put_group(b, g));
            raw.append_chunks("errors", &chunks)?;
            write_user_sketches(raw, &rows, &self.stored_sketches, &mut self.staged_sketches)?;
        }
        let dirty: Vec<(&ReleaseKey, &Release)> = self
            .book
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
            raw.append_chunks("releases", &chunks)?;
            let written: Vec<ReleaseKey> = dirty.iter().map(|(k, _)| (*k).clone()).collect();
            for k in written {
                if let Some(r) = self.book.staged.releases.get_mut(&k) {
                    r.stored_last_seen = r.last_seen;
                    r.dirty = false;
                }
            }
        }
        Ok(())
    }
}

impl Derived for ErrorGroups {
    fn name(&self) -> &'static str {
        "errors"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        // Before any event: new events must find groups by current keys.
        self.run_upgrade(raw)?;
        self.book.see_telemetry_releases(rows.spans(), rows.logs());

        // Releases new in this commit fix groups before its events are
        // counted, so a fix and its regression are both recorded.
        let mut new_releases = HashSet::new();
        let mut changes = deploys::fixed_by_new_releases(&self.book, &mut new_releases);
        let mut stored: Vec<(i64, &ErrorOccurrence)> = Vec::new();
        for (b, batch) in rows.batches().iter().enumerate() {
            for cmd in &batch.error_commands {
                if let ErrorCommand::ResolveQuietAfterDeploy {
                    quiet_ns,
                    at_unix_nano,
                } = cmd
                {
                    changes.extend(deploys::resolve_quiet(
                        &mut self.book,
                        *quiet_ns,
                        *at_unix_nano,
                    ));
                    continue;
                }
                self.command(raw, cmd)?;
            }
            // Releases recorded by CI in this batch.
            changes.extend(deploys::fixed_by_new_releases(
                &self.book,
                &mut new_releases,
            ));
            for o in &batch.errors {
                if o.span_index.is_some_and(|i| !rows.span_kept(b, i)) {
                    continue;
                }
                if self.book.is_duplicate(o) {
                    continue;
                }
                let id = self.book.record(o);
                stored.push((id, o));
            }
        }
        changes.extend(deploys::changes_from_events(&self.book.staged.publish));
        self.write(raw, &stored)?;
        super::deploys::write_changes(raw, &changes)
    }

    fn committed(&mut self, publish: &mut Vec<Record>) {
        self.book.commit(publish);
        self.stored_sketches.extend(self.staged_sketches.drain(..));
        if std::mem::take(&mut self.upgrading) {
            if let Some(up) = self.upgrade.take() {
                tracing::info!(
                    version = FINGERPRINT_VERSION,
                    rekeyed = up.plan.rekeyed.len(),
                    unchanged = up.plan.version_only.len(),
                    merged = up.plan.merges.iter().map(|(_, s)| s.len()).sum::<usize>(),
                    user_sketches = up.users.len(),
                    "error groups moved to the current fingerprint version"
                );
            }
        }
    }

    fn rolled_back(&mut self) {
        self.book.rollback();
        self.staged_sketches.clear();
        if std::mem::take(&mut self.upgrading) {
            self.upgrade_failures += 1;
            if self.upgrade_failures >= UPGRADE_ATTEMPTS {
                self.upgrade = None;
                tracing::error!(
                    attempts = self.upgrade_failures,
                    "moving error groups to the current fingerprint version keeps failing; \
                     given up until the next start (new events may start new groups)"
                );
            }
        }
    }

    fn pending(&self) -> bool {
        self.upgrade.is_some()
    }

    fn publishes(&self) -> usize {
        self.book.staged.publish.len()
    }
}

/// The columns of `error_event_rows`: ids as numbers (`storage::ids`).
const EVENT_COLS: &[Col] = &[
    Col::UHugeint, // event_id
    Col::Bigint,   // group_id
    Col::UBigint,  // time
    Col::Varchar,  // source
    Col::UHugeint,
    Col::UBigint, // trace, span
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

fn put_event(b: &mut crate::storage::duck::ChunkBuilder<'_>, group: i64, o: &ErrorOccurrence) {
    // Ingest and capture only make ids of the right length in hex; one that
    // is not would be stored as 0 (event) or NULL (trace, span).
    b.u128(parse_trace_id(&o.event_id).unwrap_or(0));
    b.opt_i64(Some(group));
    b.u64(o.time_unix_nano);
    b.str(o.source);
    match o.trace_id.as_deref().and_then(parse_trace_id) {
        Some(id) => b.u128(id),
        None => b.null(),
    }
    b.opt_u64(o.span_id.as_deref().and_then(parse_span_id));
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

fn put_group(b: &mut crate::storage::duck::ChunkBuilder<'_>, g: &Group) {
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
                user_sketch: UserSketch::default(),
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
                recent_days: Default::default(),
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

/// The escalation baselines: each group's stored events per day over the
/// week before today (events retention already deleted are not counted).
fn load_recent_days(conn: &Conn, state: &mut State, now: u64) -> Result<(), StorageError> {
    let ctx = |e| StorageError::sql("loading the error groups' recent days", e);
    let since = (now / DAY_NS).saturating_sub(BASELINE_DAYS) * DAY_NS;
    let mut stmt = conn
        .prepare(
            "SELECT group_id, time_unix_nano // ?, count(*) FROM error_event_rows
             WHERE time_unix_nano >= ? GROUP BY ALL ORDER BY 2",
        )
        .map_err(ctx)?;
    let mut rows = stmt.query(duckdb::params![DAY_NS, since]).map_err(ctx)?;
    while let Some(r) = rows.next().map_err(ctx)? {
        let id: i64 = r.get(0).map_err(ctx)?;
        let day: u64 = r.get(1).map_err(ctx)?;
        let n: u64 = r.get(2).map_err(ctx)?;
        if let Some(g) = state.groups.get_mut(&id) {
            g.recent_days
                .add(day * DAY_NS, n.min(u64::from(u32::MAX)) as u32);
        }
    }
    Ok(())
}

const USER_COLS: &[Col] = &[Col::Bigint, Col::Varchar];

/// Rewrites the user sketches of the groups a commit touched whose users
/// changed since they were stored (`stored`: hashes of the stored
/// encodings); what it writes goes to `staged`.
fn write_user_sketches(
    raw: &RawConn,
    groups: &[&Group],
    stored: &HashMap<i64, u64>,
    staged: &mut Vec<(i64, u64)>,
) -> Result<(), DuckError> {
    let rows: Vec<(i64, String)> = groups
        .iter()
        .filter(|g| !g.user_sketch.is_empty())
        .map(|g| (g.id, g.user_sketch.encode()))
        .filter(|(id, text)| {
            let hash = xxh3_64(text.as_bytes());
            if stored.get(id) == Some(&hash) {
                return false;
            }
            staged.push((*id, hash));
            true
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = rows.iter().map(|(id, _)| id.to_string()).collect();
    raw.execute(&format!(
        "DELETE FROM error_group_users WHERE group_id IN ({})",
        ids.join(",")
    ))?;
    let chunks = Chunk::fill(USER_COLS, &rows, |b, (id, sketch)| {
        b.opt_i64(Some(*id));
        b.str(sketch);
    });
    raw.append_chunks("error_group_users", &chunks)
}

/// Loads each group's user sketch; returns the groups that have one.
fn load_user_sketches(
    conn: &Conn,
    state: &mut State,
) -> Result<std::collections::HashSet<i64>, StorageError> {
    let ctx = |e| StorageError::sql("loading the users of error groups", e);
    let mut stmt = conn
        .prepare("SELECT group_id, sketch FROM error_group_users")
        .map_err(ctx)?;
    let mut rows = stmt.query([]).map_err(ctx)?;
    let mut with_sketch = std::collections::HashSet::new();
    while let Some(r) = rows.next().map_err(ctx)? {
        let id: i64 = r.get(0).map_err(ctx)?;
        let text: String = r.get(1).map_err(ctx)?;
        let Some(sketch) = UserSketch::decode(&text) else {
            tracing::warn!(
                group = id,
                "unreadable user sketch; its users are counted anew"
            );
            continue;
        };
        if let Some(g) = state.groups.get_mut(&id) {
            g.user_sketch = sketch;
            with_sketch.insert(id);
        }
    }
    Ok(with_sketch)
}

/// Sketches for groups stored before their users were: from the sample
/// kept with the group and the users of its stored events.
fn backfill_users(
    conn: &Conn,
    state: &State,
    with_sketch: &std::collections::HashSet<i64>,
) -> Result<Vec<(i64, UserSketch)>, StorageError> {
    let missing: Vec<i64> = state
        .groups
        .values()
        .filter(|g| g.user_count > 0 && !with_sketch.contains(&g.id))
        .map(|g| g.id)
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let mut sketches: HashMap<i64, UserSketch> = HashMap::new();
    for id in &missing {
        let mut s = UserSketch::default();
        for u in &state.groups[id].users {
            s.insert(user_hash(u));
        }
        sketches.insert(*id, s);
    }
    let ctx = |e| StorageError::sql("reading the users of stored error events", e);
    let mut stmt = conn
        .prepare(
            "SELECT DISTINCT e.group_id, e.user_id FROM error_event_rows e
             WHERE e.user_id IS NOT NULL AND e.group_id IN (
                 SELECT id FROM errors WHERE user_count > 0
                 AND id NOT IN (SELECT group_id FROM error_group_users))",
        )
        .map_err(ctx)?;
    let mut rows = stmt.query([]).map_err(ctx)?;
    while let Some(r) = rows.next().map_err(ctx)? {
        let id: i64 = r.get(0).map_err(ctx)?;
        let user: String = r.get(1).map_err(ctx)?;
        if let Some(s) = sketches.get_mut(&id) {
            s.insert(user_hash(&user));
        }
    }
    let mut out: Vec<(i64, UserSketch)> = sketches.into_iter().collect();
    out.sort_by_key(|(id, _)| *id);
    Ok(out)
}

/// Reads what [`regroup::plan`] needs: every group, and for the outdated
/// ones keyed by frames, the newest event per hash it was recorded with.
fn plan_regroup(
    conn: &Conn,
    state: &State,
    settings: &GroupSettings,
) -> Result<Plan, StorageError> {
    if !state
        .groups
        .values()
        .any(|g| regroup::outdated(g.fingerprint_version))
    {
        return Ok(Plan::default());
    }
    let groups: Vec<OldGroup> = state
        .groups
        .values()
        .map(|g| OldGroup {
            id: g.id,
            version: g.fingerprint_version,
            rule: g.fingerprint_rule.clone(),
            fingerprint: g.fingerprint.clone(),
            in_app_hash: g.in_app_hash.clone(),
            full_stack_hash: g.full_stack_hash.clone(),
            components: g.components.clone(),
            first_seen: g.first_seen,
            merged_into: g.merged_into.filter(|_| g.status == "merged"),
        })
        .collect();
    let ctx = |e| StorageError::sql("reading stored error events to regroup", e);
    let mut stmt = conn
        .prepare(
            "SELECT group_id, fingerprint, time_unix_nano, frames, error_type, message
             FROM error_event_rows
             WHERE frames IS NOT NULL AND group_id IN (
                 SELECT id FROM errors WHERE fingerprint_version < ?
                 AND fingerprint_rule IN ('in_app_frames', 'all_frames', 'explicit'))
             QUALIFY row_number() OVER (
                 PARTITION BY group_id, fingerprint ORDER BY time_unix_nano DESC) = 1",
        )
        .map_err(ctx)?;
    let mut rows = stmt.query([FINGERPRINT_VERSION]).map_err(ctx)?;
    let mut events = Vec::new();
    while let Some(r) = rows.next().map_err(ctx)? {
        events.push(StoredEvent {
            group_id: r.get(0).map_err(ctx)?,
            fingerprint: r.get(1).map_err(ctx)?,
            time_unix_nano: r.get(2).map_err(ctx)?,
            frames: r.get(3).map_err(ctx)?,
            exception_type: r.get(4).map_err(ctx)?,
            message: r.get(5).map_err(ctx)?,
        });
    }
    let mut groups = groups;
    groups.sort_by_key(|g| g.id);
    Ok(regroup::plan(&groups, &events, &settings.in_app))
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
    use crate::model::errors::{ErrorCommand, GroupChange, StatusChange};
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
            trace_id: format!("{id:032x}").into(),
            span_id: format!("{id:016x}").into(),
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
        let g = &loaded.book.state.groups[&1];
        assert_eq!(g.status, "resolved");
        assert_eq!(g.resolved_at, Some(500 * SEC));
        assert_eq!(loaded.book.state.next_id, 2);
        assert_eq!(loaded.book.find(&g.fingerprint), Some(1));
    }

    #[test]
    fn the_escalation_week_is_loaded_from_stored_events() {
        let db = Db::new();
        let now = crate::model::now_unix_nano() / SEC;
        let day = DAY_NS / SEC;
        // Three events two days ago, one nine days ago (outside the week).
        db.send(spans(vec![
            error_span(1, now - 2 * day, "1", "prod"),
            error_span(2, now - 2 * day + 1, "1", "prod"),
            error_span(3, now - 2 * day + 2, "1", "prod"),
            error_span(4, now - 9 * day, "1", "prod"),
        ]));
        let loaded = ErrorGroups::load(&db.reader, GroupSettings::default()).unwrap();
        let g = &loaded.book.state.groups[&1];
        let two_days_ago = (now - 2 * day) * SEC / DAY_NS;
        assert_eq!(g.recent_days.on_day(two_days_ago), 3);
        assert_eq!(g.recent_days.on_day(two_days_ago - 7), 0);
        assert_eq!(g.event_count, 4);
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
