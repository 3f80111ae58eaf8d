//! The sync's verdict as a document: `logs/sync-status.json`, and `sync --json` (the same
//! document), and what `--json` prints when the sync cannot run. One serde type for everyone who
//! reads or writes it: the report fills it in, the store writes and reads it, `status` and the
//! benchmark read it, and the end-to-end tests compile this very file (`tests/src/lib.rs`) to
//! read the real binary's output. Its field names and values are a contract (README, `--json`):
//! agents and scripts read them. Only serde and `time` here, so that both crates can build it.

use std::{fmt, path::PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A run's verdict and each step's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub status: RunStatus,
    /// The sync's own CPU time.
    pub cpu_ms: Option<u64>,
    pub took_ms: Option<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// With `success`: why nothing needed a rebuild.
    pub message: Option<String>,
    /// The failed (or interrupted) step's number in the protocol, from 1.
    pub failed_step: Option<usize>,
    /// The saved log of the failure, or why it could not be saved.
    pub error_log: Option<PathBuf>,
    pub log_error: Option<String>,
    /// Every step of the protocol, in its order.
    pub steps: Vec<StepStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Success,
    Failed,
    Interrupted,
}

impl RunStatus {
    /// The word, as the document spells it (`status` says it too).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatus {
    pub name: String,
    pub resource: String,
    pub outcome: Outcome,
    pub duration_ms: u64,
    /// When the step began (before its trigger) and was decided.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// What each remediation that ran did.
    pub remediations: Vec<String>,
    /// The line that decided the step.
    pub deciding_line: Option<String>,
    /// For a failure: the one line that says what, where, and what to do.
    pub cause: Option<String>,
    /// The step's log since its trigger.
    pub log: Option<PathBuf>,
    /// The number of the Tilt build that passed, or that failed.
    pub build: Option<u64>,
    /// Where the deciding error is, as its compiler said.
    pub location: Option<Location>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Failed,
    Timeout,
    /// Triggered, then Ctrl-C: Tilt goes on with its build.
    Interrupted,
    /// Triggered, then the run ended before its verdict (a step that had passed failed).
    Uncertain,
    Skipped,
    NotRun,
}

impl Outcome {
    /// The word, as the document spells it (the text report says it too).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Interrupted => "interrupted",
            Outcome::Uncertain => "uncertain",
            Outcome::Skipped => "skipped",
            Outcome::NotRun => "not-run",
        }
    }
}

/// Where an error is: a file, from the workspace's root when it lies in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Relative to the workspace's root when it lies in it, else as the compiler wrote it.
    pub path: String,
    pub line: u32,
    pub column: Option<u32>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(column) => write!(f, "{}:{}:{column}", self.path, self.line),
            None => write!(f, "{}:{}", self.path, self.line),
        }
    }
}

/// What `--json` prints when the command could not run (Tilt down, not a git repository) or
/// Ctrl-C came before any step was triggered: a script reading stdout learns why too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub status: ErrorStatus,
    /// What happened and what to do.
    pub message: String,
    pub exit_code: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorStatus {
    Error,
    Interrupted,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's spelling, pinned: every field name and every word is a contract, and
    /// a test that reads the document through this type would not see them change.
    #[test]
    fn the_document_is_spelt_as_documented() {
        let step = |name: &str, outcome| StepStatus {
            name: name.to_owned(),
            resource: name.to_owned(),
            outcome,
            duration_ms: 0,
            started_at: None,
            decided_at: None,
            remediations: Vec::new(),
            deciding_line: None,
            cause: None,
            log: None,
            build: None,
            location: None,
        };
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid time");
        let failed = StepStatus {
            duration_ms: 4100,
            started_at: Some(at),
            decided_at: Some(at),
            remediations: vec!["`npm install` in ui".to_owned()],
            deciding_line: Some("error[E0425]".to_owned()),
            cause: Some("Step 2 FAILED: …".to_owned()),
            log: Some(PathBuf::from("/ws/logs/server.log")),
            build: Some(7),
            location: Some(Location { path: "src/main.rs".to_owned(), line: 40, column: Some(9) }),
            ..step("server", Outcome::Failed)
        };
        let status = SyncStatus {
            status: RunStatus::Failed,
            cpu_ms: Some(80),
            took_ms: Some(4100),
            finished_at: at,
            message: None,
            failed_step: Some(2),
            error_log: Some(PathBuf::from("/ws/logs/sync-error-20270115T080000Z.log")),
            log_error: None,
            steps: [Outcome::Ok, Outcome::Timeout, Outcome::Interrupted, Outcome::Uncertain, Outcome::Skipped]
                .into_iter()
                .map(|outcome| step("a", outcome))
                .chain([failed, step("ui", Outcome::NotRun)])
                .collect(),
        };
        let json = serde_json::to_value(&status).expect("serializable");
        let expected = serde_json::json!({
            "status": "failed", "cpu_ms": 80, "took_ms": 4100, "finished_at": "2027-01-15T08:00:00Z",
            "message": null, "failed_step": 2, "error_log": "/ws/logs/sync-error-20270115T080000Z.log",
            "log_error": null,
            "steps": [
                {"name": "a", "resource": "a", "outcome": "ok", "duration_ms": 0, "started_at": null,
                 "decided_at": null, "remediations": [], "deciding_line": null, "cause": null, "log": null,
                 "build": null, "location": null},
                {"name": "a", "resource": "a", "outcome": "timeout", "duration_ms": 0, "started_at": null,
                 "decided_at": null, "remediations": [], "deciding_line": null, "cause": null, "log": null,
                 "build": null, "location": null},
                {"name": "a", "resource": "a", "outcome": "interrupted", "duration_ms": 0, "started_at": null,
                 "decided_at": null, "remediations": [], "deciding_line": null, "cause": null, "log": null,
                 "build": null, "location": null},
                {"name": "a", "resource": "a", "outcome": "uncertain", "duration_ms": 0, "started_at": null,
                 "decided_at": null, "remediations": [], "deciding_line": null, "cause": null, "log": null,
                 "build": null, "location": null},
                {"name": "a", "resource": "a", "outcome": "skipped", "duration_ms": 0, "started_at": null,
                 "decided_at": null, "remediations": [], "deciding_line": null, "cause": null, "log": null,
                 "build": null, "location": null},
                {"name": "server", "resource": "server", "outcome": "failed", "duration_ms": 4100,
                 "started_at": "2027-01-15T08:00:00Z", "decided_at": "2027-01-15T08:00:00Z",
                 "remediations": ["`npm install` in ui"], "deciding_line": "error[E0425]",
                 "cause": "Step 2 FAILED: …", "log": "/ws/logs/server.log", "build": 7,
                 "location": {"path": "src/main.rs", "line": 40, "column": 9}},
                {"name": "ui", "resource": "ui", "outcome": "not-run", "duration_ms": 0, "started_at": null,
                 "decided_at": null, "remediations": [], "deciding_line": null, "cause": null, "log": null,
                 "build": null, "location": null},
            ],
        });
        assert_eq!(json, expected);
        assert_eq!(serde_json::from_value::<SyncStatus>(json).expect("readable"), status);
        for step in &status.steps {
            assert_eq!(serde_json::to_value(step.outcome).expect("serializable"), step.outcome.as_str());
        }
        for status in [RunStatus::Success, RunStatus::Failed, RunStatus::Interrupted] {
            assert_eq!(serde_json::to_value(status).expect("serializable"), status.as_str());
        }
        assert_eq!(RunStatus::Success.as_str(), "success");

        let error = ErrorReport { status: ErrorStatus::Error, message: "no Tilt".to_owned(), exit_code: 2 };
        let expected = serde_json::json!({"status": "error", "message": "no Tilt", "exit_code": 2});
        assert_eq!(serde_json::to_value(&error).expect("serializable"), expected);
        assert_eq!(serde_json::to_value(ErrorStatus::Interrupted).expect("serializable"), "interrupted");
    }
}
