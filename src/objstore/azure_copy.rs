//! Server-side copies between two containers of one Azure storage account: Copy Blob, polled
//! until the copy is no longer pending.
//!
//! object_store copies only within the container a store was built for, so the request is made
//! here, from object_store's public parts: the target store's credential provider, its
//! [`AzureAuthorizer`] (Shared Key, bearer token or SAS) and an [`HttpClient`] from its
//! [`ReqwestConnector`]. Within one account a Copy Blob request authorized for the target may
//! name the source without a signature of its own; with SAS credentials, the source URL carries
//! the same SAS, as object_store's own copy does.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bucketflow_dataflows::{ServerSideCopy, ServerSideError};
use http::{HeaderMap, HeaderValue, Method};
use object_store::azure::{AzureAuthorizer, AzureCredential, AzureCredentialProvider, MicrosoftAzure};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector};
use object_store::path::Path;
use object_store::ClientOptions;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::copy_request::{retrying, under, CopyRequestError};
use super::http::Retries;

/// What Azure leaves unencoded in a blob name in a URL, `/` included.
const NAME_ENCODE_SET: AsciiSet = NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');

/// The longest wait between two looks at a pending copy.
const MAX_POLL: Duration = Duration::from_secs(2);

/// What [`AzureCopy`] needs to know of the two containers, read from their configs.
pub struct AzureCopySetup {
    /// The target store, whose credentials authorize the copies.
    pub target: MicrosoftAzure,
    pub client_options: ClientOptions,
    pub account: String,
    /// The containers' URLs, without a trailing slash.
    pub source_url: String,
    pub target_url: String,
    pub source_prefix: Path,
    pub target_prefix: Path,
    pub retries: Retries,
}

/// Copies blobs from one container to another of the same account, server-side.
pub struct AzureCopy {
    client: HttpClient,
    credentials: AzureCredentialProvider,
    account: String,
    source_url: String,
    target_url: String,
    source_prefix: Path,
    target_prefix: Path,
    retries: Retries,
    /// The first wait before looking at a pending copy again; it doubles up to [`MAX_POLL`].
    first_poll: Duration,
}

impl std::fmt::Debug for AzureCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AzureCopy({}/{} -> {}/{})", self.source_url, self.source_prefix, self.target_url, self.target_prefix)
    }
}

impl AzureCopy {
    pub fn new(setup: AzureCopySetup) -> object_store::Result<AzureCopy> {
        Ok(AzureCopy {
            client: ReqwestConnector::default().connect(&setup.client_options)?,
            credentials: setup.target.credentials().clone(),
            account: setup.account,
            source_url: setup.source_url.trim_end_matches('/').to_string(),
            target_url: setup.target_url.trim_end_matches('/').to_string(),
            source_prefix: setup.source_prefix,
            target_prefix: setup.target_prefix,
            retries: setup.retries,
            first_poll: Duration::from_millis(50),
        })
    }

    fn blob_url(container: &str, prefix: &Path, path: &Path) -> String {
        let name = under(prefix, path);
        format!("{container}/{}", utf8_percent_encode(name.as_ref(), &NAME_ENCODE_SET))
    }

    /// Sends one authorized request, tried again (with backoff, within the retry settings)
    /// while it fails transiently: no answer, 5xx, timeouts or throttling.
    async fn send(&self, method: Method, url: &str, headers: &HeaderMap) -> Result<HeaderMap, AzureError> {
        retrying(&self.retries, url, || self.send_once(method.clone(), url, headers)).await
    }

    async fn send_once(&self, method: Method, url: &str, headers: &HeaderMap) -> Result<HeaderMap, AzureError> {
        let what = || format!("{method} {url}");
        let failed = |status, message: String| AzureError { what: what(), status, message };
        let credential =
            self.credentials.get_credential().await.map_err(|e| failed(None, format!("credentials: {e}")))?;
        let mut request: HttpRequest = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|e| failed(None, e.to_string()))?;
        request.headers_mut().extend(headers.clone());
        request.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        AzureAuthorizer::new(&credential, &self.account)
            .try_authorize(&mut request)
            .map_err(|e| failed(None, format!("authorizing: {e}")))?;
        let response = self.client.execute(request).await.map_err(|e| failed(None, e.to_string()))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().bytes().await.map(|b| String::from_utf8_lossy(&b).into_owned());
        if !(200..300).contains(&status) {
            let code = headers.get("x-ms-error-code").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            return Err(failed(Some(status), format!("{code} {}", body.unwrap_or_default()).trim().to_string()));
        }
        Ok(headers)
    }

    /// The source URL as the copy names it: with a SAS credential, the SAS goes with it.
    async fn source(&self, path: &Path) -> Result<String, AzureError> {
        let mut url = Self::blob_url(&self.source_url, &self.source_prefix, path);
        let credential = self.credentials.get_credential().await.map_err(|e| AzureError {
            what: format!("copying {url}"),
            status: None,
            message: format!("credentials: {e}"),
        })?;
        if let AzureCredential::SASToken(pairs) = &*credential {
            let query: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    let encode = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
                    format!("{}={}", encode(k), encode(v))
                })
                .collect();
            url = format!("{url}?{}", query.join("&"));
        }
        Ok(url)
    }

    /// Copy Blob, then Get Blob Properties until `x-ms-copy-status` is no longer `pending`. A
    /// copy still pending when the retry timeout is spent is aborted.
    async fn copy_blob(&self, path: &Path) -> Result<(), AzureError> {
        let target = Self::blob_url(&self.target_url, &self.target_prefix, path);
        let mut headers = HeaderMap::new();
        let source = HeaderValue::try_from(self.source(path).await?).map_err(|e| AzureError {
            what: format!("PUT {target}"),
            status: None,
            message: format!("the source URL: {e}"),
        })?;
        headers.insert("x-ms-copy-source", source);
        let answer = self.send(Method::PUT, &target, &headers).await?;
        let started = Instant::now();
        let mut wait = self.first_poll;
        let mut state = copy_state(&answer);
        loop {
            match state {
                CopyState::Success => return Ok(()),
                CopyState::Failed(description) => {
                    return Err(AzureError {
                        what: format!("PUT {target}"),
                        status: Some(500),
                        message: format!("the copy ended: {description}"),
                    })
                }
                CopyState::Pending(_) if started.elapsed() > self.retries.retry_timeout => {
                    self.abort(&target, &answer).await;
                    return Err(AzureError {
                        what: format!("PUT {target}"),
                        status: Some(500),
                        message: format!("the copy was still pending after {:?}; aborted", self.retries.retry_timeout),
                    });
                }
                CopyState::Pending(_) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_POLL);
                    state = copy_state(&self.send(Method::HEAD, &target, &HeaderMap::new()).await?);
                }
            }
        }
    }

    /// Aborts a pending copy, logging a failure: the copy's own error is the one that matters.
    async fn abort(&self, target: &str, answer: &HeaderMap) {
        let Some(id) = answer.get("x-ms-copy-id").and_then(|v| v.to_str().ok()) else { return };
        let url = format!("{target}?comp=copy&copyid={}", utf8_percent_encode(id, NON_ALPHANUMERIC));
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-copy-action", HeaderValue::from_static("abort"));
        if let Err(error) = self.send(Method::PUT, &url, &headers).await {
            tracing::warn!(%target, %error, "aborting a pending server-side copy");
        }
    }
}

/// Where a copy stands, from `x-ms-copy-status` (and its description).
#[derive(Debug, PartialEq, Eq)]
enum CopyState {
    Success,
    Pending(String),
    Failed(String),
}

fn copy_state(headers: &HeaderMap) -> CopyState {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    match text("x-ms-copy-status").as_str() {
        // Without a status, the copy finished as the request did (a synchronous copy).
        "success" | "" => CopyState::Success,
        "pending" => CopyState::Pending(text("x-ms-copy-progress")),
        other => CopyState::Failed(format!("{other}: {}", text("x-ms-copy-status-description"))),
    }
}

#[async_trait]
impl ServerSideCopy for AzureCopy {
    async fn copy(&self, path: &Path, _size: u64) -> Result<(), ServerSideError> {
        self.copy_blob(path).await.map_err(|error| error.into_server_side("MicrosoftAzure", path, &[403, 501]))
    }
}

/// A failed request of a server-side copy.
type AzureError = CopyRequestError;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use object_store::azure::MicrosoftAzureBuilder;

    use super::*;
    use crate::objstore::fake_http::{Answer, FakeHttp};

    const KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// A copy from container `source` (prefix `from`) to `target` (prefix `to`) of account
    /// `acct` on the fake.
    fn copy_on(fake: &FakeHttp) -> AzureCopy {
        let account_url = format!("{}/acct", fake.address);
        let store = MicrosoftAzureBuilder::new()
            .with_account("acct")
            .with_access_key(KEY)
            .with_container_name("target")
            .with_endpoint(account_url.clone())
            .with_allow_http(true)
            .build()
            .unwrap();
        let mut copy = AzureCopy::new(AzureCopySetup {
            target: store,
            client_options: ClientOptions::new().with_allow_http(true),
            account: "acct".into(),
            source_url: format!("{account_url}/source"),
            target_url: format!("{account_url}/target"),
            source_prefix: Path::from("from"),
            target_prefix: Path::from("to"),
            retries: Retries { retries: 2, retry_timeout: Duration::from_secs(10) },
        })
        .unwrap();
        copy.first_poll = Duration::from_millis(1);
        copy
    }

    fn header(name: &str, value: &str) -> (String, String) {
        (name.into(), value.into())
    }

    #[tokio::test]
    async fn copy_blob_names_the_source_and_a_pending_copy_is_polled_until_it_succeeds() {
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let answer: Answer = Box::new(move |request, _| match request.method.as_str() {
            "PUT" => (202, vec![header("x-ms-copy-status", "pending"), header("x-ms-copy-id", "c-1")], String::new()),
            _ => {
                let status = if counted.fetch_add(1, Ordering::SeqCst) < 2 { "pending" } else { "success" };
                (200, vec![header("x-ms-copy-status", status)], String::new())
            }
        });
        let fake = FakeHttp::start(answer);
        copy_on(&fake).copy(&Path::from("01HF/chunks/000001"), 10).await.unwrap();
        let seen = fake.seen();
        assert_eq!(seen.len(), 4, "a copy and three looks: {seen:#?}");
        let put = &seen[0];
        assert_eq!((put.method.as_str(), put.target.as_str()), ("PUT", "/acct/target/to/01HF/chunks/000001"));
        assert_eq!(put.headers["x-ms-copy-source"], format!("{}/acct/source/from/01HF/chunks/000001", fake.address));
        assert!(put.headers["authorization"].starts_with("SharedKey acct:"), "{:?}", put.headers);
        assert!(put.headers.contains_key("x-ms-version") && put.headers.contains_key("date"), "{:?}", put.headers);
        for poll in &seen[1..] {
            assert_eq!((poll.method.as_str(), poll.target.as_str()), ("HEAD", "/acct/target/to/01HF/chunks/000001"));
        }
        assert_eq!(polls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_copy_is_a_failure_and_a_forbidden_one_a_refusal() {
        let failed: Answer = Box::new(|_, _| {
            (
                202,
                vec![header("x-ms-copy-status", "failed"), header("x-ms-copy-status-description", "500 InternalError")],
                String::new(),
            )
        });
        let fake = FakeHttp::start(failed);
        let error = copy_on(&fake).copy(&Path::from("a/index"), 10).await.unwrap_err();
        assert!(matches!(&error, ServerSideError::Failed(_)) && error.to_string().contains("500"), "{error}");
        let denied: Answer = Box::new(|_, _| {
            (
                403,
                vec![header("x-ms-error-code", "CannotVerifyCopySource")],
                "<Error><Code>CannotVerifyCopySource</Code></Error>".into(),
            )
        });
        let fake = FakeHttp::start(denied);
        let refused = copy_on(&fake).copy(&Path::from("a/index"), 10).await.unwrap_err();
        assert!(matches!(refused, ServerSideError::Refused(_)), "{refused:?}");
        assert_eq!(fake.seen().len(), 1, "a refusal is not tried again");
    }

    #[test]
    fn the_copy_status_says_whether_to_look_again() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, HeaderValue::from_static(v));
            }
            map
        };
        assert_eq!(copy_state(&headers(&[("x-ms-copy-status", "success")])), CopyState::Success);
        assert_eq!(copy_state(&headers(&[])), CopyState::Success);
        let pending = headers(&[("x-ms-copy-status", "pending"), ("x-ms-copy-progress", "5/10")]);
        assert_eq!(copy_state(&pending), CopyState::Pending("5/10".into()));
        let failed = headers(&[("x-ms-copy-status", "failed"), ("x-ms-copy-status-description", "500 InternalError")]);
        assert_eq!(copy_state(&failed), CopyState::Failed("failed: 500 InternalError".into()));
        assert_eq!(
            AzureCopy::blob_url("http://127.0.0.1:10000/acct/c", &Path::from("to"), &Path::from("01HF/chunks/000001")),
            "http://127.0.0.1:10000/acct/c/to/01HF/chunks/000001"
        );
    }
}
