//! Errors of reading a bucket's blocks.

use object_store::path::Path;

/// Why a bucket's block folders or a block's small objects (meta.json, markers) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Listing the bucket root or a tenant folder failed.
    #[error("listing the source bucket")]
    List(#[source] object_store::Error),
    /// Reading a small object, such as a meta.json or a marker, failed.
    #[error("reading {path}")]
    Read {
        /// The object that could not be read.
        path: Path,
        /// The store's error.
        source: object_store::Error,
    },
    /// A small object, such as a meta.json or a marker, is larger than bucketflow reads whole.
    #[error("{path} has {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// The object that is too large.
        path: Path,
        /// Its size in bytes.
        size: u64,
        /// The largest size read for such an object, in bytes.
        limit: usize,
    },
    /// Listing the objects of one block folder failed.
    #[error("listing block folder {block}")]
    ListBlock {
        /// The block folder: its ULID, under its tenant in a tenants bucket.
        block: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// The tenant mapping renames a tenant to the name of a source tenant that keeps its own.
    #[error("--tenant-mapping writes tenant {from:?} as {to:?}, which is also a tenant of the source that keeps its name: the two would mix in the target")]
    TenantCollision {
        /// The source tenant that is renamed.
        from: String,
        /// Its name in the target, which another source tenant also has.
        to: String,
    },
}
