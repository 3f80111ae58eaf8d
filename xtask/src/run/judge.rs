//! A line of the log -> what it is to the step: an error of some kind, the step's success, or
//! nothing; and what the lines of one build, process or container add up to. The matching
//! itself (ignore, then errors, then success, and the joins of records Tilt sent in pieces) is
//! `tilt_log::Judge`, compiled optimized; this is what the run machine makes of it.

use tilt_log::{ErrorMatch, Judge, Role};

use crate::{protocol::Step, run::Failure, tilt::model::Span};

/// How Tilt's own line at the end of a failed build begins.
pub const TILT_BUILD_FAILED: &str = "Build Failed:";

/// An error line found: its pattern (an index into the step's error patterns) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub pattern: usize,
    pub line: String,
    /// Found joined to the records before it: a later record may name it better.
    pub joined: bool,
}

impl Found {
    pub fn failure(&self, step: &Step) -> Failure {
        Failure::Error {
            kind: step.error_pattern_kinds[self.pattern],
            rule: step.patterns.errors.patterns()[self.pattern].clone(),
            line: self.line.clone(),
        }
    }
}

/// The verdict-bearing lines of one build, process or container: the first success, the most
/// specific error (the first of those).
#[derive(Debug, Default, Clone)]
pub struct Judged {
    pub error: Option<Found>,
    pub success: Option<String>,
    /// Tilt's own `Build Failed: …` line, which says less than the command's error: a failed
    /// command's last lines can reach Tilt's log after it.
    pub tilt_error: Option<Found>,
}

impl Judged {
    /// Takes in the role the judge gave `text`.
    pub fn take(&mut self, role: Role, text: &str) {
        match role {
            Role::Benign | Role::Ignored => {}
            Role::Success => {
                self.success.get_or_insert_with(|| text.to_owned());
            }
            Role::Error(ErrorMatch { pattern, joined: None, .. }) if text.starts_with(TILT_BUILD_FAILED) => {
                self.tilt_error.get_or_insert_with(|| Found { pattern, line: text.to_owned(), joined: false });
            }
            Role::Error(ErrorMatch { pattern, joined, refines }) => {
                let joined_text = joined.is_some();
                let found = Found { pattern, line: joined.unwrap_or_else(|| text.to_owned()), joined: joined_text };
                match &mut self.error {
                    Some(known) if refines && known.joined => *known = found,
                    // The most specific error names the build (patterns are in the step's order
                    // of kinds): Docker's `failed to solve: … exit code: 101` can reach the log
                    // before the compiler's `error[E0425]` it reports.
                    Some(known) if pattern < known.pattern => {
                        cov_mark::hit!(the_most_specific_error_names_the_build);
                        *known = found;
                    }
                    Some(_) => {}
                    None => {
                        if joined_text {
                            cov_mark::hit!(an_error_split_across_records_is_found);
                        }
                        self.error = Some(found);
                    }
                }
            }
        }
    }

    /// Adds what `other` found: its first error and success, where none was found yet.
    pub fn merge(&mut self, other: &Judged) {
        if self.error.is_none() {
            self.error.clone_from(&other.error);
        }
        if self.success.is_none() {
            self.success.clone_from(&other.success);
        }
        if self.tilt_error.is_none() {
            self.tilt_error.clone_from(&other.tilt_error);
        }
    }
}

/// Judges one record of `span` for `step` with `judge`'s memory of the records before it.
pub fn judge(judge: &mut Judge, step: &Step, span: Span, text: &str) -> Role {
    judge.record(&step.patterns, span, text)
}

#[cfg(test)]
mod tests {
    use tilt_log::strip_ansi;

    use super::*;
    use crate::protocol::{KindId, Protocol};

    /// The error kind a pattern names.
    fn kind_of(step: &Step, found: &Found) -> KindId {
        step.error_pattern_kinds[found.pattern]
    }

    fn verdict_name(protocol: &Protocol, step: &str, line: &str) -> String {
        let step = protocol.step(step).unwrap();
        let mut judged = Judged::default();
        let text = strip_ansi(line);
        judged.take(judge(&mut Judge::default(), step, Span::Container, &text), &text);
        match (judged.error.as_ref().or(judged.tilt_error.as_ref()), &judged.success) {
            (Some(found), _) => protocol.kind(kind_of(step, found)).name.clone(),
            (None, Some(_)) => "success".to_owned(),
            (None, None) => "benign".to_owned(),
        }
    }

    #[test]
    fn every_error_form_the_seed_lists_is_caught() {
        let protocol = Protocol::load(None).unwrap();
        let cases = [
            ("server", "error[E0425]: cannot find value `x` in this scope", "rust-compile"),
            (
                "server",
                "error: could not compile `citadel-workspace-server-kernel` (bin) due to 1 previous error",
                "rust-compile",
            ),
            ("server", "error: linking with `cc` failed: exit status: 1", "build-failed"),
            ("server", "error: failed to run custom build command for `ring`", "build-failed"),
            ("server", "Error: Address already in use", "error-line"),
            ("server", "thread 'main' panicked at src/main.rs:10:5:", "panic"),
            ("server", "/usr/bin/ld: main.o: undefined reference to `foo'", "link"),
            ("server", "error[E0432]: unresolved import `crate::nope`", "rust-compile"),
            ("server", "warning: unresolved import in macro", "link"),
            ("server", "Build Failed: Command \"cargo build\" failed: exit status 101", "build-failed"),
            ("server", "Container citadel-server exited with code 137", "build-failed"),
            ("server", "process exited with exit code 1", "build-failed"),
            ("sync-wasm-client", "error TS2688: Cannot find type definition file for 'node'.", "missing-node-types"),
            (
                "sync-wasm-client",
                "  The file is in the program because: Cannot find type definition file for 'node'",
                "missing-node-types",
            ),
            ("sync-wasm-client", "npm error Missing script: \"build\"", "missing-build-script"),
            ("sync-wasm-client", "npm ERR! Missing script: 'build'", "missing-build-script"),
            ("sync-wasm-client", "npm error code ELIFECYCLE", "npm"),
            ("sync-wasm-client", "npm ERR! code 1", "npm"),
            ("sync-wasm-client", "src/index.ts(3,1): error TS2304: Cannot find name 'x'.", "npm"),
            ("sync-wasm-client", "\x1b[0;31m[ERROR]\x1b[0m ❌ WASM files are NOT synchronized!", "sync-script"),
            ("sync-wasm-client", "[ERROR] WASM build failed - pkg directory not created", "sync-script"),
            ("sync-wasm-client", "Error: wasm-pack build failed", "build-failed"),
            ("ui", "Error: Cannot find module 'vite'", "error-line"),
            ("ui", "[vite] Internal server error: Failed to resolve import", "error-line"),
            ("ui", "Build failed with 2 errors:", "build-failed"),
        ];
        for (step, line, kind) in cases {
            assert_eq!(verdict_name(&protocol, step, line), kind, "{step}: {line}");
        }
    }

    #[test]
    fn benign_lines_stay_benign() {
        let protocol = Protocol::load(None).unwrap();
        let cases = [
            ("server", "   Compiling thiserror v1.0.69"),
            ("server", "   Compiling error-chain v0.12.4"),
            ("server", "    Finished `dev` profile [unoptimized + debuginfo] target(s) in 1m 02s"),
            ("server", "warning: unused variable: `error_count`"),
            ("server", "Container citadel-server exited with code 0"),
            ("server", "INFO citadel: handled 0 errors, 0 failures"),
            ("server", "healthcheck: nc: can't connect to remote host (127.0.0.1): Connection refused"),
            ("sync-wasm-client", "found 0 vulnerabilities, 0 errors"),
            (
                "sync-wasm-client",
                "\x1b[1;33m[WARNING]\x1b[0m generate_types.sh not found, skipping TypeScript type generation",
            ),
            ("sync-wasm-client", "\x1b[1;33m[WARNING]\x1b[0m package.json missing 'build' script - regenerating..."),
            ("sync-wasm-client", "    Finished `release` profile [optimized] target(s) in 41.20s"),
            ("sync-wasm-client", "added 212 packages, and audited 213 packages in 3s"),
            ("ui", "  ➜  Network: use --host to expose"),
            ("ui", ""),
        ];
        for (step, line) in cases {
            assert_eq!(verdict_name(&protocol, step, line), "benign", "{step}: {line}");
        }
    }

    #[test]
    fn success_lines_are_each_steps_own() {
        let protocol = Protocol::load(None).unwrap();
        let cases = [
            ("sync-wasm-client", "\x1b[0;32m[INFO]\x1b[0m WASM client synchronization complete!"),
            ("server", "     Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`"),
            (
                "internal-service",
                "     Running `target/debug/citadel-workspace-internal-service --bind '0.0.0.0:12345'`",
            ),
            ("ui", "  VITE v5.4.2  ready in 412 ms"),
            ("ui", "  ➜  Local:   http://localhost:5173/"),
        ];
        for (step, line) in cases {
            assert_eq!(verdict_name(&protocol, step, line), "success", "{step}: {line}");
        }
        // cargo finishing is not the end of step 1: the script goes on for minutes.
        assert_eq!(verdict_name(&protocol, "sync-wasm-client", "    Finished `release` profile"), "benign");
        // Another step's success line is not this step's.
        assert_eq!(
            verdict_name(
                &protocol,
                "internal-service",
                "Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`"
            ),
            "benign"
        );
    }

    #[test]
    fn the_most_specific_error_of_a_build_names_it_whichever_came_first() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let (mut judge_state, mut judged) = (Judge::default(), Judged::default());
        cov_mark::check!(the_most_specific_error_names_the_build);
        for text in [
            "failed to solve: executor failed running [/bin/sh -c sh build.sh]: exit code: 101",
            "#12 1.061 error[E0425]: cannot find value `peer_id` in this scope",
            "#12 1.061 error: could not compile `x`",
        ] {
            judged.take(judge(&mut judge_state, step, Span::Build(7), text), text);
        }
        let found = judged.error.unwrap();
        assert_eq!(protocol.kind(kind_of(step, &found)).name, "rust-compile");
        assert!(found.line.contains("error[E0425]"), "{}", found.line);
    }

    #[test]
    fn an_error_split_in_three_records_is_named_by_its_whole_text() {
        let protocol = Protocol::load(None).unwrap();
        let step = protocol.step("server").unwrap();
        let (mut judge_state, mut judged) = (Judge::default(), Judged::default());
        for text in ["   Compiling x", "err", "or: could", " not compile `x` (bin \"x\") due to 1 previous error"] {
            judged.take(judge(&mut judge_state, step, Span::Update, text), text);
        }
        let found = judged.error.unwrap();
        assert_eq!(protocol.kind(kind_of(step, &found)).name, "rust-compile");
        assert!(found.line.starts_with("error: could not compile `x`"), "{}", found.line);
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use tilt_log::strip_ansi;

    use super::*;
    use crate::protocol::Protocol;

    proptest! {
        #[test]
        fn judging_any_line(line in any::<String>(), escapes in "(\x1b\\[[0-9;]*m?|\x1b\\]|\x1b|\r|\n){0,4}") {
            let protocol = Protocol::load(None).unwrap();
            let line = format!("{escapes}{line}{escapes}");
            let stripped = strip_ansi(&line);
            for step in &protocol.steps {
                let mut judged = Judged::default();
                judged.take(judge(&mut Judge::default(), step, Span::Build(1), &stripped), &stripped);
            }
        }
    }
}
