//! YAML, as much as compose files use: block mappings and sequences by indentation, flow `[…]`
//! and `{…}`, quoted and plain scalars, `|`/`>` block scalars, comments. Anchors, aliases, tags
//! and merge keys are refused, by name (a step whose compose file cannot be read runs, to be
//! safe). A few dozen lines here instead of a YAML crate: compose needs no more.

use crate::changes::graph::error::Unreadable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Yaml {
    Map(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
    Str(String),
    Null,
}

impl Yaml {
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(name, _)| name == key).map(|(_, value)| value),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Yaml::Str(text) => Some(text),
            _ => None,
        }
    }
}

pub fn parse(text: &str) -> Result<Yaml, Unreadable> {
    let mut parser = Parser { lines: text.lines().map(str::to_owned).collect(), at: 0 };
    let Some((indent, _)) = parser.peek()? else { return Ok(Yaml::Null) };
    let value = parser.node(indent)?;
    match parser.peek()? {
        None => Ok(value),
        Some(_) => Err(Unreadable::at(parser.at + 1, "unexpected indentation")),
    }
}

struct Parser {
    lines: Vec<String>,
    at: usize,
}

impl Parser {
    /// The next line with content: its indentation and its text without a comment.
    fn peek(&mut self) -> Result<Option<(usize, String)>, Unreadable> {
        while self.at < self.lines.len() {
            let line = &self.lines[self.at];
            let content = strip_comment(line).trim_end();
            if content.trim().is_empty() || content.trim() == "---" {
                self.at += 1;
                continue;
            }
            let indent = line.len() - line.trim_start_matches(' ').len();
            if line[indent..].starts_with('\t') {
                return Err(Unreadable::at(self.at + 1, "a tab in the indentation"));
            }
            return Ok(Some((indent, content[indent..].to_owned())));
        }
        Ok(None)
    }

    fn node(&mut self, indent: usize) -> Result<Yaml, Unreadable> {
        let Some((_, content)) = self.peek()? else { return Ok(Yaml::Null) };
        if is_item(&content) {
            self.list(indent)
        } else if split_key(&content).is_some() {
            self.map(indent)
        } else {
            self.at += 1;
            let text = self.flow_text(content)?;
            scalar(&text, self.at)
        }
    }

    fn map(&mut self, indent: usize) -> Result<Yaml, Unreadable> {
        let mut entries = Vec::new();
        while let Some((at, content)) = self.peek()? {
            if at != indent || is_item(&content) {
                if at > indent {
                    return Err(Unreadable::at(self.at + 1, "unexpected indentation"));
                }
                break;
            }
            let Some((key, rest)) = split_key(&content) else {
                return Err(Unreadable::at(self.at + 1, "expected `key: value`"));
            };
            if key == "<<" {
                return Err(Unreadable::at(self.at + 1, "merge keys (`<<`) are not read"));
            }
            self.at += 1;
            let value = self.value(indent, rest)?;
            entries.push((key, value));
        }
        Ok(Yaml::Map(entries))
    }

    fn list(&mut self, indent: usize) -> Result<Yaml, Unreadable> {
        let mut items = Vec::new();
        while let Some((at, content)) = self.peek()? {
            if at != indent || !is_item(&content) {
                if at > indent {
                    return Err(Unreadable::at(self.at + 1, "unexpected indentation"));
                }
                break;
            }
            let rest = content[1..].trim_start();
            let item_indent = indent + content.len() - rest.len();
            if rest.is_empty() {
                self.at += 1;
                items.push(self.nested(indent)?);
            } else if is_item(rest) || split_key(rest).is_some() && !rest.starts_with(['[', '{', '"', '\'']) {
                // `- key: value` opens a mapping whose keys line up with `key`.
                self.lines[self.at] = format!("{}{rest}", " ".repeat(item_indent));
                items.push(self.node(item_indent)?);
            } else {
                self.at += 1;
                let text = self.flow_text(rest.to_owned())?;
                items.push(scalar(&text, self.at)?);
            }
        }
        Ok(Yaml::List(items))
    }

    /// The value after `key:` on a line indented `indent`.
    fn value(&mut self, indent: usize, rest: String) -> Result<Yaml, Unreadable> {
        if rest.is_empty() {
            return match self.peek()? {
                // A sequence may sit at its key's indentation.
                Some((at, content)) if at == indent && is_item(&content) => self.list(indent),
                _ => self.nested(indent),
            };
        }
        if rest.starts_with('|') || rest.starts_with('>') {
            return Ok(Yaml::Str(self.block_scalar(indent)));
        }
        let text = self.flow_text(rest)?;
        scalar(&text, self.at)
    }

    /// A node indented deeper than `indent`, or null.
    fn nested(&mut self, indent: usize) -> Result<Yaml, Unreadable> {
        match self.peek()? {
            Some((at, _)) if at > indent => self.node(at),
            _ => Ok(Yaml::Null),
        }
    }

    fn block_scalar(&mut self, indent: usize) -> String {
        let mut body = Vec::new();
        while let Some(line) = self.lines.get(self.at) {
            let deeper = line.len() - line.trim_start().len() > indent;
            if !line.trim().is_empty() && !deeper {
                break;
            }
            body.push(line.trim().to_owned());
            self.at += 1;
        }
        body.join("\n").trim_end().to_owned()
    }

    /// A flow collection may continue on the next lines until its brackets close.
    fn flow_text(&mut self, mut text: String) -> Result<String, Unreadable> {
        let opened = self.at;
        while text.starts_with(['[', '{']) && !balanced(&text) {
            let Some(next) = self.lines.get(self.at) else {
                return Err(Unreadable::at(opened, format!("a `{}` that never closes", &text[..1])));
            };
            text.push(' ');
            text.push_str(strip_comment(next).trim());
            self.at += 1;
        }
        Ok(text)
    }
}

fn is_item(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// `key: rest` (or `key:`), the key unquoted; None when the line is no mapping entry.
fn split_key(content: &str) -> Option<(String, String)> {
    let mut quote = None;
    let chars: Vec<(usize, char)> = content.char_indices().collect();
    for (position, &(at, c)) in chars.iter().enumerate() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if position == 0 => quote = Some(c),
            (None, '[' | '{') if position == 0 => return None,
            (None, ':') => {
                let next = chars.get(position + 1).map(|(_, c)| *c);
                if next.is_none() || next.is_some_and(char::is_whitespace) {
                    let key = content[..at].trim();
                    let key = unquote(key).unwrap_or(key).to_owned();
                    return Some((key, content[at + 1..].trim().to_owned()));
                }
            }
            _ => {}
        }
    }
    None
}

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (at, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if previous.is_whitespace() || matches!(previous, '[' | '{' | ',' | ':') => {
                quote = Some(c);
            }
            (None, '#') if previous.is_whitespace() => return &line[..at],
            _ => {}
        }
        previous = c;
    }
    line
}

fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    let mut quote = None;
    for c in text.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            _ => {}
        }
    }
    depth <= 0
}

fn unquote(text: &str) -> Option<&str> {
    ['"', '\''].iter().find_map(|&quote| text.strip_prefix(quote)?.strip_suffix(quote))
}

/// One value on a line: quoted, flow, or plain.
fn scalar(text: &str, line: usize) -> Result<Yaml, Unreadable> {
    let text = text.trim();
    match text.chars().next() {
        Some('&' | '*' | '!') => {
            Err(Unreadable::at(line, format!("anchors, aliases and tags are not read (`{text}`)")))
        }
        Some('[' | '{') => {
            let mut chars = text.chars().peekable();
            let value = flow(&mut chars).ok_or_else(|| Unreadable::at(line, format!("cannot read `{text}`")))?;
            Ok(value)
        }
        Some('"') => {
            Ok(Yaml::Str(double_quoted(text).ok_or_else(|| Unreadable::at(line, format!("cannot read {text}")))?))
        }
        Some('\'') => {
            let inner = unquote(text).ok_or_else(|| Unreadable::at(line, format!("cannot read {text}")))?;
            Ok(Yaml::Str(inner.replace("''", "'")))
        }
        None => Ok(Yaml::Null),
        Some(_) if matches!(text, "~" | "null" | "Null" | "NULL") => Ok(Yaml::Null),
        Some(_) => Ok(Yaml::Str(text.to_owned())),
    }
}

fn double_quoted(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut value = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(match chars.next()? {
                'n' => '\n',
                't' => '\t',
                other => other,
            }),
            c => value.push(c),
        }
    }
    Some(value)
}

/// A flow collection or scalar inside one.
fn flow(chars: &mut std::iter::Peekable<std::str::Chars>) -> Option<Yaml> {
    skip_spaces(chars);
    match chars.peek()? {
        '[' => {
            chars.next();
            let mut items = Vec::new();
            loop {
                skip_spaces(chars);
                if chars.next_if_eq(&']').is_some() {
                    return Some(Yaml::List(items));
                }
                items.push(flow(chars)?);
                skip_spaces(chars);
                if chars.next_if_eq(&',').is_none() && chars.peek() != Some(&']') {
                    return None;
                }
            }
        }
        '{' => {
            chars.next();
            let mut entries = Vec::new();
            loop {
                skip_spaces(chars);
                if chars.next_if_eq(&'}').is_some() {
                    return Some(Yaml::Map(entries));
                }
                let Yaml::Str(key) = flow_scalar(chars, &[':', ',', '}'])? else { return None };
                skip_spaces(chars);
                let value = match chars.next_if_eq(&':') {
                    Some(_) => flow(chars)?,
                    None => Yaml::Null,
                };
                entries.push((key, value));
                skip_spaces(chars);
                if chars.next_if_eq(&',').is_none() && chars.peek() != Some(&'}') {
                    return None;
                }
            }
        }
        _ => flow_scalar(chars, &[',', ']', '}']),
    }
}

fn flow_scalar(chars: &mut std::iter::Peekable<std::str::Chars>, ends: &[char]) -> Option<Yaml> {
    skip_spaces(chars);
    let mut text = String::new();
    match chars.peek() {
        Some(&quote @ ('"' | '\'')) => {
            text.push(chars.next()?);
            loop {
                let c = chars.next()?;
                text.push(c);
                if c == '\\' && quote == '"' {
                    text.push(chars.next()?);
                } else if c == quote {
                    break;
                }
            }
            scalar(&text, 0).ok()
        }
        _ => {
            while let Some(&c) = chars.peek() {
                if ends.contains(&c) {
                    break;
                }
                text.push(c);
                chars.next();
            }
            scalar(&text, 0).ok()
        }
    }
}

fn skip_spaces(chars: &mut std::iter::Peekable<std::str::Chars>) {
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Yaml {
        Yaml::Str(text.to_owned())
    }

    #[test]
    fn compose_shapes_are_read() {
        let text = "services:\n  server:\n    build:\n      context: .   # the root\n      dockerfile: \"./docker/x/Dockerfile\"\n\
                    \x20   volumes:\n      - target_cache:/usr/src/app/target\n      - ./a:/b:ro # mount\n      - type: bind\n        source: ./c\n        target: /d\n\
                    \x20   healthcheck:\n      test: [ \"CMD\", \"nc\", '-z' ]\n    environment:\n    - RUST_LOG=info\n    command: >\n      run\n      fast\n\
                    volumes:\n  target_cache:\n";
        let yaml = parse(text).unwrap();
        let server = yaml.get("services").unwrap().get("server").unwrap();
        assert_eq!(server.get("build").unwrap().get("context"), Some(&s(".")));
        assert_eq!(server.get("build").unwrap().get("dockerfile"), Some(&s("./docker/x/Dockerfile")));
        let Some(Yaml::List(volumes)) = server.get("volumes") else { panic!("{server:?}") };
        assert_eq!(volumes[1], s("./a:/b:ro"));
        assert_eq!(volumes[2].get("source"), Some(&s("./c")));
        assert_eq!(volumes[2].get("target"), Some(&s("/d")));
        let test = server.get("healthcheck").unwrap().get("test").unwrap();
        assert_eq!(test, &Yaml::List(vec![s("CMD"), s("nc"), s("-z")]));
        assert_eq!(server.get("environment"), Some(&Yaml::List(vec![s("RUST_LOG=info")])));
        assert_eq!(server.get("command"), Some(&s("run\nfast")));
        assert_eq!(yaml.get("volumes").unwrap().get("target_cache"), Some(&Yaml::Null));
    }

    #[test]
    fn what_is_not_read_is_refused_by_name() {
        let cases = [
            ("x: &anchor 1\n", "line 1: anchors, aliases and tags are not read (`&anchor 1`)"),
            ("x:\n  <<: *base\n", "line 2: merge keys (`<<`) are not read"),
            ("x:\n\t- a\n", "line 2: a tab in the indentation"),
            ("x: [a, b\n", "line 1: a `[` that never closes"),
            ("a: 1\n   b: 2\n", "line 2: unexpected indentation"),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), expected, "{text:?}");
        }
        assert_eq!(
            parse("x: [a,\n  {b: c}]\n").unwrap().get("x"),
            Some(&Yaml::List(vec![s("a"), Yaml::Map(vec![("b".into(), s("c"))])]))
        );
        assert_eq!(parse("# only a comment\n").unwrap(), Yaml::Null);
        assert_eq!(parse("url: http://x#y\n").unwrap().get("url"), Some(&s("http://x#y")));
    }
}
