//! The bucket configurations as a whole: YAML, URLs, errors and overlaps.

use super::*;

fn open(text: &str) -> Result<Bucket> {
    from_yaml(text, Side::Source, Retries::default())
}

fn err(text: &str) -> String {
    format!("{:#}", open(text).err().expect("should fail"))
}

/// A source bucket from YAML, for the providers' own tests.
pub(super) fn open_yaml(text: &str) -> Bucket {
    open(text).unwrap_or_else(|e| panic!("{text}: {e:#}"))
}

/// A source bucket from a URL, for the providers' own tests.
pub(super) fn open_url(url: &str) -> Bucket {
    from_url(url, Side::Source, Retries::default()).unwrap_or_else(|e| panic!("{url}: {e:#}"))
}

/// What makes the bucket one store with another.
pub(super) fn identity(bucket: &Bucket) -> &str {
    &bucket.base.as_ref().expect("an identity").0
}

/// Asserts that every pair of `buckets` is one store, with one identity.
pub(super) fn assert_one_store(buckets: &[Bucket]) {
    for (a, b) in buckets.iter().zip(&buckets[1..]) {
        assert_eq!(identity(a), identity(b));
        assert!(same_store(a, b).is_some(), "{} is one store with itself", identity(a));
    }
}

/// Asserts that `other` is another store than `bucket`.
pub(super) fn assert_other_store(bucket: &Bucket, other: &Bucket) {
    assert_ne!(identity(bucket), identity(other));
    assert!(same_store(bucket, other).is_none(), "{} against {}", identity(bucket), identity(other));
}

/// A GCS service-account key that never reaches Google: no OAuth, and a local base URL.
fn local_gcs_key() -> String {
    r#"{"private_key": "", "private_key_id": "", "client_email": "test@example.com", "disable_oauth": true, "gcs_base_url": "http://127.0.0.1:1"}"#.to_string()
}

#[test]
fn buckets_that_share_objects_overlap_whatever_their_spelling() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    let url = |rel: &str| {
        from_url(&format!("file://{}", dir.path().join(rel).display()), Side::Source, Retries::default()).unwrap()
    };
    let (a, ab) = (url("a"), url("a/b"));
    assert!(a.overlaps(&ab) && ab.overlaps(&a) && a.overlaps(&a), "a folder and one inside it");
    let yaml = from_yaml(
        &format!("type: FILESYSTEM\nconfig:\n  directory: {}\nprefix: b\n", dir.path().join("a").display()),
        Side::Source,
        Retries::default(),
    )
    .unwrap();
    assert!(yaml.overlaps(&ab), "a prefix is a folder inside the directory");
    std::fs::create_dir_all(dir.path().join("c")).unwrap();
    assert!(!a.overlaps(&url("c")), "siblings do not overlap");

    let s3_yaml = |prefix: &str| {
        open(&format!("type: S3\nconfig:\n  bucket: blocks\n  endpoint: 127.0.0.1:9000\n  region: r\n  insecure: true\n  access_key: AK\n  secret_key: SK\nprefix: {prefix}\n")).unwrap()
    };
    let s3_url = |prefix: &str| {
        from_url(&format!("s3://blocks/{prefix}?endpoint=http://127.0.0.1:9000/&allow_http=true&region=r&access_key_id=OTHER&secret_access_key=S"), Side::Source, Retries::default()).unwrap()
    };
    assert!(s3_yaml("eu").overlaps(&s3_url("eu/1")), "YAML and URL, other credentials, nested prefixes");
    assert!(!s3_yaml("eu").overlaps(&s3_url("us")), "other prefixes");
    assert!(!s3_yaml("").overlaps(&from_url("memory://", Side::Source, Retries::default()).unwrap()));
}

#[test]
fn filesystem_yaml_opens_with_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("type: filesystem\nconfig:\n  directory: {}\nprefix: /tenant/\n", dir.path().display());
    let bucket = open(&yaml).unwrap();
    assert_eq!(bucket.prefix.as_ref(), "tenant");
    assert!(bucket.store.to_string().contains("tenant"), "{}", bucket.store);
}

#[test]
fn s3_gcs_and_azure_yaml_map_onto_object_store() {
    let s3 = open(
        "type: S3\nconfig:\n  bucket: blocks\n  endpoint: 127.0.0.1:9000\n  region: eu-west-1\n  insecure: true\n  access_key: AK\n  secret_key: SK\n  http_config:\n    idle_conn_timeout: 90s\n    response_header_timeout: 2m\n  sse_config:\n    type: SSE-S3\n",
    )
    .unwrap();
    assert!(s3.store.to_string().contains("blocks"), "{}", s3.store);
    let gcs = format!("type: GCS\nconfig:\n  bucket: blocks\n  service_account: '{}'\n", local_gcs_key());
    assert!(open(&gcs).unwrap().store.to_string().contains("blocks"));
    let az = "type: AZURE\nconfig:\n  storage_account: devstoreaccount1\n  storage_account_key: a2V5\n  container: blocks\n  endpoint: http://127.0.0.1:10000/devstoreaccount1\n";
    assert!(open(az).unwrap().store.to_string().contains("blocks"));
}

#[test]
fn same_bucket_under_two_prefixes_is_one_store() {
    let yaml = |prefix: &str| {
        format!("type: S3\nconfig:\n  bucket: b\n  endpoint: 127.0.0.1:9000\n  insecure: true\n  access_key: AK\n  secret_key: SK\nprefix: {prefix}\n")
    };
    let (a, b) = (open(&yaml("from")).unwrap(), open(&yaml("to")).unwrap());
    let same = same_store(&a, &b).expect("one store");
    assert_eq!((same.source_prefix.as_ref(), same.target_prefix.as_ref()), ("from", "to"));
    let other = open(&yaml("to").replace("bucket: b", "bucket: c")).unwrap();
    assert!(same_store(&a, &other).is_none());
}

#[test]
fn unknown_and_invalid_configs_are_named() {
    assert!(err("type: COS\n").contains("unknown objstore type \"COS\""));
    assert!(err("type: FILESYSTEM\nconfig:\n  dir: /x\n").contains("invalid FILESYSTEM config"));
    assert!(err("type: FILESYSTEM\nconfig:\n  directory: /x\nextra: 1\n").contains("unknown field `extra`"));
    assert!(err("type: [").contains("invalid objstore YAML"));
    assert!(err("type: FILESYSTEM\nconfig:\n  directory: /nonexistent/bucketflow\n").contains("does not exist"));
    assert!(err("type: S3\nconfig:\n  bucket: b\n  buckett: c\n").contains("unknown field `buckett`"));
    assert!(err("type: S3\nconfig:\n  endpoint: x\n").contains("`bucket` is required"));
    assert!(err("type: S3\nconfig:\n  bucket: b\n  bucket_lookup_type: sideways\n").contains("sideways"));
    assert!(err("type: S3\nconfig:\n  bucket: b\n  http_config:\n    idle_conn_timeout: soon\n").contains("soon"));
    assert!(err("type: AZURE\nconfig:\n  container: c\n").contains("`storage_account` and `container` are required"));
}

#[test]
fn secrets_stay_out_of_debug_and_errors() {
    let text = "bucket: b\naccess_key: AK\nsecret_key: TOPSECRET\nsession_token: TOKENSECRET\n";
    let config: s3::S3Config = serde_yaml_ng::from_str(text).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("TOPSECRET") && !debug.contains("TOKENSECRET"), "{debug}");
    let e = err("type: S3\nconfig:\n  bucket: b\n  secret_key: TOPSECRET\n  typo: 1\n");
    assert!(!e.contains("TOPSECRET"), "{e}");
    let e = format!(
        "{:#}",
        open_bucket(
            &BucketFlags { url: Some("s3://b?aws_secret_access_key=TOPSECRET&nope=1".into()), ..Default::default() },
            Side::Source,
            Retries::default()
        )
        .err()
        .unwrap()
    );
    assert!(!e.contains("TOPSECRET") && e.contains("\"nope\""), "{e}");
}

#[test]
fn urls_and_their_options() {
    let r = Retries::default();
    assert!(from_url("memory://", Side::Source, r).is_ok());
    let s3 = from_url("s3://blocks/tenant/a?endpoint=http://127.0.0.1:9000&region=us-east-1&allow_http=true&access_key_id=a&secret_access_key=b", Side::Source, r).unwrap();
    assert_eq!(s3.prefix.as_ref(), "tenant/a");
    let e = |url: &str| format!("{:#}", from_url(url, Side::Target, r).err().expect("should fail"));
    assert!(e("s3://blocks?endpoint=http://x&regoin=eu").contains("unknown S3 option \"regoin\""));
    assert!(e("az://c?acount_name=x").contains("unknown Azure option \"acount_name\""));
    assert!(e("gs://b?service_acount=x").contains("unknown GCS option \"service_acount\""));
    let gs = format!(
        "gs://b/p?service_account_key={}",
        url::form_urlencoded::byte_serialize(local_gcs_key().as_bytes()).collect::<String>()
    );
    assert!(from_url(&gs, Side::Source, r).is_ok());
    assert!(e("file://relative").contains("absolute"));
    assert!(e("nope").contains("not a URL"));
    assert!(e("ftp://x").contains("unknown URL scheme"));
}
