//! Fuzzes the parser of a source block's meta.json (input that bucketflow does not control), and what the engine derives from an accepted meta.json: the compaction
//! group key, the copy plan, and the JSON form in which a block crosses processes in cluster mode.

#![no_main]

use libfuzzer_sys::fuzz_target;

// The checks live in the engine's test kit, which can see its internals.
fuzz_target!(|data: &[u8]| bucketflow_dataflows::testkit::fuzz::meta_json(data));
