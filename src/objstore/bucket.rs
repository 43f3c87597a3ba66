//! An opened bucket, and what two opened buckets have to do with each other.

use std::sync::Arc;

use bucketflow_dataflows::PartStore;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

/// An opened bucket.
pub struct Bucket {
    /// The store as bucketflow uses it: the bucket, under its prefix.
    pub store: Arc<dyn ObjectStore>,
    /// The bucket without its prefix, with what identifies it (type, endpoint, bucket,
    /// credentials), so that two buckets that are one store can copy server-side.
    pub base: Option<(String, Arc<dyn ObjectStore>)>,
    pub prefix: ObjectPath,
    /// Where the bucket's objects live, credentials aside, as path segments down to its prefix
    /// (`s3`, endpoint, bucket, prefix...; or a folder's canonical path): two buckets whose
    /// places are one and the same, or one inside the other, share objects. `None` for memory.
    pub place: Option<Vec<String>>,
    /// What a server-side copy between two buckets of one provider needs of this one.
    pub endpoint: Option<Endpoint>,
}

/// A bucket as a provider's own copy sees it.
#[derive(Clone)]
pub enum Endpoint {
    S3(super::s3::S3Endpoint),
    Gcs(super::gcs::GcsEndpoint),
    Azure(super::azure::AzureEndpoint),
    /// A folder of this machine: the kernel copies between two of them.
    Folder(std::path::PathBuf),
}

impl Bucket {
    /// The bucket `store` under `prefix`. `place` is where the store's root lives (kind and
    /// location, e.g. `["s3", endpoint, bucket]`); the prefix's segments are added to it.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        identity: Option<String>,
        prefix: &str,
        place: Option<Vec<String>>,
    ) -> Bucket {
        let prefix = ObjectPath::from(prefix.trim_matches('/'));
        let prefixed: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            store.clone()
        } else {
            Arc::new(PrefixStore::new(store.clone(), prefix.clone()))
        };
        let place = place.map(|mut place| {
            place.extend(prefix.parts().map(|p| p.as_ref().to_string()));
            place
        });
        Bucket { store: prefixed, base: identity.map(|id| (id, store)), prefix, place, endpoint: None }
    }

    /// The bucket's uploads by part number, under its prefix, where its provider has them.
    pub fn part_store(&self) -> Option<PartStore> {
        fn under<T: MultipartStore + Clone>(store: &T, prefix: &ObjectPath) -> PartStore {
            PartStore(Arc::new(PrefixStore::new(store.clone(), prefix.clone())))
        }
        match self.endpoint.as_ref()? {
            Endpoint::S3(s3) => Some(match &s3.checked_parts {
                Some((checked, signed)) => {
                    let parts = super::s3_parts::CheckedParts::new(checked.clone(), s3.store.clone(), *signed);
                    under(&parts, &self.prefix)
                }
                None => under(&s3.store, &self.prefix),
            }),
            Endpoint::Gcs(gcs) => Some(under(&gcs.store, &self.prefix)),
            Endpoint::Azure(azure) => Some(under(&azure.store, &self.prefix)),
            Endpoint::Folder(_) => None,
        }
    }

    /// Whether the two buckets may share objects: one's place is the other's, or inside it.
    pub fn overlaps(&self, other: &Bucket) -> bool {
        match (&self.place, &other.place) {
            (Some(a), Some(b)) => a.starts_with(b) || b.starts_with(a),
            _ => false,
        }
    }
}

/// Server-side copy applies when both sides are the same store.
pub fn same_store(source: &Bucket, target: &Bucket) -> Option<bucketflow_dataflows::SameStore> {
    let ((source_id, store), (target_id, _)) = (source.base.as_ref()?, target.base.as_ref()?);
    (source_id == target_id).then(|| bucketflow_dataflows::SameStore {
        store: store.clone(),
        source_prefix: source.prefix.clone(),
        target_prefix: target.prefix.clone(),
    })
}

/// The provider's copy from `source` to `target`, two buckets of one provider endpoint, or why
/// there is none (`Ok(None)` where neither bucket is of a provider that has one). Objects above
/// `multipart_above` bytes, when given, are copied in parts, as the largest ones are anyway.
pub fn provider_copy(
    source: &Bucket,
    target: &Bucket,
    multipart_above: Option<u64>,
) -> Result<Option<Arc<dyn bucketflow_dataflows::ServerSideCopy>>, String> {
    match (&source.endpoint, &target.endpoint) {
        (Some(Endpoint::S3(from)), Some(Endpoint::S3(to))) => {
            let mut copy = super::s3::server_side_copy(from, &source.prefix, to, &target.prefix)?;
            if let Some(limit) = multipart_above {
                copy = copy.with_multipart_above(limit, 0);
            }
            Ok(Some(Arc::new(copy)))
        }
        (Some(Endpoint::Gcs(from)), Some(Endpoint::Gcs(to))) => {
            let copy = super::gcs::server_side_copy(from, &source.prefix, to, &target.prefix)?;
            Ok(Some(Arc::new(copy)))
        }
        (Some(Endpoint::Folder(from)), Some(Endpoint::Folder(to))) => {
            let copy = super::filesystem::KernelCopy::new(from, &source.prefix, to, &target.prefix)?;
            Ok(Some(Arc::new(copy)))
        }
        (Some(Endpoint::Azure(from)), Some(Endpoint::Azure(to))) => {
            let copy = super::azure::server_side_copy(from, &source.prefix, to, &target.prefix)?;
            Ok(Some(Arc::new(copy)))
        }
        _ => Ok(None),
    }
}
