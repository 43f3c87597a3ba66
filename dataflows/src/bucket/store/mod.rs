//! Object store decorators, in object_store's style: each wraps any store and adds one thing.
//! The engine stacks them around the stores it is given (a read-only source, instrumented
//! requests, renamed tenants); a program may add latency. The test instruments (faults,
//! recording, the safety checker) live in [`crate::testkit`].

mod instrumented;
mod latency;
mod read_only;
mod tenant_map;

pub(crate) use instrumented::InstrumentedStore;
pub use latency::LatencyStore;
pub use read_only::ReadOnlyStore;
pub(crate) use tenant_map::TenantMapStore;
