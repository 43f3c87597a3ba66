//! Log setup: logfmt (Thanos's default) or JSON on stderr, or the systemd journal.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::cli::{LogFormat, LogLevel};

pub fn init(level: LogLevel, format: LogFormat) -> anyhow::Result<()> {
    let level = match level {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    };
    let layer = match format {
        LogFormat::Logfmt => tracing_logfmt::builder().layer().with_writer(|| crate::progress::LogWriter).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
        LogFormat::Journald => {
            use anyhow::Context;
            let journal =
                tracing_journald::layer().context("--log.format journald: connecting to the systemd journal")?;
            journal.with_syslog_identifier("bucketflow".into()).boxed()
        }
    };
    // A second initialisation (as in tests that call `main` logic twice) keeps the first.
    let _ = tracing_subscriber::registry().with(layer.with_filter(level)).try_init();
    Ok(())
}
