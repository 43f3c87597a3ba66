//! Folders as buckets: Thanos's `type: FILESYSTEM` YAML and `file:///dir` URLs.

mod kernel_copy;
mod whole_reads;

pub use kernel_copy::KernelCopy;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use serde::Deserialize;

use super::{typed, Side};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesystemConfig {
    directory: PathBuf,
}

/// A folder that holds a bucket's objects as files.
pub struct Folder {
    directory: PathBuf,
}

impl Folder {
    pub fn from_yaml(config: serde_yaml_ng::Value) -> Result<Folder> {
        let config: FilesystemConfig = typed("FILESYSTEM", config).context("expected `directory`")?;
        Ok(Folder { directory: config.directory })
    }

    /// The path of a `file://` URL, which must be absolute.
    pub fn from_url(path: &str) -> Result<Folder> {
        if path.is_empty() || !path.starts_with('/') {
            bail!("a file URL needs an absolute path, as in file:///data/bucket");
        }
        Ok(Folder { directory: PathBuf::from(path) })
    }

    /// The folder itself, for a kernel copy to another folder.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The folder's place: its canonical path, segment by segment. A target's folder is only
    /// created when it is opened, so this is asked after [`Folder::open`].
    pub fn place(&self) -> Vec<String> {
        let canonical = std::fs::canonicalize(&self.directory).unwrap_or_else(|_| self.directory.clone());
        std::iter::once("file".to_string())
            .chain(canonical.components().map(|c| c.as_os_str().to_string_lossy().into_owned()))
            .collect()
    }

    /// Opens the folder: a target's is created when missing, a source's must exist.
    pub fn open(&self, side: Side) -> Result<Arc<dyn ObjectStore>> {
        let directory: &Path = &self.directory;
        if side == Side::Target {
            std::fs::create_dir_all(directory)
                .with_context(|| format!("creating target directory {}", directory.display()))?;
        } else if !directory.is_dir() {
            bail!("source directory {} does not exist", directory.display());
        }
        let fs = LocalFileSystem::new_with_prefix(directory)
            .with_context(|| format!("opening directory {}", directory.display()))?;
        // A failed write leaves no half-written file behind, and empty folders are removed with
        // their last file, as in an object store.
        Ok(Arc::new(whole_reads::WholeReads::new(fs.with_automatic_cleanup(true))))
    }
}
