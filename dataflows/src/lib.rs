//! bucketflow's replication engine.
//!
//! Replicates Prometheus/Thanos TSDB blocks between object stores as a timely dataflow: blocks are
//! read and filtered, their objects copied concurrently across workers, and each block made
//! visible (its meta.json written) last, in (minTime, ULID) order within its compaction group.
//! [`Replicator`] is the entry point.
//!
//! # Layers
//! The crate is three layers whose imports only point down:
//!
//! 1. `model`: the block model (meta.json, blocks, markers, the compaction group key, bucket
//!    layouts, failures) and the pure rules over it (selection, strategies). Data and parsing,
//!    no I/O.
//! 2. `bucket`: listing, reading, copying and auditing blocks over any
//!    [`ObjectStore`](object_store::ObjectStore), and the store decorators. Async I/O, no timely.
//! 3. `dataflow`: one function per stage of the graph (list, load and filter, check target, copy,
//!    commit, mark), the operators they are made of, and the engine that runs them.
//!
//! Beside the model, at the edge, are what leaves the engine: the run [report](RunReport) and
//! the [telemetry](Telemetry) (metrics and progress). The [`testkit`] (synthetic buckets, fault,
//! recording and safety stores) is compiled for tests and with the `testkit` feature.
#![warn(unreachable_pub, missing_docs)]

mod bucket;
mod dataflow;
mod model;
mod report;
mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use bucket::audit::{
    audit, AuditConfig, AuditCounts, AuditError, AuditReport, BlockAudit, BlockStatus, PartialBlock, TimeNote,
};
pub use bucket::bandwidth::{BandwidthLimit, Rate, RateError};
pub use bucket::copy::{http_status, PartStore};
pub use bucket::copy::{RetryPolicy, DEFAULT_PART_SIZE};
pub use bucket::error::SourceError;
pub use bucket::listing::list_block_dirs;
pub use bucket::mirror::MirrorConfig;
pub use bucket::server_side::{SameStore, ServerSideCopy, ServerSideError};
pub use bucket::store::{LatencyStore, ReadOnlyStore};
pub use dataflow::cluster::{ClusterConfig, ClusterError};
pub use dataflow::engine::{EngineConfig, EngineError, Replicator, TargetBlockSummary};
pub use dataflow::Epoch;
pub use model::failure::{Failure, FailureCause};
pub use model::filter::{BlockFilter, FilterRule};
pub use model::group::{group_key, group_resolution};
pub use model::layout::{Layout, Tenants};
pub use model::matcher::{parse_matchers, MatchOp, Matcher, MatcherError, Selector};
pub use model::mirror::{MaxDeletions, MirrorReason};
pub use model::strategy::{Strategy, UnknownStrategy};
pub use model::timespec::{format_duration, parse_duration, TimeOrDuration, TimeSpecError};
pub use report::{Backlog, BlockOutcome, Counts, MirrorAction, MirrorStep, Outcome, RunReport};
pub use telemetry::{
    ClusterProgress, CopyLabels, CopyMethod, EngineMetrics, InFlight, ProcessProgress, Progress, RequestLabels, Side,
    Telemetry,
};
