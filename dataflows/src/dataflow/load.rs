//! Stage 2, load: each block folder's meta.json is read and its block planned, spread over the
//! workers by folder name, the run's filters (matchers, resolutions, levels, ids, time window,
//! deletion marks) applied, and the block judged against the target (stage 3, in the same
//! task). A block the filters leave out, or whose meta.json the target holds already, is
//! settled here; one the process read before, unchanged, without a request (and, in a single
//! run, one the target holds is settled before, by the list stage).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::OkErr;

use super::check_target::check_target;
use super::context::Context;
use super::list::Listed;
use super::operators::AsyncFlatMap;
use super::settle::{settled, settled_from_memory};
use super::{route, Stream};
use crate::bucket::read::{load_block, Unusable};
use crate::model::block::SourceBlock;
use crate::model::failure::{Failure, FailureCause};
use crate::report::{Outcome, Record};

/// What loading a run's block folders gives.
pub(crate) struct Loaded<'scope> {
    /// Blocks whose meta.json was read, which the filters select and the target lacks, each with
    /// its plan (or its defect) and what the target holds of it: the blocks to copy.
    pub(crate) blocks: Stream<'scope, SourceBlock>,
    /// Folders whose meta.json could not be read, with the one commit queue they hold back
    /// (`None`: every queue, since their compaction group is unknown).
    pub(crate) barriers: Stream<'scope, (String, Option<String>)>,
    /// The outcomes of folders that go no further: skipped, failed, or barriers.
    pub(crate) records: Stream<'scope, Record>,
}

/// A block folder that will not reach the copy stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Unloaded {
    Record(Record),
    /// Its meta.json could not be read or used, so it may be an older block of a queue: of
    /// `queue` when that is known, else of any.
    Barrier {
        dir: String,
        cause: FailureCause,
        error: String,
        queue: Option<String>,
    },
}

/// Reads and plans every listed block folder. A missing or unparsable meta.json skips the
/// folder (as Thanos does); one that cannot be read at all becomes a barrier.
pub(crate) fn load<'scope>(listed: Stream<'scope, Listed>, ctx: &Arc<Context>) -> Loaded<'scope> {
    let c = ctx.clone();
    // A folder is routed by its name alone, so that the same process remembers it every run.
    let read_pact = Exchange::new(|listed: &Listed| route(&listed.dir));
    let loaded = listed.async_flat_map(
        "ReadMeta",
        read_pact,
        ctx.runtime.clone(),
        ctx.concurrency,
        |_| (),
        |listed, message| {
            let error = format!("internal error: reading it panicked: {message}");
            vec![Err(Unloaded::Barrier { error, dir: listed.dir, cause: FailureCause::Internal, queue: None })]
        },
        move |listed: Listed| {
            let ctx = c.clone();
            async move {
                let run = listed.request.run_id;
                let loaded = load_one(&ctx, listed).await;
                if let (Err(Unloaded::Barrier { queue, .. }), true) = (&loaded, ctx.strategy.ordered_commit()) {
                    // The commit holds back its queue (or all) when the barrier reaches it; copies
                    // not started by then need not be made.
                    ctx.held_back.hold(run, queue.as_deref());
                }
                vec![loaded]
            }
        },
    );
    let (blocks, unloaded) = loaded.ok_err(|r| r);
    let barriers = unloaded.clone().flat_map(move |u| match u {
        Unloaded::Barrier { dir, queue, .. } => Some((dir, queue)),
        Unloaded::Record(_) => None,
    });
    let records = unloaded.flat_map(move |u| match u {
        Unloaded::Record(record) => vec![record],
        Unloaded::Barrier { dir, cause, error, queue } => {
            let held = match &queue {
                Some(queue) => format!("its commit queue ({queue}) is held back this run"),
                None => "its compaction group is unknown, so every group is held back this run".to_string(),
            };
            let failure = Failure::new(cause, format!("{error} ({held})"));
            let failed = Record::of_folder(&dir, Outcome::failed(failure));
            // An interrupted run holds everything back anyway; the report names only the blocks
            // whose unreadable meta.json did.
            match queue {
                None if cause == FailureCause::Source => vec![failed, Record::HoldsEveryQueue(dir)],
                _ => vec![failed],
            }
        }
    });
    Loaded { blocks, barriers, records }
}

/// Loads one block folder, logging why it goes no further when it does not. What every block
/// read says is remembered, so that later runs need not read it again, and one that cannot
/// read it holds back its group only.
async fn load_one(ctx: &Context, listed: Listed) -> Result<SourceBlock, Unloaded> {
    let Listed { request, dir, folder } = listed;
    if ctx.copier.cancel.is_cancelled() {
        // A stop ends planning too. A block not read may be older than any block that could
        // still commit, so it holds back its group, or every group when that is unknown.
        let queue =
            ctx.strategy.queue_of_unread(&dir, &ctx.layout, ctx.source_metas.group_of(request.run_id, &dir).as_deref());
        let error = "interrupted before its meta.json was read".to_string();
        return Err(Unloaded::Barrier { dir, cause: FailureCause::Interrupted, error, queue });
    }
    if let Some(record) = settled_from_memory(ctx, request, &dir, &folder).await {
        return Err(Unloaded::Record(record));
    }
    match load_block(&*ctx.source, &dir, &folder, &ctx.grouping).await {
        Ok(mut block) => {
            block.meta_modified = folder.meta.as_ref().and_then(|v| v.last_modified).map(|t| t.timestamp_millis());
            let settled = settled(ctx, request, &dir, &folder, &block.group, &block.summary, &block.markers).await;
            if let Some(validator) = folder.meta.filter(|_| ctx.remember_metas) {
                ctx.source_metas.remember(request.run_id, &dir, validator, block.group.clone(), block.summary.clone());
            }
            // A block settled here goes no further, and its meta.json is let go at once.
            match settled {
                Some(record) => Err(Unloaded::Record(record)),
                None => {
                    ctx.meta_budget.keep(&mut block.meta);
                    let (dir, group) = (block.dir.clone(), block.group.clone());
                    match AssertUnwindSafe(check_target(ctx, request, block)).catch_unwind().await {
                        Ok(checked) => checked.map_err(Unloaded::Record),
                        // Its group is known: that group alone is held back, as by a failed block.
                        Err(_) => Err(Unloaded::Barrier {
                            queue: ctx.strategy.queue_of_unread(&dir, &ctx.layout, Some(&group)),
                            dir,
                            cause: FailureCause::Internal,
                            error: "internal error: checking the target panicked".to_string(),
                        }),
                    }
                }
            }
        }
        Err(Unusable::Partial(reason)) => {
            tracing::warn!(block = %dir, run = request.run_id, %reason, "skipping block");
            Err(Unloaded::Record(Record::of_folder(&dir, Outcome::Skipped { reason })))
        }
        Err(Unusable::Unsupported(error)) => {
            tracing::warn!(block = %dir, run = request.run_id, %error, "block failed");
            let failure = Failure::new(FailureCause::Unsupported, error);
            Err(Unloaded::Record(Record::of_folder(&dir, Outcome::failed(failure))))
        }
        Err(Unusable::Unreadable { error, group }) => {
            let group = group.or_else(|| ctx.source_metas.group_of(request.run_id, &dir));
            let queue = ctx.strategy.queue_of_unread(&dir, &ctx.layout, group.as_deref());
            tracing::error!(block = %dir, run = request.run_id, %error, queue = ?queue, "meta.json unusable; holding back the groups it could belong to this run");
            Err(Unloaded::Barrier { dir, cause: FailureCause::Source, error, queue })
        }
    }
}
