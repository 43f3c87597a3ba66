//! The engine handle: a timely dataflow that runs for the life of the process and replicates one
//! run per epoch.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::ObjectStore;
use timely::dataflow::operators::vec::Input;
use timely::WorkerConfig;

use super::cluster::ClusterConfig;
use super::context::Context;
use super::handshake::{agree, Settings};
use super::operators::Sharing;
use super::{build, Epoch, RunRequest};
use crate::bucket::bandwidth::{Bandwidth, BandwidthLimit};
use crate::bucket::copy::PartStore;
use crate::bucket::copy::{Copier, RetryPolicy, DEFAULT_PART_SIZE};
use crate::bucket::mark_source::SourceMarker;
use crate::bucket::meta_cache::SourceMetas;
use crate::bucket::mirror::{Mirror, MirrorConfig};
use crate::bucket::server_side::{CountedCopy, SameStore, SameStoreCopy, ServerSideCopy};
use crate::bucket::store::{InstrumentedStore, ReadOnlyStore, TenantMapStore};
use crate::bucket::target::TargetIndex;
use crate::model::filter::BlockFilter;
use crate::model::group::Grouping;
use crate::model::held_meta::{MetaBudget, DEFAULT_META_BUDGET};
use crate::model::layout::Layout;
use crate::model::strategy::Strategy;
use crate::report::RunReport;
use crate::telemetry::{Side, Telemetry};
use tokio_util::sync::CancellationToken;

/// How a replicator runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The replication strategy: which blocks share a commit queue, and how many objects may be in flight.
    pub strategy: Strategy,
    /// Objects in flight across the process.
    pub concurrency: usize,
    /// Timely worker threads.
    pub workers: usize,
    /// Multipart part size, which with `concurrency` bounds the memory of copies.
    pub part_size: usize,
    /// Plan only: read and filter, write nothing.
    pub dry_run: bool,
    /// Which source blocks each run selects.
    pub filter: BlockFilter,
    /// Per-object retries of transient copy failures.
    pub retry: RetryPolicy,
    /// Set when source and target are one store, for server-side copies.
    pub same_store: Option<SameStore>,
    /// The provider's copy between the source and the target bucket, for server-side copies
    /// between two buckets; used where `same_store` is not set.
    pub server_side_copy: Option<Arc<dyn ServerSideCopy>>,
    /// The target bucket's uploads by part number (the store the target is, under its prefix),
    /// where its provider has them: a large object's failed part is then sent again alone.
    pub target_parts: Option<PartStore>,
    /// Metrics and progress, for the embedding program to expose.
    pub telemetry: Telemetry,
    /// Cancelling stops a run gracefully: no new copy starts, copies in flight finish, and a block
    /// left incomplete fails (as interrupted) without its meta.json.
    pub cancel: CancellationToken,
    /// This process's place in a cluster of processes; `None` runs every worker here.
    pub cluster: Option<ClusterConfig>,
    /// Bytes per second that copies may read and write, across the process.
    pub bandwidth: BandwidthLimit,
    /// Also copy no-compact, no-downsample and deletion marks, before meta.json or onto a block
    /// already replicated (a deletion mark move mode wrote is never copied).
    pub copy_markers: bool,
    /// Move mode: once a block is in the target and verified, write a deletion mark into the
    /// source block. The only write to a source, and only with this set.
    pub mark_source_for_deletion: bool,
    /// Where the source's blocks are: at its root (Thanos) or in tenant folders (Mimir, Cortex).
    pub layout: Layout,
    /// The target compactor's `--deduplication.replica-label` labels: stripped before blocks are
    /// grouped, so that both replicas of an HA pair are one group. A compactor given them also
    /// compacts vertically.
    pub replica_labels: Vec<String>,
    /// The target compactor runs with `--compact.enable-vertical-compaction`, so it merges
    /// overlapping blocks rather than halting on them.
    pub target_vertical_compaction: bool,
    /// The longest time from the start of a block's re-check to the meta.json write that relies
    /// on it. A block whose turn in its queue comes later than that is re-checked again: a
    /// target compactor deletes a folder without meta.json once its ULID is older than its
    /// partial-upload threshold, which a mirrored block's is from its first object on, so the
    /// older the re-check, the wider the window in which the write could make visible a block
    /// whose objects that cleanup took.
    pub recheck_max_age: Duration,
    /// A folder where the source's and the target's block metas are kept across restarts (as
    /// Thanos's meta-syncer folder), so that a restarted sidecar or a cron job does not read
    /// every meta.json again. Each process of a cluster keeps its own files there.
    pub cache_dir: Option<std::path::PathBuf>,
    /// Bytes of planned blocks' meta.json files kept in memory until their commit, across the
    /// process. A block planned beyond it has its meta.json read again (and checked against its
    /// plan's digest) when it commits, so that memory does not grow with the bucket.
    pub meta_budget: usize,
    /// The process makes one run: what it learns of the buckets' metas is kept for a next run
    /// only in `cache_dir`, and not in memory.
    pub single_run: bool,
    /// `--mirror`: the target has no compactor of its own, and after each run the target's blocks
    /// the source compacted, marked or lost are marked for deletion and later deleted there.
    /// Only with the Thanos layout, and never with move mode (`start` refuses either).
    pub mirror: Option<MirrorConfig>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            strategy: Strategy::Grouped,
            concurrency: 32,
            workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            part_size: DEFAULT_PART_SIZE,
            dry_run: false,
            filter: BlockFilter::default(),
            retry: RetryPolicy::default(),
            same_store: None,
            server_side_copy: None,
            target_parts: None,
            telemetry: Telemetry::default(),
            cancel: CancellationToken::new(),
            cluster: None,
            bandwidth: BandwidthLimit::default(),
            copy_markers: false,
            mark_source_for_deletion: false,
            layout: Layout::Thanos,
            replica_labels: Vec::new(),
            target_vertical_compaction: false,
            recheck_max_age: Duration::from_secs(1),
            cache_dir: None,
            meta_budget: DEFAULT_META_BUDGET,
            single_run: false,
            mirror: None,
        }
    }
}

/// Why the replicator could not start or complete a run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// timely could not start the workers (in a cluster: could not connect the processes).
    #[error("starting the timely workers: {0}")]
    Start(String),
    /// A worker stopped, or in a cluster a peer process was lost; nothing incomplete was committed.
    #[error("a worker stopped (in a cluster: a peer process was lost); no incomplete block was committed, and a restart of every process completes the work")]
    WorkerLost,
    /// This process's settings differ from process 0's of its cluster: each difference, named.
    #[error("this process's settings differ from process 0's, so it does not run with it: {0}")]
    SettingsDiffer(String),
    /// The `cache_dir` could not be made.
    #[error("making the meta cache folder {}", .0.display())]
    CacheDir(std::path::PathBuf, #[source] std::io::Error),
    /// `--mirror` with settings it cannot follow safely.
    #[error("--mirror {0}")]
    Mirror(&'static str),
    /// A run was asked of a cluster process other than process 0, which alone starts runs.
    #[error("only process 0 of a cluster starts runs; the others follow it")]
    NotLeader,
}

/// What every process of a cluster must share: the embedding program's settings, and those of
/// the engine's config that decide which worker owns what and what a run does.
fn agreed_settings(config: &EngineConfig) -> Settings {
    let mut settings = config.cluster.as_ref().map(|c| c.settings.clone()).unwrap_or_default();
    let mut state = |name: &str, value: String| settings.insert(format!("engine.{name}"), value);
    state("workers", config.workers.max(1).to_string());
    state("strategy", config.strategy.to_string());
    state("layout", format!("{:?}", config.layout));
    state("replica_labels", format!("{:?}", config.replica_labels));
    state("target_vertical_compaction", config.target_vertical_compaction.to_string());
    state("recheck_max_age", format!("{:?}", config.recheck_max_age));
    state("filter", format!("{:?}", config.filter));
    state("dry_run", config.dry_run.to_string());
    state("copy_markers", config.copy_markers.to_string());
    state("mark_source_for_deletion", config.mark_source_for_deletion.to_string());
    state("mirror", format!("{:?}", config.mirror));
    settings
}

/// How long an idle worker parks before it looks at its channels again. Bounded, so that a
/// worker notices a lost peer (timely poisons its queues) even when no operator has work.
const PARK: Duration = Duration::from_millis(500);

enum Command {
    Run(RunRequest),
}

/// A running replication dataflow. Each [`Replicator::run`] is one epoch.
pub struct Replicator {
    commands: Option<mpsc::Sender<Command>>,
    reports: mpsc::Receiver<RunReport>,
    guards: Option<timely::communication::WorkerGuards<()>>,
    next_run: Epoch,
    leader: bool,
    caches: Option<Caches>,
    /// With `--mirror`: the pass after each run, on the context's target view.
    mirror: Option<Mirror>,
    context: Arc<Context>,
}

/// A visible target block, as a viewer of the target shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TargetBlockSummary {
    /// Its folder: its ULID, under its tenant in a tenants bucket.
    pub block: String,
    /// Its compaction group key, as the source's blocks are grouped.
    pub group: String,
    /// Its minTime in Unix milliseconds.
    pub min_time: i64,
    /// Its maxTime in Unix milliseconds.
    pub max_time: i64,
    /// Its downsampling resolution in milliseconds (0: raw).
    pub resolution: i64,
    /// Its compaction level (1: as Prometheus uploaded it).
    pub level: i64,
    /// The latest run's listing showed a deletion mark in its folder.
    pub marked_for_deletion: bool,
}

/// Where this process keeps its metas across restarts, and what they are kept of.
struct Caches {
    source: std::path::PathBuf,
    target: std::path::PathBuf,
    /// The grouping the cached groups were computed under.
    settings: String,
    context: Arc<Context>,
}

impl Caches {
    fn save(&self) {
        let saved = self.context.source_metas.save(&self.source, &self.settings);
        let saved = saved.and_then(|()| self.context.target_index.save(&self.target, &self.settings));
        if let Err(error) = saved {
            // A cache only spares requests: the run goes on without it.
            tracing::warn!(%error, "writing the meta cache");
        }
    }
}

impl Replicator {
    /// Starts the workers. Async I/O runs on `runtime`, which must outlive the replicator.
    /// In four parts: the stores and the copier ([`Stores::wrap`]), the caches kept across
    /// restarts ([`CacheFiles::open`]), the context every stage shares ([`shared_context`]), and
    /// timely's workers ([`start_workers`]).
    pub fn start(
        source: Arc<dyn ObjectStore>,
        target: Arc<dyn ObjectStore>,
        config: EngineConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, EngineError> {
        if let Some(why) = config.mirror.as_ref().and_then(|_| mirror_refusal(&config)) {
            return Err(EngineError::Mirror(why));
        }
        let stores = Stores::wrap(source, target, &config);
        let mirror = config.mirror.map(|mirror| Mirror::new(mirror, stores.target.clone()));
        let grouping = Grouping {
            replica_labels: config.replica_labels.clone(),
            per_tenant: matches!(config.layout, Layout::Tenants(_)),
        };
        let cache_files = CacheFiles::open(&config, &grouping)?;
        let context = Arc::new(shared_context(stores, grouping, cache_files.as_ref(), &config, runtime));
        let caches = cache_files.map(|files| {
            context.target_index.load(&files.target, &files.settings);
            Caches { source: files.source, target: files.target, settings: files.settings, context: context.clone() }
        });
        let (commands, reports, guards) = start_workers(context.clone(), &config)?;
        Ok(Replicator {
            commands: Some(commands),
            reports,
            guards: Some(guards),
            next_run: 0,
            leader: config.cluster.as_ref().is_none_or(ClusterConfig::is_leader),
            caches,
            mirror,
            context,
        })
    }

    /// Runs one replication with the current time as the run's clock, and waits for its report.
    /// Blocks the calling thread; call it outside async code (or in `spawn_blocking`).
    pub fn run(&mut self) -> Result<RunReport, EngineError> {
        self.run_at(chrono::Utc::now().timestamp_millis())
    }

    /// Runs one replication whose relative time filters resolve against `now_millis`.
    pub fn run_at(&mut self, now_millis: i64) -> Result<RunReport, EngineError> {
        if !self.leader {
            return Err(EngineError::NotLeader);
        }
        let request = RunRequest { run_id: self.next_run, now_millis };
        self.next_run += 1;
        let commands = self.commands.as_ref().ok_or(EngineError::WorkerLost)?;
        commands.send(Command::Run(request)).map_err(|_| EngineError::WorkerLost)?;
        if let Some(guards) = &self.guards {
            guards.guards()[0].thread().unpark();
        }
        // The reports' sender lives in the workers: it is gone only when they stopped.
        let mut report = self.reports.recv().map_err(|_| EngineError::WorkerLost)?;
        if let Some(mirror) = &self.mirror {
            follow_source(mirror, &self.context, &mut report, now_millis);
        }
        if let Some(caches) = &self.caches {
            caches.save();
        }
        Ok(report)
    }

    /// The target's visible blocks as this process knows them after its last run: those it read
    /// and those it committed. A single run without a cache folder keeps none.
    pub fn target_blocks(&self) -> Vec<TargetBlockSummary> {
        let blocks = self.context.target_index.known_blocks();
        blocks
            .iter()
            .map(|(b, marked)| TargetBlockSummary {
                block: b.dir.clone(),
                marked_for_deletion: *marked,
                group: b.group.clone(),
                min_time: b.min_time,
                max_time: b.max_time,
                resolution: b.resolution,
                level: b.level,
            })
            .collect()
    }

    /// Whether this process starts runs and receives their reports: the only process, or
    /// process 0 of a cluster.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// For a process of a cluster other than process 0: takes part in every run process 0
    /// starts, until process 0 shuts down (`Ok`) or a process is lost (`Err`).
    pub fn follow(mut self) -> Result<(), EngineError> {
        self.stop()
    }

    /// Closes the input and waits for the workers to finish.
    pub fn shutdown(mut self) -> Result<(), EngineError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), EngineError> {
        self.commands.take();
        if let Some(caches) = self.caches.take() {
            caches.save();
        }
        if let Some(guards) = self.guards.take() {
            if let Some(thread) = guards.guards().first().map(|g| g.thread().clone()) {
                thread.unpark();
            }
            if guards.join().into_iter().any(|r| r.is_err()) {
                return Err(EngineError::WorkerLost);
            }
        }
        Ok(())
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Why `--mirror` cannot run with `config`, if it cannot.
fn mirror_refusal(config: &EngineConfig) -> Option<&'static str> {
    if config.mark_source_for_deletion {
        return Some(
            "cannot run with move mode (--mark-source-for-deletion): the mirror would follow the move and delete \
             the only copy",
        );
    }
    if !matches!(config.layout, Layout::Thanos) {
        return Some("follows a Thanos layout only: a Mimir or Cortex target's compactor owns its deletions");
    }
    None
}

/// The mirror's pass after run `report`, on the target as the run listed it; its actions and
/// any error (the guard's refusal among them) go into the report.
fn follow_source(mirror: &Mirror, context: &Context, report: &mut RunReport, now_millis: i64) {
    let listed = context.source_listing.lock().expect("never poisoned").take();
    let pass = async {
        let source = match listed {
            Some((run, source)) if run == report.run_id => source,
            // The run's listing failed: the run's errors say why, and the pass waits for a run
            // whose listing worked.
            _ => return Err("mirror: no listing of the source in this run; nothing marked or deleted".to_string()),
        };
        let view =
            context.target_index.view(report.run_id).await.map_err(|e| format!("mirror: listing the target: {e}"))?;
        let committed = context.target_index.committed_in_run(report.run_id);
        let now = now_millis.div_euclid(1000);
        Ok::<_, String>(mirror.pass(&source, &view, &committed, report, now, report.dry_run).await)
    };
    match context.runtime.block_on(pass) {
        Ok(end) => {
            report.mirror = end.actions;
            report.errors.extend(end.error);
        }
        Err(error) => report.errors.push(error),
    }
}

/// The buckets as the engine uses them: each wrapped in the decorators that count its requests
/// (and keep the source read-only), and the copier between them.
struct Stores {
    source: Arc<dyn ObjectStore>,
    target: Arc<dyn ObjectStore>,
    source_marker: Option<SourceMarker>,
    copier: Copier,
}

impl Stores {
    fn wrap(source: Arc<dyn ObjectStore>, target: Arc<dyn ObjectStore>, config: &EngineConfig) -> Stores {
        let metrics = &config.telemetry.metrics;
        let mapping = match &config.layout {
            Layout::Tenants(tenants) if !tenants.mapping.is_empty() => Some(tenants.mapping.clone()),
            _ => None,
        };
        let target: Arc<dyn ObjectStore> = match &mapping {
            Some(mapping) => Arc::new(TenantMapStore::new(target, mapping.clone())),
            None => target,
        };
        let target: Arc<dyn ObjectStore> = Arc::new(InstrumentedStore::new(target, Side::Target, metrics.clone()));
        // Move mode's marks are the only writes to a source, through a store that allows them alone.
        let source_marker = config.mark_source_for_deletion.then(|| SourceMarker {
            writer: Arc::new(InstrumentedStore::new(
                ReadOnlyStore::allowing_deletion_marks(source.clone()),
                Side::Source,
                metrics.clone(),
            )),
            target: target.clone(),
        });
        // The engine never writes to its source (promise 3); the wrapper makes a stray write fail.
        let source: Arc<dyn ObjectStore> =
            Arc::new(InstrumentedStore::new(ReadOnlyStore::new(source), Side::Source, metrics.clone()));
        // A server-side copy goes from a source path to the same path: no renamed tenants. A
        // copy within one store goes through the instrumented store, which counts it; one
        // between two buckets is counted on its own.
        let server_side: Option<Arc<dyn ServerSideCopy>> = match (&config.same_store, &config.server_side_copy) {
            _ if mapping.is_some() => None,
            (Some(same), _) => Some(Arc::new(SameStoreCopy::new(SameStore {
                store: Arc::new(InstrumentedStore::new(same.store.clone(), Side::Target, metrics.clone())),
                ..same.clone()
            }))),
            (None, Some(copy)) => Some(Arc::new(CountedCopy::new(copy.clone(), metrics.clone()))),
            (None, None) => None,
        };
        // Parts go to the target's paths, under the tenants' names there.
        let target_parts = config.target_parts.as_ref().map(|parts| {
            let parts = match &mapping {
                Some(mapping) => PartStore(Arc::new(TenantMapStore::new(parts.clone(), mapping.clone()))),
                None => parts.clone(),
            };
            PartStore(Arc::new(InstrumentedStore::new(parts, Side::Target, metrics.clone())))
        });
        let copier = Copier::new(
            source.clone(),
            target.clone(),
            config.strategy.copy_concurrency(config.concurrency),
            config.part_size,
        )
        .with_retry(config.retry)
        .with_server_side(server_side)
        .with_parts(target_parts)
        .with_telemetry(config.telemetry.clone(), config.cancel.clone())
        .with_bandwidth(Bandwidth::new(config.bandwidth));
        Stores { source, target, source_marker, copier }
    }
}

/// This process's files in the `cache_dir`, and the grouping their groups were computed under.
struct CacheFiles {
    source: std::path::PathBuf,
    target: std::path::PathBuf,
    settings: String,
}

impl CacheFiles {
    /// `None` without a `cache_dir`; makes the folder if it is not there.
    fn open(config: &EngineConfig, grouping: &Grouping) -> Result<Option<CacheFiles>, EngineError> {
        let Some(dir) = &config.cache_dir else { return Ok(None) };
        std::fs::create_dir_all(dir).map_err(|e| EngineError::CacheDir(dir.clone(), e))?;
        let process = config.cluster.as_ref().map_or(0, |c| c.process);
        let file = |side: &str| dir.join(format!("{side}-metas-{process}.json"));
        Ok(Some(CacheFiles {
            source: file("source"),
            target: file("target"),
            settings: serde_json::to_string(grouping).expect("a grouping serialises"),
        }))
    }
}

/// The context every stage of the graph shares, on every worker of this process.
fn shared_context(
    stores: Stores,
    grouping: Grouping,
    cache_files: Option<&CacheFiles>,
    config: &EngineConfig,
    runtime: tokio::runtime::Handle,
) -> Context {
    let tenants = matches!(config.layout, Layout::Tenants(_));
    let concurrency = config.concurrency.max(1);
    let source_metas = match cache_files {
        Some(files) => SourceMetas::load(&files.source, &files.settings),
        None => SourceMetas::default(),
    };
    // A meta is remembered for the next run: of this process, or of the next, through the
    // cache folder. A single run without one would only grow with the bucket.
    let remember_metas = !config.single_run || cache_files.is_some();
    let target_index = TargetIndex::new(stores.target, config.layout.clone(), grouping.clone(), concurrency);
    Context {
        source: stores.source,
        target_index: Arc::new(target_index.remembering(remember_metas)),
        remember_metas,
        single_run: config.single_run,
        copier: stores.copier,
        // Mimir's ingesters upload blocks without external labels.
        filter: BlockFilter { keep_empty_labels: config.filter.keep_empty_labels || tenants, ..config.filter.clone() },
        grouping,
        source_metas,
        meta_budget: MetaBudget::new(config.meta_budget),
        held_back: Arc::default(),
        recheck_max_age: config.recheck_max_age,
        // Mimir's and Cortex's compactors merge a tenant's overlapping blocks (its ingesters
        // upload one 2-hour range each, replication factor times): an overlap is their normal
        // path, never a halt.
        // A mirror's target has no compactor to halt on an overlap: its store gateways read
        // overlapping blocks (an HA pair's) as the source's do.
        vertical_compaction: config.target_vertical_compaction
            || !config.replica_labels.is_empty()
            || tenants
            || config.mirror.is_some(),
        strategy: config.strategy,
        concurrency,
        dry_run: config.dry_run,
        copy_markers: config.copy_markers,
        mirror: config.mirror.is_some(),
        source_listing: std::sync::Mutex::default(),
        layout: config.layout.clone(),
        source_marker: stores.source_marker,
        runtime,
        cluster_progress: config.cluster.as_ref().map(|cluster| Sharing {
            process: cluster.process,
            workers: config.workers.max(1),
            progress: config.telemetry.progress.clone(),
            cluster: config.telemetry.cluster.clone(),
        }),
    }
}

type Workers = (mpsc::Sender<Command>, mpsc::Receiver<RunReport>, timely::communication::WorkerGuards<()>);

/// Starts timely's workers on the graph, and returns where runs are asked, where their reports
/// arrive, and the workers' guards. In a cluster, it returns once every process agreed on its
/// settings, or with the differences.
fn start_workers(context: Arc<Context>, config: &EngineConfig) -> Result<Workers, EngineError> {
    let (command_tx, command_rx) = mpsc::channel::<Command>();
    let (report_tx, report_rx) = mpsc::channel::<RunReport>();
    let command_rx = Arc::new(Mutex::new(Some(command_rx)));
    let threads = config.workers.max(1);
    let communication = match config.cluster.clone() {
        None => timely::CommunicationConfig::Process(threads),
        Some(ClusterConfig { process, addresses, .. }) => {
            timely::CommunicationConfig::Cluster { threads, process, addresses, report: false, zerocopy: false }
        }
    };
    let handshake = config.cluster.as_ref().map(|cluster| (cluster.process, agreed_settings(config)));
    let (agreed_tx, agreed_rx) = mpsc::channel::<Result<(), String>>();
    let timely_config = timely::Config { communication, worker: WorkerConfig::default() };
    let (strategy, dry_run) = (config.strategy, config.dry_run);
    let guards = timely::execute(timely_config, move |worker| {
        if let Some((process, settings)) = &handshake {
            let agreed = agree(worker, *process, threads, settings);
            if worker.index() == process * threads {
                // The receiver waits below for exactly this answer.
                let _ = agreed_tx.send(agreed.clone());
            }
            if agreed.is_err() {
                return;
            }
        }
        let report_tx = report_tx.clone();
        let context = context.clone();
        let mut input = worker.dataflow::<Epoch, _, _>(move |scope| {
            let (input, requests) = scope.new_input::<RunRequest>();
            build(scope, requests, context, move |request, records| {
                let started = chrono::DateTime::from_timestamp_millis(request.now_millis).unwrap_or_default();
                let report = RunReport::from_records(request.run_id, strategy, dry_run, started, records);
                // The receiver is gone only when the replicator was dropped mid-run.
                let _ = report_tx.send(report);
            });
            input
        });
        // Only worker 0 (of process 0, in a cluster) feeds runs; the others close their
        // input at once, so that the frontier follows worker 0's input alone.
        let commands = if worker.index() == 0 { command_rx.lock().ok().and_then(|mut c| c.take()) } else { None };
        if let Some(commands) = commands {
            feed_runs(worker, &mut input, &commands);
        }
        drop(input);
        while worker.step_or_park(Some(PARK)) {}
    })
    .map_err(EngineError::Start)?;
    if config.cluster.is_some() {
        // Every worker of this process stops at a disagreement; only then is it safe to
        // report it, with no worker left waiting for a peer.
        let agreed = agreed_rx.recv().map_err(|_| EngineError::WorkerLost)?;
        if let Err(differences) = agreed {
            let _ = guards.join();
            return Err(EngineError::SettingsDiffer(differences));
        }
    }
    Ok((command_tx, report_rx, guards))
}

/// Worker 0's loop: each run asked is one epoch of the input, until the replicator closes its
/// commands. Between commands the worker steps the graph, so that runs make progress.
fn feed_runs(
    worker: &mut timely::worker::Worker,
    input: &mut timely::dataflow::InputHandle<Epoch, timely::container::CapacityContainerBuilder<Vec<RunRequest>>>,
    commands: &mpsc::Receiver<Command>,
) {
    loop {
        match commands.try_recv() {
            Ok(Command::Run(request)) => {
                input.send(request);
                input.advance_to(request.run_id + 1);
            }
            Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => {
                worker.step_or_park(Some(Duration::from_millis(20)));
            }
        }
    }
}
