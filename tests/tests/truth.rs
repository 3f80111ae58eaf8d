//! End-to-end: the cases where the sync answered wrong against the real Tilt and today's
//! Citadel, each against the stand-in playing what the real Tilt does there (issue 9). The
//! same cases run against the real Tilt in `real_tilt.rs`.

use std::{thread, time::Duration};

use sync_tests::{
    scenario::{BuildSpec, Kind, Resource, Scenario},
    scenarios, *,
};

/// Citadel's four resources as local resources: update commands, serve processes, a serve-only
/// UI (what the real-Tilt tests run).
fn local_citadel(ms: u64) -> Scenario {
    scenarios::bench(ms, Kind::Local)
}

const RUST_ERROR: &str = "error[E0425]: cannot find value `x` in this scope";

#[test]
fn a_plain_sync_after_a_failed_one_runs_the_failed_step_and_not_already_in_sync() {
    let ws = Workspace::citadel();
    let server = Resource::compose("server")
        .build(BuildSpec::new(100, &[SERVER_RUNNING]))
        .build(BuildSpec::new(100, &[RUST_ERROR]).failing("exit status 101"))
        .build(BuildSpec::new(100, &[SERVER_RUNNING]));
    ws.tilt(&all_succeed(100).with_resource(server));
    ws.sync(&["--all"]).assert_code(0);
    let failed = ws.sync(&["--all"]);
    failed.assert_code(1);
    assert!(failed.first_line().contains("Step 2 (server)"), "{}", failed.stdout);
    // The fix: a kernel change, committed.
    write(&ws.root.join("citadel-workspace-server-kernel/src/main.rs"), "fn main() { /* fixed */ }\n");
    ws.commit_all(".", "fix the server");
    ws.forget_tilt_calls();
    let run = ws.sync(&[]);
    run.assert_code(0);
    assert_eq!(ws.triggers(), ["server", "ui"], "the failed step runs, the WASM client does not: {}", run.stderr);
    assert!(run.stderr.contains("it failed in the last sync that ran it"), "{}", run.stderr);
}

#[test]
fn a_build_that_failed_in_tilt_since_the_last_sync_is_not_already_in_sync() {
    let ws = Workspace::citadel();
    let server = Resource::compose("server")
        .build(BuildSpec::new(100, &[SERVER_RUNNING]))
        .build(BuildSpec::new(100, &[RUST_ERROR]).failing("exit status 101"))
        .build(BuildSpec::new(100, &[SERVER_RUNNING]));
    ws.tilt(&all_succeed(100).with_resource(server));
    ws.sync(&["--all"]).assert_code(0);
    // The user rebuilds the server from Tilt's UI, and that build fails.
    ws.tilt_cli(&["trigger", "server"]).assert_code(0);
    thread::sleep(Duration::from_millis(400));
    let plan = ws.sync(&["--plan"]);
    assert!(plan.stdout.contains("skip  server"), "--plan does not ask Tilt: {}", plan.stdout);
    ws.forget_tilt_calls();
    let run = ws.sync(&[]);
    run.assert_code(0);
    // Tilt's error for any failed compose image build.
    let failed = "Tilt's latest build of server failed: command [\"docker\" \"compose\"";
    assert!(run.stderr.contains(failed), "{}", run.stderr);
    assert_eq!(ws.triggers(), ["server", "ui"]);
}

#[test]
fn a_local_update_commands_success_passes_and_its_errors_decide() {
    let ws = Workspace::citadel();
    ws.tilt(&local_citadel(200));
    let run = ws.sync(&["--all", "--json"]);
    run.assert_code(0);
    let plain = WASM_DONE.replace("\u{1b}[0;32m", "").replace("\u{1b}[0m", "");
    assert_eq!(run.report().steps[0].deciding_line, Some(plain));

    // TS2688 printed by the update command: `npm install` once, the step triggered again.
    let ws = Workspace::citadel();
    let npm = ws.fake_program("npm", 0);
    let config = ws.protocol(&[("remediation_wait = \"10s\"", "remediation_wait = \"100ms\"")]);
    let mut scenario = local_citadel(200);
    let wasm = scenario.resource_mut("sync-wasm-client");
    wasm.build.insert(
        0,
        BuildSpec::new(200, &["> tsc", "error TS2688: Cannot find type definition file for 'node'."])
            .failing("Command \"./sync-wasm-clients.sh\" failed: exit status 1"),
    );
    ws.tilt(&scenario);
    let run =
        Run::from(ws.sync_command(&["--all", "--config", &config]).env("PATH", path_with(&npm)).output().unwrap());
    run.assert_code(0);
    assert_eq!(ws.fake_program_calls("npm").len(), 1);
    assert_eq!(ws.triggers(), ["sync-wasm-client", "sync-wasm-client", "server", "internal-service", "ui"]);

    // A Rust error in the server's update command is the deciding line, not `Build Failed`.
    let ws = Workspace::citadel();
    let mut scenario = local_citadel(200);
    scenario.resource_mut("server").build[0] = BuildSpec::new(200, &["   Compiling server", RUST_ERROR])
        .failing("Command \"cargo build --bin server\" failed: exit status 101");
    ws.tilt(&scenario);
    let run = ws.sync(&["--all"]);
    run.assert_code(1);
    let cause = run.stdout.lines().nth(1).unwrap();
    assert!(cause.starts_with(&format!("Step 2 FAILED: server rebuild error: {RUST_ERROR}")), "{cause}");
    assert_eq!(ws.triggers(), ["sync-wasm-client", "server"]);
}

#[test]
fn a_server_crashing_right_after_its_success_line_fails_and_so_does_one_dying_later() {
    let ws = Workspace::citadel();
    let mut scenario = local_citadel(100);
    scenario.resource_mut("server").build[0] = BuildSpec::new(100, &["   Compiling server"])
        .runtime(&[SERVER_RUNNING, "thread 'main' panicked at src/main.rs:40:10:"], 700)
        .exit_code(101);
    ws.tilt(&scenario);
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("Step 2 FAILED: server rebuild error: thread 'main' panicked"), "{}", run.stdout);

    // The server passes, then dies while the UI step runs: the run fails, naming the server.
    let ws = Workspace::citadel();
    let mut scenario = local_citadel(100);
    scenario.resource_mut("server").build[0] =
        BuildSpec::new(100, &["   Compiling server"]).runtime(&[SERVER_RUNNING, "shutting down"], 3500).exit_code(1);
    scenario.resource_mut("ui").build[0] = BuildSpec::new(0, &[]).runtime(&["> vite", UI_READY], 4000);
    ws.tilt(&scenario);
    let run = ws.sync(&["--all", "--json"]);
    run.assert_code(1);
    let report = run.report();
    assert_eq!(report.failed_step, Some(2), "{report:?}");
    let cause = report.steps[1].cause.as_deref().unwrap();
    assert!(cause.contains("after the step had passed"), "{cause}");
}

#[test]
fn a_healthy_container_passes_without_a_running_line_and_an_unhealthy_one_fails() {
    let ws = Workspace::citadel();
    let healthy =
        Resource::compose("server").build(BuildSpec::new(200, &["Container citadel-server Started"]).healthy(300));
    ws.tilt(&all_succeed(100).with_resource(healthy));
    let run = ws.sync(&["--step", "server", "--json"]);
    run.assert_code(0);
    let deciding = run.report().steps[1].deciding_line.clone().unwrap_or_default();
    assert!(deciding.starts_with("healthy"), "{}", run.stdout);

    let ws = Workspace::citadel();
    let unhealthy =
        Resource::compose("server").build(BuildSpec::new(200, &["Container citadel-server Started"]).unhealthy(300));
    ws.tilt(&all_succeed(100).with_resource(unhealthy));
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("server's container reports unhealthy"), "{}", run.stdout);
}

#[test]
fn a_build_started_before_the_trigger_is_not_ours_though_the_status_lags() {
    // The user triggered a slow build just before the sync: Tilt's status shows it a second
    // late, and the log stream delivers its header after our trigger. It passes; ours fails.
    let ws = Workspace::citadel();
    let server = Resource::compose("server")
        .build(BuildSpec::new(1500, &["   Compiling", SERVER_RUNNING]))
        .build(BuildSpec::new(200, &[RUST_ERROR]).failing("exit status 101"));
    ws.tilt(&Scenario { status_lag_ms: 1000, stream_delay_ms: 300, ..all_succeed(100).with_resource(server) });
    ws.tilt_cli(&["trigger", "server"]).assert_code(0);
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains(RUST_ERROR), "{}", run.stdout);
}

#[test]
fn an_error_far_back_in_a_long_build_still_fails_it() {
    let filler: Vec<String> = (0..150).map(|n| format!("[INFO] copying file {n}")).collect();
    let filler: Vec<&str> = filler.iter().map(String::as_str).collect();
    let ws = Workspace::citadel();
    let mut scenario = local_citadel(100);
    let mut lines = vec!["\u{1b}[0;31m[ERROR]\u{1b}[0m ❌ WASM files are NOT synchronized!"];
    lines.extend(&filler);
    lines.push(WASM_DONE);
    scenario.resource_mut("sync-wasm-client").build[0] = BuildSpec::new(300, &lines);
    ws.tilt(&scenario);
    let run = ws.sync(&["--all"]);
    run.assert_code(1);
    assert!(run.stdout.contains("[ERROR] ❌ WASM files are NOT synchronized!"), "{}", run.stdout);

    let ws = Workspace::citadel();
    let mut scenario = local_citadel(100);
    let mut lines = vec!["error: failed to load /usr/src/app/kernel.toml"];
    lines.extend(&filler);
    scenario.resource_mut("server").build[0] = BuildSpec::new(300, &lines).runtime(&[SERVER_RUNNING], 0);
    ws.tilt(&scenario);
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("error: failed to load /usr/src/app/kernel.toml"), "{}", run.stdout);
}

#[test]
fn a_stale_runtime_error_does_not_fail_a_fixed_server() {
    let ws = Workspace::citadel();
    let mut scenario = local_citadel(100);
    let crash = BuildSpec::new(100, &["   Compiling server"]).runtime(&["thread 'main' panicked"], 100).exit_code(101);
    let fixed = BuildSpec::new(100, &["   Compiling server"]).runtime(&[SERVER_RUNNING], 0);
    scenario.resource_mut("server").build = vec![crash, fixed];
    scenario.runtime_status_lag_ms = 1000;
    ws.tilt(&scenario);
    ws.tilt_cli(&["trigger", "server"]).assert_code(0);
    thread::sleep(Duration::from_millis(1500));
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(0);
}

#[test]
fn a_tilt_running_in_a_worktree_inside_the_workspace_is_refused() {
    let ws = Workspace::citadel();
    let worktree = ws.root.join(".worktrees/feat");
    write(&worktree.join("Tiltfile"), "# a worktree's Tiltfile\n");
    let tiltfile = worktree.join("Tiltfile").to_str().unwrap().to_owned();
    ws.tilt(&Scenario { tiltfile: Some(tiltfile.clone()), ..all_succeed(100) });
    let run = ws.sync(&["--all"]);
    run.assert_code(2);
    assert!(run.stderr.contains(&tiltfile), "{}", run.stderr);
    assert!(ws.triggers().is_empty());
}

/// A step the failed sync never reached is still owed: the change it depends on is committed
/// by the next sync (no upstream: the base is HEAD), yet it runs.
#[test]
fn a_step_a_failed_sync_never_reached_runs_next_time_though_its_change_is_committed() {
    let ws = Workspace::citadel();
    let server = Resource::compose("server")
        .build(BuildSpec::new(100, &[RUST_ERROR]).failing("exit status 101"))
        .build(BuildSpec::new(100, &[SERVER_RUNNING]));
    ws.tilt(&all_succeed(100).with_resource(server));
    write(&ws.root.join("citadel-workspace-types/src/lib.rs"), "pub struct Changed;\n");
    ws.sync(&[]).assert_code(1);
    assert_eq!(ws.triggers(), ["sync-wasm-client", "server"]);

    write(&ws.root.join("citadel-workspace-server-kernel/src/main.rs"), "fn main() { /* fixed */ }\n");
    ws.commit_all(".", "the types and the server's fix");
    ws.forget_tilt_calls();
    let run = ws.sync(&[]);
    run.assert_code(0);
    assert_eq!(ws.triggers(), ["server", "internal-service", "ui"], "{}", run.stderr);
    assert!(run.stderr.contains("or was due and not reached"), "{}", run.stderr);
}

/// Once the workspace has records, a step never synced counts every change since any of them:
/// a committed change to it is not "already in sync".
#[test]
fn a_committed_change_to_a_step_never_synced_is_not_already_in_sync() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    ws.sync(&["--step", "server"]).assert_code(0);
    write(&ws.root.join("citadel-workspace-internal-service/src/main.rs"), "fn main() { /* changed */ }\n");
    ws.commit_all(".", "change the internal service");
    ws.forget_tilt_calls();
    let run = ws.sync(&[]);
    run.assert_code(0);
    assert_eq!(ws.triggers(), ["internal-service", "ui"], "{}", run.stderr);
}

/// A step with neither a change nor a record is not in sync when Tilt's latest build of its
/// resource failed: it runs.
#[test]
fn a_resource_tilt_shows_failed_is_not_already_in_sync_though_nothing_changed() {
    let ws = Workspace::citadel();
    let internal = Resource::compose("internal-service")
        .history(BuildSpec::new(100, &[RUST_ERROR]).failing("exit status 101"))
        .build(BuildSpec::new(100, &[INTERNAL_RUNNING]));
    ws.tilt(&all_succeed(100).with_resource(internal));
    ws.sync(&["--step", "server"]).assert_code(0);
    ws.forget_tilt_calls();
    let run = ws.sync(&[]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("no matching change, but Tilt's latest build of internal-service failed"),
        "{}",
        run.stderr
    );
    assert_eq!(ws.triggers(), ["internal-service", "ui"], "{}", run.stderr);
}

/// A service that stops right after its success line fails its step even with exit code 0:
/// Tilt keeps a compose container that exited 0 `ok`, and reads any serve process's end as an
/// error. The WASM client's job may end: it has no confirm time.
#[test]
fn a_service_that_exits_zero_right_after_its_success_line_fails() {
    let ws = Workspace::citadel();
    let server = Resource::compose("server").build(
        BuildSpec::new(200, &["Container citadel-server Recreated"])
            .runtime(&[SERVER_RUNNING, "shutting down"], 300)
            .exit_code(0),
    );
    ws.tilt(&all_succeed(100).with_resource(server));
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("its container exited with code 0"), "{}", run.stdout);

    let mut local = local_citadel(100);
    local.resource_mut("server").build[0] =
        BuildSpec::new(100, &["   Compiling server"]).runtime(&[SERVER_RUNNING, "bye"], 300).exit_code(0);
    ws.tilt(&local);
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("Step 2 FAILED: server"), "{}", run.stdout);

    let wasm =
        Resource::compose("sync-wasm-client").build(BuildSpec::new(100, &[]).runtime(&[WASM_DONE], 100).exit_code(0));
    ws.tilt(&all_succeed(100).with_resource(wasm));
    ws.sync(&["--step", "sync-wasm-client"]).assert_code(0);
}

/// An error at the end of a line too long to keep whole (a progress line, 70 000 bytes) still
/// fails the step: a long line keeps its end.
#[test]
fn an_error_at_the_end_of_a_very_long_line_fails_the_step() {
    let ws = Workspace::citadel();
    let long = format!("{} [ERROR] WASM files are NOT synchronized!", "x".repeat(70_000));
    let mut scenario = all_succeed(100);
    scenario.resource_mut("sync-wasm-client").build[0] = BuildSpec::new(200, &[&long, WASM_DONE]);
    ws.tilt(&scenario);
    let run = ws.sync(&["--step", "sync-wasm-client"]);
    run.assert_code(1);
    let cause = run.stdout.lines().nth(1).unwrap_or_default();
    assert!(
        cause.contains("WASM files are NOT synchronized!") && cause.len() < 600,
        "{}",
        &cause[..cause.len().min(2000)]
    );
}

/// A service's container that stops after a passing sync, with exit code 0 (Tilt keeps its
/// status `ok`), is not "already in sync": the step runs again.
#[test]
fn a_container_that_stopped_after_the_sync_is_not_already_in_sync() {
    let ws = Workspace::citadel();
    let server = Resource::compose("server").build(
        BuildSpec::new(200, &["Container citadel-server Recreated"])
            .runtime(&[SERVER_RUNNING, "received SIGTERM, shutting down"], 6000)
            .exit_code(0),
    );
    ws.tilt(&all_succeed(100).with_resource(server));
    let started = std::time::Instant::now();
    ws.sync(&["--all"]).assert_code(0);
    thread::sleep(Duration::from_secs(7).saturating_sub(started.elapsed()));
    ws.forget_tilt_calls();
    let run = ws.sync(&[]);
    assert!(
        run.stderr.contains(
            "unchanged since its last good sync, but server's service is down (its container exited with code 0)"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(ws.triggers(), ["server", "ui"], "{}{}", run.stdout, run.stderr);
}

/// Lines are joined to find an error Tilt split, never through a line the step ignores: a
/// `[WARNING]` naming a failure after any line is still a warning.
#[test]
fn an_ignored_warning_after_another_line_does_not_fail_a_good_build() {
    let ws = Workspace::citadel();
    let mut scenario = all_succeed(100);
    scenario.resource_mut("sync-wasm-client").build[0] = BuildSpec::new(
        200,
        &[
            "\u{1b}[0;32m[INFO]\u{1b}[0m Optimizing WASM",
            "\u{1b}[1;33m[WARNING]\u{1b}[0m wasm-opt failed to run, skipping optimization",
            WASM_DONE,
        ],
    );
    ws.tilt(&scenario);
    ws.sync(&["--step", "sync-wasm-client"]).assert_code(0);
}

/// Every part of a line too long to keep whole is judged: an error 40 000 bytes into a
/// 100 000-byte line, and an error line Tilt split in three records.
#[test]
fn an_error_in_the_middle_of_a_long_line_or_in_three_records_fails_the_step() {
    let ws = Workspace::citadel();
    let long = format!("{}[ERROR] WASM files are NOT synchronized!{}", "x".repeat(40_000), "y".repeat(60_000));
    let mut scenario = all_succeed(100);
    scenario.resource_mut("sync-wasm-client").build[0] = BuildSpec::new(200, &[&long, WASM_DONE]);
    ws.tilt(&scenario);
    ws.sync(&["--step", "sync-wasm-client"]).assert_code(1);

    let server = Resource::compose("server")
        .build(BuildSpec::new(100, &["e", "rro", "r: could not compile `x`", "    Finished", SERVER_RUNNING]));
    ws.tilt(&all_succeed(100).with_resource(server));
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("error: could not compile `x`"), "{}", run.stdout);
}

/// A failed step's record is never compared with the workspace: `git gc` may have pruned its
/// trees, and the step runs whatever changed.
#[test]
fn a_failed_records_pruned_trees_do_not_stop_a_plain_sync() {
    let ws = Workspace::citadel();
    let server = Resource::compose("server")
        .build(BuildSpec::new(100, &[RUST_ERROR]).failing("exit status 101"))
        .build(BuildSpec::new(100, &[SERVER_RUNNING]));
    ws.tilt(&all_succeed(100).with_resource(server));
    write(&ws.root.join("citadel-workspace-server-kernel/src/main.rs"), "fn main() { /* wip */ }\n");
    ws.sync(&["--step", "server"]).assert_code(1);
    let records: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.root.join("logs/last-good-sync.json")).unwrap()).unwrap();
    let fingerprint = &records["steps"]["server"]["fingerprint"];
    let tree = fingerprint["trees"][""].as_str().or_else(|| fingerprint[""].as_str()).expect("the root's tree");
    std::fs::remove_file(ws.root.join(format!(".git/objects/{}/{}", &tree[..2], &tree[2..]))).expect("a loose tree");
    write(&ws.root.join("citadel-workspace-server-kernel/src/main.rs"), "fn main() { /* fixed */ }\n");
    ws.commit_all(".", "fix");
    ws.sync(&[]).assert_code(0);
    assert!(ws.triggers().contains(&"server".to_owned()));
}
