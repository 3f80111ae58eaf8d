//! Progress on stderr while a sync runs: one live line per step on a terminal, plain lines
//! otherwise, and with `-v` every line of the build.

use std::{
    io::{self, IsTerminal, Write},
    time::{Duration, Instant},
};

pub struct Live {
    terminal: bool,
    verbose: bool,
    current: Option<Current>,
}

struct Current {
    label: String,
    started: Instant,
    last_line: String,
    drawn: Option<Instant>,
}

const REDRAW_EVERY: Duration = Duration::from_millis(100);

impl Live {
    pub fn new(verbose: bool) -> Live {
        Live { terminal: io::stderr().is_terminal(), verbose, current: None }
    }

    pub fn verbose(&self) -> bool {
        self.verbose
    }

    pub fn step_started(&mut self, number: usize, total: usize, name: &str, resource: &str) {
        let label = match name == resource {
            true => format!("[{number}/{total}] {name}"),
            false => format!("[{number}/{total}] {name} ({resource})"),
        };
        if !self.terminal {
            eprintln!("{label}: triggered");
        }
        self.current = Some(Current { label, started: Instant::now(), last_line: String::new(), drawn: None });
        self.draw(true);
    }

    pub fn line(&mut self, text: &str) {
        if self.verbose {
            self.clear();
            eprintln!("  │ {text}");
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
        if let Some(current) = self.current.take() {
            eprintln!("{}: {verdict} after {:.1}s", current.label, current.started.elapsed().as_secs_f64());
        }
    }

    fn draw(&mut self, force: bool) {
        if !self.terminal {
            return;
        }
        let Some(current) = &mut self.current else {
            return;
        };
        if !force && current.drawn.is_some_and(|drawn| drawn.elapsed() < REDRAW_EVERY) {
            return;
        }
        current.drawn = Some(Instant::now());
        let last: String = current.last_line.chars().take(80).collect();
        let mut stderr = io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{} {:.1}s │ {last}", current.label, current.started.elapsed().as_secs_f64());
        let _ = stderr.flush();
    }

    fn clear(&self) {
        if self.terminal && self.current.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}
