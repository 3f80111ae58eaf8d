//! A Dockerfile, read for what goes into its image: its stages (`FROM … AS name`), and in each
//! the `WORKDIR`s, `COPY`/`ADD` sources (flags, JSON form, `--exclude`, `--from`), the `RUN`
//! commands (with their `--mount=type=bind`) and the `CMD`/`ENTRYPOINT`. Pure: the text in,
//! the stages out; an instruction it cannot read is an error naming its line.

use crate::changes::graph::error::Unreadable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower-cased as Docker compares it.
    pub name: Option<String>,
    /// The image or earlier stage it starts from, lower-cased.
    pub base: String,
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Workdir(String),
    Copy(Copy),
    /// A shell line (an exec form's words joined), and the context folders it mounts.
    Run {
        command: Command,
        mounts: Vec<Copy>,
    },
    /// `CMD` or `ENTRYPOINT`: what the container runs when it starts.
    Start(Command),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// `COPY`/`ADD` (or a `RUN --mount=type=bind`): sources relative to the build context (or to
/// the stage `from` names), a destination in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    /// `--exclude=` patterns, relative to each source.
    pub excludes: Vec<String>,
    /// The instruction as written (one line), for the plan's explanation.
    pub text: String,
}

impl Dockerfile {
    pub fn parse(text: &str) -> Result<Dockerfile, Unreadable> {
        let mut stages: Vec<Stage> = Vec::new();
        for logical in logical_lines(text) {
            let fail = |message: String| Unreadable::at(logical.line, message);
            let (keyword, rest) = logical.text.split_once(char::is_whitespace).unwrap_or((&logical.text, ""));
            let keyword = keyword.to_ascii_uppercase();
            let rest = rest.trim();
            if keyword == "FROM" {
                stages.push(from(rest).map_err(fail)?);
                continue;
            }
            let Some(stage) = stages.last_mut() else {
                if matches!(keyword.as_str(), "ARG") {
                    continue; // an ARG before the first FROM only parameterises FROM
                }
                return Err(fail(format!("`{keyword}` before the first FROM")));
            };
            let instruction = match keyword.as_str() {
                "WORKDIR" => Instruction::Workdir(unquote(rest).to_owned()),
                "COPY" | "ADD" => {
                    let copy = copy(&keyword, rest, &logical.text).map_err(fail)?;
                    if copy.sources.is_empty() {
                        continue; // a heredoc: nothing from the context
                    }
                    Instruction::Copy(copy)
                }
                "RUN" => {
                    let (flags, command) = flags(rest);
                    let mounts = flags
                        .iter()
                        .filter_map(|flag| flag.strip_prefix("--mount="))
                        .filter_map(|mount| bind_mount(mount, &logical.text))
                        .collect();
                    let command = match &logical.heredoc {
                        Some(body) => Command::Shell(body.clone()),
                        None => command_form(command).map_err(fail)?,
                    };
                    Instruction::Run { command, mounts }
                }
                "CMD" | "ENTRYPOINT" => Instruction::Start(command_form(rest).map_err(fail)?),
                _ => continue,
            };
            stage.instructions.push(instruction);
        }
        if stages.is_empty() {
            return Err(Unreadable::at(1, "no FROM: not a Dockerfile"));
        }
        Ok(Dockerfile { stages })
    }

    /// The stage a build ends with: `target` when given, else the last.
    pub fn target(&self, target: Option<&str>) -> Result<usize, String> {
        match target {
            None => Ok(self.stages.len() - 1),
            Some(name) => {
                self.stage(name).ok_or_else(|| format!("no stage named `{name}` (the compose file's target)"))
            }
        }
    }

    /// The stage a `FROM` or `--from` names, by name or index; None for an image.
    pub fn stage(&self, name: &str) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.stages
            .iter()
            .position(|stage| stage.name.as_deref() == Some(&name))
            .or_else(|| name.parse::<usize>().ok().filter(|&index| index < self.stages.len()))
    }

    /// The stages a build of `target` runs: the target, the stages it starts from, and those
    /// it copies or mounts from, recursively, in file order.
    pub fn reached(&self, target: usize) -> Vec<usize> {
        let mut reached = vec![false; self.stages.len()];
        let mut pending = vec![target];
        while let Some(index) = pending.pop() {
            if std::mem::replace(&mut reached[index], true) {
                continue;
            }
            let stage = &self.stages[index];
            let copies = stage.instructions.iter().flat_map(|instruction| match instruction {
                Instruction::Copy(copy) => std::slice::from_ref(copy),
                Instruction::Run { mounts, .. } => mounts.as_slice(),
                _ => &[],
            });
            let named = copies.filter_map(|copy| copy.from.as_deref()).chain([stage.base.as_str()]);
            // A stage only sees the stages before it.
            pending.extend(named.filter_map(|name| self.stage(name)).filter(|&other| other < index));
        }
        (0..self.stages.len()).filter(|&index| reached[index]).collect()
    }
}

/// One instruction with its continuation lines joined, and a heredoc's body.
struct Logical {
    line: usize,
    text: String,
    heredoc: Option<String>,
}

fn logical_lines(text: &str) -> Vec<Logical> {
    let lines: Vec<&str> = text.lines().collect();
    let escape = escape_directive(&lines);
    let mut logical = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = lines[index].trim();
        index += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let start = index;
        let mut text = String::new();
        let mut current = line;
        loop {
            match current.strip_suffix(escape) {
                Some(continued) => {
                    text.push_str(continued);
                    text.push(' ');
                    // Comment and empty lines inside a continuation are dropped, as Docker does.
                    while index < lines.len() && is_skipped_in_continuation(lines[index]) {
                        index += 1;
                    }
                    match lines.get(index) {
                        Some(next) => {
                            current = next.trim();
                            index += 1;
                        }
                        None => break,
                    }
                }
                None => {
                    text.push_str(current);
                    break;
                }
            }
        }
        let heredoc = heredoc_word(&text).map(|(word, strip_tabs)| {
            let mut body = Vec::new();
            while index < lines.len() {
                let raw = lines[index];
                index += 1;
                let candidate = if strip_tabs { raw.trim_start_matches('\t') } else { raw };
                if candidate.trim_end() == word {
                    break;
                }
                body.push(candidate);
            }
            body.join("\n")
        });
        logical.push(Logical { line: start, text: text.trim().to_owned(), heredoc });
    }
    logical
}

fn is_skipped_in_continuation(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// `# escape=`` ` `` in the parser directives at the top; `\` otherwise.
fn escape_directive(lines: &[&str]) -> char {
    for line in lines {
        let Some(directive) = line.trim().strip_prefix('#') else { break };
        if let Some((key, value)) = directive.split_once('=') {
            if key.trim().eq_ignore_ascii_case("escape") {
                return value.trim().chars().next().unwrap_or('\\');
            }
        }
    }
    '\\'
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"` in a RUN/COPY/ADD line: the word ending the body.
fn heredoc_word(text: &str) -> Option<(String, bool)> {
    let keyword = text.split_whitespace().next()?.to_ascii_uppercase();
    if !matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        return None;
    }
    let at = text.find("<<")?;
    let rest = &text[at + 2..];
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let word: String =
        rest.trim_start_matches(['"', '\'']).chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (!word.is_empty()).then_some((word, strip_tabs))
}

fn from(rest: &str) -> Result<Stage, String> {
    let (_, words) = flags(rest);
    let words: Vec<&str> = words.split_whitespace().collect();
    match words[..] {
        [base] => Ok(Stage { name: None, base: base.to_ascii_lowercase(), instructions: Vec::new() }),
        [base, as_, name] if as_.eq_ignore_ascii_case("as") => Ok(Stage {
            name: Some(name.to_ascii_lowercase()),
            base: base.to_ascii_lowercase(),
            instructions: Vec::new(),
        }),
        _ => Err(format!("cannot read `FROM {rest}`")),
    }
}

/// The leading `--flag[=value]` words, and the rest.
fn flags(rest: &str) -> (Vec<&str>, &str) {
    let mut flags = Vec::new();
    let mut rest = rest.trim_start();
    while rest.starts_with("--") {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        flags.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    (flags, rest)
}

fn copy(keyword: &str, rest: &str, text: &str) -> Result<Copy, String> {
    let (flags, words) = flags(rest);
    let mut paths: Vec<String> = match words.starts_with('[') {
        true => serde_json::from_str(words).map_err(|err| format!("cannot read {keyword}'s JSON form: {err}"))?,
        false => words.split_whitespace().map(str::to_owned).collect(),
    };
    let Some(dest) = paths.pop().filter(|_| !paths.is_empty()) else {
        return Err(format!("`{keyword}` needs a source and a destination"));
    };
    let value = |name: &'static str| flags.iter().filter_map(move |flag| flag.strip_prefix(name)).map(unquote);
    let from = value("--from=").next().map(str::to_owned);
    let excludes = value("--exclude=").map(str::to_owned).collect();
    // A heredoc source (`<<EOF`) or a URL (`ADD https://…`, `ADD git@…`) is not from the context.
    paths.retain(|source| !source.starts_with("<<") && !source.contains("://") && !source.starts_with("git@"));
    Ok(Copy { sources: paths, dest, from, excludes, text: text.to_owned() })
}

/// `type=bind,source=…,target=…[,from=…]`: context files a RUN sees; other mounts are not.
fn bind_mount(spec: &str, text: &str) -> Option<Copy> {
    let fields: Vec<(&str, &str)> = spec.split(',').filter_map(|field| field.split_once('=')).collect();
    let get = |names: &[&str]| fields.iter().find(|(key, _)| names.contains(key)).map(|(_, value)| unquote(value));
    if get(&["type"]) != Some("bind") {
        return None;
    }
    Some(Copy {
        sources: vec![get(&["source", "src"]).unwrap_or(".").to_owned()],
        dest: get(&["target", "dst", "destination"])?.to_owned(),
        from: get(&["from"]).map(str::to_owned),
        excludes: Vec::new(),
        text: text.to_owned(),
    })
}

fn command_form(rest: &str) -> Result<Command, String> {
    match rest.starts_with('[') {
        true => {
            serde_json::from_str(rest).map(Command::Exec).map_err(|err| format!("cannot read the exec form: {err}"))
        }
        false => Ok(Command::Shell(rest.to_owned())),
    }
}

fn unquote(value: &str) -> &str {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            return inner;
        }
    }
    value
}

impl Command {
    /// The shell lines it runs: a shell form as is; an exec form `sh -c LINE` as LINE; another
    /// exec form as its words.
    pub fn shell_lines(&self) -> Vec<String> {
        match self {
            Command::Shell(line) => vec![line.clone()],
            Command::Exec(words) => match &words[..] {
                [shell, flag, line, ..] if is_shell(shell) && flag == "-c" => vec![line.clone()],
                words => vec![words.join(" ")],
            },
        }
    }
}

fn is_shell(program: &str) -> bool {
    matches!(program.rsplit('/').next(), Some("sh" | "bash" | "dash" | "ash" | "zsh"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Citadel's server Dockerfile (master), trimmed to what decides something.
    const SERVER: &str = r#"# syntax=docker.io/docker/dockerfile:1.7-labs
FROM rust:1.92.0 AS builder

WORKDIR /usr/src/app
RUN apt-get update && \
    # a comment inside a continuation
    apt-get install -y cmake && \
    rm -rf /var/lib/apt/lists/*
COPY ./docker/workspace-server/kernel.toml /usr/src/app/kernel.toml
COPY --exclude=tests ./citadel-workspace-server-kernel /usr/src/app/citadel-workspace-server-kernel
RUN cargo build --release --bin citadel-workspace-server-kernel

FROM debian:trixie-slim AS production
COPY --from=builder /usr/local/bin/k /usr/local/bin/k
COPY ./docker/workspace-server/documents /usr/src/app/documents

FROM builder AS dev
CMD ["/usr/local/bin/citadel-workspace-server-kernel", "--config", "/usr/src/app/kernel.toml"]
"#;

    #[test]
    fn stages_copies_and_commands_are_read() {
        let file = Dockerfile::parse(SERVER).unwrap();
        let names: Vec<Option<&str>> = file.stages.iter().map(|stage| stage.name.as_deref()).collect();
        assert_eq!(names, [Some("builder"), Some("production"), Some("dev")]);
        let builder = &file.stages[0].instructions;
        assert_eq!(builder[0], Instruction::Workdir("/usr/src/app".to_owned()));
        let Instruction::Run { command: Command::Shell(line), .. } = &builder[1] else { panic!("{builder:?}") };
        assert_eq!(line, "apt-get update &&  apt-get install -y cmake &&  rm -rf /var/lib/apt/lists/*");
        let Instruction::Copy(kernel) = &builder[3] else { panic!() };
        assert_eq!(kernel.sources, ["./citadel-workspace-server-kernel"]);
        assert_eq!(kernel.excludes, ["tests"]);
        assert_eq!(kernel.dest, "/usr/src/app/citadel-workspace-server-kernel");
        // The dev stage starts from the builder: the production stage is not built.
        assert_eq!(file.reached(file.target(None).unwrap()), [0, 2]);
        assert_eq!(file.reached(file.target(Some("production")).unwrap()), [0, 1]);
        assert!(file.target(Some("nope")).is_err());
    }

    #[test]
    fn forms_and_flags() {
        let text = "ARG V=1\nfrom node:20 as Dev\nCOPY [\"a b\", \"c\", \"/dest/\"]\nADD https://x/y.tgz ./lib.tgz /opt/\n\
                    COPY <<EOF /etc/conf\nbody\nEOF\nRUN --mount=type=cache,target=/c --mount=type=bind,source=crates,target=/src cargo build\n\
                    RUN <<EOF\ncd x\ncargo build --bin y\nEOF\nCMD [\"sh\", \"-c\", \"cargo run --bin z\"]\n";
        let file = Dockerfile::parse(text).unwrap();
        let stage = &file.stages[0];
        assert_eq!(stage.name.as_deref(), Some("dev"));
        let Instruction::Copy(json) = &stage.instructions[0] else { panic!() };
        assert_eq!(json.sources, ["a b", "c"]);
        let Instruction::Copy(add) = &stage.instructions[1] else { panic!() };
        assert_eq!(add.sources, ["./lib.tgz"], "a URL is not from the context");
        let Instruction::Run { mounts, .. } = &stage.instructions[2] else { panic!() };
        assert_eq!((mounts.len(), mounts[0].sources[0].as_str(), mounts[0].dest.as_str()), (1, "crates", "/src"));
        let Instruction::Run { command, .. } = &stage.instructions[3] else { panic!() };
        assert_eq!(command.shell_lines(), ["cd x\ncargo build --bin y"]);
        let Instruction::Start(start) = &stage.instructions[4] else { panic!() };
        assert_eq!(start.shell_lines(), ["cargo run --bin z"]);
    }

    #[test]
    fn what_cannot_be_read_is_an_error_naming_the_line() {
        let cases = [
            ("", "line 1: no FROM: not a Dockerfile"),
            ("COPY a b\n", "line 1: `COPY` before the first FROM"),
            ("FROM x\n\nCOPY onlyone\n", "line 3: `COPY` needs a source and a destination"),
            (
                "FROM x\nCOPY [\"a\", \n",
                "line 2: cannot read COPY's JSON form: EOF while parsing a value at line 1 column 5",
            ),
            ("FROM a b c d\n", "line 1: cannot read `FROM a b c d`"),
        ];
        for (text, expected) in cases {
            assert_eq!(Dockerfile::parse(text).unwrap_err().to_string(), expected, "{text:?}");
        }
    }
}
