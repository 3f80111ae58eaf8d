//! End-to-end scenarios of the real `xtask sync` binary against the REAL Tilt (`../shared/tilt`).
//!
//! Each scenario makes its own Citadel-shaped git repository whose Tiltfile holds local resources
//! named as the built-in protocol's (`sync-wasm-client`, `server`, `internal-service`, `ui`),
//! starts its own `tilt up` on a free port, breaks or fixes builds through control files kept
//! outside the repository, runs `xtask sync` and checks its answer. A plain `main`
//! (`harness = false`): without `SYNC_REAL_TILT` it says it skipped, and why.
//!
//! `SYNC_REAL_TILT=PATH` the tilt binary; `SYNC_REAL_TILT_REPEAT=N` runs each scenario N times;
//! `SYNC_REAL_TILT_ONLY=TEXT` runs the scenarios whose name contains TEXT.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    thread,
    time::{Duration, Instant},
};

use sync_tests::{
    git, make_executable,
    real::{
        alive, assert_clean, error_logs, expect, fail, initial_builds_done, process_group, resource, run_suite,
        second_line, signal, spawn_sync, Ctx, RunningSync, Scenario, TiltUp, CITADEL_RESOURCES as RESOURCES,
    },
    write, xtask_bin, Run,
};
use tempfile::TempDir;

const SERVER_ERROR: &str = "error[E0425]: cannot find value `x` in this scope";
const WASM_SYNC_ERROR: &str = "[ERROR] ❌ WASM files are NOT synchronized!";

/// How long one `xtask sync` may run before the test kills it.
const SYNC_BOUND: Duration = Duration::from_secs(120);

const SCENARIOS: &[Scenario] = &[
    ("clean-all-over-failed-history", clean_all_over_failed_history),
    ("server-rust-error", server_rust_error),
    ("ts2688-remediation", ts2688_remediation),
    ("wasm-error-then-success-line", wasm_error_then_success_line),
    ("serve-crash-after-start", serve_crash_after_start),
    ("running-build-success-is-not-ours", running_build_success_is_not_ours),
    ("running-build-failure-is-not-ours", running_build_failure_is_not_ours),
    ("tilt-stopped-mid-step", tilt_stopped_mid_step),
    ("unknown-resource", unknown_resource),
    ("tilt-of-another-checkout", tilt_of_another_checkout),
    ("tilt-of-a-worktree-inside", tilt_of_a_worktree_inside),
    ("error-150-lines-before-success", error_150_lines_before_success),
    ("crashed-server-fixed", crashed_server_fixed),
    ("plain-sync-after-a-failed-one", plain_sync_after_a_failed_one),
    ("error-line-in-two-records", error_line_in_two_records),
    ("held-for-a-failed-dependency", held_for_a_failed_dependency),
    ("error-then-5mb-of-log", error_then_5mb_of_log),
    ("a-passed-step-rebuilt-and-failing-elsewhere", passed_step_rebuilt_and_failing_elsewhere),
    ("disabled-during-its-build", disabled_during_its_build),
    ("a-passed-service-exits-after-its-confirm", passed_service_exits_after_its_confirm),
    ("a-passed-services-error-line-after-its-confirm", passed_services_error_line_after_its_confirm),
    ("an-error-a-carriage-return-overwrote", an_error_a_carriage_return_overwrote),
    ("ctrl-c-in-the-first-second", ctrl_c_in_the_first_second),
];

fn main() -> ExitCode {
    let how = "set it to the real tilt binary: `TILT=$(../shared/tilt/install.sh \"$PWD/target/real-tilt\") && \
               SYNC_REAL_TILT=$TILT cargo test -p sync-tests --test real_tilt`";
    run_suite("real tilt", "SYNC_REAL_TILT", how, SCENARIOS)
}

/// What the scenarios of this suite do with their context.
trait Scenarios {
    fn fixture(&self) -> Fixture;
    fn up(&mut self, fx: &Fixture) -> (PathBuf, TiltUp);
    fn tilt_up(&mut self, fx: &Fixture, dir: &Path) -> TiltUp;
    fn sync(&mut self, fx: &Fixture, root: &Path, port: u16, args: &[&str]) -> Run;
}

impl Scenarios for Ctx {
    fn fixture(&self) -> Fixture {
        Fixture::new(&self.tilt)
    }

    /// A Citadel-shaped repository with its own `tilt up`, its initial builds done.
    fn up(&mut self, fx: &Fixture) -> (PathBuf, TiltUp) {
        let repo = fx.repo("citadel");
        let tilt = self.tilt_up(fx, &repo);
        (repo, tilt)
    }

    fn tilt_up(&mut self, fx: &Fixture, dir: &Path) -> TiltUp {
        let started = Instant::now();
        let tilt = TiltUp::start(&fx.real, dir, fx.root(), initial_builds_done);
        self.note(format!("tilt up {:.1} s", started.elapsed().as_secs_f64()));
        tilt
    }

    /// Runs `xtask sync` to its end and notes how long it took.
    fn sync(&mut self, fx: &Fixture, root: &Path, port: u16, args: &[&str]) -> Run {
        let running = fx.spawn_sync(root, port, args, &[]);
        let started = running.started;
        let run = running.finish(SYNC_BOUND);
        let args: Vec<&str> = args.iter().map(|arg| arg.rsplit('/').next().unwrap_or(arg)).collect();
        self.note(format!("sync {} {:.1} s", args.join(" "), started.elapsed().as_secs_f64()));
        run
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

/// Scenario 1: Every resource's history holds errors (the server and the internal service failed to
/// build, the WASM client printed an `[ERROR]` line); the causes are fixed, then `sync --all`.
fn clean_all_over_failed_history(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    fx.set("sync-wasm-client.mode", "sync-error");
    fx.set("server.mode", "rust-error");
    fx.set("internal-service.mode", "rust-error");
    let (repo, tilt) = ctx.up(&fx);
    let ui = tilt.status("ui");
    for resource in ["server", "internal-service"] {
        let failed = tilt.status(resource)["status"]["buildHistory"][0]["error"].is_string();
        assert!(failed, "{resource}'s initial build should have failed: {}", tilt.status(resource)["status"]);
    }
    fx.set("sync-wasm-client.mode", "ok");
    fx.set("server.mode", "ok");
    fx.set("internal-service.mode", "ok");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--all"]);
    expect(&run, 0, "SUCCESS: ", None);
    expect_triggers(&run, &fx, mark, &RESOURCES);
    if ui["status"]["waiting"].is_object() {
        ctx.note("ui was waiting for its dependencies");
    }
    assert_clean(&repo);
}

/// Scenario 2: A Rust error in the server's update command: Step 2 fails on it, nothing after it runs.
fn server_rust_error(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("server.mode", "rust-error");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--all"]);
    expect(&run, 1, "ERROR: ", Some(&format!("Step 2 FAILED: server rebuild error: {SERVER_ERROR}")));
    expect_triggers(&run, &fx, mark, &["sync-wasm-client", "server"]);
    let logs = error_logs(&repo);
    let [log] = logs.as_slice() else { fail(&run, &format!("one logs/sync-error-*.log expected, found {logs:?}")) };
    let text = fs::read_to_string(log).unwrap_or_default();
    if !text.contains(SERVER_ERROR) {
        fail(&run, &format!("{} does not hold the error line:\n{text}", log.display()));
    }
    assert_clean(&repo);
}

/// Scenario 3: TS2688 in step 1: `npm install` once in the TypeScript client, step 1 again, success.
fn ts2688_remediation(ctx: &mut Ctx) {
    let mut fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("ts2688", "");
    fx.npm = true;
    let config = fx.protocol(&[("remediation_wait = \"10s\"", "remediation_wait = \"1s\"")]);
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "sync-wasm-client", "--config", &config]);
    expect(&run, 0, "SUCCESS: ", None);
    expect_triggers(&run, &fx, mark, &["sync-wasm-client", "sync-wasm-client"]);
    let npm = fs::read_to_string(fx.root().join("npm.calls")).unwrap_or_default();
    let expected = format!("{}|install", repo.join("citadel-internal-service/typescript-client").display());
    if npm.lines().collect::<Vec<_>>() != [expected.as_str()] {
        fail(&run, &format!("npm should have run once as `{expected}`, ran: {npm:?}"));
    }
    assert_clean(&repo);
}

/// Scenario 4: The sync script's `[ERROR]` line, then its success line: the error wins.
fn wasm_error_then_success_line(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("sync-wasm-client.mode", "sync-error");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "sync-wasm-client"]);
    expect(&run, 1, "ERROR: ", Some(&format!("Step 1 FAILED: sync-wasm-client rebuild error: {WASM_SYNC_ERROR}")));
    expect_triggers(&run, &fx, mark, &["sync-wasm-client"]);
    assert_clean(&repo);
}

/// Scenario 5: The server prints its success line, then panics 0.7 s later: Step 2 fails.
fn serve_crash_after_start(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("server.serve", "crash-after-start");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "server"]);
    expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: "));
    expect_triggers(&run, &fx, mark, &["server"]);
    ctx.note(second_line(&run).chars().take(90).collect::<String>());
    assert_clean(&repo);
}

/// Scenario 6: A slow server build that will succeed is running when the sync triggers; the next build
/// (ours, queued behind it) fails: the running one's success must not count.
fn running_build_success_is_not_ours(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    let before = fx.runs("server").len();
    fx.set("server.delay", "3");
    tilt.trigger("server");
    fx.wait_runs("server", before + 1, Duration::from_secs(15));
    fx.set("server.mode", "rust-error");
    fx.set("server.delay", "0");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "server"]);
    expect(&run, 1, "ERROR: ", Some(&format!("Step 2 FAILED: server rebuild error: {SERVER_ERROR}")));
    expect_triggers(&run, &fx, mark, &["server"]);
    let runs = fx.runs("server");
    if runs[before..] != ["ok", "rust-error"] {
        fail(&run, &format!("the server should have built twice since (ok, then rust-error): {runs:?}"));
    }
    assert_clean(&repo);
}

/// Scenario 7: A slow server build that will fail is running when the sync triggers; the cause is
/// fixed, so the next build (ours) succeeds: the running one's failure is not ours.
fn running_build_failure_is_not_ours(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    let before = fx.runs("server").len();
    fx.set("server.delay", "3");
    fx.set("server.mode", "rust-error");
    tilt.trigger("server");
    fx.wait_runs("server", before + 1, Duration::from_secs(15));
    fx.set("server.mode", "ok");
    fx.set("server.delay", "0");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "server"]);
    expect(&run, 0, "SUCCESS: ", None);
    expect_triggers(&run, &fx, mark, &["server"]);
    let runs = fx.runs("server");
    if runs[before..] != ["rust-error", "ok"] {
        fail(&run, &format!("the server should have built twice since (rust-error, then ok): {runs:?}"));
    }
    assert_clean(&repo);
}

/// The server's build prints `err`, then 0.5 s later the rest of the line, `or: could not
/// compile …`, and exits 0: Tilt's follow stream sends two records, and the server's serve
/// process then starts (no re-check needed). The step fails on the whole line.
fn error_line_in_two_records(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("server.mode", "split-error");
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "server"]);
    expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: server rebuild error: error: could not compile `server`"));
    assert_clean(&repo);
}

/// The WASM client's initial build failed: Tilt holds the server's builds until it is ready
/// (`waiting-for-dep`). `sync --step server` says so at once instead of waiting out its timeout.
fn held_for_a_failed_dependency(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    fx.set("sync-wasm-client.mode", "rust-error");
    let (repo, tilt) = ctx.up(&fx);
    let started = Instant::now();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "server", "--timeout", "60s"]);
    let took = started.elapsed();
    expect(
        &run,
        1,
        "ERROR: ",
        Some("Step 2 FAILED: Tilt holds server's build until sync-wasm-client is ready, and sync-wasm-client's"),
    );
    if took > Duration::from_secs(10) {
        fail(&run, &format!("it took {:.1} s to see the server held (at most 10 s)", took.as_secs_f64()));
    }
    assert_clean(&repo);
}

/// Scenario 8: Tilt stops 1 s into a 5 s server build: the sync says so within 2 s, exit 1.
fn tilt_stopped_mid_step(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, mut tilt) = ctx.up(&fx);
    let before = fx.runs("server").len();
    fx.set("server.delay", "5");
    // Tilt's notice on stderr (`Tilt analytics disabled: …`, printed under CI) is no reason.
    let sync = fx.spawn_sync(&repo, tilt.port, &["--step", "server"], &[("CI", "true")]);
    fx.wait_runs("server", before + 1, Duration::from_secs(15));
    thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    tilt.signal("TERM");
    let run = sync.finish(Duration::from_secs(30));
    let after = killed.elapsed();
    ctx.note(format!("the sync ended {:.2} s after the kill", after.as_secs_f64()));
    expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: "));
    if !run.stdout.contains("Tilt went away") {
        fail(&run, "the report should say `Tilt went away`");
    }
    if after > Duration::from_secs(2) {
        fail(&run, &format!("the sync ended {:.2} s after Tilt was killed (at most 2 s)", after.as_secs_f64()));
    }
    assert_clean(&repo);
}

/// Scenario 9: The protocol names a resource this Tilt lacks: exit 2 before any trigger.
fn unknown_resource(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    let config = fx.protocol(&[("resource = \"internal-service\"", "resource = \"internal-svc\"")]);
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--all", "--config", &config]);
    expect(&run, 2, "", None);
    expect_triggers(&run, &fx, mark, &[]);
    if !run.stderr.contains("internal-svc") {
        fail(&run, "the message should name the missing resource `internal-svc`");
    }
    assert_clean(&repo);
}

/// Scenario 10: The Tilt on the port runs another clone: exit 2, no trigger.
fn tilt_of_another_checkout(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    let other = fx.repo("other-clone");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &other, tilt.port, &["--all"]);
    expect(&run, 2, "", None);
    expect_triggers(&run, &fx, mark, &[]);
    if !run.stderr.contains("another checkout") {
        fail(&run, "the message should say the Tilt runs another checkout");
    }
    assert_clean(&repo);
    assert_clean(&other);
}

/// Scenario 11: The Tilt on the port runs a git worktree inside the workspace: exit 2, no trigger.
fn tilt_of_a_worktree_inside(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let repo = fx.repo("citadel");
    git(&repo, &["worktree", "add", "--quiet", "-b", "feat", ".worktrees/feat"]);
    let tilt = ctx.tilt_up(&fx, &repo.join(".worktrees/feat"));
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--all"]);
    expect(&run, 2, "", None);
    expect_triggers(&run, &fx, mark, &[]);
    if !run.stderr.contains("another checkout") {
        fail(&run, "the message should say the Tilt runs another checkout");
    }
    assert_clean(&repo);
}

/// Scenario 12: Step 1 prints an error line, 150 more lines, then its success line (and exits 0).
fn error_150_lines_before_success(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("sync-wasm-client.mode", "error-150");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "sync-wasm-client"]);
    expect(&run, 1, "ERROR: ", Some("Step 1 FAILED: sync-wasm-client rebuild error: error: could not compile"));
    expect_triggers(&run, &fx, mark, &["sync-wasm-client"]);
    assert_clean(&repo);
}

/// Scenario 13: The server crashed (Tilt's runtime status: error); fixed, `sync --step server` passes.
fn crashed_server_fixed(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("server.serve", "crash");
    tilt.trigger("server");
    tilt.wait("the server's runtime status `error` after its crash", Duration::from_secs(20), |list| {
        let runtime = resource(list, "server")?["status"]["runtimeStatus"].clone();
        if runtime == "error" {
            Ok(())
        } else {
            Err(format!("runtimeStatus {runtime}"))
        }
    });
    fx.set("server.serve", "ok");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "server"]);
    expect(&run, 0, "SUCCESS: ", None);
    expect_triggers(&run, &fx, mark, &["server"]);
    assert_clean(&repo);
}

/// Scenario 14: `sync --all` passes; the server breaks and `sync --all` fails at Step 2; the server is
/// fixed and its code edited and committed: a plain `sync` runs the server and the ui only.
fn plain_sync_after_a_failed_one(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    let run = ctx.sync(&fx, &repo, tilt.port, &["--all"]);
    expect(&run, 0, "SUCCESS: ", None);
    fx.set("server.mode", "rust-error");
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &["--all"]);
    expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: server rebuild error: "));
    expect_triggers(&run, &fx, mark, &["sync-wasm-client", "server"]);
    fx.set("server.mode", "ok");
    write(
        &repo.join("citadel-workspace-server-kernel/src/main.rs"),
        "fn main() {\n    let x = 1;\n    println!(\"{x}\");\n}\n",
    );
    git(&repo, &["commit", "--quiet", "--all", "-m", "server: define x"]);
    let mark = fx.calls().len();
    let run = ctx.sync(&fx, &repo, tilt.port, &[]);
    expect(&run, 0, "SUCCESS: ", None);
    expect_triggers(&run, &fx, mark, &["server", "ui"]);
    assert_clean(&repo);
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// The WASM client prints its `[ERROR]` line, then 5 MB, then its success line: Tilt cuts
/// the oldest lines (the error and our build's header among them) once it holds 2 MB. The sync
/// never passes it: the error is seen, or the cut is.
fn error_then_5mb_of_log(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("sync-wasm-client.mode", "error-then-5mb");
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "sync-wasm-client", "--timeout", "60s"]);
    expect(&run, 1, "ERROR: ", Some("Step 1 FAILED: "));
    ctx.note(second_line(&run).chars().take(80).collect::<String>());
    assert_clean(&repo);
}

/// `--all`: right after the server passes, another terminal triggers it again and that build
/// fails (its old serve process keeps running): the run fails, naming the server.
fn passed_step_rebuilt_and_failing_elsewhere(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("internal-service.delay", "4");
    let sync = fx.spawn_sync(&repo, tilt.port, &["--all"], &[]);
    fx.wait_runs("internal-service", 2, Duration::from_secs(30));
    fx.set("server.mode", "rust-error");
    tilt.trigger("server");
    let run = sync.finish(Duration::from_secs(60));
    expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: a later build of server"));
    let status = Command::new(xtask_bin())
        .args(["status", "--root"])
        .arg(&repo)
        .env("SYNC_TILT", &fx.real)
        .env("TILT_PORT", tilt.port.to_string())
        .output()
        .expect("running xtask status");
    if status.status.code() != Some(1) {
        fail(&run, &format!("`status` should agree (exit 1): {}", String::from_utf8_lossy(&status.stdout)));
    }
}

/// `tilt disable server` during its build: Tilt cancels it; the step fails at once.
fn disabled_during_its_build(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    let before = fx.runs("server").len();
    fx.set("server.delay", "5");
    let sync = fx.spawn_sync(&repo, tilt.port, &["--step", "server", "--timeout", "60s"], &[]);
    fx.wait_runs("server", before + 1, Duration::from_secs(15));
    let disabled = Instant::now();
    tilt.call(&["disable", "server"]).unwrap_or_else(|err| panic!("{err}"));
    let run = sync.finish(Duration::from_secs(60));
    let after = disabled.elapsed();
    expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: "));
    ctx.note(format!(
        "decided {:.1} s after the disable: {}",
        after.as_secs_f64(),
        second_line(&run).chars().take(60).collect::<String>()
    ));
    if after > Duration::from_secs(10) {
        fail(&run, "a canceled build should fail its step at once, not after the timeout");
    }
    let _ = tilt.call(&["enable", "server"]);
}

/// `--all`: the server passes, then its serve process exits 1 three seconds later while the
/// later steps build: the run fails.
fn passed_service_exits_after_its_confirm(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("server.serve", "exit-after-3s");
    fx.set("internal-service.delay", "5");
    let run = ctx.sync(&fx, &repo, tilt.port, &["--all"]);
    expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: server"));
    assert_clean(&repo);
}

/// `--all`: the server passes, then prints an error line 2.5 s later and keeps running, while
/// the later steps build: the run fails on that line.
fn passed_services_error_line_after_its_confirm(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("server.serve", "error-after-2.5s");
    fx.set("internal-service.delay", "5");
    let run = ctx.sync(&fx, &repo, tilt.port, &["--all"]);
    expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: server rebuild error: Error: the peer went away"));
    assert_clean(&repo);
}

/// `[WARNING] x\r[ERROR] … NOT synchronized!` in one record: a terminal shows the error.
fn an_error_a_carriage_return_overwrote(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    fx.set("sync-wasm-client.mode", "carriage-return");
    let run = ctx.sync(&fx, &repo, tilt.port, &["--step", "sync-wasm-client"]);
    expect(&run, 1, "ERROR: ", Some(&format!("Step 1 FAILED: sync-wasm-client rebuild error: {WASM_SYNC_ERROR}")));
    assert_clean(&repo);
}

/// Ctrl-C 0.3 s after the start, before the first trigger: exit 130, said so, `--json` too.
fn ctrl_c_in_the_first_second(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    for (delay, json) in [(300, false), (600, true), (50, false)] {
        let args: &[&str] = if json { &["--all", "--json"] } else { &["--all"] };
        let sync = fx.spawn_sync(&repo, tilt.port, args, &[]);
        thread::sleep(Duration::from_millis(delay));
        sync.interrupt();
        let run = sync.finish(Duration::from_secs(30));
        if run.code != Some(130) {
            fail(&run, &format!("Ctrl-C {delay} ms after the start should exit 130"));
        }
        let said = match json {
            true => run.stdout.contains("\"interrupted\""),
            false => run.stdout.contains("INTERRUPTED") || run.stderr.contains("INTERRUPTED"),
        };
        if !said {
            fail(&run, "the interruption should be said");
        }
    }
    assert_clean(&repo);
}

fn expect_triggers(run: &Run, fx: &Fixture, mark: usize, expected: &[&str]) {
    let triggered = fx.triggers_since(mark);
    if triggered != expected {
        fail(run, &format!("triggered {triggered:?}, expected {expected:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture: control files, scripts, repositories, syncs.

/// The update command of a local resource: `$CTL/<resource>.mode` says what it prints,
/// `$CTL/<resource>.delay` how long it takes; each run appends its mode to `<resource>.runs`.
const BUILD_SH: &str = r#"#!/bin/sh
r="$1"
ctl='@CTL@'
echo "$$" >> "$ctl/pids"
mode=$(cat "$ctl/$r.mode" 2>/dev/null || echo ok)
delay=$(cat "$ctl/$r.delay" 2>/dev/null || echo 0)
echo "$mode" >> "$ctl/$r.runs"
echo "   Compiling $r v0.1.0 (/usr/src/app/$r)"
echo "   Compiling thiserror v1.0.69"
[ "$delay" = 0 ] || sleep "$delay"
if [ "$r" = sync-wasm-client ] && [ -e "$ctl/ts2688" ]; then
  echo "error TS2688: Cannot find type definition file for 'node'."
  echo "  The file is in the program because:"
  exit 1
fi
case "$mode" in
  rust-error)
    echo 'error[E0425]: cannot find value `x` in this scope'
    echo '  --> src/main.rs:40:10'
    echo "error: could not compile \`$r\` (bin \"$r\") due to 1 previous error"
    exit 101 ;;
  sync-error)
    echo '[ERROR] ❌ WASM files are NOT synchronized!' ;;
  split-error)
    # Flushed mid-line: Tilt's follow stream sends the line as two records.
    printf 'err'
    sleep 0.5
    echo "or: could not compile \`$r\` (bin \"$r\") due to 1 previous error" ;;
  error-150)
    echo "error: could not compile \`$r\` (lib) due to 1 previous error"
    i=0
    while [ $i -lt 150 ]; do echo "[INFO] copying pkg/file-$i.js"; i=$((i + 1)); done ;;
  error-then-5mb)
    # Past Tilt's 2 MB of log: it cuts this resource's oldest lines, the error among them.
    echo '[ERROR] ❌ WASM files are NOT synchronized!'
    awk 'BEGIN { for (i = 0; i < 20000; i++) printf "[INFO] copying pkg/file-%05d.js %0200d\n", i, 0 }' ;;
  carriage-return)
    printf '[WARNING] x\r[ERROR] ❌ WASM files are NOT synchronized!\n' ;;
esac
echo '    Finished `dev` profile [unoptimized + debuginfo] target(s) in 0.42s'
if [ "$r" = sync-wasm-client ]; then
  echo 'found 0 vulnerabilities, 0 errors'
  echo '[INFO] WASM client synchronization complete!'
fi
"#;

/// The serve command of a local resource: `$CTL/<resource>.serve` says how it behaves.
const SERVE_SH: &str = r#"#!/bin/sh
r="$1"
ctl='@CTL@'
echo "$$" >> "$ctl/pids"
mode=$(cat "$ctl/$r.serve" 2>/dev/null || echo ok)
case "$r" in
  server) line='     Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`' ;;
  internal-service) line="     Running \`target/debug/citadel-workspace-internal-service --bind '0.0.0.0:12345'\`" ;;
  *) echo '> vite'; line='  VITE v5.4.2  ready in 412 ms' ;;
esac
case "$mode" in
  crash)
    echo "$line"
    echo "thread 'main' panicked at src/main.rs:40:10:"
    echo 'called `Result::unwrap()` on an `Err` value: Os { code: 98, kind: AddrInUse }'
    exit 101 ;;
  crash-after-start)
    echo "$line"
    sleep 0.7
    echo "thread 'main' panicked at src/main.rs:40:10:"
    echo 'called `Result::unwrap()` on an `Err` value: ConnectionReset'
    exit 101 ;;
  exit-after-3s)
    echo "$line"
    sleep 3
    exit 1 ;;
  error-after-2.5s)
    echo "$line"
    sleep 2.5
    echo 'Error: the peer went away'
    exec sleep 100000 ;;
esac
echo "$line"
exec sleep 100000
"#;

struct Fixture {
    temp: Option<TempDir>,
    real: PathBuf,
    ctl: PathBuf,
    bin: PathBuf,
    /// Put first on PATH when `npm` is wanted.
    npm_dir: PathBuf,
    npm: bool,
    calls: PathBuf,
}

impl Fixture {
    fn new(real: &Path) -> Fixture {
        let temp = tempfile::Builder::new().prefix("real-tilt-").tempdir().expect("making a temp dir");
        let root = temp.path().to_path_buf();
        let (ctl, bin, npm_dir, calls) =
            (root.join("ctl"), root.join("bin"), root.join("npm-bin"), root.join("tilt.calls"));
        for dir in [&ctl, &bin, &npm_dir] {
            fs::create_dir_all(dir).expect("making a directory");
        }
        let ctl_text = ctl.to_str().expect("a UTF-8 temp path");
        for (name, text) in [("build.sh", BUILD_SH), ("serve.sh", SERVE_SH)] {
            write(&bin.join(name), &text.replace("@CTL@", ctl_text));
            make_executable(&bin.join(name));
        }
        // Records every call, then is the real tilt.
        let wrapper = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{calls}'\nexec '{real}' \"$@\"\n",
            calls = calls.display(),
            real = real.display()
        );
        write(&bin.join("tilt"), &wrapper);
        make_executable(&bin.join("tilt"));
        let npm = format!(
            "#!/bin/sh\necho \"$PWD|$*\" >> '{}'\nrm -f '{}'\necho 'added 1 package, and audited 2 packages in 1s'\n",
            root.join("npm.calls").display(),
            ctl.join("ts2688").display()
        );
        write(&npm_dir.join("npm"), &npm);
        make_executable(&npm_dir.join("npm"));
        Fixture { temp: Some(temp), real: real.to_owned(), ctl, bin, npm_dir, npm: false, calls }
    }

    fn root(&self) -> &Path {
        self.temp.as_ref().expect("the fixture's directory").path()
    }

    /// A git repository laid out like Citadel (for the built-in protocol), committed.
    fn repo(&self, name: &str) -> PathBuf {
        let repo = self.root().join(name);
        let script = |name: &str| format!("'{}'", self.bin.join(name).display());
        let (build, serve) = (script("build.sh"), script("serve.sh"));
        let manual = "trigger_mode=TRIGGER_MODE_MANUAL";
        let tiltfile = [
            "# Citadel's services as local resources, for the real-Tilt tests of `xtask sync`.".to_owned(),
            format!("local_resource('sync-wasm-client', cmd=\"{build} sync-wasm-client\", {manual})"),
            format!("local_resource('server', cmd=\"{build} server\", serve_cmd=\"{serve} server\","),
            format!("    {manual}, resource_deps=['sync-wasm-client'])"),
            format!("local_resource('internal-service', cmd=\"{build} internal-service\","),
            format!("    serve_cmd=\"{serve} internal-service\", {manual}, resource_deps=['sync-wasm-client'])"),
            format!("local_resource('ui', serve_cmd=\"{serve} ui\","),
            "    resource_deps=['sync-wasm-client', 'server', 'internal-service'])\n".to_owned(),
        ]
        .join("\n");
        let files = [
            ("Tiltfile", tiltfile.as_str()),
            (".gitignore", ".worktrees/\ntarget/\n"),
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"citadel-workspace-server-kernel\", \"citadel-workspace-types\"]\n",
            ),
            ("README.md", "# citadel-workspace\n"),
            ("citadel-workspace-server-kernel/Cargo.toml", "[package]\nname = \"citadel-workspace-server-kernel\"\n"),
            ("citadel-workspace-server-kernel/src/main.rs", "fn main() {\n    println!(\"{x}\");\n}\n"),
            ("citadel-workspace-types/Cargo.toml", "[package]\nname = \"citadel-workspace-types\"\n"),
            ("citadel-workspace-types/src/lib.rs", "pub struct Workspace;\n"),
            ("citadel-workspace-internal-service/src/main.rs", "fn main() {}\n"),
            (
                "citadel-internal-service/typescript-client/package.json",
                "{\"name\": \"citadel-ts\", \"scripts\": {\"build\": \"tsc\"}}\n",
            ),
            ("citadel-internal-service/citadel-internal-service-wasm-client/src/lib.rs", "\n"),
            (
                "citadel-workspaces/package.json",
                "{\"name\": \"citadel-workspaces\", \"scripts\": {\"dev\": \"vite\"}}\n",
            ),
        ];
        for (path, text) in files {
            write(&repo.join(path), text);
        }
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        git(&repo, &["config", "user.email", "dev@example.com"]);
        git(&repo, &["config", "user.name", "Dev"]);
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "--quiet", "-m", "initial"]);
        repo.canonicalize().expect("a canonical path")
    }

    /// Writes a control file.
    fn set(&self, name: &str, text: &str) {
        write(&self.ctl.join(name), text);
    }

    /// The modes `<resource>`'s update command ran with, in order.
    fn runs(&self, resource: &str) -> Vec<String> {
        fs::read_to_string(self.ctl.join(format!("{resource}.runs")))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Waits until `resource`'s update command has started `count` times in all.
    #[track_caller]
    fn wait_runs(&self, resource: &str, count: usize, bound: Duration) {
        let deadline = Instant::now() + bound;
        while self.runs(resource).len() < count {
            assert!(
                Instant::now() < deadline,
                "{resource}'s update command did not start (run {count}) within {bound:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every call made through the tilt wrapper, as its arguments.
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.calls).map(|text| text.lines().map(str::to_owned).collect()).unwrap_or_default()
    }

    /// The resources triggered through the wrapper since the `mark`-th call.
    fn triggers_since(&self, mark: usize) -> Vec<String> {
        self.calls()
            .iter()
            .skip(mark)
            .filter_map(|call| {
                let mut words = call.split_whitespace();
                (words.next() == Some("trigger")).then(|| words.next().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// The built-in protocol with each `(from, to)` replaced once, written aside: its path.
    fn protocol(&self, replacements: &[(&str, &str)]) -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../xtask/sync.toml");
        let mut protocol = fs::read_to_string(path).expect("reading xtask/sync.toml");
        for (from, to) in replacements {
            assert!(protocol.contains(from), "xtask/sync.toml has no `{from}`");
            protocol = protocol.replacen(from, to, 1);
        }
        let edited = self.root().join("protocol.toml");
        write(&edited, &protocol);
        edited.to_str().expect("a UTF-8 path").to_owned()
    }

    /// Starts `xtask sync --root ROOT ARGS` against the Tilt on `port`, through the wrapper
    /// (with the fake `npm` first on PATH when wanted).
    fn spawn_sync(&self, root: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> RunningSync {
        let path = format!("{}:{}", self.npm_dir.display(), env::var("PATH").unwrap_or_default());
        let mut env = env.to_vec();
        if self.npm {
            env.push(("PATH", &path));
        }
        spawn_sync(&self.bin.join("tilt"), self.root(), root, port, args, &env)
    }
}

impl Drop for Fixture {
    /// Kills whatever the scripts started that is still running (Tilt is gone by now), and keeps
    /// the directory of a failed scenario for a look.
    fn drop(&mut self) {
        let pids = fs::read_to_string(self.ctl.join("pids")).unwrap_or_default();
        let own = process_group(std::process::id()).unwrap_or(0);
        for pid in pids.lines().filter_map(|line| line.trim().parse::<u32>().ok()) {
            if alive(pid) {
                eprintln!("real tilt: process {pid} (a build or serve script) outlived its Tilt: killed");
                match process_group(pid).filter(|group| *group != own && *group > 1) {
                    Some(group) => signal(&format!("-{group}"), "KILL"),
                    None => signal(&pid.to_string(), "KILL"),
                }
            }
        }
        if thread::panicking() {
            if let Some(temp) = self.temp.take() {
                eprintln!("real tilt: the failed scenario's files are kept in {}", temp.keep().display());
            }
        }
    }
}
