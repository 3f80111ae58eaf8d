//! A compose file, read for what each service is made of: its build (context, Dockerfile,
//! target) and the host folders it mounts. Variables are interpolated as compose does when they
//! carry a default (`${PORT:-12345}`); a build path or mount source that needs the environment
//! is an error (the step runs, to be safe). Pure.

use crate::changes::graph::{
    error::Unreadable,
    yaml::{self, Yaml},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub build: Option<Build>,
    pub binds: Vec<Bind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// Relative to the compose file's folder.
    pub context: String,
    /// Relative to the context; None is `Dockerfile`.
    pub dockerfile: Option<String>,
    /// `dockerfile_inline`.
    pub inline: Option<String>,
    pub target: Option<String>,
}

/// A host path mounted into the service's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Relative to the compose file's folder (or absolute, or `~/…`).
    pub source: String,
    pub target: String,
    /// As written, for the plan's explanation.
    pub text: String,
}

pub fn parse(text: &str) -> Result<Vec<Service>, Unreadable> {
    let yaml = yaml::parse(text)?;
    if yaml.get("include").is_some() {
        return Err(Unreadable::new("its `include:` is not read"));
    }
    let Some(Yaml::Map(services)) = yaml.get("services") else {
        return Ok(Vec::new());
    };
    services.iter().map(|(name, service)| self::service(name, service)).collect()
}

fn service(name: &str, yaml: &Yaml) -> Result<Service, Unreadable> {
    if yaml.get("extends").is_some() {
        return Err(Unreadable::new(format!("service `{name}`: its `extends:` is not read")));
    }
    let field = |value: Option<&Yaml>, what: &str| -> Result<Option<String>, Unreadable> {
        match value {
            None | Some(Yaml::Null) => Ok(None),
            Some(Yaml::Str(text)) => {
                interpolate(text).map(Some).map_err(|err| Unreadable::new(format!("service `{name}`'s {what}: {err}")))
            }
            Some(_) => Err(Unreadable::new(format!("service `{name}`'s {what} is not a string"))),
        }
    };
    let build = match yaml.get("build") {
        None | Some(Yaml::Null) => None,
        Some(Yaml::Str(_)) => Some(Build {
            context: field(yaml.get("build"), "build")?.unwrap_or_else(|| ".".to_owned()),
            dockerfile: None,
            inline: None,
            target: None,
        }),
        Some(build) => Some(Build {
            context: field(build.get("context"), "build.context")?.unwrap_or_else(|| ".".to_owned()),
            dockerfile: field(build.get("dockerfile"), "build.dockerfile")?,
            inline: build.get("dockerfile_inline").and_then(Yaml::as_str).map(str::to_owned),
            target: field(build.get("target"), "build.target")?,
        }),
    };
    let mut binds = Vec::new();
    let volumes = match yaml.get("volumes") {
        Some(Yaml::List(volumes)) => volumes.as_slice(),
        _ => &[],
    };
    for volume in volumes {
        let (source, target, text) = match volume {
            Yaml::Str(text) => {
                let mut parts = text.splitn(3, ':');
                match (parts.next(), parts.next()) {
                    (Some(source), Some(target)) => (source.to_owned(), target.to_owned(), text.clone()),
                    _ => continue, // an anonymous volume
                }
            }
            long => {
                if long.get("type").and_then(Yaml::as_str) != Some("bind") {
                    continue;
                }
                let get = |key: &str| long.get(key).and_then(Yaml::as_str).unwrap_or_default().to_owned();
                let (source, target) = (get("source"), get("target"));
                let text = format!("{source}:{target}");
                (source, target, text)
            }
        };
        let source = interpolate(&source)
            .map_err(|err| Unreadable::new(format!("service `{name}`'s volume `{text}`: {err}")))?;
        if source.starts_with(['.', '/', '~']) {
            binds.push(Bind { source, target, text });
        }
    }
    Ok(Service { name: name.to_owned(), build, binds })
}

/// `${VAR:-default}` and `${VAR-default}` as their default, `$$` as `$`; a variable without a
/// default is an error: its value is the environment's.
fn interpolate(text: &str) -> Result<String, Unreadable> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(inner) = rest.strip_prefix('{') else {
            return Err(Unreadable::new(format!("`{text}` needs the environment")));
        };
        let Some(end) = inner.find('}') else {
            return Err(Unreadable::new(format!("`{text}`: an unclosed `${{`")));
        };
        let expression = &inner[..end];
        let default = expression.split_once(":-").or_else(|| expression.split_once('-')).map(|(_, default)| default);
        match default {
            Some(default) => out.push_str(default),
            None => return Err(Unreadable::new(format!("`{text}` needs the environment"))),
        }
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_binds_are_read() {
        let text = "services:\n  sync:\n    build:\n      context: .\n      dockerfile: ./docker/sync/Dockerfile\n\
                    \x20   volumes:\n      - ./cis:/workspace/cis:rw\n      - rust_cache:/root/.cargo\n      - /data\n\
                    \x20 ui:\n    build:\n      context: ${CTX:-.}\n      target: dev\n    volumes:\n      - type: volume\n        source: x\n        target: /y\n\
                    \x20     - type: bind\n        source: ./src\n        target: /app/src\n  db:\n    image: postgres\n";
        let services = parse(text).unwrap();
        let names: Vec<&str> = services.iter().map(|service| service.name.as_str()).collect();
        assert_eq!(names, ["sync", "ui", "db"]);
        let sync = &services[0];
        assert_eq!(sync.build.as_ref().unwrap().dockerfile.as_deref(), Some("./docker/sync/Dockerfile"));
        assert_eq!(
            sync.binds,
            [Bind { source: "./cis".into(), target: "/workspace/cis".into(), text: "./cis:/workspace/cis:rw".into() }]
        );
        let ui = &services[1];
        assert_eq!(
            ui.build.as_ref().map(|build| (build.context.as_str(), build.target.as_deref())),
            Some((".", Some("dev")))
        );
        assert_eq!(ui.binds[0].source, "./src");
        assert_eq!(services[2].build, None);
        assert_eq!(parse("services:\n  a:\n    build: ./a\n").unwrap()[0].build.as_ref().unwrap().context, "./a");
    }

    #[test]
    fn what_needs_the_environment_is_an_error() {
        assert_eq!(interpolate("a$$b ${X:-1} ${Y-2}").unwrap(), "a$b 1 2");
        let cases = [
            (
                "services:\n  a:\n    build:\n      context: ${CTX}\n",
                "service `a`'s build.context: `${CTX}` needs the environment",
            ),
            (
                "services:\n  a:\n    volumes:\n      - $HOME/x:/x\n",
                "service `a`'s volume `$HOME/x:/x`: `$HOME/x` needs the environment",
            ),
            ("services:\n  a:\n    extends: b\n", "service `a`: its `extends:` is not read"),
            ("include:\n  - other.yml\n", "its `include:` is not read"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), expected, "{text}");
        }
    }
}
