//! The per-step state machine, pure. Fed the resource's log lines, Tilt's status of it, the
//! clock and the results of what it asked for, it answers with actions — trigger, re-check the
//! log, remediate — and says when to wake it, until it decides. Every timing rule of a step
//! lives here; `engine.rs` only carries the actions out.
//!
//! Whose a line is comes from the log's own order: the baseline is the newest build of the
//! resource known when we triggered, ours is the next build header, and Tilt's status confirms
//! it (a build Tilt says started before our trigger is not ours). A verdict waits until Tilt
//! records our build finished and the log has caught up with that moment: a line Tilt wrote
//! before it recorded the end is judged before the step is decided, though the log stream and
//! the status watch are separate pipes.

use std::{
    collections::{BTreeMap, HashSet, VecDeque},
    time::{Duration, Instant},
};

use crate::{
    protocol::{KindId, Ready, Step},
    run::scan::{self, Verdict},
    tilt::model::{ComposeService, Health, LogLine, ResourceStatus, Runtime, RuntimeStatus, Span, WallTime},
};

/// What the machine is told.
#[derive(Debug, Clone)]
pub enum Input {
    /// A line of the step's resource, in the log's order.
    Line(LogLine),
    /// Tilt's status of the step's resource.
    Status(ResourceStatus),
    /// The resource's docker-compose container.
    Compose(ComposeService),
    /// `tilt trigger` answered; `at` was read just before the call.
    Triggered {
        at: WallTime,
    },
    /// The re-check: the resource's log as Tilt had it after recording our build's end.
    Snapshot(Vec<LogLine>),
    Remediated(Result<(), String>),
    /// Tilt holds the resource's builds until `dependency` is ready, and that one's latest
    /// build failed (`error`) with none to follow.
    Blocked {
        dependency: String,
        error: String,
    },
    /// The clock: a wake-up asked for, or any other moment.
    Tick,
    /// The watch cannot go on: Tilt went away, Ctrl-C, a Tilt call failed.
    Ended(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Trigger,
    /// Fetch the resource's log as Tilt has it now: its last `tail` lines, or all of it.
    Recheck {
        tail: Option<usize>,
    },
    /// Run the step's remediation with this index.
    Remediate(usize),
    Decided(Decision),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// `line`: the success line, or what Tilt said (`healthy`, `running`); `build`: the build
    /// that passed, as Tilt numbers it.
    Succeeded {
        line: String,
        build: BuildId,
        guard: Box<Guard>,
    },
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A line of our build matched an error kind, by the pattern `rule`.
    Error {
        kind: KindId,
        rule: String,
        line: String,
    },
    /// Tilt recorded our build as failed, whatever its log said.
    TiltRecorded {
        error: String,
    },
    /// Our build finished, then its service or container stopped with an error.
    RuntimeFailed {
        detail: String,
    },
    /// Our container's healthcheck says unhealthy.
    Unhealthy,
    /// Tilt will not start our build: it waits for a dependency whose latest build failed.
    Blocked {
        dependency: String,
        error: String,
    },
    /// The step could not be decided safely.
    Uncertain(String),
    /// Another build of the resource started before ours was decided.
    Superseded {
        by: u64,
    },
    Timeout,
    /// Tilt stopped.
    TiltGone,
    Interrupted,
    /// A Tilt call failed or hung.
    TiltCall(String),
    RemediationFailed(String),
}

/// A build as Tilt knows it: its number and when it finished (numbers restart with Tilt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildId {
    pub number: u64,
    pub finished: Option<WallTime>,
}

/// The timing rules a step follows (from the protocol and the command line).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From the first trigger to the verdict.
    pub timeout: Duration,
    /// A fixed wait after each trigger before a verdict (the seed protocol's 5 s).
    pub settle: Duration,
    /// How long the log may lag Tilt's record of our build's end before it is fetched again.
    pub catch_up: Duration,
    /// After a failure, how long our build's remaining lines are still kept, at most.
    pub after_error: Duration,
    /// After a success, how long the service must stay up (`Guard`).
    pub confirm: Duration,
    /// How many lines the report keeps.
    pub tail_lines: usize,
}

/// What is known of a resource, whatever build is ours: the engine keeps one for every resource
/// of the run from the start, and hands it to the step's machine.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The highest build header in the log (Tilt's number, or the header's ordinal).
    header: u64,
    /// The highest serve process of the resource in the log.
    serve: u64,
    /// Lines of the resource so far: a line's place in the log.
    lines: usize,
    /// The log has no spans (Tilt older than 0.36.1): its build numbers are not Tilt's.
    plain: bool,
    status: Option<ResourceStatus>,
    compose: Option<ComposeService>,
}

impl Seen {
    /// Takes in a line of the resource and returns its place in the log.
    pub fn line(&mut self, line: &LogLine) -> usize {
        self.lines += 1;
        match line.span {
            Span::Build(number) | Span::Plain(number) if line.header => {
                self.plain = matches!(line.span, Span::Plain(_));
                self.header = self.header.max(number);
            }
            Span::Serve(number) => self.serve = self.serve.max(number),
            _ => {}
        }
        self.lines
    }

    /// Takes in Tilt's status and returns the one it replaces.
    pub fn status(&mut self, status: &ResourceStatus) -> Option<ResourceStatus> {
        self.status.replace(status.clone())
    }

    pub fn compose(&mut self, service: &ComposeService) {
        self.compose = Some(service.clone());
    }

    pub fn has_status(&self) -> bool {
        self.status.is_some()
    }

    pub fn has_container(&self) -> bool {
        self.compose.is_some()
    }

    pub fn latest_status(&self) -> Option<&ResourceStatus> {
        self.status.as_ref()
    }
}

/// The verdict-bearing lines of one build, process or container, the first of each sort.
#[derive(Debug, Default, Clone)]
struct Judged {
    error: Option<Failure>,
    success: Option<String>,
    /// Tilt's own `Build Failed: …` line, which says less than the command's error: a failed
    /// command's last lines can reach Tilt's log after it.
    tilt_error: Option<Failure>,
    /// The lines judged last, which the next one may continue (`continued_error`).
    recent: Recent,
}

impl Judged {
    fn judge(&mut self, step: &Step, line: &LogLine) {
        let text = line.text.as_str();
        // Tilt continues a line only within its span; another span's line ends it.
        if self.recent.span != Some(line.span) {
            self.recent = Recent { span: Some(line.span), ..Recent::default() };
        }
        let verdict = scan::classify(step, text);
        let ignored = step.patterns.ignore.is_match(text);
        if self.error.is_none() && !ignored && !matches!(verdict, Verdict::Error(..)) {
            self.error = continued_error(step, &self.recent, text);
        }
        self.recent.push(text, ignored);
        match verdict {
            Verdict::Benign => {}
            Verdict::Error(kind, pattern) if text.starts_with(TILT_BUILD_FAILED) => {
                let rule = step.patterns.errors.patterns()[pattern].clone();
                self.tilt_error.get_or_insert(Failure::Error { kind, rule, line: text.to_owned() });
            }
            Verdict::Error(kind, pattern) => {
                if self.error.is_none() {
                    let rule = step.patterns.errors.patterns()[pattern].clone();
                    self.error = Some(Failure::Error { kind, rule, line: text.to_owned() });
                }
            }
            Verdict::Success => {
                self.success.get_or_insert_with(|| text.to_owned());
            }
        }
    }

    /// Adds what `other` found: its first error and success, where none was found yet.
    fn merge(&mut self, other: Judged) {
        if self.error.is_none() {
            self.error = other.error;
        }
        if self.success.is_none() {
            self.success = other.success;
        }
        if self.tilt_error.is_none() {
            self.tilt_error = other.tilt_error;
        }
    }
}

/// The two lines of one span judged last, since the last line the step ignores.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Recent {
    span: Option<Span>,
    older: String,
    last: String,
}

impl Recent {
    fn push(&mut self, text: &str, ignored: bool) {
        std::mem::swap(&mut self.older, &mut self.last);
        self.last.clear();
        if ignored {
            self.older.clear();
        } else {
            self.last.push_str(text);
        }
    }
}

/// An error that only a line and the one or two before it show together. Tilt's follow stream
/// sends a line it got in pieces (the writer flushed, or a pipe's chunk ended, mid-line) as
/// several records, with nothing that tells them from lines: `err` then `or: could not
/// compile`. Only errors are looked for so (a success needs its own whole line); the caller
/// passes only a line that is neither ignored nor an error by itself.
fn continued_error(step: &Step, recent: &Recent, text: &str) -> Option<Failure> {
    if text.is_empty() || recent.last.is_empty() {
        return None;
    }
    let two = format!("{}{text}", recent.last);
    let three = (!recent.older.is_empty()).then(|| format!("{}{two}", recent.older));
    [Some(two), three].into_iter().flatten().find_map(|joined| match scan::classify(step, &joined) {
        Verdict::Error(kind, pattern) if !joined.starts_with(TILT_BUILD_FAILED) => {
            cov_mark::hit!(an_error_split_across_two_records_is_found);
            let rule = step.patterns.errors.patterns()[pattern].clone();
            Some(Failure::Error { kind, rule, line: joined })
        }
        _ => None,
    })
}

/// Whose lines these are, as the log orders them since the trigger.
#[derive(Debug, Default)]
struct Lines {
    /// Headers since the trigger, in order, with their place in the log and how many lines
    /// were placed before them.
    headers: Vec<(u64, usize, usize)>,
    /// The build the latest header opened: update-command lines are its own.
    open: Option<u64>,
    builds: BTreeMap<u64, Judged>,
    /// Serve processes whose first line came after this build's header, by build.
    serves: BTreeMap<u64, (u64, Judged)>,
    /// Container lines since the last line of a build, by that build.
    container: Option<(u64, Judged)>,
    /// Lines (not headers) placed since the first header after the baseline.
    placed: usize,
}

impl Lines {
    fn header_place(&self, build: u64) -> Option<usize> {
        self.headers.iter().find(|(number, _, _)| *number == build).map(|(_, place, _)| *place)
    }

    /// Places and judges one line; `baseline` and `serve_baseline`: what was known at the
    /// trigger, never ours.
    fn add(&mut self, step: &Step, line: &LogLine, place: usize, baseline: u64, serve_baseline: u64) {
        if !line.header && !self.headers.is_empty() {
            self.placed += 1;
        }
        let build = match line.span {
            Span::Build(number) | Span::Plain(number) if line.header => {
                if number > baseline && self.header_place(number).is_none() {
                    self.headers.push((number, place, self.placed));
                }
                self.open = Some(number);
                return;
            }
            Span::Build(number) | Span::Plain(number) => Some(number),
            Span::Update => self.open,
            Span::Serve(number) => {
                if number > serve_baseline {
                    let Some(&(latest, _, _)) = self.headers.last() else { return };
                    let (_, judged) = self.serves.entry(number).or_insert_with(|| (latest, Judged::default()));
                    judged.judge(step, line);
                }
                return;
            }
            Span::Container => {
                if let Some(&(latest, _, _)) = self.headers.last() {
                    let (_, judged) = self.container.get_or_insert_with(|| (latest, Judged::default()));
                    judged.judge(step, line);
                }
                return;
            }
        };
        let Some(build) = build.filter(|&number| number > baseline) else { return };
        self.builds.entry(build).or_default().judge(step, line);
        // Tilt writes a container's output for our build after our build's own lines: container
        // lines before this one came from the previous container.
        if !matches!(line.span, Span::Plain(_)) {
            self.container = None;
        }
    }
}

/// One trigger and the build it caused.
#[derive(Debug)]
struct Attempt {
    requested_at: WallTime,
    settled_at: Instant,
    /// Builds numbered up to here were known when we triggered: none of them is ours.
    baseline: u64,
    serve_baseline: u64,
    /// The runtime Tilt described when we triggered, and the container then.
    runtime_then: Runtime,
    container_then: Option<String>,
    /// Tilt's runtime status describes our build's service, not the one before.
    runtime_fresh: bool,
    lines: Lines,
    /// Builds Tilt says started before our trigger.
    rejected: HashSet<u64>,
    /// Tilt's word: the first build of the resource that started after our trigger.
    confirmed: Option<u64>,
    /// Our build's end, as Tilt recorded it (and when), and when we learnt it.
    finished: Option<(Result<(), String>, Instant)>,
    finished_at: Option<WallTime>,
    /// A re-check of the log taken after Tilt recorded our build's end has been judged.
    rechecked: bool,
    /// A re-check was asked and not answered yet.
    recheck_asked: bool,
    /// The last re-check did not reach back to our build's header: the next fetches it all.
    recheck_whole: bool,
    /// Lines the stream has yet to deliver that a re-check already judged.
    duplicates: usize,
    /// Our service failed: the log was fetched again to find the line that says why.
    failure_rechecked: bool,
}

/// What a look at the build being watched concludes.
#[derive(Debug)]
enum Look {
    Wait,
    /// `explains`: the re-check comes after our service failed, and will hold its last lines.
    Recheck {
        whole: bool,
        explains: bool,
    },
    Succeeded(String),
    Failed(Failure),
}

impl Attempt {
    /// The build we take for ours: Tilt's word if it has spoken, else the first header after
    /// the baseline that Tilt has not disowned.
    fn ours(&self, plain: bool) -> Option<u64> {
        if let (Some(confirmed), false) = (self.confirmed, plain) {
            return Some(confirmed);
        }
        self.lines.headers.iter().map(|(number, _, _)| *number).find(|number| !self.rejected.contains(number))
    }

    fn status(&mut self, status: &ResourceStatus, previous: Option<&ResourceStatus>, plain: bool, now: Instant) {
        let builds = status
            .current
            .iter()
            .map(|build| (build.number, build.start))
            .chain(status.finished.iter().map(|build| (build.number, build.start)));
        let mut first_after: Option<u64> = None;
        for (number, start) in builds {
            let Some(start) = start else { continue };
            if start < self.requested_at {
                if !plain {
                    cov_mark::hit!(started_before_the_trigger_is_not_ours);
                    self.rejected.insert(number);
                }
            } else if number > self.baseline || plain {
                first_after = Some(first_after.map_or(number, |first| first.min(number)));
            }
        }
        if let Some(first) = first_after {
            self.confirmed = Some(self.confirmed.map_or(first, |known| known.min(first)));
        }
        if self.finished.is_none() {
            if let Some(build) = self.confirmed.and_then(|number| status.finished_build(number)) {
                self.finished = Some((build.error.clone().map_or(Ok(()), Err), now));
                self.finished_at = build.finish;
            }
        }
        if !self.runtime_fresh {
            self.runtime_fresh = match (&self.runtime_then.instance, &status.runtime.instance) {
                (then, Some(now)) => then.as_ref() != Some(now),
                // Without an instance to tell them apart, a change Tilt reports after our
                // build's end is about our build's container.
                (_, None) => {
                    self.finished.is_some() && previous.is_some_and(|previous| previous.runtime != status.runtime)
                }
            };
        }
    }

    fn compose(&mut self, service: &ComposeService) {
        if service.container.is_some() && service.container != self.container_then {
            self.runtime_fresh = true;
        }
    }

    /// The log has delivered every line Tilt wrote for our build before it recorded its end.
    fn caught_up(&self, ours: u64) -> bool {
        let later_header = self.lines.headers.iter().any(|(number, _, _)| *number > ours);
        // Tilt starts a serve process only once the build has ended, and a successful update
        // command's output is all in by then (Tilt waits 250 ms after it before recording the
        // end). A failed command's last lines can come after Tilt's `Build Failed:` line: only
        // a re-check after a while tells.
        let serve_started = self.lines.serves.values().any(|(build, _)| *build == ours);
        self.rechecked || later_header || serve_started
    }

    fn ended(&self, plain: bool, catch_up: Duration, now: Instant) -> bool {
        let Some(ours) = self.ours(plain) else { return false };
        match &self.finished {
            Some((_, at)) => self.caught_up(ours) || now >= *at + catch_up,
            None => false,
        }
    }

    fn look(&self, step: &Step, seen: &Seen, catch_up: Duration, now: Instant) -> Look {
        let Some(ours) = self.ours(seen.plain) else { return Look::Wait };
        let confirmed = self.confirmed.is_some() && (seen.plain || self.confirmed == Some(ours));
        let own = self.lines.builds.get(&ours).cloned().unwrap_or_default();
        if let (Some(error), true) = (&own.error, confirmed) {
            return Look::Failed(error.clone());
        }
        let Some((result, finished_at)) = &self.finished else { return Look::Wait };
        let runtime = seen.status.as_ref().map(|status| &status.runtime);
        let compose = seen.compose.as_ref().filter(|service| service.container != self.container_then);
        let runtime_failure = match compose.filter(|service| service.down(step.stays_up())) {
            Some(service) => Some(service.why_down()),
            None => (self.runtime_fresh && runtime.is_some_and(|runtime| runtime.status == RuntimeStatus::Error))
                .then(|| "Tilt's runtime status: error".to_owned()),
        };
        let explains = runtime_failure.is_some();
        if !self.caught_up(ours) {
            if self.recheck_asked {
                return Look::Wait;
            }
            // A serve process started after a successful build comes on the log soon, and a
            // failed command's last lines may still be on their way: worth waiting for.
            let worth_waiting =
                result.is_err() || seen.status.as_ref().is_some_and(|status| status.runtime.instance.is_some());
            if worth_waiting && now < *finished_at + catch_up {
                return Look::Wait;
            }
            cov_mark::hit!(recheck_after_the_end);
            return Look::Recheck { whole: self.recheck_whole, explains };
        }
        if let Err(error) = result {
            // The command's own error says more than Tilt's `Build Failed:` line.
            if let Some(failure) = own.error.clone().or_else(|| own.tilt_error.clone()) {
                return Look::Failed(failure);
            }
            cov_mark::hit!(tilt_recorded_the_failure);
            return Look::Failed(Failure::TiltRecorded { error: error.clone() });
        }
        if explains && !self.failure_rechecked {
            // The service's last lines say why it failed: fetch them before deciding.
            cov_mark::hit!(a_failed_service_is_explained_by_its_last_lines);
            return Look::Recheck { whole: self.recheck_whole, explains };
        }
        if !self.runtime_fresh && runtime.is_some_and(|runtime| runtime.status == RuntimeStatus::Error) {
            cov_mark::hit!(a_stale_runtime_error_is_not_ours);
        }
        let mut runtime_lines = Judged::default();
        for (_, judged) in self.lines.serves.values().filter(|(build, _)| *build == ours) {
            runtime_lines.merge(judged.clone());
        }
        if let Some((_, judged)) = self.lines.container.as_ref().filter(|(build, _)| *build == ours) {
            runtime_lines.merge(judged.clone());
        }
        if let Some(error) = runtime_lines.error {
            return Look::Failed(error);
        }
        if let Some(detail) = runtime_failure {
            return Look::Failed(Failure::RuntimeFailed { detail });
        }
        if let Some(line) = own.success {
            return Look::Succeeded(line);
        }
        if let Some(&(later, _, _)) = self.lines.headers.iter().find(|(number, _, _)| *number > ours) {
            return Look::Failed(Failure::Superseded { by: later });
        }
        if let Some(line) = runtime_lines.success {
            return Look::Succeeded(line);
        }
        let health = compose.and_then(|service| service.health).or_else(|| {
            runtime.and_then(|runtime| runtime.health).filter(|_| self.runtime_fresh || seen.compose.is_none())
        });
        match (step.ready, health) {
            (Some(Ready::Healthy), Some(Health::Healthy)) if self.runtime_fresh => {
                Look::Succeeded("healthy (Tilt: the container's healthcheck passes)".to_owned())
            }
            (Some(Ready::Healthy), Some(Health::Unhealthy)) if self.runtime_fresh => Look::Failed(Failure::Unhealthy),
            (Some(Ready::Running), _)
                if self.runtime_fresh && runtime.is_some_and(|runtime| runtime.status == RuntimeStatus::Ok) =>
            {
                Look::Succeeded("running (Tilt: runtime status ok)".to_owned())
            }
            _ => Look::Wait,
        }
    }

    /// Judges the re-check: the resource's log as Tilt had it after our build's end, in Tilt's
    /// order. What it finds of our build joins what the stream delivered.
    fn judge_snapshot(&mut self, step: &Step, snapshot: &[LogLine], ours: u64) {
        let header = snapshot.iter().position(|line| line.header && line_build(line) == Some(ours));
        let mut lines = Lines::default();
        if header.is_none() {
            // Tilt no longer holds our build's header (its log store dropped old lines): all
            // that is left is judged as ours, which can only find more errors.
            lines.headers.push((ours, 0, 0));
            lines.open = Some(ours);
        }
        for (place, line) in snapshot.iter().enumerate() {
            lines.add(step, line, place + 1, ours - 1, self.serve_baseline);
        }
        // The stream will deliver again what the snapshot held beyond it: not judged twice.
        if header.is_some() {
            let placed_since = |lines: &Lines| {
                lines
                    .headers
                    .iter()
                    .find(|(number, _, _)| *number == ours)
                    .map_or(0, |(_, _, before)| lines.placed - before)
            };
            self.duplicates = placed_since(&lines).saturating_sub(placed_since(&self.lines));
        }
        // The snapshot holds our build's lines, and the container's after them, in full and in
        // Tilt's order: its reading replaces the stream's.
        self.lines.builds.insert(ours, lines.builds.remove(&ours).unwrap_or_default());
        self.lines.container = lines.container.filter(|(build, _)| *build == ours);
        for (number, (build, judged)) in lines.serves {
            let (_, known) = self.lines.serves.entry(number).or_insert_with(|| (build, Judged::default()));
            known.merge(judged);
        }
        self.rechecked = true;
    }
}

#[derive(Debug)]
enum Phase {
    /// The trigger is due at `at` (at once the first time; after a remediation, its wait).
    Waiting {
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
    Done,
}

pub struct Machine<'s> {
    step: &'s Step,
    timing: Timing,
    deadline: Instant,
    seen: Seen,
    phase: Phase,
    used: HashSet<KindId>,
    /// Remediations run, in order (indices into the step's).
    remediated: Vec<usize>,
    tail: VecDeque<String>,
}

impl<'s> Machine<'s> {
    /// `seen`: what the run knows of the resource so far.
    pub fn new(step: &'s Step, timing: Timing, seen: Seen, now: Instant) -> Machine<'s> {
        Machine {
            step,
            timing,
            deadline: now + timing.timeout,
            seen,
            phase: Phase::Waiting { at: now },
            used: HashSet::new(),
            remediated: Vec::new(),
            tail: VecDeque::new(),
        }
    }

    /// The last lines of the resource's log since our trigger, for the report.
    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    /// The remediations run, in order (indices into the step's).
    pub fn remediations(&self) -> &[usize] {
        &self.remediated
    }

    /// Whether this error kind's remediation has run (the report says so).
    pub fn remediated_kind(&self, kind: KindId) -> bool {
        self.used.contains(&kind)
    }

    /// When, after `now`, the machine wants a `Tick` at the latest.
    pub fn wake_at(&self, now: Instant) -> Option<Instant> {
        let due = match &self.phase {
            Phase::Waiting { at } => Some((*at).min(self.deadline)),
            Phase::Triggering | Phase::Remediating | Phase::Done => None,
            Phase::Watching(attempt) => {
                let caught_up = attempt.ours(self.seen.plain).is_some_and(|ours| attempt.caught_up(ours));
                let catch_up =
                    attempt.finished.as_ref().filter(|_| !caught_up).map(|(_, at)| *at + self.timing.catch_up);
                let settle = Some(attempt.settled_at).filter(|settled| *settled > now);
                let catch_up = catch_up.filter(|due| *due > now);
                [Some(self.deadline), catch_up, settle].into_iter().flatten().min()
            }
            Phase::Capturing { attempt, until, .. } => {
                let catch_up = attempt.finished.as_ref().map(|(_, at)| *at + self.timing.catch_up);
                [Some(*until), catch_up].into_iter().flatten().min()
            }
        };
        due.filter(|due| *due > now)
    }

    /// Whether a line belongs in the step's log: the resource's lines since our trigger, but
    /// those of builds that were known then.
    pub fn keeps(&self, line: &LogLine) -> bool {
        let (Phase::Watching(attempt) | Phase::Capturing { attempt, .. }) = &self.phase else { return false };
        match line.span {
            Span::Build(number) | Span::Plain(number) => number > attempt.baseline,
            Span::Update => attempt.lines.open.is_some_and(|open| open > attempt.baseline),
            Span::Serve(number) => number > attempt.serve_baseline,
            Span::Container => !attempt.lines.headers.is_empty(),
        }
    }

    pub fn on(&mut self, input: Input, now: Instant) -> Vec<Action> {
        match input {
            Input::Line(line) => self.line(&line),
            Input::Status(status) => self.status(&status, now),
            Input::Compose(service) => {
                self.seen.compose(&service);
                if let Some(attempt) = self.attempt_mut() {
                    attempt.compose(&service);
                }
            }
            Input::Triggered { at } => self.triggered(at, now),
            Input::Snapshot(lines) => self.snapshot(&lines),
            Input::Remediated(Ok(())) => {
                let wait = self.remediated.last().map_or(Duration::ZERO, |&index| self.step.remediations[index].wait.0);
                self.phase = Phase::Waiting { at: now + wait };
            }
            Input::Remediated(Err(why)) => return self.decide(Decision::Failed(Failure::RemediationFailed(why))),
            Input::Blocked { dependency, error } => {
                let waiting = match &self.phase {
                    Phase::Watching(attempt) => attempt.ours(self.seen.plain).is_none(),
                    _ => false,
                };
                if waiting {
                    cov_mark::hit!(a_build_held_for_a_failed_dependency_fails_at_once);
                    return self.decide(Decision::Failed(Failure::Blocked { dependency, error }));
                }
            }
            Input::Tick => {}
            Input::Ended(failure) => {
                if matches!(self.phase, Phase::Done) {
                    return Vec::new();
                }
                if let Phase::Capturing { failure, .. } = &self.phase {
                    // Decided already: Tilt going away or Ctrl-C only cut the saved log short.
                    let failure = failure.clone();
                    return self.decide(Decision::Failed(failure));
                }
                return self.decide(Decision::Failed(failure));
            }
        }
        self.advance(now)
    }

    fn attempt_mut(&mut self) -> Option<&mut Attempt> {
        match &mut self.phase {
            Phase::Watching(attempt) | Phase::Capturing { attempt, .. } => Some(attempt),
            _ => None,
        }
    }

    fn decide(&mut self, decision: Decision) -> Vec<Action> {
        self.phase = Phase::Done;
        vec![Action::Decided(decision)]
    }

    fn line(&mut self, line: &LogLine) {
        let place = self.seen.line(line);
        if self.keeps(line) && !line.header {
            if self.tail.len() == self.timing.tail_lines {
                self.tail.pop_front();
            }
            self.tail.push_back(line.text.clone());
        }
        let step = self.step;
        if let Some(attempt) = self.attempt_mut() {
            if attempt.duplicates > 0 && !line.header {
                cov_mark::hit!(a_line_the_recheck_judged_is_not_judged_again);
                attempt.duplicates -= 1;
                return;
            }
            let (baseline, serve_baseline) = (attempt.baseline, attempt.serve_baseline);
            attempt.lines.add(step, line, place, baseline, serve_baseline);
        }
    }

    fn status(&mut self, status: &ResourceStatus, now: Instant) {
        let previous = self.seen.status(status);
        let plain = self.seen.plain;
        if let Some(attempt) = self.attempt_mut() {
            attempt.status(status, previous.as_ref(), plain, now);
        }
    }

    fn triggered(&mut self, at: WallTime, now: Instant) {
        let status = self.seen.status.clone().unwrap_or_default();
        // The status may know of a build whose header the log has not delivered yet; without
        // spans its numbers are not the log's.
        let status_newest = if self.seen.plain { 0 } else { status.newest_build() };
        let attempt = Attempt {
            requested_at: at,
            settled_at: now + self.timing.settle,
            baseline: self.seen.header.max(status_newest),
            serve_baseline: self.seen.serve,
            runtime_then: status.runtime.clone(),
            container_then: self.seen.compose.as_ref().and_then(|service| service.container.clone()),
            runtime_fresh: false,
            lines: Lines::default(),
            rejected: HashSet::new(),
            confirmed: None,
            finished: None,
            finished_at: None,
            rechecked: false,
            recheck_asked: false,
            recheck_whole: false,
            duplicates: 0,
            failure_rechecked: false,
        };
        self.phase = Phase::Watching(Box::new(attempt));
    }

    fn snapshot(&mut self, snapshot: &[LogLine]) {
        let step = self.step;
        let plain = self.seen.plain;
        let Some(attempt) = self.attempt_mut() else { return };
        let Some(ours) = attempt.ours(plain) else { return };
        attempt.recheck_asked = false;
        let has_header = snapshot.iter().any(|line| line.header && line_build(line) == Some(ours));
        if !has_header && !attempt.recheck_whole {
            cov_mark::hit!(a_short_recheck_fetches_the_whole_log);
            attempt.recheck_whole = true;
            return;
        }
        attempt.judge_snapshot(step, snapshot, ours);
    }

    /// Moves on as far as what is known allows.
    fn advance(&mut self, now: Instant) -> Vec<Action> {
        match &mut self.phase {
            Phase::Waiting { .. } if now >= self.deadline => self.decide(Decision::Failed(Failure::Timeout)),
            Phase::Waiting { at } if now >= *at => {
                self.phase = Phase::Triggering;
                vec![Action::Trigger]
            }
            Phase::Watching(_) => self.watch(now),
            Phase::Capturing { attempt, until, .. } => {
                if now >= *until || attempt.ended(self.seen.plain, self.timing.catch_up, now) {
                    let Phase::Capturing { failure, .. } = std::mem::replace(&mut self.phase, Phase::Done) else {
                        unreachable!("matched above")
                    };
                    return self.after_failure(failure);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn watch(&mut self, now: Instant) -> Vec<Action> {
        let Phase::Watching(attempt) = &mut self.phase else { return Vec::new() };
        let look = attempt.look(self.step, &self.seen, self.timing.catch_up, now);
        let settled = now >= attempt.settled_at;
        match look {
            Look::Recheck { whole, explains } => {
                attempt.recheck_asked = true;
                attempt.failure_rechecked |= explains;
                // Our build's header and every line since, and a margin for what is still coming.
                let since_header =
                    attempt.lines.headers.first().map_or(self.seen.lines, |(_, place, _)| self.seen.lines - place + 1);
                let tail = (!whole).then_some(since_header + RECHECK_MARGIN);
                vec![Action::Recheck { tail }]
            }
            Look::Wait if now >= self.deadline => {
                let failure = match attempt.lines.builds.values().any(|judged| judged.success.is_some()) {
                    true => Failure::Uncertain(format!(
                        "{} printed its success line, but Tilt never recorded its build finished",
                        self.step.resource
                    )),
                    false => Failure::Timeout,
                };
                self.decide(Decision::Failed(failure))
            }
            Look::Wait => Vec::new(),
            // The seed protocol's fixed wait: nothing is decided before it ends.
            _ if !settled => Vec::new(),
            Look::Succeeded(line) => {
                let guard = Guard {
                    resource: self.step.resource.clone(),
                    confirm_until: now + self.timing.confirm,
                    serve_baseline: attempt.serve_baseline,
                    runtime_then: attempt.runtime_then.clone(),
                    container_then: attempt.container_then.clone(),
                    runtime_fresh: attempt.runtime_fresh,
                    explanation: None,
                    recent: Recent::default(),
                };
                let build = BuildId { number: attempt.confirmed.unwrap_or_default(), finished: attempt.finished_at };
                self.decide(Decision::Succeeded { line, build, guard: Box::new(guard) })
            }
            Look::Failed(failure) => {
                if attempt.ended(self.seen.plain, self.timing.catch_up, now) {
                    self.phase = Phase::Done;
                    return self.after_failure(failure);
                }
                cov_mark::hit!(capture_goes_on_after_the_error);
                let Phase::Watching(attempt) = std::mem::replace(&mut self.phase, Phase::Done) else {
                    unreachable!("matched above")
                };
                self.phase = Phase::Capturing { attempt, failure, until: now + self.timing.after_error };
                Vec::new()
            }
        }
    }

    /// The failure's remediation, if the step has one for its kind and has not used it yet.
    fn after_failure(&mut self, failure: Failure) -> Vec<Action> {
        if let Failure::Error { kind, .. } = &failure {
            let remediation = self.step.remediations.iter().position(|remediation| remediation.on == *kind);
            if let Some(index) = remediation.filter(|_| !self.used.contains(kind)) {
                cov_mark::hit!(remediation_once_per_kind);
                self.used.insert(*kind);
                self.remediated.push(index);
                self.phase = Phase::Remediating;
                return vec![Action::Remediate(index)];
            }
        }
        self.decide(Decision::Failed(failure))
    }
}

/// How Tilt's line at the end of a failed build begins.
const TILT_BUILD_FAILED: &str = "Build Failed:";

/// How many lines beyond those already seen a re-check fetches, so that it reaches back to
/// our build's header.
const RECHECK_MARGIN: usize = 1000;

fn line_build(line: &LogLine) -> Option<u64> {
    match line.span {
        Span::Build(number) | Span::Plain(number) => Some(number),
        _ => None,
    }
}

/// Keeps watching a resource whose step passed, until the run ends: its service must stay up.
/// During the step's confirm time an error line of its service fails the run too (a crash
/// right after start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub resource: String,
    pub confirm_until: Instant,
    serve_baseline: u64,
    runtime_then: Runtime,
    container_then: Option<String>,
    runtime_fresh: bool,
    /// The first error line its service printed after the confirm time: not a failure by
    /// itself, but what explains one if the service then stops.
    explanation: Option<Failure>,
    /// Its service's last lines, which the next may continue (`continued_error`).
    recent: Recent,
}

impl Guard {
    /// The failure the input reveals, if any.
    pub fn on(&mut self, step: &Step, input: &Input, now: Instant) -> Option<Failure> {
        match input {
            Input::Line(line) if self.is_runtime(line) => {
                let mut judged = Judged { recent: std::mem::take(&mut self.recent), ..Judged::default() };
                judged.judge(step, line);
                self.recent = std::mem::take(&mut judged.recent);
                let error = judged.error?;
                if now < self.confirm_until {
                    return Some(error);
                }
                self.explanation.get_or_insert(error);
                None
            }
            Input::Status(status) => {
                if let (then, Some(instance)) = (&self.runtime_then.instance, &status.runtime.instance) {
                    self.runtime_fresh |= then.as_ref() != Some(instance);
                } else if status.runtime != self.runtime_then {
                    self.runtime_fresh = true;
                }
                (self.runtime_fresh && status.runtime.status == RuntimeStatus::Error).then(|| {
                    self.explained(Failure::RuntimeFailed { detail: "Tilt's runtime status: error".to_owned() })
                })
            }
            Input::Compose(service) if service.container != self.container_then && service.down(step.stays_up()) => {
                Some(self.explained(Failure::RuntimeFailed { detail: service.why_down() }))
            }
            // It may have passed on its success line while its healthcheck was still starting.
            Input::Compose(service)
                if service.container != self.container_then
                    && step.ready == Some(Ready::Healthy)
                    && service.health == Some(Health::Unhealthy) =>
            {
                cov_mark::hit!(a_service_turning_unhealthy_after_it_passed_fails_the_run);
                Some(Failure::Unhealthy)
            }
            _ => None,
        }
    }

    fn is_runtime(&self, line: &LogLine) -> bool {
        match line.span {
            Span::Serve(number) => number > self.serve_baseline,
            Span::Container => true,
            _ => false,
        }
    }

    fn explained(&self, failure: Failure) -> Failure {
        self.explanation.clone().unwrap_or(failure)
    }

    /// The service stopped (`failure`, Tilt's word) before the log said why: the resource's
    /// log as Tilt has it now may. Its service's first error line after its build explains it.
    pub fn explain(&self, step: &Step, snapshot: &[LogLine], failure: Failure) -> Failure {
        if !matches!(failure, Failure::RuntimeFailed { .. }) {
            return failure;
        }
        let build_end = snapshot.iter().rposition(|line| matches!(line.span, Span::Build(_) | Span::Update));
        let after_build = &snapshot[build_end.map_or(0, |end| end + 1)..];
        let error = after_build.iter().filter(|line| self.is_runtime(line)).find_map(|line| {
            let mut judged = Judged::default();
            judged.judge(step, line);
            judged.error
        });
        match error {
            Some(error) => {
                cov_mark::hit!(a_stopped_service_is_explained_by_its_log);
                error
            }
            None => failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        protocol::Protocol,
        tilt::model::{BuildRecord, FinishedBuild, ResourceKind},
    };

    /// A machine on a fake clock: `ms` since the harness began, on both clocks.
    struct Harness<'s> {
        machine: Machine<'s>,
        start: Instant,
        wall: WallTime,
        ms: u64,
        resource: String,
    }

    const RUNNING: &str = "Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`";
    const WASM_DONE: &str = "[INFO] WASM client synchronization complete!";

    fn timing() -> Timing {
        Timing {
            timeout: Duration::from_secs(60),
            settle: Duration::ZERO,
            catch_up: Duration::from_millis(400),
            after_error: Duration::from_secs(2),
            confirm: Duration::from_secs(2),
            tail_lines: 100,
        }
    }

    /// What the run saw of the resource before the step began.
    fn before(inputs: &[Input]) -> Seen {
        let mut seen = Seen::default();
        for input in inputs {
            match input {
                Input::Line(line) => {
                    seen.line(line);
                }
                Input::Status(status) => {
                    seen.status(status);
                }
                Input::Compose(service) => seen.compose(service),
                _ => unreachable!("only what Tilt says comes before a step"),
            }
        }
        seen
    }

    fn line_of(resource: &str, span: Span, header: bool, text: &str) -> Input {
        Input::Line(LogLine { resource: resource.to_owned(), span, header, text: text.to_owned() })
    }

    impl<'s> Harness<'s> {
        fn new(step: &'s Step, timing: Timing) -> Harness<'s> {
            Harness::after(step, timing, &[])
        }

        /// A step begun after the run saw `inputs`.
        fn after(step: &'s Step, timing: Timing, inputs: &[Input]) -> Harness<'s> {
            let start = Instant::now();
            Harness {
                machine: Machine::new(step, timing, before(inputs), start),
                start,
                wall: WallTime::from_unix_timestamp(1_800_000_000).unwrap(),
                ms: 0,
                resource: step.resource.clone(),
            }
        }

        fn now(&self) -> Instant {
            self.start + Duration::from_millis(self.ms)
        }

        fn wall_at(&self, ms: u64) -> WallTime {
            self.wall + Duration::from_millis(ms)
        }

        fn feed(&mut self, input: Input) -> Vec<Action> {
            let now = self.now();
            self.machine.on(input, now)
        }

        fn at(&mut self, ms: u64) -> &mut Self {
            self.ms = ms;
            self
        }

        /// Feeds a Tick and expects the trigger, then says it was triggered now.
        fn trigger(&mut self) -> Vec<Action> {
            assert_eq!(self.feed(Input::Tick), [Action::Trigger]);
            let at = self.wall_at(self.ms);
            self.feed(Input::Triggered { at })
        }

        fn line(&mut self, span: Span, text: &str) -> Vec<Action> {
            let line = LogLine { resource: self.resource.clone(), span, header: false, text: text.to_owned() };
            self.feed(Input::Line(line))
        }

        fn header(&mut self, build: u64) -> Vec<Action> {
            let resource = self.resource.clone();
            let mut actions = Vec::new();
            for text in ["", "CLI Trigger"] {
                let line = LogLine {
                    resource: resource.clone(),
                    span: Span::Build(build),
                    header: true,
                    text: text.to_owned(),
                };
                actions = self.feed(Input::Line(line));
            }
            actions
        }

        fn status(&mut self, status: ResourceStatus) -> Vec<Action> {
            self.feed(Input::Status(status))
        }
    }

    /// Tilt's status: `running` (number, start ms), `finished` (number, start ms, error).
    fn status(running: Option<(u64, u64)>, finished: &[(u64, u64, Option<&str>)], runtime: Runtime) -> ResourceStatus {
        let wall = |ms: u64| Some(WallTime::from_unix_timestamp(1_800_000_000).unwrap() + Duration::from_millis(ms));
        ResourceStatus {
            name: String::new(),
            kind: ResourceKind::Local,
            current: running.map(|(number, start)| BuildRecord { number, start: wall(start) }),
            finished: finished
                .iter()
                .map(|&(number, start, error)| FinishedBuild {
                    number,
                    start: wall(start),
                    finish: wall(start + 10),
                    error: error.map(str::to_owned),
                })
                .collect(),
            queued: false,
            runtime,
            waiting_on: Vec::new(),
        }
    }

    fn serving(pid: u64, status: RuntimeStatus) -> Runtime {
        Runtime { status, instance: Some(pid.to_string()), health: None }
    }

    fn decided(actions: &[Action]) -> Option<&Decision> {
        actions.iter().find_map(|action| match action {
            Action::Decided(decision) => Some(decision),
            _ => None,
        })
    }

    fn succeeded_with(actions: &[Action]) -> Option<&str> {
        match decided(actions) {
            Some(Decision::Succeeded { line, .. }) => Some(line),
            _ => None,
        }
    }

    fn error_line(actions: &[Action]) -> Option<&str> {
        match decided(actions) {
            Some(Decision::Failed(Failure::Error { line, .. })) => Some(line),
            _ => None,
        }
    }

    fn snapshot(resource: &str, lines: &[(Span, bool, &str)]) -> Input {
        Input::Snapshot(
            lines
                .iter()
                .map(|&(span, header, text)| LogLine {
                    resource: resource.to_owned(),
                    span,
                    header,
                    text: text.to_owned(),
                })
                .collect(),
        )
    }

    #[test]
    fn an_update_commands_success_line_counts_once_tilt_recorded_the_end_and_the_log_caught_up() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("sync-wasm-client").unwrap();
        let mut h = Harness::after(step, timing(), &[Input::Status(status(None, &[(4, 0, None)], Runtime::default()))]);
        h.at(100).trigger();
        h.at(150).header(5);
        h.line(Span::Update, "Running cmd: ./wasm.sh");
        assert!(h.line(Span::Update, WASM_DONE).is_empty(), "not before Tilt says the build ended");
        cov_mark::check!(recheck_after_the_end);
        let actions = h.at(400).status(status(None, &[(5, 150, None), (4, 0, None)], Runtime::default()));
        assert_eq!(actions, [Action::Recheck { tail: Some(1004) }], "no later line will prove the log caught up");
        let done =
            snapshot("sync-wasm-client", &[(Span::Build(5), true, "CLI Trigger"), (Span::Update, false, WASM_DONE)]);
        assert_eq!(succeeded_with(&h.feed(done)), Some(WASM_DONE));
    }

    #[test]
    fn a_line_the_stream_had_not_delivered_when_tilt_recorded_the_end_still_fails_the_step() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("sync-wasm-client").unwrap();
        let mut h = Harness::new(step, timing());
        h.trigger();
        h.at(50).header(5);
        h.line(Span::Update, "[INFO] Verifying synchronization...");
        h.at(300).status(status(None, &[(5, 50, None)], Runtime::default()));
        let mut late: Vec<(Span, bool, &str)> = vec![(Span::Build(5), true, "CLI Trigger")];
        late.push((Span::Update, false, "\u{1b}[0;31m[ERROR]\u{1b}[0m ❌ WASM files are NOT synchronized!"));
        late.extend(std::iter::repeat_n((Span::Update, false, "[INFO] copying"), 150));
        late.push((Span::Update, false, WASM_DONE));
        let actions = h.feed(snapshot("sync-wasm-client", &late));
        assert!(error_line(&actions).is_some_and(|line| line.contains("NOT synchronized")), "{actions:?}");
    }

    #[test]
    fn an_update_commands_error_decides_and_gets_its_remediation_after_the_build_ends() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("sync-wasm-client").unwrap();
        let mut h = Harness::new(step, timing());
        h.trigger();
        h.at(50).header(7);
        h.status(status(Some((7, 50)), &[], Runtime::default()));
        cov_mark::check!(capture_goes_on_after_the_error);
        assert!(h.line(Span::Update, "error TS2688: Cannot find type definition file for 'node'.").is_empty());
        assert!(h.line(Span::Update, "  more of tsc's message").is_empty(), "the rest of the build is still kept");
        h.at(300).status(status(
            None,
            &[(7, 50, Some("Command \"./wasm.sh\" failed: exit status 1"))],
            Runtime::default(),
        ));
        assert!(h.at(320).line(Span::Build(7), "Build Failed: Command \"./wasm.sh\" failed: exit status 1").is_empty());
        assert_eq!(h.machine.wake_at(h.now()), Some(h.start + Duration::from_millis(700)), "stragglers may follow");
        let actions = h.at(700).feed(Input::Tick);
        assert_eq!(actions, [Action::Remediate(0)], "TS2688 decided, not the later `Build Failed`");
        assert_eq!(h.machine.tail().len(), 3);
        // The remediation ran: its wait, then a new trigger and a new build.
        assert!(h.at(1000).feed(Input::Remediated(Ok(()))).is_empty());
        assert_eq!(h.machine.wake_at(h.now()), Some(h.start + Duration::from_millis(11_000)));
        assert_eq!(h.at(11_000).feed(Input::Tick), [Action::Trigger]);
        let at = h.wall_at(11_000);
        h.feed(Input::Triggered { at });
        h.at(11_100).header(8);
        h.status(status(Some((8, 11_100)), &[(7, 50, Some("x"))], Runtime::default()));
        h.line(Span::Update, "error TS2688: Cannot find type definition file for 'node'.");
        h.status(status(None, &[(8, 11_100, Some("exit status 1")), (7, 50, Some("x"))], Runtime::default()));
        h.line(Span::Build(8), "Build Failed: exit status 1");
        let actions = h.at(11_500).feed(Input::Tick);
        assert!(
            error_line(&actions).is_some_and(|line| line.starts_with("error TS2688")),
            "once per kind: {actions:?}"
        );
    }

    #[test]
    fn a_failed_commands_error_arriving_after_tilts_build_failed_line_still_decides() {
        // Seen on the real Tilt under load: `Build Failed:` first, the command's lines after.
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("sync-wasm-client").unwrap();
        let mut h = Harness::new(step, timing());
        h.trigger();
        h.at(50).header(7);
        h.line(Span::Update, "Running cmd: ./wasm.sh");
        h.at(300).status(status(
            None,
            &[(7, 50, Some("Command \"./wasm.sh\" failed: exit status 1"))],
            Runtime::default(),
        ));
        assert!(h.line(Span::Build(7), "Build Failed: Command \"./wasm.sh\" failed: exit status 1").is_empty());
        assert!(h.at(350).line(Span::Update, "error TS2688: Cannot find type definition file for 'node'.").is_empty());
        assert_eq!(h.at(700).feed(Input::Tick), [Action::Remediate(0)]);
    }

    #[test]
    fn a_build_tilt_says_started_before_our_trigger_is_not_ours() {
        // The real Tilt: build 342 was running when we triggered; the status had not shown it
        // yet, so its header came after our trigger. It printed the success line; ours failed.
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let before = [Input::Status(status(None, &[(341, 0, None)], serving(10, RuntimeStatus::Ok)))];
        let mut h = Harness::after(step, timing(), &before);
        h.at(1_000).trigger();
        h.at(1_050).header(342);
        h.line(Span::Update, "   Compiling citadel-workspace-server-kernel");
        cov_mark::check!(started_before_the_trigger_is_not_ours);
        h.status(status(Some((342, 900)), &[(341, 0, None)], serving(10, RuntimeStatus::Ok)));
        h.at(1_200).status(status(None, &[(342, 900, None), (341, 0, None)], serving(10, RuntimeStatus::Ok)));
        h.line(Span::Serve(3), "Running cmd: ./serve.sh");
        assert!(h.line(Span::Serve(3), RUNNING).is_empty(), "342's server is not ours");
        h.at(1_300).header(343);
        h.status(status(Some((343, 1_300)), &[(342, 900, None)], serving(11, RuntimeStatus::Ok)));
        let actions = h.line(Span::Update, "error[E0425]: cannot find value `x` in this scope");
        assert!(actions.is_empty(), "capturing the rest");
        h.status(status(
            None,
            &[(343, 1_300, Some("exit status 101")), (342, 900, None)],
            serving(11, RuntimeStatus::Ok),
        ));
        h.at(1_500).line(Span::Build(343), "Build Failed: exit status 101");
        let actions = h.at(1_900).feed(Input::Tick);
        assert!(error_line(&actions).is_some_and(|line| line.starts_with("error[E0425]")), "{actions:?}");
    }

    #[test]
    fn our_serve_process_proves_the_log_caught_up_and_a_stale_runtime_error_is_not_ours() {
        // The fixed server after a crash: Tilt still says error (the crashed process) for a while.
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let crashed = serving(2956, RuntimeStatus::Error);
        let before = [
            Input::Status(status(None, &[(4, 0, None)], crashed.clone())),
            line_of("server", Span::Serve(3), false, "thread 'main' panicked at src/main.rs:1:1"),
        ];
        let mut h = Harness::after(step, timing(), &before);
        h.at(1_000).trigger();
        h.at(1_050).header(5);
        h.line(Span::Update, "   Compiling server");
        assert!(h.at(1_600).status(status(None, &[(5, 1_050, None), (4, 0, None)], crashed.clone())).is_empty());
        h.line(Span::Serve(4), "Running cmd: ./serve.sh server");
        cov_mark::check!(a_stale_runtime_error_is_not_ours);
        let actions = h.line(Span::Serve(4), RUNNING);
        assert_eq!(succeeded_with(&actions), Some(RUNNING), "no re-check needed: {actions:?}");
    }

    #[test]
    fn an_error_line_tilt_sends_in_two_records_still_fails_the_step() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let mut h = Harness::after(step, timing(), &[Input::Status(status(None, &[(4, 0, None)], Runtime::default()))]);
        h.trigger();
        h.header(5);
        cov_mark::check!(an_error_split_across_two_records_is_found);
        h.line(Span::Update, "err");
        h.line(Span::Update, "or: could not compile `x`");
        h.line(Span::Update, "    Finished");
        let mut actions = h.at(400).status(status(None, &[(5, 0, None)], serving(10, RuntimeStatus::Ok)));
        actions.extend(h.line(Span::Serve(3), "Running cmd: ./serve.sh"));
        let Some(Decision::Failed(Failure::Error { line, .. })) = decided(&actions) else { panic!("{actions:?}") };
        assert_eq!(line, "error: could not compile `x`");

        // Nor does a split success line pass, nor two whole lines make an error.
        let mut h = Harness::after(step, timing(), &[Input::Status(status(None, &[(4, 0, None)], Runtime::default()))]);
        h.trigger();
        h.header(5);
        h.line(Span::Update, "warning: unused variable: `err");
        h.line(Span::Update, "or`");
        h.at(400).status(status(None, &[(5, 0, None)], serving(10, RuntimeStatus::Ok)));
        h.line(Span::Serve(3), "Running `target/debug/");
        let actions =
            h.at(450).line(Span::Serve(3), "citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`");
        assert_eq!(decided(&actions), None, "{actions:?}");
    }

    #[test]
    fn a_build_held_for_a_failed_dependency_fails_at_once_and_a_started_one_goes_on() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let blocked =
            || Input::Blocked { dependency: "sync-wasm-client".to_owned(), error: "exit status 1".to_owned() };
        let mut h = Harness::after(step, timing(), &[Input::Status(status(None, &[(4, 0, None)], Runtime::default()))]);
        h.trigger();
        cov_mark::check!(a_build_held_for_a_failed_dependency_fails_at_once);
        let actions = h.feed(blocked());
        let Some(Decision::Failed(Failure::Blocked { dependency, .. })) = decided(&actions) else {
            panic!("{actions:?}")
        };
        assert_eq!(dependency, "sync-wasm-client");

        let mut h = Harness::after(step, timing(), &[Input::Status(status(None, &[(4, 0, None)], Runtime::default()))]);
        h.trigger();
        h.header(5);
        assert_eq!(decided(&h.feed(blocked())), None, "our build started: Tilt holds it no longer");
    }

    #[test]
    fn our_service_crashing_fails_the_step_and_the_previous_ones_output_does_not() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let before = [
            Input::Status(status(None, &[(4, 0, None)], serving(10, RuntimeStatus::Ok))),
            line_of("server", Span::Serve(2), false, "Running cmd: ./serve.sh"),
        ];
        let mut h = Harness::after(step, timing(), &before);
        h.at(100).trigger();
        h.header(5);
        // The previous process still serves while we build: its errors are not ours.
        h.line(Span::Serve(2), "error: connection reset by peer");
        h.at(400).status(status(None, &[(5, 100, None)], serving(10, RuntimeStatus::Ok)));
        h.line(Span::Serve(3), "Running cmd: ./serve.sh");
        cov_mark::check!(a_failed_service_is_explained_by_its_last_lines);
        let actions = h.at(450).status(status(None, &[(5, 100, None)], serving(11, RuntimeStatus::Error)));
        assert!(matches!(actions[..], [Action::Recheck { .. }]), "its last lines say why: {actions:?}");
        let snap =
            snapshot("server", &[(Span::Build(5), true, ""), (Span::Serve(3), false, "Running cmd: ./serve.sh")]);
        let actions = h.feed(snap);
        assert!(matches!(decided(&actions), Some(Decision::Failed(Failure::RuntimeFailed { .. }))), "{actions:?}");
    }

    #[test]
    fn a_short_recheck_fetches_the_whole_log_and_a_success_waits_for_the_settle_time() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("sync-wasm-client").unwrap();
        let mut h = Harness::new(step, Timing { settle: Duration::from_secs(5), ..timing() });
        h.trigger();
        h.header(5);
        h.line(Span::Update, WASM_DONE);
        assert!(matches!(
            h.at(200).status(status(None, &[(5, 0, None)], Runtime::default()))[..],
            [Action::Recheck { .. }]
        ));
        cov_mark::check!(a_short_recheck_fetches_the_whole_log);
        let cut = snapshot("sync-wasm-client", &[(Span::Update, false, WASM_DONE)]);
        assert_eq!(h.feed(cut), [Action::Recheck { tail: None }]);
        let whole = snapshot("sync-wasm-client", &[(Span::Build(5), true, ""), (Span::Update, false, WASM_DONE)]);
        assert!(h.feed(whole).is_empty(), "the seed's settle time holds the verdict");
        assert_eq!(h.machine.wake_at(h.now()), Some(h.start + Duration::from_secs(5)));
        assert_eq!(succeeded_with(&h.at(5_000).feed(Input::Tick)), Some(WASM_DONE));
    }

    #[test]
    fn no_success_within_the_timeout_fails_and_a_later_build_is_uncertain() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let mut h = Harness::new(step, Timing { timeout: Duration::from_secs(3), ..timing() });
        h.trigger();
        h.header(5);
        assert_eq!(h.machine.wake_at(h.now()), Some(h.start + Duration::from_secs(3)));
        assert_eq!(decided(&h.at(3_000).feed(Input::Tick)), Some(&Decision::Failed(Failure::Timeout)));

        let mut h = Harness::new(step, timing());
        h.trigger();
        h.header(5);
        h.header(6);
        let actions = h.status(status(Some((6, 20)), &[(5, 0, None)], Runtime::default()));
        assert_eq!(decided(&actions), Some(&Decision::Failed(Failure::Superseded { by: 6 })));
    }

    #[test]
    fn tilt_recording_a_failure_fails_the_step_without_any_matching_line() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let mut h = Harness::new(step, timing());
        h.trigger();
        h.header(5);
        h.line(Span::Update, "   Compiling");
        h.status(status(None, &[(5, 0, Some("exit status 101"))], Runtime::default()));
        assert!(h.machine.wake_at(h.now()).is_some_and(|at| at == h.start + Duration::from_millis(400)));
        cov_mark::check!(tilt_recorded_the_failure);
        let actions = h.at(400).feed(Input::Tick);
        assert_eq!(actions, [Action::Recheck { tail: Some(1003) }], "no `Build Failed` line came: ask");
        let actions = h.feed(snapshot("server", &[(Span::Build(5), true, ""), (Span::Update, false, "   Compiling")]));
        assert_eq!(
            decided(&actions),
            Some(&Decision::Failed(Failure::TiltRecorded { error: "exit status 101".to_owned() }))
        );
    }

    #[test]
    fn a_healthy_new_container_passes_and_an_unhealthy_one_fails() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        for (health, passes) in [(Health::Healthy, true), (Health::Unhealthy, false)] {
            let old = ComposeService {
                name: "server".to_owned(),
                container: Some("old".to_owned()),
                ..ComposeService::default()
            };
            let mut h = Harness::after(step, timing(), &[Input::Compose(old)]);
            h.trigger();
            h.header(5);
            h.line(Span::Build(5), "Container citadel-server Recreated");
            let mut new = ComposeService {
                name: "server".to_owned(),
                container: Some("new".to_owned()),
                ..ComposeService::default()
            };
            new.health = Some(Health::Starting);
            h.feed(Input::Compose(new.clone()));
            let mut compose_status =
                status(None, &[(5, 0, None)], Runtime { status: RuntimeStatus::Ok, instance: None, health: None });
            compose_status.kind = ResourceKind::Compose;
            let actions = h.status(compose_status);
            let snap = snapshot(
                "server",
                &[(Span::Build(5), true, ""), (Span::Build(5), false, "Container citadel-server Recreated")],
            );
            assert_eq!(actions, [Action::Recheck { tail: Some(1003) }]);
            assert!(h.feed(snap).is_empty(), "starting is not healthy yet");
            new.health = Some(health);
            let actions = h.feed(Input::Compose(new));
            match passes {
                true => {
                    assert!(succeeded_with(&actions).is_some_and(|line| line.starts_with("healthy")), "{actions:?}")
                }
                false => assert_eq!(decided(&actions), Some(&Decision::Failed(Failure::Unhealthy))),
            }
        }
    }

    #[test]
    fn a_container_that_passed_on_its_line_while_starting_fails_the_run_once_unhealthy() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let container = |id: &str, health| ComposeService {
            name: "server".to_owned(),
            container: Some(id.to_owned()),
            health,
            ..ComposeService::default()
        };
        let mut h = Harness::after(step, timing(), &[Input::Compose(container("old", Some(Health::Healthy)))]);
        h.trigger();
        h.header(5);
        h.line(Span::Build(5), "Container citadel-server Recreated");
        h.feed(Input::Compose(container("new", Some(Health::Starting))));
        let mut compose_status = status(None, &[(5, 0, None)], Runtime::default());
        compose_status.kind = ResourceKind::Compose;
        let mut actions = h.status(compose_status);
        actions.extend(h.line(Span::Container, RUNNING));
        assert_eq!(actions, [Action::Recheck { tail: Some(1003) }]);
        let snap = snapshot(
            "server",
            &[
                (Span::Build(5), true, ""),
                (Span::Build(5), false, "Container citadel-server Recreated"),
                (Span::Container, false, RUNNING),
            ],
        );
        let actions = h.feed(snap);
        let Some(Decision::Succeeded { guard, .. }) = decided(&actions) else { panic!("{actions:?}") };
        let mut guard = guard.clone();
        let later = h.start + Duration::from_secs(30);
        assert_eq!(guard.on(step, &Input::Compose(container("new", Some(Health::Starting))), later), None);
        cov_mark::check!(a_service_turning_unhealthy_after_it_passed_fails_the_run);
        let unhealthy = Input::Compose(container("new", Some(Health::Unhealthy)));
        assert_eq!(guard.on(step, &unhealthy, later), Some(Failure::Unhealthy));
    }

    /// The server step passed on its serve process's line (build 5, process 3): its guard.
    fn passed_server(step: &Step) -> (Harness<'_>, Guard) {
        let mut h = Harness::after(
            step,
            timing(),
            &[Input::Status(status(None, &[(4, 0, None)], serving(10, RuntimeStatus::Ok)))],
        );
        h.trigger();
        h.header(5);
        h.at(100).status(status(None, &[(5, 0, None)], serving(10, RuntimeStatus::Ok)));
        h.line(Span::Serve(3), "Running cmd: ./serve.sh");
        let actions = h.line(Span::Serve(3), RUNNING);
        let Some(Decision::Succeeded { guard, .. }) = decided(&actions) else { panic!("{actions:?}") };
        (h, (**guard).clone())
    }

    #[test]
    fn the_guard_catches_a_crash_during_the_confirm_time_and_a_runtime_error_until_the_run_ends() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let (h, guard) = passed_server(step);
        let line = |text: &str| {
            Input::Line(LogLine {
                resource: "server".to_owned(),
                span: Span::Serve(3),
                header: false,
                text: text.to_owned(),
            })
        };
        let mut guard = guard.clone();
        let within = h.start + Duration::from_millis(700);
        assert!(matches!(
            guard.on(step, &line("thread 'main' panicked at src/main.rs:40:10:"), within),
            Some(Failure::Error { .. })
        ));
        let after = h.start + Duration::from_millis(2_200);
        let crashed = Input::Status(status(None, &[(5, 0, None)], serving(11, RuntimeStatus::Error)));
        let mut quiet = guard.clone();
        assert!(matches!(quiet.on(step, &crashed, after), Some(Failure::RuntimeFailed { .. })));

        assert_eq!(
            guard.on(step, &line("error: a client went away"), after),
            None,
            "after the confirm time, lines alone do not fail"
        );
        let Some(Failure::Error { line, .. }) = guard.on(step, &crashed, after) else {
            panic!("the error line explains the crash")
        };
        assert_eq!(line, "error: a client went away");
    }

    #[test]
    fn a_service_stopped_before_its_log_said_why_is_explained_by_the_log_tilt_has() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let (h, guard) = passed_server(step);
        let mut guard = guard.clone();
        let crashed = Input::Status(status(None, &[(5, 0, None)], serving(11, RuntimeStatus::Error)));
        let stopped = guard.on(step, &crashed, h.start + Duration::from_millis(300)).expect("Tilt says it stopped");

        let old_run = "error: address already in use";
        let log = snapshot(
            "server",
            &[
                (Span::Serve(2), false, old_run),
                (Span::Build(5), true, ""),
                (Span::Build(5), false, "   Compiling server"),
                (Span::Serve(3), false, RUNNING),
                (Span::Serve(3), false, "thread 'main' panicked at src/main.rs:40:10:"),
            ],
        );
        let Input::Snapshot(lines) = log else { unreachable!("snapshot() makes a snapshot") };
        cov_mark::check!(a_stopped_service_is_explained_by_its_log);
        let Failure::Error { line, .. } = guard.explain(step, &lines, stopped.clone()) else { panic!("explained") };
        assert!(line.starts_with("thread 'main' panicked"), "{line}");

        let without_why = &lines[..4];
        assert_eq!(guard.explain(step, without_why, stopped.clone()), stopped, "nothing to explain it: Tilt's word");
    }

    #[test]
    fn the_previous_containers_line_the_stream_delivers_late_is_not_ours() {
        // Tilt's order: our header, the previous container's success line, our build's last
        // line. The stream lags: Tilt records the end before the stream delivers all of it.
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let mut h = Harness::new(step, timing());
        h.trigger();
        h.header(5);
        let mut compose = status(None, &[(5, 0, None)], Runtime::default());
        compose.kind = ResourceKind::Compose;
        assert!(matches!(h.at(300).status(compose)[..], [Action::Recheck { .. }]));
        let snap = snapshot(
            "server",
            &[
                (Span::Build(5), true, ""),
                (Span::Container, false, RUNNING),
                (Span::Build(5), false, "Container Recreated"),
            ],
        );
        assert!(h.feed(snap).is_empty(), "the previous container's line is not ours");
        cov_mark::check!(a_line_the_recheck_judged_is_not_judged_again);
        assert!(h.line(Span::Container, RUNNING).is_empty(), "delivered late, and judged already");
        assert!(h.line(Span::Build(5), "Container Recreated").is_empty());
        assert_eq!(succeeded_with(&h.line(Span::Container, RUNNING)), Some(RUNNING), "our container's own line");
    }

    #[test]
    fn tilt_going_away_decides_at_once() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let mut h = Harness::new(step, timing());
        h.trigger();
        h.header(5);
        assert_eq!(decided(&h.feed(Input::Ended(Failure::TiltGone))), Some(&Decision::Failed(Failure::TiltGone)));
    }

    #[test]
    fn lines_of_builds_known_at_the_trigger_are_neither_judged_nor_kept() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let before = [
            line_of("server", Span::Build(3), true, "CLI Trigger"),
            line_of("server", Span::Build(3), false, "error[E0425]: an old failure"),
            Input::Status(status(Some((4, 0)), &[(3, 0, Some("old"))], Runtime::default())),
        ];
        let mut h = Harness::after(step, timing(), &before);
        h.at(100).trigger();
        // Build 4 ran when we triggered: the status knew it, the log had not shown it yet.
        h.header(4);
        h.line(Span::Build(4), "error[E0599]: the running build's");
        assert!(h.machine.tail().is_empty());
        h.header(5);
        h.line(Span::Build(5), RUNNING);
        h.status(status(None, &[(5, 200, None), (4, 0, Some("x"))], Runtime::default()));
        let actions = h.feed(snapshot("server", &[(Span::Build(5), true, ""), (Span::Build(5), false, RUNNING)]));
        assert_eq!(succeeded_with(&actions), Some(RUNNING));
        assert_eq!(h.machine.tail(), [RUNNING]);
    }
}
