//! Cluster mode's handshake: before any run, every process states the settings that must be the
//! same in every process, and every process compares them with process 0's.
//!
//! The graph routes a commit queue to one worker by a hash over the cluster's worker count, so
//! two processes with another `--workers` would each think another worker owns a group, and a
//! group could get two committing workers: its order would be lost. Other settings (strategy,
//! layout, replica labels, filters, dry run, move mode, the buckets) must agree for the same
//! reason or simply for the run to mean one thing. A process that differs refuses to run, with
//! the difference named; every process sees every statement, so all of them refuse together.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use timely::dataflow::operators::vec::broadcast::Broadcast;
use timely::dataflow::operators::vec::Input;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::ProbeHandle;
use timely::worker::Worker;

/// What every process of a cluster must agree on, by name.
pub(crate) type Settings = BTreeMap<String, String>;

/// Exchanges this process's `settings` with every other process (sent by this process's first
/// of `threads` workers) and compares each process's with process 0's. Every worker of every
/// process takes part; each returns the same answer. `Err` names each difference.
pub(crate) fn agree(worker: &mut Worker, process: usize, threads: usize, settings: &Settings) -> Result<(), String> {
    let stated: Rc<RefCell<BTreeMap<usize, Settings>>> = Rc::default();
    let probe = ProbeHandle::new();
    let seen = stated.clone();
    let mut input = worker.dataflow::<u64, _, _>(|scope| {
        let (input, statements) = scope.new_input::<(usize, String)>();
        statements
            .broadcast()
            .inspect(move |(process, json): &(usize, String)| {
                // A statement that does not parse is from a build of another shape: it differs.
                let settings = serde_json::from_str(json).unwrap_or_default();
                seen.borrow_mut().insert(*process, settings);
            })
            .probe_with(&probe);
        input
    });
    if worker.index() == process * threads {
        input.send((process, serde_json::to_string(settings).expect("settings serialise")));
    }
    input.advance_to(1);
    drop(input);
    while probe.less_than(&1) {
        worker.step();
    }
    let stated = stated.borrow();
    differences(&stated)
}

/// Each difference between a process's settings and process 0's, named.
fn differences(stated: &BTreeMap<usize, Settings>) -> Result<(), String> {
    let Some(leader) = stated.get(&0) else { return Err("process 0 stated no settings".into()) };
    let mut found = Vec::new();
    for (process, settings) in stated.iter().filter(|(p, _)| **p != 0) {
        let names: std::collections::BTreeSet<&String> = leader.keys().chain(settings.keys()).collect();
        for name in names {
            let (ours, theirs) = (leader.get(name), settings.get(name));
            if ours != theirs {
                let show = |v: Option<&String>| v.map_or_else(|| "(none)".to_string(), |v| format!("{v:?}"));
                found.push(format!("{name}: {} in process 0, {} in process {process}", show(ours), show(theirs)));
            }
        }
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(found.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn differences_are_named_by_setting_and_process() {
        let same = settings(&[("workers", "2"), ("strategy", "grouped")]);
        assert_eq!(differences(&[(0, same.clone()), (1, same.clone())].into()), Ok(()));
        let other = settings(&[("workers", "4"), ("strategy", "grouped"), ("dry_run", "true")]);
        let error = differences(&[(0, same), (1, other)].into()).unwrap_err();
        assert!(error.contains(r#"workers: "2" in process 0, "4" in process 1"#), "{error}");
        assert!(error.contains(r#"dry_run: (none) in process 0, "true" in process 1"#), "{error}");
        assert!(!error.contains("strategy"), "{error}");
    }
}
