//! Retried exports: the (trace id, span id) keys of recently stored spans,
//! seeded from the database at start, so an SDK retry is not stored twice.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::storage::ids::{parse_span_id, parse_trace_id};
use crate::storage::{Conn, StorageError};

/// Sequence numbers read per query while seeding: DuckDB materializes a
/// query's whole result (and sorts it) before the first row comes back, and
/// the allocator keeps that memory afterwards, so one query over the last
/// two million rows left 100–190 MB behind at start. Windows of this size keep
/// each result to a few megabytes.
const SEED_WINDOW: u64 = 65_536;

pub(super) fn seed_recent_spans(
    conn: &Conn,
    next_seq: u64,
    seen: &mut RecentSpans,
) -> Result<(), StorageError> {
    let ctx = |e| StorageError::sql("loading recent span ids", e);
    let mut from = next_seq.saturating_sub(seen.capacity as u64 * 2);
    let mut stmt = conn
        .prepare(
            "SELECT trace_id, span_id FROM span_rows
             WHERE ingest_seq >= ? AND ingest_seq < ? ORDER BY ingest_seq",
        )
        .map_err(ctx)?;
    while from < next_seq {
        let to = from.saturating_add(SEED_WINDOW).min(next_seq);
        let mut rows = stmt.query([from, to]).map_err(ctx)?;
        while let Some(row) = rows.next().map_err(ctx)? {
            let trace_id: u128 = row.get(0).map_err(ctx)?;
            let span_id: u64 = row.get(1).map_err(ctx)?;
            seen.insert(span_key(trace_id, span_id));
        }
        from = to;
    }
    Ok(())
}

/// Hashes of recently stored (trace id, span id) pairs, oldest evicted first.
pub(super) struct RecentSpans {
    pub(super) set: HashSet<u64, BuildHasherDefault<PreHashed>>,
    pub(super) order: VecDeque<u64>,
    pub(super) capacity: usize,
}

impl RecentSpans {
    pub(super) fn new(capacity: usize) -> Self {
        RecentSpans {
            set: HashSet::default(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub(super) fn contains(&self, key: u64) -> bool {
        self.set.contains(&key)
    }

    pub(super) fn insert(&mut self, key: u64) {
        if self.capacity == 0 {
            return;
        }
        if self.set.insert(key) {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// The keys are already keyed hashes; hashing them again would only cost time.
#[derive(Default)]
pub(super) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// [`span_key`] of a record's hex ids, as `span_rows` stores them.
pub(super) fn record_key(trace_id: &str, span_id: &str) -> u64 {
    span_key(
        parse_trace_id(trace_id).unwrap_or(0),
        parse_span_id(span_id).unwrap_or(0),
    )
}

pub(super) fn span_key(trace_id: u128, span_id: u64) -> u64 {
    // SipHash with keys chosen at random per process: senders cannot pick
    // ids that collide (in the set or in value) on purpose, and the keys need
    // not survive a restart because the set is rebuilt from the database.
    // A 64-bit key collides by chance with probability ~n²/2⁶⁵ (about 3e-8
    // for a million spans).
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    use std::hash::BuildHasher;
    KEYS.get_or_init(std::hash::RandomState::new)
        .hash_one((trace_id, span_id))
}
