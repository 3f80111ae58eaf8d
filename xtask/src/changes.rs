//! Which steps this run needs, and why: `--all`, `--step`, or the changes git reports (since
//! the last successful sync, the base, or in the commits being pushed) run through the plan.

use anyhow::Result;
use camino::Utf8Path;
use serde_json::json;
use xshell::Shell;

use crate::{
    config::{Protocol, Step},
    flags,
    git::{Fingerprint, Git},
    plan::{every_step, plan, StepDecision},
    report::LogDir,
};

pub struct Selection<'p> {
    pub steps: Vec<&'p Step>,
    pub decisions: Vec<StepDecision>,
    /// What the changes are counted from (a commit or tree), and in words.
    pub base: String,
    pub base_description: String,
    pub changed: Vec<String>,
    /// The workspace's content now: recorded as the last good sync if this run succeeds and
    /// planned against the whole workspace.
    pub fingerprint: Option<Fingerprint>,
    /// Nothing changed since the last successful sync.
    pub already_in_sync: bool,
    /// The steps come from `--all` or `--step`, not from changes.
    pub by_flag: bool,
}

/// `pre_push_input`: what git gave the pre-push hook on standard input, when run as the hook.
pub fn select<'p>(
    flags: &flags::Sync,
    pre_push_input: Option<&str>,
    protocol: &'p Protocol,
    sh: &Shell,
    root: &Utf8Path,
    logs: Option<&LogDir>,
) -> Result<Selection<'p>> {
    let git = Git::new(sh, root);
    if flags.all || !flags.step.is_empty() {
        let steps = crate::config::select_steps(protocol, &flags.step)?;
        let why = if flags.all { "--all" } else { "--step" };
        let decisions = protocol
            .steps
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let run = steps.iter().any(|chosen| std::ptr::eq(*chosen, step));
                StepDecision {
                    step: index,
                    run,
                    reason: if run { why.to_owned() } else { format!("not named by {why}") },
                }
            })
            .collect();
        // Only a run of every step deploys the whole workspace.
        let fingerprint = if flags.all && git.check_repository().is_ok() { Some(git.fingerprint()?) } else { None };
        return Ok(Selection {
            steps,
            decisions,
            base: String::new(),
            base_description: why.to_owned(),
            changed: Vec::new(),
            fingerprint,
            already_in_sync: false,
            by_flag: true,
        });
    }

    git.check_repository()?;
    let now = git.fingerprint()?;
    let last = logs.and_then(LogDir::read_fingerprint);
    let since_last_sync = last.as_ref().filter(|_| flags.base.is_none());
    if since_last_sync == Some(&now) {
        return Ok(Selection {
            steps: Vec::new(),
            decisions: plan(protocol, &[]),
            base: now.trees.get("").cloned().unwrap_or_default(),
            base_description: "the last successful sync".to_owned(),
            changed: Vec::new(),
            fingerprint: Some(now),
            already_in_sync: true,
            by_flag: false,
        });
    }
    let (base, base_description, changed) = if let Some(input) = pre_push_input {
        (String::new(), "the commits being pushed".to_owned(), git.pushed_changes(input)?)
    } else if let Some(last) = since_last_sync {
        let since = last.trees.get("").cloned().unwrap_or_default();
        match git.changed_between(last, &now) {
            Ok(changed) => (since, "the last successful sync".to_owned(), changed),
            // Its trees are loose objects, which `git gc` may prune: what was deployed is no
            // longer known, so every step runs.
            Err(_) => {
                let decisions = every_step(
                    protocol,
                    "the record of the last successful sync is gone (pruned by `git gc`?): every step, to be safe",
                );
                let steps = protocol.steps.iter().collect();
                let description = "the last successful sync (its record is gone)".to_owned();
                return Ok(Selection {
                    steps,
                    decisions,
                    base: since,
                    base_description: description,
                    changed: Vec::new(),
                    fingerprint: Some(now),
                    already_in_sync: false,
                    by_flag: false,
                });
            }
        }
    } else {
        let base = git.base(flags.base.as_deref())?;
        let changed = git.changed_since(&base)?;
        (base.rev, base.described, changed)
    };
    let decisions = plan(protocol, &changed);
    let steps =
        decisions.iter().filter(|decision| decision.run).map(|decision| &protocol.steps[decision.step]).collect();
    Ok(Selection {
        steps,
        decisions,
        base,
        base_description,
        changed,
        // A plan of part of the changes (a push, or since an older base) deploys only that part:
        // the workspace as a whole is not known to be in sync.
        fingerprint: (pre_push_input.is_none() && flags.base.is_none()).then_some(now),
        already_in_sync: false,
        by_flag: false,
    })
}

impl Selection<'_> {
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
        for decision in &self.decisions {
            let verb = if decision.run { "run " } else { "skip" };
            out.push_str(&format!("  {verb}  {:width$}  {}\n", protocol.steps[decision.step].name, decision.reason));
        }
        out
    }

    pub fn plan_json(&self, protocol: &Protocol) -> serde_json::Value {
        let steps: Vec<serde_json::Value> = self
            .decisions
            .iter()
            .map(|decision| {
                let step = &protocol.steps[decision.step];
                json!({"name": step.name, "resource": step.resource, "run": decision.run, "reason": decision.reason})
            })
            .collect();
        json!({"base": self.base, "base_description": self.base_description, "changed": self.changed, "steps": steps})
    }
}
