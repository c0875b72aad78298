//! `session_entities`: one row per session, kept current by the writer in
//! each commit's own transaction, so the session list is a small-table read
//! instead of a scan of every span.
//!
//! A span's session is its `session.id` (else `gen_ai.conversation.id`,
//! both already resolved at ingest into `session_id`). Spans of the same
//! trace without one join the trace's session: from another span of the
//! trace in the same commit, or from a recent commit (a bounded cache of
//! trace → session, because SDKs export a trace's spans as they end, over
//! several exports). A trace with neither but with a GenAI call is a session
//! of its own, keyed by the trace id; plain request traces are not sessions
//! (the trace list covers them).
//!
//! The spans are aggregated in Rust per (session, trace), in memory until
//! the writer asks for a flush (see `writer::derived`); then those rows are
//! appended to `session_trace_rows` (which keeps each session's traces and
//! lets retention recompute a session; the `session_traces` view prints
//! their trace ids as hex), and the per-session sums go to a staging table
//! and into `session_entities` with one set-based upsert.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use smallvec::SmallVec;

use super::{Committing, Derived, StagedUpsert};
use crate::model::{keyed_hash, SpanRecord, TraceId};
use crate::storage::duck::{Chunk, ChunkBuilder, Col, DuckError, RawConn};
use crate::storage::ids::parse_trace_id;
use crate::storage::writer::dedup::Recent;
use crate::storage::{Conn, StorageError};

/// Trace → session pairs remembered for spans that arrive later.
const TRACE_CACHE: usize = 200_000;

/// Separates list items in the VARCHAR staging columns (never in names).
const SEP: char = '\u{1f}';

const STAGE: &str = "qyl_session_stage";

/// The columns `session_trace_rows` and the staging table share, in order.
const COLS: &[Col] = &[
    Col::Varchar,  // session_id
    Col::UHugeint, // trace_id (staging: unused, 0)
    Col::UBigint,  // first seen
    Col::UBigint,  // last seen
    Col::UBigint,  // spans
    Col::UBigint,  // errors
    Col::UBigint,  // GenAI requests
    Col::Bigint,   // input tokens
    Col::Bigint,   // output
    Col::Bigint,   // cache read
    Col::Bigint,   // cache write
    Col::Double,   // cost
    Col::UBigint,  // unpriced requests
    Col::Varchar,  // models
    Col::Varchar,  // services
    Col::Varchar,  // users
];

/// The staging table adds the count of traces new to the session.
const STAGE_COLS: &[Col] = &[
    Col::Varchar,
    Col::UHugeint,
    Col::UBigint,
    Col::UBigint,
    Col::UBigint,
    Col::UBigint,
    Col::UBigint,
    Col::Bigint,
    Col::Bigint,
    Col::Bigint,
    Col::Bigint,
    Col::Double,
    Col::UBigint,
    Col::Varchar,
    Col::Varchar,
    Col::Varchar,
    Col::UBigint, // new traces
];

#[derive(Default, Clone)]
struct Sums {
    first: u64,
    last: u64,
    spans: u64,
    errors: u64,
    requests: u64,
    input: i64,
    output: i64,
    cache_read: i64,
    cache_write: i64,
    cost: f64,
    unpriced: u64,
    models: Names,
    services: Names,
    users: Names,
}

/// The distinct models, services or users of a trace or session: nearly
/// always one, so it is held inline and shares the span's `Arc` (a trace's
/// sums used to allocate two lists and two strings).
type Names = SmallVec<[Arc<str>; 1]>;

fn add_unique(list: &mut Names, v: &Arc<str>) {
    if !v.is_empty() && !list.iter().any(|x| x == v) {
        list.push(if v.contains(SEP) {
            v.replace(SEP, " ").into()
        } else {
            v.clone()
        });
    }
}

/// `list` joined by [`SEP`], borrowed when it has one name.
fn joined(list: &Names) -> std::borrow::Cow<'_, str> {
    match list.as_slice() {
        [] => "".into(),
        [one] => (**one).into(),
        many => many.join(&SEP.to_string()).into(),
    }
}

impl Sums {
    fn new() -> Sums {
        Sums {
            first: u64::MAX,
            ..Sums::default()
        }
    }

    fn add_span(&mut self, s: &SpanRecord) {
        self.first = self.first.min(s.start_time_unix_nano);
        self.last = self
            .last
            .max(s.end_time_unix_nano.max(s.start_time_unix_nano));
        self.spans += 1;
        if s.status_code == "ERROR" {
            self.errors += 1;
        }
        add_unique(&mut self.services, &s.service_name);
        let g = &s.genai;
        if let Some(u) = &s.user_id {
            add_unique(&mut self.users, u);
        }
        if g.is_call() {
            self.requests += 1;
            self.input += g.input_tokens.unwrap_or(0);
            self.output += g.output_tokens.unwrap_or(0);
            self.cache_read += g.cache_read_tokens.unwrap_or(0);
            self.cache_write += g.cache_write_tokens.unwrap_or(0);
            self.cost += g.cost_usd.unwrap_or(0.0);
            if g.cost_source == Some("missing") {
                self.unpriced += 1;
            }
            if let Some(m) = g.model() {
                if !self.models.iter().any(|x| **x == *m) {
                    add_unique(&mut self.models, &Arc::from(m));
                }
            }
        }
    }

    fn merge(&mut self, o: &Sums) {
        self.first = self.first.min(o.first);
        self.last = self.last.max(o.last);
        self.spans += o.spans;
        self.errors += o.errors;
        self.requests += o.requests;
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write += o.cache_write;
        self.cost += o.cost;
        self.unpriced += o.unpriced;
        for (dst, src) in [
            (&mut self.models, &o.models),
            (&mut self.services, &o.services),
            (&mut self.users, &o.users),
        ] {
            for v in src {
                add_unique(dst, v);
            }
        }
    }

    fn put(&self, b: &mut ChunkBuilder<'_>, session: &str, trace: u128) {
        b.str(session);
        b.u128(trace);
        b.u64(self.first);
        b.u64(self.last);
        b.u64(self.spans);
        b.u64(self.errors);
        b.u64(self.requests);
        b.opt_i64(Some(self.input));
        b.opt_i64(Some(self.output));
        b.opt_i64(Some(self.cache_read));
        b.opt_i64(Some(self.cache_write));
        b.opt_f64(Some(self.cost));
        b.u64(self.unpriced);
        b.str(&joined(&self.models));
        b.str(&joined(&self.services));
        b.str(&joined(&self.users));
    }
}

/// Sums folded from committed spans and not yet written (see
/// `writer::derived`: they are written when the writer says so).
#[derive(Default)]
struct Folded {
    /// Per (session, trace), for `session_trace_rows`.
    traces: HashMap<(Arc<str>, TraceId), Sums>,
    /// Per session, with how many of its traces are new to it.
    sessions: HashMap<Arc<str>, (Sums, u64)>,
}

impl Folded {
    fn is_empty(&self) -> bool {
        self.traces.is_empty()
    }

    fn add(&mut self, session: &Arc<str>, trace: TraceId, sums: Sums, is_new: bool) {
        match self.sessions.entry(session.clone()) {
            Entry::Occupied(mut e) => {
                e.get_mut().0.merge(&sums);
                e.get_mut().1 += u64::from(is_new);
            }
            Entry::Vacant(e) => {
                e.insert((sums.clone(), u64::from(is_new)));
            }
        }
        match self.traces.entry((session.clone(), trace)) {
            Entry::Occupied(mut e) => e.get_mut().merge(&sums),
            Entry::Vacant(e) => {
                e.insert(sums);
            }
        }
    }

    /// Empties the sums and keeps the maps' room: they fill again to about
    /// the same size at the next commit or flush.
    fn clear(&mut self) {
        self.traces.clear();
        self.sessions.clear();
    }

    /// Moves `other`'s sums into these, leaving `other` empty with its room.
    fn absorb(&mut self, other: &mut Folded) {
        for ((session, trace), sums) in other.traces.drain() {
            match self.traces.entry((session, trace)) {
                Entry::Occupied(mut e) => e.get_mut().merge(&sums),
                Entry::Vacant(e) => {
                    e.insert(sums);
                }
            }
        }
        for (session, (sums, new)) in other.sessions.drain() {
            match self.sessions.entry(session) {
                Entry::Occupied(mut e) => {
                    e.get_mut().0.merge(&sums);
                    e.get_mut().1 += new;
                }
                Entry::Vacant(e) => {
                    e.insert((sums, new));
                }
            }
        }
    }
}

/// The derived table; see the module comment.
pub struct SessionEntities {
    /// Hash of a recent trace's id → its session.
    traces: Recent<Arc<str>>,
    /// Pairs this commit added, made current once it commits.
    staged: Vec<(u64, Arc<str>)>,
    /// Sums of earlier commits not written yet.
    pending: Folded,
    /// This commit's sums.
    current: Folded,
    /// Whether this commit writes `pending` and `current`.
    flushing: bool,
    /// The per-session sums, folded into `session_entities`.
    stage: StagedUpsert,
    /// Room for grouping a commit's spans by trace, kept between commits.
    by_trace: ByTrace,
}

/// A commit's spans grouped by trace (see [`SessionEntities::fold`]).
#[derive(Default)]
struct ByTrace {
    index: HashMap<TraceId, usize, foldhash::fast::RandomState>,
    traces: Vec<TraceSpans>,
}

impl ByTrace {
    fn clear(&mut self) {
        self.index.clear();
        self.traces.clear();
    }
}

/// One trace's spans in a commit.
struct TraceSpans {
    trace: TraceId,
    /// The session id the first of its spans that has one names.
    session_id: Option<Arc<str>>,
    /// Whether any of its spans is a GenAI call.
    call: bool,
    /// What [`SessionEntities::session_of`] made of the above.
    session: Option<(Arc<str>, bool, u64)>,
    sums: Sums,
}

/// A trace's key in [`SessionEntities::traces`]: keyed, as the table
/// takes it for its hash.
fn trace_key(trace: &str) -> u64 {
    keyed_hash(trace.as_bytes())
}

/// `a␟b` as a DuckDB list, `[]` for the empty string.
fn split(col: &str) -> String {
    format!("CASE WHEN {col} = '' THEN []::VARCHAR[] ELSE string_split({col}, chr(31)) END")
}

fn merged(col: &str) -> String {
    format!("list_sort(list_distinct(list_concat({col}, excluded.{col})))")
}

impl SessionEntities {
    /// Remembers the sessions of the most recently active traces.
    pub fn load(conn: &Conn) -> Result<SessionEntities, StorageError> {
        let mut s = SessionEntities {
            traces: Recent::new(TRACE_CACHE),
            staged: Vec::new(),
            pending: Folded::default(),
            current: Folded::default(),
            flushing: false,
            by_trace: ByTrace::default(),
            stage: StagedUpsert::new(
                STAGE,
                format!(
                    "CREATE TEMP TABLE IF NOT EXISTS {STAGE} AS
                     SELECT *, 0::UBIGINT AS new_traces FROM session_trace_rows LIMIT 0"
                ),
                upsert_sql(),
            ),
        };
        let ctx = |e| StorageError::sql("loading recent session traces", e);
        let mut stmt = conn
            .prepare(&format!(
                "SELECT trace_id, any_value(session_id) FROM (
                    SELECT trace_id, session_id FROM session_trace_rows
                    ORDER BY last_seen_unix_nano DESC LIMIT {TRACE_CACHE})
                 GROUP BY trace_id"
            ))
            .map_err(ctx)?;
        let mut rows = stmt.query([]).map_err(ctx)?;
        while let Some(row) = rows.next().map_err(ctx)? {
            let trace = crate::storage::ids::trace_id_at(row, 0).map_err(ctx)?;
            let session: String = row.get(1).map_err(ctx)?;
            s.traces.insert(trace_key(&trace), session.into());
        }
        Ok(s)
    }

    /// Sums `spans` per session and trace into `into`; pairs of a trace
    /// and a session new to each other go to `staged`.
    fn fold<'s>(
        traces: &Recent<Arc<str>>,
        staged: &mut Vec<(u64, Arc<str>)>,
        spans: impl Iterator<Item = &'s SpanRecord>,
        into: &mut Folded,
        by_trace: &mut ByTrace,
    ) {
        by_trace.clear();
        // Which trace each span belongs to, and what the trace's spans say
        // about its session, in one pass.
        let spans: Vec<(&SpanRecord, usize)> = spans
            .map(|s| {
                let i = *by_trace.index.entry(s.trace_id).or_insert_with(|| {
                    by_trace.traces.push(TraceSpans {
                        trace: s.trace_id,
                        session_id: None,
                        call: false,
                        session: None,
                        sums: Sums::new(),
                    });
                    by_trace.traces.len() - 1
                });
                let t = &mut by_trace.traces[i];
                if t.session_id.is_none() {
                    // The first of the trace's spans that names one.
                    t.session_id = s.session_id.clone();
                }
                t.call |= s.genai.is_call();
                (s, i)
            })
            .collect();
        for t in &mut by_trace.traces {
            t.session = Self::session_of(traces, t);
        }
        // Only the spans of traces that are part of a session are summed.
        for (s, i) in spans {
            let t = &mut by_trace.traces[i];
            if t.session.is_some() {
                t.sums.add_span(s);
            }
        }
        for t in by_trace.traces.drain(..) {
            let Some((session, is_new, hash)) = t.session else {
                continue;
            };
            if is_new {
                staged.push((hash, session.clone()));
            }
            into.add(&session, t.trace, t.sums, is_new);
        }
    }

    /// A trace's session (see the module comment), whether the trace is new
    /// to it, and the trace's hash in `traces`; `None` for a plain request
    /// trace.
    fn session_of(traces: &Recent<Arc<str>>, t: &TraceSpans) -> Option<(Arc<str>, bool, u64)> {
        let hash = trace_key(&t.trace);
        let known = traces.get(hash);
        let session: Arc<str> = match &t.session_id {
            Some(id) => match known {
                Some(k) if **k == **id => k.clone(),
                _ => id.clone(),
            },
            None => match known {
                Some(k) => k.clone(),
                None if t.call => Arc::from(&*t.trace),
                None => return None,
            },
        };
        let is_new = known.map(|k| &**k) != Some(&*session);
        Some((session, is_new, hash))
    }

    /// Appends the traces' rows and upserts the sessions of `pending` and
    /// `current`, in the open transaction.
    fn write(&mut self, raw: &RawConn) -> Result<(), DuckError> {
        if self.pending.is_empty() && self.current.is_empty() {
            return Ok(());
        }
        let per_trace: Vec<_> = self
            .pending
            .traces
            .iter()
            .chain(&self.current.traces)
            .collect();
        let chunks = Chunk::fill(COLS, &per_trace, |b, ((session, trace), sums)| {
            sums.put(b, session, parse_trace_id(trace).unwrap_or(0))
        });
        raw.append_chunks("session_trace_rows", &chunks)?;

        // One row per session in the stage (the upsert needs unique keys).
        let mut sessions = self.pending.sessions.clone();
        for (session, (sums, new)) in &self.current.sessions {
            let e = sessions
                .entry(session.clone())
                .or_insert_with(|| (Sums::new(), 0));
            e.0.merge(sums);
            e.1 += new;
        }
        let staged: Vec<_> = sessions.into_iter().collect();
        let chunks = Chunk::fill(STAGE_COLS, &staged, |b, (session, (sums, new))| {
            sums.put(b, session, 0);
            b.u64(*new);
        });
        self.stage.run(raw, &chunks)
    }
}

impl Derived for SessionEntities {
    fn name(&self) -> &'static str {
        "session_entities"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        self.current.clear();
        Self::fold(
            &self.traces,
            &mut self.staged,
            rows.spans(),
            &mut self.current,
            &mut self.by_trace,
        );
        self.flushing = rows.flush();
        if self.flushing {
            self.write(raw)?;
        }
        Ok(())
    }

    fn committed(&mut self, _publish: &mut Vec<crate::model::Record>) {
        for (trace, session) in std::mem::take(&mut self.staged) {
            self.traces.insert(trace, session);
        }
        if self.flushing {
            self.pending.clear();
            self.current.clear();
        } else {
            self.pending.absorb(&mut self.current);
        }
        self.flushing = false;
        self.stage.committed();
    }

    fn rolled_back(&mut self) {
        self.staged.clear();
        self.current.clear();
        self.flushing = false;
        self.stage.rolled_back();
    }

    fn pending(&self) -> bool {
        !self.pending.is_empty()
    }

    fn replay(&mut self, spans: &[SpanRecord]) {
        let mut folded = Folded::default();
        Self::fold(
            &self.traces,
            &mut self.staged,
            spans.iter(),
            &mut folded,
            &mut self.by_trace,
        );
        self.pending.absorb(&mut folded);
        for (trace, session) in std::mem::take(&mut self.staged) {
            self.traces.insert(trace, session);
        }
    }
}

fn upsert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "INSERT INTO session_entities
             SELECT session_id, first_seen_unix_nano, last_seen_unix_nano, span_count,
                    new_traces, error_count, gen_ai_requests, gen_ai_input_tokens,
                    gen_ai_output_tokens, gen_ai_cache_read_tokens, gen_ai_cache_write_tokens,
                    gen_ai_cost_usd, gen_ai_unpriced_requests,
                    list_sort({}), list_sort({}), list_sort({})
             FROM {STAGE}
             ON CONFLICT (session_id) DO UPDATE SET
                first_seen_unix_nano = least(first_seen_unix_nano, excluded.first_seen_unix_nano),
                last_seen_unix_nano = greatest(last_seen_unix_nano, excluded.last_seen_unix_nano),
                span_count = span_count + excluded.span_count,
                trace_count = trace_count + excluded.trace_count,
                error_count = error_count + excluded.error_count,
                gen_ai_requests = gen_ai_requests + excluded.gen_ai_requests,
                gen_ai_input_tokens = gen_ai_input_tokens + excluded.gen_ai_input_tokens,
                gen_ai_output_tokens = gen_ai_output_tokens + excluded.gen_ai_output_tokens,
                gen_ai_cache_read_tokens = gen_ai_cache_read_tokens + excluded.gen_ai_cache_read_tokens,
                gen_ai_cache_write_tokens = gen_ai_cache_write_tokens + excluded.gen_ai_cache_write_tokens,
                gen_ai_cost_usd = gen_ai_cost_usd + excluded.gen_ai_cost_usd,
                gen_ai_unpriced_requests = gen_ai_unpriced_requests + excluded.gen_ai_unpriced_requests,
                models = {},
                services = {},
                users = {}",
            split("models"),
            split("services"),
            split("users"),
            merged("models"),
            merged("services"),
            merged("users"),
        )
    })
}

/// Retention: the traces listed by `traces_sql` (a query of one column,
/// `trace_id` as `span_rows` stores it, taking `param`) are being deleted
/// in the open transaction of `conn`. Their rows leave `session_trace_rows`; sessions left without
/// traces are deleted and the others recomputed from what remains.
pub fn forget_traces(conn: &Conn, traces_sql: &str, param: u64) -> Result<u64, StorageError> {
    let run = |what: &str, sql: &str, with_param: bool| -> Result<usize, StorageError> {
        let r = if with_param {
            conn.execute(sql, [param])
        } else {
            conn.execute(sql, [])
        };
        r.map_err(|e| StorageError::sql(what, e))
    };
    run(
        "finding the sessions of expired traces",
        &format!(
            "CREATE OR REPLACE TEMP TABLE retention_sessions AS
             SELECT DISTINCT session_id FROM session_trace_rows
             WHERE trace_id IN ({traces_sql})"
        ),
        true,
    )?;
    run(
        "deleting expired session traces",
        &format!("DELETE FROM session_trace_rows WHERE trace_id IN ({traces_sql})"),
        true,
    )?;
    let deleted = run(
        "deleting sessions without traces",
        "DELETE FROM session_entities
         WHERE session_id IN (SELECT session_id FROM retention_sessions)
           AND session_id NOT IN (
               SELECT session_id FROM session_trace_rows
               WHERE session_id IN (SELECT session_id FROM retention_sessions))",
        false,
    )?;
    let list = |col: &str| {
        format!(
            "list_sort(list_distinct(flatten(list({}))))",
            split(&format!("t.{col}"))
        )
    };
    run(
        "recomputing sessions of expired traces",
        &format!(
            "UPDATE session_entities SET
                first_seen_unix_nano = a.f, last_seen_unix_nano = a.l, span_count = a.s,
                trace_count = a.t, error_count = a.e, gen_ai_requests = a.r,
                gen_ai_input_tokens = a.i, gen_ai_output_tokens = a.o,
                gen_ai_cache_read_tokens = a.cr, gen_ai_cache_write_tokens = a.cw,
                gen_ai_cost_usd = a.c, gen_ai_unpriced_requests = a.u,
                models = a.m, services = a.sv, users = a.us
             FROM (SELECT t.session_id, min(t.first_seen_unix_nano) AS f,
                          max(t.last_seen_unix_nano) AS l, sum(t.span_count)::UBIGINT AS s,
                          count(DISTINCT t.trace_id)::UBIGINT AS t,
                          sum(t.error_count)::UBIGINT AS e, sum(t.gen_ai_requests)::UBIGINT AS r,
                          sum(t.gen_ai_input_tokens)::BIGINT AS i,
                          sum(t.gen_ai_output_tokens)::BIGINT AS o,
                          sum(t.gen_ai_cache_read_tokens)::BIGINT AS cr,
                          sum(t.gen_ai_cache_write_tokens)::BIGINT AS cw,
                          sum(t.gen_ai_cost_usd) AS c,
                          sum(t.gen_ai_unpriced_requests)::UBIGINT AS u,
                          {} AS m, {} AS sv, {} AS us
                   FROM session_trace_rows t
                   WHERE t.session_id IN (SELECT session_id FROM retention_sessions)
                   GROUP BY t.session_id) a
             WHERE session_entities.session_id = a.session_id",
            list("models"),
            list("services"),
            list("users"),
        ),
        false,
    )?;
    Ok(deleted as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::model::{Batch, GenAiFields, SpanRecord};
    use crate::storage::writer::{Writer, WriterConfig};
    use crate::storage::{open, Conn, StorageOptions};
    use crate::stream::Hub;

    fn span(trace: u8, span: u8, session: Option<&str>, t: u64) -> SpanRecord {
        SpanRecord {
            trace_id: format!("{trace:032x}").into(),
            span_id: format!("{span:016x}").into(),
            name: format!("s{span}"),
            kind: "INTERNAL",
            status_code: "UNSET",
            start_time_unix_nano: t,
            end_time_unix_nano: t + 10,
            duration_ns: 10,
            service_name: "svc".into(),
            session_id: session.map(Arc::from),
            attributes: "{}".into(),
            resource: "{}".into(),
            events: "[]".into(),
            links: "[]".into(),
            ..Default::default()
        }
    }

    fn llm(mut s: SpanRecord, op: &str, model: &str, tokens: i64, cost: Option<f64>) -> SpanRecord {
        s.genai = GenAiFields {
            provider: Some("openai".into()),
            operation: Some(op.into()),
            request_model: Some(model.into()),
            input_tokens: Some(tokens),
            output_tokens: Some(tokens / 10),
            cost_usd: cost,
            cost_source: Some(if cost.is_some() { "priced" } else { "missing" }),
            ..Default::default()
        }
        .into();
        s.user_id = Some("u1".into());
        s
    }

    fn start() -> (Writer, Conn) {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let reader = db.connect().unwrap();
        let hub = Arc::new(Hub::new(100));
        (
            Writer::start(db, hub, WriterConfig::default(), false).unwrap(),
            reader,
        )
    }

    fn send(w: &Writer, spans: Vec<SpanRecord>) {
        let rx = w.handle().submit(Batch {
            spans,
            ..Default::default()
        });
        rx.unwrap().blocking_recv().unwrap().unwrap();
        if let Some(v) = w.handle().visibility() {
            v.settle_blocking(std::time::Duration::from_secs(60));
        }
        w.handle().summary_sync().settle_blocking();
    }

    type Row = (
        String,
        u64,
        u64,
        u64,
        u64,
        i64,
        f64,
        u64,
        Vec<String>,
        Vec<String>,
        Vec<String>,
    );

    fn sessions(c: &Conn) -> Vec<Row> {
        let mut stmt = c
            .prepare(
                "SELECT session_id, span_count, trace_count, error_count, gen_ai_requests,
                        gen_ai_input_tokens, gen_ai_cost_usd, gen_ai_unpriced_requests,
                        models, services, users
                 FROM session_entities ORDER BY session_id",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                crate::storage::queries::texts(r.get(8)?),
                crate::storage::queries::texts(r.get(9)?),
                crate::storage::queries::texts(r.get(10)?),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[test]
    fn sessions_span_traces_and_commits() {
        let (w, c) = start();
        // Trace 1: the root carries the session; its LLM child arrives in a
        // later export without one and still belongs to it.
        send(&w, vec![span(1, 1, Some("s1"), 100)]);
        send(
            &w,
            vec![
                llm(span(1, 2, None, 110), "chat", "gpt-4o", 1000, Some(0.01)),
                // An agent roll-up: not a request, its tokens not counted.
                llm(
                    span(1, 3, None, 105),
                    "invoke_agent",
                    "gpt-4o",
                    1000,
                    Some(0.01),
                ),
            ],
        );
        // Trace 2 of the same session, with an unpriced call and an error.
        let mut err = span(2, 1, Some("s1"), 200);
        err.status_code = "ERROR";
        err.service_name = "web".into();
        send(
            &w,
            vec![
                err,
                llm(span(2, 2, Some("s1"), 210), "chat", "mystery", 500, None),
            ],
        );
        // A GenAI trace without a session is a session of its own; a plain
        // trace without one is not a session.
        send(
            &w,
            vec![
                llm(
                    span(3, 1, None, 300),
                    "chat",
                    "gpt-4o-mini",
                    10,
                    Some(0.001),
                ),
                span(4, 1, None, 400),
            ],
        );
        let rows = sessions(&c);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let s1 = &rows[1];
        assert_eq!(s1.0, "s1");
        assert_eq!((s1.1, s1.2, s1.3, s1.4), (5, 2, 1, 2));
        assert_eq!(s1.5, 1500);
        assert!((s1.6 - 0.01).abs() < 1e-12);
        assert_eq!(s1.7, 1);
        assert_eq!(s1.8, vec!["gpt-4o", "mystery"]);
        assert_eq!(s1.9, vec!["svc", "web"]);
        assert_eq!(s1.10, vec!["u1"]);
        let t3 = &rows[0];
        assert_eq!(t3.0, format!("{:032x}", 3));
        assert_eq!((t3.1, t3.2, t3.4), (1, 1, 1));

        // Retention drops trace 2: the session is recomputed from trace 1;
        // dropping trace 3 removes its session.
        c.execute_batch(
            "CREATE TEMP TABLE gone AS SELECT * FROM (VALUES (2::UHUGEINT), (3::UHUGEINT)) t(trace_id)",
        )
        .unwrap();
        c.execute_batch("BEGIN").unwrap();
        let deleted = super::forget_traces(&c, "SELECT trace_id FROM gone WHERE ? > 0", 1).unwrap();
        c.execute_batch("COMMIT").unwrap();
        assert_eq!(deleted, 1);
        let rows = sessions(&c);
        assert_eq!(rows.len(), 1);
        let s1 = &rows[0];
        assert_eq!((s1.1, s1.2, s1.3, s1.4, s1.5, s1.7), (3, 1, 0, 1, 1000, 0));
        assert_eq!(s1.8, vec!["gpt-4o"]);
        assert_eq!(s1.9, vec!["svc"]);
        w.shutdown();
    }

    fn scalar(c: &Conn, sql: &str) -> i64 {
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn under_load_sums_wait_in_memory_and_are_written_once() {
        // One export per commit, in quick succession: the sums are held in
        // memory between commits and written when a reader asks.
        let db = open(&StorageOptions::in_memory()).unwrap();
        let c = db.connect().unwrap();
        let config = WriterConfig {
            batch_rows: 1,
            ..WriterConfig::default()
        };
        let w = Writer::start(db, Arc::new(Hub::new(100)), config, false).unwrap();
        let h = w.handle();
        let pause = h.pause();
        let waiting: Vec<_> = (0..20u8)
            .map(|i| {
                let s = llm(
                    span(i % 5 + 1, i + 1, Some("s"), 100 + u64::from(i)),
                    "chat",
                    "gpt-4o",
                    10,
                    Some(0.001),
                );
                h.submit(Batch {
                    spans: vec![s],
                    ..Default::default()
                })
                .unwrap()
            })
            .collect();
        drop(pause);
        for rx in waiting {
            rx.blocking_recv().unwrap().unwrap();
        }
        h.summary_sync().settle_blocking();
        let rows = sessions(&c);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            (rows[0].1, rows[0].2, rows[0].4, rows[0].5),
            (20, 5, 20, 200)
        );
        assert_eq!(scalar(&c, "SELECT sum(requests) FROM genai_minutes"), 20);
        // Fewer trace rows than commits: sums were held between commits.
        assert!(scalar(&c, "SELECT count(*) FROM session_traces") < 20);
        assert_eq!(
            scalar(&c, "SELECT ingest_seq FROM summary_watermark"),
            scalar(&c, "SELECT max(ingest_seq) FROM spans")
        );
        w.shutdown();
    }

    #[test]
    fn spans_stored_after_the_last_flush_are_folded_in_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StorageOptions::file_in(dir.path());
        let start = || {
            let db = open(&opts).unwrap();
            let c = db.connect().unwrap();
            let w = Writer::start(
                db.clone(),
                Arc::new(Hub::new(10)),
                WriterConfig::default(),
                true,
            )
            .unwrap();
            (db, c, w)
        };
        let (_, _, w) = start();
        send(&w, vec![span(7, 1, Some("s7"), 100)]);
        w.shutdown();
        // As after a crash: spans committed while their sums were still in
        // memory, so the watermark is behind them.
        {
            let db = open(&opts).unwrap();
            let raw = db.raw_connection().unwrap();
            let mut late = llm(span(7, 2, None, 120), "chat", "gpt-4o", 100, Some(0.5));
            late.attributes = r#"{"user.id":"u9"}"#.into();
            let own = llm(span(8, 1, None, 130), "chat", "gpt-4o", 10, None);
            raw.execute("BEGIN TRANSACTION").unwrap();
            crate::storage::writer::append_spans(&raw, &[late, own], 2).unwrap();
            raw.execute("COMMIT").unwrap();
        }
        let check = |c: &Conn| {
            let rows = sessions(c);
            assert_eq!(rows.len(), 2, "{rows:?}");
            let s7 = &rows[1];
            assert_eq!(
                (s7.0.as_str(), s7.1, s7.2, s7.4, s7.5),
                ("s7", 2, 1, 1, 100)
            );
            assert_eq!(s7.10, vec!["u9"]);
            assert_eq!(rows[0].0, format!("{:032x}", 8));
            assert_eq!(rows[0].7, 1, "the unpriced call is counted as such");
            assert_eq!(scalar(c, "SELECT sum(requests) FROM genai_minutes"), 2);
            assert_eq!(scalar(c, "SELECT ingest_seq FROM summary_watermark"), 3);
        };
        let (_, c, w) = start();
        w.shutdown();
        check(&c);
        // Caught up: another start folds nothing twice.
        let (_, c, w) = start();
        w.shutdown();
        check(&c);
    }

    #[test]
    fn restart_remembers_which_traces_a_session_has() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.duckdb");
        let opts = StorageOptions {
            path: path.to_string_lossy().into_owned(),
            ..StorageOptions::in_memory()
        };
        {
            let db = open(&opts).unwrap();
            let w =
                Writer::start(db, Arc::new(Hub::new(10)), WriterConfig::default(), true).unwrap();
            send(&w, vec![span(7, 1, Some("s7"), 100)]);
            w.shutdown();
        }
        let db = open(&opts).unwrap();
        let c = db.connect().unwrap();
        let w = Writer::start(db, Arc::new(Hub::new(10)), WriterConfig::default(), true).unwrap();
        send(&w, vec![span(7, 2, None, 120)]);
        let rows = sessions(&c);
        assert_eq!((rows[0].1, rows[0].2), (2, 1));
        w.shutdown();
    }
}
