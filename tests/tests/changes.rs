//! End-to-end: `git diff` and the build decide the steps. Real repositories with real
//! submodules (the Citadel-shaped fixture: its Tiltfile, compose file, Dockerfiles and Cargo
//! manifests), the real binary, the Tilt stand-in.

use std::{path::Path, process::Command};

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

/// The internal service's crate, inside the submodule.
const SERVICE_LIB: &str = "citadel-internal-service/citadel-internal-service/src/lib.rs";

#[test]
fn an_uncommitted_change_inside_the_internal_service_submodule_counts_under_its_full_path() {
    let ws = Workspace::citadel();
    edit(&ws, SERVICE_LIB);
    let run = ws.sync(&["--plan", "--json"]);
    assert_eq!(run.json()["changed"], serde_json::json!([SERVICE_LIB]));
    // The internal service's binary compiles the crate; the sync job mounts the whole submodule
    // (its script, which runs wasm-pack there, says no more).
    assert_eq!(planned(&ws, &[]), ["sync-wasm-client", "internal-service", "ui"]);
}

#[test]
fn a_commit_inside_a_submodule_moves_its_pointer_and_counts_by_file() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-internal-service/typescript-client/package.json");
    ws.commit_all("citadel-internal-service", "client change");
    ws.commit_all(".", "move the pointer");
    let run = ws.sync(&["--plan", "--json", "--base", "HEAD~1"]);
    assert_eq!(run.json()["changed"], serde_json::json!(["citadel-internal-service/typescript-client/package.json"]));
    // Mounted into the sync job (which builds it) and the UI; no Rust build reads it.
    assert_eq!(planned(&ws, &["--base", "HEAD~1"]), ["sync-wasm-client", "ui"]);
}

#[test]
fn an_untracked_new_file_counts() {
    let ws = Workspace::citadel();
    write(&ws.root.join("citadel-workspace-server-kernel/src/new_module.rs"), "pub fn f() {}\n");
    assert_eq!(planned(&ws, &[]), ["server", "ui"]);
    write(&ws.root.join("citadel-internal-service/citadel-internal-service/src/untracked.rs"), "pub fn g() {}\n");
    assert_eq!(planned(&ws, &[]), ["sync-wasm-client", "server", "internal-service", "ui"]);
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
fn a_path_no_build_reads_runs_nothing_and_a_build_that_cannot_be_read_runs_its_step() {
    let ws = Workspace::citadel();
    write(&ws.root.join("x/y.rs"), "fn main() {}\n");
    assert!(planned(&ws, &[]).is_empty());
    write(&ws.root.join("docker/ui/Dockerfile"), "COPY citadel-workspaces/package.json ./\n");
    let run = ws.sync(&["--plan"]);
    run.assert_code(0);
    assert!(run.stdout.starts_with("Plan: 2 changed paths since HEAD (no upstream)\n"), "{}", run.stdout);
    let expected =
        "  run   ui                `docker/ui/Dockerfile` changed, and `docker/ui/Dockerfile` cannot be read: \
                    line 1: `COPY` before the first FROM: it runs, to be safe\n";
    assert!(run.stdout.contains(expected), "{}", run.stdout);
    assert!(run.stdout.contains("  skip  server            no matching change\n"), "{}", run.stdout);
    assert!(ws.tilt_calls().is_empty());
}

#[test]
fn the_plan_shows_the_chain_from_each_path_to_the_build_that_reads_it() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-workspace-server-kernel/src/main.rs");
    let run = ws.sync(&["--plan"]);
    let expected = "\
Plan: 1 changed path since HEAD (no upstream)
  skip  sync-wasm-client  no matching change
  run   server            `citadel-workspace-server-kernel/src/main.rs` → crate `citadel-workspace-server-kernel`, built by `docker/workspace-server/Dockerfile` (`cargo build --release --bin citadel-workspace-server-kernel`)
  skip  internal-service  no matching change
  run   ui                runs whenever another step runs
";
    assert_eq!(run.stdout, expected);
    let plan = ws.sync(&["--plan", "--json"]).json();
    assert_eq!(plan["base"].as_str().unwrap(), git(&ws.root, &["rev-parse", "HEAD"]).trim());
    assert_eq!(plan["steps"].as_array().unwrap().len(), 4);
    assert_eq!(plan["steps"][1]["resource"], "server");
    assert_eq!(plan["steps"][0]["chain"], serde_json::Value::Null);

    // Through a path dependency into the submodule, across workspaces.
    edit(&ws, "citadel-internal-service/citadel-internal-service-types/src/lib.rs");
    let plan = ws.sync(&["--plan", "--json"]).json();
    assert_eq!(
        plan["steps"][1]["chain"],
        serde_json::json!([
            "citadel-internal-service/citadel-internal-service-types/src/lib.rs",
            "crate `citadel-internal-service-types`",
            "dependency of `citadel-workspace-types`",
            "dependency of `citadel-workspace-server-kernel`, built by `docker/workspace-server/Dockerfile` (`cargo build --release --bin citadel-workspace-server-kernel`)"
        ])
    );
}

/// The steps a commit of `paths` (each edited) needs, the commit's parent as the base.
fn planned_for(paths: &[&str]) -> Vec<String> {
    let ws = Workspace::citadel();
    for path in paths {
        edit(&ws, path);
        if let Some(submodule) =
            ["citadel-workspaces", "citadel-internal-service"].iter().find(|s| path.starts_with(*s))
        {
            ws.commit_all(submodule, "the change inside");
        }
    }
    ws.commit_all(".", "the change");
    planned(&ws, &["--base", "HEAD~1"])
}

#[test]
fn what_no_image_holds_rebuilds_nothing_and_what_one_copies_rebuilds_it() {
    let cases: [(&[&str], &[&str]); 9] = [
        // The images resolve their own lock file (.dockerignore); npm's and CI's are no image's.
        (&["Cargo.lock", "package-lock.json", ".github/workflows/validate.yml"], &[]),
        // The server's seed documents are copied into its image: `**/*.md` does not hide them.
        (&["docker/workspace-server/documents/defaults/root/General/CONTENT.md"], &["server", "ui"]),
        (&["docker/ui/Dockerfile"], &["ui"]),
        (&["sync-wasm-clients.sh"], &["sync-wasm-client", "ui"]),
        (&["docker/workspace-server/kernel.toml"], &["server", "internal-service", "ui"]),
        // The root manifest is the internal service's workspace; the server builds with its own.
        (&["Cargo.toml"], &["internal-service", "ui"]),
        (&["docker/workspace-server/Cargo.docker.toml"], &["server", "ui"]),
        (&["citadel-workspaces/package.json"], &["ui"]),
        (&["docker-compose.yml"], &["sync-wasm-client", "server", "internal-service", "ui"]),
    ];
    for (paths, expected) in cases {
        assert_eq!(planned_for(paths), expected, "{paths:?}");
    }
}

/// `xtask sync ARGS` in another checkout (no Tilt call is made).
fn xtask_in(root: &Path, args: &[&str]) -> Run {
    let output = Command::new(xtask_bin()).arg("sync").arg("--root").arg(root).args(args).output();
    Run::from(output.expect("running xtask sync"))
}

#[test]
fn a_moved_pointer_of_a_submodule_not_checked_out_counts_whole_and_the_plan_says_why() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-internal-service/typescript-client/package.json");
    ws.commit_all("citadel-internal-service", "client change");
    ws.commit_all(".", "move the pointer");
    // A clone made without --recursive: the submodules' folders are empty.
    let clone = ws.aside.join("clone");
    git(&ws.aside, &["clone", "--quiet", ws.root.to_str().unwrap(), clone.to_str().unwrap()]);
    let run = xtask_in(&clone, &["--plan", "--json", "--base", "HEAD~1"]);
    run.assert_code(0);
    let plan = run.json();
    assert_eq!(plan["changed"], serde_json::json!(["citadel-internal-service"]));
    let steps = plan["steps"].as_array().unwrap();
    let runs: Vec<&str> = steps.iter().filter(|s| s["run"] == true).map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(runs, ["sync-wasm-client", "server", "internal-service", "ui"]);
    assert_eq!(
        plan["notes"],
        serde_json::json!([
            "submodule `citadel-internal-service`: its pointer moved and it is not checked out, so all of it counts as changed"
        ])
    );
    assert_eq!(
        plan["steps"][1]["chain"][1], "crate `citadel-internal-service-types` (its folder is not on disk)",
        "a path dependency into the missing submodule still counts"
    );
}

#[test]
fn a_submodule_checked_out_elsewhere_than_its_pointer_is_named() {
    let ws = Workspace::citadel();
    edit(&ws, "citadel-internal-service/typescript-client/package.json");
    ws.commit_all("citadel-internal-service", "not pointed to yet");
    let run = ws.sync(&["--plan"]);
    run.assert_code(0);
    let named = run.stdout.contains("note: submodule `citadel-internal-service` is checked out at ")
        && run
            .stdout
            .contains("where the superproject points: run `git submodule update`: Tilt builds what is on disk");
    assert!(named, "{}", run.stdout);
}

#[test]
fn a_misspelt_step_gets_a_suggestion_whatever_its_case() {
    let ws = Workspace::citadel();
    let run = ws.sync(&["--plan", "--step", "UI"]);
    run.assert_code(2);
    assert!(run.stderr.contains("no step named `UI` in the protocol: did you mean `ui`?"), "{}", run.stderr);
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
    edit(&ws, SERVICE_LIB);
    ws.forget_tilt_calls();
    ws.sync(&[]).assert_code(0);
    assert_eq!(ws.triggers(), ["sync-wasm-client", "internal-service", "ui"]);
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
