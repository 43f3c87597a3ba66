//! bucketflow: replicate Prometheus/Thanos TSDB blocks between buckets.

mod bench;
mod cli;
mod config;
mod gen;
mod http;
mod logging;
mod metrics;
mod objstore;
mod progress;
mod replicate;
mod runtime;
mod status;
mod verify;
mod viewer;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// jemalloc keeps peak RSS near the heap: glibc's allocator gives each thread that allocates an
/// arena of its own, and with the async runtime's blocking threads peak RSS was 2.3 times the
/// peak heap of a first run over 100,000 blocks (heaptrack: 301 MB of heap, 705 MiB RSS).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How a command ended, which the exit status tells.
pub enum Finish {
    Succeeded,
    /// A single run in which a selected block failed, or a verify that found a broken block.
    RunFailed,
    /// A run stopped by this signal.
    Interrupted(i32),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit_on_dataflow_panic();
    let result = match &cli.command {
        Command::Replicate(args) => logging::init(args.log_level, args.log_format).and_then(|()| replicate::run(args)),
        Command::Bench(args) => logging::init(cli::LogLevel::Info, cli::LogFormat::Logfmt)
            .and_then(|()| bench::run(args))
            .map(|()| Finish::Succeeded),
        Command::BenchRun(args) => logging::init(cli::LogLevel::Warn, cli::LogFormat::Logfmt)
            .and_then(|()| bench::run_one(args))
            .map(|()| Finish::Succeeded),
        Command::Verify(args) => logging::init(args.log_level, cli::LogFormat::Logfmt).and_then(|()| verify::run(args)),
        Command::Gen(args) => logging::init(cli::LogLevel::Info, cli::LogFormat::Logfmt)
            .and_then(|()| gen::run(args))
            .map(|()| Finish::Succeeded),
    };
    match result {
        Ok(Finish::Succeeded) => ExitCode::SUCCESS,
        Ok(Finish::RunFailed) => ExitCode::from(1),
        // As a shell reports a process ended by a signal: 128 + its number.
        Ok(Finish::Interrupted(signal)) => ExitCode::from((128 + signal) as u8),
        Err(error) => {
            // The whole chain, so that the message names the flag, file or block at fault.
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
    }
}

/// A panic on one of timely's threads (a worker, or a network thread when a peer process of a
/// cluster is lost) leaves the dataflow unable to finish: the other workers would wait for it
/// forever. The process exits instead. Nothing is lost by it: a meta.json is written only for a
/// complete block, and the next run picks up the rest.
fn exit_on_dataflow_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let thread = std::thread::current();
        if let Some(name) = thread.name().filter(|name| name.starts_with("timely:")) {
            eprintln!(
                "error: the replication dataflow failed on thread {name} (in a cluster: a peer process was lost); \
                 no incomplete block was committed, and a restart of every process completes the work"
            );
            std::process::exit(1);
        }
    }));
}
