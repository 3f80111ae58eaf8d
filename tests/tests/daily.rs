//! End-to-end: daily use — where the error is, `cargo xtask status`, the live line, JSON on every
//! exit, and the messages a user meets.

use std::process::Command;

use sync_tests::{
    scenario::{BuildSpec, Resource},
    status::{ErrorStatus, RunStatus},
    *,
};

/// `xtask ARGS` (not `sync`) in the workspace, against the stand-in.
fn xtask(ws: &Workspace, args: &[&str]) -> Run {
    let mut command = Command::new(xtask_bin());
    ws.standin_env(command.args(args).current_dir(&ws.root));
    Run::from(command.output().unwrap())
}

#[test]
fn a_rust_errors_place_is_named_though_its_arrow_comes_a_second_later() {
    let ws = Workspace::citadel();
    let compiler = [
        "   Compiling citadel-workspace-server-kernel v0.1.0",
        "error[E0425]: cannot find value `peer_id` in this scope",
        "  --> /usr/src/app/citadel-workspace-server-kernel/src/kernel.rs:40:9",
        "   |",
        "40 |     register(peer_id);",
        "   |              ^^^^^^^ not found in this scope",
        "error: could not compile `citadel-workspace-server-kernel` (bin) due to 1 previous error",
    ];
    // Seven lines over 3.5 s: the arrow comes a second after the error line.
    let server = Resource::compose("server").build(BuildSpec::new(3500, &compiler).failing("exit status 101"));
    ws.tilt(&all_succeed(100).with_resource(server));
    let run = ws.sync(&["--step", "server"]);
    run.assert_code(1);
    let cause = run.stdout.lines().nth(1).unwrap();
    assert!(
        cause.contains("at citadel-workspace-server-kernel/src/kernel.rs:40:9"),
        "the place, from the workspace's root: {cause}"
    );
    let saved = std::fs::read_to_string(ws.error_logs().last().unwrap()).unwrap();
    for line in compiler {
        assert!(saved.contains(line), "the compiler's whole message is saved: {line}\n{saved}");
    }
    let report = ws.sync(&["--step", "server", "--json"]).report();
    let location = report.steps[1].location.as_ref().expect("the error's place");
    assert_eq!(location.path, "citadel-workspace-server-kernel/src/kernel.rs");
    assert_eq!(location.line, 40);
}

#[test]
fn status_says_whether_the_last_sync_still_stands() {
    let ws = Workspace::citadel();
    let server = Resource::compose("server")
        .build(BuildSpec::new(100, &[SERVER_RUNNING]))
        .build(BuildSpec::new(100, &["error[E0425]: cannot find value `x`"]).failing("exit status 101"));
    ws.tilt(&all_succeed(100).with_resource(server));
    let root = ws.root.to_str().unwrap().to_owned();
    let nothing = xtask(&ws, &["status", "--root", &root]);
    nothing.assert_code(2);
    assert!(nothing.stdout.contains("no sync recorded"), "{}", nothing.stdout);

    ws.sync(&["--all"]).assert_code(0);
    let stands = xtask(&ws, &["status", "--root", &root]);
    stands.assert_code(0);
    assert!(stands.first_line().starts_with("The last sync still stands"), "{}", stands.stdout);
    assert!(stands.stdout.contains("Last sync: ") && stands.stdout.contains("SUCCESS"), "{}", stands.stdout);
    assert!(stands.stdout.contains("server") && stands.stdout.contains("Tilt: build"), "{}", stands.stdout);

    ws.sync(&["--all"]).assert_code(1);
    let stale = xtask(&ws, &["status", "--json", "--root", &root]);
    stale.assert_code(1);
    let report = stale.json();
    assert_eq!(report["status"], "stale");
    assert!(report["message"].as_str().unwrap().contains("server needs a sync"), "{report}");

    ws.tilt(&scenario::Scenario { running: false, ..all_succeed(100) });
    let unknown = xtask(&ws, &["status", "--json", "--root", &root]);
    unknown.assert_code(2);
    assert_eq!(unknown.json()["status"], "unknown");
}

#[test]
fn json_speaks_on_every_exit() {
    let ws = Workspace::citadel();
    ws.tilt(&scenario::Scenario { running: false, ..all_succeed(100) });
    let run = ws.sync(&["--all", "--json"]);
    run.assert_code(2);
    let report = run.error_report();
    assert_eq!(report.status, ErrorStatus::Error);
    assert_eq!(report.exit_code, 2);
    assert!(report.message.contains("tilt up"), "{report:?}");

    let outside = tempfile::tempdir().unwrap();
    let run = xtask(&ws, &["sync", "--json", "--root", outside.path().to_str().unwrap()]);
    run.assert_code(2);
    assert!(run.error_report().message.contains("is not a git repository"), "{}", run.stdout);
}

#[test]
fn the_live_line_ticks_in_silence_and_keeps_to_the_terminals_width() {
    let ws = Workspace::citadel();
    // Silent for 3 s, then the success line.
    let server = Resource::compose("server")
        .build(BuildSpec::new(3500, &["   Compiling a very long crate name that goes on and on", SERVER_RUNNING]));
    ws.tilt(&all_succeed(100).with_resource(server));
    let command = format!("'{}' sync --step server --root '{}'", xtask_bin().display(), ws.root.display());
    // `script` gives the sync a terminal (test code: a shell line).
    let mut script = Command::new("script");
    let output = ws.standin_env(script.args(["-qec", &command, "/dev/null"]).env("COLUMNS", "60")).output().unwrap();
    let screen = String::from_utf8_lossy(&output.stdout);
    let drawn: Vec<&str> =
        screen.split("\r\u{1b}[2K").skip(1).map(|draw| draw.split("\r\n").next().unwrap_or(draw)).collect();
    let ticks: Vec<&&str> = drawn.iter().filter(|draw| draw.starts_with("[1/1] server 0:0")).collect();
    for second in ["0:01", "0:02", "0:03"] {
        assert!(ticks.iter().any(|draw| draw.contains(second)), "the clock moves in silence ({second}): {drawn:?}");
    }
    assert!(drawn.iter().all(|draw| draw.chars().count() < 60), "never wider than 60 columns: {drawn:?}");
    // Plain lines where there is no terminal, or a dumb one.
    let piped = ws.sync(&["--step", "server"]);
    assert!(piped.stderr.contains("[1/1] server: triggered") && !piped.stderr.contains('\u{1b}'), "{}", piped.stderr);
}

#[test]
fn messages_a_user_meets() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    let run = ws.sync(&["--step", "serer"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("no step named `serer`") && run.stderr.contains("did you mean `server`?"),
        "{}",
        run.stderr
    );

    let run = ws.sync(&["--all", "--timeout", "0s"]);
    run.assert_code(2);
    assert!(run.stderr.contains("`0s` is zero"), "{}", run.stderr);
    for timeout in ["1m30s", "5min", "2.5s"] {
        ws.sync(&["--step", "ui", "--timeout", timeout]).assert_code(0);
    }

    let run = ws.sync(&["--plan", "--base", "nope"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("--base nope: no such commit in") && !run.stderr.contains("rev-parse"),
        "{}",
        run.stderr
    );

    let outside = tempfile::tempdir().unwrap();
    let run = xtask(&ws, &["sync", "--plan", "--root", outside.path().to_str().unwrap()]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("is not a git repository: change detection reads") && !run.stderr.contains("fatal"),
        "{}",
        run.stderr
    );

    let run = Run::from(ws.sync_command(&["--all", "--tilt", "/bin/false"]).output().unwrap());
    run.assert_code(2);
    assert!(run.stderr.contains("`tilt version` failed: exit status: 1 and printed nothing"), "{}", run.stderr);

    let run = ws.sync(&["--all", "--strict"]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("--strict is for the pre-push hook: install it with `cargo xtask install-hook --strict`"),
        "{}",
        run.stderr
    );

    let version = xtask(&ws, &["--version"]);
    version.assert_code(0);
    assert!(version.stdout.starts_with("cargo xtask "), "{}", version.stdout);
    let help = xtask(&ws, &["sync", "--help"]);
    assert!(help.stdout.contains("Examples:") && help.stdout.contains("cargo xtask sync --plan"), "{}", help.stdout);

    let quiet = ws.sync(&["--all", "-q"]);
    quiet.assert_code(0);
    assert_eq!(quiet.stdout, "SUCCESS: The sync and deploy process completed successfully for all services\n");
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
}

#[test]
fn messages_say_what_happened_and_what_to_do() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    let run = ws.sync(&["--step", "UI"]);
    run.assert_code(2);
    assert!(run.stderr.contains("no step named `UI`") && run.stderr.contains("did you mean `ui`?"), "{}", run.stderr);

    let run = ws.sync(&["--all", "--timeout", "0"]);
    run.assert_code(2);
    assert!(run.stderr.contains("`0` is zero, and zero is not a timeout"), "{}", run.stderr);
    assert!(!run.stderr.contains("write a number and a unit"), "{}", run.stderr);
    let run = ws.sync(&["--all", "--timeout", "90"]);
    assert!(run.stderr.contains("a number needs a unit: 90s for seconds"), "{}", run.stderr);

    // Nothing changed and no sync recorded: only Tilt can say whether the services are up.
    ws.tilt(&scenario::Scenario { running: false, ..all_succeed(100) });
    let run = ws.sync(&[]);
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "no sync is recorded here yet: asking Tilt whether the services are up and their latest builds passed: \
             no Tilt running"
        ) && run.stderr.contains("tilt up"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("the last good sync still stands"), "there is none: {}", run.stderr);

    let root = ws.root.to_str().unwrap().to_owned();
    let never = xtask(&ws, &["status", "--json", "--root", &root]);
    never.assert_code(2);
    let message = never.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("Cannot tell: no sync recorded in this workspace yet, and no Tilt running on"),
        "{message}"
    );
    ws.tilt(&all_succeed(100));
    ws.sync(&["--all"]).assert_code(0);
    ws.tilt(&scenario::Scenario { running: false, ..all_succeed(100) });
    let down = xtask(&ws, &["status", "--json", "--root", &root]);
    down.assert_code(2);
    let message = down.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("Cannot tell whether the last sync stands: Tilt's builds decide it, and no Tilt running")
            && message.contains("tilt up"),
        "{message}"
    );
    let text = xtask(&ws, &["status", "--root", &root]);
    text.assert_code(2);
    assert!(text.stderr.starts_with("error: Cannot tell whether the last sync stands"), "{}", text.stderr);
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let ws = Workspace::citadel();
    ws.tilt(&all_succeed(100));
    let root = ws.root.to_str().unwrap().to_owned();
    let command = |args: &[&str]| {
        let mut command = ws.sync_command(&[]);
        command.args(args);
        command
    };
    let xtask_command = |args: &[&str]| {
        let mut command = Command::new(xtask_bin());
        command
            .args(args)
            .env("SYNC_TILT", tilt_bin())
            .env("TILT_STANDIN_SCENARIO", ws.scenario_path())
            .env("TILT_STANDIN_STATE", ws.state_dir())
            .env_remove("TILT_PORT")
            .current_dir(&ws.root);
        command
    };

    // As a shell runs `cargo xtask sync --plan --json | head -2`: both at once.
    let plan = into_head(command(&["--plan", "--json"]), 2);
    plan.assert_quiet(&[0]);
    assert_eq!(plan.head.lines().count(), 2, "{plan:?}");
    assert!(plan.head.starts_with("{\n  \"base\""), "{plan:?}");
    let synced = into_head(command(&["--all", "--json"]), 1);
    synced.assert_quiet(&[0]);
    assert_eq!(synced.head, "{\n");
    let status = into_head(xtask_command(&["status", "--json", "--root", &root]), 1);
    status.assert_quiet(&[0, 1, 2]);
    assert_eq!(status.head, "{\n");

    // And when `head` has left before the first write, every time: SIGPIPE, nothing said.
    for args in [&["--plan", "--json"][..], &["--plan"], &["--all", "--json"], &["--all"]] {
        into_gone_head(command(args)).assert_quiet(&[]);
    }
    let gone = into_gone_head(xtask_command(&["status", "--json", "--root", &root]));
    gone.assert_quiet(&[]);
    assert!(gone.stderr.is_empty(), "{gone:?}");
    let help = into_gone_head(xtask_command(&["sync", "--help"]));
    help.assert_quiet(&[]);
    // A sync whose report found no reader saved its status all the same: the report is its last write.
    assert_eq!(ws.saved_status().status, RunStatus::Success);
}
