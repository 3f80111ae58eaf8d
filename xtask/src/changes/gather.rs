//! The I/O edge of the selection: git (the changed paths, the workspace's fingerprint, whether
//! each record's trees are still there) and the build's files (the graph), read once per run so
//! that `select` decides from values alone.

use std::collections::HashMap;

use anyhow::Result;
use camino::Utf8Path;
use xshell::Shell;

use crate::{
    changes::{
        git::{Changed, Fingerprint, Git, Submodule},
        graph::{derive::derive, Disk, Graph},
    },
    protocol::Protocol,
    store::Records,
};

/// What the command line asks for.
pub struct Request<'a> {
    pub all: bool,
    pub named: &'a [String],
    pub base: Option<&'a str>,
    pub pre_push_input: Option<&'a str>,
}

/// What `select` weighs.
pub struct Changes {
    /// The workspace's content as the run begins: recorded for each step that passes. None
    /// outside git (`--all` and `--step` need none).
    pub fingerprint: Option<Fingerprint>,
    pub found: Found,
}

pub enum Found {
    /// `--all` or `--step`: nothing is diffed.
    ByFlag {
        all: bool,
        named: Vec<String>,
    },
    /// A last good sync's trees are gone (`git gc`): what was deployed is unknown.
    RecordGone,
    Diffed(Diffed),
}

pub struct Diffed {
    pub base: String,
    /// What changes are counted from, in words.
    pub base_description: String,
    /// Since the base, or in the commits being pushed.
    pub since_base: Vec<String>,
    /// Since each good record's fingerprint; None with `--base` (records do not count then).
    pub since_record: Option<HashMap<Fingerprint, Vec<String>>>,
    pub submodules: Vec<Submodule>,
    pub graph: Graph,
    /// For a push: the paths where the work tree, which Tilt builds, differs from the commits
    /// pushed.
    pub unpushed: Vec<String>,
}

/// Reads what the selection needs: git in `root`, and the build's files.
pub fn gather(
    sh: &Shell,
    root: &Utf8Path,
    protocol: &Protocol,
    request: &Request,
    records: &Records,
) -> Result<Changes> {
    let git = Git::new(sh, root);
    let flagged = request.all || !request.named.is_empty();
    let fingerprint = match git.check_repository() {
        Ok(()) => Some(git.fingerprint()?),
        // --all and --step need no git: the steps pass unrecorded.
        Err(_) if flagged => None,
        Err(err) => return Err(err),
    };
    if flagged {
        let found = Found::ByFlag { all: request.all, named: request.named.to_vec() };
        return Ok(Changes { fingerprint, found });
    }
    let good = || records.steps.values().filter(|record| !record.failed);
    if good().any(|record| !git.has_trees(&record.fingerprint)) {
        return Ok(Changes { fingerprint, found: Found::RecordGone });
    }
    let (base, base_description, since_base) = match (request.pre_push_input, request.base) {
        (Some(input), _) => (String::new(), "the commits being pushed".to_owned(), git.pushed_changes(input)?),
        (None, explicit) => {
            let base = git.base(explicit)?;
            let changed = git.changed_since(&base)?;
            (base.rev, base.described, changed)
        }
    };
    let Changed { paths: since_base, mut submodules } = since_base;
    let mut since_record = None;
    if let (None, Some(now)) = (request.base, &fingerprint) {
        let mut each = HashMap::new();
        for record in good() {
            if !each.contains_key(&record.fingerprint) {
                let changed = git.changed_between(&record.fingerprint, now)?;
                submodules.extend(changed.submodules);
                each.insert(record.fingerprint.clone(), changed.paths);
            }
        }
        since_record = Some(each);
    }
    submodules.sort();
    submodules.dedup();
    let graph = derive(&Disk { root: root.to_owned() }, protocol);
    let unpushed = match request.pre_push_input {
        Some(input) => git.unpushed_changes(input)?,
        None => Vec::new(),
    };
    let diffed = Diffed { base, base_description, since_base, since_record, submodules, graph, unpushed };
    Ok(Changes { fingerprint, found: Found::Diffed(diffed) })
}
