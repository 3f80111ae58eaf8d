//! `install-into --agent`: Citadel's sync agent (`.claude/agents/sync.md`) rewired to do one
//! thing: run `cargo xtask sync` and report its verdict in a few lines. Its `name` and
//! `description` stay (CLAUDE.md and Claude Code find it by them); the file it replaces is kept
//! (agent.rs), for `uninstall-agent`.

use std::{fs, io};

use anyhow::{bail, Context, Result};
use camino::Utf8Path;
use xshell::Shell;

use crate::install::agent::{kept_file, AGENT, MARKER};

/// The only commands the agent may run, in Claude Code's permission syntax (`:*`: any
/// arguments), as the file it replaces lists its `tilt` commands.
const TOOLS: &str = "Bash(cargo xtask sync:*), Bash(cargo xtask status:*)";
/// The front matter the rewired agent keeps from the previous one: `name` and `description`
/// (how CLAUDE.md's instruction finds it), and the team's choice of `model`. Its `tools` are
/// ours.
const KEPT_KEYS: [&str; 3] = ["name", "description", "model"];

/// What the agent does: run the sync once, read a few stable fields of its `--json`, and reply
/// with the verdict, the failed step, the error's place and the saved log.
const BODY: &str = r#"
# role

Deployment Synchronizer. After a backend change, one command brings the running services up to
date: `cargo xtask sync` rebuilds through Tilt exactly what the change needs, in order
(sync-wasm-client -> server -> internal-service -> ui), stops at the first failure, and saves the
logs. You run it and return its verdict in a few lines: whoever called you never reads build logs.

## workflow

1. From the repository's root, run exactly `cargo xtask sync --json`, with the Bash tool's longest
   timeout (600000 ms): a sync takes minutes. Never run it in the background, never two at once,
   and never call `tilt` yourself.
2. Its standard output is one JSON object. Read only these fields:
   - `status`: `success`, `failed`, `interrupted`, or `error` (the sync could not run at all:
     Tilt not running, not a git repository, ...);
   - `message`: with `success`, set when nothing needed a rebuild; with `error`, what happened
     and what to do;
   - `failed_step`: the number of the step that failed (1 to 4), or null;
   - `steps`: for each step, `name`, `outcome` (`ok`, `failed`, `timeout`, `skipped`,
     `not-run`), `cause` (one line: what failed, where, what to do) and `location` (the error's
     `path`, `line` and `column`, or null);
   - `error_log`: the file where the failure's whole log was saved.
3. Reply with these lines, and nothing else:
   - `success`: `SUCCESS: The sync and deploy process completed successfully for all services`,
     then `Affected services: ` and the names of the steps whose `outcome` is `ok` (when there
     are none, the `message` instead).
   - `failed`: `ERROR: The sync and deploy process failed at Step N (name). See logs below for
     details` (N is `failed_step`, name that step's `name`), then that step's `cause`, then
     `Error at: path:line:column` when its `location` is set, then `Log saved to ` and
     `error_log`.
   - `error` or `interrupted`: `ERROR: The sync could not run: ` and the `message` (or
     `interrupted`).

Asked only whether the services are still in sync, run `cargo xtask status --json` instead and
reply with its `message`.

## prohibited_actions

- Do not modify any file, and do not try to fix an error: report it. The caller fixes the code,
  then calls you again.
- Do not retry a failed sync, and run no command but `cargo xtask sync` and
  `cargo xtask status`.
"#;

/// One entry of the front matter: its key, and its whole text (the `key:` line and any
/// indented continuation lines), kept as written.
#[derive(Debug, PartialEq, Eq)]
struct Entry<'a> {
    key: &'a str,
    text: String,
}

/// The front matter's entries (between the opening and closing `---` lines), in order.
fn front_matter(text: &str) -> Option<Vec<Entry<'_>>> {
    let mut lines = text.split_inclusive('\n');
    if lines.next()?.trim_end() != "---" {
        return None;
    }
    let mut entries: Vec<Entry> = Vec::new();
    for line in lines {
        if line.trim_end() == "---" {
            return Some(entries);
        }
        let starts_entry = !line.starts_with([' ', '\t', '#']) && line.contains(':');
        match (starts_entry, entries.last_mut()) {
            (true, _) => {
                let key = line.split(':').next().unwrap_or_default().trim();
                entries.push(Entry { key, text: line.to_owned() });
            }
            (false, Some(last)) => last.text.push_str(line),
            (false, None) => {}
        }
    }
    None
}

/// The rewired agent for the agent file `previous`: its `name`, `description` and `model` as
/// they were; our tools and body.
fn rewired(previous: &str) -> Result<String, String> {
    let entries = front_matter(previous).ok_or("it has no front matter (between two `---` lines)")?;
    let mut front = String::from("---\n");
    for key in KEPT_KEYS {
        match entries.iter().find(|entry| entry.key == key) {
            Some(entry) => {
                front.push_str(&entry.text);
                if !entry.text.ends_with('\n') {
                    front.push('\n');
                }
            }
            None if key == "model" => {}
            None => return Err(format!("its front matter has no `{key}`, by which CLAUDE.md finds it")),
        }
    }
    Ok(format!(
        "{front}tools: {TOOLS}\n---\n{MARKER}: `cargo xtask uninstall-agent` puts back the agent it replaced. -->\n{BODY}"
    ))
}

/// What `install-into` does with the agent of the work tree `dir`: with `rewire`, rewires it
/// (keeping the previous file); keeps an agent it rewired before current; otherwise says how
/// to rewire it. Returns what it did or advises, in words.
pub fn install(sh: &Shell, dir: &Utf8Path, rewire: bool) -> Result<Option<String>> {
    let agent = dir.join(AGENT);
    let current = match fs::read(&agent) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound && !rewire => return Ok(None),
        Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(
            "{dir} has no {AGENT}: there is no sync agent to rewire (Citadel's is the `sync-executor` agent its \
             CLAUDE.md names); install without --agent"
        ),
        Err(err) => return Err(err).with_context(|| format!("reading {agent}")),
    };
    let text = String::from_utf8_lossy(&current);
    let ours = text.contains(MARKER);
    if !ours && !rewire {
        return Ok(Some(format!(
            "{AGENT} is the sync agent CLAUDE.md tells every coding agent to run, and it still polls Tilt by hand: \
             `cargo xtask install-into {dir} --agent` rewires it to run `cargo xtask sync` and report its verdict \
             (its previous file is kept, and `cargo xtask uninstall-agent` puts it back)"
        )));
    }
    let new = rewired(&text)
        .map_err(|why| anyhow::anyhow!("{agent}: {why}: it cannot be rewired; fix it, or install without --agent"))?;
    if new.as_bytes() == current {
        return Ok(None);
    }
    let kept = kept_file(sh, dir)?;
    if !ours {
        if let Some(folder) = kept.parent() {
            fs::create_dir_all(folder).with_context(|| format!("creating {folder}"))?;
        }
        fs::write(&kept, &current).with_context(|| format!("keeping the previous agent in {kept}"))?;
    }
    fs::write(&agent, new).with_context(|| format!("writing {agent}"))?;
    let undo = match kept.exists() {
        true => format!("the previous file is kept in {kept}, and `cargo xtask uninstall-agent` puts it back"),
        // Rewired in a commit this clone got: git's history has the one it replaced.
        false => format!("the one it replaced is in git's history: `git log -p -- {AGENT}`"),
    };
    Ok(Some(format!(
        "rewired {AGENT}: it runs `cargo xtask sync` and reports its verdict (name and description kept); {undo}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The head of Citadel's agent, as its repository has it.
    const CITADEL: &str = "---\nname: sync-executor\ndescription: PROACTIVELY synchronizes ALL backend changes. \
                           USE IMMEDIATELY after ANY non-UI code changes.\nmodel: sonnet\ntools: Read, Bash(tilt \
                           trigger server*), Bash(tilt logs server*)\n---\n\n# role\n\nDeployment Synchronizer\n";

    #[test]
    fn the_rewired_agent_keeps_name_description_and_model_and_runs_only_the_sync() {
        let agent = rewired(CITADEL).unwrap();
        let entries = front_matter(&agent).unwrap();
        let keys: Vec<&str> = entries.iter().map(|entry| entry.key).collect();
        assert_eq!(keys, ["name", "description", "model", "tools"]);
        let original = front_matter(CITADEL).unwrap();
        for key in KEPT_KEYS {
            let text = |entries: &[Entry]| entries.iter().find(|entry| entry.key == key).unwrap().text.clone();
            assert_eq!(text(&entries), text(&original), "{key}");
        }
        assert_eq!(entries[3].text, format!("tools: {TOOLS}\n"));
        assert!(agent.contains(MARKER) && agent.contains("cargo xtask sync --json"), "{agent}");
        assert!(!agent.contains("tilt trigger"), "{agent}");
        assert_eq!(rewired(&agent).unwrap(), agent, "rewiring ours again changes nothing");
    }

    #[test]
    fn front_matter_entries_keep_their_continuation_lines() {
        let text = "---\nname: a\ndescription: >\n  folded\n  text\n# a comment\nmodel: haiku\n---\nbody\n";
        let entries = front_matter(text).unwrap();
        assert_eq!(
            entries,
            [
                Entry { key: "name", text: "name: a\n".to_owned() },
                Entry { key: "description", text: "description: >\n  folded\n  text\n# a comment\n".to_owned() },
                Entry { key: "model", text: "model: haiku\n".to_owned() },
            ]
        );
        assert_eq!(front_matter("no front matter\n"), None);
        assert_eq!(front_matter("---\nname: unclosed\n"), None);
    }

    #[test]
    fn an_agent_without_a_name_or_description_is_not_rewired() {
        assert!(rewired("# just a prompt\n").unwrap_err().contains("no front matter"));
        assert!(rewired("---\nname: x\n---\n").unwrap_err().contains("no `description`"));
        let unmodelled = rewired("---\nname: x\ndescription: y\n---\n").unwrap();
        assert!(unmodelled.starts_with(&format!("---\nname: x\ndescription: y\ntools: {TOOLS}\n---\n")));
    }
}
