//! The repository's own rules, checked as tests: every source file says what it is for, every
//! coverage mark the xtask hits is checked by a test (and the reverse), the README documents the
//! status document's fields as the type spells them, and the recipes (just, make, cargo-make) all
//! call the xtask the same way.

use std::{collections::BTreeSet, fs, path::Path, process::Command};

use sync_tests::status::{ErrorReport, ErrorStatus, Location, Outcome, RunStatus, StepStatus, SyncStatus};

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

/// The README's `--json` paragraph and its table of the fields that stay.
fn readme_json_section() -> String {
    let readme = fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let start = readme.find("- `--json` prints one JSON object").expect("the README's `--json` paragraph");
    let end = start + readme[start..].find("The exit status says the same").expect("the end of the `--json` paragraph");
    readme[start..end].to_owned()
}

/// The words inside backticks: `steps[].name` gives `steps` and `name`, `{path, line}` both.
fn quoted_words(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .flat_map(|quoted| quoted.split(|c: char| !(c.is_ascii_lowercase() || c == '_' || c == '-')))
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every key of a JSON value, at any depth.
fn keys(value: &serde_json::Value, found: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                found.insert(key.clone());
                keys(inner, found);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| keys(item, found)),
        _ => {}
    }
}

/// The README says what agents read of `sync --json` and `logs/sync-status.json`: every field
/// and word the type writes is named there, and every field its table promises is one the type
/// writes. (The type's own test pins the spelling; this keeps the README in step with it.)
#[test]
fn the_readme_names_every_field_of_the_status_document() {
    let step = StepStatus {
        name: "server".to_owned(),
        resource: "server".to_owned(),
        outcome: Outcome::Failed,
        duration_ms: 1,
        started_at: None,
        decided_at: None,
        remediations: Vec::new(),
        deciding_line: None,
        cause: None,
        log: None,
        build: None,
        location: Some(Location { path: "src/main.rs".to_owned(), line: 1, column: None }),
    };
    let document = SyncStatus {
        status: RunStatus::Failed,
        cpu_ms: None,
        took_ms: None,
        finished_at: time::OffsetDateTime::UNIX_EPOCH,
        message: None,
        failed_step: None,
        error_log: None,
        log_error: None,
        steps: vec![step],
    };
    let error = ErrorReport { status: ErrorStatus::Error, message: String::new(), exit_code: 2 };
    let mut written = BTreeSet::new();
    keys(&serde_json::to_value(&document).unwrap(), &mut written);
    keys(&serde_json::to_value(&error).unwrap(), &mut written);
    let words = [
        serde_json::to_value([Outcome::Ok, Outcome::Failed, Outcome::Timeout, Outcome::Interrupted]).unwrap(),
        serde_json::to_value([Outcome::Uncertain, Outcome::Skipped, Outcome::NotRun]).unwrap(),
        serde_json::to_value([RunStatus::Success, RunStatus::Failed, RunStatus::Interrupted]).unwrap(),
        serde_json::to_value([ErrorStatus::Error, ErrorStatus::Interrupted]).unwrap(),
    ];
    let words: Vec<String> = words
        .iter()
        .flat_map(|list| list.as_array().unwrap().clone())
        .map(|word| word.as_str().unwrap().to_owned())
        .collect();

    let section = readme_json_section();
    let named = quoted_words(&section);
    let unnamed: Vec<&String> = written.iter().chain(&words).filter(|word| !named.contains(*word)).collect();
    assert!(unnamed.is_empty(), "the README's `--json` paragraph does not name {unnamed:?}");

    // The table's first column: `| `status` |`, `| `steps[].name`, `steps[].outcome` |`.
    let promised: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.trim().strip_prefix('|')?.split('|').next())
        .flat_map(|cell| quoted_words(cell).into_iter().collect::<Vec<_>>())
        .collect();
    assert!(promised.len() >= 8, "the README's table of fields: {promised:?}");
    let missing: Vec<&String> = promised.iter().filter(|field| !written.contains(*field)).collect();
    assert!(missing.is_empty(), "the README promises fields the status document does not have: {missing:?}");
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
