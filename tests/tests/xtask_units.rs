//! The xtask's own unit tests (and its formatting): the xtask is a Cargo workspace of its own,
//! as it is installed into Citadel, so `cargo test --workspace` here reaches it through this.

use std::{path::Path, process::Command};

fn cargo_on_the_xtask(args: &[&str]) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/Cargo.toml");
    let (command, rest) = args.split_first().expect("a cargo command");
    Command::new(cargo).arg(command).arg("--manifest-path").arg(manifest).args(rest).output().expect("running cargo")
}

#[test]
fn the_xtasks_own_unit_tests_pass() {
    let output = cargo_on_the_xtask(&["test", "--workspace", "--quiet"]);
    assert!(
        output.status.success(),
        "cargo test --manifest-path xtask/Cargo.toml --workspace failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_xtask_is_formatted() {
    let output = cargo_on_the_xtask(&["fmt", "--all", "--", "--check"]);
    assert!(
        output.status.success(),
        "run `cargo fmt --manifest-path xtask/Cargo.toml --all`:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}
