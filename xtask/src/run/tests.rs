//! The run machine on a fake clock: each test is a timeline of what Tilt says (`h.at(150)
//! .header(5)`) and what the machine answers, its branch pinned by a coverage mark.

use std::time::{Duration, Instant};

use crate::{
    protocol::{duration, Protocol},
    run::{Action, BuildId, End, Event, Failure, How, Machine, Now, Timing},
    tilt::model::{
        BuildRecord, ComposeService, FinishedBuild, Health, LogLine, ResourceKind, ResourceStatus, Runtime,
        RuntimeStatus, Span, WallTime,
    },
};

const RUNNING: &str = "Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`";
const WASM_DONE: &str = "[INFO] WASM client synchronization complete!";

fn timing() -> Timing {
    Timing {
        settle: Duration::ZERO,
        catch_up: Duration::from_millis(400),
        after_error: Duration::from_secs(2),
        status_wait: Duration::from_secs(10),
        status_quiet: Duration::from_millis(300),
        containers_wait: Duration::from_secs(2),
        polled: false,
    }
}

/// A run of one step on a fake clock: `ms` since the harness began, on both clocks.
struct Harness<'p> {
    machine: Machine<'p>,
    start: Instant,
    wall: WallTime,
    ms: u64,
    resource: String,
    /// Every action so far, in order.
    all: Vec<Action>,
}

impl<'p> Harness<'p> {
    /// The run of `step` alone, after Tilt told of `before` (a status of the resource is
    /// added when `before` has none): the step is due, its trigger asked for.
    fn new(protocol: &'p Protocol, step: &str, timing: Timing, before: Vec<Event>) -> Harness<'p> {
        let index = protocol.steps.iter().position(|known| known.name == step).unwrap();
        let resource = protocol.steps[index].resource.clone();
        let mut h = Harness {
            machine: Machine::new(protocol, vec![index], timing),
            start: Instant::now(),
            wall: WallTime::from_unix_timestamp(1_800_000_000).unwrap(),
            ms: 0,
            resource: resource.clone(),
            all: Vec::new(),
        };
        let has_status = before.iter().any(|event| matches!(event, Event::Status(status) if status.name == resource));
        for event in before {
            h.feed(event);
        }
        if !has_status {
            h.status(ResourceStatus { kind: ResourceKind::Local, ..ResourceStatus::default() });
        }
        h
    }

    fn now(&self) -> Now {
        Now { at: self.start + Duration::from_millis(self.ms), origin: (self.start, self.wall) }
    }

    fn wall_at(&self, ms: u64) -> WallTime {
        self.wall + Duration::from_millis(ms)
    }

    fn feed(&mut self, event: Event) -> Vec<Action> {
        let mut actions = Vec::new();
        let now = self.now();
        self.machine.handle(event, now, &mut actions);
        // The lines kept for the step's log are not what these tests look at.
        self.all.extend(actions.iter().map(clone_action));
        actions.retain(|action| !matches!(action, Action::Keep(_)));
        actions
    }

    fn at(&mut self, ms: u64) -> &mut Self {
        self.ms = ms;
        self
    }

    fn wake(&mut self) -> Vec<Action> {
        self.feed(Event::Wake)
    }

    fn wake_at(&self) -> Option<Instant> {
        self.machine.wake_at(self.now().at)
    }

    /// The trigger was asked for: Tilt answers now.
    fn trigger(&mut self) -> Vec<Action> {
        let asked = self.all.iter().filter(|action| matches!(action, Action::Trigger(_))).count();
        let answered =
            self.all.iter().filter(|action| matches!(action, Action::Mark(note) if note == "triggered")).count();
        assert_eq!(asked, answered + 1, "a trigger is due: {:?}", self.all);
        self.all.push(Action::Mark("triggered".to_owned()));
        let at = self.wall_at(self.ms);
        self.feed(Event::Triggered(Ok(at)))
    }

    fn line(&mut self, span: Span, text: &str) -> Vec<Action> {
        self.feed(Event::Line(line_of(&self.resource, span, false, text)))
    }

    fn header(&mut self, build: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        for text in ["", "CLI Trigger"] {
            actions = self.feed(Event::Line(line_of(&self.resource, Span::Build(build), true, text)));
        }
        actions
    }

    fn status(&mut self, mut status: ResourceStatus) -> Vec<Action> {
        status.name.clone_from(&self.resource);
        self.feed(Event::Status(status))
    }

    fn container(&mut self, mut service: ComposeService) -> Vec<Action> {
        service.name.clone_from(&self.resource);
        self.feed(Event::Compose(service))
    }

    fn reading(&mut self, lines: &[(Span, bool, &str)]) -> Vec<Action> {
        let lines = lines.iter().map(|&(span, header, text)| line_of(&self.resource, span, header, text)).collect();
        self.feed(Event::Reading { resource: self.resource.clone(), lines: Ok(lines) })
    }

    /// Build 5 of a compose resource, Compose starting `new` in it, finished as Tilt records it:
    /// what the machine answers to the record.
    fn compose_build(&mut self, new: ComposeService) -> Vec<Action> {
        self.header(5);
        self.line(Span::Build(5), &format!(" Container ws-{}-1  Started", self.resource));
        self.container(new);
        self.line(Span::Build(5), "     DONE IN: 1.0s ");
        self.status(compose_status(&[(5, 0, None), (4, 0, None)]))
    }

    /// The lines kept for the step's log so far.
    fn kept(&self) -> Vec<&str> {
        self.all
            .iter()
            .filter_map(|action| match action {
                Action::Keep(line) if !line.header => Some(line.text.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn clone_action(action: &Action) -> Action {
    match action {
        Action::Keep(line) => Action::Keep(line.clone()),
        Action::Mark(note) => Action::Mark(note.clone()),
        Action::Trigger(resource) => Action::Trigger(resource.clone()),
        Action::StepEnded(end) => Action::StepEnded(end.clone()),
        Action::PassedFailed { step, failure } => Action::PassedFailed { step: *step, failure: failure.clone() },
        Action::Finished(end) => Action::Finished(end.clone()),
        Action::Recheck { resource, tail } => Action::Recheck { resource: resource.clone(), tail: *tail },
        Action::Remediate { step, remediation, bound } => {
            Action::Remediate { step: *step, remediation: *remediation, bound: *bound }
        }
        Action::StepStarted { step, ordinal, of } => Action::StepStarted { step: *step, ordinal: *ordinal, of: *of },
        Action::WatchContainers => Action::WatchContainers,
        Action::ListResources => Action::ListResources,
    }
}

fn line_of(resource: &str, span: Span, header: bool, text: &str) -> LogLine {
    LogLine { resource: resource.to_owned(), span, header, text: text.to_owned() }
}

/// Tilt's status: `running` (number, start ms), `finished` (number, start ms, error).
fn status(running: Option<(u64, u64)>, finished: &[(u64, u64, Option<&str>)], runtime: Runtime) -> ResourceStatus {
    let wall = |ms: u64| Some(WallTime::from_unix_timestamp(1_800_000_000).unwrap() + Duration::from_millis(ms));
    ResourceStatus {
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
        runtime,
        ..ResourceStatus::default()
    }
}

fn compose_status(finished: &[(u64, u64, Option<&str>)]) -> ResourceStatus {
    ResourceStatus { kind: ResourceKind::Compose, ..status(None, finished, Runtime::default()) }
}

fn serving(pid: u64, status: RuntimeStatus) -> Runtime {
    Runtime { status, instance: Some(pid.to_string()), health: None }
}

fn container(id: &str, health: Option<Health>) -> ComposeService {
    ComposeService {
        container: Some(id.to_owned()),
        started_at: Some(format!("{id}-start")),
        health,
        ..ComposeService::default()
    }
}

fn ended(actions: &[Action]) -> Option<&How> {
    actions.iter().find_map(|action| match action {
        Action::StepEnded(end) => Some(&end.how),
        _ => None,
    })
}

fn succeeded_with(actions: &[Action]) -> Option<&str> {
    match ended(actions) {
        Some(How::Passed { line, .. }) => Some(line),
        _ => None,
    }
}

fn failed(actions: &[Action]) -> Option<&Failure> {
    match ended(actions) {
        Some(How::Failed(failure)) => Some(failure),
        _ => None,
    }
}

fn error_line(actions: &[Action]) -> Option<&str> {
    match failed(actions) {
        Some(Failure::Error { line, .. }) => Some(line),
        _ => None,
    }
}

fn recheck(tail: Option<usize>, resource: &str) -> Action {
    Action::Recheck { resource: resource.to_owned(), tail }
}

#[test]
fn an_update_commands_success_line_counts_once_tilt_recorded_the_end_and_the_log_caught_up() {
    let protocol = Protocol::load(None).unwrap();
    let before = vec![Event::Status(ResourceStatus {
        name: "sync-wasm-client".to_owned(),
        ..status(None, &[(4, 0, None)], Runtime::default())
    })];
    let mut h = Harness::new(&protocol, "sync-wasm-client", timing(), before);
    h.at(100).trigger();
    h.at(150).header(5);
    h.line(Span::Update, "Running cmd: ./wasm.sh");
    assert!(h.line(Span::Update, WASM_DONE).is_empty(), "not before Tilt says the build ended");
    cov_mark::check!(recheck_after_the_end);
    let actions = h.at(400).status(status(None, &[(5, 150, None), (4, 0, None)], Runtime::default()));
    assert_eq!(actions, [recheck(Some(1004), "sync-wasm-client")], "no later line will prove the log caught up");
    let actions = h.reading(&[(Span::Build(5), true, "CLI Trigger"), (Span::Update, false, WASM_DONE)]);
    assert_eq!(succeeded_with(&actions), Some(WASM_DONE));
    assert!(actions.contains(&Action::Finished(End::Completed)), "{actions:?}");
}

#[test]
fn a_line_the_stream_had_not_delivered_when_tilt_recorded_the_end_still_fails_the_step() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "sync-wasm-client", timing(), Vec::new());
    h.trigger();
    h.at(50).header(5);
    h.line(Span::Update, "[INFO] Verifying synchronization...");
    h.at(300).status(status(None, &[(5, 50, None)], Runtime::default()));
    let mut late: Vec<(Span, bool, &str)> = vec![(Span::Build(5), true, "CLI Trigger")];
    late.push((Span::Update, false, "\u{1b}[0;31m[ERROR]\u{1b}[0m ❌ WASM files are NOT synchronized!"));
    late.extend(std::iter::repeat_n((Span::Update, false, "[INFO] copying"), 150));
    late.push((Span::Update, false, WASM_DONE));
    let actions = h.reading(&late);
    assert!(error_line(&actions).is_some_and(|line| line.contains("NOT synchronized")), "{actions:?}");
}

#[test]
fn an_update_commands_error_decides_and_gets_its_remediation_after_the_build_ends() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "sync-wasm-client", timing(), Vec::new());
    h.trigger();
    h.at(50).header(7);
    h.status(status(Some((7, 50)), &[], Runtime::default()));
    cov_mark::check!(capture_goes_on_after_the_error);
    assert!(h.line(Span::Update, "error TS2688: Cannot find type definition file for 'node'.").is_empty());
    assert!(h.line(Span::Update, "  more of tsc's message").is_empty(), "the rest of the build is still kept");
    let actions = h.at(300).status(status(
        None,
        &[(7, 50, Some("Command \"./wasm.sh\" failed: exit status 1"))],
        Runtime::default(),
    ));
    assert_eq!(actions, [recheck(Some(1004), "sync-wasm-client")], "the build ended: its last lines are read at once");
    assert!(h.at(320).line(Span::Build(7), "Build Failed: Command \"./wasm.sh\" failed: exit status 1").is_empty());
    cov_mark::check!(remediation_once_per_kind);
    let actions = h.reading(&[
        (Span::Build(7), true, ""),
        (Span::Update, false, "error TS2688: Cannot find type definition file for 'node'."),
        (Span::Update, false, "  more of tsc's message"),
        (Span::Build(7), false, "Build Failed: Command \"./wasm.sh\" failed: exit status 1"),
    ]);
    assert!(
        matches!(actions[..], [Action::Remediate { remediation: 0, .. }]),
        "TS2688 decided, not the later `Build Failed`: {actions:?}"
    );
    assert_eq!(h.kept().len(), 3);
    // The remediation ran: its wait, then a new trigger and a new build.
    assert!(h.at(1000).feed(Event::Remediated(Ok(()))).is_empty());
    assert_eq!(h.wake_at(), Some(h.start + Duration::from_millis(11_000)));
    assert_eq!(h.at(11_000).wake(), [Action::Trigger("sync-wasm-client".to_owned())]);
    h.trigger();
    h.at(11_100).header(8);
    h.status(status(Some((8, 11_100)), &[(7, 50, Some("x"))], Runtime::default()));
    h.line(Span::Update, "error TS2688: Cannot find type definition file for 'node'.");
    h.status(status(None, &[(8, 11_100, Some("exit status 1")), (7, 50, Some("x"))], Runtime::default()));
    h.line(Span::Build(8), "Build Failed: exit status 1");
    let actions = h.at(11_500).wake();
    let end = h.all.iter().find_map(|action| match action {
        Action::StepEnded(end) => Some(end.clone()),
        _ => None,
    });
    let end = end.unwrap_or_else(|| panic!("once per kind: {actions:?}"));
    assert!(matches!(&end.how, How::Failed(Failure::Error { line, .. }) if line.starts_with("error TS2688")));
    assert_eq!(end.remediations, [0]);
}

#[test]
fn a_failed_commands_error_arriving_after_tilts_build_failed_line_still_decides() {
    // Seen on the real Tilt under load: `Build Failed:` first, the command's lines after.
    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "sync-wasm-client", timing(), Vec::new());
    h.trigger();
    h.at(50).header(7);
    h.line(Span::Update, "Running cmd: ./wasm.sh");
    h.at(300).status(status(None, &[(7, 50, Some("Command \"./wasm.sh\" failed: exit status 1"))], Runtime::default()));
    assert!(h.line(Span::Build(7), "Build Failed: Command \"./wasm.sh\" failed: exit status 1").is_empty());
    assert!(h.at(350).line(Span::Update, "error TS2688: Cannot find type definition file for 'node'.").is_empty());
    let actions = h.reading(&[
        (Span::Build(7), true, ""),
        (Span::Update, false, "Running cmd: ./wasm.sh"),
        (Span::Build(7), false, "Build Failed: Command \"./wasm.sh\" failed: exit status 1"),
        (Span::Update, false, "error TS2688: Cannot find type definition file for 'node'."),
    ]);
    assert!(matches!(actions[..], [Action::Remediate { remediation: 0, .. }]), "{actions:?}");
}

#[test]
fn a_build_tilt_says_started_before_our_trigger_is_not_ours() {
    // The real Tilt: build 342 was running when we triggered; the status had not shown it
    // yet, so its header came after our trigger. It printed the success line; ours failed.
    let protocol = Protocol::load(None).unwrap();
    let before = vec![Event::Status(ResourceStatus {
        name: "server".to_owned(),
        ..status(None, &[(341, 0, None)], serving(10, RuntimeStatus::Ok))
    })];
    let mut h = Harness::new(&protocol, "server", timing(), before);
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
    h.status(status(None, &[(343, 1_300, Some("exit status 101")), (342, 900, None)], serving(11, RuntimeStatus::Ok)));
    h.at(1_500).line(Span::Build(343), "Build Failed: exit status 101");
    let actions = h.at(1_900).wake();
    assert!(error_line(&actions).is_some_and(|line| line.starts_with("error[E0425]")), "{actions:?}");
}

#[test]
fn our_serve_process_proves_the_log_caught_up_and_a_stale_runtime_error_is_not_ours() {
    // The fixed server after a crash: Tilt still says error (the crashed process) for a while.
    let protocol = Protocol::load(None).unwrap();
    let crashed = serving(2956, RuntimeStatus::Error);
    let before = vec![
        Event::Line(line_of("server", Span::Serve(3), false, "thread 'main' panicked at src/main.rs:1:1")),
        Event::Status(ResourceStatus { name: "server".to_owned(), ..status(None, &[(4, 0, None)], crashed.clone()) }),
    ];
    let mut h = Harness::new(&protocol, "server", timing(), before);
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
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.trigger();
    h.header(5);
    cov_mark::check!(an_error_split_across_records_is_found);
    h.line(Span::Update, "err");
    h.line(Span::Update, "or: could not compile `x`");
    h.line(Span::Update, "    Finished");
    let mut actions = h.at(400).status(status(None, &[(5, 0, None)], serving(10, RuntimeStatus::Ok)));
    actions.extend(h.line(Span::Serve(3), "Running cmd: ./serve.sh"));
    let Some(Failure::Error { line, .. }) = failed(&actions) else { panic!("{actions:?}") };
    assert!(line.starts_with("error: could not compile `x`"), "{line}");

    // Nor does a split success line pass, nor two whole lines make an error.
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.trigger();
    h.header(5);
    h.line(Span::Update, "warning: unused variable: `err");
    h.line(Span::Update, "or`");
    h.at(400).status(status(None, &[(5, 0, None)], serving(10, RuntimeStatus::Ok)));
    h.line(Span::Serve(3), "Running `target/debug/");
    let actions = h.at(450).line(Span::Serve(3), "citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`");
    assert_eq!(ended(&actions), None, "{actions:?}");
}

#[test]
fn a_build_held_for_a_failed_dependency_fails_at_once_and_a_started_one_goes_on() {
    let protocol = Protocol::load(None).unwrap();
    let dependency = ResourceStatus {
        name: "sync-wasm-client".to_owned(),
        ..status(None, &[(3, 0, Some("exit status 1"))], Runtime::default())
    };
    let held = ResourceStatus {
        waiting_on: vec!["sync-wasm-client".to_owned()],
        ..status(None, &[(4, 0, None)], Runtime::default())
    };
    let before = |dependency: &ResourceStatus| {
        let server = ResourceStatus { name: "server".to_owned(), ..status(None, &[(4, 0, None)], Runtime::default()) };
        vec![Event::Status(dependency.clone()), Event::Status(server)]
    };
    let mut h = Harness::new(&protocol, "server", timing(), before(&dependency));
    h.trigger();
    cov_mark::check!(a_build_held_for_a_failed_dependency_fails_at_once);
    let actions = h.status(held.clone());
    let Some(Failure::Blocked { dependency: name, .. }) = failed(&actions) else { panic!("{actions:?}") };
    assert_eq!(name, "sync-wasm-client");

    let mut h = Harness::new(&protocol, "server", timing(), before(&dependency));
    h.trigger();
    h.header(5);
    assert_eq!(ended(&h.status(held)), None, "our build started: Tilt holds it no longer");
}

#[test]
fn our_service_crashing_fails_the_step_and_the_previous_ones_output_does_not() {
    let protocol = Protocol::load(None).unwrap();
    let before = vec![
        Event::Line(line_of("server", Span::Serve(2), false, "Running cmd: ./serve.sh")),
        Event::Status(ResourceStatus {
            name: "server".to_owned(),
            ..status(None, &[(4, 0, None)], serving(10, RuntimeStatus::Ok))
        }),
    ];
    let mut h = Harness::new(&protocol, "server", timing(), before);
    h.at(100).trigger();
    h.header(5);
    // The previous process still serves while we build: its errors are not ours.
    h.line(Span::Serve(2), "error: connection reset by peer");
    h.at(400).status(status(None, &[(5, 100, None)], serving(10, RuntimeStatus::Ok)));
    h.line(Span::Serve(3), "Running cmd: ./serve.sh");
    cov_mark::check!(a_failed_service_is_explained_by_its_last_lines);
    let actions = h.at(450).status(status(None, &[(5, 100, None)], serving(11, RuntimeStatus::Error)));
    assert!(matches!(actions[..], [Action::Recheck { .. }]), "its last lines say why: {actions:?}");
    let actions = h.reading(&[(Span::Build(5), true, ""), (Span::Serve(3), false, "Running cmd: ./serve.sh")]);
    assert!(
        matches!(failed(&actions), Some(Failure::RuntimeFailed { container: false, .. })),
        "a serve process, not a container: {actions:?}"
    );
}

#[test]
fn a_short_recheck_fetches_the_whole_log_and_a_success_waits_for_the_settle_time() {
    let protocol = Protocol::load(None).unwrap();
    let mut h =
        Harness::new(&protocol, "sync-wasm-client", Timing { settle: Duration::from_secs(5), ..timing() }, Vec::new());
    h.trigger();
    h.header(5);
    h.line(Span::Update, WASM_DONE);
    assert!(matches!(
        h.at(200).status(status(None, &[(5, 0, None)], Runtime::default()))[..],
        [Action::Recheck { .. }]
    ));
    cov_mark::check!(a_short_recheck_fetches_the_whole_log);
    assert_eq!(h.reading(&[(Span::Update, false, WASM_DONE)]), [recheck(None, "sync-wasm-client")]);
    let actions = h.reading(&[(Span::Build(5), true, ""), (Span::Update, false, WASM_DONE)]);
    assert!(actions.is_empty(), "the seed's settle time holds the verdict: {actions:?}");
    assert_eq!(h.wake_at(), Some(h.start + Duration::from_secs(5)));
    assert_eq!(succeeded_with(&h.at(5_000).wake()), Some(WASM_DONE));
}

#[test]
fn no_success_within_the_timeout_fails_and_a_later_build_is_uncertain() {
    let mut protocol = Protocol::load(None).unwrap();
    let server = protocol.steps.iter().position(|step| step.name == "server").unwrap();
    protocol.steps[server].timeout = duration::Duration(Duration::from_secs(3));
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.trigger();
    h.header(5);
    assert_eq!(h.wake_at(), Some(h.start + Duration::from_secs(3)));
    assert_eq!(failed(&h.at(3_000).wake()), Some(&Failure::Timeout));

    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.trigger();
    h.header(5);
    h.header(6);
    let actions = h.status(status(Some((6, 20)), &[(5, 0, None)], Runtime::default()));
    assert_eq!(failed(&actions), Some(&Failure::Superseded { by: 6 }));
}

#[test]
fn tilt_recording_a_failure_fails_the_step_without_any_matching_line() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.trigger();
    h.header(5);
    h.line(Span::Update, "   Compiling");
    let actions = h.status(status(None, &[(5, 0, Some("exit status 101"))], Runtime::default()));
    assert_eq!(actions, [recheck(Some(1003), "server")], "no `Build Failed` line came: read the log at once");
    cov_mark::check!(tilt_recorded_the_failure);
    let actions = h.reading(&[(Span::Build(5), true, ""), (Span::Update, false, "   Compiling")]);
    assert_eq!(failed(&actions), Some(&Failure::TiltRecorded { error: "exit status 101".to_owned() }));
}

/// A compose run of `step` whose container was `old` when it began.
fn compose_run<'p>(protocol: &'p Protocol, step: &str, old: ComposeService) -> Harness<'p> {
    let mut old = old;
    old.name = step.to_owned();
    let status = ResourceStatus { name: step.to_owned(), ..compose_status(&[(4, 0, None)]) };
    let mut h = Harness::new(protocol, step, timing(), vec![Event::Compose(old), Event::Status(status)]);
    assert!(h.all.contains(&Action::WatchContainers), "{:?}", h.all);
    h.trigger();
    h
}

#[test]
fn a_healthy_new_container_passes_and_an_unhealthy_one_fails() {
    let protocol = Protocol::load(None).unwrap();
    for (health, passes) in [(Health::Healthy, true), (Health::Unhealthy, false)] {
        let mut h = compose_run(&protocol, "server", container("old", Some(Health::Healthy)));
        h.header(5);
        h.line(Span::Build(5), " Container ws-server-1  Recreated");
        h.line(Span::Build(5), " Container ws-server-1  Started");
        h.container(container("new", Some(Health::Starting)));
        h.line(Span::Build(5), "     DONE IN: 1.2s");
        let actions = h.status(compose_status(&[(5, 0, None), (4, 0, None)]));
        assert!(actions.is_empty(), "starting is not healthy yet: {actions:?}");
        let actions = h.container(container("new", Some(health)));
        match passes {
            true => assert!(succeeded_with(&actions).is_some_and(|line| line.starts_with("healthy")), "{actions:?}"),
            false => assert_eq!(failed(&actions), Some(&Failure::Unhealthy)),
        }
    }
}

#[test]
fn a_containers_lines_before_the_builds_end_are_ours_once_compose_started_it() {
    // The real Tilt and Compose: Vite speaks before the build's `Step 1 - …` and `DONE IN:`.
    let protocol = Protocol::load(None).unwrap();
    let mut h = compose_run(&protocol, "ui", container("old", None));
    h.header(5);
    h.line(Span::Build(5), "STEP 1/2 — Force update");
    h.line(Span::Build(5), "      Container ws-ui-1  Stopping");
    h.line(Span::Container, "  VITE v5.4.2  ready in 400 ms");
    h.container(ComposeService { exited: true, exit_code: 143, ..container("old", None) });
    h.line(Span::Build(5), " Container ws-ui-1  Started");
    h.container(container("new", None));
    assert!(h.line(Span::Container, "  VITE v5.4.2  ready in 380 ms").is_empty(), "not before Tilt says it ended");
    h.line(Span::Build(5), "     DONE IN: 2.31s ");
    let actions = h.status(compose_status(&[(5, 0, None), (4, 0, None)]));
    assert_eq!(succeeded_with(&actions), Some("  VITE v5.4.2  ready in 380 ms"), "{actions:?}");

    // Without Compose's word (a pod, say), only what follows the build's own last line is ours.
    let mut h = compose_run(&protocol, "ui", container("old", None));
    h.header(5);
    h.line(Span::Container, "  VITE v5.4.2  ready in 380 ms");
    h.container(container("new", None));
    h.line(Span::Build(5), "     DONE IN: 2.31s ");
    let actions = h.status(compose_status(&[(5, 0, None), (4, 0, None)]));
    assert_eq!(ended(&actions), None, "{actions:?}");
    let actions = h.line(Span::Container, "  VITE v5.4.2  ready in 390 ms");
    assert_eq!(succeeded_with(&actions), Some("  VITE v5.4.2  ready in 390 ms"), "{actions:?}");
}

#[test]
fn a_container_compose_kept_is_ready_for_our_build_unless_unhealthy() {
    let protocol = Protocol::load(None).unwrap();
    cov_mark::check!(a_kept_container_is_ready_for_our_build);
    for (health, passes) in [(Some(Health::Healthy), true), (None, true), (Some(Health::Unhealthy), false)] {
        let running = container("same", health);
        let mut h = compose_run(&protocol, "server", running.clone());
        h.header(5);
        h.line(Span::Build(5), "STEP 1/1 — Building & deploying");
        h.line(Span::Build(5), "      Container ws-server-1  Running");
        h.line(Span::Build(5), "     DONE IN: 0.52s ");
        let actions = h.status(compose_status(&[(5, 0, None), (4, 0, None)]));
        match passes {
            true => assert!(succeeded_with(&actions).is_some_and(|line| line.starts_with("kept")), "{actions:?}"),
            false => assert_eq!(failed(&actions), Some(&Failure::Unhealthy), "at once, named: {actions:?}"),
        }
    }
}

#[test]
fn a_container_compose_replaced_is_not_our_failure() {
    // A queued force update stops the container the build before it just started (143).
    let protocol = Protocol::load(None).unwrap();
    let mut h = compose_run(&protocol, "server", container("c0", Some(Health::Healthy)));
    h.compose_build(container("c1", Some(Health::Starting)));
    cov_mark::check!(a_killed_container_may_be_a_replaced_one);
    let actions = h.at(100).container(ComposeService { exited: true, exit_code: 143, ..container("c1", None) });
    assert_eq!(ended(&actions), None, "a replacement may follow: {actions:?}");
    h.at(200).container(container("c2", Some(Health::Starting)));
    let actions = h.at(900).container(container("c2", Some(Health::Healthy)));
    assert!(succeeded_with(&actions).is_some_and(|line| line.starts_with("healthy")), "{actions:?}");
}

#[test]
fn a_one_shot_that_exits_without_its_success_line_fails_once_the_log_is_read() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = compose_run(&protocol, "sync-wasm-client", ComposeService { exited: true, ..container("job", None) });
    h.header(5);
    h.line(Span::Build(5), " Container ws-sync-wasm-client-1  Started");
    h.line(Span::Build(5), "     DONE IN: 0.4s ");
    h.status(compose_status(&[(5, 0, None), (4, 0, None)]));
    let restarted = ComposeService { started_at: Some("again".to_owned()), ..container("job", None) };
    h.container(restarted.clone());
    let actions = h.container(ComposeService { exited: true, ..restarted });
    assert!(matches!(actions[..], [Action::Recheck { .. }]), "its success line may be on its way: {actions:?}");
    let actions =
        h.reading(&[(Span::Build(5), true, ""), (Span::Container, false, "[INFO] Running in container mode")]);
    assert!(matches!(failed(&actions), Some(Failure::NoSuccessLine { .. })), "{actions:?}");
}

/// The server step passed on its serve process's line (build 5, process 3), with more steps
/// to come (`ui`): its guard watches it.
fn passed_server(protocol: &Protocol) -> Harness<'_> {
    let server = protocol.steps.iter().position(|step| step.name == "server").unwrap();
    let ui = protocol.steps.iter().position(|step| step.name == "ui").unwrap();
    let mut h = Harness {
        machine: Machine::new(protocol, vec![server, ui], timing()),
        start: Instant::now(),
        wall: WallTime::from_unix_timestamp(1_800_000_000).unwrap(),
        ms: 0,
        resource: "server".to_owned(),
        all: Vec::new(),
    };
    h.feed(Event::Status(ResourceStatus {
        name: "ui".to_owned(),
        ..status(None, &[(2, 0, None)], Runtime::default())
    }));
    h.status(status(None, &[(4, 0, None)], serving(10, RuntimeStatus::Ok)));
    h.trigger();
    h.header(5);
    h.at(100).status(status(None, &[(5, 0, None)], serving(10, RuntimeStatus::Ok)));
    h.line(Span::Serve(3), "Running cmd: ./serve.sh");
    let actions = h.line(Span::Serve(3), RUNNING);
    assert_eq!(succeeded_with(&actions), Some(RUNNING), "{actions:?}");
    assert!(actions.contains(&Action::Trigger("ui".to_owned())), "the next step: {actions:?}");
    h
}

fn passed_failed(actions: &[Action]) -> Option<&Failure> {
    actions.iter().find_map(|action| match action {
        Action::PassedFailed { failure, .. } => Some(failure),
        _ => None,
    })
}

#[test]
fn a_passed_services_error_line_fails_the_run_whenever_it_comes() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = passed_server(&protocol);
    cov_mark::check!(a_passed_services_error_line_fails_the_run);
    let actions = h.at(5_000).line(Span::Serve(3), "error: a client went away");
    assert!(matches!(passed_failed(&actions), Some(Failure::Error { .. })), "after its confirm time too: {actions:?}");
    assert_eq!(ended(&actions), Some(&How::CutShort), "the step running then (ui) is cut short");
}

#[test]
fn a_passed_service_that_stops_fails_the_run_explained_by_the_log_tilt_has() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = passed_server(&protocol);
    let actions = h.at(300).status(status(None, &[(5, 0, None)], serving(11, RuntimeStatus::Error)));
    assert_eq!(actions.iter().filter(|action| matches!(action, Action::Recheck { tail: Some(1000), .. })).count(), 1);
    cov_mark::check!(a_stopped_service_is_explained_by_its_log);
    let actions = h.reading(&[
        (Span::Serve(2), false, "error: address already in use"),
        (Span::Build(5), true, ""),
        (Span::Build(5), false, "   Compiling server"),
        (Span::Serve(3), false, RUNNING),
        (Span::Serve(3), false, "thread 'main' panicked at src/main.rs:40:10:"),
    ]);
    let Some(Failure::Error { line, .. }) = passed_failed(&actions) else { panic!("explained: {actions:?}") };
    assert!(line.starts_with("thread 'main' panicked"), "{line}");

    let mut h = passed_server(&protocol);
    h.at(300).status(status(None, &[(5, 0, None)], serving(11, RuntimeStatus::Error)));
    let actions = h.reading(&[(Span::Build(5), true, ""), (Span::Serve(3), false, RUNNING)]);
    assert!(matches!(passed_failed(&actions), Some(Failure::RuntimeFailed { .. })), "Tilt's word: {actions:?}");
}

#[test]
fn a_later_build_of_a_passed_step_that_fails_fails_the_run() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = passed_server(&protocol);
    h.status(status(Some((6, 500)), &[(5, 0, None)], serving(11, RuntimeStatus::Ok)));
    cov_mark::check!(a_later_build_failing_fails_the_run);
    let actions =
        h.status(status(None, &[(6, 500, Some("exit status 101")), (5, 0, None)], serving(11, RuntimeStatus::Ok)));
    assert!(matches!(passed_failed(&actions), Some(Failure::LaterBuildFailed { build: 6, .. })), "{actions:?}");
}

#[test]
fn a_container_that_passed_on_its_line_while_starting_fails_the_run_once_unhealthy() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = compose_run(&protocol, "server", container("old", Some(Health::Healthy)));
    h.header(5);
    h.line(Span::Build(5), " Container ws-server-1  Started");
    h.container(container("new", Some(Health::Starting)));
    h.line(Span::Container, RUNNING);
    h.line(Span::Build(5), "     DONE IN: 1.0s ");
    let actions = h.status(compose_status(&[(5, 0, None), (4, 0, None)]));
    assert_eq!(succeeded_with(&actions), Some(RUNNING), "{actions:?}");
    assert!(h.container(container("new", Some(Health::Starting))).is_empty());
    cov_mark::check!(a_service_turning_unhealthy_after_it_passed_fails_the_run);
    let actions = h.at(500).container(container("new", Some(Health::Unhealthy)));
    assert_eq!(passed_failed(&actions), Some(&Failure::Unhealthy));
}

#[test]
fn the_end_of_the_run_checks_every_synced_resource_after_its_confirm_time() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = compose_run(&protocol, "server", container("old", Some(Health::Healthy)));
    let actions = h.compose_build(container("new", Some(Health::Healthy)));
    assert!(succeeded_with(&actions).is_some(), "{actions:?}");
    assert!(!actions.iter().any(|action| matches!(action, Action::Finished(_))), "its confirm time first");
    assert_eq!(h.wake_at(), Some(h.start + Duration::from_secs(2)));
    let actions = h.at(1_000).status(ResourceStatus { disabled: true, ..compose_status(&[(5, 0, None)]) });
    assert_eq!(passed_failed(&actions), Some(&Failure::Disabled));

    let mut h = compose_run(&protocol, "server", container("old", Some(Health::Healthy)));
    h.compose_build(container("new", Some(Health::Healthy)));
    let actions = h.at(2_000).wake();
    assert_eq!(actions, [Action::Finished(End::Completed)]);

    // Stopped by a signal after it passed: a replacement may follow (the watch lets it be), but
    // none came by the end, and the end's own look at Tilt's state finds it down.
    let mut h = compose_run(&protocol, "server", container("old", Some(Health::Healthy)));
    h.compose_build(container("new", Some(Health::Healthy)));
    let killed = ComposeService { exited: true, exit_code: 137, ..container("new", None) };
    assert!(h.at(1_000).container(killed).is_empty(), "a replacement may follow");
    cov_mark::check!(the_end_of_the_run_checks_every_synced_resource);
    let actions = h.at(2_000).wake();
    assert!(
        matches!(passed_failed(&actions), Some(Failure::NoLongerStands(trouble)) if trouble.contains("exited with code 137")),
        "{actions:?}"
    );
    assert_eq!(actions.last(), Some(&Action::Finished(End::Completed)));
}

#[test]
fn the_previous_containers_line_before_compose_started_ours_is_not_ours() {
    // Tilt's order: our header, the old container's last words, Compose's `Started`, ours.
    let protocol = Protocol::load(None).unwrap();
    let mut h = compose_run(&protocol, "server", container("old", None));
    h.header(5);
    h.line(Span::Container, RUNNING);
    h.line(Span::Build(5), " Container ws-server-1  Started");
    h.container(container("new", Some(Health::Starting)));
    let actions = h.at(300).status(compose_status(&[(5, 0, None), (4, 0, None)]));
    assert!(matches!(actions[..], [Action::Recheck { .. }]), "{actions:?}");
    let actions = h.reading(&[
        (Span::Build(5), true, ""),
        (Span::Container, false, RUNNING),
        (Span::Build(5), false, " Container ws-server-1  Started"),
    ]);
    assert!(actions.is_empty(), "the previous container's line is not ours: {actions:?}");
    assert_eq!(succeeded_with(&h.line(Span::Container, RUNNING)), Some(RUNNING), "our container's own line");
}

#[test]
fn a_line_the_recheck_judged_is_not_judged_again() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "sync-wasm-client", timing(), Vec::new());
    h.trigger();
    h.header(5);
    h.status(status(None, &[(5, 0, None)], Runtime::default()));
    let actions = h.reading(&[(Span::Build(5), true, ""), (Span::Update, false, "[INFO] copying")]);
    assert!(matches!(actions[..], [Action::Recheck { .. }] | []), "{actions:?}");
    cov_mark::check!(a_line_the_recheck_judged_is_not_judged_again);
    h.line(Span::Update, "[INFO] copying");
}

#[test]
fn tilt_going_away_decides_at_once() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.trigger();
    h.header(5);
    let actions = h.feed(Event::Ended { error: None });
    assert_eq!(failed(&actions), Some(&Failure::TiltGone));
}

#[test]
fn ctrl_c_before_the_first_trigger_refuses_and_after_it_reports_the_step_triggered() {
    let protocol = Protocol::load(None).unwrap();
    let index = protocol.steps.iter().position(|step| step.name == "server").unwrap();
    let mut machine = Machine::new(&protocol, vec![index], timing());
    let mut actions = Vec::new();
    let now =
        Now { at: Instant::now(), origin: (Instant::now(), WallTime::from_unix_timestamp(1_800_000_000).unwrap()) };
    machine.handle(Event::Interrupted, now, &mut actions);
    assert_eq!(actions, [Action::Finished(End::Refused(crate::run::Refusal::Failed(Failure::Interrupted)))]);

    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.trigger();
    let actions = h.feed(Event::Interrupted);
    let Some(Action::StepEnded(end)) = actions.first() else { panic!("{actions:?}") };
    assert!(end.triggered && end.how == How::Failed(Failure::Interrupted), "{end:?}");
    assert_eq!(actions.last(), Some(&Action::Finished(End::Interrupted)));
}

#[test]
fn a_canceled_or_disabled_build_fails_at_once() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.trigger();
    h.header(5);
    h.status(status(Some((5, 0)), &[], Runtime::default()));
    cov_mark::check!(a_canceled_build_fails_at_once);
    let actions = h.line(Span::Build(5), "Build Failed: build canceled");
    assert!(matches!(failed(&actions), Some(Failure::Canceled { .. })), "{actions:?}");

    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.trigger();
    h.header(5);
    cov_mark::check!(a_disabled_resource_fails_its_step_at_once);
    let actions = h.status(ResourceStatus { disabled: true, ..status(None, &[], Runtime::default()) });
    assert_eq!(failed(&actions), Some(&Failure::Disabled));
}

#[test]
fn a_build_whose_start_tilt_cut_from_its_log_is_uncertain_and_a_success_on_a_full_log_is_verified() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "sync-wasm-client", timing(), Vec::new());
    h.trigger();
    h.header(5);
    h.line(Span::Update, "\u{1b}[0;31m[ERROR]\u{1b}[0m");
    h.status(status(None, &[(5, 0, None)], Runtime::default()));
    h.reading(&[(Span::Update, false, WASM_DONE)]);
    cov_mark::check!(our_header_gone_from_tilts_log_is_uncertain);
    let actions = h.reading(&[(Span::Update, false, WASM_DONE)]);
    assert_eq!(failed(&actions), Some(&Failure::LogCut), "{actions:?}");
    assert!(h.all.iter().any(|action| matches!(action, Action::Mark(note) if note.contains("missing"))));

    // Past 1 MB of log read, a success needs a reading that still shows our header.
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.feed(Event::Volume(1_500_000));
    h.trigger();
    h.header(5);
    h.status(status(None, &[(5, 0, None)], serving(10, RuntimeStatus::Ok)));
    h.line(Span::Serve(3), "Running cmd: ./serve.sh");
    cov_mark::check!(a_success_on_a_log_tilt_may_have_cut_is_verified);
    let actions = h.line(Span::Serve(3), RUNNING);
    assert!(matches!(actions[..], [Action::Recheck { .. }]), "{actions:?}");
    let actions = h.reading(&[(Span::Build(5), true, ""), (Span::Serve(3), false, RUNNING)]);
    assert_eq!(succeeded_with(&actions), Some(RUNNING), "{actions:?}");
}

#[test]
fn lines_of_builds_known_at_the_trigger_are_neither_judged_nor_kept() {
    let protocol = Protocol::load(None).unwrap();
    let before = vec![
        Event::Line(line_of("server", Span::Build(3), true, "CLI Trigger")),
        Event::Line(line_of("server", Span::Build(3), false, "error[E0425]: an old failure")),
        Event::Status(ResourceStatus {
            name: "server".to_owned(),
            ..status(Some((4, 0)), &[(3, 0, Some("old"))], Runtime::default())
        }),
    ];
    let mut h = Harness::new(&protocol, "server", timing(), before);
    h.at(100).trigger();
    // Build 4 ran when we triggered: the status knew it, the log had not shown it yet.
    h.header(4);
    h.line(Span::Build(4), "error[E0599]: the running build's");
    assert!(h.kept().is_empty());
    h.header(5);
    h.line(Span::Build(5), RUNNING);
    h.status(status(None, &[(5, 200, None), (4, 0, Some("x"))], Runtime::default()));
    let actions = h.reading(&[(Span::Build(5), true, ""), (Span::Build(5), false, RUNNING)]);
    assert_eq!(succeeded_with(&actions), Some(RUNNING));
    assert_eq!(h.kept(), [RUNNING]);
    let Some(Action::StepEnded(end)) = h.all.iter().find(|action| matches!(action, Action::StepEnded(_))) else {
        unreachable!("decided above")
    };
    assert!(matches!(&end.how, How::Passed { build: BuildId { number: 5, .. }, .. }));
}

#[test]
fn a_resource_the_tiltfile_removes_during_its_build_fails_its_step_at_once() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.feed(Event::TiltfileLoaded(Some("then".to_owned())));
    h.trigger();
    h.header(5);
    h.status(status(Some((5, 0)), &[], Runtime::default()));
    // Tilt loaded the Tiltfile again (an edit): ask it which resources it has.
    assert_eq!(h.feed(Event::TiltfileLoaded(Some("now".to_owned()))), [Action::ListResources]);
    cov_mark::check!(a_resource_the_tiltfile_removed_fails_its_step_at_once);
    let actions = h.feed(Event::Resources(Ok(vec!["sync-wasm-client".to_owned(), "ui".to_owned()])));
    assert_eq!(failed(&actions), Some(&Failure::Removed));

    // A Tiltfile loaded again that kept the resource changes nothing.
    let mut h = Harness::new(&protocol, "server", timing(), Vec::new());
    h.feed(Event::TiltfileLoaded(Some("then".to_owned())));
    h.trigger();
    assert_eq!(h.feed(Event::TiltfileLoaded(Some("now".to_owned()))), [Action::ListResources]);
    assert!(h.feed(Event::Resources(Ok(vec!["server".to_owned()]))).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Found by a review of the machine: each was a wrong answer before its fix.
// ---------------------------------------------------------------------------------------------

/// false SUCCESS. sync-wasm-client is a one-shot job (confirm 0). Its previous run
/// is still going when we trigger, and a changed file in its build context that no image layer
/// copies makes Compose keep the running container (`Container …-1  Running`). The machine
/// passes at once with "kept …" although this run of the job never printed its success line;
/// here it then prints `[ERROR]` and exits 1. A kept *running* one-shot is not done: the step
/// must wait for its success line / exit (as for a new one-shot container).
#[test]
fn a_kept_one_shot_that_is_still_running_is_not_done() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = compose_run(&protocol, "sync-wasm-client", container("job", None));
    h.header(5);
    h.line(Span::Build(5), "STEP 1/1 — Building & deploying");
    h.line(Span::Build(5), " Container ws-sync-wasm-client-1  Running");
    h.line(Span::Build(5), "     DONE IN: 0.49s ");
    let actions = h.status(compose_status(&[(5, 0, None), (4, 0, None)]));
    assert_eq!(succeeded_with(&actions), None, "the job is still running, no success line yet: {actions:?}");
    h.at(500).line(Span::Container, "[ERROR] WASM build failed - pkg directory not created");
    let actions = h.at(530).container(ComposeService { exited: true, exit_code: 1, ..container("job", None) });
    assert!(failed(&h.all).is_some(), "{actions:?}");
}

/// false SUCCESS with `--no-stream` (or Tilt < 0.36.1): the log is polled, no
/// `Event::Volume` ever comes, so `log_may_be_cut` stays false and a success is never verified.
/// The poller only notices a cut when the resource's log got *shorter* than its count; after a
/// 5 MB burst Tilt has cut the oldest half (our header, the `[ERROR]` line) yet the log is
/// longer than before, so the poller silently skips to the new tail. Here the one-shot's
/// `[ERROR]` line was in the hole; the success line after it passes the step. Expected: in
/// polled mode a success needs the verifying reading (which would find our header gone:
/// LogCut), as past 0.8 MB in streamed mode.
#[test]
fn a_success_on_a_polled_log_is_verified_too() {
    let protocol = Protocol::load(None).unwrap();
    let old = ComposeService { name: "sync-wasm-client".to_owned(), exited: true, ..container("old", None) };
    let status = ResourceStatus { name: "sync-wasm-client".to_owned(), ..compose_status(&[(4, 0, None)]) };
    let timing = Timing { polled: true, ..timing() };
    let mut h = Harness::new(
        &protocol,
        "sync-wasm-client",
        timing,
        vec![Event::Polled, Event::Compose(old), Event::Status(status)],
    );
    h.trigger();
    h.header(5);
    h.line(Span::Build(5), " Container ws-sync-wasm-client-1  Started");
    h.container(container("job", None));
    h.line(Span::Build(5), "     DONE IN: 0.97s ");
    h.status(compose_status(&[(5, 0, None), (4, 0, None)]));
    h.line(Span::Container, "[INFO] Running in container mode");
    // The next poll: Tilt cut the [ERROR] line and ~1 MB after it; the poller skips to here.
    h.at(2_000).line(Span::Container, WASM_DONE);
    let actions = h.at(2_030).container(ComposeService { exited: true, ..container("job", None) });
    assert!(matches!(actions[..], [Action::Recheck { .. }]), "a polled log may have a hole: {actions:?}");
    assert_eq!(h.reading(&[(Span::Container, false, WASM_DONE)]), [recheck(None, "sync-wasm-client")]);
    let actions = h.reading(&[(Span::Container, false, WASM_DONE)]);
    assert_eq!(failed(&actions), Some(&Failure::LogCut), "{actions:?}");
}

/// wait past the bound (a hang when Tilt is quiet). Every step passed; a later build
/// of a passed resource (another terminal's trigger) is running when the confirm time is over.
/// Finishing waits for it "until `bound`" (now + the longest step timeout), but `wake_at` gives
/// `until.max(now).min(bound)` = now, which the final `filter(> now)` turns into None: the bound
/// is never scheduled. Without a TTY (hook, CI, --json) the live line has no tick either, so if
/// that build hangs silently (no log line, no status change) the run never ends. Expected: a
/// wake at `bound`.
#[test]
fn finishing_while_a_later_build_runs_asks_to_be_woken_at_its_bound() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = compose_run(&protocol, "server", container("old", Some(Health::Healthy)));
    assert!(succeeded_with(&h.compose_build(container("new", Some(Health::Healthy)))).is_some());
    let later =
        ResourceStatus { kind: ResourceKind::Compose, ..status(Some((6, 2_400)), &[(5, 0, None)], Runtime::default()) };
    let actions = h.at(2_500).status(later);
    assert!(!actions.iter().any(|action| matches!(action, Action::Finished(_))), "waits for build 6: {actions:?}");
    // The bound: the pass (t=0) + server's timeout (5 min).
    assert_eq!(h.wake_at(), Some(h.start + Duration::from_secs(300)), "the bound is never scheduled");
}

/// false SUCCESS (sync and `status` disagree, issue 17). A compose one-shot prints
/// its success line and then exits 1 (≈30 ms later, the exit event). With the step last (or
/// `--step sync-wasm-client`), confirm 0 makes the run end at the success line: the end's check
/// sees the container still running, exit 0. A second later `status` says it is down. For a
/// one-shot the verdict should wait for its exit (it comes within ms) and need exit code 0.
#[test]
fn a_one_shot_that_exits_1_after_its_success_line_fails() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = compose_run(&protocol, "sync-wasm-client", ComposeService { exited: true, ..container("old", None) });
    h.header(5);
    h.line(Span::Build(5), " Container ws-sync-wasm-client-1  Started");
    h.container(container("job", None));
    h.line(Span::Build(5), "     DONE IN: 0.4s ");
    h.status(compose_status(&[(5, 0, None), (4, 0, None)]));
    cov_mark::check!(a_one_shot_is_done_when_it_exits_0);
    h.at(900).line(Span::Container, WASM_DONE);
    h.at(930).container(ComposeService { exited: true, exit_code: 1, ..container("job", None) });
    h.reading(&[(Span::Build(5), true, ""), (Span::Container, false, WASM_DONE)]);
    assert!(
        failed(&h.all).is_some() || passed_failed(&h.all).is_some(),
        "exit 1 after the success line: {:?}",
        h.all.iter().filter(|action| !matches!(action, Action::Keep(_))).collect::<Vec<_>>()
    );
}

/// a good build failed. A local resource: build 342 (started before our trigger,
/// so not ours) fails; Tilt writes its `Build Failed:` and starts our queued 343 ≈1 ms later.
/// The failed command's last lines can reach the log after Tilt's `Build Failed:` line (the
/// machine's own comment, seen on the real Tilt under load): here 342's `error[E0425]` lands
/// after 343's header. `cmd:R:update` lines go to the latest header, so 343 — the fixed build
/// — fails at once with 342's error. Lines before our command's own `Running cmd:` are not ours.
#[test]
fn the_previous_builds_late_error_after_our_header_is_not_ours() {
    let protocol = Protocol::load(None).unwrap();
    let before = vec![Event::Status(ResourceStatus {
        name: "server".to_owned(),
        ..status(None, &[(341, 0, None)], serving(10, RuntimeStatus::Ok))
    })];
    let mut h = Harness::new(&protocol, "server", timing(), before);
    h.at(1_000).trigger();
    h.at(1_050).header(342);
    h.line(Span::Update, "Running cmd: cargo build");
    h.status(status(Some((342, 900)), &[(341, 0, None)], serving(10, RuntimeStatus::Ok)));
    h.at(1_200).line(Span::Build(342), "Build Failed: Command \"cargo build\" failed: exit status 101");
    h.header(343);
    cov_mark::check!(an_update_line_before_our_command_is_held_aside);
    h.line(Span::Update, "error[E0425]: cannot find value `peer_id` in this scope");
    h.line(Span::Update, "Running cmd: cargo build");
    let actions = h.status(status(
        Some((343, 1_201)),
        &[(342, 900, Some("exit status 101")), (341, 0, None)],
        serving(10, RuntimeStatus::Ok),
    ));
    assert!(actions.is_empty(), "{actions:?}");
    h.line(Span::Update, "    Finished `dev` profile");
    h.at(2_000).status(status(None, &[(343, 1_201, None), (342, 900, Some("x"))], serving(11, RuntimeStatus::Ok)));
    h.line(Span::Serve(3), "Running cmd: ./serve.sh");
    h.line(Span::Serve(3), RUNNING);
    assert_eq!(succeeded_with(&h.all), Some(RUNNING), "343 fails on 342's line: {:?}", failed(&h.all));
}

/// Ctrl-C not reported as an interruption. A passed service stopped; the machine
/// is reading Tilt's log to explain it (Explaining) when Ctrl-C kills that call. The run ends
/// `Completed` (exit 1), not `Interrupted` (130), unlike every other phase (README: "Ctrl-C at
/// any moment of a sync exits 130").
#[test]
fn ctrl_c_while_explaining_a_passed_failure_is_an_interruption() {
    let protocol = Protocol::load(None).unwrap();
    let mut h = passed_server(&protocol);
    let actions = h.at(300).status(status(None, &[(5, 0, None)], serving(11, RuntimeStatus::Error)));
    assert!(actions.iter().any(|action| matches!(action, Action::Recheck { .. })), "{actions:?}");
    let actions =
        h.feed(Event::Reading { resource: "server".to_owned(), lines: Err(crate::tilt::TiltError::Interrupted) });
    assert_eq!(actions.last(), Some(&Action::Finished(End::Interrupted)), "{actions:?}");
}
