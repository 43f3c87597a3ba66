//! `ordered_commit`: writes meta.json, last, in order within each commit queue.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::broadcast::Broadcast;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::{Concat, Exchange as _};
use timely::dataflow::StreamVec;
use tokio::runtime::Handle;

use super::tasks::OperatorTasks;
use crate::bucket::copy::{unchanged, Copier, CopyError, ObjectDone};
use crate::bucket::read::read_meta_bytes;
use crate::bucket::target::{TargetIndex, Verdict};
use crate::dataflow::held_back::HeldBack;
use crate::dataflow::wire::Wire;
use crate::dataflow::{route, Epoch};
use crate::model::block::{ObjectSpec, OrderKey, SourceBlock};
use crate::model::failure::{error_chain, Failure, FailureCause};
use crate::model::held_meta::MetaBudget;
use crate::model::meta::{digest_of, META_FILENAME};
use crate::report::{Outcome, Record};

/// A block on its way to the commit, with the commit queue it belongs to (its key: a group, a
/// tenant, or the one serial queue; see `Strategy::queue_of`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommitBlock {
    pub queue: String,
    pub block: SourceBlock,
}

/// What the commit's first input carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum CommitInput {
    /// Shared with the copy stage, which copies its objects meanwhile.
    Block(Arc<CommitBlock>),
    /// A block of unknown group failed (its meta.json could not be read): the queue it belongs
    /// to, or every queue of the epoch when that is unknown, is held back behind it, since that
    /// queue might have lost an older block.
    Barrier { dir: String, queue: Option<String> },
}

/// Routes blocks to the worker that owns their queue, and barriers to every worker.
pub(crate) fn commit_inputs<'scope>(
    blocks: StreamVec<'scope, Epoch, Arc<CommitBlock>>,
    barriers: StreamVec<'scope, Epoch, (String, Option<String>)>,
) -> StreamVec<'scope, Epoch, CommitInput> {
    // A block crosses processes as JSON, as the records do (see `Wire`).
    let blocks = blocks
        .map(Wire)
        .exchange(|b: &Wire<Arc<CommitBlock>>| route(&b.0.queue))
        .map(|Wire(block)| CommitInput::Block(block));
    let barriers = barriers.broadcast().map(|(dir, queue)| CommitInput::Barrier { dir, queue });
    blocks.concat(barriers)
}

/// The end of one object's copy, sent back to the worker that owns the block's queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Completion {
    pub queue: String,
    pub dir: String,
    /// The block's place in its queue (see `OrderKey`).
    pub key: OrderKey,
    pub rel_path: String,
    pub result: Result<ObjectDone, Failure>,
}

/// What the commit needs besides its inputs.
#[derive(Clone)]
pub(crate) struct CommitPolicy {
    pub copier: Copier,
    /// Whether a block waits for every older block of its queue (false for `unordered`).
    pub ordered: bool,
    /// Target HEADs in flight while re-checking one block.
    pub recheck_concurrency: usize,
    pub runtime: Handle,
    /// Told of every meta.json written, so that the next run need not read it back.
    pub target_index: Arc<TargetIndex>,
    /// Told of every block that fails, so that the later blocks of its queue are not copied.
    pub held_back: Arc<HeldBack>,
    /// What waiting blocks' meta.json bytes may take, blocks from other processes included.
    pub meta_budget: Arc<MetaBudget>,
    /// The target compactor merges overlapping blocks, so an overlap is no reason to refuse one.
    pub vertical: bool,
    /// The longest time from the start of a block's re-check to the meta.json write that relies
    /// on it: a block whose turn comes later is re-checked again.
    pub recheck_max_age: Duration,
}

#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error("re-checking the block's objects before writing meta.json")]
    Recheck(#[source] CopyError),
    #[error("{path} is still wrong in the target after copying it again")]
    StillWrong { path: object_store::path::Path },
    #[error("writing meta.json")]
    WriteMeta(#[source] CopyError),
    #[error("reading meta.json from the source again")]
    RereadMeta(#[source] crate::bucket::error::SourceError),
    /// The source's meta.json is not the one the block was planned from (it was rewritten
    /// since): writing it could make visible a block that was never checked.
    #[error("meta.json changed in the source since the block was planned; it is copied on a later run")]
    MetaChanged,
    #[error("meta.json is gone from the source since the block was planned")]
    MetaGone,
    /// The block before it in its queue was not committed: it must not be either.
    #[error("the block before it, {0}, was not committed")]
    Behind(String),
}

/// How many blocks of one queue may be between their re-check and their meta.json write at
/// once. Only the writes are in order: each waits for the write before it, so a queue's chain
/// costs one round trip a block (the write), with the re-checks run ahead.
const COMMITS_AHEAD: usize = 4;

/// The end of a block's commit, for the block after it in its queue: `Err` names the block that
/// was not committed.
type Turn = tokio::sync::oneshot::Receiver<Result<(), String>>;

/// Commits blocks whose objects have all been copied.
pub(crate) trait OrderedCommit<'scope> {
    /// Writes each block's meta.json once every object of the block has been reported copied,
    /// after re-checking every object in the target (its size, and ETag where known: a HEAD of
    /// each object of a small block, the folder's listings for a larger one) and copying again
    /// any that went missing or changed.
    ///
    /// Order: blocks (routed by [`commit_inputs`]) and completions are exchanged by queue key, so
    /// one worker owns each queue.
    /// With `ordered`, a queue's meta.json writes happen one at a time in ascending (minTime,
    /// ULID) order: each waits for the write before it to succeed. The re-checks of up to
    /// [`COMMITS_AHEAD`] blocks run ahead of those writes. The first commit of an epoch waits
    /// until the blocks input has passed the epoch, so that no older block can still arrive. A block that fails holds back the later blocks of its
    /// queue for the epoch; other queues go on. A barrier holds back its queue, or every queue
    /// of its epoch when its queue is unknown.
    ///
    /// Progress: every block yields exactly one record at its epoch. The operator holds the epoch
    /// while it has blocks or commits of it, and lets go once both inputs have passed it. Blocks
    /// still missing completions then are failed, never committed.
    fn ordered_commit(
        self,
        completions: StreamVec<'scope, Epoch, Completion>,
        policy: CommitPolicy,
    ) -> StreamVec<'scope, Epoch, Record>;
}

/// A block waiting for its objects. Its block is shared with the copy stage (and a pointer: a
/// queue holds every block of its group until their turns, and a B-tree node reserves room for
/// eleven).
struct Pending {
    commit: Arc<CommitBlock>,
    awaiting: usize,
    done: HashMap<String, ObjectDone>,
    errors: Vec<Failure>,
}

impl Pending {
    fn block(&self) -> &SourceBlock {
        &self.commit.block
    }

    fn apply(&mut self, completion: Completion) {
        self.awaiting = self.awaiting.saturating_sub(1);
        match completion.result {
            Ok(done) => {
                self.done.insert(completion.rel_path, done);
            }
            Err(error) => self.errors.push(error),
        }
    }

    /// Whether the block can be judged now (`None`: its copies are still under way), and if so
    /// why it failed (`Some(None)`: every object is in the target).
    fn failure(&self, inputs_done: bool) -> Option<Option<Failure>> {
        if self.awaiting > 0 {
            // Copies that never report back, once their input ended, are a failure of their own.
            return inputs_done.then(|| {
                let error = format!("{} object copies never reported back", self.awaiting);
                Some(Failure::new(FailureCause::Internal, error))
            });
        }
        Some(self.errors.first().map(|first| {
            let all: Vec<_> = self.errors.iter().map(|f| f.error.as_str()).collect();
            Failure::new(first.cause, all.join("; "))
        }))
    }

    fn copied(&self) -> (u64, u64, u64) {
        let copied = self.done.values().filter(|d| d.copied);
        let present = self.done.values().filter(|d| !d.copied).count() as u64;
        (copied.clone().count() as u64, copied.map(|d| d.bytes).sum(), present)
    }

    fn failed(&self, failure: Failure) -> Record {
        let (objects_copied, bytes_copied, _) = self.copied();
        Record::of_block(self.block(), Outcome::failed_after(failure, objects_copied, bytes_copied))
    }

    /// Held back behind `behind`, a source block, with what was copied of it before.
    fn held_back(&self, behind: String) -> Record {
        let (objects_copied, bytes_copied, _) = self.copied();
        let outcome = Outcome::HeldBack { behind, behind_in_target: false, objects_copied, bytes_copied };
        Record::of_block(self.block(), outcome)
    }
}

/// The end of one block's commit task, for the operator.
struct TaskEnd {
    epoch: Epoch,
    queue: String,
    dir: String,
    key: OrderKey,
    record: Record,
    /// The block was not committed, and the later blocks of its queue must not be either.
    holds_back: bool,
}

#[derive(Default)]
struct Queue {
    blocks: BTreeMap<OrderKey, Pending>,
    /// Commits started and not yet reported.
    committing: usize,
    /// The last commit started: its block, and the end of its write.
    last: Option<(String, Turn)>,
    failed_at: Option<String>,
}

struct EpochState {
    capability: Capability<Epoch>,
    queues: BTreeMap<String, Queue>,
    /// Completions that arrived before their block.
    early: HashMap<String, Vec<Completion>>,
    /// Blocks of unknown group, each holding back its queue (all queues when `None`).
    barriers: Vec<(String, Option<String>)>,
}

impl EpochState {
    fn add_block(&mut self, mut commit: Arc<CommitBlock>, budget: &Arc<MetaBudget>) {
        // Only this operator holds a block that came from another process (or whose copies have
        // all ended): its meta.json bytes were counted nowhere yet, and its copies took what the
        // target held already (the commit lists the target again). A block the copy stage still
        // shares came from this process's load stage, which counted its bytes.
        if let Some(CommitBlock { block, .. }) = Arc::get_mut(&mut commit) {
            budget.keep(&mut block.meta);
            block.target_listing = None;
        }
        let (queue, block) = (commit.queue.clone(), &commit.block);
        let key = block.order_key();
        let early = self.early.remove(&block.dir).unwrap_or_default();
        // A block found defective before copying fails in its place in the queue's order.
        let errors = block.defect.iter().cloned().collect();
        let mut pending = Pending { awaiting: block.objects.len(), commit, done: HashMap::new(), errors };
        for completion in early {
            pending.apply(completion);
        }
        self.queues.entry(queue).or_default().blocks.insert(key, pending);
    }

    /// A commit task ended: its queue has one commit fewer under way, and a block that failed
    /// holds back the later blocks of its queue. Returns the block's record.
    fn task_ended(&mut self, end: TaskEnd, policy: &CommitPolicy) -> Record {
        let TaskEnd { epoch, queue, dir, key, record, holds_back } = end;
        let Some(q) = self.queues.get_mut(&queue) else { return record };
        q.committing -= 1;
        if q.committing == 0 {
            q.last = None;
        }
        if holds_back && policy.ordered {
            // Blocks held back by the chain name the block that failed.
            let behind = match &record {
                Record::Block(b) => match &b.outcome {
                    Outcome::HeldBack { behind, .. } => behind.clone(),
                    _ => dir,
                },
                _ => dir,
            };
            q.failed_at.get_or_insert(behind);
            // Copies of the queue's later blocks not yet started never will be.
            policy.held_back.fail(epoch, &queue, key);
        }
        record
    }

    /// Moves every queue of the epoch forward as far as it can go now, a barrier first holding
    /// back the queues it may belong to. Returns the records of the blocks it ended.
    fn advance(
        &mut self,
        epoch: Epoch,
        blocks_done: bool,
        inputs_done: bool,
        policy: &CommitPolicy,
        tasks: &mut OperatorTasks<TaskEnd>,
    ) -> Vec<Record> {
        let mut records = Vec::new();
        for (queue_key, queue) in self.queues.iter_mut() {
            if policy.ordered && queue.failed_at.is_none() {
                queue.failed_at = self
                    .barriers
                    .iter()
                    .find(|(_, only)| only.as_ref().is_none_or(|only| only == queue_key))
                    .map(|(dir, _)| dir.clone());
            }
            let progress = Progress { epoch, blocks_done, inputs_done };
            advance_queue(progress, queue_key, queue, policy, tasks, &mut records);
        }
        records
    }

    /// A completion names its block's queue and place, so the commit keeps no index of blocks.
    /// It applies to the block at that place only if it is the same folder: a place holds a hash
    /// of its folder, which two folders could share, however unlikely.
    fn add_completion(&mut self, completion: Completion) {
        if let Some(queue) = self.queues.get_mut(&completion.queue) {
            match queue.blocks.get_mut(&completion.key) {
                Some(pending) if pending.block().dir == completion.dir => return pending.apply(completion),
                _ => {}
            }
        }
        self.early.entry(completion.dir.clone()).or_default().push(completion);
    }

    fn is_idle(&self) -> bool {
        self.queues.values().all(|q| q.blocks.is_empty() && q.committing == 0)
    }
}

impl<'scope> OrderedCommit<'scope> for StreamVec<'scope, Epoch, CommitInput> {
    fn ordered_commit(
        self,
        completions: StreamVec<'scope, Epoch, Completion>,
        policy: CommitPolicy,
    ) -> StreamVec<'scope, Epoch, Record> {
        let worker = self.scope().worker();
        let completions_pact = Exchange::new(|c: &Completion| route(&c.queue));
        self.binary_frontier::<_, CapacityContainerBuilder<Vec<Record>>, _, _, _, _>(
            completions,
            Pipeline,
            completions_pact,
            "OrderedCommit",
            move |_initial, info| {
                let activator = worker.sync_activator_for(info.address.to_vec());
                let mut tasks = OperatorTasks::<TaskEnd>::new(policy.runtime.clone(), activator);
                let mut epochs: BTreeMap<Epoch, EpochState> = BTreeMap::new();
                let new_state = |capability| EpochState {
                    capability,
                    queues: BTreeMap::new(),
                    early: HashMap::new(),
                    barriers: Vec::new(),
                };
                move |(blocks, blocks_frontier), (completions, completions_frontier), output| {
                    blocks.for_each(|cap, data| {
                        let epoch = *cap.least().expect("totally ordered");
                        let state = epochs.entry(epoch).or_insert_with(|| new_state(cap.delayed(&epoch, 0)));
                        for input in data.drain(..) {
                            match input {
                                CommitInput::Block(block) => state.add_block(block, &policy.meta_budget),
                                CommitInput::Barrier { dir, queue } => state.barriers.push((dir, queue)),
                            }
                        }
                    });
                    completions.for_each(|cap, data| {
                        let epoch = *cap.least().expect("totally ordered");
                        let state = epochs.entry(epoch).or_insert_with(|| new_state(cap.delayed(&epoch, 0)));
                        for completion in data.drain(..) {
                            state.add_completion(completion);
                        }
                    });
                    for end in tasks.drain() {
                        if let Some(state) = epochs.get_mut(&end.epoch) {
                            let record = state.task_ended(end, &policy);
                            output.session(&state.capability).give(record);
                        }
                    }
                    let mut finished = Vec::new();
                    for (&epoch, state) in epochs.iter_mut() {
                        let blocks_done = !blocks_frontier.frontier().less_equal(&epoch);
                        let inputs_done = blocks_done && !completions_frontier.frontier().less_equal(&epoch);
                        let records = state.advance(epoch, blocks_done, inputs_done, &policy, &mut tasks);
                        output.session(&state.capability).give_iterator(records.into_iter());
                        if inputs_done && state.is_idle() {
                            finished.push(epoch);
                        }
                    }
                    for epoch in finished {
                        epochs.remove(&epoch);
                    }
                }
            },
        )
    }
}

/// Where an epoch's inputs are: its blocks all arrived (`blocks_done`), and its completions too
/// (`inputs_done`).
#[derive(Clone, Copy)]
struct Progress {
    epoch: Epoch,
    blocks_done: bool,
    inputs_done: bool,
}

/// Moves one queue forward as far as it can go now: holds back, fails or starts commits.
fn advance_queue(
    progress: Progress,
    queue_key: &str,
    queue: &mut Queue,
    policy: &CommitPolicy,
    tasks: &mut OperatorTasks<TaskEnd>,
    records: &mut Vec<Record>,
) {
    let Progress { epoch, blocks_done, inputs_done } = progress;
    // Without order, each block is a queue of its own and commits alone.
    let ahead = if policy.ordered { COMMITS_AHEAD } else { 1 };
    while queue.committing < ahead {
        let Some(entry) = queue.blocks.first_entry() else {
            return;
        };
        if let Some(behind) = &queue.failed_at {
            // Its copies under way end first (those not started are not made, see `HeldBack`),
            // so that what they copied is counted.
            if entry.get().awaiting > 0 && !inputs_done {
                return;
            }
            records.push(entry.remove().held_back(behind.clone()));
            continue;
        }
        if policy.ordered && !blocks_done {
            return;
        }
        let Some(failure) = entry.get().failure(inputs_done) else {
            return;
        };
        let pending = entry.remove();
        if let Some(failure) = failure {
            let error = &failure.error;
            tracing::warn!(block = %pending.block().dir, group = %pending.block().group, run = epoch, %error, "block failed");
            records.push(pending.failed(failure));
            if policy.ordered {
                queue.failed_at = Some(pending.block().dir.clone());
                policy.held_back.fail(epoch, queue_key, pending.block().order_key());
            }
            continue;
        }
        start_commit(epoch, queue_key, queue, pending, policy, tasks);
    }
}

/// Starts the commit of `pending`, the first block of its queue, as a task: it waits for the
/// turn of the block before it (when the queue is ordered), writes the block's meta.json, and
/// then lets the next block go.
fn start_commit(
    epoch: Epoch,
    queue_key: &str,
    queue: &mut Queue,
    pending: Pending,
    policy: &CommitPolicy,
    tasks: &mut OperatorTasks<TaskEnd>,
) {
    queue.committing += 1;
    let (turn_done, turn) = tokio::sync::oneshot::channel();
    let after = if policy.ordered { queue.last.replace((pending.block().dir.clone(), turn)) } else { None };
    let (queue, dir, key) = (queue_key.to_string(), pending.block().dir.clone(), pending.block().order_key());
    let panic_record = pending.failed(Failure::new(FailureCause::Internal, "internal error: the commit task panicked"));
    let panic_end =
        TaskEnd { epoch, queue: queue.clone(), dir: dir.clone(), key, record: panic_record, holds_back: true };
    let policy = policy.clone();
    tasks.spawn(
        async move {
            let result = commit_block(&policy, epoch, &pending, after).await;
            if let Ok(Committed::Written { e_tag, .. }) = &result {
                // Before the block after it is let go: it is judged against this one.
                policy.target_index.committed(epoch, pending.block(), e_tag.clone());
            }
            // The block after it may write now, or must not. A block refused by its
            // judgement holds nothing back, as when it is refused at planning.
            let _ = turn_done.send(match &result {
                Ok(_) => Ok(()),
                Err(CommitError::Behind(behind)) => Err(behind.clone()),
                Err(_) => Err(pending.block().dir.clone()),
            });
            let (record, holds_back) = commit_record(epoch, &pending, result);
            TaskEnd { epoch, queue, dir, key, record, holds_back }
        },
        move |_| panic_end,
    );
}

/// The record of a block's commit, and whether it holds back the later blocks of its queue.
fn commit_record(epoch: Epoch, pending: &Pending, result: Result<Committed, CommitError>) -> (Record, bool) {
    let block = pending.block();
    match result {
        Ok(Committed::Written { repaired, repaired_bytes, .. }) => {
            let (objects_copied, bytes_copied, objects_already_present) = pending.copied();
            let late_behind = block.late_behind.clone();
            let now = chrono::Utc::now().timestamp_millis();
            let lag_millis = block.meta_modified.map(|appeared| now.saturating_sub(appeared).max(0) as u64);
            // The lag in the log too, where the listing gave the source meta.json's time.
            let lag_seconds = lag_millis.map(|ms| ms as f64 / 1000.0);
            match &late_behind {
                Some(behind) => {
                    tracing::warn!(block = %block.dir, group = %block.group, run = epoch, %behind, ?lag_seconds, "block replicated late: the target showed a newer block of its group first")
                }
                None => {
                    tracing::info!(block = %block.dir, group = %block.group, run = epoch, ?lag_seconds, "block replicated")
                }
            }
            let outcome = Outcome::Replicated {
                objects_copied: objects_copied + repaired,
                bytes_copied: bytes_copied + repaired_bytes,
                objects_already_present,
                late_behind,
                lag_millis,
            };
            (Record::of_block(block, outcome), false)
        }
        Ok(Committed::Refused { verdict, repaired, repaired_bytes }) => {
            let (objects_copied, bytes_copied, _) = pending.copied();
            let copied = (objects_copied + repaired, bytes_copied + repaired_bytes);
            let outcome = verdict.refusal(block, epoch, true, copied).expect("only a refusal stops a commit");
            (Record::of_block(block, outcome), false)
        }
        Err(CommitError::Behind(behind)) => (pending.held_back(behind), true),
        Err(e) => {
            let cause = match &e {
                CommitError::Recheck(copy) | CommitError::WriteMeta(copy) => copy.failure().cause,
                CommitError::StillWrong { .. } => FailureCause::Verification,
                CommitError::RereadMeta(_) | CommitError::MetaChanged | CommitError::MetaGone => FailureCause::Source,
                CommitError::Behind(_) => FailureCause::Internal,
            };
            let error = error_chain(&e);
            tracing::warn!(block = %block.dir, group = %block.group, run = epoch, %error, "block failed");
            (pending.failed(Failure::new(cause, error)), true)
        }
    }
}

/// What a block's commit came to, short of an error.
#[derive(Debug)]
enum Committed {
    /// meta.json written: the objects and bytes copied again before, and meta.json's ETag.
    Written { repaired: u64, repaired_bytes: u64, e_tag: Option<String> },
    /// Not written: a block committed before it in this run covers it, or it overlaps one; with
    /// the objects and bytes its re-checks copied again before.
    Refused { verdict: Verdict, repaired: u64, repaired_bytes: u64 },
}

/// The re-check of one block's objects in the target, round after round, with what its
/// repairs copied.
struct Recheck<'a> {
    copier: &'a Copier,
    block: &'a SourceBlock,
    concurrency: usize,
    /// The ETag each object had when it was last written, to notice it being replaced.
    e_tags: HashMap<String, Option<String>>,
    round: usize,
    copied: u64,
    copied_bytes: u64,
}

impl Recheck<'_> {
    /// Re-checks every object of the block in the target ([`Copier::recheck_target_block`]),
    /// copies again what is missing or changed, and checks again, round after round (as many as
    /// the retry policy allows in all: a target compactor's cleanup may delete a block's objects
    /// more than once), until one round shows every object intact. Returns when that round
    /// started: what the meta.json write relies on is as old as that.
    async fn until_intact(&mut self) -> Result<Instant, CommitError> {
        let (copier, block, concurrency) = (self.copier, self.block, self.concurrency);
        loop {
            let started = Instant::now();
            let listing = copier
                .recheck_target_block(&block.dir, &block.objects, concurrency)
                .await
                .map_err(CommitError::Recheck)?;
            let wrong: Vec<&ObjectSpec> = block
                .objects
                .iter()
                .filter(|spec| {
                    let e_tag = self.e_tags.get(&spec.rel_path).cloned().flatten();
                    let listed = listing.get(&spec.rel_path);
                    !listed.is_some_and(|(size, tag)| unchanged(spec, e_tag.as_deref(), *size, tag.as_deref()))
                })
                .collect();
            let Some(first) = wrong.first() else { return Ok(started) };
            if self.round >= copier.retry.retries {
                return Err(CommitError::StillWrong { path: block.path(&first.rel_path) });
            }
            self.round += 1;
            let repair = |spec: &ObjectSpec| {
                let (path, spec) = (block.path(&spec.rel_path), spec.clone());
                async move {
                    tracing::warn!(%path, "object changed or vanished in the target before commit; copying it again");
                    copier.ensure(&path, &spec).await.map(|done| (spec.rel_path, done))
                }
            };
            // Every repair is let end before a failure is returned: a repair dropped halfway would
            // leave its multipart upload open, never aborted (after a stop, those waiting for a
            // slot fail at once while others are still uploading).
            let repaired: Vec<_> =
                futures::stream::iter(wrong).map(repair).buffer_unordered(concurrency.max(1)).collect().await;
            let repaired: Vec<_> = repaired.into_iter().collect::<Result<_, _>>().map_err(CommitError::Recheck)?;
            for (rel_path, done) in repaired {
                if done.copied {
                    self.copied += 1;
                    self.copied_bytes += done.bytes;
                }
                self.e_tags.insert(rel_path, done.e_tag);
            }
        }
    }
}

/// Commits one block: re-checks its objects until one round shows them all intact ([`Recheck`]),
/// waits for the write of the block before it in its queue (`after`), which must have
/// succeeded, judges it against the blocks of its group committed earlier in this run, and
/// writes its meta.json. When the turn came later than `recheck_max_age` after the re-check
/// started, the block is re-checked again first, and then written with no further wait.
async fn commit_block(
    policy: &CommitPolicy,
    run: Epoch,
    pending: &Pending,
    after: Option<(String, Turn)>,
) -> Result<Committed, CommitError> {
    let (copier, block) = (&policy.copier, pending.block());
    let e_tags = pending.done.iter().map(|(rel, done)| (rel.clone(), done.e_tag.clone())).collect();
    let concurrency = policy.recheck_concurrency;
    let mut recheck = Recheck { copier, block, concurrency, e_tags, round: 0, copied: 0, copied_bytes: 0 };
    let checked_at = recheck.until_intact().await?;
    // A meta.json let go after planning is read again, off the queue's chain.
    let meta = match block.meta.bytes() {
        Some(bytes) => bytes.clone(),
        None => read_planned_meta(copier, block).await?,
    };
    // Checked, the block waits for the write of the block before it, which must have succeeded.
    if let Some((before, turn)) = after {
        tracing::debug!(block = %block.dir, group = %block.group, run, before = %before, "re-checked; waiting for the block before it");
        match turn.await {
            Ok(Ok(())) => {}
            Ok(Err(behind)) => return Err(CommitError::Behind(behind)),
            // Its task ended without a word: it panicked, and was not committed.
            Err(_) => return Err(CommitError::Behind(before)),
        }
    }
    // The run's view was listed at its start: the blocks committed since count too.
    match policy.target_index.judge_against_run(run, block, policy.vertical) {
        Verdict::Fresh | Verdict::Late { .. } => {}
        refusal => {
            return Ok(Committed::Refused {
                verdict: refusal,
                repaired: recheck.copied,
                repaired_bytes: recheck.copied_bytes,
            })
        }
    }
    // Each try of the write, the first and any after a failed one and its wait, relies on a
    // re-check no older than the bound.
    let state = tokio::sync::Mutex::new((recheck, checked_at));
    let meta_path = block.path(META_FILENAME);
    let written = copier
        .retrying(&meta_path, || async {
            let mut state = state.lock().await;
            let (recheck, checked_at) = &mut *state;
            if checked_at.elapsed() > policy.recheck_max_age {
                tracing::debug!(block = %block.dir, group = %block.group, run, age = ?checked_at.elapsed(), "its re-check is older than --recheck.max-age; re-checking again");
                match recheck.until_intact().await {
                    Ok(at) => *checked_at = at,
                    // Not the write's failure: no reason to try the write again.
                    Err(e) => return Ok(Err(e)),
                }
            }
            tracing::debug!(block = %block.dir, run, age = ?checked_at.elapsed(), "writing meta.json");
            let payload = PutPayload::from(meta.clone());
            let put = copier.target.put(&meta_path, payload).await;
            put.map(Ok).map_err(|source| CopyError::WriteMeta { path: meta_path.clone(), source })
        })
        .await
        .map_err(CommitError::WriteMeta)??;
    let (recheck, _) = state.into_inner();
    Ok(Committed::Written { repaired: recheck.copied, repaired_bytes: recheck.copied_bytes, e_tag: written.e_tag })
}

/// The meta.json `block` was planned from, read again from the source: only the same bytes (by
/// their digest) are written.
async fn read_planned_meta(copier: &Copier, block: &SourceBlock) -> Result<bytes::Bytes, CommitError> {
    let bytes = read_meta_bytes(&*copier.source, &block.dir).await.map_err(CommitError::RereadMeta)?;
    match bytes {
        Some(bytes) if digest_of(&bytes) == block.summary.digest => Ok(bytes),
        Some(_) => Err(CommitError::MetaChanged),
        None => Err(CommitError::MetaGone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::group::Grouping;
    use crate::model::meta::parse_meta;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use std::time::Duration;

    const ULID: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG1";

    fn policy(copier: Copier, concurrency: usize) -> CommitPolicy {
        let target_index = TargetIndex::new(copier.target.clone(), Default::default(), Grouping::default(), 1);
        CommitPolicy {
            copier,
            ordered: true,
            recheck_concurrency: concurrency,
            runtime: Handle::current(),
            target_index: Arc::new(target_index),
            held_back: Arc::default(),
            meta_budget: MetaBudget::new(1 << 20),
            vertical: false,
            recheck_max_age: Duration::from_secs(1),
        }
    }

    /// A block of `ulid` over `[min, max)` in `source`, its one object (`index`) also in
    /// `target` when `in_target`, waiting for its commit.
    async fn pending_block(ulid: &str, min: i64, max: i64, source: &InMemory, target: &InMemory) -> Pending {
        let planned = format!(
            r#"{{"ulid":"{ulid}","minTime":{min},"maxTime":{max},"version":1,"thanos":{{"labels":{{"a":"b"}}}}}}"#
        );
        source.put(&Path::from(format!("{ulid}/meta.json")), PutPayload::from(planned.clone())).await.unwrap();
        for store in [source, target] {
            store.put(&Path::from(format!("{ulid}/index")), PutPayload::from_static(b"abc")).await.unwrap();
        }
        let meta = parse_meta(ulid, bytes::Bytes::from(planned)).unwrap();
        let block = SourceBlock::plan(ulid, meta, vec![("index".into(), 3)], &Grouping::default());
        let commit = Arc::new(CommitBlock { queue: block.group.clone(), block });
        Pending { commit, awaiting: 0, done: HashMap::new(), errors: Vec::new() }
    }

    /// A block whose turn comes long after its re-check is re-checked again before its
    /// meta.json is written: an object deleted meanwhile (as a compactor's partial-upload
    /// cleanup would) is copied again first, never left missing under a visible block.
    #[tokio::test]
    async fn a_turn_that_comes_late_is_re_checked_again() {
        let (source, target) = (Arc::new(InMemory::new()), Arc::new(InMemory::new()));
        let pending = pending_block(ULID, 0, 10, &source, &target).await;
        let mut policy = policy(Copier::new(source.clone(), target.clone(), 1, 1 << 20), 1);
        policy.recheck_max_age = Duration::from_millis(100);
        let (turn_done, turn) = tokio::sync::oneshot::channel();
        let commit =
            tokio::spawn(async move { commit_block(&policy, 0, &pending, Some(("before".into(), turn))).await });
        // The re-check of an in-memory store is done long before; the object goes after it.
        tokio::time::sleep(Duration::from_millis(300)).await;
        target.delete(&Path::from(format!("{ULID}/index"))).await.unwrap();
        turn_done.send(Ok(())).unwrap();
        let committed = commit.await.unwrap().unwrap();
        assert!(matches!(committed, Committed::Written { repaired: 1, .. }), "{committed:?}");
        assert!(target.head(&Path::from(format!("{ULID}/index"))).await.is_ok(), "copied again before meta.json");
        assert!(target.head(&Path::from(format!("{ULID}/meta.json"))).await.is_ok());
    }

    /// A block is judged at its commit against the blocks of its group committed before it in
    /// the same run, which the run's view of the target (listed at its start) lacks.
    #[tokio::test]
    async fn a_block_overlapping_one_committed_earlier_in_the_run_is_refused() {
        const OTHER: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG2";
        let (source, target) = (Arc::new(InMemory::new()), Arc::new(InMemory::new()));
        let first = pending_block(ULID, 0, 10, &source, &target).await;
        let overlapping = pending_block(OTHER, 5, 15, &source, &target).await;
        let mut policy = policy(Copier::new(source.clone(), target.clone(), 1, 1 << 20), 1);
        let written = commit_block(&policy, 3, &first, None).await.unwrap();
        let Committed::Written { e_tag, .. } = written else { panic!("{written:?}") };
        policy.target_index.committed(3, first.block(), e_tag);
        let refused = commit_block(&policy, 3, &overlapping, None).await.unwrap();
        assert!(
            matches!(&refused, Committed::Refused { verdict: Verdict::Overlaps { with, .. }, .. } if with == ULID),
            "{refused:?}"
        );
        assert!(target.head(&Path::from(format!("{OTHER}/meta.json"))).await.is_err());
        // Another run lists the first block in its view instead; a vertical compactor merges it.
        policy.vertical = true;
        assert!(matches!(commit_block(&policy, 3, &overlapping, None).await.unwrap(), Committed::Written { .. }));
    }

    /// A meta.json let go after planning is written only if it is still the one planned.
    #[tokio::test]
    async fn a_meta_json_read_again_must_be_the_one_planned() {
        let source = Arc::new(InMemory::new());
        let path = Path::from(format!("{ULID}/meta.json"));
        let planned =
            format!(r#"{{"ulid":"{ULID}","minTime":0,"maxTime":1,"version":1,"thanos":{{"labels":{{"a":"b"}}}}}}"#);
        source.put(&path, PutPayload::from(planned.clone())).await.unwrap();
        let meta = parse_meta(ULID, bytes::Bytes::from(planned.clone())).unwrap();
        let block = SourceBlock::plan(ULID, meta, vec![("index".into(), 1)], &Grouping::default());
        let copier = Copier::new(source.clone(), Arc::new(InMemory::new()), 1, 1 << 20);
        assert_eq!(read_planned_meta(&copier, &block).await.unwrap(), planned.as_bytes());
        source.put(&path, PutPayload::from(planned.replace(r#""b""#, r#""c""#))).await.unwrap();
        let rewritten = read_planned_meta(&copier, &block).await.unwrap_err();
        assert!(matches!(rewritten, CommitError::MetaChanged), "{rewritten}");
        source.delete(&path).await.unwrap();
        let deleted = read_planned_meta(&copier, &block).await.unwrap_err();
        assert!(matches!(deleted, CommitError::MetaGone), "{deleted}");
    }

    /// A failed repair lets the block's other repairs end before the block fails: one dropped
    /// halfway would leave its multipart upload open. Here a stop fails the repair waiting for
    /// the one copy slot, while the repair holding it goes on to the end.
    #[tokio::test]
    async fn a_failed_repair_lets_the_others_end_before_the_block_fails() {
        let source = InMemory::new();
        let planned =
            format!(r#"{{"ulid":"{ULID}","minTime":0,"maxTime":1,"version":1,"thanos":{{"labels":{{"a":"b"}}}}}}"#);
        source.put(&Path::from(format!("{ULID}/meta.json")), PutPayload::from(planned.clone())).await.unwrap();
        for rel in ["chunks/000001", "index"] {
            source.put(&Path::from(format!("{ULID}/{rel}")), PutPayload::from_static(b"abc")).await.unwrap();
        }
        let meta = parse_meta(ULID, bytes::Bytes::from(planned)).unwrap();
        let listing = vec![("chunks/000001".into(), 3), ("index".into(), 3)];
        let block = SourceBlock::plan(ULID, meta, listing, &Grouping::default());
        // Each source read takes long enough for the stop to come while the first repair reads.
        let slow = Arc::new(crate::bucket::store::LatencyStore::new(source, Duration::from_millis(300)));
        let target = Arc::new(InMemory::new());
        let copier = Copier::new(slow, target.clone(), 1, 1 << 20);
        let commit = Arc::new(CommitBlock { queue: "q".into(), block });
        let pending = Pending { commit, awaiting: 0, done: HashMap::new(), errors: Vec::new() };
        let stop = copier.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stop.cancel();
        });
        let failed = commit_block(&policy(copier, 2), 0, &pending, None).await.unwrap_err();
        assert!(matches!(failed, CommitError::Recheck(CopyError::Interrupted { .. })), "{failed:?}");
        let landed = |rel: &str| {
            let path = Path::from(format!("{ULID}/{rel}"));
            let target = target.clone();
            async move { target.head(&path).await.is_ok() }
        };
        assert!(landed("chunks/000001").await, "the repair under way was let end");
        assert!(!landed("index").await, "the repair waiting for a slot was never sent");
        assert!(!landed("meta.json").await);
    }
}
