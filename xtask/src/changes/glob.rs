//! Path rules' globs, as regular expressions: `*` and `?` stay within a path component, `**`
//! crosses them, `[...]` is a class. A few lines here instead of a glob crate: the protocol's
//! globs need no more, and the regex crate is compiled anyway.

use std::fmt;

use regex::RegexSet;

/// Why a glob cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobError {
    /// `a**`: `**` must be a whole path component.
    DoubleStar(String),
    UnclosedClass(String),
    Regex(String),
}

impl fmt::Display for GlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GlobError::DoubleStar(glob) => write!(f, "`**` must be a whole path component in `{glob}`"),
            GlobError::UnclosedClass(glob) => write!(f, "an unclosed `[` in `{glob}`"),
            GlobError::Regex(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for GlobError {}

/// A glob as an anchored regular expression over a `/`-separated path.
pub fn to_regex(glob: &str) -> Result<String, GlobError> {
    let mut regex = String::from("^");
    let chars: Vec<char> = glob.chars().collect();
    let mut index = 0;
    while index < chars.len() {
        let at_component_start = index == 0 || chars[index - 1] == '/';
        match chars[index] {
            '*' if chars.get(index + 1) == Some(&'*') => {
                let ends_component = matches!(chars.get(index + 2), None | Some('/'));
                if !at_component_start || !ends_component {
                    return Err(GlobError::DoubleStar(glob.to_owned()));
                }
                if chars.get(index + 2) == Some(&'/') {
                    // `**/`: any number of leading components, none included.
                    regex.push_str("(?:[^/]*/)*");
                    index += 3;
                } else {
                    regex.push_str(".*");
                    index += 2;
                }
                continue;
            }
            '*' => regex.push_str("[^/]*"),
            '?' => regex.push_str("[^/]"),
            '[' => {
                let close = chars[index + 1..].iter().position(|&c| c == ']').map(|at| index + 1 + at);
                let Some(close) = close.filter(|&close| close > index + 1) else {
                    return Err(GlobError::UnclosedClass(glob.to_owned()));
                };
                regex.push('[');
                let mut class = &chars[index + 1..close];
                if class.first() == Some(&'!') {
                    regex.push('^');
                    class = &class[1..];
                }
                for &c in class {
                    if matches!(c, '\\' | '[' | '&' | '~') {
                        regex.push('\\');
                    }
                    regex.push(c);
                }
                regex.push(']');
                index = close + 1;
                continue;
            }
            c => regex.push_str(&regex::escape(&c.to_string())),
        }
        index += 1;
    }
    regex.push('$');
    Ok(regex)
}

/// The globs as one set: which of them a path matches.
pub fn set(globs: &[&str]) -> Result<RegexSet, GlobError> {
    let regexes = globs.iter().map(|glob| to_regex(glob)).collect::<Result<Vec<_>, _>>()?;
    RegexSet::new(regexes).map_err(|err| GlobError::Regex(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_path_rules_expect() {
        let cases: [(&str, &[&str], &[&str]); 7] = [
            ("**/*.md", &["README.md", "docs/a/b.md", "x.md"], &["README.mdx", "md", "a/b.rs"]),
            ("docs/**", &["docs/a", "docs/a/b.txt"], &["docs", "mydocs/a", "a/docs/b"]),
            ("citadel-workspaces", &["citadel-workspaces"], &["citadel-workspaces/x", "citadel-workspaces2"]),
            ("Cargo.toml", &["Cargo.toml"], &["a/Cargo.toml", "Cargo_toml"]),
            ("src/*.rs", &["src/main.rs"], &["src/a/b.rs", "src/main.rsx"]),
            ("file?.[ch]", &["file1.c", "filea.h"], &["file12.c", "file1.rs"]),
            ("**", &["a", "a/b/c"], &[]),
        ];
        for (glob, matching, not_matching) in cases {
            let set = set(&[glob]).unwrap();
            for path in matching {
                assert!(set.is_match(path), "{glob} should match {path}");
            }
            for path in not_matching {
                assert!(!set.is_match(path), "{glob} should not match {path}");
            }
        }
        assert_eq!(to_regex("a**").unwrap_err().to_string(), "`**` must be a whole path component in `a**`");
        assert!(to_regex("a[bc").is_err());
    }
}
