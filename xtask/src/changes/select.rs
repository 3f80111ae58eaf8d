//! Which steps a run needs, and why: the one place that decides. `--all` and `--step` name
//! them; otherwise each step runs when a change it depends on happened since its last good sync
//! (else since the base, or in the commits being pushed), or when Tilt no longer shows the
//! build that passed then — failed since, rebuilt, or its service down.

use std::{collections::HashMap, fmt};

use anyhow::{bail, Result};
use camino::Utf8Path;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use xshell::Shell;

use crate::{
    changes::git::{Fingerprint, Git},
    changes::plan::{claims, Claim},
    protocol::Protocol,
    store::{Records, StepRecord},
    tilt::model::{ResourceStatus, RuntimeStatus},
    tilt::TiltState,
};

/// Why a step runs, or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    All,
    Named,
    NotNamed,
    /// A change it depends on, since its last good sync or the base.
    Changed(Claim),
    /// Another step runs (the UI reloads after any service).
    WithAnyStep,
    /// A last good sync's record is gone (its git trees pruned): what was deployed is unknown.
    RecordGone,
    /// It failed, or was due and not reached, in the last run that planned it.
    FailedLastTime,
    /// Its inputs are unchanged since its last good sync, but Tilt's state says otherwise.
    TiltDisagrees(String),
    /// Unchanged since its last good sync, and Tilt still shows that build, healthy.
    UpToDate {
        build: u64,
    },
    /// Unchanged since its last good sync; Tilt was not asked (`--plan`).
    Unchanged {
        build: u64,
    },
    /// No change it depends on and no record of a sync, but Tilt shows its resource failed.
    TiltShowsFailure(String),
    /// No change it depends on, and no record of a sync.
    NoChange,
}

impl Why {
    pub fn runs(&self) -> bool {
        matches!(
            self,
            Why::All
                | Why::Named
                | Why::Changed(_)
                | Why::WithAnyStep
                | Why::RecordGone
                | Why::FailedLastTime
                | Why::TiltDisagrees(_)
                | Why::TiltShowsFailure(_)
        )
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::All => write!(f, "--all"),
            Why::Named => write!(f, "--step"),
            Why::NotNamed => write!(f, "not named by --step"),
            Why::Changed(claim) => write!(f, "{claim}"),
            Why::WithAnyStep => write!(f, "runs whenever another step runs"),
            Why::RecordGone => {
                write!(
                    f,
                    "the record of the last successful sync is gone (pruned by `git gc`?): every step, to be safe"
                )
            }
            Why::FailedLastTime => write!(f, "it failed in the last sync that ran it, or was due and not reached"),
            Why::TiltDisagrees(why) => write!(f, "unchanged since its last good sync, but {why}"),
            Why::UpToDate { build } => {
                write!(f, "unchanged since its last good sync (Tilt still shows build {build}, ok)")
            }
            Why::Unchanged { build } => write!(f, "unchanged since its last good sync (build {build}; Tilt not asked)"),
            Why::TiltShowsFailure(why) => write!(f, "no matching change, but {why}"),
            Why::NoChange => write!(f, "no matching change"),
        }
    }
}

/// The steps of the protocol, in order, each with whether it runs and why.
pub struct Selection {
    pub whys: Vec<Why>,
    /// What changes are counted from, in words, and the changed paths.
    pub base_description: String,
    pub base: String,
    pub changed: Vec<String>,
    /// The workspace's content as the run begins: recorded for each step that passes.
    pub fingerprint: Option<Fingerprint>,
    pub by_flag: bool,
}

/// What the selection needs from outside: git, the records, Tilt's state.
pub struct Inputs<'a> {
    pub sh: &'a Shell,
    pub root: &'a Utf8Path,
    pub all: bool,
    pub named: &'a [String],
    pub base: Option<&'a str>,
    pub pre_push_input: Option<&'a str>,
    pub records: &'a Records,
}

/// `tilt_state`: Tilt's state (one call), asked only when a step would not run; None
/// (`--plan`) leaves Tilt unasked.
pub fn select(
    protocol: &Protocol,
    inputs: &Inputs,
    tilt_state: Option<&dyn Fn() -> Result<TiltState>>,
) -> Result<Selection> {
    let git = Git::new(inputs.sh, inputs.root);
    let flagged = inputs.all || !inputs.named.is_empty();
    let fingerprint = match git.check_repository() {
        Ok(()) => Some(git.fingerprint()?),
        // --all and --step need no git: the steps pass unrecorded.
        Err(_) if flagged => None,
        Err(err) => return Err(err),
    };
    if flagged {
        let whys = by_flag(protocol, inputs.all, inputs.named)?;
        let described = if inputs.all { "--all" } else { "--step" };
        return Ok(Selection {
            whys,
            base_description: described.to_owned(),
            base: String::new(),
            changed: Vec::new(),
            fingerprint,
            by_flag: true,
        });
    }
    let Some(now) = fingerprint else { bail!("{} is not a git repository", inputs.root) };
    let records = inputs.records;
    let gone = records.steps.values().any(|record| !record.failed && !git.has_trees(&record.fingerprint));
    if gone {
        let whys = vec![Why::RecordGone; protocol.steps.len()];
        let described = "the last successful sync (its record is gone)".to_owned();
        return Ok(Selection {
            whys,
            base_description: described,
            base: String::new(),
            changed: Vec::new(),
            fingerprint: Some(now),
            by_flag: false,
        });
    }

    // Changes since the base (or in the pushed commits), for the steps without a record; once
    // the workspace has records, also every change since any of them: a step never synced may
    // depend on a change committed since (no upstream makes the base HEAD).
    let (base, base_description, since_base) = match (inputs.pre_push_input, inputs.base) {
        (Some(input), _) => (String::new(), "the commits being pushed".to_owned(), git.pushed_changes(input)?),
        (None, explicit) => {
            let base = git.base(explicit)?;
            let changed = git.changed_since(&base)?;
            (base.rev, base.described, changed)
        }
    };
    let use_records = inputs.base.is_none();
    let mut since_record: HashMap<&Fingerprint, Vec<String>> = HashMap::new();
    let mut all_changed = since_base.clone();
    if use_records {
        // A failed record runs its step whatever changed, and `git gc` may prune its trees.
        for record in records.steps.values().filter(|record| !record.failed) {
            if !since_record.contains_key(&record.fingerprint) {
                let changed = git.changed_between(&record.fingerprint, &now)?;
                all_changed.extend(changed.iter().cloned());
                since_record.insert(&record.fingerprint, changed);
            }
        }
    }
    let mut since_base_or_any_record = all_changed.clone();
    since_base_or_any_record.sort();
    since_base_or_any_record.dedup();
    let mut whys = Vec::new();
    for step in &protocol.steps {
        let record = records.steps.get(&step.name).filter(|_| use_records);
        if record.is_some_and(|record| record.failed) {
            whys.push(Why::FailedLastTime);
            continue;
        }
        let changed = match record {
            Some(record) => &since_record[&record.fingerprint],
            None => &since_base_or_any_record,
        };
        let index = whys.len();
        let claim = claims(protocol, changed).swap_remove(index);
        whys.push(match (claim, record) {
            (Some(claim), _) => Why::Changed(claim),
            (None, Some(record)) => Why::Unchanged { build: record.build },
            (None, None) => Why::NoChange,
        });
    }
    // Steps that would not run: Tilt must still show the build that passed, or for a step
    // never synced, no failure, and its service's container not stopped (one call).
    let idle = whys.iter().any(|why| matches!(why, Why::Unchanged { .. } | Why::NoChange));
    if let (true, Some(tilt_state)) = (idle, tilt_state) {
        let TiltState { statuses, compose } = tilt_state()?;
        for (why, step) in whys.iter_mut().zip(&protocol.steps) {
            let status = statuses.iter().find(|status| status.name == step.resource);
            let container = compose.iter().find(|service| service.name == step.resource);
            let down = container
                .filter(|service| service.down(step.stays_up()))
                .map(|service| format!("{}'s service is down ({})", step.resource, service.why_down()));
            let checked = match &*why {
                Why::Unchanged { build } => match tilt_disagrees(&records.steps[&step.name], status).or(down) {
                    Some(disagreement) => Why::TiltDisagrees(disagreement),
                    None => Why::UpToDate { build: *build },
                },
                Why::NoChange => match tilt_shows_failure(&step.resource, status).or(down) {
                    Some(failure) => Why::TiltShowsFailure(failure),
                    None => Why::NoChange,
                },
                _ => continue,
            };
            *why = checked;
        }
    }
    with_any_step(protocol, &mut whys);
    all_changed.sort();
    all_changed.dedup();
    let base_description = match records.steps.is_empty() || !use_records {
        true => base_description,
        false => "the last successful sync".to_owned(),
    };
    Ok(Selection { whys, base_description, base, changed: all_changed, fingerprint: Some(now), by_flag: false })
}

/// Why Tilt's state no longer matches the step's last good sync, if it does not.
fn tilt_disagrees(record: &StepRecord, status: Option<&ResourceStatus>) -> Option<String> {
    let resource = &record.resource;
    if let Some(running) = status.and_then(|status| status.current.as_ref()) {
        return Some(format!("Tilt is building {resource} again (build {})", running.number));
    }
    if let Some(failure) = tilt_shows_failure(resource, status) {
        return Some(failure);
    }
    let status = status?;
    let Some(build) = status.finished.first() else {
        return Some(format!("Tilt has no build of {resource} (restarted?)"));
    };
    let finished = build.finish.and_then(|at| at.format(&Rfc3339).ok());
    if build.number != record.build || (record.finished.is_some() && finished != record.finished) {
        return Some(format!(
            "Tilt's latest build of {resource} is build {}, not build {} that passed",
            status.newest_build(),
            record.build
        ));
    }
    None
}

/// What in Tilt's state says the resource is not deployed and well: missing, its latest build
/// failed, or its service down.
fn tilt_shows_failure(resource: &str, status: Option<&ResourceStatus>) -> Option<String> {
    let Some(status) = status else {
        return Some(format!("Tilt has no resource `{resource}` now"));
    };
    if let Some(error) = status.finished.first().and_then(|build| build.error.as_ref()) {
        return Some(format!("Tilt's latest build of {resource} failed: {error}"));
    }
    if status.runtime.status == RuntimeStatus::Error {
        return Some(format!("{resource}'s service is down (Tilt's runtime status: error)"));
    }
    None
}

fn by_flag(protocol: &Protocol, all: bool, named: &[String]) -> Result<Vec<Why>> {
    for name in named {
        if protocol.step(name).is_none() {
            let known: Vec<&str> = protocol.steps.iter().map(|step| step.name.as_str()).collect();
            // Case aside: `--step UI` means `ui`.
            let lower = name.to_lowercase();
            let closest = known
                .iter()
                .map(|step| (strsim::jaro_winkler(&lower, &step.to_lowercase()), *step))
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let hint = match closest {
                Some((likeness, step)) if likeness > 0.8 => format!(": did you mean `{step}`?"),
                _ => String::new(),
            };
            bail!("no step named `{name}` in the protocol{hint} (steps: {})", known.join(", "));
        }
    }
    Ok(protocol
        .steps
        .iter()
        .map(|step| match all || named.contains(&step.name) {
            true if all => Why::All,
            true => Why::Named,
            false => Why::NotNamed,
        })
        .collect())
}

/// Steps with `with_any_step` run whenever another step runs.
fn with_any_step(protocol: &Protocol, whys: &mut [Why]) {
    let any_runs = whys.iter().any(Why::runs);
    for (why, step) in whys.iter_mut().zip(&protocol.steps) {
        if step.with_any_step && any_runs && !why.runs() {
            *why = Why::WithAnyStep;
        }
    }
}

impl Selection {
    pub fn runs(&self, step: usize) -> bool {
        self.whys[step].runs()
    }

    pub fn any_runs(&self) -> bool {
        self.whys.iter().any(Why::runs)
    }

    /// Nothing runs and at least one step was found up to date against Tilt.
    pub fn already_in_sync(&self) -> bool {
        !self.any_runs() && self.whys.iter().any(|why| matches!(why, Why::UpToDate { .. }))
    }

    pub fn plan_text(&self, protocol: &Protocol) -> String {
        let mut out = match self.by_flag {
            true => format!("Plan: steps named by {}\n", self.base_description),
            false => {
                let count = self.changed.len();
                let plural = if count == 1 { "" } else { "s" };
                format!("Plan: {count} changed path{plural} since {}\n", self.base_description)
            }
        };
        let width = protocol.steps.iter().map(|step| step.name.len()).max().unwrap_or(0);
        for (why, step) in self.whys.iter().zip(&protocol.steps) {
            let verb = if why.runs() { "run " } else { "skip" };
            out.push_str(&format!("  {verb}  {:width$}  {why}\n", step.name));
        }
        out
    }

    pub fn plan_json(&self, protocol: &Protocol) -> serde_json::Value {
        let steps: Vec<serde_json::Value> = self
            .whys
            .iter()
            .zip(&protocol.steps)
            .map(|(why, step)| {
                json!({"name": step.name, "resource": step.resource, "run": why.runs(), "reason": why.to_string()})
            })
            .collect();
        json!({"base": self.base, "base_description": self.base_description, "changed": self.changed, "steps": steps})
    }
}
