//! Stage 2, load: each block folder's meta.json is read and its block planned, spread over the
//! workers by folder name.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::OkErr;

use super::context::Context;
use super::operators::AsyncFlatMap;
use super::{route, RunRequest, Stream};
use crate::bucket::read::{load_block, Unusable};
use crate::model::block::SourceBlock;
use crate::model::failure::{Failure, FailureCause};
use crate::report::{Outcome, Record};

/// What loading a run's block folders gives.
pub(crate) struct Loaded<'scope> {
    /// Blocks whose meta.json was read, each with its plan (or its defect).
    pub(crate) blocks: Stream<'scope, (RunRequest, SourceBlock)>,
    /// Folders whose meta.json could not be read, with the one commit queue they hold back
    /// (`None`: every queue, since their compaction group is unknown).
    pub(crate) barriers: Stream<'scope, (String, Option<String>)>,
    /// The outcomes of folders that go no further: skipped, failed, or barriers.
    pub(crate) records: Stream<'scope, Record>,
}

/// A block folder that will not reach the copy stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Unloaded {
    Record(Record),
    /// Its meta.json could not be read or used, so it may be an older block of a queue: of
    /// `queue` when that is known, else of any.
    Barrier { dir: String, error: String, queue: Option<String> },
}

/// Reads and plans every listed block folder. A missing or unparsable meta.json skips the
/// folder (as Thanos does); one that cannot be read at all becomes a barrier.
pub(crate) fn load<'scope>(listed: Stream<'scope, (RunRequest, String)>, ctx: &Arc<Context>) -> Loaded<'scope> {
    let c = ctx.clone();
    let read_pact = Exchange::new(|(_, dir): &(RunRequest, String)| route(dir));
    let loaded = listed.async_flat_map(
        "ReadMeta",
        read_pact,
        ctx.runtime.clone(),
        ctx.concurrency,
        |_| (),
        |(_, dir), message| {
            let error = format!("internal error: reading it panicked: {message}");
            vec![Err(Unloaded::Barrier { error, dir, queue: None })]
        },
        move |(request, dir): (RunRequest, String)| {
            let ctx = c.clone();
            async move { vec![load_one(&ctx, request, dir).await] }
        },
    );
    let (blocks, unloaded) = loaded.ok_err(|r| r);
    let barriers = unloaded.clone().flat_map(move |u| match u {
        Unloaded::Barrier { dir, queue, .. } => Some((dir, queue)),
        Unloaded::Record(_) => None,
    });
    let records = unloaded.flat_map(move |u| match u {
        Unloaded::Record(record) => vec![record],
        Unloaded::Barrier { dir, error, queue } => {
            let held = match &queue {
                Some(queue) => format!("its commit queue ({queue}) is held back this run"),
                None => "its compaction group is unknown, so every group is held back this run".to_string(),
            };
            let failure = Failure::new(FailureCause::Source, format!("{error} ({held})"));
            let failed = Record::of_folder(&dir, Outcome::failed(failure));
            match queue {
                Some(_) => vec![failed],
                None => vec![failed, Record::HoldsEveryQueue(dir)],
            }
        }
    });
    Loaded { blocks, barriers, records }
}

/// Loads one block folder, logging why it goes no further when it does not. The group of every
/// block read is kept, so that a later run that cannot read it holds back that group only.
async fn load_one(ctx: &Context, request: RunRequest, dir: String) -> Result<(RunRequest, SourceBlock), Unloaded> {
    match load_block(&*ctx.source, &dir, &ctx.grouping).await {
        Ok(block) => {
            ctx.known_groups.lock().expect("never poisoned").insert(dir, block.group.clone());
            Ok((request, block))
        }
        Err(Unusable::Partial(reason)) => {
            tracing::warn!(block = %dir, run = request.run_id, %reason, "skipping block");
            Err(Unloaded::Record(Record::of_folder(&dir, Outcome::Skipped { reason })))
        }
        Err(Unusable::Unsupported(error)) => {
            tracing::warn!(block = %dir, run = request.run_id, %error, "block failed");
            let failure = Failure::new(FailureCause::Unsupported, error);
            Err(Unloaded::Record(Record::of_folder(&dir, Outcome::failed(failure))))
        }
        Err(Unusable::Unreadable { error, group }) => {
            let group = group.or_else(|| ctx.known_groups.lock().expect("never poisoned").get(&dir).cloned());
            let queue = ctx.strategy.queue_of_unread(&dir, &ctx.layout, group.as_deref());
            tracing::error!(block = %dir, run = request.run_id, %error, queue = ?queue, "meta.json unusable; holding back the groups it could belong to this run");
            Err(Unloaded::Barrier { dir, error, queue })
        }
    }
}
