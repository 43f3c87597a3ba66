//! The replication graph, built once per worker.
//!
//! ```text
//! requests ─► list ─exchange(block)─► read meta ─► filter ─► check target ─┬─► commit blocks ─────────┐
//!                                                                          └─► copy jobs ─exchange(path)─► copy ─┤
//!                                 collector ◄─exchange(0)─ records ◄─ ordered commit ◄─exchange(queue)──────────┘
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;

use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::{Concatenate, Inspect, OkErr};
use timely::dataflow::{Scope, StreamVec};
use tokio::runtime::Handle;
use tracing::Instrument;
use ulid::Ulid;

use crate::block::{block_path, ObjectSpec, SourceBlock};
use crate::copy::{Copier, Seen};
use crate::error::error_chain;
use crate::filter::BlockFilter;
use crate::layout::Layout;
use crate::mark_source::SourceMarker;
use crate::operators::{
    commit_inputs, AsyncFlatMap, CollectRuns, CommitBlock, CommitPolicy, Completion, OrderedCommit,
};
use crate::report::{BlockOutcome, Failure, FailureCause, Outcome, Record};
use crate::source::{list_blocks, load_block, read_meta_bytes, SourceError, Unusable};
use crate::strategy::Strategy;
use crate::{route, Epoch, RunRequest};

/// Everything the graph needs, shared by all workers of the process.
pub struct Context {
    pub source: Arc<dyn ObjectStore>,
    pub target: Arc<dyn ObjectStore>,
    pub copier: Copier,
    pub filter: BlockFilter,
    pub strategy: Strategy,
    /// Requested objects in flight; also bounds meta reads and target checks per worker.
    pub concurrency: usize,
    pub dry_run: bool,
    /// Copy no-compact and no-downsample marks with their blocks.
    pub copy_markers: bool,
    /// Where the blocks are, and (for tenants) which blocks share a commit queue.
    pub layout: Layout,
    /// Move mode: marks source blocks for deletion once they are safe in the target.
    pub source_marker: Option<SourceMarker>,
    pub runtime: Handle,
}

/// One object to copy, sent to the worker its path hashes to.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CopyJob {
    queue: String,
    group: String,
    dir: String,
    min_time: i64,
    ulid: Ulid,
    spec: ObjectSpec,
    /// What the target listing said of the object before copying.
    seen: Seen,
}

fn block_record(block: &SourceBlock, outcome: Outcome) -> Record {
    let meta = &block.meta.meta;
    Record::Block(BlockOutcome {
        block: block.dir.clone(),
        group: Some(block.group.clone()),
        min_time: Some(meta.min_time),
        max_time: Some(meta.max_time),
        outcome,
    })
}

/// The outcome of a block already visible in the target. Marks added to the source block since
/// it was replicated are copied now (when marks are copied at all, they are among its objects):
/// the block is visible already, so no order is at stake.
async fn already_replicated(copier: &Copier, block: &SourceBlock) -> Outcome {
    for spec in block.objects.iter().filter(|o| crate::markers::is_marker(&o.rel_path)) {
        if let Err(e) = copier.ensure(&block.path(&spec.rel_path), spec).await {
            return Outcome::failed(e.failure());
        }
    }
    Outcome::AlreadyReplicated
}

/// Move mode: a block that is in the target (replicated now or before) gets a deletion mark in
/// the source; the record goes on, with a note of the mark or of why it was not written.
async fn mark_moved(marker: SourceMarker, record: Record) -> Vec<Record> {
    let dir = match &record {
        Record::Block(b) if matches!(b.outcome, Outcome::Replicated { .. } | Outcome::AlreadyReplicated) => {
            b.block.clone()
        }
        _ => return vec![record],
    };
    match marker.mark(&dir, chrono::Utc::now().timestamp()).await {
        Ok(true) => {
            tracing::info!(block = %dir, "marked for deletion in the source");
            vec![record, Record::SourceMarked(dir)]
        }
        Ok(false) => vec![record],
        Err(e) => {
            let error = error_chain(&e);
            tracing::warn!(block = %dir, %error, "source block not marked for deletion");
            vec![record, Record::RunError(error)]
        }
    }
}

/// A block read from the source that will not reach the copy stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Unloaded {
    Record(Record),
    /// Its meta.json could not be read, so its group is unknown.
    Barrier {
        dir: String,
        error: String,
    },
}

fn defective(block: SourceBlock, defect: Failure) -> SourceBlock {
    SourceBlock { defect: Some(defect), objects: Vec::new(), ..block }
}

fn dir_record(dir: &str, outcome: Outcome) -> Record {
    Record::Block(BlockOutcome { block: dir.to_string(), group: None, min_time: None, max_time: None, outcome })
}

/// Builds the graph in `scope`, fed by `requests` (one per epoch, on worker 0). Every run ends in
/// one call of `on_run` on worker 0 with the run's records.
pub fn build<'scope>(
    scope: Scope<'scope, Epoch>,
    requests: StreamVec<'scope, Epoch, RunRequest>,
    ctx: Arc<Context>,
    on_run: impl FnMut(RunRequest, Vec<Record>) + 'static,
) {
    let rt = ctx.runtime.clone();
    let c = ctx.clone();
    let listed = requests.clone().async_flat_map(
        "ListBlocks",
        Pipeline,
        rt.clone(),
        1,
        |_| (),
        |_, message| vec![Err(Record::RunError(format!("internal error: listing panicked: {message}")))],
        move |request: RunRequest| {
            let source = c.source.clone();
            let layout = c.layout.clone();
            async move {
                match list_blocks(&*source, &layout).await {
                    Ok(dirs) => dirs.into_iter().map(|dir| Ok((request, dir))).collect(),
                    Err(e) => vec![Err(Record::RunError(error_chain(&e)))],
                }
            }
        },
    );
    let (listed, list_errors) = listed.ok_err::<Vec<_>, _, Vec<_>, _, _>(|r| r);

    let c = ctx.clone();
    let read_pact = Exchange::new(|(_, dir): &(RunRequest, String)| route(dir));
    let loaded = listed.async_flat_map(
        "ReadMeta",
        read_pact,
        rt.clone(),
        ctx.concurrency,
        |_| (),
        |(_, dir), message| vec![Err(Unloaded::Barrier { error: format!("internal error: reading it panicked: {message}"), dir })],
        move |(request, dir): (RunRequest, String)| {
            let source = c.source.clone();
            async move {
                vec![match load_block(&*source, &dir).await {
                    Ok(block) => Ok((request, block)),
                    Err(Unusable::Partial(reason)) => {
                        tracing::warn!(block = %dir, run = request.run_id, %reason, "skipping block");
                        Err(Unloaded::Record(dir_record(&dir, Outcome::Skipped { reason })))
                    }
                    Err(Unusable::Unsupported(error)) => {
                        tracing::warn!(block = %dir, run = request.run_id, %error, "block failed");
                        Err(Unloaded::Record(dir_record(&dir, Outcome::failed(Failure::new(FailureCause::Unsupported, error)))))
                    }
                    Err(Unusable::Unreadable(error)) => {
                        tracing::error!(block = %dir, run = request.run_id, %error, "meta.json unreadable; holding back the groups it could belong to this run");
                        Err(Unloaded::Barrier { dir, error })
                    }
                }]
            }
        },
    );
    let (loaded, unloaded) = loaded.ok_err::<Vec<_>, _, Vec<_>, _, _>(|r| r);
    let (strategy, layout) = (ctx.strategy, ctx.layout.clone());
    let barriers = unloaded.clone().flat_map(move |u| match u {
        Unloaded::Barrier { dir, .. } => {
            let queue = strategy.queue_of_unread(&dir, &layout);
            Some((dir, queue))
        }
        Unloaded::Record(_) => None,
    });
    let (strategy, layout) = (ctx.strategy, ctx.layout.clone());
    let load_records = unloaded.map(move |u| match u {
        Unloaded::Record(record) => record,
        Unloaded::Barrier { dir, error } => {
            let held = match strategy.queue_of_unread(&dir, &layout) {
                Some(queue) => format!("its commit queue ({queue}) is held back this run"),
                None => "its compaction group is unknown, so every group is held back this run".to_string(),
            };
            dir_record(&dir, Outcome::failed(Failure::new(FailureCause::Source, format!("{error} ({held})"))))
        }
    });

    let c = ctx.clone();
    let (selected, filtered) =
        loaded.ok_err::<Vec<_>, _, Vec<_>, _, _>(move |(request, block): (RunRequest, SourceBlock)| {
            match c.filter.check(&block.meta.meta, &block.markers, request.now_millis) {
                Ok(()) => Ok(block),
                Err(reason) => Err(block_record(&block, Outcome::Filtered { reason })),
            }
        });

    let c = ctx.clone();
    let checked = selected.async_flat_map(
        "CheckTarget",
        Pipeline,
        rt.clone(),
        ctx.concurrency,
        |_| (),
        |block, message| {
            let failure = Failure::new(
                FailureCause::Internal,
                format!("internal error: checking the target panicked: {message}"),
            );
            vec![Ok(defective(block, failure))]
        },
        move |mut block: SourceBlock| {
            let target = c.target.clone();
            let copier = c.copier.clone();
            let (copy_markers, dry_run) = (c.copy_markers && !c.dry_run, c.dry_run);
            async move {
                if copy_markers {
                    // Written before meta.json like every other object of the block.
                    block.objects.append(&mut block.markers_to_copy);
                }
                vec![match read_meta_bytes(&*target, &block.dir).await {
                    Ok(Some(bytes)) if bytes == block.meta.bytes => {
                        Err(block_record(&block, already_replicated(&copier, &block).await))
                    }
                    // A dry run copies nothing, so it need not know what the target holds.
                    Ok(_) | Err(SourceError::TooLarge { .. }) if dry_run => Ok(block),
                    // Not there yet (or another block's, or oversized, which is replaced): one
                    // listing of the folder tells the copies what is there already.
                    Ok(_) | Err(SourceError::TooLarge { .. }) => match copier.list_target_block(&block.dir).await {
                        Ok(listing) => Ok(SourceBlock { target_listing: Some(listing), ..block }),
                        Err(e) => Ok(defective(block, e.failure())),
                    },
                    // Failing here, outside the commit queue, would let the group's newer blocks
                    // commit; as a defect the block fails in its place in the order instead.
                    Err(e) => Ok(defective(block, Failure::new(FailureCause::Target, error_chain(&e)))),
                }]
            }
        },
    );
    let (to_copy, already) = checked.ok_err::<Vec<_>, _, Vec<_>, _, _>(|r| r);

    let outcomes = if ctx.dry_run {
        to_copy.map(|block| {
            let outcome = match &block.defect {
                Some(failure) => Outcome::failed(failure.clone()),
                None => Outcome::Planned { objects: block.objects.len() as u64, bytes: block.total_bytes() },
            };
            block_record(&block, outcome)
        })
    } else {
        let strategy = ctx.strategy;
        let progress = ctx.copier.telemetry.progress.clone();
        let layout = ctx.layout.clone();
        let blocks = to_copy.map(move |block| {
            progress.blocks_total.fetch_add(1, Ordering::Relaxed);
            progress.bytes_total.fetch_add(block.total_bytes(), Ordering::Relaxed);
            CommitBlock { queue: strategy.partition_key(&block, &layout), block }
        });
        let jobs = blocks.clone().flat_map(|CommitBlock { queue, block }| {
            let (min_time, ulid) = block.order_key();
            block.objects.into_iter().map(move |spec| CopyJob {
                queue: queue.clone(),
                group: block.group.clone(),
                dir: block.dir.clone(),
                min_time,
                ulid,
                seen: Seen::of(block.target_listing.as_ref(), &spec.rel_path),
                spec,
            })
        });
        let c = ctx.clone();
        let copy_pact = Exchange::new(|job: &CopyJob| route(&format!("{}/{}", job.dir, job.spec.rel_path)));
        let copy_limit = strategy.copy_concurrency(ctx.concurrency);
        let priority = |job: &CopyJob| (job.min_time, job.ulid, job.spec.rank());
        let completions = jobs.async_flat_map(
            "Copy",
            copy_pact,
            rt.clone(),
            copy_limit,
            priority,
            |job, message| {
                let result =
                    Err(Failure::new(FailureCause::Internal, format!("internal error: the copy panicked: {message}")));
                vec![Completion { queue: job.queue, dir: job.dir, rel_path: job.spec.rel_path, result }]
            },
            move |job: CopyJob| {
                let copier = c.copier.clone();
                let span = tracing::info_span!("object", block = %job.dir, group = %job.group);
                async move {
                    let path = block_path(&job.dir, &job.spec.rel_path);
                    let result = if copier.cancel.is_cancelled() {
                        Err(Failure::new(FailureCause::Interrupted, "interrupted before the copy started"))
                    } else {
                        copier.ensure_seen(&path, &job.spec, job.seen).await.map_err(|e| e.failure())
                    };
                    vec![Completion { queue: job.queue, dir: job.dir, rel_path: job.spec.rel_path, result }]
                }
                .instrument(span)
            },
        );
        let policy = CommitPolicy {
            copier: ctx.copier.clone(),
            ordered: strategy.ordered_commit(),
            recheck_concurrency: copy_limit,
            runtime: rt,
        };
        let progress = ctx.copier.telemetry.progress.clone();
        commit_inputs(blocks, barriers).ordered_commit(completions, policy).inspect(move |_| {
            progress.blocks_done.fetch_add(1, Ordering::Relaxed);
        })
    };

    let settled = scope.concatenate([already, outcomes]);
    let settled = match ctx.source_marker.clone().filter(|_| !ctx.dry_run) {
        Some(marker) => settled.async_flat_map(
            "MarkSource",
            Pipeline,
            ctx.runtime.clone(),
            ctx.concurrency,
            |_| (),
            |record, message| {
                vec![record, Record::RunError(format!("internal error: marking the source panicked: {message}"))]
            },
            move |record: Record| mark_moved(marker.clone(), record),
        ),
        None => settled,
    };
    let records = scope.concatenate([list_errors, load_records, filtered, settled]);
    requests.collect_runs(records, on_run);
}
