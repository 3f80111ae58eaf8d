//! `cargo xtask`: automation for the Citadel workspace. `main` parses the flags and dispatches;
//! every subcommand lives in its own module.

// What needs this repository (the Tilt stand-in, the fixture, the sources `install-into` copies)
// is compiled here only: `install-into` leaves these files out of the copy it writes.
#[cfg(feature = "repo-only")]
mod bench;
#[cfg(feature = "repo-only")]
mod demo;
#[cfg(feature = "repo-only")]
mod standin;

mod changes;
mod engine;
mod flags;
mod install;
mod interrupt;
mod process;
mod protocol;
mod report;
mod run;
mod status;
mod store;
mod sync;
mod tilt;
mod usage;

use std::process::ExitCode;

use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;
use store::status::{ErrorReport, ErrorStatus};
use xshell::Shell;

fn main() -> ExitCode {
    // A closed stdout (`cargo xtask status --json | head -1`) ends the program at its next
    // write, quietly and with the signal's status, as it ends `git log` or `ls`. Rust ignores
    // SIGPIPE, which turns every print after the reader left into a panic (exit 101). Nothing
    // is lost: the sync writes its report last, after its records and logs are saved, and its
    // Tilt calls die with it (each child gets SIGKILL when the sync dies, process.rs).
    // SAFETY: no other thread runs yet, and SIG_DFL is the signal's own default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let running = (std::env::var("CARGO_PKG_NAME").ok(), std::env::var("CARGO_MANIFEST_DIR").ok());
    if let Some(problem) = another_copys_build(running, Utf8Path::new(env!("CARGO_MANIFEST_DIR"))) {
        eprintln!("error: {problem}");
        return ExitCode::from(sync::EXIT_ENVIRONMENT);
    }
    let flags = flags::Xtask::parse();
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
    let outcome = Shell::new().context("starting a shell").and_then(|sh| {
        warn_if_hooks_changed(&sh, &flags.command);
        match flags.command {
            flags::Command::Sync(sync) => sync.run(&sh),
            flags::Command::Status(status) => status.run(&sh),
            flags::Command::InstallHook(install) => install.run(&sh).map(|()| ExitCode::SUCCESS),
            flags::Command::UninstallHook(uninstall) => uninstall.run(&sh).map(|()| ExitCode::SUCCESS),
            flags::Command::UninstallAgent(uninstall) => uninstall.run(&sh).map(|()| ExitCode::SUCCESS),
            #[cfg(feature = "repo-only")]
            flags::Command::Demo(demo) => demo.run(&sh).map(|()| ExitCode::SUCCESS),
            #[cfg(feature = "repo-only")]
            flags::Command::Bench(bench) => bench.run(&sh).map(|()| ExitCode::SUCCESS),
            #[cfg(feature = "repo-only")]
            flags::Command::InstallInto(install) => install.run(&sh).map(|()| ExitCode::SUCCESS),
        }
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            let report = match interrupt::requested() {
                true => ErrorReport {
                    status: ErrorStatus::Interrupted,
                    message: "stopped by Ctrl-C before any step was triggered: nothing was built".to_owned(),
                    exit_code: sync::EXIT_INTERRUPTED,
                },
                false => ErrorReport {
                    status: ErrorStatus::Error,
                    message: format!("{err:#}"),
                    exit_code: sync::EXIT_ENVIRONMENT,
                },
            };
            let word = match report.status {
                ErrorStatus::Interrupted => "INTERRUPTED",
                ErrorStatus::Error => "error",
            };
            eprintln!("{word}: {}", report.message);
            if json {
                // A script reading stdout learns why too.
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(err) => eprintln!("error: printing the JSON report: {err}"),
                }
            }
            ExitCode::from(report.exit_code)
        }
    }
}

/// The hooks `install-hook` forwards are those the previous hooks folder had then: before a
/// sync or a status, say when that folder has changed since (a hook added there would not run).
fn warn_if_hooks_changed(sh: &Shell, command: &flags::Command) {
    let root = match command {
        flags::Command::Sync(sync) => &sync.root,
        flags::Command::Status(status) => &status.root,
        _ => return,
    };
    if let Some(change) = install::hook::changed_since_install(sh, root) {
        eprintln!("warning: {change}");
    }
}

/// Whether `cargo run` (which names the package and manifest it runs) ran a build of another
/// copy of the xtask: two clones or worktrees sharing one target directory (CARGO_TARGET_DIR) are
/// told apart by cargo only by their files' times, and this build would act on the other's
/// workspace.
fn another_copys_build((package, manifest_dir): (Option<String>, Option<String>), built: &Utf8Path) -> Option<String> {
    let running = Utf8PathBuf::from(manifest_dir.filter(|_| package.as_deref() == Some(env!("CARGO_PKG_NAME")))?);
    let resolved = |path: &Utf8Path| path.canonicalize_utf8().unwrap_or_else(|_| path.to_owned());
    (resolved(&running) != resolved(built)).then(|| {
        format!(
            "cargo ran the xtask built from {built}, not this one ({running}): the two copies share a target \
             directory (CARGO_TARGET_DIR) and cargo took that build for this one's. Run `cargo clean \
             --manifest-path {running}/Cargo.toml -p xtask -p tilt-log`, then the command again; to keep it from \
             recurring, give each clone its own target directory"
        )
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_of_another_copy_is_refused() {
        let built = Utf8Path::new("/src/citadel-a/xtask");
        let run =
            |package: &str, dir: &str| another_copys_build((Some(package.to_owned()), Some(dir.to_owned())), built);
        assert_eq!(run("xtask", "/src/citadel-a/xtask"), None);
        assert_eq!(
            run("sync-tests", "/src/tests"),
            None,
            "run by another package's process (a test), not by cargo run"
        );
        assert_eq!(another_copys_build((None, None), built), None, "run without cargo (the hook's SYNC_XTASK)");
        let other = run("xtask", "/src/citadel-b/xtask").unwrap();
        assert!(other
            .starts_with("cargo ran the xtask built from /src/citadel-a/xtask, not this one (/src/citadel-b/xtask)"));
        assert!(other.contains("cargo clean --manifest-path /src/citadel-b/xtask/Cargo.toml -p xtask -p tilt-log"));
    }
}
