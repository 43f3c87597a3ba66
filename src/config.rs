//! From parsed flags to the program's configuration: `cli` parses the command line, this module
//! turns `replicate`'s flags into the engine's config, checking what clap cannot.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context, Result};
use bucketflow_dataflows::{
    parse_matchers, BlockFilter, ClusterConfig, EngineConfig, Layout, MirrorConfig, RetryPolicy, Selector, Tenants,
};

use crate::cli::{LayoutFlag, ReplicateArgs};
use crate::http::WebConfig;
use crate::objstore::Retries;

impl ReplicateArgs {
    /// The engine's config from the flags. It names no shared store yet: that is known only once
    /// both buckets are open.
    pub fn engine_config(&self) -> Result<EngineConfig> {
        let defaults = EngineConfig::default();
        let cluster = ClusterConfig::new(self.processes as usize, self.process as usize, self.hostfile.as_deref())
            .context("cluster flags (--processes, --process, --hostfile)")?;
        if cluster.is_some() && self.workers.is_none() {
            // A commit queue's worker is a hash over the cluster's workers: every process must
            // count them alike, which a default from each machine's cores does not promise.
            bail!(
                "--workers must be given in cluster mode (--processes {}), the same in every process",
                self.processes
            );
        }
        Ok(EngineConfig {
            retry: RetryPolicy { retries: self.retries, timeout: self.retry_timeout, ..RetryPolicy::default() },
            same_store: None,
            server_side_copy: None,
            target_parts: None,
            telemetry: Default::default(),
            cancel: Default::default(),
            strategy: self.strategy,
            concurrency: self.concurrency as usize,
            workers: self.workers.map(|w| w as usize).unwrap_or(defaults.workers),
            part_size: usize::try_from(self.part_size).context("--part-size is too large")?,
            dry_run: self.dry_run,
            filter: self.block_filter()?,
            bandwidth: self.bwlimit.unwrap_or_default(),
            copy_markers: self.copy_markers,
            mark_source_for_deletion: self.mark_source_for_deletion,
            layout: self.layout()?,
            replica_labels: self.replica_labels()?,
            target_vertical_compaction: self.target_vertical_compaction,
            recheck_max_age: self.recheck_max_age,
            cache_dir: self.cache_dir.clone(),
            meta_budget: defaults.meta_budget,
            single_run: self.is_single_run(),
            mirror: self
                .mirror
                .then_some(MirrorConfig { delete_delay: self.delete_delay, max_deletions: self.mirror_max_deletions }),
            cluster,
        })
    }

    /// Refuses Thanos flags whose configuration bucketflow cannot honour, rather than ignoring
    /// what the operator asked for.
    pub fn check_thanos_only_flags(&self) -> Result<()> {
        let read = |path: &std::path::Path, flag: &str| {
            std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))
        };
        let tracing = match (&self.tracing_config, &self.tracing_config_file) {
            (Some(text), _) => Some(("--tracing.config", text.clone())),
            (None, Some(path)) => Some(("--tracing.config-file", read(path, "--tracing.config-file")?)),
            (None, None) => None,
        };
        if let Some((flag, text)) = tracing.filter(|(_, text)| !is_empty_yaml(text)) {
            bail!(
                "{flag}: bucketflow exports no traces; give an empty configuration or none (it was {} bytes)",
                text.len()
            );
        }
        Ok(())
    }

    /// TLS and basic auth for the HTTP endpoints, from --http.config (none without it).
    pub fn web_config(&self) -> Result<WebConfig> {
        match &self.http_config {
            Some(path) => WebConfig::load(path),
            None => Ok(WebConfig::default()),
        }
    }

    /// The retries of one request to either bucket, from --retries and --retry-timeout.
    pub fn request_retries(&self) -> Retries {
        Retries { retries: self.retries, retry_timeout: self.retry_timeout }
    }

    /// The run's block filter, from Thanos's selection flags.
    fn block_filter(&self) -> Result<BlockFilter> {
        let mut matchers = Vec::new();
        for text in &self.matchers {
            matchers.extend(parse_matchers(text).with_context(|| format!("--matcher {text}"))?);
        }
        let compaction_levels = if self.compaction.is_empty() {
            if self.compaction_min > self.compaction_max {
                bail!(
                    "--compaction-min {} is greater than --compaction-max {}",
                    self.compaction_min,
                    self.compaction_max
                );
            }
            (self.compaction_min..=self.compaction_max).collect()
        } else {
            self.compaction.iter().copied().collect()
        };
        Ok(BlockFilter {
            ids: self.ids.iter().copied().collect(),
            selector: Selector { matchers },
            resolutions: self.resolutions.iter().map(|d| d.as_millis() as i64).collect(),
            compaction_levels,
            min_time: self.min_time,
            max_time: self.max_time,
            ignore_marked_for_deletion: self.ignore_marked_for_deletion,
            excluded: self.exclude_blocks.iter().copied().collect(),
            // The engine keeps them for a tenants layout, whatever this says.
            keep_empty_labels: false,
        })
    }

    /// The target compactor's replica labels, each a label name.
    fn replica_labels(&self) -> Result<Vec<String>> {
        for label in &self.replica_labels {
            let valid = label.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                bail!("--deduplication.replica-label {label:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
            }
        }
        Ok(self.replica_labels.clone())
    }

    /// The bucket layout from --layout and the tenant flags, which only the tenants layout takes.
    fn layout(&self) -> Result<Layout> {
        let tenant_flags =
            !(self.enabled_tenants.is_empty() && self.disabled_tenants.is_empty() && self.tenant_mapping.is_empty());
        if self.layout == LayoutFlag::Thanos {
            if tenant_flags {
                bail!("--enabled-tenants, --disabled-tenants and --tenant-mapping need --layout tenants");
            }
            return Ok(Layout::Thanos);
        }
        let mut mapping = BTreeMap::new();
        for text in &self.tenant_mapping {
            let (from, to) = text
                .split_once('=')
                .filter(|(from, to)| !from.is_empty() && !to.is_empty() && !from.contains('/') && !to.contains('/'))
                .with_context(|| format!("--tenant-mapping {text:?}: expected SRC=DST, two tenant names"))?;
            if mapping.insert(from.to_string(), to.to_string()).is_some() {
                bail!("--tenant-mapping names tenant {from:?} twice");
            }
        }
        let mut targets = BTreeSet::new();
        for to in mapping.values() {
            if !targets.insert(to) {
                bail!("--tenant-mapping maps two tenants onto {to:?}");
            }
        }
        Ok(Layout::Tenants(Tenants {
            enabled: self.enabled_tenants.iter().cloned().collect(),
            disabled: self.disabled_tenants.iter().cloned().collect(),
            mapping,
        }))
    }
}

/// Whether a YAML text says nothing: blank, comments only, or an empty map or null.
fn is_empty_yaml(text: &str) -> bool {
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(serde_yaml_ng::Value::Null) => true,
        Ok(serde_yaml_ng::Value::Mapping(map)) => map.is_empty(),
        _ => text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn replicate_args(flags: &[&str]) -> ReplicateArgs {
        let command = ["bucketflow", "replicate", "--from", "memory://", "--to", "memory://"];
        match Cli::try_parse_from(command.iter().chain(flags)).unwrap().command {
            Command::Replicate(args) => *args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn flags_map_onto_the_engine_config() {
        let args = replicate_args(&[
            "--concurrency=7",
            "--part-size=6291456",
            "--compaction-min=2",
            "--compaction-max=3",
            "--layout=tenants",
            "--tenant-mapping=a=b",
        ]);
        let config = args.engine_config().unwrap();
        assert_eq!((config.concurrency, config.part_size), (7, 6 * 1024 * 1024));
        assert_eq!(config.filter.compaction_levels, BTreeSet::from([2, 3]));
        let Layout::Tenants(tenants) = config.layout else { panic!("a tenants layout") };
        assert_eq!(tenants.mapping, BTreeMap::from([("a".to_string(), "b".to_string())]));
        assert!(config.same_store.is_none(), "known only once the buckets are open");
    }
}
