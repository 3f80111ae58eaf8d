//! What the Tilt stand-in plays, as typed values: a [`Scenario`] of [`Resource`]s, each with the
//! [`BuildSpec`]s of its builds. Tests build them with the small builder methods below and hand
//! them to `Workspace::tilt`, which writes them as TOML for the stand-in (`src/bin/tilt.rs`
//! documents every key and what Tilt does with it).

use serde::{Deserialize, Serialize};

/// The default `tilt version` output.
pub const DEFAULT_VERSION: &str = "v0.37.6-dev, built 2026-11-24";
/// The port a real `tilt up` serves by default.
pub const DEFAULT_PORT: u16 = 10350;
/// The length of a build whose `duration_ms` is not given.
pub const DEFAULT_DURATION_MS: u64 = 100;
/// The update command of a local resource whose `cmd` is not given.
pub const DEFAULT_UPDATE_CMD: &str = "./build.sh";
/// How much log Tilt keeps for all resources together (`defaultMaxLogLengthInBytes` in
/// tilt-dev/tilt `pkg/model/logstore/logstore.go`: 2 * 1000 * 1000).
pub const TILT_LOG_LIMIT_BYTES: u64 = 2_000_000;
/// The command of the image's `RUN` step that prints a compose build's `lines`.
pub const IMAGE_RUN_COMMAND: &str = "sh /usr/src/app/build.sh";

/// What BuildKit says when the image's `RUN` step exits with `code`: the `error` of a failed
/// compose build as the real one reads (`#7 ERROR: …`, `failed to solve: …`).
pub fn buildkit_error(code: i32) -> String {
    format!("executor failed running [/bin/sh -c {IMAGE_RUN_COMMAND}]: exit code: {code}")
}

/// A whole scenario: the Tilt the stand-in pretends to be, and its resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// `false`: no Tilt is running; every call but `version` fails to connect.
    pub running: bool,
    /// The port this Tilt serves.
    pub port: u16,
    /// `false`: a Tilt older than 0.36.1, whose `logs` knows no `--json`, `--since`, `--tail`.
    pub json: bool,
    /// What `tilt version` prints.
    pub version: String,
    /// The Tiltfile path this Tilt runs; `None`: `<cwd>/Tiltfile`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tiltfile: Option<String>,
    /// Tilt stops this long after the first successful `tilt trigger`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_after_ms: Option<u64>,
    /// `logs -f` delivers each line this long after Tilt wrote it (a slow stream).
    #[serde(skip_serializing_if = "is_zero")]
    pub stream_delay_ms: u64,
    /// Every `tilt get` answer shows Tilt's state as it was this long ago.
    #[serde(skip_serializing_if = "is_zero")]
    pub status_lag_ms: u64,
    /// A new container or serve process shows in the status only this long after it started.
    #[serde(skip_serializing_if = "is_zero")]
    pub runtime_status_lag_ms: u64,
    /// What every `tilt` invocation costs before it answers (the real CLI's start-up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_cost: Option<CallCost>,
    /// Calls whose command words start with one of these hang silently.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hang: Vec<String>,
    /// Tilt keeps this many bytes of log for all resources together; past it, it cuts the
    /// heaviest resource's log (lines cut before a client read them are lost to it).
    #[serde(skip_serializing_if = "is_tilts_log_limit")]
    pub log_limit_bytes: u64,
    /// The resources, in Tiltfile order.
    #[serde(rename = "resource", skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
}

/// The price of one `tilt` invocation: `cpu_ms` of busy CPU, then sleep up to `wall_ms` in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallCost {
    pub wall_ms: u64,
    pub cpu_ms: u64,
}

/// How Tilt runs a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `dc_resource`: a docker-compose service, recreated by each successful build.
    #[default]
    Compose,
    /// `local_resource`: an update command (`cmd`), and perhaps a server (`serve_cmd`).
    Local,
}

/// One Tilt resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub name: String,
    #[serde(default, skip_serializing_if = "Kind::is_compose")]
    pub kind: Kind,
    /// Local: the update command; `None`: [`DEFAULT_UPDATE_CMD`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Local: `false` for a serve-only resource (no update command: builds finish at once).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub update: bool,
    /// Local: the server started after each successful build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_cmd: Option<String>,
    /// Builds that finished before the scenario started, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<BuildSpec>,
    /// A build already running when the scenario starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<BuildSpec>,
    /// The builds `tilt trigger` starts, in order; the last one repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build: Vec<BuildSpec>,
    /// A Tiltfile edit removes (or renames) this resource this long after the first
    /// successful `tilt trigger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_after_ms: Option<u64>,
}

/// What one build prints and how long it takes, and what its container or server does after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildSpec {
    /// From the build's start to its finish.
    pub duration_ms: u64,
    /// Build output, spread evenly over the build (the last line at its finish); compose: the
    /// output of the image's `RUN` step, which BuildKit prefixes (`#7 0.255 …`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
    /// `Some`: the build fails with this error. Local: Tilt's `Build Failed: <error>`; compose:
    /// BuildKit's reason (see [`buildkit_error`]), Tilt's own error being compose's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Output of the container (or serve process) a successful build starts, spread evenly
    /// over `runtime_ms` (a compose container starts 120 ms before its build ends).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtime: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub runtime_ms: u64,
    /// `Some`: the container (or serve process) exits with this code after its runtime output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Compose: the container's healthcheck verdict, `health_ms` after it started ("starting"
    /// until then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    #[serde(skip_serializing_if = "is_zero")]
    pub health_ms: u64,
    /// Compose: what Compose does with the container (a trigger with no changed file is a
    /// force update, the default).
    #[serde(skip_serializing_if = "Update::is_force")]
    pub update: Update,
}

/// How a compose build deploys, as Tilt and Compose do it (`../shared/docker/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    /// A trigger with no changed file: `STEP 1/2 — Force update` stops and removes the
    /// container, `STEP 2/2 — Building & deploying` builds the image and creates a new one.
    #[default]
    Force,
    /// Changed files and a new image: `STEP 1/1 — Building & deploying`, then Compose
    /// recreates the container (a new id).
    Recreate,
    /// Changed files, the same image: `STEP 1/1 — Building & deploying`, then Compose keeps
    /// a running container as it is (`Running`: same id, no new output, no state change) and
    /// starts an exited one again in the same container.
    Kept,
}

impl Update {
    fn is_force(&self) -> bool {
        *self == Update::Force
    }
}

/// A compose healthcheck's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// The build a resource with no `build` entries runs when triggered.
pub static DEFAULT_BUILD: BuildSpec = BuildSpec {
    duration_ms: DEFAULT_DURATION_MS,
    lines: Vec::new(),
    error: None,
    runtime: Vec::new(),
    runtime_ms: 0,
    exit_code: None,
    health: None,
    health_ms: 0,
    update: Update::Force,
};

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_tilts_log_limit(value: &u64) -> bool {
    *value == TILT_LOG_LIMIT_BYTES
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            running: true,
            port: DEFAULT_PORT,
            json: true,
            version: DEFAULT_VERSION.to_owned(),
            tiltfile: None,
            stop_after_ms: None,
            stream_delay_ms: 0,
            status_lag_ms: 0,
            runtime_status_lag_ms: 0,
            call_cost: None,
            hang: Vec::new(),
            log_limit_bytes: TILT_LOG_LIMIT_BYTES,
            resources: Vec::new(),
        }
    }
}

impl Default for BuildSpec {
    fn default() -> Self {
        DEFAULT_BUILD.clone()
    }
}

impl Scenario {
    /// A running Tilt on the default port with these resources (set other fields with
    /// `Scenario { port: 10351, ..scenario }`).
    pub fn new(resources: impl IntoIterator<Item = Resource>) -> Self {
        Scenario { resources: resources.into_iter().collect(), ..Scenario::default() }
    }

    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// The resource named `name`, to change; a test naming a resource it does not have panics.
    #[track_caller]
    pub fn resource_mut(&mut self, name: &str) -> &mut Resource {
        match self.resources.iter_mut().find(|r| r.name == name) {
            Some(resource) => resource,
            None => panic!("the scenario has no resource `{name}`"),
        }
    }

    /// This scenario with the resource of the same name replaced by `resource`.
    #[track_caller]
    pub fn with_resource(mut self, resource: Resource) -> Self {
        let name = resource.name.clone();
        *self.resource_mut(&name) = resource;
        self
    }
}

impl Kind {
    fn is_compose(&self) -> bool {
        *self == Kind::Compose
    }
}

impl Resource {
    fn new(name: &str, kind: Kind) -> Self {
        Resource {
            name: name.to_owned(),
            kind,
            cmd: None,
            update: true,
            serve_cmd: None,
            history: Vec::new(),
            running: None,
            build: Vec::new(),
            removed_after_ms: None,
        }
    }

    /// A docker-compose service.
    pub fn compose(name: &str) -> Self {
        Self::new(name, Kind::Compose)
    }

    /// A local resource running the default update command, with no server.
    pub fn local(name: &str) -> Self {
        Self::new(name, Kind::Local)
    }

    /// Local: the update command.
    pub fn cmd(mut self, cmd: &str) -> Self {
        self.cmd = Some(cmd.to_owned());
        self
    }

    /// Local: the server started after each successful build.
    pub fn serve(mut self, serve_cmd: &str) -> Self {
        self.serve_cmd = Some(serve_cmd.to_owned());
        self
    }

    /// Local: a server and no update command (`local_resource(serve_cmd=…)` alone).
    pub fn serve_only(mut self, serve_cmd: &str) -> Self {
        self.update = false;
        self.cmd = None;
        self.serve(serve_cmd)
    }

    /// One more build started by `tilt trigger`.
    pub fn build(mut self, build: BuildSpec) -> Self {
        self.build.push(build);
        self
    }

    /// One more build finished before scenario start (after the earlier ones).
    pub fn history(mut self, build: BuildSpec) -> Self {
        self.history.push(build);
        self
    }

    /// The build running at scenario start.
    pub fn running(mut self, build: BuildSpec) -> Self {
        self.running = Some(build);
        self
    }

    /// A Tiltfile edit removes the resource `ms` after the first successful trigger.
    pub fn removed_after(mut self, ms: u64) -> Self {
        self.removed_after_ms = Some(ms);
        self
    }

    /// The spec of the `index`-th (0-based) triggered build of this resource.
    pub fn triggered_build(&self, index: usize) -> &BuildSpec {
        self.build.get(index).or(self.build.last()).unwrap_or(&DEFAULT_BUILD)
    }

    /// The update command Tilt runs for a build, if this is a local resource that has one.
    pub fn update_cmd(&self) -> Option<&str> {
        (self.kind == Kind::Local && self.update).then(|| self.cmd.as_deref().unwrap_or(DEFAULT_UPDATE_CMD))
    }
}

impl BuildSpec {
    /// A successful build of `duration_ms` printing `lines`.
    pub fn new(duration_ms: u64, lines: &[&str]) -> Self {
        BuildSpec { duration_ms, lines: strings(lines), ..BuildSpec::default() }
    }

    /// The build fails with `error` (Tilt's `Build Failed: <error>`).
    pub fn failing(mut self, error: &str) -> Self {
        self.error = Some(error.to_owned());
        self
    }

    /// After the build, its container (or server) prints `lines` over `ms`.
    pub fn runtime(mut self, lines: &[&str], ms: u64) -> Self {
        self.runtime = strings(lines);
        self.runtime_ms = ms;
        self
    }

    /// The container (or server) exits with `code` after its runtime output.
    pub fn exit_code(mut self, code: i32) -> Self {
        self.exit_code = Some(code);
        self
    }

    /// The container's healthcheck passes `ms` after it started.
    pub fn healthy(mut self, ms: u64) -> Self {
        self.health = Some(Health::Healthy);
        self.health_ms = ms;
        self
    }

    /// The container's healthcheck fails `ms` after it started.
    pub fn unhealthy(mut self, ms: u64) -> Self {
        self.health = Some(Health::Unhealthy);
        self.health_ms = ms;
        self
    }

    /// Compose: how the build deploys (`Update::Force` unless said).
    pub fn update(mut self, update: Update) -> Self {
        self.update = update;
        self
    }
}

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|line| (*line).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_leaves_defaults_out() {
        let scenario = Scenario {
            port: 10351,
            call_cost: Some(CallCost { wall_ms: 70, cpu_ms: 80 }),
            hang: vec!["logs".to_owned()],
            log_limit_bytes: 4096,
            ..Scenario::new([
                Resource::compose("server")
                    .history(BuildSpec::new(100, &["old \u{1b}[0m \"quoted\""]).failing("exit status 101"))
                    .running(BuildSpec::new(400, &[]))
                    .build(
                        BuildSpec::new(300, &["a"]).runtime(&["up"], 50).exit_code(1).healthy(200).update(Update::Kept),
                    )
                    .removed_after(900),
                Resource::local("ui").serve_only("./ui.sh"),
            ])
        };
        let text = toml::to_string(&scenario).expect("serializable");
        assert!(!text.contains("kind = \"compose\"") && !text.contains("runtime_ms = 0"), "{text}");
        assert!(text.contains("update = \"kept\"") && !text.contains("update = \"force\""), "{text}");
        assert!(text.contains("update = false"), "{text}");
        let back: Scenario = toml::from_str(&text).expect("parses back");
        assert_eq!(back, scenario);

        let minimal: Scenario = toml::from_str("[[resource]]\nname = \"a\"\n").expect("minimal");
        assert_eq!(minimal, Scenario::new([Resource::compose("a")]));
        assert_eq!(minimal.resources[0].triggered_build(3), &DEFAULT_BUILD);
    }

    #[test]
    fn update_commands() {
        assert_eq!(Resource::compose("a").update_cmd(), None);
        assert_eq!(Resource::local("a").update_cmd(), Some(DEFAULT_UPDATE_CMD));
        assert_eq!(Resource::local("a").cmd("./wasm.sh").update_cmd(), Some("./wasm.sh"));
        assert_eq!(Resource::local("a").serve_only("./ui.sh").update_cmd(), None);
    }
}
