//! Proof on Citadel's real history: for each hand-labelled commit pair of
//! `tests/fixtures/history/pairs.toml`, `sync --plan --json --base BASE` with HEAD checked out, in
//! one clone of `../shared/citadel/citadel-workspace.bundle` (its submodules' commits absent, as
//! in any clone made without `--recursive`). No needed step may be skipped, and at most one pair
//! in ten may run a step nothing needed. Without the bundle, the test says it was skipped, and why.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize;
use sync_tests::*;

#[derive(Deserialize)]
struct Pairs {
    pair: Vec<Pair>,
}

#[derive(Deserialize)]
struct Pair {
    base: String,
    head: String,
    steps: Vec<String>,
    why: String,
}

/// Where the bundle is: beside this repository's checkout (`../shared`, as CI has it), or the
/// shared folder of the machine the team works on.
fn bundle() -> Option<PathBuf> {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/citadel/citadel-workspace.bundle");
    [beside, PathBuf::from("/work/shared/citadel/citadel-workspace.bundle")].into_iter().find(|path| path.is_file())
}

/// What `--plan --json` says runs, and the whole plan for the failure message.
fn plan(clone: &Path, base: &str) -> (BTreeSet<String>, String) {
    let output = Command::new(xtask_bin())
        .args(["sync", "--plan", "--json", "--base", base, "--root"])
        .arg(clone)
        .output()
        .expect("running xtask sync --plan");
    let run = Run::from(output);
    run.assert_code(0);
    let steps = run.json()["steps"]
        .as_array()
        .expect("a plan lists its steps")
        .iter()
        .filter(|step| step["run"] == true)
        .map(|step| step["name"].as_str().expect("a step's name").to_owned())
        .collect();
    (steps, run.stdout)
}

#[test]
fn the_plan_needs_no_more_and_no_less_than_citadels_history_did() {
    let Some(bundle) = bundle() else {
        eprintln!(
            "skipped: no ../shared/citadel/citadel-workspace.bundle beside this checkout (nor in /work/shared): \
             the history test needs Citadel's real history"
        );
        return;
    };
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/history/pairs.toml"))
        .expect("reading tests/fixtures/history/pairs.toml");
    let pairs: Pairs = toml::from_str(&text).expect("pairs.toml");
    assert!(pairs.pair.len() >= 30, "at least 30 pairs");
    let heads: Vec<&str> = pairs.pair.iter().map(|pair| pair.head.as_str()).collect();
    for named in ["60b0b60", "98f3f3c", "90b604a", "2222bbb"] {
        assert!(heads.contains(&named), "the issue's {named} is a pair");
    }

    let temp = TempDir::new().expect("a temporary directory");
    let clone = temp.path().join("citadel");
    git(temp.path(), &["clone", "--quiet", "--no-checkout", bundle.to_str().expect("UTF-8 path"), "citadel"]);
    git(&clone, &["config", "advice.detachedHead", "false"]);

    let (mut skipped, mut over) = (Vec::new(), Vec::new());
    for pair in &pairs.pair {
        git(&clone, &["checkout", "--quiet", "--force", "--detach", &pair.head]);
        let (planned, json) = plan(&clone, &pair.base);
        let needed: BTreeSet<String> = pair.steps.iter().cloned().collect();
        let missing: Vec<&String> = needed.difference(&planned).collect();
        let extra: Vec<&String> = planned.difference(&needed).collect();
        let line = format!("{}..{}: needs {needed:?}, plan runs {planned:?} ({})", pair.base, pair.head, pair.why);
        eprintln!("{line}");
        if !missing.is_empty() {
            skipped.push(format!("{line}\n  skipped {missing:?}\n{json}"));
        }
        if !extra.is_empty() {
            over.push(format!("{line}\n  also runs {extra:?}"));
        }
    }
    eprintln!(
        "{} pairs: {} skip a needed step, {} run a step nothing needed",
        pairs.pair.len(),
        skipped.len(),
        over.len()
    );
    assert!(skipped.is_empty(), "needed steps skipped:\n{}", skipped.join("\n"));
    assert!(over.len() * 10 <= pairs.pair.len(), "over-building in more than 1 pair in 10:\n{}", over.join("\n"));
}
