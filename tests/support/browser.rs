//! Debian's `chromium`, headless, kept off the network: what a test's page looks like in a real
//! browser, as the DOM it built or as a screenshot.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs headless Chromium on `url` with `extra` flags (`--dump-dom`, `--screenshot=...`) in a
/// profile of its own, and returns its standard output. The flags keep it off the network:
/// tests stay on 127.0.0.1.
pub fn headless(chromium: &Path, url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium on {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM Chromium builds from `url`, once its scripts (if any) ran.
pub fn dom(chromium: &Path, url: &str) -> String {
    headless(chromium, url, &["--dump-dom".to_string()])
}
