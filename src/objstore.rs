//! Bucket configuration: Thanos objstore YAML and URLs, mapped onto object_store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use serde::Deserialize;

use crate::cli::BucketFlags;

/// Which side a bucket is on; the source is only ever read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

impl Side {
    fn flags(self) -> &'static str {
        match self {
            Side::Source => "--objstore.config-file, --objstore.config or --from",
            Side::Target => "--objstore-to.config-file, --objstore-to.config or --to",
        }
    }
}

/// Thanos's objstore configuration (`type`, `config`, optional `prefix`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub config: serde_yaml_ng::Value,
    #[serde(default)]
    pub prefix: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesystemConfig {
    directory: PathBuf,
}

/// Types Thanos supports that bucketflow maps onto object_store in a later release.
const PLANNED_TYPES: [&str; 3] = ["S3", "GCS", "AZURE"];

/// Opens the bucket described by one side's flags.
pub fn open_bucket(flags: &BucketFlags, side: Side) -> Result<Arc<dyn ObjectStore>> {
    match (&flags.config_file, &flags.config, &flags.url) {
        (Some(path), None, None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading objstore config file {}", path.display()))?;
            from_yaml(&text, side).with_context(|| format!("objstore config file {}", path.display()))
        }
        (None, Some(text), None) => from_yaml(text, side).context("inline objstore config"),
        (None, None, Some(url)) => from_url(url, side).with_context(|| format!("bucket URL {url}")),
        (None, None, None) => bail!("no {side:?} bucket: give {}", side.flags()),
        _ => bail!("give only one of {}", side.flags()),
    }
}

/// Parses Thanos objstore YAML and opens the bucket.
pub fn from_yaml(text: &str, side: Side) -> Result<Arc<dyn ObjectStore>> {
    let config: BucketConfig = serde_yaml_ng::from_str(text).context("invalid objstore YAML")?;
    let kind = config.kind.to_ascii_uppercase();
    let store: Arc<dyn ObjectStore> = match kind.as_str() {
        "FILESYSTEM" => {
            let fs: FilesystemConfig =
                serde_yaml_ng::from_value(config.config).context("invalid FILESYSTEM config (expected `directory`)")?;
            filesystem(&fs.directory, side)?
        }
        planned if PLANNED_TYPES.contains(&planned) => {
            bail!("objstore type {planned} is not supported yet; FILESYSTEM is (and file:// URLs)")
        }
        other => bail!("unknown objstore type {other:?}; supported: FILESYSTEM"),
    };
    Ok(with_prefix(store, &config.prefix))
}

/// Opens a bucket from a URL: `file:///dir` or `memory://`.
pub fn from_url(url: &str, side: Side) -> Result<Arc<dyn ObjectStore>> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("not a URL (expected scheme://...)");
    };
    match scheme {
        "file" => {
            if rest.is_empty() || !rest.starts_with('/') {
                bail!("a file URL needs an absolute path, as in file:///data/bucket");
            }
            filesystem(Path::new(rest), side)
        }
        "memory" => Ok(Arc::new(InMemory::new())),
        "s3" | "s3a" | "gs" | "az" | "azure" | "abfs" | "abfss" | "http" | "https" => {
            bail!("{scheme}:// buckets are not supported yet; file:// and memory:// are")
        }
        other => bail!("unknown URL scheme {other:?}"),
    }
}

fn filesystem(directory: &Path, side: Side) -> Result<Arc<dyn ObjectStore>> {
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
    Ok(Arc::new(fs.with_automatic_cleanup(true)))
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", from_yaml(text, Side::Source).unwrap_err())
    }

    #[test]
    fn filesystem_yaml_opens_with_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!("type: filesystem\nconfig:\n  directory: {}\nprefix: /tenant/\n", dir.path().display());
        let store = from_yaml(&yaml, Side::Source).unwrap();
        assert!(store.to_string().contains("tenant"), "{store}");
    }

    #[test]
    fn planned_unknown_and_invalid_configs_are_named() {
        assert!(err("type: S3\nconfig:\n  bucket: b\n").contains("S3 is not supported yet"));
        assert!(err("type: GCS\nconfig: {}\n").contains("GCS is not supported yet"));
        assert!(err("type: AZURE\n").contains("AZURE is not supported yet"));
        assert!(err("type: COS\n").contains("unknown objstore type \"COS\""));
        assert!(err("type: FILESYSTEM\nconfig:\n  dir: /x\n").contains("invalid FILESYSTEM config"));
        assert!(err("type: FILESYSTEM\nconfig:\n  directory: /x\nextra: 1\n").contains("unknown field `extra`"));
        assert!(err("type: [").contains("invalid objstore YAML"));
        assert!(err("type: FILESYSTEM\nconfig:\n  directory: /nonexistent/bucketflow\n").contains("does not exist"));
    }

    #[test]
    fn urls() {
        assert!(from_url("memory://", Side::Source).is_ok());
        assert!(format!("{:#}", from_url("s3://bucket", Side::Target).unwrap_err()).contains("not supported yet"));
        assert!(format!("{:#}", from_url("file://relative", Side::Target).unwrap_err()).contains("absolute"));
        assert!(format!("{:#}", from_url("nope", Side::Target).unwrap_err()).contains("not a URL"));
    }
}
