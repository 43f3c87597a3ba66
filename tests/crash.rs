//! Crashes: a real replicate process is killed with SIGKILL at seeded random moments, again and
//! again on the same target, while an observer watches the target. At no moment it saw may a
//! meta.json stand beside an incomplete block; after a last, uninterrupted run the target equals
//! the source. Against a folder and against S3 (s3s-fs, whose bucket is a folder the observer can
//! read; s3s-fs writes each object under a temporary name and renames it into place).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bucketflow_dataflows::testkit::synth::SynthSpec;
use support::buckets::{files, fs_yaml, objects, synth_folder};
use support::process::BIN;
use support::servers;

/// A small, seeded pseudo-random sequence (xorshift64*), so that a failing seed can be re-run.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Every block folder of `target` that has a meta.json, checked against the source the way a
/// reader would meet it: meta.json first, then the block's objects (which the replicator wrote
/// before it). Returns the problems seen.
fn observe(source: &BTreeMap<PathBuf, Vec<u8>>, target: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(target).into_iter().flatten() {
        let dir = entry.unwrap().path();
        let block = PathBuf::from(dir.file_name().unwrap());
        if !dir.join("meta.json").exists() {
            continue;
        }
        for (path, data) in source.iter().filter(|(p, _)| p.starts_with(&block)) {
            match std::fs::read(target.join(path)) {
                Ok(bytes) if &bytes == data => {}
                Ok(bytes) => {
                    problems.push(format!("{}: {} bytes, expected {}", path.display(), bytes.len(), data.len()))
                }
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
    }
    problems
}

/// Watches `target` until stopped; returns how many looks it took and what it saw wrong.
fn watch(
    source: BTreeMap<PathBuf, Vec<u8>>,
    target: PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut looks, mut problems) = (0, Vec::new());
        while !stop.load(Ordering::SeqCst) {
            problems.extend(observe(&source, &target));
            looks += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        (looks, problems)
    })
}

/// Kills `kills` runs at seeded random moments, watching `watched` (the target's folder), then
/// completes the replication; returns how many kills left the target partly replicated.
fn crash_and_resume(source_dir: &Path, to_yaml: &str, watched: &Path, seed: u64, kills: usize) -> usize {
    let source = files(source_dir);
    let blocks = std::fs::read_dir(source_dir).unwrap().count();
    let mut partial_kills = 0;
    let mut random = Seeded(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let args = |extra: &[&str]| {
        let mut args =
            vec!["replicate", "--objstore-to.config", to_yaml, "--single-run", "--http-address", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let from = fs_yaml(source_dir);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(source.clone(), watched.to_path_buf(), stop.clone());
    for _ in 0..kills {
        let mut child = Command::new(BIN)
            .args(args(&[
                "--objstore.config",
                &from,
                "--concurrency",
                "3",
                "--debug.latency",
                "25ms",
                "--log.level",
                "error",
            ]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let moment = Duration::from_millis(random.below(900));
        let started = Instant::now();
        while started.elapsed() < moment && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
        let committed = std::fs::read_dir(watched)
            .into_iter()
            .flatten()
            .filter(|e| e.as_ref().unwrap().path().join("meta.json").exists())
            .count();
        partial_kills += usize::from(committed < blocks);
    }
    let out = Command::new(BIN).args(args(&["--objstore.config", &from])).output().unwrap();
    stop.store(true, Ordering::SeqCst);
    let (looks, problems) = watcher.join().unwrap();
    assert!(out.status.success(), "seed {seed}: the last run fails: {}", String::from_utf8_lossy(&out.stderr));
    assert!(looks > 10, "seed {seed}: the observer looked only {looks} times");
    assert_eq!(problems, Vec::<String>::new(), "seed {seed}: a meta.json stood beside an incomplete block");
    assert_eq!(objects(watched), source, "seed {seed}: the resumed replication completes the target");
    partial_kills
}

fn spec(seed: u64) -> SynthSpec {
    SynthSpec { groups: 3, blocks_per_group: 4, seed, ..SynthSpec::default() }
}

#[test]
fn sigkill_at_random_moments_never_exposes_an_incomplete_block_in_a_folder() {
    let mut partial_states = 0;
    for seed in 1..=8 {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        synth_folder(&src, spec(seed));
        partial_states += crash_and_resume(&src, &fs_yaml(&dst), &dst, seed, 3);
    }
    assert!(partial_states > 0, "no kill ever landed mid-run: the test would prove nothing");
}

#[test]
fn sigkill_at_random_moments_never_exposes_an_incomplete_block_in_s3() {
    let Some(s3) = servers::s3s_fs(&["target"]) else { return };
    let host = s3.endpoint.trim_start_matches("http://");
    let mut partial_states = 0;
    for seed in 11..=14 {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        synth_folder(&src, spec(seed));
        let prefix = format!("run{seed}");
        let to = format!(
            "type: S3\nconfig:\n  bucket: target\n  endpoint: {host}\n  region: {}\n  access_key: {}\n  secret_key: {}\n  insecure: true\nprefix: {prefix}\n",
            s3.region, s3.access_key, s3.secret_key
        );
        partial_states += crash_and_resume(&src, &to, &s3.data_dir().join("target").join(&prefix), seed, 3);
    }
    assert!(partial_states > 0, "no kill ever landed mid-run: the test would prove nothing");
}
