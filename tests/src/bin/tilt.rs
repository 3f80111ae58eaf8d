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
//! Every key is optional except `name`; unknown keys are rejected. A bad scenario is reported on
//! stderr (`tilt stand-in: bad scenario …`) with exit code 2.
//! ```toml
//! running = true          # false: no Tilt; every call but `version` fails to connect
//! port = 10350            # the port this Tilt serves
//! json = true             # false: Tilt < 0.36.1, `logs` rejects --json/--since/--tail
//! version = "v0.37.6-dev, built 2026-11-24"   # what `tilt version` prints
//! tiltfile = "/abs/Tiltfile"   # `get tiltfile` answer; default <current directory>/Tiltfile
//! stop_after_ms = 1500    # Tilt stops this long after the FIRST successful trigger
//! stream_delay_ms = 300   # `logs -f` delivers each line this long after Tilt wrote it
//! hang = ["logs", "get uiresource"]   # calls whose command words start so hang silently
//!
//! [[resource]]            # in Tiltfile order
//! name = "server"
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
//! runtime = ["Running `target/debug/server`"]  # container output after a successful build
//! runtime_ms = 200
//! exit_code = 0           # optional: the container exits after its runtime output
//! ```
//! `history`, `running` and `build` entries all take the same keys: `duration_ms` (default
//! 100), `lines`, `error`, `runtime`, `runtime_ms` (default 0), `exit_code`.
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
//!   writes `Build Failed: <error>` at `S + duration_ms` (its finish). A successful build then
//!   starts its container: runtime line i of n at `finish + runtime_ms*(i+1)/n`, with `spanID`
//!   `dc:<name>`; later builds do not cut it off. A failed build has no runtime output.
//! - `tilt trigger R`: if R has a build queued, nothing happens (Tilt collapses triggers); if R
//!   has a build in progress, the new build is queued and starts when that one finishes;
//!   otherwise it starts now.
//! - Status (`tilt get uiresource R -o json`): `buildHistory` holds the two newest finished
//!   builds (omitted when none), `currentBuild` the build in progress (omitted when none),
//!   `queued` is true while a triggered build waits (omitted when false, as Go's `omitempty`
//!   does in the real Tilt); `updateStatus` is `in_progress` while building, else `error`/`ok`
//!   from the last finished build, `none` if never built; `runtimeStatus` is `pending` until a
//!   build succeeds, then `ok`, or `error` once that build's container exited non-zero (a failed
//!   build leaves it as it was); `conditions` `UpToDate`/`Ready` as Tilt computes them.
//!
//! # Calls
//! `version`, `trigger R`, `logs [R…] [-f|--follow] [--json] [--since D] [--tail N]`,
//! `get uiresources -o name`, `get uiresource R -o json|name`,
//! `get tiltfile "(Tiltfile)" -o jsonpath={.spec.path}`. Unknown commands and flags fail as
//! the real CLI does (exit 1); calls the stand-in does not imitate fail with
//! `tilt stand-in: unsupported call: …` and exit 2.

// The crate root is `src/bin/tilt.rs`, so its modules are found relative to `src/bin/`.
#[path = "tilt/scenario.rs"]
mod scenario;
#[path = "tilt/state.rs"]
mod state;
#[path = "tilt/timeline.rs"]
mod timeline;

use std::collections::HashSet;
use std::env;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

use scenario::{Scenario, DEFAULT_PORT};
use state::{unix_ms_now, State, StateDir};
use timeline::{stop_ms, timeline, LogLine, ResourceStatus};

/// How often `logs -f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(50);
/// The name of the Tiltfile's own resource.
const TILTFILE: &str = "(Tiltfile)";

fn main() -> ExitCode {
    let args: Vec<String> = env::args_os().skip(1).map(|arg| arg.to_string_lossy().into_owned()).collect();
    match run(&args) {
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

fn run(args: &[String]) -> Result<(), Failure> {
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

    let scenario = Scenario::load(Path::new(&scenario_path)).map_err(Failure::standin)?;
    let (endpoint, args) = Endpoint::from_args(args)?;
    if scenario.hangs(&command_words(&args)) {
        hang();
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
        self.connect(Api::WebsocketToken)?;

        let delay = if options.follow { i64::try_from(self.scenario.stream_delay_ms).unwrap_or(i64::MAX) } else { 0 };
        let current = timeline(&self.scenario, &self.snapshot.triggers, self.now_ms.saturating_sub(delay));
        let selected: Vec<&LogLine> = current.lines.iter().filter(|line| options.selects(line)).collect();
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
            let current = timeline(&self.scenario, &state.triggers, until.saturating_sub(delay));
            let fresh: Vec<&LogLine> =
                current.lines.iter().filter(|line| options.selects(line) && printed.insert(line.id)).collect();
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
        let parsed = parse_flags("get", args, &[FlagSpec::value("output", Some('o'))])?;
        let output = parsed.value("output").unwrap_or_default();
        self.connect(Api::Server)?;

        let unsupported = || Failure::standin(format!("unsupported call: tilt get {}", args.join(" ")));
        let (kind, name) = match parsed.positional.as_slice() {
            [kind] => (kind.as_str(), None),
            [kind, name] => (kind.as_str(), Some(name.as_str())),
            _ => return Err(unsupported()),
        };
        match kind {
            "uiresource" | "uiresources" | "uiresource.tilt.dev" => {
                let names: Vec<&str> =
                    std::iter::once(TILTFILE).chain(self.scenario.resources.iter().map(|r| r.name.as_str())).collect();
                if let Some(name) = name {
                    if !names.contains(&name) {
                        return Err(Failure::tilt(format!(
                            "Error from server (NotFound): uiresources.tilt.dev \"{name}\" not found"
                        )));
                    }
                }
                match (output, name) {
                    ("name", _) => {
                        let listed: String = names
                            .iter()
                            .filter(|n| name.is_none_or(|name| name == **n))
                            .map(|n| format!("uiresource.tilt.dev/{n}\n"))
                            .collect();
                        out.print(&listed)
                    }
                    ("json", Some(name)) if name != TILTFILE => {
                        let current = timeline(&self.scenario, &self.snapshot.triggers, self.now_ms);
                        let status = current.status(name).ok_or_else(unsupported)?;
                        let json = ui_resource_json(status, self.snapshot.start_unix_ms).map_err(Failure::standin)?;
                        out.print(&format!("{json}\n"))
                    }
                    _ => Err(unsupported()),
                }
            }
            "tiltfile" | "tiltfiles" | "tiltfile.tilt.dev" => {
                match name {
                    Some(TILTFILE) => {}
                    Some(name) => {
                        return Err(Failure::tilt(format!(
                            "Error from server (NotFound): tiltfiles.tilt.dev \"{name}\" not found"
                        )))
                    }
                    None => return Err(unsupported()),
                }
                let template = output.strip_prefix("jsonpath=").map(strip_quotes);
                if template != Some("{.spec.path}") {
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
    message: String,
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
        level: "INFO",
        message: format!("{}\n", line.text),
        span_id: &line.span_id,
        progress_id: "",
        build_event: if line.init { "init" } else { "" },
        source: "",
    };
    serde_json::to_string(&json).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// `tilt get uiresource R -o json` output.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiResourceJson<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: MetadataJson<'a>,
    status: UiStatusJson,
}

#[derive(Serialize)]
struct MetadataJson<'a> {
    name: &'a str,
}

/// The fields of Tilt's `UIResourceStatus` the stand-in fills, in Tilt's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiStatusJson {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    build_history: Vec<BuildTerminatedJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_build: Option<BuildRunningJson>,
    runtime_status: &'static str,
    update_status: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    queued: bool,
    conditions: Vec<ConditionJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildTerminatedJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    start_time: String,
    finish_time: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildRunningJson {
    start_time: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConditionJson {
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    last_transition_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// The UIResource object, pretty-printed as `kubectl`-style printers do (4-space indent).
fn ui_resource_json(status: &ResourceStatus, start_unix_ms: i64) -> Result<String, String> {
    let at = |offset_ms: i64| micro_time(start_unix_ms + offset_ms);
    let now = micro_time(unix_ms_now());
    let object = UiResourceJson {
        api_version: "tilt.dev/v1alpha1",
        kind: "UIResource",
        metadata: MetadataJson { name: status.name },
        status: UiStatusJson {
            build_history: status
                .build_history
                .iter()
                .map(|b| BuildTerminatedJson {
                    error: b.error.clone(),
                    start_time: at(b.start_ms),
                    finish_time: at(b.finish_ms),
                    span_id: format!("build:{}", b.number),
                })
                .collect(),
            current_build: status
                .current_build
                .map(|b| BuildRunningJson { start_time: at(b.start_ms), span_id: format!("build:{}", b.number) }),
            runtime_status: status.runtime_status.as_str(),
            update_status: status.update_status.as_str(),
            queued: status.queued,
            conditions: status
                .conditions()
                .iter()
                .map(|c| ConditionJson {
                    kind: c.kind,
                    status: if c.status { "True" } else { "False" },
                    last_transition_time: now.clone(),
                    reason: c.reason,
                })
                .collect(),
        },
    };
    let mut buffer = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffer, formatter);
    object.serialize(&mut serializer).map_err(|e| e.to_string())?;
    String::from_utf8(buffer).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// Time and output.

fn datetime(unix_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339, UTC, whole seconds: `2026-08-01T12:00:00Z`.
fn rfc3339_seconds(unix_ms: i64) -> String {
    datetime(unix_ms.div_euclid(1000) * 1000).format(&Rfc3339).unwrap_or_default()
}

/// RFC 3339, UTC, microseconds (Kubernetes `MicroTime`): `2026-08-01T12:00:00.250000Z`.
fn micro_time(unix_ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    datetime(unix_ms).format(&format).unwrap_or_default()
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
    fn times_are_utc() {
        assert_eq!(rfc3339_seconds(1_500), "1970-01-01T00:00:01Z");
        assert_eq!(micro_time(1_250), "1970-01-01T00:00:01.250000Z");
    }
}
