//! A stand-in for the `tilt` CLI, for end-to-end tests of `cargo xtask sync`.
//!
//! Put this binary first on `PATH` as `tilt`. It answers the calls the sync makes exactly as the
//! real CLI does (texts in `/work/shared/tilt-cli.md`), but the "Tilt" behind it is a scenario
//! file. There is no daemon: every invocation is its own process, reads the state directory, and
//! computes from the wall clock what Tilt has done by now. A build triggered at time T shows its
//! lines at T + their offsets, so builds take real (short) time.
//!
//! # Environment
//! - `TILT_STANDIN_SCENARIO`: path of the scenario (TOML). Required: without it the stand-in
//!   prints `tilt stand-in: TILT_STANDIN_SCENARIO is not set` and exits 2.
//! - `TILT_STANDIN_STATE`: the state directory, default `<scenario path>.state`, created on first
//!   use. Its creation is "scenario start", the origin of every time below.
//! - `TILT_PORT`, `TILT_HOST` and the global flags `--port N`, `--port=N`, `--host H` (anywhere
//!   on the command line) pick the Tilt to talk to. A port other than the scenario's means "no
//!   Tilt there" (the error texts name the port asked for); the host is only echoed in texts.
//!
//! # State directory
//! - `state.json`: `{"start_unix_ms":…,"triggers":[{"resource":"server","ms":1234},…]}`: the
//!   time origin and every successful `tilt trigger` (ms since scenario start). Written
//!   atomically (temporary file + rename).
//! - `calls.jsonl`: one line per invocation, appended first thing:
//!   `{"pid":4242,"args":["logs","-f","server"],"ms":1234}` (`args`: argv after the program name,
//!   `ms`: since scenario start).
//! - `lock`: every read-modify-write of the above holds an exclusive lock on this file.
//!
//! # Scenario format
//! The scenario is the TOML form of `sync_tests::scenario::Scenario` (tests build it as typed
//! values; `scenario demo-happy` etc. print named ones). Every key is optional except `name`;
//! unknown keys are rejected. A bad scenario is reported on stderr
//! (`tilt stand-in: bad scenario …`) with exit code 2.
//! ```toml
//! running = true          # false: no Tilt; every call but `version` fails to connect
//! port = 10350            # the port this Tilt serves
//! json = true             # false: Tilt < 0.36.1, `logs` rejects --json/--since/--tail
//! version = "v0.37.6-dev, built 2026-11-24"   # what `tilt version` prints
//! tiltfile = "/abs/Tiltfile"   # `get tiltfile` answer; default <current directory>/Tiltfile
//! stop_after_ms = 1500    # Tilt stops this long after the FIRST successful trigger
//! stream_delay_ms = 300   # `logs -f` delivers each line this long after Tilt wrote it
//! status_lag_ms = 0       # every `tilt get` (-w too) shows Tilt's state as of now - this
//! runtime_status_lag_ms = 0   # a new container/serve process shows in the status this late
//! call_cost = { wall_ms = 70, cpu_ms = 80 }   # what each invocation costs (default: nothing)
//! hang = ["logs", "get uiresource"]   # calls whose command words start so hang silently
//!
//! [[resource]]            # in Tiltfile order
//! name = "server"
//! kind = "compose"        # "compose" (dc_resource, the default) or "local" (local_resource)
//! cmd = "./build.sh"      # local: the update command (this is the default)
//! update = true           # local: false = serve-only (no update command; give no `cmd`)
//! serve_cmd = "./serve.sh"    # local: the server started after each successful build
//! [[resource.history]]    # builds finished before scenario start, oldest first
//! lines = ["old line"]
//! error = "old failure"   # optional
//! [resource.running]      # optional: a build running from scenario start
//! duration_ms = 800
//! lines = ["..."]
//! [[resource.build]]      # builds started by `tilt trigger`, in order; the last one repeats;
//! duration_ms = 300       # none at all: a 100 ms build with no lines
//! lines = ["Compiling x", "Finished ..."]
//! error = "Command \"./wasm.sh\" failed: exit status 1"   # optional: the build fails
//! runtime = ["Running `target/debug/server`"]  # container/server output after a successful build
//! runtime_ms = 200
//! exit_code = 0           # optional: the container/server exits after its runtime output
//! health = "healthy"      # compose, optional: "healthy" | "unhealthy", after health_ms
//! health_ms = 500
//! ```
//! `history`, `running` and `build` entries all take the same keys: `duration_ms` (default
//! 100), `lines`, `error`, `runtime`, `runtime_ms` (default 0), `exit_code`, `health`,
//! `health_ms` (default 0). Checked: `cmd`/`serve_cmd`/`update` only on local resources,
//! `health` only on compose ones, `runtime`/`exit_code` on a local resource only with a
//! `serve_cmd`, a serve-only resource has a `serve_cmd` and builds without `lines`/`error`.
//!
//! # Timeline
//! - Build numbers (`spanID` `build:N`) are shared by all resources: history builds first
//!   (resource by resource, in file order), then running builds, then triggered builds in
//!   trigger order; a triggered build gets its number when it is triggered.
//! - History builds lie back to back before scenario start (1 s apart, the newest ending 1 s
//!   before it); the first of a resource says `Initial Build`, the others `CLI Trigger`.
//!   Running builds start at scenario start and say `CLI Trigger`.
//! - A build starting at S writes two header lines at S (an empty line and the reason line,
//!   `"buildEvent":"init"`), then line i of n at `S + duration_ms*(i+1)/n`. A failed build
//!   writes `Build Failed: <error>` at `S + duration_ms` (its finish).
//! - Compose: the build's lines are in span `build:N`. Each successful build recreates the
//!   container at its finish (a new 12-hex-digit container ID, derived from N): runtime line i
//!   of n at `finish + runtime_ms*(i+1)/n`, span `dc:<name>`; later builds do not cut it off.
//!   With `exit_code` it exits after its output. With `health`, its healthStatus is `starting`
//!   until `start + health_ms`, then the value. A failed build leaves the container alone.
//! - Local with an update command: after the header, `Running cmd: <cmd>` at S, then the
//!   build's lines as above, all in span `cmd:<name>:update` (source "runtime"). A successful
//!   one finishes 250 ms after `S + duration_ms`: Tilt sleeps that long after the command.
//!   Serve-only (`update = false`): a build is its two header lines only, finished at once
//!   (`duration_ms` ignored), and `updateStatus` is `not_applicable` once built.
//! - Local with a `serve_cmd`: a successful build starts a serve process at its finish, unless
//!   the resource's next build was already queued then (Tilt starts none between a build and
//!   its queued successor). Serve process K (one counter over all resources, in start order)
//!   writes `Running cmd: <serve_cmd>` at its start, then the build's `runtime` lines spread
//!   over `runtime_ms`, in span `localserve:K`; its pid is 20000 + K; with `exit_code` it
//!   exits after its output. It runs until the resource's next serve process starts (after
//!   the next successful build): its lines due later are never written. A failed build starts
//!   none and leaves the running one alone.
//! - `tilt trigger R`: if R has a build queued, nothing happens (Tilt collapses triggers); if R
//!   has a build in progress, the new build is queued and starts when that one finishes;
//!   otherwise it starts now.
//! - Status (UIResource `status`): `buildHistory` holds the two newest finished builds
//!   (omitted when none), `currentBuild` the build in progress (omitted when none), `queued` is
//!   true while a triggered build waits (omitted when false, as Go's `omitempty` does);
//!   `updateStatus` is `in_progress` while building, `pending` while queued, else `error`/`ok`
//!   (`not_applicable` serve-only) from the last finished build, `none` if never built;
//!   `runtimeStatus` is `not_applicable` for a local resource without `serve_cmd`, else
//!   `pending` until a container/serve process runs, then `ok`, `error` once a container
//!   exited non-zero or a serve process exited at all (code 0 too, as Tilt); `specs` `[{"id":"dc:<name>","type":"docker-compose"}]` with
//!   `composeResourceInfo: {"healthStatus"}` (compose) or `[{"id":"local:<name>",
//!   "type":"local"}]` with `localResourceInfo: {"pid"}` (local; no pid without a serve
//!   process); `conditions` `UpToDate`/`Ready` as Tilt computes them, `lastTransitionTime` when
//!   their status last flipped. The "(Tiltfile)" resource has a minimal status
//!   (`not_applicable`, `ok`, both conditions true).
//! - Lags: every `tilt get` shows the status as of now − `status_lag_ms`. A new container or
//!   serve process shows in the runtime fields (`runtimeStatus`, `localResourceInfo.pid`,
//!   `composeResourceInfo.healthStatus`, the DockerComposeService) only
//!   `runtime_status_lag_ms` after it started; until then they describe the previous one (the
//!   `error` of a crashed server stays after a fixed rebuild finished). Logs have no such lag.
//! - Call cost: with `call_cost`, every invocation first burns `cpu_ms` of CPU (its own CPU
//!   time, `/proc/thread-self/schedstat`, else wall time), then sleeps until `wall_ms` have
//!   passed since it started; a streaming call pays once, at its start.
//!
//! # Calls
//! - `version`, `trigger R`.
//! - `logs [R…] [-f|--follow] [--json] [--since D] [--tail N]`. With CI, DO_NOT_TRACK or
//!   TILT_DISABLE_ANALYTICS set it first writes `YYYY/MM/DD hh:mm:ss Tilt analytics disabled:
//!   Environment variable KEY=VALUE` to stderr, as Tilt does. `--json` lines:
//!   `{"time","resource","level":"info","message","spanID","progressID","buildEvent","source"}`,
//!   `message` without a trailing newline, `source` "build" for `build:N` spans, else
//!   "runtime".
//! - `get uiresources -o name`, `get uiresource R -o json|name` (R may be "(Tiltfile)"),
//!   `get uiresources -o json` (a `List`: `{"apiVersion":"v1","items":[…],"kind":"List",
//!   "metadata":{"resourceVersion":""}}`, "(Tiltfile)" first).
//! - `get uiresources -w -o json`, `get uiresource R -w -o json`: every object (pretty, one
//!   after another, no list), then an object again whenever its JSON changes (state polled
//!   every 50 ms); exit 0 without output when Tilt stops (after `logs -f` ends). `get a,b
//!   -w`: `error: you may only specify a single resource type`, exit 1.
//! - `get dockercomposeservice R -o json`, `get dockercomposeservices -o json` (a `List`),
//!   `get dockercomposeservices -w -o json` (and `… R -w -o json`): compose resources only
//!   (others are NotFound), `{"apiVersion":"tilt.dev/v1alpha1","kind":"DockerComposeService",
//!   "metadata":{"name"},"spec":{"service"},"status":{"containerID","containerName",
//!   "containerState":{"status":"running"|"exited","running","exitCode" (omitted when 0),
//!   "startedAt","finishedAt" (once exited),"healthStatus" (with `health`)}}}`; `status` is
//!   `{}` until the first container.
//! - `get uiresources,dockercomposeservices -o json`: one `List` of both kinds, the UIResources
//!   first, as the real Tilt answers.
//! - `get tiltfile "(Tiltfile)" -o jsonpath={.spec.path}`.
//! - Without Tilt, `get` fails with `Error: No tilt apiserver found: tilt-PORT` (exit 1);
//!   `hang` patterns apply to every call, `-w` ones included. Unknown commands and flags fail
//!   as the real CLI does (exit 1); calls the stand-in does not imitate fail with
//!   `tilt stand-in: unsupported call: …` and exit 2.

// The crate root is `src/bin/tilt.rs`, so its modules are found relative to `src/bin/`.
#[path = "tilt/cost.rs"]
mod cost;
#[path = "tilt/load.rs"]
mod load;
#[path = "tilt/objects.rs"]
mod objects;
#[path = "tilt/state.rs"]
mod state;
#[path = "tilt/timeline.rs"]
mod timeline;

use std::collections::{HashMap, HashSet};
use std::env;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use sync_tests::scenario::{Kind, Scenario, DEFAULT_PORT};
use time::format_description::well_known::Rfc3339;

use objects::{datetime, Clock, TILTFILE};
use state::{unix_ms_now, State, StateDir};
use timeline::{reported, stop_ms, LogLine, Model, ResourceStatus};

/// How often `logs -f` and `get -w` look for news.
const FOLLOW_POLL: Duration = Duration::from_millis(50);
/// How much later than `logs -f` a `get -w` ends when Tilt stops: 0–12 ms on the real Tilt
/// (killed 5 times: the log stream ended first 4 times), longer here so that it is always so
/// despite the stand-in's polling.
const WATCH_OUTLIVES_LOGS: Duration = Duration::from_millis(120);

fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = env::args_os().skip(1).map(|arg| arg.to_string_lossy().into_owned()).collect();
    match run(&args, started) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if !failure.message.is_empty() {
                eprintln!("{}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// How an invocation ends when it does not succeed: a text for stderr and an exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A failure of the imitated `tilt` (exit 1).
    fn tilt(message: impl Into<String>) -> Self {
        Self { code: 1, message: message.into() }
    }

    /// A problem of the stand-in itself or its scenario (exit 2).
    fn standin(message: impl std::fmt::Display) -> Self {
        Self { code: 2, message: format!("tilt stand-in: {message}") }
    }

    /// A cobra flag or argument error of `tilt <command>`, with its usage hint.
    fn usage(command: &str, error: impl std::fmt::Display) -> Self {
        let command = if command.is_empty() { "tilt".to_owned() } else { format!("tilt {command}") };
        Self::tilt(format!("Error: {error}\nRun '{command} --help' for usage."))
    }

    /// A quiet exit 0 (the reader of our output went away).
    fn quiet() -> Self {
        Self { code: 0, message: String::new() }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self::standin(format!("{error:#}"))
    }
}

fn run(args: &[String], started: Instant) -> Result<(), Failure> {
    let scenario_path = env::var_os("TILT_STANDIN_SCENARIO")
        .filter(|path| !path.is_empty())
        .ok_or_else(|| Failure::standin("TILT_STANDIN_SCENARIO is not set"))?;
    let state_dir = env::var_os("TILT_STANDIN_STATE")
        .filter(|path| !path.is_empty())
        .map_or_else(|| default_state_dir(&scenario_path), PathBuf::from);
    let dir = StateDir::new(state_dir);

    let (snapshot, now_ms) = {
        let locked = dir.lock()?;
        locked.record_call(args)?;
        let now_ms = locked.state.now_ms();
        (locked.state.clone(), now_ms)
    };

    let scenario = load::load(Path::new(&scenario_path)).map_err(Failure::standin)?;
    let (endpoint, args) = Endpoint::from_args(args)?;
    if load::hangs(&scenario, &command_words(&args)) {
        hang();
    }
    if let Some(call_cost) = scenario.call_cost {
        cost::pay(call_cost, started);
    }

    let ctx = Context { scenario, dir, endpoint, snapshot, now_ms };
    let Some((command, rest)) = args.split_first() else {
        return Err(Failure::standin("unsupported call: tilt with no command"));
    };
    let mut out = Out::new();
    match command.as_str() {
        "version" => out.print(&format!("{}\n", ctx.scenario.version)),
        "trigger" => ctx.trigger(rest, &mut out),
        "logs" => ctx.logs(rest, &mut out),
        "get" => ctx.get(rest, &mut out),
        flag if flag.starts_with('-') => Err(Failure::usage("", unknown_flag(flag))),
        other => {
            Err(Failure::tilt(format!("Error: unknown command \"{other}\" for \"tilt\"\nRun 'tilt --help' for usage.")))
        }
    }
}

fn default_state_dir(scenario_path: &OsString) -> PathBuf {
    let mut path = scenario_path.clone();
    path.push(".state");
    PathBuf::from(path)
}

/// What `tilt logs` writes to stderr first when the environment turns analytics off, in the
/// format of Go's `log.Printf`.
fn print_analytics_notice() {
    let set = ["TILT_DISABLE_ANALYTICS", "DO_NOT_TRACK", "CI"]
        .into_iter()
        .find_map(|key| env::var(key).ok().filter(|value| !value.is_empty()).map(|value| (key, value)));
    if let Some((key, value)) = set {
        let now = time::OffsetDateTime::now_utc();
        let (date, clock) = (now.date(), now.time());
        eprintln!(
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02} Tilt analytics disabled: Environment variable {key}={value}",
            date.year(),
            u8::from(date.month()),
            date.day(),
            clock.hour(),
            clock.minute(),
            clock.second()
        );
    }
}

/// Sleeps until killed, printing nothing.
fn hang() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// The command words of a call: its arguments without flags and flag values.
fn command_words(args: &[String]) -> Vec<&str> {
    const VALUE_FLAGS: [&str; 4] = ["-o", "--output", "--since", "--tail"];
    let mut words = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        if arg.starts_with('-') {
            skip_value = VALUE_FLAGS.contains(&arg.as_str());
        } else {
            words.push(arg.as_str());
        }
    }
    words
}

/// Where the call looks for Tilt.
struct Endpoint {
    host: String,
    port: String,
}

/// The Tilt API a call needs, which decides its "no Tilt" text.
#[derive(Clone, Copy)]
enum Api {
    /// `tilt trigger`.
    Trigger,
    /// `tilt logs`.
    WebsocketToken,
    /// The tilt apiserver (`tilt get`).
    Server,
}

impl Endpoint {
    /// Takes the global `--port`/`--host` flags out of `args` (env `TILT_PORT`/`TILT_HOST` as
    /// defaults).
    fn from_args(args: &[String]) -> Result<(Self, Vec<String>), Failure> {
        let mut endpoint = Self {
            host: env::var("TILT_HOST").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".to_owned()),
            port: env::var("TILT_PORT").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_PORT.to_string()),
        };
        let mut rest = Vec::new();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            let target = match name {
                "--port" => &mut endpoint.port,
                "--host" => &mut endpoint.host,
                _ => {
                    rest.push(arg.clone());
                    continue;
                }
            };
            *target = match inline.or_else(|| args.next().cloned()) {
                Some(value) => value,
                None => return Err(Failure::usage("", format!("flag needs an argument: {name}"))),
            };
        }
        Ok((endpoint, rest))
    }

    /// The error of a call to this endpoint when no Tilt listens there.
    fn no_tilt(&self, api: Api) -> Failure {
        let dial = match self.host.as_str() {
            "localhost" => "127.0.0.1",
            host => host,
        };
        let dial = format!("dial tcp {dial}:{}: connect: connection refused", self.port);
        let url = |path: &str| format!("http://{}:{}{path}", self.host, self.port);
        Failure::tilt(match api {
            Api::Trigger => {
                let url = url("/api/trigger");
                format!("Could not connect to Tilt at {url}: Post \"{url}\": {dial}")
            }
            Api::WebsocketToken => {
                let url = url("/api/websocket_token");
                format!("Error: fetching websocket token: connecting to Tilt at {url}: Get \"{url}\": {dial}")
            }
            Api::Server => format!("Error: No tilt apiserver found: tilt-{}", self.port),
        })
    }
}

/// Everything a command needs.
struct Context {
    scenario: Scenario,
    dir: StateDir,
    endpoint: Endpoint,
    /// The state as read when the call was recorded.
    snapshot: State,
    /// Milliseconds since scenario start when the call was recorded.
    now_ms: i64,
}

impl Context {
    /// Whether the scenario's Tilt answers this call at `now_ms` (given the triggers so far).
    fn reachable(&self, state: &State, now_ms: i64) -> bool {
        self.scenario.running
            && self.endpoint.port == self.scenario.port.to_string()
            && stop_ms(&self.scenario, &state.triggers).is_none_or(|stop| now_ms < stop)
    }

    fn connect(&self, api: Api) -> Result<(), Failure> {
        if self.reachable(&self.snapshot, self.now_ms) {
            Ok(())
        } else {
            Err(self.endpoint.no_tilt(api))
        }
    }

    /// `tilt trigger R`.
    fn trigger(&self, args: &[String], out: &mut Out) -> Result<(), Failure> {
        let parsed = parse_flags("trigger", args, &[])?;
        let [resource] = parsed.positional.as_slice() else {
            return Err(Failure::usage("trigger", format!("accepts 1 arg(s), received {}", parsed.positional.len())));
        };
        {
            let mut locked = self.dir.lock()?;
            let now_ms = locked.state.now_ms();
            if !self.reachable(&locked.state, now_ms) {
                return Err(self.endpoint.no_tilt(Api::Trigger));
            }
            if self.scenario.resource(resource).is_none() {
                return Err(Failure::tilt(format!("Error: (404): resource \"{resource}\" does not exist")));
            }
            locked.state.triggers.push(state::Trigger { resource: resource.clone(), ms: now_ms });
            locked.save()?;
        }
        out.print(&format!("Successfully triggered update for resource: \"{resource}\"\n"))
    }

    /// `tilt logs [R…] [-f] [--json] [--since D] [--tail N]`.
    fn logs(&self, args: &[String], out: &mut Out) -> Result<(), Failure> {
        let options = LogsOptions::parse(args, self.scenario.json)?;
        print_analytics_notice();
        self.connect(Api::WebsocketToken)?;

        let delay = if options.follow { i64::try_from(self.scenario.stream_delay_ms).unwrap_or(i64::MAX) } else { 0 };
        let current = Model::new(&self.scenario, &self.snapshot.triggers, self.now_ms.saturating_sub(delay)).lines();
        let selected: Vec<&LogLine> = current.iter().filter(|line| options.selects(line)).collect();
        let skip = match options.tail {
            Some(tail) => selected.len().saturating_sub(tail),
            None => 0,
        };
        out.print(&options.render(&selected[skip..], unix_ms_now()))?;
        if !options.follow {
            return Ok(());
        }

        let mut printed: HashSet<_> = selected.iter().map(|line| line.id).collect();
        loop {
            thread::sleep(FOLLOW_POLL);
            let state = self.dir.read()?;
            let now_ms = state.now_ms();
            let stop = stop_ms(&self.scenario, &state.triggers);
            let until = stop.map_or(now_ms, |stop| now_ms.min(stop));
            let current = Model::new(&self.scenario, &state.triggers, until.saturating_sub(delay)).lines();
            let fresh: Vec<&LogLine> =
                current.iter().filter(|line| options.selects(line) && printed.insert(line.id)).collect();
            if !fresh.is_empty() {
                out.print(&options.render(&fresh, unix_ms_now()))?;
            }
            if stop.is_some_and(|stop| now_ms >= stop) {
                return Ok(());
            }
        }
    }

    /// `tilt get …`.
    fn get(&self, args: &[String], out: &mut Out) -> Result<(), Failure> {
        let flags = [FlagSpec::value("output", Some('o')), FlagSpec::switch("watch", Some('w'))];
        let parsed = parse_flags("get", args, &flags)?;
        let output = parsed.value("output").unwrap_or_default();
        let watch = parsed.switch("watch");
        if watch && parsed.positional.first().is_some_and(|kind| kind.contains(',')) {
            return Err(Failure::tilt("error: you may only specify a single resource type"));
        }
        self.connect(Api::Server)?;

        let unsupported = || Failure::standin(format!("unsupported call: tilt get {}", args.join(" ")));
        let (kind, name) = match parsed.positional.as_slice() {
            [kind] => (kind.as_str(), None),
            [kind, name] => (kind.as_str(), Some(name.as_str())),
            _ => return Err(unsupported()),
        };
        let not_found = |plural: &str, name: &str| {
            Failure::tilt(format!("Error from server (NotFound): {plural}.tilt.dev \"{name}\" not found"))
        };
        let clock = Clock { start_unix_ms: self.snapshot.start_unix_ms };
        match kind {
            "uiresources,dockercomposeservices" if output == "json" && !watch && name.is_none() => {
                let statuses = self.statuses();
                let value = |object: Result<serde_json::Value, _>| object.map_err(|e| Failure::standin(format!("{e}")));
                let mut items = vec![value(serde_json::to_value(objects::tiltfile_resource(clock)))?];
                for status in &statuses {
                    items.push(value(serde_json::to_value(objects::ui_resource(status, clock)))?);
                }
                for service in statuses.iter().filter_map(|s| objects::compose_service(s, clock)) {
                    items.push(value(serde_json::to_value(service))?);
                }
                out.print(&format!("{}\n", objects::list(items).map_err(Failure::standin)?))
            }
            "uiresource" | "uiresources" | "uiresource.tilt.dev" => {
                let names: Vec<&str> =
                    std::iter::once(TILTFILE).chain(self.scenario.resources.iter().map(|r| r.name.as_str())).collect();
                if let Some(name) = name.filter(|name| !names.contains(name)) {
                    return Err(not_found("uiresources", name));
                }
                let render = |statuses: &[ResourceStatus]| -> Result<Vec<Object>, String> {
                    let mut all = vec![(TILTFILE.to_owned(), objects::pretty(&objects::tiltfile_resource(clock))?)];
                    for status in statuses {
                        all.push((status.name.to_owned(), objects::pretty(&objects::ui_resource(status, clock))?));
                    }
                    all.retain(|(n, _)| name.is_none_or(|name| name == n));
                    Ok(all)
                };
                match (output, watch, name) {
                    ("name", false, _) => {
                        let listed: String = names
                            .iter()
                            .filter(|n| name.is_none_or(|name| name == **n))
                            .map(|n| format!("uiresource.tilt.dev/{n}\n"))
                            .collect();
                        out.print(&listed)
                    }
                    ("json", true, _) => self.watch(render, out),
                    ("json", false, Some(_)) => {
                        let rendered = render(&self.statuses()).map_err(Failure::standin)?;
                        let [(_, json)] = <[Object; 1]>::try_from(rendered).map_err(|_| unsupported())?;
                        out.print(&format!("{json}\n"))
                    }
                    ("json", false, None) => {
                        let statuses = self.statuses();
                        let items = std::iter::once(objects::tiltfile_resource(clock))
                            .chain(statuses.iter().map(|s| objects::ui_resource(s, clock)))
                            .collect();
                        out.print(&format!("{}\n", objects::list(items).map_err(Failure::standin)?))
                    }
                    _ => Err(unsupported()),
                }
            }
            "dockercomposeservice" | "dockercomposeservices" | "dockercomposeservice.tilt.dev" => {
                let composed = |n: &str| self.scenario.resource(n).is_some_and(|r| r.kind == Kind::Compose);
                if let Some(name) = name.filter(|name| !composed(name)) {
                    return Err(not_found("dockercomposeservices", name));
                }
                let render = |statuses: &[ResourceStatus]| -> Result<Vec<Object>, String> {
                    let services = statuses
                        .iter()
                        .filter(|s| name.is_none_or(|name| name == s.name))
                        .filter_map(|s| Some((s.name, objects::compose_service(s, clock)?)));
                    services.map(|(n, service)| Ok((n.to_owned(), objects::pretty(&service)?))).collect()
                };
                match (output, watch, name) {
                    ("json", true, _) => self.watch(render, out),
                    ("json", false, Some(_)) => {
                        let rendered = render(&self.statuses()).map_err(Failure::standin)?;
                        let [(_, json)] = <[Object; 1]>::try_from(rendered).map_err(|_| unsupported())?;
                        out.print(&format!("{json}\n"))
                    }
                    ("json", false, None) => {
                        let statuses = self.statuses();
                        let items = statuses.iter().filter_map(|s| objects::compose_service(s, clock)).collect();
                        out.print(&format!("{}\n", objects::list(items).map_err(Failure::standin)?))
                    }
                    _ => Err(unsupported()),
                }
            }
            "tiltfile" | "tiltfiles" | "tiltfile.tilt.dev" => {
                match name {
                    Some(TILTFILE) => {}
                    Some(name) => return Err(not_found("tiltfiles", name)),
                    None => return Err(unsupported()),
                }
                let template = output.strip_prefix("jsonpath=").map(strip_quotes);
                if watch || template != Some("{.spec.path}") {
                    return Err(unsupported());
                }
                let path = match &self.scenario.tiltfile {
                    Some(path) => path.clone(),
                    None => env::current_dir()
                        .map_err(|e| Failure::standin(format!("no current directory: {e}")))?
                        .join("Tiltfile")
                        .display()
                        .to_string(),
                };
                out.print(&path)
            }
            other => Err(Failure::tilt(format!("Error: the server doesn't have a resource type \"{other}\""))),
        }
    }

    /// Every resource's status as `tilt get` shows it at the call.
    fn statuses(&self) -> Vec<ResourceStatus<'_>> {
        reported(&self.scenario, &self.snapshot.triggers, self.now_ms)
    }

    /// `tilt get … -w -o json`: prints each object, then again whenever it changes, until
    /// Tilt stops.
    fn watch(
        &self,
        objects: impl Fn(&[ResourceStatus]) -> Result<Vec<Object>, String>,
        out: &mut Out,
    ) -> Result<(), Failure> {
        let mut reprint = Reprint::default();
        let mut state = self.snapshot.clone();
        let mut now_ms = self.now_ms;
        loop {
            let stop = stop_ms(&self.scenario, &state.triggers);
            let until = stop.map_or(now_ms, |stop| now_ms.min(stop));
            let current = objects(&reported(&self.scenario, &state.triggers, until)).map_err(Failure::standin)?;
            for json in reprint.changed(current) {
                out.print(&format!("{json}\n"))?;
            }
            if stop.is_some_and(|stop| now_ms >= stop) {
                // Killed, the real Tilt ends its log streams a few ms before its watches.
                thread::sleep(WATCH_OUTLIVES_LOGS);
                return Ok(());
            }
            thread::sleep(FOLLOW_POLL);
            state = self.dir.read()?;
            now_ms = state.now_ms();
        }
    }
}

/// An API object: its name and its JSON.
type Object = (String, String);

/// Which objects a watch prints: each the first time it is seen, then whenever its JSON
/// changes.
#[derive(Default)]
struct Reprint {
    printed: HashMap<String, String>,
}

impl Reprint {
    fn changed(&mut self, objects: Vec<Object>) -> Vec<String> {
        let mut fresh = Vec::new();
        for (name, json) in objects {
            if self.printed.get(&name) != Some(&json) {
                self.printed.insert(name, json.clone());
                fresh.push(json);
            }
        }
        fresh
    }
}

fn strip_quotes(text: &str) -> &str {
    ['\'', '"'].iter().find_map(|q| text.strip_prefix(*q)?.strip_suffix(*q)).unwrap_or(text)
}

// ---------------------------------------------------------------------------------------------
// Flags, the way cobra/pflag parse them.

/// A flag a command accepts.
struct FlagSpec {
    long: &'static str,
    short: Option<char>,
    takes_value: bool,
}

impl FlagSpec {
    const fn value(long: &'static str, short: Option<char>) -> Self {
        Self { long, short, takes_value: true }
    }

    const fn switch(long: &'static str, short: Option<char>) -> Self {
        Self { long, short, takes_value: false }
    }
}

/// Parsed command arguments.
struct ParsedArgs {
    positional: Vec<String>,
    /// (long name, value); switches get "true" or "false".
    flags: Vec<(&'static str, String)>,
}

impl ParsedArgs {
    /// The last value given to a flag.
    fn value(&self, long: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(name, _)| *name == long).map(|(_, value)| value.as_str())
    }

    /// Whether a switch is on.
    fn switch(&self, long: &str) -> bool {
        self.value(long).is_some_and(|v| v == "true")
    }
}

fn unknown_flag(arg: &str) -> String {
    let name = arg.split_once('=').map_or(arg, |(name, _)| name);
    format!("unknown flag: {name}")
}

fn parse_bool(spec: &FlagSpec, value: &str) -> Result<String, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok("true".to_owned()),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok("false".to_owned()),
        _ => {
            let flag = match spec.short {
                Some(short) => format!("-{short}, --{}", spec.long),
                None => format!("--{}", spec.long),
            };
            Err(format!(
                "invalid argument \"{value}\" for \"{flag}\" flag: strconv.ParseBool: parsing \"{value}\": invalid syntax"
            ))
        }
    }
}

/// Parses `args` of `tilt <command>` against the flags it knows.
fn parse_flags(command: &str, args: &[String], known: &[FlagSpec]) -> Result<ParsedArgs, Failure> {
    let fail = |error: String| Failure::usage(command, error);
    let mut parsed = ParsedArgs { positional: Vec::new(), flags: Vec::new() };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            parsed.positional.extend(args.by_ref().cloned());
        } else if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            let spec = known.iter().find(|spec| spec.long == name).ok_or_else(|| fail(unknown_flag(arg)))?;
            let value = match (spec.takes_value, inline) {
                (true, Some(value)) => value.to_owned(),
                (true, None) => {
                    args.next().cloned().ok_or_else(|| fail(format!("flag needs an argument: --{name}")))?
                }
                (false, Some(value)) => parse_bool(spec, value).map_err(fail)?,
                (false, None) => "true".to_owned(),
            };
            parsed.flags.push((spec.long, value));
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (at, c) in shorts.char_indices() {
                let spec = known
                    .iter()
                    .find(|spec| spec.short == Some(c))
                    .ok_or_else(|| fail(format!("unknown shorthand flag: '{c}' in {arg}")))?;
                let after = &shorts[at + c.len_utf8()..];
                if spec.takes_value {
                    let value = match after.strip_prefix('=').unwrap_or(after) {
                        "" => args
                            .next()
                            .cloned()
                            .ok_or_else(|| fail(format!("flag needs an argument: '{c}' in {arg}")))?,
                        value => value.to_owned(),
                    };
                    parsed.flags.push((spec.long, value));
                    break;
                }
                if let Some(value) = after.strip_prefix('=') {
                    parsed.flags.push((spec.long, parse_bool(spec, value).map_err(fail)?));
                    break;
                }
                parsed.flags.push((spec.long, "true".to_owned()));
            }
        } else {
            parsed.positional.push(arg.clone());
        }
    }
    Ok(parsed)
}

// ---------------------------------------------------------------------------------------------
// `tilt logs` output.

/// How `tilt logs` prints a line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Style {
    /// `--json`: one JSON object per line.
    Json,
    /// One resource named: the bare text.
    Bare,
    /// Several or none: `<name right-aligned in 13> │ <text>`.
    Prefixed,
}

struct LogsOptions {
    resources: Vec<String>,
    follow: bool,
    tail: Option<usize>,
    style: Style,
}

impl LogsOptions {
    /// Parses `tilt logs` arguments; `json_era`: the Tilt knows `--json`, `--since`, `--tail`.
    fn parse(args: &[String], json_era: bool) -> Result<Self, Failure> {
        let mut known = vec![FlagSpec::switch("follow", Some('f'))];
        if json_era {
            known.extend([
                FlagSpec::switch("json", None),
                FlagSpec::value("since", None),
                FlagSpec::value("tail", None),
            ]);
        }
        let parsed = parse_flags("logs", args, &known)?;
        let tail = match parsed.value("tail") {
            None => None,
            Some(text) => {
                let n: i64 = text.parse().map_err(|_| {
                    Failure::usage(
                        "logs",
                        format!(
                            "invalid argument \"{text}\" for \"--tail\" flag: strconv.ParseInt: parsing \"{text}\": invalid syntax"
                        ),
                    )
                })?;
                usize::try_from(n).ok()
            }
        };
        let style = if parsed.switch("json") {
            Style::Json
        } else if parsed.positional.len() == 1 {
            Style::Bare
        } else {
            Style::Prefixed
        };
        Ok(Self { follow: parsed.switch("follow"), tail, style, resources: parsed.positional })
    }

    fn selects(&self, line: &LogLine) -> bool {
        self.resources.is_empty() || self.resources.iter().any(|r| r == line.resource)
    }

    /// The text of a batch of lines printed at `unix_ms`.
    fn render(&self, lines: &[&LogLine], unix_ms: i64) -> String {
        let time = rfc3339_seconds(unix_ms);
        lines
            .iter()
            .map(|line| match self.style {
                Style::Json => json_log_line(line, &time) + "\n",
                Style::Bare => format!("{}\n", line.text),
                Style::Prefixed => format!("{} │ {}\n", name_column(line.resource), line.text),
            })
            .collect()
    }
}

/// A resource name right-aligned in 13 columns, cut to 12 characters + `…` when longer.
fn name_column(name: &str) -> String {
    if name.chars().count() > 13 {
        let cut: String = name.chars().take(12).collect();
        format!("{cut}…")
    } else {
        format!("{name:>13}")
    }
}

/// One line of `tilt logs --json`, keys in Tilt's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonLogLine<'a> {
    time: &'a str,
    resource: &'a str,
    level: &'static str,
    message: &'a str,
    #[serde(rename = "spanID")]
    span_id: &'a str,
    #[serde(rename = "progressID")]
    progress_id: &'static str,
    build_event: &'static str,
    source: &'static str,
}

fn json_log_line(line: &LogLine, time: &str) -> String {
    let json = JsonLogLine {
        time,
        resource: line.resource,
        level: "info",
        message: &line.text,
        span_id: &line.span_id,
        progress_id: "",
        build_event: if line.init { "init" } else { "" },
        source: line.source(),
    };
    serde_json::to_string(&json).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Time and output.

/// RFC 3339, UTC, whole seconds: `2026-08-01T12:00:00Z`.
fn rfc3339_seconds(unix_ms: i64) -> String {
    datetime(unix_ms.div_euclid(1000) * 1000).format(&Rfc3339).unwrap_or_default()
}

/// Standard output, flushed after every write; a reader gone away ends the call quietly.
struct Out {
    stdout: io::Stdout,
}

impl Out {
    fn new() -> Self {
        Self { stdout: io::stdout() }
    }

    fn print(&mut self, text: &str) -> Result<(), Failure> {
        let mut lock = self.stdout.lock();
        match lock.write_all(text.as_bytes()).and_then(|()| lock.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(Failure::quiet()),
            Err(e) => Err(Failure::standin(format!("cannot write to stdout: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn name_column_aligns_and_cuts() {
        assert_eq!(name_column("server"), "       server");
        assert_eq!(name_column("sync-wasm-client"), "sync-wasm-cl…");
        assert_eq!(name_column("thirteen-char"), "thirteen-char");
    }

    #[test]
    fn logs_flags_like_cobra() {
        let opts = LogsOptions::parse(&strings(&["-f", "--json", "server", "--tail=2"]), true)
            .unwrap_or_else(|f| panic!("{}", f.message));
        assert!(opts.follow);
        assert_eq!(opts.tail, Some(2));
        assert_eq!(opts.resources, ["server"]);
        assert!(opts.style == Style::Json);

        let old = LogsOptions::parse(&strings(&["server", "--since", "1m"]), false);
        let message = old.err().map(|f| f.message).unwrap_or_default();
        assert!(message.starts_with("Error: unknown flag: --since\n"), "{message}");
        let bogus = LogsOptions::parse(&strings(&["-x"]), true);
        let message = bogus.err().map(|f| f.message).unwrap_or_default();
        assert!(message.starts_with("Error: unknown shorthand flag: 'x' in -x\n"), "{message}");
    }

    #[test]
    fn global_flags_and_words() {
        let (endpoint, rest) = Endpoint::from_args(&strings(&["logs", "--port", "10351", "-f", "--host=h", "x"]))
            .unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!((endpoint.port.as_str(), endpoint.host.as_str()), ("10351", "h"));
        assert_eq!(rest, ["logs", "-f", "x"]);
        assert_eq!(
            command_words(&strings(&["get", "uiresource", "-o", "json", "server"])),
            ["get", "uiresource", "server"]
        );
    }

    #[test]
    fn a_watch_prints_each_object_then_only_the_changed_ones() {
        use sync_tests::scenario::{BuildSpec, Resource};
        let scenario = Scenario::new([
            Resource::compose("server").build(BuildSpec::new(300, &[])),
            Resource::compose("ui").build(BuildSpec::new(300, &[])),
        ]);
        let clock = Clock { start_unix_ms: 0 };
        let triggers = [state::Trigger { resource: "server".to_owned(), ms: 100 }];
        let at = |now_ms| -> Vec<Object> {
            reported(&scenario, &triggers, now_ms)
                .iter()
                .map(|s| (s.name.to_owned(), objects::pretty(&objects::ui_resource(s, clock)).unwrap()))
                .collect()
        };
        let status_of = |json: &str| -> serde_json::Value { serde_json::from_str::<serde_json::Value>(json).unwrap() };
        let mut reprint = Reprint::default();
        assert_eq!(reprint.changed(at(0)).len(), 2, "every object first");
        assert!(reprint.changed(at(50)).is_empty(), "nothing changed");
        let started = reprint.changed(at(100));
        assert_eq!(started.len(), 1, "only the server: {started:?}");
        assert_eq!(status_of(&started[0])["status"]["updateStatus"], "in_progress");
        assert!(reprint.changed(at(200)).is_empty());
        let finished = reprint.changed(at(400));
        assert_eq!(status_of(&finished[0])["status"]["buildHistory"][0]["spanID"], "build:1");
        assert!(reprint.changed(at(1000)).is_empty(), "a finished build's status stays put");
    }

    #[test]
    fn json_log_lines_are_tilts() {
        let line = LogLine {
            id: (3, 2),
            due_ms: 0,
            resource: "server",
            span_id: "cmd:server:update".to_owned(),
            init: false,
            text: "Running cmd: ./build.sh".to_owned(),
        };
        assert_eq!(
            json_log_line(&line, "2026-11-26T00:33:32Z"),
            r#"{"time":"2026-11-26T00:33:32Z","resource":"server","level":"info","message":"Running cmd: ./build.sh","spanID":"cmd:server:update","progressID":"","buildEvent":"","source":"runtime"}"#
        );
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(rfc3339_seconds(1_500), "1970-01-01T00:00:01Z");
    }
}
