//! Which source blocks a run replicates, with Thanos replicate's selection rules.

use std::collections::BTreeSet;

use ulid::Ulid;

use super::markers::Markers;
use super::matcher::Selector;
use super::meta::MetaSummary;
use super::timespec::TimeOrDuration;

/// Resolutions Thanos replicates by default: raw, 5m and 1h downsampled (milliseconds).
pub(crate) const DEFAULT_RESOLUTIONS: [i64; 3] = [0, 300_000, 3_600_000];

/// The selection of one run. Relative times are resolved against each run's own clock, so that a
/// continuous replication with `--min-time=-2w` keeps a moving window.
#[derive(Debug, Clone)]
pub struct BlockFilter {
    /// When non-empty, only these blocks are replicated and the label, resolution, compaction
    /// and time filters are ignored, as with Thanos's `--id`.
    pub ids: BTreeSet<Ulid>,
    /// The `--matcher` selector that a block's external labels must satisfy.
    pub selector: Selector,
    /// The downsampling resolutions selected, in milliseconds (0 for raw blocks).
    pub resolutions: BTreeSet<i64>,
    /// The compaction levels selected.
    pub compaction_levels: BTreeSet<i64>,
    /// Blocks that end before this time are not selected; `None` for no lower bound.
    pub min_time: Option<TimeOrDuration>,
    /// Blocks that start after this time are not selected; `None` for no upper bound.
    pub max_time: Option<TimeOrDuration>,
    /// Leave out blocks whose deletion mark's deletion time has passed.
    pub ignore_marked_for_deletion: bool,
    /// Blocks left out entirely (`--exclude-block`), before their meta.json is read, so that a
    /// broken block the operator gave up on holds nothing back.
    pub excluded: BTreeSet<Ulid>,
    /// Replicate blocks whose external labels are empty. Thanos's replicate never does; Mimir's
    /// ingesters upload every block with empty labels, so a tenants bucket needs them.
    pub keep_empty_labels: bool,
}

impl Default for BlockFilter {
    /// Thanos's defaults: every label set, resolutions 0s/5m/1h, compaction levels 1 to 4.
    fn default() -> Self {
        BlockFilter {
            ids: BTreeSet::new(),
            selector: Selector::default(),
            resolutions: DEFAULT_RESOLUTIONS.into_iter().collect(),
            compaction_levels: (1..=4).collect(),
            min_time: None,
            max_time: None,
            ignore_marked_for_deletion: false,
            excluded: BTreeSet::new(),
            keep_empty_labels: false,
        }
    }
}

/// Which rule left a block out, in the terms of Thanos's meta fetcher where it has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterRule {
    /// Its external labels: empty, or not matching `--matcher`.
    Labels,
    /// Its time range: outside `--min-time` and `--max-time`.
    Time,
    /// Its deletion mark's time has come (`--ignore-marked-for-deletion`).
    DeletionMark,
    /// Its resolution, compaction level or ULID is not selected (`--resolution`,
    /// `--compaction`, `--id`), or `--exclude-block` names it.
    #[default]
    Selection,
}

impl BlockFilter {
    /// Whether the operator narrowed the selection by what a meta.json says: matchers, `--id`
    /// or a time window.
    pub(crate) fn is_narrowed(&self) -> bool {
        !self.selector.matchers.is_empty() || !self.ids.is_empty() || self.min_time.is_some() || self.max_time.is_some()
    }

    /// Whether block folder `dir` is left out entirely; the reason, for the run report.
    pub fn excludes(&self, dir: &str) -> Option<String> {
        let ulid = Ulid::from_string(crate::model::layout::block_id(dir)).ok()?;
        self.excluded.contains(&ulid).then(|| "excluded by --exclude-block".to_string())
    }

    /// `Ok` when the block is selected; otherwise the rule that left it out and the reason, for
    /// the run report.
    pub(crate) fn check(
        &self,
        meta: &MetaSummary,
        markers: &Markers,
        now_millis: i64,
    ) -> Result<(), (FilterRule, String)> {
        // Thanos's order: empty labels first (even for --id blocks), then deletion marks whose
        // time has come (replicate runs its fetcher with no delay), then ids or the selectors.
        if meta.labels.is_empty() && !self.keep_empty_labels {
            return Err((FilterRule::Labels, "external labels are empty".into()));
        }
        if let Some(t) = markers.deletion_time.filter(|&t| self.ignore_marked_for_deletion && now_millis / 1000 > t) {
            return Err((FilterRule::DeletionMark, format!("marked for deletion at {t}")));
        }
        if !self.ids.is_empty() {
            return if self.ids.contains(&meta.ulid) {
                Ok(())
            } else {
                Err((FilterRule::Selection, "not among the --id blocks".into()))
            };
        }
        if !self.selector.matches(&meta.labels) {
            return Err((FilterRule::Labels, "labels do not match the --matcher selector".into()));
        }
        let resolution = meta.resolution;
        if !self.resolutions.contains(&resolution) {
            return Err((FilterRule::Selection, format!("resolution {resolution}ms is not selected")));
        }
        let level = meta.level;
        if !self.compaction_levels.contains(&level) {
            return Err((FilterRule::Selection, format!("compaction level {level} is not selected")));
        }
        // Thanos keeps a block that overlaps the window, both ends inclusive.
        let now = chrono::DateTime::from_timestamp_millis(now_millis).unwrap_or_default();
        if let Some(min) = self.min_time.map(|t| t.resolve_millis(now)).filter(|&min| meta.max_time < min) {
            return Err((FilterRule::Time, format!("ends at {} before --min-time {min}", meta.max_time)));
        }
        if let Some(max) = self.max_time.map(|t| t.resolve_millis(now)).filter(|&max| meta.min_time > max) {
            return Err((FilterRule::Time, format!("starts at {} after --max-time {max}", meta.min_time)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::matcher::parse_matchers;
    use crate::model::meta::{parse_meta, MetaSummary};

    const ULID: &str = "01DWJQ1R9XW3Z3WJ7A7HNGQRG1";

    fn meta(labels: &str, resolution: i64, level: i64, min: i64, max: i64) -> MetaSummary {
        let json = format!(
            r#"{{"ulid":"{ULID}","minTime":{min},"maxTime":{max},"version":1,"compaction":{{"level":{level}}},
                "thanos":{{"labels":{{{labels}}},"downsample":{{"resolution":{resolution}}}}}}}"#
        );
        MetaSummary::of(&parse_meta(ULID, json.into()).unwrap())
    }

    #[test]
    fn thanos_defaults_select_raw_and_downsampled_levels_one_to_four() {
        let f = BlockFilter::default();
        let none = Markers::default();
        assert!(f.check(&meta(r#""a":"b""#, 0, 1, 0, 10), &none, 0).is_ok());
        assert!(f.check(&meta(r#""a":"b""#, 3_600_000, 4, 0, 10), &none, 0).is_ok());
        assert!(f.check(&meta(r#""a":"b""#, 60_000, 1, 0, 10), &none, 0).is_err());
        assert!(f.check(&meta(r#""a":"b""#, 0, 5, 0, 10), &none, 0).is_err());
        assert!(f.check(&meta("", 0, 1, 0, 10), &none, 0).unwrap_err().1.contains("empty"));
    }

    #[test]
    fn selector_ids_deletion_and_window() {
        let mut f = BlockFilter {
            selector: Selector { matchers: parse_matchers(r#"a=~"b|c""#).unwrap() },
            ..Default::default()
        };
        let m = meta(r#""a":"b""#, 0, 1, 100, 200);
        let marked = Markers { deletion: true, deletion_time: Some(0), ..Default::default() };
        let partial_mark = Markers { deletion: true, deletion_time: None, ..Default::default() };
        let future_mark = Markers { deletion: true, deletion_time: Some(4_000_000_000), ..Default::default() };
        assert!(f.check(&m, &Markers::default(), 0).is_ok());
        assert!(f.check(&meta(r#""a":"d""#, 0, 1, 0, 1), &Markers::default(), 0).is_err());
        assert!(f.check(&m, &marked, 0).is_ok(), "marked blocks are replicated unless asked otherwise");
        f.ignore_marked_for_deletion = true;
        assert!(f.check(&m, &marked, 1000).is_err());
        assert!(f.check(&m, &partial_mark, 1000).is_ok(), "a partial mark is no mark, as in Thanos");
        assert!(f.check(&m, &future_mark, 1000).is_ok(), "a mark whose time has not come is kept");

        f.min_time = Some("1970-01-01T00:00:00.200Z".parse().unwrap());
        assert!(f.check(&m, &Markers::default(), 0).is_ok(), "touching the window's start overlaps it");
        f.min_time = Some("1970-01-01T00:00:00.201Z".parse().unwrap());
        assert!(f.check(&m, &Markers::default(), 0).is_err());
        f.min_time = Some("-1s".parse().unwrap());
        assert!(f.check(&m, &Markers::default(), 1_150).is_ok(), "relative to the run's clock");
        assert!(f.check(&m, &Markers::default(), 1_201).is_err());
        f.min_time = None;
        f.max_time = Some("1970-01-01T00:00:00.099Z".parse().unwrap());
        assert!(f.check(&m, &Markers::default(), 0).is_err());

        f.ids = [m.ulid].into_iter().collect();
        assert!(f.check(&m, &Markers::default(), 0).is_ok(), "--id ignores the other filters");
        assert!(f.check(&m, &marked, 1000).is_err(), "but not the deletion-mark filter");
        assert!(f.check(&meta("", 0, 1, 100, 200), &Markers::default(), 0).is_err(), "nor the empty-labels one");
    }

    #[test]
    fn each_exclusion_names_its_rule_as_thanos_counts_it() {
        let f = BlockFilter {
            selector: Selector { matchers: parse_matchers(r#"a="b""#).unwrap() },
            min_time: Some("1970-01-01T00:00:01Z".parse().unwrap()),
            ignore_marked_for_deletion: true,
            ..Default::default()
        };
        let none = Markers::default();
        let rule = |m: MetaSummary, markers: &Markers| f.check(&m, markers, 10_000).unwrap_err().0;
        assert_eq!(rule(meta("", 0, 1, 0, 10), &none), FilterRule::Labels);
        assert_eq!(rule(meta(r#""a":"c""#, 0, 1, 0, 10), &none), FilterRule::Labels);
        assert_eq!(rule(meta(r#""a":"b""#, 0, 1, 0, 10), &none), FilterRule::Time);
        assert_eq!(rule(meta(r#""a":"b""#, 60_000, 1, 0, 5_000), &none), FilterRule::Selection);
        let marked = Markers { deletion: true, deletion_time: Some(0), ..Default::default() };
        assert_eq!(rule(meta(r#""a":"b""#, 0, 1, 0, 5_000), &marked), FilterRule::DeletionMark);
    }
}
