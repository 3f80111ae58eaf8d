//! `cargo xtask install-hook` / `uninstall-hook`: a git pre-push hook that syncs what a push
//! changes, changing no tracked file and no file in the work tree. The hooks live in a folder
//! inside `.git`, `core.hooksPath` is set (locally) to it, and each hook the previous hooks
//! folder has (Citadel's `.githooks`, or `.git/hooks`) gets a forwarder there, with the same
//! arguments and input; the pre-push hook runs the previous one first, then the sync. Every
//! sync and status checks that the previous folder still has those hooks, and says so when not.
//! Uninstalling restores `core.hooksPath` exactly as it was.

use std::fs;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use xshell::{cmd, Shell};

use crate::{flags, install, process::Bounded};

/// The folder, inside the repository's git directory.
const FOLDER: &str = "xtask-hooks";
/// What `core.hooksPath` was before, recorded in the folder.
const RECORD: &str = "previous-hooks-path.json";
/// Every hook git runs (githooks(5)) but pre-push, ours: those the previous folder has are
/// forwarded there.
const HOOKS: [&str; 27] = [
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
];

/// `core.hooksPath` before install: the repository's own value, if it had one, and where git
/// looked for hooks then (as configured: relative to the work tree, or absolute; empty for the
/// default `hooks` folder of the git directory).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Previous {
    local: Option<String>,
    effective: String,
}

struct Hooks {
    root: Utf8PathBuf,
    /// The repository's git directory, shared by its worktrees.
    common: Utf8PathBuf,
    folder: Utf8PathBuf,
}

impl Hooks {
    fn find(sh: &Shell, root: &Option<Utf8PathBuf>) -> Result<Hooks> {
        let root = root.clone().unwrap_or_else(crate::project_root);
        let found = cmd!(sh, "git -C {root} rev-parse --path-format=absolute --git-common-dir --show-toplevel")
            .read_bounded()
            .with_context(|| format!("{root} is not a git repository: no hook to install"))?;
        let mut lines = found.lines().map(Utf8PathBuf::from);
        let (Some(common), Some(top)) = (lines.next(), lines.next()) else {
            bail!("{root} is not a git work tree: no hook to install");
        };
        Ok(Hooks { root: top, folder: common.join(FOLDER), common })
    }

    /// Where git looked for hooks before install.
    fn previous_folder(&self, previous: &Previous) -> Utf8PathBuf {
        match previous.effective.as_str() {
            "" => self.common.join("hooks"),
            path => self.root.join(path),
        }
    }

    fn read_previous(&self) -> Result<Previous> {
        let record = self.folder.join(RECORD);
        let text = fs::read_to_string(&record).with_context(|| format!("reading {record}"))?;
        serde_json::from_str(&text).with_context(|| format!("reading {record}"))
    }

    fn hooks_path(&self, sh: &Shell, scope: &str) -> Option<String> {
        let root = &self.root;
        cmd!(sh, "git -C {root} config {scope} --get core.hooksPath")
            .read_bounded()
            .ok()
            .map(|value| value.trim().to_owned())
    }

    fn installed(&self, sh: &Shell) -> bool {
        self.hooks_path(sh, "--local").as_deref() == Some(self.folder.as_str())
    }
}

/// Where the previous hooks are, as a shell expression run by git in the work tree's root.
fn shell_previous_folder(previous: &Previous) -> String {
    match previous.effective.as_str() {
        "" => "\"$(git rev-parse --git-common-dir)/hooks\"".to_owned(),
        path if path.starts_with('/') => shell_quote(path),
        path => format!("\"$(git rev-parse --show-toplevel)\"/{}", shell_quote(path)),
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn forwarder(name: &str, previous: &Previous) -> String {
    format!(
        "#!/bin/sh\n# cargo xtask install-hook: forwards to the hooks in effect before it.\n\
         previous={}\n[ -x \"$previous/{name}\" ] && exec \"$previous/{name}\" \"$@\"\nexit 0\n",
        shell_previous_folder(previous)
    )
}

fn pre_push(previous: &Previous, strict: bool) -> String {
    let strict = if strict { " --strict" } else { "" };
    format!(
        r#"#!/bin/sh
# cargo xtask install-hook: the pre-push hook. It runs the pre-push hook in effect before it first
# (same arguments, same input: the refs being pushed), then `cargo xtask sync` planned against
# those refs. `git push --no-verify` skips both. SYNC_XTASK names a prebuilt xtask to skip cargo.
refs=$(cat)
previous={previous}
if [ -x "$previous/pre-push" ]; then
    printf '%s\n' "$refs" | "$previous/pre-push" "$@" || exit $?
fi
root=$(git rev-parse --show-toplevel) || exit 1
if [ -n "$SYNC_XTASK" ]; then
    printf '%s\n' "$refs" | "$SYNC_XTASK" sync --root "$root" --pre-push{strict}
else
    cd "$root" && printf '%s\n' "$refs" | cargo xtask sync --root "$root" --pre-push{strict}
fi
"#,
        previous = shell_previous_folder(previous)
    )
}

/// The hooks `folder` has, of those git runs (pre-push aside): a file by that name, executable
/// or not (git warns of one that is not; the forwarder then runs it once it is).
fn hooks_in(folder: &Utf8Path) -> Vec<&'static str> {
    HOOKS.into_iter().filter(|name| folder.join(name).is_file()).collect()
}

/// When the previous hooks folder no longer has the hooks forwarded at install (a checkout
/// added one to `.githooks`, say), what changed, and what to do.
pub fn changed_since_install(sh: &Shell, root: &Option<Utf8PathBuf>) -> Option<String> {
    let hooks = Hooks::find(sh, root).ok()?;
    if !hooks.folder.join(RECORD).exists() || !hooks.installed(sh) {
        return None;
    }
    let previous_folder = hooks.previous_folder(&hooks.read_previous().ok()?);
    let (forwarded, there) = (hooks_in(&hooks.folder), hooks_in(&previous_folder));
    let added: Vec<&str> = there.iter().copied().filter(|name| !forwarded.contains(name)).collect();
    let gone: Vec<&str> = forwarded.iter().copied().filter(|name| !there.contains(name)).collect();
    let said = match (added.is_empty(), gone.is_empty()) {
        (true, true) => return None,
        (false, true) => format!("{} not forwarded: git does not run it now", added.join(", ")),
        (true, false) => format!("{} gone (its forwarder does nothing)", gone.join(", ")),
        (false, false) => {
            format!("{} not forwarded: git does not run it now; {} gone", added.join(", "), gone.join(", "))
        }
    };
    Some(format!(
        "the hooks in {previous_folder} changed since `cargo xtask install-hook`: {said}. Run `cargo xtask \
         install-hook` again to forward exactly those there"
    ))
}

impl flags::InstallHook {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let hooks = Hooks::find(sh, &self.root)?;
        let record = hooks.folder.join(RECORD);
        let previous = if hooks.installed(sh) {
            hooks.read_previous()?
        } else {
            let local = hooks.hooks_path(sh, "--local");
            let effective = local.clone().or_else(|| hooks.hooks_path(sh, "")).unwrap_or_default();
            Previous { local, effective }
        };
        fs::create_dir_all(&hooks.folder).with_context(|| format!("creating {}", hooks.folder))?;
        fs::write(&record, serde_json::to_string_pretty(&previous)? + "\n")
            .with_context(|| format!("writing {record}"))?;
        // Only the hooks there are forwarded: a forwarder for a hook that does not exist is a
        // shell started for nothing, on every ref update (reference-transaction) or index write.
        let previous_folder = hooks.previous_folder(&previous);
        let forwarded = hooks_in(&previous_folder);
        for name in HOOKS {
            let path = hooks.folder.join(name);
            if forwarded.contains(&name) {
                write_executable(&path, &forwarder(name, &previous))?;
            } else if path.exists() {
                fs::remove_file(&path).with_context(|| format!("removing {path}"))?;
            }
        }
        write_executable(&hooks.folder.join("pre-push"), &pre_push(&previous, self.strict))?;
        let (root, folder) = (&hooks.root, &hooks.folder);
        cmd!(sh, "git -C {root} config --local core.hooksPath {folder}").run_bounded()?;
        let was = match &previous.local {
            Some(path) => format!("core.hooksPath was {path}"),
            None => "core.hooksPath was not set here".to_owned(),
        };
        let first = match previous_folder.join("pre-push").is_file() {
            true => "its pre-push hook still runs first",
            false => "it has no pre-push hook",
        };
        let others = match forwarded.is_empty() {
            true => "no other hook to forward".to_owned(),
            false => format!("forwarding {} there", forwarded.join(", ")),
        };
        println!(
            "installed the pre-push hook in {folder} (core.hooksPath now points there; {was}; in \
             {previous_folder}, {first}; {others}). A push now syncs what it changes; `git push --no-verify` \
             skips it; undo: cargo xtask uninstall-hook"
        );
        for note in install::alias::submodule_aliases(sh, root)? {
            println!("{note}");
        }
        Ok(())
    }
}

impl flags::UninstallHook {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let hooks = Hooks::find(sh, &self.root)?;
        if !hooks.folder.exists() {
            bail!("no hook installed by `cargo xtask install-hook` in {}", hooks.root);
        }
        let (root, folder) = (&hooks.root, &hooks.folder);
        if hooks.installed(sh) {
            let previous = hooks.read_previous()?;
            match &previous.local {
                Some(path) => cmd!(sh, "git -C {root} config --local core.hooksPath {path}").run_bounded()?,
                None => cmd!(sh, "git -C {root} config --local --unset core.hooksPath").run_bounded()?,
            }
            println!("restored core.hooksPath ({})", previous.local.as_deref().unwrap_or("not set"));
        } else {
            println!("core.hooksPath no longer points to {folder} (changed since): left as it is");
        }
        fs::remove_dir_all(folder).with_context(|| format!("removing {folder}"))?;
        println!("removed {folder}");
        Ok(())
    }
}

fn write_executable(path: &Utf8Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).with_context(|| format!("writing {path}"))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).with_context(|| format!("making {path} executable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_forward_to_where_git_looked_before() {
        let relative = Previous { local: Some(".githooks".to_owned()), effective: ".githooks".to_owned() };
        assert!(
            forwarder("pre-commit", &relative).contains("previous=\"$(git rev-parse --show-toplevel)\"/'.githooks'")
        );
        let default = Previous { local: None, effective: String::new() };
        assert!(forwarder("commit-msg", &default).contains("previous=\"$(git rev-parse --git-common-dir)/hooks\""));
        let absolute = Previous { local: None, effective: "/etc/git hooks".to_owned() };
        assert!(pre_push(&absolute, true).contains("previous='/etc/git hooks'"));
        assert!(pre_push(&absolute, true).contains("--pre-push --strict"));
        assert!(!HOOKS.contains(&"pre-push"), "pre-push is the hook itself");
    }
}
