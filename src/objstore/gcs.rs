//! Thanos's `type: GCS` configuration on object_store's `GoogleCloudStorageBuilder`.

use std::sync::Arc;

use anyhow::{bail, Result};
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::ObjectStore;
use serde::Deserialize;

use super::http::{HttpConfig, Retries};
use super::secret::Secret;

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
    pub fn identity(&self) -> String {
        format!("gcs|{}|{}", self.bucket, self.service_account.expose().len())
    }

    pub fn build(&self, retries: Retries) -> Result<(Arc<dyn ObjectStore>, Vec<&'static str>)> {
        if self.bucket.is_empty() {
            bail!("GCS config: `bucket` is required");
        }
        let (client, mut ignored) = self.http_config.client_options(false);
        let mut retry = retries;
        if let Some(n) = self.max_retries {
            retry.retries = n;
        }
        let mut builder = GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(&self.bucket)
            .with_client_options(client)
            .with_retry(retry.config());
        if !self.service_account.is_empty() {
            builder = builder.with_service_account_key(self.service_account.expose());
        }
        for (set, name) in [
            (self.use_grpc, "use_grpc"),
            (self.grpc_conn_pool_size.is_some(), "grpc_conn_pool_size"),
            (self.chunk_size_bytes.is_some(), "chunk_size_bytes (use --part-size)"),
        ] {
            if set {
                ignored.push(name);
            }
        }
        Ok((Arc::new(builder.build()?), ignored))
    }
}
