//! End-to-end: the pre-push hook, installed in a folder inside `.git` that `core.hooksPath`
//! points to, forwarding to Citadel's own hooks, exercised by real `git push`es to a local bare
//! repository.

use std::{fs, process::Command};

use sync_tests::*;

/// Citadel's own pre-push hook, standing in, tracked in `.githooks` as in Citadel: records its
/// arguments and input, then exits with `code`.
fn existing_hook(ws: &Workspace, code: i32) -> String {
    let record = ws.aside.join("existing-hook.calls");
    let script = format!("#!/bin/sh\necho \"args: $*\" >> '{r}'\ncat >> '{r}'\nexit {code}\n", r = record.display());
    git(&ws.root, &["config", "core.hooksPath", ".githooks"]);
    let hook = ws.root.join(".githooks/pre-push");
    write(&hook, &script);
    make_executable(&hook);
    ws.commit_all(".", "Citadel's pre-push hook");
    script
}

fn hooks_path(ws: &Workspace) -> String {
    git(&ws.root, &["config", "--local", "--get", "core.hooksPath"]).trim().to_owned()
}

fn xtask(ws: &Workspace, args: &[&str]) -> Run {
    let output = Command::new(xtask_bin()).args(args).args(["--root", ws.root.to_str().unwrap()]).output().unwrap();
    Run::from(output)
}

/// `git push` with the hook's environment: the prebuilt xtask and the Tilt stand-in.
fn push(ws: &Workspace) -> Run {
    let mut push = Command::new("git");
    push.args(["push", "origin", "main"]).current_dir(&ws.root).env("SYNC_XTASK", xtask_bin());
    Run::from(ws.standin_env(&mut push).output().unwrap())
}

fn remote_head(ws: &Workspace) -> String {
    git(&ws.aside.join("origin.git"), &["rev-parse", "main"])
}

fn commit_kernel_change(ws: &Workspace) {
    let path = ws.root.join("citadel-workspace-server-kernel/src/main.rs");
    write(&path, "fn main() { println!(\"changed\"); }\n");
    ws.commit_all(".", "kernel change");
}

#[test]
fn the_hook_chains_to_the_existing_one_and_syncs_what_the_push_changes() {
    let ws = Workspace::citadel();
    ws.add_origin();
    let original = existing_hook(&ws, 0);
    let before = ws.git_status();
    xtask(&ws, &["install-hook"]).assert_code(0);
    assert_eq!(ws.git_status(), before, "no tracked file, no file of the work tree changes");
    assert_eq!(fs::read_to_string(ws.root.join(".githooks/pre-push")).unwrap(), original);
    let folder = ws.root.join(".git/xtask-hooks");
    assert_eq!(hooks_path(&ws), folder.to_str().unwrap());
    let installed = fs::read_to_string(folder.join("pre-push")).unwrap();

    // Installing again changes nothing, and keeps what was there before.
    xtask(&ws, &["install-hook"]).assert_code(0);
    assert_eq!(fs::read_to_string(folder.join("pre-push")).unwrap(), installed);

    commit_kernel_change(&ws);
    ws.tilt(&all_succeed(100));
    let run = push(&ws);
    run.assert_code(0);
    assert_eq!(ws.triggers(), ["server", "ui"], "{}", run.stderr);
    assert_eq!(remote_head(&ws), git(&ws.root, &["rev-parse", "HEAD"]));
    let seen = fs::read_to_string(ws.aside.join("existing-hook.calls")).unwrap();
    let head = git(&ws.root, &["rev-parse", "HEAD"]);
    assert!(seen.starts_with(&format!("args: origin {}\n", ws.aside.join("origin.git").display())), "{seen}");
    assert!(seen.contains(&format!("refs/heads/main {}", head.trim())), "the existing hook gets git's input: {seen}");

    xtask(&ws, &["uninstall-hook"]).assert_code(0);
    assert_eq!(hooks_path(&ws), ".githooks", "core.hooksPath exactly as it was");
    assert!(!folder.exists());
    assert_eq!(ws.git_status(), before);
}

#[test]
fn every_other_hook_forwards_to_the_ones_in_effect_before() {
    let ws = Workspace::citadel();
    let record = ws.aside.join("pre-commit.calls");
    let hook = ws.root.join(".githooks/pre-commit");
    write(&hook, &format!("#!/bin/sh\necho \"pre-commit ran in $PWD\" >> '{}'\nexit 0\n", record.display()));
    make_executable(&hook);
    git(&ws.root, &["config", "core.hooksPath", ".githooks"]);
    ws.commit_all(".", "Citadel's hooks");
    xtask(&ws, &["install-hook"]).assert_code(0);
    write(&ws.root.join("docs/notes.md"), "notes\n");
    ws.commit_all(".", "notes");
    let ran = fs::read_to_string(&record).unwrap();
    assert_eq!(ran.lines().count(), 2, "{ran}");

    // A failing hook still stops what it guards.
    write(&hook, "#!/bin/sh\necho 'refused by the pre-commit hook' >&2\nexit 1\n");
    write(&ws.root.join("docs/more.md"), "more\n");
    git(&ws.root, &["add", "--all"]);
    let output = Command::new("git").args(["commit", "-m", "refused"]).current_dir(&ws.root).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refused by the pre-commit hook"));

    // Without a hooks path of its own, git's default folder is where the hooks were.
    let ws = Workspace::citadel();
    let record = ws.aside.join("default.calls");
    let default_hook = ws.root.join(".git/hooks/pre-commit");
    write(&default_hook, &format!("#!/bin/sh\necho ran >> '{}'\n", record.display()));
    make_executable(&default_hook);
    xtask(&ws, &["install-hook"]).assert_code(0);
    write(&ws.root.join("docs/notes.md"), "notes\n");
    ws.commit_all(".", "notes");
    assert_eq!(fs::read_to_string(&record).unwrap(), "ran\n");
    xtask(&ws, &["uninstall-hook"]).assert_code(0);
    let unset = Command::new("git")
        .args(["config", "--local", "--get", "core.hooksPath"])
        .current_dir(&ws.root)
        .output()
        .unwrap();
    assert!(!unset.status.success(), "core.hooksPath is unset again");
}

#[test]
fn a_failing_step_blocks_the_push() {
    let ws = Workspace::citadel();
    ws.add_origin();
    xtask(&ws, &["install-hook"]).assert_code(0);
    let before = remote_head(&ws);
    commit_kernel_change(&ws);
    ws.tilt(&all_succeed_but(100, "server", "error[E0425]: cannot find value `x`"));
    let run = push(&ws);
    assert_ne!(run.code, Some(0), "the push must fail: {}", run.stderr);
    assert!(
        run.stdout.contains("Step 2 FAILED: server rebuild error") || run.stderr.contains("Step 2 FAILED"),
        "{run:?}"
    );
    assert_eq!(remote_head(&ws), before, "the remote must not move");
}

#[test]
fn the_existing_hooks_failure_stops_the_push_before_any_sync() {
    let ws = Workspace::citadel();
    ws.add_origin();
    existing_hook(&ws, 1);
    xtask(&ws, &["install-hook"]).assert_code(0);
    commit_kernel_change(&ws);
    ws.tilt(&all_succeed(100));
    let run = push(&ws);
    assert_ne!(run.code, Some(0));
    assert!(ws.tilt_calls().is_empty(), "{:?}", ws.tilt_calls());
}

#[test]
fn without_tilt_the_push_goes_on_with_a_warning_unless_strict() {
    let ws = Workspace::citadel();
    ws.add_origin();
    xtask(&ws, &["install-hook"]).assert_code(0);
    commit_kernel_change(&ws);
    ws.tilt(&Scenario { running: false, ..all_succeed(100) });
    let run = push(&ws);
    run.assert_code(0);
    assert!(run.stderr.contains("the push goes on without a sync"), "{}", run.stderr);

    xtask(&ws, &["install-hook", "--strict"]).assert_code(0);
    write(&ws.root.join("citadel-workspace-server-kernel/src/lib.rs"), "pub fn f() {}\n");
    ws.commit_all(".", "another kernel change");
    let run = push(&ws);
    assert_ne!(run.code, Some(0), "--strict blocks: {}", run.stderr);
    assert!(run.stderr.contains("tilt up"), "{}", run.stderr);
}

#[test]
fn a_hook_not_written_by_the_tool_is_never_removed() {
    let ws = Workspace::citadel();
    let original = existing_hook(&ws, 0);
    let run = xtask(&ws, &["uninstall-hook"]);
    run.assert_code(2);
    assert!(run.stderr.contains("no hook installed by `cargo xtask install-hook`"), "{}", run.stderr);
    assert_eq!(fs::read_to_string(ws.root.join(".githooks/pre-push")).unwrap(), original);
    assert_eq!(hooks_path(&ws), ".githooks");
}

#[test]
fn an_unpushed_edit_the_services_are_built_from_blocks_the_push_and_says_how_on() {
    let ws = Workspace::citadel();
    ws.add_origin();
    xtask(&ws, &["install-hook"]).assert_code(0);
    // An uncommitted kernel edit, and a docs-only commit pushed: Tilt builds the edit, not the
    // pushed commit, so a sync would say nothing about what is pushed.
    write(&ws.root.join("citadel-workspace-server-kernel/src/main.rs"), "fn main() { /* not pushed */ }\n");
    write(&ws.root.join("docs/notes.md"), "notes\n");
    git(&ws.root, &["add", "docs/notes.md"]);
    git(&ws.root, &["commit", "--quiet", "-m", "docs"]);
    let before = remote_head(&ws);
    ws.tilt(&all_succeed(100));
    let run = push(&ws);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("citadel-workspace-server-kernel/src/main.rs  (needs server"), "{}", run.stderr);
    assert!(
        run.stderr.contains("git stash --include-untracked") && run.stderr.contains("--no-verify"),
        "{}",
        run.stderr
    );
    assert_eq!(remote_head(&ws), before, "the remote must not move");
    assert!(ws.triggers().is_empty(), "{:?}", ws.triggers());
    // The kernel edit was never deployed: the next sync rebuilds it.
    ws.sync(&[]).assert_code(0);
    assert_eq!(ws.triggers(), ["server", "ui"]);
    // An edit no service is built from does not stand in the way.
    write(&ws.root.join("docs/draft.md"), "draft\n");
    git(&ws.root, &["commit", "--quiet", "--all", "-m", "kernel"]);
    push(&ws).assert_code(0);
}

#[test]
fn the_hook_waits_for_a_sync_running_in_the_workspace_and_goes_on_from_its_records() {
    let ws = Workspace::citadel();
    ws.add_origin();
    xtask(&ws, &["install-hook"]).assert_code(0);
    commit_kernel_change(&ws);
    ws.tilt(&all_succeed(1500));
    let running = ws
        .sync_command(&["--all"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ws.triggers().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let run = push(&ws);
    let mut running = running;
    running.wait().unwrap();
    run.assert_code(0);
    assert!(run.stderr.contains("another sync runs in this workspace: waiting for it"), "{}", run.stderr);
    assert_eq!(ws.triggers().len(), 4, "the push needed nothing the running sync did not: {:?}", ws.triggers());
}

#[test]
fn a_hook_that_cannot_sync_blocks_the_push_unless_tilt_is_not_running() {
    let ws = Workspace::citadel();
    ws.add_origin();
    xtask(&ws, &["install-hook"]).assert_code(0);
    commit_kernel_change(&ws);
    ws.tilt(&all_succeed(100));
    let output = Command::new("git")
        .args(["push", "origin", "main"])
        .current_dir(&ws.root)
        .env("SYNC_XTASK", xtask_bin())
        .env("SYNC_TILT", "/nonexistent/tilt")
        .env_remove("TILT_PORT")
        .output()
        .unwrap();
    let run = Run::from(output);
    assert_ne!(run.code, Some(0), "Tilt missing is not Tilt down: {run:?}");
    assert!(run.stderr.contains("the push is blocked"), "{}", run.stderr);
}

/// The hook names `install-hook` wrote into its folder (the forwarders and its own pre-push).
fn installed_hooks(ws: &Workspace) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(ws.root.join(".git/xtask-hooks"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| !name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

#[test]
fn only_the_hooks_the_previous_folder_has_are_forwarded_and_a_change_there_is_told() {
    let ws = Workspace::citadel();
    existing_hook(&ws, 0);
    let hook = ws.root.join(".githooks/pre-commit");
    write(&hook, "#!/bin/sh\nexit 0\n");
    make_executable(&hook);
    ws.commit_all(".", "Citadel's pre-commit hook");
    let installed = xtask(&ws, &["install-hook"]);
    installed.assert_code(0);
    assert!(
        installed.stdout.contains("its pre-push hook still runs first; forwarding pre-commit there"),
        "{}",
        installed.stdout
    );
    assert_eq!(installed_hooks(&ws), ["pre-commit", "pre-push"], "no shell for hooks that do not exist");
    let plan = xtask(&ws, &["sync", "--plan"]);
    plan.assert_code(0);
    assert!(!plan.stderr.contains("warning"), "{}", plan.stderr);

    // A hook added there later would not run: every sync and status says so, until reinstalled.
    let merge = ws.root.join(".githooks/post-merge");
    write(&merge, "#!/bin/sh\nexit 0\n");
    make_executable(&merge);
    let warned = xtask(&ws, &["sync", "--plan"]);
    warned.assert_code(0);
    assert!(
        warned
            .stderr
            .contains("changed since `cargo xtask install-hook`: post-merge not forwarded: git does not run it now")
            && warned.stderr.contains("Run `cargo xtask install-hook` again"),
        "{}",
        warned.stderr
    );
    fs::remove_file(&hook).unwrap();
    let status = xtask(&ws, &["status"]);
    assert!(
        status.stderr.contains("post-merge not forwarded: git does not run it now; pre-commit gone"),
        "{}",
        status.stderr
    );
    xtask(&ws, &["install-hook"]).assert_code(0);
    assert_eq!(installed_hooks(&ws), ["post-merge", "pre-push"]);
    assert!(!xtask(&ws, &["sync", "--plan"]).stderr.contains("warning"));

    // Without a hooks path of its own, git's default folder: its `.sample` files are no hooks.
    let ws = Workspace::citadel();
    xtask(&ws, &["install-hook"]).assert_code(0);
    assert_eq!(installed_hooks(&ws), ["pre-push"]);
}
