//! A large object's upload, part by part.
//!
//! object_store's `MultipartUpload` numbers a part when it is sent, so a part that failed cannot
//! be sent again: the whole upload is given up. Stores that take parts by number
//! (`MultipartStore`: S3, GCS, Azure) let one failed part be read again from the source, by its
//! range, and sent again under its number, the upload and every other part kept.

use std::ops::Range;
use std::time::Instant;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::multipart::PartId;
use object_store::path::Path;
use object_store::{GetOptions, MultipartId, MultipartUpload, ObjectStoreExt, PutPayload, PutPayloadMut};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::{JoinError, JoinSet};
use xxhash_rust::xxh64::Xxh64;

use super::copy::{read_in_pieces, AfterFailure, Copier, CopyError, PartStore, Verifier, PARTS_IN_FLIGHT};

/// The part being built: its number, where it starts in the object, and its bytes so far.
pub(super) struct PartAt {
    index: usize,
    offset: u64,
    pieces: PutPayloadMut,
    len: usize,
    /// Of the bytes as first read, so that a part read again is known to be the same bytes,
    /// which the object's check (size, SHA256) saw.
    hasher: Xxh64,
}

/// A part ready to send.
pub(super) struct Part {
    index: usize,
    range: Range<u64>,
    digest: u64,
    /// Let go once sent: a retry reads the part again rather than hold it while it waits.
    bytes: Option<PutPayload>,
}

/// What sending one part gave: its id where the upload goes by number.
pub(super) type Sent = Option<(usize, PartId)>;

/// The parts of one object being sent, each in a task.
pub(super) type Uploading = JoinSet<Result<Sent, CopyError>>;

impl PartAt {
    pub(super) fn first() -> Self {
        PartAt { index: 0, offset: 0, pieces: PutPayloadMut::new(), len: 0, hasher: Xxh64::new(0) }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn push(&mut self, piece: Bytes) {
        self.hasher.update(&piece);
        self.len += piece.len();
        self.pieces.push(piece);
    }

    /// The part as built, and the next one started after it.
    pub(super) fn take_and_advance(&mut self) -> Part {
        let end = self.offset + self.len as u64;
        let part = Part {
            index: self.index,
            range: self.offset..end,
            digest: self.hasher.digest(),
            bytes: Some(std::mem::take(&mut self.pieces).freeze()),
        };
        *self = PartAt { index: self.index + 1, offset: end, ..PartAt::first() };
        part
    }
}

/// A large object's upload in the target.
pub(super) enum Upload {
    /// object_store's upload: a part that fails fails the upload.
    Whole(Box<dyn MultipartUpload>),
    /// By number: a part that fails is sent again alone. `pin` is the source object's ETag as
    /// first read, which a part read again must still have.
    Numbered { store: PartStore, id: MultipartId, pin: Option<String>, ids: Vec<Option<PartId>> },
}

impl Upload {
    pub(super) async fn start(copier: &Copier, path: &Path, pin: Option<String>) -> Result<Upload, CopyError> {
        let started = match &copier.parts {
            Some(store) => store.0.create_multipart(path).await.map(|id| Upload::Numbered {
                store: store.clone(),
                id,
                pin,
                ids: Vec::new(),
            }),
            None => copier.target.put_multipart(path).await.map(Upload::Whole),
        };
        started.map_err(|source| target_error("starting upload of", path, source))
    }

    /// Sends `part` in a task of its own, holding `held` (its part buffer's permit) until the
    /// first try ends. A task moves on while the copy reads the next part (a future would only
    /// when polled), and dropping `uploading` stops every part still being sent.
    pub(super) fn send(
        &mut self,
        copier: &Copier,
        path: &Path,
        mut part: Part,
        held: OwnedSemaphorePermit,
        uploading: &mut Uploading,
    ) {
        let path = path.clone();
        match self {
            Upload::Whole(upload) => {
                let sent = upload.put_part(part.bytes.take().expect("a part to send has its bytes"));
                uploading.spawn(async move {
                    let result = sent.await;
                    drop(held);
                    result.map(|()| None).map_err(|source| target_error("uploading a part of", &path, source))
                });
            }
            Upload::Numbered { store, id, pin, .. } => {
                let (store, id, pin, copier) = (store.clone(), id.clone(), pin.clone(), copier.clone());
                uploading.spawn(async move {
                    copier.send_part(&store, &path, &id, pin.as_deref(), part, held).await.map(Some)
                });
            }
        }
    }

    /// Takes note of a part's end: an error ends the upload.
    pub(super) fn sent(
        &mut self,
        path: &Path,
        done: Result<Result<Sent, CopyError>, JoinError>,
    ) -> Result<(), CopyError> {
        let done = done
            .map_err(|source| target_error("uploading a part of", path, object_store::Error::JoinError { source }))?;
        if let (Some((index, part)), Upload::Numbered { ids, .. }) = (done?, self) {
            if ids.len() <= index {
                ids.resize(index + 1, None);
            }
            ids[index] = Some(part);
        }
        Ok(())
    }

    /// Completes the upload once every part is sent; returns the object's ETag. An upload that
    /// fails to complete is aborted, as a failed one is.
    pub(super) async fn complete(mut self, path: &Path) -> Result<Option<String>, CopyError> {
        let done = match &mut self {
            Upload::Whole(upload) => upload.complete().await,
            Upload::Numbered { store, id, ids, .. } => {
                let ids = std::mem::take(ids).into_iter().collect::<Option<Vec<_>>>().expect("every part was sent");
                store.0.complete_multipart(path, id, ids).await
            }
        };
        match done {
            Ok(done) => Ok(done.e_tag),
            Err(source) => {
                self.abort(path).await;
                Err(target_error("completing upload of", path, source))
            }
        }
    }

    /// Gives the upload up, so that its parts are not kept (and billed) as an invisible object.
    /// A failed abort is only logged: the copy's own error is the one that matters.
    pub(super) async fn abort(self, path: &Path) {
        let aborted = match self {
            Upload::Whole(mut upload) => upload.abort().await,
            Upload::Numbered { store, id, .. } => store.0.abort_multipart(path, &id).await,
        };
        if let Err(error) = aborted {
            tracing::warn!(%path, %error, "aborting a failed multipart upload");
        }
    }
}

fn target_error(operation: &'static str, path: &Path, source: object_store::Error) -> CopyError {
    CopyError::Target { operation, path: path.clone(), source }
}

impl Copier {
    /// Uploads a large object in parts, built from the stream's own chunks without copying them
    /// into a growing buffer. Each part holds a permit of the part budget until it is uploaded;
    /// while parts upload, each in a task, the next one is read. With a store that takes parts by
    /// number, a failed part is sent again alone (see [`Copier::send_part`]); otherwise it fails
    /// the upload. A failed copy stops the parts still being sent (their tasks end with
    /// `uploading`) before it aborts the upload.
    pub(super) async fn copy_multipart(
        &self,
        path: &Path,
        pin: Option<String>,
        stream: &mut futures::stream::BoxStream<'static, object_store::Result<Bytes>>,
        verifier: &mut Verifier<'_>,
        part_size: usize,
    ) -> Result<Option<String>, CopyError> {
        let mut upload = Upload::start(self, path, pin.clone()).await?;
        let outcome: Result<(), CopyError> = async {
            let mut uploading = Uploading::new();
            let mut part = PartAt::first();
            let mut permit = Some(self.part_permit(&mut uploading, &mut upload, path).await?);
            let mut resumes = 0;
            while let Some(mut chunk) = self.next_chunk(path, stream, verifier, pin.as_deref(), &mut resumes).await? {
                self.bandwidth.admit(chunk.len()).await;
                verifier.update(&chunk)?;
                while !chunk.is_empty() {
                    part.push(chunk.split_to(chunk.len().min(part_size - part.len())));
                    if part.len() == part_size {
                        let held = permit.take().expect("a part being built holds a permit");
                        upload.send(self, path, part.take_and_advance(), held, &mut uploading);
                        while uploading.len() >= PARTS_IN_FLIGHT {
                            upload.sent(path, uploading.join_next().await.expect("parts are uploading"))?;
                        }
                        permit = Some(self.part_permit(&mut uploading, &mut upload, path).await?);
                    }
                }
            }
            verifier.finish()?;
            if part.len() > 0 {
                let held = permit.take().expect("a part being built holds a permit");
                upload.send(self, path, part.take_and_advance(), held, &mut uploading);
            }
            drop(permit);
            while let Some(done) = uploading.join_next().await {
                upload.sent(path, done)?;
            }
            Ok(())
        }
        .await;
        match outcome {
            Ok(()) => upload.complete(path).await,
            Err(error) => {
                // An abandoned upload must not linger as a billed, invisible object; a failed abort
                // is only logged because the copy error is the one that matters.
                upload.abort(path).await;
                Err(error)
            }
        }
    }

    /// A permit of the part budget, for the next part to build; parts uploading meanwhile are
    /// seen to, so that one that failed ends the copy at once.
    async fn part_permit(
        &self,
        uploading: &mut Uploading,
        upload: &mut Upload,
        path: &Path,
    ) -> Result<OwnedSemaphorePermit, CopyError> {
        let budget = self.part_budget.clone();
        let acquire = budget.acquire_owned();
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                permit = &mut acquire => return Ok(permit.expect("the part budget is never closed")),
                Some(done) = uploading.join_next(), if !uploading.is_empty() => upload.sent(path, done)?,
            }
        }
    }

    /// Sends `part` under its number, and again alone when that fails transiently, up to the
    /// retry policy. The first try sends the bytes already read, holding `held`. A failed try
    /// lets its bytes and permit go; each retry takes a part permit again, then (its deadline
    /// counting from there) reads the part's range from the source, checks that it is the bytes
    /// first read, and sends it. A part whose retries are spent fails the object for the run.
    async fn send_part(
        &self,
        store: &PartStore,
        path: &Path,
        id: &MultipartId,
        pin: Option<&str>,
        mut part: Part,
        held: OwnedSemaphorePermit,
    ) -> Result<(usize, PartId), CopyError> {
        let (mut held, mut tries) = (Some(held), 0);
        loop {
            let permit = match held.take() {
                Some(permit) => permit,
                None => self.part_budget.clone().acquire_owned().await.expect("the part budget is never closed"),
            };
            let deadline = Instant::now() + self.retry.timeout;
            let first = part.bytes.take();
            let result = async {
                let bytes = match first {
                    Some(bytes) => bytes,
                    None => self.reread_part(path, pin, &part).await?,
                };
                let sent = store.0.put_part(path, id, part.index, bytes).await;
                sent.map_err(|source| target_error("uploading a part of", path, source))
            }
            .await;
            drop(permit);
            let error = match result {
                Ok(sent) => return Ok((part.index, sent)),
                // The object starts again, under its full check.
                Err(error @ CopyError::PartChanged { .. }) => return Err(error),
                Err(error) => error,
            };
            match self.after_failure(path, &error, tries, deadline) {
                AfterFailure::Retry(wait) => {
                    tries += 1;
                    if !self.wait_to_retry(wait).await {
                        return Err(error);
                    }
                }
                AfterFailure::Spent => {
                    return Err(CopyError::PartSpent { path: path.clone(), part: part.index, source: Box::new(error) });
                }
                AfterFailure::Stop => return Err(error),
            }
        }
    }

    /// `part` read again from the source: the version first read (by its ETag, where the store
    /// gave one), and the same bytes.
    async fn reread_part(&self, path: &Path, pin: Option<&str>, part: &Part) -> Result<PutPayload, CopyError> {
        let changed = || CopyError::PartChanged { path: path.clone(), part: part.index };
        let source_error = |source| CopyError::Source { path: path.clone(), source };
        let options = GetOptions {
            range: Some(part.range.clone().into()),
            if_match: pin.map(str::to_string),
            ..GetOptions::default()
        };
        let got = match self.source.get_opts(path, options).await {
            Err(object_store::Error::Precondition { .. }) => return Err(changed()),
            got => got.map_err(source_error)?,
        };
        let mut stream = read_in_pieces(got);
        let mut again = PartAt::first();
        let want = part.range.end - part.range.start;
        while let Some(chunk) = stream.try_next().await.map_err(source_error)? {
            self.bandwidth.admit(chunk.len()).await;
            again.push(chunk);
            // A store that gives more than the range is not giving the part: hold no more of it.
            if again.len() as u64 > want {
                return Err(changed());
            }
        }
        let same = again.len() as u64 == want && again.hasher.digest() == part.digest;
        if !same {
            return Err(changed());
        }
        Ok(again.take_and_advance().bytes.expect("a part just built has its bytes"))
    }
}
