//! The dataflow: the replication graph on timely, one epoch per run.
//!
//! ```text
//! requests ─► list ─exchange(folder)─► load + check target ─► enqueue ─┬─exchange(queue)─────────┐
//!                                        │                             └─► copy ─exchange(path)─┤
//!                                        └─ barriers ─broadcast─────────────────────────────────┤
//!                                                                              commit ◄──────────┘
//!         collect ◄─exchange(0)─ records of every stage ◄─ mark (move mode) ◄─ commit's records
//! ```
//!
//! One function per stage, in the order a block meets them; [`build`] wires them:
//! [`list`](list::list), [`load`](load::load) (which also applies the run's filters, and runs
//! [`check_target`](check_target::check_target) in each block's task), [`enqueue`](enqueue::enqueue),
//! [`copy`](copy::copy), [`commit`](commit::commit) (or [`plan`](commit::plan) in a dry run),
//! [`mark`](mark::mark). Each takes streams and the shared [`Context`] and returns streams.
//! The operators they are made of are in [`operators`], one a file; [`engine`] runs the graph
//! on timely's workers (one process, or a [`cluster`] of them, whose records cross as [`wire`]).

mod check_target;
pub(crate) mod cluster;
mod commit;
mod context;
mod copy;
pub(crate) mod engine;
mod enqueue;
mod handshake;
mod held_back;
mod list;
mod load;
mod mark;
pub(crate) mod operators;
mod settle;
pub(crate) mod wire;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::Concatenate;
use timely::dataflow::{Scope, StreamVec};

pub(crate) use context::Context;
use operators::{CollectRuns, ShareProgress};

use crate::report::Record;

/// A timely epoch: one replication run.
pub type Epoch = u64;

/// A stream of the graph: records of type `T`, timestamped by run.
pub(crate) type Stream<'scope, T> = StreamVec<'scope, Epoch, T>;

/// What starts a run: its epoch and the clock its relative time filters resolve against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunRequest {
    pub(crate) run_id: Epoch,
    pub(crate) now_millis: i64,
}

/// The worker a key is routed to by an exchange. A fixed hash, the same in every process, so
/// that a key has one owner across a cluster.
pub(crate) fn route(key: &str) -> u64 {
    xxhash_rust::xxh64::xxh64(key.as_bytes(), 0)
}

/// Builds the graph in `scope`, fed by `requests` (one per epoch, on worker 0). Every run ends in
/// one call of `on_run` on worker 0 with the run's records: one per block folder seen, and the
/// run's errors.
pub(crate) fn build<'scope>(
    scope: Scope<'scope, Epoch>,
    requests: Stream<'scope, RunRequest>,
    ctx: Arc<Context>,
    on_run: impl FnMut(RunRequest, Vec<Record>) + 'static,
) {
    let (folders, list_errors) = list::list(requests.clone(), &ctx);
    let loaded = load::load(folders, &ctx);
    let to_copy = loaded.blocks;
    let outcomes = if ctx.dry_run {
        commit::plan(to_copy)
    } else {
        let queued = enqueue::enqueue(to_copy, &ctx);
        let completions = copy::copy(queued.clone(), &ctx);
        commit::commit(queued, loaded.barriers, completions, &ctx)
    };
    // Every record passes the mark stage: a block settled as early as the load stage may be one
    // that move mode marks.
    let records = scope.concatenate([list_errors, loaded.records, outcomes]);
    let records = mark::mark(records, &ctx);
    if let Some(sharing) = &ctx.cluster_progress {
        records.clone().share_progress(sharing);
    }
    requests.collect_runs(records, on_run);
}
