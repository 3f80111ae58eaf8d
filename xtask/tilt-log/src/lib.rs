//! Reading and judging Tilt's log fast: `tilt logs --json` lines into `LogLine`s placed in
//! their span, without colour codes, as a terminal shows them, cut to a bounded length; and a
//! line against a step's patterns, joined with the records before it that it may continue. A
//! crate of its own only so that it can be optimized while the rest of the xtask compiles
//! quickly (xtask/Cargo.toml, profiles): every line of a sync passes through here.

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
    /// One whole line, on its own.
    pub fn judge(&self, line: &str) -> Judgement {
        let line = line.trim_end_matches(['\r', '\n']);
        if self.ignore.is_match(line) {
            return Judgement::Benign;
        }
        if let Some(pattern) = self.first_error(line) {
            return Judgement::Error(pattern);
        }
        if self.success.is_match(line) {
            return Judgement::Success;
        }
        Judgement::Benign
    }

    fn first_error(&self, text: &str) -> Option<usize> {
        if !self.errors.is_match(text) {
            return None;
        }
        self.errors.matches(text).into_iter().next()
    }
}

/// What a record of the log is to a step, judged with the records before it in its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Benign,
    /// Matched one of the step's `ignore` patterns: no error, and no join passes through it.
    Ignored,
    Success,
    Error(ErrorMatch),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMatch {
    /// The first error pattern that matches (an index into `Patterns::errors`).
    pub pattern: usize,
    /// The records joined to find it, when the record alone shows no error.
    pub joined: Option<String>,
    /// The error found by a join one or two records ago, named again with this record added:
    /// a more specific pattern (a lower index) matches the longer text.
    pub refines: bool,
}

/// A step's reading of one stream of records. Tilt's follow stream sends a line it got in
/// pieces (the writer flushed, or a pipe's chunk ended, mid-line) as several records, with
/// nothing that tells them from lines: `err` then `or: could not compile`. So each record is
/// also judged joined to the one or two records before it in the same span (Tilt continues a
/// line only within its span), never through an ignored or error record: bacon's
/// `Continuation`. Only errors are looked for so; a success needs its own whole record.
#[derive(Debug, Default, Clone)]
pub struct Judge {
    span: Option<Span>,
    /// The last two records since the last ignored or error one, each cut to its last
    /// `JOIN_REACH` bytes.
    last: String,
    older: String,
    /// An error found by a join, which the next records may name more specifically.
    refining: Option<Refining>,
}

#[derive(Debug, Clone)]
struct Refining {
    joined: String,
    pattern: usize,
    records_left: u8,
}

/// How far back and ahead of a record's start a join looks: longer than any error pattern's
/// match that crosses it (`error: could not compile` is 24 bytes).
const JOIN_REACH: usize = 96;
/// A joined error's text, as the report shows it, at most.
const JOINED_MAX: usize = 4096;

impl Judge {
    /// Judges `text` (a record of `span`, ANSI-free) for the step of `patterns`.
    pub fn record(&mut self, patterns: &Patterns, span: Span, text: &str) -> Role {
        if self.span != Some(span) {
            self.span = Some(span);
            self.forget();
            self.refining = None;
        }
        let text = match span {
            Span::Build(_) => strip_buildkit(text),
            _ => text,
        };
        if patterns.ignore.is_match(text) {
            self.forget();
            self.refining = None;
            return Role::Ignored;
        }
        if let Some(refined) = self.refine(patterns, text) {
            return refined;
        }
        if let Some(pattern) = patterns.first_error(text) {
            self.forget();
            return Role::Error(ErrorMatch { pattern, joined: None, refines: false });
        }
        if let Some(found) = self.joined_error(patterns, text) {
            return found;
        }
        self.keep(text);
        if patterns.success.is_match(text) {
            return Role::Success;
        }
        Role::Benign
    }

    /// A joined error's next records: a lower pattern index on the longer text names it better
    /// (`error: could` + `not compile` is a Rust compilation error, not just an error line).
    fn refine(&mut self, patterns: &Patterns, text: &str) -> Option<Role> {
        let refining = self.refining.as_mut()?;
        refining.records_left -= 1;
        let longer = bounded(format!("{}{text}", refining.joined));
        let better = patterns.first_error(&longer).filter(|&pattern| pattern < refining.pattern);
        let refined = better.map(|pattern| {
            refining.pattern = pattern;
            refining.joined.clone_from(&longer);
            Role::Error(ErrorMatch { pattern, joined: Some(longer.clone()), refines: true })
        });
        if refining.records_left == 0 {
            self.refining = None;
        } else if let Some(refining) = self.refining.as_mut() {
            refining.joined = longer;
        }
        refined
    }

    /// An error that `text` shows only joined to the record before it, or to the two before
    /// it: a match must cross a record's start, so each window holds `JOIN_REACH` bytes on
    /// either side of one.
    fn joined_error(&mut self, patterns: &Patterns, text: &str) -> Option<Role> {
        if self.last.is_empty() {
            return None;
        }
        let head = &text[..floor_char_boundary(text, JOIN_REACH)];
        let two = format!("{}{head}", self.last);
        let found = patterns.first_error(&two).map(|pattern| (pattern, false)).or_else(|| {
            let reaches = !self.older.is_empty() && self.last.len() < JOIN_REACH;
            let three = reaches.then(|| format!("{}{two}", self.older))?;
            patterns.first_error(&three).map(|pattern| (pattern, true))
        });
        let (pattern, with_older) = found?;
        let older = if with_older { self.older.as_str() } else { "" };
        let joined = bounded(format!("{older}{}{text}", self.last));
        self.forget();
        self.refining = Some(Refining { joined: joined.clone(), pattern, records_left: 2 });
        Some(Role::Error(ErrorMatch { pattern, joined: Some(joined), refines: false }))
    }

    fn keep(&mut self, text: &str) {
        std::mem::swap(&mut self.older, &mut self.last);
        self.last.clear();
        self.last.push_str(&text[ceil_char_boundary(text, text.len().saturating_sub(JOIN_REACH))..]);
    }

    fn forget(&mut self) {
        self.last.clear();
        self.older.clear();
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

fn bounded(mut text: String) -> String {
    if text.len() > JOINED_MAX {
        let mut cut = JOINED_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// A docker image build's line without BuildKit's step and time (`#12 1.251 error[E0425]: …`
/// is `error[E0425]: …`), as the compiler printed it.
pub fn strip_buildkit(text: &str) -> &str {
    let Some(rest) = text.strip_prefix('#') else { return text };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = rest[digits..].strip_prefix(' ').filter(|_| digits > 0) else { return text };
    let time = rest.bytes().take_while(|byte| byte.is_ascii_digit() || *byte == b'.').count();
    match rest[time..].strip_prefix(' ') {
        Some(body) if time > 0 && rest[..time].contains('.') => body,
        _ => text,
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
    /// `dockercompose:<name>`: Tilt's word on a compose container's healthcheck when it
    /// changes (`healthcheck: nc: can't connect …`): not the container's output.
    Health,
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
        if span_id.starts_with("dockercompose:") {
            return Span::Health;
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

/// What reading `tilt logs --json` yields.
#[derive(Debug)]
pub enum Logged {
    Line(LogLine),
    /// How many bytes of log text all resources' records read so far held together (each
    /// record's message and its newline, as Tilt's log store counts them), sent every
    /// `VOLUME_EVERY` bytes: Tilt cuts its log once it holds 2 MB.
    Volume(u64),
}

/// How often the log volume read so far is reported.
pub const VOLUME_EVERY: u64 = 16 << 10;

/// Reads `tilt logs --json` output and hands each line of a `wanted` resource, and the volume
/// read, to `each`, until the input ends or `each` returns false.
/// Not generic, so that it is compiled here, optimized, not in each caller.
pub fn read_json_log(reader: &mut dyn BufRead, wanted: &[String], each: &mut dyn FnMut(Logged) -> bool) {
    let mut raw = Vec::new();
    let (mut volume, mut reported) = (0u64, 0u64);
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
        let message_bytes = if length > raw.len() { length } else { json.message.len() };
        volume += message_bytes as u64 + 1;
        if volume - reported >= VOLUME_EVERY {
            reported = volume;
            if !each(Logged::Volume(volume)) {
                return;
            }
        }
        if !wanted.iter().any(|name| *name == json.resource) {
            continue;
        }
        let span = Span::parse(&json.span_id);
        let header = json.build_event == "init";
        let message = json.message.strip_suffix('\n').unwrap_or(&json.message);
        for text in message.split('\n') {
            let mut piece = |text: String| {
                each(Logged::Line(LogLine { resource: json.resource.clone().into_owned(), span, header, text }))
            };
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

/// A log line as it is judged and kept, handed to `each`: without ANSI codes, as a terminal
/// shows it (`\r` returns to the line's start), a long one in pieces of at most `MAX_LINE`
/// bytes overlapping by `OVERLAP`. Returns false once `each` did.
pub fn log_pieces(text: &str, each: &mut dyn FnMut(String) -> bool) -> bool {
    let text = strip_ansi(text);
    let text = match memchr::memchr(b'\r', text.as_bytes()) {
        Some(_) => Cow::Owned(as_a_terminal_shows(&text)),
        None => text,
    };
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

/// What a terminal shows of a line with carriage returns: each part after a `\r` writes over
/// the start of what is there (`[WARNING] x\r[ERROR] NOT synchronized!` shows the error).
fn as_a_terminal_shows(text: &str) -> String {
    let mut shown: Vec<char> = Vec::with_capacity(text.len());
    for part in text.split('\r') {
        for (column, c) in part.chars().enumerate() {
            match shown.get_mut(column) {
                Some(slot) => *slot = c,
                None => shown.push(c),
            }
        }
    }
    shown.into_iter().collect()
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
            ("dockercompose:server", Span::Health),
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
        read_json_log(&mut input.as_bytes(), &["server".to_owned()], &mut |read| {
            if let Logged::Line(line) = read {
                lines.push((line.span, line.header, line.text));
            }
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
        read_json_log(&mut input.as_bytes(), &["server".to_owned()], &mut |read| {
            if let Logged::Line(line) = read {
                lines.push(line);
            }
            true
        });
        assert_eq!(lines[0].span, Span::Build(2));
        assert!(lines[0].text.starts_with("[a log line of"), "{}", lines[0].text);
    }

    fn patterns() -> Patterns {
        let set = |patterns: &[&str]| RegexSet::new(patterns).unwrap();
        Patterns {
            ignore: set(&[r"^\[WARNING\]"]),
            errors: set(&[r"error\[E\d+\]", "error: could not compile", r"\[ERROR\]", r"(?i)\berror:"]),
            success: set(&["ready in"]),
        }
    }

    fn roles(records: &[(Span, &str)]) -> Vec<Role> {
        let (patterns, mut judge) = (patterns(), Judge::default());
        records.iter().map(|(span, text)| judge.record(&patterns, *span, text)).collect()
    }

    fn error(pattern: usize, joined: Option<&str>, refines: bool) -> Role {
        Role::Error(ErrorMatch { pattern, joined: joined.map(str::to_owned), refines })
    }

    #[test]
    fn an_error_in_pieces_is_found_joined_and_named_by_its_whole_text() {
        let build = Span::Build(3);
        assert_eq!(
            roles(&[(build, "Compiling x"), (build, "err"), (build, "or: could"), (build, " not compile `x`")]),
            [
                Role::Benign,
                Role::Benign,
                error(3, Some("error: could"), false),
                error(1, Some("error: could not compile `x`"), true),
            ]
        );
        assert_eq!(
            roles(&[(build, "e"), (build, "rr"), (build, "or: x")]),
            [Role::Benign, Role::Benign, error(3, Some("error: x"), false)]
        );
        // Another span's record ends the line; an ignored record is never joined through.
        assert_eq!(roles(&[(build, "err"), (Span::Container, "or: x")]), [Role::Benign, Role::Benign]);
        assert_eq!(roles(&[(build, "err"), (build, "[WARNING] or: x")]), [Role::Benign, Role::Ignored]);
        // A success needs its own whole record.
        assert_eq!(roles(&[(build, "ready"), (build, " in 3 ms")]), [Role::Benign, Role::Benign]);
        assert_eq!(roles(&[(build, "ready in 3 ms")]), [Role::Success]);
    }

    #[test]
    fn buildkits_prefix_is_not_part_of_the_line() {
        assert_eq!(strip_buildkit("#12 1.251 error[E0425]: cannot find value"), "error[E0425]: cannot find value");
        assert_eq!(strip_buildkit("#12 1.251   --> src/kernel.rs:40:9"), "  --> src/kernel.rs:40:9");
        assert_eq!(strip_buildkit("#12 CACHED"), "#12 CACHED");
        assert_eq!(strip_buildkit("#1 DONE 0.0s"), "#1 DONE 0.0s");
        assert_eq!(strip_buildkit("# comment 1.0 x"), "# comment 1.0 x");
        let (patterns, mut judge) = (patterns(), Judge::default());
        assert_eq!(judge.record(&patterns, Span::Build(2), "#12 0.5 [WARNING] x"), Role::Ignored);
    }

    #[test]
    fn a_record_is_read_as_a_terminal_shows_it() {
        let mut pieces = Vec::new();
        log_pieces("[WARNING] x\r[ERROR] NOT synchronized!", &mut |piece| {
            pieces.push(piece);
            true
        });
        log_pieces("progress 10%\rdone\r\r", &mut |piece| {
            pieces.push(piece);
            true
        });
        assert_eq!(pieces, ["[ERROR] NOT synchronized!", "doneress 10%"]);
    }

    #[test]
    fn the_volume_read_is_reported_for_every_resource() {
        let record =
            format!(r#"{{"resource":"other","spanID":"build:2","buildEvent":"","message":"{}"}}"#, "z".repeat(999));
        let input = vec![record; 40].join("\n");
        let mut volumes = Vec::new();
        read_json_log(&mut input.as_bytes(), &["server".to_owned()], &mut |read| {
            if let Logged::Volume(volume) = read {
                volumes.push(volume);
            }
            true
        });
        assert_eq!(volumes, [17_000, 34_000]);
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
        fn judging_any_records(records in proptest::collection::vec(("[a-z: \\[\\]E0-9#.]{0,40}", 0u64..3), 0..20)) {
            let set = |patterns: &[&str]| RegexSet::new(patterns).unwrap();
            let patterns = Patterns { ignore: set(&["^x"]), errors: set(&["error: could not", "error:"]), success: set(&["ok"]) };
            let mut judge = Judge::default();
            for (text, span) in &records {
                let _ = judge.record(&patterns, Span::Build(*span), text);
            }
        }

        #[test]
        fn stripping_leaves_no_complete_colour_code(text in "[a-z \x1b\\[0-9;m]{0,64}") {
            let stripped = strip_ansi(&text);
            prop_assert!(!stripped.contains("\x1b[0m"));
        }
    }
}
