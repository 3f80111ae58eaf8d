//! Each step's inputs, derived once per run from the files Tilt builds from: the Tiltfile
//! (`settings.tiltfile`), the compose files it loads (or `[derive] compose`), each service's
//! Dockerfile stages and build context, its bind mounts, a local resource's `deps` and script,
//! and every cargo build they run. Nothing is run and nothing fetched. What cannot be read makes
//! that step's inputs unknown, and the step runs on any change, saying why.

use std::rc::Rc;

use crate::{
    changes::graph::{
        cargo,
        command::cargo_calls,
        compose::{self, Service},
        dockerfile::{Copy, Dockerfile, Instruction},
        dockerignore::Dockerignore,
        error::Unreadable,
        paths::{join, parent, within},
        tiltfile::{LocalResource, Tiltfile},
        view::View,
        Build, Graph, Inputs, Mapping, Source, StepGraph, Tree,
    },
    protocol::Protocol,
};

/// The inputs of every step of the protocol, read from `host` (the workspace).
pub fn derive(host: &dyn Tree, protocol: &Protocol) -> Graph {
    let tiltfile_path = protocol.settings.tiltfile.as_str();
    let every_step = |inputs: fn(String) -> Inputs, why: String| Graph {
        steps: protocol.steps.iter().map(|_| inputs(why.clone())).collect(),
    };
    // No Tiltfile, no resource: Tilt cannot run this checkout, and a sync would refuse it.
    let Some(text) = host.read(tiltfile_path) else {
        let why = format!("there is no `{tiltfile_path}` (settings.tiltfile), so no resource is defined");
        return every_step(Inputs::Undefined, why);
    };
    let tiltfile = match Tiltfile::parse(&text) {
        Ok(tiltfile) => tiltfile,
        Err(err) => return every_step(Inputs::Unknown, format!("`{tiltfile_path}` cannot be read: {err}")),
    };
    let tilt_dir = parent(tiltfile_path).unwrap_or_default();
    let compose_paths: Vec<String> = match protocol.derive.compose.is_empty() {
        true => tiltfile.compose_files.iter().filter_map(|file| join(tilt_dir, file)).collect(),
        false => protocol.derive.compose.iter().filter_map(|file| join("", file.as_str())).collect(),
    };
    let project = Project::read(host, &compose_paths);
    let context = Context { host, protocol, tiltfile_path, tilt_dir, tiltfile: &tiltfile, project: &project };
    Graph { steps: protocol.steps.iter().map(|step| context.inputs(&step.resource)).collect() }
}

/// The compose files Tilt loads, their services merged as compose merges them.
struct Project {
    /// Relative paths in every file are the first file's folder's (compose's project folder).
    dir: String,
    /// Each service, and the files that define it.
    services: Vec<(Service, Vec<String>)>,
    /// Files that could not be read, and why.
    broken: Vec<String>,
}

impl Project {
    fn read(host: &dyn Tree, paths: &[String]) -> Project {
        let dir = paths.first().and_then(|path| parent(path)).unwrap_or_default().to_owned();
        let mut project = Project { dir, services: Vec::new(), broken: Vec::new() };
        for path in paths {
            let Some(text) = host.read(path) else {
                project.broken.push(format!("`{path}` (which the Tiltfile loads) is not there"));
                continue;
            };
            let services = match compose::parse(&text) {
                Ok(services) => services,
                Err(err) => {
                    project.broken.push(format!("`{path}` cannot be read: {err}"));
                    continue;
                }
            };
            for service in services {
                match project.services.iter_mut().find(|(known, _)| known.name == service.name) {
                    Some((known, files)) => {
                        if service.build.is_some() {
                            known.build = service.build;
                        }
                        known.binds.extend(service.binds);
                        files.push(path.clone());
                    }
                    None => project.services.push((service, vec![path.clone()])),
                }
            }
        }
        project
    }
}

struct Context<'a> {
    host: &'a dyn Tree,
    protocol: &'a Protocol,
    tiltfile_path: &'a str,
    tilt_dir: &'a str,
    tiltfile: &'a Tiltfile,
    project: &'a Project,
}

impl Context<'_> {
    fn inputs(&self, resource: &str) -> Inputs {
        let local = self.tiltfile.local_resources.iter().find(|local| local.name == resource);
        let service = self.project.services.iter().find(|(service, _)| service.name == resource);
        let derived = match (local, service) {
            (Some(local), _) => self.local(local),
            (None, Some((service, files))) => self.service(service, files),
            (None, None) if !self.project.broken.is_empty() => {
                return Inputs::Unknown(self.project.broken.join("; "));
            }
            (None, None) if !self.tiltfile.unread.is_empty() => {
                return Inputs::Unknown(format!(
                    "`{}` defines no resource `{resource}` that can be read, and has {}",
                    self.tiltfile_path,
                    self.tiltfile.unread.join(", ")
                ));
            }
            (None, None) => {
                return Inputs::Undefined(format!("`{}` defines no resource `{resource}`", self.tiltfile_path))
            }
        };
        match derived {
            Ok(mut graph) => {
                let why = "the Tiltfile: it defines every resource".to_owned();
                graph.sources.insert(0, Source::File { path: self.tiltfile_path.to_owned(), why });
                Inputs::Derived(graph)
            }
            Err(why) => Inputs::Unknown(why.to_string()),
        }
    }

    fn service(&self, service: &Service, files: &[String]) -> Result<StepGraph, Unreadable> {
        let name = &service.name;
        let mut graph = StepGraph::default();
        for file in files {
            let why = format!("the compose file that defines `{name}` (loaded by the Tiltfile)");
            graph.sources.push(Source::File { path: file.clone(), why });
        }
        let compose = files.first().map(String::as_str).unwrap_or_default();
        let binds: Vec<Mapping> = service
            .binds
            .iter()
            .filter(|bind| !bind.source.starts_with(['/', '~']))
            .filter_map(|bind| {
                let why = format!("mounted into `{name}`'s container by `{compose}` (`{}`)", bind.text);
                let host = join(&self.project.dir, &bind.source)?;
                Some(Mapping { runtime: true, ..Mapping::new(host, bind.target.clone(), why) })
            })
            .collect();
        let Some(build) = &service.build else {
            graph.sources.extend(binds.into_iter().map(Source::Mapped));
            return Ok(graph);
        };
        let context = join(&self.project.dir, &build.context).ok_or_else(|| {
            Unreadable::new(format!("`{name}`'s build context `{}` is outside the workspace", build.context))
        })?;
        let (dockerfile_path, text) = match &build.inline {
            Some(text) => (format!("{compose}'s dockerfile_inline for `{name}`"), text.clone()),
            None => {
                let path = join(&context, build.dockerfile.as_deref().unwrap_or("Dockerfile"))
                    .filter(|path| !path.starts_with('/'))
                    .ok_or_else(|| Unreadable::new(format!("`{name}`'s Dockerfile is outside the workspace")))?;
                let text = self.host.read(&path).ok_or_else(|| {
                    Unreadable::new(format!("`{path}` (the Dockerfile of `{name}` in `{compose}`) is not there"))
                })?;
                let why = format!("the Dockerfile of `{name}` (`{compose}`)");
                graph.sources.push(Source::File { path: path.clone(), why });
                (path, text)
            }
        };
        let dockerfile = Dockerfile::parse(&text)
            .map_err(|err| Unreadable::new(format!("`{dockerfile_path}` cannot be read: {err}")))?;
        let ignore_path =
            [format!("{dockerfile_path}.dockerignore"), join(&context, ".dockerignore").unwrap_or_default()]
                .into_iter()
                .find(|path| self.host.is_file(path));
        let ignore = ignore_path.map(|path| {
            let why = format!("the build context's `.dockerignore` (`{name}`)");
            let ignore = Dockerignore::parse(&self.host.read(&path).unwrap_or_default());
            graph.sources.push(Source::File { path, why });
            (Rc::new(ignore), context.clone())
        });
        let image = Image { context: self, name, dockerfile_path: &dockerfile_path, build_context: &context, ignore };
        image.read(&dockerfile, build.target.as_deref(), binds, &mut graph)?;
        Ok(graph)
    }

    fn local(&self, local: &LocalResource) -> Result<StepGraph, Unreadable> {
        let name = &local.name;
        let mut graph = StepGraph::default();
        let dir =
            local.dir.as_deref().and_then(|dir| join(self.tilt_dir, dir)).unwrap_or_else(|| self.tilt_dir.to_owned());
        for dep in &local.deps {
            // A dep outside the workspace (another checkout beside it) is no change of ours.
            let Some(path) = join(self.tilt_dir, dep) else { continue };
            let why = format!("a `deps` of local resource `{name}` (`{}`)", self.tiltfile_path);
            let deps = Mapping::new(path.clone(), format!("/{path}"), why);
            graph.sources.push(Source::Mapped(Mapping { runtime: true, ..deps }));
        }
        // A local cargo build sees the whole workspace; only what it compiles or loads counts.
        let mut whole = Mapping { others_count: false, ..Mapping::new(String::new(), "/".to_owned(), String::new()) };
        for command in &local.commands {
            let program = command.split_whitespace().next().unwrap_or_default();
            if let Some(script) =
                join(&dir, program).filter(|script| program.contains('/') && self.host.is_file(script))
            {
                let why = format!("the command of local resource `{name}` (`{}`)", self.tiltfile_path);
                graph.sources.push(Source::File { path: script, why });
            }
            for call in cargo_calls(command) {
                let view = View { host: self.host, mappings: vec![&whole] };
                let cwd = format!("/{dir}");
                let uncompiled = &self.protocol.derive.uncompiled;
                match cargo::resolve(&view, &cwd, &call, uncompiled) {
                    Ok(Some(crates)) => {
                        let by = format!("local resource `{name}`");
                        graph.builds.push(Build { crates, by });
                        whole.builds.push(graph.builds.len() - 1);
                    }
                    Ok(None) => {}
                    Err(err) => {
                        return Err(Unreadable::new(format!(
                            "local resource `{name}`'s `{}` cannot be followed: {err}",
                            call.text()
                        )))
                    }
                }
            }
        }
        if !whole.builds.is_empty() {
            graph.sources.push(Source::Mapped(whole));
        }
        Ok(graph)
    }
}

/// One service's image: its Dockerfile's stages, read for what they copy and build.
struct Image<'a> {
    context: &'a Context<'a>,
    name: &'a str,
    dockerfile_path: &'a str,
    build_context: &'a str,
    ignore: Option<(Rc<Dockerignore>, String)>,
}

/// A stage as far as it goes: its folder, and the mappings (indices) its files come from.
#[derive(Clone, Default)]
struct Stage {
    workdir: String,
    view: Vec<usize>,
}

impl Image<'_> {
    /// The mappings of the stages the target reaches, the service's binds, and the cargo builds
    /// they run (a build sees the mappings of its stage and the stages it starts from; the
    /// target's CMD also sees the binds).
    fn read(
        &self,
        dockerfile: &Dockerfile,
        target: Option<&str>,
        binds: Vec<Mapping>,
        graph: &mut StepGraph,
    ) -> Result<(), Unreadable> {
        let target =
            dockerfile.target(target).map_err(|err| Unreadable::new(format!("`{}`: {err}", self.dockerfile_path)))?;
        let mut mappings: Vec<Mapping> = Vec::new();
        let mut stages: Vec<Option<Stage>> = vec![None; dockerfile.stages.len()];
        let mut calls = Vec::new();
        for index in dockerfile.reached(target) {
            let stage = &dockerfile.stages[index];
            let base = dockerfile.stage(&stage.base).filter(|&base| base < index);
            let mut state = base
                .and_then(|base| stages[base].clone())
                .unwrap_or_else(|| Stage { workdir: "/".to_owned(), view: Vec::new() });
            let mut runs = Vec::new();
            for instruction in &stage.instructions {
                match instruction {
                    Instruction::Workdir(dir) => {
                        if dir.contains('$') {
                            return Err(Unreadable::new(format!(
                                "`{}`: `WORKDIR {dir}` uses a variable",
                                self.dockerfile_path
                            )));
                        }
                        state.workdir = join(&state.workdir, dir).unwrap_or_else(|| "/".to_owned());
                    }
                    Instruction::Copy(copy) => {
                        let how = format!(
                            "copied into `{}`'s image by `{}` (`{}`)",
                            self.name, self.dockerfile_path, copy.text
                        );
                        for mapping in self.copy(copy, &state.workdir, how)? {
                            state.view.push(mappings.len());
                            mappings.push(mapping);
                        }
                    }
                    Instruction::Run { command, mounts } => {
                        for mount in mounts {
                            let how = format!("mounted into a RUN of `{}` (`{}`)", self.dockerfile_path, mount.text);
                            for mapping in self.copy(mount, &state.workdir, how)? {
                                state.view.push(mappings.len());
                                mappings.push(mapping);
                            }
                        }
                        runs.extend(command.shell_lines().into_iter().map(|line| (state.workdir.clone(), line, false)));
                    }
                    Instruction::Start(command) if index == target => {
                        runs.extend(command.shell_lines().into_iter().map(|line| (state.workdir.clone(), line, true)));
                    }
                    Instruction::Start(_) => {}
                }
            }
            for (cwd, line, at_start) in runs {
                for call in cargo_calls(&line) {
                    calls.push((state.view.clone(), cwd.clone(), call, at_start));
                }
            }
            stages[index] = Some(state);
        }
        // The builds that make the binary come first: the plan names them in its chains.
        calls.sort_by_key(|(_, _, call, _)| {
            !matches!(call.args.first().map(String::as_str), Some("build" | "run" | "install"))
        });
        let first_bind = mappings.len();
        for later in 0..first_bind {
            if !self.context.host.is_file(&mappings[later].host) {
                continue;
            }
            let replaced = mappings[later].at.clone();
            for earlier in &mut mappings[..later] {
                if within(&replaced, &earlier.at).is_some() {
                    earlier.shadowed.push(replaced.clone());
                }
            }
        }
        mappings.extend(binds);
        for (mut view, cwd, call, at_start) in calls {
            if at_start {
                view.extend(first_bind..mappings.len());
            }
            let resolved = {
                let tree =
                    View { host: self.context.host, mappings: view.iter().map(|&index| &mappings[index]).collect() };
                cargo::resolve(&tree, &cwd, &call, &self.context.protocol.derive.uncompiled)
            };
            match resolved {
                Ok(Some(crates)) => {
                    graph.builds.push(Build { crates, by: format!("`{}`", self.dockerfile_path) });
                    for index in view {
                        mappings[index].builds.push(graph.builds.len() - 1);
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    return Err(Unreadable::new(format!(
                        "`{}` in `{}` cannot be followed: {err}",
                        call.text(),
                        self.dockerfile_path
                    )))
                }
            }
        }
        graph.sources.extend(mappings.into_iter().map(Source::Mapped));
        Ok(())
    }

    /// A COPY's (or a bind mount's) sources as mappings; a source from a stage or an image
    /// brings nothing of the workspace (its stage's own copies count).
    fn copy(&self, copy: &Copy, workdir: &str, why: String) -> Result<Vec<Mapping>, Unreadable> {
        if copy.from.is_some() {
            return Ok(Vec::new());
        }
        let host = self.context.host;
        let dest = join(workdir, &copy.dest).unwrap_or_else(|| "/".to_owned());
        let into_folder = copy.dest.ends_with('/') || copy.dest == "." || copy.sources.len() > 1;
        let mut mappings = Vec::new();
        for source in &copy.sources {
            if source.contains('$') {
                return Err(Unreadable::new(format!(
                    "`{}`: `{}` copies `{source}`, a build argument",
                    self.dockerfile_path, copy.text
                )));
            }
            let Some(path) = join(self.build_context, source.trim_start_matches('/')) else { continue };
            let (host_path, at, mut left_out) = match path.rsplit_once('/').unwrap_or(("", path.as_str())) {
                // `COPY dir/package*.json ./`: the folder, keeping only the names the pattern
                // takes (even when the folder is not on disk: a submodule not checked out).
                (dir, pattern) if pattern.contains(['*', '?', '[']) => {
                    (dir.to_owned(), dest.clone(), vec!["*".to_owned(), format!("!{pattern}")])
                }
                _ if host.is_file(&path) && into_folder => {
                    let at = format!("{dest}/{}", path.rsplit('/').next().unwrap_or_default());
                    (path, at, Vec::new())
                }
                _ => (path, dest.clone(), Vec::new()),
            };
            left_out.extend(copy.excludes.iter().cloned());
            mappings.push(Mapping {
                ignore: self.ignore.clone(),
                excludes: (!left_out.is_empty()).then(|| Dockerignore::parse(&left_out.join("\n"))),
                ..Mapping::new(host_path, at.replace("//", "/"), why.clone())
            });
        }
        Ok(mappings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::graph::Memory;

    /// Citadel at master, as far as the graph reads it: the submodules not checked out.
    fn citadel() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Tiltfile", "docker_compose('./docker-compose.yml')\ndc_resource('server')\n"),
            (
                "docker-compose.yml",
                "services:\n  sync-wasm-client:\n    build:\n      context: .\n      dockerfile: ./docker/sync/Dockerfile\n\
                 \x20   volumes:\n      - ./citadel-internal-service:/workspace/citadel-internal-service:rw\n\
                 \x20     - ./citadel-workspace-client-ts:/workspace/citadel-workspace-client-ts:rw\n\
                 \x20     - ./citadel-workspaces:/workspace/citadel-workspaces:rw\n      - rust_cache:/root/.cargo\n\
                 \x20 server:\n    build:\n      context: .\n      dockerfile: ./docker/workspace-server/Dockerfile\n\
                 \x20   volumes:\n      - target_cache:/usr/src/app/target\n\
                 \x20 internal-service:\n    build:\n      context: .\n      dockerfile: ./docker/internal-service/Dockerfile\n\
                 \x20 ui:\n    build:\n      context: .\n      dockerfile: ./docker/ui/Dockerfile\n      target: dev\n\
                 \x20   volumes:\n      - ./citadel-workspaces/src:/app/src:rw\n      - ./citadel-workspace-client-ts:/workspace/citadel-workspace-client-ts:ro\n",
            ),
            (".dockerignore", ".git\nDockerfile\ndocker-compose.yml\nTiltfile\n**/target/\nCargo.lock\n**/Cargo.lock\n*.log\n.claude\n"),
            ("docker/sync/Dockerfile", "FROM rust:1.92.0\nWORKDIR /workspace\nCOPY ./sync-wasm-clients.sh /workspace/\nCMD [\"./sync-wasm-clients.sh\", \"--no-restart\"]\n"),
            (
                "docker/workspace-server/Dockerfile",
                "FROM rust:1.92.0 AS builder\nWORKDIR /usr/src/app\nCOPY ./docker/workspace-server/kernel.toml /usr/src/app/kernel.toml\n\
                 COPY ./docker/workspace-server/documents /usr/src/app/documents\n\
                 COPY ./docker/workspace-server/Cargo.docker.toml /usr/src/app/Cargo.toml\n\
                 COPY --exclude=tests ./citadel-workspace-server-kernel /usr/src/app/citadel-workspace-server-kernel\n\
                 COPY ./docker/workspace-server/kernel.Cargo.docker.toml /usr/src/app/citadel-workspace-server-kernel/Cargo.toml\n\
                 COPY ./citadel-workspace-internal-service /usr/src/app/citadel-workspace-internal-service\n\
                 COPY ./citadel-workspace-types /usr/src/app/citadel-workspace-types\n\
                 COPY ./citadel-internal-service /usr/src/app/citadel-internal-service\n\
                 RUN cargo build --release --bin citadel-workspace-server-kernel\n\
                 FROM debian AS production\nCOPY --from=builder /usr/local/bin/k /usr/local/bin/k\n\
                 FROM builder AS dev\nCMD [\"/usr/local/bin/citadel-workspace-server-kernel\"]\n",
            ),
            (
                "docker/internal-service/Dockerfile",
                "FROM rust:1.92.0 AS builder\nWORKDIR /usr/src/app\nCOPY ./docker/workspace-server/kernel.toml /usr/src/app/kernel.toml\n\
                 COPY ./Cargo.toml /usr/src/app/Cargo.toml\n\
                 COPY ./citadel-workspace-server-kernel /usr/src/app/citadel-workspace-server-kernel\n\
                 COPY ./citadel-workspace-internal-service /usr/src/app/citadel-workspace-internal-service\n\
                 COPY ./citadel-workspace-types /usr/src/app/citadel-workspace-types\n\
                 COPY ./citadel-internal-service /usr/src/app/citadel-internal-service\n\
                 RUN cargo build --release --bin citadel-workspace-internal-service\n",
            ),
            (
                "docker/ui/Dockerfile",
                "FROM node:20-alpine AS dev\nWORKDIR /app\nCOPY citadel-workspaces/package.json ./\nRUN npm install\n\
                 FROM node:20-alpine AS build\nCOPY citadel-workspace-client-ts /workspace/citadel-workspace-client-ts\n\
                 FROM nginx AS production\nCOPY docker/ui/nginx.conf.template /etc/nginx/templates/default.conf.template\n",
            ),
            ("docker/workspace-server/kernel.toml", ""),
            ("docker/workspace-server/documents/defaults/root/General/CONTENT.md", ""),
            (
                "docker/workspace-server/Cargo.docker.toml",
                "[workspace]\nmembers = [\"citadel-workspace-server-kernel\", \"citadel-workspace-internal-service\", \"citadel-workspace-types\"]\n\
                 exclude = [\"./citadel-internal-service\"]\n[workspace.dependencies]\ncitadel-workspace-types = { path = \"./citadel-workspace-types\" }\n",
            ),
            (
                "docker/workspace-server/kernel.Cargo.docker.toml",
                "[package]\nname = \"citadel-workspace-server-kernel\"\n[[bin]]\nname = \"citadel-workspace-server-kernel\"\npath = \"src/main.rs\"\n\
                 [dependencies]\ncitadel-workspace-types = { workspace = true }\n",
            ),
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"citadel-workspace-server-kernel\", \"citadel-workspace-internal-service\", \"citadel-workspace-types\", \"citadel-workspace-server-kernel/tests/common\"]\n\
                 exclude = [\"./citadel-internal-service\"]\n[workspace.dependencies]\ncitadel-workspace-types = { path = \"./citadel-workspace-types\" }\n",
            ),
            (
                "citadel-workspace-server-kernel/Cargo.toml",
                "[package]\nname = \"citadel-workspace-server-kernel\"\n[dependencies]\ncitadel-workspace-types = { workspace = true }\n\
                 [dev-dependencies]\ncommon = { path = \"./tests/common\", package = \"citadel-workspace-server-kernel-test-common\" }\n",
            ),
            ("citadel-workspace-server-kernel/src/main.rs", ""),
            ("citadel-workspace-server-kernel/tests/common/Cargo.toml", "[package]\nname = \"citadel-workspace-server-kernel-test-common\"\n"),
            (
                "citadel-workspace-internal-service/Cargo.toml",
                "[package]\nname = \"citadel-workspace-internal-service\"\n[[bin]]\nname = \"citadel-workspace-internal-service\"\npath = \"src/main.rs\"\n\
                 [dependencies]\ncitadel-internal-service = { path = \"../citadel-internal-service/citadel-internal-service\" }\n",
            ),
            (
                "citadel-workspace-types/Cargo.toml",
                "[package]\nname = \"citadel-workspace-types\"\n[dependencies]\n\
                 citadel-internal-service-types = { path = \"../citadel-internal-service/citadel-internal-service-types\" }\n",
            ),
            ("citadel-workspace-types/src/lib.rs", ""),
            ("sync-wasm-clients.sh", ""),
            ("citadel-workspace-client-ts/src/index.ts", ""),
        ]
    }

    /// The steps whose inputs hold `path`.
    fn steps_for(files: &[(&str, &str)], path: &str, hidden: bool) -> Vec<&'static str> {
        let protocol = Protocol::load(None).unwrap();
        let graph = derive(&Memory::new(files), &protocol);
        let names = ["sync-wasm-client", "server", "internal-service", "ui"];
        let mut steps = Vec::new();
        for (inputs, name) in graph.steps.iter().zip(names) {
            match inputs {
                Inputs::Derived(step) if step.chain(path, hidden).is_some() => steps.push(name),
                Inputs::Derived(_) => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        steps
    }

    #[test]
    fn citadels_steps_are_made_of_what_their_builds_read() {
        let files = citadel();
        let cases: [(&str, &[&str]); 20] = [
            ("citadel-workspace-server-kernel/src/main.rs", &["server"]),
            ("citadel-workspace-server-kernel/tests/it.rs", &[]),
            ("citadel-workspace-server-kernel/tests/common/Cargo.toml", &["internal-service"]),
            ("citadel-workspace-server-kernel/Cargo.toml", &["internal-service"]),
            ("citadel-workspace-types/src/lib.rs", &["server"]),
            ("citadel-workspace-internal-service/src/main.rs", &["internal-service"]),
            // A moved submodule pointer: the crates it holds, the sync job's mount.
            ("citadel-internal-service", &["sync-wasm-client", "server", "internal-service"]),
            ("citadel-workspaces", &["sync-wasm-client", "ui"]),
            ("docker/workspace-server/documents/defaults/root/General/CONTENT.md", &["server"]),
            ("docker/workspace-server/kernel.toml", &["server", "internal-service"]),
            ("docker/workspace-server/Cargo.docker.toml", &["server"]),
            ("Cargo.toml", &["internal-service"]),
            ("Cargo.lock", &[]),
            ("docker/ui/Dockerfile", &["ui"]),
            ("docker/ui/nginx.conf.template", &[]),
            ("sync-wasm-clients.sh", &["sync-wasm-client"]),
            ("citadel-workspace-client-ts/src/index.ts", &["sync-wasm-client", "ui"]),
            (".github/workflows/validate.yml", &[]),
            ("docker-compose.yml", &["sync-wasm-client", "server", "internal-service", "ui"]),
            (".dockerignore", &["sync-wasm-client", "server", "internal-service", "ui"]),
        ];
        for (path, expected) in cases {
            assert_eq!(steps_for(&files, path, false), expected, "{path}");
        }
        // Where a rule says Vite reloads it, a mounted file needs no rebuild; what the image
        // copies still does.
        assert_eq!(steps_for(&files, "citadel-workspaces/src/App.tsx", true), Vec::<&str>::new());
        assert_eq!(steps_for(&files, "citadel-workspaces", true), ["ui"]);
    }

    #[test]
    fn the_chain_says_why() {
        let protocol = Protocol::load(None).unwrap();
        let graph = derive(&Memory::new(&citadel()), &protocol);
        let Inputs::Derived(server) = &graph.steps[1] else { panic!() };
        assert_eq!(
            server.chain("citadel-internal-service", false).unwrap(),
            [
                "citadel-internal-service",
                "crate `citadel-internal-service-types` (its folder is not on disk)",
                "dependency of `citadel-workspace-types`",
                "dependency of `citadel-workspace-server-kernel`, built by `docker/workspace-server/Dockerfile` (`cargo build --release --bin citadel-workspace-server-kernel`)",
            ]
        );
        assert_eq!(
            server.chain("docker/workspace-server/documents/defaults/root/General/CONTENT.md", false).unwrap()[1],
            "copied into `server`'s image by `docker/workspace-server/Dockerfile` (`COPY ./docker/workspace-server/documents /usr/src/app/documents`)"
        );
        let Inputs::Derived(internal) = &graph.steps[2] else { panic!() };
        assert_eq!(
            internal.chain("Cargo.toml", false).unwrap()[1],
            "the workspace manifest, which cargo loads to build (`cargo build --release --bin citadel-workspace-internal-service`, `docker/internal-service/Dockerfile`)"
        );
    }

    #[test]
    fn what_cannot_be_read_runs_the_step_and_says_why() {
        let mut files = citadel();
        files.retain(|(path, _)| *path != "docker/internal-service/Dockerfile");
        files.push(("docker/ui/Dockerfile", "COPY x y\n"));
        let protocol = Protocol::load(None).unwrap();
        let graph = derive(&Memory::new(&files), &protocol);
        let why = |index: usize| match &graph.steps[index] {
            Inputs::Unknown(why) => why.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(why(2), "`docker/internal-service/Dockerfile` (the Dockerfile of `internal-service` in `docker-compose.yml`) is not there");
        assert_eq!(why(3), "`docker/ui/Dockerfile` cannot be read: line 1: `COPY` before the first FROM");
        assert!(matches!(graph.steps[1], Inputs::Derived(_)));

        let no_tiltfile = derive(&Memory::new(&[]), &protocol);
        assert!(no_tiltfile
            .steps
            .iter()
            .all(|inputs| matches!(inputs, Inputs::Undefined(why) if why.starts_with("there is no `Tiltfile`"))));
        let broken = derive(&Memory::new(&[("Tiltfile", "docker_compose('x.yml\n")]), &protocol);
        let unreadable = "`Tiltfile` cannot be read: line 1: a string that never ends";
        assert!(broken.steps.iter().all(|inputs| matches!(inputs, Inputs::Unknown(why) if why == unreadable)));
        let two_services = derive(&Memory::new(&[("Tiltfile", "local_resource('server', 'make')\n")]), &protocol);
        assert!(
            matches!(&two_services.steps[0], Inputs::Undefined(why) if why == "`Tiltfile` defines no resource `sync-wasm-client`")
        );
        assert!(matches!(&two_services.steps[1], Inputs::Derived(_)));
    }
}
