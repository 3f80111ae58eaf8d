//! One log line -> a verdict: benign, an error of some kind, or the step's success. Pure.

use tilt_log::Judgement;

use crate::protocol::{KindId, Step};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Benign,
    /// An error of this kind, found by this pattern (an index into the step's error patterns).
    Error(KindId, usize),
    Success,
}

/// Judges a line for `step`, in the protocol's order: ignore, then errors, then success.
/// The line is matched without its ANSI colour codes (`strip_ansi` first).
pub fn classify(step: &Step, line: &str) -> Verdict {
    match step.patterns.judge(line) {
        Judgement::Benign => Verdict::Benign,
        // The first kind in the step's list wins: specific kinds are listed before generic ones.
        Judgement::Error(pattern) => Verdict::Error(step.error_pattern_kinds[pattern], pattern),
        Judgement::Success => Verdict::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tilt_log::strip_ansi;

    use crate::protocol::Protocol;

    fn verdict_name(protocol: &Protocol, step: &str, line: &str) -> String {
        match classify(protocol.step(step).unwrap(), &strip_ansi(line)) {
            Verdict::Benign => "benign".to_owned(),
            Verdict::Success => "success".to_owned(),
            Verdict::Error(kind, _) => protocol.kind(kind).name.clone(),
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
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use tilt_log::strip_ansi;

    use super::*;
    use crate::protocol::Protocol;

    proptest! {
        #[test]
        fn classifying_any_line(line in any::<String>(), escapes in "(\x1b\\[[0-9;]*m?|\x1b\\]|\x1b|\r|\n){0,4}") {
            let protocol = Protocol::load(None).unwrap();
            let line = format!("{escapes}{line}{escapes}");
            let stripped = strip_ansi(&line);
            for step in &protocol.steps {
                let _ = classify(step, &stripped);
            }
        }

    }
}
