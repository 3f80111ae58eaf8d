//! `<root>/logs`: the files a sync leaves for the user and the next run — the run lock, the
//! status file (`status.rs`), error logs (the newest 50 kept), each step's log, and the last
//! good sync.

pub mod status;

use std::{
    fs::{self, File, OpenOptions, TryLockError},
    io::{self, BufWriter, Write},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{changes::git::Fingerprint, store::status::SyncStatus};

const RECORDS: &str = "last-good-sync.json";
const STATUS: &str = "sync-status.json";
const STEP_TIMES: &str = "step-times.json";
/// Past durations kept per step, for the live line's estimate.
const STEP_TIMES_KEPT: usize = 10;
const ERROR_LOG_PREFIX: &str = "sync-error-";
/// Error logs kept: the oldest beyond this are removed when a new one is written.
const ERROR_LOGS_KEPT: usize = 50;

pub fn utc_now(format: &(impl time::formatting::Formattable + ?Sized)) -> String {
    OffsetDateTime::now_utc().format(format).unwrap_or_default()
}

/// Each step's last good sync, by step name.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    pub steps: BTreeMap<String, StepRecord>,
}

/// A step's last run: the workspace's content when it was triggered, and the Tilt build that
/// passed, or that it failed (then it runs again, whatever changed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub resource: String,
    #[serde(default)]
    pub failed: bool,
    pub build: u64,
    /// When Tilt says that build finished (RFC 3339): with the number, it names the build even
    /// after Tilt restarted and numbers from 1 again.
    pub finished: Option<String>,
    pub fingerprint: Fingerprint,
}

/// `<root>/logs`, made on first use and kept out of `git status` by a `.gitignore` of its own.
pub struct LogDir {
    pub dir: Utf8PathBuf,
}

/// A step's log since its trigger, written as lines arrive so memory stays bounded.
pub struct StepLog {
    pub path: Utf8PathBuf,
    pub file: BufWriter<File>,
}

impl StepLog {
    pub fn write_line(&mut self, text: &str) {
        // A full disk loses log lines, not the sync's verdict.
        let _ = writeln!(self.file, "{text}");
    }
}

impl LogDir {
    pub fn open(root: &Utf8Path) -> Result<LogDir> {
        let dir = root.join("logs");
        fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
        let ignore = dir.join(".gitignore");
        if !ignore.exists() {
            fs::write(&ignore, "# Written by `cargo xtask sync`: its logs are not part of the repository.\n*\n")
                .with_context(|| format!("writing {ignore}"))?;
        }
        Ok(LogDir { dir })
    }

    /// Takes the run lock, waiting briefly for another run to finish. The kernel drops the
    /// lock when its holder dies, so a killed run's lock is taken over without help.
    /// Whether another sync holds the lock now.
    pub fn locked(&self) -> bool {
        let path = self.dir.join("sync.lock");
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else { return false };
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(_) => true,
        }
    }

    pub fn lock(&self, wait: Duration) -> Result<File> {
        let path = self.dir.join("sync.lock");
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening the run lock {path}"))?;
        let deadline = Instant::now() + wait;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
                Err(TryLockError::WouldBlock) => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    bail!(
                        "another sync is running in this workspace ({}): wait for it to finish (lock: {path})",
                        holder.trim()
                    );
                }
                Err(TryLockError::Error(err)) => return Err(err).with_context(|| format!("locking {path}")),
            }
        }
        file.set_len(0)
            .and_then(|()| writeln!(file, "pid {}, started {}", std::process::id(), utc_now(&Rfc3339)))
            .with_context(|| format!("writing {path}"))?;
        Ok(file)
    }

    /// Each step's last good sync (none when unreadable: every step is then planned afresh).
    pub fn read_records(&self) -> Records {
        let text = fs::read_to_string(self.dir.join(RECORDS)).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_default()
    }

    pub fn write_records(&self, records: &Records) -> io::Result<()> {
        let text = serde_json::to_string_pretty(records).map_err(io::Error::other)?;
        let temp = self.dir.join(format!(".{RECORDS}.tmp"));
        fs::write(&temp, text + "\n")?;
        fs::rename(temp, self.dir.join(RECORDS))
    }

    /// How long each step took in its last successful runs, in milliseconds, oldest first.
    pub fn read_step_times(&self) -> BTreeMap<String, Vec<u64>> {
        let text = fs::read_to_string(self.dir.join(STEP_TIMES)).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_default()
    }

    /// Adds this run's times to the history, keeping the last few of each step.
    pub fn add_step_times(&self, times: &[(String, u64)]) -> io::Result<()> {
        let mut history = self.read_step_times();
        for (step, millis) in times {
            let kept = history.entry(step.clone()).or_default();
            kept.push(*millis);
            let excess = kept.len().saturating_sub(STEP_TIMES_KEPT);
            kept.drain(..excess);
        }
        let text = serde_json::to_string_pretty(&history).map_err(io::Error::other)?;
        fs::write(self.dir.join(STEP_TIMES), text + "\n")
    }

    pub fn step_log(&self, step: &str) -> io::Result<StepLog> {
        let path = self.dir.join(format!("{step}.log"));
        let file = File::create(&path)?;
        Ok(StepLog { path, file: BufWriter::new(file) })
    }

    /// The last sync's `sync-status.json`, if there is a readable one (one this xtask cannot
    /// read counts as none: the next sync replaces it).
    pub fn read_status(&self) -> Option<SyncStatus> {
        let text = fs::read_to_string(self.dir.join(STATUS)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Replaces `sync-status.json` at once (a reader never sees half of it).
    pub fn write_status(&self, status: &SyncStatus) -> io::Result<()> {
        let temp = self.dir.join(format!(".{STATUS}.tmp"));
        let text = serde_json::to_string_pretty(status).map_err(io::Error::other)?;
        fs::write(&temp, text + "\n")?;
        fs::rename(&temp, self.dir.join(STATUS))
    }

    /// Writes `sync-error-<UTC time>.log` (with a suffix if that name is taken in the same
    /// second): what decided, then the step's whole log since its trigger. Then removes the
    /// oldest error logs beyond the newest 50.
    pub fn write_error_log(&self, heading: &str, step_log: Option<&Utf8Path>) -> io::Result<Utf8PathBuf> {
        let now = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        let (path, mut file) = (1..)
            .map(|n| match n {
                1 => self.dir.join(format!("{ERROR_LOG_PREFIX}{stamp}.log")),
                n => self.dir.join(format!("{ERROR_LOG_PREFIX}{stamp}-{n:03}.log")),
            })
            .find_map(|path| match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => Some(Ok((path, file))),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => None,
                Err(err) => Some(Err(err)),
            })
            .unwrap_or_else(|| Err(io::Error::other("no free log name")))?;
        file.write_all(heading.as_bytes())?;
        if let Some(step_log) = step_log {
            writeln!(file, "--- the step's log since its trigger ({step_log}) ---")?;
            io::copy(&mut File::open(step_log)?, &mut file)?;
        }
        file.flush()?;
        self.prune_error_logs()?;
        Ok(path)
    }

    fn prune_error_logs(&self) -> io::Result<()> {
        let mut logs: Vec<Utf8PathBuf> = self
            .dir
            .read_dir_utf8()?
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().starts_with(ERROR_LOG_PREFIX))
            .map(|entry| entry.into_path())
            .collect();
        // The names sort by time: the stamp, then the suffix of logs written in the same second.
        logs.sort();
        let excess = logs.len().saturating_sub(ERROR_LOGS_KEPT);
        for old in &logs[..excess] {
            fs::remove_file(old)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn temp_root(name: &str) -> Utf8PathBuf {
        let root =
            Utf8PathBuf::try_from(std::env::temp_dir()).unwrap().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        root
    }

    #[test]
    fn error_logs_written_in_the_same_second_keep_apart() {
        let root = temp_root("logs");
        let logs = LogDir::open(&root).unwrap();
        let paths: Vec<Utf8PathBuf> =
            (0..3).map(|n| logs.write_error_log(&format!("failure {n}\n"), None).unwrap()).collect();
        assert_eq!(paths.iter().collect::<HashSet<_>>().len(), 3, "{paths:?}");
        for (n, path) in paths.iter().enumerate() {
            assert_eq!(fs::read_to_string(path).unwrap(), format!("failure {n}\n"));
        }
        assert_eq!(fs::read_to_string(root.join("logs/.gitignore")).unwrap().lines().last(), Some("*"));
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn only_the_newest_fifty_error_logs_are_kept() {
        let root = temp_root("prune");
        let logs = LogDir::open(&root).unwrap();
        let old = logs.dir.join("sync-error-20000101T000000Z.log");
        fs::write(&old, "the oldest\n").unwrap();
        for second in 1..60 {
            fs::write(logs.dir.join(format!("sync-error-20000101T0000{second:02}Z.log")), "old\n").unwrap();
        }
        let newest = logs.write_error_log("newest\n", None).unwrap();
        let left: Vec<_> = logs
            .dir
            .read_dir_utf8()
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().starts_with("sync-error-"))
            .collect();
        assert_eq!(left.len(), 50);
        assert!(newest.exists());
        assert!(!old.exists(), "the oldest went first");
        fs::remove_dir_all(&root).unwrap();
    }
}
