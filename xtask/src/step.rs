//! The per-step state machine, pure: fed the resource's log lines and Tilt's status for it,
//! it decides whether our build succeeded, failed, or is still going. `sync.rs` feeds it.

use std::collections::{HashSet, VecDeque};

use crate::{
    config::{KindId, Remediation, Step},
    scan::{self, Verdict},
};

/// One line of a resource's log, placed in the build it belongs to. `build` is Tilt's build
/// number (`spanID` `build:N`), or, when Tilt cannot print JSON, the ordinal of the build's
/// header in the log. `text` has no ANSI colour codes: they are stripped where it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub build: u64,
    pub header: bool,
    pub origin: Origin,
    pub text: String,
}

/// Who wrote a line: the build itself, or a container (a `dc:` or `localserve:` span). Tilt
/// numbers only builds; a container's output is placed in the resource's latest build, but until
/// our build has finished the container running is the previous one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Build,
    Runtime,
    /// `tilt logs` without `--json` does not say.
    Unknown,
}

/// What `tilt get uiresource` says of a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStatus {
    pub current: Option<u64>,
    /// Finished builds, newest first.
    pub finished: Vec<FinishedBuild>,
    pub runtime_failed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedBuild {
    pub number: u64,
    pub error: Option<String>,
}

impl BuildStatus {
    /// The highest build number Tilt knows of: a build started after our trigger has a higher
    /// one, and the build running at trigger time (whose end Tilt queues ours behind) does not.
    pub fn newest_build(&self) -> u64 {
        let finished = self.finished.iter().map(|build| build.number);
        finished.chain(self.current).max().unwrap_or(0)
    }
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
    /// Our build finished but its container then exited with an error.
    ContainerFailed,
    /// The watch ended without a verdict.
    Uncertain,
    /// Another build of the resource started before ours printed its success line.
    Superseded {
        by: u64,
    },
    Timeout,
    /// The log stream ended: Tilt stopped.
    TiltGone,
    Interrupted,
    /// A Tilt call failed or hung.
    TiltCall(String),
    RemediationFailed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Watching,
    Succeeded(String),
    Failed(Failure),
}

/// The newest build known when we triggered, by log numbering (`LogLine::build`) and by Tilt's
/// status (its build numbers). With `--json` logs both are Tilt's build numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Baseline {
    pub log: u64,
    pub status: u64,
}

/// Follows one build of `step`'s resource: the first one started after the baseline.
///
/// A success line counts once Tilt records our build as finished without error; until then it
/// waits for Tilt's word (`needs_status`). So does an error line from a container: before our
/// build has finished, the container running is the previous one, whose output is not ours.
pub struct Watch<'s> {
    step: &'s Step,
    baseline: Baseline,
    ours: Option<u64>,
    finished_ok: bool,
    /// The success line, and who printed it.
    success: Option<(String, Origin)>,
    /// Lines whose verdict waits for Tilt to say whether our build has finished.
    unconfirmed_success: Option<(String, Origin)>,
    unconfirmed_error: Option<Failure>,
    /// A verdict arrived that Tilt's record must settle, and Tilt has not been asked since.
    awaiting_status: bool,
    failure: Option<Failure>,
    tail: VecDeque<String>,
    tail_len: usize,
}

impl<'s> Watch<'s> {
    pub fn new(step: &'s Step, baseline: Baseline, tail_len: usize) -> Watch<'s> {
        Watch {
            step,
            baseline,
            ours: None,
            finished_ok: false,
            success: None,
            unconfirmed_success: None,
            unconfirmed_error: None,
            awaiting_status: false,
            failure: None,
            tail: VecDeque::new(),
            tail_len,
        }
    }

    /// Whether the line comes from a build started after our trigger (the step's log keeps it).
    pub fn is_since_trigger(&self, line: &LogLine) -> bool {
        line.build > self.baseline.log
    }

    /// The last lines of our build, for the report.
    pub fn tail(&self) -> impl Iterator<Item = &str> {
        self.tail.iter().map(String::as_str)
    }

    /// A line's verdict waits for Tilt's record of our build: ask for the status.
    pub fn needs_status(&self) -> bool {
        self.failure.is_none() && self.awaiting_status
    }

    /// A success line waits for Tilt to record our build as finished.
    pub fn success_pending(&self) -> bool {
        self.failure.is_none() && self.unconfirmed_success.is_some()
    }

    pub fn progress(&self) -> Progress {
        match (&self.failure, &self.success) {
            (Some(failure), _) => Progress::Failed(failure.clone()),
            (None, Some((line, _))) => Progress::Succeeded(line.clone()),
            (None, None) => Progress::Watching,
        }
    }

    pub fn fail(&mut self, failure: Failure) -> Progress {
        self.failure.get_or_insert(failure);
        self.progress()
    }

    pub fn on_line(&mut self, line: &LogLine) -> Progress {
        if self.failure.is_some() {
            // Decided: the rest of our build is only kept, for the report.
            if Some(line.build) == self.ours && !line.header {
                self.keep(&line.text);
            }
            return self.progress();
        }
        if !self.is_since_trigger(line) {
            // A line of an earlier build, or of the one running when we triggered.
            return self.progress();
        }
        let ours = *self.ours.get_or_insert(line.build);
        if line.build > ours {
            if self.success.is_none() {
                return self.fail(Failure::Superseded { by: line.build });
            }
            return self.progress();
        }
        if line.header {
            return self.progress();
        }
        if line.origin == Origin::Build {
            // Tilt writes our container's output after our build's own lines: a container line
            // seen before this one was the previous container's.
            self.forget_container_verdicts();
        }
        let verdict = scan::classify(self.step, &line.text);
        self.keep(&line.text);
        let text = &line.text;
        match verdict {
            Verdict::Benign => {}
            Verdict::Error(kind, pattern) => {
                let rule = self.step.error_patterns.patterns()[pattern].clone();
                let failure = Failure::Error { kind, rule, line: text.to_owned() };
                // An error wins even after the success line: the script goes on after its failures.
                if line.origin != Origin::Runtime || self.finished_ok {
                    return self.fail(failure);
                }
                self.unconfirmed_error.get_or_insert(failure);
                self.awaiting_status = true;
            }
            Verdict::Success if self.finished_ok => {
                self.success.get_or_insert_with(|| (text.to_owned(), line.origin));
            }
            Verdict::Success => {
                self.unconfirmed_success.get_or_insert_with(|| (text.to_owned(), line.origin));
                self.awaiting_status = true;
            }
        }
        self.progress()
    }

    /// Drops the verdicts of container lines: they came from the previous container.
    fn forget_container_verdicts(&mut self) {
        if matches!(self.success, Some((_, Origin::Runtime))) {
            self.success = None;
        }
        if matches!(self.unconfirmed_success, Some((_, Origin::Runtime))) {
            self.unconfirmed_success = None;
        }
        self.unconfirmed_error = None;
    }

    /// Before moving on from a success: the end of the log as Tilt has it now (in Tilt's own
    /// order, which the stream may not have delivered in full), judged again. Our build's lines,
    /// and the container lines after them, are ours: an error among them fails the step. A
    /// success that a container printed before our build's last line was the previous
    /// container's: the watch goes on.
    pub fn recheck(&mut self, lines: &[LogLine]) -> Progress {
        if self.failure.is_some() {
            return self.progress();
        }
        let Some(ours) = self.ours else { return self.progress() };
        let build_end = lines.iter().rposition(|line| line.build == ours && line.origin != Origin::Runtime);
        for (index, line) in lines.iter().enumerate() {
            let after_build = build_end.is_some_and(|end| index > end);
            if line.build != ours || line.header || (line.origin == Origin::Runtime && !after_build) {
                continue;
            }
            if let Verdict::Error(kind, pattern) = scan::classify(self.step, &line.text) {
                let rule = self.step.error_patterns.patterns()[pattern].clone();
                self.keep(&line.text);
                return self.fail(Failure::Error { kind, rule, line: line.text.clone() });
            }
        }
        if let (Some((text, Origin::Runtime)), Some(end)) = (&self.success, build_end) {
            let printed =
                |range: &[LogLine]| range.iter().any(|line| line.origin == Origin::Runtime && line.text == *text);
            if printed(&lines[..end]) && !printed(&lines[end + 1..]) {
                self.success = None;
            }
        }
        self.progress()
    }

    fn keep(&mut self, text: &str) {
        if self.tail.len() == self.tail_len {
            self.tail.pop_front();
        }
        self.tail.push_back(text.to_owned());
    }

    /// Tilt's own record is a second opinion: a build it records as failed fails the step even
    /// when no pattern matched. Its runtime status describes the previous container until our
    /// build has finished, so it only counts after that. It also settles the verdicts that
    /// waited for it.
    pub fn on_status(&mut self, status: &BuildStatus) -> Progress {
        self.awaiting_status = false;
        if self.failure.is_some() {
            return self.progress();
        }
        let ours =
            status.finished.iter().filter(|build| build.number > self.baseline.status).min_by_key(|build| build.number);
        if let Some(build) = ours {
            if let Some(error) = &build.error {
                return self.fail(Failure::TiltRecorded { error: error.clone() });
            }
            if status.runtime_failed && status.current.is_none() {
                return self.fail(Failure::ContainerFailed);
            }
            self.finished_ok = true;
        }
        if let Some(error) = self.unconfirmed_error.take() {
            if self.finished_ok {
                return self.fail(error);
            }
            // Before our build finished: the previous container's output, not ours.
        }
        if let Some((line, origin)) = self.unconfirmed_success.take() {
            match (self.finished_ok, origin) {
                (true, _) => self.success = Some((line, origin)),
                // Our build printed it and is still going: Tilt's record will tell.
                (false, Origin::Build) => self.unconfirmed_success = Some((line, origin)),
                // The previous container's (or, without spans, maybe so): not ours.
                (false, Origin::Runtime | Origin::Unknown) => {}
            }
        }
        self.progress()
    }
}

/// What to do about a failure: the step's remediation for that error kind, if it has one and
/// has not used it yet in this run.
pub fn remediation_for<'s>(step: &'s Step, failure: &Failure, used: &HashSet<KindId>) -> Option<&'s Remediation> {
    let Failure::Error { kind, .. } = failure else {
        return None;
    };
    if used.contains(kind) {
        return None;
    }
    step.remediations.iter().find(|remediation| remediation.on == *kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;

    fn line(build: u64, text: &str) -> LogLine {
        LogLine { build, header: false, origin: Origin::Build, text: text.to_owned() }
    }

    fn runtime(build: u64, text: &str) -> LogLine {
        LogLine { build, header: false, origin: Origin::Runtime, text: text.to_owned() }
    }

    /// Tilt's status once build `number` has finished without error.
    fn finished(number: u64) -> BuildStatus {
        BuildStatus { finished: vec![FinishedBuild { number, error: None }], ..BuildStatus::default() }
    }

    fn at(build: u64) -> Baseline {
        Baseline { log: build, status: build }
    }

    fn header(build: u64) -> LogLine {
        LogLine { build, header: true, origin: Origin::Build, text: "CLI Trigger".to_owned() }
    }

    const RUNNING: &str = "Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`";

    fn feed(watch: &mut Watch, lines: &[LogLine]) -> Progress {
        let mut progress = Progress::Watching;
        for line in lines {
            progress = watch.on_line(line);
        }
        progress
    }

    #[test]
    fn earlier_builds_neither_fail_nor_pass_ours() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("server").unwrap(), at(4), 100);
        let old = [header(3), line(3, "error[E0425]: cannot find value"), line(4, RUNNING)];
        assert_eq!(feed(&mut watch, &old), Progress::Watching);
        let ours = [header(5), line(5, "Compiling server"), line(5, RUNNING)];
        assert_eq!(feed(&mut watch, &ours), Progress::Watching, "a success line waits for Tilt's record");
        assert!(watch.needs_status());
        assert_eq!(watch.on_status(&finished(5)), Progress::Succeeded(RUNNING.to_owned()));
    }

    #[test]
    fn the_previous_containers_output_neither_passes_nor_fails_our_build() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("server").unwrap(), at(4), 100);
        let in_progress = BuildStatus { current: Some(5), ..finished(4) };
        // Our build (5) started; the old container, still running, prints its lines.
        feed(&mut watch, &[header(5), runtime(5, RUNNING)]);
        assert!(watch.needs_status());
        assert_eq!(watch.on_status(&in_progress), Progress::Watching);
        feed(&mut watch, &[runtime(5, "thread 'main' panicked at src/main.rs:1:1")]);
        assert_eq!(watch.on_status(&in_progress), Progress::Watching);
        assert!(!watch.needs_status());
        // Our build finished: its container's lines count.
        assert_eq!(watch.on_status(&finished(5)), Progress::Watching);
        assert_eq!(feed(&mut watch, &[runtime(5, RUNNING)]), Progress::Succeeded(RUNNING.to_owned()));
    }

    #[test]
    fn a_container_error_after_our_build_finished_fails_the_step() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("server").unwrap(), at(4), 100);
        feed(&mut watch, &[header(5), runtime(5, "thread 'main' panicked at src/main.rs:1:1")]);
        assert!(matches!(watch.on_status(&finished(5)), Progress::Failed(Failure::Error { .. })));
    }

    #[test]
    fn the_recheck_finds_an_error_the_stream_had_not_delivered() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("server").unwrap(), at(4), 100);
        feed(&mut watch, &[header(5), line(5, RUNNING)]);
        assert_eq!(watch.on_status(&finished(5)), Progress::Succeeded(RUNNING.to_owned()));
        let snapshot = [
            line(4, "error[E0425]: an older build's"),
            header(5),
            runtime(5, "error: the previous container's, during our build"),
            line(5, RUNNING),
        ];
        assert_eq!(watch.recheck(&snapshot), Progress::Succeeded(RUNNING.to_owned()));
        let late = [header(5), line(5, RUNNING), line(5, "error[E0599]: delivered late")];
        assert!(matches!(watch.recheck(&late), Progress::Failed(Failure::Error { .. })));
    }

    #[test]
    fn the_recheck_finds_our_containers_late_error_and_disowns_the_previous_ones_success() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let ours_finished = |watch: &mut Watch| {
            feed(watch, &[header(5), line(5, "Compiling"), runtime(5, RUNNING)]);
            assert_eq!(watch.on_status(&finished(5)), Progress::Succeeded(RUNNING.to_owned()));
        };
        let mut watch = Watch::new(step, at(4), 100);
        ours_finished(&mut watch);
        let crash = [header(5), line(5, "Compiling"), runtime(5, RUNNING), runtime(5, "error: could not bind")];
        assert!(matches!(watch.recheck(&crash), Progress::Failed(Failure::Error { .. })));

        let mut watch = Watch::new(step, at(4), 100);
        ours_finished(&mut watch);
        let previous = [header(5), runtime(5, RUNNING), line(5, "Compiling"), line(5, "Finished")];
        assert_eq!(watch.recheck(&previous), Progress::Watching, "the previous container's line");
    }

    #[test]
    fn a_build_line_after_a_container_success_disowns_it() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("server").unwrap(), at(4), 100);
        feed(&mut watch, &[header(5), runtime(5, RUNNING), line(5, "Compiling")]);
        assert!(!watch.success_pending());
        assert_eq!(watch.on_status(&finished(5)), Progress::Watching);
    }

    #[test]
    fn a_build_line_success_waits_while_tilt_says_the_build_runs() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("server").unwrap(), at(4), 100);
        feed(&mut watch, &[header(5), line(5, RUNNING)]);
        let in_progress = BuildStatus { current: Some(5), ..BuildStatus::default() };
        assert_eq!(watch.on_status(&in_progress), Progress::Watching);
        assert!(watch.success_pending() && !watch.needs_status(), "still waiting for Tilt's record, asked later");
        assert_eq!(watch.on_status(&finished(5)), Progress::Succeeded(RUNNING.to_owned()));
    }

    #[test]
    fn an_error_after_the_success_line_fails_the_step() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("sync-wasm-client").unwrap();
        let mut watch = Watch::new(step, at(0), 100);
        let lines =
            [header(1), line(1, "[INFO] WASM client synchronization complete!"), line(1, "[ERROR] late failure")];
        assert!(matches!(feed(&mut watch, &lines), Progress::Failed(Failure::Error { .. })));
        let mut watch = Watch::new(step, at(0), 100);
        feed(&mut watch, &lines[..2]);
        assert_eq!(
            watch.on_status(&finished(1)),
            Progress::Succeeded("[INFO] WASM client synchronization complete!".to_owned())
        );
        assert!(matches!(watch.on_line(&lines[2]), Progress::Failed(Failure::Error { .. })));
    }

    #[test]
    fn a_newer_build_before_our_success_is_uncertain() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("server").unwrap(), at(2), 100);
        let lines = [header(3), line(3, "Compiling"), header(4), line(4, RUNNING)];
        assert_eq!(feed(&mut watch, &lines), Progress::Failed(Failure::Superseded { by: 4 }));
    }

    #[test]
    fn tilts_record_of_a_failure_fails_the_step_without_any_line() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("server").unwrap(), at(2), 100);
        let mut status = BuildStatus {
            current: None,
            finished: vec![FinishedBuild { number: 2, error: Some("old".to_owned()) }],
            runtime_failed: true,
        };
        assert_eq!(watch.on_status(&status), Progress::Watching, "the old build's failure is not ours");
        status.finished.insert(0, FinishedBuild { number: 3, error: Some("exit status 1".to_owned()) });
        assert_eq!(
            watch.on_status(&status),
            Progress::Failed(Failure::TiltRecorded { error: "exit status 1".to_owned() })
        );
    }

    #[test]
    fn a_failed_container_counts_only_once_our_build_finished() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("sync-wasm-client").unwrap(), at(2), 100);
        let running = BuildStatus { current: Some(3), runtime_failed: true, ..BuildStatus::default() };
        assert_eq!(watch.on_status(&running), Progress::Watching);
        let finished = BuildStatus {
            finished: vec![FinishedBuild { number: 3, error: None }],
            runtime_failed: true,
            ..BuildStatus::default()
        };
        assert_eq!(watch.on_status(&finished), Progress::Failed(Failure::ContainerFailed));
    }

    #[test]
    fn the_newest_build_includes_the_running_one() {
        let status = BuildStatus {
            current: Some(7),
            finished: vec![FinishedBuild { number: 6, error: None }],
            runtime_failed: false,
        };
        assert_eq!(status.newest_build(), 7);
        assert_eq!(BuildStatus::default().newest_build(), 0);
    }

    #[test]
    fn the_tail_keeps_the_last_lines_of_our_build() {
        let protocol = Protocol::load(None).unwrap();
        let mut watch = Watch::new(protocol.step("server").unwrap(), at(0), 2);
        feed(&mut watch, &[header(1), line(1, "a"), line(1, "b"), line(1, "c")]);
        assert_eq!(watch.tail().collect::<Vec<_>>(), ["b", "c"]);
    }

    #[test]
    fn a_remediation_is_used_once_per_error_kind() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("sync-wasm-client").unwrap();
        let kind = |name: &str| KindId(protocol.kinds.iter().position(|kind| kind.name == name).unwrap());
        let ts2688 =
            Failure::Error { kind: kind("missing-node-types"), rule: "TS2688".to_owned(), line: "TS2688".to_owned() };
        let mut used = HashSet::new();
        assert!(remediation_for(step, &ts2688, &used).is_some());
        used.insert(kind("missing-node-types"));
        assert!(remediation_for(step, &ts2688, &used).is_none());
        let rust = Failure::Error { kind: kind("rust-compile"), rule: "x".to_owned(), line: "error[E0425]".to_owned() };
        assert!(remediation_for(step, &rust, &HashSet::new()).is_none());
        assert!(remediation_for(step, &Failure::Timeout, &HashSet::new()).is_none());
    }
}
