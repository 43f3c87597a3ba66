//! Folder to folder, the kernel copies each file larger than [`STREAMED_UP_TO`]
//! (`copy_file_range` on Linux, through `std::fs::copy`): no byte passes through bucketflow's
//! buffers. The engine checks the copy afterwards as it checks a streamed one (size, and SHA256
//! where meta.json lists one), so the kernel is trusted no more than a stream. A small file is
//! streamed: read whole in one task and written in another, with its hash checked on the way,
//! it costs less than a copy followed by a check.

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bucketflow_dataflows::{ServerSideCopy, ServerSideError};
use object_store::local::LocalFileSystem;
use object_store::path::Path;

/// Files up to this size are streamed; see the module.
const STREAMED_UP_TO: u64 = 1024 * 1024;

/// Copies between two folders of this machine; see the module.
pub struct KernelCopy {
    source: LocalFileSystem,
    target: LocalFileSystem,
    /// The two folders, for the log.
    folders: (PathBuf, PathBuf),
}

impl std::fmt::Debug for KernelCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kernel copy from {} to {}", self.folders.0.display(), self.folders.1.display())
    }
}

impl KernelCopy {
    /// Copies from the folder `source` to the folder `target` (each with the bucket's prefix).
    pub fn new(source: &FsPath, target: &FsPath) -> Result<Self, String> {
        let open = |dir: &FsPath| LocalFileSystem::new_with_prefix(dir).map_err(|e| format!("{}: {e}", dir.display()));
        let folders = (source.to_path_buf(), target.to_path_buf());
        Ok(KernelCopy { source: open(source)?, target: open(target)?, folders })
    }
}

/// A file being copied is written under `<name>#<digits>` beside its place, the name
/// object_store's own folder store stages its writes under and leaves out of its listings, and
/// renamed into place whole.
fn staged_name(to: &FsPath) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    to.with_file_name(format!("{name}#{}{n}", std::process::id()))
}

fn copy_file(from: &FsPath, to: &FsPath) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let staged = staged_name(to);
    let copied = std::fs::copy(from, &staged).and_then(|_| std::fs::rename(&staged, to));
    if copied.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    copied
}

#[async_trait]
impl ServerSideCopy for KernelCopy {
    async fn copy(&self, path: &Path, size: u64) -> Result<(), ServerSideError> {
        if size <= STREAMED_UP_TO {
            return Err(ServerSideError::Unsuitable(format!("{size} bytes: a small file is streamed")));
        }
        let from = self.source.path_to_filesystem(path).map_err(ServerSideError::Failed)?;
        let to = self.target.path_to_filesystem(path).map_err(ServerSideError::Failed)?;
        let location = path.to_string();
        let (source, copied) = tokio::task::spawn_blocking(move || (from.clone(), copy_file(&from, &to)))
            .await
            .map_err(|source| ServerSideError::Failed(object_store::Error::JoinError { source }))?;
        copied.map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound if !source.exists() => {
                ServerSideError::Failed(object_store::Error::NotFound { path: location, source: error.into() })
            }
            _ => ServerSideError::Failed(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: format!("copying {location}: {error}").into(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn copies_whole_files_into_new_folders_and_names_a_missing_source() {
        let (source, target) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::create_dir_all(source.path().join("block/chunks")).unwrap();
        let body = vec![7u8; STREAMED_UP_TO as usize + 1];
        std::fs::write(source.path().join("block/chunks/000001"), &body).unwrap();
        let copy = KernelCopy::new(source.path(), target.path()).unwrap();
        let small = copy.copy(&Path::from("block/chunks/000001"), STREAMED_UP_TO).await.unwrap_err();
        assert!(matches!(small, ServerSideError::Unsuitable(_)), "a small file is streamed: {small}");
        copy.copy(&Path::from("block/chunks/000001"), body.len() as u64).await.unwrap();
        let copied = target.path().join("block/chunks");
        assert_eq!(std::fs::read(copied.join("000001")).unwrap(), body);
        let names: Vec<_> = std::fs::read_dir(&copied).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["000001"], "no staged file is left behind");
        let missing = copy.copy(&Path::from("block/index"), STREAMED_UP_TO + 1).await.unwrap_err();
        assert!(
            matches!(missing, ServerSideError::Failed(object_store::Error::NotFound { .. })),
            "a missing source object is named as missing: {missing}"
        );
    }
}
