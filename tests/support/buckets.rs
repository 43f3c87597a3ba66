//! Buckets in folders for the binary's integration tests: synthetic Thanos buckets, their files,
//! and the check that every block made visible in a target is complete.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bucketflow_dataflows::testkit::synth::{generate, write, SynthBlock, SynthSpec};
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;

/// Writes a synthetic Thanos bucket into `dir` (created); returns its number of blocks.
pub fn synth_folder(dir: &Path, spec: SynthSpec) -> usize {
    let blocks = generate(&spec);
    write_folder(dir, &blocks);
    blocks.len()
}

/// Writes `blocks` into the folder bucket `dir` (created), each block's meta.json last.
pub fn write_folder(dir: &Path, blocks: &[SynthBlock]) {
    std::fs::create_dir_all(dir).unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
    tokio::runtime::Runtime::new().unwrap().block_on(write(&store, blocks)).unwrap();
}

/// Every file under `dir` (none when it does not exist), by path relative to it.
pub fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The files of a folder bucket as object_store lists them: LocalFileSystem's staging files
/// (`name#N`), which a write killed mid-way leaves behind, are not objects.
pub fn objects(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let staging = |p: &Path| p.to_str().unwrap().rsplit_once('#').is_some_and(|(_, n)| n.parse::<u32>().is_ok());
    files(dir).into_iter().filter(|(p, _)| !staging(p)).collect()
}

/// Thanos objstore YAML for a folder.
pub fn fs_yaml(dir: &Path) -> String {
    format!("type: FILESYSTEM\nconfig:\n  directory: {}\n", dir.display())
}

/// Asserts that every block with a meta.json in `target` has every file of its `source` block,
/// byte for byte (promise 1 as an outside observer sees it); returns those blocks.
pub fn assert_committed_blocks_complete(
    source: &BTreeMap<PathBuf, Vec<u8>>,
    target: &BTreeMap<PathBuf, Vec<u8>>,
) -> Vec<PathBuf> {
    let committed: Vec<PathBuf> =
        target.keys().filter(|p| p.ends_with("meta.json")).map(|p| p.parent().unwrap().to_path_buf()).collect();
    for block in &committed {
        for (path, data) in source.iter().filter(|(p, _)| p.starts_with(block)) {
            assert_eq!(target.get(path), Some(data), "{} in committed block {}", path.display(), block.display());
        }
    }
    committed
}
