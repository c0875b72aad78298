//! A committed record that stays in the batch it was exported in.
//!
//! The hub hands out every committed span, log and metric point. Giving
//! each its own `Arc` meant allocating and copying every record once more
//! after its commit (a span is ~400 bytes inline) and freeing it again when
//! it left the ring: ~0.5 µs of the writer's time per span at 130k spans/s.
//! A [`Shared`] record is the export's own vector behind one `Arc` and the
//! record's place in it, so publishing moves the vector instead of its
//! records, and the records are freed together once the last of them is
//! let go.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// One record of a shared batch; reads as the record itself.
pub struct Shared<T> {
    batch: Arc<Vec<T>>,
    index: u32,
}

impl<T> Shared<T> {
    /// Every record of `batch`, each as its own [`Shared`] (all of them,
    /// or those `keep` says, in order).
    pub fn all(batch: Vec<T>) -> impl Iterator<Item = Shared<T>> {
        let n = batch.len();
        Self::kept(batch, std::iter::repeat_n(true, n))
    }

    /// The records of `batch` whose flag in `keep` is true, in order.
    pub fn kept(
        batch: Vec<T>,
        keep: impl IntoIterator<Item = bool>,
    ) -> impl Iterator<Item = Shared<T>> {
        // A batch is one export (at most a few hundred thousand records
        // under the body limit), far from u32::MAX.
        let batch = Arc::new(batch);
        keep.into_iter()
            .take(batch.len())
            .enumerate()
            .filter(|&(_, k)| k)
            .map(move |(i, _)| Shared {
                batch: batch.clone(),
                index: i as u32,
            })
    }

    /// The batch this record belongs to (tests check when it is freed).
    pub fn batch(&self) -> &Arc<Vec<T>> {
        &self.batch
    }

    /// The record in a batch of its own, for holding longer than the hub
    /// does: a clone of this one keeps the whole batch alive.
    pub fn detached(&self) -> Shared<T>
    where
        T: Clone,
    {
        Shared::from((**self).clone())
    }
}

impl<T> From<T> for Shared<T> {
    /// A batch of one.
    fn from(record: T) -> Shared<T> {
        Shared {
            batch: Arc::new(vec![record]),
            index: 0,
        }
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.batch[self.index as usize]
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            batch: self.batch.clone(),
            index: self.index,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kept_record_reads_as_itself_and_the_batch_lives_while_one_is_held() {
        let shared: Vec<Shared<String>> = Shared::kept(
            vec!["a".into(), "b".into(), "c".into()],
            [true, false, true],
        )
        .collect();
        let texts: Vec<&str> = shared.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts, ["a", "c"]);
        let batch = Arc::downgrade(shared[0].batch());
        let last = shared[1].clone();
        drop(shared);
        assert_eq!(&*last, "c");
        assert!(batch.upgrade().is_some());
        drop(last);
        assert!(batch.upgrade().is_none());
        assert_eq!(
            Shared::all(vec![1, 2, 3]).map(|s| *s).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        let first = Shared::all(vec![7, 8]).next().expect("a record");
        let own = first.detached();
        assert_eq!((*own, own.batch().len()), (7, 1));
        let batch = Arc::downgrade(first.batch());
        drop(first);
        assert!(
            batch.upgrade().is_none(),
            "the detached copy holds no batch"
        );
    }
}
