//! The `verify` command: audits one bucket and prints, per compaction group, each visible block
//! in time order with what is wrong with it, then the partial uploads.

use std::io::Write;

use anyhow::{Context, Result};
use bucketflow_dataflows::Layout;
use bucketflow_dataflows::{audit, AuditConfig, AuditReport, BlockStatus, TimeNote};

use crate::cli::{LayoutFlag, VerifyArgs};
use crate::objstore::{open_bucket, Retries, Side};
use crate::Finish;

pub fn run(args: &VerifyArgs) -> Result<Finish> {
    // Read-only use: the bucket is opened as a source.
    let bucket = open_bucket(&args.bucket(), Side::Source, Retries::default()).context("bucket")?;
    let config = AuditConfig {
        concurrency: args.concurrency as usize,
        check_hashes: !args.skip_hashes,
        layout: match args.layout {
            LayoutFlag::Thanos => Layout::Thanos,
            LayoutFlag::Tenants => Layout::Tenants(Default::default()),
        },
        replica_labels: args.replica_labels.clone(),
        ..AuditConfig::default()
    };
    let runtime = crate::runtime::start()?;
    let report = runtime.block_on(audit(&*bucket.store, &config))?;
    print(&report)?;
    if let Some(path) = &args.report_file {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing --report-file {}", path.display()))?;
    }
    Ok(if report.has_broken_blocks() { Finish::RunFailed } else { Finish::Succeeded })
}

fn print(report: &AuditReport) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut group = None;
    for b in &report.blocks {
        if b.group != group {
            group = b.group.clone();
            let name = group.as_deref().unwrap_or("(meta.json unreadable: group unknown)");
            writeln!(out, "\ngroup {name}")?;
            writeln!(out, "  {:<26} {:>15} {:>15} {:>5}  STATUS", "BLOCK", "MIN TIME", "MAX TIME", "LEVEL")?;
        }
        let time = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_default();
        let level = b.level.map(|l| l.to_string()).unwrap_or_default();
        let status = match &b.status {
            BlockStatus::Complete => "complete".to_string(),
            BlockStatus::Incomplete { problems } => format!("INCOMPLETE: {}", problems.join("; ")),
            BlockStatus::UnreadableMeta { error } => format!("UNREADABLE META: {error}"),
        };
        let mut notes = Vec::new();
        match &b.time_note {
            Some(TimeNote::Gap { millis, after }) => notes.push(format!("gap of {millis} ms after {after}")),
            Some(TimeNote::Overlap { millis, with }) => notes.push(format!("overlaps {with} by {millis} ms")),
            None => {}
        }
        if b.marked_for_deletion {
            notes.push("marked for deletion".into());
        }
        let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
        writeln!(
            out,
            "  {:<26} {:>15} {:>15} {level:>5}  {status}{notes}",
            b.block,
            time(b.min_time),
            time(b.max_time)
        )?;
    }
    if !report.partial.is_empty() {
        writeln!(out, "\npartial uploads (no meta.json)")?;
        writeln!(out, "  {:<26} {:>8} {:>14} {:>12}", "BLOCK", "OBJECTS", "BYTES", "AGE")?;
        for p in &report.partial {
            writeln!(out, "  {:<26} {:>8} {:>14} {:>12}", p.block, p.objects, p.bytes, age(p.age_seconds))?;
        }
    }
    let c = &report.counts;
    writeln!(
        out,
        "\n{} complete, {} incomplete, {} with unreadable meta.json, {} partial uploads; {} gaps, {} overlaps",
        c.complete, c.incomplete, c.unreadable_meta, c.partial, c.gaps, c.overlaps
    )?;
    Ok(())
}

/// An age as a person reads it: the largest unit, and the next.
fn age(seconds: i64) -> String {
    let (d, h, m) = (seconds / 86_400, seconds % 86_400 / 3600, seconds % 3600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m{}s", seconds % 60),
        (0, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}
