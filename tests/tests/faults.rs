//! End-to-end: the fault matrix. Every fault is caught, explained (cause and fix), logged,
//! and never reported as a success. One test per row of the matrix (issue 6).

use std::{
    fs,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use sync_tests::*;

fn failing_server() -> Scenario {
    all_succeed_but(150, "server", "error[E0425]: cannot find value `x`")
}

#[test]
fn tilt_not_installed() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    let run = Run::from(ws.sync_command(&["--all", "--tilt", "/nonexistent/bin/tilt"]).output().unwrap());
    run.assert_code(2);
    assert!(run.stderr.contains("Tilt was not found: `/nonexistent/bin/tilt`"), "{}", run.stderr);
    assert!(run.stderr.contains("point --tilt (or SYNC_TILT) at it"), "{}", run.stderr);
}

#[test]
fn no_tilt_on_the_port_and_tilt_port_honoured() {
    let ws = Workspace::citadel();
    ws.tilt(&Scenario { port: 10351, ..all_succeed(100) });
    let run = ws.sync(&["--all"]);
    run.assert_code(2);
    assert!(run.stderr.contains("no Tilt running on localhost:10350"), "{}", run.stderr);
    assert!(run.stderr.contains("`tilt up`") && run.stderr.contains("--tilt-port"), "{}", run.stderr);
    assert!(ws.triggers().is_empty());

    let run = Run::from(ws.sync_command(&["--all"]).env("TILT_PORT", "10351").output().unwrap());
    run.assert_code(0);
    assert!(ws
        .tilt_calls()
        .iter()
        .filter(|args| args[0] == "trigger")
        .all(|args| args.ends_with(&["--port".to_owned(), "10351".to_owned()])));
    ws.tilt(&Scenario { port: 10351, ..all_succeed(100) });
    ws.sync(&["--all", "--tilt-port", "10351"]).assert_code(0);
}

#[test]
fn tilt_running_for_another_checkout() {
    let ws = Workspace::citadel();
    ws.tilt(&Scenario { tiltfile: Some("/home/dev/other-clone/Tiltfile".to_owned()), ..all_succeed(100) });
    let run = ws.sync(&["--all"]);
    run.assert_code(2);
    assert!(run.stderr.contains("/home/dev/other-clone/Tiltfile"), "{}", run.stderr);
    assert!(run.stderr.contains(ws.root.to_str().unwrap()), "names this workspace too: {}", run.stderr);
    assert!(ws.triggers().is_empty());
}

#[test]
fn a_build_triggered_twice_is_waited_for_after_the_running_one() {
    // A build runs when we trigger, and another trigger is already queued behind it: Tilt
    // collapses ours into the queued one. The running build must not decide.
    let ws = Workspace::citadel();
    let mut scenario = failing_server();
    scenario.resource_mut("server").running = Some(BuildSpec::new(500, &["old", SERVER_RUNNING]));
    ws.tilt(&scenario);
    ws.tilt_cli(&["trigger", "server"]).assert_code(0);
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    assert!(run.stdout.contains("error[E0425]"), "{}", run.stdout);
}

#[test]
fn odd_lines_are_classified_without_panic() {
    let ws = Workspace::citadel();
    let megabyte_line = format!("note: {}", "x".repeat(1 << 20));
    let lines = [
        "   Compiling thiserror v1.0.69\r",
        "\u{1b}[1m\u{1b}[32m    Finished\u{1b}[0m `dev` profile\r",
        megabyte_line.as_str(),
        "\u{fffd}\u{fffd} bytes that were not UTF-8",
        SERVER_RUNNING,
    ];
    ws.tilt(&server_printing(&lines));
    ws.sync(&["--all"]).assert_code(0);

    ws.tilt(&all_succeed_but(150, "server", "\u{1b}[31merror[E0425]\u{1b}[0m: x\r"));
    let run = ws.sync(&["--all"]);
    run.assert_code(1);
    assert!(run.stdout.lines().nth(1).unwrap().contains("error[E0425]: x"), "{}", run.stdout);
}

#[test]
fn a_remediation_that_fails_or_is_missing_fails_the_step_and_says_why() {
    let ws = Workspace::citadel();
    let config = ws.protocol(&[("remediation_wait = \"10s\"", "remediation_wait = \"100ms\"")]);
    let ts2688 = all_succeed_but(150, "sync-wasm-client", "error TS2688: Cannot find type definition file for 'node'.");

    // npm missing: PATH holds git and nothing else.
    let bin = ws.aside.join("only-git");
    fs::create_dir_all(&bin).unwrap();
    let git_path =
        String::from_utf8(Command::new("sh").args(["-c", "command -v git"]).output().unwrap().stdout).unwrap();
    std::os::unix::fs::symlink(git_path.trim(), bin.join("git")).unwrap();
    ws.tilt(&ts2688);
    let run = Run::from(ws.sync_command(&["--all", "--config", &config]).env("PATH", &bin).output().unwrap());
    run.assert_code(1);
    assert!(run.stdout.contains("the remediation failed: `npm install` in citadel-internal-service/typescript-client: `npm` was not found on PATH"), "{}", run.stdout);

    // npm fails.
    let npm_dir = ws.fake_program("npm", 3);
    ws.tilt(&ts2688);
    let run =
        Run::from(ws.sync_command(&["--all", "--config", &config]).env("PATH", path_with(&npm_dir)).output().unwrap());
    run.assert_code(1);
    assert!(run.stdout.contains("the remediation failed: `npm install` in citadel-internal-service/typescript-client: exited with exit status: 3"), "{}", run.stdout);
    assert_eq!(ws.triggers(), ["sync-wasm-client"], "no retrigger after a failed remediation");
}

#[test]
fn two_syncs_at_once_the_second_names_the_holder() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(1500));
    let mut first = ws.sync_command(&["--all"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let lock = ws.logs_dir().join("sync.lock");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&lock).is_ok_and(|text| text.starts_with("pid")) {
        assert!(Instant::now() < deadline, "the first sync never took the lock");
        thread::sleep(Duration::from_millis(20));
    }
    let second = ws.sync(&["--all"]);
    second.assert_code(2);
    assert!(
        second.stderr.contains(&format!("another sync is running in this workspace (pid {}", first.id())),
        "{}",
        second.stderr
    );
    assert!(first.wait().unwrap().success());

    // A run killed outright (`kill -9`) leaves its lock file and no running `tilt`: the lock is
    // taken over.
    ws.tilt(&all_succeed(1500));
    let mut killed = ws.sync_command(&["--all"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    while !ws.triggers().contains(&"sync-wasm-client".to_owned()) {
        assert!(Instant::now() < deadline + Duration::from_secs(20), "the run never triggered");
        thread::sleep(Duration::from_millis(20));
    }
    killed.kill().unwrap();
    killed.wait().unwrap();
    let gone = Instant::now() + Duration::from_secs(5);
    while !ws.tilt_processes_left().is_empty() && Instant::now() < gone {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(ws.tilt_processes_left().is_empty(), "the killed run's tilt processes: {:?}", ws.tilt_processes_left());
    assert!(fs::read_to_string(&lock).unwrap().starts_with("pid"));
    ws.tilt(&all_succeed(100));
    ws.sync(&["--all"]).assert_code(0);
}

#[test]
fn ctrl_c_mid_step_exits_130_and_keeps_the_partial_log() {
    let ws = Workspace::citadel();
    let slow = BuildSpec::new(20_000, &["   Compiling citadel-workspace-server-kernel v0.1.0", "never reached"]);
    ws.tilt(&all_succeed(150).with_resource(Resource::compose("server").build(slow)));
    let child = ws.sync_command(&["--step", "server"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let server_log = ws.logs_dir().join("server.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&server_log).is_ok_and(|text| text.contains("CLI Trigger")) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(200));
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let run = Run::from(child.wait_with_output().unwrap());
    run.assert_code(130);
    assert!(run.stdout.contains("Step 2 INTERRUPTED: stopped by Ctrl-C while watching server"), "{}", run.stdout);
    let logs = ws.error_logs();
    assert_eq!(logs.len(), 1);
    assert!(fs::read_to_string(&logs[0]).unwrap().contains("CLI Trigger"), "the partial log is kept");
    assert!(ws.tilt_processes_left().is_empty(), "{:?}", ws.tilt_processes_left());
}

#[test]
fn logs_not_writable_still_reports_and_fails() {
    let ws = Workspace::citadel();
    fs::write(ws.logs_dir(), "a file where logs/ should be").unwrap();
    ws.tilt(&failing_server());
    let run = ws.sync(&["--all"]);
    run.assert_code(1);
    assert!(
        run.first_line().starts_with("ERROR: The sync and deploy process failed at Step 2 (server)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("The log could not be saved: creating"), "{}", run.stdout);
    assert!(run.stdout.contains("error[E0425]"), "the report still shows the log: {}", run.stdout);
}

#[test]
fn a_bad_protocol_file_names_file_line_and_key() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("report_lines = 100", "report_lines = = 100")], "(in `report_lines = = 100`)"),
        (&[("resource = \"server\"", "resource = \"server\"\nresorce = 1")], "resorce"),
        (&[("success = ['\\bready in\\b'", "success = ['(unclosed'")], "bad pattern in step `ui` success"),
        (&[("name = \"ui\"", "name = \"server\"")], "step `server` is defined twice"),
        (
            &[(
                "name = \"sync-wasm-client\"\nresource",
                "name = \"sync-wasm-client\"\nresource = \"x\"\nsuccess = 3\n#",
            )],
            "success",
        ),
    ];
    for (edit, expected) in cases {
        let config = ws.protocol(edit);
        let text = fs::read_to_string(&config).unwrap();
        let run = ws.sync(&["--all", "--config", &config]);
        run.assert_code(2);
        assert!(run.stderr.contains(expected), "{expected}: {}", run.stderr);
        let line = run
            .stderr
            .split(&format!("{config}:"))
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_else(|| panic!("no {config}:LINE in {}", run.stderr));
        let line: usize = line.parse().unwrap();
        assert!(line >= 1 && line <= text.lines().count(), "{line}");
    }
    let empty = ws.aside.join("empty.toml");
    write(&empty, protocol_edited(&[]).split("[[step]]").next().unwrap());
    let run = ws.sync(&["--all", "--config", empty.to_str().unwrap()]);
    run.assert_code(2);
    assert!(run.stderr.contains("has no `[[step]]`"), "{}", run.stderr);
    assert!(ws.triggers().is_empty());
}

#[test]
fn git_oddities_give_a_clear_message_or_a_fallback() {
    // Not a git repository: change detection says how to sync without it; --all works.
    let ws = Workspace::citadel();
    fs::remove_dir_all(ws.root.join(".git")).unwrap();
    ws.tilt(&all_succeed(100));
    let run = ws.sync(&[]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("is not a git repository") && run.stderr.contains("pass --all or --step"),
        "{}",
        run.stderr
    );
    ws.sync(&["--all"]).assert_code(0);

    // Detached HEAD, no upstream: changes count from HEAD.
    let ws = Workspace::citadel();
    git(&ws.root, &["checkout", "--quiet", "--detach"]);
    write(&ws.root.join("citadel-workspace-server-kernel/src/main.rs"), "fn main() { }\n");
    let plan = ws.sync(&["--plan", "--json"]);
    plan.assert_code(0);
    assert_eq!(plan.json()["changed"], serde_json::json!(["citadel-workspace-server-kernel/src/main.rs"]));

    // A shallow clone whose upstream history is cut: still plans.
    let origin = ws.add_origin_from_detached();
    let clone = ws.aside.join("shallow");
    git(
        &ws.aside,
        &["clone", "--quiet", "--depth", "1", &format!("file://{}", origin.display()), clone.to_str().unwrap()],
    );
    write(&clone.join("citadel-workspace-types/src/lib.rs"), "pub struct Changed;\n");
    let run = Run::from(
        Command::new(xtask_bin()).args(["sync", "--plan", "--root", clone.to_str().unwrap()]).output().unwrap(),
    );
    run.assert_code(0);
    assert!(run.stdout.contains("run   server"), "{}", run.stdout);
}

#[test]
fn ctrl_c_during_a_hung_tilt_call_exits_130_at_once() {
    let ws = Workspace::citadel();
    ws.tilt(&Scenario { hang: vec!["trigger".to_owned()], ..all_succeed(100) });
    let child = ws.sync_command(&["--step", "server"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ws.triggers().contains(&"server".to_owned()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let run = Run::from(child.wait_with_output().unwrap());
    run.assert_code(130);
    assert!(sent.elapsed() < Duration::from_secs(5), "not the 30 s call bound: {:?}", sent.elapsed());
    assert!(run.stdout.contains("Step 2 INTERRUPTED"), "{}", run.stdout);
    assert!(ws.tilt_processes_left().is_empty(), "{:?}", ws.tilt_processes_left());
}
