//! What the engine's integration tests share: a runtime, one replication run, a store's contents.

#![allow(dead_code)] // Each test file uses its own share of these.

use std::collections::BTreeMap;
use std::sync::Arc;

use bucketflow_dataflows::{EngineConfig, Replicator, RunReport};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

/// One retry after a millisecond: a simulated fault's request is tried again at once, so that a
/// simulation of many faults stays fast.
pub fn quick_retries() -> bucketflow_dataflows::RetryPolicy {
    bucketflow_dataflows::RetryPolicy {
        retries: 1,
        timeout: std::time::Duration::from_secs(5),
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(2),
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Starts a replicator, runs one replication and shuts it down.
pub fn replicate(
    rt: &tokio::runtime::Runtime,
    source: Arc<dyn ObjectStore>,
    target: Arc<dyn ObjectStore>,
    config: EngineConfig,
) -> RunReport {
    let mut replicator = Replicator::start(source, target, config, rt.handle().clone()).unwrap();
    let report = replicator.run().unwrap();
    replicator.shutdown().unwrap();
    report
}

/// Every object of a store, by path.
pub async fn contents(store: &dyn ObjectStore) -> BTreeMap<String, Bytes> {
    let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut out = BTreeMap::new();
    for m in metas {
        out.insert(m.location.to_string(), store.get(&m.location).await.unwrap().bytes().await.unwrap());
    }
    out
}

/// Requests so far, by `bucket/operation`.
pub fn requests(registry: &prometheus_client::registry::Registry) -> BTreeMap<String, u64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let mut counts = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("bucketflow_requests_total{")) {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let field =
            |name: &str| labels.split(&format!("{name}=\"")).nth(1).unwrap().split('"').next().unwrap().to_string();
        counts.insert(format!("{}/{}", field("bucket"), field("operation")), value.parse().unwrap());
    }
    counts
}
