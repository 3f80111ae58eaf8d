//! Reading and judging Tilt's log fast: `tilt logs --json` lines into `LogLine`s placed in
//! their span, without colour codes and cut to a bounded length, and a line against a step's
//! patterns. A crate of its own only so that it can be optimized while the rest of the xtask
//! compiles quickly (xtask/Cargo.toml, profiles): every line of a sync passes through here.

use std::{borrow::Cow, io::BufRead};

use regex::RegexSet;
use serde::Deserialize;

/// A step's patterns, compiled. A line is judged in the protocol's order: ignored, then an
/// error, then a success.
#[derive(Debug)]
pub struct Patterns {
    pub ignore: RegexSet,
    pub errors: RegexSet,
    pub success: RegexSet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    Benign,
    /// The first error pattern (an index into `Patterns::errors`) the line matches.
    Error(usize),
    Success,
}

impl Patterns {
    pub fn judge(&self, line: &str) -> Judgement {
        let line = line.trim_end_matches(['\r', '\n']);
        if self.ignore.is_match(line) {
            return Judgement::Benign;
        }
        if self.errors.is_match(line) {
            if let Some(pattern) = self.errors.matches(line).into_iter().next() {
                return Judgement::Error(pattern);
            }
        }
        if self.success.is_match(line) {
            return Judgement::Success;
        }
        Judgement::Benign
    }
}

/// One line of a resource's log. `text` has no ANSI colour codes and is cut to a bounded length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub resource: String,
    pub span: Span,
    /// One of the two lines that open a build (an empty line and its reason, `CLI Trigger`).
    pub header: bool,
    pub text: String,
}

/// Who wrote a line, from its `spanID` (../shared/tilt-cli.md, "Spans").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// `build:N`: build N's own lines (its header, `Build Failed: …`, docker compose's output).
    Build(u64),
    /// `cmd:<resource>:update`: a local resource's update command, whose output is the build's
    /// own: it belongs to the build whose header precedes it.
    Update,
    /// `localserve:K`: serve process K (one counter for all resources), started after a
    /// successful build.
    Serve(u64),
    /// `dc:<name>`, `pod:…`: a container's output; the same span for every container.
    Container,
    /// Tilt older than 0.36.1 prints no spans: builds are numbered by counting their headers.
    Plain(u64),
}

impl Span {
    /// `build:7` -> Build(7), `cmd:x:update` -> Update, … Unknown spans are a container's.
    pub fn parse(span_id: &str) -> Span {
        if let Some(number) = span_id.strip_prefix("build:").and_then(|n| n.parse().ok()) {
            return Span::Build(number);
        }
        if let Some(number) = span_id.strip_prefix("localserve:").and_then(|n| n.parse().ok()) {
            return Span::Serve(number);
        }
        if span_id.starts_with("cmd:") && span_id.ends_with(":update") {
            return Span::Update;
        }
        Span::Container
    }
}

/// One line of `tilt logs --json`; its strings borrow from the line read, unless escaped.
#[derive(Deserialize)]
struct JsonLine<'a> {
    #[serde(default, borrow)]
    resource: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Cow<'a, str>,
    #[serde(default, borrow, rename = "spanID")]
    span_id: Cow<'a, str>,
    #[serde(default, borrow, rename = "buildEvent")]
    build_event: Cow<'a, str>,
}

impl JsonLine<'_> {
    fn too_long(start: &[u8], length: usize) -> JsonLine<'static> {
        let start = String::from_utf8_lossy(start);
        let field = |name: &str| {
            let key = format!("\"{name}\":\"");
            let value = start.split_once(&key).and_then(|(_, rest)| rest.split_once('"')).map(|(value, _)| value);
            Cow::Owned(value.unwrap_or_default().to_owned())
        };
        JsonLine {
            resource: field("resource"),
            message: Cow::Owned(format!("[a log line of {length} bytes, too long to read]")),
            span_id: field("spanID"),
            build_event: field("buildEvent"),
        }
    }
}

/// A JSON line longer than this is not parsed (its resource and span are still read).
const MAX_JSON_LINE: usize = 8 << 20;
/// Longer log lines are cut into pieces of this size, so that memory stays bounded and every
/// part of the line is judged.
const MAX_LINE: usize = 64 << 10;
/// How much consecutive pieces of a long line overlap: an error line shorter than this is whole
/// in one of them.
const OVERLAP: usize = 4 << 10;

/// Reads `tilt logs --json` output and hands each line of a `wanted` resource to `each`, until
/// the input ends or `each` returns false.
/// Not generic, so that it is compiled here, optimized, not in each caller.
pub fn read_json_log(reader: &mut dyn BufRead, wanted: &[String], each: &mut dyn FnMut(LogLine) -> bool) {
    let mut raw = Vec::new();
    while let Ok(Some(length)) = read_capped_line(reader, &mut raw, MAX_JSON_LINE) {
        let lossy;
        let json = match serde_json::from_slice::<JsonLine>(&raw) {
            Ok(json) => json,
            Err(_) if length > raw.len() => JsonLine::too_long(&raw, length),
            // Not UTF-8 (a program printed raw bytes): read it with the bytes replaced.
            Err(_) => {
                lossy = String::from_utf8_lossy(&raw).into_owned();
                match serde_json::from_str::<JsonLine>(&lossy) {
                    Ok(json) => json,
                    Err(_) => continue,
                }
            }
        };
        if !wanted.iter().any(|name| *name == json.resource) {
            continue;
        }
        let span = Span::parse(&json.span_id);
        let header = json.build_event == "init";
        let message = json.message.strip_suffix('\n').unwrap_or(&json.message);
        for text in message.split('\n') {
            let mut piece =
                |text: String| each(LogLine { resource: json.resource.clone().into_owned(), span, header, text });
            if !log_pieces(text, &mut piece) {
                return;
            }
        }
    }
}

/// Reads one line into `line` (without its newline), keeping at most `cap` bytes and skipping
/// the rest. Returns the line's whole length, or None at the end of the input.
fn read_capped_line(reader: &mut dyn BufRead, line: &mut Vec<u8>, cap: usize) -> std::io::Result<Option<usize>> {
    line.clear();
    let mut length = 0;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok((length > 0).then_some(length));
        }
        let (chunk, done) = match memchr::memchr(b'\n', buffer) {
            Some(end) => (&buffer[..end], Some(end + 1)),
            None => (buffer, None),
        };
        let room = cap.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        length += chunk.len();
        let consumed = done.unwrap_or(chunk.len());
        reader.consume(consumed);
        if done.is_some() {
            return Ok(Some(length));
        }
    }
}

/// A log line as it is judged and kept, handed to `each`: without ANSI codes, a long one in
/// pieces of at most `MAX_LINE` bytes overlapping by `OVERLAP`. Returns false once `each` did.
pub fn log_pieces(text: &str, each: &mut dyn FnMut(String) -> bool) -> bool {
    let text = strip_ansi(text);
    if text.len() <= MAX_LINE {
        return each(text.into_owned());
    }
    let mut start = 0;
    loop {
        let mut end = (start + MAX_LINE).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        if !each(text[start..end].to_owned()) {
            return false;
        }
        if end == text.len() {
            return true;
        }
        start = end - OVERLAP;
        while !text.is_char_boundary(start) {
            start -= 1;
        }
    }
}

/// Removes ANSI escape sequences (colours, cursor moves, OSC titles and links). Lines without
/// an escape byte, the vast majority, are returned as they are without copying.
pub fn strip_ansi(line: &str) -> Cow<'_, str> {
    if !line.contains('\x1b') {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates, then one final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            // Character set designations: ESC ( B and the like.
            Some('(' | ')' | '*' | '+') => {
                chars.next();
            }
            // Two-byte escapes (ESC followed by one character).
            _ => {}
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_read_as_tilt_writes_them() {
        let cases = [
            ("build:7", Span::Build(7)),
            ("cmd:sync-wasm-client:update", Span::Update),
            ("localserve:12", Span::Serve(12)),
            ("dc:server", Span::Container),
            ("pod:server:abc", Span::Container),
            ("build:x", Span::Container),
            ("", Span::Container),
        ];
        for (span, expected) in cases {
            assert_eq!(Span::parse(span), expected, "{span}");
        }
    }

    #[test]
    fn json_lines_are_placed_in_their_spans() {
        let input = [
            r#"{"time":"t","resource":"server","level":"info","message":"","spanID":"build:3","progressID":"","buildEvent":"init","source":"build"}"#,
            r#"{"time":"t","resource":"server","level":"info","message":"CLI Trigger","spanID":"build:3","progressID":"","buildEvent":"init","source":"build"}"#,
            r#"{"time":"t","resource":"ui","level":"info","message":"other","spanID":"build:4","buildEvent":""}"#,
            r#"{"time":"t","resource":"server","level":"info","message":"\u001b[32mCompiling\u001b[0m","spanID":"cmd:server:update","buildEvent":"","source":"runtime"}"#,
            r#"{"time":"t","resource":"server","level":"info","message":"Running a\nand b\n","spanID":"localserve:2","buildEvent":""}"#,
            r#"{"time":"t","resource":"server","level":"info","message":"up","spanID":"dc:server","buildEvent":""}"#,
            "not json at all",
        ]
        .join("\n");
        let mut lines = Vec::new();
        read_json_log(&mut input.as_bytes(), &["server".to_owned()], &mut |line| {
            lines.push((line.span, line.header, line.text));
            true
        });
        let expected = [
            (Span::Build(3), true, ""),
            (Span::Build(3), true, "CLI Trigger"),
            (Span::Update, false, "Compiling"),
            (Span::Serve(2), false, "Running a"),
            (Span::Serve(2), false, "and b"),
            (Span::Container, false, "up"),
        ];
        let expected: Vec<(Span, bool, String)> =
            expected.iter().map(|&(span, header, text)| (span, header, text.to_owned())).collect();
        assert_eq!(lines, expected);
    }

    #[test]
    fn long_lines_are_cut_and_memory_stays_bounded() {
        let long = "x".repeat(100);
        let input = format!("{long}\nshort\n{long}");
        let mut reader = input.as_bytes();
        let mut line = Vec::new();
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), Some(100));
        assert_eq!(line, b"xxxxxxxxxx");
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), Some(5));
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), Some(100));
        assert_eq!(read_capped_line(&mut reader, &mut line, 10).unwrap(), None);
        let huge = format!("{}[ERROR] in the middle{}", "é".repeat(MAX_LINE / 2 - 10), "é".repeat(MAX_LINE));
        let mut pieces = Vec::new();
        assert!(log_pieces(&huge, &mut |piece| {
            pieces.push(piece);
            true
        }));
        assert_eq!(pieces.len(), 4, "every part, in pieces that overlap");
        assert!(pieces.iter().all(|piece| piece.len() <= MAX_LINE));
        assert!(pieces.iter().any(|piece| piece.contains("[ERROR] in the middle")));
        assert!(huge.ends_with(pieces.last().unwrap().as_str()) && huge.starts_with(pieces[0].as_str()));
    }

    #[test]
    fn a_json_line_too_long_to_parse_is_reported_in_its_place() {
        let message = "y".repeat(MAX_JSON_LINE);
        let input = format!(r#"{{"resource":"server","spanID":"build:2","buildEvent":"","message":"{message}"}}"#);
        let mut lines = Vec::new();
        read_json_log(&mut input.as_bytes(), &["server".to_owned()], &mut |line| {
            lines.push(line);
            true
        });
        assert_eq!(lines[0].span, Span::Build(2));
        assert!(lines[0].text.starts_with("[a log line of"), "{}", lines[0].text);
    }

    #[test]
    fn ansi_codes_are_stripped() {
        let cases = [
            ("plain", "plain"),
            ("\x1b[0;32m[INFO]\x1b[0m done", "[INFO] done"),
            ("\x1b[1;33mwarn\x1b[m", "warn"),
            ("\x1b]8;;http://x\x07link\x1b]8;;\x07", "link"),
            ("\x1b]0;title\x1b\\text", "text"),
            ("a\x1b[2Kb\x1b(Bc", "abc"),
            ("trailing escape \x1b", "trailing escape "),
            ("\x1b[", ""),
        ];
        for (line, stripped) in cases {
            assert_eq!(strip_ansi(line), stripped, "{line:?}");
        }
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn reading_any_bytes_as_tilt_json(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            read_json_log(&mut bytes.as_slice(), &["server".to_owned()], &mut |_| true);
        }

        #[test]
        fn stripping_leaves_no_complete_colour_code(text in "[a-z \x1b\\[0-9;m]{0,64}") {
            let stripped = strip_ansi(&text);
            prop_assert!(!stripped.contains("\x1b[0m"));
        }
    }
}
