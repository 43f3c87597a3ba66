//! The commit queues a run has given up on past some block: once a block of a queue fails, every
//! later block of that queue is held back for the run, so copying its objects would be work thrown
//! away (and made again next run). The copy stage asks before each copy; the copy stage and the
//! commit tell it of failures. Within a process only: in a cluster, a queue's copies on another
//! process go on, and are merely wasted.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Epoch;
use crate::model::block::OrderKey;

/// For each run and queue, the place of the oldest block that failed.
#[derive(Default)]
pub(crate) struct HeldBack {
    failed: Mutex<HashMap<(Epoch, String), OrderKey>>,
}

impl HeldBack {
    /// The block at `key` of `queue` failed in run `run`.
    pub(crate) fn fail(&self, run: Epoch, queue: &str, key: OrderKey) {
        let mut failed = self.failed.lock().expect("never poisoned");
        // Earlier runs are over.
        failed.retain(|(r, _), _| *r >= run);
        failed.entry((run, queue.to_string())).and_modify(|k| *k = (*k).min(key)).or_insert(key);
    }

    /// Whether the block at `key` of `queue` comes after a block of its queue that failed in run
    /// `run`, and so will be held back.
    pub(crate) fn is_behind(&self, run: Epoch, queue: &str, key: OrderKey) -> bool {
        let failed = self.failed.lock().expect("never poisoned");
        failed.get(&(run, queue.to_string())).is_some_and(|first| key > *first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ulid::Ulid;

    #[test]
    fn later_blocks_of_the_queue_and_run_are_behind() {
        let held = HeldBack::default();
        let (a, b, c) =
            ((1, Ulid::from_parts(1, 1), 0), (2, Ulid::from_parts(2, 2), 0), (3, Ulid::from_parts(3, 3), 0));
        held.fail(0, "q", b);
        assert!(!held.is_behind(0, "q", a) && !held.is_behind(0, "q", b) && held.is_behind(0, "q", c));
        assert!(!held.is_behind(0, "other", c) && !held.is_behind(1, "q", c));
        held.fail(0, "q", a);
        assert!(held.is_behind(0, "q", b), "the oldest failure counts");
        held.fail(1, "q", c);
        assert!(!held.is_behind(0, "q", c), "a later run forgets the earlier ones");
    }
}
