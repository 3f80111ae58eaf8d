//! Following one build: where its lines come from (the run's stream, or `tilt logs` polled),
//! when Tilt is asked for its record, how a success is confirmed before moving on, and what is
//! kept of a failed build's log. `step::Watch` decides; this feeds it.

use std::{
    collections::VecDeque,
    io::Write,
    sync::mpsc::RecvTimeoutError,
    thread,
    time::{Duration, Instant},
};

use super::{call_failure, Runner, StepLog};
use crate::{
    config::Step,
    interrupt,
    step::{Baseline, Failure, LogLine, Progress, Watch},
    tilt::{Event, LogFormat, TiltError},
};

/// How soon Tilt is first asked again when our build printed its success line before Tilt
/// recorded it finished (then twice as long each time).
const PENDING_SUCCESS_RECHECK: Duration = Duration::from_millis(250);
const PENDING_SUCCESS_RECHECK_MAX: Duration = Duration::from_secs(1);
/// After a failed build's error line, the log counts as quiet (the build over) after this long.
const QUIET_AFTER_ERROR: Duration = Duration::from_millis(500);

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
    /// Triggers the step's resource once and follows the build Tilt starts for it.
    pub(super) fn watch_build(
        &mut self,
        step: &Step,
        deadline: Instant,
        log: Option<&mut StepLog>,
    ) -> (Progress, Vec<String>) {
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
    pub(super) fn stream_ended(&mut self, detail: String) {
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
}
