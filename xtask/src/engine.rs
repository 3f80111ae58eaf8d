//! The run's event loop: everything that happens — log lines, status changes, containers, a
//! stream's end, Ctrl-C, the answer to a call — comes in through one channel or as the result
//! of an action, goes to the run machine (`run/`) with the time read once, and the engine
//! carries out what the machine asks for: Tilt calls, remediations, the step's log, the live
//! line. Nothing here decides.

use std::{
    collections::{BTreeMap, VecDeque},
    io::Write,
    process::Command,
    sync::mpsc::{Receiver, RecvTimeoutError, SyncSender},
    time::{Duration, Instant},
};

use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use crate::{
    process::{self, Ended},
    protocol::{Protocol, Remediation},
    report::live::Live,
    run::{Action, BuildId, End, Event, Failure, Machine, Now, RemediationError, StepEnd},
    store::{LogDir, StepLog},
    tilt::{model::WallTime, LogFormat, Stream, Tilt},
};

/// What the engine works with.
pub struct Setup<'a> {
    pub tilt: &'a Tilt<'a>,
    pub sh: &'a Shell,
    pub root: &'a Utf8Path,
    pub protocol: &'a Protocol,
    pub format: LogFormat<'a>,
    pub logs: Option<&'a LogDir>,
    /// Each step's usual time (from its last runs), for the live line.
    pub estimates: BTreeMap<String, Duration>,
    pub live: Live,
}

/// A step that started, as it ended, with what its log kept.
pub struct StepRun {
    pub end: StepEnd,
    /// The last lines of the resource's log since the trigger.
    pub tail: Vec<String>,
    pub log: Option<Utf8PathBuf>,
}

/// How the run went.
pub struct Outcome {
    pub steps: Vec<StepRun>,
    /// A step that had passed and failed before the run ended.
    pub passed_failed: Option<(usize, Failure)>,
    pub end: End,
    /// For each step that passed: the build that stands (its own, or a later one that passed).
    pub passed_builds: Vec<(usize, BuildId)>,
}

pub struct Engine<'a> {
    setup: Setup<'a>,
    events: Receiver<Event>,
    sender: SyncSender<Event>,
    /// The container watch, once the machine asks for it.
    streams: Vec<Stream>,
    log: Option<StepLog>,
    tail: VecDeque<String>,
    outcome: Outcome,
}

impl<'a> Engine<'a> {
    pub fn new(setup: Setup<'a>, events: Receiver<Event>, sender: SyncSender<Event>) -> Engine<'a> {
        let outcome =
            Outcome { steps: Vec::new(), passed_failed: None, end: End::Completed, passed_builds: Vec::new() };
        Engine { setup, events, sender, streams: Vec::new(), log: None, tail: VecDeque::new(), outcome }
    }

    /// Runs the machine to its end.
    pub fn run(mut self, machine: &mut Machine) -> Outcome {
        let mut actions = Vec::new();
        let mut results = VecDeque::from([Event::Wake]);
        let origin = (Instant::now(), WallTime::now_utc());
        while !machine.is_done() {
            let event = match results.pop_front() {
                Some(event) => event,
                None => {
                    let before = Instant::now();
                    let wake = [machine.wake_at(before), self.setup.live.next_tick()].into_iter().flatten().min();
                    self.receive(wake.map(|wake| wake.saturating_duration_since(before)))
                }
            };
            let now = Now { at: Instant::now(), origin };
            machine.handle(event, now, &mut actions);
            for action in actions.drain(..) {
                results.extend(self.carry_out(action, now));
            }
        }
        self.outcome.passed_builds = machine.passed_builds();
        self.outcome
    }

    /// The next event from Tilt's streams or Ctrl-C, or a wake-up after `timeout`.
    fn receive(&mut self, timeout: Option<Duration>) -> Event {
        let received = match timeout {
            Some(timeout) => self.events.recv_timeout(timeout),
            None => self.events.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => {
                self.setup.live.tick();
                Event::Wake
            }
            // The engine holds a sender: the channel stays open while the run lasts.
            Err(RecvTimeoutError::Disconnected) => Event::Ended { error: None },
        }
    }

    /// Carries out one action; returns the event it gives, if any.
    fn carry_out(&mut self, action: Action, now: Now) -> Option<Event> {
        let Setup { tilt, protocol, format, .. } = self.setup;
        match action {
            Action::WatchContainers => match tilt.watch_compose(self.sender.clone()) {
                Ok(stream) => self.streams.push(stream),
                Err(error) => return Some(Event::Ended { error: Some(error) }),
            },
            Action::Trigger(resource) => return Some(Event::Triggered(tilt.trigger(&resource).map(|()| now.wall()))),
            Action::ListResources => return Some(Event::Resources(tilt.resource_names())),
            Action::Recheck { resource, tail } => {
                let lines = tilt.logs(&resource, format, tail);
                return Some(Event::Reading { resource, lines });
            }
            Action::Remediate { step, remediation, bound } => {
                let step = &protocol.steps[step];
                let remediation = &step.remediations[remediation];
                self.setup.live.note(&format!(
                    "{}: {} → remediation: {}, then retrigger",
                    step.name,
                    protocol.kind(remediation.on).name,
                    remediation.describe()
                ));
                return Some(Event::Remediated(self.remediate(remediation, bound)));
            }
            Action::StepStarted { step, ordinal, of } => {
                let step = &protocol.steps[step];
                let estimate = self.setup.estimates.get(&step.name).copied();
                self.setup.live.step_started(ordinal, of, &step.name, &step.resource, estimate);
                self.tail.clear();
                self.log = self.setup.logs.and_then(|logs| match logs.step_log(&step.name) {
                    Ok(log) => Some(log),
                    Err(err) => {
                        self.setup.live.note(&format!("warning: cannot write {}/{}.log: {err}", logs.dir, step.name));
                        None
                    }
                });
            }
            Action::Keep(line) => {
                if let Some(log) = &mut self.log {
                    log.write_line(&line.text);
                }
                if !line.header {
                    self.setup.live.line(&line.text);
                    if self.tail.len() == protocol.settings.report_lines {
                        self.tail.pop_front();
                    }
                    self.tail.push_back(line.text);
                }
            }
            Action::Mark(note) => {
                if let Some(log) = &mut self.log {
                    log.write_line(&note);
                }
            }
            Action::StepEnded(end) => {
                let log = self.log.take().map(|mut log| {
                    let _ = log.file.flush();
                    log.path
                });
                self.setup.live.step_finished(end.how.word());
                let tail = self.tail.drain(..).collect();
                self.outcome.steps.push(StepRun { end: *end, tail, log });
            }
            Action::PassedFailed { step, failure } => self.outcome.passed_failed = Some((step, failure)),
            Action::Finished(end) => self.outcome.end = end,
        }
        None
    }

    /// Runs a remediation in its directory, bounded by the step's time left; its output goes
    /// to the step's log.
    fn remediate(&mut self, remediation: &Remediation, bound: Duration) -> Result<(), RemediationError> {
        let command = remediation.describe();
        let dir = self.setup.root.join(&remediation.dir);
        if !dir.is_dir() {
            return Err(RemediationError::NoDirectory { command, dir: dir.to_string() });
        }
        let program = &remediation.program;
        let args = &remediation.args;
        let mut child = Command::from(cmd!(self.setup.sh, "{program} {args...}"));
        child.current_dir(&dir);
        let output = match process::run(child, bound) {
            Ended::Exited(output) => output,
            Ended::NotFound => return Err(RemediationError::NotFound { command, program: program.clone() }),
            Ended::TimedOut => return Err(RemediationError::TimedOut { command }),
            Ended::Interrupted => return Err(RemediationError::Interrupted),
            Ended::Failed(err) => return Err(RemediationError::Failed { command, why: err.to_string() }),
        };
        if let Some(log) = &mut self.log {
            log.write_line(&format!("[cargo xtask sync] remediation: {command}"));
            let _ = log.file.write_all(&output.stdout);
            let _ = log.file.write_all(&output.stderr);
        }
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("no message");
            return Err(RemediationError::Failed { command, why: format!("exited with {}: {last}", output.status) });
        }
        Ok(())
    }
}
