//! bucketflow's replication engine.
//!
//! Replicates Prometheus/Thanos TSDB blocks between object stores as a timely dataflow: blocks are
//! read and filtered, their objects copied concurrently across workers, and each block made
//! visible (its meta.json written) last, in (minTime, ULID) order within its compaction group.
//! See [`engine::Replicator`] for the entry point.

pub mod bandwidth;
pub mod block;
pub mod cluster;
pub mod copy;
pub mod dataflow;
pub mod engine;
pub mod error;
pub mod filter;
pub mod group;
pub mod layout;
pub mod mark_source;
pub mod markers;
pub mod matcher;
pub mod meta;
pub mod operators;
pub mod report;
pub mod source;
pub mod store;
pub mod strategy;
pub mod synth;
pub mod telemetry;
pub mod timespec;
pub mod verify;
pub mod wire;

use serde::{Deserialize, Serialize};

pub use cluster::ClusterConfig;
pub use engine::{EngineConfig, EngineError, Replicator};
pub use report::{Outcome, RunReport};
pub use strategy::Strategy;

/// A timely epoch: one replication run.
pub type Epoch = u64;

/// What starts a run: its epoch and the clock its relative time filters resolve against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    pub run_id: Epoch,
    pub now_millis: i64,
}

/// The worker a key is routed to by an exchange. A fixed hash, the same in every process, so
/// that a key has one owner across a cluster.
pub fn route(key: &str) -> u64 {
    xxhash_rust::xxh64::xxh64(key.as_bytes(), 0)
}
