//! Stage 7, mark (move mode only): a block safe in the target gets a deletion mark in the source.

use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;

use super::context::Context;
use super::operators::AsyncFlatMap;
use super::Stream;
use crate::bucket::mark_source::SourceMarker;
use crate::model::failure::error_chain;
use crate::report::{Outcome, Record};

/// Passes the settled records on; in move mode (and not in a dry run), each replicated or
/// already replicated block is marked in the source first, with a note of the mark or of why
/// it was not written.
pub(crate) fn mark<'scope>(settled: Stream<'scope, Record>, ctx: &Arc<Context>) -> Stream<'scope, Record> {
    let Some(marker) = ctx.source_marker.clone().filter(|_| !ctx.dry_run) else {
        return settled;
    };
    settled.async_flat_map(
        "MarkSource",
        Pipeline,
        ctx.runtime.clone(),
        ctx.concurrency,
        |_| (),
        |record, message| {
            vec![record, Record::RunError(format!("internal error: marking the source panicked: {message}"))]
        },
        move |record: Record| mark_moved(marker.clone(), record),
    )
}

/// Marks the block of `record` for deletion in the source, when it is in the target.
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
