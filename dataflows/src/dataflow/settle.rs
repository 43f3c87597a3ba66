//! Where a block is found to need no copy, and goes no further: the one place that decides a
//! block is already replicated (or left out by the run's filters), each way at the earliest stage
//! that can tell it.
//! - [`replicated_by_listing`], in the list stage: a single run, from the two listings alone.
//! - [`settled_from_memory`], in the load stage: a meta.json this process read before, unchanged.
//! - [`settled`], in the load stage: the filters, the target's meta.json equal to the source's, or
//!   a target block that holds all its sources where the target does not show it (compacted away).
//! - [`already_replicated`], in the target check: the outcome of a block the target shows already,
//!   with the marks added to it since copied.

use super::context::Context;
use super::RunRequest;
use crate::bucket::copy::Copier;
use crate::bucket::inventory::Folder;
use crate::bucket::target::TargetFolder;
use crate::model::block::{Seen, SourceBlock};
use crate::model::markers::{is_marker, Markers};
use crate::model::meta::MetaSummary;
use crate::report::{Outcome, Record};

/// Whether the target holds block folder `source` already, as far as the two listings tell:
/// its meta.json is there with the source's size, and so is every mark to copy. A meta.json
/// never changes (a block's ULID names one version of it), and the commit writes it last, so
/// neither meta.json is read: an idle single run costs the two listings.
///
/// Only in a single run whose selection no matcher, `--id` or time window narrows. A continuous
/// process reads each meta.json once anyway (its later runs and its status page need the block's
/// group, and it tells a rewritten meta.json by its ETag), and a narrowed selection is told from
/// the meta.json. Not either where the block's plan matters beyond that: move mode marks the
/// source block (the full way reads it first), and a deletion mark's time is in the mark. A
/// block that the defaults leave out (empty labels, an unselected resolution or level) and that
/// the target holds too is reported as already replicated rather than filtered.
pub(super) fn replicated_by_listing(ctx: &Context, source: &Folder, target: Option<&Folder>) -> bool {
    let (Some(meta), Some(target)) = (source.meta.as_ref(), target) else { return false };
    if !ctx.single_run || ctx.filter.is_narrowed() || ctx.source_marker.is_some() {
        return false;
    }
    if ctx.filter.ignore_marked_for_deletion && source.deletion_marked() {
        return false;
    }
    let in_target = |rel: &str, size: u64| target.objects.iter().any(|(r, s, _)| r == rel && *s == size);
    // A deletion mark move mode wrote is never copied, and only reading it tells: a block with a
    // deletion mark the target lacks goes the full way.
    let marks_copied = !ctx.copy_markers
        || source.objects.iter().filter(|(rel, _, _)| is_marker(rel)).all(|(rel, size, _)| in_target(rel, *size));
    target.meta.as_ref().is_some_and(|m| m.size == meta.size) && marks_copied
}

/// The outcome of a block this process read before and whose meta.json is the same version (the
/// listing's size and ETag), when that outcome needs no request. `None` sends it the full way.
pub(super) async fn settled_from_memory(
    ctx: &Context,
    request: RunRequest,
    dir: &str,
    folder: &Folder,
) -> Option<Record> {
    let (group, summary) = ctx.source_metas.get(request.run_id, dir, folder.meta.as_ref()?)?;
    // A deletion mark's time is in the mark: the full way reads it.
    if folder.deletion_marked() && ctx.filter.ignore_marked_for_deletion {
        return None;
    }
    settled(ctx, request, dir, folder, &group, &summary, &Markers::default()).await
}

/// The outcome of a block whose meta.json says `summary`, when it goes no further than this: the
/// filters leave it out, the target holds its meta.json already, byte for byte (and its marks,
/// when marks are copied), or the target compacted it into another block and does not show it.
/// `None` when it has work to do.
pub(super) async fn settled(
    ctx: &Context,
    request: RunRequest,
    dir: &str,
    folder: &Folder,
    group: &str,
    summary: &MetaSummary,
    markers: &Markers,
) -> Option<Record> {
    let record = |outcome| Record::of_summary(dir, group, summary, outcome);
    if let Err((rule, reason)) = ctx.filter.check(summary, markers, request.now_millis) {
        return Some(record(Outcome::Filtered { reason, rule }));
    }
    let view = ctx.target_index.view(request.run_id).await.ok()?;
    let in_target = view.folder(dir);
    if in_target.is_none_or(|f| f.meta_digest.is_none()) {
        // A block the target compacted into another (and then deleted, or left a partial copy
        // of) is never copied again, and needs no request to tell: a source that keeps it (its
        // delete delay, or no compactor of its own) would otherwise cost a read of its meta.json
        // every run.
        if let Some(by) = view.covered_by(group, summary) {
            tracing::info!(block = %dir, %group, run = request.run_id, covered_by = %by, "not copied: the target compacted it into another block");
            return Some(record(Outcome::Covered { by: by.to_string() }));
        }
    }
    let in_target = in_target?;
    // Marks to copy that the target lacks (by the listings) need the block's plan: the full way
    // copies them. A mark it holds already costs nothing more, run after run.
    let marks_copied = || {
        let mut marks = folder.objects.iter().filter(|(rel, _, _)| is_marker(rel));
        marks.all(|(rel, size, _)| in_target.holds(rel, *size))
    };
    if ctx.copy_markers && !marks_copied() {
        return None;
    }
    (in_target.meta_digest == Some(summary.digest)).then(|| record(Outcome::AlreadyReplicated))
}

/// The outcome of a block already visible in the target. Marks added to the source block since
/// it was replicated are copied now (when marks are copied at all, they are among its objects):
/// the block is visible already, so no order is at stake.
pub(super) async fn already_replicated(copier: &Copier, block: &SourceBlock, folder: &TargetFolder<'_>) -> Outcome {
    let listing = folder.listing();
    for spec in block.objects.iter().filter(|o| is_marker(&o.rel_path)) {
        let seen = Seen::of(Some(&listing), &spec.rel_path);
        if let Err(e) = copier.ensure_seen(&block.path(&spec.rel_path), spec, seen).await {
            return Outcome::failed(e.failure());
        }
    }
    Outcome::AlreadyReplicated
}
