//! `SafetyChecker`: a target-store decorator that checks promises 1 and 2 at the moment each
//! meta.json is written, and counts violations.
//!
//! It is how tests and the benchmark observe safety from outside the engine: whatever the
//! strategy does, a meta.json write is a violation when an object of its block is not in the
//! target with the expected size, or when an older block of the same compaction group has no
//! meta.json in the target yet.
#![deny(clippy::missing_trait_methods)]

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use serde::Serialize;

use super::synth::SynthBlock;
use crate::model::block::block_path;
use crate::model::meta::META_FILENAME;

/// A block the checker knows: where its meta.json goes in its group's order, and its objects.
#[derive(Debug, Clone)]
pub struct ExpectedBlock {
    /// The block folder: its ULID.
    pub dir: String,
    /// The block's compaction group key.
    pub group: String,
    /// The block's minTime in Unix milliseconds.
    pub min_time: i64,
    /// Objects other than meta.json, relative to the block folder, with their sizes.
    pub objects: Vec<(String, u64)>,
}

impl ExpectedBlock {
    fn order(&self) -> (i64, &str) {
        // Folder names are ULIDs in canonical form, so they sort as the ULIDs do.
        (self.min_time, &self.dir)
    }
}

/// A meta.json write that broke promise 1 (complete blocks) or 2 (group order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Violation {
    /// meta.json written while an object of the block was missing or had the wrong size.
    Incomplete {
        /// The block whose meta.json was written.
        block: String,
        /// The object that was missing or had the wrong size, relative to the block folder.
        object: String,
    },
    /// meta.json written while an older block of the group had no meta.json in the target.
    OutOfOrder {
        /// The block whose meta.json was written.
        block: String,
        /// The older block of its compaction group that was not yet visible.
        older: String,
    },
}

#[derive(Debug, Default)]
struct Log {
    violations: Vec<Violation>,
    commits: Vec<String>,
}

/// An [`ObjectStore`] that passes every request to `inner` and checks the target before each
/// meta.json write of a known block.
#[derive(Debug)]
pub struct SafetyChecker<T> {
    inner: T,
    blocks: BTreeMap<String, ExpectedBlock>,
    log: Arc<Mutex<Log>>,
}

impl<T: ObjectStore> SafetyChecker<T> {
    /// Wraps the target store `inner`, checking the writes of `blocks`' meta.json files.
    pub fn new(inner: T, blocks: impl IntoIterator<Item = ExpectedBlock>) -> Self {
        SafetyChecker { inner, blocks: blocks.into_iter().map(|b| (b.dir.clone(), b)).collect(), log: Arc::default() }
    }

    /// Every violation found so far, in the order of the meta.json writes.
    pub fn violations(&self) -> Vec<Violation> {
        self.log.lock().expect("the log lock is never poisoned").violations.clone()
    }

    /// Blocks whose meta.json was written, in write order.
    pub fn commits(&self) -> Vec<String> {
        self.log.lock().expect("the log lock is never poisoned").commits.clone()
    }

    async fn has(&self, path: &Path, size: Option<u64>) -> bool {
        match self.inner.head(path).await {
            Ok(head) => size.is_none_or(|s| s == head.size),
            Err(_) => false,
        }
    }

    /// Checks the target just before `dir`'s meta.json is written.
    async fn check_commit(&self, dir: &str) {
        let Some(block) = self.blocks.get(dir) else { return };
        let mut found = Vec::new();
        for (object, size) in &block.objects {
            if !self.has(&block_path(dir, object), Some(*size)).await {
                found.push(Violation::Incomplete { block: dir.to_string(), object: object.clone() });
            }
        }
        let older = self.blocks.values().filter(|b| b.group == block.group && b.order() < block.order());
        for other in older {
            if !self.has(&block_path(&other.dir, META_FILENAME), None).await {
                found.push(Violation::OutOfOrder { block: dir.to_string(), older: other.dir.clone() });
            }
        }
        let mut log = self.log.lock().expect("the log lock is never poisoned");
        log.violations.extend(found);
        log.commits.push(dir.to_string());
    }
}

/// The block folder of a path that is a block's meta.json.
fn meta_block(location: &Path) -> Option<String> {
    let parts: Vec<_> = location.parts().collect();
    match parts.as_slice() {
        [dir, file] if file.as_ref() == META_FILENAME => Some(dir.as_ref().to_string()),
        _ => None,
    }
}

impl<T: fmt::Display> fmt::Display for SafetyChecker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SafetyChecker({})", self.inner)
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for SafetyChecker<T> {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if let Some(dir) = meta_block(location) {
            self.check_commit(&dir).await;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        if let Some(dir) = meta_block(location) {
            self.check_commit(&dir).await;
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if let Some(dir) = meta_block(to) {
            self.check_commit(&dir).await;
        }
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        if let Some(dir) = meta_block(to) {
            self.check_commit(&dir).await;
        }
        self.inner.rename_opts(from, to, options).await
    }
}

impl From<&SynthBlock> for ExpectedBlock {
    fn from(b: &SynthBlock) -> Self {
        ExpectedBlock {
            dir: b.dir.clone(),
            group: b.group.clone(),
            min_time: b.min_time,
            objects: b
                .objects
                .iter()
                .filter(|(p, _)| p.as_str() != META_FILENAME)
                .map(|(p, d)| (p.clone(), d.len() as u64))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn block(dir: &str, min_time: i64) -> ExpectedBlock {
        ExpectedBlock { dir: dir.into(), group: "g".into(), min_time, objects: vec![("index".into(), 3)] }
    }

    async fn put(store: &SafetyChecker<InMemory>, path: &str, data: &'static [u8]) {
        store.put(&Path::from(path), PutPayload::from_static(data)).await.unwrap();
    }

    #[tokio::test]
    async fn counts_a_hand_built_bad_order_and_an_incomplete_commit() {
        let (old, new) = ("01DWJQ1R9XW3Z3WJ7A7HNGQRG1", "01DWJQ1R9XW3Z3WJ7A7HNGQRG2");
        let checker = SafetyChecker::new(InMemory::new(), [block(old, 0), block(new, 10)]);
        put(&checker, &format!("{new}/index"), b"abc").await;
        put(&checker, &format!("{new}/meta.json"), b"{}").await; // before the older block: out of order
        put(&checker, &format!("{old}/meta.json"), b"{}").await; // before its index: incomplete
        put(&checker, &format!("{old}/index"), b"abc").await;
        assert_eq!(
            checker.violations(),
            vec![
                Violation::OutOfOrder { block: new.into(), older: old.into() },
                Violation::Incomplete { block: old.into(), object: "index".into() },
            ]
        );
        assert_eq!(checker.commits(), vec![new.to_string(), old.to_string()]);
    }

    #[tokio::test]
    async fn the_right_order_is_no_violation() {
        let (old, new) = ("01DWJQ1R9XW3Z3WJ7A7HNGQRG1", "01DWJQ1R9XW3Z3WJ7A7HNGQRG2");
        let checker = SafetyChecker::new(InMemory::new(), [block(old, 0), block(new, 10)]);
        for dir in [old, new] {
            put(&checker, &format!("{dir}/index"), b"abc").await;
            put(&checker, &format!("{dir}/meta.json"), b"{}").await;
        }
        assert_eq!(checker.violations(), vec![]);
    }
}
