//! The block viewer: both buckets' blocks by compaction group, on one time axis, as the last run
//! left them. Built once a run ([`Snapshot::new`]), then filtered and paged per request
//! ([`Query`]), so that a page costs what it shows, not what the buckets hold. The page at `/`
//! ([`page`]) and the JSON under `/api/v1/` ([`api`]) read the same snapshot with the same query.
//!
//! After Thanos's block viewer (`thanos tools bucket web`, the compactor's `/blocks`): a group's
//! blocks as bars on a time axis, coloured by compaction level and resolution, titled by a
//! chosen label (`--web.group-label`, Thanos's `--bucket-web-label`), filtered by labels, ULID
//! and time. Unlike it, the source and the target are two lanes of one axis, and the source's
//! bars carry what the last run did with each block.

pub mod api;
pub mod page;

use std::collections::BTreeMap;

use bucketflow_dataflows::{
    group_resolution, parse_matchers, FailureCause, Outcome, RunReport, Selector, TargetBlockSummary,
};
use serde::Serialize;

/// Which bucket a bar is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Source,
    Target,
}

/// One block on a lane.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub side: Side,
    pub block: String,
    pub min_time: i64,
    pub max_time: i64,
    pub level: Option<i64>,
    pub resolution: i64,
    /// In the source, what the last run did with it (an outcome's kind, or `late` and `overlap`
    /// where the outcome says so); in the target, `visible`, or `marked` for deletion.
    pub state: &'static str,
    /// What the state says besides: the block it waits for, the error, the covering block.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A block folder's path in a URL: each part percent-encoded, the `/` of a tenant kept.
pub fn block_href(dir: &str) -> String {
    let parts: Vec<String> = dir
        .split('/')
        .map(|p| percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC).to_string())
        .collect();
    format!("/blocks/{}", parts.join("/"))
}

/// Whether `dir` names a block folder as a layout does: `<ULID>`, or `<tenant>/<ULID>`. Only
/// such folders are read from the buckets for a block's page.
pub fn is_block_folder(dir: &str) -> bool {
    let parts: Vec<&str> = dir.split('/').collect();
    let ulid = |p: &str| ulid::Ulid::from_string(p).is_ok();
    match parts.as_slice() {
        [id] => ulid(id),
        [tenant, id] => !tenant.is_empty() && *tenant != "." && *tenant != ".." && ulid(id),
        _ => false,
    }
}

/// A compaction group: its labels and both lanes, each in time order.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub key: String,
    pub labels: BTreeMap<String, String>,
    /// The newest minTime committed in the target (replicated now or before); `None` when none.
    pub frontier: Option<i64>,
    /// The source's blocks by state.
    pub counts: BTreeMap<&'static str, usize>,
    /// The group's backlog after the run: its selected source blocks the target still lacks
    /// (failed, held back, planned), and their bytes where known.
    pub pending_blocks: usize,
    pub pending_bytes: u64,
    /// The largest replication lag of the blocks the run committed in this group, in seconds.
    pub max_lag_seconds: Option<f64>,
    #[serde(skip)]
    pub source: Vec<Bar>,
    #[serde(skip)]
    pub target: Vec<Bar>,
}

/// Both buckets as the last run left them.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub run_id: Option<u64>,
    pub groups: Vec<Group>,
}

/// A source block's state on the page (and the status's groups): its outcome's kind, made
/// precise where it matters to the target's compactor, and what it says besides.
pub fn state_of(outcome: &Outcome) -> (&'static str, String) {
    match outcome {
        Outcome::HeldBack { behind, behind_in_target: true, .. } => {
            ("held_back", format!("behind target block {behind}, whose meta.json cannot be read"))
        }
        Outcome::HeldBack { behind, .. } => ("held_back", format!("behind {behind}")),
        Outcome::Failed { cause, error, .. } => {
            let state = if *cause == FailureCause::Overlap { "overlap" } else { "failed" };
            (state, format!("{}: {error}", cause.name()))
        }
        Outcome::Covered { by } => ("covered", format!("covered by {by}")),
        Outcome::Replicated { late_behind: Some(behind), .. } => ("late", format!("late: behind {behind}")),
        Outcome::Filtered { reason, .. } | Outcome::Skipped { reason } => (outcome.kind(), reason.clone()),
        _ => (outcome.kind(), String::new()),
    }
}

impl Snapshot {
    /// The groups of `report`'s source blocks and of the target's `targets`, side by side.
    pub fn new(report: &RunReport, targets: &[TargetBlockSummary]) -> Snapshot {
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        fn group<'a>(groups: &'a mut BTreeMap<String, Group>, report: &RunReport, key: &str) -> &'a mut Group {
            groups.entry(key.to_string()).or_insert_with(|| Group {
                key: key.to_string(),
                labels: report.group_labels.get(key).cloned().unwrap_or_default(),
                frontier: None,
                counts: BTreeMap::new(),
                pending_blocks: 0,
                pending_bytes: 0,
                max_lag_seconds: None,
                source: Vec::new(),
                target: Vec::new(),
            })
        }
        for block in &report.blocks {
            let (Some(key), Some(min_time), Some(max_time)) = (&block.group, block.min_time, block.max_time) else {
                continue;
            };
            let line = group(&mut groups, report, key);
            let (state, detail) = state_of(&block.outcome);
            *line.counts.entry(state).or_default() += 1;
            if matches!(block.outcome, Outcome::Replicated { .. } | Outcome::AlreadyReplicated) {
                line.frontier = line.frontier.max(Some(min_time));
            }
            // As the report's backlog counts it (`RunReport::backlog`), by group.
            if block.outcome.is_owed() {
                line.pending_blocks += 1;
                line.pending_bytes += block.bytes.unwrap_or_default();
            }
            if let Outcome::Replicated { lag_millis: Some(lag), .. } = block.outcome {
                let lag = lag as f64 / 1000.0;
                line.max_lag_seconds = Some(line.max_lag_seconds.map_or(lag, |known| known.max(lag)));
            }
            line.source.push(Bar {
                side: Side::Source,
                block: block.block.clone(),
                min_time,
                max_time,
                level: block.level,
                resolution: group_resolution(key),
                state,
                detail,
            });
        }
        for block in targets {
            group(&mut groups, report, &block.group).target.push(Bar {
                side: Side::Target,
                block: block.block.clone(),
                min_time: block.min_time,
                max_time: block.max_time,
                level: Some(block.level),
                resolution: block.resolution,
                state: if block.marked_for_deletion { "marked" } else { "visible" },
                detail: String::new(),
            });
        }
        let mut groups: Vec<Group> = groups.into_values().collect();
        for group in &mut groups {
            // The target's own blocks are committed too, by an earlier run or by anyone.
            let newest_in_target = group.target.iter().map(|b| b.min_time).max();
            group.frontier = group.frontier.max(newest_in_target);
            for lane in [&mut group.source, &mut group.target] {
                lane.sort_by(|a, b| (a.min_time, &a.block).cmp(&(b.min_time, &b.block)));
            }
        }
        Snapshot { run_id: Some(report.run_id), groups }
    }

    /// The block `dir` on either lane, with its group.
    pub fn find(&self, dir: &str) -> Vec<(&Group, &Bar)> {
        self.groups
            .iter()
            .flat_map(|g| g.source.iter().chain(&g.target).filter(|b| b.block == dir).map(move |b| (g, b)))
            .collect()
    }
}

/// The most a page or an API answer gives at once.
pub const MAX_PER_PAGE: usize = 500;

/// What a request asks to see: the filters, from the URL, and the page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// A label selector on the groups' labels, as Thanos's `--selector.relabel` matches and
    /// Prometheus writes it: `cluster="eu1", env=~"prod.*"` (braces optional).
    pub labels: String,
    pub selector: Selector,
    /// Blocks whose folder contains this, case-insensitive.
    pub ulid: String,
    /// Source blocks in this state (an outcome's kind, `late` or `overlap`).
    pub state: String,
    /// One group, by its key.
    pub group: String,
    /// Blocks that overlap [from, to), Unix milliseconds.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// From 1.
    pub page: usize,
    pub per_page: usize,
    /// The URL gave `per_page`: links keep it.
    pub per_page_given: bool,
}

/// A query parameter that cannot be used, named.
#[derive(Debug, thiserror::Error)]
#[error("query parameter {name}={value:?}: {why}")]
pub struct QueryError {
    name: &'static str,
    value: String,
    why: String,
}

/// A time as a URL gives it: Unix milliseconds, RFC 3339, or a date (UTC midnight).
fn parse_time(name: &'static str, value: &str) -> Result<Option<i64>, QueryError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(millis) = value.parse::<i64>() {
        return Ok(Some(millis));
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(Some(time.timestamp_millis()));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(Some(date.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis()));
    }
    if let Ok(time) = chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M") {
        return Ok(Some(time.and_utc().timestamp_millis()));
    }
    let why = "not Unix milliseconds, RFC 3339 or a date (YYYY-MM-DD)".to_string();
    Err(QueryError { name, value: value.to_string(), why })
}

impl Query {
    /// The query of a URL's raw query string (`None`: no query); `per_page` when it gives none.
    pub fn from_url(raw: Option<&str>, per_page: usize) -> Result<Query, QueryError> {
        let params = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect();
        Query::parse(&params, per_page)
    }

    /// The query of a URL's parameters; `per_page` when the URL gives none.
    pub fn parse(params: &BTreeMap<String, String>, per_page: usize) -> Result<Query, QueryError> {
        let text = |name: &str| params.get(name).map(|v| v.trim().to_string()).unwrap_or_default();
        let labels = text("labels");
        let inner = labels.trim().trim_start_matches('{').trim_end_matches('}');
        let matchers = match inner.trim().is_empty() {
            true => Vec::new(),
            false => parse_matchers(inner).map_err(|e| QueryError {
                name: "labels",
                value: labels.clone(),
                why: e.to_string(),
            })?,
        };
        let number = |name: &'static str, default: usize| match params.get(name).map(|v| v.trim()) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| QueryError {
                name,
                value: v.to_string(),
                why: "not a positive whole number".into(),
            }),
        };
        Ok(Query {
            labels,
            selector: Selector { matchers },
            ulid: text("ulid"),
            state: text("state"),
            group: text("group"),
            from: parse_time("from", &text("from"))?,
            to: parse_time("to", &text("to"))?,
            page: number("page", 1)?,
            per_page: number("per_page", per_page)?.min(MAX_PER_PAGE),
            per_page_given: params.get("per_page").is_some_and(|v| !v.trim().is_empty()),
        })
    }

    /// Whether the query narrows the blocks, beyond the groups.
    fn narrows_blocks(&self) -> bool {
        !self.ulid.is_empty() || !self.state.is_empty() || self.from.is_some() || self.to.is_some()
    }

    fn selects_group(&self, group: &Group) -> bool {
        (self.group.is_empty() || group.key == self.group) && self.selector.matches(&group.labels)
    }

    /// Whether `bar` passes the block filters.
    pub fn selects_bar(&self, bar: &Bar) -> bool {
        let ulid = self.ulid.to_ascii_uppercase();
        (ulid.is_empty() || bar.block.to_ascii_uppercase().contains(&ulid))
            && (self.state.is_empty() || bar.state == self.state)
            && self.from.is_none_or(|from| bar.max_time > from)
            && self.to.is_none_or(|to| bar.min_time < to)
    }

    /// The groups the query selects, each with its lanes narrowed to the blocks it selects.
    pub fn groups<'a>(&'a self, snapshot: &'a Snapshot) -> impl Iterator<Item = Shown<'a>> + 'a {
        snapshot.groups.iter().filter(|g| self.selects_group(g)).filter_map(move |group| {
            let source: Vec<&Bar> = group.source.iter().filter(|b| self.selects_bar(b)).collect();
            let target: Vec<&Bar> = group.target.iter().filter(|b| self.selects_bar(b)).collect();
            let empty = source.is_empty() && target.is_empty();
            (!(empty && self.narrows_blocks())).then_some(Shown { group, source, target })
        })
    }

    /// The page's slice of `items`, and how many there are in all.
    pub fn page_of<T>(&self, items: impl Iterator<Item = T>) -> (Vec<T>, usize) {
        let mut total = 0;
        let skip = (self.page - 1).saturating_mul(self.per_page);
        let mut page = Vec::new();
        for item in items {
            if total >= skip && page.len() < self.per_page {
                page.push(item);
            }
            total += 1;
        }
        (page, total)
    }

    /// This query as URL parameters, with `change` applied (an empty value drops the parameter).
    pub fn url(&self, path: &str, change: &[(&str, String)]) -> String {
        let mut params: BTreeMap<&str, String> = BTreeMap::new();
        params.insert("labels", self.labels.clone());
        params.insert("ulid", self.ulid.clone());
        params.insert("state", self.state.clone());
        params.insert("group", self.group.clone());
        params.insert("from", self.from.map(|t| t.to_string()).unwrap_or_default());
        params.insert("to", self.to.map(|t| t.to_string()).unwrap_or_default());
        params.insert("page", if self.page > 1 { self.page.to_string() } else { String::new() });
        params.insert("per_page", if self.per_page_given { self.per_page.to_string() } else { String::new() });
        for (name, value) in change {
            params.insert(name, value.clone());
        }
        let query: Vec<String> = params
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| {
                format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC))
            })
            .collect();
        match query.is_empty() {
            true => path.to_string(),
            false => format!("{path}?{}", query.join("&")),
        }
    }
}

/// A group as a query shows it: its lanes narrowed to the blocks the query selects.
pub struct Shown<'a> {
    pub group: &'a Group,
    pub source: Vec<&'a Bar>,
    pub target: Vec<&'a Bar>,
}

impl Shown<'_> {
    /// The group's title: the value of `label` where it has one, else all its labels.
    pub fn title(&self, label: Option<&str>) -> String {
        let labels = &self.group.labels;
        if let Some(value) = label.and_then(|l| labels.get(l)) {
            return format!("{}={value:?}", label.unwrap_or_default());
        }
        let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{{{}}}", pairs.join(", "))
    }

    /// The time the lanes span, `None` without blocks.
    pub fn span(&self) -> Option<(i64, i64)> {
        let bars = || self.source.iter().chain(&self.target);
        Some((bars().map(|b| b.min_time).min()?, bars().map(|b| b.max_time).max()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn bar(block: &str, min: i64, max: i64, state: &'static str) -> Bar {
        Bar {
            side: Side::Source,
            block: block.into(),
            min_time: min,
            max_time: max,
            level: Some(1),
            resolution: 0,
            state,
            detail: String::new(),
        }
    }

    fn snapshot() -> Snapshot {
        let group = |key: &str, cluster: &str, bars: Vec<Bar>| Group {
            key: key.into(),
            labels: [("cluster".to_string(), cluster.to_string())].into(),
            frontier: None,
            counts: BTreeMap::new(),
            pending_blocks: 0,
            pending_bytes: 0,
            max_lag_seconds: None,
            source: bars,
            target: Vec::new(),
        };
        Snapshot {
            run_id: Some(0),
            groups: vec![
                group("0@1", "eu1", vec![bar("01AAA", 0, 10, "replicated"), bar("01BBB", 10, 20, "failed")]),
                group("0@2", "us1", vec![bar("01CCC", 0, 10, "held_back")]),
            ],
        }
    }

    #[test]
    fn a_label_selector_narrows_the_groups() {
        let snapshot = snapshot();
        let query = Query::parse(&params(&[("labels", r#"{cluster="eu1"}"#)]), 20).unwrap();
        let keys: Vec<&str> = query.groups(&snapshot).map(|s| s.group.key.as_str()).collect();
        assert_eq!(keys, ["0@1"]);
        let query = Query::parse(&params(&[("labels", r#"cluster=~"u.*""#)]), 20).unwrap();
        assert_eq!(query.groups(&snapshot).map(|s| s.group.key.clone()).collect::<Vec<_>>(), ["0@2"]);
    }

    #[test]
    fn a_ulid_a_state_and_a_time_window_narrow_the_blocks() {
        let snapshot = snapshot();
        let shown = |pairs: &[(&str, &str)]| -> Vec<String> {
            let query = Query::parse(&params(pairs), 20).unwrap();
            query.groups(&snapshot).flat_map(|s| s.source.into_iter().map(|b| b.block.clone())).collect()
        };
        assert_eq!(shown(&[("ulid", "bbb")]), ["01BBB"]);
        assert_eq!(shown(&[("state", "held_back")]), ["01CCC"]);
        assert_eq!(shown(&[("from", "10")]), ["01BBB"]);
        assert_eq!(shown(&[("to", "10")]), ["01AAA", "01CCC"]);
    }

    #[test]
    fn bad_parameters_are_named() {
        let error = Query::parse(&params(&[("from", "yesterday")]), 20).unwrap_err().to_string();
        assert!(error.contains("from=\"yesterday\""), "{error}");
        let error = Query::parse(&params(&[("labels", "cluster=")]), 20).unwrap_err().to_string();
        assert!(error.contains("labels"), "{error}");
        assert!(Query::parse(&params(&[("page", "0")]), 20).is_err());
    }

    #[test]
    fn only_a_block_folder_is_read() {
        assert!(is_block_folder("01HF8C28G0N8Z4R7CBP4ACHFGZ"));
        assert!(is_block_folder("tenant-1/01HF8C28G0N8Z4R7CBP4ACHFGZ"));
        for other in
            ["a/b/01HF8C28G0N8Z4R7CBP4ACHFGZ", "../01HF8C28G0N8Z4R7CBP4ACHFGZ", "/01HF8C28G0N8Z4R7CBP4ACHFGZ", "x"]
        {
            assert!(!is_block_folder(other), "{other}");
        }
        assert_eq!(block_href("a b/01HF8C28G0N8Z4R7CBP4ACHFGZ"), "/blocks/a%20b/01HF8C28G0N8Z4R7CBP4ACHFGZ");
    }

    #[test]
    fn a_target_block_marked_for_deletion_is_drawn_as_marked() {
        let report =
            RunReport::from_records(0, bucketflow_dataflows::Strategy::Grouped, false, chrono::Utc::now(), vec![]);
        let target = |block: &str, marked_for_deletion| TargetBlockSummary {
            block: block.into(),
            group: "0@1".into(),
            min_time: 0,
            max_time: 10,
            resolution: 0,
            level: 1,
            marked_for_deletion,
        };
        let snapshot = Snapshot::new(&report, &[target("01AAA", true), target("01BBB", false)]);
        let states: Vec<&str> = snapshot.groups[0].target.iter().map(|b| b.state).collect();
        assert_eq!(states, ["marked", "visible"]);
    }

    #[test]
    fn pages_slice_and_count() {
        let query = Query { page: 2, per_page: 3, ..Query::default() };
        assert_eq!(query.page_of(0..8), (vec![3, 4, 5], 8));
    }

    #[test]
    fn a_url_keeps_the_filters() {
        let query = Query::parse(&params(&[("labels", r#"cluster="eu1""#), ("ulid", "01A")]), 20).unwrap();
        assert_eq!(query.url("/", &[("page", "2".into())]), "/?labels=cluster%3D%22eu1%22&page=2&ulid=01A");
        let query = Query::parse(&params(&[("per_page", "50"), ("page", "2")]), 20).unwrap();
        assert_eq!(query.url("/", &[("page", "3".into())]), "/?page=3&per_page=50", "a link keeps the page size");
    }
}
