//! Stage 4, copy: every object of every block to copy, spread over the workers by path.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use tracing::Instrument;
use ulid::Ulid;

use super::context::Context;
use super::operators::{AsyncFlatMap, CommitBlock, Completion};
use super::{route, Stream};
use crate::model::block::{block_path, ObjectSpec, Seen};
use crate::model::failure::{Failure, FailureCause};

/// The block an object to copy belongs to, shared by the block's objects: every object of a run
/// may wait in the copy stage at once.
#[derive(Debug, Serialize, Deserialize)]
struct JobBlock {
    queue: String,
    group: String,
    dir: String,
    min_time: i64,
    ulid: Ulid,
    /// The run it is copied in.
    run: u64,
}

/// One object to copy, sent to the worker its path hashes to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CopyJob {
    block: Arc<JobBlock>,
    spec: ObjectSpec,
    /// What the target listing said of the object before copying.
    seen: Seen,
}

/// Copies the objects of `blocks` (skipping those the target holds intact) and reports each
/// object's end to the worker that owns its block's commit queue. Copies start as soon as a
/// block is known, oldest blocks first within the strategy's limit of objects in flight.
pub(crate) fn copy<'scope>(blocks: Stream<'scope, CommitBlock>, ctx: &Arc<Context>) -> Stream<'scope, Completion> {
    let jobs = blocks.flat_map(|CommitBlock { queue, block }| {
        let (min_time, ulid) = block.order_key();
        let (dir, group, run, listing) = (block.dir, block.group, block.run, block.target_listing);
        let shared = Arc::new(JobBlock { queue, group, dir, min_time, ulid, run });
        block.objects.into_iter().map(move |spec| CopyJob {
            block: shared.clone(),
            seen: Seen::of(listing.as_ref(), &spec.rel_path),
            spec,
        })
    });
    let c = ctx.clone();
    let copy_pact = Exchange::new(|job: &CopyJob| route(&format!("{}/{}", job.block.dir, job.spec.rel_path)));
    let priority = |job: &CopyJob| (job.block.min_time, job.block.ulid, job.spec.rank());
    jobs.async_flat_map(
        "Copy",
        copy_pact,
        ctx.runtime.clone(),
        ctx.strategy.copy_concurrency(ctx.concurrency),
        priority,
        |job, message| {
            let result =
                Err(Failure::new(FailureCause::Internal, format!("internal error: the copy panicked: {message}")));
            vec![job.block.completion(job.spec.rel_path, result)]
        },
        move |job: CopyJob| {
            let (copier, held_back) = (c.copier.clone(), c.held_back.clone());
            let ordered = c.strategy.ordered_commit();
            let span = tracing::info_span!("object", block = %job.block.dir, group = %job.block.group);
            async move {
                let CopyJob { block, spec, seen } = job;
                let path = block_path(&block.dir, &spec.rel_path);
                let key = (block.min_time, block.ulid);
                let result = if copier.cancel.is_cancelled() {
                    Err(Failure::new(FailureCause::Interrupted, "interrupted before the copy started"))
                } else if ordered && held_back.is_behind(block.run, &block.queue, key) {
                    // Its block will be held back behind the older one that failed: the copy
                    // would be made for nothing, and made again next run.
                    Err(Failure::new(FailureCause::Source, "not copied: an older block of its group failed"))
                } else {
                    let result = copier.ensure_seen(&path, &spec, seen).await.map_err(|e| e.failure());
                    if result.is_err() && ordered {
                        held_back.fail(block.run, &block.queue, key);
                    }
                    result
                };
                vec![block.completion(spec.rel_path, result)]
            }
            .instrument(span)
        },
    )
}

impl JobBlock {
    /// The end of the copy of its object `rel_path`, for the worker that owns its queue.
    fn completion(&self, rel_path: String, result: Result<crate::bucket::copy::ObjectDone, Failure>) -> Completion {
        Completion { queue: self.queue.clone(), dir: self.dir.clone(), rel_path, result }
    }
}
