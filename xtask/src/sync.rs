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
use xshell::Shell;

use tilt_log::strip_buildkit;

use crate::{
    changes::{
        gather,
        graph::{contexts::logs_watched, Disk},
        record::record,
        select,
    },
    engine::{self, Engine, Setup, StepRun},
    flags, interrupt,
    protocol::{Protocol, Step},
    report::{live::Live, location, Cause, RunReport, StepReport},
    run::{BuildId, End, Event, Failure, How, Machine, Refusal, Timing},
    store::{
        status::{Location, Outcome},
        LogDir,
    },
    tilt::{self, model::WallTime, LogFormat, Stream, Tilt, TiltError, DEFAULT_PORT},
    usage,
};

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_ENVIRONMENT: u8 = 2;
pub const EXIT_INTERRUPTED: u8 = 130;

/// How long the status watch has to list the run's resources before the sync gives up, and
/// the pause that ends its first burst (it prints every resource at once).
const STATUS_WAIT: Duration = Duration::from_secs(10);
const STATUS_QUIET: Duration = Duration::from_millis(300);
/// How long to wait for the docker-compose watch's first snapshot.
const CONTAINERS_WAIT: Duration = Duration::from_secs(2);
/// How long Tilt's log stream may lag its status: Tilt sends log batches at most every 200 ms.
const LOG_LAG: Duration = Duration::from_millis(400);

impl flags::Sync {
    pub fn run(&self, sh: &Shell) -> Result<ExitCode> {
        match self.sync(sh) {
            // The one case the hook lets a push go without a sync, as the README says.
            Err(err) if self.pre_push && !self.strict && tilt_not_running(&err) => {
                eprintln!("warning: {err:#}");
                eprintln!(
                    "warning: Tilt is not running: the push goes on without a sync (install the hook with --strict \
                     to block it)"
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(err) if self.pre_push => Err(err.context(
                "the pre-push hook could not sync, so the push is blocked (`git push --no-verify` skips the hook)",
            )),
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
        // The hook waits for a sync running in this workspace and goes on from its records.
        let wait = match self.pre_push {
            true => protocol.steps.iter().map(|step| step.timeout.0).sum(),
            false => Duration::from_secs(2),
        };
        if self.pre_push && logs.as_ref().is_ok_and(|logs| logs.locked()) {
            eprintln!("pre-push: another sync runs in this workspace: waiting for it (at most {}s)", wait.as_secs());
        }
        let _lock = logs.as_ref().ok().map(|logs| logs.lock(wait)).transpose()?;

        let pre_push_input = match self.pre_push {
            true => Some(io::read_to_string(io::stdin()).context("reading the refs git is pushing (pre-push input)")?),
            false => None,
        };
        let mut records = logs.as_ref().map(LogDir::read_records).unwrap_or_default();
        let request = gather::Request {
            all: self.all,
            named: &self.step,
            base: self.base.as_deref(),
            pre_push_input: pre_push_input.as_deref(),
        };
        let changes = gather::gather(sh, &root, &protocol, &request, &records)?;
        let mut selection = select::select(&protocol, &changes, &records, None)?;
        if !self.plan && selection.wants_tilt() {
            // Tilt is asked only about steps that would not run: with a record, whether its build
            // still stands; without one, whether its service is up and its latest build passed.
            let asking = match records.steps.is_empty() {
                true => {
                    "no sync is recorded here yet: asking Tilt whether the services are up and their latest \
                         builds passed"
                }
                false => "asking Tilt whether the last good sync still stands",
            };
            let tilt = Tilt::new(sh, self.tilt.program.clone(), self.tilt.port, protocol.settings.tilt_call_timeout.0);
            let state = tilt.state().context(asking)?;
            selection = select::select(&protocol, &changes, &records, Some(&state))?;
        }
        if self.pre_push && !selection.unpushed.is_empty() {
            return Ok(refuse_unpushed(&selection.unpushed));
        }
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
            let steps: Vec<usize> = (0..protocol.steps.len()).filter(|&index| selection.runs(index)).collect();
            self.run_steps(sh, &root, &protocol, &steps, logs.as_ref().map_err(String::as_str))?
        };
        report.cpu_ms = usage::own().map(|usage| u64::try_from(usage.cpu.as_millis()).unwrap_or(u64::MAX));
        report.took = Some(started.elapsed());
        let document = report.document(WallTime::now_utc());
        match &logs {
            Ok(logs) => {
                if record(&mut records, &protocol, &selection, &report) {
                    if let Err(err) = logs.write_records(&records) {
                        eprintln!("warning: could not record this sync in {}: {err}", logs.dir);
                    }
                }
                if let Err(err) = logs.write_status(&document) {
                    eprintln!("warning: could not write {}/sync-status.json: {err}", logs.dir);
                }
            }
            Err(problem) => eprintln!("warning: no logs were saved: {problem}"),
        }

        let links = (io::stdout().is_terminal() && std::env::var("TERM").is_ok_and(|term| term != "dumb"))
            .then_some(root.as_str());
        let text = report.text(links);
        match (self.json, self.quiet) {
            (true, _) => println!("{}", serde_json::to_string_pretty(&document).context("printing the report")?),
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
        steps: &[usize],
        logs: Result<&LogDir, &str>,
    ) -> Result<RunReport> {
        let call_timeout = protocol.settings.tilt_call_timeout.0;
        let tilt = Tilt::new(sh, self.tilt.program.clone(), self.tilt.port, call_timeout);
        let (sender, events) = mpsc::sync_channel(4096);
        let wake = sender.clone();
        interrupt::on_interrupt(move || {
            let _ = wake.send(Event::Interrupted);
        });

        let json_logs = tilt.supports_json()?;
        let disk = Disk { root: root.to_owned() };
        let logs_watched = logs_watched(&disk, protocol.settings.tiltfile.as_str());
        check_checkout(&tilt, root, &protocol.settings.tiltfile)?;
        let resources: Vec<&str> = steps.iter().map(|&step| protocol.steps[step].resource.as_str()).collect();
        let follow = json_logs && !self.no_stream;
        let mut live = Live::new(self.verbose, self.quiet);
        for watched in &logs_watched {
            live.note(&watched.advice());
        }
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
        let timing = Timing {
            settle: self.settle.map(|settle| settle.0).unwrap_or_default(),
            catch_up: polled_every.map_or(LOG_LAG, |every| every + LOG_LAG),
            after_error: protocol.settings.after_error.0,
            status_wait: STATUS_WAIT,
            status_quiet: STATUS_QUIET,
            containers_wait: CONTAINERS_WAIT,
            polled: polled_every.is_some(),
        };
        let estimates = steps
            .iter()
            .filter_map(|&step| {
                let name = &protocol.steps[step].name;
                Some((name.clone(), estimate(logs.ok()?, name)?))
            })
            .collect();
        let setup = Setup { tilt: &tilt, sh, root, protocol, format, logs: logs.ok(), estimates, live };
        let mut machine = Machine::new(protocol, steps.to_vec(), timing);
        let outcome = Engine::new(setup, events, sender).run(&mut machine);
        drop(streams);
        let report = match &outcome.end {
            End::Refused(Refusal::Missing { missing, known }) => bail!(
                "Tilt has no resource named {}: fix the protocol file, or the Tiltfile (Tilt has: {})",
                missing.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
                known.join(", ")
            ),
            End::Refused(Refusal::Failed(Failure::TiltGone)) => {
                bail!(TiltError::NotRunning { port: self.tilt.port.unwrap_or(DEFAULT_PORT), stderr: String::new() })
            }
            End::Refused(Refusal::Failed(Failure::TiltCall(error))) => bail!(error.clone()),
            End::Refused(Refusal::Failed(_)) | End::Interrupted | End::Completed => {
                Reporter { root, protocol, logs }.report(steps, outcome)
            }
        };
        let times: Vec<(String, u64)> = report
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
        Ok(report)
    }
}

/// How long the step took in its last successful runs (the median), if it ran before.
fn estimate(logs: &LogDir, step: &str) -> Option<Duration> {
    let mut past = logs.read_step_times().remove(step)?;
    past.sort_unstable();
    past.get(past.len() / 2).map(|millis| Duration::from_millis(*millis))
}

/// Whether the sync could not run because no Tilt answers.
fn tilt_not_running(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.downcast_ref::<TiltError>().is_some_and(TiltError::is_not_running))
}

/// The pre-push hook blocks a push whose commits are not what Tilt builds: the work tree
/// differs from them in paths the services are built from.
fn refuse_unpushed(unpushed: &[(String, Vec<String>)]) -> ExitCode {
    eprintln!(
        "ERROR: the push is blocked: Tilt builds the work tree, and it differs from the commits being pushed in \
         what the services are built from, so a sync would not say whether the pushed commits build:"
    );
    for (path, steps) in unpushed {
        eprintln!("  {path}  (needs {})", steps.join(", "));
    }
    eprintln!(
        "Commit them (then push again), or stash them (`git stash --include-untracked`) and push, or skip the \
         hook for this push with `git push --no-verify`."
    );
    ExitCode::from(EXIT_FAILED)
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

/// Turns how the run went into the report, and saves the failed step's error log.
struct Reporter<'a> {
    root: &'a Utf8Path,
    protocol: &'a Protocol,
    logs: Result<&'a LogDir, &'a str>,
}

impl Reporter<'_> {
    /// Every step of the protocol in order: those that started as they ended, the others not
    /// run (selected) or skipped; a step numbered by its place in the protocol (the seed's
    /// "Step 2" is always the server).
    fn report(&self, selected: &[usize], outcome: engine::Outcome) -> RunReport {
        let mut report = RunReport { interrupted: outcome.end == End::Interrupted, ..RunReport::default() };
        let mut failed = None;
        for (index, step) in self.protocol.steps.iter().enumerate() {
            let Some(run) = outcome.steps.iter().find(|run| run.end.step == index) else {
                let outcome = if selected.contains(&index) { Outcome::NotRun } else { Outcome::Skipped };
                report.steps.push(StepReport::unstarted(step, outcome));
                continue;
            };
            let mut step_report = self.step_report(step, run);
            if let How::Passed { .. } = run.end.how {
                step_report.build = outcome
                    .passed_builds
                    .iter()
                    .find(|(passed, _)| *passed == index)
                    .map(|(_, build)| build.clone())
                    .or(step_report.build);
            }
            if let How::Failed(failure) = &run.end.how {
                failed = Some((index, failure.clone()));
            }
            report.steps.push(step_report);
        }
        if let Some((index, failure)) = &outcome.passed_failed {
            self.fail_passed(&mut report, *index, failure);
        } else if let Some((index, failure)) = failed {
            report.error_log = Some(self.save_error_log(&report.steps[index], index, &failure, false));
        }
        report
    }

    fn step_report(&self, step: &Step, run: &StepRun) -> StepReport {
        let end = &run.end;
        let (outcome, success, failure) = match &end.how {
            How::Passed { line, .. } => (Outcome::Ok, Some(line.clone()), None),
            How::Failed(Failure::Timeout) => (Outcome::Timeout, None, Some(&Failure::Timeout)),
            How::Failed(Failure::Interrupted) if end.triggered => {
                (Outcome::Interrupted, None, Some(&Failure::Interrupted))
            }
            How::Failed(failure) => (Outcome::Failed, None, Some(failure)),
            How::CutShort if end.triggered => (Outcome::Uncertain, None, None),
            How::CutShort => (Outcome::NotRun, None, None),
        };
        let remediations: Vec<String> =
            end.remediations.iter().map(|&index| step.remediations[index].describe()).collect();
        let location = match failure {
            Some(Failure::Error { line, .. }) => self.locate(line, run.log.as_deref(), &run.tail),
            _ => None,
        };
        let cause = failure.map(|failure| {
            let cause = Cause {
                protocol: self.protocol,
                number: end.step + 1,
                step,
                remediated: &end.remediated_kinds,
                remediations: &remediations,
                location: location.as_ref(),
            };
            cause.of(failure)
        });
        StepReport {
            name: step.name.clone(),
            resource: step.resource.clone(),
            outcome,
            duration: end.took,
            started_at: Some(end.started),
            decided_at: Some(end.decided),
            cause,
            remediations,
            deciding_line: match failure {
                Some(Failure::Error { line, .. }) => Some(line.clone()),
                _ => success,
            },
            log: run.log.clone(),
            tail: run.tail.clone(),
            build: match &end.how {
                How::Passed { build, .. } => Some(build.clone()),
                _ => end.build.map(|number| BuildId { number, finished: None }),
            },
            location,
        }
    }

    /// Where the deciding error line's compiler says the error is: read from the step's log
    /// (the lines after it: cargo's `-->` comes next), else from the report's last lines.
    fn locate(&self, deciding: &str, log: Option<&Utf8Path>, tail: &[String]) -> Option<Location> {
        let saved = log.and_then(|log| std::fs::read_to_string(log).ok()).unwrap_or_default();
        let same = |line: &str| strip_buildkit(line).trim() == strip_buildkit(deciding).trim();
        let lines: Vec<&str> = match saved.lines().position(same) {
            Some(at) => saved.lines().skip(at).collect(),
            None => {
                let at = tail.iter().position(|line| same(line)).unwrap_or(0);
                tail[at..].iter().map(String::as_str).collect()
            }
        };
        let roots = &self.protocol.settings.container_roots;
        let lines = lines.into_iter().map(strip_buildkit).filter(|line| !line.is_empty());
        location::locate(lines, self.root.as_str(), roots)
    }

    /// A step that had passed failed while later steps ran, or at the end of the run.
    fn fail_passed(&self, report: &mut RunReport, index: usize, failure: &Failure) {
        let step = &self.protocol.steps[index];
        let Some(passed) = report.steps.get(index).cloned() else { return };
        let cause = Cause {
            protocol: self.protocol,
            number: index + 1,
            step,
            remediated: &[],
            remediations: &[],
            location: None,
        };
        let failed = StepReport {
            outcome: Outcome::Failed,
            cause: Some(format!("{} — after the step had passed, before the run ended", cause.of(failure))),
            deciding_line: match failure {
                Failure::Error { line, .. } => Some(line.clone()),
                _ => None,
            },
            ..passed
        };
        report.error_log = Some(self.save_error_log(&failed, index, failure, true));
        report.steps[index] = failed;
    }

    fn save_error_log(
        &self,
        report: &StepReport,
        index: usize,
        failure: &Failure,
        after_passing: bool,
    ) -> Result<Utf8PathBuf, String> {
        let logs = self.logs.map_err(str::to_owned)?;
        let step = &self.protocol.steps[index];
        let number = index + 1;
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
