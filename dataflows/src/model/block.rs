//! A source block as the planner sees it: its meta.json, its compaction group, its markers and
//! the objects that have to be in the target before meta.json may be written.

use std::collections::BTreeMap;

use object_store::path::Path;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::failure::{Failure, FailureCause};
use super::group::Grouping;
use super::held_meta::HeldMeta;
use super::markers::Markers;
use super::meta::{MetaSummary, RawMeta, META_FILENAME};

/// One object of a block to copy, with what the target copy is checked against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectSpec {
    /// Path relative to the block folder, such as `chunks/000001`.
    pub rel_path: String,
    /// Size in the source listing (which meta.json, where it lists one, must agree with).
    pub size: u64,
    /// The SHA256 from `thanos.files`, where the uploader recorded one.
    pub sha256: Option<Sha256Digest>,
}

/// A SHA256 digest. Kept as its 32 bytes: every object of every block waiting in a run has one,
/// and the hex form would take a heap string of 64 bytes more. It reads and prints as lower-case
/// hex, as meta.json and error messages write it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// The digest written in hex (either case), if `hex` is one.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).ok().map(|()| Sha256Digest(bytes))
    }
}

impl std::fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        Sha256Digest::from_hex(&hex).ok_or_else(|| serde::de::Error::custom(format!("not a SHA256 in hex: {hex:?}")))
    }
}

impl ObjectSpec {
    /// Copy order within a block: chunk segments, then the index, then anything else. meta.json
    /// is not an object of this list: it is written by the commit, last.
    pub fn rank(&self) -> u8 {
        if self.rel_path.starts_with("chunks/") {
            0
        } else if self.rel_path == "index" {
            1
        } else {
            2
        }
    }
}

/// Why a listed block cannot be planned.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub(crate) enum PlanError {
    #[error("block {block}: meta.json lists {rel_path}, which is not in the block folder")]
    MissingObject { block: String, rel_path: String },
    #[error("block {block}: {rel_path} has {actual} bytes in the bucket, but meta.json lists {listed}")]
    SizeMismatch { block: String, rel_path: String, listed: u64, actual: u64 },
    #[error("block {block}: meta.json lists an unusable object path {rel_path:?}")]
    BadPath { block: String, rel_path: String },
    /// A SHA256 that is not 64 hex digits can match no object: copying would fail on every run.
    #[error("block {block}: meta.json lists {rel_path} with a SHA256 that is not 64 hex digits: {value:?}")]
    BadHash { block: String, rel_path: String, value: String },
    /// Every TSDB block has an index; a listing without one is not a block's (or the store's
    /// listing is broken), and copying it would make an empty block visible.
    #[error("block {block}: the listing of the block folder has no index")]
    NoIndex { block: String },
    /// A TSDB block's chunks/ holds segment files only; anything deeper is not a block's.
    #[error("block {block}: {rel_path} is in a folder under chunks/, where a TSDB block holds only segment files")]
    NestedChunks { block: String, rel_path: String },
}

/// A block's place in its commit queue: ascending minTime, ties broken by ULID, then by a hash of
/// its folder. One block can sit under two tenants (Mimir's tools copy blocks between tenants
/// with their ULIDs), and a `serial` queue holds every tenant: the hash keeps them two places.
pub(crate) type OrderKey = (i64, Ulid, u64);

/// A block selected from the source listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceBlock {
    /// The block folder name, which is the block's ULID.
    pub dir: String,
    /// Its meta.json, to write last. The parsed form is let go once the block is planned: what
    /// the later stages need of it is in `summary`.
    pub(crate) meta: HeldMeta,
    /// What planning needs of `meta`, as kept across runs.
    pub(crate) summary: MetaSummary,
    pub group: String,
    pub markers: Markers,
    /// Every object to copy, in copy order; never meta.json or a marker.
    pub objects: Vec<ObjectSpec>,
    /// The block's no-compact and no-downsample marks, copied only when asked for. A deletion
    /// mark is never among them: it is the source's compactor's business, not the target's.
    pub markers_to_copy: Vec<ObjectSpec>,
    /// The target's block folder as listed before copying (when it had no matching meta.json),
    /// so that copies need not ask the target object by object.
    #[serde(default)]
    pub target_listing: Option<TargetListing>,
    /// Why this block cannot be replicated, found before copying (a source block that disagrees
    /// with its meta.json, a target that could not be read). A defective block still takes its
    /// place in its group's commit order, so that it holds back the newer blocks of its group.
    pub defect: Option<Failure>,
    /// When the target showed a newer block of the group before this one was committed: that
    /// block's folder. The block is still committed (it overlaps nothing), and counted as late.
    #[serde(default)]
    pub late_behind: Option<String>,
    /// The run the block is copied in, once it is on its way to be copied.
    #[serde(default)]
    pub(crate) run: u64,
    /// When its meta.json appeared in the source (the listing's last-modified time, Unix
    /// milliseconds), where the listing says: what the replication lag is measured from.
    #[serde(default)]
    pub meta_modified: Option<i64>,
}

/// What a listing of the target's block folder said of an object: it spares the HEAD that would
/// otherwise ask the same question, one request per object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Seen {
    /// No listing was made.
    Unknown,
    Absent,
    Present {
        size: u64,
        e_tag: Option<String>,
    },
}

/// A target block folder's objects as one listing saw them: relative path to size and ETag.
pub(crate) type TargetListing = BTreeMap<String, (u64, Option<String>)>;

impl Seen {
    pub(crate) fn of(listing: Option<&TargetListing>, rel_path: &str) -> Seen {
        match listing.map(|l| l.get(rel_path)) {
            None => Seen::Unknown,
            Some(None) => Seen::Absent,
            Some(Some((size, e_tag))) => Seen::Present { size: *size, e_tag: e_tag.clone() },
        }
    }
}

/// A relative path is usable when it names an object inside the block folder: no empty, `.` or
/// `..` segment, also once percent-decoded (a store may decode a key), and no backslash or
/// control character (which some stores and file systems read as separators or cut at).
fn is_contained(rel_path: &str) -> bool {
    let segment_ok = |seg: &str| {
        let decoded = percent_encoding::percent_decode_str(seg).decode_utf8_lossy();
        !seg.is_empty()
            && ![".", ".."].contains(&decoded.as_ref())
            && !decoded.chars().any(|c| c == '\\' || c.is_control())
    };
    !rel_path.is_empty() && !rel_path.starts_with('/') && rel_path.split('/').all(segment_ok)
}

impl SourceBlock {
    /// Builds the plan of a block from its meta.json and the listing of its folder (relative
    /// paths and sizes). A file listed in `thanos.files` must exist with the listed size, so that
    /// a source block that is itself incomplete is never made visible in the target; such a
    /// block is returned with its `defect` set and nothing to copy.
    pub fn plan(dir: &str, meta: RawMeta, listing: Vec<(String, u64)>, grouping: &Grouping) -> Self {
        let mut markers = Markers::default();
        let mut markers_to_copy = Vec::new();
        let group = meta.meta.group_key(dir, grouping);
        let (objects, defect) = match Self::objects(dir, &meta, listing, &mut markers, &mut markers_to_copy) {
            Ok(objects) => (objects, None),
            Err(e) => (Vec::new(), Some(Failure::new(FailureCause::Source, e.to_string()))),
        };
        SourceBlock {
            dir: dir.to_string(),
            summary: MetaSummary::of(&meta),
            meta: HeldMeta::new(meta.bytes),
            group,
            markers,
            objects,
            markers_to_copy,
            target_listing: None,
            defect,
            late_behind: None,
            run: 0,
            meta_modified: None,
        }
    }

    fn objects(
        dir: &str,
        meta: &RawMeta,
        listing: Vec<(String, u64)>,
        markers: &mut Markers,
        markers_to_copy: &mut Vec<ObjectSpec>,
    ) -> Result<Vec<ObjectSpec>, PlanError> {
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        for (rel_path, size) in listing {
            if rel_path == META_FILENAME {
                continue;
            }
            if markers.note(&rel_path) {
                markers_to_copy.push(ObjectSpec { rel_path, size, sha256: None });
                continue;
            }
            sizes.insert(rel_path, size);
        }
        let mut hashes = BTreeMap::new();
        for file in &meta.meta.thanos.files {
            if file.rel_path == META_FILENAME {
                continue;
            }
            let bad_path = || PlanError::BadPath { block: dir.to_string(), rel_path: file.rel_path.clone() };
            if !is_contained(&file.rel_path) {
                return Err(bad_path());
            }
            let Some(&actual) = sizes.get(&file.rel_path) else {
                return Err(PlanError::MissingObject { block: dir.to_string(), rel_path: file.rel_path.clone() });
            };
            if let Some(listed) = file.size_bytes.filter(|&s| s != actual) {
                return Err(PlanError::SizeMismatch {
                    block: dir.to_string(),
                    rel_path: file.rel_path.clone(),
                    listed,
                    actual,
                });
            }
            if let Some(hex) = file.hash.as_ref().and_then(|h| h.sha256_hex()) {
                let Some(digest) = Sha256Digest::from_hex(&hex) else {
                    return Err(PlanError::BadHash {
                        block: dir.to_string(),
                        rel_path: file.rel_path.clone(),
                        value: hex,
                    });
                };
                hashes.insert(file.rel_path.clone(), digest);
            }
        }
        if !sizes.contains_key("index") {
            return Err(PlanError::NoIndex { block: dir.to_string() });
        }
        if let Some(nested) = sizes.keys().find(|p| p.strip_prefix("chunks/").is_some_and(|rest| rest.contains('/'))) {
            return Err(PlanError::NestedChunks { block: dir.to_string(), rel_path: nested.clone() });
        }
        let mut objects: Vec<ObjectSpec> = sizes
            .into_iter()
            .map(|(rel_path, size)| ObjectSpec { sha256: hashes.remove(&rel_path), rel_path, size })
            .collect();
        objects.sort_by(|a, b| (a.rank(), &a.rel_path).cmp(&(b.rank(), &b.rel_path)));
        Ok(objects)
    }

    /// A block that cannot be planned, found after its meta.json was read: it keeps its place in
    /// its group's order, and fails there.
    pub fn defective(dir: &str, meta: RawMeta, defect: Failure, grouping: &Grouping) -> Self {
        let group = meta.meta.group_key(dir, grouping);
        let block = SourceBlock {
            dir: dir.to_string(),
            summary: MetaSummary::of(&meta),
            meta: HeldMeta::new(meta.bytes),
            group,
            markers: Markers::default(),
            objects: Vec::new(),
            markers_to_copy: Vec::new(),
            target_listing: None,
            defect: None,
            late_behind: None,
            run: 0,
            meta_modified: None,
        };
        block.with_defect(defect)
    }

    /// This block, found unfit to copy: nothing of it is copied, and it fails in its place.
    pub fn with_defect(self, defect: Failure) -> Self {
        SourceBlock { defect: Some(defect), objects: Vec::new(), markers_to_copy: Vec::new(), ..self }
    }

    /// The block's place in its commit queue (see [`OrderKey`]).
    pub fn order_key(&self) -> OrderKey {
        (self.summary.min_time, self.summary.ulid, xxhash_rust::xxh64::xxh64(self.dir.as_bytes(), 0))
    }

    /// Bytes of all objects but meta.json.
    pub fn total_bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }

    /// The bucket path of an object of this block.
    pub fn path(&self, rel_path: &str) -> Path {
        block_path(&self.dir, rel_path)
    }
}

/// The bucket path of block folder `dir` (`<ULID>` or `<tenant>/<ULID>`), joined as listed.
pub(crate) fn folder_path(dir: &str) -> Path {
    Path::parse(dir).unwrap_or_else(|_| Path::from(dir))
}

/// The bucket path of `rel_path` inside block folder `dir`. Listed names are already in
/// object_store's encoded form, so they are joined as they are rather than encoded twice.
pub(crate) fn block_path(dir: &str, rel_path: &str) -> Path {
    Path::parse(format!("{dir}/{rel_path}"))
        .unwrap_or_else(|_| Path::from_iter(std::iter::once(dir).chain(rel_path.split('/'))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::meta::parse_meta;

    const ULID: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG1";

    fn raw(files: &str) -> RawMeta {
        let json = format!(
            r#"{{"ulid":"{ULID}","minTime":0,"maxTime":1,"version":1,"thanos":{{"labels":{{"a":"b"}},"files":[{files}]}}}}"#
        );
        parse_meta(ULID, json.into()).unwrap()
    }

    fn listing(items: &[(&str, u64)]) -> Vec<(String, u64)> {
        items.iter().map(|(p, s)| (p.to_string(), *s)).collect()
    }

    #[test]
    fn orders_chunks_index_then_rest_and_skips_meta_and_markers() {
        let l = listing(&[
            ("tombstones", 1),
            ("index", 2),
            ("meta.json", 3),
            ("chunks/000002", 4),
            ("deletion-mark.json", 5),
            ("chunks/000001", 6),
        ]);
        let b = SourceBlock::plan(ULID, raw(""), l, &Grouping::default());
        assert_eq!(b.defect, None);
        let order: Vec<_> = b.objects.iter().map(|o| o.rel_path.as_str()).collect();
        assert_eq!(order, ["chunks/000001", "chunks/000002", "index", "tombstones"]);
        assert!(b.markers.deletion);
        let marks: Vec<_> = b.markers_to_copy.iter().map(|o| o.rel_path.as_str()).collect();
        assert_eq!(marks, ["deletion-mark.json"], "copied only with --copy-markers, and not in move mode");
        assert_eq!(b.total_bytes(), 13);
        assert_eq!(b.path("chunks/000001").as_ref(), format!("{ULID}/chunks/000001"));
    }

    #[test]
    fn checks_listed_files_against_the_source() {
        let upper = "AA".repeat(32);
        let files = format!(
            r#"{{"rel_path":"index","size_bytes":2,"hash":{{"hashFunc":"SHA256","value":"{upper}"}}}},{{"rel_path":"meta.json"}}"#
        );
        let files = files.as_str();
        let b = SourceBlock::plan(ULID, raw(files), listing(&[("index", 2)]), &Grouping::default());
        assert_eq!(b.objects[0].sha256, Some(Sha256Digest([0xaa; 32])));
        assert_eq!(b.objects[0].sha256.unwrap().to_string(), "aa".repeat(32), "printed in lower case");
        let defect = |l: &[(&str, u64)], files: &str| {
            let b = SourceBlock::plan(ULID, raw(files), listing(l), &Grouping::default());
            assert!(b.objects.is_empty(), "a defective block has nothing to copy");
            b.defect.expect("defective").error
        };
        assert!(defect(&[("index", 3)], files).contains("index has 3 bytes in the bucket, but meta.json lists 2"));
        assert!(defect(&[], files).contains("lists index, which is not in the block folder"));
        assert!(defect(&[("chunks/000001", 1)], "").contains("has no index"));
        let escaping = r#"{"rel_path":"../other/index","size_bytes":2}"#;
        assert!(defect(&[("index", 2)], escaping).contains("unusable object path \"../other/index\""));
        let short = r#"{"rel_path":"index","size_bytes":2,"hash":{"hashFunc":"SHA256","value":"aa"}}"#;
        assert!(defect(&[("index", 2)], short).contains("index with a SHA256 that is not 64 hex digits: \"aa\""));
        let nested = defect(&[("index", 2), ("chunks/sub/000001", 1)], "");
        assert!(nested.contains("chunks/sub/000001 is in a folder under chunks/"), "{nested}");
    }

    #[test]
    fn paths_that_leave_the_block_folder_in_any_spelling_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a//b",
            "./index",
            "chunks/../../x",
            "%2E%2E/x",
            "chunks/%2e",
            "a\\..\\b",
            "a%5Cb",
            "a%00b",
        ] {
            assert!(!is_contained(bad), "{bad:?} must be refused");
        }
        for good in ["index", "chunks/000001", "tombstones", "a%20b", "..index"] {
            assert!(is_contained(good), "{good:?} is fine");
        }
    }
}
