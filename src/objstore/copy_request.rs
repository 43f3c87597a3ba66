//! What the providers' server-side copies share: an object's name in its bucket, a failed copy
//! request, its retries, and what the engine makes of a failure.

use std::future::Future;
use std::time::{Duration, Instant};

use bucketflow_dataflows::ServerSideError;
use object_store::path::Path;

use super::http::Retries;

/// The engine's `path` under a bucket's `prefix`, as object_store's prefixed stores join them:
/// where the object is in the bucket itself.
pub(super) fn under(prefix: &Path, path: &Path) -> Path {
    Path::from_iter(prefix.parts().chain(path.parts()))
}

/// A failed request of a server-side copy. `status` is the HTTP status (or, for S3, the one an
/// error code in a 200 answer stands for); `None` when no answer came.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {}{message}", status.map(|s| format!("Server returned non-2xx status code: {s}: ")).unwrap_or_default())]
pub struct CopyRequestError {
    pub what: String,
    pub status: Option<u16>,
    pub message: String,
}

impl CopyRequestError {
    /// No answer, a 5xx, a timeout or throttling.
    pub fn transient(&self) -> bool {
        self.status.is_none_or(|s| s >= 500 || s == 408 || s == 429)
    }

    /// As the engine sees it: a status in `refused` (the target's credentials cannot read the
    /// source; no such copy here) is the provider refusing server-side copies, a 404 a missing
    /// object, anything else a failure of this copy.
    pub fn into_server_side(self, store: &'static str, path: &Path, refused: &[u16]) -> ServerSideError {
        let status = self.status;
        let (path, source) = (path.to_string(), Box::new(self));
        match status {
            Some(s @ (401 | 403)) if refused.contains(&s) => {
                ServerSideError::Refused(object_store::Error::PermissionDenied { path, source })
            }
            Some(s) if refused.contains(&s) => ServerSideError::Refused(object_store::Error::Generic { store, source }),
            Some(404) => ServerSideError::Failed(object_store::Error::NotFound { path, source }),
            _ => ServerSideError::Failed(object_store::Error::Generic { store, source }),
        }
    }
}

/// Runs `once` until it succeeds, fails for good, or `retries` run out (in number or time), with
/// exponential backoff from 100 ms to 15 s; `what` names the request in the debug log.
pub async fn retrying<T, F, Fut>(retries: &Retries, what: &str, mut once: F) -> Result<T, CopyRequestError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CopyRequestError>>,
{
    let started = Instant::now();
    let mut tries = 0;
    loop {
        match once().await {
            Err(error) if error.transient() && tries < retries.retries && started.elapsed() < retries.retry_timeout => {
                let wait = Duration::from_millis(100).saturating_mul(1 << tries.min(8)).min(Duration::from_secs(15));
                tries += 1;
                tracing::debug!(what, attempt = tries, %error, "server-side copy request failed; retrying");
                tokio::time::sleep(wait).await;
            }
            result => return result,
        }
    }
}
