//! `cargo xtask install-into DIR`, run from the xtask's own repository: puts into a Citadel work
//! tree exactly what the xtask needs — `xtask/` (a Cargo workspace of its own: sources, protocol,
//! lock file, profiles) and the `cargo xtask` alias merged into `.cargo/config.toml` — and
//! nothing else; Citadel's workspace, cargo commands and Docker builds do not change.
//! Also here: the per-clone `cargo xtask` alias inside each submodule, which `install-hook`
//! writes too.

use std::fs;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use crate::{flags, process::Bounded};

/// The alias, relative to the work tree's root (cargo resolves `--manifest-path` from the
/// current directory, so this one works from the root; see `submodule_aliases` for the rest).
const ALIAS: &str = "run --manifest-path xtask/Cargo.toml --";
/// Marks the per-clone alias files this tool writes in submodules.
const MARKER: &str = "# Written by `cargo xtask install-into` / `install-hook`";

impl flags::InstallInto {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let project = crate::project_root();
        let dir = self.dir.canonicalize_utf8().with_context(|| format!("{} does not exist", self.dir))?;
        let top = cmd!(sh, "git -C {dir} rev-parse --show-toplevel")
            .read_bounded()
            .with_context(|| format!("{dir} is not a git work tree: install into the root of a Citadel clone"))?;
        if Utf8Path::new(top.trim()) != dir {
            bail!("{dir} is inside the git work tree {}: install into its root", top.trim());
        }
        if dir == project {
            bail!("{dir} is the xtask's own repository: name a Citadel clone");
        }
        let mut written = Vec::new();
        copy_tree(&project.join("xtask"), &dir.join("xtask"), &mut written)?;
        remove_stale(&project.join("xtask"), &dir.join("xtask"), &mut written)?;
        if merge_alias(&dir.join(".cargo/config.toml"))? {
            written.push(dir.join(".cargo/config.toml"));
        }
        let submodules = submodule_aliases(sh, &dir)?;
        if written.is_empty() {
            println!("{dir} already has this xtask: nothing written");
        } else {
            println!("wrote into {dir}:");
            for path in &written {
                println!("  {}", path.strip_prefix(&dir).unwrap_or(path));
            }
        }
        for note in submodules {
            println!("{note}");
        }
        println!(
            "\nnext steps, in {dir}:\n  git add xtask .cargo && git commit -m 'Add cargo xtask sync'\n  \
             cargo xtask install-hook     # the pre-push hook (in .git: no tracked file changes)\n  \
             cargo xtask sync --plan      # what a sync would rebuild, and why"
        );
        Ok(())
    }
}

/// Copies `from` to `to` (but build output), writing only what differs.
fn copy_tree(from: &Utf8Path, to: &Utf8Path, written: &mut Vec<Utf8PathBuf>) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("creating {to}"))?;
    for entry in from.read_dir_utf8().with_context(|| format!("reading {from}"))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_name() == "target" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            copy_tree(entry.path(), &target, written)?;
            continue;
        }
        let bytes = fs::read(entry.path()).with_context(|| format!("reading {}", entry.path()))?;
        if fs::read(&target).ok().as_deref() != Some(bytes.as_slice()) {
            fs::write(&target, &bytes).with_context(|| format!("writing {target}"))?;
            written.push(target);
        }
    }
    Ok(())
}

/// Removes what an earlier install left in `to` that the xtask no longer has.
fn remove_stale(from: &Utf8Path, to: &Utf8Path, written: &mut Vec<Utf8PathBuf>) -> Result<()> {
    for entry in to.read_dir_utf8().with_context(|| format!("reading {to}"))? {
        let entry = entry?;
        if entry.file_name() == "target" {
            continue;
        }
        let source = from.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            if source.is_dir() {
                remove_stale(&source, entry.path(), written)?;
            } else {
                fs::remove_dir_all(entry.path()).with_context(|| format!("removing {}", entry.path()))?;
                written.push(entry.into_path());
            }
        } else if !source.exists() {
            fs::remove_file(entry.path()).with_context(|| format!("removing {}", entry.path()))?;
            written.push(entry.into_path());
        }
    }
    Ok(())
}

/// Adds `xtask` to the `[alias]` table of a cargo config file, keeping everything else as it
/// is (comments included). Returns whether the file changed.
fn merge_alias(path: &Utf8Path) -> Result<bool> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).with_context(|| format!("reading {path}")),
    };
    let merged = with_alias(&text).map_err(|why| anyhow::anyhow!("{path}: {why}"))?;
    if merged == text {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    }
    fs::write(path, merged).with_context(|| format!("writing {path}"))?;
    Ok(true)
}

/// `text` (a cargo config) with `alias.xtask` set to ours.
fn with_alias(text: &str) -> Result<String, String> {
    let table: toml::Table = toml::from_str(text).map_err(|err| format!("not valid TOML: {}", err.message()))?;
    let ours = format!("xtask = \"{ALIAS}\"");
    let alias = table.get("alias");
    if alias.and_then(|alias| alias.get("xtask")).and_then(toml::Value::as_str) == Some(ALIAS) {
        return Ok(text.to_owned());
    }
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.iter().position(|line| line.trim() == "[alias]" || line.trim().starts_with("[alias]"));
    let merged = match header {
        Some(header) => {
            let end = lines[header + 1..]
                .iter()
                .position(|line| line.trim_start().starts_with('['))
                .map_or(lines.len(), |at| header + 1 + at);
            let existing = (header + 1..end).find(|&at| {
                let line = lines[at].trim_start();
                line.strip_prefix("xtask").is_some_and(|rest| rest.trim_start().starts_with('='))
            });
            let mut out: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
            match existing {
                Some(at) => out[at] = ours,
                None => out.insert(header + 1, ours),
            }
            out.join("\n") + "\n"
        }
        None if alias.is_some() => {
            return Err("it defines `alias` without an `[alias]` table: add `xtask = \"run --manifest-path \
                        xtask/Cargo.toml --\"` to it by hand"
                .to_owned())
        }
        None => {
            let separator = if text.is_empty() || text.ends_with("\n\n") {
                ""
            } else if text.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{text}{separator}[alias]\n{ours}\n")
        }
    };
    let check: toml::Table =
        toml::from_str(&merged).map_err(|err| format!("merging the alias broke it: {}", err.message()))?;
    match check.get("alias").and_then(|alias| alias.get("xtask")).and_then(toml::Value::as_str) {
        Some(ALIAS) => Ok(merged),
        _ => Err("merging the alias did not set it".to_owned()),
    }
}

/// Cargo resolves an alias's `--manifest-path` from the current directory, so the committed
/// alias works from the work tree's root only (rust-lang/cargo#15083). Inside each checked-out
/// submodule (its own cargo workspace), a per-clone `.cargo/config.toml` with the absolute path
/// makes `cargo xtask` work at any depth; git ignores it (the submodule's `info/exclude`).
/// Returns what it did, in words.
pub fn submodule_aliases(sh: &Shell, root: &Utf8Path) -> Result<Vec<String>> {
    let staged = cmd!(sh, "git -C {root} ls-files -z --stage").read_bounded()?;
    let manifest = root.join("xtask/Cargo.toml");
    let mut notes = Vec::new();
    for entry in staged.split('\0') {
        let Some((meta, path)) = entry.split_once('\t') else { continue };
        if !meta.starts_with("160000") {
            continue;
        }
        let submodule = root.join(path);
        if !submodule.join(".git").exists() {
            continue;
        }
        let config = submodule.join(".cargo/config.toml");
        let text = format!(
            "{MARKER}: `cargo xtask` from inside this submodule.\n[alias]\nxtask = \"run --manifest-path {} --\"\n",
            manifest_without_spaces(&manifest)?
        );
        match fs::read_to_string(&config) {
            Ok(existing) if existing == text => continue,
            Ok(existing) if !existing.starts_with(MARKER) => {
                notes.push(format!("left {config} as it is (not ours): `cargo xtask` works from {root} there"));
                continue;
            }
            _ => {}
        }
        fs::create_dir_all(submodule.join(".cargo")).with_context(|| format!("creating {submodule}/.cargo"))?;
        fs::write(&config, text).with_context(|| format!("writing {config}"))?;
        let exclude =
            cmd!(sh, "git -C {submodule} rev-parse --path-format=absolute --git-path info/exclude").read_bounded()?;
        let exclude = Utf8PathBuf::from(exclude.trim());
        let listed = fs::read_to_string(&exclude).unwrap_or_default();
        if !listed.lines().any(|line| line.trim() == "/.cargo/") {
            if let Some(dir) = exclude.parent() {
                fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
            }
            let separator = if listed.is_empty() || listed.ends_with('\n') { "" } else { "\n" };
            fs::write(&exclude, format!("{listed}{separator}/.cargo/\n"))
                .with_context(|| format!("writing {exclude}"))?;
        }
        notes.push(format!("`cargo xtask` works inside {path} too ({config}, ignored by git there)"));
    }
    Ok(notes)
}

/// The xtask's manifest by a path without whitespace: cargo splits a string alias at spaces,
/// and an array alias would be joined to the root's one, not replace it. A path with spaces is
/// reached through a link in cargo's home (`~/.cargo/xtask-links`).
fn manifest_without_spaces(manifest: &Utf8Path) -> Result<Utf8PathBuf> {
    if !manifest.as_str().contains(char::is_whitespace) {
        return Ok(manifest.to_owned());
    }
    let home = std::env::var("CARGO_HOME")
        .map(Utf8PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|home| Utf8PathBuf::from(home).join(".cargo")))
        .context("finding cargo's home (CARGO_HOME, HOME) for a link to the xtask")?;
    let mut name: String = manifest.as_str().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    name = name.trim_matches('-').chars().rev().take(60).collect::<String>().chars().rev().collect();
    let link = home.join("xtask-links").join(name);
    if link.as_str().contains(char::is_whitespace) {
        bail!("{manifest} and cargo's home {home} both have spaces: `cargo xtask` works from the root only");
    }
    let target = manifest.parent().context("the manifest has a directory")?;
    fs::create_dir_all(link.parent().context("a link's directory")?)
        .with_context(|| format!("creating {home}/xtask-links"))?;
    if fs::read_link(&link).ok().as_deref() != Some(target.as_std_path()) {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).with_context(|| format!("linking {link} to {target}"))?;
    }
    Ok(link.join("Cargo.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alias_is_merged_keeping_what_is_there() {
        let ours = format!("xtask = \"{ALIAS}\"");
        assert_eq!(with_alias("").unwrap(), format!("[alias]\n{ours}\n"));
        let kept = "# Citadel's settings\n[build]\njobs = 2 # two cores\n";
        assert_eq!(with_alias(kept).unwrap(), format!("{kept}\n[alias]\n{ours}\n"));
        let aliases = "[alias]\n# ours below\nb = \"build\"\n\n[net]\nretry = 3\n";
        assert_eq!(
            with_alias(aliases).unwrap(),
            format!("[alias]\n{ours}\n# ours below\nb = \"build\"\n\n[net]\nretry = 3\n")
        );
        let old = "[alias]\nxtask = \"run --package xtask --\"\n";
        assert_eq!(with_alias(old).unwrap(), format!("[alias]\n{ours}\n"));
        let done = with_alias(aliases).unwrap();
        assert_eq!(with_alias(&done).unwrap(), done, "idempotent");
        assert!(with_alias("alias.b = \"build\"\n").unwrap_err().contains("by hand"));
        assert!(with_alias("[alias\n").unwrap_err().starts_with("not valid TOML"));
    }
}
