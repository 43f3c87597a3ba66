//! The TSDB block model: Prometheus's `meta.json` with Thanos's extension section.
//!
//! The parsed form drives planning (time range, labels, files), but it is never re-serialised: the
//! raw bytes read from the source are what the target receives, so unknown fields and formatting
//! survive the copy (promise 3).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::group::Grouping;

/// The name of the object that makes a block visible.
pub(crate) const META_FILENAME: &str = "meta.json";
/// The only meta.json version Prometheus and Thanos write.
pub(crate) const SUPPORTED_META_VERSION: u32 = 1;
/// The largest meta.json read, a bound that protects memory and that no real block reaches.
/// Thanos reads a meta.json whole, with no bound at all (`io.ReadAll` in `loadMeta`,
/// pkg/block/fetcher.go), so a block with a larger one is valid to it: such a block is never
/// skipped as partial, it holds back the groups it could belong to (source) or be judged
/// against (target), named in the report. A meta.json grows with `compaction.sources` and
/// `parents`, about 150 bytes a level-1 block merged into it: 64 MiB is some 400,000 of them,
/// where a 14-day block of one Prometheus holds 168.
pub(crate) const MAX_META_BYTES: usize = 64 * 1024 * 1024;
/// A meta.json whose arrays and objects nest deeper than this does not parse, as in Go's
/// `encoding/json` (its scanner's `maxNestingDepth`), and is partial to Thanos as to bucketflow.
/// Only the fields planning needs are parsed; the free-form sections (`index_stats`,
/// `extensions`, `rewrites`) are skipped without recursion, and the raw bytes are what is
/// copied, so any depth Go accepts is accepted here and crosses processes.
pub(crate) const MAX_META_DEPTH: usize = 10_000;

/// Why a meta.json could not be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub(crate) enum MetaError {
    #[error("meta.json of block {block} has {size} bytes, more than the {limit}-byte limit")]
    TooLarge { block: String, size: usize, limit: usize },
    #[error("meta.json of block {block} is not valid block metadata: {reason}")]
    Parse { block: String, reason: String },
    #[error("meta.json of block {block} has version {version}; only version 1 is supported")]
    UnsupportedVersion { block: String, version: u32 },
    #[error("meta.json in folder {block} names block {ulid}")]
    UlidMismatch { block: String, ulid: Ulid },
}

/// Prometheus's block metadata plus the Thanos section, as far as bucketflow reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: Ulid,
    pub min_time: i64,
    pub max_time: i64,
    #[serde(default)]
    pub stats: BlockStats,
    #[serde(default)]
    pub compaction: Compaction,
    pub version: u32,
    #[serde(default)]
    pub thanos: ThanosMeta,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    #[serde(default)]
    pub num_samples: u64,
    #[serde(default)]
    pub num_series: u64,
    #[serde(default)]
    pub num_chunks: u64,
    #[serde(default)]
    pub num_tombstones: u64,
    #[serde(default)]
    pub num_float_samples: u64,
    #[serde(default)]
    pub num_histogram_samples: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Compaction {
    #[serde(default)]
    pub level: i64,
    #[serde(default)]
    pub sources: Vec<Ulid>,
    #[serde(default)]
    pub parents: Vec<BlockDesc>,
    #[serde(default)]
    pub failed: bool,
    #[serde(default)]
    pub deletable: bool,
    #[serde(default)]
    pub hints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDesc {
    pub ulid: Ulid,
    pub min_time: i64,
    pub max_time: i64,
}

/// The `thanos` section that Thanos components add to meta.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ThanosMeta {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub downsample: Downsample,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub segment_files: Vec<String>,
    #[serde(default)]
    pub files: Vec<BlockFile>,
    #[serde(default)]
    pub upload_time: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Downsample {
    #[serde(default)]
    pub resolution: i64,
}

/// One entry of `thanos.files`: what the uploader recorded about an object of the block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockFile {
    pub rel_path: String,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    #[serde(default)]
    pub hash: Option<ObjectHash>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectHash {
    #[serde(rename = "hashFunc")]
    pub hash_func: String,
    pub value: String,
}

impl ObjectHash {
    /// The SHA256 digest in lower-case hex, when this hash is one bucketflow can verify.
    pub fn sha256_hex(&self) -> Option<String> {
        self.hash_func.eq_ignore_ascii_case("SHA256").then(|| self.value.to_ascii_lowercase())
    }
}

impl BlockMeta {
    /// The compaction group the target compactor puts this block (in folder `dir`) in.
    pub fn group_key(&self, dir: &str, grouping: &Grouping) -> String {
        grouping.key(dir, self.thanos.downsample.resolution, &self.thanos.labels)
    }
}

/// What planning needs of a meta.json, small enough to keep for every block of a bucket across
/// runs (a meta.json never changes, so a process reads each once): the fields the filters,
/// ordering and the target compactor's judgement use, and a digest of the bytes to tell an
/// equal meta.json in the target without reading either again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MetaSummary {
    pub(crate) ulid: Ulid,
    pub(crate) min_time: i64,
    pub(crate) max_time: i64,
    pub(crate) level: i64,
    pub(crate) resolution: i64,
    pub(crate) labels: std::sync::Arc<BTreeMap<String, String>>,
    /// The level-1 blocks it holds, sorted (itself, when meta.json lists none).
    pub(crate) sources: Vec<Ulid>,
    /// SHA256 of the meta.json bytes.
    pub(crate) digest: [u8; 32],
}

/// Whether the sorted sources `small` are all among the sorted sources `large`: the block of
/// `large` holds the data of the block of `small` (Thanos's compaction and deduplication rule).
pub(crate) fn is_subset(small: &[Ulid], large: &[Ulid]) -> bool {
    small.iter().all(|s| large.binary_search(s).is_ok())
}

impl MetaSummary {
    pub(crate) fn of(raw: &RawMeta) -> Self {
        let meta = &raw.meta;
        let mut sources = meta.compaction.sources.clone();
        if sources.is_empty() {
            sources.push(meta.ulid);
        }
        sources.sort_unstable();
        sources.dedup();
        MetaSummary {
            ulid: meta.ulid,
            min_time: meta.min_time,
            max_time: meta.max_time,
            level: meta.compaction.level,
            resolution: meta.thanos.downsample.resolution,
            labels: interned(&meta.thanos.labels),
            sources,
            digest: digest_of(&raw.bytes),
        }
    }
}

/// The SHA256 of a meta.json's bytes, by which an equal one is told without comparing bytes.
pub(crate) fn digest_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// `labels`, shared with every summary that carries the same set: a bucket has few distinct sets
/// (a group's blocks share one, an HA pair has two), and a summary is kept for every block.
fn interned(labels: &BTreeMap<String, String>) -> std::sync::Arc<BTreeMap<String, String>> {
    use std::collections::HashSet;
    use std::sync::{Arc, LazyLock, Mutex};
    /// The shared sets, and the size at which the next clean-up runs.
    type Sets = (HashSet<Arc<BTreeMap<String, String>>>, usize);
    static SETS: LazyLock<Mutex<Sets>> = LazyLock::new(|| Mutex::new((HashSet::new(), 1024)));
    let mut guard = SETS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (sets, clean_at) = &mut *guard;
    if let Some(set) = sets.get(labels) {
        return set.clone();
    }
    // Sets that no summary holds any more are let go whenever the table has doubled since.
    if sets.len() >= *clean_at {
        sets.retain(|set| Arc::strong_count(set) > 1);
        *clean_at = (sets.len() * 2).max(1024);
    }
    let set = Arc::new(labels.clone());
    sets.insert(set.clone());
    set
}

/// A block's meta.json as read from the source: the bytes to copy and their parsed form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawMeta {
    pub bytes: Bytes,
    pub meta: BlockMeta,
}

/// Parses meta.json read from the folder `block`, enforcing the size cap and the version.
pub(crate) fn parse_meta(block: &str, bytes: Bytes) -> Result<RawMeta, MetaError> {
    if bytes.len() > MAX_META_BYTES {
        return Err(MetaError::TooLarge { block: block.to_string(), size: bytes.len(), limit: MAX_META_BYTES });
    }
    #[derive(Deserialize)]
    struct VersionOnly {
        version: Option<u32>,
    }
    let parse_err = |e: serde_json::Error| MetaError::Parse { block: block.to_string(), reason: e.to_string() };
    // Before the version: a block of another version is still parsed for its group (so that it
    // fails in its group's order), and must be able to cross processes like any other. Bytes
    // that are no JSON at all are named as such first.
    if nested_deeper_than(&bytes, MAX_META_DEPTH) {
        serde_json::from_slice::<VersionOnly>(&bytes).map_err(parse_err)?;
        let reason = format!("arrays and objects nest more than {MAX_META_DEPTH} levels deep");
        return Err(MetaError::Parse { block: block.to_string(), reason });
    }
    // A usable meta.json, nearly every one, is parsed once. One that is not is asked for its
    // version alone, so that a future format with other fields gets the clearer "unsupported
    // version" error rather than a field-level parse error.
    let meta: BlockMeta = match serde_json::from_slice::<BlockMeta>(&bytes) {
        Ok(meta) if meta.version == SUPPORTED_META_VERSION => meta,
        Ok(meta) => return Err(MetaError::UnsupportedVersion { block: block.to_string(), version: meta.version }),
        Err(full) => {
            let probe: VersionOnly = serde_json::from_slice(&bytes).map_err(parse_err)?;
            return Err(match probe.version {
                Some(SUPPORTED_META_VERSION) => parse_err(full),
                Some(version) => MetaError::UnsupportedVersion { block: block.to_string(), version },
                None => MetaError::Parse { block: block.to_string(), reason: "missing field `version`".into() },
            });
        }
    };
    if meta.ulid.to_string() != block {
        return Err(MetaError::UlidMismatch { block: block.to_string(), ulid: meta.ulid });
    }
    Ok(RawMeta { bytes, meta })
}

/// The compaction group named by a meta.json that is JSON but no usable block metadata (a
/// missing or mistyped field), when its labels and resolution can still be read.
pub(crate) fn group_of_unparsable(dir: &str, bytes: &[u8], grouping: &Grouping) -> Option<String> {
    #[derive(Deserialize)]
    struct LabelsOnly {
        #[serde(default)]
        thanos: ThanosLabels,
    }
    #[derive(Deserialize, Default)]
    struct ThanosLabels {
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        downsample: Downsample,
    }
    let LabelsOnly { thanos } = serde_json::from_slice(bytes).ok()?;
    Some(grouping.key(dir, thanos.downsample.resolution, &thanos.labels))
}

/// Whether the arrays and objects of the JSON text `json` nest more than `limit` levels deep.
/// Brackets inside strings do not count; the text is assumed to be valid JSON (it has parsed).
fn nested_deeper_than(json: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const ULID: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG1";

    fn meta_json(version: u32) -> String {
        format!(
            r#"{{"ulid":"{ULID}","minTime":10,"maxTime":20,"stats":{{"numSamples":5}},
               "compaction":{{"level":2,"sources":["{ULID}"],"parents":[{{"ulid":"{ULID}","minTime":10,"maxTime":20}}]}},
               "version":{version},
               "thanos":{{"labels":{{"a":"b"}},"downsample":{{"resolution":300000}},"source":"compactor",
                 "segment_files":["000001"],
                 "files":[{{"rel_path":"chunks/000001","size_bytes":3,"hash":{{"hashFunc":"SHA256","value":"AB"}}}},{{"rel_path":"meta.json"}}],
                 "future_field":true}}}}"#
        )
    }

    #[test]
    fn parses_every_section_and_keeps_the_bytes() {
        let raw = Bytes::from(meta_json(1));
        let parsed = parse_meta(ULID, raw.clone()).unwrap();
        assert_eq!(parsed.bytes, raw);
        let m = parsed.meta;
        assert_eq!((m.min_time, m.max_time, m.compaction.level), (10, 20, 2));
        assert_eq!(m.compaction.parents[0].max_time, 20);
        assert_eq!(m.stats.num_samples, 5);
        assert_eq!(m.thanos.downsample.resolution, 300000);
        assert_eq!(m.thanos.segment_files, vec!["000001"]);
        assert_eq!(m.thanos.files[0].size_bytes, Some(3));
        assert_eq!(m.thanos.files[0].hash.as_ref().unwrap().sha256_hex().as_deref(), Some("ab"));
        assert_eq!(m.thanos.files[1].size_bytes, None);
    }

    #[test]
    fn rejects_other_versions_by_name() {
        let err = parse_meta(ULID, Bytes::from(meta_json(2))).unwrap_err();
        assert_eq!(err, MetaError::UnsupportedVersion { block: ULID.into(), version: 2 });
        assert!(err.to_string().contains(ULID));
    }

    #[test]
    fn rejects_corrupt_mismatched_and_oversized() {
        let err = parse_meta(ULID, Bytes::from_static(b"{\"ulid\":")).unwrap_err();
        assert!(matches!(err, MetaError::Parse { .. }), "{err}");
        let other = "01DWJQ1R9XW3Z3WJ7A7HNGQRG2";
        let err = parse_meta(other, Bytes::from(meta_json(1))).unwrap_err();
        assert!(matches!(err, MetaError::UlidMismatch { .. }), "{err}");
        let big = Bytes::from(vec![b' '; MAX_META_BYTES + 1]);
        assert!(matches!(parse_meta(ULID, big), Err(MetaError::TooLarge { .. })));
    }

    /// A meta.json nested as deep as Go's `encoding/json` accepts is read, as Thanos reads it (the
    /// fuzz target's regression fuzz/regressions/meta/index-stats-123-deep.json, 125 levels, once
    /// could not cross processes; the free-form sections are now skipped rather than kept), and
    /// one nested deeper is not, as it is not for Thanos.
    #[test]
    fn reads_nesting_as_deep_as_go_accepts() {
        let nested = |levels: usize| {
            let value = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
            Bytes::from(format!(
                r#"{{"ulid":"{ULID}","minTime":0,"maxTime":1,"version":1,"thanos":{{"labels":{{"a":"b"}},"index_stats":{value}}}}}"#
            ))
        };
        // The document nests two levels more than its `index_stats`.
        parse_meta(ULID, nested(123)).unwrap();
        parse_meta(ULID, nested(MAX_META_DEPTH - 2)).unwrap();
        let err = parse_meta(ULID, nested(MAX_META_DEPTH - 1)).unwrap_err();
        assert!(matches!(&err, MetaError::Parse { reason, .. } if reason.contains("nest")), "{err}");
        assert!(err.to_string().contains(ULID), "{err}");
    }
}
