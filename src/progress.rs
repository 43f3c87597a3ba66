//! The progress bar of a single run at a terminal: blocks, bytes, rate and time left.
//!
//! Log lines go through [`LogWriter`], which hides the bar while a line is written, so that the
//! two never garble each other.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bucketflow_dataflows::Progress;
use indicatif::{ProgressBar, ProgressStyle};

static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// stderr for log lines, aware of the progress bar.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf)).map(|()| buf.len()),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A bar that follows the engine's progress counters until finished.
pub struct Bar {
    done: Arc<AtomicBool>,
    updater: Option<JoinHandle<()>>,
}

impl Bar {
    pub fn start(progress: Arc<Progress>) -> Bar {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} | {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        if let Ok(mut active) = ACTIVE.lock() {
            *active = Some(bar.clone());
        }
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let updater = std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (blocks_done, blocks_total, bytes_done, bytes_total) = progress.snapshot();
                bar.set_length(bytes_total);
                bar.set_position(bytes_done);
                bar.set_message(format!("{blocks_done}/{blocks_total} blocks"));
                std::thread::sleep(Duration::from_millis(100));
            }
            let (blocks_done, blocks_total, ..) = progress.snapshot();
            bar.set_message(format!("{blocks_done}/{blocks_total} blocks"));
            bar.finish();
        });
        Bar { done, updater: Some(updater) }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(updater) = self.updater.take() {
            let _ = updater.join();
        }
        if let Ok(mut active) = ACTIVE.lock() {
            *active = None;
        }
    }
}
