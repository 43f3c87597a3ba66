//! Copying one object from the source to the target, verified.
//!
//! An object is streamed: objects up to the part size are read into one buffer and written with a
//! single PUT; larger ones go through a multipart upload, one part buffer at a time. So a copy
//! holds at most about one part in memory, and the process at most `concurrency x part size`
//! (promise 5). Sizes are always checked, and SHA256 where meta.json lists one, before an upload
//! is completed: a wrong source object never becomes a right-looking target object.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::bandwidth::Bandwidth;
use super::listing::list_block_objects;
use super::server_side::{ServerSide, ServerSideCopy, ServerSideError};
use crate::model::block::{block_path, folder_path, ObjectSpec, Seen, Sha256Digest, TargetListing};
use crate::model::failure::{error_chain, Failure, FailureCause};
use crate::telemetry::{CopyMethod, Telemetry};

/// Default multipart part size: above S3's 5 MiB minimum, small enough to bound memory.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

/// The most objects (meta.json aside) of a block that its re-check before meta.json reads by a
/// HEAD each; a block of more is re-checked by its folders' two listings. A 2-hour block from a
/// sidecar has an index and one to three chunk files. On S3 a LIST costs as much as twelve
/// HEADs, on GCS and Azure a listing is also the dearer class, and a server answers a HEAD with
/// one lookup where a listing walks a folder.
const RECHECK_BY_HEADS_MAX: usize = 4;

/// How often a failed object copy is tried again, and for how long at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries of a transiently failed object copy after its first attempt.
    pub retries: usize,
    /// Time after which no further retry of an object copy (or of one part) starts, counted
    /// from the attempt's start, once it has its copy slot (or its part buffer).
    pub timeout: Duration,
    /// The longest wait before the first retry; it doubles with each retry after that.
    pub initial_backoff: Duration,
    /// The cap on the longest wait before a retry.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 10,
            timeout: Duration::from_secs(180),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with full jitter, so that many copies failing together (a throttling
    /// store) do not retry in lockstep.
    fn backoff(&self, attempt: usize) -> Duration {
        let ceiling = self.initial_backoff.saturating_mul(1u32 << attempt.min(16) as u32).min(self.max_backoff);
        ceiling.mul_f64(rand::random_range(0.0..=1.0))
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    #[error("reading {path} from the source")]
    Source { path: Path, source: object_store::Error },
    #[error("{operation} {path} in the target")]
    Target { operation: &'static str, path: Path, source: object_store::Error },
    #[error("{path}: the source object has {actual} bytes, expected {expected}")]
    SourceSize { path: Path, expected: u64, actual: u64 },
    #[error("{path}: the source object's SHA256 is {actual}, meta.json lists {expected}")]
    SourceHash { path: Path, expected: String, actual: String },
    #[error("writing {path} in the target")]
    WriteMeta { path: Path, source: object_store::Error },
    #[error("copying {path} server-side")]
    ServerSide { path: Path, source: object_store::Error },
    #[error("{path}: the target does not hold the expected object after a server-side copy")]
    ServerSideMismatch { path: Path },
    /// A part read again to be sent again is not the bytes the object's check saw the first
    /// time: the object is copied again from its start, under the full check.
    #[error("{path}: part {part} read again from the source differs from its first read")]
    PartChanged { path: Path, part: usize },
    /// One part failed on every try: the upload is given up, and the object not tried again
    /// (its part had the object's retries already).
    #[error("{path}: part {part} failed on every try")]
    PartSpent { path: Path, part: usize, source: Box<CopyError> },
    /// The run was stopped while the request waited for a slot: it was never sent.
    #[error("{path}: the run was stopped before the request could start")]
    Interrupted { path: Path },
}

impl CopyError {
    /// The failure this error stands for, with its error chain.
    pub(crate) fn failure(&self) -> Failure {
        use FailureCause::*;
        let cause = match self {
            CopyError::Source { .. } => Source,
            CopyError::Target { .. } | CopyError::WriteMeta { .. } | CopyError::ServerSide { .. } => Target,
            CopyError::SourceSize { .. }
            | CopyError::SourceHash { .. }
            | CopyError::ServerSideMismatch { .. }
            | CopyError::PartChanged { .. } => Verification,
            CopyError::PartSpent { source, .. } => source.failure().cause,
            CopyError::Interrupted { .. } => Interrupted,
        };
        Failure::new(cause, error_chain(self))
    }

    /// Whether trying again can help. A missing or forbidden object, or a request the store
    /// does not support, fails the block at once; everything else (5xx, throttling, timeouts,
    /// resets, and reads cut short, which show as a size or hash mismatch) is retried.
    pub(crate) fn is_transient(&self) -> bool {
        let store_error = match self {
            CopyError::Source { source, .. }
            | CopyError::Target { source, .. }
            | CopyError::ServerSide { source, .. }
            | CopyError::WriteMeta { source, .. } => source,
            CopyError::SourceSize { .. }
            | CopyError::SourceHash { .. }
            | CopyError::ServerSideMismatch { .. }
            | CopyError::PartChanged { .. } => return true,
            CopyError::PartSpent { .. } | CopyError::Interrupted { .. } => return false,
        };
        let permanent = matches!(
            store_error,
            object_store::Error::NotFound { .. }
                | object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
                | object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. }
                | object_store::Error::InvalidPath { .. }
        );
        // A request the store refused as wrong (a 4xx) fails the same way again, but for a
        // timeout (408, and S3's 400 `RequestTimeout`: a body it waited for in vain), a body
        // damaged in transit (S3's 400 `BadDigest`, MinIO's `XAmzContentChecksumMismatch`, or
        // `XAmzContentSHA256Mismatch`: what arrived does not match the checksum or the signature's
        // hash sent with it) and throttling (429). A damaged body is sent again at most
        // `--retries` times, like any transient failure.
        let again = |s: u16| {
            let chain = || error_chain(store_error);
            let code = |code: &str| chain().contains(&format!("<Code>{code}</Code>"));
            s == 408 || s == 429 || (s == 400 && IN_TRANSIT.iter().any(|c| code(c)))
        };
        let refused = http_status(store_error).is_some_and(|s| (400..500).contains(&s) && !again(s));
        !permanent && !refused
    }
}

/// The codes of S3's 400s that tell of a request's trip rather than of the request: a body the
/// server waited for in vain, and a body damaged on its way.
const IN_TRANSIT: [&str; 4] =
    ["RequestTimeout", "BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"];

/// The HTTP status a store answered with, found in an error's chain. object_store keeps it in a
/// type of its own that it does not export, so it is read from that error's message, which
/// names it as `non-2xx status code: <code>`.
pub fn http_status(error: &(dyn std::error::Error + 'static)) -> Option<u16> {
    static STATUS: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"non-2xx status code: (\d{3})").expect("a valid regex"));
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(code) = STATUS.captures(&error.to_string()).and_then(|c| c[1].parse().ok()) {
            return Some(code);
        }
        current = error.source();
    }
    None
}

/// How much of a local file one read takes: object_store reads a file 8 KiB at a time, each read
/// a blocking task of its own, which costs more CPU than the copy itself.
const FILE_PIECE: usize = 1024 * 1024;

/// The bytes of a GET as a stream: a local file read a [`FILE_PIECE`] at a time, anything else
/// as the store streams it.
pub(super) fn read_in_pieces(
    result: object_store::GetResult,
) -> futures::stream::BoxStream<'static, object_store::Result<Bytes>> {
    use std::io::{Read, Seek, SeekFrom};
    let range = result.range.clone();
    let (file, path) = match result.payload {
        object_store::GetResultPayload::File(file, path) => (file, path),
        object_store::GetResultPayload::Stream(stream) => return stream,
    };
    let read_err = move |path: &std::path::Path, source: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: format!("reading {}: {source}", path.display()).into(),
    };
    let state = (Some((file, path)), range.start, range.end);
    futures::stream::try_unfold(state, move |(file, at, end)| async move {
        let Some((mut file, path)) = file.filter(|_| at < end) else { return Ok(None) };
        let want = (end - at).min(FILE_PIECE as u64) as usize;
        let read = tokio::task::spawn_blocking(move || {
            let mut piece = vec![0u8; want];
            let read = file.seek(SeekFrom::Start(at)).and_then(|_| file.read_exact(&mut piece));
            (file, path, piece, read)
        })
        .await
        .map_err(|e| object_store::Error::JoinError { source: e })?;
        let (file, path, piece, result) = read;
        result.map_err(|e| read_err(&path, e))?;
        Ok(Some((Bytes::from(piece), (Some((file, path)), at + want as u64, end))))
    })
    .boxed()
}

/// S3 takes at most this many parts in one multipart upload.
const MAX_PARTS: u64 = 10_000;

/// The part size for an object of `size` bytes: `configured`, grown where the object would
/// otherwise need more than [`MAX_PARTS`] parts, which S3 refuses only after most of the object
/// was sent. A grown part raises that copy's share of memory: a 64 GiB object takes 6.4 MiB parts.
pub(crate) fn part_size_for(size: u64, configured: usize) -> usize {
    let needed = size.div_ceil(MAX_PARTS);
    usize::try_from(needed).unwrap_or(usize::MAX).max(configured)
}

/// What ensuring an object did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectDone {
    /// False when the target already held an intact copy.
    pub copied: bool,
    pub bytes: u64,
    /// The target's ETag after the copy, used to notice a replaced object at commit time.
    pub e_tag: Option<String>,
}

/// A target's uploads by part number: the store under the bucket's prefix, as the engine's
/// target store writes it (see [`super::parts`]).
#[derive(Clone)]
pub struct PartStore(pub Arc<dyn object_store::multipart::MultipartStore>);

impl std::fmt::Debug for PartStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PartStore")
    }
}

/// Copies objects between two stores under one process-wide limit of objects in flight.
#[derive(Debug, Clone)]
pub(crate) struct Copier {
    pub source: Arc<dyn ObjectStore>,
    pub target: Arc<dyn ObjectStore>,
    pub part_size: usize,
    pub retry: RetryPolicy,
    /// The provider's own copy, while it has not refused one.
    pub(crate) server_side: Option<ServerSide>,
    /// The target's uploads by part number, where the store has them: a failed part is then
    /// sent again alone, and the upload kept.
    pub(crate) parts: Option<PartStore>,
    pub telemetry: Telemetry,
    /// Once cancelled, no new copy starts and no failure is retried.
    pub cancel: CancellationToken,
    /// The process's bandwidth limit, shared by every copy.
    pub bandwidth: Bandwidth,
    permits: Arc<Semaphore>,
    /// Part buffers in memory across the process, one permit a part: as many as objects may be
    /// in flight, so that `concurrency x part size` bounds memory however the parts are spread.
    /// A large object uploads several parts at once only with permits no other copy holds.
    pub(super) part_budget: Arc<Semaphore>,
    /// Set once the target refused a re-check's HEAD for want of permission (a credential that
    /// may write and list but not read): from then on, blocks are re-checked by listings.
    heads_refused: Arc<AtomicBool>,
    /// Re-checks in flight across the process, apart from the copies: a permit a HEAD, or a
    /// round of a block's listings (its two folders listed at once), as many permits as objects
    /// may be copied at once. Without it, a resumed run whose blocks are all in place would
    /// re-check four blocks of every group at once, a connection each request.
    recheck_permits: Arc<Semaphore>,
}

/// What follows a failed try.
pub(super) enum AfterFailure {
    /// Another try, after this wait.
    Retry(Duration),
    /// None: the failure was transient, but the retries or the attempt's time are spent.
    Spent,
    /// None: the failure is permanent, or the run was cancelled.
    Stop,
}

/// Parts of one object being uploaded at once, at most, when the part budget allows.
pub(super) const PARTS_IN_FLIGHT: usize = 4;

impl Copier {
    pub(crate) fn new(
        source: Arc<dyn ObjectStore>,
        target: Arc<dyn ObjectStore>,
        concurrency: usize,
        part_size: usize,
    ) -> Self {
        Copier {
            source,
            target,
            part_size: part_size.max(1),
            retry: RetryPolicy::default(),
            server_side: None,
            parts: None,
            telemetry: Telemetry::default(),
            cancel: CancellationToken::new(),
            bandwidth: Bandwidth::default(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            part_budget: Arc::new(Semaphore::new(concurrency.max(1))),
            heads_refused: Arc::new(AtomicBool::new(false)),
            recheck_permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    pub(crate) fn with_retry(self, retry: RetryPolicy) -> Self {
        Copier { retry, ..self }
    }

    pub(crate) fn with_server_side(self, copy: Option<Arc<dyn ServerSideCopy>>) -> Self {
        Copier { server_side: copy.map(ServerSide::new), ..self }
    }

    pub(crate) fn with_parts(self, parts: Option<PartStore>) -> Self {
        Copier { parts, ..self }
    }

    pub(crate) fn with_telemetry(self, telemetry: Telemetry, cancel: CancellationToken) -> Self {
        Copier { telemetry, cancel, ..self }
    }

    pub(crate) fn with_bandwidth(self, bandwidth: Bandwidth) -> Self {
        Copier { bandwidth, ..self }
    }

    /// Makes sure the target holds an intact copy of `spec` at `path`: skips it when the target
    /// already has the right size (and hash, where listed), copies it otherwise.
    /// Transient failures are tried again with backoff, within the retry policy; the permit is
    /// released while waiting, so a failing object does not hold a slot others could use.
    pub(crate) async fn ensure(&self, path: &Path, spec: &ObjectSpec) -> Result<ObjectDone, CopyError> {
        self.ensure_seen(path, spec, Seen::Unknown).await
    }

    /// [`Copier::ensure`], trusting what a listing of the target just `seen` of the object on the
    /// first attempt (a retry asks the target again).
    pub(crate) async fn ensure_seen(
        &self,
        path: &Path,
        spec: &ObjectSpec,
        seen: Seen,
    ) -> Result<ObjectDone, CopyError> {
        let mut seen = Some(seen);
        let done = self
            .retrying_with(path, Some(&self.permits), || {
                let seen = seen.take().unwrap_or(Seen::Unknown);
                async move {
                    let in_flight = &self.telemetry.metrics.objects_in_flight;
                    in_flight.inc();
                    let result = self.ensure_once(path, spec, seen).await;
                    in_flight.dec();
                    result
                }
            })
            .await?;
        self.telemetry.progress.bytes_done.fetch_add(spec.size, std::sync::atomic::Ordering::Relaxed);
        Ok(done)
    }

    /// Runs `attempt` until it succeeds, fails permanently, or the retry policy is spent.
    pub(crate) async fn retrying<T, F, Fut>(&self, path: &Path, attempt: F) -> Result<T, CopyError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CopyError>>,
    {
        self.retrying_with(path, None, attempt).await
    }

    /// [`Copier::retrying`], each attempt holding a permit of `permits` while it runs. The
    /// retry timeout counts from each attempt's start, once it has its permit: waiting for a
    /// permit behind other copies is no failure of this one. The permit is let go while the
    /// attempt waits to be tried again, so a failing object does not hold a slot others could use.
    pub(crate) async fn retrying_with<T, F, Fut>(
        &self,
        path: &Path,
        permits: Option<&Semaphore>,
        mut attempt: F,
    ) -> Result<T, CopyError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, CopyError>>,
    {
        let mut tries = 0;
        loop {
            let permit = match permits {
                // A stopped run sends no request that is still waiting for a slot: after a
                // stop, a queue of re-checks or copies would otherwise drain one slot at a
                // time and outlast the grace period. A free slot is still taken.
                Some(permits) => tokio::select! {
                    biased;
                    permit = permits.acquire() => Some(permit.expect("the copy semaphore is never closed")),
                    () = self.cancel.cancelled() => return Err(CopyError::Interrupted { path: path.clone() }),
                },
                None => None,
            };
            let deadline = Instant::now() + self.retry.timeout;
            let result = attempt().await;
            drop(permit);
            match result {
                Err(error) => match self.after_failure(path, &error, tries, deadline) {
                    AfterFailure::Retry(wait) => {
                        tries += 1;
                        if !self.wait_to_retry(wait).await {
                            return Err(error);
                        }
                    }
                    AfterFailure::Spent | AfterFailure::Stop => return Err(error),
                },
                done => return done,
            }
        }
    }

    /// Waits `wait` before a retry: false when the run stops meanwhile, and nothing is tried
    /// again, as a stop before the wait would have decided ([`Copier::after_failure`]).
    pub(super) async fn wait_to_retry(&self, wait: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            () = self.cancel.cancelled() => false,
        }
    }

    /// What follows the `tries`-th retry failing with `error`, an attempt that started with
    /// `deadline` ahead of it.
    pub(super) fn after_failure(
        &self,
        path: &Path,
        error: &CopyError,
        tries: usize,
        deadline: Instant,
    ) -> AfterFailure {
        if !error.is_transient() || self.cancel.is_cancelled() {
            return AfterFailure::Stop;
        }
        if tries >= self.retry.retries || Instant::now() >= deadline {
            return AfterFailure::Spent;
        }
        self.telemetry.metrics.retries.inc();
        tracing::warn!(%path, attempt = tries + 1, error = %error_chain(error), "request failed; retrying");
        AfterFailure::Retry(self.retry.backoff(tries).min(deadline.saturating_duration_since(Instant::now())))
    }

    async fn ensure_once(&self, path: &Path, spec: &ObjectSpec, seen: Seen) -> Result<ObjectDone, CopyError> {
        let intact = match seen {
            Seen::Absent => None,
            // Without a hash to compare, the listed size is all a HEAD would tell.
            Seen::Present { size, e_tag } if spec.sha256.is_none() => (size == spec.size).then_some(e_tag),
            Seen::Present { size, .. } if size != spec.size => None,
            Seen::Present { .. } | Seen::Unknown => self.target_intact(path, spec).await?,
        };
        if let Some(e_tag) = intact {
            return Ok(ObjectDone { copied: false, bytes: 0, e_tag });
        }
        if let Some(server_side) = &self.server_side {
            if let Some(done) = self.copy_server_side(server_side, path, spec).await? {
                self.telemetry.metrics.copied(CopyMethod::ServerSide, done.bytes);
                return Ok(done);
            }
        }
        let done = self.copy(path, spec).await?;
        self.telemetry.metrics.copied(CopyMethod::Stream, done.bytes);
        Ok(done)
    }

    /// Lets the provider copy the object, then checks the result like any other copy. `None`
    /// when the object is to be streamed instead: the provider refused this copy (and with it
    /// every later one), or cannot make it for this object.
    async fn copy_server_side(
        &self,
        server_side: &ServerSide,
        path: &Path,
        spec: &ObjectSpec,
    ) -> Result<Option<ObjectDone>, CopyError> {
        let Some(copy) = server_side.usable() else { return Ok(None) };
        match copy.copy(path, spec.size).await {
            Ok(()) => server_side.succeeded(),
            Err(error @ ServerSideError::Refused(_)) => {
                server_side.refuse(path, &error);
                return Ok(None);
            }
            Err(ServerSideError::Unsuitable(reason)) => {
                tracing::debug!(%path, %reason, "streaming an object the provider cannot copy itself");
                return Ok(None);
            }
            Err(ServerSideError::Failed(source)) => {
                let error = CopyError::ServerSide { path: path.clone(), source };
                // Before any copy has worked, one that fails for good says more about the two
                // buckets than about the object, unless the object is missing, which streaming
                // would find too.
                let missing =
                    matches!(&error, CopyError::ServerSide { source: object_store::Error::NotFound { .. }, .. });
                if !server_side.proven() && !error.is_transient() && !missing {
                    server_side.refuse(path, &error);
                    return Ok(None);
                }
                return Err(error);
            }
        }
        match self.target_intact(path, spec).await? {
            Some(e_tag) => Ok(Some(ObjectDone { copied: true, bytes: spec.size, e_tag })),
            None => Err(CopyError::ServerSideMismatch { path: path.clone() }),
        }
    }

    /// `Some(etag)` when the target holds `path` with the expected size, and the expected SHA256
    /// where one is listed (which means reading the object back).
    async fn target_intact(&self, path: &Path, spec: &ObjectSpec) -> Result<Option<Option<String>>, CopyError> {
        let head = match self.target.head(path).await {
            Ok(head) => head,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(CopyError::Target { operation: "checking", path: path.clone(), source }),
        };
        if head.size != spec.size {
            return Ok(None);
        }
        if let Some(expected) = &spec.sha256 {
            let actual = sha256_of(&*self.target, path).await.map_err(|source| CopyError::Target {
                operation: "reading back",
                path: path.clone(),
                source,
            })?;
            if &actual != expected {
                return Ok(None);
            }
        }
        Ok(Some(head.e_tag))
    }

    /// Copies `path` from the source, verifying size and hash before the upload completes.
    async fn copy(&self, path: &Path, spec: &ObjectSpec) -> Result<ObjectDone, CopyError> {
        let source_err = |source| CopyError::Source { path: path.clone(), source };
        let got = self.source.get(path).await.map_err(source_err)?;
        // A part read again must come from this version of the object.
        let pin = got.meta.e_tag.clone();
        let mut stream = read_in_pieces(got);
        let mut verifier = Verifier::new(path, spec);
        let e_tag = if spec.size as usize <= self.part_size {
            let _part = self.part_budget.acquire().await.expect("the part budget is never closed");
            let mut buffer = BytesMut::with_capacity(spec.size as usize);
            while let Some(chunk) = stream.try_next().await.map_err(source_err)? {
                self.bandwidth.admit(chunk.len()).await;
                verifier.update(&chunk)?;
                buffer.extend_from_slice(&chunk);
            }
            verifier.finish()?;
            let put = self.target.put(path, PutPayload::from(buffer.freeze())).await;
            put.map_err(|source| CopyError::Target { operation: "writing", path: path.clone(), source })?.e_tag
        } else {
            let part_size = part_size_for(spec.size, self.part_size);
            self.copy_multipart(path, pin, &mut stream, &mut verifier, part_size).await?
        };
        Ok(ObjectDone { copied: true, bytes: spec.size, e_tag })
    }

    /// The next chunk of a source object being read for a multipart upload. A read that fails
    /// or ends early is resumed where it stopped, by a ranged read, so that a failure at 90% of
    /// a large object re-sends what was not sent yet, not the whole object: the upload is kept.
    /// Resumes count against `--retries`; past them, the error is the copy's.
    pub(super) async fn next_chunk(
        &self,
        path: &Path,
        stream: &mut futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
        verifier: &Verifier<'_>,
        pin: Option<&str>,
        resumes: &mut usize,
    ) -> Result<Option<Bytes>, CopyError> {
        loop {
            let (read, size) = (verifier.seen, verifier.spec.size);
            let failure = match stream.next().await {
                Some(Ok(chunk)) => return Ok(Some(chunk)),
                None if read >= size => return Ok(None),
                // Cut short: the size check after the loop fails it when it cannot be resumed.
                None => None,
                Some(Err(source)) => Some(CopyError::Source { path: path.clone(), source }),
            };
            let resumable = failure.as_ref().is_none_or(CopyError::is_transient);
            if !resumable || *resumes >= self.retry.retries || self.cancel.is_cancelled() {
                return match failure {
                    Some(error) => Err(error),
                    None => Ok(None),
                };
            }
            *resumes += 1;
            self.telemetry.metrics.retries.inc();
            tracing::warn!(%path, at = read, of = size, "reading the source object stopped early; resuming where it stopped");
            // The rest must come from the version read so far (by its ETag, where known).
            let if_match = pin.map(str::to_string);
            let range = GetOptions { range: Some((read..size).into()), if_match, ..GetOptions::default() };
            let resumed = self.source.get_opts(path, range).await;
            *stream = read_in_pieces(resumed.map_err(|source| CopyError::Source { path: path.clone(), source })?);
        }
    }

    /// What the target holds of `objects` of block folder `dir`, just before its meta.json is
    /// written: each object's size and ETag, absent where it is gone. A block of a few objects is
    /// read by a HEAD of each (a HEAD is the cheap request class on S3, GCS and Azure, and cheap
    /// work for a server); a larger one by its folders' listings, whose count does not grow with
    /// the block. Tried again on transient failures.
    pub(crate) async fn recheck_target_block(
        &self,
        dir: &str,
        objects: &[ObjectSpec],
        concurrency: usize,
    ) -> Result<TargetListing, CopyError> {
        if objects.len() > RECHECK_BY_HEADS_MAX || self.heads_refused.load(Ordering::Relaxed) {
            return self.list_target_block(dir).await;
        }
        let head = |spec: &ObjectSpec| {
            let (rel_path, path) = (spec.rel_path.clone(), block_path(dir, &spec.rel_path));
            async move {
                let seen = self
                    .retrying_with(&path, Some(&self.recheck_permits), || async {
                        match self.target.head(&path).await {
                            Ok(meta) => Ok(Some((meta.size, meta.e_tag))),
                            Err(object_store::Error::NotFound { .. }) => Ok(None),
                            Err(source) => Err(CopyError::Target { operation: "checking", path: path.clone(), source }),
                        }
                    })
                    .await?;
                Ok(seen.map(|seen| (rel_path, seen)))
            }
        };
        let headed = futures::stream::iter(objects)
            .map(head)
            .buffer_unordered(concurrency.max(1))
            .try_filter_map(|seen| async move { Ok(seen) })
            .try_collect()
            .await;
        match headed {
            Err(CopyError::Target {
                source:
                    source @ (object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }),
                ..
            }) => {
                if !self.heads_refused.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %error_chain(&source), "the target refused a HEAD before a meta.json; blocks are re-checked by listings from now on");
                }
                self.list_target_block(dir).await
            }
            headed => headed,
        }
    }

    /// The objects of target block folder `dir`, by its folders' listings (tried again on transient
    /// failures).
    async fn list_target_block(&self, dir: &str) -> Result<TargetListing, CopyError> {
        let prefix = folder_path(dir);
        self.retrying_with(&prefix, Some(&self.recheck_permits), || async {
            let objects = list_block_objects(&*self.target, dir).await.map_err(|source| CopyError::Target {
                operation: "listing",
                path: prefix.clone(),
                source,
            })?;
            Ok(objects.into_iter().map(|(rel_path, size, e_tag)| (rel_path, (size, e_tag))).collect())
        })
        .await
    }
}

/// Whether an object the target shows with `size` and `e_tag` is still the copy of `spec` that
/// was made with ETag `copied_e_tag`: the right size, and the same ETag where both are known.
/// ETags are compared as stores differ in writing them: Azure's listings give them bare, its
/// PUT and HEAD responses quoted; a weak mark (`W/`) says nothing about the bytes either.
pub(crate) fn unchanged(spec: &ObjectSpec, copied_e_tag: Option<&str>, size: u64, e_tag: Option<&str>) -> bool {
    let bare = |t: &str| t.trim_start_matches("W/").trim_matches('"').to_string();
    size == spec.size
        && match (copied_e_tag, e_tag) {
            (Some(copied), Some(seen)) => bare(copied) == bare(seen),
            _ => true,
        }
}

/// The SHA256 of an object, read as a stream (one chunk in memory at a time).
pub(crate) async fn sha256_of(store: &dyn ObjectStore, path: &Path) -> object_store::Result<Sha256Digest> {
    let mut stream = read_in_pieces(store.get(path).await?);
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.try_next().await? {
        hasher.update(&chunk);
    }
    Ok(Sha256Digest(hasher.finalize().into()))
}

/// Checks the bytes of a source object as they stream past.
pub(super) struct Verifier<'a> {
    path: &'a Path,
    spec: &'a ObjectSpec,
    seen: u64,
    hasher: Option<Sha256>,
}

impl<'a> Verifier<'a> {
    fn new(path: &'a Path, spec: &'a ObjectSpec) -> Self {
        Verifier { path, spec, seen: 0, hasher: spec.sha256.as_ref().map(|_| Sha256::new()) }
    }

    pub(super) fn update(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        self.seen += chunk.len() as u64;
        if self.seen > self.spec.size {
            return Err(self.size_error());
        }
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        Ok(())
    }

    pub(super) fn finish(&mut self) -> Result<(), CopyError> {
        if self.seen != self.spec.size {
            return Err(self.size_error());
        }
        if let (Some(h), Some(expected)) = (self.hasher.take(), &self.spec.sha256) {
            let actual = Sha256Digest(h.finalize().into());
            if &actual != expected {
                let (expected, actual) = (expected.to_string(), actual.to_string());
                return Err(CopyError::SourceHash { path: self.path.clone(), expected, actual });
            }
        }
        Ok(())
    }

    fn size_error(&self) -> CopyError {
        CopyError::SourceSize { path: self.path.clone(), expected: self.spec.size, actual: self.seen }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::multipart::{MultipartStore, PartId};
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta, PutMultipartOptions,
        PutOptions, PutResult, UploadPart,
    };

    use super::*;

    /// An in-memory store that counts the parts of its multipart uploads, and how many of them
    /// were running at once at most (each part taking a few milliseconds; HEADs and folder
    /// listings count among them, each taking as long); as a source, the bytes its reads give,
    /// and it can change the bytes of every ranged read (as if the object had been replaced
    /// between reads).
    #[derive(Debug, Default)]
    struct Counting {
        inner: InMemory,
        parts: Arc<AtomicUsize>,
        running: Arc<AtomicUsize>,
        most_at_once: Arc<AtomicUsize>,
        /// How long each part takes.
        delay: std::time::Duration,
        read: Arc<AtomicUsize>,
        change_ranged_reads: bool,
    }

    impl std::fmt::Display for Counting {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Counting({})", self.inner)
        }
    }

    #[derive(Debug)]
    struct CountedUpload {
        inner: Box<dyn MultipartUpload>,
        parts: Arc<AtomicUsize>,
        running: Arc<AtomicUsize>,
        most_at_once: Arc<AtomicUsize>,
        delay: std::time::Duration,
    }

    #[async_trait]
    impl MultipartUpload for CountedUpload {
        fn put_part(&mut self, data: PutPayload) -> UploadPart {
            self.parts.fetch_add(1, Ordering::SeqCst);
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            let (part, running, delay) = (self.inner.put_part(data), self.running.clone(), self.delay);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let result = part.await;
                running.fetch_sub(1, Ordering::SeqCst);
                result
            })
        }
        async fn complete(&mut self) -> object_store::Result<PutResult> {
            self.inner.complete().await
        }
        async fn abort(&mut self) -> object_store::Result<()> {
            self.inner.abort().await
        }
    }

    #[async_trait]
    impl ObjectStore for Counting {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            let inner = self.inner.put_multipart_opts(location, opts).await?;
            let (parts, running, most_at_once) = (self.parts.clone(), self.running.clone(), self.most_at_once.clone());
            Ok(Box::new(CountedUpload { inner, parts, running, most_at_once, delay: self.delay }))
        }
        async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
            if options.head {
                return self.in_flight(self.inner.get_opts(location, options)).await;
            }
            let ranged = options.range.is_some();
            let got = self.inner.get_opts(location, options).await?;
            let (meta, range) = (got.meta.clone(), got.range.clone());
            let (attributes, extensions) = (got.attributes.clone(), got.extensions.clone());
            let (read, change) = (self.read.clone(), ranged && self.change_ranged_reads);
            let stream = got.into_stream().map_ok(move |chunk| {
                read.fetch_add(chunk.len(), Ordering::SeqCst);
                if change {
                    Bytes::from(chunk.iter().map(|b| b ^ 0xff).collect::<Vec<u8>>())
                } else {
                    chunk
                }
            });
            let payload = object_store::GetResultPayload::Stream(stream.boxed());
            Ok(GetResult { payload, meta, range, attributes, extensions })
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
            self.in_flight(self.inner.list_with_delimiter(prefix)).await
        }
        async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    impl Counting {
        /// `request`, counted in flight for `delay` first.
        async fn in_flight<T>(&self, request: impl std::future::Future<Output = T>) -> T {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_at_once.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            let result = request.await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            result
        }
    }

    /// A target's uploads by number that fail the listed parts once each (as a connection
    /// reset), and record every part sent with its bytes.
    #[derive(Default)]
    struct FlakyParts {
        target: InMemory,
        fail_once: std::sync::Mutex<Vec<usize>>,
        sent: std::sync::Mutex<Vec<(usize, Bytes)>>,
        aborted: AtomicUsize,
    }

    #[async_trait]
    impl MultipartStore for FlakyParts {
        async fn create_multipart(&self, path: &Path) -> object_store::Result<MultipartId> {
            self.target.create_multipart(path).await
        }
        async fn put_part(
            &self,
            path: &Path,
            id: &MultipartId,
            part_idx: usize,
            data: PutPayload,
        ) -> object_store::Result<PartId> {
            self.sent
                .lock()
                .unwrap()
                .push((part_idx, Bytes::from(data.iter().flatten().copied().collect::<Vec<u8>>())));
            let fails = {
                let mut failing = self.fail_once.lock().unwrap();
                let at = failing.iter().position(|&i| i == part_idx);
                at.map(|at| failing.remove(at)).is_some()
            };
            if fails {
                let source = "connection reset by peer".into();
                return Err(object_store::Error::Generic { store: "FlakyParts", source });
            }
            self.target.put_part(path, id, part_idx, data).await
        }
        async fn complete_multipart(
            &self,
            path: &Path,
            id: &MultipartId,
            parts: Vec<PartId>,
        ) -> object_store::Result<PutResult> {
            self.target.complete_multipart(path, id, parts).await
        }
        async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> object_store::Result<()> {
            self.aborted.fetch_add(1, Ordering::SeqCst);
            self.target.abort_multipart(path, id).await
        }
    }

    /// 10 KiB in ten parts of 1 KiB, part 3 failing once; the copier, the source and the parts.
    async fn flaky_part_three(change_ranged_reads: bool) -> (Copier, Arc<Counting>, Arc<FlakyParts>, Vec<u8>) {
        let data: Vec<u8> = (0..10 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        let source = Arc::new(Counting { change_ranged_reads, ..Counting::default() });
        source.inner.put(&Path::from("block/index"), PutPayload::from(data.clone())).await.unwrap();
        let parts = Arc::new(FlakyParts { fail_once: std::sync::Mutex::new(vec![3]), ..FlakyParts::default() });
        let target: Arc<dyn ObjectStore> = Arc::new(parts.target.clone());
        let copier = Copier::new(source.clone(), target, 4, 1024)
            .with_retry(RetryPolicy { initial_backoff: Duration::ZERO, ..RetryPolicy::default() })
            .with_parts(Some(PartStore(parts.clone())));
        (copier, source, parts, data)
    }

    fn spec_of(data: &[u8]) -> ObjectSpec {
        let sha256 = Some(Sha256Digest(Sha256::digest(data).into()));
        ObjectSpec { rel_path: "index".into(), size: data.len() as u64, sha256 }
    }

    /// Re-checks of many blocks at once keep to the copy concurrency across the process: one
    /// request a permit, a HEAD or a round trip of a block's two folder listings.
    #[tokio::test]
    async fn re_checks_of_many_blocks_keep_to_the_copy_concurrency() {
        let target = Arc::new(Counting { delay: Duration::from_millis(5), ..Counting::default() });
        let blocks: Vec<(String, Vec<ObjectSpec>)> = (0..24)
            .map(|b| {
                let chunks = if b % 2 == 0 { 2 } else { 6 };
                let rels = (1..=chunks).map(|c| format!("chunks/{c:06}")).chain(["index".to_string()]);
                (format!("block-{b:02}"), rels.map(|rel_path| ObjectSpec { rel_path, size: 3, sha256: None }).collect())
            })
            .collect();
        for (dir, specs) in &blocks {
            for spec in specs {
                target.inner.put(&block_path(dir, &spec.rel_path), PutPayload::from_static(b"abc")).await.unwrap();
            }
        }
        let concurrency = 3;
        let copier = Copier::new(Arc::new(InMemory::new()), target.clone(), concurrency, DEFAULT_PART_SIZE);
        let listings = futures::future::try_join_all(
            blocks.iter().map(|(dir, specs)| copier.recheck_target_block(dir, specs, concurrency)),
        )
        .await
        .unwrap();
        for ((_, specs), listing) in blocks.iter().zip(&listings) {
            assert_eq!(listing.len(), specs.len(), "{listing:?}");
        }
        let most = target.most_at_once.load(Ordering::SeqCst);
        // A HEAD holds a permit; a round of listings holds one for its two requests.
        assert!((2..=2 * concurrency).contains(&most), "{most} requests at once");
    }

    /// After a stop, a re-check still waiting for a slot is never sent: it ends at once as
    /// interrupted, so that a queue of them cannot outlast the grace period. One that finds a
    /// slot free still runs.
    #[tokio::test]
    async fn a_stopped_run_sends_no_re_check_still_waiting_for_a_slot() {
        let target = Arc::new(Counting::default());
        let spec = ObjectSpec { rel_path: "index".into(), size: 3, sha256: None };
        target.inner.put(&block_path("block", "index"), PutPayload::from_static(b"abc")).await.unwrap();
        let copier = Copier::new(Arc::new(InMemory::new()), target.clone(), 1, DEFAULT_PART_SIZE);
        let held = copier.recheck_permits.clone().acquire_owned().await.unwrap();
        let waiting = {
            let (copier, spec) = (copier.clone(), spec.clone());
            tokio::spawn(async move { copier.recheck_target_block("block", &[spec], 1).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "the re-check waits for the slot held");
        copier.cancel.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("it stops waiting").unwrap();
        let error = ended.expect_err("a re-check waiting for a slot fails as interrupted");
        assert!(matches!(error, CopyError::Interrupted { .. }), "{error:?}");
        assert_eq!(error.failure().cause, FailureCause::Interrupted);
        assert_eq!(target.most_at_once.load(Ordering::SeqCst), 0, "no HEAD was sent");
        drop(held);
        let listing = copier.recheck_target_block("block", &[spec], 1).await.unwrap();
        assert_eq!(listing.len(), 1, "a free slot is still taken after the stop");
    }

    /// A stop during a retry's wait ends the wait, and nothing is tried again.
    #[tokio::test]
    async fn a_stop_during_a_retrys_wait_tries_nothing_again() {
        use crate::testkit::{FaultRule, FaultyStore, Op};
        let inner = InMemory::new();
        let path = Path::from("block/index");
        inner.put(&path, PutPayload::from_static(b"abc")).await.unwrap();
        let source = Arc::new(FaultyStore::new(inner, vec![FaultRule::transient("index", &[Op::Get], None)], 1));
        let retry = RetryPolicy {
            retries: 5,
            timeout: Duration::from_secs(600),
            initial_backoff: Duration::from_secs(300),
            max_backoff: Duration::from_secs(300),
        };
        let copier = Copier::new(source.clone(), Arc::new(InMemory::new()), 1, DEFAULT_PART_SIZE).with_retry(retry);
        let stop = copier.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        });
        let spec = ObjectSpec { rel_path: "index".into(), size: 3, sha256: None };
        let ended = tokio::time::timeout(Duration::from_secs(10), copier.ensure(&path, &spec)).await;
        let error = ended.expect("the stop ends the wait").expect_err("the read failed");
        assert!(matches!(error, CopyError::Source { .. }), "the last failure is the one returned: {error:?}");
        assert_eq!(source.injected(), 1, "one try, none after the stop");
    }

    /// A stop during a part's retry wait ends the wait: the part is not sent again, and the
    /// object's upload is given up.
    #[tokio::test]
    async fn a_stop_during_a_parts_retry_wait_sends_it_no_more() {
        let (copier, _source, parts, data) = flaky_part_three(false).await;
        let long_wait = Duration::from_secs(300);
        let retry = RetryPolicy { initial_backoff: long_wait, max_backoff: long_wait, ..RetryPolicy::default() };
        let copier = copier.with_retry(retry);
        let stop = copier.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        });
        let path = Path::from("block/index");
        let ended = tokio::time::timeout(Duration::from_secs(10), copier.ensure(&path, &spec_of(&data))).await;
        ended.expect("the stop ends the wait").expect_err("the failed part was not sent again");
        let sent = parts.sent.lock().unwrap().iter().filter(|(index, _)| *index == 3).count();
        assert_eq!(sent, 1, "part 3 is sent once, and fails");
        assert_eq!(parts.aborted.load(Ordering::SeqCst), 1, "the upload is given up");
    }

    #[tokio::test]
    async fn a_failed_part_is_read_again_by_its_range_and_sent_again_alone() {
        let (copier, source, parts, data) = flaky_part_three(false).await;
        let path = Path::from("block/index");
        assert!(copier.ensure(&path, &spec_of(&data)).await.unwrap().copied);
        assert_eq!(source.read.load(Ordering::SeqCst), data.len() + 1024, "the object once, and part 3 again");
        let mut sent: Vec<usize> = parts.sent.lock().unwrap().iter().map(|(i, _)| *i).collect();
        sent.sort();
        assert_eq!(sent, [0, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9], "part 3 alone is sent twice, in one upload");
        assert_eq!(parts.aborted.load(Ordering::SeqCst), 0);
        assert_eq!(copier.telemetry.metrics.retries.get(), 1);
        assert_eq!(parts.target.get(&path).await.unwrap().bytes().await.unwrap(), data);
    }

    #[tokio::test]
    async fn a_part_read_again_that_differs_is_never_sent_and_the_object_starts_again() {
        let (copier, _source, parts, data) = flaky_part_three(true).await;
        let path = Path::from("block/index");
        assert!(copier.ensure(&path, &spec_of(&data)).await.unwrap().copied);
        for (index, bytes) in parts.sent.lock().unwrap().iter() {
            assert_eq!(bytes[..], data[index * 1024..(index + 1) * 1024], "part {index} went out as first read");
        }
        assert_eq!(parts.aborted.load(Ordering::SeqCst), 1, "the first upload is given up");
        assert_eq!(parts.target.get(&path).await.unwrap().bytes().await.unwrap(), data);
    }

    #[tokio::test]
    async fn the_part_size_grows_so_that_no_upload_needs_more_than_ten_thousand_parts() {
        let size = 25_000u64;
        let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("block/chunks/000001");
        source.put(&path, PutPayload::from(vec![7u8; size as usize])).await.unwrap();
        let target = Arc::new(Counting::default());
        // One byte a part would take 25,000 parts.
        let copier = Copier::new(source, target.clone(), 4, 1);
        let spec = ObjectSpec { rel_path: "chunks/000001".into(), size, sha256: None };
        let done = copier.ensure(&path, &spec).await.unwrap();
        assert!(done.copied);
        let parts = target.parts.load(Ordering::SeqCst) as u64;
        assert_eq!(parts, size.div_ceil(3), "parts of 3 bytes");
        assert!(parts <= MAX_PARTS);
        assert_eq!(target.inner.get(&path).await.unwrap().bytes().await.unwrap().len() as u64, size);
        // Where the configured size is enough, it is kept.
        assert_eq!(part_size_for(1 << 30, 8 << 20), 8 << 20);
        let huge = 64u64 << 30;
        assert!(huge.div_ceil(part_size_for(huge, 5 << 20) as u64) <= MAX_PARTS, "a 64 GiB index in 5 MiB parts");
    }

    #[tokio::test]
    async fn local_files_are_read_a_mebibyte_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let data: Vec<u8> = (0..(2 * FILE_PIECE + 5)).map(|i| (i % 251) as u8).collect();
        let path = Path::from("block/index");
        store.put(&path, PutPayload::from(data.clone())).await.unwrap();
        let pieces: Vec<Bytes> = read_in_pieces(store.get(&path).await.unwrap()).try_collect().await.unwrap();
        assert_eq!(pieces.iter().map(Bytes::len).collect::<Vec<_>>(), [FILE_PIECE, FILE_PIECE, 5]);
        assert_eq!(pieces.concat(), data);
        // A range is read from its start.
        let ranged = store.get_opts(&path, GetOptions { range: Some((3..10).into()), ..GetOptions::default() });
        let pieces: Vec<Bytes> = read_in_pieces(ranged.await.unwrap()).try_collect().await.unwrap();
        assert_eq!(pieces.concat(), data[3..10]);
    }

    #[tokio::test]
    async fn parts_upload_side_by_side_within_the_part_budget() {
        let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let path = Path::from("block/index");
        let size = 40u64 * 1024;
        source.put(&path, PutPayload::from(vec![1u8; size as usize])).await.unwrap();
        let spec = ObjectSpec { rel_path: "index".into(), size, sha256: None };
        for (concurrency, most) in [(8, PARTS_IN_FLIGHT), (1, 1)] {
            let target = Arc::new(Counting { delay: std::time::Duration::from_millis(3), ..Counting::default() });
            // 1 KiB parts: 40 of them.
            let copier = Copier::new(source.clone(), target.clone(), concurrency, 1024);
            copier.ensure(&path, &spec).await.unwrap();
            assert_eq!(target.parts.load(Ordering::SeqCst), 40);
            let at_once = target.most_at_once.load(Ordering::SeqCst);
            assert!(at_once <= most, "{at_once} parts at once with a budget of {concurrency}");
            assert!(at_once >= most.min(2), "parts upload side by side when the budget allows: {at_once}");
            assert_eq!(target.inner.get(&path).await.unwrap().bytes().await.unwrap().len() as u64, size);
        }
    }

    #[tokio::test]
    async fn objects_over_five_gib_are_streamed_rather_than_copied_by_the_store() {
        use crate::bucket::server_side::{SameStore, SameStoreCopy, MAX_SERVER_SIDE_COPY};
        assert_eq!(MAX_SERVER_SIDE_COPY, 5 << 30, "S3's CopyObject limit");
        // Within one store: an object under the limit is copied by the store (no part goes
        // through the copier); one over it (the limit lowered here to 4 KiB) is streamed.
        let store = Arc::new(Counting::default());
        let shared: Arc<dyn ObjectStore> = store.clone();
        let same =
            SameStore { store: shared.clone(), source_prefix: Path::from("from"), target_prefix: Path::from("to") };
        let source: Arc<dyn ObjectStore> = Arc::new(object_store::prefix::PrefixStore::new(shared.clone(), "from"));
        let target: Arc<dyn ObjectStore> = Arc::new(object_store::prefix::PrefixStore::new(shared, "to"));
        let same = Arc::new(SameStoreCopy { max_size: 4096, ..SameStoreCopy::new(same) });
        let copier = Copier::new(source.clone(), target, 4, 1024).with_server_side(Some(same));
        let path = Path::from("block/index");
        source.put(&path, PutPayload::from(vec![3u8; 4096])).await.unwrap();
        let spec = ObjectSpec { rel_path: "index".into(), size: 4096, sha256: None };
        copier.ensure(&path, &spec).await.unwrap();
        assert_eq!(store.parts.load(Ordering::SeqCst), 0, "copied by the store");
        assert_eq!(store.inner.get(&Path::from("to/block/index")).await.unwrap().bytes().await.unwrap().len(), 4096);
        let big = Path::from("block/chunks/000001");
        source.put(&big, PutPayload::from(vec![4u8; 8192])).await.unwrap();
        let spec = ObjectSpec { rel_path: "chunks/000001".into(), size: 8192, sha256: None };
        assert!(copier.ensure(&big, &spec).await.unwrap().copied);
        assert_eq!(store.parts.load(Ordering::SeqCst), 8, "streamed in 1 KiB parts");
        let metrics = &copier.telemetry.metrics;
        assert_eq!(metrics.bytes_copied_by(CopyMethod::ServerSide), 4096);
        assert_eq!(metrics.bytes_copied_by(CopyMethod::Stream), 8192);
        // A later small object is still copied by the store: being too large is no refusal.
        let small = Path::from("block/chunks/000002");
        source.put(&small, PutPayload::from(vec![5u8; 100])).await.unwrap();
        let spec = ObjectSpec { rel_path: "chunks/000002".into(), size: 100, sha256: None };
        copier.ensure(&small, &spec).await.unwrap();
        assert_eq!(metrics.bytes_copied_by(CopyMethod::ServerSide), 4196);
    }

    /// A provider's copy between two in-memory buckets, which can be told to refuse with
    /// AccessDenied, to write the wrong bytes, or to answer 400 to its `bad_call`th call (from
    /// 1); it counts its calls.
    #[derive(Debug)]
    struct FakeProviderCopy {
        source: Arc<dyn ObjectStore>,
        target: Arc<dyn ObjectStore>,
        refuse: bool,
        corrupt: bool,
        bad_call: Option<usize>,
        calls: AtomicUsize,
    }

    impl FakeProviderCopy {
        fn new(source: &Arc<dyn ObjectStore>, target: &Arc<dyn ObjectStore>) -> Self {
            FakeProviderCopy {
                source: source.clone(),
                target: target.clone(),
                refuse: false,
                corrupt: false,
                bad_call: None,
                calls: AtomicUsize::new(0),
            }
        }
    }

    #[async_trait]
    impl ServerSideCopy for FakeProviderCopy {
        async fn copy(&self, path: &Path, _size: u64) -> Result<(), ServerSideError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if self.bad_call == Some(call) {
                return Err(ServerSideError::Failed(store_error("400 Bad Request")));
            }
            if self.refuse {
                let source = "403 AccessDenied".into();
                return Err(ServerSideError::Refused(object_store::Error::PermissionDenied {
                    path: path.to_string(),
                    source,
                }));
            }
            let mut bytes =
                self.source.get(path).await.map_err(ServerSideError::Failed)?.bytes().await.unwrap().to_vec();
            if self.corrupt {
                bytes[0] ^= 1;
            }
            self.target.put(path, PutPayload::from(bytes)).await.map_err(ServerSideError::Failed)?;
            Ok(())
        }
    }

    async fn two_buckets(objects: usize) -> (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, Vec<(Path, ObjectSpec)>) {
        let source: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut specs = Vec::new();
        for i in 0..objects {
            let rel_path = format!("chunks/{:06}", i + 1);
            let path = Path::from(format!("block/{rel_path}"));
            let data = vec![i as u8; 100 + i];
            let sha256 = Some(Sha256Digest(Sha256::digest(&data).into()));
            source.put(&path, PutPayload::from(data.clone())).await.unwrap();
            specs.push((path, ObjectSpec { rel_path, size: data.len() as u64, sha256 }));
        }
        (source, Arc::new(InMemory::new()), specs)
    }

    #[tokio::test]
    async fn a_refused_server_side_copy_streams_that_object_and_every_later_one() {
        let (source, target, specs) = two_buckets(3).await;
        let provider = Arc::new(FakeProviderCopy { refuse: true, ..FakeProviderCopy::new(&source, &target) });
        let copier = Copier::new(source.clone(), target.clone(), 4, 1024).with_server_side(Some(provider.clone()));
        for (path, spec) in &specs {
            assert!(copier.ensure(path, spec).await.unwrap().copied);
            assert_eq!(
                target.get(path).await.unwrap().bytes().await.unwrap(),
                source.get(path).await.unwrap().bytes().await.unwrap()
            );
        }
        assert_eq!(provider.calls.load(Ordering::SeqCst), 1, "asked once, never again after the refusal");
        let metrics = &copier.telemetry.metrics;
        assert_eq!(metrics.bytes_copied_by(CopyMethod::ServerSide), 0);
        assert_eq!(metrics.bytes_copied_by(CopyMethod::Stream), specs.iter().map(|(_, s)| s.size).sum::<u64>());
        assert_eq!(metrics.retries.get(), 0, "a refusal is no failure to retry");
    }

    #[tokio::test]
    async fn a_copy_refused_as_bad_before_any_worked_is_a_refusal_but_after_one_the_objects_failure() {
        // The first copy gets a 400: the buckets may not allow copies; every object is streamed.
        let (source, target, specs) = two_buckets(2).await;
        let provider = Arc::new(FakeProviderCopy { bad_call: Some(1), ..FakeProviderCopy::new(&source, &target) });
        let copier = Copier::new(source.clone(), target.clone(), 4, 1024).with_server_side(Some(provider.clone()));
        for (path, spec) in &specs {
            assert!(copier.ensure(path, spec).await.unwrap().copied);
        }
        assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
        assert_eq!(copier.telemetry.metrics.bytes_copied_by(CopyMethod::ServerSide), 0);
        // The second gets it, after the first worked: that object fails, at once.
        let (source, target, specs) = two_buckets(2).await;
        let provider = Arc::new(FakeProviderCopy { bad_call: Some(2), ..FakeProviderCopy::new(&source, &target) });
        let copier = Copier::new(source.clone(), target.clone(), 4, 1024).with_server_side(Some(provider.clone()));
        assert!(copier.ensure(&specs[0].0, &specs[0].1).await.unwrap().copied);
        let error = copier.ensure(&specs[1].0, &specs[1].1).await.unwrap_err();
        assert!(matches!(error, CopyError::ServerSide { .. }) && !error.is_transient(), "{error:?}");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_server_side_copy_is_verified_like_a_stream() {
        let (source, target, specs) = two_buckets(2).await;
        let provider = Arc::new(FakeProviderCopy::new(&source, &target));
        let copier = Copier::new(source.clone(), target.clone(), 4, 1024).with_server_side(Some(provider.clone()));
        for (path, spec) in &specs {
            assert!(copier.ensure(path, spec).await.unwrap().copied);
        }
        assert_eq!(provider.calls.load(Ordering::SeqCst), 2);
        let total = specs.iter().map(|(_, s)| s.size).sum::<u64>();
        assert_eq!(copier.telemetry.metrics.bytes_copied_by(CopyMethod::ServerSide), total);
        assert_eq!(copier.telemetry.metrics.bytes_copied_by(CopyMethod::Stream), 0);
        // A copy that leaves the wrong bytes (the same size) fails its hash check, is tried again
        // within the retry policy, and fails the object in the end.
        let (source, target, specs) = two_buckets(1).await;
        let provider = Arc::new(FakeProviderCopy { corrupt: true, ..FakeProviderCopy::new(&source, &target) });
        let retry = RetryPolicy { retries: 2, initial_backoff: Duration::ZERO, ..RetryPolicy::default() };
        let copier = Copier::new(source, target, 4, 1024).with_server_side(Some(provider.clone())).with_retry(retry);
        let (path, spec) = &specs[0];
        let error = copier.ensure(path, spec).await.unwrap_err();
        assert!(matches!(error, CopyError::ServerSideMismatch { .. }), "{error:?}");
        assert_eq!(provider.calls.load(Ordering::SeqCst), 3);
        assert_eq!(copier.telemetry.metrics.bytes_copied_by(CopyMethod::ServerSide), 0);
    }

    #[tokio::test]
    async fn a_read_cut_short_is_resumed_where_it_stopped_and_the_upload_kept() {
        use crate::testkit::{FaultRule, FaultyStore};
        let path = Path::from("block/index");
        let data: Vec<u8> = (0..10 * 1024).map(|i| (i % 253) as u8).collect();
        let inner = InMemory::new();
        inner.put(&path, PutPayload::from(data.clone())).await.unwrap();
        // The first read of the object ends, without an error, after half of it.
        let source: Arc<dyn ObjectStore> =
            Arc::new(FaultyStore::new(inner, vec![FaultRule::truncated_reads("block/index", Some(1))], 1));
        let target = Arc::new(Counting::default());
        let copier = Copier::new(source, target.clone(), 4, 1024);
        let digest = Sha256Digest(Sha256::digest(&data).into());
        let spec = ObjectSpec { rel_path: "index".into(), size: data.len() as u64, sha256: Some(digest) };
        assert!(copier.ensure(&path, &spec).await.unwrap().copied);
        // Ten 1 KiB parts, each sent once: the second half was read from where the first stopped.
        assert_eq!(target.parts.load(Ordering::SeqCst), 10);
        assert_eq!(copier.telemetry.metrics.retries.get(), 1);
        assert_eq!(target.inner.get(&path).await.unwrap().bytes().await.unwrap(), data);
    }

    fn store_error(status: &str) -> object_store::Error {
        let message = format!(
            "Error performing PUT http://127.0.0.1/b/o in 3ms - Server returned non-2xx status code: {status}: body"
        );
        object_store::Error::Generic { store: "S3", source: message.into() }
    }

    #[test]
    fn a_refused_request_fails_at_once_but_timeouts_and_throttling_are_retried() {
        let target = |status: &str| CopyError::Target {
            operation: "writing",
            path: Path::from("a"),
            source: store_error(status),
        };
        assert!(!target("400 Bad Request").is_transient());
        assert!(!target("409 Conflict").is_transient());
        assert!(target("408 Request Timeout").is_transient());
        let s3_timeout = "400 Bad Request: <Error><Code>RequestTimeout</Code><Message>Your socket connection to the server was not read from or written to within the timeout period.</Message></Error>";
        assert!(target(s3_timeout).is_transient());
        let damaged =
            "400 Bad Request: <Error><Code>BadDigest</Code><Message>checksum_crc64nvme mismatch</Message></Error>";
        assert!(target(damaged).is_transient(), "a body damaged in transit is sent again");
        for code in ["XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch"] {
            assert!(target(&format!("400 Bad Request: <Error><Code>{code}</Code></Error>")).is_transient(), "{code}");
        }
        assert!(!target("400 Bad Request: <Error><Code>InvalidArgument</Code></Error>").is_transient());
        assert!(target("429 Too Many Requests").is_transient());
        assert!(target("503 Service Unavailable").is_transient());
        let reset = object_store::Error::Generic { store: "S3", source: "connection reset".into() };
        assert!(CopyError::Source { path: Path::from("a"), source: reset }.is_transient());
    }
}
