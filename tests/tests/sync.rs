//! End-to-end: the real `xtask sync` binary, a real git repository laid out like Citadel, and
//! the Tilt stand-in. Each test reads as a scenario: given these Tilt builds, the sync prints
//! this and exits so.

use std::fs;

use sync_tests::{
    status::{Outcome, RunStatus},
    *,
};

/// `all_succeed(150)`, but the WASM client's builds print `builds`, one after another.
fn scenario_with_wasm(builds: &[&[&str]]) -> Scenario {
    let wasm =
        builds.iter().fold(Resource::compose("sync-wasm-client"), |wasm, lines| wasm.build(BuildSpec::new(150, lines)));
    all_succeed(150).with_resource(wasm)
}

#[test]
fn all_four_steps_succeed() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(200));
    let before = ws.git_status();
    let run = ws.sync(&["--all"]);
    run.assert_code(0);
    assert_eq!(run.first_line(), "SUCCESS: The sync and deploy process completed successfully for all services");
    assert!(run.stdout.contains("Affected services: sync-wasm-client, server, internal-service, ui"), "{}", run.stdout);
    assert_eq!(ws.triggers(), ["sync-wasm-client", "server", "internal-service", "ui"]);
    assert_eq!(ws.git_status(), before, "the sync changed the repository");
    let status = ws.saved_status();
    assert_eq!(status.status, RunStatus::Success);
    assert_eq!(status.steps[1].deciding_line.as_deref(), Some(SERVER_RUNNING));
    assert!(ws.error_logs().is_empty());
}

#[test]
fn a_rust_error_in_the_server_stops_the_run_at_step_2() {
    let ws = Workspace::citadel();
    ws.tilt(&server_printing(&[
        "   Compiling citadel-workspace-server-kernel v0.1.0",
        "error[E0425]: cannot find value `x` in this scope",
        "error: could not compile `citadel-workspace-server-kernel` (bin) due to 1 previous error",
    ]));
    let before = ws.git_status();
    let run = ws.sync(&["--all"]);
    run.assert_code(1);
    assert_eq!(
        run.first_line(),
        "ERROR: The sync and deploy process failed at Step 2 (server). See logs below for details"
    );
    let cause = run.stdout.lines().nth(1).unwrap();
    assert!(cause.starts_with("Step 2 FAILED: server rebuild error: error[E0425]: cannot find value"), "{cause}");
    assert_eq!(ws.triggers(), ["sync-wasm-client", "server"], "steps 3 and 4 must never be triggered");
    let logs = ws.error_logs();
    assert_eq!(logs.len(), 1);
    let saved = fs::read_to_string(&logs[0]).unwrap();
    assert!(saved.contains("resource: server"), "{saved}");
    assert!(saved.contains("rule: error kind `rust-compile`"), "{saved}");
    assert!(saved.contains("deciding line: error[E0425]"), "{saved}");
    assert!(
        saved.contains("   Compiling citadel-workspace-server-kernel v0.1.0"),
        "the whole log since the trigger: {saved}"
    );
    assert!(run.stdout.contains(&format!("Log saved to {}", logs[0].display())), "{}", run.stdout);
    // The lines after the error go into the log and the report too.
    assert!(saved.contains("error: could not compile `citadel-workspace-server-kernel`"), "{saved}");
    assert!(
        run.stdout.contains("lines of server's log ---") && run.stdout.contains("error: could not compile"),
        "{}",
        run.stdout
    );
    assert_eq!(ws.git_status(), before, "a failing sync changed the repository");
}

#[test]
fn ts2688_is_remediated_once_with_npm_install_then_the_step_succeeds() {
    let ws = Workspace::citadel();
    let npm_dir = ws.fake_program("npm", 0);
    let config = ws.protocol(&[("remediation_wait = \"10s\"", "remediation_wait = \"100ms\"")]);
    ws.tilt(&scenario_with_wasm(&[
        &["> tsc", "error TS2688: Cannot find type definition file for 'node'."],
        &["> tsc", WASM_DONE],
    ]));
    let run =
        Run::from(ws.sync_command(&["--all", "--config", &config]).env("PATH", path_with(&npm_dir)).output().unwrap());
    run.assert_code(0);
    let npm = ws.fake_program_calls("npm");
    let expected_dir = ws.root.join("citadel-internal-service/typescript-client");
    assert_eq!(npm, [format!("{}|install", expected_dir.display())]);
    assert_eq!(ws.triggers(), ["sync-wasm-client", "sync-wasm-client", "server", "internal-service", "ui"]);
    let remediations = &ws.saved_status().steps[0].remediations;
    assert!(
        remediations.iter().any(|done| done.contains("`npm install` in citadel-internal-service/typescript-client")),
        "{remediations:?}"
    );
}

#[test]
fn the_same_error_after_its_remediation_stops_the_run() {
    let ws = Workspace::citadel();
    let npm_dir = ws.fake_program("npm", 0);
    let config = ws.protocol(&[("remediation_wait = \"10s\"", "remediation_wait = \"100ms\"")]);
    ws.tilt(&scenario_with_wasm(&[&["error TS2688: Cannot find type definition file for 'node'."]]));
    let run =
        Run::from(ws.sync_command(&["--all", "--config", &config]).env("PATH", path_with(&npm_dir)).output().unwrap());
    run.assert_code(1);
    assert_eq!(ws.fake_program_calls("npm").len(), 1, "one remediation per error kind");
    assert_eq!(ws.triggers(), ["sync-wasm-client", "sync-wasm-client"]);
    let cause = run.stdout.lines().nth(1).unwrap();
    assert!(cause.starts_with("Step 1 FAILED: sync-wasm-client rebuild error: error TS2688"), "{cause}");
    assert!(cause.contains("still failing after the remediation"), "{cause}");
}

#[test]
fn a_missing_build_script_is_reported_not_remediated() {
    let ws = Workspace::citadel();
    let npm_dir = ws.fake_program("npm", 0);
    ws.tilt(&scenario_with_wasm(&[&["> npm run build", "npm error Missing script: \"build\""]]));
    let run = Run::from(ws.sync_command(&["--all"]).env("PATH", path_with(&npm_dir)).output().unwrap());
    run.assert_code(1);
    assert!(ws.fake_program_calls("npm").is_empty());
    assert_eq!(ws.triggers(), ["sync-wasm-client"]);
    assert!(run.stdout.contains("package.json lacks the `build` script"), "{}", run.stdout);
}

#[test]
fn no_success_line_is_a_timeout_naming_the_step() {
    let ws = Workspace::citadel();
    ws.tilt(&server_printing(&["   Compiling citadel-workspace-server-kernel v0.1.0", "    Finished `dev` profile"]));
    let run = ws.sync(&["--all", "--timeout", "1500ms", "--json"]);
    run.assert_code(1);
    let report = run.report();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.steps[0].outcome, Outcome::Ok);
    assert_eq!(report.steps[1].outcome, Outcome::Timeout);
    assert_eq!(report.steps[2].outcome, Outcome::NotRun);
    let cause = report.steps[1].cause.as_deref().unwrap();
    assert!(cause.starts_with("Step 2 FAILED: server timeout - build did not complete"), "{cause}");
    assert_eq!(ws.error_logs().len(), 1);
}

#[test]
fn an_error_in_a_build_that_also_prints_success_fails() {
    let ws = Workspace::citadel();
    ws.tilt(&scenario_with_wasm(&[&[
        "[INFO] Verifying synchronization...",
        "\u{1b}[0;31m[ERROR]\u{1b}[0m ❌ WASM files are NOT synchronized!",
        WASM_DONE,
    ]]));
    let run = ws.sync(&["--all"]);
    run.assert_code(1);
    assert!(
        run.stdout.lines().nth(1).unwrap().contains("[ERROR] ❌ WASM files are NOT synchronized!"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_error_after_cargos_early_finished_fails_step_1() {
    let ws = Workspace::citadel();
    ws.tilt(&scenario_with_wasm(&[&[
        "[INFO] Running wasm-pack build...",
        "    Finished `release` profile [optimized] target(s) in 41.20s",
        "npm error code ELIFECYCLE",
    ]]));
    let run = ws.sync(&["--all"]);
    run.assert_code(1);
    assert!(run.first_line().contains("Step 1 (sync-wasm-client)"), "{}", run.stdout);
    assert_eq!(ws.triggers(), ["sync-wasm-client"]);
}

#[test]
fn errors_in_earlier_builds_do_not_fail_the_new_one() {
    let ws = Workspace::citadel();
    let mut scenario = all_succeed(150);
    scenario.resource_mut("server").history.push(
        BuildSpec::new(
            100,
            &["error[E0425]: cannot find value `x` in this scope", "thread 'main' panicked at src/main.rs:1:1"],
        )
        .failing("Command \"cargo build\" failed: exit status 101"),
    );
    ws.tilt(&scenario);
    ws.sync(&["--all"]).assert_code(0);
}

#[test]
fn a_build_running_at_trigger_time_is_not_ours() {
    // The running build would pass with its success line; ours fails: the run must fail.
    let ws = Workspace::citadel();
    let mut scenario = server_printing(&["error[E0425]: cannot find value `x` in this scope"]);
    scenario.resource_mut("server").running = Some(BuildSpec::new(600, &["old", SERVER_RUNNING]));
    ws.tilt(&scenario);
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("error[E0425]"), "{}", run.stdout);

    // The running build fails; ours, queued behind it, succeeds: the run succeeds.
    let ws = Workspace::citadel();
    let mut scenario = all_succeed(150);
    scenario.resource_mut("server").running =
        Some(BuildSpec::new(600, &["error[E0599]: no method"]).failing("exit status 101"));
    ws.tilt(&scenario);
    let run = ws.sync(&["--step", "server", "--json"]);
    run.assert_code(0);
    assert_eq!(run.report().steps[1].deciding_line.as_deref(), Some(SERVER_RUNNING));
}

#[test]
fn the_previous_containers_success_line_does_not_pass_our_queued_build() {
    // The running build's container prints the server's success line once that build is over:
    // while ours (queued behind it) is building. Ours then fails.
    let ws = Workspace::citadel();
    let running =
        Resource::compose("server").running(BuildSpec::new(400, &["old build"]).runtime(&[SERVER_RUNNING], 200));
    let ours =
        BuildSpec::new(1000, &["   Compiling citadel-workspace-server-kernel v0.1.0"]).failing("exit status 101");
    ws.tilt(&all_succeed(150).with_resource(running.clone().build(ours)));
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    // BuildKit's reason for our failed image build (`.failing` of a compose build).
    assert!(run.stdout.contains("failed to solve: exit status 101"), "{}", run.stdout);

    // Our own container's success line, after our build: success.
    let ws = Workspace::citadel();
    let ours = BuildSpec::new(300, &["Compiling"]).runtime(&[SERVER_RUNNING], 100);
    ws.tilt(&all_succeed(150).with_resource(running.build(ours)));
    ws.sync(&["--step", "server"]).assert_code(0);
}

#[test]
fn the_demo_runs_a_passing_and_a_failing_sync() {
    let run = Run::from(std::process::Command::new(xtask_bin()).arg("demo").output().unwrap());
    run.assert_code(0);
    assert!(
        run.stdout.contains("SUCCESS: The sync and deploy process completed successfully for all services"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("ERROR: The sync and deploy process failed at Step 2 (server)"), "{}", run.stdout);
    assert!(
        run.stdout.contains("deciding line: error[E0425]: cannot find value `peer_id` in this scope"),
        "{}",
        run.stdout
    );
}

#[test]
fn tilt_not_running_exits_2_saying_tilt_up() {
    let ws = Workspace::citadel();
    ws.tilt(&Scenario { running: false, ..all_succeed(100) });
    let run = ws.sync(&["--all"]);
    run.assert_code(2);
    assert!(run.stderr.contains("tilt up"), "{}", run.stderr);
    assert!(ws.triggers().is_empty());
}

#[test]
fn an_unknown_resource_exits_2_before_any_trigger() {
    let ws = Workspace::citadel();
    let mut scenario = all_succeed(100);
    scenario.resource_mut("internal-service").name = "internal-svc".to_owned();
    ws.tilt(&scenario);
    let run = ws.sync(&["--all"]);
    run.assert_code(2);
    assert!(run.stderr.contains("Tilt has no resource named `internal-service`"), "{}", run.stderr);
    assert!(run.stderr.contains("internal-svc"), "lists what Tilt has: {}", run.stderr);
    assert!(ws.triggers().is_empty());
}

#[test]
fn steps_run_in_protocol_order_and_the_rest_are_skipped() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    let run = ws.sync(&["--step", "ui", "--step", "server", "--json"]);
    run.assert_code(0);
    assert_eq!(ws.triggers(), ["server", "ui"]);
    let outcomes: Vec<Outcome> = run.report().steps.iter().map(|step| step.outcome).collect();
    assert_eq!(outcomes, [Outcome::Skipped, Outcome::Ok, Outcome::Skipped, Outcome::Ok]);
}

#[test]
fn two_failures_keep_two_error_logs() {
    let ws = Workspace::citadel();
    ws.tilt(&server_printing(&["error[E0425]: cannot find value `x` in this scope"]));
    ws.sync(&["--step", "server"]).assert_code(1);
    ws.sync(&["--step", "server"]).assert_code(1);
    assert_eq!(ws.error_logs().len(), 2);
}

#[test]
fn a_build_context_that_takes_in_the_syncs_own_logs_is_named_with_what_to_add() {
    let ws = Workspace::citadel();
    let dockerignore = ws.root.join(".dockerignore");
    let text = std::fs::read_to_string(&dockerignore).unwrap();
    std::fs::write(&dockerignore, text.replace("logs/\n", "")).unwrap();
    ws.commit_all(".", "take logs/ into the images' context");
    ws.tilt(&all_succeed(100));
    let run = ws.sync(&["--all"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("`.dockerignore` does not leave out `logs/`")
            && run.stderr.contains("add the line `logs/`"),
        "{}",
        run.stderr
    );
}
