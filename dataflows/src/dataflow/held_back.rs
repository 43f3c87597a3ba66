//! The commit queues a run has given up on past some block: once a block of a queue fails, every
//! later block of that queue is held back for the run, so copying its objects would be work thrown
//! away (and made again next run). The copy stage asks before each copy; every place a block can
//! fail tells it: a defect found in planning (when the block joins its queue), a copy, the
//! commit, and a meta.json that cannot be read (a barrier: its queue, or every queue, from its
//! first block). Within a process only: in a cluster, a queue's copies on another process go on,
//! and are merely wasted.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Epoch;
use crate::model::block::OrderKey;

/// For each run and queue, the place of the oldest block that failed.
#[derive(Default)]
pub(crate) struct HeldBack {
    failed: Mutex<HashMap<(Epoch, String), OrderKey>>,
    /// Runs in which every queue is held back from its first block.
    all: Mutex<Option<Epoch>>,
}

/// A place before every block of a queue.
const BEFORE_ALL: OrderKey = (i64::MIN, ulid::Ulid::nil(), 0);

impl HeldBack {
    /// The block at `key` of `queue` failed in run `run`.
    pub(crate) fn fail(&self, run: Epoch, queue: &str, key: OrderKey) {
        let mut failed = self.failed.lock().expect("never poisoned");
        // Earlier runs are over.
        failed.retain(|(r, _), _| *r >= run);
        failed.entry((run, queue.to_string())).and_modify(|k| *k = (*k).min(key)).or_insert(key);
    }

    /// A block of unknown place holds back `queue` in run `run` from its first block, or every
    /// queue when `queue` is `None`.
    pub(crate) fn hold(&self, run: Epoch, queue: Option<&str>) {
        match queue {
            Some(queue) => self.fail(run, queue, BEFORE_ALL),
            None => {
                let mut all = self.all.lock().expect("never poisoned");
                *all = Some(all.map_or(run, |r| r.max(run)));
            }
        }
    }

    /// Whether the block at `key` of `queue` comes after a block of its queue that failed in run
    /// `run`, and so will be held back.
    pub(crate) fn is_behind(&self, run: Epoch, queue: &str, key: OrderKey) -> bool {
        if *self.all.lock().expect("never poisoned") == Some(run) {
            return true;
        }
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

    #[test]
    fn a_barrier_holds_back_its_queue_or_every_queue_from_the_first_block() {
        let held = HeldBack::default();
        let first = (i64::MIN + 1, Ulid::from_parts(0, 0), 0);
        held.hold(0, Some("q"));
        assert!(held.is_behind(0, "q", first) && !held.is_behind(0, "other", first));
        held.hold(1, None);
        assert!(held.is_behind(1, "other", first) && held.is_behind(1, "q", first));
        assert!(!held.is_behind(2, "other", first), "only in its run");
    }
}
