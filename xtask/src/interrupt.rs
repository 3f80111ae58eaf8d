//! Ctrl-C and termination: a flag that every wait looks at, and a callback that wakes the run's
//! event loop, so an interrupted sync stops at once, saves its log and exits 130.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Installs the handler for SIGINT and SIGTERM: it raises the flag, then calls `wake`.
pub fn install(wake: impl Fn() + Send + 'static) -> Result<()> {
    ctrlc::set_handler(move || {
        REQUESTED.store(true, Ordering::SeqCst);
        wake();
    })
    .context("installing the Ctrl-C handler")
}
