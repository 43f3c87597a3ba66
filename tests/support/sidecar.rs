//! A sidecar process on folders, and what its HTTP surface is asked.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::Receiver;

use bucketflow_dataflows::testkit::synth::SynthSpec;

use super::buckets::synth_folder;
use super::process::{spawn, wait_for, wait_for_http_address};

/// One GET over HTTP/1.0 (so that no answer comes chunked): the status and the body.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// A synthetic bucket of `groups` x `per` blocks in `dir`; returns the number of blocks.
pub fn bucket(dir: &Path, groups: usize, per: usize) -> usize {
    synth_folder(dir, SynthSpec { groups, blocks_per_group: per, ..SynthSpec::default() })
}

/// Two groups of three blocks in `src`, the oldest block of group `c0` broken (its index is not
/// the size meta.json lists): it fails every run and holds back the rest of its group. Returns
/// the broken block and the blocks held back behind it, oldest first, and a repair that puts
/// the block right.
pub fn bucket_with_a_broken_block(src: &Path) -> (String, Vec<String>, impl FnOnce()) {
    bucket(src, 2, 3);
    let in_c0 = |b: &PathBuf| std::fs::read_to_string(b.join("meta.json")).unwrap().contains("\"c0\"");
    let mut group_c0: Vec<PathBuf> = std::fs::read_dir(src).unwrap().map(|e| e.unwrap().path()).filter(in_c0).collect();
    group_c0.sort();
    let index = group_c0[0].join("index");
    let intact = std::fs::read(&index).unwrap();
    std::fs::write(&index, b"not the listed size").unwrap();
    let name = |p: &PathBuf| p.file_name().unwrap().to_str().unwrap().to_string();
    let repair = move || std::fs::write(&index, intact).unwrap();
    (name(&group_c0[0]), group_c0[1..].iter().map(name).collect(), repair)
}

/// A sidecar from `dir`/src to `dir`/dst with `extra` flags, once its first run is over: the
/// process, its stderr (kept open, so that the process can go on logging) and its HTTP address.
pub fn sidecar_after_one_run(dir: &Path, extra: &[&str]) -> (Child, Receiver<String>, String) {
    let from = format!("file://{}", dir.join("src").display());
    let to = format!("file://{}", dir.join("dst").display());
    let mut args = vec!["replicate", "--from", &from, "--to", &to, "--http-address", "127.0.0.1:0"];
    if !extra.contains(&"--interval") {
        args.extend(["--interval", "1h"]);
    }
    args.extend(extra);
    let (child, lines) = spawn(&args);
    let mut seen = Vec::new();
    let address = wait_for_http_address(&lines, &mut seen);
    wait_for(&lines, "replication run finished", &mut seen);
    (child, lines, address)
}
