//! Synthetic Thanos buckets: compaction groups of consecutive blocks with chunk segments, an
//! index and a meta.json that lists every file. Seeded, so a layout can be made again.
//!
//! Used by the examples, the tests and the benchmark, which all need buckets whose shape (many
//! small objects, a few large ones, several groups and levels) resembles a real one.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::json;
use sha2::{Digest, Sha256};
use ulid::Ulid;

use crate::model::block::block_path;
use crate::model::group::group_key;

/// The shape of a synthetic bucket.
#[derive(Debug, Clone)]
pub struct SynthSpec {
    /// Compaction groups, each with its own external labels; every fourth is 5m-downsampled.
    pub groups: usize,
    /// Blocks in each group, with consecutive time ranges.
    pub blocks_per_group: usize,
    /// Chunk segments per block: between 1 and this many.
    pub max_chunk_files: usize,
    /// Smallest and largest chunk segment, in bytes; most are near the smallest.
    pub min_chunk_bytes: usize,
    /// Largest chunk segment, in bytes.
    pub max_chunk_bytes: usize,
    /// Largest index, in bytes.
    pub max_index_bytes: usize,
    /// Record SHA256 hashes in `thanos.files`.
    pub with_hashes: bool,
    /// Length of one block's time range, in milliseconds.
    pub block_millis: i64,
    /// Seed of the random sizes, contents and ULIDs: the same seed makes the same bucket.
    pub seed: u64,
}

impl Default for SynthSpec {
    fn default() -> Self {
        SynthSpec {
            groups: 4,
            blocks_per_group: 4,
            max_chunk_files: 3,
            min_chunk_bytes: 1,
            max_chunk_bytes: 64 * 1024,
            max_index_bytes: 16 * 1024,
            with_hashes: true,
            block_millis: 2 * 3600 * 1000,
            seed: 1,
        }
    }
}

/// One generated block: its folder, group, time range and every object including meta.json.
#[derive(Debug, Clone)]
pub struct SynthBlock {
    /// The block folder: its ULID.
    pub dir: String,
    /// The block's compaction group key.
    pub group: String,
    /// The block's minTime in Unix milliseconds.
    pub min_time: i64,
    /// The block's maxTime in Unix milliseconds.
    pub max_time: i64,
    /// The level-1 blocks it holds (`compaction.sources`).
    pub sources: Vec<Ulid>,
    /// Objects by path relative to the block folder; meta.json among them.
    pub objects: BTreeMap<String, Bytes>,
}

impl SynthBlock {
    /// The block's meta.json.
    pub fn meta_json(&self) -> &Bytes {
        &self.objects["meta.json"]
    }
}

/// A size between `min` and `max`, skewed toward small values, as object sizes in a real bucket are.
fn skewed_size(rng: &mut StdRng, min: usize, max: usize) -> usize {
    let (min, max) = (min.max(1), max.max(min.max(1)));
    let u: f64 = rng.random_range(0.0..1.0);
    min + ((u * u * u) * (max - min) as f64) as usize
}

/// The shape of one synthetic block, for layouts that [`generate`] does not make: HA replica
/// pairs, compacted blocks, tenants.
#[derive(Debug, Clone)]
pub struct BlockShape {
    /// The block's ULID.
    pub ulid: Ulid,
    /// The tenant folder it lives in (`<tenant>/<ULID>`), if any.
    pub tenant: Option<String>,
    /// Its external labels (`thanos.labels`).
    pub labels: BTreeMap<String, String>,
    /// Its downsampling resolution in milliseconds.
    pub resolution: i64,
    /// Its time range, `[min_time, max_time)` in Unix milliseconds.
    pub min_time: i64,
    /// The end of its time range.
    pub max_time: i64,
    /// Its compaction level.
    pub level: i64,
    /// The level-1 blocks it holds (`compaction.sources`); empty: itself.
    pub sources: Vec<Ulid>,
}

impl BlockShape {
    /// A level-1 block of `labels` covering `[min_time, max_time)`, its ULID made from `seed`.
    pub fn new(labels: &[(&str, &str)], min_time: i64, max_time: i64, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        BlockShape {
            ulid: Ulid::from_parts(max_time as u64, rng.random::<u128>()),
            tenant: None,
            labels: labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            resolution: 0,
            min_time,
            max_time,
            level: 1,
            sources: Vec::new(),
        }
    }

    /// This block, compacted from `sources` at `level`.
    pub fn compacted_from(self, sources: &[&SynthBlock], level: i64) -> Self {
        let sources = sources.iter().flat_map(|b| b.sources.iter().copied()).collect();
        BlockShape { sources, level, ..self }
    }

    /// This block, in `tenant`'s folder.
    pub fn in_tenant(self, tenant: &str) -> Self {
        BlockShape { tenant: Some(tenant.to_string()), ..self }
    }
}

/// Makes one block of `shape`, with objects of sizes drawn from `spec` and `rng`.
fn make_block(shape: BlockShape, spec: &SynthSpec, rng: &mut StdRng) -> SynthBlock {
    let ulid = shape.ulid;
    let mut objects = BTreeMap::new();
    for c in 0..rng.random_range(1..=spec.max_chunk_files.max(1)) {
        let mut data = vec![0u8; skewed_size(rng, spec.min_chunk_bytes, spec.max_chunk_bytes)];
        rng.fill_bytes(&mut data);
        objects.insert(format!("chunks/{:06}", c + 1), Bytes::from(data));
    }
    let mut index = vec![0u8; skewed_size(rng, 1, spec.max_index_bytes)];
    rng.fill_bytes(&mut index);
    objects.insert("index".to_string(), Bytes::from(index));
    let mut files: Vec<serde_json::Value> = objects
        .iter()
        .map(|(path, data)| {
            let mut f = json!({ "rel_path": path, "size_bytes": data.len() });
            if spec.with_hashes {
                f["hash"] = json!({ "hashFunc": "SHA256", "value": hex::encode(Sha256::digest(data)) });
            }
            f
        })
        .collect();
    files.push(json!({ "rel_path": "meta.json" }));
    let sources = if shape.sources.is_empty() { vec![ulid] } else { shape.sources.clone() };
    let meta = json!({
        "ulid": ulid.to_string(),
        "minTime": shape.min_time,
        "maxTime": shape.max_time,
        "stats": { "numSamples": rng.random_range(1000..100000u64), "numSeries": 10, "numChunks": 20 },
        "compaction": { "level": shape.level, "sources": sources.iter().map(Ulid::to_string).collect::<Vec<_>>() },
        "version": 1,
        "thanos": {
            "labels": shape.labels,
            "downsample": { "resolution": shape.resolution },
            "source": "bucketflow-synth",
            "segment_files": objects.keys().filter(|k| k.starts_with("chunks/")).map(|k| &k[7..]).collect::<Vec<_>>(),
            "files": files,
        }
    });
    let meta = serde_json::to_vec_pretty(&meta).expect("a JSON value serialises");
    objects.insert("meta.json".to_string(), Bytes::from(meta));
    let dir = match &shape.tenant {
        Some(tenant) => format!("{tenant}/{ulid}"),
        None => ulid.to_string(),
    };
    SynthBlock {
        dir,
        group: group_key(shape.resolution, &shape.labels),
        min_time: shape.min_time,
        max_time: shape.max_time,
        sources,
        objects,
    }
}

/// Makes the blocks of `shapes`, with objects drawn from `spec` (its seed, sizes and hashes).
pub fn blocks(shapes: Vec<BlockShape>, spec: &SynthSpec) -> Vec<SynthBlock> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    shapes.into_iter().map(|shape| make_block(shape, spec, &mut rng)).collect()
}

/// Generates the blocks of `spec`, group by group, in ascending time within each group.
pub fn generate(spec: &SynthSpec) -> Vec<SynthBlock> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let start = 1_700_000_000_000i64;
    let mut blocks = Vec::new();
    for g in 0..spec.groups {
        let labels: BTreeMap<String, String> =
            [("cluster".to_string(), format!("c{g}")), ("replica".to_string(), "0".to_string())].into();
        // Every fourth group holds 5m-downsampled blocks, as a compacted bucket does.
        let resolution = if g % 4 == 3 { 300_000 } else { 0 };
        for b in 0..spec.blocks_per_group {
            let min_time = start + b as i64 * spec.block_millis;
            let max_time = min_time + spec.block_millis;
            let ulid = Ulid::from_parts(max_time as u64, rng.random::<u128>());
            let shape = BlockShape {
                ulid,
                tenant: None,
                labels: labels.clone(),
                resolution,
                min_time,
                max_time,
                level: 1 + (b % 3) as i64,
                sources: Vec::new(),
            };
            blocks.push(make_block(shape, spec, &mut rng));
        }
    }
    blocks
}

/// Writes blocks into a store, meta.json of each block last.
pub async fn write(store: &Arc<dyn ObjectStore>, blocks: &[SynthBlock]) -> object_store::Result<()> {
    for block in blocks {
        for (path, data) in block.objects.iter().filter(|(p, _)| p.as_str() != "meta.json") {
            store.put(&block_path(&block.dir, path), PutPayload::from(data.clone())).await?;
        }
        store.put(&block_path(&block.dir, "meta.json"), PutPayload::from(block.meta_json().clone())).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::meta::parse_meta;

    #[test]
    fn layout_is_consecutive_groups_with_complete_metas_and_repeatable() {
        let spec = SynthSpec { groups: 4, blocks_per_group: 3, ..SynthSpec::default() };
        let blocks = generate(&spec);
        assert_eq!(blocks.len(), 12);
        let groups: std::collections::BTreeSet<_> = blocks.iter().map(|b| b.group.clone()).collect();
        assert_eq!(groups.len(), 4);
        for group in &groups {
            let times: Vec<_> = blocks.iter().filter(|b| &b.group == group).map(|b| (b.min_time, b.max_time)).collect();
            assert!(times.windows(2).all(|w| w[0].1 == w[1].0), "consecutive time ranges: {times:?}");
        }
        for b in &blocks {
            let meta = parse_meta(&b.dir, b.meta_json().clone()).unwrap();
            assert_eq!(meta.meta.group_key(&b.dir, &crate::model::group::Grouping::default()), b.group);
            assert!(b.objects.contains_key("index") && b.objects.keys().any(|k| k.starts_with("chunks/")));
            for file in meta.meta.thanos.files.iter().filter(|f| f.rel_path != "meta.json") {
                let data = &b.objects[&file.rel_path];
                assert_eq!(file.size_bytes, Some(data.len() as u64));
                assert_eq!(file.hash.as_ref().unwrap().sha256_hex().unwrap(), hex::encode(Sha256::digest(data)));
            }
        }
        let levels: std::collections::BTreeSet<_> =
            blocks.iter().map(|b| parse_meta(&b.dir, b.meta_json().clone()).unwrap().meta.compaction.level).collect();
        assert!(levels.len() > 1, "several compaction levels");
        let again = generate(&spec);
        assert_eq!(
            blocks.iter().map(|b| &b.objects).collect::<Vec<_>>(),
            again.iter().map(|b| &b.objects).collect::<Vec<_>>()
        );
        let other = generate(&SynthSpec { seed: 2, ..spec });
        assert_ne!(blocks[0].dir, other[0].dir, "another seed, another bucket");
    }
}
