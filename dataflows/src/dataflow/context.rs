//! What every stage of the graph shares, built once per process by the engine.

use std::sync::Arc;

use object_store::ObjectStore;
use tokio::runtime::Handle;

use super::held_back::HeldBack;
use super::operators::Sharing;
use crate::bucket::copy::Copier;
use crate::bucket::mark_source::SourceMarker;
use crate::bucket::meta_cache::SourceMetas;
use crate::bucket::target::TargetIndex;
use crate::model::filter::BlockFilter;
use crate::model::group::Grouping;
use crate::model::held_meta::MetaBudget;
use crate::model::layout::Layout;
use crate::model::strategy::Strategy;

/// Everything the graph needs, shared by all workers of the process.
pub(crate) struct Context {
    pub(crate) source: Arc<dyn ObjectStore>,
    pub(crate) copier: Copier,
    pub(crate) filter: BlockFilter,
    pub(crate) strategy: Strategy,
    /// Requested objects in flight; also bounds meta reads and target checks per worker.
    pub(crate) concurrency: usize,
    pub(crate) dry_run: bool,
    /// Copy no-compact and no-downsample marks with their blocks.
    pub(crate) copy_markers: bool,
    /// `--mirror`: a source block with a deletion mark is on its way out, told by the listing.
    pub(crate) mirror: bool,
    /// `--mirror`: the source as the latest run listed it (by run), for the pass after the run,
    /// which judges the target against the same source the run replicated from.
    pub(crate) source_listing: std::sync::Mutex<Option<(u64, Arc<crate::bucket::inventory::Inventory>)>>,
    /// Where the blocks are, and (for tenants) which blocks share a commit queue.
    pub(crate) layout: Layout,
    /// How the target's compactor groups blocks.
    pub(crate) grouping: Grouping,
    /// The source's metas read so far in this process: a meta.json never changes, so a later run
    /// needs no request for it, and one that cannot read it still knows the one group it holds
    /// back.
    pub(crate) source_metas: SourceMetas,
    /// Whether the metas read are remembered for a later run.
    pub(crate) remember_metas: bool,
    /// The process makes one run.
    pub(crate) single_run: bool,
    /// What the planned blocks' meta.json bytes may take in memory until their commits.
    pub(crate) meta_budget: Arc<MetaBudget>,
    /// The target's visible blocks by group, read once per block folder and process.
    pub(crate) target_index: Arc<TargetIndex>,
    /// The target compactor merges overlapping blocks (it compacts vertically), so an overlap
    /// with a target block is no reason to refuse a block.
    pub(crate) vertical_compaction: bool,
    /// The longest time from a block's re-check to its meta.json write (see `EngineConfig`).
    pub(crate) recheck_max_age: std::time::Duration,
    /// The queues each run has given up on past some block, so that later copies are not made.
    pub(crate) held_back: Arc<HeldBack>,
    /// Move mode: marks source blocks for deletion once they are safe in the target.
    pub(crate) source_marker: Option<SourceMarker>,
    pub(crate) runtime: Handle,
    /// In a cluster: this process's place, and where its progress goes, so that process 0 can
    /// show the whole cluster's run.
    pub(crate) cluster_progress: Option<Sharing>,
}
