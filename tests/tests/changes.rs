//! End-to-end: `git diff` decides the steps. Real repositories with real submodules, the real
//! binary, the Tilt stand-in.

use sync_tests::*;

/// The steps `--plan --json` says will run.
fn planned(ws: &Workspace, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--plan", "--json"];
    args.extend_from_slice(extra);
    let run = ws.sync(&args);
    run.assert_code(0);
    let plan = run.json();
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["run"] == true)
        .map(|step| step["name"].as_str().unwrap().to_owned())
        .collect()
}

fn edit(ws: &Workspace, path: &str) {
    let path = ws.root.join(path);
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    write(&path, &format!("{old}// edited\n"));
}

#[test]
fn a_types_change_runs_every_step() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-workspace-types/src/lib.rs");
    assert_eq!(planned(&ws, &[]), ["sync-wasm-client", "server", "internal-service", "ui"]);
    ws.tilt(&all_succeed(100));
    ws.sync(&[]).assert_code(0);
    assert_eq!(ws.triggers(), ["sync-wasm-client", "server", "internal-service", "ui"]);
}

#[test]
fn a_kernel_change_runs_the_server_and_the_ui() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-workspace-server-kernel/src/main.rs");
    ws.tilt(&all_succeed(100));
    let run = ws.sync(&[]);
    run.assert_code(0);
    assert_eq!(ws.triggers(), ["server", "ui"]);
    assert!(run.stdout.contains("Affected services: server, ui"), "{}", run.stdout);
}

#[test]
fn an_uncommitted_change_inside_the_internal_service_submodule_counts_under_its_full_path() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-internal-service/src/lib.rs");
    let run = ws.sync(&["--plan", "--json"]);
    assert_eq!(run.json()["changed"], serde_json::json!(["citadel-internal-service/src/lib.rs"]));
    assert_eq!(planned(&ws, &[]), ["internal-service", "ui"]);
}

#[test]
fn a_commit_inside_a_submodule_moves_its_pointer_and_counts_by_file() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-internal-service/typescript-client/package.json");
    ws.commit_all("citadel-internal-service", "client change");
    ws.commit_all(".", "move the pointer");
    let run = ws.sync(&["--plan", "--json", "--base", "HEAD~1"]);
    assert_eq!(run.json()["changed"], serde_json::json!(["citadel-internal-service/typescript-client/package.json"]));
    assert_eq!(planned(&ws, &["--base", "HEAD~1"]), ["sync-wasm-client", "internal-service", "ui"]);
}

#[test]
fn an_untracked_new_file_counts() {
    let ws = Workspace::citadel();
    write(&ws.root.join("citadel-workspace-server-kernel/src/new_module.rs"), "pub fn f() {}\n");
    assert_eq!(planned(&ws, &[]), ["server", "ui"]);
    write(&ws.root.join("citadel-internal-service/src/untracked.rs"), "pub fn g() {}\n");
    assert_eq!(planned(&ws, &[]), ["server", "internal-service", "ui"]);
}

#[test]
fn ui_only_and_docs_only_changes_rebuild_nothing() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-workspaces/src/App.tsx");
    edit(&ws, "docs/README.md");
    edit(&ws, "README.md");
    assert!(planned(&ws, &[]).is_empty());
    ws.tilt(&all_succeed(100));
    let run = ws.sync(&[]);
    run.assert_code(0);
    assert!(run.first_line().starts_with("SUCCESS: Nothing to rebuild"), "{}", run.stdout);
    assert_eq!(
        ws.tilt_calls(),
        [["get", "uiresources,dockercomposeservices", "-o", "json"]],
        "Tilt asked once that nothing failed there"
    );
}

#[test]
fn a_path_no_rule_claims_runs_every_step_and_the_plan_says_so() {
    let ws = Workspace::citadel();
    write(&ws.root.join("x/y.rs"), "fn main() {}\n");
    let run = ws.sync(&["--plan"]);
    run.assert_code(0);
    assert!(run.stdout.starts_with("Plan: 1 changed path since HEAD (no upstream)\n"), "{}", run.stdout);
    for step in ["sync-wasm-client", "server", "internal-service", "ui"] {
        assert!(
            run.stdout.contains(&format!("run   {step:16}  no rule claims `x/y.rs`: every step, to be safe")),
            "{}",
            run.stdout
        );
    }
    assert!(ws.tilt_calls().is_empty());
}

#[test]
fn the_plan_names_the_rule_and_the_path_for_each_step() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-workspace-server-kernel/src/main.rs");
    let run = ws.sync(&["--plan"]);
    let expected = "\
Plan: 1 changed path since HEAD (no upstream)
  skip  sync-wasm-client  no matching change
  run   server            `citadel-workspace-server-kernel/src/main.rs` matches `citadel-workspace-server-kernel/**` (the server kernel)
  skip  internal-service  no matching change
  run   ui                runs whenever another step runs
";
    assert_eq!(run.stdout, expected);
    let plan = ws.sync(&["--plan", "--json"]).json();
    assert_eq!(plan["base"].as_str().unwrap(), git(&ws.root, &["rev-parse", "HEAD"]).trim());
    assert_eq!(plan["steps"].as_array().unwrap().len(), 4);
    assert_eq!(plan["steps"][1]["resource"], "server");
}

#[test]
fn commits_since_the_upstream_count() {
    let ws = Workspace::citadel();
    ws.add_origin();
    edit(&ws, "citadel-workspace-client-ts/src/index.ts");
    ws.commit_all(".", "client change");
    assert_eq!(planned(&ws, &[]), ["sync-wasm-client", "ui"]);
}

#[test]
fn after_a_successful_sync_nothing_changed_means_one_status_call_and_no_trigger() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-workspace-server-kernel/src/main.rs");
    ws.tilt(&all_succeed(100));
    let before = ws.git_status();
    ws.sync(&[]).assert_code(0);
    assert_eq!(ws.git_status(), before, "logs/ must stay out of git status");

    // Same Tilt: it still shows the builds that passed.
    ws.forget_tilt_calls();
    let run = ws.sync(&[]);
    run.assert_code(0);
    assert_eq!(run.first_line(), "SUCCESS: Already in sync: nothing changed since the last successful sync");
    assert_eq!(
        ws.tilt_calls(),
        [["get", "uiresources,dockercomposeservices", "-o", "json"]],
        "Tilt asked once whether the sync stands"
    );

    // An edit after the sync: only its steps, not the kernel's again.
    edit(&ws, "citadel-internal-service/src/lib.rs");
    ws.forget_tilt_calls();
    ws.sync(&[]).assert_code(0);
    assert_eq!(ws.triggers(), ["internal-service", "ui"]);
}

#[test]
fn a_failed_sync_does_not_count_as_deployed() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-workspace-server-kernel/src/main.rs");
    ws.tilt(&all_succeed_but(100, "server", "error[E0425]: cannot find value `x`"));
    ws.sync(&[]).assert_code(1);
    ws.tilt(&all_succeed(100));
    ws.sync(&[]).assert_code(0);
    assert_eq!(ws.triggers(), ["server", "ui"], "the failed change is rebuilt");
}

#[test]
fn all_and_step_ignore_the_last_sync() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    ws.sync(&["--all"]).assert_code(0);
    ws.forget_tilt_calls();
    ws.sync(&["--step", "server"]).assert_code(0);
    assert_eq!(ws.triggers(), ["server"]);
    let run = ws.sync(&[]);
    assert_eq!(run.first_line(), "SUCCESS: Already in sync: nothing changed since the last successful sync");
}

#[test]
fn a_pruned_record_with_committed_changes_runs_every_step() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-workspace-server-kernel/src/main.rs");
    ws.tilt(&all_succeed(100));
    ws.sync(&[]).assert_code(0);
    edit(&ws, "citadel-workspace-types/src/lib.rs");
    ws.commit_all(".", "both edits");
    git(&ws.root, &["gc", "--quiet", "--prune=now"]);
    let run = ws.sync(&["--plan"]);
    run.assert_code(0);
    assert!(run.stdout.contains("the record of the last successful sync is gone"), "{}", run.stdout);
    assert_eq!(planned(&ws, &[]), ["sync-wasm-client", "server", "internal-service", "ui"]);
}
