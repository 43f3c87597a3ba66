//! The engine's shape, checked from its sources: layers whose imports only point down, and no
//! two modules that import each other, directly or through others.
//!
//! A module is a source file (`model/block.rs` is `model::block`, `dataflow/mod.rs` is
//! `dataflow`). Module A imports module B when A's code (comments and its `mod tests` aside)
//! names a path into B (`crate::model::block::...`, `super::listing::...`). A parent that names
//! its own children is only declaring them, and does not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use regex::Regex;

/// Every module of the engine by name, with its code.
fn modules() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = BTreeMap::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|last| last == "mod" || last == "lib") {
                parts.pop();
            }
            modules.insert(parts.join("::"), code_of(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    modules
}

/// A file's code without its comments and its unit tests.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The modules `name` imports, resolved against the set of modules.
fn imports(name: &str, code: &str, all: &BTreeSet<String>) -> BTreeSet<String> {
    let path = Regex::new(r"\b(crate::|(?:super::)+)((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)?").unwrap();
    let mut found = BTreeSet::new();
    for capture in path.captures_iter(code) {
        let from_root = &capture[1] == "crate::";
        let mut base: Vec<&str> = if from_root { Vec::new() } else { name.split("::").collect() };
        if !from_root {
            for _ in 0..capture[1].matches("super").count() {
                base.pop();
            }
        }
        let mut segments: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        segments
            .extend(capture.get(2).map_or("", |m| m.as_str()).split("::").filter(|s| !s.is_empty()).map(String::from));
        // The longest prefix that is a module; the rest names items inside it.
        let module = (0..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|candidate| all.contains(candidate))
            .unwrap_or_default();
        let own_child = module.starts_with(name) && (name.is_empty() || module[name.len()..].starts_with("::"));
        if module != name && !own_child {
            found.insert(module);
        }
    }
    found
}

/// The layer of a module: it may import only from its own layer and those below.
fn layer(module: &str) -> usize {
    match module.split("::").next().unwrap() {
        "model" => 0,
        "report" | "telemetry" => 1,
        "bucket" => 2,
        "dataflow" => 3,
        "testkit" => 4,
        "" => 5,
        other => panic!("module {other} is in no layer: add it to this test's list"),
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let all: BTreeSet<String> = modules.keys().cloned().collect();
    modules.iter().map(|(name, code)| (name.clone(), imports(name, code, &all))).collect()
}

#[test]
fn imports_only_point_down() {
    let mut wrong = Vec::new();
    for (module, imported) in graph() {
        for target in imported {
            if layer(&target) > layer(&module) {
                wrong.push(format!("{module} imports {target}, a layer above it"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A chain of imports that leads back to where it started, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if !done.insert(module.to_string()) {
            return None;
        }
        path.push(module.to_string());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_two_modules_import_each_other() {
    if let Some(cycle) = find_cycle(&graph()) {
        panic!("modules import each other: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_check_sees_imports_and_cycles() {
    // The checker itself must be able to fail: a made-up module importing upwards, and a pair
    // importing each other through a third, are found.
    let all: BTreeSet<String> =
        ["model::block", "bucket", "bucket::copy", "bucket::listing", "dataflow"].map(String::from).into();
    let found = imports("model::block", "use crate::bucket::copy::Copier;", &all);
    assert_eq!(found, ["bucket::copy".to_string()].into());
    assert!(layer("bucket::copy") > layer("model::block"));
    let found = imports("bucket::copy", "use super::listing::list;\nuse super::{a, b};", &all);
    assert_eq!(found, ["bucket".to_string(), "bucket::listing".to_string()].into());
    let comment = imports("bucket::copy", &code_of("// see crate::dataflow\nlet x = 1;"), &all);
    assert!(comment.is_empty(), "comments are not imports: {comment:?}");
    let edges = |pairs: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in pairs {
            graph.entry(from.to_string()).or_default().insert(to.to_string());
        }
        graph
    };
    let cycle = find_cycle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])).expect("a cycle through three");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(find_cycle(&edges(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
}
