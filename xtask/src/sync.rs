//! `cargo xtask sync`: checks Tilt, then runs the selected steps in protocol order. For each:
//! trigger, follow the build Tilt starts for that trigger, decide with `step::Watch`, remediate
//! once per error kind, and stop the run at the first failure.

use std::{
    collections::{HashSet, VecDeque},
    fs::File,
    io::{self, BufWriter, Write},
    process::{Command, ExitCode},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use crate::{
    changes,
    config::{Protocol, Remediation, Step},
    flags, interrupt,
    live::Live,
    process::{self, Ended},
    report::{self, LogDir, Outcome, RunReport, StepReport},
    step::{remediation_for, Baseline, Failure, LogLine, Progress, Watch},
    tilt::{Event, LogFormat, LogStream, Tilt, TiltError},
};

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_ENVIRONMENT: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

/// How soon Tilt is first asked again when our build printed its success line before Tilt
/// recorded it finished (then twice as long each time).
const PENDING_SUCCESS_RECHECK: Duration = Duration::from_millis(250);
const PENDING_SUCCESS_RECHECK_MAX: Duration = Duration::from_secs(1);
/// After a failed build's error line, the log counts as quiet (the build over) after this long.
const QUIET_AFTER_ERROR: Duration = Duration::from_millis(500);

/// A Tilt call that failed, or was cut short by Ctrl-C.
fn call_failure(err: anyhow::Error) -> Failure {
    if interrupt::requested() {
        return Failure::Interrupted;
    }
    Failure::TiltCall(format!("{err:#}"))
}

impl flags::Sync {
    pub fn run(&self, sh: &Shell) -> Result<ExitCode> {
        match self.sync(sh) {
            Err(err) if self.pre_push && !self.strict => {
                eprintln!("warning: {err:#}");
                eprintln!("warning: the push goes on without a sync (install the hook with --strict to block it)");
                Ok(ExitCode::SUCCESS)
            }
            outcome => outcome,
        }
    }

    fn sync(&self, sh: &Shell) -> Result<ExitCode> {
        let root = self.root()?;
        let mut protocol = Protocol::load(self.config.as_deref())?;
        if let Some(timeout) = self.timeout {
            protocol.steps.iter_mut().for_each(|step| step.timeout = timeout);
        }
        if let Some(poll) = self.poll {
            protocol.settings.poll = poll;
        }

        sh.change_dir(&root);
        // Without a usable logs/ the sync still runs and reports; it says what was not saved.
        let logs = LogDir::open(&root).map_err(|err| format!("{err:#}"));
        let _lock = logs.as_ref().ok().map(|logs| logs.lock(Duration::from_secs(2))).transpose()?;

        let pre_push_input = match self.pre_push {
            true => Some(io::read_to_string(io::stdin()).context("reading the refs git is pushing (pre-push input)")?),
            false => None,
        };
        let selection = changes::select(self, pre_push_input.as_deref(), &protocol, sh, &root, logs.as_ref().ok())?;
        if self.plan {
            match self.json {
                true => println!("{}", serde_json::to_string_pretty(&selection.plan_json(&protocol))?),
                false => print!("{}", selection.plan_text(&protocol)),
            }
            return Ok(ExitCode::SUCCESS);
        }
        let report = if selection.already_in_sync || selection.steps.is_empty() {
            let message = match selection.already_in_sync {
                true => "SUCCESS: Already in sync: nothing changed since the last successful sync".to_owned(),
                false => format!(
                    "SUCCESS: Nothing to rebuild: no change since {} needs a service rebuilt",
                    selection.base_description
                ),
            };
            RunReport::nothing_to_do(&protocol, message)
        } else {
            if !self.json && !selection.by_flag {
                eprint!("{}", selection.plan_text(&protocol));
            }
            self.run_steps(sh, &root, &protocol, &selection.steps, logs.as_ref().map_err(String::as_str))?
        };
        match &logs {
            Ok(logs) => {
                if let (true, Some(fingerprint)) = (report.succeeded(), &selection.fingerprint) {
                    if let Err(err) = logs.write_fingerprint(fingerprint) {
                        eprintln!("warning: could not record this sync in {}: {err}", logs.dir);
                    }
                }
                if let Err(err) = logs.write_status(&report) {
                    eprintln!("warning: could not write {}/sync-status.json: {err}", logs.dir);
                }
            }
            Err(problem) => eprintln!("warning: no logs were saved: {problem}"),
        }

        if self.json {
            println!("{}", serde_json::to_string_pretty(&report.json()).context("printing the report")?);
        } else {
            print!("{}", report.text());
        }
        let code = match (report.interrupted, report.succeeded()) {
            (true, _) => EXIT_INTERRUPTED,
            (false, true) => 0,
            (false, false) => EXIT_FAILED,
        };
        Ok(ExitCode::from(code))
    }

    /// Checks Tilt, follows its log, and runs `steps` in order.
    fn run_steps(
        &self,
        sh: &Shell,
        root: &Utf8Path,
        protocol: &Protocol,
        steps: &[&Step],
        logs: Result<&LogDir, &str>,
    ) -> Result<RunReport> {
        let tilt = Tilt::new(sh, self.tilt.clone(), self.tilt_port, protocol.settings.tilt_call_timeout.0);
        let (sender, events) = mpsc::sync_channel(1024);
        let wake = sender.clone();
        interrupt::install(move || {
            let _ = wake.send(Event::Interrupted);
        })?;

        let json_logs = preflight(&tilt, steps, root)?;
        let follow = json_logs && !self.no_stream;
        let mut live = Live::new(self.verbose);
        if !json_logs {
            live.note(
                "warning: this Tilt (older than 0.36.1) prints no build numbers: a container's lines cannot be told \
                 from the build's, so a previous container's success line could pass for ours. Upgrade Tilt.",
            );
        }
        if live.verbose() {
            let poll = protocol.settings.poll;
            let how = match (follow, json_logs) {
                (true, _) => {
                    "following `tilt logs --follow --json` (builds told apart by Tilt's build numbers)".to_owned()
                }
                (false, true) => format!("--no-stream: polling `tilt logs` every {poll}"),
                (false, false) => {
                    format!("this Tilt has no `logs --json` (older than 0.36.1): polling `tilt logs` every {poll}")
                }
            };
            live.note(&format!("sync: {how}"));
        }
        // Dropped (killed) when the run is over.
        let _stream: Option<LogStream> = match follow {
            true => Some(tilt.follow(&steps.iter().map(|step| step.resource.as_str()).collect::<Vec<_>>(), sender)?),
            false => None,
        };
        let mut runner = Runner {
            tilt: &tilt,
            sh,
            root,
            protocol,
            events,
            follow,
            json_logs,
            settle: self.settle.map(|settle| settle.0).unwrap_or_default(),
            stream_gone: None,
            interrupted_now: false,
            logs,
            live,
        };
        Ok(runner.run(steps))
    }

    fn root(&self) -> Result<Utf8PathBuf> {
        let root = match &self.root {
            Some(root) => root.clone(),
            None => crate::project_root(),
        };
        let root = root.canonicalize_utf8().with_context(|| format!("the workspace root {root} does not exist"))?;
        if !root.is_dir() {
            bail!("the workspace root {root} is not a directory");
        }
        Ok(root)
    }
}

/// Checks, before any trigger, that Tilt answers, runs this workspace, and has every resource
/// of the run (`tilt logs` on a misspelt resource prints nothing and exits 0: a watcher would
/// wait forever). Returns whether `tilt logs` can print JSON.
fn preflight(tilt: &Tilt, steps: &[&Step], root: &Utf8Path) -> Result<bool> {
    let resources = tilt.resources()?;
    let missing: Vec<&str> = steps
        .iter()
        .map(|step| step.resource.as_str())
        .filter(|resource| !resources.iter().any(|known| known == resource))
        .collect();
    if !missing.is_empty() {
        bail!(
            "Tilt has no resource named {}: fix the protocol file, or the Tiltfile (Tilt has: {})",
            missing.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
            resources.join(", ")
        );
    }
    let tiltfile = tilt.tiltfile()?;
    let watched = tiltfile.parent().and_then(|dir| dir.canonicalize_utf8().ok()).unwrap_or_else(|| tiltfile.clone());
    // The Tiltfile may sit anywhere inside this workspace.
    if !watched.starts_with(root) {
        bail!(
            "the Tilt on this port runs another checkout: {tiltfile}, not this workspace {root}. Its builds say \
             nothing about this workspace: run `tilt up` here (on another port, passed with --tilt-port), or sync from {}",
            watched
        );
    }
    Ok(tilt.supports_json()?)
}

struct Runner<'a> {
    tilt: &'a Tilt<'a>,
    sh: &'a Shell,
    root: &'a Utf8Path,
    protocol: &'a Protocol,
    events: Receiver<Event>,
    /// Lines come from one `tilt logs --follow --json` stream; otherwise `tilt logs` is polled.
    follow: bool,
    /// This Tilt prints its log as JSON (0.36.1 and later).
    json_logs: bool,
    /// A fixed wait after each trigger (the seed protocol waits 5 s).
    settle: Duration,
    /// Set once the log stream has ended: how every later wait fails.
    stream_gone: Option<Failure>,
    /// Ctrl-C seen while draining events: acted on by the caller.
    interrupted_now: bool,
    /// The logs directory, or why it is not usable.
    logs: Result<&'a LogDir, &'a str>,
    live: Live,
}

/// The step's log since its trigger, written as lines arrive so memory stays bounded.
struct StepLog {
    path: Utf8PathBuf,
    file: BufWriter<File>,
}

/// Where the next log line comes from: the run's JSON stream, or `tilt logs` polled.
enum Source {
    Stream,
    Poll { pending: VecDeque<LogLine>, seen: usize, next_poll: Instant },
}

enum Next {
    Line(LogLine),
    Idle,
    Failed(Failure),
}

impl Runner<'_> {
    /// Runs the selected steps in protocol order; a step is numbered by its place in the
    /// protocol (the seed's "Step 2" is always the server), unselected steps are `skipped`.
    fn run(&mut self, selected: &[&Step]) -> RunReport {
        let mut report = RunReport::new();
        let mut ordinal = 0;
        for (index, step) in self.protocol.steps.iter().enumerate() {
            if !selected.iter().any(|chosen| std::ptr::eq(*chosen, step)) {
                report.steps.push(StepReport::unstarted(step, Outcome::Skipped));
                continue;
            }
            if !report.succeeded() {
                report.steps.push(StepReport::unstarted(step, Outcome::NotRun));
                continue;
            }
            ordinal += 1;
            self.live.step_started(ordinal, selected.len(), &step.name, &step.resource);
            let (step_report, failure) = self.run_step(index + 1, step);
            self.live.step_finished(step_report.outcome.as_str());
            if let Some(failure) = failure {
                report.interrupted = failure == Failure::Interrupted;
                report.error_log = Some(self.save_error_log(index + 1, step, &step_report, &failure));
            }
            report.steps.push(step_report);
        }
        report
    }

    fn run_step(&mut self, number: usize, step: &Step) -> (StepReport, Option<Failure>) {
        let started = Instant::now();
        let deadline = started + step.timeout.0;
        let mut log = self.open_step_log(step);
        let mut used = HashSet::new();
        let mut remediations = Vec::new();
        let (progress, tail) = loop {
            let (progress, tail) = self.watch_build(step, deadline, log.as_mut());
            let Progress::Failed(failure) = &progress else {
                break (progress, tail);
            };
            let Some(remediation) = remediation_for(step, failure, &used) else {
                break (progress, tail);
            };
            used.insert(remediation.on);
            let described = describe(remediation);
            remediations.push(described.clone());
            self.live.note(&format!(
                "{}: {} → remediation: {described}, then retrigger",
                step.name,
                self.protocol.kind(remediation.on).name
            ));
            if let Err(failure) = self.remediate(remediation, deadline, log.as_mut()) {
                break (Progress::Failed(failure), tail);
            }
        };
        if let Some(log) = &mut log {
            let _ = log.file.flush();
        }
        let (outcome, deciding_line, failure) = match progress {
            Progress::Succeeded(line) => (Outcome::Ok, Some(line), None),
            Progress::Failed(Failure::Timeout) => (Outcome::Timeout, None, Some(Failure::Timeout)),
            Progress::Failed(failure) => {
                let line = match &failure {
                    Failure::Error { line, .. } => Some(line.clone()),
                    _ => None,
                };
                (Outcome::Failed, line, Some(failure))
            }
            // watch_build always decides; were it not to, unsure means failure.
            Progress::Watching => (Outcome::Failed, None, Some(Failure::Uncertain)),
        };
        let cause =
            failure.as_ref().map(|failure| report::cause(self.protocol, number, step, failure, &used, &remediations));
        let report = StepReport {
            name: step.name.clone(),
            resource: step.resource.clone(),
            outcome,
            duration: started.elapsed(),
            remediations,
            deciding_line,
            cause,
            log: log.map(|log| log.path),
            tail,
        };
        (report, failure)
    }

    fn open_step_log(&mut self, step: &Step) -> Option<StepLog> {
        let logs = self.logs.ok()?;
        match logs.step_log(&step.name) {
            Ok((path, file)) => Some(StepLog { path, file: BufWriter::new(file) }),
            Err(err) => {
                self.live.note(&format!("warning: cannot write {}/{}.log: {err}", logs.dir, step.name));
                None
            }
        }
    }

    /// Triggers the step's resource once and follows the build Tilt starts for it.
    fn watch_build(&mut self, step: &Step, deadline: Instant, log: Option<&mut StepLog>) -> (Progress, Vec<String>) {
        let (baseline, source) = match self.baseline_and_trigger(step) {
            Ok(started) => started,
            Err(failure) => return (Progress::Failed(failure), Vec::new()),
        };
        let watch = Watch::new(step, baseline, self.protocol.settings.report_lines);
        self.watch_on(step, watch, source, deadline, log)
    }

    /// Follows the build until it is decided, then confirms a success or saves a failure's log.
    fn watch_on(
        &mut self,
        step: &Step,
        mut watch: Watch,
        mut source: Source,
        deadline: Instant,
        mut log: Option<&mut StepLog>,
    ) -> (Progress, Vec<String>) {
        let mut quiet = self.protocol.settings.quiet_status_check.0;
        let mut status_due = Instant::now() + quiet;
        // When to ask Tilt again about a success line it has not recorded as finished yet.
        let mut recheck: Option<Instant> = None;
        let mut recheck_after = PENDING_SUCCESS_RECHECK;
        let mut last_asked: Option<Instant> = None;
        while watch.progress() == Progress::Watching {
            let now = Instant::now();
            if now >= deadline {
                // A success line Tilt never confirmed is no success, and no plain timeout either.
                watch.fail(if watch.success_pending() { Failure::Uncertain } else { Failure::Timeout });
                break;
            }
            // Due checks come first, however busy the log: a chatty log must not starve them.
            let rechecked = recheck.is_some_and(|at| now >= at);
            if rechecked {
                self.check_status(step, &mut watch);
                last_asked = Some(now);
            } else if now >= status_due {
                self.check_status(step, &mut watch);
                quiet *= 2;
                status_due = now + quiet;
            }
            if watch.progress() != Progress::Watching {
                break;
            }
            match self.next_line(step, &mut source, deadline.min(status_due).min(recheck.unwrap_or(deadline))) {
                Next::Line(line) => {
                    self.record(&watch, &line, log.as_deref_mut());
                    watch.on_line(&line);
                    status_due = Instant::now() + quiet;
                }
                Next::Idle => {}
                Next::Failed(failure) => {
                    watch.fail(failure);
                }
            }
            if watch.needs_status() {
                // What has already arrived first: an error there names the failure better.
                self.judge_available(step, &mut watch, &mut source, log.as_deref_mut());
                // A chatty container must not turn into a Tilt call per line: once asked, Tilt
                // is asked again only when the recheck comes due.
                let asked_lately = last_asked.is_some_and(|at: Instant| at.elapsed() < PENDING_SUCCESS_RECHECK);
                if watch.needs_status() && recheck.is_none() && !asked_lately {
                    self.check_status(step, &mut watch);
                    last_asked = Some(Instant::now());
                }
            }
            recheck = match (watch.success_pending() || watch.needs_status(), recheck) {
                (false, _) => None,
                (true, Some(_)) if rechecked => {
                    // Tilt was asked and the verdict still waits: ask again later and later.
                    recheck_after = (recheck_after * 2).min(PENDING_SUCCESS_RECHECK_MAX);
                    Some(Instant::now() + recheck_after)
                }
                (true, Some(at)) => Some(at),
                (true, None) => Some(Instant::now() + recheck_after),
            };
        }
        match watch.progress() {
            Progress::Succeeded(_) => self.confirm_success(step, &mut watch, &mut source, log.as_deref_mut()),
            Progress::Failed(Failure::Interrupted) | Progress::Watching => {}
            Progress::Failed(_) => self.keep_logging(step, &mut watch, &mut source, log.as_deref_mut()),
        }
        if watch.progress() == Progress::Watching {
            // The re-check disowned the success line (the previous container's): watch on.
            return self.watch_on(step, watch, source, deadline, log);
        }
        (watch.progress(), watch.tail().map(str::to_owned).collect())
    }

    fn check_status(&mut self, step: &Step, watch: &mut Watch) {
        match self.tilt.status(&step.resource) {
            Ok(status) => watch.on_status(&status),
            Err(err) => watch.fail(call_failure(err)),
        };
    }

    fn log_format(&self) -> LogFormat<'_> {
        match self.json_logs {
            true => LogFormat::Json,
            false => LogFormat::Plain(&self.protocol.settings.build_header),
        }
    }

    /// Reads where our build will start (Tilt's newest build now), then triggers.
    fn baseline_and_trigger(&mut self, step: &Step) -> Result<(Baseline, Source), Failure> {
        let status = self.tilt.status(&step.resource).map_err(call_failure)?.newest_build();
        let (baseline, source) = if self.follow {
            (Baseline { log: status, status }, Source::Stream)
        } else {
            let lines =
                self.tilt.logs(&step.resource, self.log_format(), None).map_err(|err| call_failure(err.into()))?;
            // Without --json, builds are numbered by counting their headers in the log.
            let log = if self.json_logs { status } else { lines.last().map_or(0, |line| line.build) };
            // The first look is right after the trigger (and the settle wait, if any).
            let next_poll = Instant::now();
            (Baseline { log, status }, Source::Poll { pending: VecDeque::new(), seen: lines.len(), next_poll })
        };
        self.tilt.trigger(&step.resource).map_err(|err| call_failure(err.into()))?;
        // Asked for explicitly (to reproduce the seed protocol): lines that arrive meanwhile wait
        // in the channel and are judged after it.
        thread::sleep(self.settle);
        Ok((baseline, source))
    }

    /// The next line of the step's resource, waiting at most until `until`.
    fn next_line(&mut self, step: &Step, source: &mut Source, until: Instant) -> Next {
        loop {
            if let Some(gone) = &self.stream_gone {
                return Next::Failed(gone.clone());
            }
            let now = Instant::now();
            if let Source::Poll { pending, next_poll, .. } = source {
                if let Some(line) = pending.pop_front() {
                    return Next::Line(line);
                }
                if now >= *next_poll {
                    *next_poll = now + self.protocol.settings.poll.0;
                    if let Err(failure) = self.fetch(step, source) {
                        return Next::Failed(failure);
                    }
                    continue;
                }
            }
            let wake = match source {
                Source::Poll { next_poll, .. } => until.min(*next_poll),
                Source::Stream => until,
            };
            match self.events.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(Event::Line { resource, line }) if resource == step.resource => return Next::Line(line),
                Ok(Event::Line { .. }) => {}
                Ok(Event::Interrupted) => return Next::Failed(Failure::Interrupted),
                Ok(Event::StreamEnded { detail }) => self.stream_ended(detail),
                Err(RecvTimeoutError::Timeout) if Instant::now() >= until => return Next::Idle,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.stream_ended(String::new()),
            }
        }
    }

    /// Polling: fetches the log and queues the lines not seen yet.
    fn fetch(&mut self, step: &Step, source: &mut Source) -> Result<(), Failure> {
        let Source::Poll { pending, seen, .. } = source else { return Ok(()) };
        match self.tilt.logs(&step.resource, self.log_format(), None) {
            Ok(lines) if lines.len() < *seen => {
                // Tilt dropped old lines: counting them no longer finds the new ones.
                Err(Failure::Uncertain)
            }
            Ok(lines) => {
                let new = lines.len() - *seen;
                pending.extend(lines.into_iter().skip(*seen));
                *seen += new;
                Ok(())
            }
            Err(TiltError::NotRunning { .. }) => Err(Failure::TiltGone),
            Err(err) => Err(call_failure(err.into())),
        }
    }

    /// Remembers that the log stream ended: every later wait fails at once with the cause.
    fn stream_ended(&mut self, detail: String) {
        let failure = if interrupt::requested() {
            Failure::Interrupted
        } else if detail.starts_with("Error") {
            Failure::TiltCall(format!("`tilt logs --follow --json` failed: {detail}"))
        } else {
            Failure::TiltGone
        };
        self.stream_gone.get_or_insert(failure);
    }

    /// Judges the step's lines that are already there, without waiting.
    fn judge_available(&mut self, step: &Step, watch: &mut Watch, source: &mut Source, mut log: Option<&mut StepLog>) {
        let mut arrived = Vec::new();
        match source {
            Source::Poll { pending, .. } => arrived.extend(pending.drain(..)),
            Source::Stream => {
                while let Ok(event) = self.events.try_recv() {
                    match event {
                        Event::Line { resource, line } if resource == step.resource => arrived.push(line),
                        Event::Line { .. } => {}
                        Event::Interrupted => self.interrupted_now = true,
                        Event::StreamEnded { detail } => self.stream_ended(detail),
                    }
                }
            }
        }
        for line in arrived {
            self.record(watch, &line, log.as_deref_mut());
            watch.on_line(&line);
        }
        if std::mem::take(&mut self.interrupted_now) {
            watch.fail(Failure::Interrupted);
        }
    }

    /// Tilt recorded our build finished after its success line. Before moving on: the last lines
    /// of the log as Tilt has them now are judged again (a line the stream has not delivered
    /// yet, an error right after the success line, still fails the step), then those that
    /// arrived meanwhile, then, with a `confirm` time, every line that comes during it.
    fn confirm_success(&mut self, step: &Step, watch: &mut Watch, source: &mut Source, mut log: Option<&mut StepLog>) {
        let last_lines = self.protocol.settings.report_lines;
        match self.tilt.logs(&step.resource, self.log_format(), Some(last_lines)) {
            Ok(lines) => watch.recheck(&lines),
            Err(err) => watch.fail(call_failure(err.into())),
        };
        self.judge_available(step, watch, source, log.as_deref_mut());
        let until = Instant::now() + step.confirm.0;
        while matches!(watch.progress(), Progress::Succeeded(_)) && Instant::now() < until {
            match self.next_line(step, source, until) {
                Next::Line(line) => {
                    self.record(watch, &line, log.as_deref_mut());
                    watch.on_line(&line);
                }
                Next::Idle => break,
                Next::Failed(failure) => {
                    watch.fail(failure);
                }
            }
        }
        if matches!(watch.progress(), Progress::Failed(ref failure) if *failure != Failure::Interrupted) {
            self.keep_logging(step, watch, source, log);
        }
    }

    /// The step failed: the lines that follow (the compiler's notes, the `Build Failed` line)
    /// go on into the saved log, until the log goes quiet or `after_error` has passed.
    fn keep_logging(&mut self, step: &Step, watch: &mut Watch, source: &mut Source, mut log: Option<&mut StepLog>) {
        let until = Instant::now() + self.protocol.settings.after_error.0;
        // Polling sees new lines only once per poll.
        let quiet = match self.follow {
            true => QUIET_AFTER_ERROR,
            false => QUIET_AFTER_ERROR.max(self.protocol.settings.poll.0),
        };
        let mut quiet_until = Instant::now() + quiet;
        // The failure is decided; Ctrl-C or Tilt going away only cut the log short.
        while let Next::Line(line) = self.next_line(step, source, until.min(quiet_until)) {
            self.record(watch, &line, log.as_deref_mut());
            watch.on_line(&line);
            quiet_until = Instant::now() + quiet;
        }
    }

    fn record(&mut self, watch: &Watch, line: &LogLine, log: Option<&mut StepLog>) {
        if !watch.is_since_trigger(line) {
            return;
        }
        if let Some(log) = log {
            let _ = writeln!(log.file, "{}", line.text);
        }
        if !line.header {
            self.live.line(&line.text);
        }
    }

    fn remediate(
        &mut self,
        remediation: &Remediation,
        deadline: Instant,
        log: Option<&mut StepLog>,
    ) -> Result<(), Failure> {
        let described = describe(remediation);
        let dir = self.root.join(&remediation.dir);
        if !dir.is_dir() {
            return Err(Failure::RemediationFailed(format!("{described}: the directory {dir} does not exist")));
        }
        let program = &remediation.program;
        let args = &remediation.args;
        let mut command = Command::from(cmd!(self.sh, "{program} {args...}"));
        command.current_dir(&dir);
        let failed = |why: String| Err(Failure::RemediationFailed(format!("{described}: {why}")));
        let output = match process::run(command, deadline.saturating_duration_since(Instant::now())) {
            Ended::Exited(output) => output,
            Ended::NotFound => return failed(format!("`{program}` was not found on PATH")),
            Ended::TimedOut => return failed("still running when the step's time ran out: killed".to_owned()),
            Ended::Interrupted => return Err(Failure::Interrupted),
            Ended::Failed(err) => return failed(err.to_string()),
        };
        if let Some(log) = log {
            let _ = writeln!(log.file, "[cargo xtask sync] remediation: {described}");
            let _ = log.file.write_all(&output.stdout);
            let _ = log.file.write_all(&output.stderr);
        }
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("no message");
            return failed(format!("exited with {}: {last}", output.status));
        }
        self.pause(remediation.wait.0.min(deadline.saturating_duration_since(Instant::now())))
    }

    /// Waits, but not through Ctrl-C or Tilt going away.
    fn pause(&mut self, length: Duration) -> Result<(), Failure> {
        let until = Instant::now() + length;
        loop {
            match self.events.recv_timeout(until.saturating_duration_since(Instant::now())) {
                // The failed build's last lines: the retrigger starts a new build.
                Ok(Event::Line { .. }) => {}
                Ok(Event::Interrupted) => return Err(Failure::Interrupted),
                // The next watch fails at once, saying so.
                Ok(Event::StreamEnded { detail }) => self.stream_ended(detail),
                // The time is up (the channel stays open: the Ctrl-C handler holds a sender).
                Err(_) => return Ok(()),
            }
        }
    }

    fn save_error_log(
        &self,
        number: usize,
        step: &Step,
        report: &StepReport,
        failure: &Failure,
    ) -> Result<Utf8PathBuf, String> {
        let logs = self.logs.map_err(str::to_owned)?;
        let mut heading = format!(
            "cargo xtask sync: Step {number} ({}) failed\nstep: {number} {}\nresource: {}\ncause: {}\n",
            step.name,
            step.name,
            step.resource,
            report.cause.as_deref().unwrap_or("unknown"),
        );
        if let Failure::Error { kind, rule, line } = failure {
            let kind = &self.protocol.kind(*kind).name;
            heading.push_str(&format!("rule: error kind `{kind}`, pattern `{rule}`\ndeciding line: {line}\n"));
        }
        for remediation in &report.remediations {
            heading.push_str(&format!("remediation applied: {remediation}\n"));
        }
        logs.write_error_log(&heading, report.log.as_deref())
            .map_err(|err| format!("writing under {}: {err}", logs.dir))
    }
}

fn describe(remediation: &Remediation) -> String {
    let mut command = vec![remediation.program.as_str()];
    command.extend(remediation.args.iter().map(String::as_str));
    let dir = if remediation.dir.as_str().is_empty() { "." } else { remediation.dir.as_str() };
    format!("`{}` in {dir}", command.join(" "))
}
