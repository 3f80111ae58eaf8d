//! `cargo xtask`: automation for the Citadel workspace. `main` parses the flags and dispatches;
//! every subcommand lives in its own module.

mod bench;
mod changes;
mod demo;
mod engine;
mod flags;
mod install;
mod interrupt;
mod process;
mod protocol;
mod report;
mod run;
mod standin;
mod status;
mod store;
mod sync;
mod tilt;
mod usage;

use std::process::ExitCode;

use anyhow::Context;
use camino::Utf8PathBuf;
use clap::{CommandFactory, FromArgMatches};
use xshell::Shell;

fn main() -> ExitCode {
    let mut command = flags::Xtask::command();
    if !in_own_repository() {
        // Installed into Citadel: the commands that need the xtask's own repository are not offered.
        for name in DEVELOPMENT_COMMANDS {
            command = command.mut_subcommand(name, |subcommand| subcommand.hide(true));
        }
    }
    let flags = match flags::Xtask::from_arg_matches(&command.get_matches()) {
        Ok(flags) => flags,
        Err(err) => err.exit(),
    };
    let development =
        matches!(flags.command, flags::Command::Demo(_) | flags::Command::Bench(_) | flags::Command::InstallInto(_));
    if development && !in_own_repository() {
        eprintln!(
            "error: this command needs the xtask's own repository (its tests/ crate: the Tilt stand-in and the \
             Citadel fixture); it is not offered where the xtask is installed"
        );
        return ExitCode::from(sync::EXIT_ENVIRONMENT);
    }
    if let flags::Command::Sync(_) = flags.command {
        // Before any work: Ctrl-C at any moment of a sync ends it with 130, saying so.
        if let Err(err) = interrupt::install() {
            eprintln!("error: {err:#}");
            return ExitCode::from(sync::EXIT_ENVIRONMENT);
        }
    }
    let json = match &flags.command {
        flags::Command::Sync(sync) => sync.json,
        flags::Command::Status(status) => status.json,
        _ => false,
    };
    let outcome = Shell::new().context("starting a shell").and_then(|sh| match flags.command {
        flags::Command::Sync(sync) => sync.run(&sh),
        flags::Command::Status(status) => status.run(&sh),
        flags::Command::Demo(demo) => demo.run(&sh).map(|()| ExitCode::SUCCESS),
        flags::Command::InstallHook(install) => install.run(&sh).map(|()| ExitCode::SUCCESS),
        flags::Command::UninstallHook(uninstall) => uninstall.run(&sh).map(|()| ExitCode::SUCCESS),
        flags::Command::Bench(bench) => bench.run(&sh).map(|()| ExitCode::SUCCESS),
        flags::Command::InstallInto(install) => install.run(&sh).map(|()| ExitCode::SUCCESS),
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            let (status, message, code) = match interrupt::requested() {
                true => (
                    "interrupted",
                    "stopped by Ctrl-C before any step was triggered: nothing was built".to_owned(),
                    sync::EXIT_INTERRUPTED,
                ),
                false => ("error", format!("{err:#}"), sync::EXIT_ENVIRONMENT),
            };
            eprintln!("{}: {message}", if code == sync::EXIT_INTERRUPTED { "INTERRUPTED" } else { "error" });
            if json {
                // A script reading stdout learns why too.
                let report = serde_json::json!({ "status": status, "message": message, "exit_code": code });
                println!("{report:#}");
            }
            ExitCode::from(code)
        }
    }
}

/// Need the xtask's own repository (its `tests/` crate: the Tilt stand-in, the fixture).
const DEVELOPMENT_COMMANDS: [&str; 3] = ["demo", "bench", "install-into"];

/// Whether this is the xtask's own repository, not a workspace it was installed into.
fn in_own_repository() -> bool {
    project_root().join("tests/src/bin/tilt.rs").exists()
}

/// `--root`, or the workspace holding this xtask crate, resolved.
fn workspace_root(root: &Option<Utf8PathBuf>) -> anyhow::Result<Utf8PathBuf> {
    let root = root.clone().unwrap_or_else(project_root);
    let resolved = root.canonicalize_utf8().with_context(|| format!("the workspace root {root} does not exist"))?;
    if !resolved.is_dir() {
        anyhow::bail!("the workspace root {root} is not a directory");
    }
    Ok(resolved)
}

/// The workspace holding this xtask crate.
fn project_root() -> Utf8PathBuf {
    let manifest_dir = Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(Utf8PathBuf::from).unwrap_or(manifest_dir)
}
