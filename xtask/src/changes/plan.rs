//! Changed paths -> which steps they claim, and why. Pure: git is read elsewhere, and
//! `select.rs` weighs the claims against each step's last good sync and Tilt's state.

use crate::protocol::Protocol;

/// Why a changed path needs a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A path one of the step's `[[path]]` rules matches.
    Rule { path: String, glob: String, reason: String },
    /// A path no rule claims: every step runs, since an unknown change must never be skipped.
    Unclaimed { path: String },
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Claim::Rule { path, glob, reason } => write!(f, "`{path}` matches `{glob}` ({reason})"),
            Claim::Unclaimed { path } => write!(f, "no rule claims `{path}`: every step, to be safe"),
        }
    }
}

/// For each step of the protocol, in order, the first changed path that needs it. Each path is
/// claimed by the first rule that matches it; a path no rule claims needs every step.
pub fn claims(protocol: &Protocol, changed: &[String]) -> Vec<Option<Claim>> {
    let mut claims: Vec<Option<Claim>> = vec![None; protocol.steps.len()];
    for path in changed {
        let matched =
            protocol.rules.iter().find_map(|rule| Some((rule, rule.matcher.matches(path).into_iter().next()?)));
        match matched {
            Some((rule, glob)) => {
                for &step in &rule.steps {
                    claims[step].get_or_insert_with(|| Claim::Rule {
                        path: path.clone(),
                        glob: rule.globs[glob].clone(),
                        reason: rule.reason.clone(),
                    });
                }
            }
            None => return vec![Some(Claim::Unclaimed { path: path.clone() }); protocol.steps.len()],
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps_claimed(changed: &[&str]) -> Vec<&'static str> {
        let protocol = Protocol::load(None).unwrap();
        let changed: Vec<String> = changed.iter().map(|path| (*path).to_owned()).collect();
        let names = ["sync-wasm-client", "server", "internal-service", "ui"];
        claims(&protocol, &changed)
            .iter()
            .zip(names)
            .filter(|(claim, _)| claim.is_some())
            .map(|(_, name)| name)
            .collect()
    }

    #[test]
    fn each_change_claims_the_steps_its_rule_names() {
        let all = vec!["sync-wasm-client", "server", "internal-service", "ui"];
        let services = vec!["sync-wasm-client", "server", "internal-service"];
        let cases: Vec<(&[&str], Vec<&str>)> = vec![
            (&["citadel-workspace-types/src/lib.rs"], services.clone()),
            (&["citadel-workspace-server-kernel/src/kernel.rs"], vec!["server"]),
            (&["citadel-internal-service/src/lib.rs"], vec!["internal-service"]),
            (&["citadel-workspace-internal-service/src/main.rs"], vec!["internal-service"]),
            (&["citadel-internal-service"], vec!["sync-wasm-client", "internal-service"]),
            (
                &["citadel-internal-service/typescript-client/src/index.ts"],
                vec!["sync-wasm-client", "internal-service"],
            ),
            (
                &["citadel-internal-service/citadel-internal-service-types/src/lib.rs"],
                vec!["sync-wasm-client", "internal-service"],
            ),
            (&["citadel-workspace-client-ts/src/index.ts"], vec!["sync-wasm-client"]),
            (&["Cargo.lock"], vec!["server", "internal-service"]),
            (&["citadel-workspaces/src/App.tsx"], vec![]),
            (&["README.md", "docs/guide/setup.txt", "citadel-workspace-server-kernel/README.md"], vec![]),
            (&["xtask/src/main.rs", "xtask/Cargo.lock", ".cargo/config.toml"], vec![]),
            (&[], vec![]),
            (&["Tiltfile"], all.clone()),
            (&["citadel-workspaces/src/App.tsx", "x/y.rs"], all.clone()),
        ];
        for (changed, expected) in cases {
            assert_eq!(steps_claimed(changed), expected, "{changed:?}");
        }
    }

    #[test]
    fn a_claim_names_the_rule_and_the_first_matching_path() {
        let protocol = Protocol::load(None).unwrap();
        let changed = [
            "citadel-workspace-server-kernel/src/a.rs".to_owned(),
            "citadel-workspace-server-kernel/src/b.rs".to_owned(),
        ];
        let claims = claims(&protocol, &changed);
        assert_eq!(claims[0], None);
        assert_eq!(
            claims[1].as_ref().unwrap().to_string(),
            "`citadel-workspace-server-kernel/src/a.rs` matches `citadel-workspace-server-kernel/**` (the server kernel)"
        );
        let unknown = super::claims(&protocol, &["x/y.rs".to_owned()]);
        assert!(unknown
            .iter()
            .all(|claim| claim.as_ref().unwrap().to_string() == "no rule claims `x/y.rs`: every step, to be safe"));
    }
}
