//! The test kit: synthetic buckets and the store decorators that observe or disturb the engine
//! from outside it. Compiled for the engine's own tests, and for programs that turn on the
//! `testkit` feature (the bench, `bucketflow gen`, the integration tests); never part of a
//! replication.
//!
//! - [`synth`]: seeded synthetic Thanos buckets, with their expected blocks.
//! - [`FaultyStore`]: failed requests, reads cut short, objects that vanish after their write.
//! - [`RecordingStore`]: every write a store saw, in order.
//! - [`SafetyChecker`]: checks promises 1 and 2 at each meta.json write, and counts violations.

mod faults;
mod recording;
mod safety;
pub mod synth;

pub use faults::{Effect, FaultRule, FaultyStore, Op};
pub use recording::{RecordingStore, Write};
pub use safety::{ExpectedBlock, SafetyChecker, Violation};
