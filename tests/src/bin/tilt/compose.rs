//! Compose resources as the real Tilt and Compose run them (`../shared/docker/README.md` and
//! the captures beside it): what a build writes (Tilt's steps, BuildKit's image build, Compose's
//! container lines, the step times), and what the container does and shows, build after build.
//! Pure: a [`Track`] is computed from the scheduled builds alone.

use sync_tests::scenario::{BuildSpec, Health, Update, IMAGE_RUN_COMMAND};

use crate::schedule::{ms, Build, Life};
use crate::timeline::{spread, LogLine, Script};

/// The healthcheck output Tilt logs when it fails (Citadel's healthcheck is `nc` on a port).
const HEALTHCHECK_OUTPUT: &str = "nc: can't connect to remote host (127.0.0.1): Connection refused";
/// How long before Tilt's build end the new container starts (0.1–0.15 s on the real one): its
/// first lines reach the log before the build's `Step 1 - …` and `DONE IN:` lines.
const CONTAINER_LEAD_MS: i64 = 120;
/// A container's exit reaches Tilt this long after its last line (≈ 30 ms on the real one).
const EXIT_AFTER_LAST_LINE_MS: i64 = 30;
/// The exit code of a container stopped to be replaced (SIGTERM, which Citadel's trap).
const STOPPED_EXIT_CODE: i32 = 143;
/// The BuildKit step number of the image's `RUN` step.
const RUN_STEP: u32 = 7;

/// What Compose and Tilt name things after: the project (the workspace's folder), its
/// directory and the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub project: String,
    pub dir: String,
    pub service: String,
}

impl Names {
    /// The names for `service` in the workspace of `tiltfile`: Compose names the project after
    /// the folder, lower case, keeping `[a-z0-9_-]` (`COMPOSE_PROJECT_NAME` is ignored by Tilt).
    pub fn new(tiltfile: &str, service: &str) -> Self {
        let dir = std::path::Path::new(tiltfile).parent().map(|d| d.display().to_string()).unwrap_or_default();
        let folder = dir.rsplit('/').next().unwrap_or_default().to_lowercase();
        let project: String =
            folder.chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-').collect();
        Names { project, dir, service: service.to_owned() }
    }

    pub fn container(&self) -> String {
        format!("{}-{}-1", self.project, self.service)
    }

    /// The image target's name in the `UIResource` specs (`image:<this>`).
    pub fn image_target(&self) -> String {
        format!("{}_{}", self.project, self.service)
    }

    pub fn compose_file(&self) -> String {
        format!("{}/docker-compose.yml", self.dir)
    }

    /// The docker compose call Tilt runs to build the image.
    fn build_command(&self) -> String {
        let args = [
            "docker",
            "compose",
            "--project-name",
            &self.project,
            "--project-directory",
            &self.dir,
            "-f",
            &self.compose_file(),
            "build",
            &self.service,
        ];
        let quoted: Vec<String> = args.iter().map(|arg| format!("{arg:?}")).collect();
        format!("command [{}]", quoted.join(" "))
    }

    /// Tilt's error for a failed image build, in `buildHistory` and `applyError`: the same
    /// whatever failed (`docker compose build` exits 17).
    pub fn build_error(&self) -> String {
        format!("{} failed.\nerror: exit status 17\n", self.build_command())
    }
}

/// `containerState.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    Created,
    Running,
    Exited,
    Removing,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Removing => "removing",
        }
    }
}

/// A container as Tilt shows it at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerView {
    /// 64 hex digits.
    pub id: String,
    pub status: ContainerStatus,
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    pub exit_code: i32,
    pub health: Option<&'static str>,
}

/// From `at_ms` on, Tilt shows this container (`None`: none, e.g. removed by a force update).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    pub at_ms: i64,
    pub container: Option<ContainerView>,
}

/// What one build did to the service, as the `DockerComposeService` status tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apply {
    pub number: u32,
    /// A force update cleared the status when it removed the container.
    pub reset_ms: Option<i64>,
    /// `lastApplyStartTime`: the build's start, or its step 2 after a force update's step 1.
    pub start_ms: i64,
    pub finish_ms: i64,
    pub failed: bool,
}

/// A compose resource's builds and containers over time.
#[derive(Debug, Default)]
pub struct Track<'a> {
    /// Every line the builds and containers write, due or not.
    pub lines: Vec<LogLine<'a>>,
    /// In time order.
    pub views: Vec<View>,
    /// One per build that was not canceled, in build order.
    pub applies: Vec<Apply>,
}

impl Track<'_> {
    /// The container the `DockerComposeService` shows at `at_ms`.
    pub fn container_at(&self, at_ms: i64) -> Option<&ContainerView> {
        self.views.iter().rev().find(|v| v.at_ms <= at_ms).and_then(|v| v.container.as_ref())
    }

    /// The container the `UIResource` describes at `at_ms`: the last one Tilt saw (a removed
    /// container's last state stays).
    pub fn last_seen_at(&self, at_ms: i64) -> Option<&ContainerView> {
        self.views.iter().rev().filter(|v| v.at_ms <= at_ms).find_map(|v| v.container.as_ref())
    }

    /// The apply the status shows at `at_ms`: the last finished one, unless a force update in
    /// progress cleared it.
    pub fn apply_at(&self, at_ms: i64) -> Option<&Apply> {
        if self.applies.iter().any(|a| a.reset_ms.is_some_and(|reset| reset <= at_ms) && at_ms < a.finish_ms) {
            return None;
        }
        self.applies.iter().rev().find(|a| a.finish_ms <= at_ms)
    }

    /// The moments its status can change.
    pub fn events(&self) -> impl Iterator<Item = i64> + '_ {
        let views = self.views.iter().map(|v| v.at_ms);
        views.chain(self.applies.iter().flat_map(|a| [a.reset_ms, Some(a.finish_ms)].into_iter().flatten()))
    }
}

/// One run of a container: from its start to its exit.
#[derive(Debug)]
struct Run<'a> {
    id: String,
    /// The build whose spec it runs.
    build: u32,
    spec: &'a BuildSpec,
    start_ms: i64,
    /// A new container (not one started again in place): Tilt shows it late by the scenario's
    /// runtime status lag.
    new: bool,
    /// A container started again in place keeps its last `finishedAt` while it runs.
    previous_finish_ms: Option<i64>,
    /// Stopped (replaced, disabled, removed) at this moment.
    stopped_ms: Option<i64>,
}

impl Run<'_> {
    /// When it exits and with which code: after its output if its build says so, or when
    /// stopped, whichever is first.
    fn end(&self) -> Option<(i64, i32)> {
        let last_line = self.start_ms + ms(self.spec.runtime_ms);
        let natural = self.spec.exit_code.map(|code| (last_line + EXIT_AFTER_LAST_LINE_MS, code));
        match (natural, self.stopped_ms) {
            (Some(exit), Some(stop)) if exit.0 <= stop => Some(exit),
            (_, Some(stop)) => Some((stop, STOPPED_EXIT_CODE)),
            (natural, None) => natural,
        }
    }

    fn running_at(&self, at_ms: i64) -> bool {
        self.start_ms <= at_ms && self.end().is_none_or(|(end, _)| at_ms < end)
    }

    fn health_at(&self, at_ms: i64) -> Option<&'static str> {
        let health = self.spec.health?;
        Some(if at_ms < self.start_ms + ms(self.spec.health_ms) { "starting" } else { health.as_str() })
    }

    /// How Tilt shows it at `at_ms` (at or after its start).
    fn view_at(&self, at_ms: i64) -> ContainerView {
        match self.end().filter(|(end, _)| *end <= at_ms) {
            // Docker reports a stopped container with a healthcheck as unhealthy.
            Some((end, code)) => ContainerView {
                id: self.id.clone(),
                status: ContainerStatus::Exited,
                started_ms: Some(self.start_ms),
                finished_ms: Some(end),
                exit_code: code,
                health: self.spec.health.map(|_| Health::Unhealthy.as_str()),
            },
            None => ContainerView {
                id: self.id.clone(),
                status: ContainerStatus::Running,
                started_ms: Some(self.start_ms),
                finished_ms: self.previous_finish_ms,
                exit_code: 0,
                health: self.health_at(at_ms),
            },
        }
    }
}

/// A resource's builds (in number order) played through Compose.
pub fn track<'a>(name: &'a str, names: &Names, builds: &[&Build<'a>], life: &Life, lag_ms: i64) -> Track<'a> {
    let mut player =
        Player { name, names, runs: Vec::new(), current: None, views: Vec::new(), track: Track::default() };
    // Disabling or removing the resource removes its container (`docker compose rm`).
    let mut removals: Vec<i64> = life.disabled.iter().map(|(from, _)| *from).chain(life.removed_ms).collect();
    removals.sort_unstable();
    let mut removals = removals.into_iter().peekable();
    for build in builds {
        while let Some(at) = removals.next_if(|at| *at <= build.start_ms) {
            player.remove(at);
        }
        player.build(build);
    }
    removals.for_each(|at| player.remove(at));
    player.finish(lag_ms)
}

/// Plays builds one after the other, keeping the container Compose has.
struct Player<'a, 'n> {
    name: &'a str,
    names: &'n Names,
    runs: Vec<Run<'a>>,
    /// The run of the container Compose has (`None`: no container).
    current: Option<usize>,
    /// Views the replacements set, besides each run's own.
    views: Vec<(View, bool)>,
    track: Track<'a>,
}

impl<'a> Player<'a, '_> {
    fn view(&mut self, at_ms: i64, container: Option<ContainerView>, new: bool) {
        self.views.push((View { at_ms, container }, new));
    }

    fn build(&mut self, build: &Build<'a>) {
        let c = self.names.container();
        let mut script = Script::new(build, self.name);
        let (start, length) = (build.start_ms, ms(build.spec.duration_ms));
        let finish = start + length;
        let cut = build.canceled_ms.unwrap_or(i64::MAX);
        let force = build.update() == Update::Force;
        let stop_phase = if force { length / 4 } else { 0 };
        let image_start = start + stop_phase;

        if force {
            script.line(start, "STEP 1/2 — Force update");
            match self.current {
                Some(run) => {
                    script.line(start, format!("      Container {c}  Stopping"));
                    let halted = start + stop_phase / 2;
                    if halted < cut {
                        if self.runs[run].running_at(halted) {
                            self.runs[run].stopped_ms = Some(halted);
                        }
                        script.line(halted, format!("      Container {c}  Stopped"));
                    }
                    if image_start < cut {
                        script.line(image_start, format!("      Container {c}  Removing"));
                        script.line(image_start, format!("      Container {c}  Removed"));
                        self.view(image_start, None, false);
                        self.current = None;
                    }
                }
                None => script.line(start, "     No stopped containers"),
            }
            script.line(image_start, "");
            script.line(image_start, "STEP 2/2 — Building & deploying");
        } else {
            script.line(start, "STEP 1/1 — Building & deploying");
        }

        let lead = CONTAINER_LEAD_MS.min(length / 4);
        let image_end = if build.spec.error.is_some() { finish } else { finish - 2 * lead };
        self.image_build(&mut script, build, image_start, image_end);
        if build.spec.error.is_some() {
            let command = self.names.build_error();
            let mut command = command.lines();
            let (first, second) = (command.next().unwrap_or_default(), command.next().unwrap_or_default());
            for text in ["", &format!("got unexpected error during build/deploy: {first}"), second, ""] {
                script.line(finish, text);
            }
            script.line(finish, format!("Build Failed: {first}"));
            script.line(finish, second);
        } else if finish <= cut {
            self.deploy(&mut script, build, image_end, lead);
            let steps: Vec<(i64, &str)> = if force {
                vec![(stop_phase, "Force update"), (finish - image_start, "Building & deploying")]
            } else {
                vec![(length, "Building & deploying")]
            };
            script.line(finish, "");
            for (k, (took, title)) in steps.iter().enumerate() {
                script.line(finish, format!("     Step {} - {} ({title})", k + 1, seconds(*took, 2)));
            }
            script.line(finish, format!("     DONE IN: {} ", seconds(length, 2)));
            script.line(finish, "");
        }
        if build.canceled_ms.is_none() {
            let reset_ms = force.then_some(image_start);
            let failed = build.failed();
            self.track.applies.push(Apply {
                number: build.number,
                reset_ms,
                start_ms: image_start,
                finish_ms: finish,
                failed,
            });
        }
        self.track.lines.extend(script.end());
    }

    /// BuildKit's image build: the steps before the `RUN` step at once, the build's lines as
    /// the `RUN` step prints them, then its end (or its failure, block repeated as BuildKit
    /// does).
    fn image_build(&self, script: &mut Script<'a>, build: &Build, start: i64, end: i64) {
        let (s, spec) = (&self.names.service, build.spec);
        let preamble = [
            "#0 building with \"default\" instance using docker driver".to_owned(),
            String::new(),
            format!("#1 [{s} internal] load build definition from Dockerfile"),
            "#1 transferring dockerfile: 556B done".to_owned(),
            "#1 DONE 0.0s".to_owned(),
            String::new(),
            format!("#2 [{s} internal] load .dockerignore"),
            "#2 transferring context: 35B done".to_owned(),
            "#2 DONE 0.0s".to_owned(),
            String::new(),
            format!("#3 [{s} internal] load metadata for docker.io/library/sync-test-base:latest"),
            "#3 DONE 0.0s".to_owned(),
            String::new(),
            format!("#4 [{s} 1/3] FROM docker.io/library/sync-test-base"),
            "#4 DONE 0.0s".to_owned(),
            String::new(),
            format!("#5 [{s} internal] load build context"),
            "#5 transferring context: 511B done".to_owned(),
            "#5 DONE 0.0s".to_owned(),
            String::new(),
            format!("#6 [{s} 2/3] COPY . /usr/src/app"),
            if spec.lines.is_empty() && spec.error.is_none() { "#6 CACHED" } else { "#6 DONE 0.1s" }.to_owned(),
            String::new(),
            format!("#{RUN_STEP} [{s} 3/3] RUN {IMAGE_RUN_COMMAND}"),
        ];
        for text in preamble {
            script.line(start, text);
        }
        let printed: Vec<(i64, String)> = spread(start, end - start, &spec.lines)
            .map(|(due, text)| (due, format!("{} {text}", seconds(due - start, 3))))
            .collect();
        for (due, text) in &printed {
            script.line(*due, format!("#{RUN_STEP} {text}"));
        }
        let Some(error) = &spec.error else {
            let done =
                if printed.is_empty() { "CACHED".to_owned() } else { format!("DONE {}", seconds(end - start, 1)) };
            let digest = container_id(u32::MAX - build.number, s);
            let image = format!("{}-{s}", self.names.project);
            for text in [
                format!("#{RUN_STEP} {done}"),
                String::new(),
                format!("#{} [{s}] exporting to image", RUN_STEP + 1),
                format!("#{} exporting layers done", RUN_STEP + 1),
                format!("#{} writing image sha256:{digest} done", RUN_STEP + 1),
                format!("#{} naming to docker.io/library/{image} done", RUN_STEP + 1),
                format!("#{} DONE 0.0s", RUN_STEP + 1),
            ] {
                script.line(end, text);
            }
            return;
        };
        script.line(end, format!("#{RUN_STEP} ERROR: {error}"));
        script.line(end, "------");
        script.line(end, format!(" > [{s} 3/3] RUN {IMAGE_RUN_COMMAND}:"));
        for (_, text) in &printed {
            script.line(end, text.clone());
        }
        script.line(end, "------");
        script.line(end, format!("failed to solve: {error}"));
    }

    /// Compose brings the service up after the image build: the container starts `lead`
    /// before the build's end.
    fn deploy(&mut self, script: &mut Script<'a>, build: &Build<'a>, from: i64, lead: i64) {
        let c = self.names.container();
        let started = from + lead;
        let current = self.current.filter(|run| self.runs[*run].stopped_ms.is_none());
        let (id, new, previous_finish_ms) = match (build.update(), current) {
            (Update::Kept, Some(run)) if self.runs[run].running_at(started) => {
                script.line(started, format!(" Container {c}  Running"));
                return;
            }
            (Update::Kept, Some(run)) => {
                // An exited container is started again in place.
                script.line(from + lead / 2, format!(" Container {c}  Created"));
                let finished = self.runs[run].end().map(|(at, _)| at);
                (self.runs[run].id.clone(), false, finished)
            }
            (Update::Recreate, Some(run)) => {
                script.line(from, format!(" Container {c}  Recreate"));
                let id = container_id(build.number, self.name);
                self.view(from, Some(created(&id)), true);
                let old = &self.runs[run];
                if old.running_at(from) {
                    // Tilt's watch shows the old container again, then its stop and removal.
                    let shown = old.view_at(from + lead / 3);
                    self.view(from + lead / 3, Some(shown), false);
                    self.runs[run].stopped_ms = Some(from + 2 * lead / 3);
                    let mut removing = self.runs[run].view_at(from + 2 * lead / 3);
                    removing.status = ContainerStatus::Removing;
                    self.view(from + 5 * lead / 6, Some(removing), false);
                }
                script.line(from + 2 * lead / 3, format!(" Container {c}  Recreated"));
                (id, true, None)
            }
            _ => {
                script.line(from, format!(" Container {c}  Creating"));
                script.line(from + lead / 2, format!(" Container {c}  Created"));
                let id = container_id(build.number, self.name);
                self.view(from + lead / 2, Some(created(&id)), true);
                (id, true, None)
            }
        };
        script.line(started, format!(" Container {c}  Starting"));
        script.line(started, format!(" Container {c}  Started"));
        self.runs.push(Run {
            id,
            build: build.number,
            spec: build.spec,
            start_ms: started,
            new,
            previous_finish_ms,
            stopped_ms: None,
        });
        self.current = Some(self.runs.len() - 1);
    }

    /// The container is removed at `at_ms` (the resource was disabled or removed).
    fn remove(&mut self, at_ms: i64) {
        if let Some(run) = self.current.take() {
            if self.runs[run].running_at(at_ms) {
                self.runs[run].stopped_ms = Some(at_ms);
            }
        }
        self.view(at_ms, None, false);
    }

    /// Each run's own views and lines, all views in time order (a new container's shown late
    /// by `lag_ms`).
    fn finish(mut self, lag_ms: i64) -> Track<'a> {
        for run in &self.runs {
            let end = run.end();
            let until = end.map_or(i64::MAX, |(at, _)| at);
            let mut at = vec![(run.start_ms, run.new)];
            if run.spec.health.is_some() && run.start_ms + ms(run.spec.health_ms) < until {
                at.push((run.start_ms + ms(run.spec.health_ms), false));
            }
            if let Some((end, _)) = end {
                at.push((end, false));
            }
            for (moment, new) in at {
                self.views.push((View { at_ms: moment, container: Some(run.view_at(moment)) }, new));
            }

            let mut index = 10_000;
            let mut push = |due_ms: i64, span_id: String, text: String| {
                index += 1;
                let id = (run.build, index);
                self.track.lines.push(LogLine { id, due_ms, resource: self.name, span_id, init: false, text });
            };
            for (due, text) in spread(run.start_ms, ms(run.spec.runtime_ms), &run.spec.runtime) {
                if due <= until {
                    push(due, format!("dc:{}", self.name), text.clone());
                }
            }
            let unhealthy_ms = run.start_ms + ms(run.spec.health_ms);
            if run.spec.health == Some(Health::Unhealthy) && unhealthy_ms < until {
                push(
                    unhealthy_ms,
                    format!("dockercompose:{}", self.name),
                    format!("healthcheck: {HEALTHCHECK_OUTPUT}"),
                );
            }
        }
        let mut views: Vec<View> = self
            .views
            .into_iter()
            .map(|(view, new)| View { at_ms: if new { view.at_ms + lag_ms } else { view.at_ms }, ..view })
            .collect();
        views.sort_by_key(|view| view.at_ms);
        self.track.views = views;
        self.track
    }
}

/// A new container as Compose shows it before it starts.
fn created(id: &str) -> ContainerView {
    ContainerView {
        id: id.to_owned(),
        status: ContainerStatus::Created,
        started_ms: None,
        finished_ms: None,
        exit_code: 0,
        health: None,
    }
}

/// A container id: 64 hex digits, new for every build (derived from its number and resource).
pub fn container_id(build: u32, resource: &str) -> String {
    let mut state = u64::from(build).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for byte in resource.bytes() {
        state = (state ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3);
    }
    (0..4)
        .map(|k| {
            // splitmix64, one word per quarter.
            let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(k + 1));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// Milliseconds as seconds with `decimals` places: `1.22s` (`s` added for 1 and 2 places, as
/// Tilt and BuildKit print them; 3 places is BuildKit's line prefix, without it).
fn seconds(ms: i64, decimals: usize) -> String {
    let value = ms.max(0) as f64 / 1000.0;
    match decimals {
        3 => format!("{value:.3}"),
        _ => format!("{value:.decimals$}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Action;
    use crate::timeline::Model;
    use sync_tests::scenario::{buildkit_error, Resource, Scenario};

    /// A healthy server built before scenario start, then `builds` on each trigger.
    fn server(builds: &[BuildSpec]) -> Scenario {
        let initial = BuildSpec::new(400, &[]).runtime(&["listening"], 0).healthy(100);
        let server = builds.iter().fold(Resource::compose("server").history(initial), |r, b| r.build(b.clone()));
        Scenario::new([server])
    }

    fn triggers(at: &[i64]) -> Vec<Action> {
        at.iter().map(|ms| Action::trigger("server", *ms)).collect()
    }

    /// The lines of build `number` and what it started, without BuildKit's steps before
    /// `RUN` and after it (the same for every build).
    fn written(model: &Model, number: u32) -> Vec<(i64, String, String)> {
        let lines = model.lines();
        let own: Vec<&LogLine> = lines.iter().filter(|l| l.id.0 == number).collect();
        let first = own.iter().position(|l| l.text.starts_with("#0 ")).unwrap_or(0);
        let run = own.iter().position(|l| l.text.starts_with("#7 [")).unwrap_or(0);
        let mut kept = Vec::new();
        let mut after_done = false;
        for line in own[..first].iter().chain(&own[run + 1..]) {
            let done = line.text.starts_with("#7 DONE") || line.text == "#7 CACHED";
            if !(done || line.text.starts_with("#8 ") || (after_done && line.text.is_empty())) {
                kept.push((line.due_ms, line.span_id.clone(), line.text.clone()));
            }
            after_done = done;
        }
        kept
    }

    /// A container in short: status, the id's first 4 digits, exit code, health.
    type Short = (&'static str, String, i32, Option<&'static str>);

    /// Every view from `from_ms` on, in short.
    fn shown(model: &Model, from_ms: i64) -> Vec<Option<Short>> {
        let track = model.track("server").unwrap();
        let views = track.views.iter().filter(|v| v.at_ms >= from_ms);
        views
            .map(|v| v.container.as_ref().map(|c| (c.status.as_str(), c.id[..4].to_owned(), c.exit_code, c.health)))
            .collect()
    }

    #[test]
    fn a_force_update_replaces_the_container_whose_lines_come_before_the_builds_end() {
        let s = server(&[BuildSpec::new(1000, &["   Compiling server"])
            .runtime(&["starting", "listening"], 0)
            .healthy(300)]);
        let model = Model::new(&s, &triggers(&[0]), 5000);
        let texts: Vec<String> = written(&model, 2).into_iter().map(|(_, _, t)| t).collect();
        let c = "Container citadel-workspace-server-1";
        let expected = [
            "",
            "CLI Trigger",
            "STEP 1/2 — Force update",
            &format!("      {c}  Stopping"),
            &format!("      {c}  Stopped"),
            &format!("      {c}  Removing"),
            &format!("      {c}  Removed"),
            "",
            "STEP 2/2 — Building & deploying",
            "#7 0.510    Compiling server",
            &format!(" {c}  Creating"),
            &format!(" {c}  Created"),
            &format!(" {c}  Starting"),
            &format!(" {c}  Started"),
            "starting",
            "listening",
            "",
            "     Step 1 - 0.25s (Force update)",
            "     Step 2 - 0.75s (Building & deploying)",
            "     DONE IN: 1.00s ",
            "",
        ];
        assert_eq!(texts, expected);
        let spans: Vec<(i64, String)> = written(&model, 2)
            .into_iter()
            .filter(|(_, _, t)| t == "starting")
            .map(|(at, span, _)| (at, span))
            .collect();
        assert_eq!(spans, [(880, "dc:server".to_owned())], "120 ms before the build's end");

        let old = container_id(1, "server")[..4].to_owned();
        let new = container_id(2, "server")[..4].to_owned();
        assert_eq!(
            shown(&model, 0),
            [
                Some(("exited", old, 143, Some("unhealthy"))),
                None,
                Some(("created", new.clone(), 0, None)),
                Some(("running", new.clone(), 0, Some("starting"))),
                Some(("running", new, 0, Some("healthy"))),
            ]
        );
        let status = |ms| Model::new(&s, &triggers(&[0]), ms).status("server").unwrap();
        assert_eq!(status(200).runtime_status.as_str(), "error", "the old one's 143 mid-build");
        assert!(status(300).compose.unwrap().container.is_none(), "removed: `{{}}`");
        assert_eq!(status(300).runtime_status.as_str(), "error", "the UIResource keeps the last state seen");
        assert_eq!(status(860).runtime_status.as_str(), "pending", "created");
        assert_eq!((status(900).runtime_status.as_str(), status(900).update_status.as_str()), ("ok", "in_progress"));
    }

    #[test]
    fn compose_recreates_or_keeps_the_container() {
        let recreate = BuildSpec::new(1000, &[]).runtime(&["new"], 0).healthy(300).update(Update::Recreate);
        let scenario = server(&[recreate]);
        let model = Model::new(&scenario, &triggers(&[0]), 5000);
        let texts: Vec<String> =
            written(&model, 2).into_iter().map(|(_, _, t)| t).filter(|t| t.contains("Container")).collect();
        let c = "Container citadel-workspace-server-1";
        assert_eq!(texts, [" Recreate", " Recreated", " Starting", " Started"].map(|s| format!(" {c} {s}")));
        let old = container_id(1, "server")[..4].to_owned();
        let new = container_id(2, "server")[..4].to_owned();
        assert_eq!(
            shown(&model, 0),
            [
                Some(("created", new.clone(), 0, None)),
                Some(("running", old.clone(), 0, Some("healthy"))),
                Some(("exited", old.clone(), 143, Some("unhealthy"))),
                Some(("removing", old, 143, Some("unhealthy"))),
                Some(("running", new.clone(), 0, Some("starting"))),
                Some(("running", new, 0, Some("healthy"))),
            ]
        );

        // Kept while running: `Running`, and nothing else changes: same container, no output.
        let kept = BuildSpec::new(500, &[]).runtime(&["never printed"], 0).unhealthy(100).update(Update::Kept);
        let scenario = server(&[kept]);
        let model = Model::new(&scenario, &triggers(&[0]), 5000);
        let texts: Vec<String> = written(&model, 2).into_iter().map(|(_, _, t)| t).collect();
        assert!(texts.contains(&format!(" {c}  Running")), "{texts:?}");
        assert!(!texts.iter().any(|t| t == "never printed" || t.contains("Start")), "{texts:?}");
        assert!(shown(&model, 0).is_empty(), "no new view");
        let scenario = server(&[]);
        let status = Model::new(&scenario, &[], 5000).status("server").unwrap();
        assert_eq!(model.status("server").unwrap().compose.unwrap().container, status.compose.unwrap().container);
    }

    #[test]
    fn an_exited_one_shot_kept_starts_again_in_the_same_container() {
        let run = BuildSpec::new(400, &[]).runtime(&["[INFO] done"], 100).exit_code(0);
        let s = Scenario::new([Resource::compose("sync").build(run.clone()).build(run.update(Update::Kept))]);
        let calls = [Action::trigger("sync", 0), Action::trigger("sync", 1000)];
        let model = Model::new(&s, &calls, 5000);
        let track = model.track("sync").unwrap();
        let ids: std::collections::HashSet<&str> =
            track.views.iter().filter_map(|v| v.container.as_ref()).map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), 1, "one container: {:?}", track.views);
        let restarted = track.views.iter().filter_map(|v| v.container.as_ref()).find(|c| c.started_ms == Some(1300));
        // Running again, it still shows its last finish; an exit 0 has no exit code.
        assert_eq!(
            restarted.map(|c| (c.status, c.finished_ms, c.exit_code)),
            Some((ContainerStatus::Running, Some(430), 0))
        );
        let lines = model.lines();
        let done: Vec<i64> = lines.iter().filter(|l| l.text == "[INFO] done").map(|l| l.due_ms).collect();
        assert_eq!(done, [400, 1400]);
        assert!(lines.iter().any(|l| l.id.0 == 2 && l.text.ends_with("-1  Created")));
    }

    #[test]
    fn a_failed_image_build_writes_buildkits_block_and_tilts_error() {
        let lines = ["   Compiling server", "error[E0425]: cannot find value `peer_id` in this scope"];
        let failing = BuildSpec::new(400, &lines).failing(&buildkit_error(101)).update(Update::Recreate);
        let scenario = server(&[failing]);
        let model = Model::new(&scenario, &triggers(&[0]), 5000);
        let texts: Vec<String> = written(&model, 2).into_iter().map(|(_, _, t)| t).skip(3).collect();
        let error = buildkit_error(101);
        let command = "command [\"docker\" \"compose\" \"--project-name\" \"citadel-workspace\" \"--project-directory\" \"/home/dev/citadel-workspace\" \"-f\" \"/home/dev/citadel-workspace/docker-compose.yml\" \"build\" \"server\"]";
        let expected = [
            "#7 0.200    Compiling server",
            "#7 0.400 error[E0425]: cannot find value `peer_id` in this scope",
            &format!("#7 ERROR: {error}"),
            "------",
            " > [server 3/3] RUN sh /usr/src/app/build.sh:",
            "0.200    Compiling server",
            "0.400 error[E0425]: cannot find value `peer_id` in this scope",
            "------",
            &format!("failed to solve: {error}"),
            "",
            &format!("got unexpected error during build/deploy: {command} failed."),
            "error: exit status 17",
            "",
            &format!("Build Failed: {command} failed."),
            "error: exit status 17",
        ];
        assert_eq!(texts, expected);
        let status = model.status("server").unwrap();
        assert_eq!(status.build_history[0].error, Some(format!("{command} failed.\nerror: exit status 17\n")));
        let compose = status.compose.unwrap();
        assert_eq!(compose.container.map(|c| (c.status, c.health)), Some((ContainerStatus::Running, Some("healthy"))));
        assert!(compose.apply.is_some_and(|(_, error)| error.is_some()), "applyError");

        // A failing force update has removed the container first: none is left.
        let failing = BuildSpec::new(400, &lines).failing(&buildkit_error(101));
        let scenario = server(&[failing]);
        let status = Model::new(&scenario, &triggers(&[0]), 5000).status("server").unwrap();
        let compose = status.compose.unwrap();
        assert!(compose.container.is_none());
        assert_eq!(compose.seen.map(|c| c.exit_code), Some(143));
        assert_eq!(status.runtime_status.as_str(), "error");
    }

    #[test]
    fn a_queued_force_update_stops_the_container_just_started() {
        let s = server(&[BuildSpec::new(400, &[]).runtime(&["up"], 0)]);
        let model = Model::new(&s, &triggers(&[0, 100]), 5000);
        let third = container_id(2, "server");
        let stopped = model.track("server").unwrap().views.iter().find_map(|v| {
            v.container
                .as_ref()
                .filter(|c| c.id == third && c.status == ContainerStatus::Exited)
                .map(|c| (v.at_ms, c.exit_code))
        });
        // Build 2 ends at 400 (its container up since 300); build 3 starts at 401 and stops it
        // halfway through its 100 ms step 1.
        assert_eq!(stopped, Some((451, 143)));
    }

    #[test]
    fn health_and_exits_as_tilt_shows_them() {
        let unhealthy = BuildSpec::new(400, &[]).runtime(&["not listening"], 0).unhealthy(200).update(Update::Recreate);
        let scenario = server(&[unhealthy]);
        let model = Model::new(&scenario, &triggers(&[0]), 5000);
        let health: Vec<(String, String)> = model
            .lines()
            .into_iter()
            .filter(|l| l.span_id.starts_with("dockercompose:"))
            .map(|l| (l.span_id, l.text))
            .collect();
        let expected = ("dockercompose:server".to_owned(), format!("healthcheck: {HEALTHCHECK_OUTPUT}"));
        assert_eq!(health, [expected]);
        let status = model.status("server").unwrap();
        assert_eq!((status.runtime_status.as_str(), status.conditions[1].status), ("ok", true), "unhealthy stays ok");

        let crash = BuildSpec::new(400, &[]).runtime(&["bye"], 100).exit_code(1).update(Update::Recreate);
        let scenario = server(&[crash]);
        let status = Model::new(&scenario, &triggers(&[0]), 5000).status("server").unwrap();
        assert_eq!((status.runtime_status.as_str(), status.conditions[1].reason), ("error", Some("RuntimeError")));
        let container = status.compose.unwrap().container.unwrap();
        assert_eq!(
            (container.status, container.exit_code, container.finished_ms),
            (ContainerStatus::Exited, 1, Some(430))
        );
    }

    #[test]
    fn names_follow_the_workspace_folder() {
        let names = Names::new("/tmp/sync-e2e-x/citadel wörkspace/Tiltfile", "server");
        assert_eq!(
            (names.project.as_str(), names.container()),
            ("citadelwrkspace", "citadelwrkspace-server-1".to_owned())
        );
        assert_eq!(names.image_target(), "citadelwrkspace_server");
        let id = container_id(7, "server");
        assert!(id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert_ne!(id, container_id(8, "server"));
    }
}
