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
    net::TcpListener,
    os::unix::process::CommandExt,
    panic::{self, AssertUnwindSafe},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use sync_tests::{git, make_executable, path_with, without_tilt_environment, write, xtask_bin, Run};
use tempfile::TempDir;

/// The built-in protocol's resources, in step order.
const RESOURCES: [&str; 4] = ["sync-wasm-client", "server", "internal-service", "ui"];

const SERVER_ERROR: &str = "error[E0425]: cannot find value `x` in this scope";
const WASM_SYNC_ERROR: &str = "[ERROR] ❌ WASM files are NOT synchronized!";

/// How long `tilt up` may take to answer and finish its initial builds.
const TILT_READY: Duration = Duration::from_secs(60);
/// How long one `xtask sync` may run before the test kills it.
const SYNC_BOUND: Duration = Duration::from_secs(120);

type Scenario = (&'static str, fn(&mut Ctx));

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
];

/// The last panic's message and place, kept by the panic hook for the summary.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    let tilt = env::var("SYNC_REAL_TILT").unwrap_or_default();
    if tilt.is_empty() {
        println!(
            "real-Tilt tests skipped: SYNC_REAL_TILT is not set (set it to the real tilt binary: \
             `TILT=$(../shared/tilt/install.sh \"$PWD/target/real-tilt\") && SYNC_REAL_TILT=$TILT cargo test -p \
             sync-tests --test real_tilt`; SYNC_REAL_TILT_REPEAT=N repeats each scenario, \
             SYNC_REAL_TILT_ONLY=TEXT filters them by name)"
        );
        return ExitCode::SUCCESS;
    }
    let tilt = PathBuf::from(tilt);
    if !tilt.is_file() {
        println!("real tilt: SYNC_REAL_TILT={} is not a file", tilt.display());
        return ExitCode::FAILURE;
    }
    let repeat: usize = match env::var("SYNC_REAL_TILT_REPEAT").ok().filter(|text| !text.is_empty()) {
        None => 1,
        Some(text) => match text.parse() {
            Ok(count) if count > 0 => count,
            _ => {
                println!("real tilt: SYNC_REAL_TILT_REPEAT={text} is not a positive number");
                return ExitCode::FAILURE;
            }
        },
    };
    let only = env::var("SYNC_REAL_TILT_ONLY").unwrap_or_default();
    let chosen: Vec<&Scenario> = SCENARIOS.iter().filter(|(name, _)| name.contains(only.as_str())).collect();
    if chosen.is_empty() {
        println!("real tilt: no scenario matches SYNC_REAL_TILT_ONLY={only}");
        return ExitCode::FAILURE;
    }
    xtask_bin();
    panic::set_hook(Box::new(|info| {
        let message = match (info.payload().downcast_ref::<String>(), info.payload().downcast_ref::<&str>()) {
            (Some(text), _) => text.clone(),
            (None, Some(text)) => (*text).to_owned(),
            (None, None) => "(a panic without a message)".to_owned(),
        };
        let place = info.location().map(|at| format!("{}:{}", at.file(), at.line())).unwrap_or_default();
        *PANIC.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(format!("{message}\n  (at {place})"));
    }));

    let suite = Instant::now();
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, scenario) in chosen {
        for round in 1..=repeat {
            let label = if repeat > 1 { format!("{name} #{round}") } else { (*name).to_owned() };
            let mut ctx = Ctx { tilt: tilt.clone(), notes: Vec::new() };
            let started = Instant::now();
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| scenario(&mut ctx)));
            let took = started.elapsed().as_secs_f64();
            let notes = if ctx.notes.is_empty() { String::new() } else { format!(": {}", ctx.notes.join(", ")) };
            count += 1;
            match outcome {
                Ok(()) => println!("real tilt: {label} ... ok ({took:.1} s{notes})"),
                Err(_) => {
                    let why = PANIC.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take().unwrap_or_default();
                    println!("real tilt: {label} ... FAILED ({took:.1} s{notes})\n{why}\n");
                    failures.push(label);
                }
            }
        }
    }
    let took = suite.elapsed().as_secs_f64();
    if failures.is_empty() {
        println!("real tilt: {count} scenario runs passed in {took:.1} s");
        ExitCode::SUCCESS
    } else {
        println!("real tilt: {} of {count} scenario runs FAILED in {took:.1} s:", failures.len());
        for failure in &failures {
            println!("    {failure}");
        }
        ExitCode::FAILURE
    }
}

/// What a scenario gets: the real tilt, and a place for the timings it prints.
struct Ctx {
    tilt: PathBuf,
    notes: Vec<String>,
}

impl Ctx {
    fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

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
        let tilt = TiltUp::start(fx, dir);
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

fn second_line(run: &Run) -> &str {
    run.stdout.lines().nth(1).unwrap_or_default()
}

fn fail(run: &Run, what: &str) -> ! {
    panic!("{what}\n--- exit code: {:?}\n--- stdout\n{}--- stderr\n{}", run.code, run.stdout, run.stderr)
}

/// The exit code, and the start of the report's first and second lines.
fn expect(run: &Run, code: i32, first: &str, second: Option<&str>) {
    if run.code != Some(code) {
        fail(run, &format!("exit code {code} expected"));
    }
    if !run.first_line().starts_with(first) {
        fail(run, &format!("the report should start with `{first}`"));
    }
    if let Some(second) = second {
        if !second_line(run).starts_with(second) {
            fail(run, &format!("the report's second line should start with `{second}`"));
        }
    }
}

fn expect_triggers(run: &Run, fx: &Fixture, mark: usize, expected: &[&str]) {
    let triggered = fx.triggers_since(mark);
    if triggered != expected {
        fail(run, &format!("triggered {triggered:?}, expected {expected:?}"));
    }
}

#[track_caller]
fn assert_clean(repo: &Path) {
    let status = git(repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.is_empty(), "git status in {} is not clean:\n{status}", repo.display());
}

fn error_logs(repo: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = fs::read_dir(repo.join("logs"))
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|path| {
                    path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("sync-error-"))
                })
                .collect()
        })
        .unwrap_or_default();
    logs.sort();
    logs
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

    /// Starts `xtask sync --root ROOT ARGS` against the Tilt on `port`, through the wrapper.
    /// Tilt's analytics switches (CI and the like) are removed, then `env` set.
    fn spawn_sync(&self, root: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> RunningSync {
        let n = fs::read_dir(self.root()).map(|entries| entries.count()).unwrap_or(0);
        let (out, err) = (self.root().join(format!("sync-{n}.out")), self.root().join(format!("sync-{n}.err")));
        let mut command = Command::new(xtask_bin());
        command.arg("sync").arg("--root").arg(root).args(args).env("SYNC_TILT", self.bin.join("tilt"));
        without_tilt_environment(&mut command)
            .env("TILT_PORT", port.to_string())
            .envs(env.iter().copied())
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("creating the sync's stdout file"))
            .stderr(fs::File::create(&err).expect("creating the sync's stderr file"));
        if self.npm {
            command.env("PATH", path_with(&self.npm_dir));
        }
        let child = command.spawn().expect("starting xtask sync");
        RunningSync { child, out, err, started: Instant::now() }
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

/// An `xtask sync` running.
struct RunningSync {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    started: Instant,
}

impl RunningSync {
    /// Waits for its end, at most `bound` (then kills it and fails).
    fn finish(mut self, bound: Duration) -> Run {
        let deadline = self.started + bound;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for xtask sync") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        let run = Run {
            code: status.and_then(|status| status.code()),
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
        };
        if status.is_none() {
            fail(&run, &format!("xtask sync was still running after {bound:?}: killed"));
        }
        run
    }
}

// ---------------------------------------------------------------------------------------------
// Tilt.

/// A `tilt up` of our own, in a process group of its own, stopped when dropped.
struct TiltUp {
    child: Child,
    port: u16,
    real: PathBuf,
    log: PathBuf,
}

impl TiltUp {
    /// Starts `tilt up` in `dir` and waits until its initial builds are done.
    fn start(fx: &Fixture, dir: &Path) -> TiltUp {
        let port = free_port();
        let log = fx.root().join(format!("tilt-up-{port}.log"));
        let file = fs::File::create(&log).expect("creating the tilt up log");
        let child = Command::new(&fx.real)
            .args(["up", "--port", &port.to_string(), "--stream", "--web-mode=prod"])
            .env("TILT_DISABLE_ANALYTICS", "1")
            .env_remove("TILT_PORT")
            .env_remove("TILT_HOST")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("cloning a file handle"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("starting tilt up");
        let tilt = TiltUp { child, port, real: fx.real.clone(), log };
        tilt.wait("its initial builds", TILT_READY, initial_builds_done);
        tilt
    }

    /// `tilt ARGS --port P`: its stdout, or why it failed.
    fn call(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(&self.real)
            .args(args)
            .args(["--port", &self.port.to_string()])
            .env_remove("TILT_PORT")
            .stdin(Stdio::null())
            .output()
            .map_err(|err| format!("running tilt: {err}"))?;
        match output.status.success() {
            true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            false => Err(format!("tilt {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim())),
        }
    }

    /// Every UIResource, as `tilt get uiresources -o json` lists them.
    fn resources(&self) -> Result<Value, String> {
        let text = self.call(&["get", "uiresources", "-o", "json"])?;
        serde_json::from_str(&text).map_err(|err| format!("unreadable uiresources ({err}): {text}"))
    }

    /// One UIResource.
    #[track_caller]
    fn status(&self, name: &str) -> Value {
        let text = self.call(&["get", "uiresource", name, "-o", "json"]).unwrap_or_else(|err| panic!("{err}"));
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("unreadable uiresource ({err}): {text}"))
    }

    /// `tilt trigger` straight to the real tilt (not counted as the sync's).
    #[track_caller]
    fn trigger(&self, resource: &str) {
        self.call(&["trigger", resource]).unwrap_or_else(|err| panic!("{err}"));
    }

    /// Polls Tilt's resources until `done` says so, at most `bound`; else fails with why not
    /// and the end of the `tilt up` log.
    #[track_caller]
    fn wait(&self, what: &str, bound: Duration, done: impl Fn(&Value) -> Result<(), String>) {
        let started = Instant::now();
        let mut why = String::from("not asked yet");
        while started.elapsed() < bound {
            if self.exited() {
                panic!("tilt up exited while waiting for {what}\n{}", self.log_tail());
            }
            match self.resources().and_then(|list| done(&list)) {
                Ok(()) => return,
                Err(reason) => why = reason,
            }
            thread::sleep(Duration::from_millis(250));
        }
        panic!("Tilt on port {} did not reach {what} within {bound:?}: {why}\n{}", self.port, self.log_tail());
    }

    /// Whether `tilt up` has exited (`try_wait` needs `&mut`; /proc shows it without reaping it).
    fn exited(&self) -> bool {
        !alive(self.child.id())
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!("--- last lines of `tilt up` ({})\n{}", self.log.display(), lines[from..].join("\n"))
    }

    /// Sends `SIG` to tilt up's process group.
    fn signal(&mut self, sig: &str) {
        signal(&format!("-{}", self.child.id()), sig);
    }
}

impl Drop for TiltUp {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        // Whatever is left of its group (a wrapper, a command it ran).
        self.signal("KILL");
        let _ = self.child.wait();
    }
}

/// Tilt's initial builds are done: each resource has built (or waits for a dependency that
/// failed), none is building or queued, and every serve process that should run has started.
fn initial_builds_done(list: &Value) -> Result<(), String> {
    let tiltfile = resource(list, "(Tiltfile)")?;
    if tiltfile["status"]["buildHistory"].as_array().is_none_or(Vec::is_empty) {
        return Err("the Tiltfile is not loaded yet".to_owned());
    }
    for name in RESOURCES {
        let status = &resource(list, name)?["status"];
        if status["currentBuild"]["startTime"].is_string() {
            return Err(format!("{name} is building"));
        }
        if status["queued"] == true || status["pendingBuildSince"].is_string() {
            return Err(format!("{name} has a build pending"));
        }
        if status["waiting"].is_object() {
            // Waiting is final only behind a dependency that failed (Tilt clears `waiting` a
            // moment after a dependency succeeds).
            blocked_for_good(list, name, 0)?;
            continue;
        }
        let Some(last) = status["buildHistory"].as_array().and_then(|history| history.first()) else {
            return Err(format!("{name} has not built yet"));
        };
        if last["error"].is_null() && status["runtimeStatus"] == "pending" {
            return Err(format!("{name}'s serve process has not started"));
        }
    }
    Ok(())
}

/// `name` waits on dependencies that will not get ready by themselves: one failed its last build
/// (or is itself blocked so) and none is busy.
fn blocked_for_good(list: &Value, name: &str, depth: usize) -> Result<(), String> {
    let status = &resource(list, name)?["status"];
    let on = status["waiting"]["on"].as_array().cloned().unwrap_or_default();
    if depth > RESOURCES.len() {
        return Err(format!("{name} waits in a cycle"));
    }
    let mut failed = false;
    for dependency in &on {
        let dependency = dependency["name"].as_str().unwrap_or_default();
        let status = &resource(list, dependency)?["status"];
        if status["waiting"].is_object() {
            blocked_for_good(list, dependency, depth + 1)?;
            failed = true;
        } else if status["currentBuild"]["startTime"].is_string() || status["queued"] == true {
            return Err(format!("{name} waits on {dependency}, which is building"));
        } else {
            match status["buildHistory"][0]["error"].is_string() {
                true => failed = true,
                false if status["buildHistory"][0].is_object() => {}
                false => return Err(format!("{name} waits on {dependency}, which has not built yet")),
            }
        }
    }
    match failed {
        true => Ok(()),
        false => Err(format!("{name} waits on dependencies that succeeded: it is about to build")),
    }
}

fn resource<'a>(list: &'a Value, name: &str) -> Result<&'a Value, String> {
    list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["metadata"]["name"] == name))
        .ok_or_else(|| format!("Tilt has no resource `{name}` yet"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("a local address").port()
}

/// `kill -SIG TARGET` (a pid, or `-PGID` for a process group); errors ignored.
fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A process's state and group, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let group = fields.nth(1)?.parse().ok()?;
    Some((state, group))
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn process_group(pid: u32) -> Option<u32> {
    stat(pid).map(|(_, group)| group)
}
