//! The only place that runs `tilt`. `../shared/tilt-cli.md` records what each call prints; the
//! parsing here follows it. A run opens two long-lived calls — the log stream (`tilt logs -f
//! --json`) and the status watch (`tilt get uiresources -w -o json`), plus a docker-compose
//! service watch when a step waits for health — and per step only `tilt trigger`. Every other
//! call is bounded in time; a stream is one child process, killed and reaped when dropped.

pub mod model;

use std::{
    collections::HashMap,
    fmt,
    io::{BufReader, Read},
    process::{Child, Command, Stdio},
    sync::mpsc::SyncSender,
    thread,
    time::Duration,
};

use camino::Utf8PathBuf;
use regex::Regex;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use xshell::{cmd, Shell};

use tilt_log::{log_pieces, read_json_log, Logged};

use crate::{
    process::{self, Ended},
    run::Event,
    tilt::model::{
        BuildRecord, ComposeService, FinishedBuild, Health, LogLine, ResourceKind, ResourceStatus, Runtime,
        RuntimeStatus, Span, WallTime,
    },
};

/// The first release whose `tilt logs` has `--json` (and `--since`, `--tail`).
const FIRST_JSON_VERSION: (u64, u64, u64) = (0, 36, 1);
/// The name of the Tiltfile's own resource.
const TILTFILE_RESOURCE: &str = "(Tiltfile)";

pub struct Tilt<'a> {
    sh: &'a Shell,
    program: Utf8PathBuf,
    port: Option<u16>,
    call_timeout: Duration,
}

/// Why a Tilt call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TiltError {
    NotInstalled {
        program: Utf8PathBuf,
    },
    NotRunning {
        port: u16,
        stderr: String,
    },
    Hung {
        call: String,
        after: Duration,
    },
    Interrupted,
    Failed {
        call: String,
        stderr: String,
    },
    /// Tilt answered with something this tool does not understand.
    Unreadable {
        call: String,
        why: String,
    },
}

impl fmt::Display for TiltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TiltError::NotInstalled { program } => write!(
                f,
                "Tilt was not found: `{program}` is not an executable on PATH. Install Tilt \
                 (https://docs.tilt.dev/install.html), or point --tilt (or SYNC_TILT) at it"
            ),
            TiltError::NotRunning { port, stderr } => write!(
                f,
                "no Tilt running on localhost:{port}: start it with `tilt up` in the workspace, \
                 or pass --tilt-port (or TILT_PORT) if it serves another port ({})",
                first_line(stderr)
            ),
            TiltError::Hung { call, after } => {
                write!(f, "`{call}` did not answer within {}s and was killed", after.as_secs_f32())
            }
            TiltError::Interrupted => write!(f, "interrupted"),
            TiltError::Failed { call, stderr } => write!(f, "`{call}` failed: {}", first_line(stderr)),
            TiltError::Unreadable { call, why } => write!(f, "`{call}` printed what this tool cannot read: {why}"),
        }
    }
}

impl std::error::Error for TiltError {}

impl TiltError {
    /// No Tilt answers on the port (never started, or stopped).
    pub fn is_not_running(&self) -> bool {
        matches!(self, TiltError::NotRunning { .. })
    }

    /// A call that exited with `stderr`: Tilt not running, or another failure.
    fn from_stderr(call: String, stderr: String, port: Option<u16>) -> TiltError {
        let refused = ["connection refused", "No tilt apiserver found", "Could not connect to Tilt"];
        if refused.iter().any(|text| stderr.contains(text)) {
            TiltError::NotRunning { port: port.unwrap_or(DEFAULT_PORT), stderr }
        } else {
            TiltError::Failed { call, stderr }
        }
    }
}

/// The port Tilt serves unless told otherwise.
pub const DEFAULT_PORT: u16 = 10350;

fn first_line(text: &str) -> &str {
    message_lines(text).next().unwrap_or("no message")
}

/// What a `tilt` call wrote to stderr, without Tilt's own notices: `tilt logs` and `tilt up`
/// print `2026/11/26 03:50:56 Tilt analytics disabled: Environment variable CI=true` whenever
/// CI, DO_NOT_TRACK or TILT_DISABLE_ANALYTICS is set (`internal/cli/logs.go`), which says
/// nothing about why the call ended.
fn message_lines(stderr: &str) -> impl Iterator<Item = &str> {
    stderr.lines().map(str::trim).filter(|line| !line.is_empty() && !line.contains("Tilt analytics disabled:"))
}

/// How `tilt logs` is read.
#[derive(Clone, Copy)]
pub enum LogFormat<'r> {
    Json,
    /// Tilt older than 0.36.1; the pattern of a build's reason line.
    Plain(&'r Regex),
}

impl<'a> Tilt<'a> {
    pub fn new(sh: &'a Shell, program: Utf8PathBuf, port: Option<u16>, call_timeout: Duration) -> Tilt<'a> {
        Tilt { sh, program, port, call_timeout }
    }

    /// `tilt ARGS… --port N`; `tilt version` talks to no Tilt and refuses `--port`.
    fn command(&self, args: &[&str]) -> Command {
        let program = &self.program;
        let talks_to_tilt = args.first() != Some(&"version");
        let port = self.port.filter(|_| talks_to_tilt).map(|port| vec!["--port".to_owned(), port.to_string()]);
        let port = port.unwrap_or_default();
        cmd!(self.sh, "{program} {args...} {port...}").into()
    }

    /// Runs one call to completion, killing it if it does not answer within the bound.
    fn call(&self, args: &[&str]) -> Result<String, TiltError> {
        let call = format!("tilt {}", args.join(" "));
        match process::run(self.command(args), self.call_timeout) {
            Ended::Exited(output) if output.status.success() => {
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            }
            Ended::Exited(output) => {
                let mut stderr = message_lines(&String::from_utf8_lossy(&output.stderr)).collect::<Vec<_>>().join("\n");
                if stderr.is_empty() {
                    stderr = format!("{} and printed nothing", output.status);
                }
                Err(TiltError::from_stderr(call, stderr, self.port))
            }
            Ended::TimedOut => Err(TiltError::Hung { call, after: self.call_timeout }),
            Ended::Interrupted => Err(TiltError::Interrupted),
            Ended::NotFound => Err(TiltError::NotInstalled { program: self.program.clone() }),
            Ended::Failed(err) => Err(TiltError::Failed { call, stderr: err.to_string() }),
        }
    }

    /// Whether `tilt logs` can print JSON (and so be followed by build number).
    pub fn supports_json(&self) -> Result<bool, TiltError> {
        let version = self.call(&["version"])?;
        Ok(parse_version(&version).is_none_or(|version| version >= FIRST_JSON_VERSION))
    }

    /// The Tiltfile this Tilt runs: it tells which checkout its builds come from.
    pub fn tiltfile(&self) -> Result<Utf8PathBuf, TiltError> {
        let path = self.call(&["get", "tiltfile", TILTFILE_RESOURCE, "-o", "jsonpath={.spec.path}"])?;
        Ok(Utf8PathBuf::from(path.trim()))
    }

    /// Every resource's status and every docker-compose container, in one call (a container
    /// that exited 0 leaves its resource's status `ok`).
    pub fn state(&self) -> Result<TiltState, TiltError> {
        let args = ["get", "uiresources,dockercomposeservices", "-o", "json"];
        let json = self.call(&args)?;
        let unreadable = |why: String| TiltError::Unreadable { call: format!("tilt {}", args.join(" ")), why };
        let list: List<ApiObject> = serde_json::from_str(&json).map_err(|err| unreadable(err.to_string()))?;
        let mut state = TiltState::default();
        for object in list.items {
            match object {
                ApiObject::UIResource(resource) => state.statuses.extend(resource.into_status()),
                ApiObject::DockerComposeService(service) => state.compose.push(service.into_model()),
                ApiObject::Other => {}
            }
        }
        Ok(state)
    }

    /// The resources Tilt has now (`tilt get uiresources -o name`), the Tiltfile's left out.
    pub fn resource_names(&self) -> Result<Vec<String>, TiltError> {
        let names = self.call(&["get", "uiresources", "-o", "name"])?;
        Ok(names
            .lines()
            .filter_map(|line| line.trim().strip_prefix("uiresource.tilt.dev/"))
            .filter(|name| *name != TILTFILE_RESOURCE)
            .map(str::to_owned)
            .collect())
    }

    pub fn trigger(&self, resource: &str) -> Result<(), TiltError> {
        self.call(&["trigger", resource]).map(drop)
    }

    /// The resource's log now (the last `tail` lines, if given), each line in its span.
    pub fn logs(&self, resource: &str, format: LogFormat, tail: Option<usize>) -> Result<Vec<LogLine>, TiltError> {
        // Tilt without --json has no --tail either: it prints the whole log.
        let tail = tail.filter(|_| matches!(format, LogFormat::Json)).map(|lines| lines.to_string());
        let mut args = vec!["logs", resource];
        if let Some(tail) = &tail {
            args.extend(["--tail", tail]);
        }
        match format {
            LogFormat::Json => {
                args.push("--json");
                let text = self.call(&args)?;
                let mut lines = Vec::new();
                read_json_log(&mut text.as_bytes(), &[resource.to_owned()], &mut |read| {
                    if let Logged::Line(line) = read {
                        lines.push(line);
                    }
                    true
                });
                Ok(lines)
            }
            LogFormat::Plain(header) => Ok(parse_plain_log(&self.call(&args)?, resource, header)),
        }
    }

    /// Starts a long-lived call whose stdout `forward` turns into events.
    fn stream(
        &self,
        args: &[&str],
        events: SyncSender<Event>,
        forward: impl FnOnce(Box<dyn Read + Send>, &SyncSender<Event>) + Send + 'static,
    ) -> Result<Stream, TiltError> {
        let call = format!("tilt {}", args.join(" "));
        let mut child = process::spawn(self.command(args), Stdio::piped()).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => TiltError::NotInstalled { program: self.program.clone() },
            _ => TiltError::Failed { call: call.clone(), stderr: err.to_string() },
        })?;
        let port = self.port;
        let stderr = process::read_in_background(child.stderr.take());
        let stdout = child.stdout.take();
        thread::spawn(move || {
            if let Some(stdout) = stdout {
                forward(Box::new(stdout), &events);
            }
            let stderr = String::from_utf8_lossy(&stderr.bytes_within(Duration::from_secs(1))).into_owned();
            let stderr = message_lines(&stderr).next().unwrap_or_default().to_owned();
            let error = (!stderr.is_empty()).then(|| TiltError::from_stderr(call, stderr, port));
            // The receiver may be gone already: the run is over.
            let _ = events.send(Event::Ended { error });
        });
        Ok(Stream { child })
    }

    /// Follows the resources' logs: the history, then new lines as Tilt writes them. Every
    /// resource's log is read, so that the volume Tilt holds is known (it cuts past 2 MB).
    pub fn follow_logs(&self, resources: &[&str], events: SyncSender<Event>) -> Result<Stream, TiltError> {
        let wanted: Vec<String> = resources.iter().map(|name| (*name).to_owned()).collect();
        self.stream(&["logs", "--follow", "--json"], events, move |stdout, events| {
            read_json_log(&mut BufReader::new(stdout), &wanted, &mut |read| {
                let event = match read {
                    Logged::Line(line) => Event::Line(line),
                    Logged::Volume(volume) => Event::Volume(volume),
                };
                events.send(event).is_ok()
            });
        })
    }

    /// Watches every resource's status: each once, then again on every change.
    pub fn watch_statuses(&self, events: SyncSender<Event>) -> Result<Stream, TiltError> {
        self.stream(&["get", "uiresources", "--watch", "-o", "json"], events, |stdout, events| {
            for resource in serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<UiResource>() {
                let Ok(resource) = resource else { return };
                let event = match resource.metadata.name == TILTFILE_RESOURCE {
                    // The Tiltfile loaded again: it may have renamed or removed a resource.
                    true => Event::TiltfileLoaded(
                        resource.status.build_history.first().and_then(|build| build.finish_time.clone()),
                    ),
                    false => match resource.into_status() {
                        Some(status) => Event::Status(status),
                        None => continue,
                    },
                };
                if events.send(event).is_err() {
                    return;
                }
            }
        })
    }

    /// Watches the docker-compose services' containers.
    pub fn watch_compose(&self, events: SyncSender<Event>) -> Result<Stream, TiltError> {
        let args = ["get", "dockercomposeservices", "--watch", "-o", "json"];
        self.stream(&args, events, |stdout, events| {
            for service in serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<DcService>() {
                let Ok(service) = service else { return };
                if events.send(Event::Compose(service.into_model())).is_err() {
                    return;
                }
            }
        })
    }
}

/// A long-lived `tilt` call. Dropping it kills and reaps the process.
pub struct Stream {
    child: Child,
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Killing the whole group closes the pipe, so the reader thread ends by itself; it is
        // not waited for, in case something outside the group still holds the pipe.
        process::kill_group(&mut self.child);
    }
}

/// Splits a plain `tilt logs RESOURCE` into lines placed in builds numbered by the order of
/// their headers (an empty line, then a reason line such as `CLI Trigger`).
pub fn parse_plain_log(text: &str, resource: &str, header: &Regex) -> Vec<LogLine> {
    let lines: Vec<&str> = text.lines().collect();
    let mut build = 0;
    let mut parsed = Vec::with_capacity(lines.len());
    let mut index = 0;
    let line =
        |build, header, text: String| LogLine { resource: resource.to_owned(), span: Span::Plain(build), header, text };
    while index < lines.len() {
        let opens_build =
            lines[index].trim().is_empty() && lines.get(index + 1).is_some_and(|next| header.is_match(next.trim()));
        if opens_build {
            build += 1;
            for text in &lines[index..index + 2] {
                parsed.push(line(build, true, (*text).to_owned()));
            }
            index += 2;
            continue;
        }
        log_pieces(lines[index], &mut |text| {
            parsed.push(line(build, false, text));
            true
        });
        index += 1;
    }
    parsed
}

/// `v0.37.6-dev, built 2026-11-24` -> (0, 37, 6).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let version = text.trim().strip_prefix('v')?;
    let version = version.split([',', '-', ' ']).next()?;
    let mut parts = version.split('.').map(|part| part.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

/// Tilt's state as one `tilt get` lists it.
#[derive(Debug, Default, Clone)]
pub struct TiltState {
    pub statuses: Vec<ResourceStatus>,
    pub compose: Vec<ComposeService>,
}

/// An item of a `List` of several kinds.
#[derive(Deserialize)]
#[serde(tag = "kind")]
enum ApiObject {
    UIResource(UiResource),
    DockerComposeService(DcService),
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Metadata {
    name: String,
}

/// `tilt get uiresource NAME -o json`, the fields the sync reads.
#[derive(Deserialize)]
struct UiResource {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    status: UiStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct UiStatus {
    build_history: Vec<UiBuild>,
    current_build: Option<UiBuild>,
    queued: bool,
    runtime_status: String,
    specs: Vec<UiSpec>,
    local_resource_info: Option<LocalInfo>,
    compose_resource_info: Option<ComposeInfo>,
    waiting: Option<UiWaiting>,
    disable_status: Option<UiDisable>,
}

/// `"disableStatus": {"state": "Disabled", …}` (`tilt disable`, Tilt's UI).
#[derive(Deserialize, Default)]
#[serde(default)]
struct UiDisable {
    state: String,
}

/// `"waiting": {"reason": "waiting-for-dep", "on": [{"kind": "UIResource", "name": "…"}]}`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct UiWaiting {
    reason: String,
    on: Vec<Metadata>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct UiBuild {
    #[serde(rename = "spanID")]
    span_id: String,
    start_time: Option<String>,
    finish_time: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UiSpec {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LocalInfo {
    pid: i64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ComposeInfo {
    health_status: String,
}

fn build_number(span_id: &str) -> Option<u64> {
    span_id.strip_prefix("build:")?.parse().ok()
}

fn wall_time(text: &Option<String>) -> Option<WallTime> {
    WallTime::parse(text.as_deref()?, &Rfc3339).ok()
}

impl UiResource {
    /// The model's status; None for the Tiltfile's own resource.
    fn into_status(self) -> Option<ResourceStatus> {
        if self.metadata.name == TILTFILE_RESOURCE || self.metadata.name.is_empty() {
            return None;
        }
        let status = self.status;
        let kinds: Vec<&str> = status.specs.iter().map(|spec| spec.kind.as_str()).collect();
        let kind = if kinds.contains(&"docker-compose") {
            ResourceKind::Compose
        } else if kinds.contains(&"k8s") {
            ResourceKind::Kubernetes
        } else if kinds.contains(&"local") {
            ResourceKind::Local
        } else {
            ResourceKind::Other
        };
        Some(ResourceStatus {
            name: self.metadata.name,
            kind,
            current: status.current_build.and_then(|build| {
                Some(BuildRecord { number: build_number(&build.span_id)?, start: wall_time(&build.start_time) })
            }),
            finished: status
                .build_history
                .into_iter()
                .filter_map(|build| {
                    Some(FinishedBuild {
                        number: build_number(&build.span_id)?,
                        start: wall_time(&build.start_time),
                        finish: wall_time(&build.finish_time),
                        error: build.error.filter(|error| !error.is_empty()),
                    })
                })
                .collect(),
            queued: status.queued,
            runtime: Runtime {
                status: RuntimeStatus::parse(&status.runtime_status),
                instance: status.local_resource_info.filter(|info| info.pid != 0).map(|info| info.pid.to_string()),
                health: status.compose_resource_info.and_then(|info| Health::parse(&info.health_status)),
            },
            waiting_on: status
                .waiting
                .filter(|waiting| waiting.reason == "waiting-for-dep")
                .map(|waiting| waiting.on.into_iter().map(|on| on.name).collect())
                .unwrap_or_default(),
            disabled: status.disable_status.is_some_and(|disable| disable.state == "Disabled"),
        })
    }
}

/// `tilt get dockercomposeservice NAME -o json`, the fields the sync reads.
#[derive(Deserialize)]
struct DcService {
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    status: DcStatus,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DcStatus {
    #[serde(rename = "containerID")]
    container_id: String,
    container_name: String,
    container_state: Option<DcContainer>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DcContainer {
    status: String,
    started_at: Option<String>,
    exit_code: i64,
    error: String,
    health_status: String,
}

impl DcService {
    fn into_model(self) -> ComposeService {
        let state = self.status.container_state.unwrap_or_default();
        ComposeService {
            name: self.metadata.name,
            container: Some(self.status.container_id).filter(|id| !id.is_empty()),
            started_at: state.started_at.clone(),
            container_name: Some(self.status.container_name).filter(|name| !name.is_empty()),
            exited: matches!(state.status.as_str(), "exited" | "dead"),
            exit_code: state.exit_code,
            error: Some(state.error).filter(|error| !error.is_empty()),
            health: Health::parse(&state.health_status),
        }
    }
}

/// Polls `tilt logs` for the resources every `every` (old Tilt, `--no-stream`) on a thread of
/// its own, sending the lines each poll finds new, and `Polled` after the first pass. It stops
/// when the run's receiver is gone, or at a failed call, sent as the log's end.
pub fn poll_logs(
    program: Utf8PathBuf,
    port: Option<u16>,
    call_timeout: Duration,
    resources: Vec<String>,
    header: Option<Regex>,
    every: Duration,
    events: SyncSender<Event>,
) {
    thread::spawn(move || {
        let ended = |error: Option<TiltError>| Event::Ended { error };
        let sh = match Shell::new() {
            Ok(sh) => sh,
            Err(err) => {
                let _ =
                    events.send(ended(Some(TiltError::Failed { call: "a shell".to_owned(), stderr: err.to_string() })));
                return;
            }
        };
        let tilt = Tilt::new(&sh, program, port, call_timeout);
        let format = match &header {
            Some(header) => LogFormat::Plain(header),
            None => LogFormat::Json,
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut first = true;
        loop {
            for resource in &resources {
                let lines = match tilt.logs(resource, format, None) {
                    Ok(lines) => lines,
                    Err(err) if err.is_not_running() => {
                        let _ = events.send(ended(None));
                        return;
                    }
                    Err(err) => {
                        let _ = events.send(ended(Some(err)));
                        return;
                    }
                };
                let count = seen.entry(resource.as_str()).or_default();
                if lines.len() < *count {
                    let call = format!("tilt logs {resource}");
                    let stderr = format!(
                        "Tilt dropped old lines of `{resource}` (it keeps 2 MB of log): polling lost its place"
                    );
                    let _ = events.send(ended(Some(TiltError::Failed { call, stderr })));
                    return;
                }
                for line in lines.into_iter().skip(*count) {
                    *count += 1;
                    if events.send(Event::Line(line)).is_err() {
                        return;
                    }
                }
            }
            if std::mem::take(&mut first) && events.send(Event::Polled).is_err() {
                return;
            }
            thread::sleep(every);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_decide_json_support() {
        assert_eq!(parse_version("v0.37.6-dev, built 2026-11-24"), Some((0, 37, 6)));
        assert_eq!(parse_version("v0.36.1, built 2025-01-01"), Some((0, 36, 1)));
        assert!(parse_version("v0.35.9").unwrap() < FIRST_JSON_VERSION);
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn tilts_analytics_notice_is_not_the_reason_a_call_ended() {
        let stderr = "2026/11/26 03:50:56 Tilt analytics disabled: Environment variable CI=true\n";
        assert_eq!(message_lines(stderr).next(), None);
        let refused = format!("{stderr}\nError: No tilt apiserver found: tilt-default\n");
        assert_eq!(first_line(&refused), "Error: No tilt apiserver found: tilt-default");
    }

    /// What the real Tilt printed for a local resource with a serve command (trimmed).
    const REAL_SERVER: &str = r#"{
    "apiVersion": "tilt.dev/v1alpha1",
    "kind": "UIResource",
    "metadata": {"name": "server", "resourceVersion": "99"},
    "spec": {},
    "status": {
        "buildHistory": [
            {"finishTime": "2026-11-26T00:33:47.164152Z", "spanID": "build:5", "startTime": "2026-11-26T00:33:46.599814Z"},
            {"error": "Command \"./build.sh\" failed: exit status 101", "finishTime": "2026-11-26T00:33:43.975Z", "spanID": "build:4", "startTime": "2026-11-26T00:33:43.408Z"}
        ],
        "currentBuild": {"spanID": "build:6", "startTime": "2026-11-26T00:33:50.000001Z"},
        "queued": true,
        "localResourceInfo": {"pid": 2991},
        "runtimeStatus": "error",
        "specs": [{"id": "local:server", "type": "local"}],
        "updateStatus": "in_progress"
    }
}
{"apiVersion": "tilt.dev/v1alpha1", "kind": "UIResource", "metadata": {"name": "(Tiltfile)"}, "status": {}}
{"metadata": {"name": "ui"}, "status": {"specs": [{"type": "docker-compose"}], "composeResourceInfo": {"healthStatus": "healthy"}, "runtimeStatus": "ok"}}
"#;

    #[test]
    fn watched_statuses_are_read_as_the_real_tilt_prints_them() {
        let statuses: Vec<ResourceStatus> = serde_json::Deserializer::from_str(REAL_SERVER)
            .into_iter::<UiResource>()
            .filter_map(|resource| resource.unwrap().into_status())
            .collect();
        assert_eq!(statuses.len(), 2, "the Tiltfile's own resource is left out");
        let server = &statuses[0];
        assert_eq!(server.kind, ResourceKind::Local);
        assert_eq!(server.current.as_ref().map(|build| build.number), Some(6));
        assert_eq!(server.finished[0].number, 5);
        assert_eq!(server.finished[1].error.as_deref(), Some("Command \"./build.sh\" failed: exit status 101"));
        let start = server.finished[0].start.unwrap();
        assert_eq!((start.second(), start.microsecond()), (46, 599814));
        assert!(server.queued);
        assert_eq!(
            server.runtime,
            Runtime { status: RuntimeStatus::Error, instance: Some("2991".to_owned()), health: None }
        );
        assert_eq!(server.newest_build(), 6);
        assert_eq!(statuses[1].kind, ResourceKind::Compose);
        assert_eq!(statuses[1].runtime.health, Some(Health::Healthy));
    }

    #[test]
    fn a_list_of_statuses_and_compose_services_are_read() {
        let list: List<UiResource> = serde_json::from_str(r#"{"apiVersion":"v1","items":[{"metadata":{"name":"server"},"status":{"runtimeStatus":"ok"}}],"kind":"List"}"#).unwrap();
        assert_eq!(list.items.len(), 1);
        // As the real Tilt shows a server whose dependency's initial build failed.
        let held: UiResource = serde_json::from_str(
            r#"{"metadata":{"name":"server"},"status":{"queued":true,"waiting":{"reason":"waiting-for-dep","on":[{"group":"tilt.dev","apiVersion":"v1alpha1","kind":"UIResource","name":"sync-wasm-client"}]}}}"#,
        )
        .unwrap();
        assert_eq!(held.into_status().unwrap().waiting_on, ["sync-wasm-client"]);
        let service: DcService = serde_json::from_str(
            r#"{"metadata":{"name":"server"},"status":{"containerID":"abc","containerState":{"status":"exited","exitCode":101,"healthStatus":"unhealthy"}}}"#,
        )
        .unwrap();
        let service = service.into_model();
        assert_eq!(service.container.as_deref(), Some("abc"));
        assert!(service.exited && service.down(false));
        assert_eq!(service.health, Some(Health::Unhealthy));
        let stopped: DcService = serde_json::from_str(
            r#"{"metadata":{"name":"server"},"status":{"containerID":"abd","containerState":{"status":"exited","running":false}}}"#,
        )
        .unwrap();
        let stopped = stopped.into_model();
        assert_eq!((stopped.down(false), stopped.down(true)), (false, true), "exit 0 downs only a service");
        assert_eq!(stopped.why_down(), "its container exited with code 0");
    }

    #[test]
    fn plain_logs_are_split_at_build_headers() {
        let header = Regex::new(r"^(Initial Build|CLI Trigger)").unwrap();
        let text = "\nInitial Build\nold error: x\n\nCLI Trigger\nnew\n\nnot a header\n";
        let builds: Vec<(Span, bool, String)> = parse_plain_log(text, "server", &header)
            .into_iter()
            .map(|line| (line.span, line.header, line.text))
            .collect();
        let expected = [
            (1, true, ""),
            (1, true, "Initial Build"),
            (1, false, "old error: x"),
            (2, true, ""),
            (2, true, "CLI Trigger"),
            (2, false, "new"),
            (2, false, ""),
            (2, false, "not a header"),
        ];
        let expected: Vec<(Span, bool, String)> =
            expected.iter().map(|&(build, header, text)| (Span::Plain(build), header, text.to_owned())).collect();
        assert_eq!(builds, expected);
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn reading_any_bytes_as_tilt_objects(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            // `tilt logs --json` is tilt-log's, tested there.
            for resource in serde_json::Deserializer::from_slice(&bytes).into_iter::<UiResource>() {
                let Ok(resource) = resource else { break };
                let _ = resource.into_status();
            }
        }

        #[test]
        fn reading_any_plain_log_or_version(text in any::<String>()) {
            let header = Regex::new(r"^(Initial Build|CLI Trigger)").unwrap();
            let _ = parse_plain_log(&text, "server", &header);
            let _ = parse_version(&text);
        }
    }
}
