//! Stage 6, commit: each commit queue writes its blocks' meta.json in order once their objects
//! are copied (the operator, `operators::ordered_commit`). A dry run stops short of it, with a
//! plan.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Inspect;

use super::context::Context;
use super::operators::{commit_inputs, CommitBlock, CommitPolicy, Completion, OrderedCommit};
use super::Stream;
use crate::model::block::SourceBlock;
use crate::report::{Outcome, Record};

/// Commits each queue's blocks in order once their `completions` are in; a barrier holds back
/// its queue (or all). Every block yields one record.
pub(crate) fn commit<'scope>(
    blocks: Stream<'scope, Arc<CommitBlock>>,
    barriers: Stream<'scope, (String, Option<String>)>,
    completions: Stream<'scope, Completion>,
    ctx: &Arc<Context>,
) -> Stream<'scope, Record> {
    let policy = CommitPolicy {
        copier: ctx.copier.clone(),
        ordered: ctx.strategy.ordered_commit(),
        recheck_concurrency: ctx.strategy.copy_concurrency(ctx.concurrency),
        runtime: ctx.runtime.clone(),
        target_index: ctx.target_index.clone(),
        held_back: ctx.held_back.clone(),
        meta_budget: ctx.meta_budget.clone(),
        vertical: ctx.vertical_compaction,
        recheck_max_age: ctx.recheck_max_age,
    };
    let progress = ctx.copier.telemetry.progress.clone();
    commit_inputs(blocks, barriers).ordered_commit(completions, policy).inspect(move |record| {
        progress.blocks_done.fetch_add(1, Ordering::Relaxed);
        if let Record::Block(block) = record {
            progress.settled(&block.block);
        }
    })
}

/// A dry run's outcome of each block to copy: what a real run would copy, or its defect.
pub(crate) fn plan<'scope>(blocks: Stream<'scope, SourceBlock>) -> Stream<'scope, Record> {
    blocks.map(|block| {
        let outcome = match &block.defect {
            Some(failure) => Outcome::failed(failure.clone()),
            None => Outcome::Planned { objects: block.objects.len() as u64, bytes: block.total_bytes() },
        };
        Record::of_block(&block, outcome)
    })
}
