//! `/`-separated paths as the graph handles them: workspace-relative on the host (`""` is the
//! root), absolute in an image (`/usr/src/app`). Normalised without touching the disk.

/// `rel` from `base` (`/a/b` + `../c` is `/a/c`); an absolute `rel` stands alone. None when
/// `..` climbs above the root.
pub fn join(base: &str, rel: &str) -> Option<String> {
    match (rel.starts_with('/'), base.is_empty()) {
        (true, _) | (false, true) => normalize(rel),
        (false, false) => normalize(&format!("{base}/{rel}")),
    }
}

/// `.`, `..` and empty components resolved; absolute stays absolute.
pub fn normalize(path: &str) -> Option<String> {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    Some(if absolute { format!("/{joined}") } else { joined })
}

/// `path` relative to `dir` when it is `dir` (`""`) or inside it.
pub fn within<'a>(path: &'a str, dir: &str) -> Option<&'a str> {
    if dir.is_empty() || dir == "/" {
        return Some(path.trim_start_matches('/'));
    }
    match path.strip_prefix(dir)? {
        "" => Some(""),
        rest => rest.strip_prefix('/'),
    }
}

/// The folder holding `path`; None at the root.
pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None if path.is_empty() || path == "/" => None,
        Some(at) => Some(&path[..at]),
        None => Some(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_compare() {
        assert_eq!(join("/usr/src/app", "./kernel.toml").as_deref(), Some("/usr/src/app/kernel.toml"));
        assert_eq!(join("/usr/src/app", "/etc/x").as_deref(), Some("/etc/x"));
        assert_eq!(join("a/b", "../c").as_deref(), Some("a/c"));
        assert_eq!(join("", "./docker/x/").as_deref(), Some("docker/x"));
        assert_eq!(join("", "../outside"), None);
        assert_eq!(normalize("/").as_deref(), Some("/"));
        assert_eq!(within("a/b/c", "a"), Some("b/c"));
        assert_eq!(within("a", "a"), Some(""));
        assert_eq!(within("ab/c", "a"), None);
        assert_eq!(within("a/b", ""), Some("a/b"));
        assert_eq!(within("/usr/x", "/"), Some("usr/x"));
        assert_eq!(parent("/usr/src"), Some("/usr"));
        assert_eq!(parent("/usr"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(parent("a/b"), Some("a"));
        assert_eq!(parent("a"), Some(""));
        assert_eq!(parent(""), None);
    }
}
