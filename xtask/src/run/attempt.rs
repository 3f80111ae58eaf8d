//! One trigger and the build it caused: which build is ours, whose lines are ours, and what
//! they, Tilt's record and our service or container say, until a verdict.
//!
//! Ours is the first build after the baseline (the newest build known at the trigger) that
//! Tilt does not say started before the trigger. A verdict waits until Tilt records our build
//! finished and the log has caught up with that moment (a line Tilt writes only after it: our
//! serve process, a later build, the build's `DONE IN:` line; or a fresh reading of the log), so
//! that a line Tilt wrote before it recorded the end is judged though the log stream and the
//! status watch are separate pipes.

use std::time::{Duration, Instant};

use crate::{
    protocol::{Ready, Step},
    run::{
        attribution::{BuildLines, Lines, Seen, Start},
        judge::Judged,
        BuildId, Failure,
    },
    tilt::model::{
        ComposeService, Health, LogLine, ResourceKind, ResourceStatus, Runtime, RuntimeStatus, Span, WallTime,
    },
};

/// How far back a re-check reaches beyond the lines seen since our build's header.
pub const RECHECK_MARGIN: usize = 1000;

/// What was there when we triggered: none of it is ours.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// Builds numbered up to here were known.
    pub build: u64,
    pub serve: u64,
    pub runtime: Runtime,
    pub container: Option<ComposeService>,
}

/// Our build's end, as Tilt recorded it.
#[derive(Debug, Clone)]
struct Finished {
    result: Result<(), String>,
    /// When we learnt it.
    learnt: Instant,
    at: Option<WallTime>,
}

/// A reading of Tilt's log (`tilt logs R --tail N`) asked for and not yet in.
#[derive(Debug, Clone, Copy)]
struct Asked {
    at: Instant,
    /// Without `--tail`: the last one did not reach back to our build's header.
    whole: bool,
}

/// What the run tells the attempt besides the line or status at hand.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub catch_up: Duration,
    /// Tilt's log may have been cut since the run began (it holds 2 MB): a success needs a
    /// reading of the log that still shows our build's header.
    pub log_may_be_cut: bool,
    /// The resource's containers are watched (a docker-compose resource).
    pub compose: bool,
}

/// What a reading of the log gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Reading {
    /// None was asked for (or no build of ours is known): nothing to judge.
    Unasked,
    /// It did not reach back to our build's header: the whole log is wanted.
    Short,
    /// Judged; its last `unseen` lines are ours that the stream has not delivered yet.
    Judged { unseen: usize },
}

/// What a look at the build concludes.
#[derive(Debug, PartialEq, Eq)]
pub enum Look {
    Wait,
    /// Read Tilt's log again: its last `tail` lines, or all of it.
    Recheck {
        tail: Option<usize>,
    },
    Succeeded {
        line: String,
        build: BuildId,
    },
    Failed(Failure),
}

#[derive(Debug)]
pub struct Attempt {
    requested_at: WallTime,
    settled_at: Instant,
    pub baseline: Baseline,
    pub lines: Lines,
    /// Builds Tilt says started before our trigger.
    rejected: Vec<u64>,
    /// Tilt's word: the first build of the resource that started after our trigger.
    confirmed: Option<u64>,
    finished: Option<Finished>,
    asked: Option<Asked>,
    /// When the last reading of the log that was judged had been asked.
    read_at: Option<Instant>,
    /// Tilt's runtime status describes our build's service, not the one before.
    runtime_fresh: bool,
    /// Since when our service or container is seen down, and since when a success is ready to
    /// be decided: a reading of the log asked after that explains the one, verifies the other.
    down_since: Option<Instant>,
    ready_since: Option<Instant>,
    /// Lines the stream has yet to deliver that a reading already judged.
    duplicates: usize,
}

impl Attempt {
    pub fn new(seen: &Seen, requested_at: WallTime, settle: Duration, now: Instant) -> Attempt {
        let status = seen.status.clone().unwrap_or_default();
        // The status may know of a build whose header the log has not delivered yet; without
        // spans its numbers are not the log's.
        let status_newest = if seen.plain { 0 } else { status.newest_build() };
        Attempt {
            requested_at,
            settled_at: now + settle,
            baseline: Baseline {
                build: seen.header.max(status_newest),
                serve: seen.serve,
                runtime: status.runtime,
                container: seen.container.clone(),
            },
            lines: Lines::new(seen.container.as_ref().and_then(|container| container.container_name.clone())),
            rejected: Vec::new(),
            confirmed: None,
            finished: None,
            asked: None,
            read_at: None,
            runtime_fresh: false,
            down_since: None,
            ready_since: None,
            duplicates: 0,
        }
    }

    /// Takes in a line of the resource at `place`. Returns whether it may change the verdict,
    /// or None for a line a reading of the log judged (and kept) already.
    pub fn line(&mut self, step: &Step, line: &LogLine, place: usize) -> Option<bool> {
        if self.duplicates > 0 && !line.header {
            cov_mark::hit!(a_line_the_recheck_judged_is_not_judged_again);
            self.duplicates -= 1;
            return None;
        }
        Some(self.lines.add(step, line, place, self.baseline.build, self.baseline.serve))
    }

    /// Whether a line belongs in the step's log: the resource's lines since our trigger, but
    /// those of builds that were known then.
    pub fn keeps(&self, line: &LogLine) -> bool {
        match line.span {
            Span::Build(number) | Span::Plain(number) => number > self.baseline.build,
            Span::Update => self.lines.open().is_some_and(|open| open > self.baseline.build),
            Span::Serve(number) => number > self.baseline.serve,
            Span::Container | Span::Health => self.lines.has_headers(),
        }
    }

    /// The build we take for ours: Tilt's word if it has spoken, else the first header after
    /// the baseline that Tilt has not disowned.
    pub fn ours(&self, plain: bool) -> Option<u64> {
        match (self.confirmed, plain) {
            (Some(confirmed), false) => Some(confirmed),
            _ => self.lines.first_not(&self.rejected),
        }
    }

    pub fn status(&mut self, status: &ResourceStatus, previous: Option<&ResourceStatus>, plain: bool, now: Instant) {
        let builds = status
            .current
            .iter()
            .map(|build| (build.number, build.start))
            .chain(status.finished.iter().map(|build| (build.number, build.start)));
        let mut first_after: Option<u64> = None;
        for (number, start) in builds {
            let Some(start) = start else { continue };
            if start < self.requested_at {
                if !plain && !self.rejected.contains(&number) {
                    cov_mark::hit!(started_before_the_trigger_is_not_ours);
                    self.rejected.push(number);
                }
            } else if number > self.baseline.build || plain {
                first_after = Some(first_after.map_or(number, |first| first.min(number)));
            }
        }
        if let Some(first) = first_after {
            self.confirmed = Some(self.confirmed.map_or(first, |known| known.min(first)));
        }
        if self.finished.is_none() {
            if let Some(build) = self.confirmed.and_then(|number| status.finished_build(number)) {
                self.finished =
                    Some(Finished { result: build.error.clone().map_or(Ok(()), Err), learnt: now, at: build.finish });
            }
        }
        if !self.runtime_fresh {
            self.runtime_fresh = match (&self.baseline.runtime.instance, &status.runtime.instance) {
                (then, Some(now)) => then.as_ref() != Some(now),
                // Without an instance to tell them apart, a change Tilt reports after our
                // build's end is about our build's service.
                (_, None) => {
                    self.finished.is_some() && previous.is_some_and(|previous| previous.runtime != status.runtime)
                }
            };
        }
    }

    /// Our build finished (as Tilt recorded it) and the log caught up with that moment.
    fn caught_up(&self, ours: u64, compose: bool) -> bool {
        let Some(finished) = &self.finished else { return false };
        // A failed local command's last lines can come after Tilt's `Build Failed:` line;
        // Compose's build output is the build's own span, in order.
        let closed = self.lines.build(ours).is_some_and(|lines| lines.closed) && (compose || finished.result.is_ok());
        self.read_at.is_some_and(|read| read >= finished.learnt)
            || self.lines.later(ours).is_some()
            || self.lines.serve_started(ours)
            || closed
    }

    /// Finished, and every line of our build is in (or waiting for them is over).
    pub fn ended(&self, plain: bool, context: &Context, now: Instant) -> bool {
        let Some(ours) = self.ours(plain) else { return false };
        match &self.finished {
            Some(finished) => self.caught_up(ours, context.compose) || now >= finished.learnt + context.catch_up,
            None => false,
        }
    }

    /// When the attempt wants to look again, after `now`, at the latest.
    pub fn wake_at(&self, plain: bool, context: &Context, now: Instant) -> Option<Instant> {
        let catch_up =
            self.finished.as_ref().map(|finished| finished.learnt + context.catch_up).filter(|due| {
                *due > now && !self.ours(plain).is_some_and(|ours| self.caught_up(ours, context.compose))
            });
        let settle = Some(self.settled_at).filter(|settled| *settled > now);
        let down = self.down_since.map(|since| since + context.catch_up).filter(|due| *due > now);
        [catch_up, settle, down].into_iter().flatten().min()
    }

    pub fn settled(&self, now: Instant) -> bool {
        now >= self.settled_at
    }

    /// A reading was asked: `tail` lines back from the end, or all of it.
    pub fn recheck(&mut self, seen: &Seen, whole: bool, now: Instant) -> Option<usize> {
        self.asked = Some(Asked { at: now, whole });
        // Our build's header and every line since, and a margin for what is still coming.
        let since_header = self.lines.first_place().map_or(seen.lines, |place| seen.lines - place + 1);
        (!whole).then_some(since_header + RECHECK_MARGIN)
    }

    /// Our build finished and the log has not caught up with that yet: the reading to ask for
    /// now (`Some(tail)`), unless one is on its way.
    pub fn needs_reading(&mut self, seen: &Seen, context: &Context, now: Instant) -> Option<Option<usize>> {
        let ours = self.ours(seen.plain)?;
        if self.finished.is_none() || self.asked.is_some() || self.caught_up(ours, context.compose) {
            return None;
        }
        Some(self.recheck(seen, false, now))
    }

    /// Judges a reading of the resource's log, in Tilt's order: what it shows of our build
    /// replaces what the stream showed. Fails when the whole log no longer has our build's
    /// header.
    pub fn reading(&mut self, step: &Step, seen: &Seen, snapshot: &[LogLine]) -> Result<Reading, Failure> {
        let Some(asked) = self.asked.take() else { return Ok(Reading::Unasked) };
        let Some(ours) = self.ours(seen.plain) else { return Ok(Reading::Unasked) };
        let header = snapshot.iter().position(|line| line.header && line_build(line) == Some(ours));
        if header.is_none() {
            if !asked.whole {
                cov_mark::hit!(a_short_recheck_fetches_the_whole_log);
                return Ok(Reading::Short);
            }
            // Tilt cuts the oldest lines of a resource whose log is the largest once it holds
            // 2 MB: our build's header goes first. What is left cannot be judged as the whole.
            cov_mark::hit!(our_header_gone_from_tilts_log_is_uncertain);
            return Err(Failure::LogCut);
        }
        let mut lines =
            Lines::new(self.baseline.container.as_ref().and_then(|container| container.container_name.clone()));
        for (place, line) in snapshot.iter().enumerate() {
            lines.add(step, line, place + 1, ours - 1, self.baseline.serve);
        }
        // The stream will deliver again what the reading held beyond it: not judged twice.
        self.duplicates = lines.placed_since(ours).saturating_sub(self.lines.placed_since(ours));
        self.lines.take_reading(lines, ours);
        self.read_at = Some(asked.at);
        Ok(Reading::Judged { unseen: self.duplicates })
    }

    fn read_since(&self, since: Option<Instant>) -> bool {
        matches!((self.read_at, since), (Some(read), Some(since)) if read >= since)
    }

    /// What is known decides the step, or not yet.
    pub fn look(&mut self, step: &Step, seen: &Seen, context: &Context, now: Instant) -> Look {
        let Some(ours) = self.ours(seen.plain) else { return Look::Wait };
        let confirmed = self.confirmed.is_some() && (seen.plain || self.confirmed == Some(ours));
        let empty = BuildLines::default();
        let own = self.lines.build(ours).unwrap_or(&empty);
        let own = own.own();
        if let (Some(error), true) = (&own.error, confirmed) {
            return Look::Failed(error.failure(step));
        }
        if let Some(canceled) = own.tilt_error.as_ref().filter(|found| found.line.contains("build canceled")) {
            cov_mark::hit!(a_canceled_build_fails_at_once);
            return Look::Failed(Failure::Canceled { line: canceled.line.clone() });
        }
        let Some(finished) = &self.finished else { return Look::Wait };
        let (result, learnt) = (finished.result.clone(), finished.learnt);
        if !self.caught_up(ours, context.compose) {
            if self.asked.is_some() {
                return Look::Wait;
            }
            // A serve process started after a successful build comes on the log soon: worth
            // waiting for; anything else, read the log now.
            let serving = result.is_ok()
                && !context.compose
                && seen.status.as_ref().is_some_and(|status| status.runtime.instance.is_some());
            if serving && now < learnt + context.catch_up {
                return Look::Wait;
            }
            cov_mark::hit!(recheck_after_the_end);
            return Look::Recheck { tail: self.recheck(seen, false, now) };
        }
        if let Err(error) = &result {
            let own = self.lines.build(ours).unwrap_or(&empty);
            // The command's own error says more than Tilt's `Build Failed:` line.
            let own = own.own();
            if let Some(found) = own.error.as_ref().or(own.tilt_error.as_ref()) {
                return Look::Failed(found.failure(step));
            }
            cov_mark::hit!(tilt_recorded_the_failure);
            return Look::Failed(Failure::TiltRecorded { error: error.clone() });
        }
        let runtime = self.lines.runtime(ours);
        if let Some(error) = &runtime.error {
            return Look::Failed(error.failure(step));
        }
        let verdict = match context.compose {
            true => self.container_verdict(step, seen, ours, &runtime, now, context.catch_up),
            false => self.local_verdict(step, seen, ours, &runtime, now),
        };
        match verdict {
            Look::Succeeded { line, build } => {
                let ready_since = *self.ready_since.get_or_insert(now);
                if context.log_may_be_cut && !self.read_since(Some(ready_since)) {
                    if self.asked.is_some() {
                        return Look::Wait;
                    }
                    cov_mark::hit!(a_success_on_a_log_tilt_may_have_cut_is_verified);
                    return Look::Recheck { tail: self.recheck(seen, false, now) };
                }
                Look::Succeeded { line, build }
            }
            other => other,
        }
    }

    fn build_id(&self, ours: u64) -> BuildId {
        BuildId { number: self.confirmed.unwrap_or(ours), finished: self.finished.as_ref().and_then(|done| done.at) }
    }

    /// Our service stopped: a reading of the log after that may hold the line that says why,
    /// or (a one-shot job) the success line the stream has not delivered yet. `failure`: the
    /// verdict when it holds neither.
    fn down(&mut self, step: &Step, seen: &Seen, failure: Failure, now: Instant) -> Look {
        let since = *self.down_since.get_or_insert(now);
        if !self.read_since(Some(since)) {
            if self.asked.is_some() {
                return Look::Wait;
            }
            cov_mark::hit!(a_failed_service_is_explained_by_its_last_lines);
            return Look::Recheck { tail: self.recheck(seen, false, now) };
        }
        let ours = self.ours(seen.plain).unwrap_or_default();
        match self.lines.runtime(ours).error {
            Some(error) => Look::Failed(error.failure(step)),
            None => Look::Failed(failure),
        }
    }

    /// A local resource: its update command's lines, then its serve process.
    fn local_verdict(&mut self, step: &Step, seen: &Seen, ours: u64, runtime: &Judged, now: Instant) -> Look {
        let status = seen.status.as_ref().map(|status| &status.runtime);
        let errored = status.is_some_and(|runtime| runtime.status == RuntimeStatus::Error);
        if self.runtime_fresh && errored {
            let failure =
                Failure::RuntimeFailed { detail: "Tilt's runtime status: error".to_owned(), container: false };
            return self.down(step, seen, failure, now);
        }
        if !self.runtime_fresh && errored {
            cov_mark::hit!(a_stale_runtime_error_is_not_ours);
        }
        let own = self.lines.build(ours).and_then(|lines| lines.own().success.clone());
        if let Some(line) = own {
            return Look::Succeeded { line, build: self.build_id(ours) };
        }
        if let Some(later) = self.lines.later(ours) {
            return Look::Failed(Failure::Superseded { by: later });
        }
        if let Some(line) = &runtime.success {
            return Look::Succeeded { line: line.clone(), build: self.build_id(ours) };
        }
        let health = status.and_then(|runtime| runtime.health).filter(|_| self.runtime_fresh);
        match (step.ready, health) {
            (Some(Ready::Healthy), Some(Health::Healthy)) => Look::Succeeded {
                line: "healthy (Tilt: the container's healthcheck passes)".to_owned(),
                build: self.build_id(ours),
            },
            (Some(Ready::Healthy), Some(Health::Unhealthy)) => Look::Failed(Failure::Unhealthy),
            (Some(Ready::Running), _)
                if self.runtime_fresh && status.is_some_and(|runtime| runtime.status == RuntimeStatus::Ok) =>
            {
                Look::Succeeded { line: "running (Tilt: runtime status ok)".to_owned(), build: self.build_id(ours) }
            }
            _ => Look::Wait,
        }
    }

    /// A docker-compose resource: the build's lines, then the container Compose started or
    /// kept, as the container watch shows it. A container that another one replaced (stopped
    /// with 137 or 143, as Compose stops it) is not ours.
    fn container_verdict(
        &mut self,
        step: &Step,
        seen: &Seen,
        ours: u64,
        runtime: &Judged,
        now: Instant,
        catch_up: Duration,
    ) -> Look {
        let build = self.build_id(ours);
        let start = self.lines.build(ours).and_then(|lines| lines.start);
        let current = seen.container.as_ref().filter(|container| container.container.is_some());
        let container = match start {
            Some(Start::Kept) => current,
            _ => current
                .filter(|container| !self.baseline.container.as_ref().is_some_and(|then| container.same_run(then))),
        };
        if let Some(line) = self.lines.build(ours).and_then(|lines| lines.own().success.clone()) {
            return Look::Succeeded { line, build };
        }
        let one_shot = !step.stays_up();
        if let Some(line) = runtime.success.clone() {
            // A one-shot job is done when it exits 0, a few ms after its last line: it may
            // still fail after its success line (`set -e`).
            let done = container.is_some_and(|container| container.exited && !container.down(false));
            match (one_shot, done) {
                (false, _) | (true, true) => return Look::Succeeded { line, build },
                (true, false) => cov_mark::hit!(a_one_shot_is_done_when_it_exits_0),
            }
        }
        if let Some(later) = self.lines.later(ours) {
            return Look::Failed(Failure::Superseded { by: later });
        }
        let Some(container) = container else { return Look::Wait };
        if container.exited || container.error.is_some() {
            let since = *self.down_since.get_or_insert(now);
            if container.killed() && now < since + catch_up {
                // Compose stops the container it replaces: a new one may be on its way.
                cov_mark::hit!(a_killed_container_may_be_a_replaced_one);
                return Look::Wait;
            }
            let failure = match container.down(step.stays_up()) {
                true => Failure::RuntimeFailed { detail: container.why_down(), container: true },
                // A one-shot job that exited 0: its success line may still be on its way.
                false => Failure::NoSuccessLine { detail: container.why_down() },
            };
            return self.down(step, seen, failure, now);
        }
        // A one-shot job Compose kept running is still doing what it was started for.
        if start == Some(Start::Kept) && !one_shot {
            cov_mark::hit!(a_kept_container_is_ready_for_our_build);
            return match container.health {
                Some(Health::Unhealthy) => Look::Failed(Failure::Unhealthy),
                Some(Health::Starting) => Look::Wait,
                _ => Look::Succeeded {
                    line: "kept (Compose kept the container running: its image did not change)".to_owned(),
                    build,
                },
            };
        }
        match (step.ready, container.health) {
            (Some(Ready::Healthy), Some(Health::Healthy)) => {
                Look::Succeeded { line: "healthy (Tilt: the container's healthcheck passes)".to_owned(), build }
            }
            (_, Some(Health::Unhealthy)) if step.ready.is_some() => Look::Failed(Failure::Unhealthy),
            (Some(Ready::Running), _) if !container.exited => {
                Look::Succeeded { line: "running (the container runs)".to_owned(), build }
            }
            _ => Look::Wait,
        }
    }

    /// The error that names the failed build once all its lines are in: the most specific of
    /// its own, else of its service's.
    pub fn deciding_error(&self, step: &Step, plain: bool) -> Option<Failure> {
        let ours = self.ours(plain)?;
        let own = self.lines.build(ours).and_then(|lines| lines.own().error.clone());
        own.or(self.lines.runtime(ours).error).map(|found| found.failure(step))
    }

    /// Whether a success line of the build was seen, though Tilt never recorded its end.
    pub fn saw_success(&self) -> bool {
        self.ours(false).and_then(|ours| self.lines.build(ours)).is_some_and(|lines| lines.own().success.is_some())
    }

    /// Whether our build started (its header is in the log).
    pub fn started(&self, plain: bool) -> bool {
        self.ours(plain).is_some()
    }
}

/// What Tilt knows the resource is: its containers are watched when it is Compose's.
pub fn is_compose(seen: &Seen) -> bool {
    seen.status.as_ref().is_some_and(|status| status.kind == ResourceKind::Compose)
}

fn line_build(line: &LogLine) -> Option<u64> {
    match line.span {
        Span::Build(number) | Span::Plain(number) => Some(number),
        _ => None,
    }
}
