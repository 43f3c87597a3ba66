//! Stage 4, check target: what the target already holds of each selected block.

use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::OkErr;

use super::context::Context;
use super::operators::AsyncFlatMap;
use super::Stream;
use crate::bucket::copy::Copier;
use crate::bucket::error::SourceError;
use crate::bucket::read::read_meta_bytes;
use crate::model::block::SourceBlock;
use crate::model::failure::{error_chain, Failure, FailureCause};
use crate::model::markers::is_marker;
use crate::report::{Outcome, Record};

/// Splits the selected blocks into those to copy and the records of those already replicated
/// (the target's meta.json equals the source's). A block to copy carries one listing of its
/// target folder, so that its copies need not ask the target object by object; a target that
/// cannot be read makes the block defective, to fail in its place in its group's order.
pub(crate) fn check_target<'scope>(
    selected: Stream<'scope, SourceBlock>,
    ctx: &Arc<Context>,
) -> (Stream<'scope, SourceBlock>, Stream<'scope, Record>) {
    let c = ctx.clone();
    let checked = selected.async_flat_map(
        "CheckTarget",
        Pipeline,
        ctx.runtime.clone(),
        ctx.concurrency,
        |_| (),
        |block, message| {
            let message = format!("internal error: checking the target panicked: {message}");
            vec![Ok(block.with_defect(Failure::new(FailureCause::Internal, message)))]
        },
        move |mut block: SourceBlock| {
            let (target, copier) = (c.target.clone(), c.copier.clone());
            let (copy_markers, dry_run) = (c.copy_markers && !c.dry_run, c.dry_run);
            async move {
                if copy_markers {
                    // Written before meta.json like every other object of the block.
                    block.objects.append(&mut block.markers_to_copy);
                }
                vec![match read_meta_bytes(&*target, &block.dir).await {
                    Ok(Some(bytes)) if bytes == block.meta.bytes => {
                        Err(Record::of_block(&block, already_replicated(&copier, &block).await))
                    }
                    // A dry run copies nothing, so it need not know what the target holds.
                    Ok(_) | Err(SourceError::TooLarge { .. }) if dry_run => Ok(block),
                    // Not there yet (or another block's, or oversized, which is replaced): one
                    // listing of the folder tells the copies what is there already.
                    Ok(_) | Err(SourceError::TooLarge { .. }) => match copier.list_target_block(&block.dir).await {
                        Ok(listing) => Ok(SourceBlock { target_listing: Some(listing), ..block }),
                        Err(e) => Ok(block.with_defect(e.failure())),
                    },
                    // Failing here, outside the commit queue, would let the group's newer blocks
                    // commit; as a defect the block fails in its place in the order instead.
                    Err(e) => Ok(block.with_defect(Failure::new(FailureCause::Target, error_chain(&e)))),
                }]
            }
        },
    );
    checked.ok_err(|r| r)
}

/// The outcome of a block already visible in the target. Marks added to the source block since
/// it was replicated are copied now (when marks are copied at all, they are among its objects):
/// the block is visible already, so no order is at stake.
async fn already_replicated(copier: &Copier, block: &SourceBlock) -> Outcome {
    for spec in block.objects.iter().filter(|o| is_marker(&o.rel_path)) {
        if let Err(e) = copier.ensure(&block.path(&spec.rel_path), spec).await {
            return Outcome::failed(e.failure());
        }
    }
    Outcome::AlreadyReplicated
}
