//! Whose a line is. What the run knows of each resource (`Seen`, kept once for the whole run),
//! and, for the build being watched, which of the resource's lines since the trigger belong to
//! which build, serve process or container (`Lines`), in Tilt's own order of the log.
//!
//! A build's header opens it; `build:N` lines are build N's; a local update command's lines
//! (`cmd:R:update`) are the build's whose header precedes them; a serve process (`localserve:K`)
//! started after a build's header is that build's. A container's lines (`dc:R`) that follow a
//! build's header are that build's container's, from the moment Compose says in the build's own
//! lines that it started the container or kept it running (`Container ws-server-1  Started` /
//! `Running`): before that moment they are the old container's last words. Compose may write
//! that moment, and the new container speak, before the build's last lines. Without Compose's
//! word (a pod), only the container lines after the build's own last line are its.

use std::{borrow::Cow, collections::BTreeMap};

use tilt_log::{Judge, Role};

use crate::{
    protocol::Step,
    run::judge::{self, Judged},
    tilt::model::{ComposeService, LogLine, ResourceStatus, Span},
};

/// What is known of a resource, whatever build is ours: kept by the run from its start.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The highest build header in the log (Tilt's number, or the header's ordinal).
    pub header: u64,
    /// The highest serve process of the resource in the log.
    pub serve: u64,
    /// Lines of the resource so far: a line's place in the log.
    pub lines: usize,
    /// The log has no spans (Tilt older than 0.36.1): its build numbers are not Tilt's.
    pub plain: bool,
    pub status: Option<ResourceStatus>,
    /// The status before the latest one.
    pub previous: Option<ResourceStatus>,
    pub container: Option<ComposeService>,
}

impl Seen {
    /// Takes in a line of the resource and returns its place in the log.
    pub fn line(&mut self, line: &LogLine) -> usize {
        self.lines += 1;
        match line.span {
            Span::Build(number) | Span::Plain(number) if line.header => {
                self.plain = matches!(line.span, Span::Plain(_));
                self.header = self.header.max(number);
            }
            Span::Serve(number) => self.serve = self.serve.max(number),
            _ => {}
        }
        self.lines
    }

    pub fn status(&mut self, status: ResourceStatus) {
        self.previous = self.status.replace(status);
    }
}

/// The first line Tilt writes for a local resource's update command.
const COMMAND_STARTS: &str = "Running cmd:";

/// What Compose did with the container in a build, by its own line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `Started`: a new container, or an exited one-shot started again.
    Started,
    /// `Running`: the container kept as it was (its image did not change).
    Kept,
}

/// `Container ws-server-1  Started` (Compose v2, in a build's lines) for the service's own
/// container: `name` as the container watch knows it, else `<project>-<service>-<index>`, not
/// a dependency's.
pub fn compose_start(text: &str, service: &str, name: Option<&str>) -> Option<Start> {
    let rest = text.trim().strip_prefix("Container ")?;
    let (container, state) = rest.rsplit_once(' ')?;
    let start = match state {
        "Started" => Start::Started,
        "Running" => Start::Kept,
        _ => return None,
    };
    let container = container.trim_end();
    let ours = match name {
        Some(name) => container == name,
        None => container.rsplit_once('-').is_some_and(|(front, index)| {
            index.parse::<u32>().is_ok()
                && (front == service || front.strip_suffix(service).is_some_and(|project| project.ends_with('-')))
        }),
    };
    ours.then_some(start)
}

/// A header of a build after the baseline: its number, its place in the log, and how many
/// lines were placed before it.
#[derive(Debug, Clone, Copy)]
struct Header {
    number: u64,
    place: usize,
    placed_before: usize,
}

/// One build's own lines.
#[derive(Debug, Default, Clone)]
pub struct BuildLines {
    judged: Judged,
    /// A local update command's lines before its `Running cmd:` line: the previous build's
    /// last words (a failed command's lines can reach the log after Tilt's `Build Failed:` and
    /// the next build's header), unless no `Running cmd:` line ever comes.
    before_command: Judged,
    command_started: bool,
    /// What Compose said it did with the container, if it said so.
    pub start: Option<Start>,
    /// Tilt wrote the build's last line (`DONE IN: …`), or Compose's failed build its
    /// `Build Failed: …`: every line of the build is in.
    pub closed: bool,
}

impl BuildLines {
    /// What the build's own lines say.
    pub fn own(&self) -> Cow<'_, Judged> {
        match self.command_started {
            true => Cow::Borrowed(&self.judged),
            false => {
                let mut own = self.judged.clone();
                own.merge(&self.before_command);
                Cow::Owned(own)
            }
        }
    }
}

/// A container's lines after a build's header: since Compose said it started (or kept) the
/// container, and since the build's latest line of its own.
#[derive(Debug, Default, Clone)]
struct ContainerLines {
    build: u64,
    after_start: Judged,
    after_build_line: Judged,
}

/// Whose lines these are, as the log orders them since the trigger.
#[derive(Debug, Default)]
pub struct Lines {
    headers: Vec<Header>,
    /// The build the latest header opened: update-command lines are its own.
    open: Option<u64>,
    builds: BTreeMap<u64, BuildLines>,
    /// Serve processes whose first line came after this build's header, by build.
    serves: BTreeMap<u64, (u64, Judged)>,
    container: Option<ContainerLines>,
    /// Lines (not headers) placed since the first header after the baseline.
    placed: usize,
    /// Reads the records in order, for the joins of records sent in pieces.
    judge: Judge,
    /// The resource's container's name, as the container watch knows it.
    container_name: Option<String>,
}

impl Lines {
    pub fn new(container_name: Option<String>) -> Lines {
        Lines { container_name, ..Lines::default() }
    }

    /// Places and judges one line; `baseline` and `serve_baseline`: what was known at the
    /// trigger, never ours. Returns whether the line may change the verdict: a header, an
    /// error or success line, Compose's word on the container, the build's last line, a serve
    /// process's first line.
    pub fn add(&mut self, step: &Step, line: &LogLine, place: usize, baseline: u64, serve_baseline: u64) -> bool {
        if !line.header && !self.headers.is_empty() {
            self.placed += 1;
        }
        let build = match line.span {
            Span::Build(number) | Span::Plain(number) if line.header => {
                if number > baseline && self.header(number).is_none() {
                    self.headers.push(Header { number, place, placed_before: self.placed });
                }
                self.open = Some(number);
                return true;
            }
            Span::Build(number) | Span::Plain(number) => number,
            Span::Update => match self.open {
                Some(open) => open,
                None => return false,
            },
            Span::Serve(number) => {
                if number <= serve_baseline {
                    return false;
                }
                let Some(latest) = self.latest() else { return false };
                let role = judge::judge(&mut self.judge, step, line.span, &line.text);
                let news = !matches!(role, Role::Benign | Role::Ignored) || !self.serves.contains_key(&number);
                let (_, judged) = self.serves.entry(number).or_insert_with(|| (latest, Judged::default()));
                judged.take(role, &line.text);
                return news;
            }
            Span::Container => {
                let Some(latest) = self.latest() else { return false };
                let started = self.builds.get(&latest).is_some_and(|build| build.start.is_some());
                let role = judge::judge(&mut self.judge, step, line.span, &line.text);
                let news = !matches!(role, Role::Benign | Role::Ignored);
                let container = self.container.get_or_insert_with(ContainerLines::default);
                if container.build != latest {
                    *container = ContainerLines { build: latest, ..ContainerLines::default() };
                }
                if started {
                    container.after_start.take(role.clone(), &line.text);
                }
                container.after_build_line.take(role, &line.text);
                return news;
            }
            Span::Health => return false,
        };
        if build <= baseline {
            return false;
        }
        let role = judge::judge(&mut self.judge, step, line.span, &line.text);
        let mut news = !matches!(role, Role::Benign | Role::Ignored);
        if let Some(container) = self.container.as_mut().filter(|container| container.build == build) {
            container.after_build_line = Judged::default();
        }
        let lines = self.builds.entry(build).or_default();
        match line.span {
            Span::Update if !lines.command_started && !line.text.starts_with(COMMAND_STARTS) => {
                cov_mark::hit!(an_update_line_before_our_command_is_held_aside);
                lines.before_command.take(role, &line.text);
            }
            Span::Update => {
                lines.command_started = true;
                lines.judged.take(role, &line.text);
            }
            // A docker build's line as its compiler printed it, without BuildKit's step and time.
            _ => lines.judged.take(role, tilt_log::strip_buildkit(&line.text)),
        }
        if let Span::Build(_) = line.span {
            let text = tilt_log::strip_buildkit(&line.text).trim_start();
            if text.starts_with("DONE IN:") || text.starts_with(judge::TILT_BUILD_FAILED) {
                lines.closed = true;
                news = true;
            }
            if let Some(start) = compose_start(&line.text, &step.resource, self.container_name.as_deref()) {
                lines.start = Some(start);
                news = true;
            }
        }
        news
    }

    fn header(&self, number: u64) -> Option<&Header> {
        self.headers.iter().find(|header| header.number == number)
    }

    /// The build the latest header after the baseline opened.
    pub fn latest(&self) -> Option<u64> {
        self.headers.last().map(|header| header.number)
    }

    /// The first build after the baseline whose header the log shows, but those in `rejected`.
    pub fn first_not(&self, rejected: &[u64]) -> Option<u64> {
        self.headers.iter().map(|header| header.number).find(|number| !rejected.contains(number))
    }

    /// A build after `ours` whose header the log shows.
    pub fn later(&self, ours: u64) -> Option<u64> {
        self.headers.iter().map(|header| header.number).find(|number| *number > ours)
    }

    /// The place in the log of the first header after the baseline.
    pub fn first_place(&self) -> Option<usize> {
        self.headers.first().map(|header| header.place)
    }

    pub fn build(&self, number: u64) -> Option<&BuildLines> {
        self.builds.get(&number)
    }

    pub fn open(&self) -> Option<u64> {
        self.open
    }

    pub fn has_headers(&self) -> bool {
        !self.headers.is_empty()
    }

    /// Tilt starts a serve process only once the build has ended.
    pub fn serve_started(&self, build: u64) -> bool {
        self.serves.values().any(|(started_in, _)| *started_in == build)
    }

    /// What the build's service (its serve processes, its container) printed: after Compose
    /// started or kept the container when it said so; without its word (a pod, a container
    /// whose name is not known), only after the build's own last line, since the previous
    /// container may still be speaking until then.
    pub fn runtime(&self, build: u64) -> Judged {
        let mut runtime = Judged::default();
        for (_, judged) in self.serves.values().filter(|(started_in, _)| *started_in == build) {
            runtime.merge(judged);
        }
        if let Some(container) = self.container.as_ref().filter(|container| container.build == build) {
            match self.builds.get(&build).is_some_and(|lines| lines.start.is_some()) {
                true => runtime.merge(&container.after_start),
                false => runtime.merge(&container.after_build_line),
            }
        }
        runtime
    }

    /// Lines (not headers) placed since build `number`'s header.
    pub fn placed_since(&self, number: u64) -> usize {
        self.header(number).map_or(0, |header| self.placed - header.placed_before)
    }

    /// Replaces what the stream showed of build `ours` by what a fresh reading of Tilt's log
    /// (`other`, in full and in Tilt's order) showed of it; serve processes add up.
    pub fn take_reading(&mut self, mut other: Lines, ours: u64) {
        self.builds.insert(ours, other.builds.remove(&ours).unwrap_or_default());
        self.container = other.container.filter(|container| container.build == ours);
        for (number, (build, judged)) in other.serves {
            let (_, known) = self.serves.entry(number).or_insert_with(|| (build, Judged::default()));
            known.merge(&judged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composes_word_on_the_services_own_container_is_read() {
        let cases = [
            (" Container ws-server-1  Started", Some(Start::Started)),
            ("      Container ws-server-1  Running", Some(Start::Kept)),
            (" Container citadel-workspace-server-1  Started", Some(Start::Started)),
            (" Container ws-server-1  Starting", None),
            (" Container ws-sync-wasm-client-1  Started", None),
            // A project of that name could hold it: only the name the container watch knows tells.
            (" Container ws-internal-server-1  Started", Some(Start::Started)),
            (" Container server-2  Running", Some(Start::Kept)),
            ("Containers started", None),
        ];
        for (text, expected) in cases {
            assert_eq!(compose_start(text, "server", None), expected, "{text}");
        }
        assert_eq!(
            compose_start(" Container ws-server-1  Started", "server", Some("ws-server-1")),
            Some(Start::Started)
        );
        assert_eq!(compose_start(" Container ws-internal-server-1  Started", "server", Some("ws-server-1")), None);
        assert_eq!(
            compose_start(" Container citadel-server  Running", "server", Some("citadel-server")),
            Some(Start::Kept)
        );
    }
}
