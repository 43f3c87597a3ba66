//! S3 buckets: Thanos's `type: S3` YAML and `s3://bucket/prefix?option=value` URLs, both read into
//! one [`S3Bucket`], from which the store, its identity and its place all come.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3CopyIfNotExists};
use object_store::{ClientConfigKey, ObjectStore};
use serde::Deserialize;

use super::http::{HttpConfig, Retries};
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
    pub sse_config: Option<serde_yaml_ng::Value>,
    pub sts_endpoint: String,
    pub max_retries: Option<usize>,
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
            (self.sse_config.is_some(), "sse_config"),
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

    pub fn build(&self, retries: Retries) -> Result<Arc<dyn ObjectStore>> {
        let builder = AmazonS3Builder::from_env()
            .with_client_options(self.http.client_options())
            .with_retry(retries.limited_to(self.max_retries).config())
            // A conditional copy through multipart works on every S3 implementation tested.
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
        let builder = self.settings.apply(builder, |b, key, value| b.with_config(key, value));
        Ok(Arc::new(builder.build()?))
    }
}

#[cfg(test)]
mod tests {
    use crate::objstore::same_store;
    use crate::objstore::tests::{assert_one_store, assert_other_store, open_url, open_yaml};

    const YAML: &str = "type: S3\nconfig:\n  bucket: blocks\n  endpoint: 127.0.0.1:9000\n  region: eu-west-1\n  insecure: true\n  access_key: AK\n  secret_key: SK\nprefix: from\n";
    const URL: &str = "s3://blocks/to?endpoint=HTTP://127.0.0.1:9000/&region=eu-west-1&allow_http=true&access_key_id=AK&secret_access_key=SK";

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
}
