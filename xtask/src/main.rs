//! `cargo xtask`: automation for the Citadel workspace. `main` parses the flags and dispatches;
//! every subcommand lives in its own module.

mod bench;
mod config;
mod demo;
mod duration;
mod engine;
mod flags;
mod git;
mod glob;
mod hook;
mod interrupt;
mod live;
mod logs;
mod model;
mod plan;
mod process;
mod report;
mod scan;
mod select;
mod standin;
mod step;
mod sync;
mod tilt;
mod usage;

use std::process::ExitCode;

use anyhow::Context;
use camino::Utf8PathBuf;
use clap::Parser;
use xshell::Shell;

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    let outcome = Shell::new().context("starting a shell").and_then(|sh| match flags.command {
        flags::Command::Sync(sync) => sync.run(&sh),
        flags::Command::Demo(demo) => demo.run(&sh).map(|()| ExitCode::SUCCESS),
        flags::Command::InstallHook(install) => install.run(&sh).map(|()| ExitCode::SUCCESS),
        flags::Command::UninstallHook(uninstall) => uninstall.run(&sh).map(|()| ExitCode::SUCCESS),
        flags::Command::Bench(bench) => bench.run(&sh).map(|()| ExitCode::SUCCESS),
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(sync::EXIT_ENVIRONMENT)
        }
    }
}

/// The workspace holding this xtask crate.
fn project_root() -> Utf8PathBuf {
    let manifest_dir = Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(Utf8PathBuf::from).unwrap_or(manifest_dir)
}
