//! The source's block metas as a process remembers them across runs: a small summary of each,
//! by folder, with the version of its meta.json that was read (the listing's size and ETag).
//!
//! A meta.json never changes, so a block listed again with the same meta.json needs no request:
//! its summary decides whether the filters leave it out and whether the target holds it
//! already. A folder that a run does not list is forgotten by the next run, so that memory
//! follows the bucket, not its history.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::inventory::Validator;
use crate::model::meta::MetaSummary;

/// What a cache file holds: the settings its groups were computed under, and its entries. A file
/// made under other settings (another grouping) is not used.
#[derive(Serialize, Deserialize)]
pub(crate) struct CacheFile<T> {
    pub(crate) settings: String,
    pub(crate) entries: BTreeMap<String, T>,
}

impl<T: Serialize + serde::de::DeserializeOwned> CacheFile<T> {
    /// The entries of the cache file at `path`, when it was made under `settings`. A missing
    /// file is an empty cache; an unreadable one is named in the log and ignored: a cache only
    /// spares requests.
    pub(crate) fn load(path: &Path, settings: &str) -> BTreeMap<String, T> {
        let file: CacheFile<T> = match std::fs::read(path).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(file)) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable cache file");
                return BTreeMap::new();
            }
            Ok(Err(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring a corrupt cache file");
                return BTreeMap::new();
            }
        };
        if file.settings != settings {
            tracing::info!(path = %path.display(), "ignoring a cache file made with other settings");
            return BTreeMap::new();
        }
        file.entries
    }

    /// Writes the cache file at `path` whole or not at all (a new file renamed over the old),
    /// so that a process killed while writing leaves the last complete one.
    pub(crate) fn save(path: &Path, settings: &str, entries: BTreeMap<String, T>) -> std::io::Result<()> {
        let file = CacheFile { settings: settings.to_string(), entries };
        let partial = path.with_extension("partial");
        std::fs::write(&partial, serde_json::to_vec(&file)?)?;
        std::fs::rename(partial, path)
    }
}

/// A remembered meta.json as a cache file keeps it.
#[derive(Serialize, Deserialize)]
struct Saved {
    validator: Validator,
    group: String,
    summary: MetaSummary,
}

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

    /// Loads what a cache file at `path` remembers (made under `settings`).
    pub(crate) fn load(path: &Path, settings: &str) -> Self {
        let entries = CacheFile::<Saved>::load(path, settings)
            .into_iter()
            .map(|(dir, s)| {
                (dir, Entry { validator: s.validator, group: s.group, summary: Arc::new(s.summary), seen: 0 })
            })
            .collect();
        SourceMetas { state: Mutex::new(State { entries, pruned_for: 0 }) }
    }

    /// Writes what is remembered to a cache file at `path`.
    pub(crate) fn save(&self, path: &Path, settings: &str) -> std::io::Result<()> {
        let entries = {
            let state = self.state.lock().expect("never poisoned");
            state
                .entries
                .iter()
                .map(|(dir, e)| {
                    let saved =
                        Saved { validator: e.validator.clone(), group: e.group.clone(), summary: (*e.summary).clone() };
                    (dir.clone(), saved)
                })
                .collect()
        };
        CacheFile::save(path, settings, entries)
    }
}
