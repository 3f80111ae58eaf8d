//! Real syncs against the bundled Tilt stand-in (`tests/src/bin/tilt.rs`), for `cargo xtask
//! demo` and `cargo xtask bench`: a throwaway Citadel-shaped git workspace, and the command
//! that syncs it.

use std::{fs, time::Duration};

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Cmd, Shell};

use crate::{tilt::model::ResourceStatus, tilt::Tilt};

/// The Citadel-shaped workspace template, relative to the project root.
const FIXTURE: &str = "tests/fixtures/citadel";

pub struct StandIn {
    project: Utf8PathBuf,
    /// Cargo's target directory: the stand-in's, and where demo and bench keep their workspaces.
    pub target: Utf8PathBuf,
    tilt: Utf8PathBuf,
    scenario: Utf8PathBuf,
    xtask: Utf8PathBuf,
}

impl StandIn {
    /// Builds the stand-in in `target_dir`, else where cargo would (CARGO_TARGET_DIR,
    /// `build.target-dir`, `target/`), and takes its programs' paths from cargo's own report of
    /// the build, never from a guess at its layout. This program is the xtask that syncs.
    pub fn build(sh: &Shell, target_dir: Option<&Utf8Path>) -> Result<StandIn> {
        let project = crate::project_root();
        sh.change_dir(&project);
        let target = match target_dir {
            Some(dir) => dir.to_owned(),
            None => target_directory(sh)?,
        };
        let built = cmd!(
            sh,
            "cargo build --quiet --package sync-tests --bin tilt --bin scenario --target-dir {target}
                --message-format json-render-diagnostics"
        )
        .quiet()
        .read()
        .context("building the Tilt stand-in")?;
        let xtask = Utf8PathBuf::try_from(std::env::current_exe().context("finding this program")?)
            .context("this program's path is not UTF-8")?;
        Ok(StandIn {
            tilt: executable(&built, "tilt")?,
            scenario: executable(&built, "scenario")?,
            project,
            target,
            xtask,
        })
    }

    /// Writes the stand-in's named scenario (`demo-happy`, `bench --build-ms 3000`, …: the
    /// typed scenarios the tests share) to `path`.
    pub fn write_scenario(&self, sh: &Shell, path: &Utf8Path, name_and_flags: &[&str]) -> Result<()> {
        let program = &self.scenario;
        let text = cmd!(sh, "{program} {name_and_flags...}")
            .quiet()
            .read()
            .with_context(|| format!("making the stand-in's scenario `{}`", name_and_flags.join(" ")))?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        }
        fs::write(path, text + "\n").with_context(|| format!("writing {path}"))
    }

    /// A fresh copy of the fixture at `workspace`, committed as a git repository.
    pub fn make_workspace(&self, sh: &Shell, workspace: &Utf8Path) -> Result<()> {
        if workspace.exists() {
            fs::remove_dir_all(workspace).with_context(|| format!("removing the old {workspace}"))?;
        }
        copy_tree(&self.project.join(FIXTURE), workspace)?;
        let _dir = sh.push_dir(workspace);
        cmd!(sh, "git init --quiet --initial-branch=main").quiet().run()?;
        cmd!(sh, "git add .").quiet().run()?;
        cmd!(sh, "git -c user.name=Demo -c user.email=demo@example.com commit --quiet -m 'Citadel-shaped workspace'")
            .quiet()
            .run()?;
        Ok(())
    }

    /// `xtask sync --root WORKSPACE ARGS…` against the stand-in playing `scenario`, with its
    /// state (reset here) in `state`.
    pub fn sync<'a>(
        &self,
        sh: &'a Shell,
        workspace: &Utf8Path,
        scenario: &Utf8Path,
        state: &Utf8Path,
        args: &[&str],
    ) -> Cmd<'a> {
        let _ = fs::remove_dir_all(state);
        let xtask = &self.xtask;
        cmd!(sh, "{xtask} sync --root {workspace} {args...}")
            .env("SYNC_TILT", &self.tilt)
            .env("TILT_STANDIN_SCENARIO", scenario)
            .env("TILT_STANDIN_STATE", state)
            .env_remove("TILT_PORT")
    }

    /// Every resource's status as the stand-in playing `scenario` with `state` shows it now.
    pub fn statuses(&self, scenario: &Utf8Path, state: &Utf8Path) -> Result<Vec<ResourceStatus>> {
        let sh = Shell::new()?;
        sh.set_var("TILT_STANDIN_SCENARIO", scenario);
        sh.set_var("TILT_STANDIN_STATE", state);
        sh.set_var("TILT_PORT", "");
        let tilt = Tilt::new(&sh, self.tilt.clone(), None, Duration::from_secs(30));
        tilt.state().map(|state| state.statuses).context("reading the stand-in's statuses")
    }
}

/// The target directory cargo uses for this repository's workspace, as cargo says.
fn target_directory(sh: &Shell) -> Result<Utf8PathBuf> {
    let metadata = cmd!(sh, "cargo metadata --format-version 1 --no-deps")
        .quiet()
        .read()
        .context("asking cargo for the target directory")?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata).context("reading `cargo metadata`")?;
    metadata["target_directory"].as_str().map(Utf8PathBuf::from).context("`cargo metadata` names no target_directory")
}

/// The program `name` that cargo built, from the build's JSON messages.
fn executable(messages: &str, name: &str) -> Result<Utf8PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == name)
        .find_map(|message| message["executable"].as_str().map(Utf8PathBuf::from))
        .with_context(|| format!("cargo built no program named `{name}` (cargo build --message-format json)"))
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
