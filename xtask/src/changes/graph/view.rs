//! An image's (or a container's) files as its build sees them: a path of the image is read
//! from the host file that the last mapping covering it brings (a later COPY over an earlier
//! one, a bind mount over the image), minus what the `.dockerignore` and `--exclude` leave out.

use crate::changes::graph::{
    paths::{join, within},
    Mapping, Tree,
};

pub struct View<'a> {
    pub host: &'a dyn Tree,
    pub mappings: Vec<&'a Mapping>,
}

impl View<'_> {
    /// The host paths that may bring `path`, the last mapping first.
    fn sources(&self, path: &str) -> Vec<String> {
        self.mappings
            .iter()
            .rev()
            .filter_map(|mapping| {
                let relative = within(path, &mapping.at)?;
                let host = if relative.is_empty() { mapping.host.clone() } else { join(&mapping.host, relative)? };
                (!mapping.leaves_out(&host)).then_some(host)
            })
            .collect()
    }
}

impl Tree for View<'_> {
    fn read(&self, path: &str) -> Option<String> {
        self.sources(path).into_iter().find(|host| self.host.is_file(host)).and_then(|host| self.host.read(&host))
    }

    fn is_file(&self, path: &str) -> bool {
        self.sources(path).iter().any(|host| self.host.is_file(host))
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = self.sources(dir).iter().flat_map(|host| self.host.list(host)).collect();
        for mapping in &self.mappings {
            if let Some(inner) = within(&mapping.at, dir).filter(|inner| !inner.is_empty()) {
                names.extend(inner.split('/').next().map(str::to_owned));
            }
        }
        names.sort();
        names.dedup();
        names
    }
}
