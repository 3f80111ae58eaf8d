//! `cargo xtask sync`: checks Tilt, then runs the selected steps in protocol order. For each:
//! trigger, follow the build Tilt starts for that trigger, decide with `step::Watch`, remediate
//! once per error kind, and stop the run at the first failure.

use std::{
    collections::HashSet,
    fs::File,
    io::{self, BufWriter, Write},
    process::{Command, ExitCode},
    sync::mpsc::{self, Receiver},
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
    step::{remediation_for, Failure, Progress},
    tilt::{Event, LogStream, Tilt},
};

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_ENVIRONMENT: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

mod follow;

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
