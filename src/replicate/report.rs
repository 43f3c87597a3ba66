//! What a finished run leaves behind: its log lines, the dry run's plan on stdout, and the
//! --report-file.

use std::io::Write;

use anyhow::{Context, Result};
use bucketflow_dataflows::Outcome;
use bucketflow_dataflows::RunReport;

use crate::cli::ReplicateArgs;

/// Logs the run's report, prints its plan for a dry run, and writes it to --report-file.
pub fn publish(args: &ReplicateArgs, report: &RunReport) -> Result<()> {
    log_report(report);
    if args.dry_run {
        print_plan(report)?;
    }
    if let Some(path) = &args.report_file {
        let json = serde_json::to_vec_pretty(report)?;
        std::fs::write(path, json).with_context(|| format!("writing --report-file {}", path.display()))?;
    }
    Ok(())
}

fn log_report(report: &RunReport) {
    let c = &report.counts;
    let result = if report.is_failure() { "error" } else { "success" };
    tracing::info!(
        run = report.run_id,
        result,
        replicated = c.replicated,
        already_replicated = c.already_replicated,
        covered = c.covered,
        late = c.late,
        filtered = c.filtered,
        skipped = c.skipped,
        failed = c.failed,
        held_back = c.held_back,
        objects_copied = report.objects_copied,
        bytes_copied = report.bytes_copied,
        duration_seconds = report.duration_seconds,
        "replication run finished"
    );
    for block in &report.every_queue_held_back_by {
        tracing::error!(run = report.run_id, %block, "meta.json unreadable and its group unknown: every group was held back");
    }
    for block in &report.held_back_by_target {
        tracing::error!(run = report.run_id, %block, "target meta.json unreadable: every group it could belong to was held back");
    }
    for error in &report.errors {
        tracing::error!(run = report.run_id, %error, "replication run error");
    }
}

/// The dry run's plan as a table a person reads: one line per block, then the counts.
fn print_plan(report: &RunReport) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<24} {:<26} {:>15} {:>15} {:>12}  ACTION", "GROUP", "BLOCK", "MIN TIME", "MAX TIME", "BYTES")?;
    for b in &report.blocks {
        let (action, bytes) = match &b.outcome {
            Outcome::Planned { bytes, .. } => ("replicate".to_string(), bytes.to_string()),
            Outcome::AlreadyReplicated => ("already replicated".into(), String::new()),
            Outcome::Filtered { reason, .. } => (format!("filtered: {reason}"), String::new()),
            Outcome::Skipped { reason } => (format!("skipped: {reason}"), String::new()),
            other => (other.kind().to_string(), String::new()),
        };
        let time = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_default();
        let group = b.group.clone().unwrap_or_default();
        writeln!(
            out,
            "{group:<24} {:<26} {:>15} {:>15} {bytes:>12}  {action}",
            b.block,
            time(b.min_time),
            time(b.max_time)
        )?;
    }
    let c = &report.counts;
    writeln!(
        out,
        "{} to replicate, {} already replicated, {} filtered, {} skipped, {} failed",
        c.planned, c.already_replicated, c.filtered, c.skipped, c.failed
    )?;
    Ok(())
}
