//! `cargo xtask install-hook` / `uninstall-hook`: a git pre-push hook that syncs what a push
//! changes, changing no tracked file and no file in the work tree. The hooks live in a folder
//! inside `.git`, `core.hooksPath` is set (locally) to it, and every hook name there forwards to
//! the hooks that were in effect before (Citadel's `.githooks`), with the same arguments and
//! input; the pre-push hook runs the previous one first, then the sync. Uninstalling restores
//! `core.hooksPath` exactly as it was.

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
/// Every hook git runs (githooks(5)): each forwards to the previous hooks.
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
    folder: Utf8PathBuf,
}

impl Hooks {
    fn find(sh: &Shell, root: &Option<Utf8PathBuf>) -> Result<Hooks> {
        let root = root.clone().unwrap_or_else(crate::project_root);
        let common = cmd!(sh, "git -C {root} rev-parse --path-format=absolute --git-common-dir")
            .read_bounded()
            .with_context(|| format!("{root} is not a git repository: no hook to install"))?;
        let top = cmd!(sh, "git -C {root} rev-parse --show-toplevel").read_bounded()?;
        Ok(Hooks { root: Utf8PathBuf::from(top.trim()), folder: Utf8PathBuf::from(common.trim()).join(FOLDER) })
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
fn previous_folder(previous: &Previous) -> String {
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
        previous_folder(previous)
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
        previous = previous_folder(previous)
    )
}

impl flags::InstallHook {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let hooks = Hooks::find(sh, &self.root)?;
        let record = hooks.folder.join(RECORD);
        let previous = if hooks.installed(sh) {
            let text = fs::read_to_string(&record).with_context(|| format!("reading {record}"))?;
            serde_json::from_str(&text).with_context(|| format!("reading {record}"))?
        } else {
            let local = hooks.hooks_path(sh, "--local");
            let effective = local.clone().or_else(|| hooks.hooks_path(sh, "")).unwrap_or_default();
            Previous { local, effective }
        };
        fs::create_dir_all(&hooks.folder).with_context(|| format!("creating {}", hooks.folder))?;
        fs::write(&record, serde_json::to_string_pretty(&previous)? + "\n")
            .with_context(|| format!("writing {record}"))?;
        for name in HOOKS {
            write_executable(&hooks.folder.join(name), &forwarder(name, &previous))?;
        }
        write_executable(&hooks.folder.join("pre-push"), &pre_push(&previous, self.strict))?;
        let (root, folder) = (&hooks.root, &hooks.folder);
        cmd!(sh, "git -C {root} config --local core.hooksPath {folder}").run_bounded()?;
        let was = match &previous.local {
            Some(path) => format!("core.hooksPath was {path}"),
            None => "core.hooksPath was not set here".to_owned(),
        };
        println!(
            "installed the pre-push hook in {folder} (core.hooksPath now points there; {was}, and those hooks \
             still run first). A push now syncs what it changes; `git push --no-verify` skips it; undo: cargo \
             xtask uninstall-hook"
        );
        for note in install::into::submodule_aliases(sh, root)? {
            println!("{note}");
        }
        Ok(())
    }
}

impl flags::UninstallHook {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let hooks = Hooks::find(sh, &self.root)?;
        let record = hooks.folder.join(RECORD);
        if !hooks.folder.exists() {
            bail!("no hook installed by `cargo xtask install-hook` in {}", hooks.root);
        }
        let (root, folder) = (&hooks.root, &hooks.folder);
        if hooks.installed(sh) {
            let text = fs::read_to_string(&record).with_context(|| format!("reading {record}"))?;
            let previous: Previous = serde_json::from_str(&text).with_context(|| format!("reading {record}"))?;
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
