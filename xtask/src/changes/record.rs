//! What a run leaves for the next one to select from: each step's last sync. The rule mirrors
//! `select.rs`'s: a step whose record stands is not run again for what it already deployed.

use time::format_description::well_known::Rfc3339;

use crate::{
    changes::select::Selection,
    protocol::Protocol,
    report::RunReport,
    store::{status::Outcome, Records, StepRecord},
};

/// Updates each step's last sync from the run: a step that passed records the workspace as the
/// run began and the build that passed; a failed step is recorded as failed, so that it runs
/// next time whatever changed. A step due but not reached (a failure or Ctrl-C before it) keeps
/// its last good record, whose changes since still count; without one it is recorded as failed,
/// since what it was due for may be committed (and out of the base's sight) by the next run.
/// Returns whether anything changed.
pub fn record(records: &mut Records, protocol: &Protocol, selection: &Selection, report: &RunReport) -> bool {
    let Some(fingerprint) = &selection.fingerprint else { return false };
    let before = records.clone();
    for step in &report.steps {
        let due =
            protocol.steps.iter().position(|planned| planned.name == step.name).is_some_and(|i| selection.runs(i));
        let failed =
            matches!(step.outcome, Outcome::Failed | Outcome::Timeout | Outcome::Interrupted | Outcome::Uncertain);
        let owed = due
            && matches!(step.outcome, Outcome::Skipped | Outcome::NotRun)
            && !records.steps.contains_key(&step.name);
        match (step.outcome, &step.build) {
            (Outcome::Ok, Some(build)) => {
                let record = StepRecord {
                    resource: step.resource.clone(),
                    failed: false,
                    build: build.number,
                    finished: build.finished.and_then(|at| at.format(&Rfc3339).ok()),
                    fingerprint: fingerprint.clone(),
                };
                records.steps.insert(step.name.clone(), record);
            }
            _ if failed || owed => {
                let record = StepRecord {
                    resource: step.resource.clone(),
                    failed: true,
                    build: 0,
                    finished: None,
                    fingerprint: fingerprint.clone(),
                };
                records.steps.insert(step.name.clone(), record);
            }
            _ => {}
        }
    }
    *records != before
}
