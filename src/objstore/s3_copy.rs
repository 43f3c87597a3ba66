//! Server-side copies between two S3 buckets of one endpoint: CopyObject, and above 5 GiB a
//! multipart upload of UploadPartCopy parts.
//!
//! object_store copies only within the bucket a store was built for, so these requests are made
//! here, from object_store's public parts: the target store's credential provider, its SigV4
//! [`AwsAuthorizer`] and an [`HttpClient`] from its [`ReqwestConnector`]. No second SDK. The
//! requests are signed with the target's credentials, which must be allowed to read the source;
//! when they are not (AccessDenied), the engine streams instead.

use std::ops::Range;

use async_trait::async_trait;
use bucketflow_dataflows::{ServerSideCopy, ServerSideError};
use futures::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use object_store::aws::{AmazonS3, AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpClient, HttpConnector, HttpRequest, HttpRequestBody, ReqwestConnector};
use object_store::path::Path;
use object_store::ClientOptions;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::copy_request::{retrying, under, CopyRequestError};
use super::http::Retries;

/// What S3 leaves unencoded in a key (RFC 3986's unreserved characters), and in a path `/`.
const KEY_ENCODE_SET: AsciiSet = NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'/');
/// The same for a query value: `/` encoded too.
const QUERY_ENCODE_SET: AsciiSet = NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The largest object one CopyObject copies.
pub const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;
/// S3's bounds on the parts of a multipart upload: at least 5 MiB (but the last), at most
/// 5 GiB, at most 10,000 of them.
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;
/// The part size a multipart copy prefers: large, since a part costs a request and moves no
/// bytes through bucketflow, so fewer parts are faster; a 6 GiB object takes 12.
const PREFERRED_PART: u64 = 512 * 1024 * 1024;
/// Parts of one object copied at once.
const PARTS_AT_ONCE: usize = 8;

/// The byte ranges of the parts a multipart copy of `size` bytes is made of: `preferred` bytes
/// each, grown where that would take more than 10,000 parts, and kept within S3's 5 MiB to 5 GiB.
pub fn copy_parts(size: u64, preferred: u64) -> Vec<Range<u64>> {
    let part = preferred.max(size.div_ceil(MAX_PARTS)).clamp(MIN_PART, MAX_PART);
    (0..size.div_ceil(part)).map(|i| i * part..((i + 1) * part).min(size)).collect()
}

/// Where the target bucket's requests go, as object_store sends them: path-style
/// (`endpoint/bucket`) or virtual-hosted (the endpoint, which then names the bucket itself).
pub fn bucket_url(endpoint: Option<&str>, virtual_hosted: bool, bucket: &str, region: &str) -> String {
    match (endpoint, virtual_hosted) {
        (Some(endpoint), true) => endpoint.trim_end_matches('/').to_string(),
        (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
    }
}

/// The `x-amz-copy-source` of `key` in `bucket`: `/<bucket>/<key, URL-encoded>`.
pub fn copy_source(bucket: &str, key: &Path) -> String {
    format!("/{bucket}/{}", utf8_percent_encode(key.as_ref(), &KEY_ENCODE_SET))
}

/// Copies objects from one S3 bucket to another of the same endpoint, server-side.
pub struct S3Copy {
    client: HttpClient,
    credentials: AwsCredentialProvider,
    region: String,
    request_payer: bool,
    /// The target bucket's URL, without a trailing slash.
    target_url: String,
    source_bucket: String,
    source_prefix: Path,
    target_prefix: Path,
    /// The target's server-side encryption, sent with CopyObject and CreateMultipartUpload so
    /// that a copy is encrypted as a streamed object would be.
    encryption: HeaderMap,
    retries: Retries,
    /// Objects larger than this are copied in parts.
    single_copy_limit: u64,
    preferred_part: u64,
}

impl std::fmt::Debug for S3Copy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Copy({}/{} -> {}/{})", self.source_bucket, self.source_prefix, self.target_url, self.target_prefix)
    }
}

/// What [`S3Copy`] needs to know of the two buckets, read from their configs.
pub struct S3CopySetup {
    /// The target store, whose credentials sign the copies.
    pub target: AmazonS3,
    pub client_options: ClientOptions,
    pub region: String,
    pub request_payer: bool,
    pub target_url: String,
    pub source_bucket: String,
    pub source_prefix: Path,
    pub target_prefix: Path,
    pub encryption: HeaderMap,
    pub retries: Retries,
}

impl S3Copy {
    pub fn new(setup: S3CopySetup) -> object_store::Result<S3Copy> {
        let client = ReqwestConnector::default().connect(&setup.client_options)?;
        Ok(S3Copy {
            client,
            credentials: setup.target.credentials().clone(),
            region: setup.region,
            request_payer: setup.request_payer,
            target_url: setup.target_url.trim_end_matches('/').to_string(),
            source_bucket: setup.source_bucket,
            source_prefix: setup.source_prefix,
            target_prefix: setup.target_prefix,
            encryption: setup.encryption,
            retries: setup.retries,
            single_copy_limit: MAX_SINGLE_COPY,
            preferred_part: PREFERRED_PART,
        })
    }

    /// This copy, with objects above `limit` bytes copied in parts of `preferred` bytes, 5 MiB
    /// at least (for tests, which have no 5 GiB objects).
    pub fn with_multipart_above(self, limit: u64, preferred: u64) -> S3Copy {
        S3Copy { single_copy_limit: limit, preferred_part: preferred, ..self }
    }

    fn object_url(&self, key: &Path, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}/{}", self.target_url, utf8_percent_encode(key.as_ref(), &KEY_ENCODE_SET));
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(name);
            // `?uploads` has no value, and is sent without `=` as S3's documentation writes it.
            if !value.is_empty() {
                url.push('=');
                url.extend(utf8_percent_encode(value, &QUERY_ENCODE_SET));
            }
        }
        url
    }

    /// Sends one signed request, and tries it again (with backoff, within the retry settings)
    /// while it fails transiently: no answer, 5xx, throttling, or a 200 whose body is an error,
    /// which S3 sends when a copy fails after it started answering.
    async fn send(&self, method: Method, url: &str, headers: &HeaderMap, body: &str) -> Result<String, S3Error> {
        retrying(&self.retries, url, || self.send_once(method.clone(), url, headers, body)).await
    }

    async fn send_once(&self, method: Method, url: &str, headers: &HeaderMap, body: &str) -> Result<String, S3Error> {
        let what = || format!("{method} {url}");
        let credential = self.credentials.get_credential().await.map_err(|e| S3Error {
            what: what(),
            status: None,
            message: format!("credentials: {e}"),
        })?;
        let mut request: HttpRequest = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .body(HttpRequestBody::from(body.to_string()))
            .map_err(|e| S3Error { what: what(), status: None, message: e.to_string() })?;
        request.headers_mut().extend(headers.clone());
        let authorizer = AwsAuthorizer::new(&credential, "s3", &self.region).with_request_payer(self.request_payer);
        authorizer.try_authorize(&mut request, None).map_err(|e| S3Error {
            what: what(),
            status: None,
            message: format!("signing: {e}"),
        })?;
        let response = self.client.execute(request).await.map_err(|e| S3Error {
            what: what(),
            status: None,
            message: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .into_body()
            .bytes()
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(|e| S3Error { what: what(), status: None, message: format!("reading the answer: {e}") })?;
        // S3 may answer a copy with 200 and report its failure in the body.
        if let Some((code, message)) = error_body(&text) {
            let status = if (200..300).contains(&status) { status_of_code(&code) } else { status };
            return Err(S3Error { what: what(), status: Some(status), message: format!("{code}: {message}") });
        }
        if !(200..300).contains(&status) {
            return Err(S3Error { what: what(), status: Some(status), message: text });
        }
        Ok(text)
    }

    /// CopyObject: the whole object in one request.
    async fn copy_object(&self, from: &Path, to: &Path) -> Result<(), S3Error> {
        let mut headers = self.encryption.clone();
        headers.insert(COPY_SOURCE, header(&copy_source(&self.source_bucket, from)));
        let body = self.send(Method::PUT, &self.object_url(to, &[]), &headers, "").await?;
        // A successful copy names the new object's ETag.
        match xml_value(&body, "ETag") {
            Some(_) => Ok(()),
            None => Err(S3Error {
                what: format!("PUT {}", self.object_url(to, &[])),
                status: Some(500),
                message: format!("no CopyObjectResult in the answer: {body}"),
            }),
        }
    }

    /// CreateMultipartUpload, UploadPartCopy for each range, CompleteMultipartUpload; an upload
    /// that fails is aborted, so that no invisible, billed parts stay behind.
    async fn copy_multipart(&self, from: &Path, to: &Path, size: u64) -> Result<(), S3Error> {
        let created = self.send(Method::POST, &self.object_url(to, &[("uploads", "")]), &self.encryption, "").await?;
        let upload_id = xml_value(&created, "UploadId").ok_or_else(|| S3Error {
            what: format!("POST {}", self.object_url(to, &[("uploads", "")])),
            status: Some(500),
            message: format!("no UploadId in the answer: {created}"),
        })?;
        let result = self.copy_parts(from, to, size, &upload_id).await;
        if result.is_err() {
            let url = self.object_url(to, &[("uploadId", &upload_id)]);
            if let Err(error) = self.send(Method::DELETE, &url, &HeaderMap::new(), "").await {
                tracing::warn!(%to, %error, "aborting a failed multipart copy");
            }
        }
        result
    }

    async fn copy_parts(&self, from: &Path, to: &Path, size: u64, upload_id: &str) -> Result<(), S3Error> {
        let source = header(&copy_source(&self.source_bucket, from));
        let parts = copy_parts(size, self.preferred_part);
        let mut etags: Vec<(usize, String)> = futures::stream::iter(parts.into_iter().enumerate())
            .map(|(i, range)| {
                let source = source.clone();
                async move {
                    let number = (i + 1).to_string();
                    let url = self.object_url(to, &[("partNumber", &number), ("uploadId", upload_id)]);
                    let mut headers = HeaderMap::new();
                    headers.insert(COPY_SOURCE, source);
                    headers.insert(COPY_SOURCE_RANGE, header(&format!("bytes={}-{}", range.start, range.end - 1)));
                    let body = self.send(Method::PUT, &url, &headers, "").await?;
                    let etag = xml_value(&body, "ETag").ok_or_else(|| S3Error {
                        what: format!("PUT {url}"),
                        status: Some(500),
                        message: format!("no ETag in the answer: {body}"),
                    })?;
                    Ok::<_, S3Error>((i + 1, etag))
                }
            })
            .buffer_unordered(PARTS_AT_ONCE)
            .try_collect()
            .await?;
        etags.sort();
        let body = complete_body(&etags);
        self.send(Method::POST, &self.object_url(to, &[("uploadId", upload_id)]), &HeaderMap::new(), &body).await?;
        Ok(())
    }
}

#[async_trait]
impl ServerSideCopy for S3Copy {
    async fn copy(&self, path: &Path, size: u64) -> Result<(), ServerSideError> {
        let (from, to) = (under(&self.source_prefix, path), under(&self.target_prefix, path));
        let result = if size <= self.single_copy_limit {
            self.copy_object(&from, &to).await
        } else {
            self.copy_multipart(&from, &to, size).await
        };
        result.map_err(|error| error.into_server_side("S3", path, &[403, 501]))
    }
}

const COPY_SOURCE: HeaderName = HeaderName::from_static("x-amz-copy-source");
const COPY_SOURCE_RANGE: HeaderName = HeaderName::from_static("x-amz-copy-source-range");

/// A header value made of URL-encoded text and digits, which is always valid.
fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("URL-encoded text is a valid header value")
}

/// A failed request of a server-side copy.
type S3Error = CopyRequestError;

/// The HTTP status an S3 error code stands for, for an error in the body of a 200 answer.
fn status_of_code(code: &str) -> u16 {
    match code {
        "AccessDenied" => 403,
        "NoSuchKey" | "NoSuchBucket" | "NoSuchUpload" => 404,
        "SlowDown" | "ServiceUnavailable" => 503,
        "NotImplemented" => 501,
        "InvalidRequest" | "InvalidArgument" | "InvalidPart" | "InvalidPartOrder" | "EntityTooLarge"
        | "EntityTooSmall" => 400,
        // InternalError, and codes not known here: worth another try.
        _ => 500,
    }
}

/// The code and message of an S3 `<Error>` document.
pub(super) fn error_body(body: &str) -> Option<(String, String)> {
    let start = body.find("<Error>")?;
    let error = &body[start..];
    Some((xml_value(error, "Code").unwrap_or_default(), xml_value(error, "Message").unwrap_or_default()))
}

/// The text of the first `<tag>` element in `xml`, unescaped. S3's answers here are small,
/// flat documents, so no XML parser is needed to find one value in them.
pub(super) fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(unescape(&xml[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&amp;", "&")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The CompleteMultipartUpload document for `parts` (number, ETag), in part order.
fn complete_body(parts: &[(usize, String)]) -> String {
    let mut body = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        body.push_str(&format!("<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>", escape(etag)));
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

#[cfg(test)]
mod tests;
