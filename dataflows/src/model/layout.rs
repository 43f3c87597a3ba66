//! Bucket layouts: where the blocks are, and which blocks share a commit queue.
//!
//! Thanos keeps blocks at the bucket root (`<ULID>/...`). Mimir and Cortex keep them per tenant
//! (`<tenant>/<ULID>/...`), with the tenant's deletion marks also in `<tenant>/markers/` and a
//! bucket index (`<tenant>/bucket-index.json.gz`) that is no block and is never copied.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Which tenants to replicate, and under which name in the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenants {
    /// Only these tenants (all when empty).
    pub enabled: BTreeSet<String>,
    /// Never these tenants.
    pub disabled: BTreeSet<String>,
    /// Source tenant name to target tenant name; tenants not listed keep their name.
    pub mapping: BTreeMap<String, String>,
}

impl Tenants {
    /// Whether `tenant` is replicated: enabled (or no tenant is), and not disabled.
    pub fn selects(&self, tenant: &str) -> bool {
        (self.enabled.is_empty() || self.enabled.contains(tenant)) && !self.disabled.contains(tenant)
    }
}

/// Where a bucket's blocks are, and so which blocks share a commit queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// Blocks at the bucket root; a compaction group is a commit queue.
    #[default]
    Thanos,
    /// Blocks under tenant folders. Each tenant is one commit queue, in (minTime, ULID) order
    /// across all its label sets: Mimir's compactor plans by time range and shard rather than by
    /// Thanos's group key, and the tenant is the unit that is safe for both.
    Tenants(Tenants),
}

/// The tenant of a block folder `<tenant>/<ULID>`, if it has one.
pub(crate) fn tenant_of(dir: &str) -> Option<&str> {
    dir.rsplit_once('/').map(|(tenant, _)| tenant)
}

/// The ULID part of a block folder: the folder itself, or what follows its tenant.
pub(crate) fn block_id(dir: &str) -> &str {
    dir.rsplit_once('/').map_or(dir, |(_, id)| id)
}

/// Mimir's bucket-wide deletion mark of a tenant's block: `<tenant>/markers/<ULID>-deletion-mark.json`.
pub(crate) fn global_deletion_mark(dir: &str) -> Option<String> {
    let tenant = tenant_of(dir)?;
    Some(format!("{tenant}/markers/{}-{}", block_id(dir), super::markers::DELETION_MARK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_selected_and_block_folders_split() {
        let t = Tenants {
            enabled: ["a", "b"].map(String::from).into(),
            disabled: ["b"].map(String::from).into(),
            ..Tenants::default()
        };
        assert!(t.selects("a") && !t.selects("b") && !t.selects("c"));
        assert!(Tenants::default().selects("anyone"));
        assert_eq!(tenant_of("team-a/01HF856H80D55FJT0TCK9K0631"), Some("team-a"));
        assert_eq!(tenant_of("01HF856H80D55FJT0TCK9K0631"), None);
        assert_eq!(block_id("team-a/01HF856H80D55FJT0TCK9K0631"), "01HF856H80D55FJT0TCK9K0631");
        assert_eq!(
            global_deletion_mark("team-a/01HF856H80D55FJT0TCK9K0631").as_deref(),
            Some("team-a/markers/01HF856H80D55FJT0TCK9K0631-deletion-mark.json")
        );
    }
}
