//! Stage 1, list: worker 0 lists the source once per run: its block folders, with their objects.
//! The target is listed at the same time, and a block whose meta.json the target holds already
//! is settled here, from the two listings alone.

use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::OkErr;

use super::context::Context;
use super::operators::AsyncFlatMap;
use super::{RunRequest, Stream};
use crate::bucket::inventory::{take_inventory, Folder, Side};
use crate::model::failure::error_chain;
use crate::model::filter::FilterRule;
use crate::model::markers::is_marker;
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
                match source {
                    Ok(inventory) => inventory
                        .into_iter()
                        .map(|(dir, folder)| {
                            if let Some(reason) = ctx.filter.excludes(&dir) {
                                let rule = FilterRule::Selection;
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

/// Whether the target holds block folder `source` already, as far as the two listings tell:
/// its meta.json is there with the source's size, and so is every mark to copy. A meta.json
/// never changes (a block's ULID names one version of it), and the commit writes it last, so
/// neither meta.json is read: an idle single run costs the two listings.
///
/// Only in a single run whose selection no matcher, `--id` or time window narrows. A continuous
/// process reads each meta.json once anyway (its later runs and its status page need the block's
/// group, and it tells a rewritten meta.json by its ETag), and a narrowed selection is told from
/// the meta.json. Not either where the block's plan matters beyond that: move mode marks the
/// source block (the full way reads it first), and a deletion mark's time is in the mark. A
/// block that the defaults leave out (empty labels, an unselected resolution or level) and that
/// the target holds too is reported as already replicated rather than filtered.
fn replicated_by_listing(ctx: &Context, source: &Folder, target: Option<&Folder>) -> bool {
    let (Some(meta), Some(target)) = (source.meta.as_ref(), target) else { return false };
    if !ctx.single_run || ctx.filter.is_narrowed() || ctx.source_marker.is_some() {
        return false;
    }
    if ctx.filter.ignore_marked_for_deletion && source.deletion_marked() {
        return false;
    }
    let in_target = |rel: &str, size: u64| target.objects.iter().any(|(r, s, _)| r == rel && *s == size);
    // A deletion mark move mode wrote is never copied, and only reading it tells: a block with a
    // deletion mark the target lacks goes the full way.
    let marks_copied = !ctx.copy_markers
        || source.objects.iter().filter(|(rel, _, _)| is_marker(rel)).all(|(rel, size, _)| in_target(rel, *size));
    target.meta.as_ref().is_some_and(|m| m.size == meta.size) && marks_copied
}
