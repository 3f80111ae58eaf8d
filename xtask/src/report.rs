//! What the user and the next tool read: the SUCCESS/ERROR report, its `--json` form, and the
//! files under `logs/` (the status file, error logs, the per-step logs and the run lock).

use std::{
    collections::HashSet,
    fs::{self, File, OpenOptions, TryLockError},
    io::{self, Write},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde_json::json;
use time::{macros::format_description, OffsetDateTime};

use crate::{
    config::{KindId, Protocol, Step},
    git::Fingerprint,
    step::Failure,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Timeout,
    Skipped,
    NotRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Skipped => "skipped",
            Outcome::NotRun => "not-run",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepReport {
    pub name: String,
    pub resource: String,
    pub outcome: Outcome,
    pub duration: Duration,
    pub remediations: Vec<String>,
    pub deciding_line: Option<String>,
    /// For a failure: the one-line cause, e.g. `Step 2 FAILED: server rebuild error: …`.
    pub cause: Option<String>,
    /// The step's log since its trigger.
    pub log: Option<Utf8PathBuf>,
    pub tail: Vec<String>,
}

impl StepReport {
    /// A step that did not start: not selected, or after a failure.
    pub fn unstarted(step: &Step, outcome: Outcome) -> StepReport {
        StepReport {
            name: step.name.clone(),
            resource: step.resource.clone(),
            outcome,
            duration: Duration::ZERO,
            remediations: Vec::new(),
            deciding_line: None,
            cause: None,
            log: None,
            tail: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub struct RunReport {
    pub steps: Vec<StepReport>,
    /// Said instead of the usual success line when there was nothing to run.
    pub message: Option<String>,
    pub interrupted: bool,
    /// The saved error log, or why it could not be saved.
    pub error_log: Option<Result<Utf8PathBuf, String>>,
}

impl RunReport {
    pub fn new() -> RunReport {
        RunReport { steps: Vec::new(), message: None, interrupted: false, error_log: None }
    }

    /// A successful run that had no step to run, saying why.
    pub fn nothing_to_do(protocol: &Protocol, message: String) -> RunReport {
        let steps = protocol.steps.iter().map(|step| StepReport::unstarted(step, Outcome::Skipped)).collect();
        RunReport { steps, message: Some(message), ..RunReport::new() }
    }

    /// The failed step and its number in the protocol.
    fn failed_step(&self) -> Option<(usize, &StepReport)> {
        self.steps.iter().enumerate().find(|(_, step)| matches!(step.outcome, Outcome::Failed | Outcome::Timeout))
    }

    pub fn succeeded(&self) -> bool {
        self.failed_step().is_none() && !self.interrupted
    }

    fn status(&self) -> &'static str {
        match (self.interrupted, self.succeeded()) {
            (true, _) => "interrupted",
            (false, true) => "success",
            (false, false) => "failed",
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        if let (Some(message), true) = (&self.message, self.succeeded()) {
            return format!("{message}\n");
        }
        let Some((index, step)) = self.failed_step() else {
            let affected: Vec<&str> =
                self.steps.iter().filter(|step| step.outcome == Outcome::Ok).map(|step| step.name.as_str()).collect();
            out.push_str("SUCCESS: The sync and deploy process completed successfully for all services\n");
            out.push_str(&format!("Affected services: {}\n", affected.join(", ")));
            return out;
        };
        out.push_str(&format!(
            "ERROR: The sync and deploy process failed at Step {} ({}). See logs below for details\n",
            index + 1,
            step.resource
        ));
        if let Some(cause) = &step.cause {
            out.push_str(cause);
            out.push('\n');
        }
        match &self.error_log {
            Some(Ok(path)) => out.push_str(&format!("Log saved to {path}\n")),
            Some(Err(why)) => out.push_str(&format!("The log could not be saved: {why}\n")),
            None => {}
        }
        if !step.tail.is_empty() {
            out.push_str(&format!("--- last {} lines of {}'s log ---\n", step.tail.len(), step.resource));
            for line in &step.tail {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        let steps: Vec<serde_json::Value> = self
            .steps
            .iter()
            .map(|step| {
                json!({
                    "name": step.name,
                    "resource": step.resource,
                    "outcome": step.outcome.as_str(),
                    "duration_ms": u64::try_from(step.duration.as_millis()).unwrap_or(u64::MAX),
                    "remediations": step.remediations,
                    "deciding_line": step.deciding_line,
                    "cause": step.cause,
                    "log": step.log,
                })
            })
            .collect();
        let (error_log, log_error) = match &self.error_log {
            Some(Ok(path)) => (Some(path.as_str()), None),
            Some(Err(why)) => (None, Some(why.as_str())),
            None => (None, None),
        };
        json!({
            "status": self.status(),
            "cpu_ms": own_cpu().map(|cpu| u64::try_from(cpu.as_millis()).unwrap_or(u64::MAX)),
            "finished_at": utc_now(&time::format_description::well_known::Rfc3339),
            "message": self.message,
            "failed_step": self.failed_step().map(|(index, _)| index + 1),
            "error_log": error_log,
            "log_error": log_error,
            "steps": steps,
        })
    }
}

/// The one line that says why step `number` failed, and what to do.
pub fn cause(
    protocol: &Protocol,
    number: usize,
    step: &Step,
    failure: &Failure,
    used: &HashSet<KindId>,
    remediations: &[String],
) -> String {
    let resource = &step.resource;
    let failed = format!("Step {number} FAILED:");
    match failure {
        Failure::Error { kind, line, .. } => {
            let kind_info = protocol.kind(*kind);
            let after = if used.contains(kind) {
                format!(" (still failing after the remediation: {})", remediations.join("; "))
            } else {
                String::new()
            };
            format!("{failed} {resource} rebuild error: {} — {}{after}", line.trim(), kind_info.advice)
        }
        Failure::Timeout => {
            format!("{failed} {resource} timeout - build did not complete: no success line within {}", step.timeout)
        }
        Failure::TiltRecorded { error } => format!("{failed} Tilt recorded {resource}'s build as failed: {error}"),
        Failure::ContainerFailed => {
            format!(
                "{failed} {resource}'s container exited with an error after its build (Tilt's runtime status: error)"
            )
        }
        Failure::Uncertain => format!("{failed} Uncertain if step completed - stopping for safety ({resource})"),
        Failure::Superseded { by } => format!(
            "{failed} Uncertain if step completed - stopping for safety: another build of {resource} (build {by}) \
                 started before ours printed its success line"
        ),
        Failure::TiltGone => {
            format!("{failed} Tilt went away while watching {resource}: start it again with `tilt up`, then sync again")
        }
        Failure::Interrupted => format!("Step {number} INTERRUPTED: stopped by Ctrl-C while watching {resource}"),
        Failure::TiltCall(why) => format!("{failed} {resource}: {why}"),
        Failure::RemediationFailed(why) => format!("{failed} {resource}: the remediation failed: {why}"),
    }
}

/// CPU time this process has used, user and system, all threads (Linux: `/proc/self/stat`, in
/// clock ticks of 10 ms).
pub fn own_cpu() -> Option<Duration> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn utc_now(format: &(impl time::formatting::Formattable + ?Sized)) -> String {
    OffsetDateTime::now_utc().format(format).unwrap_or_default()
}

const FINGERPRINT: &str = "last-good-sync.json";

/// `<root>/logs`, made on first use and kept out of `git status` by a `.gitignore` of its own.
pub struct LogDir {
    pub dir: Utf8PathBuf,
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
            .and_then(|()| {
                writeln!(
                    file,
                    "pid {}, started {}",
                    std::process::id(),
                    utc_now(&time::format_description::well_known::Rfc3339)
                )
            })
            .with_context(|| format!("writing {path}"))?;
        Ok(file)
    }

    /// The workspace's content at the last successful sync, if one was recorded (and readable).
    pub fn read_fingerprint(&self) -> Option<Fingerprint> {
        let text = fs::read_to_string(self.dir.join(FINGERPRINT)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn write_fingerprint(&self, fingerprint: &Fingerprint) -> io::Result<()> {
        let text = serde_json::to_string_pretty(fingerprint).map_err(io::Error::other)?;
        fs::write(self.dir.join(FINGERPRINT), text + "\n")
    }

    pub fn step_log(&self, step: &str) -> io::Result<(Utf8PathBuf, File)> {
        let path = self.dir.join(format!("{step}.log"));
        let file = File::create(&path)?;
        Ok((path, file))
    }

    pub fn write_status(&self, report: &RunReport) -> io::Result<()> {
        let path = self.dir.join("sync-status.json");
        let temp = self.dir.join(".sync-status.json.tmp");
        let text = serde_json::to_string_pretty(&report.json()).map_err(io::Error::other)?;
        fs::write(&temp, text + "\n")?;
        fs::rename(&temp, &path)
    }

    /// Writes `sync-error-<UTC time>.log` (with a suffix if that name is taken in the same
    /// second): what decided, then the step's whole log since its trigger.
    pub fn write_error_log(&self, heading: &str, step_log: Option<&Utf8Path>) -> io::Result<Utf8PathBuf> {
        let stamp = utc_now(format_description!("[year][month][day]T[hour][minute][second]Z"));
        let (path, mut file) = (1..)
            .map(|n| match n {
                1 => self.dir.join(format!("sync-error-{stamp}.log")),
                n => self.dir.join(format!("sync-error-{stamp}-{n}.log")),
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
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_logs_written_in_the_same_second_keep_apart() {
        let root =
            Utf8PathBuf::try_from(std::env::temp_dir()).unwrap().join(format!("xtask-report-{}", std::process::id()));
        let logs = LogDir::open(&root).unwrap();
        let paths: Vec<Utf8PathBuf> =
            (0..3).map(|n| logs.write_error_log(&format!("failure {n}\n"), None).unwrap()).collect();
        assert_eq!(paths.iter().collect::<HashSet<_>>().len(), 3, "{paths:?}");
        for (n, path) in paths.iter().enumerate() {
            assert_eq!(fs::read_to_string(path).unwrap(), format!("failure {n}\n"));
        }
        assert!(paths[0].file_name().unwrap().starts_with("sync-error-"));
        assert_eq!(fs::read_to_string(root.join("logs/.gitignore")).unwrap().lines().last(), Some("*"));
        fs::remove_dir_all(&root).unwrap();
    }
}
