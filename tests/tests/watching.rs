//! End-to-end: how a build is followed. Tilt's own record as a second opinion, Tilt going
//! away, the "old Tilt" fallback, a hung `tilt` call, and no `tilt` process left behind.

use sync_tests::*;

/// `all_succeed(100)` with `server` in place of its server.
fn with_server(server: Resource) -> Scenario {
    all_succeed(100).with_resource(server)
}

/// A Tilt older than 0.36.1 (no `logs --json`) playing `scenario`.
fn old_tilt(scenario: Scenario) -> Scenario {
    Scenario { json: false, version: "v0.33.2, built 2023-05-01".to_owned(), ..scenario }
}

#[test]
fn a_failure_tilt_records_fails_the_step_even_when_no_line_matches() {
    let ws = Workspace::citadel();
    // Without `build-failed`, Tilt's `Build Failed:` line matches nothing: only its record tells.
    let config = ws.protocol(&[(
        "errors = [\"rust-compile\", \"panic\", \"link\", \"build-failed\", \"error-line\"]",
        "errors = [\"rust-compile\"]",
    )]);
    ws.tilt(&with_server(
        Resource::compose("server").build(BuildSpec::new(200, &["Compiling"]).failing("exit status 101")),
    ));
    let run = ws.sync(&["--step", "server", "--config", &config]);
    run.assert_code(1);
    assert!(
        // Tilt's error for any failed compose image build.
        run.stdout.contains("Step 2 FAILED: Tilt recorded server's build as failed: command [\"docker\" \"compose\""),
        "{}",
        run.stdout
    );
    assert_eq!(ws.error_logs().len(), 1);
}

#[test]
fn a_container_that_exits_with_an_error_after_its_build_fails_the_step() {
    let ws = Workspace::citadel();
    let config = ws.protocol(&[]);
    ws.tilt(&with_server(Resource::compose("server").build(BuildSpec::new(200, &["Compiling"]).exit_code(1))));
    let run = ws.sync(&["--step", "server", "--config", &config]);
    run.assert_code(1);
    assert!(run.stdout.contains("server's container stopped after its build"), "{}", run.stdout);
}

#[test]
fn tilt_stopping_mid_build_is_a_failure_not_a_hang() {
    let ws = Workspace::citadel();
    ws.tilt(&Scenario { stop_after_ms: Some(300), ..all_succeed(3000) });
    let run = ws.sync(&["--all"]);
    run.assert_code(1);
    assert!(run.stdout.contains("Step 1 FAILED: Tilt went away while watching sync-wasm-client"), "{}", run.stdout);
    assert_eq!(ws.error_logs().len(), 1, "the log is saved");
    assert!(ws.tilt_processes_left().is_empty());

    // Tilt's notice that the environment turned analytics off (CI, DO_NOT_TRACK) is no reason.
    ws.tilt(&Scenario { stop_after_ms: Some(300), ..all_succeed(3000) });
    let run = Run::from(ws.sync_command(&["--all"]).env("DO_NOT_TRACK", "1").output().expect("running xtask sync"));
    run.assert_code(1);
    assert!(run.stdout.contains("Step 1 FAILED: Tilt went away while watching sync-wasm-client"), "{}", run.stdout);
}

#[test]
fn an_old_tilt_without_json_is_polled() {
    let ws = Workspace::citadel();
    let mut scenario = all_succeed(300);
    scenario.resource_mut("server").history.push(BuildSpec::new(100, &["error[E0425]: an old failure"]));
    ws.tilt(&old_tilt(scenario));
    let run = ws.sync(&["--all", "--poll", "200ms", "-v"]);
    run.assert_code(0);
    assert!(
        run.stderr.contains("this Tilt has no `logs --json` (older than 0.36.1): polling `tilt logs` every 200ms"),
        "{}",
        run.stderr
    );
    assert!(ws.tilt_calls().iter().all(|args| !args.contains(&"--json".to_owned())));

    ws.tilt(&old_tilt(all_succeed_but(300, "server", "error[E0599]: no method named `x`")));
    let run = ws.sync(&["--all", "--poll", "200ms"]);
    run.assert_code(1);
    assert!(run.stdout.contains("Step 2 FAILED: server rebuild error: error[E0599]"), "{}", run.stdout);
}

#[test]
fn a_hung_tilt_call_is_killed_and_named() {
    let ws = Workspace::citadel();
    let config = ws.protocol(&[("tilt_call_timeout = \"30s\"", "tilt_call_timeout = \"500ms\"")]);
    ws.tilt(&Scenario { hang: vec!["trigger".to_owned()], ..all_succeed(100) });
    let run = ws.sync(&["--all", "--config", &config]);
    run.assert_code(1);
    assert!(
        run.stdout.contains("Step 1 FAILED: sync-wasm-client: `tilt trigger sync-wasm-client` did not answer within 0.5s and was killed"),
        "{}",
        run.stdout
    );
    assert!(ws.tilt_processes_left().is_empty(), "{:?}", ws.tilt_processes_left());
}

#[test]
fn no_tilt_process_is_left_running_after_a_sync() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    ws.sync(&["--all"]).assert_code(0);
    assert!(ws.tilt_pids().len() >= 9, "{:?}", ws.tilt_calls());
    assert!(ws.tilt_processes_left().is_empty(), "{:?}", ws.tilt_processes_left());

    ws.tilt(&all_succeed_but(100, "server", "error[E0425]: x"));
    ws.sync(&["--all"]).assert_code(1);
    assert!(ws.tilt_processes_left().is_empty(), "{:?}", ws.tilt_processes_left());
}

#[test]
fn a_step_costs_at_most_four_tilt_calls_when_following() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(500));
    ws.sync(&["--all"]).assert_code(0);
    for resource in ["sync-wasm-client", "server", "internal-service", "ui"] {
        let calls = ws
            .tilt_calls()
            .into_iter()
            .filter(|args| {
                args.len() >= 2 && args.contains(&resource.to_owned()) && !args.contains(&"--follow".to_owned())
            })
            .count();
        assert!(calls <= 4, "{resource}: {calls} calls: {:?}", ws.tilt_calls());
    }
    let streams = ws.tilt_calls().into_iter().filter(|args| args.contains(&"--follow".to_owned())).count();
    assert_eq!(streams, 1, "one log stream per run");
}

#[test]
fn settle_waits_after_each_trigger_and_verbose_says_how_the_log_is_followed() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    let run = ws.sync(&["--step", "server", "--settle", "700ms", "-v", "--json"]);
    run.assert_code(0);
    assert!(run.stderr.contains("following `tilt logs --follow --json`"), "{}", run.stderr);
    assert!(run.stderr.contains(SERVER_RUNNING.trim()), "-v streams the build's log: {}", run.stderr);
    let took = run.report().steps[1].duration_ms;
    assert!(took >= 700, "the step waited its settle time: {took} ms");
}

#[test]
fn a_tilt_wrapper_script_leaves_nothing_behind() {
    let ws = Workspace::citadel();
    let wrapper = ws.aside.join("tilt-wrapper");
    write(&wrapper, &format!("#!/bin/sh\n'{}' \"$@\"\n", tilt_bin().display()));
    make_executable(&wrapper);
    ws.tilt(&all_succeed(100));
    let run = Run::from(ws.sync_command(&["--all", "--tilt", wrapper.to_str().unwrap()]).output().unwrap());
    run.assert_code(0);
    assert!(ws.tilt_processes_left().is_empty(), "{:?}", ws.tilt_processes_left());
}

#[test]
fn a_crash_right_after_the_success_line_fails_a_step_with_a_confirm_time() {
    let ws = Workspace::citadel();
    let crash = Resource::compose("server").build(
        BuildSpec::new(100, &["Compiling"])
            .runtime(&[SERVER_RUNNING, "thread 'main' panicked at src/main.rs:12:5:"], 400),
    );
    ws.tilt(&with_server(crash.clone()));
    // Without a confirm time the step is a one-shot job: done only once its container exits 0,
    // so the panic printed meanwhile fails it too.
    let no_confirm = ws.protocol(&[(
        "name = \"server\"\nresource = \"server\"\n",
        "name = \"server\"\nresource = \"server\"\nconfirm = \"0s\"\n",
    )]);
    ws.sync(&["--step", "server", "--config", &no_confirm]).assert_code(1);
    let config = ws.protocol(&[(
        "name = \"server\"\nresource = \"server\"\n",
        "name = \"server\"\nresource = \"server\"\nconfirm = \"1s\"\n",
    )]);
    ws.tilt(&with_server(crash));
    let run = ws.sync(&["--step", "server", "--config", &config]);
    run.assert_code(1);
    assert!(run.stdout.contains("Step 2 FAILED: server rebuild error: thread 'main' panicked"), "{}", run.stdout);
}

#[test]
fn a_chatty_log_does_not_starve_the_confirmation_of_a_success_line() {
    // The success line is a build line, printed before the build ends; then the log never
    // pauses for long. Tilt's record must still be asked, and the step succeed.
    let ws = Workspace::citadel();
    let runtime: Vec<String> = (0..60).map(|n| format!("[INFO] request {n}")).collect();
    let runtime: Vec<&str> = runtime.iter().map(String::as_str).collect();
    let chatty = BuildSpec::new(1000, &[SERVER_RUNNING, "[INFO] a", "[INFO] b", "[INFO] c", "[INFO] d"])
        .runtime(&runtime, 12_000);
    ws.tilt(&with_server(Resource::compose("server").build(chatty)));
    let run = ws.sync(&["--step", "server", "--timeout", "20s", "--json"]);
    run.assert_code(0);
    let took = run.report().steps[1].duration_ms;
    assert!(took < 5000, "confirmed soon after the build ended, not at the timeout: {took} ms");
}

#[test]
fn polling_follows_builds_by_number_and_keeps_the_failed_builds_lines() {
    let ws = Workspace::citadel();
    // A build-line success before the build ends: with --json polling its origin is known.
    let early = BuildSpec::new(1500, &["Compiling server", SERVER_RUNNING, "more 1", "more 2", "more 3"]);
    ws.tilt(&with_server(Resource::compose("server").build(early)));
    ws.sync(&["--step", "server", "--no-stream", "--poll", "200ms", "--timeout", "20s"]).assert_code(0);

    let failing = BuildSpec::new(
        600,
        &[
            "Compiling",
            "error[E0425]: cannot find value `x`",
            "  --> src/main.rs:3:5",
            "error: could not compile `server`",
        ],
    )
    .failing("exit status 101");
    ws.tilt(&with_server(Resource::compose("server").build(failing)));
    let run = ws.sync(&["--step", "server", "--no-stream", "--poll", "200ms"]);
    run.assert_code(1);
    assert!(run.stdout.contains("Step 2 FAILED: server rebuild error: error[E0425]"), "{}", run.stdout);
    let saved = std::fs::read_to_string(ws.error_logs().last().unwrap()).unwrap();
    assert!(saved.contains("failed to solve: exit status 101"), "the rest of the build is saved: {saved}");
}

#[test]
fn a_background_job_left_by_a_tilt_wrapper_does_not_hold_the_sync() {
    let ws = Workspace::citadel();
    let wrapper = ws.aside.join("tilt-with-a-job");
    write(&wrapper, &format!("#!/bin/sh\nsleep 30 &\nexec '{}' \"$@\"\n", tilt_bin().display()));
    make_executable(&wrapper);
    ws.tilt(&all_succeed(100));
    let started = std::time::Instant::now();
    let run = Run::from(ws.sync_command(&["--all", "--tilt", wrapper.to_str().unwrap()]).output().unwrap());
    run.assert_code(0);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
}

#[test]
fn an_error_right_after_a_containers_success_line_fails_even_on_a_slow_stream() {
    // The stream delivers lines 400 ms late: the container's error arrives after Tilt already
    // recorded the build finished. The re-check of the log as Tilt has it catches it.
    let ws = Workspace::citadel();
    let crash = BuildSpec::new(300, &["Compiling"])
        .runtime(&[SERVER_RUNNING, "error: could not bind 0.0.0.0:12349: address in use"], 200);
    ws.tilt(&Scenario { stream_delay_ms: 400, ..with_server(Resource::compose("server").build(crash)) });
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("Step 2 FAILED: server rebuild error: error: could not bind"), "{}", run.stdout);
}

#[test]
fn the_previous_containers_late_success_line_is_disowned_by_tilts_order() {
    // A build runs when we trigger; its container prints the success line while ours (queued)
    // builds, and the slow stream delivers it after ours finished. Ours then crashes.
    let ws = Workspace::citadel();
    let running = BuildSpec::new(400, &[]).runtime(&[SERVER_RUNNING], 100);
    let ours = BuildSpec::new(300, &["Compiling"])
        .runtime(&["thread 'main' panicked at src/main.rs:40:10:"], 1500)
        .exit_code(101);
    let server = Resource::compose("server").running(running).build(ours);
    ws.tilt(&Scenario { stream_delay_ms: 400, ..with_server(server) });
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("Step 2 FAILED: server rebuild error: thread 'main' panicked"), "{}", run.stdout);
}

#[test]
fn on_a_terminal_each_step_has_one_live_line() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(300));
    // `script` gives the sync a terminal; its command line is a shell string (test code only).
    let command = format!("'{}' sync --all --root '{}'", xtask_bin().display(), ws.root.display());
    let mut script = std::process::Command::new("script");
    // The verdict's colour is the daily-use tests' business.
    script.args(["-qec", &command, "/dev/null"]).env("NO_COLOR", "1");
    let output = ws.standin_env(&mut script).output().unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(screen.contains("\r\u{1b}[2K[2/4] server "), "a live line redrawn in place: {screen:?}");
    assert!(!screen.contains("server: triggered"), "no plain progress lines on a terminal: {screen:?}");
    assert!(screen.contains("[4/4] ui: ok after"), "{screen:?}");
    assert!(screen.contains("SUCCESS: The sync and deploy process completed successfully"), "{screen:?}");
}

#[test]
fn a_chatty_previous_container_does_not_cost_a_tilt_call_per_line() {
    // While our build (queued) runs, the previous container prints error after error.
    let ws = Workspace::citadel();
    let noise: Vec<String> = (0..100).map(|n| format!("error: connection refused (retry {n})")).collect();
    let noise: Vec<&str> = noise.iter().map(String::as_str).collect();
    // (It is stopped, as docker compose does, before our build ends.)
    let running = BuildSpec::new(100, &[]).runtime(&noise, 1700);
    let ours = BuildSpec::new(2000, &["Compiling"]).runtime(&[SERVER_RUNNING], 0);
    ws.tilt(&with_server(Resource::compose("server").running(running).build(ours)));
    ws.sync(&["--step", "server"]).assert_code(0);
    let status_calls =
        ws.tilt_calls().iter().filter(|args| args.starts_with(&["get".to_owned(), "uiresource".to_owned()])).count();
    assert!(status_calls <= 8, "{status_calls} status calls: {:?}", ws.tilt_calls());
}

#[test]
fn a_resource_a_tiltfile_edit_removes_during_its_build_fails_its_step_at_once() {
    let ws = Workspace::citadel();
    let server = Resource::compose("server").build(BuildSpec::new(20_000, &["   Compiling server"])).removed_after(800);
    ws.tilt(&with_server(server));
    let started = std::time::Instant::now();
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("Step 2 FAILED: Tilt no longer has server: the Tiltfile changed"), "{}", run.stdout);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "not the build's 20 s, nor the timeout");
}
