//! The pure model: what a Tilt running a scenario has built, logged and reports at a moment.
//!
//! Nothing here reads the clock or the disk: a [`Model`] takes the scenario, the recorded
//! actions (triggers, disables, enables) and a moment (milliseconds since scenario start) and
//! answers every log line Tilt still holds by then and every resource's status; [`reported`]
//! is the status as `tilt get` shows it "now", that is with the scenario's status lag.

use sync_tests::scenario::{Kind, Scenario};

use crate::compose::{self, Apply, ContainerStatus, ContainerView, Names, Track};
use crate::local::{self, Serve};
use crate::logstore;
use crate::schedule::{ms, schedule, Build, Life, CANCELED};
use crate::state::Action;

/// Where the Tiltfile is when the scenario does not say (`load` fills in the real one).
const DEFAULT_TILTFILE: &str = "/home/dev/citadel-workspace/Tiltfile";

/// Identifies a log line across invocations: (build number, index within the lines of the
/// build and of what it started); build 0 holds Tilt's own lines about resources.
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
    /// (a local update command's output and compose's healthcheck included).
    pub fn source(&self) -> &'static str {
        if self.span_id.starts_with("build:") {
            "build"
        } else {
            "runtime"
        }
    }
}

/// The lines one build writes in its span (and others), in the order written.
pub struct Script<'a> {
    name: &'a str,
    number: u32,
    span: String,
    canceled_ms: Option<i64>,
    lines: Vec<LogLine<'a>>,
}

impl<'a> Script<'a> {
    /// A build's script, opened with its two header lines: an empty line and its reason.
    pub fn new(build: &Build, name: &'a str) -> Self {
        let mut script = Script {
            name,
            number: build.number,
            span: build.span_id(),
            canceled_ms: build.canceled_ms,
            lines: Vec::new(),
        };
        for text in [String::new(), build.reason.text()] {
            script.span_line(build.start_ms, &build.span_id(), text);
            if let Some(line) = script.lines.last_mut() {
                line.init = true;
            }
        }
        script
    }

    /// A line in the build's own span.
    pub fn line(&mut self, due_ms: i64, text: impl Into<String>) {
        let span = self.span.clone();
        self.span_line(due_ms, &span, text);
    }

    pub fn span_line(&mut self, due_ms: i64, span: &str, text: impl Into<String>) {
        let id = (self.number, u32::try_from(self.lines.len()).unwrap_or(u32::MAX));
        let (resource, span_id) = (self.name, span.to_owned());
        self.lines.push(LogLine { id, due_ms, resource, span_id, init: false, text: text.into() });
    }

    /// The lines written: a canceled build's stop where Tilt canceled it, with its reason.
    pub fn end(mut self) -> Vec<LogLine<'a>> {
        if let Some(canceled) = self.canceled_ms {
            self.lines.retain(|line| line.due_ms <= canceled);
            self.line(canceled, format!("Build Failed: {CANCELED}"));
        }
        self.lines
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
    /// A disabled resource.
    None,
}

impl RuntimeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeStatus::Pending => "pending",
            RuntimeStatus::Ok => "ok",
            RuntimeStatus::Error => "error",
            RuntimeStatus::NotApplicable => "not_applicable",
            RuntimeStatus::None => "none",
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

/// What a compose resource's objects show of its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeStatus {
    pub names: Names,
    /// The container the `DockerComposeService` shows.
    pub container: Option<ContainerView>,
    /// The container the `UIResource` describes (the last one seen).
    pub seen: Option<ContainerView>,
    /// The apply the `DockerComposeService` shows, with its error (`applyError`).
    pub apply: Option<(Apply, Option<String>)>,
    /// When the `DockerComposeService` last changed.
    pub changed_ms: i64,
}

/// The status of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceStatus<'a> {
    pub name: &'a str,
    pub kind: Kind,
    /// Its place in the Tiltfile (1 is the Tiltfile's own resource).
    pub order: usize,
    /// Finished builds, newest first, at most two (as Tilt keeps).
    pub build_history: Vec<FinishedBuild>,
    pub current_build: Option<RunningBuild>,
    pub queued: bool,
    pub update_status: UpdateStatus,
    pub runtime_status: RuntimeStatus,
    /// When the last successful build finished.
    pub last_deploy_ms: Option<i64>,
    /// Local: the pid of the serve process the runtime fields describe.
    pub pid: Option<u32>,
    pub compose: Option<ComposeStatus>,
    pub disabled: bool,
    /// When it was last disabled or enabled.
    pub toggled_ms: Option<i64>,
    /// `UpToDate` then `Ready`.
    pub conditions: [Condition; 2],
    /// When the status last changed (its `resourceVersion`).
    pub changed_ms: i64,
    /// A Tiltfile edit removed it: this is its last state, which watches print once more.
    pub removed: bool,
}

/// What a `UIResource` shows, but when its conditions last changed.
#[derive(PartialEq)]
struct UiShown {
    build_history: Vec<FinishedBuild>,
    current_build: Option<RunningBuild>,
    queued: bool,
    last_deploy_ms: Option<i64>,
    update_status: UpdateStatus,
    runtime_status: RuntimeStatus,
    pid: Option<u32>,
    health: Option<&'static str>,
    disabled: bool,
    conditions: [(bool, Option<&'static str>); 2],
}

impl ResourceStatus<'_> {
    fn ui_shown(&self) -> UiShown {
        UiShown {
            build_history: self.build_history.clone(),
            current_build: self.current_build,
            queued: self.queued,
            last_deploy_ms: self.last_deploy_ms,
            update_status: self.update_status,
            runtime_status: self.runtime_status,
            pid: self.pid,
            health: self.compose.as_ref().and_then(|c| c.seen.as_ref()).and_then(|c| c.health),
            disabled: self.disabled,
            conditions: self.conditions.map(|c| (c.status, c.reason)),
        }
    }
}

impl ComposeStatus {
    /// What its `DockerComposeService` shows.
    fn shown(&self) -> (Option<ContainerView>, Option<(Apply, Option<String>)>) {
        (self.container.clone(), self.apply.clone())
    }
}

/// `UpToDate` then `Ready` (status and reason), as Tilt's `internal/hud/webview/convert.go`.
fn conditions(update: UpdateStatus, runtime: RuntimeStatus, disabled: bool) -> [(bool, Option<&'static str>); 2] {
    let up_to_date = match update {
        UpdateStatus::Ok | UpdateStatus::NotApplicable => (true, None),
        _ if disabled => (false, Some("Disabled")),
        UpdateStatus::Error => (false, Some("UpdateError")),
        UpdateStatus::Pending => (false, Some("UpdatePending")),
        _ => (false, Some("Unknown")),
    };
    let ready = match (runtime, update) {
        (RuntimeStatus::Ok, _) | (RuntimeStatus::NotApplicable, UpdateStatus::Ok) => (true, None),
        _ if disabled => (false, Some("Disabled")),
        (RuntimeStatus::Error, _) => (false, Some("RuntimeError")),
        (_, UpdateStatus::Error) => (false, Some("UpdateError")),
        (RuntimeStatus::Pending, UpdateStatus::Ok) => (false, Some("RuntimePending")),
        (_, UpdateStatus::Pending) => (false, Some("UpdatePending")),
        _ => (false, Some("Unknown")),
    };
    [up_to_date, ready]
}

/// The statuses `tilt get` shows at `now_ms`: Tilt's state `status_lag_ms` ago.
pub fn reported<'a>(scenario: &'a Scenario, actions: &[Action], now_ms: i64) -> Vec<ResourceStatus<'a>> {
    Model::new(scenario, actions, now_ms - ms(scenario.status_lag_ms)).statuses()
}

/// What Tilt has done by a moment: builds placed in time, and the containers and serve
/// processes they started.
#[derive(Debug)]
pub struct Model<'a> {
    scenario: &'a Scenario,
    /// Every build known at `at_ms` (some may start or finish later), in number order.
    pub builds: Vec<Build<'a>>,
    /// Each resource's disables, enables and removal.
    pub lives: Vec<Life>,
    /// The serve processes of local resources, in start order.
    pub serves: Vec<Serve<'a>>,
    /// Each compose resource's containers (`None` for a local resource).
    tracks: Vec<Option<Track<'a>>>,
    pub at_ms: i64,
}

impl<'a> Model<'a> {
    /// Tilt at `at_ms`, given every action recorded (those after `at_ms` are not known yet).
    pub fn new(scenario: &'a Scenario, actions: &[Action], at_ms: i64) -> Self {
        let planned = schedule(scenario, actions, at_ms);
        let serves = local::serves(scenario, &planned.builds, &planned.lives);
        let lag = ms(scenario.runtime_status_lag_ms);
        let tracks = scenario
            .resources
            .iter()
            .enumerate()
            .map(|(index, resource)| {
                let own: Vec<&Build<'a>> = planned.builds.iter().filter(|b| b.resource == index).collect();
                (resource.kind == Kind::Compose)
                    .then(|| compose::track(&resource.name, &names(scenario, index), &own, &planned.lives[index], lag))
            })
            .collect();
        Model { scenario, builds: planned.builds, lives: planned.lives, serves, tracks, at_ms }
    }

    /// Every line due by `at_ms` that Tilt still holds (its log limit cuts old ones), in the
    /// order Tilt wrote them.
    pub fn lines(&self) -> Vec<LogLine<'a>> {
        let builds = self.builds.iter().filter(|b| self.scenario.resources[b.resource].kind == Kind::Local);
        let local = builds.flat_map(|b| local::build_lines(b, &self.scenario.resources[b.resource]));
        let served = self.serves.iter().flat_map(|s| s.lines(&self.scenario.resources[s.resource]));
        let composed = self.tracks.iter().flatten().flat_map(|t| t.lines.iter().cloned());
        let mut lines: Vec<LogLine<'a>> =
            local.chain(served).chain(composed).chain(self.toggle_lines()).filter(|l| l.due_ms <= self.at_ms).collect();
        // Stable: lines due at the same moment keep build order, then line order.
        lines.sort_by_key(|line| (line.due_ms, line.id.0));
        logstore::kept(lines, self.scenario.log_limit_bytes)
    }

    /// `Resource "server" disabled. …` and `… enabled. …` (`internal/store/uiresources/reducers.go`).
    fn toggle_lines(&self) -> Vec<LogLine<'a>> {
        let mut lines = Vec::new();
        for (index, life) in self.lives.iter().enumerate() {
            let name = self.scenario.resources[index].name.as_str();
            let toggles =
                life.disabled.iter().flat_map(|(from, to)| [Some((*from, "disabled")), to.map(|to| (to, "enabled"))]);
            for (due_ms, verb) in toggles.flatten() {
                let id = (0, u32::try_from(index * 1000 + lines.len()).unwrap_or(u32::MAX));
                let text = format!("Resource {name:?} {verb}. To enable/disable it, use the Tilt Web UI.");
                let span_id = format!("disabletoggle-{name}");
                lines.push(LogLine { id, due_ms, resource: name, span_id, init: false, text });
            }
        }
        lines
    }

    /// Every resource's status at `at_ms`, in scenario order; a removed resource only at the
    /// moment it went (its last state).
    pub fn statuses(&self) -> Vec<ResourceStatus<'a>> {
        (0..self.scenario.resources.len()).map(|index| self.status_of(index)).collect()
    }

    #[cfg(test)]
    pub fn track(&self, name: &str) -> Option<&Track<'a>> {
        self.scenario.resources.iter().position(|r| r.name == name).and_then(|index| self.tracks[index].as_ref())
    }

    #[cfg(test)]
    pub fn status(&self, name: &str) -> Option<ResourceStatus<'a>> {
        self.scenario.resources.iter().position(|r| r.name == name).map(|index| self.status_of(index))
    }

    /// The status at `at_ms`, with when each condition last flipped and when what the objects
    /// show last changed: the latest moment whose status differs just before it.
    fn status_of(&self, index: usize) -> ResourceStatus<'a> {
        let removed = self.lives[index].removed_ms.filter(|removed| *removed <= self.at_ms);
        let at_ms = removed.map_or(self.at_ms, |removed| removed - 1);
        let mut status = self.status_at(index, at_ms);
        let events = self.events(index);
        let last_change = |differs: &dyn Fn(&ResourceStatus) -> bool| {
            events.iter().rev().filter(|at| **at <= at_ms).find(|at| differs(&self.status_at(index, **at - 1))).copied()
        };
        // Never changed: since the resource's first event, or scenario start if later.
        let never = events.first().copied().unwrap_or(0).min(0);
        for k in 0..status.conditions.len() {
            let now = status.conditions[k].status;
            status.conditions[k].since_ms = last_change(&|before| before.conditions[k].status != now).unwrap_or(never);
        }
        let shown = status.ui_shown();
        status.changed_ms = removed.or_else(|| last_change(&|before| before.ui_shown() != shown)).unwrap_or(never);
        let service = status.compose.as_ref().map(ComposeStatus::shown);
        let service_changed = last_change(&|before| before.compose.as_ref().map(ComposeStatus::shown) != service);
        if let Some(compose) = status.compose.as_mut() {
            compose.changed_ms = removed.or(service_changed).unwrap_or(never);
        }
        status.removed = removed.is_some();
        status
    }

    /// The moments a resource's status can change, sorted.
    fn events(&self, index: usize) -> Vec<i64> {
        let lag = ms(self.scenario.runtime_status_lag_ms);
        let builds =
            self.builds.iter().filter(|b| b.resource == index).flat_map(|b| [b.created_ms, b.start_ms, b.finish_ms()]);
        let served =
            self.serves.iter().filter(|s| s.resource == index).flat_map(|s| {
                [Some(s.start_ms + lag), s.exit().map(|(at, _)| at), s.replaced_ms].into_iter().flatten()
            });
        let composed = self.tracks[index].iter().flat_map(Track::events);
        let life = &self.lives[index];
        let toggles = life.disabled.iter().flat_map(|(from, to)| [Some(*from), *to]).flatten();
        let mut events: Vec<i64> = builds.chain(served).chain(composed).chain(toggles).collect();
        events.sort_unstable();
        events.dedup();
        events
    }

    /// The status of resource `index` at `at_ms` (conditions' `since_ms` left at 0).
    fn status_at(&self, index: usize, at_ms: i64) -> ResourceStatus<'a> {
        let resource = &self.scenario.resources[index];
        let life = &self.lives[index];
        let disabled = life.disabled_at(at_ms);
        // Disabling empties the build history; a build it canceled ends after that.
        let history_from = life.disabled.iter().map(|(from, _)| *from).filter(|from| *from <= at_ms).max();
        let known = || self.builds.iter().filter(|b| b.resource == index && b.created_ms <= at_ms);
        let finished: Vec<&Build> = known()
            .filter(|b| b.finish_ms() <= at_ms && history_from.is_none_or(|from| b.finish_ms() >= from))
            .collect();
        let current_build = known()
            .find(|b| b.start_ms <= at_ms && at_ms < b.finish_ms())
            .map(|b| RunningBuild { number: b.number, start_ms: b.start_ms });
        let queued = known().any(|b| at_ms < b.start_ms);

        let update_status = if disabled {
            UpdateStatus::None
        } else if current_build.is_some() {
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

        // The newest serve process Tilt has noticed: a new one shows only
        // `runtime_status_lag_ms` after it started; until then the fields still describe the
        // one before.
        let lag = ms(self.scenario.runtime_status_lag_ms);
        let serve = self.serves.iter().rev().find(|s| s.resource == index && s.start_ms + lag <= at_ms);
        let compose = self.tracks[index].as_ref().map(|track| ComposeStatus {
            names: names(self.scenario, index),
            container: track.container_at(at_ms).cloned(),
            seen: track.last_seen_at(at_ms).cloned(),
            apply: track.apply_at(at_ms).map(|apply| {
                let error = apply.failed.then(|| names(self.scenario, index).build_error());
                (apply.clone(), error)
            }),
            changed_ms: 0,
        });
        let runtime_status = match (resource.kind, &compose) {
            _ if disabled => RuntimeStatus::None,
            (Kind::Local, _) if resource.serve_cmd.is_none() => RuntimeStatus::NotApplicable,
            // Tilt reads any end of a serve process as an error (exit code 0 included).
            (Kind::Local, _) => match serve {
                None => RuntimeStatus::Pending,
                Some(serve) if serve.exited_by(at_ms).is_some() => RuntimeStatus::Error,
                Some(_) => RuntimeStatus::Ok,
            },
            // `internal/dockercompose/state.go`: a non-zero exit code is an error, a running or
            // exited container ok, any other state pending.
            (Kind::Compose, compose) => match compose.as_ref().and_then(|c| c.seen.as_ref()) {
                Some(seen) if seen.exit_code != 0 => RuntimeStatus::Error,
                Some(seen) if matches!(seen.status, ContainerStatus::Running | ContainerStatus::Exited) => {
                    RuntimeStatus::Ok
                }
                _ => RuntimeStatus::Pending,
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
                error: self.error_of(b),
            })
            .collect();
        let last_deploy_ms = finished.iter().rev().find(|b| !b.failed()).map(|b| b.finish_ms());

        let [up_to_date, ready] = conditions(update_status, runtime_status, disabled);
        let condition = |kind, (status, reason)| Condition { kind, status, reason, since_ms: 0 };
        ResourceStatus {
            name: &resource.name,
            kind: resource.kind,
            order: index + 2,
            build_history,
            current_build,
            queued: queued && !disabled,
            update_status,
            runtime_status,
            last_deploy_ms,
            pid: serve.map(Serve::pid),
            compose,
            disabled,
            toggled_ms: life.toggled_by(at_ms),
            conditions: [condition("UpToDate", up_to_date), condition("Ready", ready)],
            changed_ms: 0,
            removed: false,
        }
    }

    /// The error Tilt records for a failed build.
    fn error_of(&self, build: &Build) -> Option<String> {
        if build.canceled_ms.is_some() {
            return Some(CANCELED.to_owned());
        }
        let error = build.spec.error.as_ref().filter(|_| build.failed())?;
        Some(match self.scenario.resources[build.resource].kind {
            // The image build's own error is in the log; Tilt records compose's.
            Kind::Compose => names(self.scenario, build.resource).build_error(),
            Kind::Local => error.clone(),
        })
    }
}

/// When Tilt loaded the Tiltfile and made its objects: a second before the first build it
/// knows of (history builds lie before scenario start).
pub fn loaded_ms(scenario: &Scenario) -> i64 {
    let first = schedule(scenario, &[], 0).builds.iter().map(|b| b.start_ms).min().unwrap_or(0);
    first.min(0) - 1000
}

/// The Compose names of resource `index`.
fn names(scenario: &Scenario, index: usize) -> Names {
    Names::new(scenario.tiltfile.as_deref().unwrap_or(DEFAULT_TILTFILE), &scenario.resources[index].name)
}

/// Line `i` of `n` is due at `start + length * (i + 1) / n`.
pub fn spread(start_ms: i64, length_ms: i64, lines: &[String]) -> impl Iterator<Item = (i64, &String)> {
    let n = i64::try_from(lines.len()).unwrap_or(i64::MAX).max(1);
    lines.iter().zip(1..).map(move |(line, i)| (start_ms + length_ms * i / n, line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ActionKind;
    use sync_tests::scenario::{BuildSpec, Resource};

    fn actions(list: &[(&str, i64)]) -> Vec<Action> {
        list.iter().map(|(resource, ms)| Action::trigger(resource, *ms)).collect()
    }

    fn toggle(resource: &str, ms: i64, kind: ActionKind) -> Action {
        Action { resource: resource.to_owned(), ms, kind }
    }

    #[test]
    fn a_never_built_resource_and_a_failed_first_build() {
        let s = Scenario::new([Resource::local("ui")
            .build(BuildSpec::new(200, &[]).failing("Command \"./wasm.sh\" failed: exit status 1"))]);
        let model = Model::new(&s, &[], 0);
        let ui = model.status("ui").unwrap();
        assert_eq!(ui.update_status, UpdateStatus::None);
        assert_eq!(ui.runtime_status, RuntimeStatus::NotApplicable);
        assert!(model.lines().is_empty());

        let model = Model::new(&s, &actions(&[("ui", 50)]), 250);
        let ui = model.status("ui").unwrap();
        assert_eq!(ui.update_status, UpdateStatus::Error);
        assert_eq!(ui.build_history[0].error.as_deref(), Some("Command \"./wasm.sh\" failed: exit status 1"));
        assert_eq!(
            model.lines().last().map(|l| (l.due_ms, l.text.clone())),
            Some((250, "Build Failed: Command \"./wasm.sh\" failed: exit status 1".to_owned()))
        );
    }

    #[test]
    fn disabling_a_building_resource_cancels_it_and_empties_its_history() {
        let s = Scenario::new([Resource::local("wasm").build(BuildSpec::new(1000, &["a", "b", "c", "d"]))]);
        let calls =
            [Action::trigger("wasm", 0), Action::trigger("wasm", 1300), toggle("wasm", 1600, ActionKind::Disable)];
        let model = Model::new(&s, &calls, 3000);
        let wasm = model.status("wasm").unwrap();
        assert_eq!((wasm.update_status, wasm.runtime_status), (UpdateStatus::None, RuntimeStatus::None));
        assert!(wasm.disabled && !wasm.queued && wasm.current_build.is_none());
        // The earlier build is gone from the history; the canceled one is recorded after.
        let history: Vec<(u32, Option<&str>)> =
            wasm.build_history.iter().map(|b| (b.number, b.error.as_deref())).collect();
        assert_eq!(history, [(2, Some(CANCELED))]);
        assert_eq!(wasm.conditions.map(|c| c.reason), [Some("Disabled"), Some("Disabled")]);
        let lines = model.lines();
        let texts: Vec<(i64, &str)> =
            lines.iter().filter(|l| l.due_ms >= 1300).map(|l| (l.due_ms, l.text.as_str())).collect();
        assert_eq!(
            texts,
            [
                (1300, ""),
                (1300, "CLI Trigger"),
                (1300, "Running cmd: ./build.sh"),
                (1550, "a"),
                (1600, "Resource \"wasm\" disabled. To enable/disable it, use the Tilt Web UI."),
                (1600, "Build Failed: build canceled"),
            ]
        );
    }

    #[test]
    fn a_removed_resource_shows_its_last_state() {
        let s = Scenario::new([Resource::compose("server").build(BuildSpec::new(300, &[])).removed_after(1000)]);
        let model = Model::new(&s, &actions(&[("server", 0)]), 2000);
        let server = model.status("server").unwrap();
        assert!(server.removed);
        assert_eq!((server.update_status, server.changed_ms), (UpdateStatus::Ok, 1000));
    }

    #[test]
    fn a_status_changes_its_version_only_when_what_it_shows_changes() {
        let s = Scenario::new([Resource::compose("server").build(BuildSpec::new(400, &[]).healthy(500))]);
        let calls = actions(&[("server", 0)]);
        let at = |ms| Model::new(&s, &calls, ms).status("server").unwrap();
        let before = at(1000);
        assert_eq!(at(2000).changed_ms, before.changed_ms);
        assert_eq!(at(2000).compose.map(|c| c.changed_ms), before.compose.map(|c| c.changed_ms));
        // Last changed when the healthcheck passed, 500 ms after the container started (100 ms
        // before the build's end).
        assert_eq!(before.changed_ms, 800);
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
        let calls = actions(&[("wasm", 0), ("server", 100), ("ui", 150)]);
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
        let calls = actions(&[("server", 0), ("server", 1000), ("server", 2000)]);
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
        let lines = Model::new(&s, &actions(&[("server", 0), ("server", 1500)]), 10_000).lines();
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
        // Build 1 runs 0..550; the trigger at 100 queues build 2 (551..851, fails); the
        // trigger at 900 runs build 3 (900..1450), whose server is the first: K=1.
        let calls = actions(&[("server", 0), ("server", 100), ("server", 900)]);
        let model = Model::new(&s, &calls, 5000);
        let served: Vec<(u32, i64, u32)> = model.serves.iter().map(|s| (s.build, s.start_ms, s.k)).collect();
        assert_eq!(served, [(3, 1450, 1)]);
        assert!(!model.lines().iter().any(|l| l.span_id == "localserve:1" && l.due_ms < 1450));
        let between = Model::new(&s, &calls, 650).status("server").unwrap();
        assert_eq!((between.runtime_status, between.pid), (RuntimeStatus::Pending, None));
    }

    #[test]
    fn statuses_lag_and_a_new_runtime_shows_late() {
        let s = Scenario { status_lag_ms: 200, runtime_status_lag_ms: 300, ..local() };
        // Build 1 0..550 (server K=1 from 550); build 2 fails; build 3 2000..2550, its server
        // (K=2) crashes at 2650; build 4 (fixed) 3000..3550, its server K=3 from 3550.
        let calls = actions(&[("server", 0), ("server", 1000), ("server", 2000), ("server", 3000)]);
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
}
