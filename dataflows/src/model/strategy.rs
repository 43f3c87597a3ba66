//! Replication strategies are policies over one engine, so that a benchmark compares policies and
//! nothing else: which blocks share an ordered commit queue, how many objects may be in flight,
//! and whether a commit waits for the older blocks of its queue.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::block::SourceBlock;
use super::layout::{tenant_of, Layout};

/// A replication policy: which blocks share an ordered commit queue, and how many objects may be in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Full concurrency; meta.json writes in (minTime, ULID) order within each compaction group.
    #[default]
    Grouped,
    /// Thanos's behaviour today: one object at a time, every block in global minTime order.
    Serial,
    /// Blocks committed as soon as they are copied, with no group order (Thanos PR 5280's design).
    /// Unsafe against a running target compactor; it exists for benchmarks.
    Unordered,
}

/// A tenant's commit queue.
fn tenant_queue(dir: &str) -> String {
    format!("tenant {}", tenant_of(dir).unwrap_or_default())
}

impl Strategy {
    /// Every strategy, the default first.
    pub const ALL: [Strategy; 3] = [Strategy::Grouped, Strategy::Serial, Strategy::Unordered];

    /// The commit queue a block joins. One worker owns each queue. In a tenants bucket, a
    /// tenant's blocks commit in time order across its label sets (see [`Layout::Tenants`]).
    pub fn queue_of(self, block: &SourceBlock, layout: &Layout) -> String {
        match self {
            Strategy::Grouped => match layout {
                Layout::Thanos => block.group.clone(),
                Layout::Tenants(_) => tenant_queue(&block.dir),
            },
            Strategy::Serial => String::from("serial"),
            // Each block is a queue of its own: nothing waits for anything.
            Strategy::Unordered => block.dir.clone(),
        }
    }

    /// The one commit queue that block folder `dir` can belong to when its meta.json cannot be
    /// read, so that only that queue waits behind it: its tenant's, or its compaction `group`
    /// where that is known (from the unparsable meta.json itself, or from an earlier read: block
    /// metas are immutable by ULID). `None` when its queue could be any, and every queue waits.
    pub fn queue_of_unread(self, dir: &str, layout: &Layout, group: Option<&str>) -> Option<String> {
        match (self, layout) {
            (Strategy::Grouped, Layout::Tenants(_)) => Some(tenant_queue(dir)),
            (Strategy::Grouped, Layout::Thanos) => group.map(String::from),
            (Strategy::Serial, _) => Some(String::from("serial")),
            (Strategy::Unordered, _) => None,
        }
    }

    /// Objects in flight across the process, given the requested `--concurrency`.
    pub fn copy_concurrency(self, requested: usize) -> usize {
        match self {
            Strategy::Serial => 1,
            Strategy::Grouped | Strategy::Unordered => requested.max(1),
        }
    }

    /// Whether a block's commit waits until every older block of its queue is committed.
    pub fn ordered_commit(self) -> bool {
        !matches!(self, Strategy::Unordered)
    }

    /// The strategy's name, as `--strategy` takes it and the run report writes it.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Grouped => "grouped",
            Strategy::Serial => "serial",
            Strategy::Unordered => "unordered",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A strategy name that is none of grouped, serial or unordered.
#[derive(Debug, thiserror::Error)]
#[error("unknown strategy {0:?}: expected grouped, serial or unordered")]
pub struct UnknownStrategy(String);

impl FromStr for Strategy {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL.into_iter().find(|st| st.name() == s).ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}
