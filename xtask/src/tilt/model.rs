//! Tilt's data as the sync sees it: log lines placed in their span, a resource's status and a
//! docker-compose service's container. `tilt.rs` reads them from Tilt's output, `step.rs` judges
//! them; neither owns them.

use time::OffsetDateTime;

/// A wall-clock instant as Tilt records it (UTC); the sync's own trigger times are taken on the
/// same clock, since Tilt runs on this machine.
pub type WallTime = OffsetDateTime;

pub use tilt_log::{LogLine, Span};

/// What Tilt says of a resource (`tilt get uiresource NAME -o json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceStatus {
    pub name: String,
    pub kind: ResourceKind,
    pub current: Option<BuildRecord>,
    /// Finished builds, newest first.
    pub finished: Vec<FinishedBuild>,
    /// A trigger waits for the running build to end.
    pub queued: bool,
    pub runtime: Runtime,
    /// The resources Tilt holds its builds for until they are ready (`waiting-for-dep`).
    pub waiting_on: Vec<String>,
    /// Disabled in Tilt (`tilt disable`, the UI): it builds nothing and runs nothing.
    pub disabled: bool,
}

impl ResourceStatus {
    /// The highest build number Tilt knows of for this resource.
    pub fn newest_build(&self) -> u64 {
        self.finished
            .iter()
            .map(|build| build.number)
            .chain(self.current.as_ref().map(|build| build.number))
            .max()
            .unwrap_or(0)
    }

    /// Why it cannot become ready now: its latest build failed, and none is building or queued.
    pub fn stuck_failed(&self) -> Option<&str> {
        let failed = self.finished.first()?.error.as_deref()?;
        (self.current.is_none() && !self.queued).then_some(failed)
    }

    pub fn finished_build(&self, number: u64) -> Option<&FinishedBuild> {
        self.finished.iter().find(|build| build.number == number)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ResourceKind {
    Local,
    Compose,
    Kubernetes,
    #[default]
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecord {
    pub number: u64,
    pub start: Option<WallTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedBuild {
    pub number: u64,
    pub start: Option<WallTime>,
    pub finish: Option<WallTime>,
    pub error: Option<String>,
}

/// The resource's runtime: its serve process or container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtime {
    pub status: RuntimeStatus,
    /// Which serve process (its pid) Tilt describes, when it says.
    pub instance: Option<String>,
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RuntimeStatus {
    Ok,
    Pending,
    Error,
    NotApplicable,
    #[default]
    Unknown,
}

impl RuntimeStatus {
    pub fn parse(text: &str) -> RuntimeStatus {
        match text {
            "ok" => RuntimeStatus::Ok,
            "pending" => RuntimeStatus::Pending,
            "error" => RuntimeStatus::Error,
            "not_applicable" => RuntimeStatus::NotApplicable,
            _ => RuntimeStatus::Unknown,
        }
    }
}

/// A container's healthcheck result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn parse(text: &str) -> Option<Health> {
        match text {
            "starting" => Some(Health::Starting),
            "healthy" => Some(Health::Healthy),
            "unhealthy" => Some(Health::Unhealthy),
            _ => None,
        }
    }
}

/// A docker-compose service's container (`tilt get dockercomposeservice NAME -o json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComposeService {
    pub name: String,
    /// New for every container compose creates.
    pub container: Option<String>,
    /// When it last started: a one-shot restarted in the same container starts again.
    pub started_at: Option<String>,
    /// Its name, as Compose prints it (`ws-server-1`).
    pub container_name: Option<String>,
    /// It stopped (`exited`, `dead`), whatever its exit code.
    pub exited: bool,
    pub exit_code: i64,
    pub error: Option<String>,
    pub health: Option<Health>,
}

impl ComposeService {
    /// Whether it is down. Tilt reads a non-zero exit or an error as a failed runtime, but keeps
    /// `ok` for a container that exited 0: for a service that must stay up (`stays_up`), any
    /// stop is down.
    pub fn down(&self, stays_up: bool) -> bool {
        self.exit_code != 0 || self.error.is_some() || (stays_up && self.exited)
    }

    /// How it went down, for the report: `its container exited with code 0`.
    pub fn why_down(&self) -> String {
        let detail = self.error.clone().unwrap_or_else(|| format!("exited with code {}", self.exit_code));
        format!("its container {detail}")
    }

    /// Stopped by a signal, as Compose stops a container it replaces: SIGKILL (137), SIGTERM
    /// (143).
    pub fn killed(&self) -> bool {
        self.exited && matches!(self.exit_code, 137 | 143)
    }

    /// The same container, in the same run (not restarted since).
    pub fn same_run(&self, other: &ComposeService) -> bool {
        self.container.is_some() && self.container == other.container && self.started_at == other.started_at
    }
}

/// Whether a synced resource still stands as Tilt shows it: the one definition used at the end
/// of every sync, by `status`, and before "Already in sync". `stays_up`: a service (not a
/// one-shot job), which any stop takes down; `health`: its container's healthcheck counts.
pub fn trouble(
    resource: &str,
    status: Option<&ResourceStatus>,
    container: Option<&ComposeService>,
    stays_up: bool,
) -> Option<String> {
    let Some(status) = status else {
        return Some(format!("Tilt has no resource `{resource}` now"));
    };
    if status.disabled {
        return Some(format!(
            "{resource} is disabled in Tilt (enable it in Tilt's UI or with `tilt enable {resource}`)"
        ));
    }
    if let Some(error) = status.finished.first().and_then(|build| build.error.as_ref()) {
        return Some(format!("Tilt's latest build of {resource} failed: {error}"));
    }
    if let Some(container) = container.filter(|container| container.down(stays_up)) {
        return Some(format!("{resource}'s service is down ({})", container.why_down()));
    }
    if container.and_then(|container| container.health).or(status.runtime.health) == Some(Health::Unhealthy) {
        return Some(format!("{resource}'s container reports unhealthy (its healthcheck fails)"));
    }
    if status.runtime.status == RuntimeStatus::Error {
        return Some(format!("{resource}'s service is down (Tilt's runtime status: error)"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_build_includes_the_running_one() {
        let status = ResourceStatus {
            current: Some(BuildRecord { number: 7, start: None }),
            finished: vec![FinishedBuild { number: 6, start: None, finish: None, error: None }],
            ..ResourceStatus::default()
        };
        assert_eq!(status.newest_build(), 7);
        assert_eq!(ResourceStatus::default().newest_build(), 0);
    }
}
