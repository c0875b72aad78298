//! Retried exports: the (trace id, span id) keys of recently stored spans,
//! seeded from the database at start, so an SDK retry is not stored twice.

use std::hash::Hasher;

use hashbrown::HashTable;

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
            seen.insert(span_key(trace_id, span_id), ());
        }
        from = to;
    }
    Ok(())
}

/// Hashes of recently stored (trace id, span id) pairs, oldest evicted first.
pub(super) type RecentSpans = Recent<()>;

/// The newest `capacity` keys (keyed hashes already) and a value for each,
/// the oldest evicted first: the dedup window, and the sessions' memory of
/// which session a recent trace belongs to.
///
/// The entries sit in a ring in the order they came, and a table finds a
/// key's place in the ring by the key itself. A set of keys plus a queue of
/// the same keys for eviction held each key twice and, at the default
/// million, took 26 MB; this takes ~18. A `HashMap` plus a queue, as the
/// sessions had, doubled its table once removals had filled it with
/// tombstones (13 MB for 200,000 traces where 6.5 would do).
pub(super) struct Recent<V> {
    /// The entries; once full, `next` is the oldest.
    ring: Vec<(u64, V)>,
    next: usize,
    /// Positions in `ring`.
    index: HashTable<u32>,
    capacity: usize,
}

impl<V> Recent<V> {
    pub(super) fn new(capacity: usize) -> Self {
        // Positions are u32; a window past four billion spans is not one
        // anybody sets (the default is a million).
        let capacity = capacity.min(u32::MAX as usize);
        Recent {
            ring: Vec::new(),
            next: 0,
            index: HashTable::new(),
            capacity,
        }
    }

    fn position(&self, key: u64) -> Option<usize> {
        self.index
            .find(key, |&at| self.ring[at as usize].0 == key)
            .map(|&at| at as usize)
    }

    pub(super) fn contains(&self, key: u64) -> bool {
        self.position(key).is_some()
    }

    pub(super) fn get(&self, key: u64) -> Option<&V> {
        self.position(key).map(|at| &self.ring[at].1)
    }

    /// Remembers `value` for `key`: a key already there keeps its place
    /// (and takes the new value), a new one evicts the oldest when full.
    pub(super) fn insert(&mut self, key: u64, value: V) {
        if self.capacity == 0 {
            return;
        }
        if let Some(at) = self.position(key) {
            self.ring[at].1 = value;
            return;
        }
        self.insert_new(key, value);
    }

    /// [`Recent::insert`] of a key the caller knows is not there (the
    /// writer's commit: its keys were looked up before it was written),
    /// which spares a lookup in a table too large for the CPU's caches.
    pub(super) fn insert_new(&mut self, key: u64, value: V) {
        if self.capacity == 0 {
            return;
        }
        debug_assert!(!self.contains(key));
        let at = if self.ring.len() < self.capacity {
            self.ring.push((key, value));
            self.ring.len() - 1
        } else {
            let at = self.next;
            let old = self.ring[at].0;
            if let Ok(entry) = self.index.find_entry(old, |&i| i as usize == at) {
                entry.remove();
            }
            self.ring[at] = (key, value);
            self.next = (at + 1) % self.capacity;
            if self.next == 0 {
                // Once per turn of the ring: removals leave tombstones in
                // the table, and when they fill it the table doubles (to
                // 36 MB at the default) instead of cleaning up in place;
                // this brings it back to its size.
                let ring = &self.ring;
                self.index.shrink_to(self.capacity, |&i| ring[i as usize].0);
            }
            at
        };
        let ring = &self.ring;
        self.index
            .insert_unique(key, at as u32, |&i| ring[i as usize].0);
    }

    /// How many keys the window holds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.index.len()
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
    // Keyed per process (`model::keyed_hash`): senders cannot pick ids that
    // collide (in the set or in value) on purpose, and the keys need not
    // survive a restart because the set is rebuilt from the database. A
    // 64-bit key collides by chance with probability ~n²/2⁶⁵ (about 3e-8
    // for a million spans).
    crate::model::keyed_hash((trace_id, span_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_newest_keys_up_to_its_capacity() {
        let mut window = RecentSpans::new(3);
        for key in [10, 20, 30] {
            window.insert(key, ());
        }
        // Known already: neither a new entry nor an eviction.
        window.insert(20, ());
        assert!([10, 20, 30].iter().all(|&k| window.contains(k)));
        window.insert(40, ());
        assert!(!window.contains(10));
        assert!([20, 30, 40].iter().all(|&k| window.contains(k)));
        window.insert(50, ());
        window.insert(60, ());
        assert_eq!(window.len(), 3);
        assert!(!window.contains(20) && !window.contains(30));
        assert!([40, 50, 60].iter().all(|&k| window.contains(k)));
    }

    #[test]
    fn a_key_keeps_its_place_and_takes_its_newest_value() {
        let mut sessions: Recent<&str> = Recent::new(2);
        sessions.insert(1, "a");
        sessions.insert(2, "b");
        // Known: the value changes, the place in the ring does not, so 1
        // is still the oldest and goes first.
        sessions.insert(1, "c");
        assert_eq!(sessions.get(1), Some(&"c"));
        sessions.insert(3, "d");
        assert_eq!(sessions.get(1), None);
        assert_eq!((sessions.get(2), sessions.get(3)), (Some(&"b"), Some(&"d")));
        assert_eq!(sessions.len(), 2);
    }

    #[test]
    fn a_window_of_zero_remembers_nothing() {
        let mut window = RecentSpans::new(0);
        window.insert(7, ());
        assert!(!window.contains(7));
        assert_eq!(window.len(), 0);
    }

    #[test]
    fn many_turns_of_the_ring_keep_the_window_exact_and_its_table_small() {
        // splitmix64: keys spread like the SipHash keys the writer makes.
        let mut state = 0u64;
        let mut next_key = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut window = RecentSpans::new(10_000);
        let keys: Vec<u64> = (0..300_000).map(|_| next_key()).collect();
        for &key in &keys {
            window.insert(key, ());
        }
        assert_eq!(window.len(), 10_000);
        let (older, newest) = keys.split_at(keys.len() - 10_000);
        assert!(newest.iter().all(|&k| window.contains(k)));
        assert!(older.iter().all(|&k| !window.contains(k)));
        // 10,000 keys fit a table of 16,384 slots (room for 14,336).
        assert!(
            window.index.capacity() < 20_000,
            "{}",
            window.index.capacity()
        );
    }
}
