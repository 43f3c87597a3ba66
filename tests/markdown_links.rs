//! Every link between the repository's Markdown files resolves: a relative link names a file or
//! folder that exists, and a `#anchor` into a Markdown file names one of its headings (as GitHub
//! makes anchors of them). Links to the web are not followed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The Markdown files of the repository, build output and fetched copies aside.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !["target", ".git", "corpus", "artifacts", "logs", "node_modules"].contains(&name.as_str()) {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The targets of the inline links `[text](target)` of a Markdown text, outside code blocks.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push(after[..end].split_whitespace().next().unwrap_or_default().to_string());
            rest = &after[end..];
        }
    }
    found
}

/// The anchors GitHub makes of a Markdown text's headings: lower case, spaces to hyphens, and
/// every other character but letters, digits, `-` and `_` dropped.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim().to_lowercase();
        let slug: String = title
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        out.insert(slug);
    }
    out
}

#[test]
fn every_link_between_markdown_files_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    assert!(files.len() > 3, "the repository's Markdown files: {files:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") || link.is_empty() {
                continue;
            }
            checked += 1;
            let (path, anchor) = link.split_once('#').map_or((link.as_str(), None), |(p, a)| (p, Some(a)));
            let target = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", file.strip_prefix(root).unwrap().display()));
                continue;
            }
            if let Some(anchor) = anchor.filter(|_| target.extension().is_some_and(|e| e == "md")) {
                if !anchors(&std::fs::read_to_string(&target).unwrap()).contains(anchor) {
                    broken.push(format!("{}: {link} (no such heading)", file.strip_prefix(root).unwrap().display()));
                }
            }
        }
    }
    assert!(checked >= 5, "links checked: {checked}");
    assert_eq!(broken, Vec::<String>::new(), "broken links");
}

#[test]
fn a_broken_link_is_found() {
    let text = "# A title, with words\n[ok](#a-title-with-words) [code](x)\n```\n[not](a link)\n```\n";
    assert_eq!(links(text), ["#a-title-with-words", "x"]);
    assert!(anchors(text).contains("a-title-with-words"));
    assert!(anchors("### The re-check's freshness").contains("the-re-checks-freshness"));
}

/// The text diagram of the dataflow in the code's own doc (`dataflows/src/dataflow/mod.rs`).
fn code_picture(root: &Path) -> String {
    let code = std::fs::read_to_string(root.join("dataflows/src/dataflow/mod.rs")).unwrap();
    let doc: Vec<&str> =
        code.lines().filter_map(|l| l.strip_prefix("//!")).map(|l| l.strip_prefix(' ').unwrap_or(l)).collect();
    let start = doc.iter().position(|l| *l == "```text").expect("a text diagram in the doc") + 1;
    let end = start + doc[start..].iter().position(|l| *l == "```").unwrap();
    doc[start..end].join("\n")
}

/// The words of a text diagram: its stage names and edge labels, the runs of text between its
/// arrows and box-drawing characters, trimmed.
fn diagram_labels(picture: &str) -> BTreeSet<String> {
    picture
        .split(|c: char| ('\u{2500}'..='\u{25FF}').contains(&c))
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The contents of the `<text>` elements of an SVG, trimmed and unescaped.
fn svg_texts(svg: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = svg;
    while let Some(at) = rest.find("<text") {
        rest = &rest[at + "<text".len()..];
        if !rest.starts_with(|c: char| c == '>' || c.is_whitespace()) {
            continue; // another element, such as <textPath>
        }
        let Some(open) = rest.find('>') else { break };
        let Some(close) = rest.find("</text>") else { break };
        if close > open {
            let content = rest[open + 1..close]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&#39;", "'")
                .replace("&amp;", "&");
            out.insert(content.trim().to_string());
        }
    }
    out
}

/// The dataflow's picture in the README and the architecture page is the one in the code's own
/// doc (`dataflows/src/dataflow/mod.rs`), which `build` follows.
#[test]
fn the_dataflow_is_drawn_as_the_code_draws_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let picture = code_picture(root);
    for page in ["README.md", "docs/architecture.md"] {
        let text = std::fs::read_to_string(root.join(page)).unwrap();
        assert!(
            text.contains(&picture),
            "{page} does not draw the dataflow as dataflows/src/dataflow/mod.rs does:\n{picture}"
        );
    }
}

/// The SVG picture of the dataflow (`docs/dataflow.svg`, shown in the README) names every stage
/// and exchange of the text diagram in the code's doc, each as the whole text of an element.
#[test]
fn the_dataflow_svg_draws_every_label_of_the_text_diagram() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let labels = diagram_labels(&code_picture(root));
    for known in ["requests", "load + check target", "exchange(folder)", "mark (move mode)", "collect"] {
        assert!(labels.contains(known), "{known:?} not read from the text diagram: {labels:?}");
    }
    let texts = svg_texts(&std::fs::read_to_string(root.join("docs/dataflow.svg")).unwrap());
    let missing: Vec<&String> = labels.iter().filter(|l| !texts.contains(*l)).collect();
    assert!(missing.is_empty(), "docs/dataflow.svg has no <text> for {missing:?}; its texts: {texts:?}");
    let sample = "<text x='1'>a &amp;lt; b</text><textPath>c</textPath><text>\n d </text>";
    assert_eq!(svg_texts(sample), BTreeSet::from(["a &lt; b".to_string(), "d".to_string()]));
}
