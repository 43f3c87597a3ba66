//! Thanos's `type: AZURE` configuration on object_store's `MicrosoftAzureBuilder`.

use std::sync::Arc;

use anyhow::{bail, Result};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::ObjectStore;
use serde::Deserialize;

use super::http::{HttpConfig, Retries};
use super::secret::Secret;

/// Thanos's default endpoint suffix: the blob endpoint is `https://<account>.<endpoint>`.
const DEFAULT_ENDPOINT: &str = "blob.core.windows.net";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureConfig {
    pub storage_account: String,
    pub storage_account_key: Secret,
    pub storage_connection_string: Secret,
    pub storage_create_container: bool,
    pub container: String,
    /// A host suffix as in Thanos, or (a bucketflow extension, for emulators and private
    /// endpoints) a whole URL such as `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: String,
    pub user_assigned_id: String,
    pub max_retries: Option<usize>,
    pub reader_config: Option<serde_yaml_ng::Value>,
    pub pipeline_config: Option<serde_yaml_ng::Value>,
    pub http_config: HttpConfig,
    pub msi_resource: String,
}

impl AzureConfig {
    pub fn identity(&self) -> String {
        format!("azure|{}|{}|{}", self.endpoint, self.storage_account, self.container)
    }

    pub fn build(&self, retries: Retries) -> Result<(Arc<dyn ObjectStore>, Vec<&'static str>)> {
        if self.storage_account.is_empty() || self.container.is_empty() {
            bail!("AZURE config: `storage_account` and `container` are required");
        }
        let full_url = self.endpoint.contains("://");
        let (client, mut ignored) = self.http_config.client_options(self.endpoint.starts_with("http://"));
        let mut retry = retries;
        if let Some(n) = self.max_retries {
            retry.retries = n;
        }
        let mut builder = MicrosoftAzureBuilder::from_env()
            .with_account(&self.storage_account)
            .with_container_name(&self.container)
            .with_client_options(client)
            .with_retry(retry.config());
        if full_url {
            builder =
                builder.with_endpoint(self.endpoint.clone()).with_allow_http(self.endpoint.starts_with("http://"));
        } else if !self.endpoint.is_empty() && self.endpoint != DEFAULT_ENDPOINT {
            builder = builder.with_endpoint(format!("https://{}.{}", self.storage_account, self.endpoint));
        }
        if !self.storage_account_key.is_empty() {
            builder = builder.with_access_key(self.storage_account_key.expose());
        }
        if !self.user_assigned_id.is_empty() {
            builder = builder.with_client_id(&self.user_assigned_id);
        }
        for (set, name) in [
            (!self.storage_connection_string.is_empty(), "storage_connection_string"),
            (self.storage_create_container, "storage_create_container"),
            (self.reader_config.is_some(), "reader_config"),
            (self.pipeline_config.is_some(), "pipeline_config"),
            (!self.msi_resource.is_empty(), "msi_resource"),
        ] {
            if set {
                ignored.push(name);
            }
        }
        Ok((Arc::new(builder.build()?), ignored))
    }
}
