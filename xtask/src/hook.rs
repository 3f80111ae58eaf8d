//! `cargo xtask install-hook` / `uninstall-hook`: a git pre-push hook that syncs what the push
//! changes. It goes where git looks (`core.hooksPath` honoured), chains to the hook already
//! there (which runs first, with the same arguments and input, and can stop the push), and is
//! removed by restoring that hook.

use std::fs;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use crate::flags;

/// Marks a hook as ours: only a hook carrying it is ever rewritten or removed.
const MARKER: &str = "# cargo-xtask-sync pre-push hook";
/// Where the hook that was there before is kept, and run from.
const PREVIOUS: &str = "pre-push.before-xtask-sync";

fn hook_script(strict: bool) -> String {
    let strict = if strict { " --strict" } else { "" };
    format!(
        r#"#!/bin/sh
{MARKER}: written by `cargo xtask install-hook`; `cargo xtask uninstall-hook` restores
# the hook that was here. It runs that hook first (same arguments, same standard input: the refs
# being pushed), then `cargo xtask sync` planned against those refs. Set SYNC_XTASK to the path
# of a prebuilt xtask binary to skip cargo.
refs=$(cat)
previous="$(dirname "$0")/{PREVIOUS}"
if [ -x "$previous" ]; then
    printf '%s\n' "$refs" | "$previous" "$@" || exit $?
fi
root=$(git rev-parse --show-toplevel) || exit 1
if [ -n "$SYNC_XTASK" ]; then
    printf '%s\n' "$refs" | "$SYNC_XTASK" sync --root "$root" --pre-push{strict}
else
    printf '%s\n' "$refs" | cargo xtask sync --root "$root" --pre-push{strict}
fi
"#
    )
}

struct Hooks {
    dir: Utf8PathBuf,
}

impl Hooks {
    fn find(sh: &Shell, root: &Option<Utf8PathBuf>) -> Result<Hooks> {
        let root = root.clone().unwrap_or_else(crate::project_root);
        let dir = cmd!(sh, "git -C {root} rev-parse --path-format=absolute --git-path hooks")
            .quiet()
            .read()
            .with_context(|| format!("{root} is not a git repository: no hook to install"))?;
        Ok(Hooks { dir: Utf8PathBuf::from(dir) })
    }

    fn hook(&self) -> Utf8PathBuf {
        self.dir.join("pre-push")
    }

    fn previous(&self) -> Utf8PathBuf {
        self.dir.join(PREVIOUS)
    }
}

fn is_ours(path: &Utf8Path) -> bool {
    fs::read_to_string(path).is_ok_and(|text| text.contains(MARKER))
}

impl flags::InstallHook {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let hooks = Hooks::find(sh, &self.root)?;
        let (hook, previous) = (hooks.hook(), hooks.previous());
        fs::create_dir_all(&hooks.dir).with_context(|| format!("creating {}", hooks.dir))?;
        if hook.exists() && !is_ours(&hook) {
            if previous.exists() && !self.force {
                bail!(
                    "{hook} was not written by this tool and {previous} already exists, so it cannot be kept \
                     aside to chain to: remove or merge one of them, or pass --force to replace {previous} with {hook}"
                );
            }
            fs::rename(&hook, &previous).with_context(|| format!("moving {hook} aside to {previous}"))?;
            println!("kept the existing hook as {previous}: it runs first, and can still stop a push");
        }
        let updating = hook.exists();
        fs::write(&hook, hook_script(self.strict)).with_context(|| format!("writing {hook}"))?;
        make_executable(&hook)?;
        let verb = if updating { "updated" } else { "installed" };
        println!(
            "{verb} the pre-push hook {hook}: a push now syncs what it changes (undo: cargo xtask uninstall-hook)"
        );
        Ok(())
    }
}

impl flags::UninstallHook {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let hooks = Hooks::find(sh, &self.root)?;
        let (hook, previous) = (hooks.hook(), hooks.previous());
        if hook.exists() && !is_ours(&hook) {
            bail!("{hook} was not written by `cargo xtask install-hook`: left as it is");
        }
        if hook.exists() {
            fs::remove_file(&hook).with_context(|| format!("removing {hook}"))?;
        }
        if previous.exists() {
            fs::rename(&previous, &hook).with_context(|| format!("restoring {previous} to {hook}"))?;
            println!("restored the previous pre-push hook {hook}");
        } else {
            println!("removed the pre-push hook {hook}");
        }
        Ok(())
    }
}

fn make_executable(path: &Utf8Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = fs::metadata(path).with_context(|| format!("reading {path}"))?.permissions();
    permissions.set_mode(permissions.mode() | 0o755);
    fs::set_permissions(path, permissions).with_context(|| format!("making {path} executable"))
}
