//! Stage 3, select: the run's filters (matchers, resolutions, levels, ids, time window,
//! deletion marks) pick the blocks to replicate.

use std::sync::Arc;

use timely::dataflow::operators::OkErr;

use super::context::Context;
use super::{RunRequest, Stream};
use crate::model::block::SourceBlock;
use crate::report::{Outcome, Record};

/// Splits the loaded blocks into the selected ones and the records of those filtered out, with
/// the reason. Relative time filters resolve against each run's own clock.
pub(crate) fn select<'scope>(
    loaded: Stream<'scope, (RunRequest, SourceBlock)>,
    ctx: &Arc<Context>,
) -> (Stream<'scope, (RunRequest, SourceBlock)>, Stream<'scope, Record>) {
    let ctx = ctx.clone();
    loaded.ok_err(move |(request, block)| match ctx.filter.check(&block.summary, &block.markers, request.now_millis) {
        Ok(()) => Ok((request, block)),
        Err((rule, reason)) => Err(Record::of_block(&block, Outcome::Filtered { reason, rule })),
    })
}
