//! The journal's byte format for a writer [`Batch`].
//!
//! Every job is encoded before DuckDB sees it and decoded only to replay
//! after a crash, so encoding is the hot side: it runs for every span, and
//! writes each field straight into the caller's buffer (no serde, no
//! allocation per field). Decoding is the careful side: the bytes come from
//! a file a crash may have cut or a disk may have damaged, so it checks
//! every length, never panics, and reports which field it was reading.
//!
//! Layout: one version byte, then the batch's fields in declaration order.
//! Integers are LEB128 varints (signed ones zigzagged, so small negatives
//! stay short), `f64` is 8 little-endian bytes (every bit kept, NaN too),
//! text is a varint length and UTF-8, `Option` a 0/1 byte, `Vec` a varint
//! count, enums a tag byte. There are no field names or tags per field: a
//! change to a model type needs a new [`VERSION`].
//!
//! Shared text (`Arc<str>`: a record's service, scope, session, user and
//! resource, the same for most records of an export) is written once per
//! batch: a varint 0 and the text the first time, then the varint `i + 1`
//! for the `i`-th of the last [`SHARED_TEXTS`] texts written in full
//! (version 2). Written in full every time (version 1, still read), the
//! resource's JSON alone was about half of a span's journal bytes.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use crate::errors::triage::TriageReport;
use crate::model::deploys::DeployRecord;
use crate::model::errors::{
    ErrorCommand, ErrorGenAi, ErrorGroupEvent, ErrorOccurrence, GroupChange, StatusChange,
};
use crate::model::function::{
    FunctionDefinition, FunctionRows, Invocation, InvocationStatus, Published, StateWrite,
};
use crate::model::slo::{SloLevel, SloTransition};
use crate::model::{Batch, GenAi, GenAiFields, HexId, LogRecord, MetricPoint, SpanRecord};

/// The format this code writes. A later qyl that changes the layout bumps
/// it, and then refuses or converts journals written with an older one.
const VERSION: u8 = 2;

/// The format before shared text was written once per batch: read still,
/// as a journal left by a crash of the release before may hold it.
const PLAIN_TEXTS: u8 = 1;

/// How many shared texts a batch's encoding refers back to: more than the
/// eight `Arc<str>` fields of a span, so that one export's values all stay.
const SHARED_TEXTS: usize = 16;

/// The shared texts last written in full, in turn: the encoder finds a text
/// by its address, the decoder by its place.
#[derive(Default)]
struct SharedTexts {
    texts: [Option<Arc<str>>; SHARED_TEXTS],
    next: usize,
    /// Tests: write every text in full, as version 1 did.
    #[cfg(test)]
    plain: bool,
}

impl SharedTexts {
    fn position(&self, text: &Arc<str>) -> Option<usize> {
        self.texts
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| Arc::ptr_eq(t, text)))
    }

    fn push(&mut self, text: Arc<str>) {
        self.texts[self.next] = Some(text);
        self.next = (self.next + 1) % SHARED_TEXTS;
    }
}

thread_local! {
    /// The encoding's shared texts: `Field::put` takes no context, and a
    /// batch is encoded on one thread, start to end ([`encode_batch`]
    /// empties it first).
    static ENCODING: std::cell::RefCell<SharedTexts> = std::cell::RefCell::default();
}

/// Appends `batch`'s encoding to `out`.
pub(crate) fn encode_batch(batch: &Batch, out: &mut Vec<u8>) {
    ENCODING.with_borrow_mut(|shared| *shared = SharedTexts::default());
    out.push(VERSION);
    batch.put(out);
    // The texts are the batch's: nothing of it is held past its encoding.
    ENCODING.with_borrow_mut(|shared| *shared = SharedTexts::default());
}

/// Decodes what `encode_batch` wrote (the whole slice must be consumed).
pub(crate) fn decode_batch(bytes: &[u8]) -> Result<Batch, CodecError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        what: "format version",
        version: VERSION,
        shared: SharedTexts::default(),
    };
    let found = r.byte()?;
    if found != VERSION && found != PLAIN_TEXTS {
        return Err(CodecError::UnknownVersion { found });
    }
    r.version = found;
    let batch = Batch::take(&mut r)?;
    match r.remaining() {
        0 => Ok(batch),
        left => Err(CodecError::TrailingBytes { left }),
    }
}

/// Why a journal entry could not be decoded; `what` names the field
/// (`SpanRecord.attributes`) and `at` the byte offset in the entry.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("journal format version {found} is unknown (this qyl reads version {VERSION})")]
    UnknownVersion { found: u8 },
    #[error("journal entry ends early, reading {what} at byte {at}")]
    Truncated { what: &'static str, at: usize },
    #[error("bad varint or out-of-range integer reading {what} at byte {at}")]
    BadVarint { what: &'static str, at: usize },
    #[error("unknown tag {tag} reading {what} at byte {at}")]
    BadTag {
        tag: u8,
        what: &'static str,
        at: usize,
    },
    #[error("invalid UTF-8 reading {what} at byte {at}")]
    BadUtf8 { what: &'static str, at: usize },
    #[error("bad JSON reading {what} at byte {at}: {source}")]
    BadJson {
        what: &'static str,
        at: usize,
        source: serde_json::Error,
    },
    #[error("{left} bytes left over after the batch")]
    TrailingBytes { left: usize },
    #[error("shared text {index} was never written, reading {what} at byte {at}")]
    BadTextRef {
        index: u64,
        what: &'static str,
        at: usize,
    },
    #[error("an id longer than {max} characters reading {what} at byte {at}")]
    LongId {
        max: usize,
        what: &'static str,
        at: usize,
    },
}

/// A cursor over one entry. `what` is the field being read, kept only so
/// that errors can name it.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    what: &'static str,
    /// The entry's format version.
    version: u8,
    /// The shared texts read in full so far.
    shared: SharedTexts,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn truncated(&self) -> CodecError {
        CodecError::Truncated {
            what: self.what,
            at: self.pos,
        }
    }

    fn bad_varint(&self) -> CodecError {
        CodecError::BadVarint {
            what: self.what,
            at: self.pos,
        }
    }

    fn bad_tag(&self, tag: u8) -> CodecError {
        CodecError::BadTag {
            tag,
            what: self.what,
            at: self.pos - 1,
        }
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| self.truncated())?;
        self.pos += 1;
        Ok(b)
    }

    fn slice(&mut self, len: usize) -> Result<&'a [u8], CodecError> {
        if len > self.remaining() {
            return Err(self.truncated());
        }
        let s = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            // The tenth byte holds the 64th bit only.
            if shift == 63 && b > 1 {
                return Err(self.bad_varint());
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad_varint())
    }

    /// A length-prefixed run of bytes (text, JSON).
    fn bytes_field(&mut self) -> Result<&'a [u8], CodecError> {
        let len = usize::take(self)?;
        self.slice(len)
    }

    fn text(&mut self) -> Result<&'a str, CodecError> {
        let at = self.pos;
        let bytes = self.bytes_field()?;
        std::str::from_utf8(bytes).map_err(|_| CodecError::BadUtf8 {
            what: self.what,
            at,
        })
    }
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// A value the journal can hold: `put` appends it, `take` reads it back.
trait Field: Sized {
    fn put(&self, out: &mut Vec<u8>);
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError>;
}

impl Field for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(*self, out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.varint()
    }
}

impl Field for u32 {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(u64::from(*self), out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = r.varint()?;
        u32::try_from(v).map_err(|_| r.bad_varint())
    }
}

impl Field for usize {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(*self as u64, out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = r.varint()?;
        usize::try_from(v).map_err(|_| r.bad_varint())
    }
}

impl Field for i64 {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(((*self << 1) ^ (*self >> 63)) as u64, out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = r.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }
}

impl Field for i32 {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint(u64::from(((*self << 1) ^ (*self >> 31)) as u32), out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let v = u32::take(r)?;
        Ok((v >> 1) as i32 ^ -((v & 1) as i32))
    }
}

impl Field for f64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(r.slice(8)?);
        Ok(f64::from_le_bytes(b))
    }
}

impl Field for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(r.bad_tag(tag)),
        }
    }
}

impl Field for String {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(self.as_bytes(), out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.text().map(str::to_owned)
    }
}

/// Shared text: in full once per batch, then by its place (see the module
/// comment); decoded, the records share one `Arc` again.
impl Field for Arc<str> {
    fn put(&self, out: &mut Vec<u8>) {
        ENCODING.with_borrow_mut(|shared| match shared.position(self) {
            #[cfg(test)]
            _ if shared.plain => put_bytes(self.as_bytes(), out),
            Some(i) => put_varint(i as u64 + 1, out),
            None => {
                out.push(0);
                put_bytes(self.as_bytes(), out);
                shared.push(self.clone());
            }
        });
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        if r.version == PLAIN_TEXTS {
            return r.text().map(Arc::from);
        }
        let at = r.pos;
        match r.varint()? {
            0 => {
                let text: Arc<str> = Arc::from(r.text()?);
                r.shared.push(text.clone());
                Ok(text)
            }
            index => usize::try_from(index - 1)
                .ok()
                .and_then(|i| r.shared.texts.get(i)?.clone())
                .ok_or(CodecError::BadTextRef {
                    index,
                    what: r.what,
                    at,
                }),
        }
    }
}

/// Ids are written as the text they were before they were held inline, so
/// journals from either side of that change read the same.
impl<const N: usize> Field for HexId<N> {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(self.as_bytes(), out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let at = r.pos;
        let text = r.text()?;
        HexId::new(text).ok_or(CodecError::LongId {
            max: N,
            what: r.what,
            at,
        })
    }
}

/// Stored as text rather than as an index into [`KNOWN`], so that the
/// table can grow or be reordered without breaking old journals.
impl Field for &'static str {
    fn put(&self, out: &mut Vec<u8>) {
        put_bytes(self.as_bytes(), out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        r.text().map(intern)
    }
}

impl<T: Field> Field for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.put(out);
            }
        }
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match r.byte()? {
            0 => Ok(None),
            1 => T::take(r).map(Some),
            tag => Err(r.bad_tag(tag)),
        }
    }
}

impl<T: Field> Field for Vec<T> {
    fn put(&self, out: &mut Vec<u8>) {
        self.len().put(out);
        for v in self {
            v.put(out);
        }
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let n = usize::take(r)?;
        // Every element takes at least one byte, so a damaged count can
        // neither reserve more than the entry could hold nor loop for long.
        let mut v = Vec::with_capacity(n.min(r.remaining()));
        for _ in 0..n {
            v.push(T::take(r)?);
        }
        Ok(v)
    }
}

impl<T: Field> Field for Arc<T> {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        T::take(r).map(Arc::new)
    }
}

/// A triage report is rare (one per triaged group) and made of many nested
/// types that `errors::triage` already gives a serde form: its JSON text is
/// kept rather than a second encoding of all of them.
impl Field for TriageReport {
    fn put(&self, out: &mut Vec<u8>) {
        // Cannot fail for plain structs with string keys; if it ever did,
        // the empty text would make replay report bad JSON rather than the
        // writer panic.
        let json = serde_json::to_vec(self).unwrap_or_default();
        put_bytes(&json, out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let at = r.pos;
        let what = r.what;
        let json = r.bytes_field()?;
        serde_json::from_slice(json).map_err(|source| CodecError::BadJson { what, at, source })
    }
}

/// Implements [`Field`] for a struct from its field list. `put` destructures
/// without `..` and `take` builds a struct literal, so a field added to a
/// model type stops this module compiling instead of being dropped from the
/// journal. Fields are written in the listed order (a struct literal
/// evaluates its fields in the order written).
macro_rules! record {
    ($ty:ident { $($field:ident),+ $(,)? }) => {
        impl Field for $ty {
            fn put(&self, out: &mut Vec<u8>) {
                let $ty { $($field),+ } = self;
                $( $field.put(out); )+
            }
            fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                Ok($ty {
                    $($field: {
                        r.what = concat!(stringify!($ty), ".", stringify!($field));
                        Field::take(r)?
                    }),+
                })
            }
        }
    };
}

/// Implements [`Field`] for an enum with a fixed tag per variant; a variant
/// with fields lists every one of them (in the order written after the tag),
/// so a new field fails to compile until it is listed. The tags are the
/// on-disk format: never reuse or renumber one.
macro_rules! tagged {
    ($ty:ident { $($variant:ident $({ $($field:ident),+ $(,)? })? = $tag:literal),+ $(,)? }) => {
        impl Field for $ty {
            fn put(&self, out: &mut Vec<u8>) {
                match self {
                    $($ty::$variant $({ $($field),+ })? => {
                        out.push($tag);
                        $($($field.put(out);)+)?
                    })+
                }
            }
            fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
                r.what = stringify!($ty);
                match r.byte()? {
                    $($tag => Ok($ty::$variant $({ $($field: Field::take(r)?),+ })?),)+
                    tag => Err(r.bad_tag(tag)),
                }
            }
        }
    };
}

record!(Batch {
    spans,
    logs,
    metrics,
    errors,
    error_commands,
    functions,
    triage,
    slo_transitions,
    deploys,
});

record!(SpanRecord {
    trace_id,
    span_id,
    parent_span_id,
    trace_state,
    name,
    kind,
    start_time_unix_nano,
    end_time_unix_nano,
    duration_ns,
    status_code,
    status_message,
    service_name,
    service_version,
    deployment_environment,
    scope_name,
    scope_version,
    session_id,
    genai,
    // Written where it was when it was a GenAI field (its last), so the
    // format did not change when it moved to the span.
    user_id,
    attributes,
    resource,
    events,
    links,
    dropped_attributes_count,
    dropped_events_count,
    dropped_links_count,
});

record!(GenAiFields {
    provider,
    operation,
    request_model,
    response_model,
    input_tokens,
    output_tokens,
    cache_read_tokens,
    finish_reasons,
    cost_usd,
    cache_write_tokens,
    reasoning_tokens,
    tool_name,
    tool_call_id,
    agent_name,
    conversation_id,
    time_to_first_chunk_ms,
    error_type,
    cost_source,
});

/// As the fields it boxes; an empty set is not boxed again on decode.
impl Field for GenAi {
    fn put(&self, out: &mut Vec<u8>) {
        (**self).put(out);
    }
    fn take(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        GenAiFields::take(r).map(GenAi::from)
    }
}

record!(LogRecord {
    time_unix_nano,
    observed_time_unix_nano,
    trace_id,
    span_id,
    severity_number,
    severity_text,
    body,
    service_name,
    service_version,
    deployment_environment,
    scope_name,
    session_id,
    event_name,
    flags,
    attributes,
    resource,
    dropped_attributes_count,
});

record!(MetricPoint {
    time_unix_nano,
    start_time_unix_nano,
    name,
    description,
    unit,
    kind,
    temporality,
    is_monotonic,
    value,
    count,
    sum,
    min,
    max,
    histogram,
    exemplars,
    service_name,
    scope_name,
    attributes,
    resource,
    flags,
});

record!(ErrorOccurrence {
    event_id,
    source,
    span_index,
    time_unix_nano,
    trace_id,
    span_id,
    service_name,
    release,
    environment,
    session_id,
    user,
    exception_type,
    message,
    message_template,
    fingerprint,
    in_app_hash,
    full_stack_hash,
    fingerprint_rule,
    fingerprint_version,
    components,
    frames,
    culprit,
    category,
    handled,
    genai,
    stacktrace,
});

record!(ErrorGenAi {
    provider,
    operation,
    model,
    error_class,
    tool,
});

tagged!(StatusChange {
    Unresolve = 0,
    ResolveNow = 1,
    ResolveInNextRelease = 2,
    ArchiveForever = 3,
    ArchiveUntilEscalating = 4,
});

tagged!(ErrorCommand {
    SetStatus { group_id, change, at_unix_nano } = 0,
    Merge { target, sources } = 1,
    AutoResolve { before_unix_nano, at_unix_nano } = 2,
    ResolveQuietAfterDeploy { quiet_ns, at_unix_nano } = 3,
    AddNote { group_id, author, text, at_unix_nano } = 4,
    RecordRelease { service, environment, version, at_unix_nano } = 5,
});

record!(FunctionRows {
    invocations,
    definitions,
    state,
    published,
});

tagged!(InvocationStatus {
    Running = 0,
    Completed = 1,
    Failed = 2,
    Skipped = 3,
    TimedOut = 4,
});

// `replaces_running` is `#[serde(skip)]` for the API but decides how the
// row is stored, so the journal keeps it.
record!(Invocation {
    invocation_id,
    function,
    status,
    result,
    error,
    duration_ms,
    trace_id,
    span_id,
    started_unix_nano,
    finished_unix_nano,
    replaces_running,
});

record!(FunctionDefinition {
    name,
    file,
    description,
    trigger,
    max_concurrency,
    timeout_ms,
    memory_mb,
    rate_limit,
    enabled,
    updated_unix_nano,
});

record!(StateWrite {
    function,
    key,
    value
});

record!(Published {
    function,
    topic,
    value,
    time_unix_nano,
});

tagged!(GroupChange {
    New = 0,
    Regressed = 1,
    Escalating = 2,
    Triaged = 3,
});

record!(ErrorGroupEvent {
    change,
    group_id,
    fingerprint,
    status,
    substatus,
    error_type,
    message_template,
    culprit,
    category,
    service_name,
    release,
    environment,
    count,
    first_seen_unix_nano,
    last_seen_unix_nano,
    trace_id,
    event_id,
    genai_error_class,
    genai_model,
    triage,
});

tagged!(SloLevel {
    Ok = 0,
    Warning = 1,
    Page = 2,
});

record!(SloTransition {
    slo,
    service_name,
    objective,
    from,
    to,
    tier,
    burn_rate_long,
    burn_rate_short,
    budget_remaining,
    at_unix_nano,
});

record!(DeployRecord {
    service,
    environment,
    version,
    commit,
    url,
    deployed_unix_nano,
    recorded_unix_nano,
});

/// Every `&'static str` value qyl itself puts in a batch, so that decoding
/// one allocates nothing. Kept in step with where they are made (the test
/// `known_values_cover_their_sources` checks those it can reach):
static KNOWN: &[&str] = &[
    // Span kinds and status codes: `ingest::convert::{span_kind_name, status_code_name}`.
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
    "UNSPECIFIED",
    "UNSET",
    "OK",
    "ERROR",
    // `GenAiFields::cost_source`: `ingest::pricing`.
    "sent",
    "priced",
    "missing",
    // Metric kinds and temporalities: `ingest::convert`.
    "gauge",
    "sum",
    "histogram",
    "exponential_histogram",
    "summary",
    "delta",
    "cumulative",
    // `ErrorOccurrence::source` and `category`: `errors::capture`.
    "span_event",
    "log",
    "span_status",
    "genai",
    "genai_soft",
    "exception",
    "status",
    // `errors::fingerprint::FingerprintRule::as_str`.
    "explicit",
    "in_app_frames",
    "all_frames",
    "type_message",
    "span_name",
    // `errors::genai::GenAiErrorClass::as_str`.
    "rate_limited",
    "context_length_exceeded",
    "content_filtered",
    "auth",
    "timeout",
    "overloaded",
    "invalid_request",
    "tool_error",
    "output_parse_error",
    "truncated",
    "other",
    // Group status and substatus: `errors::groups::{status_str, substatus_str}`.
    "unresolved",
    "resolved",
    "archived",
    "merged",
    "new",
    "ongoing",
    "regressed",
    "escalating",
    "now",
    "in_next_release",
    "auto",
    "forever",
    "until_escalating",
    "",
];

/// The `&'static str` for a decoded text: the known one, else a copy
/// leaked once per distinct text, so that a journal written by a qyl that
/// knew more values still replays, and replaying it again leaks nothing new.
fn intern(text: &str) -> &'static str {
    if let Some(known) = KNOWN.iter().find(|k| **k == text) {
        return known;
    }
    static OTHERS: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Mutex::default);
    // The set stays consistent even if a holder panicked: insert is its
    // only change.
    let mut others = OTHERS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(seen) = others.get(text) {
        return seen;
    }
    let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
    others.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::triage::{
        Affected, Changed, DeployBefore, GenAiTriage, SimilarBrief, SuspectedCause,
    };

    fn span(n: u64) -> SpanRecord {
        SpanRecord {
            trace_id: format!("{n:032x}").into(),
            span_id: format!("{n:016x}").into(),
            parent_span_id: Some("00f067aa0ba902b7".into()),
            trace_state: Some("rojo=00f067aa0ba902b7".into()),
            name: "POST /checkout — ünïcode".into(),
            kind: "SERVER",
            start_time_unix_nano: 1_700_000_000_000_000_000 + n,
            end_time_unix_nano: 1_700_000_000_250_000_000 + n,
            duration_ns: 250_000_000,
            status_code: "ERROR",
            status_message: Some("boom".into()),
            service_name: "shop".into(),
            service_version: Some("1.2.3".into()),
            deployment_environment: Some("prod".into()),
            scope_name: Some("opentelemetry.instrumentation.flask".into()),
            scope_version: Some("0.48b0".into()),
            session_id: Some("sess-1".into()),
            genai: GenAiFields {
                provider: Some("openai".into()),
                operation: Some("chat".into()),
                request_model: Some("gpt-4o".into()),
                response_model: Some("gpt-4o-2024-08-06".into()),
                input_tokens: Some(1200),
                output_tokens: Some(-3),
                cache_read_tokens: Some(i64::MAX),
                finish_reasons: Some(r#"["stop"]"#.into()),
                cost_usd: Some(0.012_345),
                cache_write_tokens: Some(i64::MIN),
                reasoning_tokens: Some(64),
                tool_name: Some("search".into()),
                tool_call_id: Some("call_1".into()),
                agent_name: Some("planner".into()),
                conversation_id: Some("conv-9".into()),
                time_to_first_chunk_ms: Some(312.5),
                error_type: Some("RateLimitError".into()),
                cost_source: Some("priced"),
            }
            .into(),
            user_id: Some("u-42".into()),
            attributes: r#"{"http.method":"POST","http.status_code":500}"#.into(),
            resource: r#"{"service.name":"shop","telemetry.sdk.language":"python"}"#.into(),
            events: r#"[{"time_unix_nano":1,"name":"exception","attributes":{}}]"#.into(),
            links: r#"[{"trace_id":"ab","span_id":"cd","trace_state":"","attributes":{}}]"#.into(),
            dropped_attributes_count: 1,
            dropped_events_count: u32::MAX,
            dropped_links_count: 3,
        }
    }

    fn log() -> LogRecord {
        LogRecord {
            time_unix_nano: 5,
            observed_time_unix_nano: 6,
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            span_id: Some("00f067aa0ba902b7".into()),
            severity_number: -17,
            severity_text: Some("ERROR".into()),
            body: Some("payment failed".into()),
            service_name: "shop".into(),
            service_version: Some("1.2.3".into()),
            deployment_environment: Some("prod".into()),
            scope_name: Some("app.payments".into()),
            session_id: Some("sess-1".into()),
            event_name: Some("payment.failed".into()),
            flags: 1,
            attributes: r#"{"k":"v"}"#.into(),
            resource: r#"{"r":1}"#.into(),
            dropped_attributes_count: 2,
        }
    }

    fn metric() -> MetricPoint {
        MetricPoint {
            time_unix_nano: 10,
            start_time_unix_nano: 9,
            name: "http.server.duration".into(),
            description: Some("latency".into()),
            unit: Some("ms".into()),
            kind: "histogram",
            temporality: Some("delta"),
            is_monotonic: Some(true),
            value: Some(-1.5),
            count: Some(7),
            sum: Some(99.25),
            min: Some(f64::MIN_POSITIVE),
            max: Some(f64::INFINITY),
            histogram: Some(r#"{"bounds":[1,2],"counts":[3,4,0]}"#.into()),
            exemplars: Some(r#"[{"value":1}]"#.into()),
            service_name: "shop".into(),
            scope_name: Some("meter".into()),
            attributes: r#"{"route":"/"}"#.into(),
            resource: "{}".into(),
            flags: 1,
        }
    }

    fn occurrence() -> ErrorOccurrence {
        ErrorOccurrence {
            event_id: "ev-1".into(),
            source: "genai_soft",
            span_index: Some(1),
            time_unix_nano: 11,
            trace_id: Some("t".into()),
            span_id: Some("s".into()),
            service_name: "shop".into(),
            release: Some("1.2.3".into()),
            environment: Some("prod".into()),
            session_id: Some("sess-1".into()),
            user: Some("u-42".into()),
            exception_type: Some("KeyError".into()),
            message: Some("'u-<n>'".into()),
            message_template: Some("'u-<n>'".into()),
            fingerprint: "fp".into(),
            in_app_hash: Some("ia".into()),
            full_stack_hash: Some("fs".into()),
            fingerprint_rule: "in_app_frames",
            fingerprint_version: 2,
            components: r#"["KeyError"]"#.into(),
            frames: Some("[]".into()),
            culprit: Some("app.cart in add".into()),
            category: "genai_soft",
            handled: true,
            genai: Some(ErrorGenAi {
                provider: Some("openai".into()),
                operation: Some("chat".into()),
                model: Some("gpt-4o".into()),
                error_class: "truncated",
                tool: Some("search".into()),
            }),
            stacktrace: Some("Traceback…".into()),
        }
    }

    fn report() -> TriageReport {
        TriageReport {
            group_id: 7,
            change: "regressed".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            created_unix_nano: 1_704_067_200_000_000_000,
            title: "KeyError: 'u-<n>'".into(),
            suspected_cause: Some(SuspectedCause {
                frame: "app/cart.py:add:12".into(),
                path: Some("app/cart.py".into()),
                function: Some("add".into()),
                module: Some("app.cart".into()),
                line: Some(12),
                exception_type: Some("KeyError".into()),
                exception_message: Some("'u-1'".into()),
            }),
            genai: Some(GenAiTriage {
                class: Some("rate_limited".into()),
                provider: Some("openai".into()),
                model: Some("gpt-4o".into()),
                operation: Some("chat".into()),
                provider_side: true,
                provider_groups_last_hour: 2,
                provider_status: "openai looks degraded".into(),
            }),
            first_release: Some("1.0".into()),
            last_release: Some("1.1".into()),
            deploy_before_first_event: Some(DeployBefore {
                version: "1.1".into(),
                service: "shop".into(),
                environment: Some("prod".into()),
                at: "2024-01-01T00:00:00Z".into(),
                source: "deploy".into(),
                seconds_before_first_event: 30,
            }),
            what_changed: vec![Changed {
                key: "release".into(),
                value: "1.1".into(),
                failing_share: 0.75,
                baseline_share: 0.125,
                new_value: true,
            }],
            baseline_spans: 400,
            affected: Affected {
                events: 12,
                users: 3,
                sessions: 2,
                events_sampled: 12,
                user_ids: vec!["u-1".into()],
                session_ids: vec!["sess-1".into()],
                models: vec!["gpt-4o".into()],
                services: vec!["shop".into()],
            },
            similar: vec![SimilarBrief {
                id: 3,
                title: "KeyError".into(),
                score: 0.5,
            }],
            next_steps: vec!["Roll back 1.1".into()],
            text: "# KeyError".into(),
            summary: Some("A bad deploy".into()),
            summary_model: Some("gpt-4o-mini".into()),
            summary_error: Some("none".into()),
        }
    }

    /// A batch with every field of every type set to something other than
    /// its default, so a field the codec lost would show.
    fn full_batch() -> Batch {
        let mut weird_span = span(2);
        weird_span.kind = "CLIENT";
        weird_span.status_code = "OK";
        let mut sum = metric();
        sum.kind = "sum";
        sum.temporality = Some("cumulative");
        sum.value = Some(f64::NEG_INFINITY);
        let mut other_log = log();
        other_log.severity_number = i32::MIN;
        other_log.body = Some(String::new());
        Batch {
            spans: vec![span(1), weird_span, span(3)],
            logs: vec![log(), other_log],
            metrics: vec![metric(), sum],
            errors: vec![occurrence(), occurrence()],
            error_commands: vec![
                ErrorCommand::SetStatus {
                    group_id: -1,
                    change: StatusChange::ArchiveUntilEscalating,
                    at_unix_nano: 1,
                },
                ErrorCommand::SetStatus {
                    group_id: 2,
                    change: StatusChange::ResolveInNextRelease,
                    at_unix_nano: 2,
                },
                ErrorCommand::Merge {
                    target: 3,
                    sources: vec![4, 5, i64::MIN],
                },
                ErrorCommand::AutoResolve {
                    before_unix_nano: 6,
                    at_unix_nano: 7,
                },
                ErrorCommand::ResolveQuietAfterDeploy {
                    quiet_ns: 8,
                    at_unix_nano: u64::MAX,
                },
                ErrorCommand::AddNote {
                    group_id: 9,
                    author: "ana".into(),
                    text: "looked at it".into(),
                    at_unix_nano: 10,
                },
                ErrorCommand::RecordRelease {
                    service: "shop".into(),
                    environment: "prod".into(),
                    version: "1.2.4".into(),
                    at_unix_nano: 11,
                },
            ],
            functions: FunctionRows {
                invocations: vec![
                    Invocation {
                        invocation_id: "inv-1".into(),
                        function: "notify".into(),
                        status: InvocationStatus::TimedOut,
                        result: Some(r#"{"ok":false}"#.into()),
                        error: Some("timeout".into()),
                        duration_ms: 1000.5,
                        trace_id: Some("t".into()),
                        span_id: Some("s".into()),
                        started_unix_nano: 12,
                        finished_unix_nano: 13,
                        replaces_running: true,
                    },
                    Invocation {
                        invocation_id: "inv-2".into(),
                        function: "notify".into(),
                        status: InvocationStatus::Running,
                        result: None,
                        error: None,
                        duration_ms: 0.0,
                        trace_id: None,
                        span_id: None,
                        started_unix_nano: 14,
                        finished_unix_nano: 0,
                        replaces_running: false,
                    },
                ],
                definitions: vec![FunctionDefinition {
                    name: "notify".into(),
                    file: "notify.lua".into(),
                    description: Some("pages someone".into()),
                    trigger: r#"{"on":"error"}"#.into(),
                    max_concurrency: 4,
                    timeout_ms: 5000,
                    memory_mb: 64,
                    rate_limit: Some("10/m".into()),
                    enabled: true,
                    updated_unix_nano: 15,
                }],
                state: vec![
                    StateWrite {
                        function: "notify".into(),
                        key: "last".into(),
                        value: Some("1".into()),
                    },
                    StateWrite {
                        function: "notify".into(),
                        key: "gone".into(),
                        value: None,
                    },
                ],
                published: vec![Published {
                    function: "notify".into(),
                    topic: "alerts".into(),
                    value: r#"{"n":1}"#.into(),
                    time_unix_nano: 16,
                }],
            },
            triage: vec![Arc::new(ErrorGroupEvent {
                change: GroupChange::Triaged,
                group_id: 7,
                fingerprint: "fp".into(),
                status: "unresolved",
                substatus: "regressed",
                error_type: Some("KeyError".into()),
                message_template: Some("'u-<n>'".into()),
                culprit: Some("app.cart in add".into()),
                category: "exception",
                service_name: "shop".into(),
                release: Some("1.1".into()),
                environment: Some("prod".into()),
                count: 12,
                first_seen_unix_nano: 17,
                last_seen_unix_nano: 18,
                trace_id: Some("t".into()),
                event_id: "ev-1".into(),
                genai_error_class: Some("rate_limited"),
                genai_model: Some("gpt-4o".into()),
                triage: Some(Arc::new(report())),
            })],
            slo_transitions: vec![Arc::new(SloTransition {
                slo: "checkout".into(),
                service_name: "shop".into(),
                objective: 99.9,
                from: SloLevel::Warning,
                to: SloLevel::Page,
                tier: Some("page 14.4x (1h & 5m)".into()),
                burn_rate_long: 15.2,
                burn_rate_short: 20.1,
                budget_remaining: -0.25,
                at_unix_nano: 19,
            })],
            deploys: vec![DeployRecord {
                service: "shop".into(),
                environment: Some("prod".into()),
                version: "1.2.4".into(),
                commit: Some("abc123".into()),
                url: Some("https://ci.example/run/1".into()),
                deployed_unix_nano: 20,
                recorded_unix_nano: 21,
            }],
        }
    }

    fn encoded(batch: &Batch) -> Vec<u8> {
        let mut out = Vec::new();
        encode_batch(batch, &mut out);
        out
    }

    #[test]
    fn every_field_round_trips() {
        let batch = full_batch();
        let back = decode_batch(&encoded(&batch)).expect("decodes");
        assert_eq!(back.spans, batch.spans);
        assert_eq!(back.logs, batch.logs);
        assert_eq!(back.metrics, batch.metrics);
        assert_eq!(back.errors, batch.errors);
        assert_eq!(back.error_commands, batch.error_commands);
        assert_eq!(back.functions.invocations, batch.functions.invocations);
        assert_eq!(back.functions.definitions, batch.functions.definitions);
        assert_eq!(back.functions.state, batch.functions.state);
        assert_eq!(back.functions.published, batch.functions.published);
        assert_eq!(back.triage, batch.triage);
        assert_eq!(back.slo_transitions, batch.slo_transitions);
        assert_eq!(back.deploys, batch.deploys);
        // And nothing the field list above forgot.
        assert_eq!(format!("{back:?}"), format!("{batch:?}"));
        // Known values come back as the table's, allocating nothing.
        assert!(std::ptr::eq(back.spans[0].kind, KNOWN[1]));
    }

    /// `user_id` was the last GenAI field before it moved to the span, and
    /// is still written there: journals written before the move replay.
    #[test]
    fn the_user_id_follows_the_genai_fields_as_before_it_moved() {
        let mut s = span(1);
        s.genai = GenAi::default();
        s.user_id = Some("u-42".into());
        let mut spans = Vec::new();
        s.put(&mut spans);
        // Both shared texts, each new to the batch (tag 0).
        let mut expected = vec![1, 0];
        put_bytes(b"sess-1", &mut expected);
        // The eighteen GenAI fields, all `None`, then `user_id`.
        expected.extend([0; 18]);
        expected.extend([1, 0]);
        put_bytes(b"u-42", &mut expected);
        put_bytes(s.attributes.as_bytes(), &mut expected);
        assert!(
            spans.windows(expected.len()).any(|w| w == expected),
            "session_id, the GenAI fields, user_id and attributes are not in that order"
        );
        let back = decode_batch(&encoded(&Batch {
            spans: vec![s.clone()],
            ..Batch::default()
        }))
        .expect("decodes");
        assert_eq!(back.spans, vec![s]);
    }

    /// An export's spans share their service, scope, session and resource:
    /// the journal holds each once, and replay shares them again.
    #[test]
    fn shared_text_is_written_once_per_batch_and_shared_again() {
        let resource: Arc<str> = format!("{{\"host.name\":\"{}\"}}", "h".repeat(300)).into();
        // As ingest makes them: one `Arc` per value for the whole export.
        let shared = SpanRecord {
            resource: resource.clone(),
            ..span(0)
        };
        let spans: Vec<SpanRecord> = (0..100)
            .map(|n| SpanRecord {
                span_id: format!("{n:016x}").as_str().into(),
                ..shared.clone()
            })
            .collect();
        let bytes = encoded(&Batch {
            spans,
            ..Batch::default()
        });
        let mentions = bytes
            .windows(resource.len())
            .filter(|w| *w == resource.as_bytes())
            .count();
        assert_eq!(mentions, 1);
        let back = decode_batch(&bytes).expect("decodes");
        assert_eq!(back.spans.len(), 100);
        assert_eq!(back.spans[99].resource, resource);
        assert!(Arc::ptr_eq(
            &back.spans[0].resource,
            &back.spans[99].resource
        ));
        assert!(Arc::ptr_eq(
            &back.spans[0].service_name,
            &back.spans[99].service_name
        ));
        // More distinct texts than the encoder looks back over still round
        // trip: the ones that fell out are written in full again.
        let spans: Vec<SpanRecord> = (0..40)
            .map(|n| SpanRecord {
                service_name: format!("svc-{}", n % 20).into(),
                ..span(n)
            })
            .collect();
        let back = decode_batch(&encoded(&Batch {
            spans: spans.clone(),
            ..Batch::default()
        }))
        .expect("decodes");
        assert_eq!(back.spans, spans);
    }

    /// A journal written by the release before (every text in full,
    /// version 1) still replays after an upgrade.
    #[test]
    fn a_journal_of_version_1_still_reads() {
        let batch = full_batch();
        let mut bytes = vec![PLAIN_TEXTS];
        ENCODING.with_borrow_mut(|shared| shared.plain = true);
        batch.put(&mut bytes);
        ENCODING.with_borrow_mut(|shared| *shared = SharedTexts::default());
        let back = decode_batch(&bytes).expect("decodes");
        assert_eq!(format!("{back:?}"), format!("{batch:?}"));
        assert_ne!(bytes[1..], encoded(&batch)[1..]);
    }

    /// A reference to a shared text never written (a damaged entry) is an
    /// error naming the field, not a panic or a wrong value.
    #[test]
    fn a_reference_to_an_unwritten_shared_text_fails() {
        let mut bytes = encoded(&Batch {
            spans: vec![span(1)],
            ..Batch::default()
        });
        let mut service = vec![0];
        put_bytes(b"shop", &mut service);
        let at = bytes
            .windows(service.len())
            .position(|w| w == service)
            .expect("the service name, written in full");
        bytes[at] = 9;
        let err = decode_batch(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::BadTextRef {
                    index: 9,
                    what: "SpanRecord.service_name",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn an_empty_batch_round_trips_and_appends() {
        let mut out = vec![0xAA];
        encode_batch(&Batch::default(), &mut out);
        assert_eq!(out[0], 0xAA, "appends, keeps what was there");
        let back = decode_batch(&out[1..]).expect("decodes");
        assert!(back.is_empty() && back.errors.is_empty() && back.deploys.is_empty());
    }

    #[test]
    fn nan_keeps_its_bits() {
        let mut m = metric();
        m.value = Some(f64::from_bits(0x7ff8_0000_dead_beef));
        let batch = Batch {
            metrics: vec![m],
            ..Batch::default()
        };
        let back = decode_batch(&encoded(&batch)).expect("decodes");
        assert_eq!(
            back.metrics[0].value.map(f64::to_bits),
            Some(0x7ff8_0000_dead_beef)
        );
    }

    #[test]
    fn every_prefix_and_a_trailing_byte_fail() {
        let bytes = encoded(&full_batch());
        for n in 0..bytes.len() {
            assert!(
                decode_batch(&bytes[..n]).is_err(),
                "prefix of {n} of {} bytes decoded",
                bytes.len()
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode_batch(&longer),
            Err(CodecError::TrailingBytes { left: 1 })
        ));
    }

    #[test]
    fn errors_name_what_was_read() {
        let mut bytes = encoded(&full_batch());
        bytes[0] = 3;
        assert!(matches!(
            decode_batch(&bytes),
            Err(CodecError::UnknownVersion { found: 3 })
        ));

        // Version, one span, then its trace id claims far more than is there.
        let mut bytes = vec![VERSION, 1];
        put_varint(u64::MAX >> 1, &mut bytes);
        let err = decode_batch(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::Truncated {
                    what: "SpanRecord.trace_id",
                    ..
                }
            ),
            "{err}"
        );

        // A span count of 2^64 - 1 with nothing behind it: no huge reserve.
        let mut bytes = vec![VERSION];
        put_varint(u64::MAX, &mut bytes);
        assert!(matches!(
            decode_batch(&bytes),
            Err(CodecError::Truncated { .. })
        ));

        // An eleven-byte varint.
        let mut bytes = vec![VERSION];
        bytes.extend([0xff; 10]);
        bytes.push(0);
        assert!(matches!(
            decode_batch(&bytes),
            Err(CodecError::BadVarint { .. })
        ));

        // Invalid UTF-8 in the first span's trace id.
        let bytes = [VERSION, 1, 2, 0xc3, 0x28];
        assert!(matches!(
            decode_batch(&bytes),
            Err(CodecError::BadUtf8 {
                what: "SpanRecord.trace_id",
                ..
            })
        ));
    }

    #[test]
    fn bad_triage_json_is_an_error() {
        let mut batch = full_batch();
        batch.triage.truncate(1);
        let bytes = encoded(&batch);
        // Find the report's JSON and break its first byte (`{`).
        let json = serde_json::to_vec(&report()).expect("serializes");
        let start = bytes
            .windows(json.len())
            .position(|w| w == json.as_slice())
            .expect("the report is stored as its JSON");
        let mut broken = bytes.clone();
        broken[start] = b'[';
        assert!(matches!(
            decode_batch(&broken),
            Err(CodecError::BadJson {
                what: "ErrorGroupEvent.triage",
                ..
            })
        ));
    }

    /// xorshift64: enough randomness to shake the decoder, and repeatable.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let good = encoded(&full_batch());
        let mut decoded = 0;
        for case in 0..4000 {
            let bytes = if case % 2 == 0 {
                // Random bytes behind a valid version, so they reach the fields.
                let mut b = vec![VERSION];
                b.extend((0..rng.below(300)).map(|_| rng.next() as u8));
                b
            } else {
                let mut b = good.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len());
                    match rng.below(3) {
                        0 => b[i] = rng.next() as u8,
                        1 => b[i] ^= 1 << rng.below(8),
                        _ => {
                            b.remove(i);
                        }
                    }
                }
                b
            };
            if decode_batch(&bytes).is_ok() {
                decoded += 1;
            }
        }
        // Some mutations only change text or numbers and still decode.
        assert!(decoded > 0, "no mutated entry decoded at all");
    }

    #[test]
    fn an_unknown_value_round_trips_interned_once() {
        let mut s = span(1);
        s.kind = "WEIRD";
        let batch = Batch {
            spans: vec![s],
            ..Batch::default()
        };
        let bytes = encoded(&batch);
        let a = decode_batch(&bytes).expect("decodes");
        let b = decode_batch(&bytes).expect("decodes");
        assert_eq!(a.spans[0].kind, "WEIRD");
        assert!(std::ptr::eq(a.spans[0].kind, b.spans[0].kind));
        assert!(!std::ptr::eq(a.spans[0].kind, "WEIRD"), "a copy, not ours");
    }

    #[test]
    fn known_values_cover_their_sources() {
        use crate::errors::fingerprint::FingerprintRule;
        use crate::errors::genai::GenAiErrorClass;
        use crate::errors::groups::{status_str, substatus_str};
        use crate::ingest::convert::{span_kind_name, status_code_name};

        let mut made: Vec<&'static str> = (0..7).map(span_kind_name).collect();
        made.extend((0..4).map(status_code_name));
        made.extend(
            [
                FingerprintRule::Explicit,
                FingerprintRule::InAppFrames,
                FingerprintRule::AllFrames,
                FingerprintRule::TypeMessage,
                FingerprintRule::SpanName,
            ]
            .map(FingerprintRule::as_str),
        );
        made.extend(
            [
                GenAiErrorClass::RateLimited,
                GenAiErrorClass::ContextLengthExceeded,
                GenAiErrorClass::ContentFiltered,
                GenAiErrorClass::Auth,
                GenAiErrorClass::Timeout,
                GenAiErrorClass::Overloaded,
                GenAiErrorClass::InvalidRequest,
                GenAiErrorClass::ToolError,
                GenAiErrorClass::OutputParseError,
                GenAiErrorClass::Truncated,
                GenAiErrorClass::Other,
            ]
            .map(GenAiErrorClass::as_str),
        );
        for s in ["resolved", "archived", "merged", "x"] {
            made.push(status_str(s));
        }
        for s in [
            "ongoing",
            "regressed",
            "escalating",
            "now",
            "in_next_release",
            "auto",
            "forever",
            "until_escalating",
            "",
            "x",
        ] {
            made.push(substatus_str(s));
        }
        for value in made {
            assert!(KNOWN.contains(&value), "{value:?} is not in KNOWN");
        }
        let mut sorted = KNOWN.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), KNOWN.len(), "KNOWN has a duplicate");
    }

    /// Encode cost of a typical span. Run with
    /// `cargo test --release --lib journal::codec -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn encode_speed() {
        let mut s = span(1);
        s.genai = GenAi::default();
        s.attributes = format!(
            r#"{{"http.route":"/checkout","pad":"{}"}}"#,
            "x".repeat(255)
        );
        s.resource = format!(r#"{{"service.name":"shop","pad":"{}"}}"#, "y".repeat(190)).into();
        let batch = Batch {
            spans: (0..1000).map(|_| s.clone()).collect(),
            ..Batch::default()
        };
        let mut out = Vec::new();
        let rounds = 200;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            out.clear();
            encode_batch(std::hint::black_box(&batch), &mut out);
        }
        let per_span = started.elapsed() / (rounds * 1000);
        let started = std::time::Instant::now();
        for _ in 0..20 {
            std::hint::black_box(decode_batch(&out).expect("decodes"));
        }
        let decode_per_span = started.elapsed() / (20 * 1000);
        println!(
            "encode {per_span:?}/span, decode {decode_per_span:?}/span, {} bytes/span",
            out.len() / 1000
        );
    }
}
