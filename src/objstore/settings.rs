//! What the providers share: object_store settings as the YAML or URL gave them, and bucket URLs
//! taken apart.

use anyhow::{anyhow, Result};

/// A provider's object_store settings (`AmazonS3ConfigKey`, `GoogleConfigKey`, `AzureConfigKey`)
/// in the order given. A builder takes them one by one, so the last value of a key wins here too;
/// the identity and the place read them back the same way.
pub struct Settings<K> {
    entries: Vec<(K, String)>,
}

impl<K: Copy + PartialEq> Settings<K> {
    /// The settings of a bucket named `bucket` by `key` (the bucket or container key).
    pub fn new(key: K, bucket: &str) -> Settings<K> {
        Settings { entries: vec![(key, bucket.to_string())] }
    }

    /// The settings of the bucket `bucket`, then a URL's options; an option that `store` does not
    /// know is an error that names it (object_store's own URL parser would silently ignore it).
    pub fn from_url(store: &str, key: K, bucket: &str, options: &[(String, String)]) -> Result<Settings<K>>
    where
        K: std::str::FromStr,
    {
        let mut settings = Settings::new(key, bucket);
        for (name, value) in options {
            let key = name.parse().map_err(|_| anyhow!("unknown {store} option {name:?}"))?;
            settings.set(key, value);
        }
        Ok(settings)
    }

    pub fn set(&mut self, key: K, value: impl Into<String>) {
        self.entries.push((key, value.into()));
    }

    /// The value the builder ends up with for `key`, if any was given.
    pub fn get(&self, key: K) -> Option<&str> {
        self.entries.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or the empty string, for identities and places.
    pub fn text(&self, key: K) -> &str {
        self.get(key).unwrap_or_default()
    }

    /// Hands every setting, in order, to a builder.
    pub fn apply<B>(&self, builder: B, with_config: impl Fn(B, K, &str) -> B) -> B {
        self.entries.iter().fold(builder, |builder, (key, value)| with_config(builder, *key, value))
    }
}

/// A bucket URL taken apart: `scheme://bucket/prefix?key=value&...`, options decoded.
pub struct BucketUrl {
    pub bucket: String,
    pub prefix: String,
    pub options: Vec<(String, String)>,
}

impl BucketUrl {
    pub fn parse(url: &str) -> Result<BucketUrl> {
        let parsed = url::Url::parse(url).map_err(|e| anyhow!("not a URL: {e}"))?;
        Ok(BucketUrl {
            bucket: parsed.host_str().unwrap_or_default().to_string(),
            prefix: parsed.path().trim_matches('/').to_string(),
            options: parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect(),
        })
    }
}

/// A URL as it may be shown: the query string, which can hold credentials, is dropped.
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<options>"),
        None => url.to_string(),
    }
}

/// An endpoint as a place and an identity take it: without scheme or trailing slash, lower-cased,
/// so that `HTTP://Host:9000/` in a URL and `host:9000` in YAML name one endpoint.
pub fn bare_endpoint(endpoint: &str) -> String {
    let bare = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    bare.trim_end_matches('/').to_ascii_lowercase()
}
