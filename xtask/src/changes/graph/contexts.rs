//! The build contexts Tilt watches, and whether each leaves the sync's own `logs/` out. Tilt
//! watches every file of an image's build context but those its `.dockerignore` excludes: a
//! context that takes in `logs/` makes each sync's writes a change, and rebuilds the auto-mode
//! `ui` after every sync (seen on the real Tilt). Citadel's `.dockerignore` lists `logs/`.

use crate::changes::graph::{
    compose,
    dockerignore::Dockerignore,
    paths::{join, parent, within},
    tiltfile::Tiltfile,
    Tree,
};

/// A compose service whose build context takes in `logs/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsWatched {
    pub service: String,
    /// The `.dockerignore` that should leave `logs/` out (from the workspace's root).
    pub dockerignore: String,
    pub exists: bool,
}

impl LogsWatched {
    /// What to do about it, in a sentence.
    pub fn advice(&self) -> String {
        let what = match self.exists {
            true => format!("`{}` does not leave out `logs/`", self.dockerignore),
            false => format!("there is no `{}`", self.dockerignore),
        };
        format!(
            "warning: {what}, so Tilt takes the sync's own writes under logs/ for a change of `{}` (an auto-mode \
             resource then rebuilds after every sync): add the line `logs/` to `{}`",
            self.service, self.dockerignore
        )
    }
}

/// The compose services (of the compose files the Tiltfile at `tiltfile` loads) whose build
/// context takes in `logs/` at the workspace's root. What cannot be read is left unsaid.
pub fn logs_watched(host: &dyn Tree, tiltfile: &str) -> Vec<LogsWatched> {
    let Some(parsed) = host.read(tiltfile).and_then(|text| Tiltfile::parse(&text).ok()) else { return Vec::new() };
    let tilt_dir = parent(tiltfile).unwrap_or_default();
    let mut watched = Vec::new();
    for file in parsed.compose_files.iter().filter_map(|file| join(tilt_dir, file)) {
        let compose_dir = parent(&file).unwrap_or_default().to_owned();
        let Some(services) = host.read(&file).and_then(|text| compose::parse(&text).ok()) else { continue };
        for service in services {
            let Some(context) = service.build.and_then(|build| join(&compose_dir, &build.context)) else { continue };
            let Some(inside) = within(LOG_PROBE, &context) else { continue };
            let dockerignore = join(&context, ".dockerignore").unwrap_or_else(|| ".dockerignore".to_owned());
            let text = host.read(&dockerignore);
            if !text.as_deref().is_some_and(|text| Dockerignore::parse(text).excludes(inside)) {
                watched.push(LogsWatched { service: service.name, dockerignore, exists: text.is_some() });
            }
        }
    }
    watched
}

/// A file the sync writes under `logs/`, from the workspace's root.
const LOG_PROBE: &str = "logs/sync-status.json";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::graph::Memory;

    const TILTFILE: &str = "docker_compose('./docker-compose.yml')\n";
    const COMPOSE: &str =
        "services:\n  ui:\n    build:\n      context: .\n      dockerfile: ./docker/ui/Dockerfile\n  \
                           sync:\n    build:\n      context: ./docker/sync\n";

    #[test]
    fn a_context_that_takes_in_logs_is_named_with_what_to_add() {
        let without =
            Memory::new(&[("Tiltfile", TILTFILE), ("docker-compose.yml", COMPOSE), (".dockerignore", "target/\n")]);
        let watched = logs_watched(&without, "Tiltfile");
        assert_eq!(
            watched,
            [LogsWatched { service: "ui".to_owned(), dockerignore: ".dockerignore".to_owned(), exists: true }]
        );
        assert!(watched[0].advice().contains("add the line `logs/` to `.dockerignore`"), "{}", watched[0].advice());

        let with =
            Memory::new(&[("Tiltfile", TILTFILE), ("docker-compose.yml", COMPOSE), (".dockerignore", "logs/\n")]);
        assert!(logs_watched(&with, "Tiltfile").is_empty());
        let none = Memory::new(&[("Tiltfile", TILTFILE), ("docker-compose.yml", COMPOSE)]);
        assert!(!logs_watched(&none, "Tiltfile")[0].exists);
    }
}
