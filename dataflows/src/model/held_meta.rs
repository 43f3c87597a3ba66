//! A planned block's meta.json bytes, kept in memory within a budget of the process.
//!
//! A block's meta.json is written by its commit, which may come long after the block was planned:
//! a run plans every block before it commits the first of a group. Keeping every block's bytes
//! would make memory grow with the bucket (about a kilobyte a block), so the bytes are kept only
//! while the process's [`MetaBudget`] has room; the commit of a block whose bytes were let go
//! reads its meta.json again and checks it against the digest its plan was made from.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// How many meta.json bytes the planned blocks of a process keep in memory, at most.
#[derive(Debug)]
pub(crate) struct MetaBudget {
    held: AtomicUsize,
    limit: usize,
}

/// The default budget: every meta.json of a run of about ten thousand blocks (a meta.json is one
/// to a few kilobytes), so that only runs larger than that read some of them twice.
pub(crate) const DEFAULT_META_BUDGET: usize = 16 * 1024 * 1024;

impl MetaBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(MetaBudget { held: AtomicUsize::new(0), limit })
    }

    /// Counts `meta`'s bytes against the budget when it has room for them, and lets them go
    /// when it has not. Bytes counted already stay as they are; bytes that crossed from another
    /// process are counted here, like bytes just read.
    pub(crate) fn keep(self: &Arc<Self>, meta: &mut HeldMeta) {
        let Some(len) = meta.bytes.as_ref().map(Bytes::len).filter(|_| meta.budget.is_none()) else { return };
        let fits = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| (held + len <= self.limit).then_some(held + len))
            .is_ok();
        if fits {
            meta.budget = Some(self.clone());
        } else {
            meta.bytes = None;
        }
    }

    /// The bytes held now, across the process.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

/// A block's meta.json: its size, and its bytes while the process keeps them.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HeldMeta {
    size: u64,
    bytes: Option<Bytes>,
    /// The budget the bytes count against, given back when they are dropped. Bytes that crossed
    /// from another process count against none.
    #[serde(skip)]
    budget: Option<Arc<MetaBudget>>,
}

impl HeldMeta {
    /// Bytes held outside any budget.
    pub(crate) fn new(bytes: Bytes) -> Self {
        HeldMeta { size: bytes.len() as u64, bytes: Some(bytes), budget: None }
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The bytes, unless they were let go; then the commit reads them again.
    pub(crate) fn bytes(&self) -> Option<&Bytes> {
        self.bytes.as_ref()
    }
}

impl Clone for HeldMeta {
    /// A clone counts against the budget too, so that the budget is given back once, by each.
    fn clone(&self) -> Self {
        if let (Some(budget), Some(bytes)) = (&self.budget, &self.bytes) {
            budget.held.fetch_add(bytes.len(), Ordering::AcqRel);
        }
        HeldMeta { size: self.size, bytes: self.bytes.clone(), budget: self.budget.clone() }
    }
}

impl Drop for HeldMeta {
    fn drop(&mut self) {
        if let (Some(budget), Some(bytes)) = (&self.budget, &self.bytes) {
            budget.held.fetch_sub(bytes.len(), Ordering::AcqRel);
        }
    }
}

impl PartialEq for HeldMeta {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.bytes == other.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_kept_while_the_budget_has_room_and_given_back_when_dropped() {
        let budget = MetaBudget::new(10);
        let mut first = HeldMeta::new(Bytes::from_static(b"123456"));
        budget.keep(&mut first);
        assert_eq!((first.bytes().map(|b| b.len()), budget.held()), (Some(6), 6));
        let mut second = HeldMeta::new(Bytes::from_static(b"abcdef"));
        budget.keep(&mut second);
        assert_eq!((second.bytes(), second.size(), budget.held()), (None, 6, 6), "no room: let go, size kept");
        let copy = first.clone();
        assert_eq!(budget.held(), 12, "a clone counts too");
        drop(first);
        drop(copy);
        assert_eq!(budget.held(), 0);
        let mut third = HeldMeta::new(Bytes::from_static(b"abcdef"));
        budget.keep(&mut third);
        assert!(third.bytes().is_some(), "room again once the others are gone");
        budget.keep(&mut third);
        assert_eq!(budget.held(), 6, "bytes counted already are not counted twice");
        drop(third);
        assert_eq!(budget.held(), 0);
    }
}
