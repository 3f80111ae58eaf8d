//! When each build runs: history builds before scenario start, a running build at it, then what
//! the user did (`tilt trigger`, `tilt disable`, `tilt enable`) and what the Tiltfile edits did
//! (`removed_after_ms`), as Tilt queues, collapses and cancels builds. Pure: no clock, no disk.

use sync_tests::scenario::{BuildSpec, Kind, Scenario, Update};

use crate::state::{Action, ActionKind};

/// The pause between two history builds, and between the last one and scenario start.
const HISTORY_GAP_MS: i64 = 1000;
/// A build queued behind another starts this long after it ends (≈ 1 ms on the real Tilt).
pub const QUEUED_START_MS: i64 = 1;
/// Tilt's sleep after a local update command succeeded, before the build is finished
/// (`LocalTargetBuildAndDeployer`).
const LOCAL_SUCCESS_SLEEP_MS: i64 = 250;
/// What Tilt records for a build it canceled (`internal/engine/buildcontroller.go`).
pub const CANCELED: &str = "build canceled";
/// The file a build with changed files names in its reason line.
const CHANGED_FILE: &str = "citadel-workspace-server-kernel/src/kernel.rs";

/// Why a build ran: the text of its second header line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    InitialBuild,
    CliTrigger,
    /// A trigger with pending file changes (a compose build that is no force update).
    FilesChanged,
}

impl Reason {
    pub fn text(self) -> String {
        match self {
            Reason::InitialBuild => "Initial Build".to_owned(),
            Reason::CliTrigger => "CLI Trigger".to_owned(),
            Reason::FilesChanged => format!("1 File Changed: [{CHANGED_FILE}]"),
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
    /// one before it records the build finished.
    pub local_update: bool,
    /// When Tilt canceled it: its resource was disabled while it ran.
    pub canceled_ms: Option<i64>,
}

impl Build<'_> {
    /// How long it runs if nothing cancels it.
    fn length_ms(&self) -> i64 {
        match (self.instant, self.local_update && self.spec.error.is_none()) {
            (true, _) => 0,
            (false, true) => ms(self.spec.duration_ms) + LOCAL_SUCCESS_SLEEP_MS,
            (false, false) => ms(self.spec.duration_ms),
        }
    }

    /// When it would finish if nothing canceled it.
    pub fn natural_finish_ms(&self) -> i64 {
        self.start_ms + self.length_ms()
    }

    pub fn finish_ms(&self) -> i64 {
        self.canceled_ms.unwrap_or_else(|| self.natural_finish_ms())
    }

    pub fn failed(&self) -> bool {
        self.canceled_ms.is_some() || (!self.instant && self.spec.error.is_some())
    }

    pub fn span_id(&self) -> String {
        format!("build:{}", self.number)
    }

    /// How a compose build deploys: an initial build creates the container as a recreate
    /// with nothing to replace does.
    pub fn update(&self) -> Update {
        match self.reason {
            Reason::InitialBuild => Update::Recreate,
            _ => self.spec.update,
        }
    }
}

/// The moments a resource is disabled and enabled, and when a Tiltfile edit removed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Life {
    /// Disabled from the first moment until the second (`None`: still disabled).
    pub disabled: Vec<(i64, Option<i64>)>,
    pub removed_ms: Option<i64>,
}

impl Life {
    pub fn disabled_at(&self, at_ms: i64) -> bool {
        self.disabled.iter().any(|(from, to)| *from <= at_ms && to.is_none_or(|to| at_ms < to))
    }

    pub fn removed_by(&self, at_ms: i64) -> bool {
        self.removed_ms.is_some_and(|removed| removed <= at_ms)
    }

    /// When the resource was last disabled or enabled by `at_ms`.
    pub fn toggled_by(&self, at_ms: i64) -> Option<i64> {
        self.disabled.iter().flat_map(|(from, to)| [Some(*from), *to]).flatten().filter(|t| *t <= at_ms).max()
    }
}

/// Every build known by a moment, and each resource's life.
#[derive(Debug)]
pub struct Schedule<'a> {
    /// In number order.
    pub builds: Vec<Build<'a>>,
    /// One per resource, in scenario order.
    pub lives: Vec<Life>,
}

/// When Tilt stops (ms since scenario start), if it does: `stop_after_ms` after the first
/// trigger.
pub fn stop_ms(scenario: &Scenario, actions: &[Action]) -> Option<i64> {
    Some(first_trigger_ms(actions)? + ms(scenario.stop_after_ms?))
}

fn first_trigger_ms(actions: &[Action]) -> Option<i64> {
    actions.iter().find(|a| a.kind == ActionKind::Trigger).map(|a| a.ms)
}

/// When a Tiltfile edit removes resource `index`, if the scenario says it does.
pub fn removal_ms(scenario: &Scenario, actions: &[Action], index: usize) -> Option<i64> {
    Some(first_trigger_ms(actions)? + ms(scenario.resources[index].removed_after_ms?))
}

/// Places every build in time: history builds back to back before scenario start, running
/// builds at scenario start, then each action up to `now_ms`.
pub fn schedule<'a>(scenario: &'a Scenario, actions: &[Action], now_ms: i64) -> Schedule<'a> {
    let mut plan = Planner { scenario, builds: Vec::new(), next_number: 1 };
    for (index, resource) in scenario.resources.iter().enumerate() {
        for (k, spec) in resource.history.iter().enumerate() {
            let reason = if k == 0 { Reason::InitialBuild } else { plan.trigger_reason(spec) };
            plan.push(index, reason, 0, 0, spec);
        }
    }
    // Back to back, the newest ending HISTORY_GAP_MS before scenario start.
    let mut cursor = -HISTORY_GAP_MS;
    for build in plan.builds.iter_mut().rev() {
        build.start_ms = cursor - ms(build.spec.runtime_ms) - build.length_ms();
        build.created_ms = build.start_ms;
        cursor = build.start_ms - HISTORY_GAP_MS;
    }
    for (index, resource) in scenario.resources.iter().enumerate() {
        if let Some(spec) = &resource.running {
            plan.push(index, plan.trigger_reason(spec), 0, 0, spec);
        }
    }

    let mut lives: Vec<Life> = (0..scenario.resources.len())
        .map(|index| Life { disabled: Vec::new(), removed_ms: removal_ms(scenario, actions, index) })
        .collect();
    let mut triggered = vec![0usize; scenario.resources.len()];
    for action in actions.iter().filter(|a| a.ms <= now_ms) {
        let Some(index) = scenario.resources.iter().position(|r| r.name == action.resource) else { continue };
        let life = &mut lives[index];
        if life.removed_by(action.ms) {
            continue;
        }
        match action.kind {
            ActionKind::Trigger if !life.disabled_at(action.ms) => {
                let spec = scenario.resources[index].triggered_build(triggered[index]);
                if plan.queue(index, action.ms, spec, life.removed_ms) {
                    triggered[index] += 1;
                }
            }
            ActionKind::Trigger => {}
            ActionKind::Disable if !life.disabled_at(action.ms) => {
                life.disabled.push((action.ms, None));
                plan.cancel(index, action.ms);
            }
            ActionKind::Disable => {}
            ActionKind::Enable => {
                let Some(open) = life.disabled.last_mut().filter(|(_, to)| to.is_none()) else { continue };
                let disabled_ms = open.0;
                open.1 = Some(action.ms);
                // Disabling empties the build history; a build canceled then is recorded after
                // that (`internal/store/uiresources/reducers.go`, `buildcontrols/reducers.go`).
                // With an empty history, Tilt gives the enabled resource its initial build.
                let canceled = plan.builds.iter().any(|b| b.resource == index && b.canceled_ms == Some(disabled_ms));
                if !canceled {
                    let spec = scenario.resources[index].triggered_build(triggered[index]);
                    triggered[index] += 1;
                    plan.push(index, Reason::InitialBuild, action.ms, action.ms, spec);
                }
            }
        }
    }
    Schedule { builds: plan.builds, lives }
}

/// Builds numbered as Tilt numbers them, one counter for all resources.
struct Planner<'a> {
    scenario: &'a Scenario,
    builds: Vec<Build<'a>>,
    next_number: u32,
}

impl<'a> Planner<'a> {
    fn push(&mut self, resource: usize, reason: Reason, created_ms: i64, start_ms: i64, spec: &'a BuildSpec) {
        let definition = &self.scenario.resources[resource];
        let number = self.next_number;
        self.next_number += 1;
        self.builds.push(Build {
            number,
            resource,
            reason,
            created_ms,
            start_ms,
            spec,
            instant: definition.kind == Kind::Local && !definition.update,
            local_update: definition.update_cmd().is_some(),
            canceled_ms: None,
        });
    }

    /// The reason line of a triggered build: a compose build that is no force update had
    /// changed files.
    fn trigger_reason(&self, spec: &BuildSpec) -> Reason {
        match spec.update {
            Update::Force => Reason::CliTrigger,
            Update::Recreate | Update::Kept => Reason::FilesChanged,
        }
    }

    /// A trigger at `at_ms`: a new build now, or queued behind the one in progress; nothing if
    /// one is queued already (Tilt collapses triggers). Whether a build was added.
    fn queue(&mut self, resource: usize, at_ms: i64, spec: &'a BuildSpec, removed_ms: Option<i64>) -> bool {
        let last = self.builds.iter().rev().find(|b| b.resource == resource);
        let start_ms = match last {
            Some(last) if last.start_ms > at_ms => return false,
            Some(last) if last.finish_ms() > at_ms => last.finish_ms() + QUEUED_START_MS,
            _ => at_ms,
        };
        if removed_ms.is_some_and(|removed| removed <= start_ms) {
            return false;
        }
        let reason = if self.scenario.resources[resource].kind == Kind::Compose {
            self.trigger_reason(spec)
        } else {
            Reason::CliTrigger
        };
        self.push(resource, reason, at_ms, start_ms, spec);
        true
    }

    /// Disabling at `at_ms` cancels the resource's build in progress and drops a queued one.
    fn cancel(&mut self, resource: usize, at_ms: i64) {
        self.builds.retain(|b| b.resource != resource || b.start_ms <= at_ms);
        for build in self.builds.iter_mut().filter(|b| b.resource == resource) {
            if build.start_ms <= at_ms && at_ms < build.finish_ms() {
                build.canceled_ms = Some(at_ms);
            }
        }
    }
}

pub fn ms(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_tests::scenario::Resource;

    fn action(resource: &str, ms: i64, kind: ActionKind) -> Action {
        Action { resource: resource.to_owned(), ms, kind }
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
        let actions = [Action::trigger("server", 10), Action::trigger("sync", 20)];
        let builds = schedule(&s, &actions, 30).builds;
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
    fn triggers_queue_a_millisecond_behind_a_running_build_and_collapse() {
        let s = two_resources();
        // The running build (4) runs 0..800; the trigger at 100 queues build 5 for 801..1101;
        // the trigger at 200 is collapsed into it.
        let builds = schedule(&s, &[Action::trigger("sync", 100), Action::trigger("sync", 200)], 300).builds;
        assert_eq!(builds.len(), 5);
        assert_eq!((builds[4].number, builds[4].start_ms, builds[4].created_ms), (5, 801, 100));
        // Once build 5 is done, a new trigger starts at once.
        let builds = schedule(&s, &[Action::trigger("sync", 100), Action::trigger("sync", 1200)], 1200).builds;
        assert_eq!(builds.last().map(|b| (b.number, b.start_ms)), Some((6, 1200)));
    }

    #[test]
    fn a_compose_build_with_changed_files_says_so() {
        let s = Scenario::new([Resource::compose("server")
            .build(BuildSpec::new(100, &[]).update(Update::Recreate))
            .build(BuildSpec::new(100, &[]))]);
        let builds = schedule(&s, &[Action::trigger("server", 0), Action::trigger("server", 500)], 600).builds;
        let reasons: Vec<String> = builds.iter().map(|b| b.reason.text()).collect();
        assert_eq!(reasons, [format!("1 File Changed: [{CHANGED_FILE}]"), "CLI Trigger".to_owned()]);
    }

    #[test]
    fn disabling_cancels_the_build_drops_the_queued_one_and_refuses_triggers() {
        let s = two_resources();
        let actions = [
            Action::trigger("sync", 100),
            action("sync", 300, ActionKind::Disable),
            Action::trigger("sync", 400),
            action("sync", 500, ActionKind::Enable),
        ];
        let planned = schedule(&s, &actions, 600);
        let sync: Vec<(u32, i64, Option<i64>, Reason)> = planned
            .builds
            .iter()
            .filter(|b| b.resource == 0 && b.start_ms >= 0)
            .map(|b| (b.number, b.start_ms, b.canceled_ms, b.reason))
            .collect();
        // The running build 4 is canceled at 300, queued build 5 never runs; enabling after a
        // canceled build starts no initial build.
        assert_eq!(sync, [(4, 0, Some(300), Reason::CliTrigger)]);
        assert_eq!(planned.builds[3].finish_ms(), 300);
        assert_eq!(planned.lives[0].disabled, [(300, Some(500))]);
        assert!(planned.lives[0].disabled_at(300) && !planned.lives[0].disabled_at(500));

        // Disabled while idle: enabling gives it an initial build.
        let actions = [action("server", 100, ActionKind::Disable), action("server", 200, ActionKind::Enable)];
        let builds = schedule(&s, &actions, 300).builds;
        let last = builds.last().map(|b| (b.resource, b.start_ms, b.reason));
        assert_eq!(last, Some((1, 200, Reason::InitialBuild)));
    }

    #[test]
    fn a_removed_resource_runs_nothing_more() {
        let s = Scenario::new([Resource::compose("server").build(BuildSpec::new(300, &[])).removed_after(500)]);
        let actions = [Action::trigger("server", 0), Action::trigger("server", 100), Action::trigger("server", 600)];
        let planned = schedule(&s, &actions, 700);
        // The queued build would start at 301, before the removal at 500: it runs; the
        // trigger after the removal does not.
        let starts: Vec<i64> = planned.builds.iter().map(|b| b.start_ms).collect();
        assert_eq!(starts, [0, 301]);
        assert_eq!(planned.lives[0].removed_ms, Some(500));
    }
}
