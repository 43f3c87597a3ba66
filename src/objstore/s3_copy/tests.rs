//! The S3 copy's arithmetic, and its requests as a fake S3 on 127.0.0.1 receives them.

use bucketflow_dataflows::{ServerSideCopy, ServerSideError};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ClientOptions, HeaderMap, HeaderValue};

use super::*;
use crate::objstore::fake_http::{FakeHttp, Seen};
use crate::objstore::http::Retries;

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

/// Every part but the last is within S3's bounds, there are at most 10,000, and together they
/// are the object, in order.
fn assert_valid_parts(size: u64, parts: &[Range<u64>]) {
    assert!(parts.len() as u64 <= MAX_PARTS, "{size}: {} parts", parts.len());
    assert_eq!(parts.first().map(|p| p.start), Some(0), "{size}");
    assert_eq!(parts.last().map(|p| p.end), Some(size), "{size}");
    for pair in parts.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "{size}: contiguous");
        assert!(pair[0].end - pair[0].start >= MIN_PART, "{size}: a part of at least 5 MiB");
    }
    assert!(parts.iter().all(|p| p.end > p.start && p.end - p.start <= MAX_PART), "{size}: 1 byte to 5 GiB a part");
}

#[test]
fn multipart_copies_take_at_most_ten_thousand_parts_of_five_mib_to_five_gib() {
    // Just over 5 GiB: ten 512 MiB parts and one byte.
    let parts = copy_parts(5 * GIB + 1, PREFERRED_PART);
    assert_eq!(parts.len(), 11);
    assert_eq!(parts[10], 5 * GIB..5 * GIB + 1);
    // S3's largest object, 5 TiB: the parts grow so that 10,000 hold it.
    let five_tib = 5 * 1024 * GIB;
    let parts = copy_parts(five_tib, PREFERRED_PART);
    assert_eq!(parts.len(), 10_000);
    assert_eq!(parts[0].end, five_tib.div_ceil(10_000));
    // A preferred size below S3's smallest part is raised to 5 MiB, one above its largest lowered.
    assert_eq!(copy_parts(12 * MIB, MIB), [0..5 * MIB, 5 * MIB..10 * MIB, 10 * MIB..12 * MIB]);
    assert_eq!(copy_parts(11 * GIB, 8 * GIB)[0], 0..5 * GIB);
    for size in [5 * GIB + 1, 6 * GIB, 64 * GIB, 4999 * GIB, five_tib, 12 * MIB, 5 * MIB] {
        for preferred in [MIN_PART, 8 * MIB, PREFERRED_PART, MAX_PART] {
            assert_valid_parts(size, &copy_parts(size, preferred));
        }
    }
}

#[test]
fn the_copy_source_is_the_source_bucket_and_the_url_encoded_key() {
    assert_eq!(copy_source("blocks", &Path::from("from/01HF/chunks/000001")), "/blocks/from/01HF/chunks/000001");
    assert_eq!(copy_source("b", &Path::from("a b/c+d")), "/b/a%20b/c%2Bd");
    assert_eq!(bucket_url(Some("http://127.0.0.1:9000/"), false, "t", "eu-west-1"), "http://127.0.0.1:9000/t");
    assert_eq!(bucket_url(None, true, "t", "eu-west-1"), "https://t.s3.eu-west-1.amazonaws.com");
    assert_eq!(bucket_url(None, false, "t", "eu-west-1"), "https://s3.eu-west-1.amazonaws.com/t");
}

#[test]
fn error_documents_are_found_in_any_answer() {
    let body = "<?xml version=\"1.0\"?>\n<Error><Code>SlowDown</Code><Message>Please &amp; slow</Message></Error>";
    assert_eq!(error_body(body), Some(("SlowDown".into(), "Please & slow".into())));
    assert_eq!(error_body("<CopyObjectResult><ETag>&quot;x&quot;</ETag></CopyObjectResult>"), None);
    assert_eq!(xml_value("<CopyPartResult><ETag>&quot;x&quot;</ETag></CopyPartResult>", "ETag").unwrap(), "\"x\"");
    let complete = complete_body(&[(1, "\"a\"".into()), (2, "\"b\"".into())]);
    assert_eq!(
        complete,
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;a&quot;</ETag></Part><Part><PartNumber>2</PartNumber><ETag>&quot;b&quot;</ETag></Part></CompleteMultipartUpload>"
    );
}

type Answer = Box<dyn Fn(&Seen, usize) -> (u16, String) + Send + Sync>;

/// A fake S3 on 127.0.0.1, answering each request with a status and a body.
struct FakeS3 {
    http: FakeHttp,
    address: String,
}

impl FakeS3 {
    fn start(answer: Answer) -> FakeS3 {
        let http = FakeHttp::start(Box::new(move |request, n| {
            let (status, body) = answer(request, n);
            (status, Vec::new(), body)
        }));
        FakeS3 { address: http.address.clone(), http }
    }

    fn seen(&self) -> Vec<Seen> {
        self.http.seen()
    }

    /// A copy from bucket `source` (prefix `from`) to bucket `target` (prefix `to`) of this fake.
    fn copy(&self, encryption: HeaderMap) -> S3Copy {
        let store = AmazonS3Builder::new()
            .with_bucket_name("target")
            .with_region("eu-west-1")
            .with_access_key_id("AKTEST")
            .with_secret_access_key("secret")
            .with_endpoint(&self.address)
            .with_allow_http(true)
            .build()
            .unwrap();
        S3Copy::new(S3CopySetup {
            target: store,
            client_options: ClientOptions::new().with_allow_http(true),
            region: "eu-west-1".into(),
            request_payer: false,
            target_url: format!("{}/target", self.address),
            source_bucket: "source".into(),
            source_prefix: Path::from("from"),
            target_prefix: Path::from("to"),
            encryption,
            retries: Retries { retries: 2, retry_timeout: std::time::Duration::from_secs(10) },
        })
        .unwrap()
    }
}

const COPIED: &str = "<CopyObjectResult><ETag>&quot;abc&quot;</ETag></CopyObjectResult>";

#[tokio::test]
async fn copy_object_is_a_signed_put_on_the_target_naming_the_source() {
    let fake = FakeS3::start(Box::new(|_, _| (200, COPIED.into())));
    let mut sse = HeaderMap::new();
    sse.insert("x-amz-server-side-encryption", HeaderValue::from_static("aws:kms"));
    sse.insert("x-amz-server-side-encryption-aws-kms-key-id", HeaderValue::from_static("alias/blocks"));
    fake.copy(sse).copy(&Path::from("01HF/chunks/000001"), 1234).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let put = &seen[0];
    assert_eq!((put.method.as_str(), put.target.as_str()), ("PUT", "/target/to/01HF/chunks/000001"));
    assert_eq!(put.headers["x-amz-copy-source"], "/source/from/01HF/chunks/000001");
    assert_eq!(put.headers["x-amz-server-side-encryption"], "aws:kms");
    assert_eq!(put.headers["x-amz-server-side-encryption-aws-kms-key-id"], "alias/blocks");
    let authorization = &put.headers["authorization"];
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKTEST/"), "{authorization}");
    assert!(authorization.contains("/eu-west-1/s3/aws4_request"), "{authorization}");
    let signed = authorization.split("SignedHeaders=").nth(1).unwrap().split(',').next().unwrap();
    for header in ["host", "x-amz-copy-source", "x-amz-date", "x-amz-server-side-encryption"] {
        assert!(signed.split(';').any(|h| h == header), "{header} is signed: {signed}");
    }
    assert!(put.body.is_empty());
}

#[tokio::test]
async fn an_error_in_a_200_answer_is_a_failure_and_tried_again() {
    let error = "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>";
    // The first answer is a 200 with an error; the second a real copy.
    let fake = FakeS3::start(Box::new(move |_, n| (200, if n == 0 { error.into() } else { COPIED.into() })));
    fake.copy(HeaderMap::new()).copy(&Path::from("a/index"), 10).await.unwrap();
    assert_eq!(fake.seen().len(), 2);
    // One that always fails so is a failure once the retries are spent, named with its cause.
    let fake = FakeS3::start(Box::new(move |_, _| (200, error.into())));
    let failed = fake.copy(HeaderMap::new()).copy(&Path::from("a/index"), 10).await.unwrap_err();
    assert_eq!(fake.seen().len(), 3, "the first try and two retries");
    let ServerSideError::Failed(error) = failed else { panic!("{failed:?}") };
    let text = error_chain(&error);
    assert!(text.contains("non-2xx status code: 500") && text.contains("InternalError"), "{text}");
    // An answer with neither a result nor an error is no copy either.
    let fake = FakeS3::start(Box::new(|_, _| (200, String::new())));
    assert!(fake.copy(HeaderMap::new()).copy(&Path::from("a/index"), 10).await.is_err());
}

#[tokio::test]
async fn access_denied_is_a_refusal_and_not_tried_again() {
    let denied = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    for status in [403, 200] {
        let fake = FakeS3::start(Box::new(move |_, _| (status, denied.into())));
        let refused = fake.copy(HeaderMap::new()).copy(&Path::from("a/index"), 10).await.unwrap_err();
        assert!(matches!(refused, ServerSideError::Refused(_)), "{status}: {refused:?}");
        assert_eq!(fake.seen().len(), 1, "{status}");
    }
    let fake = FakeS3::start(Box::new(|_, _| (404, "<Error><Code>NoSuchKey</Code></Error>".into())));
    let missing = fake.copy(HeaderMap::new()).copy(&Path::from("a/index"), 10).await.unwrap_err();
    assert!(matches!(missing, ServerSideError::Failed(object_store::Error::NotFound { .. })), "{missing:?}");
}

fn multipart_answer(fail_part: Option<usize>) -> Answer {
    Box::new(move |request, _| {
        let query = request.target.split_once('?').map_or("", |(_, q)| q);
        match (request.method.as_str(), query) {
            ("POST", "uploads") => (200, "<InitiateMultipartUploadResult><Bucket>target</Bucket><Key>k</Key><UploadId>up/1+x</UploadId></InitiateMultipartUploadResult>".into()),
            ("PUT", q) if q.starts_with("partNumber=") => {
                let number: usize = q["partNumber=".len()..].split('&').next().unwrap().parse().unwrap();
                if Some(number) == fail_part {
                    return (400, "<Error><Code>InvalidRequest</Code><Message>no</Message></Error>".into());
                }
                (200, format!("<CopyPartResult><ETag>&quot;etag{number}&quot;</ETag></CopyPartResult>"))
            }
            ("POST", q) if q.starts_with("uploadId=") => (200, "<CompleteMultipartUploadResult><ETag>&quot;all-3&quot;</ETag></CompleteMultipartUploadResult>".into()),
            ("DELETE", _) => (204, String::new()),
            _ => (400, "<Error><Code>Unexpected</Code></Error>".into()),
        }
    })
}

#[tokio::test]
async fn a_large_object_is_copied_in_ranged_parts_then_completed_in_order() {
    let fake = FakeS3::start(multipart_answer(None));
    // Above 10 MiB in 5 MiB parts: a 12 MiB object takes three.
    let copy = fake.copy(HeaderMap::new()).with_multipart_above(10 * MIB, 5 * MIB);
    copy.copy(&Path::from("01HF/index"), 12 * MIB).await.unwrap();
    let seen = fake.seen();
    assert_eq!(seen.len(), 5, "{seen:#?}");
    assert_eq!((seen[0].method.as_str(), seen[0].target.as_str()), ("POST", "/target/to/01HF/index?uploads"));
    let mut parts: Vec<(String, String, String)> = seen[1..4]
        .iter()
        .map(|p| {
            assert_eq!(p.method, "PUT");
            assert_eq!(p.headers["x-amz-copy-source"], "/source/from/01HF/index");
            (p.target.clone(), p.headers["x-amz-copy-source-range"].clone(), p.body.clone())
        })
        .collect();
    parts.sort();
    let part = |n: usize, range: &str| {
        (format!("/target/to/01HF/index?partNumber={n}&uploadId=up%2F1%2Bx"), range.to_string(), String::new())
    };
    assert_eq!(
        parts,
        [part(1, "bytes=0-5242879"), part(2, "bytes=5242880-10485759"), part(3, "bytes=10485760-12582911")]
    );
    let complete = &seen[4];
    assert_eq!(
        (complete.method.as_str(), complete.target.as_str()),
        ("POST", "/target/to/01HF/index?uploadId=up%2F1%2Bx")
    );
    assert_eq!(
        complete.body,
        complete_body(&[(1, "\"etag1\"".into()), (2, "\"etag2\"".into()), (3, "\"etag3\"".into())])
    );
    // At or below the limit, one CopyObject.
    let fake = FakeS3::start(Box::new(|_, _| (200, COPIED.into())));
    fake.copy(HeaderMap::new()).with_multipart_above(10 * MIB, 5 * MIB).copy(&Path::from("i"), 10 * MIB).await.unwrap();
    assert_eq!(fake.seen().len(), 1);
}

#[tokio::test]
async fn a_failed_part_aborts_the_upload() {
    let fake = FakeS3::start(multipart_answer(Some(2)));
    let copy = fake.copy(HeaderMap::new()).with_multipart_above(10 * MIB, 5 * MIB);
    let failed = copy.copy(&Path::from("01HF/index"), 12 * MIB).await.unwrap_err();
    assert!(matches!(failed, ServerSideError::Failed(_)), "{failed:?}");
    let seen = fake.seen();
    let last = seen.last().unwrap();
    assert_eq!((last.method.as_str(), last.target.as_str()), ("DELETE", "/target/to/01HF/index?uploadId=up%2F1%2Bx"));
    assert!(!seen.iter().any(|r| r.method == "POST" && r.target.contains("uploadId=")), "never completed: {seen:#?}");
}

/// An error and its sources, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
