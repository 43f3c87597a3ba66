//! Stage 1, list: worker 0 lists the source once per run: its block folders, with their objects.
//! The target is listed at the same time, and a block whose meta.json the target holds already
//! is settled here, from the two listings alone.

use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::OkErr;

use super::context::Context;
use super::operators::AsyncFlatMap;
use super::settle::replicated_by_listing;
use super::{RunRequest, Stream};
use crate::bucket::inventory::{take_inventory, Folder, Side};
use crate::model::failure::error_chain;
use crate::model::filter::FilterRule;
use crate::report::{Outcome, Record};

/// A block folder of a run, as the source's listing saw it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Listed {
    pub(crate) request: RunRequest,
    pub(crate) dir: String,
    pub(crate) folder: Folder,
}

/// Each run request becomes the run's block folders (`<ULID>` or `<tenant>/<ULID>`), each with
/// what the listing saw in it. A listing that fails is a run error, and the run then has no
/// blocks. Folders excluded by `--exclude-block` end here, before their meta.json is read, and
/// so do blocks the target holds already (see [`replicated_by_listing`]).
pub(crate) fn list<'scope>(
    requests: Stream<'scope, RunRequest>,
    ctx: &Arc<Context>,
) -> (Stream<'scope, Listed>, Stream<'scope, Record>) {
    let ctx = ctx.clone();
    let listed = requests.async_flat_map(
        "ListBlocks",
        Pipeline,
        ctx.runtime.clone(),
        1,
        |_| (),
        |_, message| vec![Err(Record::RunError(format!("internal error: listing panicked: {message}")))],
        move |request: RunRequest| {
            let ctx = ctx.clone();
            async move {
                let source = take_inventory(&*ctx.source, &ctx.layout, Side::Source);
                // A target that cannot be listed settles nothing here: the later stages name the
                // error, block by block.
                let (source, target) = futures::join!(source, ctx.target_index.listing(request.run_id));
                let target = target.ok();
                if let (true, Ok(inventory)) = (ctx.mirror, &source) {
                    let kept = Some((request.run_id, Arc::new(inventory.clone())));
                    *ctx.source_listing.lock().expect("never poisoned") = kept;
                }
                match source {
                    Ok(inventory) => inventory
                        .into_iter()
                        .map(|(dir, folder)| {
                            if let Some(reason) = ctx.filter.excludes(&dir) {
                                let rule = FilterRule::Selection;
                                return Err(Record::of_folder(&dir, Outcome::Filtered { reason, rule }));
                            }
                            if ctx.mirror && folder.deletion_marked() {
                                // A mirror follows the source's deletions: a block the source marked
                                // is on its way out, and copying it (again, after the mirror deleted
                                // it) would undo the mirror's work. The listing tells, with no
                                // request for the mark.
                                let reason = "marked for deletion in the source, which --mirror follows".to_string();
                                let rule = FilterRule::DeletionMark;
                                return Err(Record::of_folder(&dir, Outcome::Filtered { reason, rule }));
                            }
                            let in_target = target.as_ref().and_then(|t| t.get(&dir));
                            if replicated_by_listing(&ctx, &folder, in_target) {
                                return Err(Record::of_folder(&dir, Outcome::AlreadyReplicated));
                            }
                            Ok(Listed { request, dir, folder })
                        })
                        .collect(),
                    Err(e) => vec![Err(Record::RunError(error_chain(&e)))],
                }
            }
        },
    );
    listed.ok_err(|r| r)
}
