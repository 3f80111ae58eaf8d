//! `cargo xtask demo`: a real sync in a throwaway Citadel-shaped git workspace, against the
//! bundled Tilt stand-in: once where every build passes, once where the server fails to compile.

use std::{
    fs,
    process::{Command, Stdio},
};

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use crate::flags;

/// Where the workspace template and the scenarios live, relative to the project root.
pub(crate) const FIXTURE: &str = "tests/fixtures/citadel";
const SCENARIOS: [(&str, &str); 2] = [
    ("every build passes", "tests/scenarios/demo-happy.toml"),
    ("the server fails to compile", "tests/scenarios/demo-failing.toml"),
];

impl flags::Demo {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let project = crate::project_root();
        sh.change_dir(&project);
        cmd!(sh, "cargo build --quiet --package sync-tests --bin tilt")
            .quiet()
            .run()
            .context("building the Tilt stand-in")?;
        let tilt = project.join("target/debug/tilt");
        let xtask = Utf8PathBuf::try_from(std::env::current_exe().context("finding this program")?)
            .context("this program's path is not UTF-8")?;

        let demo = project.join("target/xtask-demo");
        for (index, (title, scenario)) in SCENARIOS.iter().enumerate() {
            let workspace = demo.join(format!("citadel-{}", index + 1));
            make_workspace(sh, &project.join(FIXTURE), &workspace)?;
            let scenario = project.join(scenario);
            println!("\n=== Demo {}: {title} ===", index + 1);
            println!("$ cargo xtask sync --root {workspace}   (Tilt stand-in scenario: {scenario})\n");
            let state = demo.join(format!("tilt-state-{}", index + 1));
            let _ = fs::remove_dir_all(&state);
            let sync = cmd!(sh, "{xtask} sync --root {workspace}")
                .env("SYNC_TILT", &tilt)
                .env("TILT_STANDIN_SCENARIO", &scenario)
                .env("TILT_STANDIN_STATE", &state)
                .env_remove("TILT_PORT");
            // Progress (stderr) shows live; the report (stdout) is printed with the saved log.
            let run = Command::from(sync).stderr(Stdio::inherit()).output().context("running the sync")?;
            print!("{}", String::from_utf8_lossy(&run.stdout));
            println!("(exit status {})", run.status.code().unwrap_or(-1));
            for log in error_logs(&workspace.join("logs"))? {
                println!("\n--- {log} ---\n{}", fs::read_to_string(&log).with_context(|| format!("reading {log}"))?);
            }
        }
        println!("\nThe demo workspaces, and their logs/, are under {demo}.");
        Ok(())
    }
}

/// A fresh copy of the fixture, committed as a git repository.
pub(crate) fn make_workspace(sh: &Shell, fixture: &Utf8Path, workspace: &Utf8Path) -> Result<()> {
    if workspace.exists() {
        fs::remove_dir_all(workspace).with_context(|| format!("removing the old demo {workspace}"))?;
    }
    copy_tree(fixture, workspace)?;
    let _dir = sh.push_dir(workspace);
    cmd!(sh, "git init --quiet --initial-branch=main").quiet().run()?;
    cmd!(sh, "git add .").quiet().run()?;
    cmd!(sh, "git -c user.name=Demo -c user.email=demo@example.com commit --quiet -m 'Citadel-shaped demo'")
        .quiet()
        .run()?;
    Ok(())
}

fn copy_tree(from: &Utf8Path, to: &Utf8Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {to}"))?;
    for entry in from.read_dir_utf8().with_context(|| format!("reading {from}"))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).with_context(|| format!("copying {} to {target}", entry.path()))?;
        }
    }
    Ok(())
}

fn error_logs(dir: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
    let Ok(entries) = dir.read_dir_utf8() else {
        return Ok(Vec::new());
    };
    let mut logs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_name().starts_with("sync-error-") {
            logs.push(entry.into_path());
        }
    }
    logs.sort();
    Ok(logs)
}
