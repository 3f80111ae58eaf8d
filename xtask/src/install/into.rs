//! `cargo xtask install-into DIR`, run from the xtask's own repository: puts into a Citadel work
//! tree exactly what runs there — `xtask/` (a Cargo workspace of its own: sources, protocol,
//! lock file, profiles) without what needs this repository (`demo`, `bench`, the stand-in
//! helpers, `install-into` itself) — and the `cargo xtask` alias merged into
//! `.cargo/config.toml`; with `--agent`, it rewires the sync agent. Citadel's workspace, cargo
//! commands and Docker builds do not change.

use std::{collections::BTreeMap, fs};

use anyhow::{bail, ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use crate::{
    changes::graph::{contexts::logs_watched, Disk},
    flags, install,
    process::Bounded,
    protocol::Protocol,
};

/// The alias, relative to the work tree's root (cargo resolves `--manifest-path` from the
/// current directory, so this one works from the root; see `alias.rs` for the rest).
const ALIAS: &str = "run --manifest-path xtask/Cargo.toml --";

/// What the copy leaves out (paths from `xtask/`): build output, and the modules compiled only
/// with the `repo-only` feature (main.rs, install/mod.rs), which need this repository.
const LEFT_OUT: [&str; 6] =
    ["target", "src/bench.rs", "src/demo.rs", "src/standin.rs", "src/install/into.rs", "src/install/rewire.rs"];

/// The manifest's line that turns `repo-only` on here; the copy's says `default = []`.
const REPO_ONLY_BY_DEFAULT: &str = "default = [\"repo-only\"]";

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
        let mut written = write_copy(&installed_files(&project.join("xtask"))?, &dir.join("xtask"))?;
        if merge_alias(&dir.join(".cargo/config.toml"))? {
            written.push(dir.join(".cargo/config.toml"));
        }
        let submodules = install::alias::submodule_aliases(sh, &dir)?;
        let agent = install::rewire::install(sh, &dir, self.agent)?;
        if written.is_empty() {
            println!("{dir} already has this xtask: nothing written");
        } else {
            println!("wrote into {dir}:");
            for path in &written {
                println!("  {}", path.strip_prefix(&dir).unwrap_or(path));
            }
        }
        for note in submodules.iter().chain(&agent) {
            println!("{note}");
        }
        let protocol = Protocol::load(None)?;
        let disk = Disk { root: dir.clone() };
        for watched in logs_watched(&disk, protocol.settings.tiltfile.as_str()) {
            println!("{}", watched.advice());
        }
        let add = if self.agent { "xtask .cargo .claude" } else { "xtask .cargo" };
        println!(
            "\nnext steps, in {dir}:\n  git add {add} && git commit -m 'Add cargo xtask sync'\n  \
             cargo xtask install-hook     # the pre-push hook (in .git: no tracked file changes)\n  \
             cargo xtask sync --plan      # what a sync would rebuild, and why"
        );
        Ok(())
    }
}

/// The files of the copy, by path from `xtask/`: every file of `from` but those `LEFT_OUT`, the
/// manifest with `repo-only` off.
fn installed_files(from: &Utf8Path) -> Result<BTreeMap<Utf8PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    collect(from, Utf8Path::new(""), &mut files)?;
    let manifest = files.get_mut(Utf8Path::new("Cargo.toml")).context("xtask/ has no Cargo.toml")?;
    *manifest = installed_manifest(&String::from_utf8_lossy(manifest))?.into_bytes();
    Ok(files)
}

fn collect(root: &Utf8Path, dir: &Utf8Path, files: &mut BTreeMap<Utf8PathBuf, Vec<u8>>) -> Result<()> {
    let from = root.join(dir);
    for entry in from.read_dir_utf8().with_context(|| format!("reading {from}"))? {
        let entry = entry?;
        let path = dir.join(entry.file_name());
        if LEFT_OUT.contains(&path.as_str()) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect(root, &path, files)?;
        } else {
            files.insert(path, fs::read(entry.path()).with_context(|| format!("reading {}", entry.path()))?);
        }
    }
    Ok(())
}

/// The copy's manifest: `repo-only` off by default, since its files are not there.
fn installed_manifest(text: &str) -> Result<String> {
    ensure!(
        text.matches(REPO_ONLY_BY_DEFAULT).count() == 1,
        "xtask/Cargo.toml has no `{REPO_ONLY_BY_DEFAULT}` line to turn off in the copy"
    );
    let copy = text.replacen(REPO_ONLY_BY_DEFAULT, "default = []", 1);
    let manifest: toml::Table = toml::from_str(&copy).context("the copy's xtask/Cargo.toml is not valid TOML")?;
    let default = manifest.get("features").and_then(|features| features.get("default"));
    ensure!(default.and_then(toml::Value::as_array).is_some_and(Vec::is_empty), "the copy's features stay on");
    Ok(copy)
}

/// Writes `files` under `to`, only those that differ, and removes what an earlier install left
/// there that the copy no longer has (build output aside). Returns what changed.
fn write_copy(files: &BTreeMap<Utf8PathBuf, Vec<u8>>, to: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
    let mut written = Vec::new();
    for (path, bytes) in files {
        let target = to.join(path);
        if fs::read(&target).ok().as_deref() != Some(bytes.as_slice()) {
            if let Some(dir) = target.parent() {
                fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
            }
            fs::write(&target, bytes).with_context(|| format!("writing {target}"))?;
            written.push(target);
        }
    }
    remove_stale(to, Utf8Path::new(""), files, &mut written)?;
    Ok(written)
}

/// Removes the files under `root/dir` that are not in `files`, and folders left empty.
fn remove_stale(
    root: &Utf8Path,
    dir: &Utf8Path,
    files: &BTreeMap<Utf8PathBuf, Vec<u8>>,
    removed: &mut Vec<Utf8PathBuf>,
) -> Result<()> {
    let at = root.join(dir);
    for entry in at.read_dir_utf8().with_context(|| format!("reading {at}"))? {
        let entry = entry?;
        let path = dir.join(entry.file_name());
        if path == "target" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            remove_stale(root, &path, files, removed)?;
            if entry.path().read_dir_utf8().is_ok_and(|mut left| left.next().is_none()) {
                fs::remove_dir(entry.path()).with_context(|| format!("removing {}", entry.path()))?;
            }
        } else if !files.contains_key(&path) {
            fs::remove_file(entry.path()).with_context(|| format!("removing {}", entry.path()))?;
            removed.push(entry.into_path());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_leaves_out_exactly_the_modules_only_this_repository_compiles() {
        // Each left-out file is a module declared under `repo-only`, and each such module is
        // left out: the copy neither has nor compiles them, and lacks nothing it compiles.
        let declarations = [("src/", include_str!("../main.rs")), ("src/install/", include_str!("mod.rs"))];
        let mut gated = Vec::new();
        for (dir, text) in declarations {
            let mut lines = text.lines();
            while let Some(line) = lines.next() {
                if line == "#[cfg(feature = \"repo-only\")]" {
                    let module = lines.next().unwrap_or_default();
                    let name = module.trim_start_matches("pub ").trim_start_matches("mod ").trim_end_matches(';');
                    gated.push(format!("{dir}{name}.rs"));
                }
            }
        }
        gated.sort();
        let mut left_out: Vec<&str> = LEFT_OUT.iter().copied().filter(|path| *path != "target").collect();
        left_out.sort();
        assert_eq!(gated, left_out);
    }

    #[test]
    fn the_copys_manifest_turns_repo_only_off() {
        let manifest = include_str!("../../Cargo.toml");
        let copy = installed_manifest(manifest).unwrap();
        assert_eq!(
            copy.lines().filter(|line| manifest.lines().all(|kept| kept != *line)).collect::<Vec<_>>(),
            ["default = []"]
        );
        assert!(installed_manifest(&copy).unwrap_err().to_string().contains("no `default = [\"repo-only\"]` line"));
    }

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
