//! Folder to folder, the kernel copies each file larger than [`STREAMED_UP_TO`] and up to
//! [`KERNEL_COPY_MAX`] (`copy_file_range` on Linux, through `std::fs::copy`): no byte passes
//! through bucketflow's buffers. The engine checks the copy afterwards as it checks a streamed one (size, and SHA256
//! where meta.json lists one), so the kernel is trusted no more than a stream. A small file is
//! streamed: read whole in one task and written in another, with its hash checked on the way,
//! it costs less than a copy followed by a check.

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bucketflow_dataflows::{ServerSideCopy, ServerSideError};
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use super::super::copy_request::under;

/// Files up to this size are streamed; see the module.
const STREAMED_UP_TO: u64 = 1024 * 1024;

/// Larger files are streamed too: a kernel copy cannot be stopped once it started, and a stop
/// must end within `--grace-period`; a streamed copy stops between parts.
const KERNEL_COPY_MAX: u64 = 1024 * 1024 * 1024;

/// Copies between two folders of this machine; see the module.
pub struct KernelCopy {
    source: LocalFileSystem,
    target: LocalFileSystem,
    /// Each bucket's prefix under its folder (the target's may not exist yet).
    prefixes: (Path, Path),
    /// The two folders, for the log.
    folders: (PathBuf, PathBuf),
}

impl std::fmt::Debug for KernelCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (from, to) = (&self.folders, &self.prefixes);
        write!(f, "kernel copy from {}:{} to {}:{}", from.0.display(), to.0, from.1.display(), to.1)
    }
}

impl KernelCopy {
    /// Copies from the folder `source` under `source_prefix` to the folder `target` under
    /// `target_prefix`. Both folders must exist.
    pub fn new(source: &FsPath, source_prefix: &Path, target: &FsPath, target_prefix: &Path) -> Result<Self, String> {
        let open = |dir: &FsPath| LocalFileSystem::new_with_prefix(dir).map_err(|e| format!("{}: {e}", dir.display()));
        Ok(KernelCopy {
            source: open(source)?,
            target: open(target)?,
            prefixes: (source_prefix.clone(), target_prefix.clone()),
            folders: (source.to_path_buf(), target.to_path_buf()),
        })
    }
}

/// A file being copied is written under `<name>#<digits>` beside its place, the name
/// object_store's own folder store stages its writes under and leaves out of its listings, and
/// renamed into place whole.
fn staged_name(to: &FsPath) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // The process id takes ten digits, so that no two processes' names can meet.
    to.with_file_name(format!("{name}#{:010}{n}", std::process::id()))
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
        if size <= STREAMED_UP_TO || size > KERNEL_COPY_MAX {
            return Err(ServerSideError::Unsuitable(format!("{size} bytes: streamed, not copied by the kernel")));
        }
        let from = self.source.path_to_filesystem(&under(&self.prefixes.0, path)).map_err(ServerSideError::Failed)?;
        let to = self.target.path_to_filesystem(&under(&self.prefixes.1, path)).map_err(ServerSideError::Failed)?;
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
        // The source bucket is a prefix of its folder; the target's prefix does not exist yet.
        std::fs::create_dir_all(source.path().join("src/block/chunks")).unwrap();
        let body = vec![7u8; STREAMED_UP_TO as usize + 1];
        std::fs::write(source.path().join("src/block/chunks/000001"), &body).unwrap();
        let copy = KernelCopy::new(source.path(), &Path::from("src"), target.path(), &Path::from("dst")).unwrap();
        for streamed in [STREAMED_UP_TO, KERNEL_COPY_MAX + 1] {
            let error = copy.copy(&Path::from("block/chunks/000001"), streamed).await.unwrap_err();
            assert!(matches!(error, ServerSideError::Unsuitable(_)), "{streamed} bytes are streamed: {error}");
        }
        copy.copy(&Path::from("block/chunks/000001"), body.len() as u64).await.unwrap();
        let copied = target.path().join("dst/block/chunks");
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
