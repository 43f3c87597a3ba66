//! The viewer's HTML, rendered on the server: no script, no remote asset, so that it works
//! offline, behind any proxy, and in a test's headless browser as it does for a person. Its
//! filters are a GET form, so every view is a URL; a lane of many blocks is drawn as columns of
//! the axis (each in the colour of its worst block), so that a page costs its groups, not its
//! blocks.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{block_href, Bar, Query, Shown, Side, Snapshot};
use crate::status::{escape, when};

/// Groups on one page of `/`, unless the URL says otherwise.
pub const GROUPS_PER_PAGE: usize = 10;
/// Blocks on one page of `/blocks`, unless the URL says otherwise.
pub const BLOCKS_PER_PAGE: usize = 100;
/// A lane with more blocks than this is drawn as columns of the axis.
const DRAWN_ONE_BY_ONE: usize = 150;
/// The axis's width in pixels, and its columns when a lane is aggregated.
const WIDTH: f64 = 1000.0;
const COLUMNS: usize = 250;
/// The blocks that need a look (failed, overlapping, held back, late) listed under a group.
const ATTENTION_ROWS: usize = 10;

/// The page's style: one class a state, and a colour a level and resolution for the blocks
/// that are fine (light to dark with the level; green raw, blue 5m, purple 1h).
pub const STYLE: &str = concat!(
    "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}",
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}.held_back{background:#fff8e1}",
    ".failed,.overlap{background:#ffebee}.covered{color:#555}form input,form select{margin-right:.6em}",
    "svg text{font-size:11px;fill:#333}section{margin-bottom:1.2em}h3{margin:.3em 0}",
    ".sfailed{fill:#c62828}.soverlap{fill:#6a1b9a;stroke:#000}.sheld_back{fill:#f9a825}.slate{fill:#ef6c00}",
    ".sin_flight{fill:#1565c0;fill-opacity:.55;stroke:#0d47a1}.smarked{fill:#fff;stroke:#757575;stroke-dasharray:3 2}.scovered{fill:#bdbdbd}.splanned{fill:#1565c0}.sfiltered,.sskipped{fill:#eee;stroke:#bbb}",
    ".r0l1{fill:#a5d6a7}.r0l2{fill:#66bb6a}.r0l3{fill:#388e3c}.r0l4{fill:#1b5e20}",
    ".r1l1{fill:#90caf9}.r1l2{fill:#42a5f5}.r1l3{fill:#1e88e5}.r1l4{fill:#0d47a1}",
    ".r2l1{fill:#ce93d8}.r2l2{fill:#ab47bc}.r2l3{fill:#8e24aa}.r2l4{fill:#4a148c}",
    "rect{stroke:#fff;stroke-width:.5}"
);

/// How much a state asks for attention: a column takes the colour of its worst block.
fn severity(state: &str) -> u8 {
    match state {
        "overlap" => 9,
        "failed" => 8,
        "held_back" => 7,
        "late" => 6,
        "planned" => 5,
        "covered" => 2,
        "filtered" | "skipped" => 1,
        _ => 3,
    }
}

/// The CSS class of a bar: its state's, or for a block that is fine, its level and resolution's.
fn class(bar: &Bar) -> String {
    match bar.state {
        "replicated" | "already_replicated" | "visible" => {
            let resolution = match bar.resolution {
                0 => 0,
                r if r <= 300_000 => 1,
                _ => 2,
            };
            format!("r{resolution}l{}", bar.level.unwrap_or(1).clamp(1, 4))
        }
        state => format!("s{state}"),
    }
}

/// One lane of bars over [start, end), at height `y`.
fn lane(svg: &mut String, bars: &[&Bar], (start, end): (i64, i64), y: u32) {
    // In floating point: a meta.json's times may be anything, and no difference may overflow.
    let span = (end as f64 - start as f64).max(1.0);
    let x_of = |t: i64| ((t as f64 - start as f64) / span * WIDTH).clamp(0.0, WIDTH);
    if bars.len() <= DRAWN_ONE_BY_ONE {
        for bar in bars {
            let (x, right) = (x_of(bar.min_time), x_of(bar.max_time));
            let _ = write!(
                svg,
                r#"<a href="{7}"><rect x="{x:.1}" y="{y}" width="{w:.1}" height="20" class="{1}"><title>{0} {2} [{3}, {4}) level {5} {6}</title></rect></a>"#,
                escape(&bar.block),
                class(bar),
                bar.state,
                when(Some(bar.min_time)),
                when(Some(bar.max_time)),
                bar.level.map_or("?".into(), |l| l.to_string()),
                escape(&bar.detail),
                escape(&block_href(&bar.block)),
                w = (right - x).max(1.0),
            );
        }
        return;
    }
    // Each column takes the worst of the bars it meets.
    let mut columns: Vec<Option<&Bar>> = vec![None; COLUMNS];
    let per = WIDTH / COLUMNS as f64;
    for bar in bars {
        let first = (x_of(bar.min_time) / per).floor() as usize;
        let last = ((x_of(bar.max_time) / per).ceil() as usize).max(first + 1).min(COLUMNS);
        for column in &mut columns[first.min(COLUMNS - 1)..last] {
            let worse = column.is_none_or(|c| (severity(bar.state), bar.level) > (severity(c.state), c.level));
            if worse {
                *column = Some(bar);
            }
        }
    }
    for (i, bar) in columns.iter().enumerate() {
        if let Some(bar) = bar {
            let _ = write!(
                svg,
                r#"<rect x="{:.0}" y="{y}" width="{per:.0}" height="20" class="{}"/>"#,
                i as f64 * per,
                class(bar)
            );
        }
    }
}

/// A group's two lanes on its time axis, and the blocks in flight drawn over the source's.
fn lanes(shown: &Shown<'_>, in_flight: &[&Bar]) -> String {
    let Some(span) = shown.span() else { return String::new() };
    let mut svg = format!(
        r#"<svg viewBox="-60 0 {} 62" width="{}" height="62" role="img" aria-label="time line"><text x="-58" y="15">source</text><text x="-58" y="39">target</text>"#,
        WIDTH + 60.0,
        WIDTH + 60.0
    );
    lane(&mut svg, &shown.source, span, 2);
    lane(&mut svg, in_flight, span, 2);
    lane(&mut svg, &shown.target, span, 26);
    let _ = write!(
        svg,
        r#"<text x="0" y="59">{}</text><text x="{WIDTH}" y="59" text-anchor="end">{}</text></svg>"#,
        when(Some(span.0)),
        when(Some(span.1))
    );
    svg
}

/// The filter form, filled in with the query.
fn form(query: &Query) -> String {
    let value = |v: &str| escape(v);
    let time = |t: Option<i64>| t.map(|t| t.to_string()).unwrap_or_default();
    let mut states = String::from(r#"<option value="">any state</option>"#);
    for state in [
        "replicated",
        "already_replicated",
        "covered",
        "late",
        "failed",
        "overlap",
        "held_back",
        "planned",
        "filtered",
        "skipped",
        "visible",
        "marked",
    ] {
        let selected = if query.state == state { " selected" } else { "" };
        let _ = write!(states, r#"<option value="{state}"{selected}>{state}</option>"#);
    }
    format!(
        concat!(
            r#"<form method="get" action="/"><input name="labels" size="30" placeholder='labels: cluster="eu1"' value="{}">"#,
            r#"<input name="ulid" size="28" placeholder="ULID" value="{}"><select name="state">{}</select>"#,
            r#"<input name="from" size="14" placeholder="from (2024-01-31)" value="{}"><input name="to" size="14" placeholder="to" value="{}">"#,
            r#"<input type="hidden" name="group" value="{}"><button type="submit">filter</button> <a href="/">clear</a></form>"#
        ),
        value(&query.labels),
        value(&query.ulid),
        states,
        time(query.from),
        time(query.to),
        value(&query.group),
    )
}

/// The groups section of `/`: the form, a page of groups, and links to the other pages;
/// `in_flight`: the run in progress's blocks, by group.
pub fn groups(
    snapshot: &Snapshot,
    query: &Query,
    group_label: Option<&str>,
    in_flight: &BTreeMap<String, Vec<Bar>>,
) -> String {
    let mut html = String::from("<h2>Compaction groups: the source and the target, as the last run left them</h2>");
    html.push_str(&form(query));
    let (shown, total) = query.page_of(query.groups(snapshot));
    let _ = write!(
        html,
        r#"<p id="groups-shown">{total} groups{}; page {} of {}. Colours: green raw, blue 5m, purple 1h, darker with the compaction level; red failed, purple outlined overlap refused, amber held back, orange late, grey covered, translucent blue in flight now; a dashed outline: marked for deletion in the target. <a href="{}">these blocks as a table</a>, <a href="{}">as JSON</a></p>"#,
        if query.labels.is_empty() && !query_narrows(query) { "" } else { " match" },
        query.page,
        total.div_ceil(query.per_page).max(1),
        escape(&query.url("/blocks", &[("page", String::new())])),
        escape(&query.url("/api/v1/groups", &[])),
    );
    for shown in &shown {
        let group = shown.group;
        let flying: Vec<&Bar> = in_flight
            .get(&group.key)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|b| query.selects_bar(b))
            .collect();
        let counts: Vec<String> = group.counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let _ = write!(
            html,
            r#"<section class="group"><h3>group {} <small>{}</small></h3><p>commit frontier (newest minTime committed): {}; source: {}; target: {} visible; backlog {} blocks, {} bytes; largest lag of the run {}; in flight now {}. <a href="{}">blocks</a></p>{}"#,
            escape(&group.key),
            escape(&shown.title(group_label)),
            when(group.frontier),
            if counts.is_empty() { "no block".into() } else { counts.join(", ") },
            group.target.len(),
            group.pending_blocks,
            group.pending_bytes,
            group.max_lag_seconds.map_or_else(|| "-".into(), |s| format!("{s:.1} s")),
            flying.len(),
            escape(&query.url("/blocks", &[("group", group.key.clone()), ("page", String::new())])),
            lanes(shown, &flying),
        );
        let attention: Vec<&&Bar> =
            shown.source.iter().filter(|b| severity(b.state) >= 6).take(ATTENTION_ROWS).collect();
        if !attention.is_empty() {
            html.push_str("<table><tr><th>block</th><th>min time</th><th>max time</th><th>state</th><th>why</th></tr>");
            for bar in attention {
                block_row(&mut html, bar, None);
            }
            html.push_str("</table>");
        }
        html.push_str("</section>");
    }
    pages(&mut html, query, total, "/");
    html
}

fn query_narrows(query: &Query) -> bool {
    query.narrows_blocks() || !query.group.is_empty()
}

fn block_row(html: &mut String, bar: &Bar, group: Option<&str>) {
    let group = group.map(|g| format!("<td>{}</td><td>{:?}</td>", escape(g), bar.side)).unwrap_or_default();
    let _ = write!(
        html,
        r#"<tr class="{0}">{1}<td><a href="{6}">{2}</a></td><td>{3}</td><td>{4}</td><td>{0}</td><td>{5}</td></tr>"#,
        bar.state,
        group,
        escape(&bar.block),
        when(Some(bar.min_time)),
        when(Some(bar.max_time)),
        escape(&bar.detail),
        escape(&block_href(&bar.block)),
    );
}

/// Links to the previous and the next page.
fn pages(html: &mut String, query: &Query, total: usize, path: &str) {
    let last = total.div_ceil(query.per_page).max(1);
    html.push_str("<p>");
    if query.page > 1 {
        let _ = write!(
            html,
            r#"<a href="{}">previous page</a> "#,
            escape(&query.url(path, &[("page", (query.page - 1).to_string())]))
        );
    }
    if query.page < last {
        let _ = write!(
            html,
            r#"<a href="{}">next page</a>"#,
            escape(&query.url(path, &[("page", (query.page + 1).to_string())]))
        );
    }
    html.push_str("</p>");
}

/// The blocks the query selects, both lanes, as a paged table: `/blocks`.
pub fn blocks(snapshot: &Snapshot, query: &Query) -> String {
    let mut html = head("bucketflow: blocks");
    html.push_str(r#"<p><a href="/">back to the groups</a></p>"#);
    html.push_str(&form(query).replace(r#"action="/""#, r#"action="/blocks""#));
    let bars = query.groups(snapshot).flat_map(|s| {
        let key = s.group.key.as_str();
        s.source.into_iter().chain(s.target).map(move |b| (key, b))
    });
    let (page, total) = query.page_of(bars);
    let _ = write!(html, r#"<p id="blocks-shown">{total} blocks; page {}</p>"#, query.page);
    html.push_str("<table><tr><th>group</th><th>bucket</th><th>block</th><th>min time</th><th>max time</th><th>state</th><th>why</th></tr>");
    for (group, bar) in page {
        block_row(&mut html, bar, Some(group));
    }
    html.push_str("</table>");
    pages(&mut html, query, total, "/blocks");
    html.push_str("</body></html>");
    html
}

/// What `/blocks/<block>` shows of one side: its meta.json and objects, as read now.
pub struct Read {
    pub side: Side,
    pub meta: Result<Option<String>, String>,
    pub objects: Result<Vec<(String, u64)>, String>,
}

/// One block's page: what the last run did with it, and its meta.json and objects in both
/// buckets, read when the page is asked for.
pub fn block(dir: &str, snapshot: &Snapshot, reads: &[Read]) -> String {
    let mut html = head(&format!("bucketflow: {dir}"));
    let _ = write!(html, r#"<p><a href="/">back to the groups</a></p><h2>block {}</h2>"#, escape(dir));
    let found = snapshot.find(dir);
    if found.is_empty() {
        html.push_str("<p>Not in the last run's view of either bucket.</p>");
    }
    for (group, bar) in found {
        let _ = write!(
            html,
            "<p>{:?}: group {} ({}), [{}, {}), level {}, state <b>{}</b> {}</p>",
            bar.side,
            escape(&group.key),
            escape(&Shown { group, source: Vec::new(), target: Vec::new() }.title(None)),
            when(Some(bar.min_time)),
            when(Some(bar.max_time)),
            bar.level.map_or("?".into(), |l| l.to_string()),
            bar.state,
            escape(&bar.detail)
        );
    }
    for read in reads {
        let _ = write!(html, "<h3>{:?}: meta.json</h3>", read.side);
        match &read.meta {
            Ok(Some(meta)) => {
                let _ = write!(html, "<pre>{}</pre>", escape(meta));
            }
            Ok(None) => html.push_str("<p>none</p>"),
            Err(error) => {
                let _ = write!(html, "<p>could not be read: {}</p>", escape(error));
            }
        }
        let _ = write!(html, "<h3>{:?}: objects</h3>", read.side);
        match &read.objects {
            Ok(objects) => {
                html.push_str("<table><tr><th>object</th><th>bytes</th></tr>");
                for (path, size) in objects {
                    let _ = write!(html, "<tr><td>{}</td><td>{size}</td></tr>", escape(path));
                }
                html.push_str("</table>");
            }
            Err(error) => {
                let _ = write!(html, "<p>could not be listed: {}</p>", escape(error));
            }
        }
    }
    html.push_str("</body></html>");
    html
}

/// A page's head, with the style, and its title.
pub fn head(title: &str) -> String {
    format!(
        r#"<!DOCTYPE html><html><head><meta charset="utf-8"><title>{}</title><style>{STYLE}</style></head><body>"#,
        escape(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(min_time: i64, max_time: i64, state: &'static str) -> Bar {
        Bar {
            side: Side::Source,
            block: "01HF8C28G0N8Z4R7CBP4ACHFGZ".into(),
            min_time,
            max_time,
            level: Some(9),
            resolution: 0,
            state,
            detail: "<script>".into(),
        }
    }

    /// A meta.json's times may be anything (promise 6): no lane panics on them, one by one or
    /// in columns, and what a block says is escaped.
    #[test]
    fn odd_times_draw_without_panic_and_text_is_escaped() {
        let odd = [bar(i64::MIN, i64::MAX, "failed"), bar(10, 5, "replicated"), bar(7, 7, "late")];
        for count in [3, DRAWN_ONE_BY_ONE + 1] {
            let bars: Vec<&Bar> = odd.iter().cycle().take(count).collect();
            let mut svg = String::new();
            lane(&mut svg, &bars, (i64::MIN, i64::MAX), 2);
            assert!(svg.contains("<rect") && !svg.contains("<script>"), "{svg}");
        }
    }
}
