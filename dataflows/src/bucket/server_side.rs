//! Copies that the provider makes itself, without an object's bytes passing through bucketflow.
//!
//! Two kinds exist. Within one store (one bucket under two prefixes) object_store's own `copy`
//! does it: [`SameStore`]. Between two buckets of one provider endpoint, object_store has no
//! copy (it only copies within the bucket a store was built for), so the embedding program
//! brings its own, as a [`ServerSideCopy`]; the engine only asks it to copy a path, and learns
//! whether it did, whether it cannot for this object, or whether the provider refuses such
//! copies altogether. Either way the copier checks the target object afterwards as it checks a
//! streamed one, so a server-side copy is trusted no more than a stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::telemetry::{EngineMetrics, RequestLabels, Side};

/// Why a server-side copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ServerSideError {
    /// The provider refuses server-side copies between these two buckets: the target's
    /// credentials cannot read the source (AccessDenied), or it has no such copy. The engine
    /// streams this object and every later one, and says so once.
    #[error("the provider refused a server-side copy")]
    Refused(#[source] object_store::Error),
    /// This one object cannot be copied server-side (too large for the copy at hand, say); it is
    /// streamed, and later objects are still offered for a server-side copy.
    #[error("not copied server-side: {0}")]
    Unsuitable(String),
    /// The copy failed; like a failed stream, it is tried again when the error is transient.
    #[error(transparent)]
    Failed(object_store::Error),
}

/// A copy of an object from the source bucket to the same path of the target bucket, made by the
/// provider. Paths are the engine's: relative to the source and the target store as the engine
/// was given them, so an implementation adds each bucket's own prefix.
#[async_trait]
pub trait ServerSideCopy: std::fmt::Debug + Send + Sync + 'static {
    /// Copies the source object at `path`, `size` bytes long, to `path` in the target. It
    /// returns once the provider says the copy is complete.
    async fn copy(&self, path: &Path, size: u64) -> Result<(), ServerSideError>;
}

/// Source and target are one store (same endpoint, bucket and credentials) under two prefixes:
/// objects are copied by the store itself, without passing through bucketflow.
#[derive(Clone)]
pub struct SameStore {
    /// The one store, without either prefix, that holds both source and target.
    pub store: Arc<dyn ObjectStore>,
    /// The source's prefix within `store`.
    pub source_prefix: Path,
    /// The target's prefix within `store`.
    pub target_prefix: Path,
}

impl std::fmt::Debug for SameStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SameStore({}: {} -> {})", self.store, self.source_prefix, self.target_prefix)
    }
}

fn join(prefix: &Path, path: &Path) -> Path {
    Path::from_iter(prefix.parts().chain(path.parts()))
}

/// The largest object a store copies with one request: S3's CopyObject refuses more than 5 GiB
/// (with a 400 that would fail the block for good). object_store issues no multipart copy, so a
/// larger object is streamed, part by part, like a copy between two stores.
pub(crate) const MAX_SERVER_SIDE_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// [`SameStore`] as a server-side copy, up to `max_size` bytes an object.
#[derive(Debug)]
pub(crate) struct SameStoreCopy {
    pub(crate) same: SameStore,
    pub(crate) max_size: u64,
}

impl SameStoreCopy {
    pub(crate) fn new(same: SameStore) -> Self {
        SameStoreCopy { same, max_size: MAX_SERVER_SIDE_COPY }
    }
}

#[async_trait]
impl ServerSideCopy for SameStoreCopy {
    async fn copy(&self, path: &Path, size: u64) -> Result<(), ServerSideError> {
        if size > self.max_size {
            return Err(ServerSideError::Unsuitable(format!(
                "{size} bytes is more than one copy request takes ({} bytes)",
                self.max_size
            )));
        }
        let (from, to) = (join(&self.same.source_prefix, path), join(&self.same.target_prefix, path));
        self.same.store.copy(&from, &to).await.map_err(|error| match error {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. } => ServerSideError::Refused(error),
            error => ServerSideError::Failed(error),
        })
    }
}

/// A server-side copy counted as a `copy` request to the target, like the copies of a store the
/// engine instruments.
pub(crate) struct CountedCopy {
    inner: Arc<dyn ServerSideCopy>,
    metrics: EngineMetrics,
}

impl std::fmt::Debug for CountedCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CountedCopy").field(&self.inner).finish()
    }
}

impl CountedCopy {
    pub(crate) fn new(inner: Arc<dyn ServerSideCopy>, metrics: EngineMetrics) -> Self {
        CountedCopy { inner, metrics }
    }
}

#[async_trait]
impl ServerSideCopy for CountedCopy {
    async fn copy(&self, path: &Path, size: u64) -> Result<(), ServerSideError> {
        let labels = RequestLabels { bucket: Side::Target, operation: "copy" };
        self.metrics.requests.get_or_create(&labels).inc();
        let started = Instant::now();
        let result = self.inner.copy(path, size).await;
        self.metrics.request_duration.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
        result
    }
}

/// The copier's server-side copy, until the provider refuses one: from then on, every object is
/// streamed, for the rest of the process (a sidecar's later runs too; a restart tries again).
/// Until one copy has succeeded, a copy that fails for good (a 400 from a server that copies
/// only within a bucket, say) counts as a refusal too: the buckets may simply not allow it.
#[derive(Debug, Clone)]
pub(crate) struct ServerSide {
    copy: Arc<dyn ServerSideCopy>,
    refused: Arc<AtomicBool>,
    succeeded: Arc<AtomicBool>,
}

impl ServerSide {
    pub(crate) fn new(copy: Arc<dyn ServerSideCopy>) -> Self {
        ServerSide { copy, refused: Arc::new(AtomicBool::new(false)), succeeded: Arc::new(AtomicBool::new(false)) }
    }

    /// Notes that a copy succeeded: from now on, a copy's failure is the object's.
    pub(crate) fn succeeded(&self) {
        self.succeeded.store(true, Ordering::Relaxed);
    }

    /// Whether a server-side copy has succeeded yet.
    pub(crate) fn proven(&self) -> bool {
        self.succeeded.load(Ordering::Relaxed)
    }

    /// The copy, unless the provider has refused one before.
    pub(crate) fn usable(&self) -> Option<&dyn ServerSideCopy> {
        (!self.refused.load(Ordering::Relaxed)).then_some(&*self.copy)
    }

    /// Notes that the provider refused a copy; the first refusal is logged, once for the process,
    /// with the object and the provider's answer, so that an operator can grant the target's
    /// credentials read access to the source (or pass `--server-side-copy never`).
    pub(crate) fn refuse(&self, path: &Path, error: &(dyn std::error::Error + 'static)) {
        if !self.refused.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %path,
                error = %crate::model::failure::error_chain(error),
                "the provider refused a server-side copy; every object is streamed through bucketflow from now on"
            );
        }
    }
}
