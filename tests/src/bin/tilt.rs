//! A stand-in for the `tilt` CLI, for end-to-end tests of `cargo xtask sync`.
//!
//! Put this binary first on `PATH` as `tilt`. It answers the calls the sync makes exactly as the
//! real CLI does (texts in `/work/shared/tilt-cli.md`; compose resources as the real Tilt v0.37.6
//! and Compose v2 run them, `/work/shared/docker/README.md` and the captures beside it), but the
//! "Tilt" behind it is a scenario file. There is no daemon: every invocation is its own process,
//! reads the state directory, and computes from the wall clock what Tilt has done by now. A build
//! triggered at time T shows its lines at T + their offsets, so builds take real (short) time.
//!
//! # Environment
//! - `TILT_STANDIN_SCENARIO`: path of the scenario (TOML). Required: without it the stand-in
//!   prints `tilt stand-in: TILT_STANDIN_SCENARIO is not set` and exits 2.
//! - `TILT_STANDIN_STATE`: the state directory, default `<scenario path>.state`, created on first
//!   use. Its creation is "scenario start", the origin of every time below.
//! - `TILT_PORT`, `TILT_HOST` and the global flags `--port N`, `--port=N`, `--host H` (anywhere
//!   on the command line) pick the Tilt to talk to. A port other than the scenario's means "no
//!   Tilt there" (the error texts name the port asked for); the host is only echoed in texts.
//! - The current directory: a scenario without `tiltfile` runs `<current directory>/Tiltfile`.
//! - Tests set all of it with `sync_tests::Workspace::standin_env` (one place).
//!
//! # State directory
//! - `state.json`: `{"start_unix_ms":…,"actions":[{"resource":"server","ms":1234,
//!   "kind":"trigger"},…]}`: the time origin and every successful `tilt trigger`, `tilt disable`
//!   and `tilt enable` (`"kind"`: `trigger`, `disable`, `enable`; ms since scenario start).
//!   Written atomically (temporary file + rename).
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
//! tiltfile = "/abs/Tiltfile"   # the Tiltfile Tilt runs; default <current directory>/Tiltfile
//! stop_after_ms = 1500    # Tilt stops this long after the FIRST successful trigger
//! stream_delay_ms = 300   # `logs -f` delivers each line this long after Tilt wrote it
//! status_lag_ms = 0       # every `tilt get` (-w too) shows Tilt's state as of now - this
//! runtime_status_lag_ms = 0   # a new container/serve process shows in the status this late
//! call_cost = { wall_ms = 70, cpu_ms = 80 }   # what each invocation costs (default: nothing)
//! hang = ["logs", "get uiresource"]   # calls whose command words start so hang silently
//! log_limit_bytes = 2000000   # Tilt's log limit, all resources together (Tilt's own: 2 MB)
//!
//! [[resource]]            # in Tiltfile order
//! name = "server"
//! kind = "compose"        # "compose" (dc_resource, the default) or "local" (local_resource)
//! cmd = "./build.sh"      # local: the update command (this is the default)
//! update = true           # local: false = serve-only (no update command; give no `cmd`)
//! serve_cmd = "./serve.sh"    # local: the server started after each successful build
//! removed_after_ms = 900  # a Tiltfile edit removes (or renames) it this long after the first trigger
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
//! update = "force"        # compose: "force" (default) | "recreate" | "kept", see Compose below
//! ```
//! `history`, `running` and `build` entries all take the same keys: `duration_ms` (default
//! 100), `lines`, `error`, `runtime`, `runtime_ms` (default 0), `exit_code`, `health`,
//! `health_ms` (default 0), `update`. Checked: `cmd`/`serve_cmd`/`update` (the resource's) only
//! on local resources, `health` and a build's `update` only on compose ones, `runtime`/
//! `exit_code` on a local resource only with a `serve_cmd`, a serve-only resource has a
//! `serve_cmd` and builds without `lines`/`error`.
//!
//! # Timeline
//! - Build numbers (`spanID` `build:N`) are shared by all resources: history builds first
//!   (resource by resource, in file order), then running builds, then triggered builds in
//!   trigger order; a triggered build gets its number when it is triggered.
//! - History builds lie back to back before scenario start (1 s apart, the newest ending 1 s
//!   before it); the first of a resource says `Initial Build`. Every build opens with two
//!   header lines at its start (an empty line and the reason line, `"buildEvent":"init"`): the
//!   reason is `CLI Trigger`, or, for a compose build whose `update` is `recreate` or `kept`
//!   (Tilt saw changed files), `1 File Changed: [citadel-workspace-server-kernel/src/kernel.rs]`.
//! - `tilt trigger R`: if R has a build queued, nothing happens (Tilt collapses triggers); if R
//!   has a build in progress, the new build is queued and starts 1 ms after that one finishes;
//!   otherwise it starts now.
//! - Local with an update command: after the header, `Running cmd: <cmd>` at S, then the
//!   build's lines (line i of n at `S + duration_ms*(i+1)/n`), all in span `cmd:<name>:update`
//!   (source "runtime"). A successful one finishes 250 ms after `S + duration_ms`: Tilt sleeps
//!   that long after the command. A failed one writes `Build Failed: <error>` at its finish.
//!   Serve-only (`update = false`): a build is its two header lines only, finished at once
//!   (`duration_ms` ignored), and `updateStatus` is `not_applicable` once built.
//! - Local with a `serve_cmd`: a successful build starts a serve process at its finish, unless
//!   the resource's next build was already queued then (Tilt starts none between a build and
//!   its queued successor). Serve process K (one counter over all resources, in start order)
//!   writes `Running cmd: <serve_cmd>` at its start, then the build's `runtime` lines spread
//!   over `runtime_ms`, in span `localserve:K`; its pid is 20000 + K; with `exit_code` it
//!   exits after its output. It runs until the resource's next serve process starts, or the
//!   resource is disabled or removed: its lines due later are never written. A failed build
//!   starts none and leaves the running one alone.
//!
//! # Compose (a build of D = `duration_ms` starting at S, finishing at F = S + D)
//! Compose names the project after the Tiltfile's folder (lower case, `[a-z0-9_-]` kept: P);
//! the container is `P-<name>-1`, its id 64 hex digits, new for each container. Every line
//! below is in span `build:N` (source "build") unless said.
//! - `update = "force"` (the default: a trigger with no changed file): `STEP 1/2 — Force
//!   update`; with a container, `      Container P-<name>-1  Stopping` at S, `Stopped` at
//!   S + D/8 (a running container exits then: code 143, `healthStatus` `unhealthy` if it has a
//!   healthcheck), `Removing`, `Removed` at S + D/4 (the container is gone: the
//!   DockerComposeService status has no container fields and null apply times); without one,
//!   `     No stopped containers`. Then `""` and `STEP 2/2 — Building & deploying` at S + D/4.
//!   A queued force update thus stops the container its predecessor has just started.
//! - `update = "recreate"` / `"kept"` (changed files), and an initial build: `STEP 1/1 —
//!   Building & deploying` at S.
//! - Then BuildKit's image build from the step's start (I): steps `#0`–`#6` at once, then
//!   `#7 [<name> 3/3] RUN sh /usr/src/app/build.sh` and the build's `lines`, each prefixed
//!   `#7 <seconds since I, 3 decimals> ` (`#7 0.255    Compiling a`), spread up to E. A
//!   successful build: E = F - 2L with L = min(120 ms, D/4); `#7 DONE 0.5s` (`#7 CACHED` without
//!   lines), `""`, `#8 … exporting to image` … `#8 DONE 0.0s` at E; then Compose from E to
//!   C = F - L: with no container (force, initial): ` Container P-<name>-1  Creating` at E,
//!   `Created` at E + L/2 (the new container shows `created`, `startedAt` null); recreate:
//!   `Recreate` at E (new container `created`), the watch shows the old one again at E + L/3,
//!   it exits 143 (and `unhealthy`) with `Recreated` at E + 2L/3, shows `removing` at E + 5L/6;
//!   kept with a running container: ` Container P-<name>-1  Running` at C and nothing else (same
//!   container, no new output, no state change, its health unchanged: no new health event);
//!   kept with an exited one (a one-shot): `Created` at E + L/2, then it starts again in the
//!   same container (`finishedAt` of its last run kept while it runs). ` Container …
//!   Starting`, `Started` at C: the container runs from C (`healthStatus` `starting`) and its
//!   `runtime` lines (span `dc:<name>`, source "runtime") are spread from C over `runtime_ms`:
//!   with a short `runtime_ms` they come before the build's tail, at F: `""`,
//!   `     Step 1 - 0.25s (Force update)`, `     Step 2 - 0.75s (Building & deploying)` (a
//!   force update; else one `Step 1 - 1.00s (Building & deploying)`), `     DONE IN: 1.00s `
//!   (trailing space), `""`.
//! - A failed image build (`error` set; for compose it is BuildKit's reason, e.g.
//!   `sync_tests::scenario::buildkit_error(101)`): the lines spread up to F, then at F
//!   `#7 ERROR: <error>`, `------`, ` > [<name> 3/3] RUN sh /usr/src/app/build.sh:`, the lines
//!   again with only their seconds prefix (`1.251 error[E0425]: …`), `------`,
//!   `failed to solve: <error>`, `""`, `got unexpected error during build/deploy: command
//!   ["docker" "compose" "--project-name" "P" … "build" "<name>"] failed.`, `error: exit status
//!   17`, `""`, `Build Failed: command [...] failed.`, `error: exit status 17`. Tilt records
//!   `command [...] failed.\nerror: exit status 17\n` (buildHistory `error`, `applyError`). The
//!   container is left alone (but a force update removed it first).
//! - The container: with `exit_code` it exits 30 ms after its last `runtime` line (exit 0: no
//!   `exitCode` field); with `health`, `healthStatus` is `starting` until C + `health_ms`, then
//!   the value; turning `unhealthy` writes `healthcheck: nc: can't connect to remote host
//!   (127.0.0.1): Connection refused` in span `dockercompose:<name>` (source "runtime"). Tilt
//!   writes no line for a crash.
//! - The UIResource describes the last container Tilt saw (a removed one's last state stays):
//!   `runtimeStatus` `pending` while `created` (no `healthStatus`), `ok` while running and after
//!   exit 0, `error` after a non-zero exit (137/143 of a replaced one included); `unhealthy`
//!   leaves it `ok` (Ready True): only `composeResourceInfo.healthStatus` says it.
//!
//! # Disable, enable, removal, log limit
//! - `tilt disable R` at T (`internal/cli/disable.go`): writes `Resource "R" disabled. To
//!   enable/disable it, use the Tilt Web UI.` (span `disabletoggle-R`, source "runtime"),
//!   empties R's build history, cancels its build in progress (its lines stop at T, then
//!   `Build Failed: build canceled` in its span; that build, error `build canceled`, is the
//!   history's one entry, recorded after the emptying), drops its queued build, stops its
//!   serve process and removes its container. While disabled: `updateStatus` and
//!   `runtimeStatus` `none`, conditions False with reason `Disabled`, `disableStatus.state`
//!   `Disabled` (`disabledCount` 1) on the UIResource, `disableStatus` `{"disabled":true,
//!   "state":"Disabled",…}` on the DockerComposeService; `tilt trigger R` fails. `tilt enable
//!   R` writes `… enabled. …`; if the disable canceled no build (history empty) Tilt starts an
//!   `Initial Build` at once (the next `build` entry).
//! - `removed_after_ms`: from then on R's objects are gone (NotFound, left out of lists; a
//!   watch prints each once more as it was; the "(Tiltfile)" UIResource shows the load of the
//!   edited Tiltfile then, a build of its own), `tilt trigger R` fails with 404, its queued build
//!   never runs, its container and serve process stop; a build in progress keeps writing.
//! - Tilt's log limit (`pkg/model/logstore/logstore.go`): whenever the lines written (text +
//!   newline, all resources) pass `log_limit_bytes`, Tilt cuts down to half of it: the
//!   "heaviest" resource (bytes × rank, rank 1 for the resource whose oldest kept line is the
//!   newest) loses budget by halves until enough is cut, then each resource keeps its newest
//!   lines within its budget. Cut lines are gone: `tilt logs` never shows them, and `tilt
//!   logs -f` skips those it had not printed yet silently (no marker, as the real client:
//!   `internal/hud/client/log_streamer.go` appends what the server sends without checking its
//!   checkpoints).
//!
//! # Status
//! - `buildHistory` holds the two newest finished builds (omitted when none), `currentBuild`
//!   the build in progress (omitted when none), `queued` is true while a triggered build waits
//!   (omitted when false, as Go's `omitempty` does); `updateStatus` is `in_progress` while
//!   building, `pending` while queued, else `error`/`ok` (`not_applicable` serve-only) from the
//!   last finished build, `none` if never built; `runtimeStatus` is `not_applicable` for a local
//!   resource without `serve_cmd`, else `pending` until a container/serve process runs, then as
//!   above (a serve process's end is an error, code 0 too, as Tilt); `conditions`
//!   `UpToDate`/`Ready` as Tilt computes them, `lastTransitionTime` when their status last
//!   flipped; `lastDeployTime` the last successful build's finish (null if none). The
//!   "(Tiltfile)" resource is loaded a second before the first build.
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
//! - `version`, `trigger R` (a disabled R: `Error: resource "R" is currently disabled`, exit 1;
//!   unknown or removed: `Error: (404): resource "R" does not exist`, exit 1).
//! - `disable R…`, `enable R…`: no output, exit 0; no name: `Error: must specify at least one
//!   resource`; an unknown one: `Error: no such resource "R"`; `(Tiltfile)`: `Error: (Tiltfile)
//!   cannot be enabled or disabled` (exit 1, nothing changed). `--all`/`--labels` are not
//!   imitated.
//! - `logs [R…] [-f|--follow] [--json] [--since D] [--tail N]`. With CI, DO_NOT_TRACK or
//!   TILT_DISABLE_ANALYTICS set it first writes `YYYY/MM/DD hh:mm:ss Tilt analytics disabled:
//!   Environment variable KEY=VALUE` to stderr, as Tilt does. `--json` lines:
//!   `{"time","resource","level":"info","message","spanID","progressID","buildEvent","source"}`,
//!   `message` without a trailing newline, `level` always "info" (the real client spoofs it),
//!   `source` "build" for `build:N` spans, else "runtime".
//! - `get uiresources -o name`, `get uiresource R -o json|name` (R may be "(Tiltfile)"),
//!   `get uiresources -o json` (a `List`: `{"apiVersion":"v1","items":[…],"kind":"List",
//!   "metadata":{"resourceVersion":""}}`). Objects carry what the real ones carry (keys sorted,
//!   as kubectl prints): `metadata` (`annotations` `tilt.dev/resource`, `creationTimestamp`,
//!   `name`, `ownerReferences`, `resourceVersion` growing with each change, `uid`), `spec: {}`,
//!   `status` (`buildHistory`, `composeResourceInfo` or `localResourceInfo`, `conditions`,
//!   `currentBuild`, `disableStatus`, `lastDeployTime`, `order`, `pendingBuildSince`, `queued`,
//!   `runtimeStatus`, `specs` — compose `[{"id":"image:P_<name>","type":"image"},
//!   {"id":"docker-compose:<name>","type":"docker-compose"}]`, local `[{"id":"local:<name>",
//!   "type":"local"}]` —, `triggerMode` 1, `updateStatus`).
//! - `get dockercomposeservice R -o json`, `get dockercomposeservices -o json` (a `List`),
//!   `… -w -o json`: compose resources only (others are NotFound): `metadata` (annotations
//!   `tilt.dev/log-span-id: dockercompose:<name>`, `tilt.dev/managed-by`, `tilt.dev/resource`),
//!   `spec` (`disableSource`, `imageMaps`, `project` {`configPaths`, `name`, `projectPath`},
//!   `service`), `status` (`applyError`, `containerID`, `containerName` (once the build that
//!   made it finished), `containerState` {`exitCode` (omitted when 0), `finishedAt` (null
//!   while running), `healthStatus`, `running` (only when true), `startedAt`, `status`},
//!   `disableStatus`, `lastApplyStartTime`, `lastApplyFinishTime`).
//! - Every list comes in a new random order (the apiserver has none), on every call.
//! - `get uiresources -w -o json`, `get uiresource R -w -o json` (and the same for
//!   `dockercomposeservices`): every object (pretty, one after another, no list; a list watch
//!   prints the whole set twice, each time in a new order, as the real one does), then an
//!   object again whenever its JSON changes (state polled every 50 ms), and a deleted one once
//!   more as it was; exit 0 without output when Tilt stops (after `logs -f` ends). `get a,b
//!   -w`: `error: you may only specify a single resource type`, exit 1.
//! - `get uiresources,dockercomposeservices -o json`: one `List` of both kinds, the UIResources
//!   first, as the real Tilt answers.
//! - `get tiltfile "(Tiltfile)" -o jsonpath={.spec.path}`.
//! - Without Tilt, `get`, `disable` and `enable` fail with `Error: No tilt apiserver found:
//!   tilt-PORT` (exit 1); `hang` patterns apply to every call, `-w` ones included. Unknown
//!   commands and flags fail as the real CLI does (exit 1); calls the stand-in does not imitate
//!   fail with `tilt stand-in: unsupported call: …` and exit 2.

// The crate root is `src/bin/tilt.rs`, so its modules are found relative to `src/bin/`.
#[path = "tilt/compose.rs"]
mod compose;
#[path = "tilt/cost.rs"]
mod cost;
#[path = "tilt/load.rs"]
mod load;
#[path = "tilt/local.rs"]
mod local;
#[path = "tilt/logstore.rs"]
mod logstore;
#[path = "tilt/objects.rs"]
mod objects;
#[path = "tilt/schedule.rs"]
mod schedule;
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
use sync_tests::scenario::{Scenario, DEFAULT_PORT};
use time::format_description::well_known::Rfc3339;

use objects::{datetime, Clock, TILTFILE};
use schedule::{removal_ms, stop_ms};
use state::{unix_ms_now, Action, ActionKind, State, StateDir};
use timeline::{loaded_ms, reported, LogLine, Model, ResourceStatus};

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
        "disable" => ctx.toggle(ActionKind::Disable, rest),
        "enable" => ctx.toggle(ActionKind::Enable, rest),
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
            && stop_ms(&self.scenario, &state.actions).is_none_or(|stop| now_ms < stop)
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
            let known = self.known(&locked.state.actions, now_ms);
            if !known.contains(&resource.as_str()) {
                return Err(Failure::tilt(format!("Error: (404): resource \"{resource}\" does not exist")));
            }
            let model = Model::new(&self.scenario, &locked.state.actions, now_ms);
            if model.statuses().iter().any(|s| s.name == resource && s.disabled) {
                return Err(Failure::tilt(format!("Error: resource \"{resource}\" is currently disabled")));
            }
            locked.state.actions.push(Action::trigger(resource, now_ms));
            locked.save()?;
        }
        out.print(&format!("Successfully triggered update for resource: \"{resource}\"\n"))
    }

    /// The resources Tilt has at `now_ms`: the scenario's, but those a Tiltfile edit removed.
    fn known(&self, actions: &[Action], now_ms: i64) -> Vec<&str> {
        let resources = self.scenario.resources.iter().enumerate();
        let here =
            resources.filter(|(index, _)| removal_ms(&self.scenario, actions, *index).is_none_or(|at| now_ms < at));
        here.map(|(_, r)| r.name.as_str()).collect()
    }

    /// `tilt disable R…` and `tilt enable R…` (`internal/cli/disable.go`, `enable.go`): no
    /// output on success; every name is checked before anything changes.
    fn toggle(&self, kind: ActionKind, args: &[String]) -> Result<(), Failure> {
        let command = if kind == ActionKind::Disable { "disable" } else { "enable" };
        let flags = [FlagSpec::switch("all", None), FlagSpec::value("labels", Some('l'))];
        let parsed = parse_flags(command, args, &flags)?;
        let unsupported = || Failure::standin(format!("unsupported call: tilt {command} {}", args.join(" ")));
        if parsed.switch("all") || parsed.value("labels").is_some() {
            return Err(unsupported());
        }
        if parsed.positional.is_empty() {
            return Err(Failure::tilt("Error: must specify at least one resource"));
        }
        let mut locked = self.dir.lock()?;
        let now_ms = locked.state.now_ms();
        if !self.reachable(&locked.state, now_ms) {
            return Err(self.endpoint.no_tilt(Api::Server));
        }
        let known = self.known(&locked.state.actions, now_ms);
        for name in &parsed.positional {
            if name == TILTFILE {
                return Err(Failure::tilt(format!("Error: {name} cannot be enabled or disabled")));
            }
            if !known.contains(&name.as_str()) {
                return Err(Failure::tilt(format!("Error: no such resource {name:?}")));
            }
        }
        for name in &parsed.positional {
            locked.state.actions.push(Action { resource: name.clone(), ms: now_ms, kind });
        }
        locked.save()?;
        Ok(())
    }

    /// `tilt logs [R…] [-f] [--json] [--since D] [--tail N]`.
    fn logs(&self, args: &[String], out: &mut Out) -> Result<(), Failure> {
        let options = LogsOptions::parse(args, self.scenario.json)?;
        print_analytics_notice();
        self.connect(Api::WebsocketToken)?;

        let delay = if options.follow { i64::try_from(self.scenario.stream_delay_ms).unwrap_or(i64::MAX) } else { 0 };
        let current = Model::new(&self.scenario, &self.snapshot.actions, self.now_ms.saturating_sub(delay)).lines();
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
            let stop = stop_ms(&self.scenario, &state.actions);
            let until = stop.map_or(now_ms, |stop| now_ms.min(stop));
            // Lines Tilt cut before this client read them never come: the stream skips them
            // silently (`internal/hud/client/log_streamer.go`).
            let current = Model::new(&self.scenario, &state.actions, until.saturating_sub(delay)).lines();
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
        let call = Get { output, watch, name };
        match kind {
            "uiresources,dockercomposeservices" if output == "json" && !watch && name.is_none() => {
                // One list, each kind in the apiserver's order (none), the UIResources first.
                let statuses = self.statuses();
                let mut items = Vec::new();
                for kind in [ObjectKind::UiResource, ObjectKind::ComposeService] {
                    let mut objects = self.present(kind, &statuses)?;
                    objects::shuffle(&mut objects, seed());
                    items.extend(objects.into_iter().map(|object| object.value));
                }
                out.print(&format!("{}\n", objects::list(items).map_err(Failure::standin)?))
            }
            "uiresource" | "uiresources" | "uiresource.tilt.dev" => self.get_objects(ObjectKind::UiResource, call, out),
            "dockercomposeservice" | "dockercomposeservices" | "dockercomposeservice.tilt.dev" => {
                self.get_objects(ObjectKind::ComposeService, call, out)
            }
            "tiltfile" | "tiltfiles" | "tiltfile.tilt.dev" => {
                match name {
                    Some(TILTFILE) => {}
                    Some(name) => return Err(ObjectKind::not_found("tiltfiles", name)),
                    None => return Err(unsupported()),
                }
                let template = output.strip_prefix("jsonpath=").map(strip_quotes);
                if watch || template != Some("{.spec.path}") {
                    return Err(unsupported());
                }
                out.print(self.scenario.tiltfile.as_deref().unwrap_or_default())
            }
            other => Err(Failure::tilt(format!("Error: the server doesn't have a resource type \"{other}\""))),
        }
    }

    /// `tilt get uiresource[s] …` or `tilt get dockercomposeservice[s] …`.
    fn get_objects(&self, kind: ObjectKind, call: Get, out: &mut Out) -> Result<(), Failure> {
        let unsupported =
            || Failure::standin(format!("unsupported call: tilt get {} -o {}", kind.plural(), call.output));
        let present = self.present(kind, &self.statuses())?;
        if let Some(name) = call.name.filter(|name| !present.iter().any(|o| o.name == *name)) {
            return Err(ObjectKind::not_found(kind.plural(), name));
        }
        let mut chosen: Vec<Object> =
            present.into_iter().filter(|o| call.name.is_none_or(|name| name == o.name)).collect();
        objects::shuffle(&mut chosen, seed());
        match (call.output, call.watch, call.name) {
            ("name", false, _) if kind == ObjectKind::UiResource => {
                let listed: String = chosen.iter().map(|o| format!("uiresource.tilt.dev/{}\n", o.name)).collect();
                out.print(&listed)
            }
            ("json", true, name) => self.watch(kind, name, out),
            ("json", false, Some(_)) => {
                let [object] = <[Object; 1]>::try_from(chosen).map_err(|_| unsupported())?;
                out.print(&format!("{}\n", object.json().map_err(Failure::standin)?))
            }
            ("json", false, None) => {
                let items = chosen.into_iter().map(|o| o.value).collect();
                out.print(&format!("{}\n", objects::list(items).map_err(Failure::standin)?))
            }
            _ => Err(unsupported()),
        }
    }

    /// Every resource's status as `tilt get` shows it at the call (removed ones included, as
    /// they were when removed).
    fn statuses(&self) -> Vec<ResourceStatus<'_>> {
        reported(&self.scenario, &self.snapshot.actions, self.now_ms)
    }

    fn clock(&self) -> Clock {
        Clock { start_unix_ms: self.snapshot.start_unix_ms, loaded_ms: loaded_ms(&self.scenario) }
    }

    /// The objects of a kind that exist.
    fn present(&self, kind: ObjectKind, statuses: &[ResourceStatus]) -> Result<Vec<Object>, Failure> {
        let all = kind.render(statuses, self.clock()).map_err(Failure::standin)?;
        Ok(all.into_iter().filter(|o| !o.removed).collect())
    }

    /// `tilt get … -w -o json`: prints every object (a whole list twice, as the real watch
    /// does: once listed, once as the watch's first events, each in its own order), then an
    /// object again whenever it changes or is deleted, until Tilt stops.
    fn watch(&self, kind: ObjectKind, name: Option<&str>, out: &mut Out) -> Result<(), Failure> {
        let mut reprint = Reprint::default();
        let mut state = self.snapshot.clone();
        let mut now_ms = self.now_ms;
        let chosen = |objects: Vec<Object>| -> Vec<Object> {
            objects.into_iter().filter(|o| name.is_none_or(|name| name == o.name)).collect()
        };
        let mut first = true;
        loop {
            let stop = stop_ms(&self.scenario, &state.actions);
            let until = stop.map_or(now_ms, |stop| now_ms.min(stop));
            let statuses = reported(&self.scenario, &state.actions, until);
            let current = chosen(kind.render(&statuses, self.clock()).map_err(Failure::standin)?);
            let printed = if std::mem::take(&mut first) {
                reprint.first(current, name.is_none(), seed)
            } else {
                reprint.changed(current)
            };
            for json in printed {
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

/// What a `tilt get` of one kind asks for.
#[derive(Clone, Copy)]
struct Get<'a> {
    output: &'a str,
    watch: bool,
    name: Option<&'a str>,
}

/// The API object kinds the stand-in serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ObjectKind {
    UiResource,
    ComposeService,
}

impl ObjectKind {
    fn plural(self) -> &'static str {
        match self {
            ObjectKind::UiResource => "uiresources",
            ObjectKind::ComposeService => "dockercomposeservices",
        }
    }

    fn not_found(plural: &str, name: &str) -> Failure {
        Failure::tilt(format!("Error from server (NotFound): {plural}.tilt.dev \"{name}\" not found"))
    }

    /// Every object of this kind for these statuses, removed ones included.
    fn render(self, statuses: &[ResourceStatus], clock: Clock) -> Result<Vec<Object>, String> {
        let mut rendered = Vec::new();
        if self == ObjectKind::UiResource {
            // A Tiltfile edit removed a resource: Tilt loaded the Tiltfile again then.
            let reloaded = statuses.iter().filter(|status| status.removed).map(|status| status.changed_ms).max();
            rendered.push(Object {
                name: TILTFILE.to_owned(),
                value: objects::tiltfile_resource(clock, reloaded)?,
                removed: false,
            });
        }
        for status in statuses {
            let value = match self {
                ObjectKind::UiResource => objects::ui_resource(status, clock)?,
                ObjectKind::ComposeService => match objects::compose_service(status, clock) {
                    Some(value) => value?,
                    None => continue,
                },
            };
            rendered.push(Object { name: status.name.to_owned(), value, removed: status.removed });
        }
        Ok(rendered)
    }
}

/// An API object: its name, its JSON, and whether it was deleted (a Tiltfile edit removed its
/// resource).
struct Object {
    name: String,
    value: serde_json::Value,
    removed: bool,
}

impl Object {
    fn json(&self) -> Result<String, String> {
        objects::pretty(&self.value)
    }
}

/// A new order for every answer: the time and the process.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    u64::from(nanos) ^ (u64::from(std::process::id()) << 32)
}

/// Which objects a watch prints: each the first time it is seen, then whenever its JSON
/// changes, and once more when it is deleted (as it was then: kubectl's watch prints the
/// deleted object, without saying it was deleted).
#[derive(Default)]
struct Reprint {
    printed: HashMap<String, String>,
    deleted: HashSet<String>,
}

impl Reprint {
    /// The watch's first output: every object, and for a list the whole set again.
    fn first(&mut self, objects: Vec<Object>, list: bool, mut seed: impl FnMut() -> u64) -> Vec<String> {
        let mut present: Vec<(String, String)> = Vec::new();
        for object in objects.into_iter().filter(|o| !o.removed) {
            let json = object.json().unwrap_or_default();
            self.printed.insert(object.name.clone(), json.clone());
            present.push((object.name, json));
        }
        let mut printed = Vec::new();
        for _ in 0..if list { 2 } else { 1 } {
            objects::shuffle(&mut present, seed());
            printed.extend(present.iter().map(|(_, json)| json.clone()));
        }
        printed
    }

    fn changed(&mut self, objects: Vec<Object>) -> Vec<String> {
        let mut fresh = Vec::new();
        for object in objects {
            let json = object.json().unwrap_or_default();
            if object.removed {
                if self.printed.contains_key(&object.name) && self.deleted.insert(object.name) {
                    fresh.push(json);
                }
            } else if self.printed.get(&object.name) != Some(&json) {
                self.printed.insert(object.name, json.clone());
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
    fn a_watch_prints_each_object_twice_then_the_changed_and_the_deleted_ones() {
        use sync_tests::scenario::{BuildSpec, Resource};
        let scenario = Scenario::new([
            Resource::compose("server").build(BuildSpec::new(300, &[])),
            Resource::compose("ui").build(BuildSpec::new(300, &[])).removed_after(1500),
        ]);
        let clock = Clock { start_unix_ms: 0, loaded_ms: -1000 };
        let actions = [Action::trigger("server", 100)];
        let at = |now_ms| ObjectKind::UiResource.render(&reported(&scenario, &actions, now_ms), clock).unwrap();
        let status_of = |json: &str| -> serde_json::Value { serde_json::from_str::<serde_json::Value>(json).unwrap() };
        let mut reprint = Reprint::default();
        let mut seeds = 0..;
        let first = reprint.first(at(0), true, || seeds.next().unwrap_or_default());
        assert_eq!(first.len(), 6, "every object, twice");
        assert!(reprint.changed(at(50)).is_empty(), "nothing changed");
        let started = reprint.changed(at(100));
        assert_eq!(started.len(), 1, "only the server: {started:?}");
        assert_eq!(status_of(&started[0])["status"]["updateStatus"], "in_progress");
        let finished: Vec<serde_json::Value> = reprint.changed(at(1000)).iter().map(|json| status_of(json)).collect();
        assert_eq!(finished.last().unwrap()["status"]["buildHistory"][0]["spanID"], "build:1");
        assert!(reprint.changed(at(1200)).is_empty(), "a finished build's status stays put");
        // The edited Tiltfile's load, then the deleted object once more.
        let deleted = reprint.changed(at(1600));
        assert_eq!(deleted.len(), 2, "{deleted:?}");
        assert_eq!(status_of(&deleted[0])["metadata"]["name"], "(Tiltfile)");
        assert_eq!(status_of(&deleted[0])["status"]["buildHistory"][0]["spanID"], "tiltfile:(Tiltfile):2");
        assert_eq!(status_of(&deleted[1])["metadata"]["name"], "ui");
        assert!(reprint.changed(at(1700)).is_empty(), "deleted once");
        assert!(!at(1700).iter().any(|o| o.name == "ui" && !o.removed), "gone from every answer");
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
