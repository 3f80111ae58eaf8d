//! End-to-end scenarios of the real `xtask sync` binary against the REAL Tilt running Citadel's
//! shape as it really runs: docker-compose services, images built by a real Docker daemon,
//! readiness from compose healthchecks (`../shared/docker/`: its `example/` workspace holds
//! Citadel's Tiltfile and `.dockerignore`, images `FROM` a local busybox base, and files under
//! `ctl/` that switch outcomes). One workspace and one `tilt up` serve every scenario, in
//! order; each scenario sets the switches it needs (all others good), and its syncs rebuild
//! what they judge, so a failed scenario does not spill into the next.
//!
//! A plain `main` (`harness = false`): it says it skipped, and why, without SYNC_REAL_TILT (the
//! real tilt binary), without a Docker daemon that answers, or without the base image
//! (`../shared/docker/setup.sh DIR` makes all of it; `.ci/run` runs it where it can).
//! `SYNC_REAL_COMPOSE=PATH` names the example workspace to copy (default
//! `../shared/docker/example`); `SYNC_REAL_TILT_REPEAT` / `SYNC_REAL_TILT_ONLY` as in
//! real_tilt.rs.

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;
use sync_tests::{
    git,
    real::{
        error_logs, expect, fail, initial_builds_done, resource, run_suite, second_line, spawn_sync, Ctx, Scenario,
        TiltUp,
    },
    status::SyncStatus,
    write, Run,
};
use tempfile::TempDir;

/// How long one `xtask sync` may run before the test kills it.
const SYNC_BOUND: Duration = Duration::from_secs(120);

const SCENARIOS: &[Scenario] = &[
    ("clean-all-force-update", clean_all_force_update),
    ("kept-running-container", kept_running_container),
    ("source-edit-recreates", source_edit_recreates),
    ("vite-before-the-builds-end", vite_before_the_builds_end),
    ("queued-force-update-stops-the-new-container", queued_force_update),
    ("server-rust-error-in-the-image-build", server_rust_error),
    ("server-crash-after-start", server_crash_after_start),
    ("server-unhealthy-and-kept-unhealthy", server_unhealthy),
    ("one-shot-exits-1-with-an-error-line", one_shot_exits_with_an_error_line),
    ("one-shot-exits-1-silently", one_shot_exits_silently),
];

/// The workspace and its Tilt, made by the first scenario, stopped at the end.
static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

fn main() -> ExitCode {
    if let Err(why) = docker_ready() {
        println!("real-compose tests skipped: {why}");
        return ExitCode::SUCCESS;
    }
    let how = "set it to the real tilt binary (`../shared/tilt/install.sh DIR` prints it); Docker and the base \
               image come from `../shared/docker/setup.sh DIR`";
    let code = run_suite("real compose", "SYNC_REAL_TILT", how, SCENARIOS);
    // Tilt stops, then `docker compose down` removes the scenarios' containers.
    drop(SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take());
    code
}

/// How long the set-up `.ci/run` started in the background may take (apt, the Compose
/// download, the daemon).
const SETUP_BOUND: Duration = Duration::from_secs(600);

/// Docker answers, Compose v2 is there, and the example's base image is built; first, when
/// `SYNC_DOCKER_SETUP=DIR` names a set-up running in the background (`.ci/run`), its end.
fn docker_ready() -> Result<(), String> {
    if let Some(dir) = env::var_os("SYNC_DOCKER_SETUP").filter(|dir| !dir.is_empty()).map(PathBuf::from) {
        let started = Instant::now();
        let status = loop {
            if let Ok(status) = fs::read_to_string(dir.join("setup.status")) {
                break status.trim().to_owned();
            }
            if started.elapsed() > SETUP_BOUND {
                return Err(format!("../shared/docker/setup.sh was still running after {SETUP_BOUND:?}"));
            }
            thread::sleep(Duration::from_millis(500));
        };
        if status != "0" {
            let log = fs::read_to_string(dir.join("setup.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(format!("../shared/docker/setup.sh failed ({status}): {}", tail.join(" / ")));
        }
    }
    let ok = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&["info"]) {
        return Err("no Docker daemon answers `docker info` (run ../shared/docker/setup.sh DIR as root)".to_owned());
    }
    if !ok(&["compose", "version"]) {
        return Err("`docker compose` (Compose v2) is missing (../shared/docker/setup.sh installs it)".to_owned());
    }
    if !ok(&["image", "inspect", "sync-test-base"]) {
        return Err("the base image `sync-test-base` is missing (../shared/docker/setup.sh builds it)".to_owned());
    }
    if !example().join("docker-compose.yml").is_file() {
        return Err(format!("no example workspace at {}", example().display()));
    }
    Ok(())
}

fn example() -> PathBuf {
    env::var_os("SYNC_REAL_COMPOSE")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/docker/example"), PathBuf::from)
}

/// The example workspace, copied into a git repository, under its own `tilt up`.
struct Shared {
    // Dropped in this order: Tilt first, then the project's containers, then the files.
    tilt: Option<TiltUp>,
    repo: PathBuf,
    temp: Option<TempDir>,
}

impl Shared {
    fn start(real: &Path) -> Shared {
        let temp = tempfile::Builder::new().prefix("real-compose-").tempdir().expect("making a temp dir");
        // Tilt names the compose project after the folder: one of our own.
        let repo = temp.path().join(format!("citadel-{}", std::process::id()));
        copy_tree(&example(), &repo);
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        git(&repo, &["config", "user.email", "dev@example.com"]);
        git(&repo, &["config", "user.name", "Dev"]);
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "--quiet", "-m", "initial"]);
        let tilt = TiltUp::start(real, &repo, temp.path(), initial_builds_done);
        Shared { tilt: Some(tilt), repo, temp: Some(temp) }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        drop(self.tilt.take());
        let _ = Command::new("docker")
            .args(["compose", "down", "--timeout", "1", "--remove-orphans"])
            .current_dir(&self.repo)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if thread::panicking() {
            if let Some(temp) = self.temp.take() {
                eprintln!("real compose: the workspace is kept in {}", temp.keep().display());
            }
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("making a directory");
    for entry in fs::read_dir(from).expect("reading the example workspace") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            // Read-only sources: the copy must be writable (ctl files change).
            write(&target, &fs::read_to_string(entry.path()).expect("reading an example file"));
        }
    }
}

/// What a scenario works with: the shared workspace and its Tilt.
struct Compose<'c> {
    ctx: &'c mut Ctx,
    repo: PathBuf,
    port: u16,
    tilt: PathBuf,
    outputs: PathBuf,
}

impl Compose<'_> {
    /// Runs `f` with the shared workspace, started on first use.
    fn with(ctx: &mut Ctx, f: impl FnOnce(&mut Compose)) {
        let mut shared = SHARED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if shared.is_none() {
            let started = Instant::now();
            *shared = Some(Shared::start(&ctx.tilt));
            ctx.note(format!("tilt up and the images {:.1} s", started.elapsed().as_secs_f64()));
        }
        let shared = shared.as_ref().expect("started above");
        let tilt = shared.tilt.as_ref().expect("Tilt runs while the suite does");
        let outputs = shared.temp.as_ref().expect("the workspace's directory").path().to_owned();
        let mut compose =
            Compose { ctx, repo: shared.repo.clone(), port: tilt.port, tilt: tilt.real().to_owned(), outputs };
        // A scenario that failed half-way may have left a switch set.
        compose.reset();
        f(&mut compose);
    }

    fn sync(&mut self, args: &[&str]) -> Run {
        let running = spawn_sync(&self.tilt, &self.outputs, &self.repo, self.port, args, &[]);
        let started = running.started;
        let run = running.finish(SYNC_BOUND);
        self.ctx.note(format!("sync {} {:.1} s", args.join(" "), started.elapsed().as_secs_f64()));
        run
    }

    /// Sets a `ctl/` switch; Tilt sees the change as one in the services' build contexts.
    fn set(&self, name: &str, value: &str) {
        write(&self.repo.join("ctl").join(name), &format!("{value}\n"));
    }

    /// Appends a comment to a file of the workspace (an edit Tilt sees).
    fn edit(&self, path: &str) {
        let path = self.repo.join(path);
        let text = fs::read_to_string(&path).unwrap_or_default();
        write(&path, &format!("{text}// edited {:?}\n", Instant::now()));
    }

    fn log(&self, step: &str) -> String {
        fs::read_to_string(self.repo.join("logs").join(format!("{step}.log"))).unwrap_or_default()
    }

    /// `tilt …` on this workspace's Tilt.
    fn tilt(&self, args: &[&str]) -> String {
        let output = Command::new(&self.tilt)
            .args(args)
            .args(["--port", &self.port.to_string()])
            .env("TILT_DISABLE_ANALYTICS", "1")
            .output()
            .expect("running tilt");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Every switch as the example has it: every build and service good.
    fn reset(&self) {
        let good = [("server.build", "ok"), ("server.mode", "ok"), ("internal.mode", "ok"), ("sync.exit", "0")];
        for (name, value) in good {
            if fs::read_to_string(self.repo.join("ctl").join(name)).unwrap_or_default().trim() != value {
                self.set(name, value);
            }
        }
    }
}

/// `sync --json`'s report.
fn report(run: &Run) -> SyncStatus {
    serde_json::from_str(&run.stdout).unwrap_or_else(|err| fail(run, &format!("not a sync report: {err}")))
}

/// From Tilt's initial builds (or the scenarios before): every step's build is a force update,
/// every old container stopped (143) while the new one starts.
fn clean_all_force_update(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        let run = c.sync(&["--all"]);
        expect(&run, 0, "SUCCESS: ", None);
        if !c.log("server").contains("Force update") {
            fail(&run, &format!("the server's build should have been a force update:\n{}", c.log("server")));
        }
    });
}

/// A file in the server's build context that its image does not copy: Tilt builds, Compose
/// keeps the running container (`Running`), which is ready for our build at once.
fn kept_running_container(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        c.edit("citadel-workspace-types/src/lib.rs");
        let run = c.sync(&["--step", "server"]);
        expect(&run, 0, "SUCCESS: ", None);
        let log = c.log("server");
        if !log.lines().any(|line| line.trim().starts_with("Container") && line.trim().ends_with("Running")) {
            fail(&run, &format!("Compose should have kept the container running:\n{log}"));
        }
    });
}

/// The server's source changed: its image changes and Compose recreates the container.
fn source_edit_recreates(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        c.edit("citadel-workspace-server-kernel/src/main.rs");
        let run = c.sync(&["--step", "server"]);
        expect(&run, 0, "SUCCESS: ", None);
        if !c.log("server").contains("Recreate") {
            fail(&run, &format!("Compose should have recreated the container:\n{}", c.log("server")));
        }
    });
}

/// Vite prints `ready in` as soon as its container starts, often before the build's last
/// lines: it is our container's line all the same.
fn vite_before_the_builds_end(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        for _ in 0..2 {
            let run = c.sync(&["--step", "ui", "--timeout", "60s"]);
            expect(&run, 0, "SUCCESS: ", None);
        }
    });
}

/// Another terminal triggers the server just before the sync: ours is queued behind that build,
/// and as a force update it stops the container that build just started (143): not ours.
fn queued_force_update(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        c.tilt(&["trigger", "server"]);
        thread::sleep(Duration::from_millis(300));
        let run = c.sync(&["--step", "server", "--timeout", "60s"]);
        expect(&run, 0, "SUCCESS: ", None);
    });
}

/// A Rust error in the server's image build: Step 2 fails on the compiler's line, without
/// BuildKit's prefix, at the compiler's place.
fn server_rust_error(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        c.set("server.build", "fail");
        let run = c.sync(&["--all", "--timeout", "60s"]);
        expect(
            &run,
            1,
            "ERROR: ",
            Some(
                "Step 2 FAILED: server rebuild error: error[E0425]: cannot find value `peer_id` in this scope at \
                 citadel-workspace-server-kernel/src/kernel.rs:40:9",
            ),
        );
        let report = report(&c.sync(&["--step", "server", "--json", "--timeout", "60s"]));
        let server = &report.steps[1];
        let path = server.location.as_ref().map(|at| at.path.as_str());
        if path != Some("citadel-workspace-server-kernel/src/kernel.rs") || server.build.is_none() {
            panic!("the JSON report should give the place and the build: {server:?}");
        }
        if error_logs(&c.repo).is_empty() {
            fail(&run, "the failure's log should be saved");
        }
    });
}

/// The server starts, turns healthy, and exits 1 two seconds later: the run fails.
fn server_crash_after_start(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        c.set("server.mode", "crash");
        let run = c.sync(&["--step", "server", "--timeout", "60s"]);
        expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: server's container stopped"));
        if !second_line(&run).contains("code 1") {
            fail(&run, "the cause should name the exit code 1");
        }
    });
}

/// The server never listens: unhealthy, at once, named so; and again when Compose keeps that
/// unhealthy container (no new health event comes for it).
fn server_unhealthy(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        c.set("server.mode", "unhealthy");
        let run = c.sync(&["--step", "server", "--timeout", "60s"]);
        expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: server's container reports unhealthy"));
        c.edit("citadel-workspace-types/src/lib.rs");
        let started = Instant::now();
        let run = c.sync(&["--step", "server", "--timeout", "60s"]);
        expect(&run, 1, "ERROR: ", Some("Step 2 FAILED: server's container reports unhealthy"));
        if started.elapsed() > Duration::from_secs(20) {
            fail(&run, "a kept unhealthy container should fail at once, not after the timeout");
        }
    });
}

/// The one-shot WASM job exits 1 after an `[ERROR]` line: Step 1 fails on it.
fn one_shot_exits_with_an_error_line(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        c.set("sync.exit", "1");
        let run = c.sync(&["--all", "--timeout", "60s"]);
        expect(&run, 1, "ERROR: ", Some("Step 1 FAILED: sync-wasm-client rebuild error: [ERROR] WASM build failed"));
    });
}

/// The one-shot WASM job exits 1 without a word: Step 1 fails on its exit.
fn one_shot_exits_silently(ctx: &mut Ctx) {
    Compose::with(ctx, |c| {
        c.set("sync.exit", "silent1");
        let run = c.sync(&["--step", "sync-wasm-client", "--timeout", "60s"]);
        expect(&run, 1, "ERROR: ", Some("Step 1 FAILED: sync-wasm-client's container stopped"));
        let status = c.tilt(&["get", "uiresources", "-o", "json"]);
        let list: Value = serde_json::from_str(&status).unwrap_or_default();
        if let Ok(wasm) = resource(&list, "sync-wasm-client") {
            c.ctx.note(format!("Tilt: runtime {}", wasm["status"]["runtimeStatus"]));
        }
    });
}
