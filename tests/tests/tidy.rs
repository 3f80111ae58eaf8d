//! The repository's own rules, checked as tests: every source file says what it is for, every
//! coverage mark the xtask hits is checked by a test (and the reverse), and the recipes (just,
//! make, cargo-make) all call the xtask the same way.

use std::{collections::BTreeSet, fs, path::Path, process::Command};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn every_source_file_opens_with_a_doc_comment() {
    let mut files = Vec::new();
    for dir in ["xtask/src", "xtask/tilt-log/src", "tests/src", "tests/tests"] {
        rust_files(&Path::new(ROOT).join(dir), &mut files);
    }
    assert!(files.len() > 10);
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("//!"), "{} must open with a `//!` line saying what it is for", file.display());
    }
}

/// The marks named by `cov_mark::MACRO!(name…)` in `text` (`check_count!` names its mark first).
fn marks(text: &str, r#macro: &str) -> Vec<String> {
    let opening = format!("cov_mark::{macro}!(");
    text.match_indices(&opening)
        .map(|(at, _)| {
            let rest = &text[at + opening.len()..];
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .collect()
}

/// rust-analyzer's `TidyMarks`: a mark hit and never checked ties no test to its branch; a mark
/// checked and never hit is a test whose branch is gone (cov-mark would fail it, but only when
/// it runs).
#[test]
fn every_coverage_mark_is_hit_and_checked() {
    let mut files = Vec::new();
    for dir in ["xtask/src", "xtask/tilt-log/src"] {
        rust_files(&Path::new(ROOT).join(dir), &mut files);
    }
    let (mut hit, mut checked) = (BTreeSet::new(), BTreeSet::new());
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        hit.extend(marks(&text, "hit"));
        checked.extend(marks(&text, "check").into_iter().chain(marks(&text, "check_count")));
    }
    assert!(hit.len() > 10, "marks found: {hit:?}");
    let unchecked: Vec<&String> = hit.difference(&checked).collect();
    let unhit: Vec<&String> = checked.difference(&hit).collect();
    assert!(
        unchecked.is_empty() && unhit.is_empty(),
        "hit and never checked (add `cov_mark::check!(name)` to the test of that branch): {unchecked:?}; \
         checked and never hit (the branch is gone, or its `hit!` is): {unhit:?}"
    );
}

const RECIPES: [(&str, &str); 3] =
    [("sync", "cargo xtask sync"), ("sync-plan", "cargo xtask sync --plan"), ("sync-all", "cargo xtask sync --all")];

#[test]
fn make_recipes_call_the_xtask() {
    for (recipe, command) in RECIPES {
        let output = Command::new("make").args(["--dry-run", "--directory", ROOT, recipe]).output().unwrap();
        assert!(output.status.success(), "make {recipe}: {}", String::from_utf8_lossy(&output.stderr));
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(printed.lines().any(|line| line.trim() == command), "make {recipe} runs `{printed}`");
    }
}

#[test]
fn just_recipes_call_the_xtask() {
    let justfile = fs::read_to_string(Path::new(ROOT).join("justfile")).unwrap();
    for (recipe, command) in RECIPES {
        let body =
            justfile.split(&format!("\n{recipe} *ARGS:\n")).nth(1).unwrap_or_else(|| panic!("no `{recipe}` recipe"));
        let first = body.lines().next().unwrap().trim();
        assert_eq!(first, format!("{command} {{{{ARGS}}}}"), "just {recipe}");
    }
}

#[test]
fn cargo_make_tasks_call_the_xtask() {
    let text = fs::read_to_string(Path::new(ROOT).join("Makefile.toml")).unwrap();
    let tasks: toml::Table = toml::from_str(&text).unwrap();
    for (recipe, command) in RECIPES {
        let task = &tasks["tasks"][recipe];
        let args: Vec<&str> = task["args"].as_array().unwrap().iter().map(|arg| arg.as_str().unwrap()).collect();
        let line = format!("{} {}", task["command"].as_str().unwrap(), args.join(" "));
        assert_eq!(line, format!("{command} ${{@}}"), "cargo make {recipe}");
    }
}
