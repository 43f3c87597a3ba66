//! S3 buckets: Thanos's `type: S3` YAML and `s3://bucket/prefix?option=value` URLs, both read into
//! one [`S3Bucket`], from which the store, its identity and its place all come.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, Checksum, S3CopyIfNotExists};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ClientOptions, HeaderMap, HeaderValue, ObjectStore};
use serde::Deserialize;

use super::http::{HttpConfig, Retries};
use super::s3_copy::{S3Copy, S3CopySetup};
use super::secret::Secret;
use super::settings::{bare_endpoint, Settings};

/// The fields of Thanos's S3 config (objstore's providers/s3), all accepted so that an existing
/// file parses; the ones object_store cannot honour are named in a warning.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    pub endpoint: String,
    pub region: String,
    pub disable_dualstack: bool,
    pub aws_sdk_auth: bool,
    pub access_key: String,
    pub insecure: bool,
    pub signature_version2: bool,
    pub secret_key: Secret,
    pub session_token: Secret,
    pub put_user_metadata: BTreeMap<String, String>,
    pub http_config: HttpConfig,
    pub trace: Option<serde_yaml_ng::Value>,
    pub list_objects_version: String,
    pub bucket_lookup_type: String,
    pub send_content_md5: bool,
    pub disable_multipart: bool,
    pub part_size: Option<u64>,
    pub sse_config: Option<SseConfig>,
    pub sts_endpoint: String,
    pub max_retries: Option<usize>,
}

/// Thanos's server-side encryption of the objects a bucket stores (`sse_config`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SseConfig {
    /// `SSE-S3`, `SSE-KMS` or `SSE-C`.
    #[serde(rename = "type")]
    pub kind: String,
    pub kms_key_id: String,
    pub kms_encryption_context: BTreeMap<String, String>,
    /// SSE-C: the path of a file holding the 32-byte key.
    pub encryption_key: String,
}

impl SseConfig {
    /// object_store's encryption settings for this config. What object_store cannot honour is an
    /// error that names it: writing the objects without the encryption asked for would be a
    /// silent downgrade.
    fn settings(&self) -> Result<Vec<(AmazonS3ConfigKey, String)>> {
        // object_store does not export the type of its encryption keys; they parse by name.
        let key =
            |name: &str| -> AmazonS3ConfigKey { name.parse().expect("object_store names its encryption keys so") };
        if !self.kms_encryption_context.is_empty() {
            bail!("S3 config: sse_config.kms_encryption_context cannot be honoured (object_store sends no encryption context); remove it or use another tool");
        }
        let kms_only = |field: &str, set: bool| {
            if set {
                bail!("S3 config: sse_config.{field} applies to SSE-KMS only, not to {}", self.kind);
            }
            Ok(())
        };
        match self.kind.as_str() {
            "SSE-S3" => {
                kms_only("kms_key_id", !self.kms_key_id.is_empty())?;
                Ok(vec![(key("aws_server_side_encryption"), "AES256".into())])
            }
            "SSE-KMS" => {
                if self.kms_key_id.is_empty() {
                    bail!("S3 config: sse_config type SSE-KMS needs kms_key_id");
                }
                Ok(vec![
                    (key("aws_server_side_encryption"), "aws:kms".into()),
                    (key("aws_sse_kms_key_id"), self.kms_key_id.clone()),
                ])
            }
            "SSE-C" => {
                kms_only("kms_key_id", !self.kms_key_id.is_empty())?;
                let raw = std::fs::read(&self.encryption_key).map_err(|e| {
                    anyhow::anyhow!("S3 config: sse_config.encryption_key {:?}: {e}", self.encryption_key)
                })?;
                if raw.len() != 32 {
                    bail!(
                        "S3 config: sse_config.encryption_key {:?} holds {} bytes; SSE-C takes a 32-byte key",
                        self.encryption_key,
                        raw.len()
                    );
                }
                use base64::Engine;
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                Ok(vec![
                    (key("aws_server_side_encryption"), "sse-c".into()),
                    (key("aws_sse_customer_key_base64"), encoded),
                ])
            }
            other => bail!("S3 config: unknown sse_config type {other:?} (expected SSE-S3, SSE-KMS or SSE-C)"),
        }
    }
}

impl S3Config {
    /// The fields set that object_store cannot honour, named for a warning.
    fn ignored(&self) -> Vec<&'static str> {
        let mut ignored = self.http_config.ignored();
        for (set, name) in [
            (self.disable_dualstack, "disable_dualstack"),
            (self.signature_version2, "signature_version2"),
            (!self.put_user_metadata.is_empty(), "put_user_metadata"),
            (self.trace.is_some(), "trace"),
            (!self.list_objects_version.is_empty(), "list_objects_version"),
            (self.send_content_md5, "send_content_md5"),
            (self.disable_multipart, "disable_multipart"),
            (self.part_size.is_some(), "part_size (use --part-size)"),
            (!self.sts_endpoint.is_empty(), "sts_endpoint"),
        ] {
            if set {
                ignored.push(name);
            }
        }
        ignored
    }

    /// Thanos's `bucket_lookup_type`: `auto` uses virtual-hosted requests on AWS and path-style
    /// requests elsewhere, as minio-go does.
    fn virtual_hosted(&self) -> Result<bool> {
        Ok(match self.bucket_lookup_type.as_str() {
            "" | "auto" => self.endpoint.is_empty() || self.endpoint.contains("amazonaws.com"),
            "virtual-hosted" | "virtual-host" => true,
            "path" => false,
            other => bail!("S3 config: unknown bucket_lookup_type {other:?} (expected auto, virtual-hosted or path)"),
        })
    }
}

/// One S3 bucket, however it was written: object_store settings, the HTTP client's options and
/// the YAML fields object_store cannot honour.
pub struct S3Bucket {
    settings: Settings<AmazonS3ConfigKey>,
    http: HttpConfig,
    max_retries: Option<usize>,
    pub ignored: Vec<&'static str>,
}

impl S3Bucket {
    pub fn from_yaml(config: &S3Config) -> Result<S3Bucket> {
        use AmazonS3ConfigKey as Key;
        if config.bucket.is_empty() {
            bail!("S3 config: `bucket` is required");
        }
        let mut settings = Settings::new(Key::Bucket, &config.bucket);
        if !config.region.is_empty() {
            settings.set(Key::Region, &config.region);
        }
        if !config.endpoint.is_empty() {
            // Thanos takes a bare host and picks the scheme from `insecure`.
            let scheme = if config.insecure { "http" } else { "https" };
            let endpoint = if config.endpoint.contains("://") {
                config.endpoint.clone()
            } else {
                format!("{scheme}://{}", config.endpoint)
            };
            settings.set(Key::Endpoint, endpoint);
        }
        settings.set(Key::Client(ClientConfigKey::AllowHttp), config.insecure.to_string());
        settings.set(Key::VirtualHostedStyleRequest, config.virtual_hosted()?.to_string());
        // Credentials from the file when given; otherwise the AWS environment and instance
        // metadata, as `aws_sdk_auth` or an empty key does in Thanos.
        if !config.access_key.is_empty() {
            settings.set(Key::AccessKeyId, &config.access_key);
            settings.set(Key::SecretAccessKey, config.secret_key.expose());
        }
        if !config.session_token.is_empty() {
            settings.set(Key::Token, config.session_token.expose());
        }
        for (key, value) in config.sse_config.as_ref().map(SseConfig::settings).transpose()?.unwrap_or_default() {
            settings.set(key, value);
        }
        Ok(S3Bucket {
            settings,
            http: config.http_config.clone(),
            max_retries: config.max_retries,
            ignored: config.ignored(),
        })
    }

    /// `s3://bucket/...?options`: the options are object_store's S3 settings
    /// (`endpoint`, `region`, `access_key_id`, `allow_http`...).
    pub fn from_url(bucket: &str, options: &[(String, String)]) -> Result<S3Bucket> {
        let settings = Settings::from_url("S3", AmazonS3ConfigKey::Bucket, bucket, options)?;
        Ok(S3Bucket { settings, http: HttpConfig::default(), max_retries: None, ignored: Vec::new() })
    }

    /// Where the bucket's objects are: `s3`, the endpoint (empty for AWS) and the bucket.
    pub fn place(&self) -> Vec<String> {
        let endpoint = bare_endpoint(self.settings.text(AmazonS3ConfigKey::Endpoint));
        vec!["s3".into(), endpoint, self.settings.text(AmazonS3ConfigKey::Bucket).into()]
    }

    /// What makes two S3 buckets one store, for server-side copies: the place, then the region
    /// and the access key the requests are signed with.
    pub fn identity(&self) -> String {
        let mut parts = self.place();
        parts.extend([AmazonS3ConfigKey::Region, AmazonS3ConfigKey::AccessKeyId].map(|k| self.settings.text(k).into()));
        parts.join("|")
    }

    /// The store's builder: the environment, bucketflow's client options, then the bucket's own
    /// settings.
    fn builder(&self, retries: Retries) -> AmazonS3Builder {
        self.body_checks(self.base_builder(retries), Bodies::Whole)
    }

    /// The store's builder for uploads by part number (see [`Bodies::Parts`]).
    fn parts_builder(&self, retries: Retries) -> AmazonS3Builder {
        self.body_checks(self.base_builder(retries), Bodies::Parts)
    }

    /// The environment, bucketflow's client options, then the bucket's own settings.
    fn base_builder(&self, retries: Retries) -> AmazonS3Builder {
        let builder = AmazonS3Builder::from_env()
            .with_client_options(self.http.client_options())
            .with_retry(retries.limited_to(self.max_retries).config())
            // A conditional copy through multipart works on every S3 implementation tested.
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
        self.settings.apply(builder, |b, key, value| b.with_config(key, value))
    }

    /// How request bodies are checked in transit. A body's SHA256 in the signature costs a hash
    /// of every byte sent, by bucketflow and again by the server: a tenth of a copy's time on 2
    /// cores (measured against p2's limit). So bodies go as UNSIGNED-PAYLOAD. Over TLS the
    /// transport checks them, as minio-go (Thanos's client) assumes. Over plain HTTP each body
    /// carries a CRC64NVME checksum instead, which the server verifies before it stores the
    /// object (AWS S3, MinIO, SeaweedFS and s3s do; current AWS SDKs checksum every upload too):
    /// a check against accidental damage in transit for a fraction of the CPU. (Unlike the
    /// signed hash, a CRC does not stop someone on the path who means to alter a body: that is
    /// what TLS is for.) A setting in the bucket's options or the environment
    /// (`AWS_UNSIGNED_PAYLOAD`, `AWS_CHECKSUM_ALGORITHM`) wins, for a server that refuses the
    /// checksum. Parts of a multipart upload are the exception (see [`Bodies::Parts`]).
    fn body_checks(&self, builder: AmazonS3Builder, bodies: Bodies) -> AmazonS3Builder {
        use AmazonS3ConfigKey as Key;
        let chosen = |key: Key| {
            let env = key.as_ref().to_ascii_uppercase();
            self.settings.get(key).is_some() || std::env::var_os(env).is_some()
        };
        // The endpoint requests go to, as object_store picks it: the S3-specific one first.
        let endpoint = Some(setting(&builder, &Key::S3Endpoint))
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| setting(&builder, &Key::Endpoint))
            .to_ascii_lowercase();
        let tls = endpoint.is_empty() || endpoint.starts_with("https://");
        let builder = match chosen(Key::UnsignedPayload) {
            true => builder,
            false => builder.with_unsigned_payload(tls || bodies == Bodies::Whole),
        };
        let signed = !is_true(&setting(&builder, &Key::UnsignedPayload));
        if tls || signed || bodies == Bodies::Parts || chosen(Key::Checksum) {
            builder
        } else {
            builder.with_checksum_algorithm(Checksum::CRC64NVME)
        }
    }

    /// The store, and what a server-side copy to or from this bucket needs to know of it.
    pub fn build(&self, retries: Retries) -> Result<(Arc<dyn ObjectStore>, S3Endpoint)> {
        let builder = self.builder(retries);
        let store = builder.clone().build()?;
        let parts_builder = self.parts_builder(retries);
        let parts = parts_builder.clone().build()?;
        let mut endpoint =
            S3Endpoint::of(&builder, parts, self.http.client_options(), retries.limited_to(self.max_retries));
        // Where whole objects carry a checksum that parts were kept from, parts try it too.
        use AmazonS3ConfigKey as Key;
        if !setting(&builder, &Key::Checksum).is_empty() && setting(&parts_builder, &Key::Checksum).is_empty() {
            let signed = !is_true(&setting(&parts_builder, &Key::UnsignedPayload));
            endpoint.checked_parts = Some((store.clone(), signed));
        }
        Ok((Arc::new(store), endpoint))
    }
}

/// A builder's setting for `key` as text, empty when unset.
fn setting(builder: &AmazonS3Builder, key: &AmazonS3ConfigKey) -> String {
    builder.get_config_value(key).unwrap_or_default()
}

/// A flag's value as object_store reads it: `1`, `on`, `yes` and `y` are true too.
fn is_true(value: &str) -> bool {
    matches!(value.to_ascii_lowercase().as_str(), "true" | "1" | "on" | "yes" | "y")
}

/// Which requests a store's bodies are for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bodies {
    /// Whole objects, each in one request.
    Whole,
    /// The parts of multipart uploads, by a store that names no checksum algorithm. A multipart
    /// upload names its algorithm when it starts (`x-amz-checksum-algorithm`), and a server that
    /// does not know it refuses the upload (MinIO before 2025 does, for CRC64NVME). Over plain
    /// HTTP this store signs each part's SHA256; uploads by part number use it once the server
    /// refused a checked upload (see [`super::s3_parts`]). Over TLS parts go unsigned, as whole
    /// objects do.
    Parts,
}

/// An S3 bucket as a server-side copy sees it: where its requests go, how they are signed, and
/// how its objects are encrypted. Read from the builder, after the environment and the config,
/// so that it is what the store itself does.
#[derive(Clone)]
pub struct S3Endpoint {
    /// The store whose bodies name no checksum algorithm ([`Bodies::Parts`]), whose credential
    /// provider also signs copies into this bucket.
    pub store: AmazonS3,
    /// Over plain HTTP, the store whose bodies carry a CRC64NVME checksum, which uploads by part
    /// number use while the server takes it, and whether `store` signs each body's SHA256.
    pub checked_parts: Option<(AmazonS3, bool)>,
    /// The endpoint as an identity takes it (empty for AWS), with the region: two buckets with
    /// the same are on one endpoint, where a copy can go from one to the other.
    pub endpoint: (String, String),
    pub bucket: String,
    /// The bucket's URL, as object_store sends requests to it.
    pub url: String,
    pub region: String,
    pub client_options: ClientOptions,
    pub request_payer: bool,
    pub retries: Retries,
    /// The headers that encrypt an object written to this bucket (SSE-S3, SSE-KMS).
    pub encryption: HeaderMap,
    /// Why a server-side copy cannot use this bucket, when it cannot: SSE-C (a copy would need the
    /// source's key too), S3 Express, or unsigned requests.
    pub unusable: Option<&'static str>,
}

impl S3Endpoint {
    fn of(builder: &AmazonS3Builder, store: AmazonS3, options: ClientOptions, retries: Retries) -> S3Endpoint {
        use AmazonS3ConfigKey as Key;
        let value = |key: &Key| builder.get_config_value(key);
        // object_store does not export the type of its encryption keys; they parse by name.
        let key = |name: &str| -> Key { name.parse().expect("object_store names its encryption keys so") };
        let flag = |key: &Key| is_true(&setting(builder, key));
        let region = value(&Key::Region).unwrap_or_else(|| "us-east-1".into());
        let bucket = value(&Key::Bucket).unwrap_or_default();
        let endpoint = value(&Key::S3Endpoint).or_else(|| value(&Key::Endpoint));
        let url =
            super::s3_copy::bucket_url(endpoint.as_deref(), flag(&Key::VirtualHostedStyleRequest), &bucket, &region);
        let mut options = options;
        for client in [ClientConfigKey::AllowHttp, ClientConfigKey::AllowInvalidCertificates] {
            if let Some(v) = value(&Key::Client(client)) {
                options = options.with_config(client, v);
            }
        }
        let sse = value(&key("aws_server_side_encryption"));
        let mut encryption = HeaderMap::new();
        let mut insert = |name: &'static str, v: String| {
            if let Ok(v) = HeaderValue::try_from(v) {
                encryption.insert(name, v);
            }
        };
        if let Some(sse) = sse.clone().filter(|s| s != "sse-c") {
            insert("x-amz-server-side-encryption", sse);
            if let Some(id) = value(&key("aws_sse_kms_key_id")) {
                insert("x-amz-server-side-encryption-aws-kms-key-id", id);
            }
            if let Some(enabled) = value(&key("aws_sse_bucket_key_enabled")) {
                insert("x-amz-server-side-encryption-bucket-key-enabled", enabled);
            }
        }
        let unusable = if sse.as_deref() == Some("sse-c") {
            Some("SSE-C (a copy would need the customer key of both buckets)")
        } else if flag(&Key::S3Express) {
            Some("S3 Express One Zone")
        } else if flag(&Key::SkipSignature) {
            Some("unsigned requests")
        } else {
            None
        };
        S3Endpoint {
            store,
            checked_parts: None,
            endpoint: (super::settings::bare_endpoint(endpoint.as_deref().unwrap_or_default()), region.clone()),
            bucket,
            url,
            region,
            client_options: options,
            request_payer: flag(&Key::RequestPayer),
            retries,
            encryption,
            unusable,
        }
    }
}

/// The server-side copy from `source` (under `source_prefix`) to `target` (under
/// `target_prefix`), or why there is none.
pub fn server_side_copy(
    source: &S3Endpoint,
    source_prefix: &ObjectPath,
    target: &S3Endpoint,
    target_prefix: &ObjectPath,
) -> std::result::Result<S3Copy, String> {
    if source.endpoint != target.endpoint {
        return Err("the buckets are on different endpoints or regions".into());
    }
    if let Some(reason) = source.unusable.or(target.unusable) {
        return Err(format!("a bucket uses {reason}"));
    }
    S3Copy::new(S3CopySetup {
        target: target.store.clone(),
        client_options: target.client_options.clone(),
        region: target.region.clone(),
        request_payer: target.request_payer,
        target_url: target.url.clone(),
        source_bucket: source.bucket.clone(),
        source_prefix: source_prefix.clone(),
        target_prefix: target_prefix.clone(),
        encryption: target.encryption.clone(),
        retries: target.retries,
    })
    .map_err(|e| format!("making its HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use crate::objstore::same_store;
    use crate::objstore::tests::{assert_one_store, assert_other_store, open_url, open_yaml};

    const YAML: &str = "type: S3\nconfig:\n  bucket: blocks\n  endpoint: 127.0.0.1:9000\n  region: eu-west-1\n  insecure: true\n  access_key: AK\n  secret_key: SK\nprefix: from\n";
    const URL: &str = "s3://blocks/to?endpoint=HTTP://127.0.0.1:9000/&region=eu-west-1&allow_http=true&access_key_id=AK&secret_access_key=SK";

    #[test]
    fn request_bodies_are_checked_by_tls_or_by_a_crc_the_server_verifies() {
        use super::Bodies;
        use object_store::aws::AmazonS3ConfigKey as Key;
        // (UNSIGNED-PAYLOAD, the checksum) of a bucket given by URL, for whole objects or parts.
        let checks_of = |url: &str, bodies: Bodies| {
            let (bucket, query) = url.trim_start_matches("s3://").split_once('?').unwrap();
            let options: Vec<(String, String)> =
                query.split('&').map(|kv| kv.split_once('=').unwrap()).map(|(k, v)| (k.into(), v.into())).collect();
            let s3 = super::S3Bucket::from_url(bucket, &options).unwrap();
            let builder = s3.body_checks(s3.base_builder(Default::default()), bodies);
            (builder.get_config_value(&Key::UnsignedPayload).unwrap(), builder.get_config_value(&Key::Checksum))
        };
        let checks = |url: &str| checks_of(url, Bodies::Whole);
        let crc = Some("crc64nvme".to_string());
        assert_eq!(checks(URL), ("true".into(), crc), "plain HTTP: a CRC64NVME instead of the body's SHA256");
        let tls = URL.replace("HTTP://", "https://");
        assert_eq!(checks(&tls), ("true".into(), None), "TLS checks bodies in transit");
        // The bucket's settings win: a signed body needs no checksum besides.
        assert_eq!(checks(&format!("{URL}&unsigned_payload=false")), ("false".into(), None));
        assert_eq!(checks(&format!("{tls}&unsigned_payload=false")), ("false".into(), None));
        assert_eq!(checks(&format!("{URL}&checksum_algorithm=sha256")), ("true".into(), Some("sha256".into())));
        // object_store's other words for true, and its S3-specific endpoint, which it prefers.
        assert_eq!(checks(&format!("{URL}&unsigned_payload=1")).1, Some("crc64nvme".into()));
        assert_eq!(checks(&format!("{tls}&aws_endpoint_url_s3=http://127.0.0.1:9000")).1, Some("crc64nvme".into()));
        assert_eq!(checks(&format!("{URL}&aws_endpoint_url_s3=https://s3.example.com")).1, None);
        // Parts name no checksum algorithm, which a server may not know: over plain HTTP they are
        // signed, over TLS not; the bucket's settings still win.
        let parts = |url: &str| checks_of(url, Bodies::Parts);
        assert_eq!(parts(URL), ("false".into(), None), "plain HTTP: each part's SHA256 signed");
        assert_eq!(parts(&tls), ("true".into(), None));
        assert_eq!(parts(&format!("{URL}&unsigned_payload=true")), ("true".into(), None));
        assert_eq!(parts(&format!("{URL}&checksum_algorithm=sha256")), ("false".into(), Some("sha256".into())));
    }

    #[test]
    fn one_bucket_as_yaml_and_as_url_is_one_store() {
        let (yaml, url) = (open_yaml(YAML), open_url(URL));
        let same = same_store(&yaml, &url).expect("one store");
        assert_eq!((same.source_prefix.as_ref(), same.target_prefix.as_ref()), ("from", "to"));
        let aliases = "s3://blocks?aws_endpoint=http://127.0.0.1:9000&aws_region=eu-west-1&aws_allow_http=true&aws_access_key_id=AK&aws_secret_access_key=SK";
        let with_scheme = YAML.replace("127.0.0.1:9000", "http://127.0.0.1:9000/");
        assert_one_store(&[yaml, url, open_url(aliases), open_yaml(&with_scheme)]);
    }

    #[test]
    fn other_buckets_endpoints_or_credentials_are_other_stores() {
        let url = open_url(URL);
        for other in [
            URL.replace("s3://blocks", "s3://other"),
            URL.replace(":9000", ":9001"),
            URL.replace("access_key_id=AK", "access_key_id=OTHER"),
            URL.replace("region=eu-west-1", "region=us-east-1"),
        ] {
            assert_other_store(&url, &open_url(&other));
        }
        assert_other_store(&open_yaml(YAML), &open_yaml(&YAML.replace("access_key: AK", "access_key: OTHER")));
    }

    #[test]
    fn sse_config_is_honoured_or_refused_by_name() {
        use super::SseConfig;
        let sse = |kind: &str| SseConfig { kind: kind.into(), ..SseConfig::default() };
        let values =
            |config: &SseConfig| -> Vec<String> { config.settings().unwrap().into_iter().map(|(_, v)| v).collect() };
        assert_eq!(values(&sse("SSE-S3")), ["AES256"]);
        let kms = SseConfig { kms_key_id: "alias/blocks".into(), ..sse("SSE-KMS") };
        assert_eq!(values(&kms), ["aws:kms", "alias/blocks"]);
        let error = |config: SseConfig| config.settings().unwrap_err().to_string();
        assert!(error(sse("SSE-KMS")).contains("needs kms_key_id"));
        let context = SseConfig { kms_encryption_context: [("a".into(), "b".into())].into(), ..kms.clone() };
        assert!(error(context).contains("kms_encryption_context cannot be honoured"));
        assert!(error(sse("AES")).contains("unknown sse_config type \"AES\""));
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, [7u8; 32]).unwrap();
        let c = SseConfig { encryption_key: key.display().to_string(), ..sse("SSE-C") };
        assert_eq!(values(&c), ["sse-c".to_string(), "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".to_string()]);
        std::fs::write(&key, b"short").unwrap();
        assert!(error(c).contains("holds 5 bytes; SSE-C takes a 32-byte key"));
    }

    #[test]
    fn two_buckets_of_one_endpoint_and_region_copy_server_side_unless_one_uses_sse_c() {
        use crate::objstore::{provider_copy, Endpoint};
        let source = open_url(URL);
        let copy = |target: &str| provider_copy(&source, &open_url(target), None);
        // Another bucket, or other credentials (the target's sign the copy): server-side.
        for target in [URL.replace("s3://blocks", "s3://other"), URL.replace("access_key_id=AK", "access_key_id=OTHER")]
        {
            let copy = copy(&target).unwrap().expect("a server-side copy");
            assert!(format!("{copy:?}").to_lowercase().contains("http://127.0.0.1:9000/"), "{copy:?}");
        }
        // Another endpoint or region: none, with the reason.
        for target in [URL.replace(":9000", ":9001"), URL.replace("region=eu-west-1", "region=us-east-1")] {
            assert!(copy(&target).unwrap_err().contains("different endpoints or regions"), "{target}");
        }
        // The target's encryption goes with the copy; SSE-C on either side rules it out.
        let kms = "type: S3\nconfig:\n  bucket: other\n  endpoint: 127.0.0.1:9000\n  region: eu-west-1\n  insecure: true\n  access_key: AK\n  secret_key: SK\n  sse_config:\n    type: SSE-KMS\n    kms_key_id: alias/blocks\n";
        let target = open_yaml(kms);
        let Some(Endpoint::S3(endpoint)) = &target.endpoint else { panic!("an S3 endpoint") };
        assert_eq!(endpoint.encryption["x-amz-server-side-encryption"], "aws:kms");
        assert_eq!(endpoint.encryption["x-amz-server-side-encryption-aws-kms-key-id"], "alias/blocks");
        assert_eq!(endpoint.url, "http://127.0.0.1:9000/other");
        assert!(provider_copy(&source, &target, None).unwrap().is_some());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, [7u8; 32]).unwrap();
        let sse_c = kms
            .replace("SSE-KMS\n    kms_key_id: alias/blocks", &format!("SSE-C\n    encryption_key: {}", key.display()));
        let refused = provider_copy(&source, &open_yaml(&sse_c), None).expect_err("no copy with SSE-C");
        assert!(refused.contains("SSE-C"), "{refused}");
        let refused = provider_copy(&open_yaml(&sse_c), &source, None).expect_err("no copy from SSE-C");
        assert!(refused.contains("SSE-C"), "{refused}");
    }
}
