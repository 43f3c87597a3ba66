//! What the engine reports while it runs: Prometheus metrics (prometheus-client) and the live
//! progress of the current run, for a shell to expose over HTTP or draw as a progress bar.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

/// Which bucket a request went to.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Side {
    /// The bucket blocks are replicated from.
    Source,
    /// The bucket blocks are replicated to.
    Target,
}

impl EncodeLabelValue for Side {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, if matches!(self, Side::Source) { "source" } else { "target" })
    }
}

/// The labels of the request metrics: which bucket, and which operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The bucket the request went to.
    pub bucket: Side,
    /// The object-store operation, such as `get`, `put` or `list_with_delimiter`.
    pub operation: &'static str,
}

/// How an object's bytes reached the target.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum CopyMethod {
    /// The provider copied the object itself; no byte passed through bucketflow.
    ServerSide,
    /// bucketflow read the object from the source and wrote it to the target.
    Stream,
}

impl EncodeLabelValue for CopyMethod {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(
            encoder,
            if matches!(self, CopyMethod::ServerSide) { "server_side" } else { "stream" },
        )
    }
}

/// The label of the copied-bytes counter: how the bytes were copied.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CopyLabels {
    /// Server-side or streamed.
    pub method: CopyMethod,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn request_histogram() -> Histogram {
    // 1 ms to about 65 s: a local HEAD up to a slow multipart part.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The engine's metrics. Clones share the same series.
#[derive(Clone)]
pub struct EngineMetrics {
    /// Bytes copied to the target, by how they were copied (`bucketflow_bytes_copied`).
    pub bytes_copied: Family<CopyLabels, Counter>,
    /// Objects being checked or copied now (`bucketflow_objects_in_flight`).
    pub objects_in_flight: Gauge,
    /// Requests and object copies tried again after a transient failure (`bucketflow_retries`).
    pub retries: Counter,
    /// Object-store requests, by bucket and operation (`bucketflow_requests`).
    pub requests: Family<RequestLabels, Counter>,
    /// Object-store request latency in seconds, by bucket and operation
    /// (`bucketflow_request_duration_seconds`).
    pub request_duration: HistogramFamily<RequestLabels>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            bytes_copied: Family::default(),
            objects_in_flight: Gauge::default(),
            retries: Counter::default(),
            requests: Family::default(),
            request_duration: Family::new_with_constructor(request_histogram),
        }
    }
}

impl EngineMetrics {
    /// Counts `bytes` copied to the target by `method`.
    pub fn copied(&self, method: CopyMethod, bytes: u64) {
        self.bytes_copied.get_or_create(&CopyLabels { method }).inc_by(bytes);
    }

    /// Bytes copied to the target by `method` so far.
    pub fn bytes_copied_by(&self, method: CopyMethod) -> u64 {
        self.bytes_copied.get_or_create(&CopyLabels { method }).get()
    }

    /// Registers every series under `bucketflow_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("bucketflow");
        // Both methods exist from the start, so that a rate over either sees its first bytes as
        // a rise from zero.
        for method in [CopyMethod::ServerSide, CopyMethod::Stream] {
            self.bytes_copied.get_or_create(&CopyLabels { method }).inc_by(0);
        }
        r.register(
            "bytes_copied",
            "Bytes copied to the target, by method: server_side (copied by the provider) or stream (through bucketflow).",
            self.bytes_copied.clone(),
        );
        r.register("objects_in_flight", "Objects being copied now.", self.objects_in_flight.clone());
        r.register(
            "retries",
            "Requests and object copies tried again after a transient failure.",
            self.retries.clone(),
        );
        r.register("requests", "Object-store requests, by bucket and operation.", self.requests.clone());
        r.register(
            "request_duration_seconds",
            "Object-store request latency (to the response headers), by bucket and operation.",
            self.request_duration.clone(),
        );
    }
}

/// The current run's progress: what it selected to copy and how far it is.
#[derive(Debug, Default)]
pub struct Progress {
    /// Blocks the run selected to copy.
    pub blocks_total: AtomicU64,
    /// Of those, blocks whose commit is settled: replicated, failed or held back.
    pub blocks_done: AtomicU64,
    /// Bytes of the objects of those blocks, meta.json aside.
    pub bytes_total: AtomicU64,
    /// Of those, bytes of the objects now in the target, copied or found there.
    pub bytes_done: AtomicU64,
    /// How many times the counts were set back to zero: tells a new run's counts from the last
    /// run's, even when they come out the same.
    pub resets: AtomicU64,
    /// The blocks this process is copying or committing now, by folder: a small record each,
    /// as many as the run selected at most; kept only when a viewer asks ([`Progress::track_blocks`]).
    in_flight: Mutex<BTreeMap<String, InFlight>>,
    tracking: std::sync::atomic::AtomicBool,
}

/// A block being copied or committed, as a viewer draws it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// Its compaction group key.
    pub group: String,
    /// Its minTime in Unix milliseconds.
    pub min_time: i64,
    /// Its maxTime in Unix milliseconds.
    pub max_time: i64,
    /// Its compaction level.
    pub level: i64,
}

impl Progress {
    /// This process's progress in `run`, to share with process 0.
    pub fn of_process(&self, process: usize, run: u64) -> ProcessProgress {
        let (blocks_done, blocks_total, bytes_done, bytes_total) = self.snapshot();
        ProcessProgress { process, run, blocks_done, blocks_total, bytes_done, bytes_total }
    }

    /// The blocks this process is copying or committing now, by folder.
    pub fn in_flight(&self) -> BTreeMap<String, InFlight> {
        self.in_flight.lock().expect("never poisoned").clone()
    }

    /// Keep the blocks in flight, for a viewer: off by default, so that a single run, which no
    /// one watches block by block, spends no memory on them.
    pub fn track_blocks(&self, on: bool) {
        self.tracking.store(on, Ordering::Relaxed);
    }

    /// Block `dir` is on its way: its copies start.
    pub(crate) fn started(&self, dir: &str, block: impl FnOnce() -> InFlight) {
        if self.tracking.load(Ordering::Relaxed) {
            self.in_flight.lock().expect("never poisoned").insert(dir.to_string(), block());
        }
    }

    /// Block `dir`'s commit is settled: replicated, failed or held back.
    pub(crate) fn settled(&self, dir: &str) {
        if self.tracking.load(Ordering::Relaxed) {
            self.in_flight.lock().expect("never poisoned").remove(dir);
        }
    }

    /// Sets every count back to zero, for the next run.
    pub fn reset(&self) {
        for a in [&self.blocks_total, &self.blocks_done, &self.bytes_total, &self.bytes_done] {
            a.store(0, Ordering::Relaxed);
        }
        self.in_flight.lock().expect("never poisoned").clear();
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// (blocks done, blocks total, bytes done, bytes total).
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (get(&self.blocks_done), get(&self.blocks_total), get(&self.bytes_done), get(&self.bytes_total))
    }
}

/// One process's progress in a run, as it reported it last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessProgress {
    /// The process's index in the cluster.
    pub process: usize,
    /// The run it was in.
    pub run: u64,
    /// Blocks of the run the process settled.
    pub blocks_done: u64,
    /// Blocks of the run the process selected to copy.
    pub blocks_total: u64,
    /// Bytes of those blocks now in the target.
    pub bytes_done: u64,
    /// Bytes of those blocks, meta.json aside.
    pub bytes_total: u64,
}

/// Every process's progress, gathered on process 0 of a cluster while runs go on; empty
/// outside cluster mode, where [`Progress`] is the whole story.
#[derive(Debug, Default)]
pub struct ClusterProgress {
    processes: Mutex<BTreeMap<usize, ProcessProgress>>,
}

impl ClusterProgress {
    /// Keeps `progress` as its process's latest.
    pub fn record(&self, progress: ProcessProgress) {
        if let Ok(mut processes) = self.processes.lock() {
            processes.insert(progress.process, progress);
        }
    }

    /// The latest progress of every process heard from, by process.
    pub fn processes(&self) -> Vec<ProcessProgress> {
        self.processes.lock().map(|p| p.values().copied().collect()).unwrap_or_default()
    }
}

/// Metrics and progress, shared by the engine and the shell that embeds it.
#[derive(Clone, Default)]
pub struct Telemetry {
    /// The engine's Prometheus metrics.
    pub metrics: EngineMetrics,
    /// The current run's progress in this process.
    pub progress: Arc<Progress>,
    /// On process 0 of a cluster, every process's progress.
    pub cluster: Arc<ClusterProgress>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("progress", &self.progress).finish_non_exhaustive()
    }
}
