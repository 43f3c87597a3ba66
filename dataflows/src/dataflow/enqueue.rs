//! Stage 4, enqueue: each block to copy joins the commit queue its strategy gives it, the key
//! that routes its commit (its compaction group; its tenant under `--layout tenants`; one queue
//! for `serial`), before its objects are copied (stage 5) and its meta.json written (stage 6).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use timely::dataflow::operators::vec::Map;

use super::context::Context;
use super::operators::CommitBlock;
use super::Stream;
use crate::model::block::SourceBlock;
use crate::telemetry::InFlight;

/// Each block to copy joins the commit queue its strategy gives it (counted for progress).
pub(crate) fn enqueue<'scope>(
    blocks: Stream<'scope, SourceBlock>,
    ctx: &Arc<Context>,
) -> Stream<'scope, Arc<CommitBlock>> {
    let (strategy, layout, held_back) = (ctx.strategy, ctx.layout.clone(), ctx.held_back.clone());
    let progress = ctx.copier.telemetry.progress.clone();
    blocks.map(move |block| {
        progress.blocks_total.fetch_add(1, Ordering::Relaxed);
        progress.bytes_total.fetch_add(block.total_bytes(), Ordering::Relaxed);
        progress.started(&block.dir, || InFlight {
            group: block.group.clone(),
            min_time: block.summary.min_time,
            max_time: block.summary.max_time,
            level: block.summary.level,
        });
        let queue = strategy.queue_of(&block, &layout);
        if block.defect.is_some() && strategy.ordered_commit() {
            // It will fail in its place, holding back the later blocks of its queue: their
            // copies not started yet need not be made.
            held_back.fail(block.run, &queue, block.order_key());
        }
        // Shared by the copy stage and the commit, which both hold it until its copies end.
        Arc::new(CommitBlock { queue, block })
    })
}
