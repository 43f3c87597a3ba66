//! The flags reference, `docs/flags.md`, is made from the binary's own help (clap's definitions,
//! every subcommand), so that it cannot drift: this test fails when the committed reference
//! differs from what the binary says. `BUCKETFLOW_UPDATE_FLAGS=1 cargo test --test
//! flags_reference` writes it anew.

mod support;

use std::path::Path;
use std::process::Command;

use support::process::BIN;

/// The subcommands the reference covers, in its order (the hidden `bench-run` is left out).
const SUBCOMMANDS: [&str; 4] = ["replicate", "gen", "bench", "verify"];

fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?} --help: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim_end().to_string()
}

/// The reference as the binary says it now.
fn reference() -> String {
    let mut page = String::from(
        "# Flags reference\n\n\
         Made from `bucketflow --help` and each subcommand's `--help`; `tests/flags_reference.rs` \
         fails when this file differs from what the binary says. Regenerate it with \
         `BUCKETFLOW_UPDATE_FLAGS=1 cargo test --test flags_reference`.\n\n",
    );
    page.push_str(&format!("## bucketflow\n\n```text\n{}\n```\n", help(&[])));
    for sub in SUBCOMMANDS {
        page.push_str(&format!("\n## bucketflow {sub}\n\n```text\n{}\n```\n", help(&[sub])));
    }
    page
}

#[test]
fn the_flags_reference_is_what_the_binary_says() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/flags.md");
    let now = reference();
    if std::env::var_os("BUCKETFLOW_UPDATE_FLAGS").is_some() {
        std::fs::write(&path, &now).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != now {
        let line = committed.lines().zip(now.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1);
        panic!(
            "docs/flags.md differs from the binary's help (first at line {line}): run \
             `BUCKETFLOW_UPDATE_FLAGS=1 cargo test --test flags_reference` and commit it"
        );
    }
}

#[test]
fn replicate_help_groups_its_flags_and_ends_with_examples() {
    let replicate = help(&["replicate"]);
    for heading in [
        "Buckets:",
        "Selection:",
        "The target compactor:",
        "Copying:",
        "Runs, sidecar and HTTP:",
        "Cluster:",
        "Logging:",
    ] {
        assert!(replicate.lines().any(|l| l == heading), "no {heading:?} in:\n{replicate}");
    }
    assert!(replicate.contains("Examples:\n") && replicate.ends_with("--dry-run"), "{replicate}");
    for sub in SUBCOMMANDS {
        assert!(help(&[sub]).contains("\nExamples:\n"), "{sub}");
    }
}
