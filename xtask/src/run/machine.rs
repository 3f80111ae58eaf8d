//! The run as one machine (nextest's `handle_event` shape): it owns what is known of every
//! resource, the current step's attempt and the guards of the steps that passed. `handle` takes
//! an event and the time, and pushes the actions that follow; `wake_at` says when it wants the
//! next `Event::Wake` at the latest. The steps run in protocol order; the first failure ends
//! the run.

use std::time::{Duration, Instant};

use time::format_description::well_known::Rfc3339;

use crate::{
    protocol::{KindId, Protocol, Step},
    run::{
        attempt::{self, Attempt, Context, Look, Reading},
        attribution::Seen,
        guard::Guard,
        BuildId, Failure, Now, RemediationError,
    },
    tilt::{
        model::{ComposeService, LogLine, ResourceKind, ResourceStatus, WallTime},
        TiltError,
    },
};

/// Tilt's log store keeps 2 MB of all resources' log and, past that, cuts the largest
/// resource's oldest lines until it holds half (tilt-dev/tilt `pkg/model/logstore/logstore.go`,
/// `defaultMaxLogLengthInBytes`, `ensureMaxLength`). After a cut it holds about 1 MB, so while
/// the log read since the run began (the history included) stays below that, with a margin for
/// how lines are counted, nothing was cut.
pub const TILT_LOG_LIMIT: u64 = 2_000_000;
const NEVER_CUT_BELOW: u64 = TILT_LOG_LIMIT / 2 * 8 / 10;

/// The timing rules of a run (from the protocol and the command line).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A fixed wait after each trigger before a verdict (the seed protocol's 5 s).
    pub settle: Duration,
    /// How long the log may lag Tilt's record of our build's end before it is read again.
    pub catch_up: Duration,
    /// After a failure, how long our build's remaining lines are still kept, at most.
    pub after_error: Duration,
    /// How long the status watch has to list the run's resources, and the pause that ends its
    /// first burst.
    pub status_wait: Duration,
    pub status_quiet: Duration,
    /// How long the container watch has to show the run's compose services.
    pub containers_wait: Duration,
    /// The log is polled, not followed: the first pass must be in before the first step.
    pub polled: bool,
}

/// What happens, as the machine is told: what Tilt's streams say (sent by their threads,
/// `tilt/mod.rs`), Ctrl-C, the answers to the machine's own calls, the clock.
#[derive(Debug)]
pub enum Event {
    Line(LogLine),
    /// How many bytes of log the stream has read (all resources, the history included).
    Volume(u64),
    Status(ResourceStatus),
    /// The Tiltfile's latest load (when it finished), as the status watch shows it.
    TiltfileLoaded(Option<String>),
    /// The resources Tilt has (`tilt get uiresources -o name`).
    Resources(Result<Vec<String>, TiltError>),
    Compose(ComposeService),
    /// The log poller's first pass is in (old Tilt, `--no-stream`).
    Polled,
    /// A long-lived Tilt call ended: `error` None when Tilt stopped.
    Ended {
        error: Option<TiltError>,
    },
    Interrupted,
    /// `tilt trigger` answered; the time was read just before the call.
    Triggered(Result<WallTime, TiltError>),
    /// The resource's log as Tilt had it (`tilt logs R --tail N`).
    Reading {
        resource: String,
        lines: Result<Vec<LogLine>, TiltError>,
    },
    Remediated(Result<(), RemediationError>),
    /// The time asked for came, or any other moment.
    Wake,
}

/// What the machine asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Start watching the docker-compose services' containers.
    WatchContainers,
    Trigger(String),
    /// Ask Tilt which resources it has: one of the run's may be gone.
    ListResources,
    Recheck {
        resource: String,
        tail: Option<usize>,
    },
    /// Run the remediation with this index of this step, bounded by the step's time left.
    Remediate {
        step: usize,
        remediation: usize,
        bound: Duration,
    },
    StepStarted {
        step: usize,
        ordinal: usize,
        of: usize,
    },
    /// A line of the current step's resource for its log.
    Keep(LogLine),
    /// A note for the current step's log.
    Mark(String),
    StepEnded(Box<StepEnd>),
    /// A step that had passed failed before the run ended.
    PassedFailed {
        step: usize,
        failure: Failure,
    },
    Finished(End),
}

/// How a step that started ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEnd {
    pub step: usize,
    pub started: WallTime,
    pub decided: WallTime,
    pub took: Duration,
    pub how: How,
    /// The remediations run (indices into the step's), and the error kinds they were for.
    pub remediations: Vec<usize>,
    pub remediated_kinds: Vec<KindId>,
    /// It was triggered (and Tilt keeps its build going if the run stops).
    pub triggered: bool,
    /// The build of ours the step followed last, when one started.
    pub build: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    Passed {
        line: String,
        build: BuildId,
    },
    Failed(Failure),
    /// The run ended while it ran: a step that had passed failed, or Tilt went away then.
    CutShort,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Every step ran to its verdict (the last one may have failed).
    Completed,
    /// Ctrl-C.
    Interrupted,
    /// No step could start.
    Refused(Refusal),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Tilt has no resource of these names.
    Missing {
        missing: Vec<String>,
        known: Vec<String>,
    },
    Failed(Failure),
}

/// Where the current step goes next.
enum Move {
    Stay,
    Moved,
    Decide(How),
    AfterFailure(Failure),
}

/// The step being run.
#[derive(Debug)]
struct Current {
    /// Its index in the protocol.
    step: usize,
    resource: usize,
    started: Now,
    deadline: Instant,
    triggered: bool,
    remediated: Vec<usize>,
    used: Vec<KindId>,
    state: StepState,
}

#[derive(Debug)]
enum StepState {
    /// The trigger is due at `at` (at once the first time; after a remediation, its wait).
    Due {
        at: Instant,
    },
    Triggering,
    Watching(Box<Attempt>),
    /// Decided on a failure; our build's last lines still go to the log until it ends.
    Capturing {
        attempt: Box<Attempt>,
        failure: Failure,
        until: Instant,
    },
    Remediating,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for Tilt's status of every resource of the run (the watch's first burst), until
    /// `status_wait` after the first event at the latest.
    Statuses {
        until: Option<Instant>,
        quiet_at: Option<Instant>,
    },
    /// Waiting for the container watch's first word on the run's compose services.
    Containers {
        until: Instant,
    },
    Stepping(Box<Current>),
    /// A step that had passed failed: Tilt's log is read to say why.
    Explaining {
        step: usize,
        failure: Failure,
    },
    /// Every step passed: their services must stay up their confirm time, and a later build of
    /// one of them (another terminal's trigger) end, before the verdict.
    Finishing {
        until: Instant,
        bound: Instant,
    },
    Done,
}

pub struct Machine<'p> {
    protocol: &'p Protocol,
    timing: Timing,
    /// The steps to run (indices into the protocol), in order, and how many have started.
    steps: Vec<usize>,
    started: usize,
    /// What is known of each resource Tilt has told of, by name.
    resources: Vec<(String, Seen)>,
    phase: Phase,
    guards: Vec<Guard>,
    /// Bytes of log read since the run began.
    volume: u64,
    polled: bool,
    /// Set once a stream ended: how every later wait fails.
    gone: Option<Failure>,
    /// The Tiltfile's latest load known, and whether Tilt was asked for its resources since.
    tiltfile: Option<Option<String>>,
    listing: bool,
}

impl<'p> Machine<'p> {
    pub fn new(protocol: &'p Protocol, steps: Vec<usize>, timing: Timing) -> Machine<'p> {
        let resources = steps.iter().map(|&step| (protocol.steps[step].resource.clone(), Seen::default())).collect();
        Machine {
            protocol,
            timing,
            steps,
            started: 0,
            resources,
            phase: Phase::Statuses { until: None, quiet_at: None },
            guards: Vec::new(),
            volume: 0,
            polled: false,
            gone: None,
            tiltfile: None,
            listing: false,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// When the machine wants an `Event::Wake`, after `now`, at the latest.
    pub fn wake_at(&self, now: Instant) -> Option<Instant> {
        let due = match &self.phase {
            Phase::Statuses { until, quiet_at } => [*until, *quiet_at].into_iter().flatten().min(),
            Phase::Containers { until } => Some(*until),
            // After the confirm times, a later build of a passed resource is waited for, at most
            // until the bound.
            Phase::Finishing { until, bound } => Some(if *until > now { *until } else { *bound }),
            Phase::Explaining { .. } | Phase::Done => None,
            Phase::Stepping(current) => {
                let seen = &self.resources[current.resource].1;
                let context = self.context(current.resource);
                match &current.state {
                    StepState::Due { at } => Some((*at).min(current.deadline)),
                    StepState::Triggering | StepState::Remediating => None,
                    StepState::Watching(attempt) => {
                        [Some(current.deadline), attempt.wake_at(seen.plain, &context, now)].into_iter().flatten().min()
                    }
                    StepState::Capturing { attempt, until, .. } => {
                        [Some(*until), attempt.wake_at(seen.plain, &context, now)].into_iter().flatten().min()
                    }
                }
            }
        };
        due.filter(|due| *due > now)
    }

    fn index(&mut self, name: &str) -> usize {
        match self.resources.iter().position(|(known, _)| known == name) {
            Some(index) => index,
            None => {
                self.resources.push((name.to_owned(), Seen::default()));
                self.resources.len() - 1
            }
        }
    }

    fn context(&self, resource: usize) -> Context {
        let seen = &self.resources[resource].1;
        Context {
            catch_up: self.timing.catch_up,
            // A polled log says nothing of its volume, and the poller skips a cut silently.
            log_may_be_cut: self.timing.polled || self.volume + tilt_log::VOLUME_EVERY >= NEVER_CUT_BELOW,
            compose: attempt::is_compose(seen) && seen.container.is_some(),
        }
    }

    pub fn handle(&mut self, event: Event, now: Now, actions: &mut Vec<Action>) {
        if let Phase::Statuses { until: until @ None, .. } = &mut self.phase {
            *until = Some(now.at + self.timing.status_wait);
        }
        match event {
            Event::Line(line) => {
                if !self.line(line, now, actions) {
                    return;
                }
            }
            Event::Volume(volume) => {
                self.volume = volume;
                return;
            }
            Event::Status(status) => self.status(status, now, actions),
            Event::TiltfileLoaded(finished) => {
                // A Tiltfile loaded again during the run may have renamed or removed a resource
                // (Tilt neither cancels its build nor says so in its log).
                if self.tiltfile.replace(finished.clone()).is_some_and(|known| known != finished) {
                    self.list_resources(actions);
                }
            }
            Event::Resources(Ok(names)) => {
                self.listing = false;
                self.resources_gone(&names, now, actions);
            }
            Event::Resources(Err(_)) => self.listing = false,
            Event::Compose(service) => self.container(service, now, actions),
            Event::Polled => self.polled = true,
            Event::Ended { error } => {
                let failure = Failure::of_tilt(error);
                self.gone.get_or_insert(failure.clone());
                self.stop(failure, now, actions);
            }
            Event::Interrupted => self.stop(Failure::Interrupted, now, actions),
            Event::Triggered(result) => self.triggered(result, now, actions),
            Event::Reading { resource, lines } => self.reading(&resource, lines, now, actions),
            Event::Remediated(result) => self.remediated(result, now, actions),
            Event::Wake => {}
        }
        self.advance(now, actions);
    }

    /// A line: the current step's attempt and the guards judge it. Returns whether it may
    /// change a verdict.
    fn line(&mut self, line: LogLine, now: Now, actions: &mut Vec<Action>) -> bool {
        let Some(resource) = self.resources.iter().position(|(name, _)| *name == line.resource) else {
            return false;
        };
        let place = self.resources[resource].1.line(&line);
        let protocol = self.protocol;
        let failed = self
            .guards
            .iter_mut()
            .filter(|guard| protocol.steps[guard.step].resource == line.resource)
            .find_map(|guard| guard.line(&protocol.steps[guard.step], &line).map(|failure| (guard.step, failure)));
        if let Some((step, failure)) = failed {
            self.passed_failed(step, failure, now, actions);
            return true;
        }
        let Phase::Stepping(current) = &mut self.phase else { return false };
        if current.resource != resource {
            return false;
        }
        let step = &protocol.steps[current.step];
        let (StepState::Watching(attempt) | StepState::Capturing { attempt, .. }) = &mut current.state else {
            return false;
        };
        let Some(news) = attempt.line(step, &line, place) else { return false };
        if attempt.keeps(&line) {
            actions.push(Action::Keep(line));
        }
        news
    }

    /// Whether a guard of `name` finds a failure in what `check` shows it.
    fn guards_find(
        &mut self,
        name: &str,
        mut check: impl FnMut(&mut Guard, &Step) -> Option<Failure>,
    ) -> Option<(usize, Failure)> {
        let protocol = self.protocol;
        self.guards
            .iter_mut()
            .filter(|guard| protocol.steps[guard.step].resource == name)
            .find_map(|guard| check(guard, &protocol.steps[guard.step]).map(|failure| (guard.step, failure)))
    }

    /// Asks Tilt which resources it has, unless that is on its way.
    fn list_resources(&mut self, actions: &mut Vec<Action>) {
        if !self.listing && matches!(self.phase, Phase::Stepping(_) | Phase::Finishing { .. }) {
            self.listing = true;
            actions.push(Action::ListResources);
        }
    }

    /// The run's resources Tilt no longer has fail their step, or the run.
    fn resources_gone(&mut self, names: &[String], now: Now, actions: &mut Vec<Action>) {
        let gone = |resource: &str| !names.iter().any(|name| name == resource);
        if let Phase::Stepping(current) = &self.phase {
            if gone(&self.resources[current.resource].0) {
                cov_mark::hit!(a_resource_the_tiltfile_removed_fails_its_step_at_once);
                return self.decide(How::Failed(Failure::Removed), now, actions);
            }
        }
        let removed = self.guards.iter().find(|guard| gone(&self.protocol.steps[guard.step].resource));
        if let Some(step) = removed.map(|guard| guard.step) {
            self.passed_failed(step, Failure::Removed, now, actions);
        }
    }

    fn status(&mut self, status: ResourceStatus, now: Now, actions: &mut Vec<Action>) {
        let resource = self.index(&status.name);
        let compose = status.kind == ResourceKind::Compose;
        let failed = self.guards_find(&status.name.clone(), |guard, _| guard.status(&status, compose));
        self.resources[resource].1.status(status);
        if let Some((step, failure)) = failed {
            return self.passed_failed(step, failure, now, actions);
        }
        match &mut self.phase {
            Phase::Statuses { quiet_at, .. } => *quiet_at = Some(now.at + self.timing.status_quiet),
            Phase::Stepping(current) if current.resource == resource => {
                let seen = &self.resources[resource].1;
                if let StepState::Watching(attempt) | StepState::Capturing { attempt, .. } = &mut current.state {
                    if let Some(latest) = &seen.status {
                        attempt.status(latest, seen.previous.as_ref(), seen.plain, now.at);
                    }
                }
            }
            _ => {}
        }
    }

    fn container(&mut self, service: ComposeService, now: Now, actions: &mut Vec<Action>) {
        let resource = self.index(&service.name);
        let failed = self.guards_find(&service.name.clone(), |guard, step| guard.container(step, &service));
        self.resources[resource].1.container = Some(service);
        if let Some((step, failure)) = failed {
            self.passed_failed(step, failure, now, actions);
        }
    }

    /// A step that had passed failed: the current step is cut short, and Tilt's log is read
    /// for the line that says why.
    fn passed_failed(&mut self, step: usize, failure: Failure, now: Now, actions: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Explaining { .. } | Phase::Done) {
            return;
        }
        if let Phase::Stepping(current) = std::mem::replace(&mut self.phase, Phase::Done) {
            actions.push(self.step_ended(&current, How::CutShort, now));
        }
        match &failure {
            Failure::RuntimeFailed { .. } if self.gone.is_none() => {
                let resource = self.protocol.steps[step].resource.clone();
                actions.push(Action::Recheck { resource, tail: Some(GUARD_RECHECK_LINES) });
                self.phase = Phase::Explaining { step, failure };
            }
            _ => {
                actions.push(Action::PassedFailed { step, failure });
                actions.push(Action::Finished(End::Completed));
            }
        }
    }

    /// Tilt went away, or Ctrl-C: the run ends here.
    fn stop(&mut self, failure: Failure, now: Now, actions: &mut Vec<Action>) {
        let interrupted = failure == Failure::Interrupted;
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Statuses { .. } | Phase::Containers { .. } => {
                actions.push(Action::Finished(End::Refused(Refusal::Failed(failure))));
            }
            Phase::Stepping(current) => {
                let failure = match &current.state {
                    // Decided already: Tilt going away or Ctrl-C only cut the saved log short.
                    StepState::Capturing { failure, .. } if !interrupted => failure.clone(),
                    _ => failure,
                };
                actions.push(self.step_ended(&current, How::Failed(failure), now));
                actions.push(Action::Finished(if interrupted { End::Interrupted } else { End::Completed }));
            }
            Phase::Explaining { step, failure: explained } => {
                actions.push(Action::PassedFailed { step, failure: explained });
                actions.push(Action::Finished(if interrupted { End::Interrupted } else { End::Completed }));
            }
            Phase::Finishing { .. } if interrupted => actions.push(Action::Finished(End::Interrupted)),
            Phase::Finishing { .. } => {
                let step = self.guards.last().map_or(0, |guard| guard.step);
                actions.push(Action::PassedFailed { step, failure });
                actions.push(Action::Finished(End::Completed));
            }
            Phase::Done => {}
        }
    }

    fn triggered(&mut self, result: Result<WallTime, TiltError>, now: Now, actions: &mut Vec<Action>) {
        let Phase::Stepping(current) = &mut self.phase else { return };
        match result {
            Ok(at) => {
                let seen = &self.resources[current.resource].1;
                current.state = StepState::Watching(Box::new(Attempt::new(seen, at, self.timing.settle, now.at)));
            }
            Err(error) => self.decide(How::Failed(Failure::of_tilt(Some(error))), now, actions),
        }
    }

    fn reading(&mut self, resource: &str, lines: Result<Vec<LogLine>, TiltError>, now: Now, actions: &mut Vec<Action>) {
        if let Phase::Explaining { step, failure } = &self.phase {
            let (step, failure) = (*step, failure.clone());
            let interrupted = matches!(lines, Err(TiltError::Interrupted));
            let explained = match (&lines, self.guards.iter().find(|guard| guard.step == step)) {
                (Ok(lines), Some(guard)) => guard.explain(&self.protocol.steps[step], lines, failure),
                _ => failure,
            };
            self.phase = Phase::Done;
            actions.push(Action::PassedFailed { step, failure: explained });
            actions.push(Action::Finished(if interrupted { End::Interrupted } else { End::Completed }));
            return;
        }
        let lines = match lines {
            Ok(lines) => lines,
            Err(error) => {
                let failure = Failure::of_tilt(Some(error));
                self.gone.get_or_insert(failure.clone());
                return self.stop(failure, now, actions);
            }
        };
        let Phase::Stepping(current) = &mut self.phase else { return };
        let index = current.resource;
        if self.resources[index].0 != resource {
            return;
        }
        let step = &self.protocol.steps[current.step];
        let seen = &self.resources[index].1;
        let (StepState::Watching(attempt) | StepState::Capturing { attempt, .. }) = &mut current.state else { return };
        match attempt.reading(step, seen, &lines) {
            Ok(Reading::Short) => {
                let tail = attempt.recheck(seen, true, now.at);
                actions.push(Action::Recheck { resource: resource.to_owned(), tail });
            }
            Ok(Reading::Unasked) => {}
            Ok(Reading::Judged { unseen }) => {
                // The log keeps what the reading found beyond the stream: the stream's copy of
                // those lines is skipped.
                let mut unseen_lines: Vec<LogLine> =
                    lines.into_iter().rev().filter(|line| !line.header).take(unseen).collect();
                unseen_lines.reverse();
                actions.extend(unseen_lines.into_iter().filter(|line| attempt.keeps(line)).map(Action::Keep));
            }
            Err(failure) => {
                actions.push(Action::Mark(format!(
                    "[cargo xtask sync] Tilt no longer holds the start of this build in its log (it keeps {} MB of \
                     log for all resources and cuts the largest one's oldest lines): lines of this build are missing \
                     above",
                    TILT_LOG_LIMIT / 1_000_000
                )));
                let attempt = match std::mem::replace(&mut current.state, StepState::Remediating) {
                    StepState::Watching(attempt) | StepState::Capturing { attempt, .. } => attempt,
                    _ => unreachable!("matched above"),
                };
                current.state = StepState::Capturing { attempt, failure, until: now.at };
            }
        }
    }

    fn remediated(&mut self, result: Result<(), RemediationError>, now: Now, actions: &mut Vec<Action>) {
        let Phase::Stepping(current) = &mut self.phase else { return };
        match result {
            Ok(()) => {
                let step = &self.protocol.steps[current.step];
                let wait = current.remediated.last().map_or(Duration::ZERO, |&index| step.remediations[index].wait.0);
                current.state = StepState::Due { at: now.at + wait };
            }
            Err(error) => {
                let failure = match error {
                    RemediationError::Interrupted => Failure::Interrupted,
                    error => Failure::RemediationFailed(error),
                };
                self.decide(How::Failed(failure), now, actions);
            }
        }
    }

    /// Moves on as far as what is known allows.
    fn advance(&mut self, now: Now, actions: &mut Vec<Action>) {
        loop {
            let moved = match &self.phase {
                Phase::Statuses { .. } => self.statuses_known(now, actions),
                Phase::Containers { until } => {
                    let until = *until;
                    let reported =
                        self.compose_resources().iter().all(|&index| self.resources[index].1.container.is_some());
                    if reported || now.at >= until {
                        self.next_step(now, actions);
                        true
                    } else {
                        false
                    }
                }
                Phase::Stepping(_) => self.step(now, actions),
                Phase::Finishing { .. } => self.finishing(now, actions),
                Phase::Explaining { .. } | Phase::Done => false,
            };
            if !moved {
                return;
            }
        }
    }

    /// The run's resources that Tilt says are docker-compose services.
    fn compose_resources(&self) -> Vec<usize> {
        let names: Vec<&String> = self.steps.iter().map(|&step| &self.protocol.steps[step].resource).collect();
        (0..self.resources.len())
            .filter(|&index| {
                let (name, seen) = &self.resources[index];
                names.contains(&name) && attempt::is_compose(seen)
            })
            .collect()
    }

    fn statuses_known(&mut self, now: Now, actions: &mut Vec<Action>) -> bool {
        let Phase::Statuses { until: Some(until), quiet_at } = self.phase else { return false };
        let wanted: Vec<&String> = self.steps.iter().map(|&step| &self.protocol.steps[step].resource).collect();
        let known = |name: &String| self.resources.iter().any(|(known, seen)| known == name && seen.status.is_some());
        let all_known = wanted.iter().all(|name| known(name));
        let quiet = quiet_at.is_some_and(|at| now.at >= at);
        if !((all_known && (!self.timing.polled || self.polled)) || now.at >= until || (quiet && !all_known)) {
            return false;
        }
        let missing: Vec<String> = wanted.iter().filter(|name| !known(name)).map(|name| (*name).clone()).collect();
        if !missing.is_empty() {
            let mut known: Vec<String> =
                self.resources.iter().filter(|(_, seen)| seen.status.is_some()).map(|(name, _)| name.clone()).collect();
            known.sort();
            self.phase = Phase::Done;
            actions.push(Action::Finished(End::Refused(Refusal::Missing { missing, known })));
            return false;
        }
        if self.compose_resources().is_empty() {
            self.next_step(now, actions);
        } else {
            actions.push(Action::WatchContainers);
            self.phase = Phase::Containers { until: now.at + self.timing.containers_wait };
        }
        true
    }

    /// Starts the next step to run, or finishes.
    fn next_step(&mut self, now: Now, actions: &mut Vec<Action>) {
        let Some(&step) = self.steps.get(self.started) else {
            let until = self.guards.iter().map(|guard| guard.confirm_until).max().unwrap_or(now.at);
            let longest = self.steps.iter().map(|&step| self.protocol.steps[step].timeout.0).max().unwrap_or_default();
            self.phase = Phase::Finishing { until, bound: now.at + longest };
            return;
        };
        self.started += 1;
        let resource = self.index(&self.protocol.steps[step].resource.clone());
        actions.push(Action::StepStarted { step, ordinal: self.started, of: self.steps.len() });
        self.phase = Phase::Stepping(Box::new(Current {
            step,
            resource,
            started: now,
            deadline: now.at + self.protocol.steps[step].timeout.0,
            triggered: false,
            remediated: Vec::new(),
            used: Vec::new(),
            state: StepState::Due { at: now.at },
        }));
        if let Some(failure) = self.gone.clone() {
            self.decide(How::Failed(failure), now, actions);
        }
    }

    fn step_ended(&self, current: &Current, how: How, now: Now) -> Action {
        let plain = self.resources[current.resource].1.plain;
        let build = match &current.state {
            StepState::Watching(attempt) | StepState::Capturing { attempt, .. } => attempt.ours(plain),
            _ => None,
        };
        Action::StepEnded(Box::new(StepEnd {
            build,
            step: current.step,
            started: current.started.wall(),
            decided: now.wall(),
            took: now.at.saturating_duration_since(current.started.at),
            how,
            remediations: current.remediated.clone(),
            remediated_kinds: current.used.clone(),
            triggered: current.triggered,
        }))
    }

    /// The current step is decided: the next one starts after a pass; a failure ends the run.
    fn decide(&mut self, how: How, now: Now, actions: &mut Vec<Action>) {
        let Phase::Stepping(current) = std::mem::replace(&mut self.phase, Phase::Done) else { return };
        actions.push(self.step_ended(&current, how.clone(), now));
        match how {
            How::Passed { build, .. } => {
                let step = &self.protocol.steps[current.step];
                let (serve, runtime) = match &current.state {
                    StepState::Watching(attempt) => (attempt.baseline.serve, attempt.baseline.runtime.clone()),
                    _ => Default::default(),
                };
                // `confirm` is how long the service must be seen up: a container Compose kept (the
                // one there when we triggered) has been up since it started.
                let seen = &self.resources[current.resource].1;
                let kept = |container: &&ComposeService| match &current.state {
                    StepState::Watching(attempt) => {
                        attempt.baseline.container.as_ref().is_some_and(|then| then.same_run(container))
                    }
                    _ => false,
                };
                let up_for = seen
                    .container
                    .as_ref()
                    .filter(|_| attempt::is_compose(seen))
                    .filter(kept)
                    .and_then(|container| container.started_at.as_deref())
                    .and_then(|started| WallTime::parse(started, &Rfc3339).ok())
                    .map_or(Duration::ZERO, |started| (now.wall() - started).try_into().unwrap_or_default());
                let confirm_until = now.at + step.confirm.0.saturating_sub(up_for);
                self.guards.push(Guard::new(current.step, build, serve, runtime, confirm_until));
                self.next_step(now, actions);
            }
            How::Failed(Failure::Interrupted) => actions.push(Action::Finished(End::Interrupted)),
            How::Failed(_) | How::CutShort => actions.push(Action::Finished(End::Completed)),
        }
    }

    /// Moves the current step on. Returns whether its phase changed.
    fn step(&mut self, now: Now, actions: &mut Vec<Action>) -> bool {
        let Phase::Stepping(current) = &self.phase else { return false };
        let (index, protocol) = (current.resource, self.protocol);
        let step: &Step = &protocol.steps[current.step];
        let context = self.context(index);
        let blocked = self.blocked(index);
        let after_error = self.timing.after_error;
        let Phase::Stepping(current) = &mut self.phase else { return false };
        let seen = &self.resources[index].1;
        let disabled = seen.status.as_ref().is_some_and(|status| status.disabled);
        let next = match &mut current.state {
            StepState::Capturing { .. } => Move::Stay,
            _ if disabled => {
                cov_mark::hit!(a_disabled_resource_fails_its_step_at_once);
                Move::Decide(How::Failed(Failure::Disabled))
            }
            StepState::Due { .. } if now.at >= current.deadline => Move::Decide(How::Failed(Failure::Timeout)),
            StepState::Due { at } if now.at >= *at => {
                current.state = StepState::Triggering;
                // Tilt may start the build whatever the call answers.
                current.triggered = true;
                actions.push(Action::Trigger(step.resource.clone()));
                Move::Moved
            }
            StepState::Watching(attempt) if !attempt.started(seen.plain) && blocked.is_some() => {
                cov_mark::hit!(a_build_held_for_a_failed_dependency_fails_at_once);
                Move::Decide(How::Failed(blocked.unwrap_or(Failure::Timeout)))
            }
            StepState::Watching(attempt) => match attempt.look(step, seen, &context, now.at) {
                Look::Recheck { tail } => {
                    actions.push(Action::Recheck { resource: step.resource.clone(), tail });
                    Move::Stay
                }
                Look::Wait if now.at >= current.deadline => Move::Decide(How::Failed(match attempt.saw_success() {
                    true => Failure::Uncertain(format!(
                        "{} printed its success line, but Tilt never recorded its build finished",
                        step.resource
                    )),
                    false => Failure::Timeout,
                })),
                Look::Wait => Move::Stay,
                // The seed protocol's fixed wait: nothing is decided before it ends.
                _ if !attempt.settled(now.at) => Move::Stay,
                Look::Succeeded { line, build } => Move::Decide(How::Passed { line, build }),
                Look::Failed(failure) if attempt.ended(seen.plain, &context, now.at) => Move::AfterFailure(failure),
                // Tilt ended the build itself: no more of its lines will come.
                Look::Failed(failure @ (Failure::Canceled { .. } | Failure::LogCut)) => Move::AfterFailure(failure),
                Look::Failed(failure) => {
                    cov_mark::hit!(capture_goes_on_after_the_error);
                    let StepState::Watching(attempt) = std::mem::replace(&mut current.state, StepState::Remediating)
                    else {
                        unreachable!("matched above")
                    };
                    current.state = StepState::Capturing { attempt, failure, until: now.at + after_error };
                    Move::Moved
                }
            },
            StepState::Triggering | StepState::Remediating | StepState::Due { .. } => Move::Stay,
        };
        let next = match (next, &mut current.state) {
            (Move::Stay, StepState::Capturing { attempt, until, failure }) => {
                if now.at >= *until || attempt.ended(seen.plain, &context, now.at) {
                    let error =
                        matches!(failure, Failure::Error { .. }).then(|| attempt.deciding_error(step, seen.plain));
                    Move::AfterFailure(error.flatten().unwrap_or_else(|| failure.clone()))
                } else {
                    // The failed build's last lines: read as soon as Tilt says it ended.
                    if let Some(tail) = attempt.needs_reading(seen, &context, now.at) {
                        actions.push(Action::Recheck { resource: step.resource.clone(), tail });
                    }
                    Move::Stay
                }
            }
            (next, _) => next,
        };
        match next {
            Move::Stay => false,
            Move::Moved => true,
            Move::Decide(how) => {
                self.decide(how, now, actions);
                true
            }
            Move::AfterFailure(failure) => {
                self.after_failure(failure, now, actions);
                true
            }
        }
    }

    /// Tilt holds the resource's builds for a dependency that cannot become ready (its latest
    /// build failed, none follows): the step's build will never start.
    fn blocked(&self, resource: usize) -> Option<Failure> {
        let status = self.resources[resource].1.status.as_ref()?;
        status.waiting_on.iter().find_map(|dependency| {
            let (_, seen) = self.resources.iter().find(|(name, _)| name == dependency)?;
            let error = seen.status.as_ref()?.stuck_failed()?;
            Some(Failure::Blocked { dependency: dependency.clone(), error: error.to_owned() })
        })
    }

    /// The failure's remediation, if the step has one for its kind and has not used it yet.
    fn after_failure(&mut self, failure: Failure, now: Now, actions: &mut Vec<Action>) {
        let Phase::Stepping(current) = &mut self.phase else { return };
        let step = &self.protocol.steps[current.step];
        if let Some(kind) = failure.kind() {
            let remediation = step.remediations.iter().position(|remediation| remediation.on == kind);
            if let Some(index) = remediation.filter(|_| !current.used.contains(&kind)) {
                cov_mark::hit!(remediation_once_per_kind);
                current.used.push(kind);
                current.remediated.push(index);
                current.state = StepState::Remediating;
                let bound = current.deadline.saturating_duration_since(now.at);
                actions.push(Action::Remediate { step: current.step, remediation: index, bound });
                return;
            }
        }
        self.decide(How::Failed(failure), now, actions);
    }

    /// Every step passed: once the confirm times are over and no later build of a passed
    /// resource is running, Tilt's state of each must still stand.
    fn finishing(&mut self, now: Now, actions: &mut Vec<Action>) -> bool {
        let Phase::Finishing { until, bound } = self.phase else { return false };
        let building = self.guards.iter().any(|guard| {
            let resource = &self.protocol.steps[guard.step].resource;
            let status =
                self.resources.iter().find(|(name, _)| name == resource).and_then(|(_, seen)| seen.status.as_ref());
            status.is_some_and(|status| {
                status.queued || status.current.as_ref().is_some_and(|build| build.number > guard.passed.number)
            })
        });
        if now.at < until || (building && now.at < bound) {
            return false;
        }
        for guard in &self.guards {
            let step = &self.protocol.steps[guard.step];
            let seen = self.resources.iter().find(|(name, _)| *name == step.resource).map(|(_, seen)| seen);
            let status = seen.and_then(|seen| seen.status.as_ref());
            let container = seen.and_then(|seen| seen.container.as_ref());
            if let Some(failure) = guard.at_end(step, status, container) {
                cov_mark::hit!(the_end_of_the_run_checks_every_synced_resource);
                let step = guard.step;
                self.phase = Phase::Done;
                actions.push(Action::PassedFailed { step, failure });
                actions.push(Action::Finished(End::Completed));
                return false;
            }
        }
        self.phase = Phase::Done;
        actions.push(Action::Finished(End::Completed));
        false
    }

    /// The build that passed for each step that passed, or the latest one since that finished
    /// well (for the records).
    pub fn passed_builds(&self) -> Vec<(usize, BuildId)> {
        self.guards.iter().map(|guard| (guard.step, guard.passed.clone())).collect()
    }
}

/// The lines of a resource's log read to explain why its service stopped.
const GUARD_RECHECK_LINES: usize = 1000;
