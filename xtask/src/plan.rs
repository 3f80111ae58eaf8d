//! Changed paths -> the steps to run, each with its reason. Pure: git is read elsewhere.

use crate::config::Protocol;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepDecision {
    /// Index into `Protocol::steps`.
    pub step: usize,
    pub run: bool,
    pub reason: String,
}

/// Decides every step of the protocol, in order. Each path is claimed by the first rule that
/// matches it; a path that no rule claims runs every step, since an unknown change must never
/// be skipped silently.
pub fn plan(protocol: &Protocol, changed: &[String]) -> Vec<StepDecision> {
    let mut reasons: Vec<Option<String>> = vec![None; protocol.steps.len()];
    let mut unclaimed: Option<&str> = None;
    for path in changed {
        let claim = protocol.rules.iter().find_map(|rule| Some((rule, rule.matcher.matches(path).into_iter().next()?)));
        match claim {
            Some((rule, glob)) => {
                for &step in &rule.steps {
                    reasons[step]
                        .get_or_insert_with(|| format!("`{path}` matches `{}` ({})", rule.globs[glob], rule.reason));
                }
            }
            None => {
                unclaimed.get_or_insert(path);
            }
        }
    }
    if let Some(path) = unclaimed {
        return every_step(protocol, &format!("no rule claims `{path}`: every step, to be safe"));
    }
    let any_runs = reasons.iter().any(Option::is_some);
    protocol
        .steps
        .iter()
        .zip(reasons)
        .enumerate()
        .map(|(step, (definition, reason))| match reason {
            Some(reason) => StepDecision { step, run: true, reason },
            None if definition.with_any_step && any_runs => {
                StepDecision { step, run: true, reason: "runs whenever another step runs".to_owned() }
            }
            None => StepDecision { step, run: false, reason: "no matching change".to_owned() },
        })
        .collect()
}

/// Every step runs, for `reason`.
pub fn every_step(protocol: &Protocol, reason: &str) -> Vec<StepDecision> {
    (0..protocol.steps.len()).map(|step| StepDecision { step, run: true, reason: reason.to_owned() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps_run(changed: &[&str]) -> Vec<&'static str> {
        let protocol = Protocol::load(None).unwrap();
        let changed: Vec<String> = changed.iter().map(|path| (*path).to_owned()).collect();
        let names = ["sync-wasm-client", "server", "internal-service", "ui"];
        plan(&protocol, &changed).iter().filter(|decision| decision.run).map(|decision| names[decision.step]).collect()
    }

    #[test]
    fn each_change_runs_the_steps_its_rule_names() {
        let all = vec!["sync-wasm-client", "server", "internal-service", "ui"];
        let cases: Vec<(&[&str], Vec<&str>)> = vec![
            (&["citadel-workspace-types/src/lib.rs"], all.clone()),
            (&["citadel-workspace-server-kernel/src/kernel.rs"], vec!["server", "ui"]),
            (&["citadel-internal-service/src/lib.rs"], vec!["internal-service", "ui"]),
            (&["citadel-workspace-internal-service/src/main.rs"], vec!["internal-service", "ui"]),
            (&["citadel-internal-service"], vec!["sync-wasm-client", "internal-service", "ui"]),
            (
                &["citadel-internal-service/typescript-client/src/index.ts"],
                vec!["sync-wasm-client", "internal-service", "ui"],
            ),
            (
                &["citadel-internal-service/citadel-internal-service-types/src/lib.rs"],
                vec!["sync-wasm-client", "internal-service", "ui"],
            ),
            (&["citadel-workspace-client-ts/src/index.ts"], vec!["sync-wasm-client", "ui"]),
            (&["Cargo.lock"], vec!["server", "internal-service", "ui"]),
            (&["citadel-workspaces/src/App.tsx"], vec![]),
            (&["README.md", "docs/guide/setup.txt", "citadel-workspace-server-kernel/README.md"], vec![]),
            (&[], vec![]),
            (&["Tiltfile"], all.clone()),
            (&["citadel-workspaces/src/App.tsx", "x/y.rs"], all.clone()),
        ];
        for (changed, expected) in cases {
            assert_eq!(steps_run(changed), expected, "{changed:?}");
        }
    }

    #[test]
    fn reasons_name_the_rule_and_the_first_matching_path() {
        let protocol = Protocol::load(None).unwrap();
        let changed = [
            "citadel-workspace-server-kernel/src/a.rs".to_owned(),
            "citadel-workspace-server-kernel/src/b.rs".to_owned(),
        ];
        let decisions = plan(&protocol, &changed);
        assert_eq!(decisions[0].reason, "no matching change");
        assert_eq!(
            decisions[1].reason,
            "`citadel-workspace-server-kernel/src/a.rs` matches `citadel-workspace-server-kernel/**` (the server kernel)"
        );
        assert_eq!(decisions[3].reason, "runs whenever another step runs");
        let unknown = plan(&protocol, &["x/y.rs".to_owned()]);
        assert!(unknown
            .iter()
            .all(|decision| decision.run && decision.reason == "no rule claims `x/y.rs`: every step, to be safe"));
    }
}
