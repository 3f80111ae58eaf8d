//! The cargo builds a shell line runs (a Dockerfile's `RUN` or `CMD`, a local resource's
//! command): each `cargo …` of the line with its arguments, and the folder a `cd` before it
//! moved to. Pure, and only as much shell as build lines use: `&&`, `||`, `;`, `|`, newlines,
//! quotes, `VAR=value` prefixes and `exec`.

/// One `cargo …` of a shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoCall {
    /// The words after `cargo`.
    pub args: Vec<String>,
    /// Where a `cd` earlier in the line moved to, relative to the line's own folder (or absolute).
    pub dir: Option<String>,
}

impl CargoCall {
    /// `cargo build --release --bin x`, for the plan's explanation.
    pub fn text(&self) -> String {
        format!("cargo {}", self.args.join(" "))
    }
}

/// Every `cargo …` in `line`, in order.
pub fn cargo_calls(line: &str) -> Vec<CargoCall> {
    let mut calls = Vec::new();
    let mut dir: Option<String> = None;
    for command in commands(line) {
        let mut words: &[String] = &command;
        while let [first, rest @ ..] = words {
            let assignment = first.contains('=') && !first.starts_with('-') && !first.starts_with('=');
            if assignment || first == "exec" || first == "time" {
                words = rest;
            } else {
                break;
            }
        }
        match words {
            [program, target, ..] if program == "cd" => {
                dir = Some(match dir {
                    Some(dir) if !target.starts_with('/') => format!("{dir}/{target}"),
                    _ => target.clone(),
                });
            }
            [program, args @ ..] if program == "cargo" || program.ends_with("/cargo") => {
                calls.push(CargoCall { args: args.to_vec(), dir: dir.clone() });
            }
            _ => {}
        }
    }
    calls
}

/// The simple commands of a line, as words (quotes removed).
fn commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                word.extend(chars.by_ref().take_while(|&c| c != '\''));
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            ';' | '&' | '|' | '\n' | '(' | ')' => {
                end_word(&mut word, &mut in_word, &mut words);
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            c if c.is_whitespace() => end_word(&mut word, &mut in_word, &mut words),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut word, &mut in_word, &mut words);
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

fn end_word(word: &mut String, in_word: &mut bool, words: &mut Vec<String>) {
    if std::mem::take(in_word) {
        words.push(std::mem::take(word));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line, and each cargo call's arguments and folder.
    type Case = (&'static str, &'static [(&'static str, Option<&'static str>)]);

    #[test]
    fn cargo_calls_are_found_in_build_lines() {
        let cases: [Case; 6] = [
            (
                "cargo build --release --bin citadel-workspace-server-kernel",
                &[("build --release --bin citadel-workspace-server-kernel", None)],
            ),
            (
                "apt-get update && cargo clippy --bin k; cargo build --bin k",
                &[("clippy --bin k", None), ("build --bin k", None)],
            ),
            (
                "cd crates && cd server && RUST_LOG=x cargo run -- --port 1",
                &[("run -- --port 1", Some("crates/server"))],
            ),
            ("exec /usr/local/cargo/bin/cargo test 'a b'", &[("test a b", None)]),
            ("npm install && npx vite build", &[]),
            ("cargo --version | grep \"cargo 1\"", &[("--version", None)]),
        ];
        for (line, expected) in cases {
            let calls: Vec<(String, Option<String>)> =
                cargo_calls(line).into_iter().map(|call| (call.args.join(" "), call.dir)).collect();
            let expected: Vec<(String, Option<String>)> =
                expected.iter().map(|(args, dir)| ((*args).to_owned(), dir.map(str::to_owned))).collect();
            assert_eq!(calls, expected, "{line}");
        }
    }
}
