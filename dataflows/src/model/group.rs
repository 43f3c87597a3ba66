//! Thanos's compaction group key.
//!
//! The target compactor plans per group, so replication must order commits per group; the key has
//! to be computed exactly as Thanos does (`compact.DefaultGroupKey`) for the order to mean anything.

use std::collections::BTreeMap;

use xxhash_rust::xxh64::Xxh64;

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

#[cfg(test)]
mod tests {
    use super::*;

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
