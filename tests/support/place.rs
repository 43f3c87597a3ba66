//! Where a test's source and target buckets live, a folder or S3 on s3s-fs, and single runs of
//! the binary between them.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc::Receiver;

use serde_json::Value;

use super::buckets::fs_yaml;
use super::process::{spawn, BIN};
use super::servers::{self, s3_yaml, Server};

/// Where a test's source and target buckets live.
pub enum Place {
    Folder(tempfile::TempDir),
    S3(Server),
}

impl Place {
    /// A folder, and S3 on s3s-fs when it is installed (always in CI).
    pub fn all() -> Vec<Place> {
        let mut places = vec![Place::Folder(tempfile::tempdir().unwrap())];
        places.extend(servers::s3s_fs(&["source", "target"]).map(Place::S3));
        places
    }

    /// The folder that holds bucket `name`'s objects as files.
    pub fn dir(&self, name: &str) -> PathBuf {
        match self {
            Place::Folder(tmp) => tmp.path().join(name),
            Place::S3(server) => server.data_dir().join(name),
        }
    }

    pub fn yaml(&self, name: &str) -> String {
        match self {
            Place::Folder(_) => fs_yaml(&self.dir(name)),
            Place::S3(server) => s3_yaml(server, name, ""),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Place::Folder(_) => "folder",
            Place::S3(_) => "s3",
        }
    }

    fn report_path(&self) -> PathBuf {
        self.dir("report").with_extension("json")
    }

    /// The arguments of one single run from `source` to `target`, `extra` last.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let report = self.report_path().to_str().unwrap().to_string();
        let (source, target) = (self.yaml("source"), self.yaml("target"));
        let mut args: Vec<String> = ["replicate", "--objstore.config", &source, "--objstore-to.config", &target]
            .into_iter()
            .map(String::from)
            .collect();
        args.extend(["--single-run", "--http-address", "127.0.0.1:0", "--report-file", &report].map(String::from));
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    }

    /// One single run from `source` to `target`: its exit code and report.
    pub fn replicate(&self, extra: &[&str]) -> (Option<i32>, Value) {
        let out = Command::new(BIN).args(self.args(extra)).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        (out.status.code(), self.take_report(&stderr))
    }

    /// One single run from `source` to `target`, started: the process and its stderr lines.
    /// [`Place::take_report`] reads its report once it has ended.
    pub fn spawn_replicate(&self, extra: &[&str]) -> (Child, Receiver<String>) {
        let args = self.args(extra);
        spawn(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The report of the run that just ended, which is then removed.
    pub fn take_report(&self, stderr: &str) -> Value {
        let report =
            std::fs::read(self.report_path()).unwrap_or_else(|_| panic!("no report ({}): {stderr}", self.name()));
        std::fs::remove_file(self.report_path()).unwrap();
        serde_json::from_slice(&report).unwrap()
    }
}
