//! Helpers for the end-to-end tests: a throwaway git repository laid out like the Citadel
//! workspace, typed scenarios for the Tilt stand-in (`scenario`, `scenarios`; the stand-in is
//! `src/bin/tilt.rs`), and runs of the real `xtask` binary against both, whose `--json` and
//! `logs/sync-status.json` they read through the xtask's own type (`status`).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    sync::OnceLock,
};

pub use tempfile::TempDir;

pub mod real;
pub mod scenario;
pub mod scenarios;
/// The sync's status document, as the xtask writes it: its very source file, compiled here too
/// (the xtask is a binary in a workspace of its own, which this crate cannot depend on), so the
/// tests read what the binary writes with the one definition there is, never a copy that could
/// drift. Its own test pins the spelling of every field and word.
#[path = "../../xtask/src/store/status.rs"]
pub mod status;

pub use scenario::{BuildSpec, Kind, Resource, Scenario};

/// Success lines of the Citadel services, as `../shared/citadel-workspace.md` records them.
pub const WASM_DONE: &str = "\u{1b}[0;32m[INFO]\u{1b}[0m WASM client synchronization complete!";
pub const SERVER_RUNNING: &str =
    "     Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`";
pub const INTERNAL_RUNNING: &str =
    "     Running `target/debug/citadel-workspace-internal-service --bind '0.0.0.0:12345'`";
pub const UI_READY: &str = "  VITE v5.4.2  ready in 412 ms";

/// The directory holding the workspace's built binaries (`target/debug`), found from this
/// test executable (`target/debug/deps/…`).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    exe.parent().and_then(Path::parent).expect("tests run from target/<profile>/deps").to_path_buf()
}

/// The `xtask` binary, built once per test process so that the tests never run a stale one.
/// The xtask is a Cargo workspace of its own (as installed into Citadel), built in its own
/// target directory. `SYNC_TESTS_XTASK=PATH` runs another build instead (e.g. an older
/// engine, to see a test fail without its fix).
pub fn xtask_bin() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        if let Some(other) = std::env::var_os("SYNC_TESTS_XTASK").filter(|path| !path.is_empty()) {
            return PathBuf::from(other);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/Cargo.toml");
        let output = Command::new(cargo)
            .args(["build", "--quiet", "--bin", "xtask", "--message-format", "json-render-diagnostics"])
            .arg("--manifest-path")
            .arg(&manifest)
            .stderr(Stdio::inherit())
            .output()
            .expect("running cargo build for xtask");
        assert!(output.status.success(), "cargo build --manifest-path xtask/Cargo.toml failed");
        built_executable(&String::from_utf8_lossy(&output.stdout), "xtask")
    })
}

/// The program `name` a `cargo build --message-format json` built, from its messages: where
/// cargo put it (CARGO_TARGET_DIR, `build.target-dir`, …), never a guess.
pub fn built_executable(messages: &str, name: &str) -> PathBuf {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == name)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reports no program `{name}` built"))
}

/// The target directory these tests were built in (`target/debug/deps/…` is the test's own
/// path): where a test builds what must outlive it.
pub fn target_dir() -> PathBuf {
    bin_dir().parent().expect("the profile's folder is in the target directory").to_path_buf()
}

/// The Tilt stand-in: cargo builds this package's binaries before its integration tests.
pub fn tilt_bin() -> PathBuf {
    bin_dir().join("tilt")
}

/// What in a test's own environment would change which Tilt `tilt` talks to, or what it
/// prints: the Tilt it picks, and Tilt's analytics switches (any of them makes `tilt logs`
/// print a notice on stderr).
const TILT_ENVIRONMENT: [&str; 5] = ["TILT_PORT", "TILT_HOST", "CI", "DO_NOT_TRACK", "TILT_DISABLE_ANALYTICS"];

/// `command` without the variables of [`TILT_ENVIRONMENT`]: a test sets those it means.
pub fn without_tilt_environment(command: &mut Command) -> &mut Command {
    TILT_ENVIRONMENT.iter().fold(command, |command, key| command.env_remove(key))
}

/// The built-in protocol (`xtask/sync.toml`) with each `(from, to)` replaced once, e.g. a
/// shorter `remediation_wait`; written aside, it is passed with `--config`.
pub fn protocol_edited(replacements: &[(&str, &str)]) -> String {
    let mut protocol = include_str!("../../xtask/sync.toml").to_owned();
    for (from, to) in replacements {
        assert!(protocol.contains(from), "the protocol has no `{from}`");
        protocol = protocol.replacen(from, to, 1);
    }
    protocol
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git").args(args).current_dir(dir).output().expect("running git");
    assert!(output.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("creating a directory");
    }
    fs::write(path, text).expect("writing a file");
}

/// A git repository laid out like the Citadel workspace, and a Tilt stand-in serving it.
pub struct Workspace {
    _temp: TempDir,
    pub root: PathBuf,
    /// Outside the repository: the scenario, the stand-in's state, fake programs.
    pub aside: PathBuf,
}

/// The directories of the fixture that Citadel holds as git submodules.
const SUBMODULES: [&str; 2] = ["citadel-internal-service", "citadel-workspaces"];

/// `git init` with a committer, then one commit of everything in `dir`.
fn init_repository(dir: &Path) {
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    git(dir, &["config", "user.email", "dev@example.com"]);
    git(dir, &["config", "user.name", "Dev"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "initial"]);
}

/// The Citadel-shaped template every test workspace (and `cargo xtask demo`) starts from.
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/citadel");

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("creating a directory");
    for entry in fs::read_dir(from).expect("reading the fixture") {
        let entry = entry.expect("a fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copying a fixture file");
        }
    }
}

impl Workspace {
    /// A Citadel-shaped repository with one commit, in a directory whose name has a space and
    /// a non-ASCII letter (paths like that must work). `citadel-internal-service` and
    /// `citadel-workspaces` are real git submodules, as in Citadel.
    pub fn citadel() -> Workspace {
        let temp = tempfile::Builder::new().prefix("sync-e2e-").tempdir().expect("making a temp dir");
        let root = temp.path().join("citadel wörkspace");
        let aside = temp.path().join("aside");
        fs::create_dir_all(&aside).expect("making a dir");
        copy_tree(Path::new(FIXTURE), &root);
        for submodule in SUBMODULES {
            let upstream = aside.join("upstream").join(submodule);
            fs::create_dir_all(aside.join("upstream")).expect("making a dir");
            fs::rename(root.join(submodule), &upstream).expect("moving a submodule's files aside");
            init_repository(&upstream);
        }
        init_repository(&root);
        for submodule in SUBMODULES {
            let upstream = aside.join("upstream").join(submodule);
            let url = upstream.to_str().expect("UTF-8 path");
            git(&root, &["-c", "protocol.file.allow=always", "submodule", "add", "--quiet", url, submodule]);
            let checkout = root.join(submodule);
            git(&checkout, &["config", "user.email", "dev@example.com"]);
            git(&checkout, &["config", "user.name", "Dev"]);
        }
        git(&root, &["commit", "--quiet", "-m", "add submodules"]);
        let root = root.canonicalize().expect("canonical root");
        Workspace { _temp: temp, root, aside }
    }

    /// Commits everything in the repository at `dir` (relative to the root).
    pub fn commit_all(&self, dir: &str, message: &str) {
        let dir = self.root.join(dir);
        git(&dir, &["add", "--all"]);
        git(&dir, &["commit", "--quiet", "-m", message]);
    }

    /// A bare repository as `origin`, with `main` pushed and tracked.
    pub fn add_origin(&self) -> PathBuf {
        let origin = self.bare_origin();
        git(&self.root, &["push", "--quiet", "--no-verify", "-u", "origin", "main"]);
        origin
    }

    /// A bare repository as `origin` holding HEAD as `main`, even when HEAD is detached.
    pub fn add_origin_from_detached(&self) -> PathBuf {
        let origin = self.bare_origin();
        git(&self.root, &["push", "--quiet", "--no-verify", "origin", "HEAD:refs/heads/main"]);
        origin
    }

    fn bare_origin(&self) -> PathBuf {
        let origin = self.aside.join("origin.git");
        git(&self.aside, &["init", "--quiet", "--bare", "--initial-branch=main", origin.to_str().expect("UTF-8 path")]);
        git(&self.root, &["remote", "add", "origin", origin.to_str().expect("UTF-8 path")]);
        origin
    }

    pub fn scenario_path(&self) -> PathBuf {
        self.aside.join("scenario.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.aside.join("tilt-state")
    }

    /// Writes the stand-in's scenario and forgets any earlier Tilt state.
    pub fn tilt(&self, scenario: &Scenario) {
        let text = toml::to_string(scenario).unwrap_or_else(|e| panic!("the scenario is not TOML: {e}"));
        write(&self.scenario_path(), &text);
        let _ = fs::remove_dir_all(self.state_dir());
    }

    /// `command` (the sync, a hook, `tilt` itself) run against this workspace's Tilt stand-in:
    /// `SYNC_TILT` names the stand-in, `TILT_STANDIN_SCENARIO`/`TILT_STANDIN_STATE` its scenario
    /// and state, and nothing of the test's own environment picks another Tilt or turns Tilt's
    /// analytics notice on. The one place tests set this up.
    pub fn standin_env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        without_tilt_environment(command)
            .env("SYNC_TILT", tilt_bin())
            .env("TILT_STANDIN_SCENARIO", self.scenario_path())
            .env("TILT_STANDIN_STATE", self.state_dir())
    }

    /// Runs the Tilt stand-in by hand, as a user at the terminal would (e.g. `trigger server`).
    pub fn tilt_cli(&self, args: &[&str]) -> Run {
        let mut command = Command::new(tilt_bin());
        self.standin_env(command.args(args).current_dir(&self.root));
        Run::from(command.output().expect("running the Tilt stand-in"))
    }

    /// Runs the Tilt stand-in as if called `after_ms` after the first action it recorded (a
    /// `tilt trigger`, `disable` or `enable`): the stand-in computes everything from the clock
    /// and its `state.json` (`src/bin/tilt.rs`, "State directory"), so moving the state's time
    /// origin shows any moment at once, whatever the machine's load.
    pub fn tilt_cli_at(&self, after_ms: i64, args: &[&str]) -> Run {
        let path = self.state_dir().join("state.json");
        let text = fs::read_to_string(&path).expect("the stand-in's state: call it once first");
        let mut state: serde_json::Value = serde_json::from_str(&text).expect("the stand-in's state is JSON");
        let first_ms = state["actions"][0]["ms"].as_i64().unwrap_or(0);
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock");
        let now_ms = i64::try_from(since_epoch.as_millis()).expect("milliseconds");
        state["start_unix_ms"] = serde_json::Value::from(now_ms - first_ms - after_ms);
        fs::write(&path, state.to_string()).expect("moving the stand-in's clock");
        self.tilt_cli(args)
    }

    /// Forgets the calls recorded so far, keeping Tilt's state (its builds go on being known).
    pub fn forget_tilt_calls(&self) {
        let _ = fs::remove_file(self.state_dir().join("calls.jsonl"));
    }

    /// `git status --porcelain --ignored=no`, to check the sync leaves the repository alone.
    pub fn git_status(&self) -> String {
        git(&self.root, &["status", "--porcelain", "--untracked-files=all"])
    }

    /// A command running `xtask sync` in this workspace against the stand-in.
    pub fn sync_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(xtask_bin());
        command.arg("sync").args(["--root", self.root.to_str().expect("UTF-8 root")]).args(args);
        self.standin_env(&mut command).current_dir(&self.root).stdin(Stdio::null());
        command
    }

    /// Writes an edited protocol aside (see `protocol_edited`) and returns its path, for `--config`.
    pub fn protocol(&self, replacements: &[(&str, &str)]) -> String {
        let path = self.aside.join("protocol.toml");
        write(&path, &protocol_edited(replacements));
        path.to_str().expect("UTF-8 path").to_owned()
    }

    pub fn sync(&self, args: &[&str]) -> Run {
        Run::from(self.sync_command(args).output().expect("running xtask sync"))
    }

    /// Every call the stand-in received, as its arguments.
    pub fn tilt_calls(&self) -> Vec<Vec<String>> {
        let Ok(text) = fs::read_to_string(self.state_dir().join("calls.jsonl")) else {
            return Vec::new();
        };
        text.lines()
            .map(|line| {
                let call: serde_json::Value = serde_json::from_str(line).expect("a JSON call record");
                call["args"]
                    .as_array()
                    .expect("args")
                    .iter()
                    .map(|arg| arg.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .collect()
    }

    /// Stand-in processes still running (a zombie is not running).
    pub fn tilt_processes_left(&self) -> Vec<u32> {
        self.tilt_pids()
            .into_iter()
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                    stat.contains("tilt")
                        && stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
                })
            })
            .collect()
    }

    /// The pids of every stand-in process that ran.
    pub fn tilt_pids(&self) -> Vec<u32> {
        let Ok(text) = fs::read_to_string(self.state_dir().join("calls.jsonl")) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok()?["pid"].as_u64())
            .filter_map(|pid| u32::try_from(pid).ok())
            .collect()
    }

    /// The resources `tilt trigger` was called for, in order.
    pub fn triggers(&self) -> Vec<String> {
        self.tilt_calls()
            .into_iter()
            .filter(|args| args.first().is_some_and(|arg| arg == "trigger"))
            .filter_map(|args| args.get(1).cloned())
            .collect()
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The last sync's `logs/sync-status.json`.
    #[track_caller]
    pub fn saved_status(&self) -> status::SyncStatus {
        let path = self.logs_dir().join("sync-status.json");
        let text = fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("{} is not a status ({err}): {text}", path.display()))
    }

    /// The `sync-error-*.log` files, sorted.
    pub fn error_logs(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.logs_dir()) else {
            return Vec::new();
        };
        let mut logs: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("sync-error-"))
            })
            .collect();
        logs.sort();
        logs
    }

    /// A program placed first on PATH that records its directory and arguments, then exits
    /// with `code`.
    pub fn fake_program(&self, name: &str, code: i32) -> PathBuf {
        let bin = self.aside.join("bin");
        let path = bin.join(name);
        let record = self.aside.join(format!("{name}.calls"));
        write(&path, &format!("#!/bin/sh\necho \"$PWD|$*\" >> '{}'\nexit {code}\n", record.display()));
        make_executable(&path);
        bin
    }

    pub fn fake_program_calls(&self, name: &str) -> Vec<String> {
        fs::read_to_string(self.aside.join(format!("{name}.calls")))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

pub fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = fs::metadata(path).expect("metadata").permissions();
    permissions.set_mode(0o755);
    fs::set_permissions(path, permissions).expect("chmod");
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default())
}

/// How a program ended whose standard output went into `head -n LINES`, through a real pipe.
#[derive(Debug)]
pub struct Headed {
    /// What `head` printed.
    pub head: String,
    pub status: ExitStatus,
    pub stderr: String,
}

/// The signal a process gets when it writes to a pipe nobody reads.
pub const SIGPIPE: i32 = 13;

impl Headed {
    /// Ended as a Unix program does when its reader leaves: quietly (no panic, no message),
    /// with its own status or by SIGPIPE.
    #[track_caller]
    pub fn assert_quiet(&self, codes: &[i32]) -> &Headed {
        use std::os::unix::process::ExitStatusExt;
        let ended =
            self.status.code().is_some_and(|code| codes.contains(&code)) || self.status.signal() == Some(SIGPIPE);
        assert!(ended && !self.stderr.contains("panicked") && !self.stderr.contains("Broken pipe"), "{self:?}");
        self
    }
}

/// `command | head -n LINES`: both run at once, as a shell runs them.
pub fn into_head(mut command: Command, lines: usize) -> Headed {
    let mut program = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawning the program");
    let pipe = program.stdout.take().expect("a piped stdout");
    let head = Command::new("head")
        .args(["-n", &lines.to_string()])
        .stdin(pipe)
        .stdout(Stdio::piped())
        .output()
        .expect("running head");
    let output = program.wait_with_output().expect("waiting for the program");
    Headed {
        head: String::from_utf8_lossy(&head.stdout).into_owned(),
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `command | head -n 0` where `head` has already left when the program first writes: every
/// write meets a closed pipe, whatever the timing.
pub fn into_gone_head(mut command: Command) -> Headed {
    let (reader, writer) = std::io::pipe().expect("making a pipe");
    // The reading end goes to head alone (the Command holding it is dropped at once), so once
    // head has exited nobody reads.
    let head = Command::new("head").args(["-n", "0"]).stdin(reader).status().expect("running head");
    assert!(head.success());
    let output = command.stdout(writer).stderr(Stdio::piped()).output().expect("running the program");
    Headed { head: String::new(), status: output.status, stderr: String::from_utf8_lossy(&output.stderr).into_owned() }
}

/// The outcome of one `xtask sync`.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or_default()
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Stdout as JSON, for documents other than the sync's (`--plan --json`, `status --json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {}", self.stdout))
    }

    /// `sync --json`'s report: the run's status document.
    #[track_caller]
    pub fn report(&self) -> status::SyncStatus {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not a sync report ({err}): {}", self.stdout))
    }

    /// `--json`'s report of a command that could not run.
    #[track_caller]
    pub fn error_report(&self) -> status::ErrorReport {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not an error report ({err}): {}", self.stdout))
    }
}

/// A scenario where every step's build succeeds after `ms` milliseconds, with benign lines
/// (`Compiling thiserror`, `0 errors`) on the way.
pub fn all_succeed(ms: u64) -> Scenario {
    Scenario::new(successful_lines().map(|(name, lines)| Resource::compose(name).build(BuildSpec::new(ms, &lines))))
}

/// `all_succeed(ms)`, but `resource`'s build prints `line` where its success line was. Tilt
/// records no failure: only the log tells.
pub fn all_succeed_but(ms: u64, resource: &str, line: &str) -> Scenario {
    let mut scenario = all_succeed(ms);
    let lines = &mut scenario.resource_mut(resource).build[0].lines;
    if let Some(last) = lines.last_mut() {
        *last = line.to_owned();
    }
    scenario
}

/// The lines each resource's successful build prints, in protocol order; the last is the
/// success line.
fn successful_lines() -> [(&'static str, Vec<&'static str>); 4] {
    [
        (
            "sync-wasm-client",
            vec![
                "[INFO] Running in container mode",
                "   Compiling thiserror v1.0.69",
                "    Finished `release` profile [optimized] target(s) in 41.20s",
                "found 0 vulnerabilities, 0 errors",
                WASM_DONE,
            ],
        ),
        (
            "server",
            vec!["   Compiling citadel-workspace-server-kernel v0.1.0", "    Finished `dev` profile", SERVER_RUNNING],
        ),
        ("internal-service", vec!["   Compiling citadel-workspace-internal-service v0.1.0", INTERNAL_RUNNING]),
        ("ui", vec!["> vite", "  ➜  Network: use --host to expose", UI_READY]),
    ]
}

/// `all_succeed(150)` where the server's build prints `lines` instead.
pub fn server_printing(lines: &[&str]) -> Scenario {
    all_succeed(150).with_resource(Resource::compose("server").build(BuildSpec::new(150, lines)))
}
