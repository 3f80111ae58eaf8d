//! Changed paths -> which steps they claim, and why. Pure: git and the build's files are read
//! elsewhere, and `select.rs` weighs the claims against each step's last good sync and Tilt's
//! state. A step is claimed by a changed path its build reads (the graph), or by a `[[path]]`
//! rule that names it; a rule with `steps = []` only says that a path read at run time (a bind
//! mount, a local resource's deps) needs no rebuild, never that a file built into an image does.

use std::fmt;

use crate::{
    changes::graph::{Graph, Inputs},
    protocol::Protocol,
};

/// Why a changed path needs a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// A path the step's build reads: the chain from the path to the build.
    Input(Vec<String>),
    /// A path one of the step's `[[path]]` rules matches.
    Rule { path: String, glob: String, reason: String },
    /// The step's build could not be read: any change runs it.
    Underived { path: String, why: String },
}

impl Claim {
    /// The path, then each link to the build, as `--plan --json` gives it.
    pub fn chain(&self) -> Vec<String> {
        match self {
            Claim::Input(chain) => chain.clone(),
            Claim::Rule { path, glob, reason } => vec![path.clone(), format!("the rule `{glob}` ({reason})")],
            Claim::Underived { path, why } => {
                vec![path.clone(), format!("{why}: any change runs the step, to be safe")]
            }
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::Input(chain) => {
                let (path, links) = chain.split_first().map_or(("", &[][..]), |(path, links)| (path.as_str(), links));
                write!(f, "`{path}`")?;
                links.iter().try_for_each(|link| write!(f, " → {link}"))
            }
            Claim::Rule { path, glob, reason } => write!(f, "`{path}` matches `{glob}` ({reason})"),
            Claim::Underived { path, why } => write!(f, "`{path}` changed, and {why}: it runs, to be safe"),
        }
    }
}

/// For each step of the protocol, in order, the first changed path that needs it, and why.
pub fn claims(protocol: &Protocol, graph: &Graph, changed: &[String]) -> Vec<Option<Claim>> {
    let mut claims: Vec<Option<Claim>> = vec![None; protocol.steps.len()];
    for path in changed {
        let no_rebuild = protocol.rules.iter().any(|rule| rule.steps.is_empty() && rule.matcher.is_match(path));
        for (step, claim) in claims.iter_mut().enumerate().filter(|(_, claim)| claim.is_none()) {
            *claim = match graph.steps.get(step) {
                Some(Inputs::Derived(inputs)) => {
                    inputs.chain(path, no_rebuild).map(Claim::Input).or_else(|| rule_claim(protocol, step, path))
                }
                Some(Inputs::Unknown(why)) => Some(Claim::Underived { path: path.clone(), why: why.clone() }),
                // Nothing builds it: no rule can need it.
                Some(Inputs::Undefined(_)) | None => None,
            };
        }
    }
    claims
}

/// The first `[[path]]` rule naming `step` that matches `path`.
fn rule_claim(protocol: &Protocol, step: usize, path: &str) -> Option<Claim> {
    protocol.rules.iter().filter(|rule| rule.steps.contains(&step)).find_map(|rule| {
        let glob = rule.matcher.matches(path).into_iter().next()?;
        Some(Claim::Rule { path: path.to_owned(), glob: rule.globs[glob].clone(), reason: rule.reason.clone() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::graph::{Mapping, Source, StepGraph};

    /// A graph: the first step's build unreadable, the server reading `kernel/main.rs` and a
    /// mounted `ui/`, the internal service nothing, the UI undefined.
    fn graph() -> Graph {
        let file = |path: &str| Source::File { path: path.to_owned(), why: format!("reads {path}") };
        let mounted = Mapping::new("citadel-workspaces".to_owned(), "/app".to_owned(), "mounted".to_owned());
        let ui = Mapping { runtime: true, ..mounted };
        Graph {
            steps: vec![
                Inputs::Unknown("`docker/sync/Dockerfile` cannot be read".to_owned()),
                Inputs::Derived(StepGraph {
                    sources: vec![file("kernel/main.rs"), Source::Mapped(ui)],
                    builds: Vec::new(),
                }),
                Inputs::Derived(StepGraph::default()),
                Inputs::Undefined("no such resource".to_owned()),
            ],
        }
    }

    fn steps_claimed(changed: &[&str]) -> Vec<&'static str> {
        let protocol = Protocol::load(None).unwrap();
        let changed: Vec<String> = changed.iter().map(|path| (*path).to_owned()).collect();
        let names = ["sync-wasm-client", "server", "internal-service", "ui"];
        claims(&protocol, &graph(), &changed)
            .iter()
            .zip(names)
            .filter(|(claim, _)| claim.is_some())
            .map(|(_, name)| name)
            .collect()
    }

    #[test]
    fn each_change_claims_the_steps_its_build_or_a_rule_names() {
        let cases: Vec<(&[&str], Vec<&str>)> = vec![
            (&["kernel/main.rs"], vec!["sync-wasm-client", "server"]),
            (&["kernel"], vec!["sync-wasm-client", "server"]),
            (&["kernel/other.rs"], vec!["sync-wasm-client"]),
            // The spec's "types are shared": a rule adds every service (the UI is not defined).
            (&["citadel-workspace-types/src/lib.rs"], vec!["sync-wasm-client", "server", "internal-service"]),
            (&["citadel-workspaces"], vec!["sync-wasm-client"]),
            // A mount of the UI's sources needs no rebuild (`citadel-workspaces/**` rule).
            (&["citadel-workspaces/src/App.tsx"], vec!["sync-wasm-client"]),
            (&[], vec![]),
        ];
        for (changed, expected) in cases {
            assert_eq!(steps_claimed(changed), expected, "{changed:?}");
        }
    }

    #[test]
    fn a_claim_says_why() {
        let protocol = Protocol::load(None).unwrap();
        let changed = ["kernel/main.rs".to_owned(), "citadel-workspace-types/src/lib.rs".to_owned()];
        let claims = claims(&protocol, &graph(), &changed);
        let texts: Vec<Option<String>> = claims.iter().map(|claim| claim.as_ref().map(ToString::to_string)).collect();
        assert_eq!(
            texts,
            [
                Some(
                    "`kernel/main.rs` changed, and `docker/sync/Dockerfile` cannot be read: it runs, to be safe"
                        .to_owned()
                ),
                Some("`kernel/main.rs` → reads kernel/main.rs".to_owned()),
                Some(
                    "`citadel-workspace-types/src/lib.rs` matches `citadel-workspace-types/**` (shared types: every \
                     service is built from them)"
                        .to_owned()
                ),
                None,
            ]
        );
        assert_eq!(claims[1].as_ref().unwrap().chain(), ["kernel/main.rs", "reads kernel/main.rs"]);
    }
}
