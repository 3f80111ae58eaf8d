//! `cargo xtask status`: does the last sync still stand? The last sync (when, result, each
//! step's outcome and time), what changed since, and each resource's state in Tilt now — one
//! Tilt call, nothing built. The verdict is `select.rs`'s: a sync stands when no step would run.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use xshell::Shell;

use crate::{
    changes::{
        gather,
        select::{self, Selection},
    },
    flags,
    protocol::Protocol,
    store::{
        status::{StepStatus, SyncStatus},
        LogDir,
    },
    sync::{EXIT_ENVIRONMENT, EXIT_FAILED},
    tilt::model::{ResourceStatus, RuntimeStatus},
    tilt::{Tilt, TiltError},
};

impl flags::Status {
    pub fn run(&self, sh: &Shell) -> Result<ExitCode> {
        let root = crate::workspace_root(&self.root)?;
        let protocol = Protocol::load(self.config.as_deref())?;
        let logs = LogDir::open(&root)?;
        let last = logs.read_status();
        let records = logs.read_records();
        let tilt = Tilt::new(sh, self.tilt.program.clone(), self.tilt.port, protocol.settings.tilt_call_timeout.0);
        let state = match tilt.state() {
            Ok(state) => state,
            Err(err) => {
                let verdict = Verdict::tilt_unavailable(&err, records.steps.is_empty());
                if self.json {
                    return cannot_tell(&verdict, last.as_ref());
                }
                bail!("{}", verdict.line());
            }
        };
        let request = gather::Request { all: false, named: &[], base: None, pre_push_input: None };
        let changes = gather::gather(sh, &root, &protocol, &request, &records)?;
        let statuses = state.statuses.clone();
        let selection = select::select(&protocol, &changes, &records, Some(&state))?;
        let verdict = Verdict::of(&protocol, &selection, last.as_ref(), records.steps.is_empty());
        if self.json {
            let report = report_json(&protocol, &selection, &statuses, last.as_ref(), &verdict);
            println!("{}", serde_json::to_string_pretty(&report).context("printing the report")?);
        } else {
            print!("{}", report_text(&protocol, &selection, &statuses, last.as_ref(), &verdict));
        }
        Ok(ExitCode::from(verdict.exit_code()))
    }
}

/// Tilt did not answer: `status --json` says so, with the last sync.
fn cannot_tell(verdict: &Verdict, last: Option<&SyncStatus>) -> Result<ExitCode> {
    let report = StatusReport {
        status: Standing::Unknown,
        exit_code: EXIT_ENVIRONMENT,
        message: verdict.line(),
        last_sync: last,
        changed: None,
        steps: None,
    };
    println!("{}", serde_json::to_string_pretty(&report).context("printing the report")?);
    Ok(ExitCode::from(EXIT_ENVIRONMENT))
}

/// `status --json`.
#[derive(Serialize)]
struct StatusReport<'a> {
    status: Standing,
    exit_code: u8,
    message: String,
    last_sync: Option<&'a SyncStatus>,
    /// The paths changed since, and each step's state: absent when Tilt did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    changed: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<StepState>>,
}

/// Whether the last sync still stands.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum Standing {
    Stands,
    Stale,
    Unknown,
}

#[derive(Serialize)]
struct StepState {
    name: String,
    resource: String,
    needs_sync: bool,
    reason: String,
    tilt: String,
}

enum Verdict {
    Stands,
    /// The first step that would run, and why.
    Stale {
        step: String,
        why: String,
    },
    /// The whole line: what is missing, and what to do.
    CannotTell(String),
}

impl Verdict {
    /// Tilt did not answer: what it would have said decides.
    fn tilt_unavailable(err: &TiltError, no_records: bool) -> Verdict {
        Verdict::CannotTell(match no_records {
            true => format!("Cannot tell: no sync recorded in this workspace yet, and {err}"),
            false => format!("Cannot tell whether the last sync stands: Tilt's builds decide it, and {err}"),
        })
    }

    fn of(protocol: &Protocol, selection: &Selection, last: Option<&SyncStatus>, no_records: bool) -> Verdict {
        let first = selection.whys.iter().zip(&protocol.steps).find(|(why, _)| why.runs());
        if let Some((why, step)) = first {
            return Verdict::Stale { step: step.name.clone(), why: why.to_string() };
        }
        if last.is_none() || no_records {
            return Verdict::CannotTell(
                "Cannot tell: no sync recorded in this workspace yet: run `cargo xtask sync`".to_owned(),
            );
        }
        Verdict::Stands
    }

    fn exit_code(&self) -> u8 {
        match self {
            Verdict::Stands => 0,
            Verdict::Stale { .. } => EXIT_FAILED,
            Verdict::CannotTell(_) => EXIT_ENVIRONMENT,
        }
    }

    fn line(&self) -> String {
        match self {
            Verdict::Stands => {
                "The last sync still stands: nothing changed that needs a rebuild, and Tilt agrees".to_owned()
            }
            Verdict::Stale { step, why } => format!("The last sync no longer stands: {step} needs a sync ({why})"),
            Verdict::CannotTell(line) => line.clone(),
        }
    }
}

/// ` (3 min ago)`.
fn ago(at: OffsetDateTime) -> String {
    let seconds = (OffsetDateTime::now_utc() - at).whole_seconds().max(0);
    match seconds {
        0..60 => format!(" ({seconds} s ago)"),
        60..3600 => format!(" ({} min ago)", seconds / 60),
        3600..86400 => format!(" ({} h ago)", seconds / 3600),
        _ => format!(" ({} days ago)", seconds / 86400),
    }
}

/// What Tilt says of a resource now, in a few words.
fn tilt_state(status: Option<&ResourceStatus>) -> String {
    let Some(status) = status else { return "not in Tilt".to_owned() };
    let build = match (&status.current, status.finished.first()) {
        (Some(running), _) => format!("building (build {})", running.number),
        (None, Some(build)) => match &build.error {
            Some(error) => format!("build {} failed: {error}", build.number),
            None => format!("build {} ok", build.number),
        },
        (None, None) => "never built".to_owned(),
    };
    let runtime = match status.runtime.status {
        RuntimeStatus::Error => ", service down (runtime error)",
        RuntimeStatus::Pending => ", service starting",
        _ => "",
    };
    format!("{build}{runtime}")
}

fn report_text(
    protocol: &Protocol,
    selection: &Selection,
    statuses: &[ResourceStatus],
    last: Option<&SyncStatus>,
    verdict: &Verdict,
) -> String {
    let mut out = format!("{}\n", verdict.line());
    match last {
        Some(last) => {
            let at = last.finished_at.format(&Rfc3339).unwrap_or_else(|_| "?".to_owned());
            let result = last.status.as_str().to_uppercase();
            out.push_str(&format!("Last sync: {at}{}: {result}\n", ago(last.finished_at)));
        }
        None => out.push_str("Last sync: none recorded here\n"),
    }
    let count = selection.changed.len();
    out.push_str(&format!("Changed since: {count} path{}\n", if count == 1 { "" } else { "s" }));
    let width = protocol.steps.iter().map(|step| step.name.len()).max().unwrap_or(0);
    let steps: &[StepStatus] = last.map(|last| last.steps.as_slice()).unwrap_or_default();
    for ((why, step), index) in selection.whys.iter().zip(&protocol.steps).zip(0..) {
        let outcome = steps.get(index).map(|step| {
            let took = Some(step.duration_ms).filter(|ms| *ms > 0).map(|ms| format!(" {:.1}s", ms as f64 / 1000.0));
            format!("{}{}", step.outcome.as_str(), took.unwrap_or_default())
        });
        let tilt = tilt_state(statuses.iter().find(|status| status.name == step.resource));
        let verb = if why.runs() { "needs a sync" } else { "stands" };
        out.push_str(&format!(
            "  {:width$}  last: {:14}  Tilt: {tilt}\n  {:width$}  {verb}: {why}\n",
            step.name,
            outcome.unwrap_or_else(|| "-".to_owned()),
            ""
        ));
    }
    out
}

fn report_json<'a>(
    protocol: &Protocol,
    selection: &'a Selection,
    statuses: &[ResourceStatus],
    last: Option<&'a SyncStatus>,
    verdict: &Verdict,
) -> StatusReport<'a> {
    let status = match verdict {
        Verdict::Stands => Standing::Stands,
        Verdict::Stale { .. } => Standing::Stale,
        Verdict::CannotTell(_) => Standing::Unknown,
    };
    let steps = selection
        .whys
        .iter()
        .zip(&protocol.steps)
        .map(|(why, step)| StepState {
            name: step.name.clone(),
            resource: step.resource.clone(),
            needs_sync: why.runs(),
            reason: why.to_string(),
            tilt: tilt_state(statuses.iter().find(|status| status.name == step.resource)),
        })
        .collect();
    StatusReport {
        status,
        exit_code: verdict.exit_code(),
        message: verdict.line(),
        last_sync: last,
        changed: Some(&selection.changed),
        steps: Some(steps),
    }
}
