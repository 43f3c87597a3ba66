//! `async_flat_map`: each record becomes a future, and the future's output becomes records.

use std::collections::BTreeMap;
use std::future::Future;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::ParallelizationContract;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use tokio::runtime::Handle;
use tracing::Instrument;

use super::tasks::OperatorTasks;
use crate::dataflow::Epoch;

/// Runs an async function over every record of a stream.
pub(crate) trait AsyncFlatMap<'scope, D> {
    /// Applies `logic` to each record and emits the records its future returns.
    ///
    /// Order: outputs are emitted in completion order, at the timestamp of the input record that
    /// produced them; no order between records is kept. At most `limit` futures of this operator
    /// run at once; queued records start in ascending `priority`, within the oldest epoch first.
    ///
    /// Progress: the operator holds a capability for an epoch while any record of that epoch is
    /// queued or in flight, so the frontier downstream passes an epoch only when every future of
    /// that epoch has finished and its outputs are sent. A future that panics yields
    /// `on_panic(record, message)` instead, so that every record still ends in an output.
    fn async_flat_map<D2, K, P, F, Fut>(
        self,
        name: &str,
        pact: P,
        runtime: Handle,
        limit: usize,
        priority: impl Fn(&D) -> K + 'static,
        on_panic: fn(D, String) -> Vec<D2>,
        logic: F,
    ) -> StreamVec<'scope, Epoch, D2>
    where
        D2: Clone + Send + 'static,
        K: Ord + 'static,
        P: ParallelizationContract<Epoch, Vec<D>>,
        F: FnMut(D) -> Fut + 'static,
        Fut: Future<Output = Vec<D2>> + Send + 'static;
}

impl<'scope, D: Clone + Send + 'static> AsyncFlatMap<'scope, D> for StreamVec<'scope, Epoch, D> {
    fn async_flat_map<D2, K, P, F, Fut>(
        self,
        name: &str,
        pact: P,
        runtime: Handle,
        limit: usize,
        priority: impl Fn(&D) -> K + 'static,
        on_panic: fn(D, String) -> Vec<D2>,
        mut logic: F,
    ) -> StreamVec<'scope, Epoch, D2>
    where
        D2: Clone + Send + 'static,
        K: Ord + 'static,
        P: ParallelizationContract<Epoch, Vec<D>>,
        F: FnMut(D) -> Fut + 'static,
        Fut: Future<Output = Vec<D2>> + Send + 'static,
    {
        let worker = self.scope().worker();
        let limit = limit.max(1);
        let name = name.to_string();
        self.unary_frontier::<CapacityContainerBuilder<Vec<D2>>, _, _, _>(pact, &name.clone(), move |_initial, info| {
            let mut tasks =
                OperatorTasks::<(Epoch, Vec<D2>)>::new(runtime, worker.sync_activator_for(info.address.to_vec()));
            // Queued records, smallest (epoch, priority, arrival) first.
            let mut queue: BTreeMap<(Epoch, K, u64), D> = BTreeMap::new();
            let mut arrivals = 0u64;
            // Per epoch: a capability and how many records hold it (queued or in flight).
            let mut holds: BTreeMap<Epoch, (Capability<Epoch>, usize)> = BTreeMap::new();
            move |(input, _frontier), output| {
                input.for_each(|cap, data| {
                    let epoch = *cap.least().expect("a totally ordered stamp has a least time");
                    let hold = holds.entry(epoch).or_insert_with(|| (cap.delayed(&epoch, 0), 0));
                    for record in data.drain(..) {
                        hold.1 += 1;
                        arrivals += 1;
                        queue.insert((epoch, priority(&record), arrivals), record);
                    }
                });
                for (epoch, records) in tasks.drain() {
                    let Some(hold) = holds.get_mut(&epoch) else {
                        continue;
                    };
                    output.session(&hold.0).give_iterator(records.into_iter());
                    hold.1 -= 1;
                    if hold.1 == 0 {
                        holds.remove(&epoch);
                    }
                }
                while tasks.in_flight() < limit {
                    let Some(((epoch, _, _), record)) = queue.pop_first() else {
                        break;
                    };
                    let fallback = record.clone();
                    // Every log line of the task carries its run.
                    let future = logic(record).instrument(tracing::info_span!("task", operator = %name, run = epoch));
                    tasks.spawn(async move { (epoch, future.await) }, move |message| {
                        (epoch, on_panic(fallback, message))
                    });
                }
            }
        })
    }
}
