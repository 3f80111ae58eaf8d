//! The pure run machine. Everything that happens during a sync — a log line, a status change,
//! a container's state, a stream's end, Ctrl-C, the answer to a Tilt call, the clock — is an
//! `Event` handed to `Machine::handle`, which answers with `Action`s: trigger, read the log
//! again, remediate, keep a line, a step's verdict. Every wait is a time it asks to be woken
//! at. `engine.rs` only carries the actions out; nothing here touches a process or a clock.
//!
//! - `judge.rs`: a line -> its role (error, success, nothing), and what a build's lines add up to;
//! - `attribution.rs`: what is known of each resource, and whose a line is;
//! - `attempt.rs`: one trigger and the build it caused, until a verdict;
//! - `guard.rs`: a passed step, watched until the run ends;
//! - `machine.rs`: the run: the steps in order, their attempts and guards.

pub mod attempt;
pub mod attribution;
pub mod guard;
pub mod judge;
pub mod machine;
#[cfg(test)]
mod tests;

use std::{fmt, time::Instant};

use crate::{
    protocol::KindId,
    tilt::{model::WallTime, TiltError},
};

pub use machine::{Action, End, Event, How, Machine, Refusal, StepEnd, Timing};

/// The time of an event: the monotonic clock, read once per event, and the wall clock derived
/// from it (from one reading of both when the run began), only where a time is shown.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub origin: (Instant, WallTime),
}

impl Now {
    pub fn wall(&self) -> WallTime {
        self.origin.1 + self.at.saturating_duration_since(self.origin.0)
    }
}

/// A build as Tilt knows it: its number and when it finished (numbers restart with Tilt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildId {
    pub number: u64,
    pub finished: Option<WallTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A line of our build matched an error kind, by the pattern `rule`.
    Error {
        kind: KindId,
        rule: String,
        line: String,
    },
    /// Tilt recorded our build as failed, whatever its log said.
    TiltRecorded {
        error: String,
    },
    /// Our build finished, then its service (a container, or a local serve process) stopped.
    RuntimeFailed {
        detail: String,
        container: bool,
    },
    /// A one-shot job's container exited without its success line.
    NoSuccessLine {
        detail: String,
    },
    /// Our container's healthcheck says unhealthy.
    Unhealthy,
    /// Tilt will not start our build: it waits for a dependency whose latest build failed.
    Blocked {
        dependency: String,
        error: String,
    },
    /// Tilt disabled the resource (`tilt disable`, its UI).
    Disabled,
    /// Tilt canceled our build (`Build Failed: build canceled`).
    Canceled {
        line: String,
    },
    /// Tilt no longer has the resource: the Tiltfile changed (renamed or removed it).
    Removed,
    /// Tilt cut lines of our build from its log (it keeps 2 MB): what is left is not the build.
    LogCut,
    /// A later build of a resource that passed in this run failed before the run ended.
    LaterBuildFailed {
        build: u64,
        error: String,
    },
    /// At the end of the run, Tilt's state of a resource that passed no longer stands.
    NoLongerStands(String),
    /// The step could not be decided safely.
    Uncertain(String),
    /// Another build of the resource started before ours was decided.
    Superseded {
        by: u64,
    },
    Timeout,
    /// Tilt stopped.
    TiltGone,
    Interrupted,
    /// A Tilt call failed or hung.
    TiltCall(TiltError),
    RemediationFailed(RemediationError),
}

impl Failure {
    /// The kind of error line that decided, if a line did.
    pub fn kind(&self) -> Option<KindId> {
        match self {
            Failure::Error { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// A Tilt call or stream ended with `error` (None: Tilt stopped, saying nothing).
    pub fn of_tilt(error: Option<TiltError>) -> Failure {
        match error {
            None => Failure::TiltGone,
            Some(TiltError::Interrupted) => Failure::Interrupted,
            Some(error) if error.is_not_running() => Failure::TiltGone,
            Some(error) => Failure::TiltCall(error),
        }
    }
}

/// Why a remediation did not run through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemediationError {
    NoDirectory { command: String, dir: String },
    NotFound { command: String, program: String },
    TimedOut { command: String },
    Failed { command: String, why: String },
    Interrupted,
}

impl fmt::Display for RemediationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemediationError::NoDirectory { command, dir } => {
                write!(f, "{command}: the directory {dir} does not exist")
            }
            RemediationError::NotFound { command, program } => {
                write!(f, "{command}: `{program}` was not found on PATH")
            }
            RemediationError::TimedOut { command } => {
                write!(f, "{command}: still running when the step's time ran out: killed")
            }
            RemediationError::Failed { command, why } => write!(f, "{command}: {why}"),
            RemediationError::Interrupted => write!(f, "interrupted"),
        }
    }
}
