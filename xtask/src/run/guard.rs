//! A step that passed, watched until the run ends: its service must stay up. Any error line
//! its service prints, its service stopping, its container turning unhealthy, a later build of
//! it failing or Tilt disabling it fails the run; `confirm` is the least time it must have been
//! up before the run may end. At the end, Tilt's state of it must still stand (`trouble`).

use std::time::Instant;

use tilt_log::Judge;

use crate::{
    protocol::Step,
    run::{
        judge::{self, Judged},
        BuildId, Failure,
    },
    tilt::model::{self, ComposeService, LogLine, ResourceStatus, Runtime, RuntimeStatus, Span},
};

#[derive(Debug)]
pub struct Guard {
    /// The step's index in the protocol.
    pub step: usize,
    pub confirm_until: Instant,
    /// The build that passed, and the latest that finished well since.
    pub passed: BuildId,
    serve_baseline: u64,
    runtime_then: Runtime,
    runtime_fresh: bool,
    judge: Judge,
}

impl Guard {
    pub fn new(
        step: usize,
        passed: BuildId,
        serve_baseline: u64,
        runtime_then: Runtime,
        confirm_until: Instant,
    ) -> Guard {
        Guard {
            step,
            confirm_until,
            passed,
            serve_baseline,
            runtime_then,
            runtime_fresh: false,
            judge: Judge::default(),
        }
    }

    fn is_runtime(&self, line: &LogLine) -> bool {
        match line.span {
            Span::Serve(number) => number > self.serve_baseline,
            Span::Container => true,
            _ => false,
        }
    }

    /// A line of the resource: its service's error line fails the run.
    pub fn line(&mut self, step: &Step, line: &LogLine) -> Option<Failure> {
        if !self.is_runtime(line) {
            return None;
        }
        let mut judged = Judged::default();
        judged.take(judge::judge(&mut self.judge, step, line.span, &line.text), &line.text);
        let error = judged.error?;
        cov_mark::hit!(a_passed_services_error_line_fails_the_run);
        Some(error.failure(step))
    }

    /// Tilt's status of the resource: disabled, a later build failed, or (a local service) its
    /// serve process stopped.
    pub fn status(&mut self, status: &ResourceStatus, compose: bool) -> Option<Failure> {
        if status.disabled {
            return Some(Failure::Disabled);
        }
        if let Some(later) = status.finished.iter().find(|build| build.number > self.passed.number) {
            if let Some(error) = &later.error {
                cov_mark::hit!(a_later_build_failing_fails_the_run);
                return Some(Failure::LaterBuildFailed { build: later.number, error: error.clone() });
            }
            self.passed = BuildId { number: later.number, finished: later.finish };
        }
        if compose {
            // The container watch says more, and sooner (`unhealthy` never changes the runtime).
            return None;
        }
        if let (then, Some(instance)) = (&self.runtime_then.instance, &status.runtime.instance) {
            self.runtime_fresh |= then.as_ref() != Some(instance);
        } else if status.runtime != self.runtime_then {
            self.runtime_fresh = true;
        }
        (self.runtime_fresh && status.runtime.status == RuntimeStatus::Error)
            .then(|| Failure::RuntimeFailed { detail: "Tilt's runtime status: error".to_owned(), container: false })
    }

    /// The resource's container: stopped or unhealthy. A container stopped by a signal
    /// (137, 143) is being replaced by a later build: the end of the run judges its successor.
    pub fn container(&mut self, step: &Step, service: &ComposeService) -> Option<Failure> {
        if service.killed() {
            return None;
        }
        if service.down(step.stays_up()) {
            return Some(Failure::RuntimeFailed { detail: service.why_down(), container: true });
        }
        if service.health == Some(model::Health::Unhealthy) {
            cov_mark::hit!(a_service_turning_unhealthy_after_it_passed_fails_the_run);
            return Some(Failure::Unhealthy);
        }
        None
    }

    /// At the end of the run: Tilt's state of the resource must still stand.
    pub fn at_end(
        &self,
        step: &Step,
        status: Option<&ResourceStatus>,
        container: Option<&ComposeService>,
    ) -> Option<Failure> {
        let trouble = model::trouble(&step.resource, status, container, step.stays_up())?;
        Some(Failure::NoLongerStands(trouble))
    }

    /// The service stopped (`failure`, Tilt's word) before the log said why: the resource's
    /// log as Tilt has it now may. Its service's first error line after its build explains it.
    pub fn explain(&self, step: &Step, snapshot: &[LogLine], failure: Failure) -> Failure {
        if !matches!(failure, Failure::RuntimeFailed { .. }) {
            return failure;
        }
        let build_end = snapshot.iter().rposition(|line| matches!(line.span, Span::Build(_) | Span::Update));
        let after_build = &snapshot[build_end.map_or(0, |end| end + 1)..];
        let mut reader = Judge::default();
        let mut judged = Judged::default();
        for line in after_build.iter().filter(|line| self.is_runtime(line)) {
            judged.take(judge::judge(&mut reader, step, line.span, &line.text), &line.text);
            if judged.error.is_some() {
                break;
            }
        }
        match judged.error {
            Some(error) => {
                cov_mark::hit!(a_stopped_service_is_explained_by_its_log);
                error.failure(step)
            }
            None => failure,
        }
    }
}
