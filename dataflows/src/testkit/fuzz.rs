//! The fuzz targets' checks, here so that they see the engine's internals while the fuzz crate
//! (fuzz/) stays a thin shell, and so that `cargo test` runs them on the seeds and regressions.

use bytes::Bytes;

use crate::dataflow::operators::CommitBlock;
use crate::dataflow::wire::Wire;
use crate::model::block::SourceBlock;
use crate::model::failure::{Failure, FailureCause};
use crate::model::group::{group_key, Grouping};
use crate::model::meta::{parse_meta, MetaError, RawMeta};

/// The folder the seeds' meta.json files belong to.
const BLOCK: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG1";

/// Parses `data` as a meta.json and checks what the engine derives from it; panics on a
/// broken rule. One call is one fuzz input.
pub fn meta_json(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let raw = match parse_meta(BLOCK, bytes.clone()) {
        Ok(raw) => raw,
        // A well-formed meta.json of another block: read it from its own folder, so that every
        // well-formed input reaches the derived values below, not only those naming BLOCK.
        Err(MetaError::UlidMismatch { ulid, .. }) => match parse_meta(&ulid.to_string(), bytes.clone()) {
            Ok(raw) => raw,
            Err(e) => panic!("meta.json naming {ulid} is rejected in folder {ulid}: {e}"),
        },
        Err(e) => {
            // Every error names the folder, so it can be acted upon.
            let message = e.to_string();
            assert!(message.contains(BLOCK), "{message}");
            return;
        }
    };
    check(raw, data);
}

fn check(raw: RawMeta, data: &[u8]) {
    // The raw bytes are what the target receives: kept exactly as read.
    assert_eq!(raw.bytes.as_ref(), data);
    let meta = &raw.meta;
    let dir = meta.ulid.to_string();

    let key = meta.group_key(&dir, &Grouping::default());
    assert_eq!(key, group_key(meta.thanos.downsample.resolution, &meta.thanos.labels));
    assert!(key.starts_with(&format!("{}@", meta.thanos.downsample.resolution)), "{key}");
    for file in &meta.thanos.files {
        if let Some(hex) = file.hash.as_ref().and_then(|h| h.sha256_hex()) {
            assert!(!hex.bytes().any(|b| b.is_ascii_uppercase()), "{hex}");
        }
    }

    // Plan against a listing that agrees with meta.json (each listed file with its listed size,
    // plus an index), as the source bucket of an intact block would.
    let mut listing: Vec<(String, u64)> =
        meta.thanos.files.iter().map(|f| (f.rel_path.clone(), f.size_bytes.unwrap_or(0))).collect();
    if !listing.iter().any(|(p, _)| p == "index") {
        listing.push(("index".to_string(), 1));
    }
    let planned = SourceBlock::plan(&dir, raw.clone(), listing, &Grouping::default());
    assert_eq!(planned.group, key);
    for object in &planned.objects {
        let _ = planned.path(&object.rel_path);
        let _ = object.rank();
    }
    let _ = planned.order_key();

    // In cluster mode a planned block crosses processes as JSON inside a CommitBlock, wrapped in
    // `Wire` and carried by bincode (the commit stage's inputs). A meta.json that parse_meta accepts
    // must make that trip, or the receiving worker cannot decode the record.
    let failure = Failure::new(FailureCause::Source, "fuzz");
    let defective = SourceBlock::defective(&dir, raw.clone(), failure, &Grouping::default());
    for block in [planned, defective] {
        let sent = CommitBlock { queue: key.clone(), block };
        let encoded = bincode::serialize(&Wire(sent.clone())).expect("a CommitBlock encodes");
        let Wire(received) = match bincode::deserialize::<Wire<CommitBlock>>(&encoded) {
            Ok(received) => received,
            Err(e) => panic!("a block whose meta.json parses cannot cross processes: {e}"),
        };
        assert_eq!(received.queue, sent.queue);
        assert_eq!(received.block, sent.block);
    }
}

#[cfg(test)]
mod tests {
    /// Every seed and regression input of the meta.json fuzz target passes its checks.
    #[test]
    fn the_meta_seeds_and_regressions_pass() {
        let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut inputs = 0;
        for folder in ["seeds/meta", "regressions/meta"] {
            for entry in std::fs::read_dir(fuzz.join(folder)).unwrap() {
                super::meta_json(&std::fs::read(entry.unwrap().path()).unwrap());
                inputs += 1;
            }
        }
        assert!(inputs > 1, "the seeds are where this test expects them");
    }
}
