//! Operator controls: marker copies (`copy_markers`) and move mode (`mark_source_for_deletion`),
//! observed through recording stores rather than the engine's own report.

mod support;

use std::sync::Arc;

use bucketflow_dataflows::testkit::block_path;
use bucketflow_dataflows::testkit::synth::{generate, write, SynthBlock, SynthSpec};
use bucketflow_dataflows::testkit::{RecordingStore, Write};
use bucketflow_dataflows::testkit::{DELETION_MARK, NO_COMPACT_MARK, NO_DOWNSAMPLE_MARK};
use bucketflow_dataflows::EngineConfig;
use bytes::Bytes;
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::{MultipartId, ObjectStore, ObjectStoreExt, PutPayload};
use support::{replicate, runtime};

fn config() -> EngineConfig {
    EngineConfig { workers: 2, concurrency: 8, ..EngineConfig::default() }
}

fn bucket(rt: &tokio::runtime::Runtime) -> (Vec<SynthBlock>, Arc<RecordingStore<InMemory>>) {
    let blocks = generate(&SynthSpec { groups: 2, blocks_per_group: 3, ..SynthSpec::default() });
    let store = Arc::new(RecordingStore::new(InMemory::new()));
    let dyn_store: Arc<dyn ObjectStore> = store.clone();
    rt.block_on(write(&dyn_store, &blocks)).unwrap();
    (blocks, store)
}

fn get(rt: &tokio::runtime::Runtime, store: &dyn ObjectStore, dir: &str, rel: &str) -> Option<Bytes> {
    rt.block_on(async { store.get(&block_path(dir, rel)).await.ok()?.bytes().await.ok() })
}

#[test]
fn markers_are_copied_before_meta_json_only_when_asked() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt);
    let marked = &blocks[1];
    for (rel, data) in [
        (NO_COMPACT_MARK, &b"{\"no-compact\":1}"[..]),
        (NO_DOWNSAMPLE_MARK, b"{\"nd\":1}"),
        (DELETION_MARK, b"{\"del\":1}"),
    ] {
        rt.block_on(source.put(&block_path(&marked.dir, rel), PutPayload::from_static(data))).unwrap();
    }
    let test_writes = source.writes().len();

    let plain = Arc::new(RecordingStore::new(InMemory::new()));
    replicate(&rt, source.clone(), plain.clone(), config());
    for rel in [NO_COMPACT_MARK, NO_DOWNSAMPLE_MARK, DELETION_MARK] {
        assert_eq!(get(&rt, &*plain, &marked.dir, rel), None, "{rel} is not copied by default");
    }

    let target = Arc::new(RecordingStore::new(InMemory::new()));
    let report = replicate(&rt, source.clone(), target.clone(), EngineConfig { copy_markers: true, ..config() });
    assert_eq!(report.counts.replicated, blocks.len() as u64);
    for rel in [NO_COMPACT_MARK, NO_DOWNSAMPLE_MARK, DELETION_MARK] {
        assert_eq!(get(&rt, &*target, &marked.dir, rel), get(&rt, &*source, &marked.dir, rel), "{rel}");
    }
    let writes = target.writes();
    let at = |rel: &str| writes.iter().position(|w| w == &Write::Put(format!("{}/{rel}", marked.dir))).unwrap();
    for rel in [NO_COMPACT_MARK, NO_DOWNSAMPLE_MARK, DELETION_MARK] {
        assert!(at(rel) < at("meta.json"), "{rel} before meta.json: {writes:#?}");
    }

    // A mark added to the source after the block was replicated comes along in the next run: a
    // deletion mark too, so that the target's compactor follows the source's retention.
    let later = &blocks[4];
    for (rel, data) in [(NO_COMPACT_MARK, &b"{\"late\":1}"[..]), (DELETION_MARK, b"{\"retention\":1}")] {
        rt.block_on(source.put(&block_path(&later.dir, rel), PutPayload::from_static(data))).unwrap();
    }
    let again = replicate(&rt, source.clone(), target.clone(), EngineConfig { copy_markers: true, ..config() });
    assert_eq!(again.counts.already_replicated, blocks.len() as u64, "{again:#?}");
    assert_eq!(get(&rt, &*target, &later.dir, NO_COMPACT_MARK).as_deref(), Some(&b"{\"late\":1}"[..]));
    assert_eq!(get(&rt, &*target, &later.dir, DELETION_MARK).as_deref(), Some(&b"{\"retention\":1}"[..]));
    assert_eq!(source.writes().len(), test_writes + 2, "only the test wrote the source");
}

#[test]
fn move_mode_marks_each_block_safe_in_the_target_and_writes_nothing_else_to_the_source() {
    let rt = runtime();
    let (blocks, source) = bucket(&rt);
    let setup_writes = source.writes().len();
    // One block is broken in the source (its index gone): it must not be marked.
    let broken = &blocks[4];
    rt.block_on(source.delete(&block_path(&broken.dir, "index"))).unwrap();
    let target = Arc::new(InMemory::new());
    let moving = EngineConfig { mark_source_for_deletion: true, ..config() };
    let before = chrono::Utc::now().timestamp();
    let report = replicate(&rt, source.clone(), target.clone(), moving.clone());
    assert_eq!(report.counts.replicated, blocks.len() as u64 - 2, "the broken block fails, its newer one is held back");
    assert_eq!(report.counts.marked_in_source, report.counts.replicated);

    let writes: Vec<Write> = source.writes().split_off(setup_writes + 1);
    assert_eq!(writes.len() as u64, report.counts.replicated, "{writes:#?}");
    for block in &blocks {
        let mark = get(&rt, &*source, &block.dir, DELETION_MARK);
        let committed = get(&rt, &*target, &block.dir, "meta.json").is_some();
        assert_eq!(mark.is_some(), committed, "{}: marked exactly when safe in the target", block.dir);
        if let Some(mark) = mark {
            let mark: serde_json::Value = serde_json::from_slice(&mark).unwrap();
            assert_eq!(mark["id"], block.dir.as_str());
            assert_eq!(mark["version"], 1);
            assert!(mark["deletion_time"].as_i64().unwrap() >= before, "{mark}");
            assert!(writes.contains(&Write::Put(format!("{}/{DELETION_MARK}", block.dir))));
        }
    }

    // A block already in the target is marked too, but only once its objects are all there.
    let unmarked = &blocks[0];
    rt.block_on(source.delete(&block_path(&unmarked.dir, DELETION_MARK))).unwrap();
    rt.block_on(target.delete(&block_path(&unmarked.dir, "index"))).unwrap();
    let rerun = replicate(&rt, source.clone(), target.clone(), moving.clone());
    assert_eq!(get(&rt, &*source, &unmarked.dir, DELETION_MARK), None, "not marked while its index is missing");
    assert!(rerun.errors.iter().any(|e| e.contains(&unmarked.dir) && e.contains("index")), "{:#?}", rerun.errors);
    assert_eq!(rerun.counts.marked_in_source, 0, "marks already written are left alone");
}

#[test]
fn tenants_commit_in_time_order_are_selected_renamed_and_only_blocks_are_copied() {
    use bucketflow_dataflows::BlockFilter;
    use bucketflow_dataflows::{Layout, Tenants};
    use object_store::prefix::PrefixStore;

    let rt = runtime();
    let raw = Arc::new(InMemory::new());
    let mut tenant_blocks = std::collections::BTreeMap::new();
    for (tenant, groups, seed) in [("team-a", 2, 11), ("team-b", 1, 12), ("team-c", 1, 13)] {
        let blocks = generate(&SynthSpec { groups, blocks_per_group: 3, seed, ..SynthSpec::default() });
        let store: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(raw.clone(), tenant));
        rt.block_on(write(&store, &blocks)).unwrap();
        tenant_blocks.insert(tenant, blocks);
    }
    let a = &tenant_blocks["team-a"];
    // Mimir's own files beside the blocks: a bucket index and a bucket-wide deletion mark.
    let marked = &a[2];
    let mark = format!("{{\"id\":\"{}\",\"deletion_time\":1,\"version\":1}}", marked.dir);
    for (path, data) in [
        ("team-a/bucket-index.json.gz".to_string(), Bytes::from_static(b"gz")),
        (format!("team-a/markers/{}-deletion-mark.json", marked.dir), Bytes::from(mark)),
    ] {
        rt.block_on(raw.put(&path.as_str().into(), PutPayload::from(data))).unwrap();
    }
    let source = Arc::new(RecordingStore::new(raw.clone()));
    let target = Arc::new(RecordingStore::new(InMemory::new()));
    let layout = Layout::Tenants(Tenants {
        disabled: ["team-c".to_string()].into(),
        mapping: [("team-a".to_string(), "team-x".to_string())].into(),
        ..Tenants::default()
    });
    let filter = BlockFilter { ignore_marked_for_deletion: true, ..BlockFilter::default() };
    let report = replicate(&rt, source.clone(), target.clone(), EngineConfig { layout, filter, ..config() });
    assert_eq!(report.counts.replicated, 5 + 3, "team-a less its marked block, and team-b: {report:#?}");
    assert_eq!(report.counts.filtered, 1, "the block marked in team-a/markers/ is filtered");
    assert!(source.writes().is_empty(), "nothing is written to the source");

    let written: Vec<String> =
        target.writes().into_iter().filter_map(|w| if let Write::Put(p) = w { Some(p) } else { None }).collect();
    assert!(written.iter().all(|p| p.starts_with("team-x/") || p.starts_with("team-b/")), "{written:#?}");
    assert!(!written.iter().any(|p| p.contains("bucket-index") || p.contains("markers/")), "{written:#?}");
    for b in a.iter().filter(|b| b.dir != marked.dir) {
        let (src, dst) = (format!("team-a/{}", b.dir), format!("team-x/{}", b.dir));
        assert_eq!(get(&rt, &*target, &dst, "meta.json"), get(&rt, &*source, &src, "meta.json"), "{dst}");
    }
    // One commit queue per tenant: team-a's meta.json writes in (minTime, ULID) order across its
    // two label sets.
    let order: Vec<(i64, String)> = written
        .iter()
        .filter_map(|p| p.strip_prefix("team-x/")?.strip_suffix("/meta.json"))
        .map(|dir| (a.iter().find(|b| b.dir == dir).unwrap().min_time, dir.to_string()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "team-a commits in time order across label sets");
    assert_ne!(a[0].group, a[3].group, "the tenant has two compaction groups");
}

/// A renamed tenant's large objects are uploaded by part number, as any tenant's: to the
/// tenant's name in the target, each part counted once, the bytes the source's.
#[test]
fn a_renamed_tenants_large_objects_go_by_part_number_under_its_new_name() {
    use bucketflow_dataflows::{Layout, PartStore, Tenants};
    use object_store::prefix::PrefixStore;
    let rt = runtime();
    let raw = Arc::new(InMemory::new());
    let spec = SynthSpec { groups: 1, blocks_per_group: 2, max_chunk_bytes: 300_000, ..SynthSpec::default() };
    let blocks = generate(&spec);
    let tenant: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(raw.clone(), "team-a"));
    rt.block_on(write(&tenant, &blocks)).unwrap();
    let part_size = 64 * 1024;
    let parts: u64 = blocks
        .iter()
        .flat_map(|b| b.objects.values())
        .filter(|o| o.len() > part_size)
        .map(|o| o.len().div_ceil(part_size) as u64)
        .sum();
    assert!(parts > 0, "some objects are larger than a part");

    let target = Arc::new(InMemory::new());
    let part_paths = Arc::new(PartPaths { store: target.clone(), paths: Default::default() });
    let telemetry = bucketflow_dataflows::Telemetry::default();
    let mut registry = prometheus_client::registry::Registry::default();
    telemetry.metrics.register(&mut registry);
    let layout = Layout::Tenants(Tenants {
        mapping: [("team-a".to_string(), "team-x".to_string())].into(),
        ..Tenants::default()
    });
    let config =
        EngineConfig { layout, part_size, target_parts: Some(PartStore(part_paths.clone())), telemetry, ..config() };
    let report = replicate(&rt, raw.clone(), target.clone(), config);
    assert_eq!(report.counts.replicated, 2, "{report:#?}");
    assert_eq!(support::requests(&registry).get("target/put_part"), Some(&parts), "every part by number, once");
    // InMemory reads the path of a completion only: each request's path is checked here.
    let paths = part_paths.paths.lock().unwrap().clone();
    assert_eq!(paths.iter().filter(|(op, _)| *op == "put_part").count() as u64, parts);
    assert!(paths.iter().any(|(op, _)| *op == "create") && paths.iter().any(|(op, _)| *op == "complete"));
    assert!(paths.iter().all(|(_, path)| path.starts_with("team-x/")), "{paths:#?}");
    let renamed = PrefixStore::new(raw.clone(), "team-a");
    let moved = PrefixStore::new(target.clone(), "team-x");
    assert_eq!(rt.block_on(support::contents(&moved)), rt.block_on(support::contents(&renamed)));
    assert_eq!(rt.block_on(support::contents(&PrefixStore::new(target, "team-a"))).len(), 0);
}

/// Uploads by part number to an `InMemory`, noting each request's kind and path.
#[derive(Debug)]
struct PartPaths {
    store: Arc<InMemory>,
    paths: std::sync::Mutex<Vec<(&'static str, String)>>,
}

impl PartPaths {
    fn note(&self, op: &'static str, path: &object_store::path::Path) {
        self.paths.lock().unwrap().push((op, path.to_string()));
    }
}

#[async_trait::async_trait]
impl MultipartStore for PartPaths {
    async fn create_multipart(&self, path: &object_store::path::Path) -> object_store::Result<MultipartId> {
        self.note("create", path);
        self.store.create_multipart(path).await
    }

    async fn create_multipart_opts(
        &self,
        path: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<MultipartId> {
        self.note("create", path);
        self.store.create_multipart_opts(path, opts).await
    }

    async fn put_part(
        &self,
        path: &object_store::path::Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        self.note("put_part", path);
        self.store.put_part(path, id, part_idx, data).await
    }

    async fn complete_multipart(
        &self,
        path: &object_store::path::Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<object_store::PutResult> {
        self.note("complete", path);
        self.store.complete_multipart(path, id, parts).await
    }

    async fn abort_multipart(&self, path: &object_store::path::Path, id: &MultipartId) -> object_store::Result<()> {
        self.note("abort", path);
        self.store.abort_multipart(path, id).await
    }
}

#[test]
fn in_a_tenants_bucket_an_unreadable_meta_holds_back_its_tenant_only_and_mappings_may_not_collide() {
    use bucketflow_dataflows::testkit::{FaultRule, FaultyStore, Op};
    use bucketflow_dataflows::{Layout, Tenants};
    use object_store::prefix::PrefixStore;

    let rt = runtime();
    let raw = Arc::new(InMemory::new());
    let mut tenant_blocks = std::collections::BTreeMap::new();
    for (tenant, seed) in [("team-a", 21), ("team-b", 22)] {
        let blocks = generate(&SynthSpec { groups: 1, blocks_per_group: 3, seed, ..SynthSpec::default() });
        let store: Arc<dyn ObjectStore> = Arc::new(PrefixStore::new(raw.clone(), tenant));
        rt.block_on(write(&store, &blocks)).unwrap();
        tenant_blocks.insert(tenant, blocks);
    }
    // team-a's oldest meta.json cannot be read: its group is unknown, its tenant is not.
    let unreadable = format!("^team-a/{}/meta.json$", tenant_blocks["team-a"][0].dir);
    let source = Arc::new(FaultyStore::new(raw.clone(), vec![FaultRule::permanent(&unreadable, &[Op::Get])], 1));
    let tenants = Layout::Tenants(Tenants::default());
    let report = replicate(&rt, source, Arc::new(InMemory::new()), EngineConfig { layout: tenants, ..config() });
    assert_eq!(report.counts.replicated, 3, "team-b goes on: {report:#?}");
    assert_eq!(report.counts.held_back, 2, "team-a's newer blocks wait behind the unread one: {report:#?}");
    assert_eq!(report.counts.failed, 1);

    // Writing team-a as team-b while team-b keeps its name would mix two tenants' blocks.
    let colliding = Layout::Tenants(Tenants {
        mapping: [("team-a".to_string(), "team-b".to_string())].into(),
        ..Tenants::default()
    });
    let report = replicate(&rt, raw.clone(), Arc::new(InMemory::new()), EngineConfig { layout: colliding, ..config() });
    assert!(report.errors.iter().any(|e| e.contains("\"team-a\" as \"team-b\"")), "{:#?}", report.errors);
    assert_eq!(report.counts.replicated, 0);
}
