//! Proves the server harness (tests/support/servers.rs): each server starts on 127.0.0.1 with its
//! bucket or container, and object_store can put, get, list and delete there.
//! A server whose tool is missing is skipped unless CI or BUCKETFLOW_REQUIRE_SERVERS is set.

mod support;

use object_store::azure::MicrosoftAzureBuilder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use support::servers;

fn s3(server: &servers::Server, bucket: &str) -> impl ObjectStore {
    server.s3_store(bucket)
}

async fn round_trip(store: &impl ObjectStore, what: &str) {
    let path = Path::from("01DWJQ1R9XW3Z3WJ7A7HNGQRG1/chunks/000001");
    store.put(&path, PutPayload::from_static(b"hello, bucket")).await.unwrap_or_else(|e| panic!("{what}: put: {e}"));
    let got = store
        .get(&path)
        .await
        .unwrap_or_else(|e| panic!("{what}: get: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("{what}: get body: {e}"));
    assert_eq!(&got[..], b"hello, bucket", "{what}");

    let top = store.list_with_delimiter(None).await.unwrap_or_else(|e| panic!("{what}: list: {e}"));
    let prefixes: Vec<_> = top.common_prefixes.iter().map(|p| p.as_ref().to_string()).collect();
    assert_eq!(prefixes, ["01DWJQ1R9XW3Z3WJ7A7HNGQRG1"], "{what}");
    assert!(top.objects.is_empty(), "{what}: {:?}", top.objects);

    store.delete(&path).await.unwrap_or_else(|e| panic!("{what}: delete: {e}"));
    assert!(
        matches!(store.get(&path).await, Err(object_store::Error::NotFound { .. })),
        "{what}: object still there after delete"
    );
}

#[test]
fn harness_crypto_self_check() {
    servers::self_check();
}

#[tokio::test]
async fn s3s_fs_round_trip() {
    let Some(server) = servers::s3s_fs(&["src-bucket", "dst-bucket"]) else { return };
    assert!(server.data_dir().join("dst-bucket").is_dir());
    round_trip(&s3(&server, "src-bucket"), "s3s-fs").await;
}

#[tokio::test]
async fn moto_round_trip() {
    let Some(server) = servers::moto(&["src-bucket", "dst-bucket"]) else { return };
    round_trip(&s3(&server, "dst-bucket"), "moto").await;
}

#[tokio::test]
async fn azurite_round_trip() {
    let Some(server) = servers::azurite(&["src-container", "dst-container"]) else { return };
    let store = MicrosoftAzureBuilder::new()
        .with_account(&server.access_key)
        .with_access_key(&server.secret_key)
        .with_container_name("dst-container")
        .with_endpoint(server.azure_account_url())
        .with_allow_http(true)
        .build()
        .expect("Azure store");
    round_trip(&store, "azurite").await;
}
