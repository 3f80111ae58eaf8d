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
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
    thread,
    time::{Duration, Instant},
};

use sync_tests::{
    git,
    real::{
        assert_clean, error_logs, expect, fail, initial_builds_done, local::Fixture, resource, run_suite, second_line,
        soak::soak, Ctx, Scenario, TiltUp, CITADEL_RESOURCES as RESOURCES,
    },
    write, xtask_bin, Run,
};

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
    ("renamed-during-its-build", renamed_during_its_build),
    ("a-passed-service-exits-after-its-confirm", passed_service_exits_after_its_confirm),
    ("a-passed-services-error-line-after-its-confirm", passed_services_error_line_after_its_confirm),
    ("an-error-a-carriage-return-overwrote", an_error_a_carriage_return_overwrote),
    ("ctrl-c-in-the-first-second", ctrl_c_in_the_first_second),
    ("a-short-soak", a_short_soak),
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
    let saved = fs::read_to_string(repo.join("logs/sync-wasm-client.log")).unwrap_or_default();
    if second_line(&run).contains("Tilt cut lines") && !saved.contains("lines of this build are missing") {
        fail(&run, "the saved log should mark where Tilt's lines are missing");
    }
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

/// A Tiltfile edit renames `server` during its build: Tilt drops the resource without a word in
/// its log; the step fails at once.
fn renamed_during_its_build(ctx: &mut Ctx) {
    let fx = ctx.fixture();
    let (repo, tilt) = ctx.up(&fx);
    let before = fx.runs("server").len();
    fx.set("server.delay", "5");
    let sync = fx.spawn_sync(&repo, tilt.port, &["--step", "server", "--timeout", "60s"], &[]);
    fx.wait_runs("server", before + 1, Duration::from_secs(15));
    let renamed = Instant::now();
    let tiltfile = repo.join("Tiltfile");
    let text = fs::read_to_string(&tiltfile).expect("reading the Tiltfile");
    fs::write(&tiltfile, text.replace("local_resource('server'", "local_resource('server-renamed'"))
        .expect("editing the Tiltfile");
    let run = sync.finish(Duration::from_secs(60));
    let after = renamed.elapsed();
    expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: Tilt no longer has server"));
    ctx.note(format!("decided {:.1} s after the edit", after.as_secs_f64()));
    if after > Duration::from_secs(10) {
        fail(&run, "a removed resource should fail its step at once, not after the timeout");
    }
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

/// Eight syncs of the randomized soak (`cargo run -p sync-tests --bin soak` runs hundreds):
/// no false green, no false red.
fn a_short_soak(ctx: &mut Ctx) {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |since| since.as_secs());
    let mut wrong = Vec::new();
    let tally = soak(&ctx.tilt, 8, seed, &mut |round| {
        if round.false_green() || round.false_red() {
            wrong.push(round.to_string());
        }
    });
    ctx.note(format!("seed {seed}: {} had to fail, {} to pass", tally.must_fail, tally.must_pass));
    assert!(wrong.is_empty(), "seed {seed} (`soak --seed {seed}` replays it):\n{}", wrong.join("\n"));
}

fn expect_triggers(run: &Run, fx: &Fixture, mark: usize, expected: &[&str]) {
    let triggered = fx.triggers_since(mark);
    if triggered != expected {
        fail(run, &format!("triggered {triggered:?}, expected {expected:?}"));
    }
}
