//! Bucket configuration: Thanos objstore YAML and URLs, mapped onto object_store.
//!
//! Each provider's module reads both spellings of a bucket, YAML and URL, into one config; the
//! store, the identity (which buckets are one store, for server-side copies) and the place (which
//! buckets share objects, for move mode) all come from that config, so that a bucket is the same
//! bucket however it was named.

mod azure;
mod azure_copy;
mod bucket;
mod copy_request;
#[cfg(test)]
mod fake_http;
mod filesystem;
mod gcs;
mod gcs_copy;
mod http;
mod s3;
mod s3_copy;
mod s3_parts;
mod secret;
mod settings;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde::Deserialize;

use self::azure::AzureBucket;
pub use self::bucket::{provider_copy, same_store, Bucket, Endpoint};
use self::filesystem::Folder;
use self::gcs::GcsBucket;
pub use self::http::Retries;
use self::s3::S3Bucket;
pub use self::settings::redact_url;
use self::settings::BucketUrl;
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

/// A bucket's provider with its config, read from YAML or from a URL.
enum Provider {
    Filesystem(Folder),
    Memory,
    S3(S3Bucket),
    Gcs(GcsBucket),
    Azure(AzureBucket),
}

impl Provider {
    /// The YAML fields set that object_store cannot honour.
    fn ignored(&self) -> &[&'static str] {
        match self {
            Provider::Filesystem(_) | Provider::Memory => &[],
            Provider::S3(s3) => &s3.ignored,
            Provider::Gcs(gcs) => &gcs.ignored,
            Provider::Azure(azure) => &azure.ignored,
        }
    }

    /// Opens the store, under `prefix`, with its identity and place. Folders have no identity:
    /// they never copy server-side. Memory has no place either: no two memory buckets share
    /// objects.
    fn open(&self, prefix: &str, side: Side, retries: Retries) -> Result<Bucket> {
        let mut endpoint = None;
        let (store, identity, place): (Arc<dyn ObjectStore>, _, _) = match self {
            // The place comes after opening, which creates a target's folder to canonicalize.
            Provider::Filesystem(folder) => {
                let store = folder.open(side)?;
                endpoint = Some(Endpoint::Folder(folder.directory().to_path_buf()));
                (store, None, Some(folder.place()))
            }
            Provider::Memory => (Arc::new(InMemory::new()), None, None),
            Provider::S3(s3) => {
                let (store, s3_endpoint) = s3.build(retries)?;
                endpoint = Some(Endpoint::S3(s3_endpoint));
                (store, Some(s3.identity()), Some(s3.place()))
            }
            Provider::Gcs(gcs) => {
                let (store, gcs_endpoint) = gcs.build(retries)?;
                endpoint = Some(Endpoint::Gcs(gcs_endpoint));
                (store, Some(gcs.identity()), Some(gcs.place()))
            }
            Provider::Azure(azure) => {
                let (store, azure_endpoint) = azure.build(retries)?;
                endpoint = Some(Endpoint::Azure(azure_endpoint));
                (store, Some(azure.identity()), Some(azure.place()))
            }
        };
        Ok(Bucket { endpoint, ..Bucket::new(store, identity, prefix, place) })
    }
}

/// Opens the bucket described by one side's flags.
pub fn open_bucket(flags: &BucketFlags, side: Side, retries: Retries) -> Result<Bucket> {
    match (&flags.config_file, &flags.config, &flags.url) {
        (Some(path), None, None) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading objstore config file {}", path.display()))?;
            from_yaml(&text, side, retries).with_context(|| format!("objstore config file {}", path.display()))
        }
        (None, Some(text), None) => from_yaml(text, side, retries).context("inline objstore config"),
        (None, None, Some(url)) => {
            from_url(url, side, retries).with_context(|| format!("bucket URL {}", redact_url(url)))
        }
        (None, None, None) => bail!("no {side:?} bucket: give {}", side.flags()),
        _ => bail!("give only one of {}", side.flags()),
    }
}

fn typed<T: serde::de::DeserializeOwned>(kind: &str, config: serde_yaml_ng::Value) -> Result<T> {
    serde_yaml_ng::from_value(config).with_context(|| format!("invalid {kind} config"))
}

fn warn_ignored(kind: &str, ignored: &[&str]) {
    if !ignored.is_empty() {
        tracing::warn!(
            objstore = kind,
            fields = ignored.join(","),
            "config fields that bucketflow cannot honour are ignored"
        );
    }
}

/// Parses Thanos objstore YAML and opens the bucket.
pub fn from_yaml(text: &str, side: Side, retries: Retries) -> Result<Bucket> {
    let config: BucketConfig = serde_yaml_ng::from_str(text).context("invalid objstore YAML")?;
    let kind = config.kind.to_ascii_uppercase();
    let provider = match kind.as_str() {
        "FILESYSTEM" => Provider::Filesystem(Folder::from_yaml(config.config)?),
        "S3" => Provider::S3(S3Bucket::from_yaml(&typed("S3", config.config)?)?),
        "GCS" => Provider::Gcs(GcsBucket::from_yaml(&typed("GCS", config.config)?)?),
        "AZURE" => Provider::Azure(AzureBucket::from_yaml(&typed("AZURE", config.config)?)?),
        other => bail!("unknown objstore type {other:?}; supported: FILESYSTEM, S3, GCS, AZURE"),
    };
    let bucket = provider.open(&config.prefix, side, retries)?;
    warn_ignored(&kind, provider.ignored());
    Ok(bucket)
}

/// Opens a bucket from a URL: `file:///dir`, `memory://`, `s3://bucket/prefix`,
/// `gs://bucket/prefix`, `az://container/prefix`, with object_store options as query parameters
/// (`?endpoint=http://127.0.0.1:9000&region=us-east-1&allow_http=true`).
pub fn from_url(url: &str, side: Side, retries: Retries) -> Result<Bucket> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("not a URL (expected scheme://...)");
    };
    let (provider, prefix) = match scheme {
        "file" => (Provider::Filesystem(Folder::from_url(rest)?), String::new()),
        "memory" => (Provider::Memory, String::new()),
        "s3" | "s3a" => {
            let url = BucketUrl::parse(url)?;
            (Provider::S3(S3Bucket::from_url(&url.bucket, &url.options)?), url.prefix)
        }
        "gs" => {
            let url = BucketUrl::parse(url)?;
            (Provider::Gcs(GcsBucket::from_url(&url.bucket, &url.options)?), url.prefix)
        }
        "az" | "azure" => {
            let url = BucketUrl::parse(url)?;
            (Provider::Azure(AzureBucket::from_url(&url.bucket, &url.options)?), url.prefix)
        }
        other => bail!("unknown URL scheme {other:?} (expected file, memory, s3, gs or az)"),
    };
    provider.open(&prefix, side, retries)
}

#[cfg(test)]
mod tests;
