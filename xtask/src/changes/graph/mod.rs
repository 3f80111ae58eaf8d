//! Which files each step is made of, read from the build itself: the Tiltfile's resources, the
//! compose services behind them (their Dockerfile, what its stages copy, the build context's
//! `.dockerignore`, the host folders they mount), a local resource's `deps`, and the Rust crates
//! each `cargo` build compiles. `derive.rs` reads the files once per run (the edge); asking
//! whether a changed path is an input, and why, is pure (`StepGraph::chain`).

pub mod cargo;
pub mod command;
pub mod compose;
pub mod contexts;
pub mod derive;
pub mod dockerfile;
pub mod dockerignore;
pub mod error;
pub mod paths;
pub mod tiltfile;
pub mod view;
pub mod yaml;

use std::rc::Rc;

use camino::Utf8PathBuf;

use crate::changes::graph::{
    cargo::{Crates, Role},
    dockerignore::Dockerignore,
    paths::{join, within},
};

/// Reading files: the workspace on disk (paths relative to its root), an image's view of it
/// (absolute paths), or a map in tests.
pub trait Tree {
    /// The file's text; None when it is not there, or not a readable text file.
    fn read(&self, path: &str) -> Option<String>;
    fn is_file(&self, path: &str) -> bool;
    /// The names in a folder.
    fn list(&self, dir: &str) -> Vec<String>;
}

/// Each protocol step's inputs, in protocol order.
#[derive(Debug, Default)]
pub struct Graph {
    pub steps: Vec<Inputs>,
}

#[derive(Debug)]
pub enum Inputs {
    Derived(StepGraph),
    /// The build could not be read: any change runs the step, and the plan says why.
    Unknown(String),
    /// The Tiltfile defines no such resource: nothing builds it, no change needs it.
    Undefined(String),
}

/// What one step's resource is made of.
#[derive(Debug, Default)]
pub struct StepGraph {
    pub sources: Vec<Source>,
    /// The cargo builds of the step (an image's `RUN cargo build`, a container's `cargo run`).
    pub builds: Vec<Build>,
}

#[derive(Debug)]
pub struct Build {
    pub crates: Crates,
    /// `` `docker/workspace-server/Dockerfile` ``
    pub by: String,
}

#[derive(Debug)]
pub enum Source {
    /// A file read whole: the Tiltfile, a compose file, a Dockerfile, a `.dockerignore`, a
    /// local resource's script.
    File { path: String, why: String },
    /// A host path that lands in an image or a container.
    Mapped(Mapping),
}

/// A host path (file or folder) copied or mounted to a path of the build.
#[derive(Debug)]
pub struct Mapping {
    pub host: String,
    pub at: String,
    /// The build context's `.dockerignore` and its folder, for a COPY.
    pub ignore: Option<(Rc<Dockerignore>, String)>,
    /// `COPY --exclude=`, relative to `host`.
    pub excludes: Option<Dockerignore>,
    /// `copied into `server`'s image by …`
    pub why: String,
    /// Read at run time (a bind mount, a local resource's `deps`), not built into an image: a
    /// `[[path]]` rule with `steps = []` may say such a change needs no rebuild.
    pub runtime: bool,
    /// Whether a file no cargo build claims still counts: in an image, yes (it is there for
    /// something); in a local build's view of the whole workspace, no.
    pub others_count: bool,
    /// The builds (indices into `StepGraph::builds`) that see this mapping.
    pub builds: Vec<usize>,
    /// Paths of the build a later COPY of a file replaces (a Docker-only `Cargo.toml` over the
    /// crate's own): what this mapping brings there is not what the build reads.
    pub shadowed: Vec<String>,
}

impl Mapping {
    /// A host path copied into an image whole: nothing left out, built in, seen by no build yet.
    pub fn new(host: String, at: String, why: String) -> Mapping {
        Mapping {
            host,
            at,
            ignore: None,
            excludes: None,
            why,
            runtime: false,
            others_count: true,
            builds: Vec::new(),
            shadowed: Vec::new(),
        }
    }

    /// Whether the build leaves `host_path` (inside `self.host`) out.
    fn leaves_out(&self, host_path: &str) -> bool {
        let ignored = self.ignore.as_ref().is_some_and(|(ignore, context)| {
            within(host_path, context).is_some_and(|relative| !relative.is_empty() && ignore.excludes(relative))
        });
        let excluded = self.excludes.as_ref().is_some_and(|excludes| {
            within(host_path, &self.host).is_some_and(|relative| !relative.is_empty() && excludes.excludes(relative))
        });
        ignored || excluded
    }
}

impl StepGraph {
    /// Why the changed `path` is an input of the step: the chain from the path to the build
    /// (`path`, `crate x`, `dependency of y, built by D`); None when it is not. A path that
    /// holds inputs (a submodule changed as a whole) is an input too. `runtime_hidden`: a
    /// `steps = []` rule says the path needs no rebuild where it is only read at run time.
    pub fn chain(&self, path: &str, runtime_hidden: bool) -> Option<Vec<String>> {
        self.sources.iter().find_map(|source| match source {
            Source::File { path: file, why } => {
                if file == path {
                    Some(vec![path.to_owned(), why.clone()])
                } else {
                    within(file, path).map(|_| vec![path.to_owned(), format!("holds `{file}`"), why.clone()])
                }
            }
            Source::Mapped(mapping) if mapping.runtime && runtime_hidden => None,
            Source::Mapped(mapping) => self.mapped(mapping, path),
        })
    }

    fn mapped(&self, mapping: &Mapping, path: &str) -> Option<Vec<String>> {
        let (at, mut chain) = match within(path, &mapping.host) {
            Some(relative) => {
                if mapping.leaves_out(path) {
                    return None;
                }
                let at = if relative.is_empty() { mapping.at.clone() } else { join(&mapping.at, relative)? };
                if mapping.shadowed.iter().any(|shadowed| within(&at, shadowed).is_some()) {
                    return None;
                }
                (at, vec![path.to_owned()])
            }
            None => {
                within(&mapping.host, path)?;
                if mapping.leaves_out(&mapping.host) {
                    return None;
                }
                (mapping.at.clone(), vec![path.to_owned(), format!("holds `{}`", mapping.host)])
            }
        };
        let mut other = mapping.builds.is_empty();
        for &index in &mapping.builds {
            let build = &self.builds[index];
            // A changed folder (a submodule's pointer) counts by what it holds.
            match build.crates.role_within(&at) {
                Role::Compiled(crate_index) => {
                    chain.truncate(1);
                    chain.extend(build.crates.chain(crate_index, &build.by));
                    return Some(chain);
                }
                Role::Manifest(manifest) => {
                    let (_, whose) = &build.crates.manifests[manifest];
                    chain.truncate(1);
                    chain.push(format!(
                        "{whose}, which cargo loads to build (`{}`, {})",
                        build.crates.command, build.by
                    ));
                    return Some(chain);
                }
                Role::Unread => {}
                Role::Other => other = true,
            }
        }
        (other && mapping.others_count).then(|| {
            chain.push(mapping.why.clone());
            chain
        })
    }
}

/// The workspace on disk.
pub struct Disk {
    pub root: Utf8PathBuf,
}

impl Disk {
    fn path(&self, path: &str) -> Utf8PathBuf {
        self.root.join(path)
    }
}

impl Tree for Disk {
    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.path(path)).ok()
    }

    fn is_file(&self, path: &str) -> bool {
        self.path(path).is_file()
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let Ok(entries) = self.path(dir).read_dir_utf8() else { return Vec::new() };
        entries.filter_map(|entry| Some(entry.ok()?.file_name().to_owned())).collect()
    }
}

/// Files in memory, for the tests of what reads them.
#[cfg(test)]
pub struct Memory {
    files: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
impl Memory {
    pub fn new(files: &[(&str, &str)]) -> Memory {
        Memory { files: files.iter().map(|(path, text)| ((*path).to_owned(), (*text).to_owned())).collect() }
    }
}

#[cfg(test)]
impl Tree for Memory {
    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }

    fn is_file(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|file| within(file, dir).filter(|inner| !inner.is_empty()))
            .filter_map(|inner| inner.split('/').next().map(str::to_owned))
            .collect();
        names.dedup();
        names
    }
}
