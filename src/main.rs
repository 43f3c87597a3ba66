//! bucketflow: replicate Prometheus/Thanos TSDB blocks between buckets.

mod bench;
mod cli;
mod gen;
mod http;
mod logging;
mod metrics;
mod objstore;
mod progress;
mod replicate;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::replicate::Finish;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Replicate(args) => {
            logging::init(args.log_level, args.log_format);
            replicate::run(args)
        }
        Command::Bench(args) => {
            logging::init(cli::LogLevel::Info, cli::LogFormat::Logfmt);
            bench::run(args).map(|()| Finish::Succeeded)
        }
        Command::BenchRun(args) => {
            logging::init(cli::LogLevel::Warn, cli::LogFormat::Logfmt);
            bench::run_one(args).map(|()| Finish::Succeeded)
        }
        Command::Gen(args) => {
            logging::init(cli::LogLevel::Info, cli::LogFormat::Logfmt);
            gen::run(args).map(|()| Finish::Succeeded)
        }
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
