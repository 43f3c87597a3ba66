//! `TenantMapStore`: renames tenants on the way into a store (`--tenant-mapping SRC=DST`).
//!
//! The engine addresses the target with the source's paths; this decorator, on the target,
//! replaces the first path segment (the tenant) by its mapped name in every request, and maps it
//! back in what the store returns, so that nothing else needs to know about the renaming.
#![deny(clippy::missing_trait_methods)]

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::bucket::copy::PartStore;

/// Tenant names in both directions.
#[derive(Debug)]
struct Names {
    forward: BTreeMap<String, String>,
    back: BTreeMap<String, String>,
}

impl Names {
    /// Renames the first segment by `table`, on the path's text as it is (tenant names are
    /// compared and written as listed, never encoded again).
    fn map(table: &BTreeMap<String, String>, path: &Path) -> Path {
        let text = path.as_ref();
        let (first, rest) = text.split_once('/').map_or((text, None), |(f, r)| (f, Some(r)));
        match table.get(first) {
            Some(name) => {
                let renamed = rest.map_or_else(|| name.clone(), |rest| format!("{name}/{rest}"));
                Path::parse(&renamed).unwrap_or_else(|_| Path::from(renamed.as_str()))
            }
            None => path.clone(),
        }
    }

    fn to_store(&self, path: &Path) -> Path {
        Self::map(&self.forward, path)
    }

    fn out_of_store(&self, path: &Path) -> Path {
        Self::map(&self.back, path)
    }

    fn meta_from_store(&self, meta: ObjectMeta) -> ObjectMeta {
        ObjectMeta { location: self.out_of_store(&meta.location), ..meta }
    }
}

pub(crate) struct TenantMapStore<T> {
    inner: T,
    names: Arc<Names>,
}

impl<T> TenantMapStore<T> {
    /// `mapping`: source tenant name to the name it has in `inner`.
    pub(crate) fn new(inner: T, mapping: BTreeMap<String, String>) -> Self {
        let back = mapping.iter().map(|(from, to)| (to.clone(), from.clone())).collect();
        TenantMapStore { inner, names: Arc::new(Names { forward: mapping, back }) }
    }
}

impl<T: fmt::Display> fmt::Display for TenantMapStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantMap({})", self.inner)
    }
}

impl<T: fmt::Debug> fmt::Debug for TenantMapStore<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantMapStore").field("inner", &self.inner).field("mapping", &self.names.forward).finish()
    }
}

#[async_trait]
impl<T: ObjectStore> ObjectStore for TenantMapStore<T> {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(&self.names.to_store(location), payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(&self.names.to_store(location), opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut result = self.inner.get_opts(&self.names.to_store(location), options).await?;
        result.meta.location = location.clone();
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(&self.names.to_store(location), ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let (to, back) = (self.names.clone(), self.names.clone());
        let mapped = locations.map(move |p| p.map(|p| to.to_store(&p))).boxed();
        self.inner.delete_stream(mapped).map(move |p| p.map(|p| back.out_of_store(&p))).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let names = self.names.clone();
        let prefix = prefix.map(|p| self.names.to_store(p));
        self.inner.list(prefix.as_ref()).map(move |m| m.map(|m| names.meta_from_store(m))).boxed()
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        let names = self.names.clone();
        let prefix = prefix.map(|p| self.names.to_store(p));
        let offset = self.names.to_store(offset);
        self.inner.list_with_offset(prefix.as_ref(), &offset).map(move |m| m.map(|m| names.meta_from_store(m))).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let prefix = prefix.map(|p| self.names.to_store(p));
        let mut result = self.inner.list_with_delimiter(prefix.as_ref()).await?;
        result.common_prefixes = result.common_prefixes.iter().map(|p| self.names.out_of_store(p)).collect();
        result.objects =
            std::mem::take(&mut result.objects).into_iter().map(|m| self.names.meta_from_store(m)).collect();
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(&self.names.to_store(from), &self.names.to_store(to), options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(&self.names.to_store(from), &self.names.to_store(to), options).await
    }
}

/// A target's uploads by part number, to the tenants' names in the target: so that renamed
/// tenants keep a part's retries alone, and the fallback to signed parts of a server that
/// refuses part checksums.
#[async_trait]
impl MultipartStore for TenantMapStore<PartStore> {
    async fn create_multipart(&self, path: &Path) -> Result<MultipartId> {
        self.inner.0.create_multipart(&self.names.to_store(path)).await
    }

    async fn create_multipart_opts(&self, path: &Path, opts: PutMultipartOptions) -> Result<MultipartId> {
        self.inner.0.create_multipart_opts(&self.names.to_store(path), opts).await
    }

    async fn put_part(&self, path: &Path, id: &MultipartId, part_idx: usize, data: PutPayload) -> Result<PartId> {
        self.inner.0.put_part(&self.names.to_store(path), id, part_idx, data).await
    }

    async fn complete_multipart(&self, path: &Path, id: &MultipartId, parts: Vec<PartId>) -> Result<PutResult> {
        self.inner.0.complete_multipart(&self.names.to_store(path), id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> Result<()> {
        self.inner.0.abort_multipart(&self.names.to_store(path), id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn the_first_segment_is_renamed_both_ways() {
        let inner = Arc::new(InMemory::new());
        let store = TenantMapStore::new(inner.clone(), [("team-a".to_string(), "team-x".to_string())].into());
        store.put(&Path::from("team-a/01ABC/index"), PutPayload::from_static(b"i")).await.unwrap();
        store.put(&Path::from("team-b/01ABC/index"), PutPayload::from_static(b"j")).await.unwrap();
        let stored: Vec<_> = inner.list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
        assert_eq!(stored, ["team-b/01ABC/index", "team-x/01ABC/index"]);
        let seen: Vec<_> = store.list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
        assert_eq!(seen, ["team-b/01ABC/index", "team-a/01ABC/index"]);
        let head = store.head(&Path::from("team-a/01ABC/index")).await.unwrap();
        assert_eq!((head.location.as_ref(), head.size), ("team-a/01ABC/index", 1));
        let listed = store.list_with_delimiter(Some(&Path::from("team-a"))).await.unwrap();
        assert_eq!(listed.common_prefixes, [Path::from("team-a/01ABC")]);
    }
}
