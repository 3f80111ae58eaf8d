//! The only place that runs `tilt`. `../shared/tilt-cli.md` records what each call prints;
//! the parsing here follows it. Every call is bounded in time; the log stream is one child
//! process, killed and reaped when dropped.

use std::{
    collections::HashMap,
    fmt,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc::SyncSender,
    thread,
    time::Duration,
};

use anyhow::{Context, Result};
use camino::Utf8PathBuf;
use regex::Regex;
use serde::Deserialize;
use xshell::{cmd, Shell};

use crate::{
    process::{self, Ended},
    scan::strip_ansi,
    step::{BuildStatus, FinishedBuild, LogLine, Origin},
};

/// The first release whose `tilt logs` has `--json` (and `--since`, `--tail`).
const FIRST_JSON_VERSION: (u64, u64, u64) = (0, 36, 1);

pub struct Tilt<'a> {
    sh: &'a Shell,
    program: Utf8PathBuf,
    port: Option<u16>,
    call_timeout: Duration,
}

/// Why a Tilt call did not give an answer.
#[derive(Debug)]
pub enum TiltError {
    NotInstalled { program: Utf8PathBuf },
    NotRunning { port: u16, stderr: String },
    Hung { call: String, after: Duration },
    Interrupted,
    Failed { call: String, stderr: String },
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
            TiltError::Failed { call, stderr } => {
                write!(f, "`{call}` failed: {}", first_line(stderr))
            }
        }
    }
}

impl std::error::Error for TiltError {}

fn first_line(text: &str) -> &str {
    text.lines().find(|line| !line.trim().is_empty()).unwrap_or("no message").trim()
}

/// How `tilt logs` is read.
#[derive(Clone, Copy)]
pub enum LogFormat<'r> {
    Json,
    /// Tilt older than 0.36.1; the pattern of a build's reason line.
    Plain(&'r Regex),
}

/// An event of the run, in the order it happened: log lines from the stream, the stream's
/// end, or Ctrl-C.
#[derive(Debug)]
pub enum Event {
    Line { resource: String, line: LogLine },
    StreamEnded { detail: String },
    Interrupted,
}

impl<'a> Tilt<'a> {
    pub fn new(sh: &'a Shell, program: Utf8PathBuf, port: Option<u16>, call_timeout: Duration) -> Tilt<'a> {
        Tilt { sh, program, port, call_timeout }
    }

    /// `--port N` for the calls that talk to a running Tilt.
    fn port_args(&self) -> Vec<String> {
        self.port.map(|port| vec!["--port".to_owned(), port.to_string()]).unwrap_or_default()
    }

    fn command(&self, args: &[&str], with_port: bool) -> Command {
        let program = &self.program;
        let port = if with_port { self.port_args() } else { Vec::new() };
        cmd!(self.sh, "{program} {args...} {port...}").into()
    }

    /// Runs one call to completion, killing it if it does not answer within the bound.
    fn call(&self, args: &[&str]) -> Result<String, TiltError> {
        self.call_with(args, true)
    }

    fn call_with(&self, args: &[&str], with_port: bool) -> Result<String, TiltError> {
        let call = format!("tilt {}", args.join(" "));
        match process::run(self.command(args, with_port), self.call_timeout) {
            Ended::Exited(output) if output.status.success() => {
                Ok(String::from_utf8_lossy(&output.stdout).into_owned())
            }
            Ended::Exited(output) => Err(self.call_error(call, String::from_utf8_lossy(&output.stderr).into_owned())),
            Ended::TimedOut => Err(TiltError::Hung { call, after: self.call_timeout }),
            Ended::Interrupted => Err(TiltError::Interrupted),
            Ended::NotFound => Err(TiltError::NotInstalled { program: self.program.clone() }),
            Ended::Failed(err) => Err(TiltError::Failed { call, stderr: err.to_string() }),
        }
    }

    fn call_error(&self, call: String, stderr: String) -> TiltError {
        let refused = ["connection refused", "No tilt apiserver found", "Could not connect to Tilt"];
        if refused.iter().any(|text| stderr.contains(text)) {
            TiltError::NotRunning { port: self.port.unwrap_or(10350), stderr }
        } else {
            TiltError::Failed { call, stderr }
        }
    }

    /// Whether `tilt logs` can print JSON (and so be followed by build number).
    pub fn supports_json(&self) -> Result<bool, TiltError> {
        let version = self.call_with(&["version"], false)?;
        Ok(parse_version(&version).is_none_or(|version| version >= FIRST_JSON_VERSION))
    }

    /// The resources this Tilt runs (without the `(Tiltfile)` pseudo-resource).
    pub fn resources(&self) -> Result<Vec<String>, TiltError> {
        let names = self.call(&["get", "uiresources", "-o", "name"])?;
        Ok(names
            .lines()
            .filter_map(|line| line.trim().strip_prefix("uiresource.tilt.dev/"))
            .filter(|name| *name != "(Tiltfile)")
            .map(str::to_owned)
            .collect())
    }

    /// The Tiltfile this Tilt runs: it tells which checkout its builds come from.
    pub fn tiltfile(&self) -> Result<Utf8PathBuf, TiltError> {
        let path = self.call(&["get", "tiltfile", "(Tiltfile)", "-o", "jsonpath={.spec.path}"])?;
        Ok(Utf8PathBuf::from(path.trim()))
    }

    pub fn status(&self, resource: &str) -> Result<BuildStatus> {
        let json = self.call(&["get", "uiresource", resource, "-o", "json"])?;
        parse_status(&json).with_context(|| format!("reading Tilt's status of `{resource}`"))
    }

    pub fn trigger(&self, resource: &str) -> Result<(), TiltError> {
        self.call(&["trigger", resource]).map(drop)
    }

    /// The resource's log now (the last `tail` lines, if given), placed in builds: by Tilt's
    /// build numbers with `--json`, else by counting the build headers `plain_header` matches.
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
                Ok(read_json_log(&self.call(&args)?, resource))
            }
            LogFormat::Plain(header) => Ok(parse_plain_log(&self.call(&args)?, header)),
        }
    }

    /// Follows the resources' logs as JSON: the history, then new lines as Tilt writes them,
    /// each sent as an `Event` placed in its build.
    pub fn follow(&self, resources: &[&str], events: SyncSender<Event>) -> Result<LogStream, TiltError> {
        let mut args = vec!["logs", "--follow", "--json"];
        args.extend_from_slice(resources);
        let call = format!("tilt {}", args.join(" "));
        let mut child = process::spawn(self.command(&args, true), Stdio::piped()).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => TiltError::NotInstalled { program: self.program.clone() },
            _ => TiltError::Failed { call, stderr: err.to_string() },
        })?;
        let stderr = process::read_in_background(child.stderr.take());
        let stdout = child.stdout.take();
        let wanted: Vec<String> = resources.iter().map(|name| (*name).to_owned()).collect();
        thread::spawn(move || {
            if let Some(stdout) = stdout {
                forward_json_lines(BufReader::new(stdout), &wanted, &events);
            }
            let detail = String::from_utf8_lossy(&stderr.bytes_within(Duration::from_secs(1))).into_owned();
            // The receiver may be gone already: the run is over.
            let _ = events.send(Event::StreamEnded { detail: first_line(&detail).to_owned() });
        });
        Ok(LogStream { child })
    }
}

/// The `tilt logs --follow` process. Dropping it kills and reaps the process.
pub struct LogStream {
    child: Child,
}

impl Drop for LogStream {
    fn drop(&mut self) {
        // Killing the whole group closes the pipe, so the reader thread ends by itself; it is
        // not waited for, in case something outside the group still holds the pipe.
        process::kill_group(&mut self.child);
    }
}

#[derive(Deserialize)]
struct JsonLine {
    #[serde(default)]
    resource: String,
    #[serde(default)]
    message: String,
    #[serde(default, rename = "spanID")]
    span_id: String,
    #[serde(default, rename = "buildEvent")]
    build_event: String,
}

/// Reads `tilt logs --json` lines and sends those of `wanted` resources, each placed in its
/// build.
pub(crate) fn forward_json_lines(mut reader: impl BufRead, wanted: &[String], events: &SyncSender<Event>) {
    let mut placer = JsonPlacer::default();
    let mut raw = Vec::new();
    while let Ok(Some(length)) = read_capped_line(&mut reader, &mut raw, MAX_JSON_LINE) {
        let Some((resource, lines)) = placer.place(&raw, length, wanted) else { continue };
        for line in lines {
            if events.send(Event::Line { resource: resource.clone(), line }).is_err() {
                return;
            }
        }
    }
}

/// `tilt logs --json RESOURCE` printed at once (not followed), as lines placed in builds.
fn read_json_log(text: &str, resource: &str) -> Vec<LogLine> {
    let mut placer = JsonPlacer::default();
    let wanted = [resource.to_owned()];
    let mut reader = text.as_bytes();
    let mut raw = Vec::new();
    let mut lines = Vec::new();
    while let Ok(Some(length)) = read_capped_line(&mut reader, &mut raw, MAX_JSON_LINE) {
        lines.extend(placer.place(&raw, length, &wanted).into_iter().flat_map(|(_, lines)| lines));
    }
    lines
}

/// Places `tilt logs --json` lines in builds: a `build:N` span names it; runtime output
/// (`dc:…`, `localserve:…`) goes to the resource's latest build.
#[derive(Default)]
struct JsonPlacer {
    latest_build: HashMap<String, u64>,
}

impl JsonPlacer {
    /// One raw JSON line (`length` bytes long, perhaps cut): its resource and its lines, if it
    /// is one of `wanted`.
    fn place(&mut self, raw: &[u8], length: usize, wanted: &[String]) -> Option<(String, Vec<LogLine>)> {
        let parsed = serde_json::from_slice::<JsonLine>(raw)
            .or_else(|_| serde_json::from_str::<JsonLine>(&String::from_utf8_lossy(raw)));
        let json = match parsed {
            Ok(json) => json,
            // A line too long to keep whole: say so in its place rather than drop it unseen.
            Err(_) if length > raw.len() => JsonLine::too_long(raw, length),
            Err(_) => return None,
        };
        if !wanted.contains(&json.resource) {
            return None;
        }
        let latest = self.latest_build.entry(json.resource.clone()).or_insert(0);
        let (build, origin) = match build_number(&json.span_id) {
            Some(number) => {
                *latest = (*latest).max(number);
                (number, Origin::Build)
            }
            None => (*latest, Origin::Runtime),
        };
        let header = json.build_event == "init";
        let message = json.message.strip_suffix('\n').unwrap_or(&json.message);
        let lines = message.split('\n').map(|text| LogLine { build, header, origin, text: log_text(text) }).collect();
        Some((json.resource, lines))
    }
}

/// A JSON line longer than this is not parsed (its resource is still read, for the report).
const MAX_JSON_LINE: usize = 8 << 20;
/// Longer log lines are cut: judged and kept on their first bytes, so memory stays bounded.
const MAX_LINE: usize = 64 << 10;

impl JsonLine {
    fn too_long(start: &[u8], length: usize) -> JsonLine {
        let start = String::from_utf8_lossy(start);
        let field = |name: &str| {
            let key = format!("\"{name}\":\"");
            start
                .split_once(&key)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(value, _)| value.to_owned())
                .unwrap_or_default()
        };
        JsonLine {
            resource: field("resource"),
            message: format!("[a log line of {length} bytes, too long to read]"),
            span_id: field("spanID"),
            build_event: field("buildEvent"),
        }
    }
}

/// Reads one line into `line` (without its newline), keeping at most `cap` bytes and skipping
/// the rest. Returns the line's whole length, or None at the end of the input.
fn read_capped_line(reader: &mut impl BufRead, line: &mut Vec<u8>, cap: usize) -> std::io::Result<Option<usize>> {
    line.clear();
    let mut length = 0;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok((length > 0).then_some(length));
        }
        let (chunk, done) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&buffer[..end], Some(end + 1)),
            None => (buffer, None),
        };
        let room = cap.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        length += chunk.len();
        let consumed = done.unwrap_or(chunk.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Some(length));
        }
    }
}

/// A log line as it is judged and kept: without ANSI codes, cut at `MAX_LINE` bytes.
fn log_text(text: &str) -> String {
    let text = strip_ansi(text);
    if text.len() <= MAX_LINE {
        return text.into_owned();
    }
    let mut cut = MAX_LINE;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} … [{} more bytes]", &text[..cut], text.len() - cut)
}

fn build_number(span_id: &str) -> Option<u64> {
    span_id.strip_prefix("build:")?.parse().ok()
}

/// `v0.37.6-dev, built 2026-11-24` -> (0, 37, 6).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let version = text.trim().strip_prefix('v')?;
    let version = version.split([',', '-', ' ']).next()?;
    let mut parts = version.split('.').map(|part| part.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

/// Reads `tilt get uiresource NAME -o json`.
fn parse_status(json: &str) -> Result<BuildStatus> {
    #[derive(Deserialize)]
    struct UiResource {
        #[serde(default)]
        status: Status,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "camelCase", default)]
    struct Status {
        build_history: Vec<Build>,
        current_build: Option<Build>,
        runtime_status: String,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Build {
        #[serde(rename = "spanID")]
        span_id: String,
        error: Option<String>,
    }
    let resource: UiResource = serde_json::from_str(json).context("Tilt printed JSON this tool does not understand")?;
    let status = resource.status;
    Ok(BuildStatus {
        current: status.current_build.and_then(|build| build_number(&build.span_id)),
        finished: status
            .build_history
            .into_iter()
            .filter_map(|build| {
                let number = build_number(&build.span_id)?;
                Some(FinishedBuild { number, error: build.error.filter(|error| !error.is_empty()) })
            })
            .collect(),
        runtime_failed: status.runtime_status == "error",
    })
}

/// Splits a plain `tilt logs RESOURCE` into lines placed in builds numbered by the order of
/// their headers (an empty line, then a reason line such as `CLI Trigger`).
fn parse_plain_log(text: &str, header: &Regex) -> Vec<LogLine> {
    let lines: Vec<&str> = text.lines().collect();
    let mut build = 0;
    let mut parsed = Vec::with_capacity(lines.len());
    let mut index = 0;
    while index < lines.len() {
        let opens_build =
            lines[index].trim().is_empty() && lines.get(index + 1).is_some_and(|next| header.is_match(next.trim()));
        if opens_build {
            build += 1;
            for text in &lines[index..index + 2] {
                parsed.push(LogLine { build, header: true, origin: Origin::Unknown, text: (*text).to_owned() });
            }
            index += 2;
            continue;
        }
        parsed.push(LogLine { build, header: false, origin: Origin::Unknown, text: log_text(lines[index]) });
        index += 1;
    }
    parsed
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn versions_decide_json_support() {
        assert_eq!(parse_version("v0.37.6-dev, built 2026-11-24"), Some((0, 37, 6)));
        assert_eq!(parse_version("v0.36.1, built 2025-01-01"), Some((0, 36, 1)));
        assert_eq!(parse_version("v0.33.0"), Some((0, 33, 0)));
        assert!(parse_version("v0.35.9").unwrap() < FIRST_JSON_VERSION);
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn status_reads_build_numbers_errors_and_runtime() {
        let json = r#"{"metadata":{"name":"server"},"status":{
            "buildHistory":[{"spanID":"build:6","startTime":"x","finishTime":"y","error":"exit status 1"},{"spanID":"build:2"}],
            "currentBuild":{"spanID":"build:7","startTime":"z"},"queued":true,"updateStatus":"in_progress","runtimeStatus":"error"}}"#;
        let status = parse_status(json).unwrap();
        assert_eq!(status.current, Some(7));
        assert_eq!(status.finished[0], FinishedBuild { number: 6, error: Some("exit status 1".to_owned()) });
        assert_eq!(status.finished[1], FinishedBuild { number: 2, error: None });
        assert!(status.runtime_failed);
        assert_eq!(status.newest_build(), 7);
        let idle = parse_status(r#"{"status":{"currentBuild":{"startTime":null},"runtimeStatus":"ok"}}"#).unwrap();
        assert_eq!(idle, BuildStatus::default());
        assert!(parse_status("not json").is_err());
    }

    #[test]
    fn json_lines_are_placed_in_their_builds() {
        let input = [
            r#"{"time":"t","resource":"server","level":"INFO","message":"\n","spanID":"build:3","progressID":"","buildEvent":"init","source":""}"#,
            r#"{"time":"t","resource":"server","level":"INFO","message":"CLI Trigger\n","spanID":"build:3","progressID":"","buildEvent":"init","source":""}"#,
            r#"{"time":"t","resource":"ui","level":"INFO","message":"other\n","spanID":"build:4","buildEvent":""}"#,
            r#"{"time":"t","resource":"server","level":"INFO","message":"\u001b[32mCompiling\u001b[0m\n","spanID":"build:3","buildEvent":""}"#,
            r#"{"time":"t","resource":"server","level":"INFO","message":"Running a\nand b\n","spanID":"dc:server","buildEvent":""}"#,
            "not json at all",
        ]
        .join("\n");
        let (tx, rx) = mpsc::sync_channel(100);
        forward_json_lines(input.as_bytes(), &["server".to_owned()], &tx);
        drop(tx);
        let lines: Vec<LogLine> = rx
            .iter()
            .map(|event| match event {
                Event::Line { line, .. } => line,
                other => panic!("{other:?}"),
            })
            .collect();
        let expected = [
            (3, true, Origin::Build, ""),
            (3, true, Origin::Build, "CLI Trigger"),
            (3, false, Origin::Build, "Compiling"),
            (3, false, Origin::Runtime, "Running a"),
            (3, false, Origin::Runtime, "and b"),
        ];
        let expected: Vec<LogLine> = expected
            .iter()
            .map(|&(build, header, origin, text)| LogLine { build, header, origin, text: text.to_owned() })
            .collect();
        assert_eq!(lines, expected);
    }

    #[test]
    fn long_lines_are_cut_and_memory_stays_bounded() {
        let long = "x".repeat(100);
        let input = format!("{long}\nshort\n{long}");
        let mut reader = input.as_bytes();
        let mut line = Vec::new();
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), Some(100));
        assert_eq!(line, b"xxxxxxxxxx");
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), Some(5));
        assert_eq!(line, b"short");
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), Some(100));
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), None);

        let huge = "é".repeat(MAX_LINE);
        let kept = log_text(&huge);
        assert!(
            kept.len() < MAX_LINE + 40 && kept.ends_with(&format!("[{} more bytes]", huge.len() - MAX_LINE)),
            "{}",
            kept.len()
        );
    }

    #[test]
    fn a_json_line_too_long_to_parse_is_reported_in_its_place() {
        let message = "y".repeat(MAX_JSON_LINE);
        let input = format!(r#"{{"resource":"server","spanID":"build:2","buildEvent":"","message":"{message}"}}"#);
        let (tx, rx) = mpsc::sync_channel(10);
        forward_json_lines(input.as_bytes(), &["server".to_owned()], &tx);
        drop(tx);
        let Some(Event::Line { line, .. }) = rx.iter().next() else { panic!("no line") };
        assert_eq!(line.build, 2);
        assert!(line.text.starts_with("[a log line of"), "{}", line.text);
    }

    #[test]
    fn plain_logs_are_split_at_build_headers() {
        let header = Regex::new(r"^(Initial Build|CLI Trigger)").unwrap();
        let text = "\nInitial Build\nold error: x\n\nCLI Trigger\nnew\n\nnot a header\n";
        let lines = parse_plain_log(text, &header);
        let builds: Vec<(u64, bool, &str)> =
            lines.iter().map(|line| (line.build, line.header, line.text.as_str())).collect();
        assert_eq!(
            builds,
            [
                (1, true, ""),
                (1, true, "Initial Build"),
                (1, false, "old error: x"),
                (2, true, ""),
                (2, true, "CLI Trigger"),
                (2, false, "new"),
                (2, false, ""),
                (2, false, "not a header"),
            ]
        );
    }
}

#[cfg(test)]
mod never_panics {
    use std::sync::mpsc;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn reading_any_bytes_as_tilt_json(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (tx, rx) = mpsc::sync_channel(8192);
            forward_json_lines(bytes.as_slice(), &["server".to_owned()], &tx);
            drop(tx);
            let only_lines = rx.iter().all(|event| matches!(event, Event::Line { .. }));
            prop_assert!(only_lines, "the reader sends log lines and nothing else");
        }

        #[test]
        fn reading_any_plain_log_or_status(text in any::<String>()) {
            let header = Regex::new(r"^(Initial Build|CLI Trigger)").unwrap();
            let _ = parse_plain_log(&text, &header);
            let _ = parse_status(&text);
            let _ = parse_version(&text);
        }
    }
}
