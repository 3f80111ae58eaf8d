//! The protocol file (`xtask/sync.toml`): loaded, validated and compiled into typed steps.
//! Every error names the file and the line of the key at fault.

pub mod duration;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use regex::{Regex, RegexSet};
use serde::Deserialize;
use tilt_log::Patterns;
use toml::Spanned;

use crate::protocol::duration::Duration;

/// The protocol compiled into the binary, used unless `--config` names another file.
pub const DEFAULT_PROTOCOL: &str = include_str!("../../sync.toml");
pub const DEFAULT_PROTOCOL_NAME: &str = "xtask/sync.toml (built in)";

#[derive(Debug)]
pub struct Protocol {
    pub settings: Settings,
    pub kinds: Vec<ErrorKind>,
    pub steps: Vec<Step>,
    pub derive: Derive,
    pub rules: Vec<PathRule>,
}

/// How each step's inputs are derived from the build (`[derive]` in the file).
#[derive(Debug, Clone)]
pub struct Derive {
    /// The compose files whose services are the resources; empty: those the Tiltfile loads.
    pub compose: Vec<Utf8PathBuf>,
    /// A crate's folders `cargo build` does not compile (`tests`, `benches`, `examples`).
    pub uncompiled: Vec<String>,
}

/// Steps a changed path needs besides what the build says (`[[path]]` in the file); with
/// `steps = []`, that a path read only at run time needs no rebuild.
#[derive(Debug)]
pub struct PathRule {
    pub globs: Vec<String>,
    pub matcher: RegexSet,
    /// Indices into `Protocol::steps`.
    pub steps: Vec<usize>,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub timeout: Duration,
    pub remediation_wait: Duration,
    pub poll: Duration,
    pub tilt_call_timeout: Duration,
    pub report_lines: usize,
    pub build_header: Regex,
    pub after_error: Duration,
    /// The workspace's Tiltfile, relative to its root: the Tilt answering must run this one.
    pub tiltfile: Utf8PathBuf,
    /// Where containers mount the workspace: an error's path there is shown from the root.
    pub container_roots: Vec<String>,
}

/// Index of an error kind in `Protocol::kinds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KindId(pub usize);

#[derive(Debug)]
pub struct ErrorKind {
    pub name: String,
    pub patterns: Vec<String>,
    /// What the report tells the user to do about it.
    pub advice: String,
}

#[derive(Debug)]
pub struct Step {
    pub name: String,
    pub resource: String,
    pub timeout: Duration,
    /// `ignore`, the patterns of every error kind of `errors` in order, and `success`.
    pub patterns: Patterns,
    /// The error kind of each error pattern.
    pub error_pattern_kinds: Vec<KindId>,
    pub remediations: Vec<Remediation>,
    /// Runs whenever another step of the run runs (the UI reloads after any service).
    pub with_any_step: bool,
    /// After the step passed, its service must stay up this long, and print no error line.
    pub confirm: Duration,
    /// Besides its success lines, Tilt's word that the service is ready passes the step.
    pub ready: Option<Ready>,
}

impl Step {
    /// A service that must stay up once it passed (a `confirm` time), not a one-shot job.
    pub fn stays_up(&self) -> bool {
        !self.confirm.0.is_zero()
    }
}

/// What Tilt can say that passes a step without a success line (`ready` in the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// The container of our build reports healthy (its compose healthcheck passes).
    Healthy,
    /// The service of our build runs (Tilt's runtime status `ok`).
    Running,
}

#[derive(Debug, Clone)]
pub struct Remediation {
    pub on: KindId,
    pub program: String,
    pub args: Vec<String>,
    /// Relative to the workspace root.
    pub dir: Utf8PathBuf,
    pub wait: Duration,
}

impl Remediation {
    /// `` `npm install` in citadel-internal-service/typescript-client ``
    pub fn describe(&self) -> String {
        let mut command = vec![self.program.as_str()];
        command.extend(self.args.iter().map(String::as_str));
        let dir = if self.dir.as_str().is_empty() { "." } else { self.dir.as_str() };
        format!("`{}` in {dir}", command.join(" "))
    }
}

impl Protocol {
    pub fn load(path: Option<&Utf8Path>) -> Result<Protocol> {
        match path {
            None => Protocol::parse(DEFAULT_PROTOCOL, DEFAULT_PROTOCOL_NAME),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("reading the protocol file {path}"))?;
                Protocol::parse(&text, path.as_str())
            }
        }
    }

    pub fn parse(text: &str, file: &str) -> Result<Protocol> {
        let raw: RawProtocol = toml::from_str(text).map_err(|err| {
            let message = err.message().replace('\n', ", ");
            match err.span().map(|span| line_of(text, span.start)) {
                Some(line) => {
                    let source = text.lines().nth(line - 1).unwrap_or_default().trim();
                    anyhow::anyhow!("{file}:{line}: {message} (in `{source}`)")
                }
                None => anyhow::anyhow!("{file}: {message}"),
            }
        })?;
        Compiler { text, file }.protocol(raw)
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.name == name)
    }

    pub fn kind(&self, id: KindId) -> &ErrorKind {
        &self.kinds[id.0]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProtocol {
    settings: RawSettings,
    #[serde(default, rename = "error")]
    errors: Vec<RawErrorKind>,
    #[serde(rename = "step")]
    steps: Option<Spanned<Vec<RawStep>>>,
    #[serde(default)]
    derive: RawDerive,
    #[serde(default, rename = "path")]
    rules: Vec<RawPathRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDerive {
    #[serde(default)]
    compose: Vec<Utf8PathBuf>,
    #[serde(default = "default_uncompiled")]
    uncompiled: Vec<String>,
}

impl Default for RawDerive {
    fn default() -> RawDerive {
        RawDerive { compose: Vec::new(), uncompiled: default_uncompiled() }
    }
}

fn default_uncompiled() -> Vec<String> {
    ["tests", "benches", "examples"].map(str::to_owned).to_vec()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPathRule {
    globs: Vec<Spanned<String>>,
    steps: Vec<Spanned<String>>,
    reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    timeout: Duration,
    remediation_wait: Duration,
    poll: Duration,
    tilt_call_timeout: Duration,
    report_lines: usize,
    build_header: Spanned<String>,
    after_error: Duration,
    confirm: Duration,
    tiltfile: Utf8PathBuf,
    #[serde(default)]
    container_roots: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawErrorKind {
    kind: Spanned<String>,
    patterns: Vec<Spanned<String>>,
    advice: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    resource: String,
    timeout: Option<Duration>,
    success: Vec<Spanned<String>>,
    errors: Vec<Spanned<String>>,
    #[serde(default)]
    ignore: Vec<Spanned<String>>,
    #[serde(default, rename = "remediation")]
    remediations: Vec<RawRemediation>,
    #[serde(default)]
    with_any_step: bool,
    confirm: Option<Duration>,
    ready: Option<Ready>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemediation {
    on: Spanned<String>,
    run: Spanned<Vec<String>>,
    #[serde(default)]
    dir: Utf8PathBuf,
    wait: Option<Duration>,
}

/// Turns the raw file into a `Protocol`, naming `file:line` in every error.
struct Compiler<'a> {
    text: &'a str,
    file: &'a str,
}

impl Compiler<'_> {
    fn protocol(&self, raw: RawProtocol) -> Result<Protocol> {
        // A zero here would make a busy loop of Tilt calls, or a step that cannot succeed.
        let durations = [
            ("timeout", raw.settings.timeout),
            ("poll", raw.settings.poll),
            ("tilt_call_timeout", raw.settings.tilt_call_timeout),
        ];
        if let Some((key, _)) = durations.iter().find(|(_, duration)| duration.0.is_zero()) {
            let line =
                self.text.lines().position(|line| line.trim_start().starts_with(key)).map_or(1, |index| index + 1);
            bail!("{}:{line}: settings.{key} must be longer than 0", self.file);
        }
        let settings = Settings {
            timeout: raw.settings.timeout,
            remediation_wait: raw.settings.remediation_wait,
            poll: raw.settings.poll,
            tilt_call_timeout: raw.settings.tilt_call_timeout,
            report_lines: raw.settings.report_lines,
            build_header: self.regex(&raw.settings.build_header, "settings.build_header")?,
            after_error: raw.settings.after_error,
            tiltfile: raw.settings.tiltfile,
            container_roots: raw.settings.container_roots,
        };
        let default_confirm = raw.settings.confirm;

        let mut kinds: Vec<ErrorKind> = Vec::new();
        for raw_kind in raw.errors {
            if kinds.iter().any(|kind| kind.name == *raw_kind.kind.get_ref()) {
                bail!(self.at(&raw_kind.kind, format!("error kind `{}` is defined twice", raw_kind.kind.get_ref())));
            }
            let context = format!("error kind `{}`", raw_kind.kind.get_ref());
            for pattern in &raw_kind.patterns {
                self.regex(pattern, &context)?;
            }
            kinds.push(ErrorKind {
                name: raw_kind.kind.into_inner(),
                patterns: raw_kind.patterns.into_iter().map(Spanned::into_inner).collect(),
                advice: raw_kind.advice,
            });
        }

        let no_steps = "the protocol has no `[[step]]`: add at least one";
        let Some(raw_steps) = raw.steps else {
            bail!("{}: {no_steps}", self.file);
        };
        if raw_steps.get_ref().is_empty() {
            bail!(self.at(&raw_steps, no_steps.to_owned()));
        }
        let mut steps: Vec<Step> = Vec::new();
        for raw_step in raw_steps.into_inner() {
            if steps.iter().any(|step| step.name == *raw_step.name.get_ref()) {
                bail!(self.at(&raw_step.name, format!("step `{}` is defined twice", raw_step.name.get_ref())));
            }
            steps.push(self.step(raw_step, &kinds, &settings, default_confirm)?);
        }
        let rules = raw.rules.into_iter().map(|rule| self.path_rule(rule, &steps)).collect::<Result<_>>()?;
        let derive = Derive { compose: raw.derive.compose, uncompiled: raw.derive.uncompiled };
        Ok(Protocol { settings, kinds, steps, derive, rules })
    }

    fn path_rule(&self, raw: RawPathRule, steps: &[Step]) -> Result<PathRule> {
        for glob in &raw.globs {
            crate::changes::glob::to_regex(glob.get_ref())
                .map_err(|err| anyhow::anyhow!(self.at(glob, format!("bad glob in a `[[path]]` rule: {err}"))))?;
        }
        let globs: Vec<&str> = raw.globs.iter().map(|glob| glob.get_ref().as_str()).collect();
        let matcher = crate::changes::glob::set(&globs).map_err(|err| anyhow::anyhow!("{}: {err}", self.file))?;
        let mut step_indices = Vec::new();
        for name in &raw.steps {
            let Some(index) = steps.iter().position(|step| step.name == *name.get_ref()) else {
                bail!(self.at(
                    name,
                    format!("a `[[path]]` rule names step `{}`, which no `[[step]]` defines", name.get_ref())
                ));
            };
            step_indices.push(index);
        }
        Ok(PathRule {
            globs: raw.globs.into_iter().map(Spanned::into_inner).collect(),
            matcher,
            steps: step_indices,
            reason: raw.reason,
        })
    }

    fn step(&self, raw: RawStep, kinds: &[ErrorKind], settings: &Settings, confirm: Duration) -> Result<Step> {
        let name = raw.name.get_ref().clone();
        let kind_id = |reference: &Spanned<String>| -> Result<KindId> {
            kinds.iter().position(|kind| kind.name == *reference.get_ref()).map(KindId).ok_or_else(|| {
                let known: Vec<&str> = kinds.iter().map(|kind| kind.name.as_str()).collect();
                anyhow::anyhow!(self.at(
                    reference,
                    format!(
                        "step `{name}` names error kind `{}`, which no `[[error]]` defines (known: {})",
                        reference.get_ref(),
                        known.join(", ")
                    )
                ))
            })
        };

        let mut errors = Vec::new();
        let mut error_patterns = Vec::new();
        let mut error_pattern_kinds = Vec::new();
        for reference in &raw.errors {
            let id = kind_id(reference)?;
            errors.push(id);
            for pattern in &kinds[id.0].patterns {
                error_patterns.push(pattern.as_str());
                error_pattern_kinds.push(id);
            }
        }

        let mut remediations = Vec::new();
        for raw_remediation in &raw.remediations {
            let on = kind_id(&raw_remediation.on)?;
            if !errors.contains(&on) {
                bail!(self.at(
                    &raw_remediation.on,
                    format!(
                        "step `{name}` remediates `{}` but does not list it in its `errors`",
                        raw_remediation.on.get_ref()
                    )
                ));
            }
            let Some((program, args)) = raw_remediation.run.get_ref().split_first() else {
                bail!(self.at(&raw_remediation.run, format!("step `{name}`: a remediation's `run` needs a program")));
            };
            remediations.push(Remediation {
                on,
                program: program.clone(),
                args: args.to_vec(),
                dir: raw_remediation.dir.clone(),
                wait: raw_remediation.wait.unwrap_or(settings.remediation_wait),
            });
        }

        Ok(Step {
            patterns: Patterns {
                success: self.regex_set(&raw.success, &format!("step `{name}` success"))?,
                ignore: self.regex_set(&raw.ignore, &format!("step `{name}` ignore"))?,
                errors: RegexSet::new(error_patterns).context("compiling the error patterns")?,
            },
            error_pattern_kinds,
            remediations,
            timeout: raw.timeout.unwrap_or(settings.timeout),
            with_any_step: raw.with_any_step,
            confirm: raw.confirm.unwrap_or(confirm),
            ready: raw.ready,
            resource: raw.resource,
            name,
        })
    }

    fn regex(&self, pattern: &Spanned<String>, context: &str) -> Result<Regex> {
        Regex::new(pattern.get_ref())
            .map_err(|err| anyhow::anyhow!(self.at(pattern, format!("bad pattern in {context}: {err}"))))
    }

    fn regex_set(&self, patterns: &[Spanned<String>], context: &str) -> Result<RegexSet> {
        for pattern in patterns {
            self.regex(pattern, context)?;
        }
        RegexSet::new(patterns.iter().map(Spanned::get_ref)).context("compiling a pattern set")
    }

    fn at<T>(&self, spanned: &Spanned<T>, message: String) -> String {
        format!("{}:{}: {message}", self.file, line_of(self.text, spanned.span().start))
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset].iter().filter(|&&byte| byte == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        format!("{:#}", Protocol::parse(text, "sync.toml").unwrap_err())
    }

    fn with_default(from: &str, to: &str) -> String {
        assert!(DEFAULT_PROTOCOL.contains(from), "{from}");
        DEFAULT_PROTOCOL.replacen(from, to, 1)
    }

    fn line_containing(text: &str, needle: &str) -> usize {
        text.lines().position(|line| line.contains(needle)).unwrap() + 1
    }

    #[test]
    fn the_default_protocol_is_the_seeds_four_steps() {
        let protocol = Protocol::load(None).unwrap();
        let names: Vec<&str> = protocol.steps.iter().map(|step| step.name.as_str()).collect();
        assert_eq!(names, ["sync-wasm-client", "server", "internal-service", "ui"]);
        let first = &protocol.steps[0];
        assert_eq!(first.timeout.to_string(), "5m");
        assert_eq!(first.remediations.len(), 1);
        assert_eq!(first.remediations[0].program, "npm");
        assert_eq!(first.remediations[0].dir, "citadel-internal-service/typescript-client");
        assert_eq!(first.remediations[0].wait.to_string(), "10s");
    }

    #[test]
    fn a_toml_syntax_error_names_file_and_line() {
        let text = with_default("report_lines = 100", "report_lines = = 100");
        let line = line_containing(&text, "report_lines = =");
        assert!(error_of(&text).starts_with(&format!("sync.toml:{line}:")), "{}", error_of(&text));
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let text = with_default("resource = \"server\"", "resource = \"server\"\nresorce = 1");
        let message = error_of(&text);
        let line = line_containing(&text, "resorce");
        assert!(message.starts_with(&format!("sync.toml:{line}:")), "{message}");
        assert!(message.contains("resorce"), "{message}");
    }

    #[test]
    fn a_bad_regex_names_the_line_and_the_step() {
        let text = with_default("success = ['\\bready in\\b'", "success = ['(unclosed'");
        let message = error_of(&text);
        let line = line_containing(&text, "(unclosed");
        assert!(message.starts_with(&format!("sync.toml:{line}: bad pattern in step `ui` success")), "{message}");
    }

    #[test]
    fn duplicate_steps_and_unknown_kinds_are_refused() {
        let text = with_default("name = \"ui\"", "name = \"server\"");
        assert!(error_of(&text).contains("step `server` is defined twice"));
        let text = with_default("errors = [\"npm\", \"build-failed\", \"error-line\"]", "errors = [\"nmp\"]");
        let message = error_of(&text);
        assert!(message.contains("names error kind `nmp`, which no `[[error]]` defines"), "{message}");
        assert!(message.starts_with(&format!("sync.toml:{}:", line_containing(&text, "\"nmp\""))), "{message}");
    }

    #[test]
    fn a_protocol_without_steps_is_refused() {
        let cut = DEFAULT_PROTOCOL.find("[[step]]").unwrap();
        assert!(error_of(&DEFAULT_PROTOCOL[..cut]).contains("has no `[[step]]`"));
    }

    #[test]
    fn a_path_rule_naming_an_unknown_step_is_refused() {
        let text =
            with_default("steps = [\"sync-wasm-client\", \"server\"", "steps = [\"sync-wasm-client\", \"sever\"");
        let message = error_of(&text);
        assert!(message.contains("names step `sever`"), "{message}");
        assert!(message.starts_with(&format!("sync.toml:{}:", line_containing(&text, "\"sever\""))), "{message}");
    }

    #[test]
    fn zero_durations_that_would_spin_are_refused() {
        let text = with_default("poll = \"2s\"", "poll = \"0ms\"");
        let message = error_of(&text);
        assert_eq!(
            message,
            format!("sync.toml:{}: settings.poll must be longer than 0", line_containing(&text, "poll = "))
        );
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Protocol::parse(&String::from_utf8_lossy(&bytes), "fuzz.toml");
        }

        #[test]
        fn on_the_default_protocol_with_bytes_changed(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
        ) {
            let mut bytes = DEFAULT_PROTOCOL.as_bytes().to_vec();
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            let _ = Protocol::parse(&String::from_utf8_lossy(&bytes), "fuzz.toml");
        }
    }
}
