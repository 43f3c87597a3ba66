//! Stage 1, list: worker 0 lists the source's block folders once per run.

use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::OkErr;

use super::context::Context;
use super::operators::AsyncFlatMap;
use super::{RunRequest, Stream};
use crate::bucket::listing::list_blocks;
use crate::model::failure::error_chain;
use crate::report::{Outcome, Record};

/// Each run request becomes the run's block folders (`<ULID>` or `<tenant>/<ULID>`). A listing
/// that fails is a run error, and the run then has no blocks. Folders excluded by
/// `--exclude-block` end here, before their meta.json is read.
pub(crate) fn list<'scope>(
    requests: Stream<'scope, RunRequest>,
    ctx: &Arc<Context>,
) -> (Stream<'scope, (RunRequest, String)>, Stream<'scope, Record>) {
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
                match list_blocks(&*ctx.source, &ctx.layout).await {
                    Ok(dirs) => dirs
                        .into_iter()
                        .map(|dir| match ctx.filter.excludes(&dir) {
                            Some(reason) => Err(Record::of_folder(&dir, Outcome::Filtered { reason })),
                            None => Ok((request, dir)),
                        })
                        .collect(),
                    Err(e) => vec![Err(Record::RunError(error_chain(&e)))],
                }
            }
        },
    );
    listed.ok_err(|r| r)
}
