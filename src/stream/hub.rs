//! The hub: recent committed records in a ring buffer, plus a broadcast of
//! every new one.
//!
//! The writer publishes each committed batch here; SSE streams, the function
//! dispatcher and the error engine subscribe. Every record gets the sequence
//! number it was stored with (`ingest_seq`), so a consumer that reconnects
//! can say where it stopped and be replayed what it missed, as far back as
//! the ring reaches.
//!
//! Publishing never blocks on a consumer: the broadcast channel drops the
//! oldest events for a receiver that falls behind and tells it how many
//! (`RecvError::Lagged`), and the ring simply forgets its oldest entries.
//!
//! Interface, in full:
//! - [`Hub::publish`] (writer only): append events in sequence order;
//! - [`Hub::subscribe`]: a receiver of every event published from now on;
//! - [`Hub::subscribe_after`]: the same, plus the ring's events after a
//!   given sequence, taken atomically so nothing falls between the two;
//! - [`Hub::recent`]: the newest events that pass a filter;
//! - [`Hub::last_seq`]: the sequence number of the newest event.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::model::Record;

/// One committed record and its sequence number. Cloning it clones an
/// `Arc` (every [`Record`] holds one), so the ring and the broadcast carry
/// events by value: one allocation per record, the record's own.
#[derive(Debug, Clone)]
pub struct Event {
    pub seq: u64,
    pub record: Record,
}

pub struct Hub {
    ring: Mutex<VecDeque<Event>>,
    capacity: usize,
    tx: broadcast::Sender<Event>,
    last_seq: AtomicU64,
}

/// What [`Hub::subscribe_after`] returns.
pub struct Subscription {
    /// Events after the requested sequence that the ring still held, oldest
    /// first.
    pub replay: Vec<Event>,
    /// How many events after the requested sequence had already left the
    /// ring and cannot be replayed (0 when the replay is complete).
    pub missed: u64,
    /// Every event published after `replay`.
    pub receiver: broadcast::Receiver<Event>,
}

impl Hub {
    /// A hub keeping the newest `capacity` events (rounded up to a power
    /// of two, as the broadcast rounds its own); a subscriber may fall that
    /// many events behind before it starts losing them.
    pub fn new(capacity: usize) -> Hub {
        let capacity = capacity.max(1).next_power_of_two();
        let (tx, _) = broadcast::channel(capacity);
        Hub {
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(1 << 16))),
            capacity,
            tx,
            last_seq: AtomicU64::new(0),
        }
    }

    fn ring(&self) -> MutexGuard<'_, VecDeque<Event>> {
        // A panic while holding the lock leaves the ring consistent (pushes
        // and pops are atomic), so a poisoned lock is still usable.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends events (in increasing `seq` order) and broadcasts them.
    ///
    /// Returns the events that left the ring. The broadcast, holding as
    /// many, has let go of them first, so unless a slow consumer still
    /// holds one, dropping them frees them: the writer does that on
    /// another thread rather than between two commits.
    pub fn publish(&self, events: impl IntoIterator<Item = Event>) -> Vec<Event> {
        let mut ring = self.ring();
        let mut evicted = Vec::new();
        for event in events {
            self.last_seq.store(event.seq, Ordering::Release);
            // An error only means nobody is subscribed.
            let _ = self.tx.send(event.clone());
            if ring.len() == self.capacity {
                evicted.extend(ring.pop_front());
            }
            ring.push_back(event);
        }
        evicted
    }

    /// Sets where the sequence stands before anything is published (the
    /// last `ingest_seq` already stored), so that after a restart
    /// `subscribe_after` reports older positions as missed, not as current.
    pub fn resume_after(&self, seq: u64) {
        self.last_seq.fetch_max(seq, Ordering::AcqRel);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Subscribes and returns the ring's events with `seq > after`.
    pub fn subscribe_after(&self, after: u64) -> Subscription {
        let ring = self.ring();
        let receiver = self.tx.subscribe();
        let start = ring.partition_point(|e| e.seq <= after);
        let replay: Vec<_> = ring.range(start..).cloned().collect();
        let last = self.last_seq.load(Ordering::Acquire);
        let oldest_kept = replay.first().map(|e| e.seq).unwrap_or(last + 1);
        let missed = if after < last {
            // Sequence numbers can have gaps (records skipped as duplicates
            // never get published), so this is an upper bound.
            oldest_kept.saturating_sub(after + 1)
        } else {
            0
        };
        Subscription {
            replay,
            missed,
            receiver,
        }
    }

    /// Up to `limit` of the newest events that pass `filter`, oldest first.
    pub fn recent(&self, limit: usize, filter: impl Fn(&Event) -> bool) -> Vec<Event> {
        let ring = self.ring();
        let mut out: Vec<_> = ring
            .iter()
            .rev()
            .filter(|e| filter(e))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// Number of live subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LogRecord, SpanRecord};
    use std::sync::Arc;
    use tokio::sync::broadcast::error::TryRecvError;

    fn span(seq: u64, service: &str) -> Event {
        Event {
            seq,
            record: Record::Span(Arc::new(SpanRecord {
                service_name: service.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn ring_keeps_the_newest_events() {
        // 3 rounds up to 4, the broadcast's own capacity.
        let hub = Hub::new(3);
        let evicted = hub.publish((1..=5).map(|s| span(s, "a")));
        let seqs: Vec<_> = hub.recent(10, |_| true).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4, 5]);
        assert_eq!(hub.last_seq(), 5);
        // The evicted event is held by nothing else: dropping it frees it.
        assert_eq!(evicted.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
        let Record::Span(span) = &evicted[0].record else {
            panic!("a span was published")
        };
        assert_eq!(Arc::strong_count(span), 1);
    }

    #[test]
    fn recent_filters_and_limits() {
        let hub = Hub::new(10);
        hub.publish([span(1, "a"), span(2, "b"), span(3, "a"), span(4, "a")]);
        hub.publish([Event {
            seq: 5,
            record: Record::Log(Arc::new(LogRecord::default())),
        }]);
        let seqs: Vec<_> = hub
            .recent(2, |e| e.record.service_name() == "a")
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4]);
    }

    #[test]
    fn subscribe_after_replays_then_streams_without_gap_or_overlap() {
        let hub = Hub::new(10);
        hub.publish((1..=4).map(|s| span(s, "a")));
        let mut sub = hub.subscribe_after(2);
        assert_eq!(
            sub.replay.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert_eq!(sub.missed, 0);
        hub.publish([span(5, "a")]);
        assert_eq!(sub.receiver.try_recv().map(|e| e.seq).ok(), Some(5));
        assert!(matches!(sub.receiver.try_recv(), Err(TryRecvError::Empty)));
    }

    #[test]
    fn subscribe_after_reports_what_fell_out_of_the_ring() {
        let hub = Hub::new(4);
        hub.publish((1..=10).map(|s| span(s, "a")));
        let sub = hub.subscribe_after(2);
        assert_eq!(sub.replay.first().map(|e| e.seq), Some(7));
        assert_eq!(sub.missed, 4); // 3..=6
        let sub = hub.subscribe_after(10);
        assert!(sub.replay.is_empty());
        assert_eq!(sub.missed, 0);
    }

    #[test]
    fn after_a_restart_older_positions_are_reported_missed() {
        let hub = Hub::new(10);
        hub.resume_after(50);
        let sub = hub.subscribe_after(40);
        assert!(sub.replay.is_empty());
        assert_eq!(sub.missed, 10);
        assert_eq!(hub.subscribe_after(50).missed, 0);
        hub.publish([span(51, "a")]);
        let sub = hub.subscribe_after(40);
        assert_eq!(sub.replay.len(), 1);
        assert_eq!(sub.missed, 10);
    }

    #[test]
    fn a_slow_subscriber_lags_instead_of_blocking_the_publisher() {
        let hub = Hub::new(4);
        let mut rx = hub.subscribe();
        hub.publish((1..=100).map(|s| span(s, "a")));
        match rx.try_recv() {
            Err(TryRecvError::Lagged(n)) => assert_eq!(n, 96),
            other => panic!("expected lag, got {other:?}"),
        }
        assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(97));
    }
}
