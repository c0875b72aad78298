//! `GET /api/v1/live`: committed spans, logs and (on request) metric points
//! as Server-Sent Events, for the dashboard's live view, `qyl watch` and any
//! `EventSource`.
//!
//! Each record is sent once it is committed, as `event: span|log|metric`
//! with `id:` = its sequence number and `data:` = the same JSON the REST API
//! returns for it. A client that reconnects with `Last-Event-ID` (browsers do
//! this by themselves) is replayed what it missed from the hub's ring; when
//! part of that has already left the ring, the first event is
//! `event: gap` with `{"missed": N, "oldest_available": SEQ}`.
//!
//! A client never slows ingest: streams read the hub's broadcast, which
//! never waits for them, and are filtered, serialised and formatted on a
//! thread of their own at the lowest CPU priority. A stream that falls a
//! whole ring behind is sent `event: lagged` with `{"skipped": N}` and ends
//! (the client may reconnect and resume); one whose client takes nothing
//! for [`STALLED`] is closed.
//!
//! What a stream costs per record is kept small because every stream pays
//! it: a record's whole SSE frame is formatted once for all streams
//! ([`FrameCache`]), and a stream hands its connection the frames that are
//! ready in one chunk, so a busy stream costs one wake-up and one socket
//! write per chunk rather than per record.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream::{self, Stream, StreamExt};
use futures_util::FutureExt;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, watch};

use super::error::ErrorBody;
use super::params::{self, Params, QueryPairs};
use super::{ApiError, AppState};
use crate::model::query::{raw_json, rfc3339, LogRow, SpanRow};
use crate::model::{severity_number, LogRecord, MetricPoint, Record, SpanRecord};
use crate::stream::hub::RecvError;
use crate::stream::{Event, Subscription};

pub fn routes() -> Router<AppState> {
    Router::new().route("/live", get(live))
}

/// Committed records as Server-Sent Events: `event: span|log|metric`, `id:`
/// = sequence number, `data:` = the row as `/spans`, `/logs` return it; a
/// heartbeat comment when idle; `event: gap` first when a resume point has
/// left the ring; `event: lagged` last when the client fell a ring behind.
#[utoipa::path(
    get,
    path = "/api/v1/live",
    tag = "live",
    params(super::openapi::LiveParams),
    responses(
        (status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 400, description = "A parameter or Last-Event-ID is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "`stream.max_clients` streams are open; retry (see Retry-After)", body = ErrorBody),
    )
)]
pub async fn live(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryPairs(pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let mut params = Params::new(pairs);
    let filter = LiveFilter::from_params(&mut params)?;
    let from_query = params.parse::<u64>("last_event_id")?;
    params.reject_unknown()?;
    // The header wins: a reconnecting EventSource sends the newest id there,
    // while its URL still carries whatever it was first opened with.
    let after = match headers.get("last-event-id") {
        Some(v) => parse_last_event_id(v.as_bytes())?.or(from_query),
        None => from_query,
    };
    let slot = state
        .live
        .try_acquire(state.config.stream.max_clients)
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "too many live streams (at most {}); retry later",
                state.config.stream.max_clients
            ))
        })?;
    let sub = match after {
        Some(seq) => state.hub.subscribe_after(seq),
        None => Subscription {
            replay: Vec::new(),
            missed: 0,
            receiver: state.hub.subscribe(),
        },
    };
    let (tx, rx) = mpsc::channel(CHUNKS_PER_CLIENT);
    let producer = produce(items(sub, after, filter), tx, slot);
    match live_runtime() {
        Some(rt) => drop(rt.spawn(producer)),
        None => drop(tokio::spawn(producer)),
    }
    // At shutdown the body ends at once, dropping queued chunks, so the
    // connection can close.
    let closing = state.live.closing.subscribe();
    let heartbeat = Duration::from_secs(state.config.stream.heartbeat_secs);
    let chunks = stream::unfold((rx, closing), move |(mut rx, mut closing)| async move {
        let chunk = tokio::select! {
            biased;
            _ = closing.wait_for(|c| *c) => None,
            chunk = rx.recv() => chunk,
            // A comment when idle, so proxies and clients can tell a quiet
            // stream from a dead connection.
            _ = tokio::time::sleep(heartbeat) => Some(Bytes::from_static(HEARTBEAT)),
        }?;
        Some((Ok::<_, Infallible>(chunk), (rx, closing)))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// What an idle stream sends every `stream.heartbeat_secs`: an SSE comment.
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// Makes the calling thread run only when a core would otherwise be idle
/// (Linux `SCHED_IDLE`), so streaming only uses CPU that ingest leaves
/// idle. Nice 19 only gives a thread a small share: once it has a core it
/// may keep it to the end of its time slice while a worker with an export
/// to decode waits. A `SCHED_IDLE` thread gives way as soon as any other
/// thread wants its core.
fn lower_priority() {
    // SAFETY: sched_setscheduler and setpriority have no memory effects;
    // with pid / who = 0 Linux applies them to the calling thread only.
    // Failure (a sandbox forbidding it) leaves the policy as it was; nice 19
    // is then the fallback.
    #[cfg(target_os = "linux")]
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
}

/// Formatted chunks a stream may hold for its connection; past that the
/// producer waits, its broadcast receiver falls behind, and the client is
/// told it lagged. With [`CHUNK_BYTES`] this bounds what one stream buffers
/// to a few hundred KiB.
const CHUNKS_PER_CLIENT: usize = 4;

/// A chunk is closed once it holds this much (or when no more frames are
/// ready): large enough that a busy stream writes its socket a few times per
/// commit, not once per record.
const CHUNK_BYTES: usize = 64 * 1024;

/// How long a stream waits for its client to take a chunk before giving up
/// on it: a client that is connected but never reads would otherwise hold a
/// `max_clients` slot for as long as its TCP connection lives.
pub const STALLED: Duration = Duration::from_secs(60);

/// Filters and formats one stream's events into chunks, on the live thread,
/// until the client goes, falls behind, or qyl stops.
async fn produce(items: impl Stream<Item = LiveItem>, tx: mpsc::Sender<Bytes>, slot: ClientSlot) {
    let mut items = std::pin::pin!(items);
    let mut closing = slot.clients.closing.subscribe();
    loop {
        let first = tokio::select! {
            biased;
            _ = closing.wait_for(|c| *c) => return,
            // A client that left frees its slot now, not at the next match.
            _ = tx.closed() => return,
            item = items.next() => match item {
                Some(item) => item,
                None => return,
            },
        };
        // The first item, then whatever else is ready now: a chunk never
        // waits for records that have not been published.
        let mut chunk = BytesMut::new();
        let mut next = Some(first);
        let mut ended = false;
        while let Some(item) = next.take() {
            if let LiveItem::Lagged { skipped } = item {
                slot.clients.record_lag(skipped);
            }
            write_frame(&item, &slot.clients.frames, &mut chunk);
            if chunk.len() >= CHUNK_BYTES {
                break;
            }
            match items.next().now_or_never() {
                Some(Some(item)) => next = Some(item),
                Some(None) => ended = true,
                None => {}
            }
        }
        if !chunk.is_empty() {
            let queued = tokio::select! {
                biased;
                _ = closing.wait_for(|c| *c) => return,
                sent = tokio::time::timeout(STALLED, tx.send(chunk.freeze())) => sent,
            };
            match queued {
                Ok(Ok(())) => {}
                // The client left.
                Ok(Err(_)) => return,
                Err(_) => {
                    tracing::debug!("live stream closed: its client took nothing for {STALLED:?}");
                    return;
                }
            }
        }
        if ended {
            return;
        }
    }
}

/// The thread every live stream of the process is produced on. Serialising
/// the same records for many clients can take more CPU than ingest has to
/// spare; on one thread of its own it cannot take the tokio workers that
/// decode exports, so the streams lag (and are told so) instead of ingest
/// slowing. `None` if the thread cannot be started; streams then run on the
/// caller's runtime.
fn live_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static LIVE: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    LIVE.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("qyl-live")
            .on_thread_start(lower_priority)
            .enable_all()
            .build()
            .map_err(
                |e| tracing::warn!(error = %e, "no live-stream thread; streams share the API's"),
            )
            .ok()
    })
    .as_ref()
}

fn parse_last_event_id(raw: &[u8]) -> Result<Option<u64>, ApiError> {
    let text = std::str::from_utf8(raw).unwrap_or("").trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!(
            "Last-Event-ID: {text:?} is not an event id this stream sent"
        ))
    })
}

/// Live streams open now, and what slow ones lost; shared by every stream of
/// one server and read by `/metrics`.
#[derive(Debug)]
pub struct LiveClients {
    open: AtomicUsize,
    lagged_streams: AtomicU64,
    skipped_events: AtomicU64,
    frames: FrameCache,
    /// Set at shutdown: open streams end, so they do not hold up the HTTP
    /// server's graceful stop.
    closing: watch::Sender<bool>,
}

/// Recently sent records as whole SSE frames (`event:`, `id:`, `data:`),
/// shared by every stream of a server: with many clients on the same
/// records, each is serialised and formatted once rather than once per
/// client. A slot per `seq % SLOTS`; a stream that is far behind the others
/// just formats again.
#[derive(Debug)]
struct FrameCache {
    slots: Box<[CachedFrame]>,
}

/// The sequence number a slot's frame belongs to, and the frame.
type CachedFrame = Mutex<Option<(u64, Bytes)>>;

impl FrameCache {
    /// Enough for streams within a few commits of each other, small enough
    /// that the frames kept are a fraction of what the hub's ring holds.
    const SLOTS: usize = 1024;

    fn frame(&self, event: &Event) -> Option<Bytes> {
        let slot = &self.slots[(event.seq % Self::SLOTS as u64) as usize];
        // Held while formatting, so concurrent streams wait for the one
        // doing the work instead of repeating it. A panic cannot leave the
        // slot half-written, so a poisoned lock is still usable.
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seq, frame)) = slot.as_ref() {
            if *seq == event.seq {
                return Some(frame.clone());
            }
        }
        let json = match record_json(event) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, seq = event.seq, "live record not serialisable; skipped");
                return None;
            }
        };
        let mut frame = BytesMut::with_capacity(json.len() + 48);
        put_frame(
            &mut frame,
            Some(event.record.event_type()),
            Some(event.seq),
            &json,
        );
        let frame = frame.freeze();
        *slot = Some((event.seq, frame.clone()));
        Some(frame)
    }
}

impl Default for FrameCache {
    fn default() -> Self {
        FrameCache {
            slots: (0..Self::SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

/// Appends one SSE frame. A line break inside `data` (CR, LF or CRLF, as
/// the SSE format counts them) starts another `data:` line, which the
/// client joins with `\n`: no text can end the frame early or forge a field.
fn put_frame(out: &mut BytesMut, event: Option<&str>, id: Option<u64>, data: &str) {
    if let Some(event) = event {
        out.put_slice(b"event: ");
        out.put_slice(event.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(id) = id {
        out.put_slice(b"id: ");
        out.put_slice(id.to_string().as_bytes());
        out.put_u8(b'\n');
    }
    let mut rest = data;
    loop {
        let end = memchr::memchr2(b'\r', b'\n', rest.as_bytes()).unwrap_or(rest.len());
        out.put_slice(b"data: ");
        out.put_slice(&rest.as_bytes()[..end]);
        out.put_u8(b'\n');
        if end == rest.len() {
            break;
        }
        let newline = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + newline..];
    }
    out.put_u8(b'\n');
}

fn record_json(e: &Event) -> serde_json::Result<String> {
    match &e.record {
        Record::Span(s) => serde_json::to_string(&SpanRow::from_record(s, e.seq)),
        Record::Log(l) => serde_json::to_string(&LogRow::from_record(l, e.seq)),
        Record::Metric(m) => serde_json::to_string(&MetricRow::from_record(m, e.seq)),
        Record::Error(g) => serde_json::to_string(&**g),
        Record::Function(f) => {
            serde_json::to_string(&crate::functions::events::FunctionEventRow::new(f, e.seq))
        }
        Record::Slo(t) => serde_json::to_string(&**t),
    }
}

impl Default for LiveClients {
    fn default() -> Self {
        LiveClients {
            open: AtomicUsize::new(0),
            lagged_streams: AtomicU64::new(0),
            skipped_events: AtomicU64::new(0),
            frames: FrameCache::default(),
            closing: watch::channel(false).0,
        }
    }
}

impl LiveClients {
    /// Ends every open stream and any opened from now on (at shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A slot for one more stream, unless `max` are open.
    pub fn try_acquire(self: &Arc<Self>, max: usize) -> Option<ClientSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(ClientSlot {
            clients: self.clone(),
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Streams ended because their client fell a whole ring behind.
    pub fn lagged_streams(&self) -> u64 {
        self.lagged_streams.load(Ordering::Relaxed)
    }

    /// Events those streams skipped.
    pub fn skipped_events(&self) -> u64 {
        self.skipped_events.load(Ordering::Relaxed)
    }

    fn record_lag(&self, skipped: u64) {
        self.lagged_streams.fetch_add(1, Ordering::Relaxed);
        self.skipped_events.fetch_add(skipped, Ordering::Relaxed);
    }
}

/// One open stream; dropping it (when the connection goes) frees the slot.
pub struct ClientSlot {
    clients: Arc<LiveClients>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.clients.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which records a stream sends. Built from the query string; every field
/// narrows. Filters that exist for one signal only (`status` and
/// `min_duration_ms` for spans, `severity_min` for logs) leave the other
/// signals alone, and without `types` they also choose the signals: asking
/// for error spans gives spans only.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveFilter {
    pub spans: bool,
    pub logs: bool,
    pub metrics: bool,
    /// Error group changes (SSE event `error`).
    pub errors: bool,
    /// Automatic triage reports (SSE event `triage`: the group's `error`
    /// record with `change: triaged` and the report), asked for apart so
    /// `error` streams keep meaning one event per group change.
    pub triage: bool,
    /// Function invocations and `runtime.stream.publish` events.
    pub functions: bool,
    /// SLO alert level changes (SSE event `slo`).
    pub slo: bool,
    pub service: Option<String>,
    pub trace_id: Option<String>,
    /// `OK`, `ERROR` or `UNSET`.
    pub status: Option<&'static str>,
    pub min_duration_ns: Option<u64>,
    pub severity_min: Option<i32>,
}

impl LiveFilter {
    pub fn from_params(p: &mut Params) -> Result<LiveFilter, ApiError> {
        let status = match p.get("status") {
            None => None,
            Some(s) => Some(match s.to_ascii_uppercase().as_str() {
                "OK" => "OK",
                "ERROR" => "ERROR",
                "UNSET" => "UNSET",
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "status: {s:?} is not one of ok, error, unset"
                    )))
                }
            }),
        };
        let severity_min = match p.get("severity_min") {
            None => None,
            Some(s) => Some(severity_number(&s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "severity_min: {s:?} is not a severity (a number 1-24 or TRACE, DEBUG, INFO, WARN, ERROR, FATAL)"
                ))
            })?),
        };
        let trace_id = match p.get("trace_id") {
            None => None,
            Some(t) => Some(params::trace_id(&t)?),
        };
        let mut filter = LiveFilter {
            service: p.get("service"),
            trace_id,
            status,
            min_duration_ns: p.duration_ms("min_duration_ms")?,
            severity_min,
            ..LiveFilter::default()
        };
        match p.get("types") {
            Some(types) => {
                for t in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    match t.to_ascii_lowercase().as_str() {
                        "span" | "spans" => filter.spans = true,
                        "log" | "logs" => filter.logs = true,
                        "metric" | "metrics" => filter.metrics = true,
                        "error" | "errors" => filter.errors = true,
                        "triage" => filter.triage = true,
                        "function" | "functions" => filter.functions = true,
                        "slo" | "slos" => filter.slo = true,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                            "types: {t:?} is not one of span, log, metric, error, triage, function, slo"
                        )))
                        }
                    }
                }
            }
            None => {
                let span_only = filter.status.is_some() || filter.min_duration_ns.is_some();
                let log_only = filter.severity_min.is_some();
                filter.spans = span_only || !log_only;
                filter.logs = log_only || !span_only;
            }
        }
        Ok(filter)
    }

    pub fn matches(&self, record: &Record) -> bool {
        // Function events are qyl's own: the service and trace filters
        // describe the telemetry they react to, not them.
        if let Record::Function(_) = record {
            return self.functions;
        }
        if self
            .service
            .as_deref()
            .is_some_and(|s| s != record.service_name())
        {
            return false;
        }
        match record {
            Record::Span(s) => self.spans && self.span_matches(s),
            Record::Log(l) => self.logs && self.log_matches(l),
            // Points carry no trace: asking for one trace excludes them.
            Record::Metric(_) => self.metrics && self.trace_id.is_none(),
            Record::Error(e) => {
                (if e.change == crate::model::errors::GroupChange::Triaged {
                    self.triage
                } else {
                    self.errors
                }) && self
                    .trace_id
                    .as_ref()
                    .is_none_or(|t| e.trace_id.as_ref() == Some(t))
            }
            Record::Function(_) => self.functions,
            // An SLO belongs to a service but to no trace.
            Record::Slo(_) => self.slo && self.trace_id.is_none(),
        }
    }

    fn span_matches(&self, s: &SpanRecord) -> bool {
        self.trace_id.as_ref().is_none_or(|t| *t == s.trace_id)
            && self.status.is_none_or(|st| st == s.status_code)
            && self.min_duration_ns.is_none_or(|d| s.duration_ns >= d)
    }

    fn log_matches(&self, l: &LogRecord) -> bool {
        self.trace_id
            .as_ref()
            .is_none_or(|t| l.trace_id.as_ref() == Some(t))
            && self
                .severity_min
                .is_none_or(|min| severity_of(l).is_some_and(|s| s >= min))
    }
}

/// A log's severity number; when the SDK sent only text (some bridges do),
/// the number that text names.
fn severity_of(l: &LogRecord) -> Option<i32> {
    if l.severity_number > 0 {
        return Some(l.severity_number);
    }
    l.severity_text.as_deref().and_then(severity_number)
}

/// What a live stream sends, before SSE framing.
#[derive(Debug, Clone)]
pub enum LiveItem {
    /// Records after the resume point that had left the ring.
    Gap {
        missed: u64,
        oldest_available: u64,
    },
    Record(Event),
    /// The client fell a ring behind; the stream ends after this.
    Lagged {
        skipped: u64,
    },
}

/// The items of one stream: a `Gap` if the subscription missed records, the
/// replay, then every new record, all through `filter`; it ends with
/// `Lagged` when the receiver falls behind.
pub fn items(
    sub: Subscription,
    after: Option<u64>,
    filter: LiveFilter,
) -> impl Stream<Item = LiveItem> + Send + 'static {
    let gap = match after {
        Some(after) if sub.missed > 0 => Some(LiveItem::Gap {
            missed: sub.missed,
            oldest_available: after + sub.missed + 1,
        }),
        _ => None,
    };
    let replay: Vec<LiveItem> = gap
        .into_iter()
        .chain(
            sub.replay
                .into_iter()
                .filter(|e| filter.matches(&e.record))
                .map(LiveItem::Record),
        )
        .collect();
    let live = stream::unfold(Some((sub.receiver, filter)), |state| async move {
        let (mut rx, filter) = state?;
        match rx.recv_matching(|e| filter.matches(&e.record)).await {
            Ok(event) => Some((LiveItem::Record(event), Some((rx, filter)))),
            Err(RecvError::Lagged(skipped)) => Some((LiveItem::Lagged { skipped }, None)),
            Err(RecvError::Closed) => None,
        }
    });
    stream::iter(replay).chain(live)
}

/// Appends the SSE frame for an item; a record whose JSON cannot be written
/// (which its types rule out) is logged and left out.
fn write_frame(item: &LiveItem, cache: &FrameCache, out: &mut BytesMut) {
    match item {
        LiveItem::Record(e) => {
            if let Some(frame) = cache.frame(e) {
                out.put_slice(&frame);
            }
        }
        LiveItem::Gap {
            missed,
            oldest_available,
        } => put_frame(
            out,
            Some("gap"),
            None,
            &serde_json::json!({ "missed": missed, "oldest_available": oldest_available })
                .to_string(),
        ),
        LiveItem::Lagged { skipped } => put_frame(
            out,
            Some("lagged"),
            None,
            &serde_json::json!({ "skipped": skipped }).to_string(),
        ),
    }
}

/// A metric point as the live stream shows it (the REST API serves metrics
/// aggregated, so there is no stored-row shape to match); times and JSON
/// columns follow the span and log rows.
#[derive(Debug, Serialize)]
pub struct MetricRow {
    pub time: String,
    pub time_unix_nano: String,
    pub start_time_unix_nano: String,
    pub name: String,
    pub description: Option<String>,
    pub unit: Option<String>,
    pub kind: &'static str,
    pub temporality: Option<&'static str>,
    pub is_monotonic: Option<bool>,
    pub value: Option<f64>,
    pub count: Option<u64>,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub histogram: Option<Box<RawValue>>,
    pub exemplars: Option<Box<RawValue>>,
    pub service_name: String,
    pub scope_name: Option<String>,
    pub attributes: Box<RawValue>,
    pub resource: Box<RawValue>,
    pub ingest_seq: u64,
}

impl MetricRow {
    pub fn from_record(m: &MetricPoint, ingest_seq: u64) -> MetricRow {
        MetricRow {
            time: rfc3339(m.time_unix_nano),
            time_unix_nano: m.time_unix_nano.to_string(),
            start_time_unix_nano: m.start_time_unix_nano.to_string(),
            name: m.name.clone(),
            description: m.description.clone(),
            unit: m.unit.clone(),
            kind: m.kind,
            temporality: m.temporality,
            is_monotonic: m.is_monotonic,
            value: m.value,
            count: m.count,
            sum: m.sum,
            min: m.min,
            max: m.max,
            histogram: m.histogram.as_deref().map(raw_json),
            exemplars: m.exemplars.as_deref().map(raw_json),
            service_name: m.service_name.clone(),
            scope_name: m.scope_name.clone(),
            attributes: raw_json(&m.attributes),
            resource: raw_json(&m.resource),
            ingest_seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Shared;
    use crate::stream::Hub;

    fn filter(query: &[(&str, &str)]) -> Result<LiveFilter, ApiError> {
        let mut p = Params::new(
            query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let f = LiveFilter::from_params(&mut p)?;
        p.reject_unknown()?;
        Ok(f)
    }

    fn span(service: &str, status: &'static str, ms: u64) -> Record {
        Record::Span(Shared::from(SpanRecord {
            trace_id: "ab".repeat(16).into(),
            service_name: service.into(),
            status_code: status,
            duration_ns: ms * 1_000_000,
            ..Default::default()
        }))
    }

    fn log(service: &str, severity: i32, text: Option<&str>) -> Record {
        Record::Log(Shared::from(LogRecord {
            service_name: service.into(),
            severity_number: severity,
            severity_text: text.map(Into::into),
            ..Default::default()
        }))
    }

    fn metric(service: &str) -> Record {
        Record::Metric(Shared::from(MetricPoint {
            service_name: service.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn default_is_spans_and_logs() {
        let f = filter(&[]).unwrap();
        assert!(f.matches(&span("a", "OK", 1)));
        assert!(f.matches(&log("a", 9, None)));
        assert!(!f.matches(&metric("a")));
        let f = filter(&[("types", "metric, log")]).unwrap();
        assert!(!f.matches(&span("a", "OK", 1)));
        assert!(f.matches(&log("a", 9, None)));
        assert!(f.matches(&metric("a")));
    }

    #[test]
    fn filters_narrow_their_own_signal() {
        let f = filter(&[("service", "a"), ("status", "error")]).unwrap();
        assert!(f.matches(&span("a", "ERROR", 1)));
        assert!(!f.matches(&span("a", "OK", 1)));
        assert!(!f.matches(&span("b", "ERROR", 1)));
        // A span-only filter without `types` means spans only...
        assert!(!f.matches(&log("a", 17, None)));
        // ...with `types`, logs pass on their own filters.
        let f = filter(&[("status", "error"), ("types", "span,log")]).unwrap();
        assert!(f.matches(&log("a", 1, None)));

        let f = filter(&[("min_duration_ms", "250")]).unwrap();
        assert!(f.matches(&span("a", "OK", 250)));
        assert!(!f.matches(&span("a", "OK", 249)));

        let f = filter(&[("severity_min", "warn")]).unwrap();
        assert!(f.matches(&log("a", 13, None)));
        assert!(f.matches(&log("a", 0, Some("ERROR"))));
        assert!(!f.matches(&log("a", 12, None)));
        assert!(!f.matches(&log("a", 0, None)));
        assert!(!f.matches(&span("a", "ERROR", 1)));

        let f = filter(&[("trace_id", &"AB".repeat(16)), ("types", "span,log,metric")]).unwrap();
        assert!(f.matches(&span("a", "OK", 1)));
        assert!(!f.matches(&log("a", 9, None)));
        assert!(!f.matches(&metric("a")));
    }

    #[test]
    fn bad_parameters_are_named() {
        for (query, name) in [
            (&[("servce", "a")][..], "servce"),
            (&[("status", "bad")], "status"),
            (&[("severity_min", "LOUD")], "severity_min"),
            (&[("severity_min", "25")], "severity_min"),
            (&[("types", "span,trace")], "types"),
            (&[("min_duration_ms", "soon")], "min_duration_ms"),
            (&[("trace_id", "xyz")], "trace id"),
        ] {
            let e = filter(query).unwrap_err();
            assert!(e.message.contains(name), "{query:?}: {}", e.message);
        }
        assert!(parse_last_event_id(b"12x").is_err());
        assert_eq!(parse_last_event_id(b" 12 ").unwrap(), Some(12));
        assert_eq!(parse_last_event_id(b"").unwrap(), None);
    }

    #[test]
    fn client_slots_are_limited_and_freed_on_drop() {
        let clients = Arc::new(LiveClients::default());
        let a = clients.try_acquire(2).unwrap();
        let _b = clients.try_acquire(2).unwrap();
        assert!(clients.try_acquire(2).is_none());
        assert_eq!(clients.open(), 2);
        drop(a);
        assert!(clients.try_acquire(2).is_some());
    }

    fn ev(seq: u64, record: Record) -> Event {
        Event { seq, record }
    }

    fn describe(item: &LiveItem) -> String {
        match item {
            LiveItem::Gap {
                missed,
                oldest_available,
            } => format!("gap {missed} {oldest_available}"),
            LiveItem::Record(e) => format!("{} {}", e.record.event_type(), e.seq),
            LiveItem::Lagged { skipped } => format!("lagged {skipped}"),
        }
    }

    #[tokio::test]
    async fn resume_replays_after_the_id_and_reports_the_gap_first() {
        let hub = Hub::new(4);
        hub.publish((1..=10).map(|s| ev(s, span("a", "OK", 1))));
        let stream = items(hub.subscribe_after(3), Some(3), filter(&[]).unwrap());
        hub.publish([ev(11, log("a", 9, None)), ev(12, metric("a"))]);
        drop(hub);
        let got: Vec<_> = stream.map(|i| describe(&i)).collect().await;
        assert_eq!(
            got,
            ["gap 3 7", "span 7", "span 8", "span 9", "span 10", "log 11"]
        );
    }

    #[tokio::test]
    async fn a_receiver_a_ring_behind_gets_lagged_and_the_stream_ends() {
        let hub = Hub::new(4);
        let sub = hub.subscribe_after(0);
        let mut stream = Box::pin(items(sub, None, filter(&[]).unwrap()));
        hub.publish([ev(1, span("a", "OK", 1))]);
        assert_eq!(
            stream.next().await.map(|i| describe(&i)).as_deref(),
            Some("span 1")
        );
        // The publisher never waits for the stream.
        for s in 2..=101 {
            hub.publish([ev(s, span("a", "OK", 1))]);
        }
        assert_eq!(
            stream.next().await.map(|i| describe(&i)).as_deref(),
            Some("lagged 96")
        );
        assert!(stream.next().await.is_none());
    }

    #[test]
    fn each_record_is_formatted_once_for_all_streams() {
        let cache = FrameCache::default();
        let a = ev(7, span("a", "OK", 1));
        let first = cache.frame(&a).unwrap();
        let again = cache.frame(&a).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr());
        let text = std::str::from_utf8(&first).unwrap();
        let json = text
            .strip_prefix("event: span\nid: 7\ndata: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("not one span frame: {text:?}"));
        let row: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            (row["ingest_seq"].as_u64(), row["service_name"].as_str()),
            (Some(7), Some("a"))
        );
        // Another record in the same slot replaces it.
        let b = ev(7 + FrameCache::SLOTS as u64, log("b", 9, None));
        let other = cache.frame(&b).unwrap();
        assert!(other.starts_with(b"event: log\nid: 1031\n"), "{other:?}");
        assert_ne!(cache.frame(&a).unwrap().as_ptr(), first.as_ptr());
    }

    #[test]
    fn line_breaks_in_data_cannot_end_a_frame() {
        let mut out = BytesMut::new();
        put_frame(&mut out, Some("gap"), None, "a\nb\r\nc\rd");
        put_frame(&mut out, None, Some(3), "");
        assert_eq!(
            &out[..],
            b"event: gap\ndata: a\ndata: b\ndata: c\ndata: d\n\nid: 3\ndata: \n\n"
        );
    }

    #[tokio::test]
    async fn ready_records_go_out_in_one_chunk() {
        let hub = Hub::new(100);
        let clients = Arc::new(LiveClients::default());
        let slot = clients.try_acquire(1).unwrap();
        let (tx, mut rx) = mpsc::channel(CHUNKS_PER_CLIENT);
        hub.publish((1..=5).map(|s| ev(s, span("a", "OK", 1))));
        let stream = items(hub.subscribe_after(0), Some(0), filter(&[]).unwrap());
        let producer = tokio::spawn(produce(stream, tx, slot));
        let chunk = rx.recv().await.unwrap();
        let text = std::str::from_utf8(&chunk).unwrap();
        let ids: Vec<_> = text
            .lines()
            .filter_map(|l| l.strip_prefix("id: "))
            .collect();
        assert_eq!(ids, ["1", "2", "3", "4", "5"], "{text}");
        // Later records come in a chunk of their own, at once.
        hub.publish([ev(6, log("a", 9, None))]);
        let chunk = rx.recv().await.unwrap();
        assert!(chunk.starts_with(b"event: log\nid: 6\n"), "{chunk:?}");
        drop(rx);
        producer.await.unwrap();
        assert_eq!(
            clients.open(),
            0,
            "the slot is freed when the client leaves"
        );
    }
}
