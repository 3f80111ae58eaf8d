//! The scenario file: what the pretend Tilt runs (see the crate documentation for the format).

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

/// The default `tilt version` output.
const DEFAULT_VERSION: &str = "v0.37.6-dev, built 2026-11-24";
/// The port a real `tilt up` serves by default.
pub const DEFAULT_PORT: u16 = 10350;
/// The length of a build whose `duration_ms` is not given.
const DEFAULT_DURATION_MS: u64 = 100;

/// A whole scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// `false`: no Tilt is running; every call but `version` fails to connect.
    #[serde(default = "yes")]
    pub running: bool,
    /// The port this Tilt serves.
    #[serde(default = "default_port")]
    pub port: u16,
    /// `false`: a Tilt older than 0.36.1, whose `logs` knows no `--json`, `--since`, `--tail`.
    #[serde(default = "yes")]
    pub json: bool,
    /// What `tilt version` prints.
    #[serde(default = "default_version")]
    pub version: String,
    /// The Tiltfile path this Tilt runs; `None`: `<cwd>/Tiltfile`.
    pub tiltfile: Option<String>,
    /// Tilt stops this long after the first successful `tilt trigger`.
    pub stop_after_ms: Option<u64>,
    /// `logs -f` delivers each line this long after Tilt wrote it (a slow stream).
    #[serde(default)]
    pub stream_delay_ms: u64,
    /// Calls whose command words start with one of these hang silently.
    #[serde(default)]
    pub hang: Vec<String>,
    /// The resources, in Tiltfile order.
    #[serde(default, rename = "resource")]
    pub resources: Vec<Resource>,
}

/// One Tilt resource.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    pub name: String,
    /// Builds that finished before the scenario started, oldest first.
    #[serde(default)]
    pub history: Vec<BuildSpec>,
    /// A build already running when the scenario starts.
    pub running: Option<BuildSpec>,
    /// The builds `tilt trigger` starts, in order; the last one repeats.
    #[serde(default)]
    pub build: Vec<BuildSpec>,
}

/// What one build prints and how long it takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// From the build's start to its finish.
    #[serde(default = "default_duration")]
    pub duration_ms: u64,
    /// Build output, spread evenly over the build (the last line at its finish).
    #[serde(default)]
    pub lines: Vec<String>,
    /// `Some`: the build fails with this error.
    pub error: Option<String>,
    /// Container output after a successful build, spread evenly over `runtime_ms`.
    #[serde(default)]
    pub runtime: Vec<String>,
    #[serde(default)]
    pub runtime_ms: u64,
    /// `Some`: the container exits with this code after its runtime output.
    pub exit_code: Option<i32>,
}

/// The build a resource with no `[[resource.build]]` runs when triggered.
pub static DEFAULT_BUILD: BuildSpec = BuildSpec {
    duration_ms: DEFAULT_DURATION_MS,
    lines: Vec::new(),
    error: None,
    runtime: Vec::new(),
    runtime_ms: 0,
    exit_code: None,
};

fn yes() -> bool {
    true
}

fn default_port() -> u16 {
    DEFAULT_PORT
}

fn default_version() -> String {
    DEFAULT_VERSION.to_owned()
}

fn default_duration() -> u64 {
    DEFAULT_DURATION_MS
}

impl Scenario {
    /// Reads and checks the scenario file; the error is a sentence for the test writer.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("bad scenario {}: {e}", path.display()))
    }

    /// Parses and checks scenario text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let scenario: Self = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let mut names = HashSet::new();
        for resource in &scenario.resources {
            if resource.name.is_empty() || resource.name == "(Tiltfile)" {
                return Err(format!("invalid resource name {:?}", resource.name));
            }
            if !names.insert(resource.name.as_str()) {
                return Err(format!("resource {:?} is defined twice", resource.name));
            }
        }
        Ok(scenario)
    }

    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// Whether a call with these command words (flags and their values removed) hangs.
    pub fn hangs(&self, words: &[&str]) -> bool {
        self.hang.iter().any(|pattern| {
            let pattern: Vec<&str> = pattern.split_whitespace().collect();
            !pattern.is_empty() && words.starts_with(&pattern)
        })
    }
}

impl Resource {
    /// The spec of the `index`-th (0-based) triggered build of this resource.
    pub fn triggered_build(&self, index: usize) -> &BuildSpec {
        self.build.get(index).or(self.build.last()).unwrap_or(&DEFAULT_BUILD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let s = Scenario::parse("[[resource]]\nname = \"server\"\n").unwrap();
        assert!(s.running && s.json);
        assert_eq!(s.port, DEFAULT_PORT);
        assert_eq!(s.resources[0].triggered_build(3).duration_ms, 100);

        let err = Scenario::parse("[[resource]]\nname = \"a\"\nbuilds = []\n").unwrap_err();
        assert!(err.contains("unknown field `builds`"), "{err}");
        let err = Scenario::parse("[[resource]]\nname = \"a\"\n[[resource]]\nname = \"a\"\n").unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn hang_patterns_match_word_prefixes() {
        let s = Scenario::parse("hang = [\"logs\", \"get uiresource\"]").unwrap();
        assert!(s.hangs(&["logs", "server"]));
        assert!(s.hangs(&["get", "uiresource", "server"]));
        assert!(!s.hangs(&["get", "uiresources"]));
        assert!(!s.hangs(&["trigger", "logs"]));
    }
}
