//! The engine as a timely cluster: three "processes" (each its own timely cluster member with
//! its own workers and stores, here in one test process and talking over TCP on 127.0.0.1)
//! share one replication. The per-group commit order must hold cluster-wide, every block must be
//! committed once, and a failed block must hold back its group across processes.

use std::net::TcpListener;
use std::sync::Arc;

use bucketflow_dataflows::testkit::block_path;
use bucketflow_dataflows::testkit::synth::{generate, write, SynthBlock, SynthSpec};
use bucketflow_dataflows::testkit::ExpectedBlock;
use bucketflow_dataflows::testkit::SafetyChecker;
use bucketflow_dataflows::{ClusterConfig, EngineConfig, Replicator, RunReport};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

fn addresses(n: usize) -> Vec<String> {
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().to_string()).collect()
}

/// Runs one replication on a cluster of `processes`, each with two workers; returns process 0's
/// report once every process has finished.
fn replicate_on_cluster(processes: usize, source: Arc<dyn ObjectStore>, target: Arc<dyn ObjectStore>) -> RunReport {
    let addresses = addresses(processes);
    let followers: Vec<_> = (1..processes)
        .map(|process| {
            let (source, target, addresses) = (source.clone(), target.clone(), addresses.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().unwrap();
                let config = EngineConfig {
                    workers: 2,
                    concurrency: 4,
                    cluster: Some(ClusterConfig { process, addresses, settings: Default::default() }),
                    ..EngineConfig::default()
                };
                let replicator = Replicator::start(source, target, config, rt.handle().clone()).unwrap();
                assert!(!replicator.is_leader());
                replicator.follow().unwrap();
            })
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = EngineConfig {
        workers: 2,
        concurrency: 4,
        cluster: Some(ClusterConfig { process: 0, addresses, settings: Default::default() }),
        ..EngineConfig::default()
    };
    let mut replicator = Replicator::start(source, target, config, rt.handle().clone()).unwrap();
    let report = replicator.run().unwrap();
    replicator.shutdown().unwrap();
    for follower in followers {
        follower.join().unwrap();
    }
    report
}

/// A synthetic source bucket of `groups` x `per` blocks, and an empty target that checks the
/// promises as meta.json files are written.
fn buckets(groups: usize, per: usize) -> (Vec<SynthBlock>, Arc<dyn ObjectStore>, Arc<SafetyChecker<InMemory>>) {
    let blocks = generate(&SynthSpec { groups, blocks_per_group: per, ..SynthSpec::default() });
    let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    tokio::runtime::Runtime::new().unwrap().block_on(write(&source, &blocks)).unwrap();
    let checker = Arc::new(SafetyChecker::new(InMemory::new(), blocks.iter().map(ExpectedBlock::from)));
    (blocks, source, checker)
}

#[test]
fn three_processes_commit_every_group_in_order_once() {
    let (_, source, checker) = buckets(6, 5);

    let report = replicate_on_cluster(3, source, checker.clone());
    assert_eq!(report.counts.replicated, 30, "{report:#?}");
    assert_eq!(checker.violations(), vec![], "the group order holds across processes");
    let mut commits = checker.commits();
    assert_eq!(commits.len(), 30, "each block committed once in the cluster");
    commits.sort();
    commits.dedup();
    assert_eq!(commits.len(), 30);
}

#[test]
fn a_failed_block_holds_back_its_group_across_processes() {
    let (blocks, source, checker) = buckets(4, 4);
    let broken = &blocks[1];
    tokio::runtime::Runtime::new().unwrap().block_on(source.delete(&block_path(&broken.dir, "index"))).unwrap();

    let report = replicate_on_cluster(2, source, checker.clone());
    let outcomes = report.outcomes();
    assert_eq!(outcomes[broken.dir.as_str()].kind(), "failed");
    for later in blocks.iter().filter(|b| b.group == broken.group && b.min_time > broken.min_time) {
        assert_eq!(outcomes[later.dir.as_str()].held_back_behind(), Some(broken.dir.as_str()));
    }
    assert_eq!(report.counts.replicated, 13, "the other groups go on: {report:#?}");
    assert_eq!(checker.violations(), vec![]);
}
