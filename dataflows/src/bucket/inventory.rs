//! What a run learns of a bucket from listings alone: its block folders, which of them hold a
//! meta.json (and which version of it), their marks, and their objects with sizes.
//!
//! One recursive listing of the bucket (paged by the store, 1,000 keys a page on S3) replaces a
//! listing of every block folder and a request for every meta.json: a block whose meta.json was
//! read before is known by the listing's size and ETag of that meta.json (a meta.json never
//! changes; a rewritten one has another ETag), and a folder without one is a partial upload,
//! known without asking.

use std::collections::{BTreeMap, BTreeSet};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::error::SourceError;
use crate::model::layout::{Layout, Tenants};
use crate::model::markers::DELETION_MARK;
use crate::model::meta::META_FILENAME;

/// What tells one version of an object from another: its size, ETag and time of last change,
/// as a listing gives them (some stores list no ETag; a write's answer gives no time).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Validator {
    pub(crate) size: u64,
    pub(crate) e_tag: Option<String>,
    #[serde(default)]
    pub(crate) last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

impl Validator {
    /// Whether two sightings are of the same version: the same size, and the same ETag and time
    /// wherever both sightings know them, with at least one of the two known to both. Otherwise
    /// nothing can be told, and the object is read again.
    pub(crate) fn same(&self, other: &Validator) -> bool {
        let e_tags = self.e_tag.as_ref().zip(other.e_tag.as_ref()).map(|(a, b)| a == b);
        let times = self.last_modified.zip(other.last_modified).map(|(a, b)| a == b);
        self.size == other.size
            && (e_tags.is_some() || times.is_some())
            && e_tags != Some(false)
            && times != Some(false)
    }
}

/// One block folder as listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Folder {
    /// Its meta.json, when it has one.
    pub(crate) meta: Option<Validator>,
    /// Every other object, relative to the folder, with its size and ETag.
    pub(crate) objects: Vec<(String, u64, Option<String>)>,
    /// Mimir and Cortex: the tenant's `markers/` folder holds a deletion mark of this block.
    pub(crate) tenant_deletion_mark: bool,
}

impl Folder {
    /// The objects other than meta.json, relative to the folder, with their sizes.
    pub(crate) fn sizes(&self) -> Vec<(String, u64)> {
        self.objects.iter().map(|(rel, size, _)| (rel.clone(), *size)).collect()
    }

    /// Whether the folder holds a deletion mark, its own or its tenant's.
    pub(crate) fn deletion_marked(&self) -> bool {
        self.tenant_deletion_mark || self.objects.iter().any(|(rel, _, _)| rel == DELETION_MARK)
    }
}

/// The block folders of a bucket, by folder (`<ULID>` or `<tenant>/<ULID>`).
pub(crate) type Inventory = BTreeMap<String, Folder>;

/// Which side of a replication a bucket is: the source's folders are checked and noted in the
/// log (tenant names, folders that are not blocks); the target's are taken as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Source,
    Target,
}

/// Lists every block folder of `store` in `layout`, with its objects.
pub(crate) async fn take_inventory(
    store: &dyn ObjectStore,
    layout: &Layout,
    side: Side,
) -> Result<Inventory, SourceError> {
    let mut inventory = Inventory::new();
    let mut others = BTreeSet::new();
    match layout {
        Layout::Thanos => list_into(store, None, side, &mut inventory, &mut others).await?,
        Layout::Tenants(tenants) => {
            for tenant in tenant_folders(store, tenants, side).await? {
                list_into(store, Some(&tenant), side, &mut inventory, &mut others).await?;
            }
        }
    }
    if side == Side::Source {
        for folder in others {
            tracing::info!(%folder, "left alone: a folder whose name is not a block ULID");
        }
    }
    Ok(inventory)
}

/// The selected tenants' folders. For a source, a mapping onto a tenant that keeps its own name
/// is refused (the two would mix in the target), and enabled tenants it lacks are noted.
pub(crate) async fn tenant_folders(
    store: &dyn ObjectStore,
    tenants: &Tenants,
    side: Side,
) -> Result<Vec<Path>, SourceError> {
    let listing = store.list_with_delimiter(None).await.map_err(SourceError::List)?;
    let selected: Vec<Path> =
        listing.common_prefixes.into_iter().filter(|p| p.filename().is_some_and(|t| tenants.selects(t))).collect();
    if side == Side::Source {
        let names: BTreeSet<&str> = selected.iter().filter_map(|p| p.filename()).collect();
        for (from, to) in &tenants.mapping {
            if names.contains(to.as_str()) && !tenants.mapping.contains_key(to) {
                return Err(SourceError::TenantCollision { from: from.clone(), to: to.clone() });
            }
        }
        for missing in tenants.enabled.iter().filter(|t| !names.contains(t.as_str())) {
            tracing::warn!(tenant = %missing, "--enabled-tenants names a tenant the source does not have");
        }
    }
    Ok(selected)
}

/// Adds the block folders under `prefix` (the root when `None`) to `inventory`, and the names of
/// folders there that are not blocks to `others`. Paths are kept as listed, so that a tenant
/// name is never encoded a second time.
async fn list_into(
    store: &dyn ObjectStore,
    prefix: Option<&Path>,
    side: Side,
    inventory: &mut Inventory,
    others: &mut BTreeSet<String>,
) -> Result<(), SourceError> {
    let lead = prefix.map(|p| format!("{p}/")).unwrap_or_default();
    let mut objects = store.list(prefix);
    // A listing gives a folder's objects one after another: the folder being filled is kept
    // aside, so that an object costs neither a ULID parse nor a map lookup.
    let mut filling: Option<(String, Folder)> = None;
    while let Some(object) = objects.try_next().await.map_err(SourceError::List)? {
        let Some(rest) = object.location.as_ref().strip_prefix(&lead) else { continue };
        let Some((name, rel_path)) = rest.split_once('/') else { continue };
        if filling.as_ref().is_none_or(|(filled, _)| filled != name) {
            if Ulid::from_string(name).is_err() {
                // Mimir keeps a tenant's deletion marks in markers/<ULID>-deletion-mark.json.
                let mark = rel_path.strip_suffix(&format!("-{DELETION_MARK}")).filter(|_| name == "markers");
                match mark.filter(|id| Ulid::from_string(id).is_ok()) {
                    Some(id) => inventory.entry(format!("{lead}{id}")).or_default().tenant_deletion_mark = true,
                    None if name != "markers" => {
                        others.insert(format!("{lead}{name}"));
                    }
                    None => {}
                }
                continue;
            }
            if let Some((filled, folder)) = filling.replace((name.to_string(), Folder::default())) {
                add_folder(inventory, format!("{lead}{filled}"), folder);
            }
        }
        let Some((_, folder)) = filling.as_mut() else { continue };
        let e_tag = match side {
            // A source's ETags serve only to know its meta.json again.
            Side::Source if rel_path != META_FILENAME => None,
            _ => object.e_tag,
        };
        if rel_path == META_FILENAME {
            folder.meta = Some(Validator { size: object.size, e_tag, last_modified: Some(object.last_modified) });
        } else {
            folder.objects.push((rel_path.to_string(), object.size, e_tag));
        }
    }
    if let Some((filled, folder)) = filling {
        add_folder(inventory, format!("{lead}{filled}"), folder);
    }
    // A tenant's deletion mark of a block it no longer has names no folder.
    inventory.retain(|_, folder| folder.meta.is_some() || !folder.objects.is_empty());
    Ok(())
}

/// Adds a folder's objects to what `inventory` knows of it already: a store that lists a
/// folder's objects apart from each other, or a tenant's deletion mark listed first.
fn add_folder(inventory: &mut Inventory, dir: String, folder: Folder) {
    let known = inventory.entry(dir).or_default();
    known.meta = folder.meta.or(known.meta.take());
    known.objects.extend(folder.objects);
    known.tenant_deletion_mark |= folder.tenant_deletion_mark;
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    const A: &str = "01HF856H80D55FJT0TCK9K0631";
    const B: &str = "01HF8C28G05MPHBJ1NQ6DRD1SD";

    async fn put(store: &InMemory, path: &str, body: &'static [u8]) {
        store.put(&Path::from(path), PutPayload::from_static(body)).await.unwrap();
    }

    #[tokio::test]
    async fn one_listing_tells_folders_metas_marks_and_objects() {
        let store = InMemory::new();
        put(&store, &format!("{A}/meta.json"), b"{}").await;
        put(&store, &format!("{A}/index"), b"12345").await;
        put(&store, &format!("{A}/chunks/000001"), b"1").await;
        put(&store, &format!("{B}/index"), b"1").await;
        put(&store, "debug/meta.json", b"x").await;
        let inventory = take_inventory(&store, &Layout::Thanos, Side::Source).await.unwrap();
        assert_eq!(inventory.keys().collect::<Vec<_>>(), [A, B]);
        assert_eq!(inventory[A].meta.as_ref().map(|v| v.size), Some(2));
        assert!(inventory[A].meta.as_ref().unwrap().e_tag.is_some(), "the meta.json's ETag tells its version");
        let mut sizes = inventory[A].sizes();
        sizes.sort();
        assert_eq!(sizes, [("chunks/000001".to_string(), 1), ("index".to_string(), 5)]);
        assert_eq!(inventory[B].meta, None, "a partial upload, known without a request");
    }

    #[tokio::test]
    async fn tenants_and_their_markers_folder() {
        let store = InMemory::new();
        put(&store, &format!("team-a/{A}/meta.json"), b"{}").await;
        put(&store, &format!("team-a/markers/{A}-deletion-mark.json"), b"{}").await;
        put(&store, "team-a/bucket-index.json.gz", b"x").await;
        put(&store, &format!("team-b/{B}/meta.json"), b"{}").await;
        let layout = Layout::Tenants(Tenants::default());
        let inventory = take_inventory(&store, &layout, Side::Source).await.unwrap();
        assert_eq!(inventory.keys().cloned().collect::<Vec<_>>(), [format!("team-a/{A}"), format!("team-b/{B}")]);
        assert!(inventory[&format!("team-a/{A}")].deletion_marked());
        assert!(!inventory[&format!("team-b/{B}")].deletion_marked());
    }
}
