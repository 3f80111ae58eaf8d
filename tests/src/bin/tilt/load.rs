//! Reading and checking the scenario file (its types are the library's `sync_tests::scenario`),
//! and which calls it makes hang.

use std::collections::HashSet;
use std::path::Path;

use sync_tests::scenario::{BuildSpec, Kind, Resource, Scenario, Update};

/// Reads and checks the scenario file; the error is a sentence for the test writer. A Tilt
/// runs the Tiltfile of the directory it was started in: without `tiltfile`, the current one.
pub fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
    let mut scenario = parse(&text).map_err(|e| format!("bad scenario {}: {e}", path.display()))?;
    if scenario.tiltfile.is_none() {
        let here = std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
        scenario.tiltfile = Some(here.join("Tiltfile").display().to_string());
    }
    Ok(scenario)
}

/// Parses and checks scenario text.
pub fn parse(text: &str) -> Result<Scenario, String> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    let mut names = HashSet::new();
    for resource in &scenario.resources {
        if resource.name.is_empty() || resource.name == "(Tiltfile)" {
            return Err(format!("invalid resource name {:?}", resource.name));
        }
        if !names.insert(resource.name.as_str()) {
            return Err(format!("resource {:?} is defined twice", resource.name));
        }
        check(resource).map_err(|e| format!("resource {:?}: {e}", resource.name))?;
    }
    Ok(scenario)
}

/// The keys that only make sense for one kind of resource, or together.
fn check(resource: &Resource) -> Result<(), String> {
    let builds = || resource.history.iter().chain(&resource.running).chain(&resource.build);
    let any = |has: fn(&BuildSpec) -> bool| builds().any(has);
    match resource.kind {
        Kind::Compose => {
            if resource.cmd.is_some() || resource.serve_cmd.is_some() || !resource.update {
                return Err("`cmd`, `serve_cmd` and `update` are for `kind = \"local\"` resources".to_owned());
            }
        }
        Kind::Local => {
            if any(|b| b.update != Update::Force) {
                return Err("`update` is for compose builds (how Compose deploys them)".to_owned());
            }
            if any(|b| b.health.is_some()) {
                return Err("`health` is for compose resources (a local server has no healthcheck)".to_owned());
            }
            if resource.serve_cmd.is_none() && any(|b| !b.runtime.is_empty() || b.exit_code.is_some()) {
                return Err("`runtime` and `exit_code` need a `serve_cmd` to print and exit".to_owned());
            }
            if !resource.update {
                if resource.cmd.is_some() || resource.serve_cmd.is_none() {
                    return Err("`update = false` (serve-only) takes a `serve_cmd` and no `cmd`".to_owned());
                }
                if any(|b| !b.lines.is_empty() || b.error.is_some()) {
                    return Err(
                        "a serve-only resource's builds have no `lines` or `error` (no update command)".to_owned()
                    );
                }
            }
        }
    }
    Ok(())
}

/// Whether a call with these command words (flags and their values removed) hangs.
pub fn hangs(scenario: &Scenario, words: &[&str]) -> bool {
    scenario.hang.iter().any(|pattern| {
        let pattern: Vec<&str> = pattern.split_whitespace().collect();
        !pattern.is_empty() && words.starts_with(&pattern)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_tests::scenario::DEFAULT_PORT;

    #[test]
    fn defaults_and_unknown_keys() {
        let s = parse("[[resource]]\nname = \"server\"\n").unwrap();
        assert!(s.running && s.json);
        assert_eq!(s.port, DEFAULT_PORT);
        assert_eq!(s.resources[0].triggered_build(3).duration_ms, 100);

        let err = parse("[[resource]]\nname = \"a\"\nbuilds = []\n").unwrap_err();
        assert!(err.contains("unknown field `builds`"), "{err}");
        let err = parse("[[resource]]\nname = \"a\"\n[[resource]]\nname = \"a\"\n").unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn kind_specific_keys_are_checked() {
        let cases = [
            ("[[resource]]\nname = \"a\"\ncmd = \"x\"\n", "for `kind = \"local\"`"),
            ("[[resource]]\nname = \"a\"\nkind = \"local\"\n[[resource.build]]\nhealth = \"healthy\"\n", "`health`"),
            ("[[resource]]\nname = \"a\"\nkind = \"local\"\n[[resource.build]]\nruntime = [\"x\"]\n", "serve_cmd"),
            ("[[resource]]\nname = \"a\"\nkind = \"local\"\nupdate = false\n", "serve-only"),
            (
                "[[resource]]\nname = \"a\"\nkind = \"local\"\nupdate = false\nserve_cmd = \"s\"\n[[resource.build]]\nlines = [\"x\"]\n",
                "no `lines`",
            ),
            ("[[resource]]\nname = \"a\"\nkind = \"docker\"\n", "unknown variant"),
            ("[[resource]]\nname = \"a\"\nkind = \"local\"\n[[resource.build]]\nupdate = \"kept\"\n", "`update`"),
            ("[[resource]]\nname = \"a\"\n[[resource.build]]\nupdate = \"restart\"\n", "unknown variant"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        assert!(parse("[[resource]]\nname = \"a\"\nkind = \"local\"\nupdate = false\nserve_cmd = \"s\"\n").is_ok());
    }

    #[test]
    fn the_named_scenarios_load() {
        use sync_tests::scenarios;
        let bench = |kind| Scenario { call_cost: Some(scenarios::REAL_CALL_COST), ..scenarios::bench(3000, kind) };
        for scenario in [scenarios::demo_happy(), scenarios::demo_failing(), bench(Kind::Compose), bench(Kind::Local)] {
            let text = toml::to_string(&scenario).unwrap();
            assert_eq!(parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}")), scenario);
        }
    }

    #[test]
    fn hang_patterns_match_word_prefixes() {
        let s = parse("hang = [\"logs\", \"get uiresource\"]").unwrap();
        assert!(hangs(&s, &["logs", "server"]));
        assert!(hangs(&s, &["get", "uiresource", "server"]));
        assert!(!hangs(&s, &["get", "uiresources"]));
        assert!(!hangs(&s, &["trigger", "logs"]));
    }
}
