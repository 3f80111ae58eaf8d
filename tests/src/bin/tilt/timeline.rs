//! The pure model: what a Tilt running a scenario has built, logged and reports at a moment.
//!
//! Nothing here reads the clock or the disk: [`timeline`] takes the scenario, the recorded
//! triggers and "now" (milliseconds since scenario start) and returns every log line due by
//! then and every resource's status.

use crate::scenario::{BuildSpec, Scenario};
use crate::state::Trigger;

/// The pause between two history builds, and between the last one and scenario start.
const HISTORY_GAP_MS: i64 = 1000;

/// Why a build ran: the text of its second header line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    InitialBuild,
    CliTrigger,
}

impl Reason {
    pub fn text(self) -> &'static str {
        match self {
            Reason::InitialBuild => "Initial Build",
            Reason::CliTrigger => "CLI Trigger",
        }
    }
}

/// One build, placed in time.
#[derive(Debug, Clone)]
pub struct Build<'a> {
    /// The `N` of `build:N`, shared by all resources.
    pub number: u32,
    /// Index of the resource in the scenario.
    pub resource: usize,
    pub reason: Reason,
    /// When Tilt learnt of the build (its trigger); history builds: their start.
    pub created_ms: i64,
    pub start_ms: i64,
    pub spec: &'a BuildSpec,
}

impl Build<'_> {
    pub fn finish_ms(&self) -> i64 {
        self.start_ms + ms(self.spec.duration_ms)
    }

    pub fn failed(&self) -> bool {
        self.spec.error.is_some()
    }

    /// When the container started by this (successful) build exits, with its exit code.
    fn exit(&self) -> Option<(i64, i32)> {
        if self.failed() {
            return None;
        }
        let code = self.spec.exit_code?;
        Some((self.finish_ms() + ms(self.spec.runtime_ms), code))
    }

    pub fn span_id(&self) -> String {
        format!("build:{}", self.number)
    }
}

/// Identifies a log line across invocations: (build number, index within the build's lines).
pub type LineId = (u32, u32);

/// One log line and when Tilt writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub id: LineId,
    pub due_ms: i64,
    pub resource: &'a str,
    pub span_id: String,
    /// One of the two header lines of a build (`"buildEvent":"init"`).
    pub init: bool,
    pub text: String,
}

/// `status.updateStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateStatus {
    None,
    Pending,
    InProgress,
    Ok,
    Error,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::None => "none",
            UpdateStatus::Pending => "pending",
            UpdateStatus::InProgress => "in_progress",
            UpdateStatus::Ok => "ok",
            UpdateStatus::Error => "error",
        }
    }
}

/// `status.runtimeStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeStatus {
    Pending,
    Ok,
    Error,
}

impl RuntimeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Pending => "pending",
            RuntimeStatus::Ok => "ok",
            RuntimeStatus::Error => "error",
        }
    }
}

/// A finished build, as in `status.buildHistory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedBuild {
    pub number: u32,
    pub start_ms: i64,
    pub finish_ms: i64,
    pub error: Option<String>,
}

/// A build in progress, as in `status.currentBuild`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningBuild {
    pub number: u32,
    pub start_ms: i64,
}

/// One condition of `status.conditions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    pub kind: &'static str,
    pub status: bool,
    /// Present only when `status` is false, as in Tilt.
    pub reason: Option<&'static str>,
}

/// The status of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus<'a> {
    pub name: &'a str,
    /// Finished builds, newest first, at most two (as Tilt keeps).
    pub build_history: Vec<FinishedBuild>,
    pub current_build: Option<RunningBuild>,
    pub queued: bool,
    pub update_status: UpdateStatus,
    pub runtime_status: RuntimeStatus,
}

impl ResourceStatus<'_> {
    /// `UpToDate` then `Ready`, computed as Tilt's `internal/hud/webview/convert.go` does.
    pub fn conditions(&self) -> [Condition; 2] {
        let up_to_date = self.update_status == UpdateStatus::Ok;
        let up_to_date_reason = match self.update_status {
            UpdateStatus::Ok => None,
            UpdateStatus::Error => Some("UpdateError"),
            UpdateStatus::Pending => Some("UpdatePending"),
            _ => Some("Unknown"),
        };
        let ready = self.runtime_status == RuntimeStatus::Ok;
        let ready_reason = if ready {
            None
        } else if self.runtime_status == RuntimeStatus::Error {
            Some("RuntimeError")
        } else if self.update_status == UpdateStatus::Error {
            Some("UpdateError")
        } else if self.update_status == UpdateStatus::Ok {
            Some("RuntimePending")
        } else if self.update_status == UpdateStatus::Pending {
            Some("UpdatePending")
        } else {
            Some("Unknown")
        };
        [
            Condition { kind: "UpToDate", status: up_to_date, reason: up_to_date_reason },
            Condition { kind: "Ready", status: ready, reason: ready_reason },
        ]
    }
}

/// What Tilt has done by `now_ms`.
#[derive(Debug, Clone)]
pub struct Timeline<'a> {
    /// Every line due by now, in the order Tilt wrote them.
    pub lines: Vec<LogLine<'a>>,
    /// One per resource, in scenario order.
    pub statuses: Vec<ResourceStatus<'a>>,
}

impl<'a> Timeline<'a> {
    pub fn status(&self, resource: &str) -> Option<&ResourceStatus<'a>> {
        self.statuses.iter().find(|s| s.name == resource)
    }
}

/// When Tilt stops (ms since scenario start), if it does: `stop_after_ms` after the first
/// trigger.
pub fn stop_ms(scenario: &Scenario, triggers: &[Trigger]) -> Option<i64> {
    let first = triggers.first()?;
    Some(first.ms + ms(scenario.stop_after_ms?))
}

/// Computes everything Tilt has done by `now_ms`: builds placed in time (history, running,
/// triggered with queueing), log lines due, and each resource's status.
pub fn timeline<'a>(scenario: &'a Scenario, triggers: &[Trigger], now_ms: i64) -> Timeline<'a> {
    let builds = schedule(scenario, triggers, now_ms);

    let mut lines: Vec<LogLine<'a>> = builds
        .iter()
        .flat_map(|build| build_lines(build, &scenario.resources[build.resource].name))
        .filter(|line| line.due_ms <= now_ms)
        .collect();
    // Stable: lines due at the same moment keep build order, then line order.
    lines.sort_by_key(|line| line.due_ms);

    let statuses = scenario
        .resources
        .iter()
        .enumerate()
        .map(|(index, resource)| {
            let own: Vec<&Build> = builds.iter().filter(|b| b.resource == index).collect();
            resource_status(&resource.name, &own, now_ms)
        })
        .collect();

    Timeline { lines, statuses }
}

/// Places every build in time: history builds back to back before scenario start, running
/// builds at scenario start, then each trigger up to `now_ms` (queued behind a build in
/// progress, or dropped if one is already queued).
fn schedule<'a>(scenario: &'a Scenario, triggers: &[Trigger], now_ms: i64) -> Vec<Build<'a>> {
    let mut builds: Vec<Build<'a>> = Vec::new();
    let mut next_number = 1;
    let mut number = || {
        let n = next_number;
        next_number += 1;
        n
    };

    for (index, resource) in scenario.resources.iter().enumerate() {
        for (k, spec) in resource.history.iter().enumerate() {
            let reason = if k == 0 { Reason::InitialBuild } else { Reason::CliTrigger };
            builds.push(Build { number: number(), resource: index, reason, created_ms: 0, start_ms: 0, spec });
        }
    }
    // Back to back, the newest ending HISTORY_GAP_MS before scenario start.
    let mut cursor = -HISTORY_GAP_MS;
    for build in builds.iter_mut().rev() {
        build.start_ms = cursor - ms(build.spec.runtime_ms) - ms(build.spec.duration_ms);
        build.created_ms = build.start_ms;
        cursor = build.start_ms - HISTORY_GAP_MS;
    }

    for (index, resource) in scenario.resources.iter().enumerate() {
        if let Some(spec) = &resource.running {
            builds.push(Build {
                number: number(),
                resource: index,
                reason: Reason::CliTrigger,
                created_ms: 0,
                start_ms: 0,
                spec,
            });
        }
    }

    let mut triggered_per_resource = vec![0usize; scenario.resources.len()];
    for trigger in triggers.iter().filter(|t| t.ms <= now_ms) {
        let Some(index) = scenario.resources.iter().position(|r| r.name == trigger.resource) else {
            continue;
        };
        let last = builds.iter().rev().find(|b| b.resource == index);
        let start_ms = match last {
            // A build is already queued: Tilt collapses the triggers.
            Some(last) if last.start_ms > trigger.ms => continue,
            // A build is in progress: ours waits for it.
            Some(last) if last.finish_ms() > trigger.ms => last.finish_ms(),
            _ => trigger.ms,
        };
        let spec = scenario.resources[index].triggered_build(triggered_per_resource[index]);
        triggered_per_resource[index] += 1;
        builds.push(Build {
            number: number(),
            resource: index,
            reason: Reason::CliTrigger,
            created_ms: trigger.ms,
            start_ms,
            spec,
        });
    }
    builds
}

/// Every line a build writes, due or not, in order.
fn build_lines<'a>(build: &Build<'a>, resource: &'a str) -> Vec<LogLine<'a>> {
    let span = build.span_id();
    let mut lines = Vec::new();
    let mut push = |due_ms: i64, span_id: &str, init: bool, text: String| {
        let index = u32::try_from(lines.len()).unwrap_or(u32::MAX);
        lines.push(LogLine { id: (build.number, index), due_ms, resource, span_id: span_id.to_owned(), init, text });
    };

    push(build.start_ms, &span, true, String::new());
    push(build.start_ms, &span, true, build.reason.text().to_owned());
    for (due_ms, text) in spread(build.start_ms, build.spec.duration_ms, &build.spec.lines) {
        push(due_ms, &span, false, text.clone());
    }
    match &build.spec.error {
        Some(error) => push(build.finish_ms(), &span, false, format!("Build Failed: {error}")),
        None => {
            let container_span = format!("dc:{resource}");
            let runtime = spread(build.finish_ms(), build.spec.runtime_ms, &build.spec.runtime);
            for (due_ms, text) in runtime {
                push(due_ms, &container_span, false, text.clone());
            }
        }
    }
    lines
}

/// Line `i` of `n` is due at `start + length * (i + 1) / n`.
fn spread(start_ms: i64, length_ms: u64, lines: &[String]) -> impl Iterator<Item = (i64, &String)> {
    let n = lines.len() as u64;
    lines.iter().enumerate().map(move |(i, line)| (start_ms + ms(length_ms * (i as u64 + 1) / n), line))
}

/// The status of one resource whose builds (in number order) are `builds`.
fn resource_status<'a>(name: &'a str, builds: &[&Build], now_ms: i64) -> ResourceStatus<'a> {
    let known = || builds.iter().filter(|b| b.created_ms <= now_ms);
    let finished: Vec<&Build> = known().filter(|b| b.finish_ms() <= now_ms).copied().collect();
    let current_build = known()
        .find(|b| b.start_ms <= now_ms && now_ms < b.finish_ms())
        .map(|b| RunningBuild { number: b.number, start_ms: b.start_ms });
    let queued = known().any(|b| now_ms < b.start_ms);

    let update_status = if current_build.is_some() {
        UpdateStatus::InProgress
    } else if queued {
        UpdateStatus::Pending
    } else {
        match finished.last() {
            None => UpdateStatus::None,
            Some(b) if b.failed() => UpdateStatus::Error,
            Some(_) => UpdateStatus::Ok,
        }
    };

    // The container of the newest successful build, until it exits.
    let runtime_status = match finished.iter().rev().find(|b| !b.failed()) {
        None => RuntimeStatus::Pending,
        Some(b) => match b.exit() {
            Some((exit_ms, code)) if exit_ms <= now_ms && code != 0 => RuntimeStatus::Error,
            _ => RuntimeStatus::Ok,
        },
    };

    let build_history = finished
        .iter()
        .rev()
        .take(2)
        .map(|b| FinishedBuild {
            number: b.number,
            start_ms: b.start_ms,
            finish_ms: b.finish_ms(),
            error: b.spec.error.clone(),
        })
        .collect();

    ResourceStatus { name, build_history, current_build, queued, update_status, runtime_status }
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        Scenario::parse(text).expect("valid scenario")
    }

    fn trigger(resource: &str, ms: i64) -> Trigger {
        Trigger { resource: resource.to_owned(), ms }
    }

    fn texts<'a>(timeline: &'a Timeline, resource: &str) -> Vec<&'a str> {
        timeline.lines.iter().filter(|l| l.resource == resource).map(|l| l.text.as_str()).collect()
    }

    const TWO_RESOURCES: &str = r#"
        [[resource]]
        name = "sync"
        [[resource.history]]
        lines = ["old sync"]
        [[resource.history]]
        lines = ["older error"]
        error = "boom"
        [resource.running]
        duration_ms = 800
        lines = ["running 1", "running 2"]
        [[resource.build]]
        duration_ms = 300
        lines = ["a", "b", "c"]
        runtime = ["up"]
        runtime_ms = 100
        exit_code = 1

        [[resource]]
        name = "server"
        [[resource.history]]
        lines = ["old server"]
    "#;

    #[test]
    fn numbering_is_shared_history_then_running_then_triggers() {
        let s = scenario(TWO_RESOURCES);
        let builds = schedule(&s, &[trigger("server", 10), trigger("sync", 20)], 30);
        let numbers: Vec<(u32, &str, Reason)> =
            builds.iter().map(|b| (b.number, s.resources[b.resource].name.as_str(), b.reason)).collect();
        assert_eq!(
            numbers,
            [
                (1, "sync", Reason::InitialBuild),
                (2, "sync", Reason::CliTrigger),
                (3, "server", Reason::InitialBuild),
                (4, "sync", Reason::CliTrigger),
                (5, "server", Reason::CliTrigger),
                (6, "sync", Reason::CliTrigger),
            ]
        );
        // History ends before scenario start, oldest first, in number order.
        assert!(builds[0].start_ms < builds[1].start_ms);
        assert!(builds[2].finish_ms() < 0);
    }

    #[test]
    fn triggers_queue_behind_a_running_build_and_collapse() {
        let s = scenario(TWO_RESOURCES);
        // The running build (4) runs 0..800; the trigger at 100 queues build 5 for 800..1100;
        // the trigger at 200 is collapsed into it.
        let triggers = [trigger("sync", 100), trigger("sync", 200)];
        let t = timeline(&s, &triggers, 300);
        let status = t.status("sync").unwrap();
        assert!(status.queued);
        assert_eq!(status.update_status, UpdateStatus::InProgress);
        assert_eq!(status.current_build, Some(RunningBuild { number: 4, start_ms: 0 }));
        let builds = schedule(&s, &triggers, 300);
        assert_eq!(builds.len(), 5);
        assert_eq!((builds[4].number, builds[4].start_ms), (5, 800));

        let t = timeline(&s, &triggers, 900);
        let status = t.status("sync").unwrap();
        assert!(!status.queued);
        assert_eq!(status.current_build.map(|b| b.number), Some(5));
        assert_eq!(status.build_history[0].number, 4);

        // Once build 5 is done, a new trigger starts at once.
        let triggers = [trigger("sync", 100), trigger("sync", 1200)];
        let builds = schedule(&s, &triggers, 1200);
        assert_eq!(builds.last().map(|b| (b.number, b.start_ms)), Some((6, 1200)));
    }

    #[test]
    fn lines_are_due_spread_over_the_build_and_runtime() {
        let s = scenario(TWO_RESOURCES);
        let t = timeline(&s, &[trigger("sync", 1000)], 5000);
        let build: Vec<(i64, &str, &str, bool)> = t
            .lines
            .iter()
            .filter(|l| l.id.0 == 5)
            .map(|l| (l.due_ms, l.span_id.as_str(), l.text.as_str(), l.init))
            .collect();
        assert_eq!(
            build,
            [
                (1000, "build:5", "", true),
                (1000, "build:5", "CLI Trigger", true),
                (1100, "build:5", "a", false),
                (1200, "build:5", "b", false),
                (1300, "build:5", "c", false),
                (1400, "dc:sync", "up", false),
            ]
        );

        // Only what is due by now, history first, in time order across resources.
        let t = timeline(&s, &[trigger("sync", 1000)], 1150);
        assert_eq!(
            texts(&t, "sync"),
            [
                "",
                "Initial Build",
                "old sync",
                "",
                "CLI Trigger",
                "older error",
                "Build Failed: boom",
                "",
                "CLI Trigger",
                "running 1",
                "running 2",
                "",
                "CLI Trigger",
                "a",
            ]
        );
        let numbers: Vec<u32> = t.lines.iter().map(|l| l.id.0).collect();
        assert_eq!(numbers, [1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5]);
        assert!(t.lines.windows(2).all(|w| w[0].due_ms <= w[1].due_ms));
    }

    #[test]
    fn status_fields_follow_the_build_and_container() {
        let s = scenario(TWO_RESOURCES);
        // At scenario start: the running build is in progress; build 1 (successful) left a
        // running container, build 2 (failed) did not change it.
        let t = timeline(&s, &[], 0);
        let sync = t.status("sync").unwrap();
        assert_eq!(sync.update_status, UpdateStatus::InProgress);
        assert_eq!(sync.runtime_status, RuntimeStatus::Ok); // build 1 succeeded
        let server = t.status("server").unwrap();
        assert_eq!(server.update_status, UpdateStatus::Ok);
        assert_eq!(server.current_build, None);

        let triggers = [trigger("sync", 1000)];
        // Build 5: 1000..1300, container exits 1 at 1400.
        let t = timeline(&s, &triggers, 1350);
        let sync = t.status("sync").unwrap();
        assert_eq!(sync.update_status, UpdateStatus::Ok);
        assert_eq!(sync.runtime_status, RuntimeStatus::Ok);
        assert_eq!(
            sync.build_history,
            [
                FinishedBuild { number: 5, start_ms: 1000, finish_ms: 1300, error: None },
                FinishedBuild { number: 4, start_ms: 0, finish_ms: 800, error: None },
            ]
        );
        let t = timeline(&s, &triggers, 1400);
        let sync = t.status("sync").unwrap();
        assert_eq!(sync.runtime_status, RuntimeStatus::Error);
        let [up_to_date, ready] = sync.conditions();
        assert!(up_to_date.status);
        assert_eq!((ready.status, ready.reason), (false, Some("RuntimeError")));
    }

    #[test]
    fn a_never_built_resource_and_a_failed_first_build() {
        let s = scenario(
            r#"
            [[resource]]
            name = "ui"
            [[resource.build]]
            duration_ms = 200
            error = "Command \"./wasm.sh\" failed: exit status 1"
            "#,
        );
        let t = timeline(&s, &[], 0);
        let ui = t.status("ui").unwrap();
        assert_eq!(ui.update_status, UpdateStatus::None);
        assert_eq!(ui.runtime_status, RuntimeStatus::Pending);
        assert!(t.lines.is_empty());

        let t = timeline(&s, &[trigger("ui", 50)], 250);
        let ui = t.status("ui").unwrap();
        assert_eq!(ui.update_status, UpdateStatus::Error);
        assert_eq!(ui.runtime_status, RuntimeStatus::Pending);
        assert_eq!(ui.build_history[0].error.as_deref(), Some("Command \"./wasm.sh\" failed: exit status 1"));
        assert_eq!(
            t.lines.last().map(|l| (l.due_ms, l.text.as_str())),
            Some((250, "Build Failed: Command \"./wasm.sh\" failed: exit status 1"))
        );
    }

    #[test]
    fn stop_counts_from_the_first_trigger() {
        let s = scenario("stop_after_ms = 1500\n[[resource]]\nname = \"a\"\n");
        assert_eq!(stop_ms(&s, &[]), None);
        assert_eq!(stop_ms(&s, &[trigger("a", 200), trigger("a", 900)]), Some(1700));
    }
}
