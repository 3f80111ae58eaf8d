//! The run's event loop. One channel carries everything that happens — log lines, status
//! changes, a stream's end, Ctrl-C — into one loop that hands each to the current step's
//! machine (`step.rs`) and to the guards of the steps that passed, and carries out what the
//! machine asks for: trigger, re-check the log, remediate. Nothing here decides.

use std::{
    collections::{HashMap, VecDeque},
    io::Write,
    process::Command,
    sync::mpsc::{Receiver, RecvTimeoutError},
    time::{Duration, Instant},
};

use camino::Utf8Path;
use xshell::{cmd, Shell};

use crate::{
    interrupt,
    process::{self, Ended},
    protocol::{KindId, Protocol, Remediation, Step},
    report::live::Live,
    run::step::{Action, Decision, Failure, Guard, Input, Machine, Seen, Timing},
    store::StepLog,
    tilt::model::WallTime,
    tilt::{Event, LogFormat, Source, Tilt, TiltError},
};

/// How long Tilt's log stream may lag its status: Tilt sends log batches at most every 200 ms.
const LOG_LAG: Duration = Duration::from_millis(400);
/// The lines of a resource's log read to explain why its service stopped.
const GUARD_RECHECK_LINES: usize = 1000;

/// What the run works with.
pub struct Setup<'a> {
    pub tilt: &'a Tilt<'a>,
    pub sh: &'a Shell,
    pub root: &'a Utf8Path,
    pub protocol: &'a Protocol,
    pub format: LogFormat<'a>,
    /// The log is polled every this long, not streamed.
    pub polled_every: Option<Duration>,
    /// The seed protocol's fixed wait after each trigger.
    pub settle: Duration,
}

pub struct Engine<'a> {
    tilt: &'a Tilt<'a>,
    sh: &'a Shell,
    root: &'a Utf8Path,
    protocol: &'a Protocol,
    events: Receiver<Event>,
    format: LogFormat<'a>,
    polled_every: Option<Duration>,
    settle: Duration,
    pub live: Live,
    /// What is known of each resource, from the start of the run.
    seen: HashMap<String, Seen>,
    /// The steps that passed (their index in the protocol), watched until the run ends.
    guards: Vec<(usize, Guard)>,
    /// Set once a stream ended: how every later wait fails.
    gone: Option<Failure>,
    polled: bool,
}

/// How a step ended.
pub enum StepEnd {
    Decided(Decision),
    /// A step that passed earlier (its index) failed its guard while this one ran.
    Guard {
        step: usize,
        failure: Failure,
    },
}

/// How a step ended, and what its machine knew then, for the report.
pub struct StepRun {
    pub end: StepEnd,
    pub facts: StepFacts,
}

pub struct StepFacts {
    /// The last lines of the resource's log since the trigger.
    pub tail: Vec<String>,
    /// The remediations run (indices into the step's), and the error kinds they were for.
    pub remediations: Vec<usize>,
    pub remediated_kinds: Vec<KindId>,
}

enum Next {
    Input(Input),
    Tick,
    GuardFailed(usize, Failure),
}

impl<'a> Engine<'a> {
    pub fn new(setup: Setup<'a>, events: Receiver<Event>, live: Live) -> Engine<'a> {
        let Setup { tilt, sh, root, protocol, format, polled_every, settle } = setup;
        Engine {
            tilt,
            sh,
            root,
            protocol,
            events,
            format,
            polled_every,
            settle,
            live,
            seen: HashMap::new(),
            guards: Vec::new(),
            gone: None,
            polled: false,
        }
    }

    /// Waits until Tilt's status of every resource of the run is in (and, when polling, the
    /// log's first pass), at most `bound`. Returns the resources Tilt has, or why it cannot.
    pub fn wait_for_statuses(&mut self, resources: &[&str], bound: Duration) -> Result<Vec<String>, Failure> {
        let deadline = Instant::now() + bound;
        // The watch prints every resource at once: a pause after its first burst means done.
        let quiet = Duration::from_millis(300);
        let mut quiet_since = Instant::now();
        loop {
            let known = resources.iter().all(|name| self.seen.get(*name).is_some_and(|seen| seen.has_status()));
            let now = Instant::now();
            if (known && (self.polled_every.is_none() || self.polled))
                || now >= deadline
                || (!self.seen.is_empty() && now >= quiet_since + quiet && !known)
            {
                let mut names: Vec<String> =
                    self.seen.iter().filter(|(_, seen)| seen.has_status()).map(|(name, _)| name.clone()).collect();
                names.sort();
                return Ok(names);
            }
            match self.next(Some(deadline.min(quiet_since + quiet))) {
                Next::Input(Input::Ended(failure)) => return Err(failure),
                Next::Input(_) => quiet_since = Instant::now(),
                Next::Tick | Next::GuardFailed(..) => {}
            }
        }
    }

    /// Waits for the docker-compose watch's first snapshot of `resources`: a container that
    /// stopped before the run must be known as the one there was, not taken for ours.
    pub fn wait_for_containers(&mut self, resources: &[&str], bound: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + bound;
        while !resources.iter().all(|name| self.seen.get(*name).is_some_and(Seen::has_container)) {
            match self.next(Some(deadline)) {
                Next::Input(Input::Ended(failure)) => return Err(failure),
                Next::Tick => return Ok(()),
                Next::Input(_) | Next::GuardFailed(..) => {}
            }
        }
        Ok(())
    }

    /// Triggers the step's resource and follows it until its machine decides.
    pub fn run_step(&mut self, step: &Step, mut log: Option<&mut StepLog>) -> StepRun {
        let started = Instant::now();
        let timing = Timing {
            timeout: step.timeout.0,
            settle: self.settle,
            catch_up: self.polled_every.map_or(LOG_LAG, |every| every + LOG_LAG),
            after_error: self.protocol.settings.after_error.0,
            confirm: step.confirm.0,
            tail_lines: self.protocol.settings.report_lines,
        };
        let seen = self.seen.get(&step.resource).cloned().unwrap_or_default();
        let mut machine = Machine::new(step, timing, seen, started);
        let mut inputs = VecDeque::from([self.gone.clone().map_or(Input::Tick, Input::Ended)]);
        loop {
            while let Some(input) = inputs.pop_front() {
                for action in machine.on(input, Instant::now()) {
                    let result = match action {
                        Action::Decided(decision) => return self.ended(&machine, StepEnd::Decided(decision)),
                        Action::Trigger => self.trigger(step),
                        Action::Recheck { tail } => self.recheck(step, tail),
                        Action::Remediate(index) => {
                            let bound = (started + step.timeout.0).saturating_duration_since(Instant::now());
                            Input::Remediated(self.remediate(
                                step,
                                &step.remediations[index],
                                bound,
                                log.as_deref_mut(),
                            ))
                        }
                    };
                    inputs.push_back(result);
                }
            }
            let now = Instant::now();
            let wake = [machine.wake_at(now), self.live.next_tick()].into_iter().flatten().min();
            match self.next(wake) {
                Next::Input(input) => {
                    // Any resource's status may show the step's build held for a failed one.
                    if matches!(input, Input::Status(_)) {
                        inputs.extend(self.blocked(&step.resource));
                    }
                    if input_resource(&input).is_some_and(|name| name != step.resource) {
                        continue;
                    }
                    if let Input::Line(line) = &input {
                        if machine.keeps(line) {
                            if let Some(log) = log.as_deref_mut() {
                                log.write_line(&line.text);
                            }
                            if !line.header {
                                self.live.line(&line.text);
                            }
                        }
                    }
                    inputs.push_front(input);
                }
                Next::Tick => {
                    self.live.tick();
                    inputs.push_back(Input::Tick);
                }
                Next::GuardFailed(index, failure) => {
                    return self.ended(&machine, StepEnd::Guard { step: index, failure });
                }
            }
        }
    }

    /// Tilt holds `resource`'s builds for a dependency that cannot become ready (its latest
    /// build failed, none follows): the step's build will never start.
    fn blocked(&self, resource: &str) -> Option<Input> {
        let status = self.seen.get(resource)?.latest_status()?;
        status.waiting_on.iter().find_map(|dependency| {
            let error = self.seen.get(dependency)?.latest_status()?.stuck_failed()?;
            Some(Input::Blocked { dependency: dependency.clone(), error: error.to_owned() })
        })
    }

    fn ended(&self, machine: &Machine, end: StepEnd) -> StepRun {
        let kinds = (0..self.protocol.kinds.len()).map(KindId);
        let facts = StepFacts {
            tail: machine.tail(),
            remediations: machine.remediations().to_vec(),
            remediated_kinds: kinds.filter(|kind| machine.remediated_kind(*kind)).collect(),
        };
        StepRun { end, facts }
    }

    /// What kind of resource Tilt says `resource` is.
    pub fn kind(&self, resource: &str) -> Option<crate::tilt::model::ResourceKind> {
        self.seen.get(resource).and_then(Seen::latest_status).map(|status| status.kind)
    }

    /// The step passed: its service is watched until the run ends.
    pub fn guard(&mut self, step: usize, guard: Guard) {
        self.guards.push((step, guard));
    }

    /// After the last step: waits out the steps' confirm times, then checks once more what Tilt
    /// says of every resource that passed. Returns the first failure.
    pub fn finish(&mut self) -> Option<(usize, Failure)> {
        loop {
            let now = Instant::now();
            let Some(until) =
                self.guards.iter().map(|(_, guard)| guard.confirm_until).filter(|until| *until > now).max()
            else {
                break;
            };
            match self.next(Some(until)) {
                Next::GuardFailed(step, failure) => return Some((step, failure)),
                Next::Input(Input::Ended(failure)) => return Some((self.guards.last()?.0, failure)),
                Next::Input(_) | Next::Tick => {}
            }
        }
        for (step, guard) in &mut self.guards {
            let Some(status) = self.seen.get(&guard.resource).and_then(Seen::latest_status) else { continue };
            if let Some(failure) = guard.on(&self.protocol.steps[*step], &Input::Status(status.clone()), Instant::now())
            {
                return Some((*step, failure));
            }
        }
        None
    }

    /// The next thing that happens, at the latest at `wake`: given to the guards first.
    fn next(&mut self, wake: Option<Instant>) -> Next {
        let received = match wake {
            Some(wake) => self.events.recv_timeout(wake.saturating_duration_since(Instant::now())),
            None => self.events.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let input = match received {
            Err(RecvTimeoutError::Timeout) => return Next::Tick,
            // The Ctrl-C handler holds a sender: the channel stays open while the run lasts.
            Err(RecvTimeoutError::Disconnected) => Input::Ended(Failure::TiltGone),
            Ok(Event::Line(line)) => {
                self.seen.entry(line.resource.clone()).or_default().line(&line);
                Input::Line(line)
            }
            Ok(Event::Status(status)) => {
                self.seen.entry(status.name.clone()).or_default().status(&status);
                Input::Status(status)
            }
            Ok(Event::Compose(service)) => {
                self.seen.entry(service.name.clone()).or_default().compose(&service);
                Input::Compose(service)
            }
            Ok(Event::Polled) => {
                self.polled = true;
                return Next::Tick;
            }
            Ok(Event::Interrupted) => Input::Ended(Failure::Interrupted),
            Ok(Event::Ended { source, detail }) => {
                let failure = stream_failure(source, &detail);
                self.gone.get_or_insert(failure.clone());
                Input::Ended(failure)
            }
        };
        let now = Instant::now();
        for (index, guard) in &mut self.guards {
            if input_resource(&input) == Some(guard.resource.as_str()) {
                let step = &self.protocol.steps[*index];
                if let Some(failure) = guard.on(step, &input, now) {
                    // Tilt may say the service stopped before the log says why: ask the log.
                    let snapshot = self.tilt.logs(&guard.resource, self.format, Some(GUARD_RECHECK_LINES));
                    let failure = match snapshot {
                        Ok(lines) => guard.explain(step, &lines, failure),
                        Err(_) => failure,
                    };
                    return Next::GuardFailed(*index, failure);
                }
            }
        }
        Next::Input(input)
    }

    fn trigger(&mut self, step: &Step) -> Input {
        let at = WallTime::now_utc();
        match self.tilt.trigger(&step.resource) {
            Ok(()) => Input::Triggered { at },
            Err(err) => Input::Ended(call_failure(err)),
        }
    }

    fn recheck(&mut self, step: &Step, tail: Option<usize>) -> Input {
        match self.tilt.logs(&step.resource, self.format, tail) {
            Ok(lines) => Input::Snapshot(lines),
            Err(TiltError::NotRunning { .. }) => Input::Ended(Failure::TiltGone),
            Err(err) => Input::Ended(call_failure(err)),
        }
    }

    /// Runs a remediation in its directory, bounded by the step's time left; its output goes
    /// to the step's log.
    fn remediate(
        &mut self,
        step: &Step,
        remediation: &Remediation,
        bound: Duration,
        log: Option<&mut StepLog>,
    ) -> Result<(), String> {
        let described = remediation.describe();
        self.live.note(&format!(
            "{}: {} → remediation: {described}, then retrigger",
            step.name,
            self.protocol.kind(remediation.on).name
        ));
        let dir = self.root.join(&remediation.dir);
        if !dir.is_dir() {
            return Err(format!("{described}: the directory {dir} does not exist"));
        }
        let program = &remediation.program;
        let args = &remediation.args;
        let mut command = Command::from(cmd!(self.sh, "{program} {args...}"));
        command.current_dir(&dir);
        let output = match process::run(command, bound) {
            Ended::Exited(output) => output,
            Ended::NotFound => return Err(format!("{described}: `{program}` was not found on PATH")),
            Ended::TimedOut => return Err(format!("{described}: still running when the step's time ran out: killed")),
            Ended::Interrupted => return Err(format!("{described}: interrupted")),
            Ended::Failed(err) => return Err(format!("{described}: {err}")),
        };
        if let Some(log) = log {
            log.write_line(&format!("[cargo xtask sync] remediation: {described}"));
            let _ = log.file.write_all(&output.stdout);
            let _ = log.file.write_all(&output.stderr);
        }
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or("no message");
            return Err(format!("{described}: exited with {}: {last}", output.status));
        }
        Ok(())
    }
}

fn input_resource(input: &Input) -> Option<&str> {
    match input {
        Input::Line(line) => Some(&line.resource),
        Input::Status(status) => Some(&status.name),
        Input::Compose(service) => Some(&service.name),
        _ => None,
    }
}

/// A Tilt call that failed, or was cut short by Ctrl-C.
fn call_failure(err: TiltError) -> Failure {
    if interrupt::requested() || matches!(err, TiltError::Interrupted) {
        return Failure::Interrupted;
    }
    Failure::TiltCall(err.to_string())
}

/// A long-lived call ended: with no message Tilt stopped; with one, the call failed.
fn stream_failure(source: Source, detail: &str) -> Failure {
    if interrupt::requested() {
        Failure::Interrupted
    } else if detail.is_empty() || detail.contains("No tilt apiserver found") || detail.contains("connection refused") {
        Failure::TiltGone
    } else {
        Failure::TiltCall(format!("`{}` failed: {detail}", source.call()))
    }
}
