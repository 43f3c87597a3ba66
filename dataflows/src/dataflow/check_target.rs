//! Stage 3, check target: what the target already holds of each selected block, and how the
//! block stands against the target's visible blocks of its group. A step of the load stage's
//! task of each block, not an operator of its own.

use super::context::Context;
use super::settle::already_replicated;
use super::RunRequest;
use crate::bucket::target::Verdict;
use crate::model::block::SourceBlock;
use crate::model::failure::{Failure, FailureCause};
use crate::model::markers::DELETION_MARK;
use crate::report::{Outcome, Record};

/// Judges a planned block against the target: a block to copy, or the record of one that goes no
/// further: already replicated (the target's meta.json equals the source's), covered by a block
/// the target compacted, or refused because it would overlap a visible target block of its group
/// (which does not hold back the group: waiting cannot fix it). A late block goes on, marked
/// late. A block to copy carries one listing of its target folder, so that its copies need not
/// ask the target object by object; a target that cannot be read makes the block defective, to
/// fail in its place in its group's order.
///
/// It runs in the load stage's task of the block, right after its meta.json is read: the run's
/// view of the target is shared, so a block needs no task of its own here.
pub(crate) async fn check_target(
    ctx: &Context,
    request: RunRequest,
    mut block: SourceBlock,
) -> Result<SourceBlock, Record> {
    if ctx.copy_markers && !ctx.dry_run {
        // A deletion mark that move mode writes (in this run or any earlier one) says the
        // source's copy may go because the target's is safe: copied, it would delete that one too.
        let moving = ctx.source_marker.is_some() || block.markers.deletion_by_move;
        block.markers_to_copy.retain(|m| !(moving && m.rel_path == DELETION_MARK));
        // Written before meta.json like every other object of the block; onto a block already
        // replicated, as soon as the source has it, so that the target's compactor follows the
        // source's retention.
        block.objects.append(&mut block.markers_to_copy);
    }
    against_target(ctx, request, block).await
}

/// A block judged against the target as the run sees it: a block to copy (with what the target
/// holds of it already), or the record of one that goes no further.
async fn against_target(ctx: &Context, request: RunRequest, block: SourceBlock) -> Result<SourceBlock, Record> {
    // Its run, before any defect: a defect holds back the later copies of its queue in this run.
    let block = SourceBlock { run: request.run_id, ..block };
    if ctx.copier.cancel.is_cancelled() {
        // A stop ends planning too; the block fails in its place in its group's order.
        return Ok(
            block.with_defect(Failure::new(FailureCause::Interrupted, "interrupted before the target was checked"))
        );
    }
    // Failing here, outside the commit queue, would let the group's newer blocks commit; as a
    // defect the block fails in its place in the order instead.
    let view = match ctx.target_index.view(request.run_id).await {
        Ok(view) => view,
        Err(error) => {
            let failure = Failure::new(FailureCause::Target, format!("listing the target's blocks: {error}"));
            return Ok(block.with_defect(failure));
        }
    };
    let folder = view.folder(&block.dir);
    if let Some(error) = folder.and_then(|f| f.unreadable) {
        let failure = Failure::new(FailureCause::Target, format!("reading its meta.json in the target: {error}"));
        return Ok(block.with_defect(failure));
    }
    if let Some(folder) = folder.filter(|f| f.meta_digest == Some(block.summary.digest)) {
        return Err(Record::of_block(&block, already_replicated(&ctx.copier, &block, &folder).await));
    }
    // A target block whose meta.json cannot be read could be one this block overlaps, or one
    // that covers it: unknown holds back rather than passes, as a Thanos compactor whose meta
    // fetcher fails on one meta.json does nothing that iteration (pkg/block/fetcher.go).
    if let Some(unknown) = view.unknown_in_way(&block, ctx.grouping.per_tenant) {
        tracing::warn!(block = %block.dir, group = %block.group, run = request.run_id, target_block = unknown, "held back: a target block of its group may be, and its meta.json cannot be read");
        let outcome = Outcome::HeldBack {
            behind: unknown.to_string(),
            behind_in_target: true,
            objects_copied: 0,
            bytes_copied: 0,
        };
        return Err(Record::of_block(&block, outcome));
    }
    let verdict = view.judge(&block, ctx.vertical_compaction);
    if let Some(refused) = verdict.refusal(&block, request.run_id, false, (0, 0)) {
        return Err(Record::of_block(&block, refused));
    }
    let block = match verdict {
        Verdict::Late { behind } => SourceBlock { late_behind: Some(behind), ..block },
        _ => block,
    };
    // What the target holds of the block already, from the run's listing: no request per block.
    let listing = folder.map(|f| f.listing()).unwrap_or_default();
    Ok(SourceBlock { target_listing: Some(listing), ..block })
}
