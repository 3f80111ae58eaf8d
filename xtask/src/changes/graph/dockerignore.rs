//! A build context's `.dockerignore`, matched as Docker matches it (moby's patternmatcher): a
//! pattern excludes a path when it matches the path or one of its parent folders, the last
//! matching pattern wins, and `!pattern` takes a path back. Patterns are relative to the context
//! root; `*` and `?` stay within a path component, `**` crosses them.

use regex::Regex;

/// The patterns of one `.dockerignore`, in file order.
#[derive(Debug, Clone, Default)]
pub struct Dockerignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    regex: Regex,
    /// `!pattern`: the path is sent after all.
    keep: bool,
}

impl Dockerignore {
    /// Reads the file's lines; a line Docker would reject is left out (it excludes nothing, so
    /// a file stays an input: never a skip on what cannot be read).
    pub fn parse(text: &str) -> Dockerignore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (keep, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let cleaned = clean(pattern)?;
                Some(Pattern { regex: Regex::new(&to_regex(&cleaned)).ok()?, keep })
            })
            .collect();
        Dockerignore { patterns }
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let parents: Vec<&str> =
            path.char_indices().filter(|(_, c)| *c == '/').map(|(at, _)| &path[..at]).chain([path]).collect();
        let mut excluded = false;
        for pattern in &self.patterns {
            if parents.iter().any(|candidate| pattern.regex.is_match(candidate)) {
                excluded = !pattern.keep;
            }
        }
        excluded
    }
}

/// Go's `filepath.Clean`, then a leading `/` dropped, as Docker reads a pattern.
fn clean(pattern: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// moby's translation: `**` (with its `/`) is any number of folders, `*` anything but `/`.
fn to_regex(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut regex = String::from("^");
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        index += 1;
        match c {
            '*' if chars.get(index) == Some(&'*') => {
                index += 1;
                if chars.get(index) == Some(&'/') {
                    index += 1;
                }
                regex.push_str(if index == chars.len() { ".*" } else { "(.*/)?" });
            }
            '*' => regex.push_str("[^/]*"),
            '?' => regex.push_str("[^/]"),
            '\\' => {
                if let Some(&next) = chars.get(index) {
                    regex.push_str(&regex::escape(&next.to_string()));
                    index += 1;
                }
            }
            '[' | ']' | '-' | '^' => regex.push(c),
            c => regex.push_str(&regex::escape(&c.to_string())),
        }
    }
    regex.push('$');
    regex
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Citadel's `.dockerignore` (master), the parts that decide something.
    const CITADEL: &str = "\
# Git files
.git
Dockerfile
docker-compose.yml
Tiltfile
target/
**/target/
Cargo.lock
**/Cargo.lock
node_modules/
**/node_modules/
*.log
logs/
.env
.env.*
!/.env.example # Keep example files if they exist
test_*.html
.claude
";

    #[test]
    fn paths_are_matched_as_docker_matches_them() {
        let ignore = Dockerignore::parse(CITADEL);
        let cases = [
            ("Cargo.lock", true),
            ("citadel-internal-service/Cargo.lock", true),
            ("Cargo.toml", false),
            ("target/debug/x", true),
            ("citadel-workspace-types/target/debug/x", true),
            ("logs/sync.log", true),
            ("server.log", true),
            // `*.log` is the context root's only: Docker adds no `**/`.
            ("docker/server.log", false),
            ("Dockerfile", true),
            ("docker/workspace-server/Dockerfile", false),
            ("docker/workspace-server/documents/defaults/root/General/CONTENT.md", false),
            (".claude/agents/sync.md", true),
            (".env.local", true),
            ("citadel-workspaces/node_modules/vite/index.js", true),
            ("test_login.html", true),
        ];
        for (path, excluded) in cases {
            assert_eq!(ignore.excludes(path), excluded, "{path}");
        }
    }

    #[test]
    fn the_last_matching_pattern_wins() {
        let ignore = Dockerignore::parse("docs\n!docs/keep.md\n*.md\n!README.md\n[ab]?.txt\n");
        assert!(ignore.excludes("docs/guide.txt"));
        assert!(!ignore.excludes("docs/keep.md"));
        assert!(ignore.excludes("NOTES.md"));
        assert!(!ignore.excludes("README.md"));
        assert!(ignore.excludes("a1.txt"));
        assert!(!ignore.excludes("c1.txt"));
        assert!(!Dockerignore::parse("").excludes("anything"));
        assert!(Dockerignore::parse("**").excludes("a/b"));
        assert!(Dockerignore::parse("**/*.md").excludes("a/b/c.md"));
        assert!(Dockerignore::parse("/docs/").excludes("docs/x"));
    }
}
