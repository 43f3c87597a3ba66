//! The block viewer at `/`, in a real headless Chromium (Debian's `chromium`), on a sidecar whose
//! buckets hold a held-back group, an overlap refused, a covered range and a late block; and its
//! filters, by a label and by a ULID, read back from the DOM Chromium built.
//!
//! `BUCKETFLOW_VIEWER_SCREENSHOTS=DIR` also saves the pages as PNG in DIR (how `docs/viewer.png`
//! and `docs/viewer-filtered.png` are made).

mod support;

use std::path::Path;

use bucketflow_dataflows::testkit::synth::{blocks, BlockShape, SynthBlock, SynthSpec};
use support::browser;
use support::buckets::write_folder;
use support::process::kill;
use support::servers::installed_tool;
use support::sidecar::{http_get, sidecar_after_one_run};

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_700_000_000_000;

fn shape(cluster: &str, from: i64, to: i64, seed: u64) -> BlockShape {
    BlockShape::new(&[("cluster", cluster)], T0 + from * HOUR, T0 + to * HOUR, seed)
}

/// What the buckets hold, by role.
struct Scene {
    failed: SynthBlock,
    held_back: SynthBlock,
    overlapping: SynthBlock,
    covered: Vec<SynthBlock>,
    covering: SynthBlock,
    late: SynthBlock,
    late_behind: SynthBlock,
}

/// Source and target folders under `dir`: cluster eu1 has a broken block and one held back
/// behind it; us1 a block overlapping a target block, and two blocks the target compacted
/// already; ap1 a block older than the target's newest of its group.
fn scene(dir: &Path) -> Scene {
    let spec = SynthSpec::default();
    let eu1 = blocks(vec![shape("eu1", 0, 2, 1), shape("eu1", 2, 4, 2), shape("eu1", 4, 6, 3)], &spec);
    let us1 = blocks(vec![shape("us1", 2, 6, 11), shape("us1", 8, 10, 12), shape("us1", 10, 12, 13)], &spec);
    let us1_target =
        blocks(vec![shape("us1", 0, 4, 14), shape("us1", 8, 12, 15).compacted_from(&[&us1[1], &us1[2]], 2)], &spec);
    let ap1 = blocks(vec![shape("ap1", 0, 2, 21)], &spec);
    let ap1_target = blocks(vec![shape("ap1", 6, 8, 22)], &spec);
    let (source, target) = (dir.join("src"), dir.join("dst"));
    write_folder(&source, &[eu1.clone(), us1.clone(), ap1.clone()].concat());
    write_folder(&target, &[us1_target.clone(), ap1_target.clone()].concat());
    // The index is not the size meta.json lists: the block fails, and holds back the next.
    std::fs::write(source.join(&eu1[1].dir).join("index"), b"not the listed size").unwrap();
    Scene {
        failed: eu1[1].clone(),
        held_back: eu1[2].clone(),
        overlapping: us1[0].clone(),
        covered: us1[1..].to_vec(),
        covering: us1_target[1].clone(),
        late: ap1[0].clone(),
        late_behind: ap1_target[0].clone(),
    }
}

/// The DOM Chromium builds from `url`, and a screenshot of it when asked for.
fn dom(chromium: &Path, url: &str, screenshot: Option<&str>) -> String {
    if let (Some(name), Ok(dir)) = (screenshot, std::env::var("BUCKETFLOW_VIEWER_SCREENSHOTS")) {
        let path = Path::new(&dir).join(name);
        browser::headless(
            chromium,
            url,
            &[format!("--screenshot={}", path.display()), "--window-size=1200,1000".into()],
        );
    }
    browser::dom(chromium, url)
}

#[test]
fn the_viewer_shows_each_kind_of_block_and_its_filters_narrow_it() {
    let Some(chromium) = installed_tool("chromium", &["--headless", "--no-sandbox", "--version"]) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let scene = scene(tmp.path());
    let (mut child, _lines, address) = sidecar_after_one_run(tmp.path(), &["--web.group-label", "cluster"]);

    let page = dom(&chromium, &format!("http://{address}/"), Some("viewer.png"));
    assert!(page.contains("</html>"), "{page}");
    for cluster in ["eu1", "us1", "ap1"] {
        assert!(page.contains(&format!("cluster=\"{cluster}\"")), "a group titled by its cluster {cluster}");
    }
    let (failed, held) = (&scene.failed.dir, &scene.held_back.dir);
    assert!(page.contains("<tr class=\"held_back\">") && page.contains(held), "the held-back block");
    assert!(page.contains(&format!("behind {failed}")), "what it waits for");
    assert!(page.contains("backlog 2 blocks"), "eu1's backlog: the failed block and the one held back");
    assert!(page.contains("<tr class=\"overlap\">") && page.contains(&scene.overlapping.dir), "the overlap");
    for covered in &scene.covered {
        let title = format!("{} covered", covered.dir);
        assert!(page.contains(&title) && page.contains(&format!("covered by {}", scene.covering.dir)), "{title}");
    }
    assert!(page.contains(&format!("late: behind {}", scene.late_behind.dir)) && page.contains(&scene.late.dir));
    assert!(page.contains(&format!("href=\"/blocks/{}\"", scene.covering.dir)), "the target's lane links its blocks");

    // A label narrows the groups; a ULID narrows the blocks.
    let by_label =
        dom(&chromium, &format!("http://{address}/?labels=cluster%3D%22eu1%22"), Some("viewer-filtered.png"));
    assert!(by_label.contains("cluster=\"eu1\"") && !by_label.contains("cluster=\"us1\""), "{by_label}");
    assert!(by_label.contains("1 groups match"), "{by_label}");
    let by_ulid = dom(&chromium, &format!("http://{address}/?ulid={}", scene.late.dir.to_lowercase()), None);
    assert!(by_ulid.contains(&scene.late.dir) && !by_ulid.contains(held) && !by_ulid.contains(failed), "{by_ulid}");

    // One click away: a block's page reads its meta.json from both buckets.
    let block = dom(&chromium, &format!("http://{address}/blocks/{}", scene.covering.dir), None);
    assert!(block.contains("Target: meta.json") && block.contains(&scene.covered[0].dir), "{block}");

    // The JSON under /api/v1/ answers the same filters, paged.
    let (status, groups) = http_get(&address, "/api/v1/groups?labels=cluster%3D~%22(eu1%7Cap1)%22&per_page=1");
    assert_eq!(status, 200, "{groups}");
    let groups: serde_json::Value = serde_json::from_str(&groups).unwrap();
    assert_eq!((groups["total"].as_u64(), groups["groups"].as_array().unwrap().len()), (Some(2), 1), "{groups}");
    let (_, blocks) = http_get(&address, "/api/v1/blocks?state=held_back");
    let blocks: serde_json::Value = serde_json::from_str(&blocks).unwrap();
    assert_eq!(blocks["blocks"][0]["block"], held.as_str(), "{blocks}");
    assert_eq!(blocks["blocks"][0]["detail"], format!("behind {failed}"), "{blocks}");
    let (status, error) = http_get(&address, "/api/v1/blocks?from=yesterday");
    assert!(status == 400 && error.contains("from"), "{status} {error}");
    kill(&child, "-TERM");
    child.wait().unwrap();
}

/// While a run copies (slowed by --bwlimit), the page draws the blocks in flight over their
/// groups' source lanes, and the JSON counts them; between runs there are none.
#[test]
fn the_blocks_in_flight_are_drawn_while_a_run_copies() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = SynthSpec {
        max_chunk_files: 1,
        min_chunk_bytes: 64 * 1024,
        max_chunk_bytes: 64 * 1024,
        ..SynthSpec::default()
    };
    let first = blocks(vec![shape("eu1", 0, 2, 1)], &SynthSpec::default());
    write_folder(&tmp.path().join("src"), &first);
    // A first run replicates one small block, so that the group is on the page.
    let (mut child, lines, address) = sidecar_after_one_run(tmp.path(), &["--interval", "2s", "--bwlimit", "64KiB/s"]);
    let slow = blocks(vec![shape("eu1", 2, 4, 2), shape("eu1", 4, 6, 3)], &spec);
    write_folder(&tmp.path().join("src"), &slow);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let flying = loop {
        let (_, json) = http_get(&address, "/api/v1/groups");
        let groups: serde_json::Value = serde_json::from_str(&json).unwrap();
        let flying = groups["groups"][0]["in_flight"].as_u64().unwrap_or_default();
        if flying > 0 {
            break flying;
        }
        assert!(std::time::Instant::now() < deadline, "no block in flight: {groups}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(flying <= 2);
    let (_, page) = http_get(&address, "/");
    assert!(page.contains("class=\"sin_flight\"") && page.contains("being copied or committed"), "{page}");
    // Once the run has copied them, none is in flight (the lines stay open for the process).
    let in_flight = || {
        let (_, json) = http_get(&address, "/api/v1/groups");
        let groups: serde_json::Value = serde_json::from_str(&json).unwrap();
        groups["groups"][0]["in_flight"].as_u64().unwrap_or_default()
    };
    while in_flight() > 0 {
        assert!(std::time::Instant::now() < deadline, "blocks stay in flight");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(lines);
    kill(&child, "-TERM");
    child.wait().unwrap();
}
