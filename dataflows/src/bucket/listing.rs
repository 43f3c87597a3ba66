//! Listing a bucket: its block folders, and the objects of one block folder.

use object_store::path::Path;
use object_store::ObjectStore;
use ulid::Ulid;

use super::error::SourceError;
use super::inventory::{tenant_folders, Side};
use crate::model::block::folder_path;
use crate::model::layout::Layout;

/// The block folders at the bucket root: every common prefix whose name is a ULID. Anything else
/// at the root (debug folders, bucket indexes) is not a block and is left alone.
pub async fn list_block_dirs(store: &dyn ObjectStore) -> Result<Vec<String>, SourceError> {
    list_block_dirs_under(store, None).await
}

/// The block folders of a bucket in `layout`: `<ULID>` at the root, or `<tenant>/<ULID>` in the
/// selected tenants' folders.
pub(crate) async fn list_blocks(store: &dyn ObjectStore, layout: &Layout) -> Result<Vec<String>, SourceError> {
    let Layout::Tenants(tenants) = layout else {
        return list_block_dirs(store).await;
    };
    let mut dirs = Vec::new();
    for tenant in tenant_folders(store, tenants, Side::Source).await? {
        dirs.extend(list_block_dirs_under(store, Some(&tenant)).await?);
    }
    Ok(dirs)
}

/// The ULID-named folders under `prefix` (the root when `None`), as paths from the root. The
/// prefix is the listed path itself, so that a tenant name is never encoded a second time. Other
/// folders are named in the log, as left alone.
async fn list_block_dirs_under(store: &dyn ObjectStore, prefix: Option<&Path>) -> Result<Vec<String>, SourceError> {
    let listing = store.list_with_delimiter(prefix).await.map_err(SourceError::List)?;
    let mut dirs = Vec::new();
    for name in listing.common_prefixes.iter().filter_map(|p| p.filename()) {
        if Ulid::from_string(name).is_ok() {
            dirs.push(prefix.map_or_else(|| name.to_string(), |p| format!("{p}/{name}")));
        } else if name != "markers" {
            tracing::info!(folder = name, prefix = ?prefix.map(|p| p.as_ref()), "left alone: a folder whose name is not a block ULID");
        }
    }
    Ok(dirs)
}

/// The objects under a block folder, as paths relative to it, with their sizes.
pub(crate) async fn list_block(store: &dyn ObjectStore, dir: &str) -> Result<Vec<(String, u64)>, SourceError> {
    let objects = list_block_objects(store, dir)
        .await
        .map_err(|source| SourceError::ListBlock { block: dir.to_string(), source })?;
    Ok(objects.into_iter().map(|(rel_path, size, _)| (rel_path, size)).collect())
}

/// The objects under block folder `dir`: path relative to the folder, size and ETag.
///
/// The folder is listed folder by folder (delimiter listings), not by one listing of everything
/// under its prefix: some S3-compatible servers (s3s-fs among them) answer a prefix listing by
/// walking the whole bucket, so that one block's listing costs the bucket's time, while a
/// folder's listing costs that folder's. `chunks/`, which every block has, is listed beside the
/// block's own folder, so that a block costs one round trip (two requests); any other subfolder
/// is listed once it is seen.
pub(crate) async fn list_block_objects(
    store: &dyn ObjectStore,
    dir: &str,
) -> object_store::Result<Vec<(String, u64, Option<String>)>> {
    let folder = folder_path(dir);
    let chunks = folder.clone().join("chunks");
    let (top, in_chunks) =
        futures::join!(store.list_with_delimiter(Some(&folder)), store.list_with_delimiter(Some(&chunks)));
    let (top, in_chunks) = (top?, in_chunks?);
    let mut objects = top.objects;
    objects.extend(in_chunks.objects);
    let mut folders: Vec<Path> = top.common_prefixes.into_iter().filter(|p| *p != chunks).collect();
    folders.extend(in_chunks.common_prefixes);
    while let Some(next) = folders.pop() {
        let listing = store.list_with_delimiter(Some(&next)).await?;
        objects.extend(listing.objects);
        folders.extend(listing.common_prefixes);
    }
    let folder = format!("{dir}/");
    Ok(objects
        .into_iter()
        .filter_map(|o| Some((o.location.as_ref().strip_prefix(&folder)?.to_string(), o.size, o.e_tag)))
        .collect())
}
