//! `FaultyStore`: injects faults by path pattern, operation, count and rate: failed requests
//! (transient or permanent), reads cut short, and objects that vanish right after they were
//! written (as a target compactor's cleanup of a partial upload deletes them).
//!
//! Tests and benchmarks use it to show that transient failures are retried, permanent ones fail
//! only their block, and no fault ever lets an incomplete block become visible. Added latency is
//! `LatencyStore`'s job.
#![deny(clippy::missing_trait_methods)]

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regex::Regex;

/// The kind of request a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A GET of an object's bytes, whole or in ranges.
    Get,
    /// A HEAD: an object's metadata alone.
    Head,
    /// A single PUT, or the start of a multipart upload.
    Put,
    /// A listing, with or without a delimiter; its path is the prefix listed.
    List,
    /// The delete of one object.
    Delete,
    /// A server-side copy or rename; its path is the destination.
    Copy,
}

/// What a fault does to a request it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The request fails: permanently (access denied, not worth retrying) or transiently (a 503).
    Fail {
        /// True for a permanent failure (permission denied), false for a transient one.
        permanent: bool,
    },
    /// A GET succeeds but its body ends, without an error, after half of its bytes.
    TruncateRead,
    /// A PUT succeeds and the object is deleted right after it.
    VanishAfterPut,
}

/// One fault: requests of `ops` on paths matching `path` are hit with probability `rate`, at
/// most `times` times (unlimited when `None`).
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// The paths the rule applies to: a regex, matched anywhere in the path.
    pub path: Regex,
    /// The kinds of request the rule applies to.
    pub ops: Vec<Op>,
    /// The probability, from 0 to 1, that a matching request is hit.
    pub rate: f64,
    /// How many requests the rule hits at most; `None` for no limit.
    pub times: Option<usize>,
    /// What the rule does to a request it hits.
    pub effect: Effect,
}

impl FaultRule {
    /// Every matching request fails, transiently, until `times` have failed.
    pub fn transient(path: &str, ops: &[Op], times: Option<usize>) -> Self {
        FaultRule {
            path: Regex::new(path).expect("a valid test regex"),
            ops: ops.to_vec(),
            rate: 1.0,
            times,
            effect: Effect::Fail { permanent: false },
        }
    }

    /// Every matching request fails, permanently, as access denied.
    pub fn permanent(path: &str, ops: &[Op]) -> Self {
        FaultRule { effect: Effect::Fail { permanent: true }, ..FaultRule::transient(path, ops, None) }
    }

    /// GETs of matching paths return half the object, as a connection closed early.
    pub fn truncated_reads(path: &str, times: Option<usize>) -> Self {
        FaultRule { effect: Effect::TruncateRead, ..FaultRule::transient(path, &[Op::Get], times) }
    }

    /// Objects written to matching paths are deleted right after the write succeeds.
    pub fn vanish_after_put(path: &str, times: Option<usize>) -> Self {
        FaultRule { effect: Effect::VanishAfterPut, ..FaultRule::transient(path, &[Op::Put], times) }
    }

    /// The same rule, hitting a matching request with probability `rate`.
    pub fn with_rate(self, rate: f64) -> Self {
        FaultRule { rate, ..self }
    }
}

/// An [`ObjectStore`] that injects its rules' faults into the requests it passes to `inner`.
pub struct FaultyStore<T> {
    inner: T,
    faults: Arc<Faults>,
    /// An adversary that acts just before each PUT whose path matches, while faults are on.
    before_put: Option<(Regex, BeforePut)>,
}

/// What an adversary does just before a PUT of the path it is given.
pub type BeforePut = Arc<dyn Fn(Path) -> futures::future::BoxFuture<'static, ()> + Send + Sync>;

/// The rules and their state, shared with the streams the store hands out.
struct Faults {
    rules: Vec<FaultRule>,
    state: Mutex<(StdRng, Vec<usize>)>,
    injected: AtomicUsize,
    /// Off: every request passes untouched, as though there were no rules.
    enabled: AtomicBool,
}

impl<T> FaultyStore<T> {
    /// Wraps `inner` with `rules`, the first matching rule that hits deciding; `seed` makes the
    /// random draws repeatable.
    pub fn new(inner: T, rules: Vec<FaultRule>, seed: u64) -> Self {
        let counts = vec![0; rules.len()];
        let faults = Faults {
            rules,
            state: Mutex::new((StdRng::seed_from_u64(seed), counts)),
            injected: AtomicUsize::new(0),
            enabled: AtomicBool::new(true),
        };
        FaultyStore { inner, faults: Arc::new(faults), before_put: None }
    }

    /// This store, with `act` run before each PUT of a path matching `path` (a regex) while the
    /// faults are on: an adversary that strikes at the moment a write is made, such as a
    /// compactor's cleanup at the moment a meta.json is written.
    pub fn before_put(self, path: &str, act: BeforePut) -> Self {
        FaultyStore { before_put: Some((Regex::new(path).expect("a valid test regex"), act)), ..self }
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> usize {
        self.faults.injected.load(Ordering::SeqCst)
    }

    /// Turns the faults on or off (they start on), for a test whose faults begin mid-way.
    pub fn set_enabled(&self, enabled: bool) {
        self.faults.enabled.store(enabled, Ordering::SeqCst);
    }

    /// Fails the request when a failing fault hits it; otherwise the effect to apply, if any.
    fn check(&self, op: Op, path: &Path) -> Result<Option<Effect>> {
        self.faults.check(op, path)
    }
}

impl Faults {
    fn check(&self, op: Op, path: &Path) -> Result<Option<Effect>> {
        if !self.enabled.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut state = self.state.lock().expect("the fault state lock is never poisoned");
        let (rng, counts) = &mut *state;
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.ops.contains(&op) || !rule.path.is_match(path.as_ref()) {
                continue;
            }
            if rule.times.is_some_and(|t| counts[i] >= t) || !rng.random_bool(rule.rate.clamp(0.0, 1.0)) {
                continue;
            }
            counts[i] += 1;
            self.injected.fetch_add(1, Ordering::SeqCst);
            let source = format!("injected {op:?} fault on {path}").into();
            return match rule.effect {
                Effect::Fail { permanent: true } => {
                    Err(object_store::Error::PermissionDenied { path: path.to_string(), source })
                }
                Effect::Fail { permanent: false } => Err(object_store::Error::Generic { store: "FaultyStore", source }),
                effect => Ok(Some(effect)),
            };
        }
        Ok(None)
    }
}

impl<T: fmt::Display> fmt::Display for FaultyStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl<T: fmt::Debug> fmt::Debug for FaultyStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore").field("inner", &self.inner).field("rules", &self.faults.rules).finish()
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for FaultyStore<T> {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if let Some((path, act)) = self.before_put.as_ref().filter(|_| self.faults.enabled.load(Ordering::SeqCst)) {
            if path.is_match(location.as_ref()) {
                act(location.clone()).await;
            }
        }
        let effect = self.check(Op::Put, location)?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        if effect == Some(Effect::VanishAfterPut) {
            self.inner.delete(location).await?;
        }
        Ok(result)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.check(Op::Put, location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let effect = self.check(if options.head { Op::Head } else { Op::Get }, location)?;
        let result = self.inner.get_opts(location, options).await?;
        if effect != Some(Effect::TruncateRead) {
            return Ok(result);
        }
        let (meta, range, attributes) = (result.meta.clone(), result.range.clone(), result.attributes.clone());
        let extensions = result.extensions.clone();
        let mut left = (range.end - range.start) / 2;
        let truncated = result
            .into_stream()
            .map_ok(move |mut chunk| {
                let keep = chunk.len().min(left as usize);
                left -= keep as u64;
                chunk.truncate(keep);
                chunk
            })
            .try_take_while(|chunk| futures::future::ready(Ok(!chunk.is_empty())))
            .boxed();
        Ok(GetResult { payload: GetResultPayload::Stream(truncated), meta, range, attributes, extensions })
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check(Op::Get, location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let faults = self.faults.clone();
        let checked = locations.map(move |p| p.and_then(|p| faults.check(Op::Delete, &p).map(|_| p)));
        self.inner.delete_stream(checked.boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.check(Op::List, prefix.unwrap_or(&Path::default())) {
            Ok(_) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        match self.check(Op::List, prefix.unwrap_or(&Path::default())) {
            Ok(_) => self.inner.list_with_offset(prefix, offset),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check(Op::List, prefix.unwrap_or(&Path::default()))?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check(Op::Copy, to)?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.check(Op::Copy, to)?;
        self.inner.rename_opts(from, to, options).await
    }
}
