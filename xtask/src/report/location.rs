//! Where an error is: the file, line and column a compiler names near its error line — cargo's
//! `--> file:line:col`, tsc's `file(line,col)`, Vite's `file:line:col` — relative to the
//! workspace when it lies in it, container paths (`/usr/src/app/…`) mapped to the workspace.
//! Pure.

use std::sync::OnceLock;

use regex::Regex;

use crate::store::status::Location;

/// How many lines after the error line its location may come (cargo's `-->` is the next one,
/// after a wrapped message at most a few more).
const LOOK_AHEAD: usize = 12;

fn patterns() -> &'static [Regex; 3] {
    static PATTERNS: OnceLock<[Regex; 3]> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [
            // cargo / rustc: `  --> src/main.rs:3:5`
            Regex::new(r"^\s*-->\s+(?P<path>[^\s:][^:]*):(?P<line>\d+):(?P<column>\d+)").expect("a valid pattern"),
            // tsc: `src/index.ts(3,1): error TS2304: …`
            Regex::new(r"(?P<path>[^\s(:]+\.[A-Za-z]+)\((?P<line>\d+),(?P<column>\d+)\)").expect("a valid pattern"),
            // Vite, node, eslint: `/usr/src/app/src/App.tsx:12:5`
            Regex::new(r"(?P<path>[^\s:()'`]+\.[A-Za-z]+):(?P<line>\d+)(?::(?P<column>\d+))?")
                .expect("a valid pattern"),
        ]
    })
}

/// The location of the error on the first of `lines` (the deciding line, then what followed).
/// `container_roots`: where the workspace is mounted in containers, e.g. `/usr/src/app`;
/// `workspace`: the workspace's root here.
pub fn locate<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    workspace: &str,
    container_roots: &[String],
) -> Option<Location> {
    let [cargo, tsc, other] = patterns();
    for (index, line) in lines.into_iter().take(LOOK_AHEAD).enumerate() {
        // On the error line itself any form counts; after it, only cargo's arrow, which is
        // the error's own (a later `file:line` is more likely another message's).
        let found = match index {
            0 => [tsc, other, cargo].iter().find_map(|pattern| pattern.captures(line)),
            _ => cargo.captures(line),
        };
        if let Some(found) = found {
            let path = relative(&found["path"], workspace, container_roots);
            let line = found["line"].parse().ok()?;
            let column = found.name("column").and_then(|column| column.as_str().parse().ok());
            return Some(Location { path, line, column });
        }
    }
    None
}

fn relative(path: &str, workspace: &str, container_roots: &[String]) -> String {
    let roots = std::iter::once(workspace).chain(container_roots.iter().map(String::as_str));
    for root in roots {
        let root = root.trim_end_matches('/');
        if let Some(rest) = path.strip_prefix(root).and_then(|rest| rest.strip_prefix('/')) {
            return rest.to_owned();
        }
    }
    path.to_owned()
}

/// `text` as a terminal hyperlink (OSC 8) to `path` (absolute).
pub fn hyperlink(text: &str, path: &str) -> String {
    format!("\x1b]8;;file://{path}\x1b\\{text}\x1b]8;;\x1b\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lines: &[&str]) -> Option<String> {
        locate(lines.iter().copied(), "/home/dev/citadel", &["/usr/src/app".to_owned()]).map(|found| found.to_string())
    }

    #[test]
    fn the_forms_compilers_write() {
        let cases: [(&[&str], Option<&str>); 7] = [
            (
                &["error[E0425]: cannot find value `x` in this scope", "  --> citadel-workspace-server-kernel/src/main.rs:3:5", "   |"],
                Some("citadel-workspace-server-kernel/src/main.rs:3:5"),
            ),
            (
                &["error[E0425]: x", " --> /usr/src/app/citadel-workspace-server-kernel/src/kernel.rs:40:9"],
                Some("citadel-workspace-server-kernel/src/kernel.rs:40:9"),
            ),
            (&["src/index.ts(3,1): error TS2304: Cannot find name 'x'."], Some("src/index.ts:3:1")),
            (
                &["[vite] Internal server error: /home/dev/citadel/citadel-workspaces/src/App.tsx:12:5: Unexpected token"],
                Some("citadel-workspaces/src/App.tsx:12:5"),
            ),
            (&["error TS2688: Cannot find type definition file for 'node'."], None),
            (&["error: could not compile `server`", "note: see src/other.rs:1:1 for more"], None),
            (&["error[E0425]: x", "", "", "", "", "", "", "", "", "", "", "", "  --> late.rs:1:1"], None),
        ];
        for (lines, expected) in cases {
            assert_eq!(at(lines).as_deref(), expected, "{lines:?}");
        }
    }

    #[test]
    fn a_hyperlink_wraps_the_text() {
        assert_eq!(hyperlink("a.rs:1", "/w/a.rs"), "\x1b]8;;file:///w/a.rs\x1b\\a.rs:1\x1b]8;;\x1b\\");
    }
}
