//! The git calls that say what changed: since a base revision (commits, staged, unstaged,
//! untracked, and the same inside every checked-out submodule, under its full path), between
//! two fingerprints of the workspace, or in the commits a push sends. A submodule whose pointer
//! moved counts whole when its files cannot say what changed (not checked out, or its commits not
//! in this clone), and one checked out elsewhere than its pointer is named.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use xshell::{cmd, Shell};

use crate::process::Bounded;

const GITLINK_MODE: &str = "160000";
/// The tool's own output never counts as a change.
const OWN_OUTPUT: &str = "logs/";

/// The content of the workspace as git would store it: the tree of the working tree (tracked
/// and untracked-not-ignored files) of the repository and of each checked-out submodule, keyed
/// by the submodule's path ("" for the repository itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    pub trees: BTreeMap<String, String>,
}

pub struct Git<'a> {
    sh: &'a Shell,
    root: &'a Utf8Path,
}

/// The changed paths, and what the submodules say about them.
#[derive(Debug, Default)]
pub struct Changed {
    pub paths: Vec<String>,
    pub submodules: Vec<Submodule>,
}

/// A submodule the plan must name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Submodule {
    /// Its pointer moved and it is not checked out: its whole path counts as changed.
    NotCheckedOut { path: String },
    /// Its pointer moved and this clone of it lacks the commits: its whole path counts.
    CommitsMissing { path: String },
    /// Checked out at another commit than the superproject's pointer.
    Elsewhere { path: String, checked_out: String, pointer: String },
}

impl fmt::Display for Submodule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |sha: &str| sha.chars().take(10).collect::<String>();
        match self {
            Submodule::NotCheckedOut { path } => write!(
                f,
                "submodule `{path}`: its pointer moved and it is not checked out, so all of it counts as changed"
            ),
            Submodule::CommitsMissing { path } => write!(
                f,
                "submodule `{path}`: its pointer moved to commits this clone lacks, so all of it counts as changed \
                 (`git submodule update --init` fetches them)"
            ),
            Submodule::Elsewhere { path, checked_out, pointer } => write!(
                f,
                "submodule `{path}` is checked out at {}, not at {} where the superproject points: run `git submodule \
                 update`: Tilt builds what is on disk",
                short(checked_out),
                short(pointer)
            ),
        }
    }
}

/// Paths and notes gathered over several calls.
#[derive(Default)]
struct Found {
    paths: BTreeSet<String>,
    submodules: BTreeSet<Submodule>,
}

impl Found {
    fn into_changed(self) -> Changed {
        let paths = self.paths.into_iter().filter(|path| !path.starts_with(OWN_OUTPUT)).collect();
        Changed { paths, submodules: self.submodules.into_iter().collect() }
    }
}

/// Where the changes are counted from.
#[derive(Debug, Clone)]
pub struct Base {
    /// A commit, or the empty tree in a repository without commits.
    pub rev: String,
    pub described: String,
}

impl<'a> Git<'a> {
    pub fn new(sh: &'a Shell, root: &'a Utf8Path) -> Git<'a> {
        Git { sh, root }
    }

    /// Checks that the root is a git work tree, with a message that says what to do if not.
    pub fn check_repository(&self) -> Result<()> {
        let root = self.root;
        // git's own words ("fatal: not a git repository …") say no more than this.
        cmd!(self.sh, "git -C {root} rev-parse --show-toplevel").read_bounded().map_err(|_| {
            anyhow::anyhow!(
                "{root} is not a git repository: change detection reads `git diff`; pass --all or --step NAME to \
                 sync without it"
            )
        })?;
        Ok(())
    }

    /// `--base REV`, else the merge-base with the branch's upstream, else HEAD.
    pub fn base(&self, explicit: Option<&str>) -> Result<Base> {
        let root = self.root;
        if let Some(rev) = explicit {
            let commit = format!("{rev}^{{commit}}");
            let resolved =
                cmd!(self.sh, "git -C {root} rev-parse --verify --quiet {commit}").read_bounded().map_err(|_| {
                    anyhow::anyhow!(
                        "--base {rev}: no such commit in {root} (a branch, tag or commit id; `git fetch` first if it \
                     is on a remote)"
                    )
                })?;
            return Ok(Base { rev: resolved, described: rev.to_owned() });
        }
        let head = cmd!(self.sh, "git -C {root} rev-parse --verify --quiet HEAD").read_bounded();
        let Ok(head) = head else {
            return Ok(Base { rev: self.empty_tree()?, described: "the empty tree (no commit yet)".to_owned() });
        };
        let upstream_ref = "@{upstream}";
        let upstream =
            cmd!(self.sh, "git -C {root} rev-parse --abbrev-ref --symbolic-full-name {upstream_ref}").read_bounded();
        if let Ok(upstream) = upstream {
            if let Ok(merge_base) = cmd!(self.sh, "git -C {root} merge-base HEAD {upstream}").read_bounded() {
                return Ok(Base { rev: merge_base, described: format!("the merge-base with {upstream}") });
            }
        }
        Ok(Base { rev: head, described: "HEAD (no upstream)".to_owned() })
    }

    fn empty_tree(&self) -> Result<String> {
        let root = self.root;
        cmd!(self.sh, "git -C {root} hash-object -t tree --stdin").read_bounded().context("hashing the empty tree")
    }

    /// Every path that differs between `base` and the working tree, submodules included.
    pub fn changed_since(&self, base: &Base) -> Result<Changed> {
        let mut found = Found::default();
        self.worktree_changes(self.root, "", Some(&base.rev), &mut found)?;
        Ok(found.into_changed())
    }

    /// Paths changed in the commits a push sends, from git's pre-push input
    /// (`<local ref> <local sha> <remote ref> <remote sha>` per line).
    pub fn pushed_changes(&self, pre_push_input: &str) -> Result<Changed> {
        let mut found = Found::default();
        for line in pre_push_input.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, local, _, remote] = fields[..] else {
                continue;
            };
            if is_zero(local) {
                continue; // a deleted ref sends no commit
            }
            let from = if !is_zero(remote) && self.has_commit_in(self.root, remote) {
                remote.to_owned()
            } else {
                self.first_unpushed_parent(local)?
            };
            self.commit_changes(self.root, "", &from, local, &mut found)?;
        }
        Ok(found.into_changed())
    }

    /// Paths where the work tree (what Tilt builds) differs from the commits a push sends,
    /// from git's pre-push input: files changed since each pushed commit, staged or not,
    /// untracked ones included.
    pub fn unpushed_changes(&self, pre_push_input: &str) -> Result<Vec<String>> {
        let mut found = Found::default();
        for line in pre_push_input.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let [_, local, _, _] = fields[..] {
                if !is_zero(local) {
                    self.worktree_changes(self.root, "", Some(local), &mut found)?;
                }
            }
        }
        Ok(found.into_changed().paths)
    }

    /// For a new branch: the parent of the oldest commit no remote has (or the empty tree).
    fn first_unpushed_parent(&self, local: &str) -> Result<String> {
        let root = self.root;
        let unpushed = cmd!(self.sh, "git -C {root} rev-list --reverse {local} --not --remotes").read_bounded()?;
        let Some(oldest) = unpushed.lines().next() else {
            return Ok(local.to_owned());
        };
        let parent = format!("{oldest}^");
        match cmd!(self.sh, "git -C {root} rev-parse --verify --quiet {parent}").read_bounded() {
            Ok(parent) => Ok(parent),
            Err(_) => self.empty_tree(),
        }
    }

    /// Changes between `from` and the working tree of the repository at `dir`; `from` = None
    /// means every file (a submodule that did not exist at the base).
    fn worktree_changes(&self, dir: &Utf8Path, prefix: &str, from: Option<&str>, found: &mut Found) -> Result<()> {
        let files: Vec<String> = match from {
            Some(from) => {
                let diff = cmd!(self.sh, "git -C {dir} diff --raw -z --no-renames --ignore-submodules=all {from}")
                    .read_bounded()
                    .with_context(|| format!("reading `git diff {from}` in {dir}"))?;
                // Submodules are looked into below, whatever their pointer did.
                raw_diff(&diff).into_iter().filter(|entry| !entry.is_gitlink()).map(|entry| entry.path).collect()
            }
            None => cmd!(self.sh, "git -C {dir} ls-files -z").read_bounded()?.split('\0').map(str::to_owned).collect(),
        };
        let untracked = cmd!(self.sh, "git -C {dir} ls-files -z --others --exclude-standard").read_bounded()?;
        let untracked = untracked.split('\0').map(str::to_owned);
        found.paths.extend(
            files
                .into_iter()
                .chain(untracked)
                .filter(|path: &String| !path.is_empty())
                .map(|path| format!("{prefix}{path}")),
        );

        for (submodule, pointer) in self.submodules(dir)? {
            let then = match from {
                Some(from) => self.pointer_at(dir, from, &submodule)?,
                None => None,
            };
            let sub_dir = dir.join(&submodule);
            let path = format!("{prefix}{submodule}");
            let moved = from.is_none() || then.as_deref() != Some(pointer.as_str());
            if !is_checked_out(&sub_dir) {
                // Nothing on disk says what changed in it: a moved pointer is a change of all of it.
                if moved {
                    found.paths.insert(path.clone());
                    found.submodules.insert(Submodule::NotCheckedOut { path });
                }
                continue;
            }
            if let Ok(head) = cmd!(self.sh, "git -C {sub_dir} rev-parse HEAD").read_bounded() {
                if head != pointer {
                    found.submodules.insert(Submodule::Elsewhere { path: path.clone(), checked_out: head, pointer });
                }
            }
            let known = then.as_deref().is_none_or(|sha| self.has_commit_in(&sub_dir, sha));
            if known {
                self.worktree_changes(&sub_dir, &format!("{path}/"), then.as_deref(), found)?;
            } else {
                // The base's commit is not in this clone of the submodule: count the pointer.
                found.paths.insert(path.clone());
                found.submodules.insert(Submodule::CommitsMissing { path });
            }
        }
        Ok(())
    }

    /// Changes between two commits of the repository at `dir`, looking into moved submodule
    /// pointers when the submodule is checked out.
    fn commit_changes(&self, dir: &Utf8Path, prefix: &str, from: &str, to: &str, found: &mut Found) -> Result<()> {
        let diff = cmd!(self.sh, "git -C {dir} diff --raw -z --no-renames {from} {to}")
            .read_bounded()
            .with_context(|| format!("reading `git diff {from} {to}` in {dir}"))?;
        for entry in raw_diff(&diff) {
            let sub_dir = dir.join(&entry.path);
            let expandable = entry.is_gitlink()
                && is_checked_out(&sub_dir)
                && [&entry.old_sha, &entry.new_sha]
                    .iter()
                    .all(|sha| !is_zero(sha) && self.has_commit_in(&sub_dir, sha));
            let path = format!("{prefix}{}", entry.path);
            if expandable {
                self.commit_changes(&sub_dir, &format!("{path}/"), &entry.old_sha, &entry.new_sha, found)?;
                continue;
            }
            if entry.is_gitlink() {
                found.submodules.insert(match is_checked_out(&sub_dir) {
                    true => Submodule::CommitsMissing { path: path.clone() },
                    false => Submodule::NotCheckedOut { path: path.clone() },
                });
            }
            found.paths.insert(path);
        }
        Ok(())
    }

    fn has_commit_in(&self, dir: &Utf8Path, sha: &str) -> bool {
        let commit = format!("{sha}^{{commit}}");
        cmd!(self.sh, "git -C {dir} cat-file -e {commit}").run_bounded().is_ok()
    }

    /// The submodules registered in the index of the repository at `dir`, and the commit the
    /// index points each to.
    fn submodules(&self, dir: &Utf8Path) -> Result<Vec<(String, String)>> {
        let staged = cmd!(self.sh, "git -C {dir} ls-files -z --stage").read_bounded()?;
        Ok(staged
            .split('\0')
            .filter_map(|entry| {
                let (meta, path) = entry.split_once('\t')?;
                let mut fields = meta.split(' ');
                let mode = fields.next()?;
                let sha = fields.next()?;
                (mode == GITLINK_MODE).then(|| (path.to_owned(), sha.to_owned()))
            })
            .collect())
    }

    /// The commit the submodule at `path` pointed to in `rev`, if it existed there.
    fn pointer_at(&self, dir: &Utf8Path, rev: &str, path: &str) -> Result<Option<String>> {
        let entry = cmd!(self.sh, "git -C {dir} ls-tree -z {rev} -- {path}").read_bounded()?;
        Ok(entry.split_once('\t').and_then(|(meta, _)| {
            let mut fields = meta.split(' ');
            (fields.next() == Some(GITLINK_MODE)).then(|| fields.nth(1).map(str::to_owned)).flatten()
        }))
    }

    /// Writes the working tree of the repository and of each checked-out submodule as tree
    /// objects, through a temporary index: the real index and the files are not touched.
    pub fn fingerprint(&self) -> Result<Fingerprint> {
        let mut trees = BTreeMap::new();
        self.fingerprint_into(self.root, "", &mut trees)?;
        Ok(Fingerprint { trees })
    }

    fn fingerprint_into(&self, dir: &Utf8Path, prefix: &str, trees: &mut BTreeMap<String, String>) -> Result<()> {
        let real_index = Utf8PathBuf::from(
            cmd!(self.sh, "git -C {dir} rev-parse --path-format=absolute --git-path index").read_bounded()?,
        );
        let temp_index = std::env::temp_dir().join(format!("xtask-sync-index-{}-{}", std::process::id(), trees.len()));
        // Starting from a copy of the real index lets git reuse its cached file hashes.
        if real_index.exists() {
            std::fs::copy(&real_index, &temp_index).with_context(|| format!("copying {real_index}"))?;
        }
        let tree = cmd!(self.sh, "git -C {dir} add --all --ignore-errors")
            .env("GIT_INDEX_FILE", &temp_index)
            .run_bounded()
            .and_then(|()| cmd!(self.sh, "git -C {dir} write-tree").env("GIT_INDEX_FILE", &temp_index).read_bounded());
        let _ = std::fs::remove_file(&temp_index);
        let tree = tree.with_context(|| format!("writing the working tree of {dir} as a git tree"))?;
        trees.insert(prefix.trim_end_matches('/').to_owned(), tree);
        for (submodule, _) in self.submodules(dir)? {
            let sub_dir = dir.join(&submodule);
            if is_checked_out(&sub_dir) {
                self.fingerprint_into(&sub_dir, &format!("{prefix}{submodule}/"), trees)?;
            }
        }
        Ok(())
    }

    /// Whether git still holds a fingerprint's trees (they are loose objects `git gc` may prune).
    pub fn has_trees(&self, fingerprint: &Fingerprint) -> bool {
        fingerprint.trees.iter().all(|(repository, tree)| {
            let dir = if repository.is_empty() { self.root.to_owned() } else { self.root.join(repository) };
            let dir = if dir.exists() { dir } else { self.root.to_owned() };
            let object = format!("{tree}^{{tree}}");
            cmd!(self.sh, "git -C {dir} cat-file -e {object}").run_bounded().is_ok()
        })
    }

    /// The paths that differ between two fingerprints.
    pub fn changed_between(&self, old: &Fingerprint, new: &Fingerprint) -> Result<Changed> {
        let mut found = Found::default();
        let repositories: BTreeSet<&String> = old.trees.keys().chain(new.trees.keys()).collect();
        for repository in &repositories {
            let dir = if repository.is_empty() { self.root.to_owned() } else { self.root.join(repository) };
            let prefix = if repository.is_empty() { String::new() } else { format!("{repository}/") };
            match (old.trees.get(*repository), new.trees.get(*repository)) {
                (Some(old_tree), Some(new_tree)) if old_tree == new_tree => {}
                (Some(old_tree), Some(new_tree)) => {
                    let diff = cmd!(self.sh, "git -C {dir} diff-tree -r -z --raw --no-renames {old_tree} {new_tree}")
                        .read_bounded()
                        .with_context(|| format!("comparing the workspace with the last successful sync in {dir}"))?;
                    for entry in raw_diff(&diff) {
                        let path = format!("{prefix}{}", entry.path);
                        // A checked-out submodule's pointer is its own fingerprint's business;
                        // one not checked out both times has no trees to compare.
                        let compared = old.trees.contains_key(&path) && new.trees.contains_key(&path);
                        if entry.is_gitlink() && !compared {
                            found.submodules.insert(Submodule::NotCheckedOut { path: path.clone() });
                        }
                        if !entry.is_gitlink() || !compared {
                            found.paths.insert(path);
                        }
                    }
                }
                // A submodule appeared or went away: all of it changed.
                (Some(tree), None) | (None, Some(tree)) => {
                    let dir = if dir.exists() { dir } else { self.root.to_owned() };
                    match cmd!(self.sh, "git -C {dir} ls-tree -r -z --name-only {tree}").read_bounded() {
                        Ok(files) => found.paths.extend(
                            files.split('\0').filter(|path| !path.is_empty()).map(|path| format!("{prefix}{path}")),
                        ),
                        Err(_) => {
                            found.paths.insert(repository.to_string());
                        }
                    }
                }
                (None, None) => {}
            }
        }
        Ok(found.into_changed())
    }
}

fn is_checked_out(dir: &Utf8Path) -> bool {
    dir.join(".git").exists()
}

fn is_zero(sha: &str) -> bool {
    sha.chars().all(|c| c == '0')
}

#[derive(Debug, PartialEq, Eq)]
struct RawEntry {
    old_mode: String,
    new_mode: String,
    old_sha: String,
    new_sha: String,
    path: String,
}

impl RawEntry {
    fn is_gitlink(&self) -> bool {
        self.old_mode == GITLINK_MODE || self.new_mode == GITLINK_MODE
    }
}

/// Parses `git diff --raw -z`: `:<old mode> <new mode> <old sha> <new sha> <status>\0<path>\0`.
fn raw_diff(output: &str) -> Vec<RawEntry> {
    let mut fields = output.split('\0');
    let mut entries = Vec::new();
    while let Some(meta) = fields.next() {
        let Some(meta) = meta.strip_prefix(':') else {
            continue;
        };
        let Some(path) = fields.next() else { break };
        let parts: Vec<&str> = meta.split(' ').collect();
        if let [old_mode, new_mode, old_sha, new_sha, ..] = parts[..] {
            entries.push(RawEntry {
                old_mode: old_mode.to_owned(),
                new_mode: new_mode.to_owned(),
                old_sha: old_sha.to_owned(),
                new_sha: new_sha.to_owned(),
                path: path.to_owned(),
            });
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_diff_entries_are_parsed() {
        let output = ":100644 100644 aaa bbb M\0src/lib.rs\0:160000 160000 ccc ddd M\0citadel-internal-service\0";
        let entries = raw_diff(output);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].path, "src/lib.rs");
        assert!(!entries[0].is_gitlink());
        assert!(entries[1].is_gitlink());
        assert_eq!((entries[1].old_sha.as_str(), entries[1].new_sha.as_str()), ("ccc", "ddd"));
        assert!(raw_diff("").is_empty());
    }

    #[test]
    fn the_tools_own_logs_never_count() {
        let paths = ["logs/sync-status.json", "src/lib.rs", "catalogs/x"].iter().map(|p| p.to_string()).collect();
        assert_eq!(Found { paths, submodules: BTreeSet::new() }.into_changed().paths, ["catalogs/x", "src/lib.rs"]);
    }

    #[test]
    fn a_submodule_note_says_what_to_do() {
        let elsewhere = Submodule::Elsewhere {
            path: "citadel-internal-service".to_owned(),
            checked_out: "0123456789abcdef".to_owned(),
            pointer: "fedcba9876543210".to_owned(),
        };
        assert_eq!(
            elsewhere.to_string(),
            "submodule `citadel-internal-service` is checked out at 0123456789, not at fedcba9876 where the \
             superproject points: run `git submodule update`: Tilt builds what is on disk"
        );
    }
}
