//! The compaction group a block belongs to, as the *target's* compactor forms it.
//!
//! The target compactor plans per group, so replication must order commits per group; the key has
//! to be computed exactly as Thanos does (`compact.DefaultGroupKey`) for the order to mean anything,
//! and over the labels the compactor groups by: Thanos's compactor strips its
//! `--deduplication.replica-label` labels first (its `ReplicaLabelRemover` runs before its
//! grouper), and Mimir's compactor groups each tenant's blocks without the split-compaction shard
//! label.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh64::Xxh64;

use super::layout::tenant_of;

/// The label Mimir's split-and-merge compactor adds to the blocks it splits by shard.
pub(crate) const MIMIR_SHARD_LABEL: &str = "__compactor_shard_id__";
/// The value Thanos gives the first replica label when stripping them leaves a block no labels.
const DEDUPED: &str = "deduped";

/// How the target compactor groups blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grouping {
    /// Labels stripped before grouping: the target compactor's `--deduplication.replica-label`,
    /// so that the replicas of an HA pair are one group.
    pub replica_labels: Vec<String>,
    /// Group per tenant (the block folder's tenant leads the key) and without Mimir's shard
    /// label, as Mimir's compactor does; for `--layout tenants`.
    pub per_tenant: bool,
}

impl Grouping {
    /// The labels the target compactor groups block `labels` by. As Thanos does, a block left
    /// with no labels by stripping replica labels gets the first replica label, valued `deduped`.
    pub fn labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut kept: BTreeMap<String, String> = labels
            .iter()
            .filter(|(name, _)| !self.replica_labels.contains(name))
            .filter(|(name, _)| !(self.per_tenant && name.as_str() == MIMIR_SHARD_LABEL))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        if let Some(first) = self.replica_labels.first().filter(|_| kept.is_empty() && !labels.is_empty()) {
            kept.insert(first.clone(), DEDUPED.to_string());
        }
        kept
    }

    /// The group key of a block in folder `dir` with these labels and resolution:
    /// `"<resolution>@<hash>"`, led by `"<tenant>/"` when grouping per tenant.
    pub fn key(&self, dir: &str, resolution_millis: i64, labels: &BTreeMap<String, String>) -> String {
        let key = group_key(resolution_millis, &self.labels(labels));
        match tenant_of(dir).filter(|_| self.per_tenant) {
            Some(tenant) => format!("{tenant}/{key}"),
            None => key,
        }
    }
}

/// The byte Prometheus writes after every label name and value when hashing a label set.
const LABEL_SEPARATOR: u8 = 0xFF;

/// Prometheus's `labels.Hash`: xxHash64 (seed 0) over the labels sorted by name, each written as
/// name, 0xFF, value, 0xFF. A `BTreeMap` iterates in name order, which is the sort Prometheus uses.
pub(crate) fn labels_hash(labels: &BTreeMap<String, String>) -> u64 {
    let mut hasher = Xxh64::new(0);
    for (name, value) in labels {
        hasher.update(name.as_bytes());
        hasher.update(&[LABEL_SEPARATOR]);
        hasher.update(value.as_bytes());
        hasher.update(&[LABEL_SEPARATOR]);
    }
    hasher.digest()
}

/// The compaction group key, `"<resolution>@<labels hash>"`.
pub fn group_key(resolution_millis: i64, labels: &BTreeMap<String, String>) -> String {
    format!("{resolution_millis}@{}", labels_hash(labels))
}

/// The resolution (milliseconds) a group key names, read back from [`Grouping::key`]'s
/// `"[<tenant>/]<resolution>@<hash>"`; 0 for a key that names none.
pub fn group_resolution(key: &str) -> i64 {
    let key = key.rsplit('/').next().unwrap_or(key);
    key.split('@').next().and_then(|r| r.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_key_says_its_resolution() {
        let grouping = Grouping { replica_labels: Vec::new(), per_tenant: true };
        let key = grouping.key("tenant-1/01HF8C28G0N8Z4R7CBP4ACHFGZ", 300_000, &labels(&[("cluster", "eu1")]));
        assert_eq!(group_resolution(&key), 300_000);
        assert_eq!(group_resolution(&group_key(3_600_000, &labels(&[]))), 3_600_000);
        assert_eq!(group_resolution("not a key"), 0);
    }

    #[test]
    fn replica_labels_are_stripped_before_grouping() {
        let grouping = Grouping { replica_labels: vec!["replica".into(), "rule_replica".into()], per_tenant: false };
        let a = labels(&[("cluster", "eu1"), ("replica", "a")]);
        let b = labels(&[("cluster", "eu1"), ("replica", "b")]);
        assert_eq!(grouping.key("X", 0, &a), grouping.key("X", 0, &b));
        assert_eq!(grouping.key("X", 0, &a), group_key(0, &labels(&[("cluster", "eu1")])));
        assert_ne!(Grouping::default().key("X", 0, &a), Grouping::default().key("X", 0, &b));
        // Nothing left: Thanos names the block by its first replica label.
        let only_replica = labels(&[("rule_replica", "1")]);
        assert_eq!(grouping.labels(&only_replica), labels(&[("replica", "deduped")]));
    }

    #[test]
    fn mimir_groups_per_tenant_without_the_shard_label() {
        let grouping = Grouping { replica_labels: Vec::new(), per_tenant: true };
        let shard = labels(&[(MIMIR_SHARD_LABEL, "1_of_4")]);
        let key = grouping.key("team-a/01HF856H80D55FJT0TCK9K0631", 0, &shard);
        assert_eq!(key, format!("team-a/{}", group_key(0, &labels(&[]))));
        assert_eq!(key, grouping.key("team-a/01HF856H80D55FJT0TCK9K0632", 0, &labels(&[])));
        assert_ne!(key, grouping.key("team-b/01HF856H80D55FJT0TCK9K0631", 0, &shard));
        let ooo = labels(&[("__out_of_order__", "true")]);
        assert_ne!(key, grouping.key("team-a/01HF856H80D55FJT0TCK9K0631", 0, &ooo));
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn matches_thanos_test_vectors() {
        assert_eq!(group_key(0, &labels(&[])), "0@17241709254077376921");
        assert_eq!(group_key(0, &labels(&[("foo", "bar"), ("foo1", "bar2")])), "0@2124638872457683483");
    }

    #[test]
    fn resolution_and_labels_both_separate_groups() {
        let l = labels(&[("foo", "bar")]);
        assert_ne!(group_key(0, &l), group_key(300_000, &l));
        assert_ne!(group_key(0, &l), group_key(0, &labels(&[("foo", "baz")])));
        // The separator keeps a name/value boundary from being moved without changing the hash.
        assert_ne!(labels_hash(&labels(&[("ab", "c")])), labels_hash(&labels(&[("a", "bc")])));
    }
}
