//! Server-side copies between two GCS buckets of one endpoint: the XML API's PUT Object with
//! `x-goog-copy-source` naming the other bucket.
//!
//! object_store copies only within the bucket a store was built for, so the request is made here,
//! from object_store's public parts: the target store's credential provider (a bearer token) and
//! an [`HttpClient`] from its [`ReqwestConnector`]. The target's credentials must be allowed to
//! read the source; when they are not (AccessDenied), the engine streams instead.

use async_trait::async_trait;
use bucketflow_dataflows::{ServerSideCopy, ServerSideError};
use http::{HeaderValue, Method};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector};
use object_store::gcp::{GcpCredentialProvider, GoogleCloudStorage};
use object_store::path::Path;
use object_store::ClientOptions;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use super::copy_request::{retrying, under, CopyRequestError};
use super::http::Retries;
use super::s3_copy::{error_body, xml_value};

/// What [`GcsCopy`] needs to know of the two buckets, read from their configs.
pub struct GcsCopySetup {
    /// The target store, whose credentials sign the copies.
    pub target: GoogleCloudStorage,
    pub client_options: ClientOptions,
    /// The XML API's base URL, such as `https://storage.googleapis.com`.
    pub base_url: String,
    pub source_bucket: String,
    pub target_bucket: String,
    pub source_prefix: Path,
    pub target_prefix: Path,
    pub retries: Retries,
    /// Requests go unsigned (object_store's `skip_signature`).
    pub skip_signature: bool,
}

/// Copies objects from one GCS bucket to another of the same endpoint, server-side.
pub struct GcsCopy {
    client: HttpClient,
    credentials: GcpCredentialProvider,
    base_url: String,
    source_bucket: String,
    target_bucket: String,
    source_prefix: Path,
    target_prefix: Path,
    retries: Retries,
    skip_signature: bool,
}

impl std::fmt::Debug for GcsCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GcsCopy({}: {}/{} -> {}/{})",
            self.base_url, self.source_bucket, self.source_prefix, self.target_bucket, self.target_prefix
        )
    }
}

/// An object's name as the XML API takes it in a URL or a copy source: every byte but letters
/// and digits percent-encoded, `/` too, as object_store encodes it.
fn encoded(prefix: &Path, path: &Path) -> String {
    let name = under(prefix, path);
    utf8_percent_encode(name.as_ref(), NON_ALPHANUMERIC).to_string()
}

impl GcsCopy {
    pub fn new(setup: GcsCopySetup) -> object_store::Result<GcsCopy> {
        Ok(GcsCopy {
            client: ReqwestConnector::default().connect(&setup.client_options)?,
            credentials: setup.target.credentials().clone(),
            base_url: setup.base_url.trim_end_matches('/').to_string(),
            source_bucket: setup.source_bucket,
            target_bucket: setup.target_bucket,
            source_prefix: setup.source_prefix,
            target_prefix: setup.target_prefix,
            retries: setup.retries,
            skip_signature: setup.skip_signature,
        })
    }

    /// The copy, tried again (with backoff, within the retry settings) while it fails
    /// transiently: no answer, 5xx, timeouts or throttling.
    async fn copy_object(&self, path: &Path) -> Result<(), GcsError> {
        retrying(&self.retries, path.as_ref(), || self.copy_once(path)).await
    }

    async fn copy_once(&self, path: &Path) -> Result<(), GcsError> {
        let url = format!("{}/{}/{}", self.base_url, self.target_bucket, encoded(&self.target_prefix, path));
        let source = format!("{}/{}", self.source_bucket, encoded(&self.source_prefix, path));
        let failed = |status, message: String| GcsError { what: format!("PUT {url}"), status, message };
        let mut request: HttpRequest = http::Request::builder()
            .method(Method::PUT)
            .uri(&url)
            .header("x-goog-copy-source", source)
            .header(http::header::CONTENT_LENGTH, "0")
            .body(HttpRequestBody::empty())
            .map_err(|e| failed(None, e.to_string()))?;
        if !self.skip_signature {
            let credential =
                self.credentials.get_credential().await.map_err(|e| failed(None, format!("credentials: {e}")))?;
            let bearer = HeaderValue::try_from(format!("Bearer {}", credential.bearer))
                .map_err(|e| failed(None, format!("the bearer token: {e}")))?;
            request.headers_mut().insert(http::header::AUTHORIZATION, bearer);
        }
        let response = self.client.execute(request).await.map_err(|e| failed(None, e.to_string()))?;
        let status = response.status().as_u16();
        let body = response.into_body().bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned());
        let body = body.map_err(|e| failed(None, format!("reading the answer: {e}")))?;
        if let Some((code, message)) = error_body(&body) {
            // An error in a 200 answer is a failure all the same, worth another try.
            let status = if (200..300).contains(&status) { 500 } else { status };
            return Err(failed(Some(status), format!("{code}: {message}")));
        }
        if !(200..300).contains(&status) {
            return Err(failed(Some(status), body));
        }
        match xml_value(&body, "ETag") {
            Some(_) => Ok(()),
            None => Err(failed(Some(500), format!("no CopyObjectResult in the answer: {body}"))),
        }
    }
}

#[async_trait]
impl ServerSideCopy for GcsCopy {
    async fn copy(&self, path: &Path, _size: u64) -> Result<(), ServerSideError> {
        self.copy_object(path).await.map_err(|error| error.into_server_side("GCS", path, &[401, 403, 501]))
    }
}

/// A failed copy request.
type GcsError = CopyRequestError;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::sync::Arc;

    use object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder};
    use object_store::StaticCredentialProvider;

    use super::*;
    use crate::objstore::fake_http::{Answer, FakeHttp};

    /// A copy from bucket `source` (prefix `from`) to `target` (prefix `to`) on the fake, with a
    /// static token (no OAuth exchange, which would leave 127.0.0.1).
    fn copy_on(fake: &FakeHttp) -> GcsCopy {
        let token = StaticCredentialProvider::new(GcpCredential { bearer: "token-1".into() });
        let store = GoogleCloudStorageBuilder::new()
            .with_bucket_name("target")
            .with_base_url(&fake.address)
            .with_credentials(Arc::new(token))
            .with_client_options(ClientOptions::new().with_allow_http(true))
            .build()
            .unwrap();
        GcsCopy::new(GcsCopySetup {
            target: store,
            client_options: ClientOptions::new().with_allow_http(true),
            base_url: fake.address.clone(),
            source_bucket: "source".into(),
            target_bucket: "target".into(),
            source_prefix: Path::from("from"),
            target_prefix: Path::from("to"),
            retries: Retries { retries: 2, retry_timeout: Duration::from_secs(10) },
            skip_signature: false,
        })
        .unwrap()
    }

    const COPIED: &str =
        "<CopyObjectResult><LastModified>2026-01-01T00:00:00Z</LastModified><ETag>\"abc\"</ETag></CopyObjectResult>";

    #[tokio::test]
    async fn the_copy_is_a_put_on_the_target_naming_the_source_bucket_and_object() {
        let fake = FakeHttp::start(Box::new(|_, _| (200, Vec::new(), COPIED.into())));
        copy_on(&fake).copy(&Path::from("01HF/chunks/000001"), 10).await.unwrap();
        let seen = fake.seen();
        assert_eq!(seen.len(), 1, "{seen:#?}");
        assert_eq!((seen[0].method.as_str(), seen[0].target.as_str()), ("PUT", "/target/to%2F01HF%2Fchunks%2F000001"));
        assert_eq!(seen[0].headers["x-goog-copy-source"], "source/from%2F01HF%2Fchunks%2F000001");
        assert_eq!(seen[0].headers["content-length"], "0");
        assert_eq!(seen[0].headers["authorization"], "Bearer token-1");
    }

    #[tokio::test]
    async fn errors_in_any_answer_fail_and_access_denied_refuses() {
        let error = "<Error><Code>InternalError</Code><Message>try again</Message></Error>";
        let answer: Answer = Box::new(move |_, n| (200, Vec::new(), if n == 0 { error.into() } else { COPIED.into() }));
        let fake = FakeHttp::start(answer);
        copy_on(&fake).copy(&Path::from("a/index"), 10).await.unwrap();
        assert_eq!(fake.seen().len(), 2, "a 200 with an error is tried again");
        let denied = "<Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        let fake = FakeHttp::start(Box::new(move |_, _| (403, Vec::new(), denied.into())));
        let refused = copy_on(&fake).copy(&Path::from("a/index"), 10).await.unwrap_err();
        assert!(matches!(refused, ServerSideError::Refused(_)), "{refused:?}");
        assert_eq!(fake.seen().len(), 1);
    }
}
