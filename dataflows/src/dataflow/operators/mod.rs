//! The dataflow's own operators, one a file, each an extension trait on a stream whose doc says
//! what order it keeps and when it lets an epoch go.

mod async_flat_map;
mod collect;
mod ordered_commit;
mod share_progress;
mod tasks;

pub(crate) use async_flat_map::AsyncFlatMap;
pub(crate) use collect::CollectRuns;
pub(crate) use ordered_commit::{commit_inputs, CommitBlock, CommitPolicy, Completion, OrderedCommit};
pub(crate) use share_progress::{ShareProgress, Sharing};
