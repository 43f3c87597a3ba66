//! `share_progress`: every process tells process 0 how far it is in the run, while it runs.

use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use crate::dataflow::Epoch;
use crate::telemetry::{ClusterProgress, ProcessProgress, Progress};

/// How often each process looks whether its progress changed, to tell process 0.
const EVERY: Duration = Duration::from_secs(1);

/// A process's place in a cluster, and where its progress is kept and gathered.
pub(crate) struct Sharing {
    /// The process.
    pub(crate) process: usize,
    /// Workers per process: worker `process * workers`, the process's first, speaks for it.
    pub(crate) workers: usize,
    /// The process's progress, which every worker of the process adds to.
    pub(crate) progress: Arc<Progress>,
    /// Where worker 0 keeps what every process said.
    pub(crate) cluster: Arc<ClusterProgress>,
}

/// Shares each process's progress with worker 0 while a run goes on.
pub(crate) trait ShareProgress<'scope> {
    /// While the stream's frontier stands at a run (no record of that run can be ruled out
    /// yet), the speaker of each process sends its process's progress, stamped with that run,
    /// to worker 0 whenever it changed, looking once a second, and once more when the frontier
    /// passes the run, so that its last word is its final count; worker 0 records it in
    /// `sharing.cluster`. On every process but process 0, the speaker then sets the progress
    /// back to zero: process 0's shell does so as each run starts, and the others have no run
    /// loop of their own. The operator holds a capability only at the stream's own frontier,
    /// and drops it when the frontier is empty, so it never holds back a run or the shutdown.
    fn share_progress(self, sharing: &Sharing);
}

impl<'scope, D: Clone + 'static> ShareProgress<'scope> for StreamVec<'scope, Epoch, D> {
    fn share_progress(self, sharing: &Sharing) {
        let scope = self.scope();
        let (process, progress, cluster) = (sharing.process, sharing.progress.clone(), sharing.cluster.clone());
        let speaker = scope.index() == process * sharing.workers;
        let reset_after_run = process != 0;
        let shared = self.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<ProcessProgress>>, _, _, _>(
            Pipeline,
            "ShareProgress",
            move |initial, info| {
                let activator = scope.activator_for(info.address.clone());
                let mut capability = Some(initial);
                let mut words = Words { progress, process, last_sent: (0, (0, 0, 0, 0)) };
                move |(input, frontier), output| {
                    // The records themselves go elsewhere; only the frontier matters here.
                    input.for_each(|_, _| {});
                    let next = frontier.frontier().first().copied();
                    let Some(held) = capability.as_mut() else { return };
                    if next.is_none_or(|run| *held.time() < run) {
                        // The run at the capability is over: the process's last word on it,
                        // then (on a process whose shell does not) a fresh start for the next.
                        if speaker {
                            if let Some(word) = words.next(*held.time()) {
                                output.session(&*held).give(word);
                            }
                            if reset_after_run {
                                words.progress.reset();
                            }
                        }
                    }
                    let Some(run) = next else {
                        capability = None;
                        return;
                    };
                    if *held.time() < run {
                        held.downgrade(&run);
                    }
                    if speaker {
                        if let Some(word) = words.next(run) {
                            output.session(&*held).give(word);
                        }
                        activator.activate_after(EVERY);
                    }
                }
            },
        );
        shared.sink(Exchange::new(|_: &ProcessProgress| 0), "GatherProgress", move |(input, _frontier)| {
            input.for_each(|_, data| {
                for progress in data.drain(..) {
                    cluster.record(progress);
                }
            });
        });
    }
}

/// What a speaker says of its process.
struct Words {
    progress: Arc<Progress>,
    process: usize,
    /// The counts last sent, and how many resets they followed: a word goes out only when the
    /// counts moved or were set back to zero since (a run may end with the last run's counts).
    last_sent: (u64, (u64, u64, u64, u64)),
}

impl Words {
    /// The process's progress stamped with `run`, when its counts moved since the last word
    /// and the run has begun here (all zeros: it has not, and the last run's word stands).
    fn next(&mut self, run: Epoch) -> Option<ProcessProgress> {
        let resets = self.progress.resets.load(std::sync::atomic::Ordering::Relaxed);
        let now = self.progress.of_process(self.process, run);
        let counts = (now.blocks_done, now.blocks_total, now.bytes_done, now.bytes_total);
        if (resets, counts) == self.last_sent || counts == (0, 0, 0, 0) {
            return None;
        }
        self.last_sent = (resets, counts);
        Some(now)
    }
}
