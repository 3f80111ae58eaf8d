//! Which steps a run needs, and why: the one place that decides, from values alone (git and the
//! build's files are read by `gather.rs`, Tilt by the caller). `--all` and `--step` name them;
//! otherwise each step runs when a change it depends on happened since its last good sync (else
//! since the base, or in the commits being pushed), or when Tilt no longer shows the build that
//! passed then — failed since, rebuilt, or its service down.

use std::{collections::HashMap, fmt};

use serde_json::json;
use time::format_description::well_known::Rfc3339;

use crate::{
    changes::{
        gather::{Changes, Diffed, Found},
        git::Fingerprint,
        graph::Inputs,
        plan::{claims, Claim},
    },
    protocol::Protocol,
    store::{Records, StepRecord},
    tilt::model::{self, ResourceStatus},
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
    /// The Tiltfile defines no such resource: nothing builds it.
    Undefined(String),
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
            Why::Undefined(why) => write!(f, "{why}: nothing builds it"),
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
    /// What the plan must say besides each step's reason (submodules not as their pointer says).
    pub notes: Vec<String>,
    /// For a push: paths where the work tree, which Tilt builds, differs from the commits
    /// pushed, and the steps each needs.
    pub unpushed: Vec<(String, Vec<String>)>,
}

/// `--step NAME` names no step of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStep {
    pub name: String,
    pub suggestion: Option<String>,
    pub known: Vec<String>,
}

impl fmt::Display for UnknownStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no step named `{}` in the protocol", self.name)?;
        if let Some(step) = &self.suggestion {
            write!(f, ": did you mean `{step}`?")?;
        }
        write!(f, " (steps: {})", self.known.join(", "))
    }
}

impl std::error::Error for UnknownStep {}

/// Decides each step. `tilt`: Tilt's state, given when the caller asked it (a step would not run
/// otherwise: `Selection::wants_tilt`); None (`--plan`) leaves Tilt out.
pub fn select(
    protocol: &Protocol,
    changes: &Changes,
    records: &Records,
    tilt: Option<&TiltState>,
) -> Result<Selection, UnknownStep> {
    let fingerprint = changes.fingerprint.clone();
    let diffed = match &changes.found {
        Found::ByFlag { all, named } => {
            let whys = by_flag(protocol, *all, named)?;
            let described = if *all { "--all" } else { "--step" };
            return Ok(Selection {
                whys,
                base_description: described.to_owned(),
                base: String::new(),
                changed: Vec::new(),
                fingerprint,
                by_flag: true,
                notes: Vec::new(),
                unpushed: Vec::new(),
            });
        }
        Found::RecordGone => {
            return Ok(Selection {
                whys: vec![Why::RecordGone; protocol.steps.len()],
                base_description: "the last successful sync (its record is gone)".to_owned(),
                base: String::new(),
                changed: Vec::new(),
                fingerprint,
                by_flag: false,
                notes: Vec::new(),
                unpushed: Vec::new(),
            });
        }
        Found::Diffed(diffed) => diffed,
    };
    let Diffed { base, base_description, since_base, since_record, submodules, graph, unpushed } = diffed;
    let unpushed = unpushed
        .iter()
        .filter_map(|path| {
            let claims = claims(protocol, graph, std::slice::from_ref(path));
            let steps: Vec<String> = claims
                .iter()
                .zip(&protocol.steps)
                .filter(|(claim, _)| claim.is_some())
                .map(|(_, step)| step.name.clone())
                .collect();
            (!steps.is_empty()).then(|| (path.clone(), steps))
        })
        .collect();

    // Changes since the base (or in the pushed commits), for the steps without a record; once
    // the workspace has records, also every change since any of them: a step never synced may
    // depend on a change committed since (no upstream makes the base HEAD).
    let mut all_changed = since_base.clone();
    let empty = HashMap::new();
    let since_record = since_record.as_ref().unwrap_or(&empty);
    all_changed.extend(since_record.values().flatten().cloned());
    all_changed.sort();
    all_changed.dedup();
    let use_records = diffed.since_record.is_some();
    let mut whys = Vec::new();
    for (index, step) in protocol.steps.iter().enumerate() {
        let record = records.steps.get(&step.name).filter(|_| use_records);
        if record.is_some_and(|record| record.failed) {
            whys.push(Why::FailedLastTime);
            continue;
        }
        let changed = match record.and_then(|record| since_record.get(&record.fingerprint)) {
            Some(changed) => changed,
            None => &all_changed,
        };
        let claim = claims(protocol, graph, changed).swap_remove(index);
        whys.push(match (claim, record, &graph.steps[index]) {
            (Some(claim), _, _) => Why::Changed(claim),
            (None, Some(record), _) => Why::Unchanged { build: record.build },
            (None, None, Inputs::Undefined(why)) => Why::Undefined(why.clone()),
            (None, None, _) => Why::NoChange,
        });
    }
    // Steps that would not run: Tilt must still show the build that passed, or for a step
    // never synced, no failure, and its service's container not stopped.
    if let Some(TiltState { statuses, compose }) = tilt {
        for (why, step) in whys.iter_mut().zip(&protocol.steps) {
            let status = statuses.iter().find(|status| status.name == step.resource);
            let container = compose.iter().find(|service| service.name == step.resource);
            let trouble = || model::trouble(&step.resource, status, container, step.stays_up());
            let checked = match &*why {
                Why::Unchanged { build } => {
                    match trouble().or_else(|| tilt_disagrees(&records.steps[&step.name], status)) {
                        Some(disagreement) => Why::TiltDisagrees(disagreement),
                        None => Why::UpToDate { build: *build },
                    }
                }
                Why::NoChange => match trouble() {
                    Some(failure) => Why::TiltShowsFailure(failure),
                    None => Why::NoChange,
                },
                _ => continue,
            };
            *why = checked;
        }
    }
    with_any_step(protocol, &mut whys);
    let base_description = match records.steps.is_empty() || !use_records {
        true => base_description.clone(),
        false => "the last successful sync".to_owned(),
    };
    Ok(Selection {
        whys,
        base_description,
        base: base.clone(),
        changed: all_changed,
        fingerprint,
        by_flag: false,
        notes: submodules.iter().map(ToString::to_string).collect(),
        unpushed,
    })
}

/// Why Tilt's state no longer matches the step's last good sync, if it does not.
fn tilt_disagrees(record: &StepRecord, status: Option<&ResourceStatus>) -> Option<String> {
    let resource = &record.resource;
    if let Some(running) = status.and_then(|status| status.current.as_ref()) {
        return Some(format!("Tilt is building {resource} again (build {})", running.number));
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

fn by_flag(protocol: &Protocol, all: bool, named: &[String]) -> Result<Vec<Why>, UnknownStep> {
    for name in named {
        if protocol.step(name).is_none() {
            let known: Vec<String> = protocol.steps.iter().map(|step| step.name.clone()).collect();
            return Err(UnknownStep { name: name.clone(), suggestion: suggestion(name, &known), known });
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

/// The step a misspelt name most likely meant; case does not count (`UI` is `ui`).
fn suggestion(name: &str, known: &[String]) -> Option<String> {
    let name = name.to_lowercase();
    known
        .iter()
        .map(|step| (strsim::jaro_winkler(&name, &step.to_lowercase()), step))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .filter(|(likeness, _)| *likeness > 0.8)
        .map(|(_, step)| step.clone())
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

    /// Whether Tilt's word could change the selection: a step would not run, and its record (or
    /// Tilt's failure) decides whether it must.
    pub fn wants_tilt(&self) -> bool {
        self.whys.iter().any(|why| matches!(why, Why::Unchanged { .. } | Why::NoChange))
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
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }

    pub fn plan_json(&self, protocol: &Protocol) -> serde_json::Value {
        let steps: Vec<serde_json::Value> = self
            .whys
            .iter()
            .zip(&protocol.steps)
            .map(|(why, step)| {
                let chain = match why {
                    Why::Changed(claim) => Some(claim.chain()),
                    _ => None,
                };
                json!({
                    "name": step.name,
                    "resource": step.resource,
                    "run": why.runs(),
                    "reason": why.to_string(),
                    "chain": chain,
                })
            })
            .collect();
        json!({
            "base": self.base,
            "base_description": self.base_description,
            "changed": self.changed,
            "steps": steps,
            "notes": self.notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        changes::graph::{Graph, Source, StepGraph},
        tilt::model::{FinishedBuild, ResourceKind},
    };

    fn fingerprint(tree: &str) -> Fingerprint {
        Fingerprint { trees: BTreeMap::from([(String::new(), tree.to_owned())]) }
    }

    /// Each step reads the one file named after it; the UI runs with any step.
    fn changes(since_base: &[&str], since_record: &[(&str, &[&str])]) -> Changes {
        let reads = |path: &str| {
            let source = Source::File { path: path.to_owned(), why: format!("{path} is read") };
            Inputs::Derived(StepGraph { sources: vec![source], builds: Vec::new() })
        };
        let graph = Graph { steps: vec![reads("sync.sh"), reads("kernel.rs"), reads("service.rs"), reads("ui.json")] };
        let owned = |paths: &[&str]| paths.iter().map(|path| (*path).to_owned()).collect::<Vec<_>>();
        let diffed = Diffed {
            base: "abc".to_owned(),
            base_description: "HEAD (no upstream)".to_owned(),
            since_base: owned(since_base),
            since_record: Some(since_record.iter().map(|(tree, paths)| (fingerprint(tree), owned(paths))).collect()),
            submodules: Vec::new(),
            graph,
            unpushed: Vec::new(),
        };
        Changes { fingerprint: Some(fingerprint("now")), found: Found::Diffed(diffed) }
    }

    fn record(tree: &str, failed: bool) -> StepRecord {
        StepRecord { resource: "server".to_owned(), failed, build: 7, finished: None, fingerprint: fingerprint(tree) }
    }

    fn whys(selection: &Selection) -> Vec<String> {
        selection.whys.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn each_step_runs_for_its_own_changes_since_its_record() {
        let protocol = Protocol::load(None).unwrap();
        let records = Records { steps: BTreeMap::from([("server".to_owned(), record("then", false))]) };
        // The kernel changed before the server's last good sync: only the sync script since.
        let changes = changes(&["kernel.rs", "sync.sh"], &[("then", &["sync.sh"])]);
        let selection = select(&protocol, &changes, &records, None).unwrap();
        assert_eq!(
            whys(&selection),
            [
                "`sync.sh` → sync.sh is read",
                "unchanged since its last good sync (build 7; Tilt not asked)",
                "no matching change",
                "runs whenever another step runs",
            ]
        );
        assert!(selection.wants_tilt(), "idle steps: Tilt's word could change them");
        assert_eq!(selection.base_description, "the last successful sync");

        let failed = Records { steps: BTreeMap::from([("server".to_owned(), record("then", true))]) };
        let selection = select(&protocol, &changes, &failed, None).unwrap();
        assert_eq!(whys(&selection)[1], "it failed in the last sync that ran it, or was due and not reached");
    }

    #[test]
    fn tilts_state_is_weighed_only_when_given() {
        let protocol = Protocol::load(None).unwrap();
        let records = Records { steps: BTreeMap::from([("server".to_owned(), record("then", false))]) };
        let changes = changes(&[], &[("then", &[])]);
        let status = |name: &str, error: Option<&str>| ResourceStatus {
            name: name.to_owned(),
            kind: ResourceKind::Compose,
            current: None,
            finished: vec![FinishedBuild { number: 7, start: None, finish: None, error: error.map(str::to_owned) }],
            ..ResourceStatus::default()
        };
        let state = TiltState {
            statuses: vec![status("server", None), status("internal-service", Some("exit 1"))],
            compose: Vec::new(),
        };
        let selection = select(&protocol, &changes, &records, Some(&state)).unwrap();
        assert_eq!(
            whys(&selection)[..3],
            [
                "no matching change, but Tilt has no resource `sync-wasm-client` now",
                "unchanged since its last good sync (Tilt still shows build 7, ok)",
                "no matching change, but Tilt's latest build of internal-service failed: exit 1",
            ]
        );
        assert!(!select(&protocol, &changes, &records, None).unwrap().any_runs());
    }

    #[test]
    fn a_misspelt_step_is_suggested_whatever_its_case() {
        let protocol = Protocol::load(None).unwrap();
        let named = |name: &str| Changes {
            fingerprint: None,
            found: Found::ByFlag { all: false, named: vec![name.to_owned()] },
        };
        let error = |name: &str| select(&protocol, &named(name), &Records::default(), None).err().unwrap().to_string();
        assert_eq!(
            error("UI"),
            "no step named `UI` in the protocol: did you mean `ui`? (steps: sync-wasm-client, server, internal-service, ui)"
        );
        assert!(error("Srever").contains("did you mean `server`?"));
        assert!(!error("frobnicate").contains("did you mean"));
        let selection = select(&protocol, &named("server"), &Records::default(), None).unwrap();
        assert_eq!(whys(&selection), ["not named by --step", "--step", "not named by --step", "not named by --step"]);
    }
}
