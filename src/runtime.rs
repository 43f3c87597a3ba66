//! The one async runtime of a command, shared by its stores, its HTTP server and the engine.

use anyhow::{Context, Result};
use tokio::runtime::Runtime;

/// Threads that may run blocking calls at once: a folder bucket's reads, writes, listings and
/// kernel copies, each a call into the kernel that a thread waits on.
///
/// tokio's default is 512. A first run over 100,000 folder blocks kept over 400 of them busy,
/// each with its allocator cache, and on 2 cores they took the CPU from the dataflow's workers:
/// 44.3 s and 371 MiB peak RSS with the default against 20.6 s and 248 MiB with 4 (tmpfs, one
/// run each). Local file calls are mostly CPU, so a few threads beyond the cores keep it busy;
/// `replicate --io-threads` raises it for a network file system.
fn default_blocking_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (2 * cores).max(4)
}

/// Starts the runtime with the default pool for blocking calls.
pub fn start() -> Result<Runtime> {
    start_with(None)
}

/// Starts the runtime: a worker thread a core, and a pool of `blocking_threads` (or the
/// default) for blocking calls.
pub fn start_with(blocking_threads: Option<usize>) -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(blocking_threads.unwrap_or_else(default_blocking_threads))
        .build()
        .context("starting the async runtime")
}
