//! What the user and the next tool read: the SUCCESS/ERROR report and its `--json` form. Pure:
//! the run fills it in, `logs.rs` saves it.

pub mod live;
pub mod location;

use std::{borrow::Cow, time::Duration};

use anstyle::{AnsiColor, Style};
use camino::Utf8PathBuf;

use crate::{
    protocol::{KindId, Protocol, Step},
    report::location::hyperlink,
    run::{BuildId, Failure, How},
    store::status::{Location, Outcome, RunStatus, StepStatus, SyncStatus},
    tilt::model::WallTime,
};

impl How {
    /// The step's verdict in a word, for the live line.
    pub fn word(&self) -> &'static str {
        match self {
            How::Passed { .. } => "ok",
            How::Failed(Failure::Timeout) => "timeout",
            How::Failed(Failure::Interrupted) => "interrupted",
            How::Failed(_) => "failed",
            How::CutShort => "stopped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub name: String,
    pub resource: String,
    pub outcome: Outcome,
    pub duration: Duration,
    /// When the step began (before its trigger) and was decided.
    pub started_at: Option<WallTime>,
    pub decided_at: Option<WallTime>,
    pub remediations: Vec<String>,
    pub deciding_line: Option<String>,
    /// For a failure: the one-line cause, e.g. `Step 2 FAILED: server rebuild error: …`.
    pub cause: Option<String>,
    /// The step's log since its trigger.
    pub log: Option<Utf8PathBuf>,
    pub tail: Vec<String>,
    /// The Tilt build that passed.
    pub build: Option<BuildId>,
    /// Where the deciding error is, as its compiler said.
    pub location: Option<Location>,
}

impl StepReport {
    /// A step that did not start: not selected, or after a failure.
    pub fn unstarted(step: &Step, outcome: Outcome) -> StepReport {
        StepReport {
            name: step.name.clone(),
            resource: step.resource.clone(),
            outcome,
            duration: Duration::ZERO,
            started_at: None,
            decided_at: None,
            remediations: Vec::new(),
            deciding_line: None,
            cause: None,
            log: None,
            tail: Vec::new(),
            build: None,
            location: None,
        }
    }
}

#[derive(Debug, Default)]
pub struct RunReport {
    pub steps: Vec<StepReport>,
    /// Said instead of the usual success line when there was nothing to run.
    pub message: Option<String>,
    pub interrupted: bool,
    /// The saved error log, or why it could not be saved.
    pub error_log: Option<Result<Utf8PathBuf, String>>,
    /// The sync's own CPU time and how long it took, filled in at the end.
    pub cpu_ms: Option<u64>,
    pub took: Option<Duration>,
}

impl RunReport {
    /// A successful run that had no step to run, saying why.
    pub fn nothing_to_do(protocol: &Protocol, message: String) -> RunReport {
        let steps = protocol.steps.iter().map(|step| StepReport::unstarted(step, Outcome::Skipped)).collect();
        RunReport { steps, message: Some(message), ..RunReport::default() }
    }

    /// The failed step (or the one Ctrl-C stopped) and its number in the protocol.
    pub fn failed_step(&self) -> Option<(usize, &StepReport)> {
        self.steps
            .iter()
            .enumerate()
            .find(|(_, step)| matches!(step.outcome, Outcome::Failed | Outcome::Timeout | Outcome::Interrupted))
    }

    pub fn succeeded(&self) -> bool {
        self.failed_step().is_none() && !self.interrupted
    }

    fn status(&self) -> RunStatus {
        match (self.interrupted, self.succeeded()) {
            (true, _) => RunStatus::Interrupted,
            (false, true) => RunStatus::Success,
            (false, false) => RunStatus::Failed,
        }
    }

    /// The report for people, its verdict in colour (printed through `anstream`, which drops
    /// the colour where it has no place: not a terminal, `NO_COLOR`); `links`: the error's place
    /// as a terminal hyperlink to a file under this root.
    pub fn text(&self, links: Option<&str>) -> String {
        let (ok, error) = (
            Style::new().bold().fg_color(Some(AnsiColor::Green.into())),
            Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
        );
        let mut out = String::new();
        if let (Some(message), true) = (&self.message, self.succeeded()) {
            let message = message
                .strip_prefix("SUCCESS")
                .map_or_else(|| message.clone(), |rest| format!("{ok}SUCCESS{ok:#}{rest}"));
            return format!("{message}\n");
        }
        let Some((index, step)) = self.failed_step() else {
            if self.interrupted {
                out.push_str(&format!(
                    "{error}INTERRUPTED{error:#}: stopped by Ctrl-C before any step was triggered; nothing was built\n"
                ));
                out.push_str(&self.times());
                return out;
            }
            let affected: Vec<&str> =
                self.steps.iter().filter(|step| step.outcome == Outcome::Ok).map(|step| step.name.as_str()).collect();
            out.push_str(&format!(
                "{ok}SUCCESS{ok:#}: The sync and deploy process completed successfully for all services\n"
            ));
            out.push_str(&format!("Affected services: {}\n", affected.join(", ")));
            out.push_str(&self.times());
            return out;
        };
        match step.outcome {
            Outcome::Interrupted => out.push_str(&format!(
                "{error}INTERRUPTED{error:#}: stopped by Ctrl-C at Step {} ({}); Tilt goes on with the build it \
                 started\n",
                index + 1,
                step.resource
            )),
            _ => out.push_str(&format!(
                "{error}ERROR{error:#}: The sync and deploy process failed at Step {} ({}). See logs below for \
                 details\n",
                index + 1,
                step.resource
            )),
        }
        if let Some(cause) = &step.cause {
            match (&step.location, links) {
                (Some(at), Some(root)) => {
                    let target = if at.path.starts_with('/') { at.path.clone() } else { format!("{root}/{}", at.path) };
                    out.push_str(&cause.replacen(&at.to_string(), &hyperlink(&at.to_string(), &target), 1));
                }
                _ => out.push_str(cause),
            }
            out.push('\n');
        }
        match &self.error_log {
            Some(Ok(path)) => out.push_str(&format!("Log saved to {path}\n")),
            Some(Err(why)) => out.push_str(&format!("The log could not be saved: {why}\n")),
            None => {}
        }
        out.push_str(&self.times());
        if !step.tail.is_empty() {
            out.push_str(&format!("--- last {} lines of {}'s log ---\n", step.tail.len(), step.resource));
            for line in &step.tail {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// `Took 12.3s: sync-wasm-client 3.1s, server 4.2s (failed)` for the steps that ran.
    fn times(&self) -> String {
        let ran: Vec<String> = self
            .steps
            .iter()
            .filter(|step| !matches!(step.outcome, Outcome::Skipped | Outcome::NotRun))
            .map(|step| {
                let outcome =
                    if step.outcome == Outcome::Ok { String::new() } else { format!(" ({})", step.outcome.as_str()) };
                format!("{} {:.1}s{outcome}", step.name, step.duration.as_secs_f64())
            })
            .collect();
        match self.took {
            Some(took) if !ran.is_empty() => format!("Took {:.1}s: {}\n", took.as_secs_f64(), ran.join(", ")),
            _ => String::new(),
        }
    }

    /// The report as `sync-status.json` and `--json` give it, the run having finished at
    /// `finished_at`.
    pub fn document(&self, finished_at: WallTime) -> SyncStatus {
        let (error_log, log_error) = match &self.error_log {
            Some(Ok(path)) => (Some(path.clone().into()), None),
            Some(Err(why)) => (None, Some(why.clone())),
            None => (None, None),
        };
        SyncStatus {
            status: self.status(),
            cpu_ms: self.cpu_ms,
            took_ms: self.took.map(millis),
            finished_at,
            message: self.message.clone(),
            failed_step: self.failed_step().map(|(index, _)| index + 1),
            error_log,
            log_error,
            steps: self.steps.iter().map(StepReport::document).collect(),
        }
    }
}

impl StepReport {
    fn document(&self) -> StepStatus {
        StepStatus {
            name: self.name.clone(),
            resource: self.resource.clone(),
            outcome: self.outcome,
            duration_ms: millis(self.duration),
            started_at: self.started_at,
            decided_at: self.decided_at,
            remediations: self.remediations.clone(),
            deciding_line: self.deciding_line.clone(),
            cause: self.cause.clone(),
            log: self.log.clone().map(Into::into),
            build: self.build.as_ref().map(|build| build.number),
            location: self.location.clone(),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A long error line, as the one-line cause shows it: around what its error pattern (`rule`)
/// matched, the rest cut (the saved log keeps the line).
fn excerpt<'l>(line: &'l str, rule: &str) -> Cow<'l, str> {
    const AROUND: usize = 100;
    if line.len() <= 3 * AROUND {
        return Cow::Borrowed(line);
    }
    let matched = regex::Regex::new(rule).ok().and_then(|pattern| pattern.find(line));
    let (start, end) = matched.map_or((0, 0), |found| (found.start(), found.end()));
    let mut from = start.saturating_sub(AROUND);
    while !line.is_char_boundary(from) {
        from -= 1;
    }
    let mut to = (end + AROUND).min(line.len());
    while !line.is_char_boundary(to) {
        to += 1;
    }
    let before = if from > 0 { "…" } else { "" };
    let after = if to < line.len() { "…" } else { "" };
    Cow::Owned(format!("{before}{}{after}", &line[from..to]))
}

/// What the one line that says why a step failed is made of.
pub struct Cause<'a> {
    pub protocol: &'a Protocol,
    /// The step's number in the protocol.
    pub number: usize,
    pub step: &'a Step,
    /// The error kinds whose remediation ran, described in `remediations`.
    pub remediated: &'a [KindId],
    pub remediations: &'a [String],
    /// Where the deciding error is, as its compiler said.
    pub location: Option<&'a Location>,
}

impl Cause<'_> {
    /// The one line that says why the step failed, and what to do.
    pub fn of(&self, failure: &Failure) -> String {
        let Cause { protocol, number, step, remediated, remediations, location } = self;
        let resource = &step.resource;
        let failed = format!("Step {number} FAILED:");
        match failure {
            Failure::Error { kind, line, rule } => {
                let kind_info = protocol.kind(*kind);
                let after = if remediated.contains(kind) {
                    format!(" (still failing after the remediation: {})", remediations.join("; "))
                } else {
                    String::new()
                };
                let at = location.map(|at| format!(" at {at}")).unwrap_or_default();
                format!(
                    "{failed} {resource} rebuild error: {}{at} — {}{after}",
                    excerpt(tilt_log::strip_buildkit(line).trim(), rule),
                    kind_info.advice
                )
            }
            Failure::Timeout => {
                format!("{failed} {resource} timeout - build did not complete: no success line within {}", step.timeout)
            }
            Failure::TiltRecorded { error } => format!("{failed} Tilt recorded {resource}'s build as failed: {error}"),
            Failure::RuntimeFailed { detail, container: true } => {
                format!("{failed} {resource}'s container stopped after its build ({detail}): read `tilt logs {resource}`")
            }
            Failure::RuntimeFailed { detail, container: false } => format!(
                "{failed} {resource}'s serve process stopped after its build ({detail}): read `tilt logs {resource}`"
            ),
            Failure::NoSuccessLine { detail } => format!(
                "{failed} {resource} ended without its success line ({detail}): read `tilt logs {resource}`"
            ),
            Failure::Unhealthy => {
                format!("{failed} {resource}'s container reports unhealthy (its healthcheck fails): read `tilt logs {resource}`")
            }
            Failure::Blocked { dependency, error } => format!(
                "{failed} Tilt holds {resource}'s build until {dependency} is ready, and {dependency}'s latest build \
                 failed ({error}): fix it and sync it first"
            ),
            Failure::Disabled => format!(
                "{failed} {resource} is disabled in Tilt: enable it (Tilt's UI, or `tilt enable {resource}`), then sync again"
            ),
            Failure::Removed => format!(
                "{failed} Tilt no longer has {resource}: the Tiltfile changed (renamed or removed it); fix the \
                 protocol's `resource` or the Tiltfile, then sync again"
            ),
            Failure::Canceled { line } => {
                format!("{failed} Tilt canceled {resource}'s build ({line}): sync again when it should build")
            }
            Failure::LogCut => format!(
                "{failed} Uncertain if step completed - stopping for safety: Tilt cut lines of {resource}'s build from \
                 its log (Tilt keeps 2 MB of log for all resources and drops the oldest lines of the largest one), so \
                 the build cannot be judged whole: sync again, and make the build (or another chatty resource) print \
                 less, e.g. a lower RUST_LOG"
            ),
            Failure::LaterBuildFailed { build, error } => {
                format!("{failed} a later build of {resource} (build {build}, triggered elsewhere) failed: {error}")
            }
            Failure::NoLongerStands(trouble) => format!("{failed} {trouble}"),
            Failure::Uncertain(why) => format!("{failed} Uncertain if step completed - stopping for safety: {why}"),
            Failure::Superseded { by } => format!(
                "{failed} Uncertain if step completed - stopping for safety: another build of {resource} (build {by}) \
                 started before ours was decided"
            ),
            Failure::TiltGone => {
                format!("{failed} Tilt went away while watching {resource}: start it again with `tilt up`, then sync again")
            }
            Failure::Interrupted => format!(
                "Step {number} INTERRUPTED: stopped by Ctrl-C while watching {resource}; Tilt goes on with the build it \
                 started"
            ),
            Failure::TiltCall(why) => format!("{failed} {resource}: {why}"),
            Failure::RemediationFailed(why) => format!("{failed} {resource}: the remediation failed: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_error_line_is_shown_around_its_error() {
        let line = format!("{} [ERROR] NOT synchronized! {}", "x".repeat(70_000), "y".repeat(500));
        let shown = excerpt(&line, r"\[ERROR\]");
        assert!(shown.starts_with('…') && shown.ends_with('…') && shown.len() < 300, "{shown}");
        assert!(shown.contains("[ERROR] NOT synchronized!"));
        assert_eq!(excerpt("error: short", "error"), "error: short");
    }
}
