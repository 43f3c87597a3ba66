//! The dataflow's own operators, each an extension trait on a stream.

pub mod async_flat_map;
pub mod collect;
pub mod commit;
pub mod tasks;

pub use async_flat_map::AsyncFlatMap;
pub use collect::CollectRuns;
pub use commit::{commit_inputs, CommitBlock, CommitInput, CommitPolicy, Completion, OrderedCommit};
