//! `collect_runs`: gathers every record of a run on worker 0 and hands over the run report.

use std::collections::BTreeMap;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::StreamVec;

use crate::dataflow::wire::Wire;
use crate::dataflow::{Epoch, RunRequest};
use crate::report::Record;

/// Collects each run's records and calls `on_run` once per run.
pub(crate) trait CollectRuns<'scope> {
    /// Every request and record is exchanged to worker 0. When both inputs have passed an epoch,
    /// no record of that run can still arrive, and `on_run` receives the run's request and all
    /// its records. Runs are finished in epoch order, each exactly once.
    fn collect_runs<F>(self, records: StreamVec<'scope, Epoch, Record>, on_run: F)
    where
        F: FnMut(RunRequest, Vec<Record>) + 'static;
}

impl<'scope> CollectRuns<'scope> for StreamVec<'scope, Epoch, RunRequest> {
    fn collect_runs<F>(self, records: StreamVec<'scope, Epoch, Record>, mut on_run: F)
    where
        F: FnMut(RunRequest, Vec<Record>) + 'static,
    {
        let mut runs: BTreeMap<Epoch, (Option<RunRequest>, Vec<Record>)> = BTreeMap::new();
        // The output is never used: the collector is a sink with two inputs.
        // A record's JSON shape (flattened, tagged) is beyond bincode: it crosses as JSON.
        let records = records.map(Wire);
        let _ = self.binary_frontier::<_, timely::container::CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
            records,
            Exchange::new(|_: &RunRequest| 0),
            Exchange::new(|_: &Wire<Record>| 0),
            "CollectRuns",
            move |_initial, _info| {
                move |(requests, requests_frontier), (records, records_frontier), _output| {
                    requests.for_each(|cap, data| {
                        let epoch = *cap.least().expect("totally ordered");
                        runs.entry(epoch).or_default().0 = data.pop();
                    });
                    records.for_each(|cap, data| {
                        let epoch = *cap.least().expect("totally ordered");
                        runs.entry(epoch).or_default().1.extend(data.drain(..).map(|Wire(record)| record));
                    });
                    while let Some(entry) = runs.first_entry() {
                        let epoch = *entry.key();
                        if requests_frontier.frontier().less_equal(&epoch)
                            || records_frontier.frontier().less_equal(&epoch)
                        {
                            break;
                        }
                        let (request, records) = entry.remove();
                        if let Some(request) = request {
                            on_run(request, records);
                        }
                    }
                }
            },
        );
    }
}
