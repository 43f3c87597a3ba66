//! The source's block metas as a process remembers them across runs: a small summary of each,
//! by folder, with the version of its meta.json that was read (the listing's size and ETag).
//!
//! A meta.json never changes, so a block listed again with the same meta.json needs no request:
//! its summary decides whether the filters leave it out and whether the target holds it
//! already. A folder that a run does not list is forgotten by the next run, so that memory
//! follows the bucket, not its history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::inventory::Validator;
use crate::model::meta::MetaSummary;

/// One remembered meta.json.
struct Entry {
    validator: Validator,
    group: String,
    summary: Arc<MetaSummary>,
    /// The last run that listed the folder.
    seen: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// The run whose start last forgot the folders the run before did not list.
    pruned_for: u64,
}

/// The remembered metas of a source, shared by a process's workers. Every folder a run lists is
/// asked about by that run (its group is routed to one worker, the same every run), which is
/// what keeps it remembered.
#[derive(Default)]
pub(crate) struct SourceMetas {
    state: Mutex<State>,
}

impl SourceMetas {
    fn state(&self, run: u64) -> std::sync::MutexGuard<'_, State> {
        let mut state = self.state.lock().expect("never poisoned");
        if state.pruned_for < run {
            // Run `run` has begun: what run `run - 1` did not list is gone from the bucket.
            state.entries.retain(|_, e| e.seen + 1 >= run);
            state.pruned_for = run;
        }
        state
    }

    /// The group and summary of folder `dir`, when its meta.json is the version read before.
    pub(crate) fn get(&self, run: u64, dir: &str, validator: &Validator) -> Option<(String, Arc<MetaSummary>)> {
        let mut state = self.state(run);
        let entry = state.entries.get_mut(dir)?;
        entry.seen = run;
        entry.validator.same(validator).then(|| (entry.group.clone(), entry.summary.clone()))
    }

    /// The group of folder `dir` from any version read before: a meta.json that cannot be read
    /// now still holds back only the group it named.
    pub(crate) fn group_of(&self, run: u64, dir: &str) -> Option<String> {
        let mut state = self.state(run);
        let entry = state.entries.get_mut(dir)?;
        entry.seen = run;
        Some(entry.group.clone())
    }

    /// Remembers what folder `dir`'s meta.json, of version `validator`, said.
    pub(crate) fn remember(&self, run: u64, dir: &str, validator: Validator, group: String, summary: MetaSummary) {
        let entry = Entry { validator, group, summary: Arc::new(summary), seen: run };
        self.state(run).entries.insert(dir.to_string(), entry);
    }
}
