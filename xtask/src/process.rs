//! Child processes (Tilt calls, remediations) that are bounded in time, stop on Ctrl-C, and are
//! never left behind: each runs in a process group of its own, killed whole, so that even a
//! wrapper script's children go with it.

use std::{
    io::{self, Read},
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::interrupt;

/// How a bounded run ended.
#[derive(Debug)]
pub enum Ended {
    Exited(Output),
    TimedOut,
    Interrupted,
    NotFound,
    Failed(io::Error),
}

/// Spawns `command` in a process group of its own, with the given standard streams. On Linux
/// the child is also killed if the sync dies without cleaning up (`kill -9`).
pub fn spawn(mut command: Command, stdout: Stdio) -> io::Result<Child> {
    command.process_group(0).stdin(Stdio::null()).stdout(stdout).stderr(Stdio::piped());
    #[cfg(target_os = "linux")]
    // SAFETY: between fork and exec only prctl(2), which is async-signal-safe, is called.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Runs `command` to its end, at most `bound`, collecting its output.
pub fn run(command: Command, bound: Duration) -> Ended {
    let mut child = match spawn(command, Stdio::piped()) {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ended::NotFound,
        Err(err) => return Ended::Failed(err),
    };
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    match wait(&mut child, &stdout.done, bound) {
        Waited::Exited(status) => {
            // What the child left running in its group (a wrapper's background job) goes too:
            // it would hold the pipes open, and nothing of a call may outlive it.
            signal_group(&child);
            let linger = Duration::from_secs(1);
            Ended::Exited(Output { status, stdout: stdout.bytes_within(linger), stderr: stderr.bytes_within(linger) })
        }
        Waited::TimedOut => Ended::TimedOut,
        Waited::Interrupted => Ended::Interrupted,
    }
}

enum Waited {
    Exited(ExitStatus),
    TimedOut,
    Interrupted,
}

/// Waits for `child`, looking at the clock and at Ctrl-C every tenth of a second; past the
/// bound or on Ctrl-C, kills its group. The end of its stdout is the sign that it is exiting,
/// so the common case costs no polling.
fn wait(child: &mut Child, stdout_done: &mpsc::Receiver<()>, bound: Duration) -> Waited {
    let deadline = Instant::now() + bound;
    let tick = Duration::from_millis(100);
    loop {
        if interrupt::requested() {
            kill_group(child);
            return Waited::Interrupted;
        }
        let now = Instant::now();
        if now >= deadline {
            kill_group(child);
            return Waited::TimedOut;
        }
        match stdout_done.recv_timeout(tick.min(deadline - now)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            // Exited, but something it started still holds its stdout.
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Waited::Exited(status);
                }
            }
        }
    }
    // Stdout is closed: the child is exiting (or has closed it and goes on: still bounded).
    let mut pause = Duration::from_millis(1);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Waited::Exited(status);
        }
        if interrupt::requested() || Instant::now() >= deadline {
            kill_group(child);
            return if interrupt::requested() { Waited::Interrupted } else { Waited::TimedOut };
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Kills the child's whole process group, then reaps the child.
pub fn kill_group(child: &mut Child) {
    signal_group(child);
    let _ = child.kill();
    let _ = child.wait();
}

/// SIGKILL to the process group the child leads (it was spawned with `process_group(0)`).
fn signal_group(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals a process group; it touches no memory of
        // ours. Its failure (the group is already gone) is what we want anyway.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Output of a child's pipe, read to its end on a thread of its own so that a chatty child
/// never blocks on a full pipe.
pub struct Background {
    done: mpsc::Receiver<()>,
    handle: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Background {
    /// What was read, once the pipe has closed. A pipe that something outside the group still
    /// holds open after `linger` is given up on (its thread ends with the process).
    pub fn bytes_within(self, linger: Duration) -> Vec<u8> {
        let closed = matches!(self.done.recv_timeout(linger), Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected));
        match (closed, self.handle) {
            (true, Some(handle)) => handle.join().unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

pub fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> Background {
    let (tx, done) = mpsc::channel();
    let handle = pipe.map(|mut pipe| {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(());
            bytes
        })
    });
    Background { done, handle }
}

/// How long one git call may take (a fingerprint of a large tree, a diff of many commits).
const GIT_BOUND: Duration = Duration::from_secs(120);

/// `cmd!`'s `read` and `run` for git, bounded in time and stopped by Ctrl-C like every child of
/// the sync: a failure says which command and what it printed.
pub trait Bounded {
    /// Its standard output, without the trailing newline.
    fn read_bounded(self) -> anyhow::Result<String>;
    fn run_bounded(self) -> anyhow::Result<()>;
}

impl Bounded for xshell::Cmd<'_> {
    fn read_bounded(self) -> anyhow::Result<String> {
        let shown = self.to_string();
        let output = match run(Command::from(self), GIT_BOUND) {
            Ended::Exited(output) => output,
            Ended::TimedOut => anyhow::bail!("`{shown}` did not answer within {}s and was killed", GIT_BOUND.as_secs()),
            Ended::Interrupted => anyhow::bail!("`{shown}`: interrupted"),
            Ended::NotFound => anyhow::bail!("`{shown}`: the program is not installed (not on PATH)"),
            Ended::Failed(err) => return Err(err).with_context(|| format!("running `{shown}`")),
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let why = stderr.lines().find(|line| !line.trim().is_empty()).unwrap_or("no message");
            anyhow::bail!("`{shown}` failed ({}): {}", output.status, why.trim());
        }
        let mut stdout = String::from_utf8(output.stdout).with_context(|| format!("`{shown}` printed non-UTF-8"))?;
        if stdout.ends_with('\n') {
            stdout.pop();
        }
        Ok(stdout)
    }

    fn run_bounded(self) -> anyhow::Result<()> {
        self.read_bounded().map(drop)
    }
}
