//! A Tiltfile, read for the resources it defines: the compose files `docker_compose(…)` loads
//! (each service a resource), and each `local_resource`'s command, `deps` and folder. Starlark is
//! read as far as Citadel's Tiltfiles need: calls with string and list arguments, anywhere but
//! inside another call, and names bound to a string or list; what could define resources
//! unseen (`load`, `include`, k8s) is noted, so that a resource not found is not taken for
//! certain. Pure.

use std::collections::BTreeMap;

use crate::changes::graph::error::Unreadable;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tiltfile {
    /// As written, relative to the Tiltfile's folder.
    pub compose_files: Vec<String>,
    pub local_resources: Vec<LocalResource>,
    /// What may define resources this reading cannot see, or arguments it cannot read.
    pub unread: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalResource {
    pub name: String,
    /// `cmd` and `serve_cmd`, each as one line.
    pub commands: Vec<String>,
    /// Relative to the Tiltfile's folder.
    pub deps: Vec<String>,
    /// `dir` (or `serve_dir`), relative to the Tiltfile's folder.
    pub dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Str(String),
    Name(String),
    Punct(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    List(Vec<String>),
    /// An expression this reading does not evaluate.
    Other(String),
}

/// A Tiltfile's calls that may define resources unseen.
const OPAQUE: [&str; 6] = ["load", "include", "k8s_yaml", "docker_build", "custom_build", "v1alpha1_extension"];

impl Tiltfile {
    pub fn parse(text: &str) -> Result<Tiltfile, Unreadable> {
        let tokens = tokenize(text)?;
        let mut tiltfile = Tiltfile::default();
        let mut bound: BTreeMap<String, Value> = BTreeMap::new();
        let mut depth = 0usize;
        let mut index = 0;
        while index < tokens.len() {
            let token = &tokens[index];
            let previous = index.checked_sub(1).map(|at| &tokens[at]);
            index += 1;
            match token {
                Token::Punct('(' | '[' | '{') => depth += 1,
                Token::Punct(')' | ']' | '}') => depth = depth.saturating_sub(1),
                Token::Name(name) if depth == 0 && matches!(name.as_str(), "def" | "for") => {
                    tiltfile.unread.push(format!("a `{name}` (resources defined in it are not read)"));
                }
                Token::Name(name) if depth == 0 && previous != Some(&Token::Punct('.')) => {
                    match (tokens.get(index), tokens.get(index + 1)) {
                        (Some(Token::Punct('(')), _) => {
                            let (args, next) = arguments(&tokens, index + 1, &bound);
                            index = next;
                            tiltfile.call(name, &args);
                        }
                        (Some(Token::Punct('=')), Some(next)) if *next != Token::Punct('=') => {
                            let (value, next) = expression(&tokens, index + 1, &bound);
                            bound.insert(name.clone(), value);
                            index = next;
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        Ok(tiltfile)
    }

    fn call(&mut self, function: &str, args: &[(Option<String>, Value)]) {
        let arg = |position: usize, keyword: &str| {
            args.iter()
                .find(|(name, _)| name.as_deref() == Some(keyword))
                .or_else(|| args.iter().filter(|(name, _)| name.is_none()).nth(position))
                .map(|(_, value)| value)
        };
        let strings = |value: Option<&Value>| match value {
            None => Ok(Vec::new()),
            Some(Value::Str(one)) => Ok(vec![one.clone()]),
            Some(Value::List(many)) => Ok(many.clone()),
            Some(Value::Other(text)) => Err(text.clone()),
        };
        match function {
            "docker_compose" => match strings(arg(0, "configPaths")) {
                Ok(files) => self.compose_files.extend(files),
                Err(text) => self.unread.push(format!("docker_compose({text}): not a file name or a list of them")),
            },
            "local_resource" => {
                let name = match arg(0, "name") {
                    Some(Value::Str(name)) => name.clone(),
                    _ => {
                        self.unread.push("a local_resource whose name is not a string".to_owned());
                        return;
                    }
                };
                let mut resource = LocalResource { name: name.clone(), ..LocalResource::default() };
                for (position, keyword) in [(1, "cmd"), (usize::MAX, "serve_cmd")] {
                    match strings(arg(position, keyword)) {
                        Ok(words) if !words.is_empty() => resource.commands.push(words.join(" ")),
                        Ok(_) => {}
                        Err(text) => self.unread.push(format!("local_resource `{name}`'s {keyword} ({text})")),
                    }
                }
                match strings(arg(2, "deps")) {
                    Ok(deps) => resource.deps = deps,
                    Err(text) => self.unread.push(format!("local_resource `{name}`'s deps ({text})")),
                }
                for keyword in ["dir", "serve_dir"] {
                    if let Some(Value::Str(dir)) = arg(usize::MAX, keyword) {
                        resource.dir.get_or_insert_with(|| dir.clone());
                    }
                }
                self.local_resources.push(resource);
            }
            opaque if OPAQUE.contains(&opaque) => self.unread.push(format!("a `{opaque}(…)`")),
            _ => {}
        }
    }
}

/// The arguments of a call whose `(` is just before `start`: (keyword, value) in order, and
/// the index after the closing `)`.
fn arguments(tokens: &[Token], start: usize, bound: &BTreeMap<String, Value>) -> (Vec<(Option<String>, Value)>, usize) {
    let mut args = Vec::new();
    let mut index = start;
    while index < tokens.len() && tokens[index] != Token::Punct(')') {
        let keyword = match (&tokens[index], tokens.get(index + 1), tokens.get(index + 2)) {
            (Token::Name(name), Some(Token::Punct('=')), next) if next != Some(&Token::Punct('=')) => {
                index += 2;
                Some(name.clone())
            }
            _ => None,
        };
        let (value, next) = expression(tokens, index, bound);
        args.push((keyword, value));
        index = next;
        if tokens.get(index) == Some(&Token::Punct(',')) {
            index += 1;
        }
    }
    (args, index + 1)
}

/// One expression from `start` to the next `,` or closing bracket at its level.
fn expression(tokens: &[Token], start: usize, bound: &BTreeMap<String, Value>) -> (Value, usize) {
    let mut depth = 0usize;
    let mut end = start;
    while end < tokens.len() {
        match &tokens[end] {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') if depth == 0 => break,
            Token::Punct(')' | ']' | '}') => depth -= 1,
            Token::Punct(',') if depth == 0 => break,
            // A statement ends where a name follows a whole value at the top level.
            Token::Name(_) if depth == 0 && end > start && ends_value(&tokens[end - 1]) => break,
            _ => {}
        }
        end += 1;
    }
    let part = &tokens[start..end];
    let value = match part {
        [Token::Str(text)] => Value::Str(text.clone()),
        [Token::Name(name)] if bound.contains_key(name) => bound[name].clone(),
        [Token::Punct('['), inner @ .., Token::Punct(']')] => {
            let strings: Option<Vec<String>> = inner
                .iter()
                .filter(|token| **token != Token::Punct(','))
                .map(|token| match token {
                    Token::Str(text) => Some(text.clone()),
                    _ => None,
                })
                .collect();
            strings.map_or_else(|| Value::Other(describe(part)), Value::List)
        }
        _ => Value::Other(describe(part)),
    };
    (value, end)
}

fn ends_value(token: &Token) -> bool {
    matches!(token, Token::Str(_) | Token::Name(_) | Token::Punct(')' | ']' | '}'))
}

fn describe(tokens: &[Token]) -> String {
    let words: Vec<String> = tokens
        .iter()
        .map(|token| match token {
            Token::Str(text) => format!("{text:?}"),
            Token::Name(name) => name.clone(),
            Token::Punct(c) => c.to_string(),
        })
        .collect();
    words.join(" ")
}

fn tokenize(text: &str) -> Result<Vec<Token>, Unreadable> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    let mut line = 1;
    while index < chars.len() {
        let c = chars[index];
        match c {
            '\n' => {
                line += 1;
                index += 1;
            }
            c if c.is_whitespace() || c == '\\' => index += 1,
            '#' => {
                while index < chars.len() && chars[index] != '\n' {
                    index += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = index;
                while index < chars.len() && (chars[index].is_alphanumeric() || chars[index] == '_') {
                    index += 1;
                }
                let word: String = chars[start..index].iter().collect();
                // A string prefix: r'…', b"…".
                let raw = word.eq_ignore_ascii_case("r")
                    || word.eq_ignore_ascii_case("rb")
                    || word.eq_ignore_ascii_case("br");
                if matches!(chars.get(index), Some('\'' | '"')) && (raw || word.eq_ignore_ascii_case("b")) {
                    let (string, next) = string(&chars, index, raw, &mut line)?;
                    tokens.push(Token::Str(string));
                    index = next;
                } else {
                    tokens.push(Token::Name(word));
                }
            }
            '\'' | '"' => {
                let (string, next) = string(&chars, index, false, &mut line)?;
                tokens.push(Token::Str(string));
                index = next;
            }
            c if c.is_ascii_digit() => {
                while index < chars.len() && (chars[index].is_alphanumeric() || chars[index] == '.') {
                    index += 1;
                }
                tokens.push(Token::Name("0".to_owned()));
            }
            c => {
                tokens.push(Token::Punct(c));
                index += 1;
            }
        }
    }
    Ok(tokens)
}

/// A string literal starting at `start` (its quote): its value and the index after it.
fn string(chars: &[char], start: usize, raw: bool, line: &mut usize) -> Result<(String, usize), Unreadable> {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut index = start + if triple { 3 } else { 1 };
    let opened = *line;
    let mut value = String::new();
    loop {
        let Some(&c) = chars.get(index) else {
            return Err(Unreadable::at(opened, "a string that never ends"));
        };
        index += 1;
        match c {
            '\n' if !triple => return Err(Unreadable::at(opened, "a string that never ends")),
            '\n' => {
                *line += 1;
                value.push(c);
            }
            '\\' if !raw => {
                let escaped = chars.get(index).copied().unwrap_or('\\');
                index += 1;
                value.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
            }
            c if c == quote
                && (!triple || (chars.get(index) == Some(&quote) && chars.get(index + 1) == Some(&quote))) =>
            {
                return Ok((value, index + if triple { 2 } else { 0 }));
            }
            c => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citadels_tiltfiles_are_read() {
        // master: four dc_resources, the local resources commented out.
        let master = "# Run server locally\n#local_resource(\n#    name='server',\n#)\n\
                      docker_compose('./docker-compose.yml')\n\
                      dc_resource('server', labels=['backend'], resource_deps=['sync-wasm-client'],\n    trigger_mode=TRIGGER_MODE_MANUAL)\n";
        let tiltfile = Tiltfile::parse(master).unwrap();
        assert_eq!(tiltfile.compose_files, ["./docker-compose.yml"]);
        assert!(tiltfile.local_resources.is_empty() && tiltfile.unread.is_empty(), "{tiltfile:?}");

        // 2025-07: the UI a local resource with deps; a compose list bound to a name.
        let july = "files = ['a.yml', \"b.yml\"]\ndocker_compose(files)\nlocal_resource(\n    name='ui',\n    \
                    serve_cmd='npm install && npm run dev',\n    serve_dir='citadel-workspaces',\n    \
                    deps=[\"citadel-workspaces/src\", '../x/src'],\n    resource_deps=['server'],\n)\n\
                    local_resource('sync', './sync.sh', 'sync.sh', labels=['init'])\n";
        let tiltfile = Tiltfile::parse(july).unwrap();
        assert_eq!(tiltfile.compose_files, ["a.yml", "b.yml"]);
        let ui = &tiltfile.local_resources[0];
        assert_eq!(ui.name, "ui");
        assert_eq!(ui.commands, ["npm install && npm run dev"]);
        assert_eq!(ui.deps, ["citadel-workspaces/src", "../x/src"]);
        assert_eq!(ui.dir.as_deref(), Some("citadel-workspaces"));
        let sync = &tiltfile.local_resources[1];
        assert_eq!(
            (sync.commands.as_slice(), sync.deps.as_slice()),
            (&["./sync.sh".to_owned()][..], &["sync.sh".to_owned()][..])
        );
    }

    #[test]
    fn what_cannot_be_seen_is_noted() {
        let text = "load('ext://restart_process', 'docker_build_with_restart')\ndocker_compose(compose_file())\n\
                    for name in ['a', 'b']:\n    local_resource(name, 'make ' + name)\n";
        let tiltfile = Tiltfile::parse(text).unwrap();
        assert_eq!(
            tiltfile.unread,
            [
                "a `load(…)`",
                "docker_compose(compose_file ( )): not a file name or a list of them",
                "a `for` (resources defined in it are not read)",
                "a local_resource whose name is not a string",
            ]
        );
        assert_eq!(Tiltfile::parse("x = 'open\n").unwrap_err().to_string(), "line 1: a string that never ends");
        assert_eq!(Tiltfile::parse("x = '''a\nb'''\n").unwrap(), Tiltfile::default());
    }
}
