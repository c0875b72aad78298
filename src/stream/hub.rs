//! The hub: recent committed records in a ring buffer, and subscribers
//! that are handed each published batch.
//!
//! The writer publishes each committed batch here; SSE streams, the function
//! dispatcher and the error engine subscribe. Every record gets the sequence
//! number it was stored with (`ingest_seq`), so a consumer that reconnects
//! can say where it stopped and be replayed what it missed, as far back as
//! the ring reaches.
//!
//! A publish shares the batch among the subscribers: one `Arc` of the whole
//! batch in each subscriber's inbox and one wake-up each, however many
//! records the batch holds. A broadcast channel sent each record to each
//! subscriber on its own (a lock and a wake-up per record per subscriber),
//! ~3 % of qyl's CPU at 130k spans/s with nobody watching but the function
//! dispatcher and the error engine.
//!
//! The ring holds those same batches, the oldest cut (as a shorter copy) to
//! the events still kept. A ring of single events cloned every kept event
//! under the hub's lock for each reconnecting client's replay (10,000 by
//! default), while the writer's publish waited; and a publish cloned every
//! record once more for the ring. With 100 streams lagging and coming back
//! together, the longest publish was 26 ms with that ring and 11 ms with
//! this one; the writer's time in publish about halved (BENCHMARKS.md).
//!
//! Publishing never blocks on a consumer. An inbox holds at most the ring's
//! capacity in records, or the newest batch if that alone is larger (a
//! commit under load is a whole row group, larger than the ring): a
//! subscriber that falls further behind loses its oldest batches and is told
//! how many records it missed (`RecvError::Lagged`). What the hub lets go of
//! (records that left the ring, batches a subscriber is done with) goes to
//! the writer's reaper thread ([`Hub::dispose_with`]), so that the records
//! are freed there, as soon as nothing holds them, rather than by whichever
//! thread held them last.
//!
//! Interface, in full:
//! - [`Hub::publish`] (writer only): append events in sequence order;
//! - [`Hub::subscribe`]: a receiver of every event published from now on;
//! - [`Hub::subscribe_after`]: the same, plus the ring's events after a
//!   given sequence, taken atomically so nothing falls between the two;
//! - [`Hub::recent`]: the newest events that pass a filter;
//! - [`Hub::last_seq`]: the sequence number of the newest event.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// What [`Receiver::recv`] and [`Receiver::try_recv`] fail with: the
/// broadcast channel's errors, whose meaning the subscribers already know.
pub use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::model::Record;

/// One committed record and its sequence number. Cloning it clones an
/// `Arc` (every [`Record`] holds one; a span, log or metric point shares
/// its export's vector, `model::Shared`), so the ring and the subscribers
/// carry events by value and publishing allocates nothing per record.
#[derive(Debug, Clone)]
pub struct Event {
    pub seq: u64,
    pub record: Record,
}

/// One published batch, shared by the subscribers' inboxes.
type Batch = Arc<[Event]>;

/// A panic while holding one of the hub's locks leaves what it guards
/// consistent (pushes and pops are whole), so a poisoned lock is still
/// usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Hub {
    state: Mutex<State>,
    capacity: usize,
    /// What receivers do with a batch they are done with.
    dispose: Arc<Mutex<Option<Disposer>>>,
}

/// See [`Hub::dispose_with`].
type Disposer = Box<dyn Fn(Box<dyn Send>) + Send + Sync>;

struct State {
    /// The newest `capacity` events, as the published batches that hold
    /// them (the oldest one cut to the events still kept), so that a
    /// subscriber's replay takes a reference per batch under the lock, not
    /// one per event.
    ring: VecDeque<Batch>,
    /// Events in `ring`.
    ring_len: usize,
    /// The sequence number of the newest event published (or stored
    /// before a restart).
    last_seq: u64,
    inboxes: Vec<Arc<Inbox>>,
}

impl State {
    /// How many events after `after` left the ring (an upper bound:
    /// sequence numbers have gaps where duplicate spans were skipped).
    fn missed_after(&self, after: u64) -> u64 {
        if after >= self.last_seq {
            return 0;
        }
        let oldest_kept = self
            .ring
            .front()
            .and_then(|batch| batch.first())
            .map_or(self.last_seq + 1, |e| e.seq);
        oldest_kept.saturating_sub(after + 1)
    }
}

/// One subscriber's batches, waiting for it.
#[derive(Default)]
struct Inbox {
    queue: Mutex<Queue>,
    wake: Notify,
}

#[derive(Default)]
struct Queue {
    batches: VecDeque<Batch>,
    /// Records in `batches`.
    queued: usize,
    /// Records dropped for falling behind, not yet reported.
    lagged: u64,
    /// The hub is gone: nothing more will come.
    closed: bool,
}

/// What a publish lets go of, for the caller to drop where it suits it.
#[derive(Default)]
pub struct Evicted {
    /// How many events left the ring.
    pub left_ring: usize,
    /// Batches that left the ring, or that the ring now keeps a shorter
    /// copy of; and batches subscribers that fell behind will not read.
    batches: Vec<Batch>,
    inboxes: Vec<Arc<Inbox>>,
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
    pub receiver: Receiver,
}

impl Hub {
    /// A hub keeping the newest `capacity` events; a subscriber may fall
    /// that many events (or one batch, if that is more) behind before it
    /// starts losing them. (The broadcast channel this replaced rounded
    /// the capacity up to a power of two: 10,000 kept 16,384.)
    pub fn new(capacity: usize) -> Hub {
        let capacity = capacity.max(1);
        Hub {
            state: Mutex::new(State {
                ring: VecDeque::new(),
                ring_len: 0,
                last_seq: 0,
                inboxes: Vec::new(),
            }),
            capacity,
            dispose: Arc::default(),
        }
    }

    /// Has receivers hand the batches they are done with to `dispose`
    /// (the writer's reaper) instead of dropping them where they are: the
    /// last holder of a batch frees the records that already left the
    /// ring, thousands of them per commit under load. `dispose` must not
    /// block.
    pub fn dispose_with(&self, dispose: impl Fn(Box<dyn Send>) + Send + Sync + 'static) {
        *lock(&self.dispose) = Some(Box::new(dispose));
    }

    /// Has receivers drop what they are done with themselves again (the
    /// writer stops, and its reaper with it).
    pub fn stop_disposing(&self) {
        lock(&self.dispose).take();
    }

    /// Appends events (in increasing `seq` order) and hands them to the
    /// subscribers.
    ///
    /// Returns what the hub let go of: the batches whose events left the
    /// ring, and the batches and inboxes of subscribers that fell behind or
    /// left. Unless a subscriber still holds them, dropping it frees their
    /// records: the writer does that on another thread rather than between
    /// two commits.
    pub fn publish(&self, events: impl IntoIterator<Item = Event>) -> Evicted {
        let events: Vec<Event> = events.into_iter().collect();
        let mut evicted = Evicted::default();
        let mut state = lock(&self.state);
        // A receiver that was dropped leaves the hub holding its inbox alone.
        state.inboxes.retain(|inbox| {
            let live = Arc::strong_count(inbox) > 1;
            if !live {
                evicted.inboxes.push(inbox.clone());
            }
            live
        });
        let Some(last) = events.last() else {
            return evicted;
        };
        state.last_seq = last.seq;
        let batch: Batch = events.into();
        for inbox in &state.inboxes {
            let mut queue = lock(&inbox.queue);
            queue.queued += batch.len();
            queue.batches.push_back(batch.clone());
            while queue.queued > self.capacity && queue.batches.len() > 1 {
                if let Some(old) = queue.batches.pop_front() {
                    queue.queued -= old.len();
                    queue.lagged += old.len() as u64;
                    evicted.batches.push(old);
                }
            }
            drop(queue);
            inbox.wake.notify_one();
        }
        state.ring_len += batch.len();
        state.ring.push_back(batch);
        // Whole batches leave the ring first; the oldest one left is then
        // cut to its newest events, copied (one reference each, at most
        // `capacity` of them), so the ring holds exactly what it keeps.
        while state.ring_len > self.capacity {
            let Some(oldest) = state.ring.pop_front() else {
                break;
            };
            let excess = state.ring_len - self.capacity;
            if excess < oldest.len() {
                state.ring.push_front(oldest[excess..].into());
                state.ring_len -= excess;
                evicted.left_ring += excess;
            } else {
                state.ring_len -= oldest.len();
                evicted.left_ring += oldest.len();
            }
            evicted.batches.push(oldest);
        }
        evicted
    }

    /// Sets where the sequence stands before anything is published (the
    /// last `ingest_seq` already stored), so that after a restart
    /// `subscribe_after` reports older positions as missed, not as current.
    pub fn resume_after(&self, seq: u64) {
        let mut state = lock(&self.state);
        state.last_seq = state.last_seq.max(seq);
    }

    fn register(&self, state: &mut State) -> Receiver {
        let inbox = Arc::new(Inbox::default());
        state.inboxes.push(inbox.clone());
        Receiver {
            inbox,
            dispose: self.dispose.clone(),
            current: None,
        }
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> Receiver {
        self.register(&mut lock(&self.state))
    }

    /// Subscribes and returns the ring's events with `seq > after`.
    pub fn subscribe_after(&self, after: u64) -> Subscription {
        let mut state = lock(&self.state);
        // The batches holding events after `after`, a reference each; their
        // events are copied out once the lock is released.
        let first = state
            .ring
            .partition_point(|batch| batch.last().is_some_and(|e| e.seq <= after));
        let batches: Vec<Batch> = state.ring.range(first..).cloned().collect();
        let missed = state.missed_after(after);
        let receiver = self.register(&mut state);
        drop(state);
        let replay = batches
            .iter()
            .flat_map(|batch| batch.iter())
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        Subscription {
            missed,
            receiver,
            replay,
        }
    }

    /// Up to `limit` of the newest events that pass `filter`, oldest first.
    pub fn recent(&self, limit: usize, filter: impl Fn(&Event) -> bool) -> Vec<Event> {
        let state = lock(&self.state);
        let mut out: Vec<_> = state
            .ring
            .iter()
            .rev()
            .flat_map(|batch| batch.iter().rev())
            .filter(|e| filter(e))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }

    pub fn last_seq(&self) -> u64 {
        lock(&self.state).last_seq
    }

    /// Number of live subscribers.
    pub fn subscribers(&self) -> usize {
        lock(&self.state)
            .inboxes
            .iter()
            .filter(|inbox| Arc::strong_count(inbox) > 1)
            .count()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for inbox in &lock(&self.state).inboxes {
            lock(&inbox.queue).closed = true;
            inbox.wake.notify_one();
        }
    }
}

/// A subscriber's end: every event published after it subscribed, in order.
pub struct Receiver {
    inbox: Arc<Inbox>,
    dispose: Arc<Mutex<Option<Disposer>>>,
    /// The batch being read, and the position of its next event.
    current: Option<(Batch, usize)>,
}

impl Receiver {
    /// The next event, waiting for one to be published if need be.
    /// `Lagged(n)` says that `n` events were dropped before this receiver
    /// read them; the next call returns the oldest one left. `Closed` comes
    /// once the hub is gone and every event is read.
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        self.recv_matching(|_| true).await
    }

    /// The next event that passes `keep`, waiting for one if need be; the
    /// others are passed over where they lie, never cloned. (A live stream
    /// looking for 2 % of the records would otherwise take and drop a
    /// reference to every record's export, for every stream.)
    pub async fn recv_matching(
        &mut self,
        keep: impl Fn(&Event) -> bool,
    ) -> Result<Event, RecvError> {
        loop {
            match self.try_recv_matching(&keep) {
                Ok(event) => return Ok(event),
                Err(TryRecvError::Lagged(n)) => return Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => return Err(RecvError::Closed),
                // A publish after this check leaves a permit: no wake-up
                // is lost.
                Err(TryRecvError::Empty) => self.inbox.wake.notified().await,
            }
        }
    }

    /// The next event if one is there.
    pub fn try_recv(&mut self) -> Result<Event, TryRecvError> {
        self.try_recv_matching(|_| true)
    }

    /// The next event that passes `keep`, if one is there.
    pub fn try_recv_matching(
        &mut self,
        keep: impl Fn(&Event) -> bool,
    ) -> Result<Event, TryRecvError> {
        loop {
            if let Some((batch, next)) = &mut self.current {
                while let Some(event) = batch.get(*next) {
                    *next += 1;
                    if keep(event) {
                        return Ok(event.clone());
                    }
                }
                if let Some((done, _)) = self.current.take() {
                    if let Some(dispose) = &*lock(&self.dispose) {
                        dispose(Box::new(done));
                    }
                }
            }
            let mut queue = lock(&self.inbox.queue);
            if queue.lagged > 0 {
                return Err(TryRecvError::Lagged(std::mem::take(&mut queue.lagged)));
            }
            match queue.batches.pop_front() {
                Some(batch) => {
                    queue.queued -= batch.len();
                    self.current = Some((batch, 0));
                }
                None if queue.closed => return Err(TryRecvError::Closed),
                None => return Err(TryRecvError::Empty),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LogRecord, Shared, SpanRecord};
    use std::sync::Arc;

    fn span(seq: u64, service: &str) -> Event {
        Event {
            seq,
            record: Record::Span(Shared::from(SpanRecord {
                service_name: service.into(),
                ..Default::default()
            })),
        }
    }

    /// The export behind the first record a publish let go of, without
    /// holding it: it is gone once nothing else does.
    fn first_evicted_export(evicted: &Evicted) -> std::sync::Weak<Vec<SpanRecord>> {
        match &evicted.batches[0][0].record {
            Record::Span(span) => Arc::downgrade(span.batch()),
            _ => panic!("a span was published"),
        }
    }

    #[test]
    fn ring_keeps_the_newest_events() {
        let hub = Hub::new(4);
        let evicted = hub.publish((1..=5).map(|s| span(s, "a")));
        let seqs: Vec<_> = hub.recent(10, |_| true).iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4, 5]);
        assert_eq!(hub.last_seq(), 5);
        assert_eq!(evicted.left_ring, 1);
        // The evicted event is held by nothing else: dropping it frees it.
        let first = first_evicted_export(&evicted);
        drop(evicted);
        assert!(first.upgrade().is_none());
    }

    #[test]
    fn recent_filters_and_limits() {
        let hub = Hub::new(10);
        hub.publish([span(1, "a"), span(2, "b"), span(3, "a"), span(4, "a")]);
        hub.publish([Event {
            seq: 5,
            record: Record::Log(Shared::from(LogRecord::default())),
        }]);
        let seqs: Vec<_> = hub
            .recent(2, |e| e.record.service_name() == "a")
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4]);
    }

    #[test]
    fn recv_matching_passes_over_the_rest_across_batches() {
        let hub = Hub::new(10);
        let mut rx = hub.subscribe();
        hub.publish([span(1, "a"), span(2, "b"), span(3, "a")]);
        hub.publish([span(4, "b"), span(5, "a")]);
        let b = |e: &Event| e.record.service_name() == "b";
        assert_eq!(rx.try_recv_matching(b).map(|e| e.seq).ok(), Some(2));
        assert_eq!(rx.try_recv_matching(b).map(|e| e.seq).ok(), Some(4));
        // What was passed over is gone: the next read starts after seq 4.
        assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(5));
        assert!(matches!(rx.try_recv_matching(b), Err(TryRecvError::Empty)));
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
    fn the_ring_keeps_exactly_the_newest_events_across_batches_of_any_size() {
        let hub = Hub::new(7);
        let mut next = 1;
        // Sizes below, at and above the ring's capacity, in every order.
        for size in [1, 3, 7, 2, 12, 1, 1, 6, 8, 4, 5] {
            let evicted = hub.publish((next..next + size).map(|s| span(s, "a")));
            next += size;
            let last = next - 1;
            let want: Vec<u64> = (last.saturating_sub(6).max(1)..=last).collect();
            let kept: Vec<u64> = hub.recent(100, |_| true).iter().map(|e| e.seq).collect();
            assert_eq!(kept, want, "after publishing up to {last}");
            assert!(evicted.left_ring as u64 <= size);
            for after in 0..=last {
                let sub = hub.subscribe_after(after);
                let replay: Vec<u64> = sub.replay.iter().map(|e| e.seq).collect();
                let oldest = want[0];
                let expected: Vec<u64> = (oldest.max(after + 1)..=last).collect();
                assert_eq!(replay, expected, "replay after {after} (up to {last})");
                assert_eq!(sub.missed, oldest.saturating_sub(after + 1));
            }
        }
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
        for seq in 1..=100 {
            hub.publish([span(seq, "a")]);
        }
        match rx.try_recv() {
            Err(TryRecvError::Lagged(n)) => assert_eq!(n, 96),
            other => panic!("expected lag, got {other:?}"),
        }
        assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(97));
    }

    #[test]
    fn a_batch_larger_than_the_ring_reaches_a_subscriber_whole() {
        // A commit under load is a whole row group, larger than the ring.
        let hub = Hub::new(4);
        let mut rx = hub.subscribe();
        let evicted = hub.publish((1..=100).map(|s| span(s, "a")));
        assert_eq!(evicted.left_ring, 96);
        let seqs: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
        // The next batch drops what is left of this one only if it is not
        // read by then: here it was, so nothing is lost.
        hub.publish((101..=200).map(|s| span(s, "a")));
        assert_eq!(rx.try_recv().map(|e| e.seq).ok(), Some(101));
    }

    #[test]
    fn batches_a_subscriber_is_done_with_go_to_the_disposer() {
        let hub = Hub::new(4);
        let (tx, rx_garbage) = std::sync::mpsc::channel::<Box<dyn Send>>();
        let tx = Mutex::new(tx);
        hub.dispose_with(move |garbage| {
            let _ = lock(&tx).send(garbage);
        });
        let mut rx = hub.subscribe();
        let evicted = hub.publish((1..=10).map(|s| span(s, "a")));
        assert_eq!(evicted.left_ring, 6);
        let first = first_evicted_export(&evicted);
        drop(evicted);
        // The batch still holds the records that left the ring.
        assert!(first.upgrade().is_some());
        assert!(rx_garbage.try_recv().is_err());
        while rx.try_recv().is_ok() {}
        // Read to the end: the batch went to the disposer, which now holds
        // the last reference to them.
        let garbage = rx_garbage.try_recv().expect("the batch, disposed of");
        assert!(first.upgrade().is_some());
        drop(garbage);
        assert!(first.upgrade().is_none());
    }

    #[test]
    fn a_receiver_gets_every_event_in_order_across_runs_and_publishes() {
        let hub = Hub::new(8192);
        let mut rx = hub.subscribe();
        hub.publish((1..=3000).map(|s| span(s, "a")));
        hub.publish((3001..=3100).map(|s| span(s, "a")));
        let mut seqs = Vec::new();
        while let Ok(e) = rx.try_recv() {
            seqs.push(e.seq);
        }
        assert_eq!(seqs, (1..=3100).collect::<Vec<_>>());
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_on_publish_and_closes_after_the_last_event() {
        let hub = Arc::new(Hub::new(16));
        let mut rx = hub.subscribe();
        let publisher = {
            let hub = hub.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                hub.publish([span(1, "a"), span(2, "a")]);
            })
        };
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
        assert_eq!(first.ok().and_then(|e| e.ok()).map(|e| e.seq), Some(1));
        publisher.await.unwrap();
        drop(hub);
        // What was published before the hub went is still delivered.
        assert_eq!(rx.recv().await.ok().map(|e| e.seq), Some(2));
        assert!(matches!(rx.recv().await, Err(RecvError::Closed)));
    }

    #[test]
    fn a_resume_point_ahead_of_the_hub_still_gets_what_comes_next() {
        // A client that saw sequence 500 on another database reconnects.
        let hub = Hub::new(16);
        hub.publish((1..=3).map(|s| span(s, "a")));
        let mut sub = hub.subscribe_after(500);
        assert!(sub.replay.is_empty());
        assert_eq!(sub.missed, 0);
        hub.publish([span(4, "a")]);
        assert_eq!(sub.receiver.try_recv().map(|e| e.seq).ok(), Some(4));
    }
}
