//! The pure model: what a Tilt running a scenario has built, logged and reports at a moment.
//!
//! Nothing here reads the clock or the disk: a [`Model`] takes the scenario, the recorded
//! triggers and a moment (milliseconds since scenario start) and answers every log line due by
//! then and every resource's status; [`reported`] is the status as `tilt get` shows it "now",
//! that is with the scenario's status lag.

use sync_tests::scenario::{BuildSpec, Kind, Scenario};

use crate::state::Trigger;

/// The pause between two history builds, and between the last one and scenario start.
const HISTORY_GAP_MS: i64 = 1000;
/// Serve process K has the pid `SERVE_PID_BASE + K`.
const SERVE_PID_BASE: u32 = 20000;

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
    /// The build of a serve-only local resource: there is no update command, so it is over
    /// as soon as it starts.
    pub instant: bool,
    /// The build runs a local resource's update command: Tilt sleeps 250 ms after a successful
    /// one before it records the build finished (`LocalTargetBuildAndDeployer`).
    pub local_update: bool,
}

/// Tilt's sleep after a local update command succeeded, before the build is finished.
const LOCAL_SUCCESS_SLEEP_MS: i64 = 250;

impl Build<'_> {
    fn length_ms(&self) -> i64 {
        match (self.instant, self.local_update && self.spec.error.is_none()) {
            (true, _) => 0,
            (false, true) => ms(self.spec.duration_ms) + LOCAL_SUCCESS_SLEEP_MS,
            (false, false) => ms(self.spec.duration_ms),
        }
    }

    pub fn finish_ms(&self) -> i64 {
        self.start_ms + self.length_ms()
    }

    pub fn failed(&self) -> bool {
        !self.instant && self.spec.error.is_some()
    }

    pub fn span_id(&self) -> String {
        format!("build:{}", self.number)
    }
}

/// What runs after a successful build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// The container docker compose (re)creates.
    Container,
    /// A local resource's serve process, the K-th started (counted over all resources).
    Serve { k: u32 },
}

/// A runtime instance: a container or a serve process, started when its build finished.
#[derive(Debug, Clone)]
pub struct Instance<'a> {
    pub resource: usize,
    /// The number of the build that started it.
    pub build: u32,
    pub start_ms: i64,
    pub spec: &'a BuildSpec,
    pub runner: Runner,
    /// When the resource's next instance started; a serve process is killed then.
    pub replaced_ms: Option<i64>,
}

impl Instance<'_> {
    /// When it exits by itself, and its code: after its runtime output, if its build says so
    /// and (a serve process) it was not killed before.
    pub fn exit(&self) -> Option<(i64, i32)> {
        let code = self.spec.exit_code?;
        let at = self.start_ms + ms(self.spec.runtime_ms);
        match (self.runner, self.replaced_ms) {
            (Runner::Serve { .. }, Some(replaced)) if replaced < at => None,
            _ => Some((at, code)),
        }
    }

    fn exited_by(&self, at_ms: i64) -> Option<(i64, i32)> {
        self.exit().filter(|(exit_ms, _)| *exit_ms <= at_ms)
    }

    pub fn pid(&self) -> Option<u32> {
        match self.runner {
            Runner::Serve { k } => Some(SERVE_PID_BASE + k),
            Runner::Container => None,
        }
    }

    /// Twelve hex digits, new for every container (derived from its build's number).
    pub fn container_id(&self) -> String {
        let mixed = u64::from(self.build).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16;
        format!("{:012x}", mixed & 0xFFFF_FFFF_FFFF)
    }

    /// The healthcheck's verdict at `at_ms`, if the container has one.
    pub fn health_at(&self, at_ms: i64) -> Option<&'static str> {
        let health = self.spec.health?;
        Some(if at_ms < self.start_ms + ms(self.spec.health_ms) { "starting" } else { health.as_str() })
    }
}

/// Identifies a log line across invocations: (build number, index within the lines of the
/// build and of the instance it started).
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

impl LogLine<'_> {
    /// `"source"` in `tilt logs --json`: a build's own span is "build", any other "runtime"
    /// (a local update command's output included).
    pub fn source(&self) -> &'static str {
        if self.span_id.starts_with("build:") {
            "build"
        } else {
            "runtime"
        }
    }
}

/// `status.updateStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateStatus {
    None,
    Pending,
    InProgress,
    Ok,
    Error,
    NotApplicable,
}

impl UpdateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateStatus::None => "none",
            UpdateStatus::Pending => "pending",
            UpdateStatus::InProgress => "in_progress",
            UpdateStatus::Ok => "ok",
            UpdateStatus::Error => "error",
            UpdateStatus::NotApplicable => "not_applicable",
        }
    }
}

/// `status.runtimeStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeStatus {
    Pending,
    Ok,
    Error,
    NotApplicable,
}

impl RuntimeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Pending => "pending",
            RuntimeStatus::Ok => "ok",
            RuntimeStatus::Error => "error",
            RuntimeStatus::NotApplicable => "not_applicable",
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
    /// When `status` last flipped (never: the resource's first event or scenario start,
    /// whichever is earlier).
    pub since_ms: i64,
}

/// The container a compose resource's status describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub started_ms: i64,
    /// When it exited, and its code, if it has.
    pub exited: Option<(i64, i32)>,
    pub health: Option<&'static str>,
}

/// The status of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus<'a> {
    pub name: &'a str,
    pub kind: Kind,
    /// Finished builds, newest first, at most two (as Tilt keeps).
    pub build_history: Vec<FinishedBuild>,
    pub current_build: Option<RunningBuild>,
    pub queued: bool,
    pub update_status: UpdateStatus,
    pub runtime_status: RuntimeStatus,
    /// Local: the pid of the serve process the runtime fields describe.
    pub pid: Option<u32>,
    /// Compose: the container the runtime fields describe.
    pub container: Option<Container>,
    /// `UpToDate` then `Ready`.
    pub conditions: [Condition; 2],
}

/// `UpToDate` then `Ready` (status and reason), as Tilt's `internal/hud/webview/convert.go`.
fn conditions(update: UpdateStatus, runtime: RuntimeStatus) -> [(bool, Option<&'static str>); 2] {
    let up_to_date = match update {
        UpdateStatus::Ok | UpdateStatus::NotApplicable => (true, None),
        UpdateStatus::Error => (false, Some("UpdateError")),
        UpdateStatus::Pending => (false, Some("UpdatePending")),
        _ => (false, Some("Unknown")),
    };
    let ready = match (runtime, update) {
        (RuntimeStatus::Ok, _) | (RuntimeStatus::NotApplicable, UpdateStatus::Ok) => (true, None),
        (RuntimeStatus::Error, _) => (false, Some("RuntimeError")),
        (_, UpdateStatus::Error) => (false, Some("UpdateError")),
        (RuntimeStatus::Pending, UpdateStatus::Ok) => (false, Some("RuntimePending")),
        (_, UpdateStatus::Pending) => (false, Some("UpdatePending")),
        _ => (false, Some("Unknown")),
    };
    [up_to_date, ready]
}

/// When Tilt stops (ms since scenario start), if it does: `stop_after_ms` after the first
/// trigger.
pub fn stop_ms(scenario: &Scenario, triggers: &[Trigger]) -> Option<i64> {
    let first = triggers.first()?;
    Some(first.ms + ms(scenario.stop_after_ms?))
}

/// The statuses `tilt get` shows at `now_ms`: Tilt's state `status_lag_ms` ago.
pub fn reported<'a>(scenario: &'a Scenario, triggers: &[Trigger], now_ms: i64) -> Vec<ResourceStatus<'a>> {
    Model::new(scenario, triggers, now_ms - ms(scenario.status_lag_ms)).statuses()
}

/// What Tilt has done by a moment: builds placed in time, and the containers and serve
/// processes they started.
#[derive(Debug)]
pub struct Model<'a> {
    scenario: &'a Scenario,
    /// Every build known at `at_ms` (some may start or finish later), in number order.
    pub builds: Vec<Build<'a>>,
    /// The runtime instances of those builds, in start order.
    pub instances: Vec<Instance<'a>>,
    pub at_ms: i64,
}

impl<'a> Model<'a> {
    /// Tilt at `at_ms`, given every trigger recorded (those after `at_ms` are not known yet).
    pub fn new(scenario: &'a Scenario, triggers: &[Trigger], at_ms: i64) -> Self {
        let builds = schedule(scenario, triggers, at_ms);
        let instances = instances(scenario, &builds);
        Model { scenario, builds, instances, at_ms }
    }

    /// Every line due by `at_ms`, in the order Tilt wrote them.
    pub fn lines(&self) -> Vec<LogLine<'a>> {
        let mut lines: Vec<LogLine<'a>> = self
            .builds
            .iter()
            .flat_map(|build| self.build_lines(build))
            .filter(|line| line.due_ms <= self.at_ms)
            .collect();
        // Stable: lines due at the same moment keep build order, then line order.
        lines.sort_by_key(|line| line.due_ms);
        lines
    }

    /// Every line of a build and of the instance it started, due or not, in order.
    fn build_lines(&self, build: &Build<'a>) -> Vec<LogLine<'a>> {
        let resource = &self.scenario.resources[build.resource];
        let name = resource.name.as_str();
        let span = build.span_id();
        let mut lines = Vec::new();
        let mut push = |due_ms: i64, span_id: &str, init: bool, text: String| {
            let index = u32::try_from(lines.len()).unwrap_or(u32::MAX);
            let id = (build.number, index);
            lines.push(LogLine { id, due_ms, resource: name, span_id: span_id.to_owned(), init, text });
        };

        push(build.start_ms, &span, true, String::new());
        push(build.start_ms, &span, true, build.reason.text().to_owned());
        if !build.instant {
            // A local update command's output is in its own span, as the real Tilt writes it.
            let output_span = match resource.update_cmd() {
                Some(cmd) => {
                    let cmd_span = format!("cmd:{name}:update");
                    push(build.start_ms, &cmd_span, false, format!("Running cmd: {cmd}"));
                    cmd_span
                }
                None => span.clone(),
            };
            for (due_ms, text) in spread(build.start_ms, build.spec.duration_ms, &build.spec.lines) {
                push(due_ms, &output_span, false, text.clone());
            }
        }
        if let (Some(error), true) = (&build.spec.error, build.failed()) {
            push(build.finish_ms(), &span, false, format!("Build Failed: {error}"));
        }

        let Some(instance) = self.instances.iter().find(|i| i.build == build.number) else { return lines };
        let (instance_span, until) = match instance.runner {
            // Compose keeps the old container's output coming while it is being replaced.
            Runner::Container => (format!("dc:{name}"), i64::MAX),
            Runner::Serve { k } => {
                let serve_span = format!("localserve:{k}");
                let serve_cmd = resource.serve_cmd.as_deref().unwrap_or_default();
                push(instance.start_ms, &serve_span, false, format!("Running cmd: {serve_cmd}"));
                (serve_span, instance.replaced_ms.unwrap_or(i64::MAX))
            }
        };
        for (due_ms, text) in spread(instance.start_ms, instance.spec.runtime_ms, &instance.spec.runtime) {
            if due_ms <= until {
                push(due_ms, &instance_span, false, text.clone());
            }
        }
        lines
    }

    /// Every resource's status at `at_ms`, in scenario order.
    pub fn statuses(&self) -> Vec<ResourceStatus<'a>> {
        (0..self.scenario.resources.len()).map(|index| self.status_of(index)).collect()
    }

    #[cfg(test)]
    pub fn status(&self, name: &str) -> Option<ResourceStatus<'a>> {
        self.scenario.resources.iter().position(|r| r.name == name).map(|index| self.status_of(index))
    }

    /// The status at `at_ms`, with when each condition last flipped: the latest moment whose
    /// condition differs just before it.
    fn status_of(&self, index: usize) -> ResourceStatus<'a> {
        let mut status = self.status_at(index, self.at_ms);
        let events = self.events(index);
        for (k, condition) in status.conditions.iter_mut().enumerate() {
            let flipped = events
                .iter()
                .rev()
                .filter(|at| **at <= self.at_ms)
                .find(|at| self.status_at(index, **at - 1).conditions[k].status != condition.status);
            // Never flipped: since the resource's first event, or scenario start if later.
            condition.since_ms = flipped.copied().unwrap_or_else(|| events.first().copied().unwrap_or(0).min(0));
        }
        status
    }

    /// The moments a resource's status can change, sorted.
    fn events(&self, index: usize) -> Vec<i64> {
        let lag = ms(self.scenario.runtime_status_lag_ms);
        let mut events: Vec<i64> = self
            .builds
            .iter()
            .filter(|b| b.resource == index)
            .flat_map(|b| [b.created_ms, b.start_ms, b.finish_ms()])
            .chain(self.instances.iter().filter(|i| i.resource == index).flat_map(|i| {
                let health = i.spec.health.map(|_| i.start_ms + ms(i.spec.health_ms));
                [Some(i.start_ms + lag), i.exit().map(|(at, _)| at), health].into_iter().flatten()
            }))
            .collect();
        events.sort_unstable();
        events.dedup();
        events
    }

    /// The status of resource `index` at `at_ms` (conditions' `since_ms` left at 0).
    fn status_at(&self, index: usize, at_ms: i64) -> ResourceStatus<'a> {
        let resource = &self.scenario.resources[index];
        let known = || self.builds.iter().filter(|b| b.resource == index && b.created_ms <= at_ms);
        let finished: Vec<&Build> = known().filter(|b| b.finish_ms() <= at_ms).collect();
        let current_build = known()
            .find(|b| b.start_ms <= at_ms && at_ms < b.finish_ms())
            .map(|b| RunningBuild { number: b.number, start_ms: b.start_ms });
        let queued = known().any(|b| at_ms < b.start_ms);

        let update_status = if current_build.is_some() {
            UpdateStatus::InProgress
        } else if queued {
            UpdateStatus::Pending
        } else {
            match finished.last() {
                None => UpdateStatus::None,
                Some(b) if b.failed() => UpdateStatus::Error,
                Some(b) if b.instant => UpdateStatus::NotApplicable,
                Some(_) => UpdateStatus::Ok,
            }
        };

        // The newest instance Tilt has noticed: a new one shows only `runtime_status_lag_ms`
        // after it started; until then the fields still describe the one before.
        let lag = ms(self.scenario.runtime_status_lag_ms);
        let shown = self.instances.iter().rev().find(|i| i.resource == index && i.start_ms + lag <= at_ms);
        let runtime_status = match (resource.kind, shown) {
            (Kind::Local, _) if resource.serve_cmd.is_none() => RuntimeStatus::NotApplicable,
            (_, None) => RuntimeStatus::Pending,
            // Tilt reads any end of a serve process as an error (exit code 0 included), and
            // only a container's non-zero exit.
            (_, Some(instance)) => match (instance.exited_by(at_ms), instance.runner) {
                (Some(_), Runner::Serve { .. }) => RuntimeStatus::Error,
                (Some((_, code)), Runner::Container) if code != 0 => RuntimeStatus::Error,
                _ => RuntimeStatus::Ok,
            },
        };
        let container = shown.filter(|i| i.runner == Runner::Container).map(|i| Container {
            id: i.container_id(),
            started_ms: i.start_ms,
            exited: i.exited_by(at_ms),
            health: i.health_at(at_ms),
        });

        let build_history = finished
            .iter()
            .rev()
            .take(2)
            .map(|b| FinishedBuild {
                number: b.number,
                start_ms: b.start_ms,
                finish_ms: b.finish_ms(),
                error: b.spec.error.clone().filter(|_| b.failed()),
            })
            .collect();

        let [up_to_date, ready] = conditions(update_status, runtime_status);
        let condition = |kind, (status, reason)| Condition { kind, status, reason, since_ms: 0 };
        ResourceStatus {
            name: &resource.name,
            kind: resource.kind,
            build_history,
            current_build,
            queued,
            update_status,
            runtime_status,
            pid: shown.and_then(Instance::pid),
            container,
            conditions: [condition("UpToDate", up_to_date), condition("Ready", ready)],
        }
    }
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
    let instant = |index: usize| scenario.resources[index].kind == Kind::Local && !scenario.resources[index].update;
    let local_update = |index: usize| scenario.resources[index].update_cmd().is_some();

    for (index, resource) in scenario.resources.iter().enumerate() {
        for (k, spec) in resource.history.iter().enumerate() {
            let reason = if k == 0 { Reason::InitialBuild } else { Reason::CliTrigger };
            let instant = instant(index);
            builds.push(Build {
                number: number(),
                resource: index,
                reason,
                created_ms: 0,
                start_ms: 0,
                spec,
                instant,
                local_update: local_update(index),
            });
        }
    }
    // Back to back, the newest ending HISTORY_GAP_MS before scenario start.
    let mut cursor = -HISTORY_GAP_MS;
    for build in builds.iter_mut().rev() {
        build.start_ms = cursor - ms(build.spec.runtime_ms) - build.length_ms();
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
                instant: instant(index),
                local_update: local_update(index),
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
            instant: instant(index),
            local_update: local_update(index),
        });
    }
    builds
}

/// The containers and serve processes the builds start, in start order, serve processes
/// numbered K = 1, 2, … over all resources.
fn instances<'a>(scenario: &'a Scenario, builds: &[Build<'a>]) -> Vec<Instance<'a>> {
    let mut instances = Vec::new();
    for (index, resource) in scenario.resources.iter().enumerate() {
        let own: Vec<&Build<'a>> = builds.iter().filter(|b| b.resource == index).collect();
        for (at, build) in own.iter().enumerate() {
            if build.failed() {
                continue;
            }
            let runner = match resource.kind {
                Kind::Compose => Runner::Container,
                Kind::Local if resource.serve_cmd.is_some() => {
                    // Tilt starts a server only once the update is ok and no trigger waits:
                    // none for a build whose queued successor starts as it finishes.
                    if own.get(at + 1).is_some_and(|next| next.created_ms < build.finish_ms()) {
                        continue;
                    }
                    Runner::Serve { k: 0 }
                }
                Kind::Local => continue,
            };
            let start_ms = build.finish_ms();
            let (number, spec) = (build.number, build.spec);
            instances.push(Instance { resource: index, build: number, start_ms, spec, runner, replaced_ms: None });
        }
    }
    instances.sort_by_key(|i| (i.start_ms, i.build));
    let mut served = 0;
    for instance in &mut instances {
        if let Runner::Serve { k } = &mut instance.runner {
            served += 1;
            *k = served;
        }
    }
    for at in 0..instances.len() {
        let resource = instances[at].resource;
        instances[at].replaced_ms = instances[at + 1..].iter().find(|i| i.resource == resource).map(|i| i.start_ms);
    }
    instances
}

/// Line `i` of `n` is due at `start + length * (i + 1) / n`.
fn spread(start_ms: i64, length_ms: u64, lines: &[String]) -> impl Iterator<Item = (i64, &String)> {
    let n = lines.len() as u64;
    lines.iter().enumerate().map(move |(i, line)| (start_ms + ms(length_ms * (i as u64 + 1) / n), line))
}

fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_tests::scenario::Resource;

    fn trigger(resource: &str, ms: i64) -> Trigger {
        Trigger { resource: resource.to_owned(), ms }
    }

    fn triggers(list: &[(&str, i64)]) -> Vec<Trigger> {
        list.iter().map(|(resource, ms)| trigger(resource, *ms)).collect()
    }

    fn texts<'a>(lines: &'a [LogLine], resource: &str) -> Vec<&'a str> {
        lines.iter().filter(|l| l.resource == resource).map(|l| l.text.as_str()).collect()
    }

    fn two_resources() -> Scenario {
        Scenario::new([
            Resource::compose("sync")
                .history(BuildSpec::new(100, &["old sync"]))
                .history(BuildSpec::new(100, &["older error"]).failing("boom"))
                .running(BuildSpec::new(800, &["running 1", "running 2"]))
                .build(BuildSpec::new(300, &["a", "b", "c"]).runtime(&["up"], 100).exit_code(1)),
            Resource::compose("server").history(BuildSpec::new(100, &["old server"])),
        ])
    }

    #[test]
    fn numbering_is_shared_history_then_running_then_triggers() {
        let s = two_resources();
        let builds = schedule(&s, &triggers(&[("server", 10), ("sync", 20)]), 30);
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
        let s = two_resources();
        // The running build (4) runs 0..800; the trigger at 100 queues build 5 for 800..1100;
        // the trigger at 200 is collapsed into it.
        let queued = triggers(&[("sync", 100), ("sync", 200)]);
        let status = Model::new(&s, &queued, 300).status("sync").unwrap();
        assert!(status.queued);
        assert_eq!(status.update_status, UpdateStatus::InProgress);
        assert_eq!(status.current_build, Some(RunningBuild { number: 4, start_ms: 0 }));
        let builds = schedule(&s, &queued, 300);
        assert_eq!(builds.len(), 5);
        assert_eq!((builds[4].number, builds[4].start_ms), (5, 800));

        let status = Model::new(&s, &queued, 900).status("sync").unwrap();
        assert!(!status.queued);
        assert_eq!(status.current_build.map(|b| b.number), Some(5));
        assert_eq!(status.build_history[0].number, 4);

        // Once build 5 is done, a new trigger starts at once.
        let builds = schedule(&s, &triggers(&[("sync", 100), ("sync", 1200)]), 1200);
        assert_eq!(builds.last().map(|b| (b.number, b.start_ms)), Some((6, 1200)));
    }

    #[test]
    fn lines_are_due_spread_over_the_build_and_runtime() {
        let s = two_resources();
        let lines = Model::new(&s, &[trigger("sync", 1000)], 5000).lines();
        let build: Vec<(i64, &str, &str, bool, &str)> = lines
            .iter()
            .filter(|l| l.id.0 == 5)
            .map(|l| (l.due_ms, l.span_id.as_str(), l.text.as_str(), l.init, l.source()))
            .collect();
        assert_eq!(
            build,
            [
                (1000, "build:5", "", true, "build"),
                (1000, "build:5", "CLI Trigger", true, "build"),
                (1100, "build:5", "a", false, "build"),
                (1200, "build:5", "b", false, "build"),
                (1300, "build:5", "c", false, "build"),
                (1400, "dc:sync", "up", false, "runtime"),
            ]
        );

        // Only what is due by now, history first, in time order across resources.
        let lines = Model::new(&s, &[trigger("sync", 1000)], 1150).lines();
        assert_eq!(
            texts(&lines, "sync"),
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
        let numbers: Vec<u32> = lines.iter().map(|l| l.id.0).collect();
        assert_eq!(numbers, [1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5]);
        assert!(lines.windows(2).all(|w| w[0].due_ms <= w[1].due_ms));
    }

    #[test]
    fn status_fields_follow_the_build_and_container() {
        let s = two_resources();
        // At scenario start: the running build is in progress; build 1 (successful) left a
        // running container, build 2 (failed) did not change it.
        let model = Model::new(&s, &[], 0);
        let sync = model.status("sync").unwrap();
        assert_eq!(sync.update_status, UpdateStatus::InProgress);
        assert_eq!(sync.runtime_status, RuntimeStatus::Ok); // build 1 succeeded
        let server = model.status("server").unwrap();
        assert_eq!(server.update_status, UpdateStatus::Ok);
        assert_eq!(server.current_build, None);

        let triggered = [trigger("sync", 1000)];
        // Build 5: 1000..1300, container exits 1 at 1400.
        let sync = Model::new(&s, &triggered, 1350).status("sync").unwrap();
        assert_eq!(sync.update_status, UpdateStatus::Ok);
        assert_eq!(sync.runtime_status, RuntimeStatus::Ok);
        assert_eq!(
            sync.build_history,
            [
                FinishedBuild { number: 5, start_ms: 1000, finish_ms: 1300, error: None },
                FinishedBuild { number: 4, start_ms: 0, finish_ms: 800, error: None },
            ]
        );
        let sync = Model::new(&s, &triggered, 1400).status("sync").unwrap();
        assert_eq!(sync.runtime_status, RuntimeStatus::Error);
        let [up_to_date, ready] = sync.conditions;
        assert!(up_to_date.status);
        assert_eq!((ready.status, ready.reason, ready.since_ms), (false, Some("RuntimeError"), 1400));
        assert_eq!(sync.container.and_then(|c| c.exited), Some((1400, 1)));
    }

    #[test]
    fn a_never_built_resource_and_a_failed_first_build() {
        let s = Scenario::new([Resource::compose("ui")
            .build(BuildSpec::new(200, &[]).failing("Command \"./wasm.sh\" failed: exit status 1"))]);
        let model = Model::new(&s, &[], 0);
        let ui = model.status("ui").unwrap();
        assert_eq!(ui.update_status, UpdateStatus::None);
        assert_eq!(ui.runtime_status, RuntimeStatus::Pending);
        assert!(model.lines().is_empty());

        let model = Model::new(&s, &[trigger("ui", 50)], 250);
        let ui = model.status("ui").unwrap();
        assert_eq!(ui.update_status, UpdateStatus::Error);
        assert_eq!(ui.runtime_status, RuntimeStatus::Pending);
        assert_eq!(ui.build_history[0].error.as_deref(), Some("Command \"./wasm.sh\" failed: exit status 1"));
        assert_eq!(
            model.lines().last().map(|l| (l.due_ms, l.text.clone())),
            Some((250, "Build Failed: Command \"./wasm.sh\" failed: exit status 1".to_owned()))
        );
    }

    #[test]
    fn stop_counts_from_the_first_trigger() {
        let s = Scenario { stop_after_ms: Some(1500), ..Scenario::new([Resource::compose("a")]) };
        assert_eq!(stop_ms(&s, &[]), None);
        assert_eq!(stop_ms(&s, &triggers(&[("a", 200), ("a", 900)])), Some(1700));
    }

    /// A Tiltfile like the one the observations of the real Tilt used: an update command, an
    /// update command with a server, and a serve-only resource.
    fn local() -> Scenario {
        Scenario::new([
            Resource::local("wasm").cmd("./wasm.sh").build(BuildSpec::new(200, &["compiling wasm", "wasm done"])),
            Resource::local("server")
                .cmd("./build.sh server")
                .serve("./serve.sh server")
                .build(BuildSpec::new(300, &["   Compiling server"]).runtime(&["Running `server`"], 100))
                .build(
                    BuildSpec::new(300, &["error[E0425]"])
                        .failing("Command \"./build.sh server\" failed: exit status 101"),
                )
                .build(BuildSpec::new(300, &["   Compiling server"]).runtime(&["panicked"], 100).exit_code(101))
                .build(BuildSpec::new(300, &["   Compiling server"]).runtime(&["Running `server`"], 100)),
            Resource::local("ui").serve_only("./ui.sh").build(BuildSpec::new(0, &[]).runtime(&["ready in 412 ms"], 50)),
        ])
    }

    fn spans(lines: &[LogLine], resource: &str) -> Vec<(i64, String, String, &'static str)> {
        lines
            .iter()
            .filter(|l| l.resource == resource)
            .map(|l| (l.due_ms, l.span_id.clone(), l.text.clone(), l.source()))
            .collect()
    }

    fn owned(rows: &[(i64, &str, &str, &'static str)]) -> Vec<(i64, String, String, &'static str)> {
        rows.iter().map(|(at, span, text, source)| (*at, span.to_string(), text.to_string(), *source)).collect()
    }

    #[test]
    fn local_update_and_serve_lines_have_their_spans_and_one_serve_counter() {
        let s = local();
        let calls = triggers(&[("wasm", 0), ("server", 100), ("ui", 150)]);
        let lines = Model::new(&s, &calls, 2000).lines();
        assert_eq!(
            spans(&lines, "wasm"),
            owned(&[
                (0, "build:1", "", "build"),
                (0, "build:1", "CLI Trigger", "build"),
                (0, "cmd:wasm:update", "Running cmd: ./wasm.sh", "runtime"),
                (100, "cmd:wasm:update", "compiling wasm", "runtime"),
                (200, "cmd:wasm:update", "wasm done", "runtime"),
            ])
        );
        // The serve-only ui builds at once (150) and starts its server first: localserve:1;
        // the server's command ends at 400, Tilt's build 250 ms later, then its server is
        // localserve:2.
        assert_eq!(
            spans(&lines, "ui"),
            owned(&[
                (150, "build:3", "", "build"),
                (150, "build:3", "CLI Trigger", "build"),
                (150, "localserve:1", "Running cmd: ./ui.sh", "runtime"),
                (200, "localserve:1", "ready in 412 ms", "runtime"),
            ])
        );
        assert_eq!(
            spans(&lines, "server"),
            owned(&[
                (100, "build:2", "", "build"),
                (100, "build:2", "CLI Trigger", "build"),
                (100, "cmd:server:update", "Running cmd: ./build.sh server", "runtime"),
                (400, "cmd:server:update", "   Compiling server", "runtime"),
                (650, "localserve:2", "Running cmd: ./serve.sh server", "runtime"),
                (750, "localserve:2", "Running `server`", "runtime"),
            ])
        );
        let model = Model::new(&s, &calls, 2000);
        let [wasm, server, ui] = [0, 1, 2].map(|i| model.status_of(i));
        assert_eq!(
            (wasm.update_status, wasm.runtime_status, wasm.pid),
            (UpdateStatus::Ok, RuntimeStatus::NotApplicable, None)
        );
        assert_eq!(
            (server.update_status, server.runtime_status, server.pid),
            (UpdateStatus::Ok, RuntimeStatus::Ok, Some(20002))
        );
        assert_eq!(
            (ui.update_status, ui.runtime_status, ui.pid),
            (UpdateStatus::NotApplicable, RuntimeStatus::Ok, Some(20001))
        );
        assert_eq!(ui.build_history[0].start_ms, ui.build_history[0].finish_ms);
        assert!(wasm.conditions.iter().chain(&ui.conditions).all(|c| c.status));
    }

    #[test]
    fn a_server_restarts_only_after_a_successful_build_with_a_new_pid() {
        let s = local();
        // Build 1 (ok) 0..550 (its command 0..300, then Tilt's 250 ms): server K=1 from 550.
        // Build 2 (fails) 1000..1300: no new server, K=1 keeps running and printing. Build 3
        // (ok, crashes) 2000..2550: K=2 from 2550, exits 101 at 2650.
        let calls = triggers(&[("server", 0), ("server", 1000), ("server", 2000)]);
        let at = |ms| Model::new(&s, &calls, ms).status("server").unwrap();
        assert_eq!((at(500).pid, at(500).runtime_status), (None, RuntimeStatus::Pending), "Tilt's sleep");
        assert_eq!((at(600).pid, at(600).runtime_status), (Some(20001), RuntimeStatus::Ok));
        let failed = at(1500);
        assert_eq!(
            (failed.update_status, failed.runtime_status, failed.pid),
            (UpdateStatus::Error, RuntimeStatus::Ok, Some(20001))
        );
        assert_eq!((at(2600).pid, at(2600).runtime_status), (Some(20002), RuntimeStatus::Ok));
        let crashed = at(2650);
        assert_eq!(
            (crashed.update_status, crashed.runtime_status, crashed.pid),
            (UpdateStatus::Ok, RuntimeStatus::Error, Some(20002))
        );

        // The old server's output stops when it is replaced.
        let s = Scenario::new([Resource::local("server")
            .serve("./serve.sh")
            .build(BuildSpec::new(100, &[]).runtime(&["1", "2", "3", "4"], 4000))]);
        let lines = Model::new(&s, &triggers(&[("server", 0), ("server", 1500)]), 10_000).lines();
        let served: Vec<(&str, &str)> = lines
            .iter()
            .filter(|l| l.source() == "runtime" && !l.span_id.starts_with("cmd:"))
            .map(|l| (l.span_id.as_str(), l.text.as_str()))
            .collect();
        assert_eq!(
            served,
            [
                ("localserve:1", "Running cmd: ./serve.sh"),
                ("localserve:1", "1"),
                ("localserve:2", "Running cmd: ./serve.sh"),
                ("localserve:2", "1"),
                ("localserve:2", "2"),
                ("localserve:2", "3"),
                ("localserve:2", "4"),
            ]
        );
    }

    #[test]
    fn no_server_between_a_build_and_its_queued_successor() {
        let s = local();
        // Build 1 runs 0..550; the trigger at 100 queues build 2 (550..850, fails); the
        // trigger at 900 runs build 3 (900..1450), whose server is the first: K=1.
        let calls = triggers(&[("server", 0), ("server", 100), ("server", 900)]);
        let model = Model::new(&s, &calls, 5000);
        let served: Vec<(u32, i64, Runner)> = model.instances.iter().map(|i| (i.build, i.start_ms, i.runner)).collect();
        assert_eq!(served, [(3, 1450, Runner::Serve { k: 1 })]);
        assert!(!model.lines().iter().any(|l| l.span_id == "localserve:1" && l.due_ms < 1450));
        let between = Model::new(&s, &calls, 650).status("server").unwrap();
        assert_eq!((between.runtime_status, between.pid), (RuntimeStatus::Pending, None));
    }

    #[test]
    fn statuses_lag_and_a_new_runtime_shows_late() {
        let s = Scenario { status_lag_ms: 200, runtime_status_lag_ms: 300, ..local() };
        // Build 1 0..550 (server K=1 from 550); build 2 fails; build 3 2000..2550, its server
        // (K=2) crashes at 2650; build 4 (fixed) 3000..3550, its server K=3 from 3550.
        let calls = triggers(&[("server", 0), ("server", 1000), ("server", 2000), ("server", 3000)]);
        let server = |now| reported(&s, &calls, now).into_iter().nth(1).unwrap();
        // At 3450 Tilt shows 3250: build 4 still running, K=2's crash.
        let shown = server(3450);
        assert_eq!(shown.current_build.map(|b| b.number), Some(4));
        assert_eq!((shown.runtime_status, shown.pid), (RuntimeStatus::Error, Some(20002)));
        // At 3800 (Tilt at 3600): build 4 finished ok, but the status still shows the crashed
        // server: the stale `error` after a fixed rebuild.
        let stale = server(3800);
        assert_eq!((stale.update_status, stale.build_history[0].number), (UpdateStatus::Ok, 4));
        assert_eq!((stale.runtime_status, stale.pid), (RuntimeStatus::Error, Some(20002)));
        assert_eq!(stale.conditions[1].reason, Some("RuntimeError"));
        // From 4050 (Tilt at 3850 = 3550 + 300) the new server shows.
        let fresh = server(4050);
        assert_eq!((fresh.runtime_status, fresh.pid), (RuntimeStatus::Ok, Some(20003)));
        assert_eq!(fresh.conditions[1].since_ms, 3850);
    }

    #[test]
    fn compose_health_and_a_new_container_per_build() {
        let s = Scenario::new([Resource::compose("server")
            .build(BuildSpec::new(100, &[]).healthy(500))
            .build(BuildSpec::new(100, &[]).unhealthy(200).runtime(&["bye"], 1000).exit_code(0))]);
        let calls = triggers(&[("server", 0), ("server", 2000)]);
        let at = |ms| Model::new(&s, &calls, ms).status("server").unwrap().container;
        assert_eq!(at(50), None);
        let first = at(100).unwrap();
        assert_eq!((first.health, first.started_ms, first.exited), (Some("starting"), 100, None));
        assert_eq!(at(599).unwrap().health, Some("starting"));
        assert_eq!(at(600).unwrap().health, Some("healthy"));
        let second = at(2300).unwrap();
        assert_eq!((second.health, second.started_ms), (Some("unhealthy"), 2100));
        assert_ne!(second.id, first.id);
        assert!(first.id.len() == 12 && first.id.chars().all(|c| c.is_ascii_hexdigit()), "{}", first.id);
        let exited = Model::new(&s, &calls, 3200).status("server").unwrap();
        assert_eq!((exited.runtime_status, exited.container.unwrap().exited), (RuntimeStatus::Ok, Some((3100, 0))));
        // No healthcheck: no health status.
        let plain = Scenario::new([Resource::compose("a").build(BuildSpec::new(100, &[]))]);
        let container = Model::new(&plain, &[trigger("a", 0)], 500).status("a").unwrap().container.unwrap();
        assert_eq!(container.health, None);
    }
}
