//! Azure Blob containers: Thanos's `type: AZURE` YAML and `az://container/prefix?option=value`
//! URLs, both read into one [`AzureBucket`], from which the store, its identity and its place all
//! come.

use std::sync::Arc;

use anyhow::{bail, Result};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::{ClientConfigKey, ObjectStore};
use serde::Deserialize;

use super::http::{HttpConfig, Retries};
use super::secret::Secret;
use super::settings::{bare_endpoint, Settings};

/// Thanos's default endpoint suffix: the blob endpoint is `https://<account>.<endpoint>`.
const DEFAULT_ENDPOINT: &str = "blob.core.windows.net";

/// The endpoint suffix of object_store's `use_fabric_endpoint`.
const FABRIC_ENDPOINT: &str = "blob.fabric.microsoft.com";

/// The blob service of object_store's `use_emulator` (unless `AZURITE_BLOB_STORAGE_URL` names
/// another), which takes the account as the first segment of the path.
const EMULATOR_URL: &str = "http://127.0.0.1:10000";

/// The account object_store's emulator mode uses when none is given.
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";

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
    /// The fields set that object_store cannot honour, named for a warning.
    fn ignored(&self) -> Vec<&'static str> {
        let mut ignored = self.http_config.ignored();
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
        ignored
    }
}

/// One Azure container, however it was written: object_store settings, the HTTP client's options
/// and the YAML fields object_store cannot honour.
pub struct AzureBucket {
    settings: Settings<AzureConfigKey>,
    http: HttpConfig,
    max_retries: Option<usize>,
    pub ignored: Vec<&'static str>,
}

impl AzureBucket {
    pub fn from_yaml(config: &AzureConfig) -> Result<AzureBucket> {
        use AzureConfigKey as Key;
        if config.storage_account.is_empty() || config.container.is_empty() {
            bail!("AZURE config: `storage_account` and `container` are required");
        }
        let mut settings = Settings::new(Key::ContainerName, &config.container);
        settings.set(Key::AccountName, &config.storage_account);
        if config.endpoint.contains("://") {
            settings.set(Key::Endpoint, &config.endpoint);
            settings.set(Key::Client(ClientConfigKey::AllowHttp), config.endpoint.starts_with("http://").to_string());
        } else if !config.endpoint.is_empty() && config.endpoint != DEFAULT_ENDPOINT {
            settings.set(Key::Endpoint, format!("https://{}.{}", config.storage_account, config.endpoint));
        }
        if !config.storage_account_key.is_empty() {
            settings.set(Key::AccessKey, config.storage_account_key.expose());
        }
        if !config.user_assigned_id.is_empty() {
            settings.set(Key::ClientId, &config.user_assigned_id);
        }
        Ok(AzureBucket {
            settings,
            http: config.http_config.clone(),
            max_retries: config.max_retries,
            ignored: config.ignored(),
        })
    }

    /// `az://container/...?options`: the options are object_store's Azure settings
    /// (`account_name`, `access_key`, `endpoint`, `use_emulator`...).
    pub fn from_url(container: &str, options: &[(String, String)]) -> Result<AzureBucket> {
        let settings = Settings::from_url("Azure", AzureConfigKey::ContainerName, container, options)?;
        Ok(AzureBucket { settings, http: HttpConfig::default(), max_retries: None, ignored: Vec::new() })
    }

    /// Whether a yes-or-no setting is on, read as object_store reads it.
    fn flag(&self, key: AzureConfigKey) -> bool {
        let Some(value) = self.settings.get(key) else { return false };
        MicrosoftAzureBuilder::new().with_config(key, value).get_config_value(&key).as_deref() == Some("true")
    }

    /// The storage account, as object_store picks it: the setting, or the emulator's own.
    fn account(&self) -> &str {
        match self.settings.get(AzureConfigKey::AccountName) {
            Some(account) => account,
            None if self.flag(AzureConfigKey::UseEmulator) => EMULATOR_ACCOUNT,
            None => "",
        }
    }

    /// The account's blob endpoint, as object_store picks it: the emulator's (which overrides an
    /// `endpoint` setting), the `endpoint` setting, or Azure's own for the account.
    fn endpoint(&self) -> String {
        if self.flag(AzureConfigKey::UseEmulator) {
            let emulator = std::env::var("AZURITE_BLOB_STORAGE_URL").unwrap_or_else(|_| EMULATOR_URL.into());
            format!("{}/{}", bare_endpoint(&emulator), self.account())
        } else if let Some(endpoint) = self.settings.get(AzureConfigKey::Endpoint) {
            bare_endpoint(endpoint)
        } else if self.flag(AzureConfigKey::UseFabricEndpoint) {
            format!("{}.{FABRIC_ENDPOINT}", self.account().to_ascii_lowercase())
        } else {
            format!("{}.{DEFAULT_ENDPOINT}", self.account().to_ascii_lowercase())
        }
    }

    /// Where the container's blobs are: `azure`, the account's endpoint and the container.
    pub fn place(&self) -> Vec<String> {
        vec!["azure".into(), self.endpoint(), self.settings.text(AzureConfigKey::ContainerName).into()]
    }

    /// What makes two containers one store, for server-side copies: the place, then the account
    /// and the managed identity that requests are signed as.
    pub fn identity(&self) -> String {
        let mut parts = self.place();
        parts.extend([self.account(), self.settings.text(AzureConfigKey::ClientId)].map(String::from));
        parts.join("|")
    }

    pub fn build(&self, retries: Retries) -> Result<Arc<dyn ObjectStore>> {
        let builder = MicrosoftAzureBuilder::from_env()
            .with_client_options(self.http.client_options())
            .with_retry(retries.limited_to(self.max_retries).config());
        let builder = self.settings.apply(builder, |b, key, value| b.with_config(key, value));
        Ok(Arc::new(builder.build()?))
    }
}

#[cfg(test)]
mod tests {
    use crate::objstore::same_store;
    use crate::objstore::tests::{assert_one_store, assert_other_store, open_url, open_yaml};

    const YAML: &str = "type: AZURE\nconfig:\n  storage_account: devstoreaccount1\n  storage_account_key: a2V5\n  container: blocks\n  endpoint: http://127.0.0.1:10000/devstoreaccount1\nprefix: from\n";
    const URL: &str = "az://blocks/to?account_name=devstoreaccount1&access_key=a2V5&endpoint=http://127.0.0.1:10000/devstoreaccount1/&allow_http=true";

    #[test]
    fn one_container_as_yaml_and_as_url_is_one_store() {
        let (yaml, url) = (open_yaml(YAML), open_url(URL));
        let same = same_store(&yaml, &url).expect("one store");
        assert_eq!((same.source_prefix.as_ref(), same.target_prefix.as_ref()), ("from", "to"));
        // object_store's emulator mode implies azurite's endpoint and account.
        assert_one_store(&[yaml, url, open_url("az://blocks?use_emulator=true")]);
        // Thanos's endpoint suffix and object_store's default name one endpoint too.
        let suffix = "type: AZURE\nconfig:\n  storage_account: acct\n  storage_account_key: a2V5\n  container: blocks\n  endpoint: blob.core.windows.net\n";
        assert_one_store(&[
            open_yaml(suffix),
            open_url("azure://blocks?azure_storage_account_name=acct&account_key=a2V5"),
        ]);
    }

    #[test]
    fn other_containers_endpoints_or_credentials_are_other_stores() {
        let url = open_url(URL);
        for other in [
            URL.replace("az://blocks", "az://other"),
            URL.replace(":10000", ":10001"),
            URL.replace("account_name=devstoreaccount1", "account_name=other"),
            format!("{URL}&client_id=someone"),
        ] {
            assert_other_store(&url, &open_url(&other));
        }
    }
}
