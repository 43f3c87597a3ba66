//! Errors of reading a bucket's blocks.

use object_store::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("listing the source bucket")]
    List(#[source] object_store::Error),
    #[error("reading {path}")]
    Read { path: Path, source: object_store::Error },
    #[error("{path} has {size} bytes, more than the {limit}-byte limit")]
    TooLarge { path: Path, size: u64, limit: usize },
    #[error("listing block folder {block}")]
    ListBlock { block: String, source: object_store::Error },
    #[error("--tenant-mapping writes tenant {from:?} as {to:?}, which is also a tenant of the source that keeps its name: the two would mix in the target")]
    TenantCollision { from: String, to: String },
}
