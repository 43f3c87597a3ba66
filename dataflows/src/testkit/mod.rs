//! The test kit: synthetic buckets and the store decorators that observe or disturb the engine
//! from outside it. Compiled for the engine's own tests, and for programs that turn on the
//! `testkit` feature (the bench, `bucketflow gen`, the integration tests); never part of a
//! replication.
//!
//! - [`synth`]: seeded synthetic Thanos buckets, with their expected blocks.
//! - [`FaultyStore`]: failed requests, reads cut short, objects that vanish after their write.
//! - [`RecordingStore`]: every write a store saw, in order.
//! - [`SafetyChecker`]: checks promises 1 and 2 at each meta.json write, and counts violations.
//! - [`compactor`]: a simulated target compactor, the adversary of the safety tests.
//! - [`fuzz`]: the fuzz targets' checks.

pub mod compactor;
mod faults;
pub mod fuzz;
mod recording;
mod safety;
pub mod synth;

pub use faults::{BeforePut, Effect, FaultRule, FaultyStore, Op};
pub use recording::{RecordingStore, Write};
pub use safety::{ExpectedBlock, SafetyChecker, Violation};

/// The bucket path of `rel_path` inside block folder `dir`, as the engine writes it.
pub fn block_path(dir: &str, rel_path: &str) -> object_store::path::Path {
    crate::model::block::block_path(dir, rel_path)
}

/// The name of a Thanos deletion mark in a block folder.
pub const DELETION_MARK: &str = crate::model::markers::DELETION_MARK;
/// The name of a Thanos no-compact mark in a block folder.
pub const NO_COMPACT_MARK: &str = crate::model::markers::NO_COMPACT_MARK;
/// The name of a Thanos no-downsample mark in a block folder.
pub const NO_DOWNSAMPLE_MARK: &str = crate::model::markers::NO_DOWNSAMPLE_MARK;
