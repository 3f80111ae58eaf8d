//! `cargo xtask sync`: decides which steps run, checks that Tilt answers for this checkout,
//! opens the run's Tilt streams, then runs the steps in protocol order through `engine.rs` and
//! reports. The first failure stops the run.

use std::{
    io::{self, IsTerminal},
    process::ExitCode,
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use time::format_description::well_known::Rfc3339;
use xshell::Shell;

use crate::{
    changes::select::{self, Selection},
    engine::{Engine, Setup, StepEnd, StepFacts},
    flags, interrupt,
    protocol::{Protocol, Ready, Step},
    report::live::Live,
    report::location::{self, Location},
    report::{self, Outcome, RunReport, StepReport},
    run::step::{Decision, Failure},
    store::{self, LogDir, StepLog},
    tilt::model::{ResourceKind, WallTime},
    tilt::{self, Event, LogFormat, Stream, Tilt},
    usage,
};

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_ENVIRONMENT: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

/// How long the status watch has to list the run's resources before the sync gives up.
const STATUS_WAIT: Duration = Duration::from_secs(10);
/// How long to wait for the docker-compose watch's first snapshot.
const CONTAINERS_WAIT: Duration = Duration::from_secs(2);

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
        if self.strict && !self.pre_push {
            bail!("--strict is for the pre-push hook: install it with `cargo xtask install-hook --strict`");
        }
        let started = Instant::now();
        let root = crate::workspace_root(&self.root)?;
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
        let mut records = logs.as_ref().map(LogDir::read_records).unwrap_or_default();
        let inputs = select::Inputs {
            sh,
            root: &root,
            all: self.all,
            named: &self.step,
            base: self.base.as_deref(),
            pre_push_input: pre_push_input.as_deref(),
            records: &records,
        };
        // Tilt is asked only about steps that would not run: with a record, whether its build still
        // stands; without one, whether its service is up and its latest build passed.
        let asking = match records.steps.is_empty() {
            true => {
                "no sync is recorded here yet: asking Tilt whether the services are up and their latest builds passed"
            }
            false => "asking Tilt whether the last good sync still stands",
        };
        let state = || {
            let tilt = Tilt::new(sh, self.tilt.program.clone(), self.tilt.port, protocol.settings.tilt_call_timeout.0);
            tilt.state().context(asking)
        };
        let selection = select::select(&protocol, &inputs, (!self.plan).then_some(&state as &dyn Fn() -> _))?;
        if self.plan {
            match self.json {
                true => println!("{}", serde_json::to_string_pretty(&selection.plan_json(&protocol))?),
                false => print!("{}", selection.plan_text(&protocol)),
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut report = if !selection.any_runs() {
            let message = match selection.already_in_sync() {
                true => "SUCCESS: Already in sync: nothing changed since the last successful sync".to_owned(),
                false => format!(
                    "SUCCESS: Nothing to rebuild: no change since {} needs a service rebuilt",
                    selection.base_description
                ),
            };
            RunReport::nothing_to_do(&protocol, message)
        } else {
            if !self.json && !self.quiet && !selection.by_flag {
                eprint!("{}", selection.plan_text(&protocol));
            }
            let steps: Vec<&Step> = protocol
                .steps
                .iter()
                .enumerate()
                .filter(|(index, _)| selection.runs(*index))
                .map(|(_, step)| step)
                .collect();
            self.run_steps(sh, &root, &protocol, &steps, logs.as_ref().map_err(String::as_str))?
        };
        report.cpu_ms = usage::own().map(|usage| u64::try_from(usage.cpu.as_millis()).unwrap_or(u64::MAX));
        report.took = Some(started.elapsed());
        report.finished_at = store::utc_now(&Rfc3339);
        match &logs {
            Ok(logs) => {
                if record(&mut records, &protocol, &selection, &report) {
                    if let Err(err) = logs.write_records(&records) {
                        eprintln!("warning: could not record this sync in {}: {err}", logs.dir);
                    }
                }
                if let Err(err) = logs.write_status(&report.json()) {
                    eprintln!("warning: could not write {}/sync-status.json: {err}", logs.dir);
                }
            }
            Err(problem) => eprintln!("warning: no logs were saved: {problem}"),
        }

        let links = (io::stdout().is_terminal() && std::env::var("TERM").is_ok_and(|term| term != "dumb"))
            .then_some(root.as_str());
        let text = report.text(links);
        match (self.json, self.quiet) {
            (true, _) => println!("{}", serde_json::to_string_pretty(&report.json()).context("printing the report")?),
            (false, true) => anstream::println!("{}", text.lines().next().unwrap_or_default()),
            (false, false) => anstream::print!("{text}"),
        }
        let code = match (report.interrupted, report.succeeded()) {
            (true, _) => EXIT_INTERRUPTED,
            (false, true) => 0,
            (false, false) => EXIT_FAILED,
        };
        Ok(ExitCode::from(code))
    }

    /// Checks Tilt, opens its streams, and runs `steps` in protocol order.
    fn run_steps(
        &self,
        sh: &Shell,
        root: &Utf8Path,
        protocol: &Protocol,
        steps: &[&Step],
        logs: Result<&LogDir, &str>,
    ) -> Result<RunReport> {
        let call_timeout = protocol.settings.tilt_call_timeout.0;
        let tilt = Tilt::new(sh, self.tilt.program.clone(), self.tilt.port, call_timeout);
        let (sender, events) = mpsc::sync_channel(4096);
        let wake = sender.clone();
        interrupt::install(move || {
            let _ = wake.send(Event::Interrupted);
        })?;

        let json_logs = tilt.supports_json()?;
        check_checkout(&tilt, root, &protocol.settings.tiltfile)?;
        let resources: Vec<&str> = steps.iter().map(|step| step.resource.as_str()).collect();
        let follow = json_logs && !self.no_stream;
        let mut live = Live::new(self.verbose, self.quiet);
        if !json_logs {
            live.note(
                "warning: this Tilt (older than 0.36.1) prints no build numbers: a container's lines cannot be told \
                 from the build's, so a previous container's success line could pass for ours. Upgrade Tilt.",
            );
        }
        if live.verbose() {
            let poll = protocol.settings.poll;
            live.note(&format!(
                "sync: {}",
                match (follow, json_logs) {
                    (true, _) =>
                        "following `tilt logs --follow --json` (builds told apart by Tilt's build numbers) and \
                                  `tilt get uiresources --watch`"
                            .to_owned(),
                    (false, true) => format!("--no-stream: polling `tilt logs` every {poll}"),
                    (false, false) => {
                        format!("this Tilt has no `logs --json` (older than 0.36.1): polling `tilt logs` every {poll}")
                    }
                }
            ));
        }
        // The streams are killed when the run is over (dropped).
        let mut streams: Vec<Stream> = vec![tilt.watch_statuses(sender.clone())?];
        if follow {
            streams.push(tilt.follow_logs(&resources, sender.clone())?);
        } else {
            let header = (!json_logs).then(|| protocol.settings.build_header.clone());
            let names = resources.iter().map(|name| (*name).to_owned()).collect();
            tilt::poll_logs(
                self.tilt.program.clone(),
                self.tilt.port,
                call_timeout,
                names,
                header,
                protocol.settings.poll.0,
                sender.clone(),
            );
        }
        let format = match json_logs {
            true => LogFormat::Json,
            false => LogFormat::Plain(&protocol.settings.build_header),
        };
        let polled_every = (!follow).then_some(protocol.settings.poll.0);
        let settle = self.settle.map(|settle| settle.0).unwrap_or_default();
        let setup = Setup { tilt: &tilt, sh, root, protocol, format, polled_every, settle };
        let mut engine = Engine::new(setup, events, live);
        let known = engine.wait_for_statuses(&resources, STATUS_WAIT).map_err(|failure| match failure {
            Failure::TiltGone => anyhow::anyhow!(tilt::TiltError::NotRunning {
                port: self.tilt.port.unwrap_or(10350),
                stderr: String::new()
            }),
            Failure::Interrupted => anyhow::anyhow!("interrupted"),
            other => anyhow::anyhow!("{}", report::cause(protocol, 0, steps[0], &other, &[], &[], None)),
        })?;
        let missing: Vec<&str> =
            resources.iter().copied().filter(|name| !known.iter().any(|known| known == name)).collect();
        if !missing.is_empty() {
            bail!(
                "Tilt has no resource named {}: fix the protocol file, or the Tiltfile (Tilt has: {})",
                missing.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
                known.join(", ")
            );
        }
        let compose: Vec<&str> = steps
            .iter()
            .filter(|step| {
                step.ready == Some(Ready::Healthy) && engine.kind(&step.resource) == Some(ResourceKind::Compose)
            })
            .map(|step| step.resource.as_str())
            .collect();
        if !compose.is_empty() {
            streams.push(tilt.watch_compose(sender.clone())?);
            // Tilt lists every compose service at once; Tilt going away here is the first
            // step's failure (the engine keeps it).
            let _ = engine.wait_for_containers(&compose, CONTAINERS_WAIT);
        }
        drop(sender);
        let mut run = Run { engine, root, protocol, logs, report: RunReport::default() };
        run.steps(steps);
        drop(streams);
        let times: Vec<(String, u64)> = run
            .report
            .steps
            .iter()
            .filter(|step| step.outcome == Outcome::Ok)
            .map(|step| (step.name.clone(), u64::try_from(step.duration.as_millis()).unwrap_or(u64::MAX)))
            .collect();
        if let (Ok(logs), false) = (logs, times.is_empty()) {
            if let Err(err) = logs.add_step_times(&times) {
                eprintln!("warning: could not keep the steps' times in {}: {err}", logs.dir);
            }
        }
        Ok(run.report)
    }
}

/// Updates each step's last sync from the run: a step that passed records the workspace as the
/// run began and the build that passed; a failed step is recorded as failed, so that it runs
/// next time whatever changed. A step due but not reached (a failure or Ctrl-C before it) keeps
/// its last good record, whose changes since still count; without one it is recorded as failed,
/// since what it was due for may be committed (and out of the base's sight) by the next run.
/// Returns whether anything changed.
fn record(records: &mut store::Records, protocol: &Protocol, selection: &Selection, report: &RunReport) -> bool {
    let Some(fingerprint) = &selection.fingerprint else { return false };
    let before = records.clone();
    for step in &report.steps {
        let due =
            protocol.steps.iter().position(|planned| planned.name == step.name).is_some_and(|i| selection.runs(i));
        let failed = matches!(step.outcome, Outcome::Failed | Outcome::Timeout);
        let owed = due
            && matches!(step.outcome, Outcome::Skipped | Outcome::NotRun)
            && !records.steps.contains_key(&step.name);
        match (step.outcome, &step.build) {
            (Outcome::Ok, Some(build)) => {
                let record = store::StepRecord {
                    resource: step.resource.clone(),
                    failed: false,
                    build: build.number,
                    finished: build.finished.and_then(|at| at.format(&Rfc3339).ok()),
                    fingerprint: fingerprint.clone(),
                };
                records.steps.insert(step.name.clone(), record);
            }
            _ if failed || owed => {
                let record = store::StepRecord {
                    resource: step.resource.clone(),
                    failed: true,
                    build: 0,
                    finished: None,
                    fingerprint: fingerprint.clone(),
                };
                records.steps.insert(step.name.clone(), record);
            }
            _ => {}
        }
    }
    *records != before
}

/// The Tilt answering must run this workspace's own Tiltfile: a Tilt of another clone, or of a
/// git worktree inside this one, answers just the same, and its builds say nothing of our code.
fn check_checkout(tilt: &Tilt, root: &Utf8Path, tiltfile: &Utf8Path) -> Result<()> {
    let running = tilt.tiltfile()?;
    let ours = root.join(tiltfile);
    let resolved = |path: &Utf8Path| path.canonicalize_utf8().unwrap_or_else(|_| path.to_owned());
    if resolved(&running) != resolved(&ours) {
        let there = running.parent().map_or_else(|| running.clone(), Utf8Path::to_owned);
        bail!(
            "the Tilt on this port runs another checkout: {running}, not this workspace's {ours}. Its builds say \
             nothing about this workspace: run `tilt up` here (on another port, passed with --tilt-port), or sync from {there}"
        );
    }
    Ok(())
}

/// How a step ended, for its report.
enum Ending<'a> {
    Passed(&'a String),
    Failed(Outcome, &'a Failure),
    /// Cut short: a step that had passed failed meanwhile.
    Stopped,
}

/// The steps of one run, in order, and what they report.
struct Run<'a> {
    engine: Engine<'a>,
    root: &'a Utf8Path,
    protocol: &'a Protocol,
    logs: Result<&'a LogDir, &'a str>,
    report: RunReport,
}

impl Run<'_> {
    /// Runs the selected steps in protocol order; a step is numbered by its place in the
    /// protocol (the seed's "Step 2" is always the server), unselected steps are `skipped`.
    fn steps(&mut self, selected: &[&Step]) {
        let mut ordinal = 0;
        for (index, step) in self.protocol.steps.iter().enumerate() {
            let chosen = selected.iter().any(|chosen| chosen.name == step.name);
            if !chosen || !self.report.succeeded() {
                let outcome = if chosen { Outcome::NotRun } else { Outcome::Skipped };
                self.report.steps.push(StepReport::unstarted(step, outcome));
                continue;
            }
            ordinal += 1;
            let estimate = self.estimate(&step.name);
            self.engine.live.step_started(ordinal, selected.len(), &step.name, &step.resource, estimate);
            let started = (Instant::now(), WallTime::now_utc());
            let mut log = self.open_step_log(step);
            let run = self.engine.run_step(step, log.as_mut());
            let facts = &run.facts;
            if let Some(log) = &mut log {
                use std::io::Write;
                let _ = log.file.flush();
            }
            let log = log.map(|log| log.path);
            match &run.end {
                StepEnd::Decided(Decision::Succeeded { line, build, guard }) => {
                    self.engine.guard(index, (**guard).clone());
                    let mut report = self.step_report(step, facts, started, Ending::Passed(line), log);
                    report.build = Some(build.clone());
                    self.engine.live.step_finished("ok");
                    self.report.steps.push(report);
                }
                StepEnd::Decided(Decision::Failed(failure)) => {
                    let outcome = if *failure == Failure::Timeout { Outcome::Timeout } else { Outcome::Failed };
                    self.engine.live.step_finished(outcome.as_str());
                    let report = self.step_report(step, facts, started, Ending::Failed(outcome, failure), log);
                    self.fail(index, report, failure, false);
                }
                StepEnd::Guard { step: failed, failure } => {
                    self.engine.live.step_finished("stopped");
                    let report = self.step_report(step, facts, started, Ending::Stopped, log);
                    self.report.steps.push(report);
                    self.fail_guarded(*failed, failure.clone());
                }
            }
        }
        if self.report.succeeded() {
            if let Some((failed, failure)) = self.engine.finish() {
                self.fail_guarded(failed, failure);
            }
        }
    }

    fn step_report(
        &self,
        step: &Step,
        facts: &StepFacts,
        started: (Instant, WallTime),
        ending: Ending,
        log: Option<Utf8PathBuf>,
    ) -> StepReport {
        let (outcome, success, failure) = match ending {
            Ending::Passed(line) => (Outcome::Ok, Some(line.clone()), None),
            Ending::Failed(outcome, failure) => (outcome, None, Some(failure)),
            Ending::Stopped => (Outcome::NotRun, None, None),
        };
        let remediations: Vec<String> =
            facts.remediations.iter().map(|&index| step.remediations[index].describe()).collect();
        let number = self.protocol.steps.iter().position(|known| known.name == step.name).unwrap_or(0) + 1;
        let deciding_line = match failure {
            Some(Failure::Error { line, .. }) => Some(line.clone()),
            _ => success,
        };
        let location = match failure {
            Some(Failure::Error { line, .. }) => self.locate(line, log.as_deref(), &facts.tail),
            _ => None,
        };
        StepReport {
            name: step.name.clone(),
            resource: step.resource.clone(),
            outcome,
            duration: started.0.elapsed(),
            started_at: Some(started.1),
            decided_at: Some(WallTime::now_utc()),
            cause: failure.map(|failure| {
                let remediated = &facts.remediated_kinds;
                report::cause(self.protocol, number, step, failure, remediated, &remediations, location.as_ref())
            }),
            remediations,
            deciding_line,
            log,
            tail: facts.tail.clone(),
            build: None,
            location,
        }
    }

    /// Where the deciding error line's compiler says the error is: read from the step's log
    /// (the lines after it: cargo's `-->` comes next), else from the report's last lines.
    fn locate(&self, deciding: &str, log: Option<&Utf8Path>, tail: &[String]) -> Option<Location> {
        let saved = log.and_then(|log| std::fs::read_to_string(log).ok()).unwrap_or_default();
        let lines: Vec<&str> = match saved.lines().position(|line| line.trim() == deciding.trim()) {
            Some(at) => saved.lines().skip(at).collect(),
            None => {
                let at = tail.iter().position(|line| line.trim() == deciding.trim()).unwrap_or(0);
                tail[at..].iter().map(String::as_str).collect()
            }
        };
        let roots = &self.protocol.settings.container_roots;
        location::locate(lines.iter().copied().filter(|line| !line.is_empty()), self.root.as_str(), roots)
    }

    /// How long the step took in its last successful runs (the median), if it ran before.
    fn estimate(&self, step: &str) -> Option<Duration> {
        let mut past = self.logs.ok()?.read_step_times().remove(step)?;
        past.sort_unstable();
        past.get(past.len() / 2).map(|millis| Duration::from_millis(*millis))
    }

    /// Records the failed step (`index` in the protocol) and saves its error log.
    fn fail(&mut self, index: usize, report: StepReport, failure: &Failure, after_passing: bool) {
        self.report.interrupted = *failure == Failure::Interrupted;
        let step = &self.protocol.steps[index];
        self.report.error_log = Some(self.save_error_log(index + 1, step, &report, failure, after_passing));
        match self.report.steps.get_mut(index) {
            Some(slot) => *slot = report,
            None => self.report.steps.push(report),
        }
    }

    /// A step that had passed failed while later steps ran, or at the end of the run.
    fn fail_guarded(&mut self, index: usize, failure: Failure) {
        let step = &self.protocol.steps[index];
        let Some(passed) = self.report.steps.get(index).cloned() else { return };
        let cause = report::cause(self.protocol, index + 1, step, &failure, &[], &[], None);
        let report = StepReport {
            outcome: Outcome::Failed,
            cause: Some(format!("{cause} — after the step had passed, before the run ended")),
            deciding_line: match &failure {
                Failure::Error { line, .. } => Some(line.clone()),
                _ => None,
            },
            ..passed
        };
        self.fail(index, report, &failure, true);
    }

    fn open_step_log(&mut self, step: &Step) -> Option<StepLog> {
        let logs = self.logs.ok()?;
        match logs.step_log(&step.name) {
            Ok(log) => Some(log),
            Err(err) => {
                self.engine.live.note(&format!("warning: cannot write {}/{}.log: {err}", logs.dir, step.name));
                None
            }
        }
    }

    fn save_error_log(
        &self,
        number: usize,
        step: &Step,
        report: &StepReport,
        failure: &Failure,
        after_passing: bool,
    ) -> Result<Utf8PathBuf, String> {
        let logs = self.logs.map_err(str::to_owned)?;
        let when = if after_passing { " after it had passed" } else { "" };
        let mut heading = format!(
            "cargo xtask sync: Step {number} ({}) failed{when}\nstep: {number} {}\nresource: {}\ncause: {}\n",
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
