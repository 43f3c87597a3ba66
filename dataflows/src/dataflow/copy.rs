//! Stage 5, copy: every object of every block to copy, spread over the workers by path.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use tracing::Instrument;

use super::context::Context;
use super::operators::{AsyncFlatMap, CommitBlock, Completion};
use super::{route, Stream};
use crate::model::block::{block_path, ObjectSpec, OrderKey, Seen};
use crate::model::failure::{Failure, FailureCause};

/// One object to copy. Within a process it points into its block, which the commit holds too:
/// every object of a run may wait in the copy stage at once, and each then costs a pointer and
/// an index. To another process it travels alone, with what its copy needs of its block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "LoneJob", from = "LoneJob")]
enum CopyJob {
    InBlock { block: Arc<CommitBlock>, index: u32 },
    Lone(Arc<LoneJob>),
}

/// An object to copy as it crosses processes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoneJob {
    queue: String,
    group: String,
    dir: String,
    /// Its block's place in its queue.
    key: OrderKey,
    /// The run it is copied in.
    run: u64,
    spec: ObjectSpec,
    /// What the target listing said of the object before copying.
    seen: Seen,
}

/// What the copy of one object needs of its job.
struct JobView<'a> {
    queue: &'a str,
    group: &'a str,
    dir: &'a str,
    key: OrderKey,
    run: u64,
    spec: &'a ObjectSpec,
}

impl CopyJob {
    fn view(&self) -> JobView<'_> {
        match self {
            CopyJob::InBlock { block, index } => JobView {
                queue: &block.queue,
                group: &block.block.group,
                dir: &block.block.dir,
                key: block.block.order_key(),
                run: block.block.run,
                spec: &block.block.objects[*index as usize],
            },
            CopyJob::Lone(job) => JobView {
                queue: &job.queue,
                group: &job.group,
                dir: &job.dir,
                key: job.key,
                run: job.run,
                spec: &job.spec,
            },
        }
    }

    /// What the target listing said of the object before copying.
    fn seen(&self) -> Seen {
        match self {
            CopyJob::InBlock { block, index } => {
                Seen::of(block.block.target_listing.as_ref(), &block.block.objects[*index as usize].rel_path)
            }
            CopyJob::Lone(job) => job.seen.clone(),
        }
    }

    /// The end of its copy, for the worker that owns its block's queue.
    fn completion(&self, result: Result<crate::bucket::copy::ObjectDone, Failure>) -> Completion {
        let job = self.view();
        Completion {
            queue: job.queue.to_string(),
            dir: job.dir.to_string(),
            key: job.key,
            rel_path: job.spec.rel_path.clone(),
            result,
        }
    }
}

impl From<CopyJob> for LoneJob {
    fn from(job: CopyJob) -> Self {
        if let CopyJob::Lone(lone) = job {
            return Arc::unwrap_or_clone(lone);
        }
        let (seen, view) = (job.seen(), job.view());
        LoneJob {
            queue: view.queue.to_string(),
            group: view.group.to_string(),
            dir: view.dir.to_string(),
            key: view.key,
            run: view.run,
            spec: view.spec.clone(),
            seen,
        }
    }
}

impl From<LoneJob> for CopyJob {
    fn from(job: LoneJob) -> Self {
        CopyJob::Lone(Arc::new(job))
    }
}

/// Copies the objects of `blocks` (skipping those the target holds intact) and reports each
/// object's end to the worker that owns its block's commit queue. Copies start as soon as a
/// block is known, oldest blocks first within the strategy's limit of objects in flight.
pub(crate) fn copy<'scope>(blocks: Stream<'scope, Arc<CommitBlock>>, ctx: &Arc<Context>) -> Stream<'scope, Completion> {
    let jobs = blocks.flat_map(|block| {
        let objects = block.block.objects.len() as u32;
        (0..objects).map(move |index| CopyJob::InBlock { block: block.clone(), index })
    });
    let c = ctx.clone();
    let copy_pact = Exchange::new(|job: &CopyJob| {
        let job = job.view();
        route(&format!("{}/{}", job.dir, job.spec.rel_path))
    });
    let priority = |job: &CopyJob| {
        let job = job.view();
        (job.key, job.spec.rank())
    };
    jobs.async_flat_map(
        "Copy",
        copy_pact,
        ctx.runtime.clone(),
        ctx.strategy.copy_concurrency(ctx.concurrency),
        priority,
        |job, message| {
            let result =
                Err(Failure::new(FailureCause::Internal, format!("internal error: the copy panicked: {message}")));
            vec![job.completion(result)]
        },
        move |job: CopyJob| {
            let (copier, held_back) = (c.copier.clone(), c.held_back.clone());
            let ordered = c.strategy.ordered_commit();
            let view = job.view();
            let span = tracing::info_span!("object", block = %view.dir, group = %view.group);
            async move {
                let view = job.view();
                let path = block_path(view.dir, &view.spec.rel_path);
                let result = if copier.cancel.is_cancelled() {
                    Err(Failure::new(FailureCause::Interrupted, "interrupted before the copy started"))
                } else if ordered && held_back.is_behind(view.run, view.queue, view.key) {
                    // Its block will be held back behind the older one that failed: the copy
                    // would be made for nothing, and made again next run.
                    Err(Failure::new(FailureCause::Source, "not copied: an older block of its group failed"))
                } else {
                    let result = copier.ensure_seen(&path, view.spec, job.seen()).await.map_err(|e| e.failure());
                    if result.is_err() && ordered {
                        held_back.fail(view.run, view.queue, view.key);
                    }
                    result
                };
                vec![job.completion(result)]
            }
            .instrument(span)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::block::SourceBlock;
    use crate::model::group::Grouping;
    use crate::model::meta::parse_meta;

    #[test]
    fn a_job_crosses_processes_alone_with_what_its_copy_needs() {
        const ULID: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG1";
        let meta =
            format!(r#"{{"ulid":"{ULID}","minTime":5,"maxTime":9,"version":1,"thanos":{{"labels":{{"a":"b"}}}}}}"#);
        let listing = vec![("index".to_string(), 3), ("chunks/000001".to_string(), 7)];
        let mut block = SourceBlock::plan(ULID, parse_meta(ULID, meta.into()).unwrap(), listing, &Grouping::default());
        block.run = 4;
        block.target_listing = Some([("index".to_string(), (3, Some("e".to_string())))].into());
        let block = Arc::new(CommitBlock { queue: "q".into(), block });
        for (index, seen) in [(0, Seen::Absent), (1, Seen::Present { size: 3, e_tag: Some("e".into()) })] {
            let sent = CopyJob::InBlock { block: block.clone(), index };
            let received: CopyJob = bincode::deserialize(&bincode::serialize(&sent).unwrap()).unwrap();
            assert!(matches!(received, CopyJob::Lone(_)), "it travels without its block");
            let (a, b) = (sent.view(), received.view());
            assert_eq!(
                (a.queue, a.group, a.dir, a.key, a.run, a.spec),
                (b.queue, b.group, b.dir, b.key, b.run, b.spec)
            );
            assert_eq!(
                (b.dir, b.key.0, b.run, b.spec.rel_path.as_str()),
                (ULID, 5, 4, ["chunks/000001", "index"][index as usize])
            );
            assert_eq!((sent.seen(), received.seen()), (seen.clone(), seen));
        }
        assert_eq!(Arc::strong_count(&block), 1, "a job sent away keeps no hold on its block");
    }
}
