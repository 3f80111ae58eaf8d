//! The sync agent Citadel's `CLAUDE.md` tells every coding agent to run after a backend change
//! (`.claude/agents/sync.md`): where it is, where `install-into --agent` keeps the file it
//! replaced (rewire.rs writes ours), and `cargo xtask uninstall-agent`, which puts that file back
//! byte for byte.

use std::{fs, io};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use crate::{flags, process::Bounded};

/// The agent's file, from the work tree's root.
pub const AGENT: &str = ".claude/agents/sync.md";
/// Where the file it replaced is kept, under the git directory (shared by worktrees): outside
/// the work tree, so that neither `git status` nor Claude Code ever sees it.
const KEPT: &str = "xtask-agent/sync.md";
/// Opens the body of the agent this tool writes: how a later run knows the file is ours.
pub const MARKER: &str = "<!-- Written by `cargo xtask install-into --agent`";

/// Where the file the agent replaced is kept, for the work tree `dir`.
pub fn kept_file(sh: &Shell, dir: &Utf8Path) -> Result<Utf8PathBuf> {
    let common = cmd!(sh, "git -C {dir} rev-parse --path-format=absolute --git-common-dir")
        .read_bounded()
        .with_context(|| format!("{dir} is not a git work tree: the agent lives in a Citadel clone"))?;
    Ok(Utf8PathBuf::from(common.trim()).join(KEPT))
}

impl flags::UninstallAgent {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let dir = crate::workspace_root(&self.dir)?;
        let top = cmd!(sh, "git -C {dir} rev-parse --show-toplevel")
            .read_bounded()
            .with_context(|| format!("{dir} is not a git work tree: the agent lives in a Citadel clone"))?;
        let top = Utf8PathBuf::from(top.trim());
        let (agent, kept) = (top.join(AGENT), kept_file(sh, &top)?);
        let previous = match fs::read(&kept) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(
                "no agent kept in {kept}: `cargo xtask install-into --agent` did not rewire {AGENT} in this clone. \
                 If the rewired agent came in a commit, its previous version is in git's history: `git log -p -- \
                 {AGENT}`"
            ),
            Err(err) => return Err(err).with_context(|| format!("reading {kept}")),
        };
        if fs::read_to_string(&agent).is_ok_and(|current| !current.contains(MARKER)) {
            bail!(
                "{agent} is no longer the agent `install-into --agent` wrote (it changed since): left as it is. The \
                 one it replaced is kept in {kept}"
            );
        }
        if let Some(folder) = agent.parent() {
            fs::create_dir_all(folder).with_context(|| format!("creating {folder}"))?;
        }
        fs::write(&agent, previous).with_context(|| format!("writing {agent}"))?;
        fs::remove_file(&kept).with_context(|| format!("removing {kept}"))?;
        if let Some(folder) = kept.parent() {
            // Only when empty: nothing else of ours lives there.
            let _ = fs::remove_dir(folder);
        }
        println!("restored {AGENT} in {top}, byte for byte as it was before `cargo xtask install-into --agent`");
        Ok(())
    }
}
