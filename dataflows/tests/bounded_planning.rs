//! Planning state stays small: beyond the process's meta budget, a planned block's meta.json
//! bytes are let go and read again at its commit, which still writes them byte for byte.

use std::sync::Arc;

mod support;

use bucketflow_dataflows::testkit::synth::{generate, write, SynthSpec};
use bucketflow_dataflows::{EngineConfig, Telemetry};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use prometheus_client::registry::Registry;
use support::{contents, replicate, requests, runtime};

#[test]
fn blocks_beyond_the_meta_budget_are_committed_from_a_second_read_byte_for_byte() {
    let rt = runtime();
    let blocks = generate(&SynthSpec { groups: 3, blocks_per_group: 10, max_chunk_bytes: 256, ..SynthSpec::default() });
    let n = blocks.len() as u64;
    let objects: u64 = blocks.iter().map(|b| b.objects.len() as u64).sum();
    let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    rt.block_on(write(&source, &blocks)).unwrap();
    // With room for every meta.json, each is read once; with none, once to plan and once to commit.
    for (budget, expected_gets) in [(usize::MAX, objects), (0, objects + n)] {
        let telemetry = Telemetry::default();
        let mut registry = Registry::default();
        telemetry.metrics.register(&mut registry);
        let target: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let config = EngineConfig { telemetry, workers: 2, meta_budget: budget, ..EngineConfig::default() };
        let report = replicate(&rt, source.clone(), target.clone(), config);
        assert_eq!(report.counts.replicated, n, "budget {budget}: {:?}", report.counts);
        let copied = rt.block_on(contents(&*target));
        for block in &blocks {
            assert_eq!(
                copied[&format!("{}/meta.json", block.dir)],
                block.meta_json(),
                "budget {budget}, {}",
                block.dir
            );
        }
        let gets = requests(&registry).get("source/get").copied().unwrap_or(0);
        assert_eq!(gets, expected_gets, "budget {budget}");
    }
}
