//! The per-step state machine, pure: fed the resource's log lines and Tilt's status for it,
//! it decides whether our build succeeded, failed, or is still going. `sync.rs` feeds it.

use std::collections::{HashSet, VecDeque};

use crate::{
    config::{KindId, Remediation, Step},
    scan::{self, Verdict},
};

/// One line of a resource's log, placed in the build it belongs to. `build` is Tilt's build
/// number (`spanID` `build:N`), or, when Tilt cannot print JSON, the ordinal of the build's
/// header in the log. Runtime output belongs to the latest build before it. `text` has no ANSI
/// colour codes: they are stripped where the line is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub build: u64,
    pub header: bool,
    pub text: String,
}

/// What `tilt get uiresource` says of a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildStatus {
    pub current: Option<u64>,
    /// Finished builds, newest first.
    pub finished: Vec<FinishedBuild>,
    pub queued: bool,
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
    /// A line of our build matched an error kind.
    Error {
        kind: KindId,
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
pub struct Watch<'s> {
    step: &'s Step,
    baseline: Baseline,
    ours: Option<u64>,
    success: Option<String>,
    failure: Option<Failure>,
    tail: VecDeque<String>,
    tail_len: usize,
}

impl<'s> Watch<'s> {
    pub fn new(step: &'s Step, baseline: Baseline, tail_len: usize) -> Watch<'s> {
        Watch { step, baseline, ours: None, success: None, failure: None, tail: VecDeque::new(), tail_len }
    }

    /// Whether the line comes from a build started after our trigger (the step's log keeps it).
    pub fn is_since_trigger(&self, line: &LogLine) -> bool {
        line.build > self.baseline.log
    }

    /// The last lines of our build, for the report.
    pub fn tail(&self) -> impl Iterator<Item = &str> {
        self.tail.iter().map(String::as_str)
    }

    pub fn progress(&self) -> Progress {
        match (&self.failure, &self.success) {
            (Some(failure), _) => Progress::Failed(failure.clone()),
            (None, Some(line)) => Progress::Succeeded(line.clone()),
            (None, None) => Progress::Watching,
        }
    }

    pub fn fail(&mut self, failure: Failure) -> Progress {
        self.failure.get_or_insert(failure);
        self.progress()
    }

    pub fn on_line(&mut self, line: &LogLine) -> Progress {
        if self.failure.is_some() {
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
        if self.tail.len() == self.tail_len {
            self.tail.pop_front();
        }
        let verdict = scan::classify(self.step, &line.text);
        self.tail.push_back(line.text.clone());
        let text = &line.text;
        match verdict {
            Verdict::Benign => {}
            // An error wins even after the success line: the script goes on after its failures.
            Verdict::Error(kind) => return self.fail(Failure::Error { kind, line: text.to_owned() }),
            Verdict::Success => {
                self.success.get_or_insert_with(|| text.to_owned());
            }
        }
        self.progress()
    }

    /// Tilt's own record is a second opinion: a build it records as failed fails the step even
    /// when no pattern matched. Its runtime status describes the previous container until our
    /// build has finished, so it only counts after that.
    pub fn on_status(&mut self, status: &BuildStatus) -> Progress {
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
        LogLine { build, header: false, text: text.to_owned() }
    }

    fn at(build: u64) -> Baseline {
        Baseline { log: build, status: build }
    }

    fn header(build: u64) -> LogLine {
        LogLine { build, header: true, text: "CLI Trigger".to_owned() }
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
        assert_eq!(feed(&mut watch, &ours), Progress::Succeeded(RUNNING.to_owned()));
    }

    #[test]
    fn an_error_after_the_success_line_fails_the_step() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("sync-wasm-client").unwrap();
        let mut watch = Watch::new(step, at(0), 100);
        let lines = [
            header(1),
            line(1, "[INFO] WASM client synchronization complete!"),
            line(1, "\x1b[0;31m[ERROR]\x1b[0m late failure"),
        ];
        assert!(matches!(feed(&mut watch, &lines), Progress::Failed(Failure::Error { .. })));
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
            queued: false,
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
            queued: true,
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
        let ts2688 = Failure::Error { kind: kind("missing-node-types"), line: "TS2688".to_owned() };
        let mut used = HashSet::new();
        assert!(remediation_for(step, &ts2688, &used).is_some());
        used.insert(kind("missing-node-types"));
        assert!(remediation_for(step, &ts2688, &used).is_none());
        let rust = Failure::Error { kind: kind("rust-compile"), line: "error[E0425]".to_owned() };
        assert!(remediation_for(step, &rust, &HashSet::new()).is_none());
        assert!(remediation_for(step, &Failure::Timeout, &HashSet::new()).is_none());
    }
}
