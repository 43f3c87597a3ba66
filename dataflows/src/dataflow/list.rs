//! Stage 1, list: worker 0 lists the source once per run: its block folders, with their objects.

use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::OkErr;

use super::context::Context;
use super::operators::AsyncFlatMap;
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
/// blocks. Folders excluded by `--exclude-block` end here, before their meta.json is read.
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
                match take_inventory(&*ctx.source, &ctx.layout, Side::Source).await {
                    Ok(inventory) => inventory
                        .into_iter()
                        .map(|(dir, folder)| match ctx.filter.excludes(&dir) {
                            Some(reason) => {
                                let rule = FilterRule::Selection;
                                Err(Record::of_folder(&dir, Outcome::Filtered { reason, rule }))
                            }
                            None => Ok(Listed { request, dir, folder }),
                        })
                        .collect(),
                    Err(e) => vec![Err(Record::RunError(error_chain(&e)))],
                }
            }
        },
    );
    listed.ok_err(|r| r)
}
