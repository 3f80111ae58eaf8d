//! End-to-end: `cargo xtask demo` finds the Tilt stand-in wherever cargo builds it — a
//! `CARGO_TARGET_DIR`, a `--target-dir` — since it reads the built programs' paths from cargo.

use std::process::Command;

use sync_tests::*;

/// `xtask demo` with `configure`'s target directory.
fn demo(configure: impl FnOnce(&mut Command)) -> Run {
    let mut command = Command::new(xtask_bin());
    command.arg("demo").env_remove("TILT_PORT").env_remove("SYNC_TILT");
    configure(&mut command);
    Run::from(command.output().expect("running xtask demo"))
}

#[test]
fn the_demo_runs_from_any_target_directory() {
    // Not the repository's `target/` (whose `debug/tilt` the tests built): a directory of its
    // own, kept from run to run so that only the first builds the stand-in there.
    let target = target_dir().join("xtask-demo-target");
    for run in [
        demo(|command| {
            command.env("CARGO_TARGET_DIR", &target);
        }),
        demo(|command| {
            command.args(["--target-dir", target.to_str().unwrap()]).env_remove("CARGO_TARGET_DIR");
        }),
    ] {
        run.assert_code(0);
        assert!(run.stdout.contains("SUCCESS: The sync and deploy process completed successfully"), "{run:?}");
        assert!(run.stdout.contains("Step 2 FAILED: server rebuild error"), "{run:?}");
        let workspaces = target.join("xtask-demo");
        assert!(run.stdout.contains(&format!("are under {}", workspaces.display())), "{run:?}");
    }
}
