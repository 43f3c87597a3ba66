//! GCS buckets: Thanos's `type: GCS` YAML and `gs://bucket/prefix?option=value` URLs, both read
//! into one [`GcsBucket`], from which the store, its identity and its place all come.

use std::sync::Arc;

use anyhow::{bail, Result};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ClientOptions, ObjectStore};
use serde::Deserialize;

use super::gcs_copy::{GcsCopy, GcsCopySetup};
use super::http::{HttpConfig, Retries};
use super::secret::Secret;
use super::settings::{bare_endpoint, Settings};

/// Where object_store sends requests when neither a setting nor the key names a base URL.
const DEFAULT_BASE_URL: &str = "storage.googleapis.com";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GcsConfig {
    pub bucket: String,
    /// The service-account key JSON itself (not a path), as in Thanos.
    pub service_account: Secret,
    pub use_grpc: bool,
    pub grpc_conn_pool_size: Option<usize>,
    pub http_config: HttpConfig,
    pub chunk_size_bytes: Option<u64>,
    pub max_retries: Option<usize>,
}

impl GcsConfig {
    /// The fields set that object_store cannot honour, named for a warning.
    fn ignored(&self) -> Vec<&'static str> {
        let mut ignored = self.http_config.ignored();
        for (set, name) in [
            (self.use_grpc, "use_grpc"),
            (self.grpc_conn_pool_size.is_some(), "grpc_conn_pool_size"),
            (self.chunk_size_bytes.is_some(), "chunk_size_bytes (use --part-size)"),
        ] {
            if set {
                ignored.push(name);
            }
        }
        ignored
    }
}

/// The fields of a service-account key that say whose it is and where it sends requests.
#[derive(Default, Deserialize)]
struct KeyOwner {
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    gcs_base_url: Option<String>,
}

/// One GCS bucket, however it was written: object_store settings, the HTTP client's options and
/// the YAML fields object_store cannot honour.
pub struct GcsBucket {
    settings: Settings<GoogleConfigKey>,
    http: HttpConfig,
    max_retries: Option<usize>,
    pub ignored: Vec<&'static str>,
}

impl GcsBucket {
    pub fn from_yaml(config: &GcsConfig) -> Result<GcsBucket> {
        if config.bucket.is_empty() {
            bail!("GCS config: `bucket` is required");
        }
        let mut settings = Settings::new(GoogleConfigKey::Bucket, &config.bucket);
        if !config.service_account.is_empty() {
            settings.set(GoogleConfigKey::ServiceAccountKey, config.service_account.expose());
        }
        Ok(GcsBucket {
            settings,
            http: config.http_config.clone(),
            max_retries: config.max_retries,
            ignored: config.ignored(),
        })
    }

    /// `gs://bucket/...?options`: the options are object_store's GCS settings
    /// (`service_account_key`, `service_account`, `base_url`...).
    pub fn from_url(bucket: &str, options: &[(String, String)]) -> Result<GcsBucket> {
        let settings = Settings::from_url("GCS", GoogleConfigKey::Bucket, bucket, options)?;
        Ok(GcsBucket { settings, http: HttpConfig::default(), max_retries: None, ignored: Vec::new() })
    }

    /// The owner of the service-account key given inline, as far as it can be read.
    fn key_owner(&self) -> KeyOwner {
        let key = self.settings.text(GoogleConfigKey::ServiceAccountKey);
        serde_json::from_str(key).unwrap_or_default()
    }

    /// Where the bucket's objects are: `gcs`, the base URL requests go to, and the bucket.
    pub fn place(&self) -> Vec<String> {
        // The same precedence as `build`'s: the setting, the emulator, the key's own base URL.
        let base_url = match (self.settings.get(GoogleConfigKey::BaseUrl), emulator_base_url()) {
            (Some(url), _) => url.to_string(),
            (None, Some(emulator)) => emulator,
            (None, None) => self.key_owner().gcs_base_url.unwrap_or_else(|| DEFAULT_BASE_URL.into()),
        };
        vec!["gcs".into(), bare_endpoint(&base_url), self.settings.text(GoogleConfigKey::Bucket).into()]
    }

    /// What makes two GCS buckets one store, for server-side copies: the place, then whose
    /// credentials sign the requests (the key's service account, or the key file's path).
    pub fn identity(&self) -> String {
        let owner = self.key_owner().client_email;
        let files = [GoogleConfigKey::ServiceAccount, GoogleConfigKey::ApplicationCredentials];
        let mut parts = self.place();
        parts.push(owner);
        parts.extend(files.map(|k| self.settings.text(k).to_string()));
        parts.join("|")
    }

    /// The store, and what a server-side copy to or from this bucket needs to know of it.
    pub fn build(&self, retries: Retries) -> Result<(Arc<dyn ObjectStore>, GcsEndpoint)> {
        let builder = GoogleCloudStorageBuilder::from_env()
            .with_client_options(self.http.client_options())
            .with_retry(retries.limited_to(self.max_retries).config());
        let builder = self.settings.apply(builder, |b, key, value| b.with_config(key, value));
        // An emulator named by STORAGE_EMULATOR_HOST, as Google's own clients (and so Thanos's)
        // honour it, unless the configuration names a base URL itself: plain HTTP allowed for it,
        // and no credentials, so that no request ever asks a cloud metadata server for a token.
        let emulator = emulator_base_url().filter(|_| self.settings.get(GoogleConfigKey::BaseUrl).is_none());
        let builder = match &emulator {
            Some(url) => {
                let builder = builder.with_base_url(url).with_bearer_token("");
                match url.starts_with("http://") {
                    true => builder.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true"),
                    false => builder,
                }
            }
            None => builder,
        };
        let store = builder.clone().build()?;
        // The same precedence as object_store's: the setting (or the environment's), then the
        // key's own base URL, then Google's.
        let base_url = builder
            .get_config_value(&GoogleConfigKey::BaseUrl)
            .or_else(|| self.key_owner().gcs_base_url)
            .unwrap_or_else(|| format!("https://{DEFAULT_BASE_URL}"));
        let mut options = self.http.client_options();
        for client in [ClientConfigKey::AllowHttp, ClientConfigKey::AllowInvalidCertificates] {
            if let Some(v) = builder.get_config_value(&GoogleConfigKey::Client(client)) {
                options = options.with_config(client, v);
            }
        }
        let skip_signature = emulator.is_some()
            || builder
                .get_config_value(&GoogleConfigKey::SkipSignature)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = GcsEndpoint {
            store: store.clone(),
            base_url,
            bucket: self.settings.text(GoogleConfigKey::Bucket).to_string(),
            client_options: options,
            retries: retries.limited_to(self.max_retries),
            skip_signature,
        };
        Ok((Arc::new(store), endpoint))
    }
}

/// The GCS emulator's base URL, from `STORAGE_EMULATOR_HOST` as Google's clients read it: a host
/// and port (then plain HTTP) or a URL.
fn emulator_base_url() -> Option<String> {
    let host = std::env::var("STORAGE_EMULATOR_HOST").ok().filter(|h| !h.trim().is_empty())?;
    let url = if host.contains("://") { host.trim().to_string() } else { format!("http://{}", host.trim()) };
    Some(url.trim_end_matches('/').to_string())
}

/// A GCS bucket as a server-side copy sees it.
#[derive(Clone)]
pub struct GcsEndpoint {
    /// The store, whose credential provider signs copies into this bucket.
    pub store: GoogleCloudStorage,
    /// The XML API's base URL: two buckets with the same are on one endpoint.
    pub base_url: String,
    pub bucket: String,
    pub client_options: ClientOptions,
    pub retries: Retries,
    pub skip_signature: bool,
}

/// The server-side copy from `source` (under `source_prefix`) to `target` (under
/// `target_prefix`), two buckets of one endpoint, or why there is none.
pub fn server_side_copy(
    source: &GcsEndpoint,
    source_prefix: &ObjectPath,
    target: &GcsEndpoint,
    target_prefix: &ObjectPath,
) -> std::result::Result<GcsCopy, String> {
    if bare_endpoint(&source.base_url) != bare_endpoint(&target.base_url) {
        return Err("the buckets are on different endpoints".into());
    }
    GcsCopy::new(GcsCopySetup {
        target: target.store.clone(),
        client_options: target.client_options.clone(),
        base_url: target.base_url.clone(),
        source_bucket: source.bucket.clone(),
        target_bucket: target.bucket.clone(),
        source_prefix: source_prefix.clone(),
        target_prefix: target_prefix.clone(),
        retries: target.retries,
        skip_signature: target.skip_signature,
    })
    .map_err(|e| format!("making its HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use crate::objstore::same_store;
    use crate::objstore::tests::{assert_one_store, assert_other_store, open_url, open_yaml};

    /// A service-account key that never reaches Google: no OAuth, and a base URL on 127.0.0.1.
    fn key(email: &str, base_url: &str) -> String {
        serde_json::json!({
            "private_key": "", "private_key_id": "", "client_email": email,
            "disable_oauth": true, "gcs_base_url": base_url,
        })
        .to_string()
    }

    fn yaml(bucket: &str, key: &str) -> String {
        format!("type: GCS\nconfig:\n  bucket: {bucket}\n  service_account: '{key}'\nprefix: from\n")
    }

    fn url(bucket: &str, key: &str) -> String {
        let key: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        format!("gs://{bucket}/to?service_account_key={key}")
    }

    #[test]
    fn one_bucket_as_yaml_and_as_url_is_one_store() {
        let key = key("a@example.com", "http://127.0.0.1:1");
        let (yaml, url) = (open_yaml(&yaml("blocks", &key)), open_url(&url("blocks", &key)));
        let same = same_store(&yaml, &url).expect("one store");
        assert_eq!((same.source_prefix.as_ref(), same.target_prefix.as_ref()), ("from", "to"));
        let base_url_setting = open_url(&format!("{}&base_url=HTTP://127.0.0.1:1/", self::url("blocks", &key)));
        assert_one_store(&[yaml, url, base_url_setting]);
    }

    #[test]
    fn other_buckets_endpoints_or_credentials_are_other_stores() {
        let key_a = key("a@example.com", "http://127.0.0.1:1");
        let bucket = open_url(&url("blocks", &key_a));
        assert_other_store(&bucket, &open_url(&url("other", &key_a)));
        assert_other_store(&bucket, &open_url(&url("blocks", &key("b@example.com", "http://127.0.0.1:1"))));
        assert_other_store(&bucket, &open_yaml(&yaml("blocks", &key("a@example.com", "http://127.0.0.1:2"))));
    }

    #[test]
    fn two_buckets_of_one_endpoint_copy_server_side() {
        use crate::objstore::provider_copy;
        let source = open_url(&url("blocks", &key("a@example.com", "http://127.0.0.1:1")));
        // Another bucket, signed as someone else (the target's credentials sign the copy).
        let target = open_url(&url("other", &key("b@example.com", "http://127.0.0.1:1")));
        let copy = format!("{:?}", provider_copy(&source, &target, None).unwrap().expect("a server-side copy"));
        assert_eq!(copy, "GcsCopy(http://127.0.0.1:1: blocks/to -> other/to)");
        let elsewhere = open_url(&url("other", &key("a@example.com", "http://127.0.0.1:2")));
        let refused = provider_copy(&source, &elsewhere, None).expect_err("another endpoint");
        assert!(refused.contains("different endpoints"), "{refused}");
    }
}
