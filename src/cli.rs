//! Command-line flags. `replicate` takes Thanos's `tools bucket replicate` flags with Thanos's
//! defaults, so an existing deployment can switch binaries without editing its arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bucketflow_dataflows::BandwidthLimit;
use bucketflow_dataflows::MaxDeletions;
use bucketflow_dataflows::Strategy;
use bucketflow_dataflows::{parse_duration, TimeOrDuration};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ulid::Ulid;

#[derive(Debug, Parser)]
#[command(
    name = "bucketflow",
    version,
    about = "Replicates Prometheus/Thanos TSDB blocks between object-storage buckets"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

const REPLICATE_EXAMPLES: &str = "Examples:
  # A sidecar next to a store gateway: a run every minute, /metrics and the status page on :10902
  bucketflow replicate --objstore.config-file source.yml --objstore-to.config-file target.yml

  # One bulk copy between two buckets, as fast as the hardware allows
  bucketflow replicate --from s3://old-bucket --to s3://new-bucket --single-run --concurrency 64

  # A Mimir or Cortex bucket, tenant by tenant: the plan only
  bucketflow replicate --from file:///data/mimir --to file:///backup/mimir --layout tenants --dry-run";

const GEN_EXAMPLES: &str = "Examples:
  # 40 groups of 500 tiny blocks (20,000 blocks) in a folder
  bucketflow gen --to file:///tmp/bucket --groups 40 --blocks-per-group 500 --max-chunk-files 1";

const BENCH_EXAMPLES: &str = "Examples:
  # Every strategy at concurrency 4, 16 and 32 on simulated S3; a table and a chart in bench-results/
  bucketflow bench

  # Two real buckets instead
  bucketflow bench --source-config source.yml --target-config target.yml --strategies grouped,serial";

const VERIFY_EXAMPLES: &str = "Examples:
  # Audit a target after a replication, as its compactor groups HA replicas
  bucketflow verify --url s3://new-bucket --deduplication.replica-label replica

  # Sizes only, no object read back, with the audit as JSON
  bucketflow verify --objstore.config-file target.yml --skip-hashes --report-file audit.json";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replicate blocks from one bucket to another (a drop-in for `thanos tools bucket replicate`).
    #[command(after_help = REPLICATE_EXAMPLES)]
    Replicate(Box<ReplicateArgs>),
    /// Write a synthetic Thanos bucket (compaction groups of consecutive blocks), for trials and
    /// benchmarks.
    #[command(after_help = GEN_EXAMPLES)]
    Gen(GenArgs),
    /// Compare replication strategies at several concurrency levels on one synthetic bucket,
    /// between simulated S3 stores (by default) or real buckets; writes a table and a chart.
    #[command(after_help = BENCH_EXAMPLES)]
    Bench(BenchArgs),
    /// Audit one bucket: every visible block complete (sizes and hashes that meta.json lists),
    /// partial uploads with their age, and each compaction group's time line with gaps and
    /// overlaps. Exits 1 when a visible block is incomplete.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// One benchmark run, in a process of its own so that its peak memory is its own.
    #[command(hide = true)]
    BenchRun(BenchRunArgs),
}

/// The workload and stores of a benchmark, shared by the whole bench and each of its runs.
#[derive(Debug, Clone, Args)]
pub struct BenchWorkload {
    #[arg(long, default_value_t = 8)]
    pub groups: usize,
    #[arg(long = "blocks-per-group", default_value_t = 16)]
    pub blocks_per_group: usize,
    #[arg(long = "max-chunk-bytes", default_value_t = 256 * 1024)]
    pub max_chunk_bytes: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Simulated store: latency of every request (S3 in-region is about 20-30 ms).
    #[arg(long, value_parser = parse_duration_flag, default_value = "25ms")]
    pub latency: Duration,
    /// Simulated store: bytes per second of one GET stream.
    #[arg(long = "stream-bytes-per-second", default_value_t = 100_000_000)]
    pub stream_bytes_per_second: u64,
    /// Timely worker threads per run.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// A bandwidth limit for every run, as `replicate --bwlimit` takes it (kept as written, to
    /// pass on to each run).
    #[arg(long = "bwlimit", value_name = "RATE", value_parser = valid_bwlimit)]
    pub bwlimit: Option<String>,
    /// Real buckets instead of the simulated store: the source (filled with the synthetic bucket
    /// when it holds no block yet) and the target (each run writes under a prefix of its own).
    #[arg(long = "source-config", value_name = "FILE", requires = "target_config")]
    pub source_config: Option<PathBuf>,
    #[arg(long = "target-config", value_name = "FILE", requires = "source_config")]
    pub target_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub workload: BenchWorkload,
    /// Strategies to compare (serial runs once: it always has one object in flight).
    #[arg(long, value_delimiter = ',', value_parser = parse_strategy, default_value = "grouped,serial,unordered")]
    pub strategies: Vec<Strategy>,
    /// Concurrency levels for grouped and unordered.
    #[arg(long, value_delimiter = ',', default_value = "4,16,32")]
    pub concurrency: Vec<usize>,
    /// Folder for results.md, results.json and throughput.svg.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchRunArgs {
    #[command(flatten)]
    pub workload: BenchWorkload,
    #[arg(long, value_parser = parse_strategy)]
    pub strategy: Strategy,
    #[arg(long)]
    pub concurrency: usize,
    /// With real buckets: the target prefix of this run.
    #[arg(long = "target-prefix", default_value = "")]
    pub target_prefix: String,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Target bucket's Thanos objstore YAML file.
    #[arg(long = "objstore.config-file", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Target bucket's Thanos objstore YAML, inline.
    #[arg(long = "objstore.config", value_name = "YAML", conflicts_with = "config_file")]
    pub config: Option<String>,
    /// Target bucket as a URL.
    #[arg(long = "to", value_name = "URL", conflicts_with_all = ["config_file", "config"])]
    pub to: Option<String>,
    #[arg(long, default_value_t = 4)]
    pub groups: usize,
    #[arg(long = "blocks-per-group", default_value_t = 4)]
    pub blocks_per_group: usize,
    /// Chunk segments per block: 1 to this many.
    #[arg(long = "max-chunk-files", default_value_t = 3)]
    pub max_chunk_files: usize,
    #[arg(long = "min-chunk-bytes", default_value_t = 1)]
    pub min_chunk_bytes: usize,
    #[arg(long = "max-chunk-bytes", default_value_t = 64 * 1024)]
    pub max_chunk_bytes: usize,
    /// Do not record SHA256 hashes in meta.json's thanos.files.
    #[arg(long = "no-hashes")]
    pub no_hashes: bool,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("bucket").required(true))]
pub struct VerifyArgs {
    /// The bucket's Thanos objstore YAML file.
    #[arg(long = "objstore.config-file", value_name = "FILE", group = "bucket")]
    pub config_file: Option<PathBuf>,
    /// The bucket's Thanos objstore YAML, inline.
    #[arg(long = "objstore.config", value_name = "YAML", group = "bucket")]
    pub config: Option<String>,
    /// The bucket as a URL.
    #[arg(long = "url", value_name = "URL", group = "bucket")]
    pub url: Option<String>,
    /// Blocks audited at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Where the blocks are: `thanos` (at the root) or `tenants` (`<tenant>/<ULID>/`).
    #[arg(long, value_enum, default_value = "thanos")]
    pub layout: LayoutFlag,
    /// Check sizes only: do not read objects back to compare the SHA256 that meta.json lists.
    #[arg(long = "skip-hashes")]
    pub skip_hashes: bool,
    /// A label the bucket's compactor strips before grouping (--deduplication.replica-label;
    /// repeated): the replicas of an HA pair share one time line.
    #[arg(long = "deduplication.replica-label", value_name = "LABEL")]
    pub replica_labels: Vec<String>,
    /// Also write the audit as JSON to this file.
    #[arg(long = "report-file", value_name = "PATH")]
    pub report_file: Option<PathBuf>,
    #[arg(long = "log.level", value_enum, default_value = "warn")]
    pub log_level: LogLevel,
}

impl VerifyArgs {
    pub fn bucket(&self) -> BucketFlags {
        BucketFlags { config_file: self.config_file.clone(), config: self.config.clone(), url: self.url.clone() }
    }
}

impl GenArgs {
    pub fn target(&self) -> BucketFlags {
        BucketFlags { config_file: self.config_file.clone(), config: self.config.clone(), url: self.to.clone() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerSideCopyFlag {
    /// Copy server-side where the two buckets allow it.
    Auto,
    /// Always stream.
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutFlag {
    Thanos,
    Tenants,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
    /// To the systemd journal, as Thanos's `journald` format.
    Journald,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Where a bucket is described: Thanos objstore YAML (file or inline) or a URL.
#[derive(Debug, Clone, Default)]
pub struct BucketFlags {
    pub config_file: Option<PathBuf>,
    pub config: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplicateArgs {
    /// Path to the source bucket's Thanos objstore YAML.
    #[arg(help_heading = "Buckets", long = "objstore.config-file", value_name = "FILE")]
    pub source_config_file: Option<PathBuf>,
    /// The source bucket's Thanos objstore YAML, inline (instead of --objstore.config-file).
    #[arg(
        help_heading = "Buckets",
        long = "objstore.config",
        value_name = "YAML",
        conflicts_with = "source_config_file"
    )]
    pub source_config: Option<String>,
    /// Path to the target bucket's Thanos objstore YAML.
    #[arg(help_heading = "Buckets", long = "objstore-to.config-file", value_name = "FILE")]
    pub target_config_file: Option<PathBuf>,
    /// The target bucket's Thanos objstore YAML, inline (instead of --objstore-to.config-file).
    #[arg(
        help_heading = "Buckets",
        long = "objstore-to.config",
        value_name = "YAML",
        conflicts_with = "target_config_file"
    )]
    pub target_config: Option<String>,
    /// Source bucket as a URL (file:///dir, s3://bucket/prefix, gs://, az://, memory://) with
    /// object_store options as query parameters, instead of the YAML flags.
    #[arg(help_heading = "Buckets", long = "from", value_name = "URL", conflicts_with_all = ["source_config_file", "source_config"])]
    pub from: Option<String>,
    /// Target bucket as a URL, instead of the YAML flags.
    #[arg(help_heading = "Buckets", long = "to", value_name = "URL", conflicts_with_all = ["target_config_file", "target_config"])]
    pub to: Option<String>,

    /// Only blocks with these resolutions are replicated (repeated).
    #[arg(help_heading = "Selection", long = "resolution", value_name = "DURATION", value_parser = parse_duration_flag, default_values = ["0s", "5m", "1h"])]
    pub resolutions: Vec<Duration>,
    /// Only blocks with at least this compaction level are replicated.
    #[arg(help_heading = "Selection", long = "compaction-min", default_value_t = 1)]
    pub compaction_min: i64,
    /// Only blocks up to this compaction level are replicated.
    #[arg(help_heading = "Selection", long = "compaction-max", default_value_t = 4)]
    pub compaction_max: i64,
    /// Only blocks with these compaction levels are replicated (repeated; overrides min and max).
    #[arg(help_heading = "Selection", long = "compaction", value_name = "LEVEL")]
    pub compaction: Vec<i64>,
    /// Blocks whose external labels match this selector are replicated (repeated; all must match).
    /// Prometheus matcher syntax: key="value" or {a="b",c=~"x.*"}, with = != =~ !~.
    #[arg(help_heading = "Selection", long = "matcher", value_name = "MATCHER")]
    pub matchers: Vec<String>,
    /// Run once and exit, instead of replicating every --interval.
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "single-run")]
    pub single_run: bool,
    /// Replicate only these blocks (repeated); other filters are ignored; implies --single-run.
    #[arg(help_heading = "Selection", long = "id", value_name = "ULID")]
    pub ids: Vec<Ulid>,
    /// Replicate only blocks that end at or after this time: RFC3339 or a duration relative to now (-2w).
    #[arg(help_heading = "Selection", long = "min-time", value_name = "TIME", allow_hyphen_values = true)]
    pub min_time: Option<TimeOrDuration>,
    /// Replicate only blocks that start at or before this time: RFC3339 or a duration relative to now.
    #[arg(help_heading = "Selection", long = "max-time", value_name = "TIME", allow_hyphen_values = true)]
    pub max_time: Option<TimeOrDuration>,
    /// Do not replicate blocks that have a deletion mark.
    #[arg(help_heading = "Selection", long = "ignore-marked-for-deletion")]
    pub ignore_marked_for_deletion: bool,
    /// A label the target's compactor strips before grouping blocks (its own
    /// --deduplication.replica-label; repeated): both replicas of an HA pair are then one group,
    /// ordered as one. The target compactor then also compacts vertically.
    #[arg(help_heading = "The target compactor", long = "deduplication.replica-label", value_name = "LABEL")]
    pub replica_labels: Vec<String>,
    /// The target's compactor runs with --compact.enable-vertical-compaction: a block that
    /// overlaps a target block of its group is replicated rather than refused.
    #[arg(help_heading = "The target compactor", long = "target.vertical-compaction")]
    pub target_vertical_compaction: bool,
    /// The longest time from the start of a block's re-check in the target to the meta.json
    /// write that relies on it; a block whose turn comes later is re-checked again first. A
    /// target compactor deletes a folder without meta.json once its ULID is older than its
    /// partial-upload threshold (a mirrored block's is, from its first object on): the shorter
    /// this, the narrower the window in which a block it cleaned could be made visible.
    #[arg(help_heading = "The target compactor", long = "recheck.max-age", value_name = "DURATION", value_parser = parse_duration_flag, default_value = "1s")]
    pub recheck_max_age: Duration,
    /// Leave this block out entirely (repeated), without holding back the newer blocks of its
    /// group: for a broken source block that should not stop its group.
    #[arg(help_heading = "Selection", long = "exclude-block", value_name = "ULID")]
    pub exclude_blocks: Vec<Ulid>,
    /// Keep the source's and the target's block metas in this folder across restarts, so that a
    /// restarted sidecar or a single run from cron reads only the meta.json files it has not
    /// seen (Thanos's meta-syncer folder does this).
    #[arg(help_heading = "Copying", long = "cache-dir", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Listen address for HTTP (metrics and probes); port 0 picks a free port.
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "http-address", default_value = "0.0.0.0:10902")]
    pub http_address: SocketAddr,
    #[arg(help_heading = "Logging", long = "log.level", value_enum, default_value = "info")]
    pub log_level: LogLevel,
    #[arg(help_heading = "Logging", long = "log.format", value_enum, default_value = "logfmt")]
    pub log_format: LogFormat,
    /// The label whose value titles each compaction group on the block viewer at `/` (as
    /// Thanos's --bucket-web-label); without it, a group is titled by all its labels.
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "web.group-label", value_name = "LABEL")]
    pub web_group_label: Option<String>,
    /// How long the HTTP server waits for requests in flight when the process stops, as in
    /// Thanos: it stops accepting connections at once.
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "http-grace-period", value_parser = parse_duration_flag, default_value = "2m")]
    pub http_grace_period: Duration,
    /// TLS and basic auth for every HTTP endpoint, in the web configuration format of Prometheus
    /// and Thanos (tls_server_config, http_server_config.headers, basic_auth_users with bcrypt
    /// hashes). A field bucketflow cannot honour is refused by name, never ignored.
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "http.config", value_name = "FILE")]
    pub http_config: Option<PathBuf>,
    /// Thanos's tracing configuration (YAML). bucketflow exports no traces: an empty
    /// configuration is accepted, a non-empty one refused rather than ignored.
    #[arg(
        help_heading = "Runs, sidecar and HTTP",
        long = "tracing.config",
        value_name = "YAML",
        conflicts_with = "tracing_config_file"
    )]
    pub tracing_config: Option<String>,
    /// Thanos's tracing configuration file; as --tracing.config.
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "tracing.config-file", value_name = "FILE")]
    pub tracing_config_file: Option<PathBuf>,
    /// Thanos's Go runtime memory limit. Meaningless for bucketflow, which is not a Go program:
    /// accepted so that a Thanos command line runs unchanged, and ignored.
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "enable-auto-gomemlimit")]
    pub enable_auto_gomemlimit: bool,
    /// Thanos's Go runtime memory limit ratio; as --enable-auto-gomemlimit, accepted and ignored.
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "auto-gomemlimit.ratio", default_value_t = 0.9)]
    pub auto_gomemlimit_ratio: f64,

    /// Objects in flight across the process; besides, as many re-checks before meta.json writes
    /// (a HEAD each, or a block's two folder listings).
    #[arg(help_heading = "Copying", long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Timely worker threads (default: the number of cores).
    #[arg(help_heading = "Copying", long, value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
    /// Threads for a folder bucket's file calls (default: twice the cores, at least 4). Raise it
    /// for a network file system, whose calls wait on the network rather than use the CPU.
    #[arg(help_heading = "Copying", long = "io-threads", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub io_threads: Option<u32>,
    /// Multipart part size in bytes, from 5 MiB (S3's smallest part) to 5 GiB; with
    /// --concurrency it bounds the memory used by copies.
    #[arg(help_heading = "Copying", long = "part-size", default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(5 * 1024 * 1024..=5 * 1024 * 1024 * 1024))]
    pub part_size: u64,
    /// Server-side copies: `auto` lets the provider copy objects itself when both buckets are on
    /// one provider endpoint (one S3 endpoint and region, one GCS endpoint, one Azure account, or
    /// one bucket under two prefixes), and
    /// streams every object once the provider refuses one (AccessDenied); `never` streams every
    /// object through bucketflow.
    #[arg(help_heading = "Copying", long = "server-side-copy", value_enum, default_value = "auto")]
    pub server_side_copy: ServerSideCopyFlag,
    /// Retries of a failed request or object copy (transient failures only: 5xx, throttling,
    /// timeouts, resets, bodies damaged in transit); a missing or forbidden object fails its
    /// block at once.
    #[arg(help_heading = "Copying", long, default_value_t = 10)]
    pub retries: usize,
    /// How long one request or object copy may keep retrying.
    #[arg(help_heading = "Copying", long = "retry-timeout", value_parser = parse_duration_flag, default_value = "3m")]
    pub retry_timeout: Duration,
    /// After SIGINT or SIGTERM, how long copies in flight may take to finish before the process
    /// exits anyway (no meta.json is ever written for an incomplete block).
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "grace-period", value_parser = parse_duration_flag, default_value = "30s")]
    pub grace_period: Duration,
    /// Copies objects above this many bytes server-side in parts (5 MiB at least) rather than
    /// with one request, as above 5 GiB (for tests, which have no 5 GiB objects).
    #[arg(help_heading = "Copying", long = "debug.multipart-copy-above", value_name = "BYTES", hide = true)]
    pub debug_multipart_copy_above: Option<u64>,
    /// Adds this latency to every request to either bucket (for demonstrations and tests).
    #[arg(help_heading = "Copying", long = "debug.latency", value_parser = parse_duration_flag, hide = true)]
    pub debug_latency: Option<Duration>,
    /// Period of continuous replication.
    #[arg(help_heading = "Runs, sidecar and HTTP", long, value_parser = parse_duration_flag, default_value = "1m")]
    pub interval: Duration,
    /// Print what would be replicated; write nothing. Implies a single run.
    #[arg(help_heading = "Copying", long = "dry-run")]
    pub dry_run: bool,
    /// Replication strategy: grouped (safe, concurrent), serial (Thanos's behaviour), unordered
    /// (unsafe; for benchmarks).
    #[arg(help_heading = "Copying", long, default_value = "grouped", value_parser = parse_strategy)]
    pub strategy: Strategy,
    /// Write each run's report as JSON to this file (process 0 of a cluster).
    #[arg(help_heading = "Runs, sidecar and HTTP", long = "report-file", value_name = "PATH")]
    pub report_file: Option<PathBuf>,

    /// Also replicate no-compact-mark.json, no-downsample-mark.json and deletion-mark.json, written
    /// before the block's meta.json, or onto a block already replicated as soon as the source has
    /// them, so that the target's compactor follows the source's marks and retention (a deletion
    /// mark written by move mode is never copied).
    #[arg(help_heading = "Copying", long = "copy-markers")]
    pub copy_markers: bool,

    /// Where the source's blocks are: `thanos` (at the root) or `tenants` (Mimir, Cortex:
    /// `<tenant>/<ULID>/`, each tenant committed in time order as one queue).
    #[arg(help_heading = "Buckets", long, value_enum, default_value = "thanos")]
    pub layout: LayoutFlag,
    /// With --layout tenants: only these tenants (comma-separated or repeated).
    #[arg(help_heading = "Buckets", long = "enabled-tenants", value_name = "TENANT", value_delimiter = ',')]
    pub enabled_tenants: Vec<String>,
    /// With --layout tenants: never these tenants (comma-separated or repeated).
    #[arg(help_heading = "Buckets", long = "disabled-tenants", value_name = "TENANT", value_delimiter = ',')]
    pub disabled_tenants: Vec<String>,
    /// With --layout tenants: write tenant SRC under the name DST in the target (repeated).
    #[arg(help_heading = "Buckets", long = "tenant-mapping", value_name = "SRC=DST")]
    pub tenant_mapping: Vec<String>,

    /// The target has no compactor of its own: after each run, mark for deletion the target's
    /// blocks that bucketflow replicated and that the source compacted into another block,
    /// marked for deletion, or lost longer ago than --delete-delay, and delete marked ones after
    /// --delete-delay (meta.json first). Thanos layout only; not with move mode.
    #[arg(help_heading = "Mirror", long = "mirror")]
    pub mirror: bool,
    /// With --mirror: how long a marked target block stays before it is deleted, and how long a
    /// block must have been gone from the source before it is marked (the compactor's flag).
    #[arg(help_heading = "Mirror", long = "delete-delay", value_name = "DURATION", value_parser = parse_duration_flag, default_value = "48h")]
    pub delete_delay: Duration,
    /// With --mirror: the most blocks whose data no other target block holds (retention, or gone
    /// from the source) that one run may mark, as a count or a percentage of the target's
    /// blocks. Past it, none is marked and the run fails: a source that lost its data looks
    /// the same as one whose retention deleted it.
    #[arg(help_heading = "Mirror", long = "mirror.max-deletions", value_name = "N|P%", default_value = "10%")]
    pub mirror_max_deletions: MaxDeletions,

    /// Move mode: once a block is in the target and its objects verified, write a Thanos
    /// deletion-mark.json into the source block, for the source's compactor to delete it after
    /// its delete delay. The only write bucketflow ever makes to a source.
    #[arg(help_heading = "Copying", long = "mark-source-for-deletion")]
    pub mark_source_for_deletion: bool,

    /// Bytes per second for the whole process, e.g. 50MiB/s: one rate for source reads and target
    /// writes alike, or READ:WRITE (either may be `off`). Server-side copies are not limited.
    #[arg(help_heading = "Copying", long = "bwlimit", value_name = "RATE", value_parser = parse_bwlimit)]
    pub bwlimit: Option<BandwidthLimit>,

    /// Processes in a timely cluster that share one replication; start each with the same flags
    /// but its own --process.
    #[arg(help_heading = "Cluster", long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub processes: u32,
    /// This process's index in the cluster, from 0; process 0 starts the runs and writes the report.
    #[arg(help_heading = "Cluster", long, default_value_t = 0)]
    pub process: u32,
    /// The cluster's addresses, one host:port a line in process order (default: 127.0.0.1 from
    /// port 2101 up).
    #[arg(help_heading = "Cluster", long, value_name = "FILE")]
    pub hostfile: Option<PathBuf>,
}

impl ReplicateArgs {
    pub fn source(&self) -> BucketFlags {
        BucketFlags {
            config_file: self.source_config_file.clone(),
            config: self.source_config.clone(),
            url: self.from.clone(),
        }
    }

    pub fn target(&self) -> BucketFlags {
        BucketFlags {
            config_file: self.target_config_file.clone(),
            config: self.target_config.clone(),
            url: self.to.clone(),
        }
    }

    /// A single run was asked for, directly or through a flag that implies it.
    pub fn is_single_run(&self) -> bool {
        self.single_run || !self.ids.is_empty() || self.dry_run
    }
}

fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

fn parse_bwlimit(s: &str) -> Result<BandwidthLimit, String> {
    s.parse().map_err(|e: bucketflow_dataflows::RateError| e.to_string())
}

fn valid_bwlimit(s: &str) -> Result<String, String> {
    parse_bwlimit(s).map(|_| s.to_string())
}

fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse().map_err(|e: bucketflow_dataflows::UnknownStrategy| e.to_string())
}
