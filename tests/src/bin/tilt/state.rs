//! The state directory shared by all invocations: `state.json` (time origin and what the
//! user did to Tilt), `calls.jsonl` (one line per invocation) and `lock`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One successful `tilt trigger`, `tilt disable` or `tilt enable` of one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub resource: String,
    /// Milliseconds since scenario start.
    pub ms: i64,
    pub kind: ActionKind,
}

/// What a user did to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Trigger,
    Disable,
    Enable,
}

impl Action {
    pub fn trigger(resource: &str, ms: i64) -> Self {
        Action { resource: resource.to_owned(), ms, kind: ActionKind::Trigger }
    }
}

/// Everything that persists between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The scenario start, in milliseconds since the Unix epoch.
    pub start_unix_ms: i64,
    /// Every successful trigger, disable and enable, in call order.
    pub actions: Vec<Action>,
}

impl State {
    /// Milliseconds elapsed since scenario start.
    pub fn now_ms(&self) -> i64 {
        unix_ms_now() - self.start_unix_ms
    }
}

/// One line of `calls.jsonl`.
#[derive(Serialize)]
struct Call<'a> {
    pid: u32,
    args: &'a [String],
    ms: i64,
}

/// The state directory.
pub struct StateDir {
    path: PathBuf,
}

/// The state, read under the directory's lock; the lock is released on drop.
pub struct Locked<'a> {
    dir: &'a StateDir,
    _lock: File,
    pub state: State,
}

impl StateDir {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    fn state_file(&self) -> PathBuf {
        self.path.join("state.json")
    }

    /// Takes the lock and reads the state, creating the directory and the state (whose time
    /// origin is now) on first use.
    pub fn lock(&self) -> Result<Locked<'_>> {
        fs::create_dir_all(&self.path)
            .with_context(|| format!("cannot create state directory {}", self.path.display()))?;
        let lock_path = self.path.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
        let state = if self.state_file().exists() {
            self.read()?
        } else {
            let state = State { start_unix_ms: unix_ms_now(), actions: Vec::new() };
            self.write(&state)?;
            state
        };
        Ok(Locked { dir: self, _lock: lock, state })
    }

    /// Reads the state without the lock (it is always replaced atomically).
    pub fn read(&self) -> Result<State> {
        let path = self.state_file();
        let text = fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("corrupt state {}", path.display()))
    }

    fn write(&self, state: &State) -> Result<()> {
        let path = self.state_file();
        let tmp = self.path.join(format!("state.json.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(state)?;
        fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, &path).with_context(|| format!("cannot replace {}", path.display()))
    }
}

impl Locked<'_> {
    /// Saves the (modified) state.
    pub fn save(&self) -> Result<()> {
        self.dir.write(&self.state)
    }

    /// Appends this invocation to `calls.jsonl`.
    pub fn record_call(&self, args: &[String]) -> Result<()> {
        let call = Call { pid: std::process::id(), args, ms: self.state.now_ms() };
        let path = self.dir.path.join("calls.jsonl");
        append_line(&path, &serde_json::to_string(&call)?)
            .with_context(|| format!("cannot append to {}", path.display()))
    }
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(format!("{line}\n").as_bytes())
}

/// The wall clock, in milliseconds since the Unix epoch.
pub fn unix_ms_now() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}
