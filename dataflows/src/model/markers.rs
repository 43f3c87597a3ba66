//! Thanos marker files that live beside meta.json in a block folder.
//!
//! Markers are not part of a block's data: they are never copied by default (with
//! `--copy-markers`, before meta.json, or onto a block already replicated), and a deletion mark
//! can exclude a block from replication (`--ignore-marked-for-deletion`).

/// Written by the compactor or `thanos tools bucket mark` before a block is deleted.
pub(crate) const DELETION_MARK: &str = "deletion-mark.json";
/// Asks the compactor not to compact the block.
pub(crate) const NO_COMPACT_MARK: &str = "no-compact-mark.json";
/// Asks the compactor not to downsample the block.
pub(crate) const NO_DOWNSAMPLE_MARK: &str = "no-downsample-mark.json";

/// Every marker file name, as found at a block folder's root.
pub(crate) const ALL_MARKERS: [&str; 3] = [DELETION_MARK, NO_COMPACT_MARK, NO_DOWNSAMPLE_MARK];

/// True when `rel_path` (relative to the block folder) is a marker file.
pub(crate) fn is_marker(rel_path: &str) -> bool {
    ALL_MARKERS.contains(&rel_path)
}

/// The markers found in a block folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Markers {
    pub deletion: bool,
    pub no_compact: bool,
    pub no_downsample: bool,
    /// When the deletion mark was readable: its `deletion_time` (Unix seconds). A partial or
    /// corrupt mark leaves this empty, and Thanos then keeps the block.
    pub deletion_time: Option<i64>,
    /// The deletion mark is one bucketflow's move mode wrote (its `details` say so): it marks the
    /// source's copy of a block that is safe in the target, and is never copied there.
    #[serde(default)]
    pub deletion_by_move: bool,
}

/// The content of a Thanos `deletion-mark.json` (version 1): read to honour
/// `--ignore-marked-for-deletion`, and written into the source by move mode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct DeletionMark {
    /// The block's ULID.
    pub id: ulid::Ulid,
    /// When the block may be deleted, in Unix seconds.
    pub deletion_time: i64,
    /// Always 1.
    pub version: u32,
    /// Who marked the block, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl DeletionMark {
    /// The only mark version Thanos writes.
    pub(crate) const VERSION: u32 = 1;
}

/// The `details` of the deletion marks move mode writes.
pub(crate) const MOVE_MODE_DETAILS: &str = "replicated by bucketflow --mark-source-for-deletion";

/// A deletion mark larger than this is not a deletion mark.
pub(crate) const MAX_MARKER_BYTES: usize = 64 * 1024;

impl Markers {
    /// Records `rel_path` if it is a marker; returns whether it was one.
    pub fn note(&mut self, rel_path: &str) -> bool {
        match rel_path {
            DELETION_MARK => self.deletion = true,
            NO_COMPACT_MARK => self.no_compact = true,
            NO_DOWNSAMPLE_MARK => self.no_downsample = true,
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_only_root_markers() {
        let mut m = Markers::default();
        assert!(m.note("deletion-mark.json"));
        assert!(!m.note("chunks/deletion-mark.json"));
        assert!(!m.note("index"));
        assert_eq!(m, Markers { deletion: true, ..Markers::default() });
        assert!(is_marker(NO_COMPACT_MARK) && !is_marker("meta.json"));
    }
}
