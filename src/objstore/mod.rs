//! Bucket configuration: Thanos objstore YAML and URLs, mapped onto object_store.

mod azure;
mod gcs;
mod http;
mod s3;
mod secret;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use serde::Deserialize;

pub use self::http::Retries;
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
}

impl Bucket {
    fn new(store: Arc<dyn ObjectStore>, identity: Option<String>, prefix: &str) -> Bucket {
        let prefix = ObjectPath::from(prefix.trim_matches('/'));
        let prefixed: Arc<dyn ObjectStore> = if prefix.as_ref().is_empty() {
            store.clone()
        } else {
            Arc::new(PrefixStore::new(store.clone(), prefix.clone()))
        };
        Bucket { store: prefixed, base: identity.map(|id| (id, store)), prefix, place: None }
    }

    /// Sets where the bucket lives: `root` (kind and location, e.g. `["s3", endpoint, bucket]`),
    /// then the bucket's prefix.
    fn at(mut self, root: impl IntoIterator<Item = String>) -> Bucket {
        let mut place: Vec<String> = root.into_iter().collect();
        place.extend(self.prefix.parts().map(|p| p.as_ref().to_string()));
        self.place = Some(place);
        self
    }

    /// Whether the two buckets may share objects: one's place is the other's, or inside it.
    pub fn overlaps(&self, other: &Bucket) -> bool {
        match (&self.place, &other.place) {
            (Some(a), Some(b)) => a.starts_with(b) || b.starts_with(a),
            _ => false,
        }
    }
}

/// An endpoint as written in a URL or YAML, without scheme or trailing slash.
fn bare_endpoint(endpoint: &str) -> String {
    let bare = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    bare.trim_end_matches('/').to_ascii_lowercase()
}

/// A folder's place: its canonical path, segment by segment.
fn folder_place(directory: &Path) -> Vec<String> {
    let canonical = std::fs::canonicalize(directory).unwrap_or_else(|_| directory.to_path_buf());
    std::iter::once("file".to_string())
        .chain(canonical.components().map(|c| c.as_os_str().to_string_lossy().into_owned()))
        .collect()
}

/// Server-side copy applies when both sides are the same store.
pub fn same_store(source: &Bucket, target: &Bucket) -> Option<bucketflow_dataflows::copy::SameStore> {
    let ((source_id, store), (target_id, _)) = (source.base.as_ref()?, target.base.as_ref()?);
    (source_id == target_id).then(|| bucketflow_dataflows::copy::SameStore {
        store: store.clone(),
        source_prefix: source.prefix.clone(),
        target_prefix: target.prefix.clone(),
    })
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
    let (store, identity, ignored, root) = match kind.as_str() {
        "FILESYSTEM" => {
            let fs: FilesystemConfig = typed("FILESYSTEM", config.config).context("expected `directory`")?;
            (filesystem(&fs.directory, side)?, None, Vec::new(), folder_place(&fs.directory))
        }
        "S3" => {
            let s3: s3::S3Config = typed("S3", config.config)?;
            let (store, ignored) = s3.build(retries)?;
            let root = vec!["s3".into(), bare_endpoint(&s3.endpoint), s3.bucket.clone()];
            (store, Some(s3.identity()), ignored, root)
        }
        "GCS" => {
            let gcs: gcs::GcsConfig = typed("GCS", config.config)?;
            let (store, ignored) = gcs.build(retries)?;
            (store, Some(gcs.identity()), ignored, vec!["gcs".into(), gcs.bucket.clone()])
        }
        "AZURE" => {
            let az: azure::AzureConfig = typed("AZURE", config.config)?;
            let (store, ignored) = az.build(retries)?;
            let root = vec!["azure".into(), az.storage_account.clone(), az.container.clone()];
            (store, Some(az.identity()), ignored, root)
        }
        other => bail!("unknown objstore type {other:?}; supported: FILESYSTEM, S3, GCS, AZURE"),
    };
    warn_ignored(&kind, &ignored);
    Ok(Bucket::new(store, identity, &config.prefix).at(root))
}

/// A URL as it may be shown: the query string, which can hold credentials, is dropped.
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<options>"),
        None => url.to_string(),
    }
}

/// Splits `scheme://bucket/prefix?k=v&...` into its parts, decoding the options.
fn split_url(url: &str) -> Result<(String, String, String, Vec<(String, String)>)> {
    let parsed = url::Url::parse(url).map_err(|e| anyhow!("not a URL: {e}"))?;
    let bucket = parsed.host_str().unwrap_or_default().to_string();
    let prefix = parsed.path().trim_matches('/').to_string();
    let options = parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    Ok((parsed.scheme().to_string(), bucket, prefix, options))
}

/// Parses an option key, naming it when the store does not know it (object_store's own URL
/// parser would silently ignore it).
fn option_key<K: std::str::FromStr>(store: &str, key: &str) -> Result<K> {
    key.parse().map_err(|_| anyhow!("unknown {store} option {key:?}"))
}

/// Opens a bucket from a URL: `file:///dir`, `memory://`, `s3://bucket/prefix`,
/// `gs://bucket/prefix`, `az://container/prefix`, with object_store options as query parameters
/// (`?endpoint=http://127.0.0.1:9000&region=us-east-1&allow_http=true`).
pub fn from_url(url: &str, side: Side, retries: Retries) -> Result<Bucket> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("not a URL (expected scheme://...)");
    };
    match scheme {
        "file" => {
            if rest.is_empty() || !rest.starts_with('/') {
                bail!("a file URL needs an absolute path, as in file:///data/bucket");
            }
            Ok(Bucket::new(filesystem(Path::new(rest), side)?, None, "").at(folder_place(Path::new(rest))))
        }
        "memory" => Ok(Bucket::new(Arc::new(InMemory::new()), None, "")),
        "s3" | "s3a" => {
            let (_, bucket, prefix, options) = split_url(url)?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(&bucket).with_retry(retries.config());
            let mut identity = format!("s3|{bucket}");
            let mut endpoint = String::new();
            for (key, value) in options {
                let key: AmazonS3ConfigKey = option_key("S3", &key)?;
                if matches!(
                    key,
                    AmazonS3ConfigKey::Endpoint | AmazonS3ConfigKey::AccessKeyId | AmazonS3ConfigKey::Region
                ) {
                    identity.push_str(&format!("|{value}"));
                }
                if key == AmazonS3ConfigKey::Endpoint {
                    endpoint = bare_endpoint(&value);
                }
                builder = builder.with_config(key, value);
            }
            let root = ["s3".to_string(), endpoint, bucket];
            Ok(Bucket::new(Arc::new(builder.build()?), Some(identity), &prefix).at(root))
        }
        "gs" => {
            let (_, bucket, prefix, options) = split_url(url)?;
            let mut builder =
                GoogleCloudStorageBuilder::from_env().with_bucket_name(&bucket).with_retry(retries.config());
            for (key, value) in options {
                builder = builder.with_config(option_key::<GoogleConfigKey>("GCS", &key)?, value);
            }
            let root = ["gcs".to_string(), bucket.clone()];
            Ok(Bucket::new(Arc::new(builder.build()?), Some(format!("gs|{bucket}")), &prefix).at(root))
        }
        "az" | "azure" => {
            let (_, container, prefix, options) = split_url(url)?;
            let mut builder =
                MicrosoftAzureBuilder::from_env().with_container_name(&container).with_retry(retries.config());
            let mut identity = format!("az|{container}");
            let mut account = String::new();
            for (key, value) in options {
                let key: AzureConfigKey = option_key("Azure", &key)?;
                if matches!(key, AzureConfigKey::AccountName | AzureConfigKey::Endpoint) {
                    identity.push_str(&format!("|{value}"));
                }
                if key == AzureConfigKey::AccountName {
                    account = value.clone();
                }
                builder = builder.with_config(key, value);
            }
            let root = ["azure".to_string(), account, container];
            Ok(Bucket::new(Arc::new(builder.build()?), Some(identity), &prefix).at(root))
        }
        other => bail!("unknown URL scheme {other:?} (expected file, memory, s3, gs or az)"),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn open(text: &str) -> Result<Bucket> {
        from_yaml(text, Side::Source, Retries::default())
    }

    fn err(text: &str) -> String {
        format!("{:#}", open(text).err().expect("should fail"))
    }

    /// A GCS service-account key that never reaches Google: no OAuth, and a local base URL.
    fn local_gcs_key() -> String {
        r#"{"private_key": "", "private_key_id": "", "client_email": "test@example.com", "disable_oauth": true, "gcs_base_url": "http://127.0.0.1:1"}"#.to_string()
    }

    #[test]
    fn buckets_that_share_objects_overlap_whatever_their_spelling() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        let url = |rel: &str| {
            from_url(&format!("file://{}", dir.path().join(rel).display()), Side::Source, Retries::default()).unwrap()
        };
        let (a, ab) = (url("a"), url("a/b"));
        assert!(a.overlaps(&ab) && ab.overlaps(&a) && a.overlaps(&a), "a folder and one inside it");
        let yaml = from_yaml(
            &format!("type: FILESYSTEM\nconfig:\n  directory: {}\nprefix: b\n", dir.path().join("a").display()),
            Side::Source,
            Retries::default(),
        )
        .unwrap();
        assert!(yaml.overlaps(&ab), "a prefix is a folder inside the directory");
        std::fs::create_dir_all(dir.path().join("c")).unwrap();
        assert!(!a.overlaps(&url("c")), "siblings do not overlap");

        let s3_yaml = |prefix: &str| {
            open(&format!("type: S3\nconfig:\n  bucket: blocks\n  endpoint: 127.0.0.1:9000\n  region: r\n  insecure: true\n  access_key: AK\n  secret_key: SK\nprefix: {prefix}\n")).unwrap()
        };
        let s3_url = |prefix: &str| {
            from_url(&format!("s3://blocks/{prefix}?endpoint=http://127.0.0.1:9000/&allow_http=true&region=r&access_key_id=OTHER&secret_access_key=S"), Side::Source, Retries::default()).unwrap()
        };
        assert!(s3_yaml("eu").overlaps(&s3_url("eu/1")), "YAML and URL, other credentials, nested prefixes");
        assert!(!s3_yaml("eu").overlaps(&s3_url("us")), "other prefixes");
        assert!(!s3_yaml("").overlaps(&from_url("memory://", Side::Source, Retries::default()).unwrap()));
    }

    #[test]
    fn filesystem_yaml_opens_with_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!("type: filesystem\nconfig:\n  directory: {}\nprefix: /tenant/\n", dir.path().display());
        let bucket = open(&yaml).unwrap();
        assert_eq!(bucket.prefix.as_ref(), "tenant");
        assert!(bucket.store.to_string().contains("tenant"), "{}", bucket.store);
    }

    #[test]
    fn s3_gcs_and_azure_yaml_map_onto_object_store() {
        let s3 = open(
            "type: S3\nconfig:\n  bucket: blocks\n  endpoint: 127.0.0.1:9000\n  region: eu-west-1\n  insecure: true\n  access_key: AK\n  secret_key: SK\n  http_config:\n    idle_conn_timeout: 90s\n    response_header_timeout: 2m\n  sse_config:\n    type: SSE-S3\n",
        )
        .unwrap();
        assert!(s3.store.to_string().contains("blocks"), "{}", s3.store);
        let gcs = format!("type: GCS\nconfig:\n  bucket: blocks\n  service_account: '{}'\n", local_gcs_key());
        assert!(open(&gcs).unwrap().store.to_string().contains("blocks"));
        let az = "type: AZURE\nconfig:\n  storage_account: devstoreaccount1\n  storage_account_key: a2V5\n  container: blocks\n  endpoint: http://127.0.0.1:10000/devstoreaccount1\n";
        assert!(open(az).unwrap().store.to_string().contains("blocks"));
    }

    #[test]
    fn same_bucket_under_two_prefixes_is_one_store() {
        let yaml = |prefix: &str| {
            format!("type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  insecure: true\n  access_key: AK\n  secret_key: SK\nprefix: {prefix}\n")
        };
        let (a, b) = (open(&yaml("from")).unwrap(), open(&yaml("to")).unwrap());
        let same = same_store(&a, &b).expect("one store");
        assert_eq!((same.source_prefix.as_ref(), same.target_prefix.as_ref()), ("from", "to"));
        let other = open(&yaml("to").replace("bucket: b", "bucket: c")).unwrap();
        assert!(same_store(&a, &other).is_none());
    }

    #[test]
    fn unknown_and_invalid_configs_are_named() {
        assert!(err("type: COS\n").contains("unknown objstore type \"COS\""));
        assert!(err("type: FILESYSTEM\nconfig:\n  dir: /x\n").contains("invalid FILESYSTEM config"));
        assert!(err("type: FILESYSTEM\nconfig:\n  directory: /x\nextra: 1\n").contains("unknown field `extra`"));
        assert!(err("type: [").contains("invalid objstore YAML"));
        assert!(err("type: FILESYSTEM\nconfig:\n  directory: /nonexistent/bucketflow\n").contains("does not exist"));
        assert!(err("type: S3\nconfig:\n  bucket: b\n  buckett: c\n").contains("unknown field `buckett`"));
        assert!(err("type: S3\nconfig:\n  endpoint: x\n").contains("`bucket` is required"));
        assert!(err("type: S3\nconfig:\n  bucket: b\n  bucket_lookup_type: sideways\n").contains("sideways"));
        assert!(err("type: S3\nconfig:\n  bucket: b\n  http_config:\n    idle_conn_timeout: soon\n").contains("soon"));
        assert!(
            err("type: AZURE\nconfig:\n  container: c\n").contains("`storage_account` and `container` are required")
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let text = "bucket: b\naccess_key: AK\nsecret_key: TOPSECRET\nsession_token: TOKENSECRET\n";
        let config: s3::S3Config = serde_yaml_ng::from_str(text).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("TOPSECRET") && !debug.contains("TOKENSECRET"), "{debug}");
        let e = err("type: S3\nconfig:\n  bucket: b\n  secret_key: TOPSECRET\n  typo: 1\n");
        assert!(!e.contains("TOPSECRET"), "{e}");
        let e = format!(
            "{:#}",
            open_bucket(
                &BucketFlags {
                    url: Some("s3://b?aws_secret_access_key=TOPSECRET&nope=1".into()),
                    ..Default::default()
                },
                Side::Source,
                Retries::default()
            )
            .err()
            .unwrap()
        );
        assert!(!e.contains("TOPSECRET") && e.contains("\"nope\""), "{e}");
    }

    #[test]
    fn urls_and_their_options() {
        let r = Retries::default();
        assert!(from_url("memory://", Side::Source, r).is_ok());
        let s3 = from_url("s3://blocks/tenant/a?endpoint=http://127.0.0.1:9000&region=us-east-1&allow_http=true&access_key_id=a&secret_access_key=b", Side::Source, r).unwrap();
        assert_eq!(s3.prefix.as_ref(), "tenant/a");
        let e = |url: &str| format!("{:#}", from_url(url, Side::Target, r).err().expect("should fail"));
        assert!(e("s3://blocks?endpoint=http://x&regoin=eu").contains("unknown S3 option \"regoin\""));
        assert!(e("az://c?acount_name=x").contains("unknown Azure option \"acount_name\""));
        assert!(e("gs://b?service_acount=x").contains("unknown GCS option \"service_acount\""));
        let gs = format!(
            "gs://b/p?service_account_key={}",
            url::form_urlencoded::byte_serialize(local_gcs_key().as_bytes()).collect::<String>()
        );
        assert!(from_url(&gs, Side::Source, r).is_ok());
        assert!(e("file://relative").contains("absolute"));
        assert!(e("nope").contains("not a URL"));
        assert!(e("ftp://x").contains("unknown URL scheme"));
    }
}
