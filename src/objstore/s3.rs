//! Thanos's `type: S3` configuration on object_store's `AmazonS3Builder`.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Result};
use object_store::aws::{AmazonS3Builder, S3CopyIfNotExists};
use object_store::ObjectStore;
use serde::Deserialize;

use super::http::{HttpConfig, Retries};
use super::secret::Secret;

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
    /// What makes two S3 buckets one store, for server-side copies: endpoint, bucket and
    /// credentials.
    pub fn identity(&self) -> String {
        format!("s3|{}|{}|{}|{}", self.endpoint, self.bucket, self.region, self.access_key)
    }

    pub fn build(&self, retries: Retries) -> Result<(Arc<dyn ObjectStore>, Vec<&'static str>)> {
        if self.bucket.is_empty() {
            bail!("S3 config: `bucket` is required");
        }
        let (client, mut ignored) = self.http_config.client_options(self.insecure);
        let mut retry = retries;
        if let Some(n) = self.max_retries {
            retry.retries = n;
        }
        // Credentials from the file when given; otherwise the AWS environment and instance
        // metadata, as `aws_sdk_auth` or an empty key does in Thanos.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_client_options(client)
            .with_retry(retry.config())
            .with_allow_http(self.insecure)
            // A conditional copy through multipart works on every S3 implementation tested.
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
        if !self.region.is_empty() {
            builder = builder.with_region(&self.region);
        }
        if !self.endpoint.is_empty() {
            let scheme = if self.insecure { "http" } else { "https" };
            let endpoint = if self.endpoint.contains("://") {
                self.endpoint.clone()
            } else {
                format!("{scheme}://{}", self.endpoint)
            };
            builder = builder.with_endpoint(endpoint);
        }
        builder = builder.with_virtual_hosted_style_request(self.virtual_hosted()?);
        if !self.access_key.is_empty() {
            builder = builder.with_access_key_id(&self.access_key).with_secret_access_key(self.secret_key.expose());
        }
        if !self.session_token.is_empty() {
            builder = builder.with_token(self.session_token.expose());
        }
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
        Ok((Arc::new(builder.build()?), ignored))
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
