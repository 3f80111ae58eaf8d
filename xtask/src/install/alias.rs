//! The per-clone `cargo xtask` alias inside each checked-out submodule, which `install-into`
//! and `install-hook` write: cargo resolves an alias's `--manifest-path` from the current
//! directory, so the committed alias works from the work tree's root only.

use std::fs;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use crate::process::Bounded;

/// Marks the per-clone alias files this tool writes in submodules.
const MARKER: &str = "# Written by `cargo xtask install-into` / `install-hook`";

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
