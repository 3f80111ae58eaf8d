//! Progress on stderr while a sync runs: on a terminal one live line per step, redrawn on a
//! steady tick and cut to the terminal's width (`[2/4] server 0:42 / ~1:30 │ last line`);
//! otherwise, and under `TERM=dumb`, plain lines; with `-v` every line of the build.

use std::{
    io::{self, IsTerminal, Write},
    time::{Duration, Instant},
};

pub struct Live {
    terminal: bool,
    verbose: bool,
    quiet: bool,
    /// Columns to draw in (COLUMNS, else the terminal's).
    width: usize,
    current: Option<Current>,
}

struct Current {
    label: String,
    started: Instant,
    /// How long this step took in earlier runs (their median), for the `~1:30`.
    estimate: Option<Duration>,
    last_line: String,
    drawn: Option<Instant>,
}

/// How often the live line is redrawn, lines or not.
pub const TICK: Duration = Duration::from_millis(500);
/// Lines arriving faster than this do not redraw it each.
const REDRAW_AT_MOST: Duration = Duration::from_millis(100);

impl Live {
    /// `quiet`: nothing but warnings.
    pub fn new(verbose: bool, quiet: bool) -> Live {
        let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
        Live { terminal: io::stderr().is_terminal() && !dumb && !quiet, verbose, quiet, width: width(), current: None }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// When the live line wants redrawing next, if it is drawn at all.
    pub fn next_tick(&self) -> Option<Instant> {
        let current = self.current.as_ref().filter(|_| self.terminal)?;
        Some(current.drawn.map_or_else(Instant::now, |drawn| drawn + TICK))
    }

    /// Redraws the live line if its tick is due (the clock moves even when the log is silent).
    pub fn tick(&mut self) {
        if self.next_tick().is_some_and(|due| Instant::now() >= due) {
            self.draw(true);
        }
    }

    pub fn step_started(
        &mut self,
        number: usize,
        total: usize,
        name: &str,
        resource: &str,
        estimate: Option<Duration>,
    ) {
        let label = match name == resource {
            true => format!("[{number}/{total}] {name}"),
            false => format!("[{number}/{total}] {name} ({resource})"),
        };
        if !self.terminal && !self.quiet {
            eprintln!("{label}: triggered");
        }
        self.current =
            Some(Current { label, started: Instant::now(), estimate, last_line: String::new(), drawn: None });
        self.draw(true);
    }

    pub fn line(&mut self, text: &str) {
        if self.verbose {
            self.clear();
            eprintln!("  │ {text}");
        }
        // Only a live line shows the last line: nothing to keep per line otherwise.
        if !self.terminal {
            return;
        }
        if let Some(current) = &mut self.current {
            if !text.trim().is_empty() {
                current.last_line = text.trim().to_owned();
            }
        }
        self.draw(false);
    }

    pub fn note(&mut self, text: &str) {
        self.clear();
        eprintln!("{text}");
        self.draw(true);
    }

    pub fn step_finished(&mut self, verdict: &str) {
        self.clear();
        if let Some(current) = self.current.take().filter(|_| !self.quiet) {
            eprintln!("{}: {verdict} after {:.1}s", current.label, current.started.elapsed().as_secs_f64());
        }
    }

    fn draw(&mut self, force: bool) {
        if !self.terminal {
            return;
        }
        let width = self.width;
        let Some(current) = &mut self.current else { return };
        if !force && current.drawn.is_some_and(|drawn| drawn.elapsed() < REDRAW_AT_MOST) {
            return;
        }
        current.drawn = Some(Instant::now());
        let mut line = format!("{} {}", current.label, clock(current.started.elapsed()));
        if let Some(estimate) = current.estimate {
            line.push_str(&format!(" / ~{}", clock(estimate)));
        }
        if !current.last_line.is_empty() {
            line.push_str(" │ ");
            line.push_str(&current.last_line);
        }
        // The cursor must not reach the last column: a terminal wraps there.
        let cut: String = line.chars().filter(|c| !c.is_control()).take(width.saturating_sub(1)).collect();
        let mut stderr = io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{cut}");
        let _ = stderr.flush();
    }

    fn clear(&self) {
        if self.terminal && self.current.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

/// `m:ss`.
fn clock(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// The terminal's width in columns: `COLUMNS` if set, else what the terminal says, else 80.
fn width() -> usize {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|columns| columns.trim().parse().ok()) {
        return columns;
    }
    terminal_width().unwrap_or(80)
}

#[cfg(unix)]
fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills the winsize it is given, and touches nothing else.
    let size = unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) != 0 {
            return None;
        }
        size
    };
    (size.ws_col > 0).then_some(usize::from(size.ws_col))
}

#[cfg(not(unix))]
fn terminal_width() -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_reads_minutes_and_seconds() {
        assert_eq!(clock(Duration::from_secs(42)), "0:42");
        assert_eq!(clock(Duration::from_secs(90)), "1:30");
        assert_eq!(clock(Duration::from_millis(600_999)), "10:00");
    }
}
