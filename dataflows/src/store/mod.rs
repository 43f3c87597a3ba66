//! Object store decorators, in object_store's style: each wraps any store and adds one thing.

pub mod faults;
pub mod instrumented;
pub mod latency;
pub mod read_only;
pub mod recording;
pub mod safety;
pub mod tenant_map;

pub use faults::{Effect, FaultRule, FaultyStore, Op};
pub use instrumented::InstrumentedStore;
pub use latency::LatencyStore;
pub use read_only::ReadOnlyStore;
pub use recording::{RecordingStore, Write};
pub use safety::{SafetyChecker, Violation};
pub use tenant_map::TenantMapStore;
