//! What one `cargo` build reads, found from the manifests by hand (`cargo metadata` needs every
//! path dependency on disk, and Citadel's point into a submodule a clone may lack): the crates it
//! compiles (the packages it was asked for and their path dependencies, normal and build, across
//! workspaces), the manifests it loads (the workspace's, every member's, every path
//! dependency's), and the crates it knows without compiling. A path dependency whose folder is
//! missing (a submodule not checked out) still counts. Paths are the build's own (an image's).

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::changes::graph::{
    command::CargoCall,
    error::Unreadable,
    paths::{join, parent, within},
    Tree,
};

/// What a cargo command builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// `--bin X`: the packages holding these binaries.
    Bins(Vec<String>),
    /// `-p X`: these packages.
    Packages(Vec<String>),
    /// `--workspace`: every member.
    Workspace,
    /// No selection: the package of the folder it runs in, else the default members.
    Here,
    /// `cargo install --path P`.
    Path(String),
}

/// A cargo command, as far as what it compiles goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub build: Build,
    pub manifest: Option<String>,
    /// Tests, benches or examples too (`cargo test`, `--tests`, `--all-targets`): the asked
    /// packages' dev-dependencies and test folders are compiled.
    pub all_targets: bool,
}

impl Build {
    /// None for a cargo command that compiles nothing of the workspace (`cargo --version`,
    /// `cargo install tauri-cli` from crates.io, `cargo fmt`).
    pub fn of(call: &CargoCall) -> Option<Invocation> {
        let args: Vec<&str> = call.args.iter().map(String::as_str).take_while(|arg| *arg != "--").collect();
        let mut words = args.iter().copied().filter(|arg| !arg.starts_with('+'));
        let subcommand = words.find(|arg| !arg.starts_with('-'))?;
        let value = |names: &[&str]| -> Vec<String> {
            let mut values = Vec::new();
            for (index, arg) in args.iter().enumerate() {
                for name in names {
                    if arg == name {
                        values.extend(args.get(index + 1).map(|value| (*value).to_owned()));
                    } else if let Some(value) = arg.strip_prefix(&format!("{name}=")) {
                        values.push(value.to_owned());
                    } else if name.len() == 2 && arg.starts_with(name) && arg.len() > 2 {
                        values.push(arg[2..].to_owned());
                    }
                }
            }
            values
        };
        let manifest = value(&["--manifest-path"]).pop();
        let all_targets = matches!(subcommand, "test" | "t" | "bench")
            || args.iter().any(|arg| {
                matches!(*arg, "--tests" | "--all-targets" | "--benches" | "--examples")
                    || ["--test", "--bench", "--example"].iter().any(|flag| arg.starts_with(flag))
            });
        let build = match subcommand {
            "fmt" | "fetch" | "metadata" | "tree" | "update" | "search" | "login" | "publish" | "package" | "new"
            | "init" | "clean" | "locate-project" | "version" | "help" | "generate-lockfile" | "vendor" => {
                return None;
            }
            "install" => Build::Path(value(&["--path"]).pop()?),
            _ => {
                let bins = value(&["--bin"]);
                let packages = value(&["-p", "--package"]);
                if !bins.is_empty() {
                    Build::Bins(bins)
                } else if !packages.is_empty() {
                    Build::Packages(packages)
                } else if args.iter().any(|arg| matches!(*arg, "--workspace" | "--all")) {
                    Build::Workspace
                } else {
                    Build::Here
                }
            }
        };
        Some(Invocation { build, manifest, all_targets })
    }
}

/// One crate's `Cargo.toml`, as far as the graph needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub package: Option<String>,
    /// `[[bin]]` names.
    pub bins: Vec<String>,
    /// The folders its explicit targets (`[lib]`, `[[bin]]`, `build`) live in, first component.
    pub target_folders: Vec<String>,
    pub workspace: Option<Workspace>,
    pub deps: Vec<Dep>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workspace {
    pub members: Vec<String>,
    pub exclude: Vec<String>,
    pub default_members: Vec<String>,
    /// `[workspace.dependencies]` with a path, relative to the workspace's folder.
    pub paths: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    /// The key in the manifest (the name the code uses).
    pub key: String,
    pub kind: DepKind,
    pub at: DepPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepKind {
    /// `[dependencies]` and `[build-dependencies]`: compiled into what is built.
    Built,
    /// `[dev-dependencies]`: loaded, compiled only for tests.
    Dev,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepPath {
    /// `path = "…"`, relative to the manifest's folder.
    Path(String),
    /// `workspace = true`: the workspace's `[workspace.dependencies]` says.
    Workspace,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, Unreadable> {
        let table: Table = toml::from_str(text).map_err(|err| {
            let line = err.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
            Unreadable { line, message: err.message().replace('\n', " ") }
        })?;
        let str_of = |table: &Table, key: &str| table.get(key).and_then(Value::as_str).map(str::to_owned);
        let strings = |value: Option<&Value>| -> Vec<String> {
            value.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
        };
        let package = table.get("package").and_then(Value::as_table);
        let mut manifest =
            Manifest { package: package.and_then(|package| str_of(package, "name")), ..Manifest::default() };
        let first_folder = |path: &str| path.trim_start_matches("./").split('/').next().map(str::to_owned);
        if let Some(build) = package.and_then(|package| str_of(package, "build")) {
            manifest.target_folders.extend(first_folder(&build));
        }
        for bin in table.get("bin").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_table) {
            manifest.bins.extend(str_of(bin, "name"));
            manifest.target_folders.extend(str_of(bin, "path").as_deref().and_then(first_folder));
        }
        if let Some(lib) = table.get("lib").and_then(Value::as_table) {
            manifest.target_folders.extend(str_of(lib, "path").as_deref().and_then(first_folder));
        }
        if let Some(workspace) = table.get("workspace").and_then(Value::as_table) {
            let paths = workspace
                .get("dependencies")
                .and_then(Value::as_table)
                .into_iter()
                .flatten()
                .filter_map(|(key, dep)| Some((key.clone(), str_of(dep.as_table()?, "path")?)))
                .collect();
            manifest.workspace = Some(Workspace {
                members: strings(workspace.get("members")),
                exclude: strings(workspace.get("exclude")),
                default_members: strings(workspace.get("default-members")),
                paths,
            });
        }
        let mut sections: Vec<&Table> = vec![&table];
        let targets = table.get("target").and_then(Value::as_table).into_iter().flatten();
        sections.extend(targets.filter_map(|(_, target)| target.as_table()));
        for section in sections {
            for (name, kind) in [
                ("dependencies", DepKind::Built),
                ("build-dependencies", DepKind::Built),
                ("build_dependencies", DepKind::Built),
                ("dev-dependencies", DepKind::Dev),
                ("dev_dependencies", DepKind::Dev),
            ] {
                for (key, dep) in section.get(name).and_then(Value::as_table).into_iter().flatten() {
                    let Some(dep) = dep.as_table() else { continue };
                    let at = match (str_of(dep, "path"), dep.get("workspace").and_then(Value::as_bool)) {
                        (Some(path), _) => DepPath::Path(path),
                        (None, Some(true)) => DepPath::Workspace,
                        _ => continue,
                    };
                    manifest.deps.push(Dep { key: key.clone(), kind, at });
                }
            }
        }
        Ok(manifest)
    }
}

/// What one cargo build reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crates {
    /// `cargo build --release --bin x`, as written.
    pub command: String,
    /// The crates compiled; those the build was asked for come first.
    pub compiled: Vec<Compiled>,
    /// Every manifest cargo loads, and whose it is.
    pub manifests: Vec<(String, String)>,
    /// Every package folder cargo knows of, compiled or not.
    pub packages: Vec<String>,
    /// Workspaces other than the build's own (a submodule's): what of them no crate holds is
    /// not read.
    pub foreign: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub name: String,
    pub dir: String,
    /// The crate that depends on it (an index into `compiled`); None for a crate asked for.
    pub by: Option<usize>,
    /// Its manifest is not on disk (a submodule not checked out): it counts all the same.
    pub missing: bool,
    /// Its sub-folders a build does not compile (`tests`, `benches`, `examples`).
    pub skipped: Vec<String>,
}

/// How a file of the build's tree matters to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Inside a compiled crate (an index into `compiled`).
    Compiled(usize),
    /// A manifest cargo loads (an index into `manifests`).
    Manifest(usize),
    /// Cargo does not read it: a crate it does not compile, a folder of a crate it does not
    /// compile (`tests/`), or another workspace's file no crate holds.
    Unread,
    /// Outside every crate and foreign workspace: not cargo's, so whatever else reads it.
    Other,
}

impl Crates {
    pub fn role(&self, path: &str) -> Role {
        if let Some(index) = self.manifests.iter().position(|(manifest, _)| manifest == path) {
            return Role::Manifest(index);
        }
        let deepest = |dirs: &mut dyn Iterator<Item = &String>| {
            dirs.filter(|dir| within(path, dir).is_some()).max_by_key(|dir| dir.len()).cloned()
        };
        let package = deepest(&mut self.packages.iter().chain(self.compiled.iter().map(|c| &c.dir)));
        if let Some(package) = package {
            let Some(index) = self.compiled.iter().position(|compiled| compiled.dir == package) else {
                return Role::Unread;
            };
            let inner = within(path, &package).unwrap_or_default();
            let folder = inner.split('/').next().unwrap_or_default();
            let skipped = inner.contains('/') && self.compiled[index].skipped.iter().any(|skip| skip == folder);
            return if skipped { Role::Unread } else { Role::Compiled(index) };
        }
        match self.foreign.iter().any(|root| within(path, root).is_some()) {
            true => Role::Unread,
            false => Role::Other,
        }
    }

    /// What a whole folder holds for the build (a submodule whose content is unknown): a
    /// compiled crate or a loaded manifest inside it, or the folder's own role.
    pub fn role_within(&self, dir: &str) -> Role {
        if let Some(index) = self.compiled.iter().position(|compiled| within(&compiled.dir, dir).is_some()) {
            return Role::Compiled(index);
        }
        if let Some(index) = self.manifests.iter().position(|(manifest, _)| within(manifest, dir).is_some()) {
            return Role::Manifest(index);
        }
        self.role(dir)
    }

    /// `crate x` → `dependency of y` → … → `dependency of z, built by D`.
    pub fn chain(&self, index: usize, built_by: &str) -> Vec<String> {
        let mut chain = Vec::new();
        let mut at = index;
        let missing = |compiled: &Compiled| if compiled.missing { " (its folder is not on disk)" } else { "" };
        let first = &self.compiled[index];
        let mut link = format!("crate `{}`{}", first.name, missing(first));
        while let Some(by) = self.compiled[at].by {
            chain.push(link);
            link = format!("dependency of `{}`", self.compiled[by].name);
            at = by;
        }
        chain.push(format!("{link}, built by {built_by} (`{}`)", self.command));
        chain
    }
}

/// Resolves a cargo call run in `cwd` of `tree`. Ok(None) when it compiles nothing of ours.
pub fn resolve(
    tree: &dyn Tree,
    cwd: &str,
    call: &CargoCall,
    uncompiled: &[String],
) -> Result<Option<Crates>, Unreadable> {
    let Some(Invocation { build, manifest: manifest_path, all_targets }) = Build::of(call) else { return Ok(None) };
    let cwd = match &call.dir {
        Some(dir) => join(cwd, dir).ok_or_else(|| Unreadable::new(format!("`cd {dir}` leaves the filesystem")))?,
        None => cwd.to_owned(),
    };
    let mut loader = Loader { tree, manifests: BTreeMap::new() };
    let start = match (&build, manifest_path) {
        (Build::Path(path), _) => join(&cwd, path).map(|dir| format!("{dir}/Cargo.toml")),
        (_, Some(path)) => join(&cwd, &path),
        (_, None) => find_upward(tree, &cwd),
    }
    .ok_or_else(|| Unreadable::new(format!("`{}` in {cwd}: no Cargo.toml there or above", call.text())))?;
    let start_manifest = loader
        .load(&start)?
        .ok_or_else(|| Unreadable::new(format!("`{}`: {start} is not there", call.text())))?
        .clone();
    let start_dir = parent(&start).unwrap_or("/").to_owned();
    let root = match &start_manifest.workspace {
        Some(_) => Some(start_dir.clone()),
        None => workspace_root(&mut loader, &start_dir)?.filter(|root| {
            let excluded = loader.manifests[&format!("{root}/Cargo.toml")]
                .as_ref()
                .and_then(|manifest| manifest.workspace.as_ref())
                .is_some_and(|workspace| excludes(root, workspace, &start_dir));
            !excluded
        }),
    };
    let mut members: Vec<String> = Vec::new();
    let mut workspace = Workspace::default();
    if let Some(root) = &root {
        if let Some(found) = loader.load(&format!("{root}/Cargo.toml"))?.and_then(|manifest| manifest.workspace.clone())
        {
            workspace = found;
        }
        for member in &workspace.members {
            members.extend(expand_member(tree, root, member)?);
        }
        members.retain(|member| !excludes(root, &workspace, member));
        if start_manifest.package.is_some() && !members.contains(&start_dir) {
            members.push(start_dir.clone());
        }
    } else if start_manifest.package.is_some() {
        members.push(start_dir.clone());
    }

    let mut crates = Crates {
        command: call.text(),
        compiled: Vec::new(),
        manifests: Vec::new(),
        packages: Vec::new(),
        foreign: Vec::new(),
    };
    if let Some(root) = &root {
        crates.manifests.push((format!("{root}/Cargo.toml"), "the workspace manifest".to_owned()));
    }

    // Every member's manifest and, through every kind of path dependency, the manifests
    // they load: cargo resolves the whole workspace, whatever it builds.
    let mut known: BTreeMap<String, Option<Manifest>> = BTreeMap::new();
    // A crate whose manifest is missing is named by the key that depends on it.
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let mut pending: Vec<(String, bool)> = members.iter().map(|member| (member.clone(), true)).collect();
    while let Some((dir, member)) = pending.pop() {
        if known.contains_key(&dir) {
            continue;
        }
        let manifest = loader.load(&format!("{dir}/Cargo.toml"))?.cloned();
        if let Some(manifest) = &manifest {
            let own_root = if member { root.clone() } else { foreign_root(&mut loader, &dir, root.as_deref())? };
            if let (Some(foreign), false) = (&own_root, member) {
                if !crates.foreign.contains(foreign) {
                    crates.foreign.push(foreign.clone());
                    crates
                        .manifests
                        .push((format!("{foreign}/Cargo.toml"), "a path dependency's workspace manifest".to_owned()));
                }
            }
            for dep in &manifest.deps {
                // A dependency's own dev-dependencies are not loaded; a member's are.
                if dep.kind == DepKind::Dev && !member {
                    continue;
                }
                if let Some(dep_dir) = dep_dir(&mut loader, &dir, own_root.as_deref(), dep)? {
                    keys.entry(dep_dir.clone()).or_insert_with(|| dep.key.clone());
                    pending.push((dep_dir.clone(), members.contains(&dep_dir)));
                }
            }
            let whose = manifest.package.clone().unwrap_or_else(|| dir.clone());
            crates.manifests.push((format!("{dir}/Cargo.toml"), format!("the manifest of crate `{whose}`")));
        }
        crates.packages.push(dir.clone());
        known.insert(dir, manifest);
    }

    let name_of = |dir: &str, known: &BTreeMap<String, Option<Manifest>>| {
        let package = known.get(dir).cloned().flatten().and_then(|manifest| manifest.package);
        package.or_else(|| keys.get(dir).cloned()).unwrap_or_else(|| dir.rsplit('/').next().unwrap_or(dir).to_owned())
    };
    let asked: Vec<String> = match &build {
        Build::Bins(bins) => bins
            .iter()
            .map(|bin| {
                members
                    .iter()
                    .find(|member| {
                        let manifest = known.get(*member).cloned().flatten().unwrap_or_default();
                        manifest.bins.contains(bin)
                            || manifest.package.as_ref() == Some(bin)
                            || tree.is_file(&format!("{member}/src/bin/{bin}.rs"))
                            || tree.is_file(&format!("{member}/src/bin/{bin}/main.rs"))
                    })
                    .cloned()
                    .ok_or_else(|| {
                        let message =
                            format!("`{}`: no crate of the workspace at {cwd} has a binary `{bin}`", call.text());
                        Unreadable::new(message)
                    })
            })
            .collect::<Result<_, _>>()?,
        Build::Packages(names) => names
            .iter()
            .map(|name| {
                known.keys().find(|dir| name_of(dir, &known) == *name).cloned().ok_or_else(|| {
                    Unreadable::new(format!("`{}`: no crate `{name}` in the workspace at {cwd}", call.text()))
                })
            })
            .collect::<Result<_, _>>()?,
        Build::Workspace => members.clone(),
        Build::Here | Build::Path(_) if start_manifest.package.is_some() => vec![start_dir.clone()],
        Build::Here | Build::Path(_) => match workspace.default_members.is_empty() {
            true => members.clone(),
            false => workspace
                .default_members
                .iter()
                .filter_map(|member| join(root.as_deref().unwrap_or(&start_dir), member))
                .collect(),
        },
    };

    // The compiled closure: normal and build path dependencies of what was asked for (and, for
    // its tests, its dev-dependencies).
    let mut queue: Vec<(String, Option<usize>)> = asked.into_iter().map(|dir| (dir, None)).collect();
    queue.reverse();
    while let Some((dir, by)) = queue.pop() {
        if crates.compiled.iter().any(|compiled| compiled.dir == dir) {
            continue;
        }
        let manifest = known.get(&dir).cloned().flatten();
        let index = crates.compiled.len();
        let tested = all_targets && by.is_none();
        let skipped = uncompiled
            .iter()
            .filter(|folder| !tested && !manifest.iter().any(|manifest| manifest.target_folders.contains(folder)))
            .cloned()
            .collect();
        crates.compiled.push(Compiled {
            name: name_of(&dir, &known),
            dir: dir.clone(),
            by,
            missing: manifest.is_none(),
            skipped,
        });
        let Some(manifest) = manifest else { continue };
        let own_root = match members.contains(&dir) {
            true => root.clone(),
            false => foreign_root(&mut loader, &dir, root.as_deref())?,
        };
        for dep in manifest.deps.iter().filter(|dep| dep.kind == DepKind::Built || tested) {
            if let Some(dep_dir) = dep_dir(&mut loader, &dir, own_root.as_deref(), dep)? {
                queue.insert(0, (dep_dir, Some(index)));
            }
        }
    }
    Ok(Some(crates))
}

/// Manifests read once per build, by path; None when not on disk.
struct Loader<'a> {
    tree: &'a dyn Tree,
    manifests: BTreeMap<String, Option<Manifest>>,
}

impl Loader<'_> {
    fn load(&mut self, path: &str) -> Result<Option<&Manifest>, Unreadable> {
        if !self.manifests.contains_key(path) {
            let manifest = match self.tree.read(path) {
                Some(text) => Some(Manifest::parse(&text).map_err(|err| Unreadable::new(format!("{path}: {err}")))?),
                None => None,
            };
            self.manifests.insert(path.to_owned(), manifest);
        }
        Ok(self.manifests[path].as_ref())
    }
}

fn find_upward(tree: &dyn Tree, dir: &str) -> Option<String> {
    let mut at = Some(dir);
    while let Some(dir) = at {
        let manifest = match dir {
            "/" => "/Cargo.toml".to_owned(),
            dir => format!("{dir}/Cargo.toml"),
        };
        if tree.is_file(&manifest) {
            return Some(manifest);
        }
        at = parent(dir);
    }
    None
}

/// The nearest folder above `dir` whose manifest has `[workspace]`.
fn workspace_root(loader: &mut Loader, dir: &str) -> Result<Option<String>, Unreadable> {
    let mut at = parent(dir);
    while let Some(candidate) = at {
        let manifest = format!("{}/Cargo.toml", candidate.trim_end_matches('/'));
        if loader.load(&manifest)?.is_some_and(|manifest| manifest.workspace.is_some()) {
            return Ok(Some(candidate.trim_end_matches('/').to_owned()));
        }
        at = parent(candidate);
    }
    Ok(None)
}

/// A crate's own workspace when it is not the build's: its `workspace = true` dependencies
/// resolve there.
fn foreign_root(loader: &mut Loader, dir: &str, build_root: Option<&str>) -> Result<Option<String>, Unreadable> {
    let own = match loader.load(&format!("{dir}/Cargo.toml"))?.is_some_and(|manifest| manifest.workspace.is_some()) {
        true => Some(dir.to_owned()),
        false => workspace_root(loader, dir)?,
    };
    Ok(own.filter(|root| Some(root.as_str()) != build_root))
}

fn dep_dir(loader: &mut Loader, dir: &str, root: Option<&str>, dep: &Dep) -> Result<Option<String>, Unreadable> {
    Ok(match &dep.at {
        DepPath::Path(path) => join(dir, path),
        DepPath::Workspace => match root {
            Some(root) => {
                let manifest = loader.load(&format!("{root}/Cargo.toml"))?;
                let path = manifest.and_then(|manifest| manifest.workspace.as_ref()?.paths.get(&dep.key).cloned());
                path.and_then(|path| join(root, &path))
            }
            None => None,
        },
    })
}

fn excludes(root: &str, workspace: &Workspace, dir: &str) -> bool {
    workspace.exclude.iter().filter_map(|exclude| join(root, exclude)).any(|excluded| within(dir, &excluded).is_some())
}

/// A `members` entry: a folder, or a glob in its last component (`crates/*`).
fn expand_member(tree: &dyn Tree, root: &str, member: &str) -> Result<Vec<String>, Unreadable> {
    let Some(path) = join(root, member) else { return Ok(Vec::new()) };
    let (dir, last) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
    if dir.contains(['*', '?', '[']) {
        let message = format!("cannot expand the workspace member `{member}` (a glob before its last component)");
        return Err(Unreadable::new(message));
    }
    if !last.contains(['*', '?', '[']) {
        return Ok(vec![path]);
    }
    let bad = |err: &dyn std::fmt::Display| Unreadable::new(format!("the workspace member `{member}`: {err}"));
    let pattern = crate::changes::glob::to_regex(last).map_err(|err| bad(&err))?;
    let pattern = regex::Regex::new(&pattern).map_err(|err| bad(&err))?;
    let dir = if dir.is_empty() { "/" } else { dir };
    Ok(tree
        .list(dir)
        .into_iter()
        .filter(|name| pattern.is_match(name))
        .filter_map(|name| join(dir, &name))
        .filter(|member| tree.is_file(&format!("{member}/Cargo.toml")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::graph::{command::cargo_calls, Memory};

    /// Citadel's server image as cargo sees it (master): the Docker manifests copied over the
    /// root's and the kernel's, the submodule not checked out.
    fn server_image() -> Memory {
        Memory::new(&[
            (
                "/app/Cargo.toml",
                "[workspace]\nmembers = [\"kernel\", \"internal\", \"types\"]\nexclude = [\"./cis\"]\n\
                 [workspace.dependencies]\ntypes = { path = \"./types\" }\n",
            ),
            (
                "/app/kernel/Cargo.toml",
                "[package]\nname = \"kernel\"\n[[bin]]\nname = \"kernel\"\npath = \"src/main.rs\"\n\
                 [dependencies]\ntypes = { workspace = true }\ntokio = \"1\"\n\
                 [dev-dependencies]\ncis-service = { path = \"../cis/service\" }\n",
            ),
            ("/app/kernel/src/main.rs", ""),
            (
                "/app/internal/Cargo.toml",
                "[package]\nname = \"internal\"\n[dependencies]\ncis-service = { path = \"../cis/service\" }\n",
            ),
            (
                "/app/types/Cargo.toml",
                "[package]\nname = \"types\"\n[dependencies]\ncis-types = { path = \"../cis/types\" }\n",
            ),
        ])
    }

    fn crates(tree: &Memory, line: &str) -> Crates {
        let call = cargo_calls(line).remove(0);
        resolve(tree, "/app", &call, &["tests".to_owned()]).unwrap().unwrap()
    }

    #[test]
    fn a_binary_compiles_its_path_dependencies_across_workspaces() {
        let tree = server_image();
        let crates = crates(&tree, "cargo build --release --bin kernel");
        let compiled: Vec<(&str, bool)> = crates.compiled.iter().map(|c| (c.name.as_str(), c.missing)).collect();
        assert_eq!(compiled, [("kernel", false), ("types", false), ("cis-types", true)]);
        assert_eq!(
            crates.chain(2, "`Dockerfile`"),
            [
                "crate `cis-types` (its folder is not on disk)",
                "dependency of `types`",
                "dependency of `kernel`, built by `Dockerfile` (`cargo build --release --bin kernel`)"
            ]
        );
        let roles = [
            ("/app/types/src/lib.rs", Role::Compiled(1)),
            ("/app/cis/types/src/lib.rs", Role::Compiled(2)),
            ("/app/kernel/tests/it.rs", Role::Unread),
            ("/app/kernel/build.rs", Role::Compiled(0)),
            ("/app/internal/src/main.rs", Role::Unread),
            ("/app/Cargo.toml", Role::Manifest(0)),
            ("/app/kernel.toml", Role::Other),
        ];
        for (path, role) in roles {
            assert_eq!(crates.role(path), role, "{path}");
        }
        // The internal crate's manifest is loaded (a member), and the dev-dependency's folder.
        assert!(matches!(crates.role("/app/internal/Cargo.toml"), Role::Manifest(_)));
        assert!(crates.packages.contains(&"/app/cis/service".to_owned()));
        assert_eq!(crates.role_within("/app/cis"), Role::Compiled(2));

        // Linting the tests compiles the dev-dependencies and the tests folder.
        let tested = self::crates(&tree, "cargo clippy --tests");
        let names: Vec<&str> = tested.compiled.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["kernel", "internal", "types", "cis-service", "cis-types"]);
        assert_eq!(tested.role("/app/kernel/tests/it.rs"), Role::Compiled(0));
    }

    #[test]
    fn what_a_command_builds() {
        let cases: [(&str, Option<Build>); 8] = [
            ("cargo build --bin a --bin=b", Some(Build::Bins(vec!["a".into(), "b".into()]))),
            ("cargo run -p x -- --bin y", Some(Build::Packages(vec!["x".into()]))),
            ("cargo +nightly clippy --workspace", Some(Build::Workspace)),
            ("cargo tauri dev", Some(Build::Here)),
            ("cargo install tauri-cli", None),
            ("cargo install --path crates/cli", Some(Build::Path("crates/cli".into()))),
            ("cargo --version", None),
            ("cargo fmt --check", None),
        ];
        for (line, expected) in cases {
            let call = cargo_calls(line).remove(0);
            assert_eq!(Build::of(&call).map(|invocation| invocation.build), expected, "{line}");
        }
    }

    #[test]
    fn a_member_glob_and_a_foreign_workspace() {
        let tree = Memory::new(&[
            ("/w/Cargo.toml", "[workspace]\nmembers = [\"crates/*\"]\n"),
            (
                "/w/crates/app/Cargo.toml",
                "[package]\nname = \"app\"\n[dependencies]\nlib = { path = \"../../sub/lib\" }\n",
            ),
            ("/w/crates/other/Cargo.toml", "[package]\nname = \"other\"\n"),
            (
                "/w/sub/Cargo.toml",
                "[workspace]\nmembers = [\"lib\"]\n[workspace.dependencies]\nleaf = { path = \"leaf\" }\n",
            ),
            ("/w/sub/lib/Cargo.toml", "[package]\nname = \"lib\"\n[dependencies]\nleaf.workspace = true\n"),
            ("/w/sub/leaf/Cargo.toml", "[package]\nname = \"leaf\"\n"),
            ("/w/sub/README.md", ""),
        ]);
        let call = cargo_calls("cargo build -p app").remove(0);
        let crates = resolve(&tree, "/w", &call, &[]).unwrap().unwrap();
        let names: Vec<&str> = crates.compiled.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "lib", "leaf"]);
        assert_eq!(crates.foreign, ["/w/sub"]);
        assert_eq!(crates.role("/w/sub/README.md"), Role::Unread);
        assert_eq!(crates.role("/w/crates/other/src/lib.rs"), Role::Unread);
        assert!(matches!(crates.role("/w/sub/Cargo.toml"), Role::Manifest(_)));
        let missing = cargo_calls("cargo build --bin nope").remove(0);
        assert_eq!(
            resolve(&tree, "/w", &missing, &[]).unwrap_err().to_string(),
            "`cargo build --bin nope`: no crate of the workspace at /w has a binary `nope`"
        );
        assert_eq!(resolve(&tree, "/w", &cargo_calls("cargo fmt").remove(0), &[]), Ok(None));
    }
}
