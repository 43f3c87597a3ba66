//! Azure Blob containers: Thanos's `type: AZURE` YAML and `az://container/prefix?option=value`
//! URLs, both read into one [`AzureBucket`], from which the store, its identity and its place all
//! come.

use std::sync::Arc;

use anyhow::{bail, Result};
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ClientOptions, ObjectStore};
use serde::Deserialize;

use super::azure_copy::{AzureCopy, AzureCopySetup};
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

    /// The store, and what a server-side copy to or from this container needs to know of it.
    pub fn build(&self, retries: Retries) -> Result<(Arc<dyn ObjectStore>, AzureEndpoint)> {
        let builder = MicrosoftAzureBuilder::from_env()
            .with_client_options(self.http.client_options())
            .with_retry(retries.limited_to(self.max_retries).config());
        let builder = self.settings.apply(builder, |b, key, value| b.with_config(key, value));
        let store = builder.clone().build()?;
        let endpoint = AzureEndpoint::of(&builder, store.clone(), self, retries.limited_to(self.max_retries));
        Ok((Arc::new(store), endpoint))
    }
}

/// An Azure container as a server-side copy sees it: its account, the account's blob service and
/// the container's URL, read from the builder after the environment and the config, as the store
/// itself reads them.
#[derive(Clone)]
pub struct AzureEndpoint {
    /// The store, whose credential provider authorizes copies into this container.
    pub store: MicrosoftAzure,
    /// The account and its blob endpoint as an identity takes it: two containers with the same
    /// are in one account, where Copy Blob may name the source without a signature of its own.
    pub account: (String, String),
    /// The container's URL, as object_store sends requests to it.
    pub url: String,
    pub client_options: ClientOptions,
    pub retries: Retries,
    /// Why a server-side copy cannot use this container, when it cannot.
    pub unusable: Option<&'static str>,
}

impl AzureEndpoint {
    fn of(builder: &MicrosoftAzureBuilder, store: MicrosoftAzure, bucket: &AzureBucket, retries: Retries) -> Self {
        use AzureConfigKey as Key;
        let value = |key: Key| builder.get_config_value(&key);
        let flag = |key: Key| value(key).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let emulator = flag(Key::UseEmulator);
        let account =
            value(Key::AccountName).unwrap_or_else(|| if emulator { EMULATOR_ACCOUNT.into() } else { String::new() });
        let container = value(Key::ContainerName).unwrap_or_default();
        let service = if emulator {
            let url = std::env::var("AZURITE_BLOB_STORAGE_URL").unwrap_or_else(|_| EMULATOR_URL.into());
            format!("{}/{account}", url.trim_end_matches('/'))
        } else if let Some(endpoint) = value(Key::Endpoint) {
            endpoint.trim_end_matches('/').to_string()
        } else if flag(Key::UseFabricEndpoint) {
            format!("https://{account}.{FABRIC_ENDPOINT}")
        } else {
            format!("https://{account}.{DEFAULT_ENDPOINT}")
        };
        let mut options = bucket.http.client_options();
        for client in [ClientConfigKey::AllowHttp, ClientConfigKey::AllowInvalidCertificates] {
            if let Some(v) = value(Key::Client(client)) {
                options = options.with_config(client, v);
            }
        }
        if emulator {
            options = options.with_allow_http(true);
        }
        let unusable =
            value(Key::EncryptionKey).map(|_| "a customer-provided key (a copy would need the source's key too)");
        AzureEndpoint {
            store,
            account: (account, bucket.endpoint()),
            url: format!("{service}/{container}"),
            client_options: options,
            retries,
            unusable,
        }
    }
}

/// The server-side copy from `source` (under `source_prefix`) to `target` (under
/// `target_prefix`), two containers of one account, or why there is none.
pub fn server_side_copy(
    source: &AzureEndpoint,
    source_prefix: &ObjectPath,
    target: &AzureEndpoint,
    target_prefix: &ObjectPath,
) -> std::result::Result<AzureCopy, String> {
    if source.account != target.account {
        return Err("the containers are in different accounts or on different endpoints".into());
    }
    if let Some(reason) = source.unusable.or(target.unusable) {
        return Err(format!("a container uses {reason}"));
    }
    AzureCopy::new(AzureCopySetup {
        target: target.store.clone(),
        client_options: target.client_options.clone(),
        account: target.account.0.clone(),
        source_url: source.url.clone(),
        target_url: target.url.clone(),
        source_prefix: source_prefix.clone(),
        target_prefix: target_prefix.clone(),
        retries: target.retries,
    })
    .map_err(|e| format!("making its HTTP client: {e}"))
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

    #[test]
    fn two_containers_of_one_account_copy_server_side() {
        use crate::objstore::provider_copy;
        let source = open_url(URL);
        let copy = provider_copy(&source, &open_url(&URL.replace("az://blocks", "az://other")), None);
        let copy = format!("{:?}", copy.unwrap().expect("a server-side copy"));
        assert!(copy.contains("127.0.0.1:10000/devstoreaccount1/blocks/to -> "), "{copy}");
        assert!(copy.contains("127.0.0.1:10000/devstoreaccount1/other/to"), "{copy}");
        // The emulator's URL takes the account as its first segment, as object_store's does.
        let emulated = open_url("az://other?use_emulator=true");
        let Some(crate::objstore::Endpoint::Azure(endpoint)) = &emulated.endpoint else { panic!("Azure") };
        assert_eq!(endpoint.url, "http://127.0.0.1:10000/devstoreaccount1/other");
        for other in
            [URL.replace(":10000", ":10001"), URL.replace("account_name=devstoreaccount1", "account_name=other")]
        {
            let refused = provider_copy(&source, &open_url(&other), None).expect_err("another account");
            assert!(refused.contains("different accounts"), "{refused}");
        }
    }
}
