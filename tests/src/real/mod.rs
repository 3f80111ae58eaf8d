//! What the suites against the real Tilt share (tests/tests/real_tilt.rs: Citadel's resources as
//! local resources; tests/tests/real_compose.rs: as docker-compose services on a real Docker):
//! running named scenarios (repeated, filtered, summed up), a `tilt up` of their own, an `xtask
//! sync` bounded in time, and the checks of its report.

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

use crate::{git, without_tilt_environment, xtask_bin, Run};

pub mod local;
pub mod soak;

/// Citadel's resources, in step order.
pub const CITADEL_RESOURCES: [&str; 4] = ["sync-wasm-client", "server", "internal-service", "ui"];

/// How long `tilt up` may take to answer and finish its initial builds.
const TILT_READY: Duration = Duration::from_secs(120);

/// What a scenario gets: the real tilt, and a place for the timings it prints.
pub struct Ctx {
    pub tilt: PathBuf,
    pub notes: Vec<String>,
}

impl Ctx {
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
}

pub type Scenario = (&'static str, fn(&mut Ctx));

/// The last panic's message and place, kept by the panic hook for the summary.
static PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Runs `scenarios` against the real tilt named by `{var}` (e.g. `SYNC_REAL_TILT`), each
/// `{var}_REPEAT` times, those whose name contains `{var}_ONLY`, and prints a line each and a
/// summary, as `label`. Without the variable it prints that the suite was skipped, and `how`.
pub fn run_suite(label: &str, var: &str, how: &str, scenarios: &[Scenario]) -> ExitCode {
    let tilt = env::var(var).unwrap_or_default();
    if tilt.is_empty() {
        println!("{label} tests skipped: {var} is not set ({how}; {var}_REPEAT=N repeats each scenario, {var}_ONLY=TEXT filters them by name)");
        return ExitCode::SUCCESS;
    }
    let tilt = PathBuf::from(tilt);
    if !tilt.is_file() {
        println!("{label}: {var}={} is not a file", tilt.display());
        return ExitCode::FAILURE;
    }
    let repeat: usize = match env::var(format!("{var}_REPEAT")).ok().filter(|text| !text.is_empty()) {
        None => 1,
        Some(text) => match text.parse() {
            Ok(count) if count > 0 => count,
            _ => {
                println!("{label}: {var}_REPEAT={text} is not a positive number");
                return ExitCode::FAILURE;
            }
        },
    };
    let only = env::var(format!("{var}_ONLY")).unwrap_or_default();
    let chosen: Vec<&Scenario> = scenarios.iter().filter(|(name, _)| name.contains(only.as_str())).collect();
    if chosen.is_empty() {
        println!("{label}: no scenario matches {var}_ONLY={only}");
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
            let name_round = if repeat > 1 { format!("{name} #{round}") } else { (*name).to_owned() };
            let mut ctx = Ctx { tilt: tilt.clone(), notes: Vec::new() };
            let started = Instant::now();
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| scenario(&mut ctx)));
            let took = started.elapsed().as_secs_f64();
            let notes = if ctx.notes.is_empty() { String::new() } else { format!(": {}", ctx.notes.join(", ")) };
            count += 1;
            match outcome {
                Ok(()) => println!("{label}: {name_round} ... ok ({took:.1} s{notes})"),
                Err(_) => {
                    let why = PANIC.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take().unwrap_or_default();
                    println!("{label}: {name_round} ... FAILED ({took:.1} s{notes})\n{why}\n");
                    failures.push(name_round);
                }
            }
        }
    }
    let took = suite.elapsed().as_secs_f64();
    if failures.is_empty() {
        println!("{label}: {count} scenario runs passed in {took:.1} s");
        ExitCode::SUCCESS
    } else {
        println!("{label}: {} of {count} scenario runs FAILED in {took:.1} s:", failures.len());
        for failure in &failures {
            println!("    {failure}");
        }
        ExitCode::FAILURE
    }
}

/// Starts `xtask sync --root ROOT ARGS` against the Tilt on `port` through `tilt` (a program),
/// its output kept in `outputs`. Tilt's analytics switches (CI and the like) are removed, then
/// `env` set.
pub fn spawn_sync(
    tilt: &Path,
    outputs: &Path,
    root: &Path,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> RunningSync {
    let n = fs::read_dir(outputs).map(|entries| entries.count()).unwrap_or(0);
    let (out, err) = (outputs.join(format!("sync-{n}.out")), outputs.join(format!("sync-{n}.err")));
    let mut command = Command::new(xtask_bin());
    command.arg("sync").arg("--root").arg(root).args(args).env("SYNC_TILT", tilt);
    without_tilt_environment(&mut command)
        .env("TILT_PORT", port.to_string())
        .envs(env.iter().copied())
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).expect("creating the sync's stdout file"))
        .stderr(fs::File::create(&err).expect("creating the sync's stderr file"));
    let child = command.spawn().expect("starting xtask sync");
    RunningSync { child, out, err, started: Instant::now() }
}

/// An `xtask sync` running.
pub struct RunningSync {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    pub started: Instant,
}

impl RunningSync {
    /// Ctrl-C, as a terminal sends it.
    pub fn interrupt(&self) {
        signal(&self.child.id().to_string(), "INT");
    }

    /// Waits for its end, at most `bound` (then kills it and fails).
    pub fn finish(self, bound: Duration) -> Run {
        match self.finish_within(bound) {
            Some(run) => run,
            None => panic!("xtask sync was still running after {bound:?}: killed"),
        }
    }

    /// Waits for its end, at most `bound`: None when it was still running (then killed).
    pub fn finish_within(mut self, bound: Duration) -> Option<Run> {
        let deadline = self.started + bound;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for xtask sync") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        Some(Run {
            code: status.code(),
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
        })
    }
}

/// A `tilt up` of our own, in a process group of its own, stopped when dropped.
pub struct TiltUp {
    child: Child,
    pub port: u16,
    real: PathBuf,
    log: PathBuf,
}

impl TiltUp {
    /// Starts `tilt up` in `dir` and waits until its initial builds are done.
    pub fn start(real: &Path, dir: &Path, logs: &Path, ready: impl Fn(&Value) -> Result<(), String>) -> TiltUp {
        let port = free_port();
        let log = logs.join(format!("tilt-up-{port}.log"));
        let file = fs::File::create(&log).expect("creating the tilt up log");
        let child = Command::new(real)
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
        let tilt = TiltUp { child, port, real: real.to_owned(), log };
        tilt.wait("its initial builds", TILT_READY, ready);
        tilt
    }

    /// `tilt ARGS --port P`: its stdout, or why it failed.
    pub fn call(&self, args: &[&str]) -> Result<String, String> {
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

    /// The tilt binary it runs.
    pub fn real(&self) -> &Path {
        &self.real
    }

    /// Every UIResource, as `tilt get uiresources -o json` lists them.
    pub fn resources(&self) -> Result<Value, String> {
        let text = self.call(&["get", "uiresources", "-o", "json"])?;
        serde_json::from_str(&text).map_err(|err| format!("unreadable uiresources ({err}): {text}"))
    }

    /// One UIResource.
    #[track_caller]
    pub fn status(&self, name: &str) -> Value {
        let text = self.call(&["get", "uiresource", name, "-o", "json"]).unwrap_or_else(|err| panic!("{err}"));
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("unreadable uiresource ({err}): {text}"))
    }

    /// `tilt trigger` straight to the real tilt (not counted as the sync's).
    #[track_caller]
    pub fn trigger(&self, resource: &str) {
        self.call(&["trigger", resource]).unwrap_or_else(|err| panic!("{err}"));
    }

    /// Polls Tilt's resources until `done` says so, at most `bound`; else fails with why not
    /// and the end of the `tilt up` log.
    #[track_caller]
    pub fn wait(&self, what: &str, bound: Duration, done: impl Fn(&Value) -> Result<(), String>) {
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
    pub fn exited(&self) -> bool {
        !alive(self.child.id())
    }

    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!("--- last lines of `tilt up` ({})\n{}", self.log.display(), lines[from..].join("\n"))
    }

    /// Sends `SIG` to tilt up's process group.
    pub fn signal(&mut self, sig: &str) {
        signal(&format!("-{}", self.child.id()), sig);
    }
}

impl Drop for TiltUp {
    /// Stops Tilt and whatever is left of its process group (a wrapper, a command it ran). The
    /// child is reaped only at the end: until then its number cannot name another process or
    /// group, so the signals reach nobody else.
    fn drop(&mut self) {
        if alive(self.child.id()) {
            self.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(self.child.id()) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        self.signal("KILL");
        let _ = self.child.wait();
    }
}

/// Tilt's initial builds are done: each resource has built (or waits for a dependency that
/// failed), none is building or queued, and every serve process that should run has started.
pub fn initial_builds_done(list: &Value) -> Result<(), String> {
    let tiltfile = resource(list, "(Tiltfile)")?;
    if tiltfile["status"]["buildHistory"].as_array().is_none_or(Vec::is_empty) {
        return Err("the Tiltfile is not loaded yet".to_owned());
    }
    for name in CITADEL_RESOURCES {
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
pub fn blocked_for_good(list: &Value, name: &str, depth: usize) -> Result<(), String> {
    let status = &resource(list, name)?["status"];
    let on = status["waiting"]["on"].as_array().cloned().unwrap_or_default();
    if depth > CITADEL_RESOURCES.len() {
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

pub fn second_line(run: &Run) -> &str {
    run.stdout.lines().nth(1).unwrap_or_default()
}

pub fn fail(run: &Run, what: &str) -> ! {
    panic!("{what}\n--- exit code: {:?}\n--- stdout\n{}--- stderr\n{}", run.code, run.stdout, run.stderr)
}

/// The exit code, and the start of the report's first and second lines.
pub fn expect(run: &Run, code: i32, first: &str, second: Option<&str>) {
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

#[track_caller]
pub fn assert_clean(repo: &Path) {
    let status = git(repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.is_empty(), "git status in {} is not clean:\n{status}", repo.display());
}

pub fn error_logs(repo: &Path) -> Vec<PathBuf> {
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

pub fn resource<'a>(list: &'a Value, name: &str) -> Result<&'a Value, String> {
    list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["metadata"]["name"] == name))
        .ok_or_else(|| format!("Tilt has no resource `{name}` yet"))
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("a local address").port()
}

/// `kill -SIG TARGET` (a pid, or `-PGID` for a process group); errors ignored.
pub fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A process's state and group, from `/proc/PID/stat`.
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let group = fields.nth(1)?.parse().ok()?;
    Some((state, group))
}

/// When a process started (clock ticks since boot, `/proc/PID/stat`'s 22nd field): with its
/// pid, it names one process, never another that got the number later.
pub fn start_time(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

pub fn process_group(pid: u32) -> Option<u32> {
    stat(pid).map(|(_, group)| group)
}
