//! What every stage of the graph shares, built once per process by the engine.

use std::sync::Arc;

use object_store::ObjectStore;
use tokio::runtime::Handle;

use crate::bucket::copy::Copier;
use crate::bucket::mark_source::SourceMarker;
use crate::model::filter::BlockFilter;
use crate::model::layout::Layout;
use crate::model::strategy::Strategy;

/// Everything the graph needs, shared by all workers of the process.
pub(crate) struct Context {
    pub(crate) source: Arc<dyn ObjectStore>,
    pub(crate) target: Arc<dyn ObjectStore>,
    pub(crate) copier: Copier,
    pub(crate) filter: BlockFilter,
    pub(crate) strategy: Strategy,
    /// Requested objects in flight; also bounds meta reads and target checks per worker.
    pub(crate) concurrency: usize,
    pub(crate) dry_run: bool,
    /// Copy no-compact and no-downsample marks with their blocks.
    pub(crate) copy_markers: bool,
    /// Where the blocks are, and (for tenants) which blocks share a commit queue.
    pub(crate) layout: Layout,
    /// Move mode: marks source blocks for deletion once they are safe in the target.
    pub(crate) source_marker: Option<SourceMarker>,
    pub(crate) runtime: Handle,
}
