//! Local resources (`local_resource`): an update command's lines in `cmd:<name>:update`, and the
//! serve processes a successful build starts (`localserve:K`). Pure.

use sync_tests::scenario::{BuildSpec, Kind, Resource, Scenario};

use crate::schedule::{ms, Build, Life};
use crate::timeline::{spread, LogLine, Script};

/// Serve process K has the pid `SERVE_PID_BASE + K`.
const SERVE_PID_BASE: u32 = 20000;

/// A serve process, started when its build finished.
#[derive(Debug, Clone)]
pub struct Serve<'a> {
    pub resource: usize,
    /// The number of the build that started it.
    pub build: u32,
    pub start_ms: i64,
    pub spec: &'a BuildSpec,
    /// The K of `localserve:K`, counted over all resources in start order.
    pub k: u32,
    /// When the resource's next serve process started, or the resource was disabled or
    /// removed: this one is killed then.
    pub replaced_ms: Option<i64>,
}

impl Serve<'_> {
    /// When it exits by itself, and its code: after its runtime output, if its build says so
    /// and it was not killed before.
    pub fn exit(&self) -> Option<(i64, i32)> {
        let code = self.spec.exit_code?;
        let at = self.start_ms + ms(self.spec.runtime_ms);
        match self.replaced_ms {
            Some(replaced) if replaced < at => None,
            _ => Some((at, code)),
        }
    }

    pub fn exited_by(&self, at_ms: i64) -> Option<(i64, i32)> {
        self.exit().filter(|(exit_ms, _)| *exit_ms <= at_ms)
    }

    pub fn pid(&self) -> u32 {
        SERVE_PID_BASE + self.k
    }

    /// `Running cmd: <serve_cmd>`, then its output until it is replaced.
    pub fn lines<'a>(&self, resource: &'a Resource) -> Vec<LogLine<'a>> {
        let span_id = format!("localserve:{}", self.k);
        let until = self.replaced_ms.unwrap_or(i64::MAX);
        let serve_cmd = resource.serve_cmd.as_deref().unwrap_or_default();
        let started = (self.start_ms, format!("Running cmd: {serve_cmd}"));
        let output = spread(self.start_ms, ms(self.spec.runtime_ms), &self.spec.runtime)
            .filter(|(due, _)| *due <= until)
            .map(|(due, text)| (due, text.clone()));
        std::iter::once(started)
            .chain(output)
            .enumerate()
            .map(|(index, (due_ms, text))| {
                let id = (self.build, 10_000 + u32::try_from(index).unwrap_or(u32::MAX));
                LogLine { id, due_ms, resource: &resource.name, span_id: span_id.clone(), init: false, text }
            })
            .collect()
    }
}

/// The lines of a local resource's build: its update command's, in their own span as the real
/// Tilt writes them, then Tilt's `Build Failed: <error>`.
pub fn build_lines<'a>(build: &Build<'a>, resource: &'a Resource) -> Vec<LogLine<'a>> {
    let mut script = Script::new(build, &resource.name);
    if let Some(cmd) = resource.update_cmd().filter(|_| !build.instant) {
        let span = format!("cmd:{}:update", resource.name);
        script.span_line(build.start_ms, &span, format!("Running cmd: {cmd}"));
        for (due_ms, text) in spread(build.start_ms, ms(build.spec.duration_ms), &build.spec.lines) {
            script.span_line(due_ms, &span, text.clone());
        }
    }
    if let Some(error) = build.spec.error.as_ref().filter(|_| !build.instant) {
        // A canceled build's own end is cut off: Tilt says why it ended instead.
        script.line(build.natural_finish_ms(), format!("Build Failed: {error}"));
    }
    script.end()
}

/// The serve processes the builds start, in start order, numbered K = 1, 2, … over all
/// resources.
pub fn serves<'a>(scenario: &'a Scenario, builds: &[Build<'a>], lives: &[Life]) -> Vec<Serve<'a>> {
    let mut serves = Vec::new();
    for (index, resource) in scenario.resources.iter().enumerate() {
        if resource.kind != Kind::Local || resource.serve_cmd.is_none() {
            continue;
        }
        let own: Vec<&Build<'a>> = builds.iter().filter(|b| b.resource == index).collect();
        for (at, build) in own.iter().enumerate() {
            // Tilt starts a server only once the update is ok and no trigger waits: none for a
            // build whose queued successor starts as it finishes.
            if build.failed() || own.get(at + 1).is_some_and(|next| next.created_ms < build.finish_ms()) {
                continue;
            }
            serves.push(Serve {
                resource: index,
                build: build.number,
                start_ms: build.finish_ms(),
                spec: build.spec,
                k: 0,
                replaced_ms: None,
            });
        }
    }
    serves.sort_by_key(|s| (s.start_ms, s.build));
    for (k, serve) in serves.iter_mut().enumerate() {
        serve.k = u32::try_from(k + 1).unwrap_or(u32::MAX);
    }
    for at in 0..serves.len() {
        let (resource, start) = (serves[at].resource, serves[at].start_ms);
        let next = serves[at + 1..].iter().find(|s| s.resource == resource).map(|s| s.start_ms);
        let life = &lives[resource];
        let gone = life.disabled.iter().map(|(from, _)| *from).chain(life.removed_ms).filter(|at| *at >= start).min();
        serves[at].replaced_ms = [next, gone].into_iter().flatten().min();
    }
    serves
}
