//! Ctrl-C and termination: a flag that every wait looks at, and a callback that wakes the run's
//! event loop, so an interrupted sync stops at once, saves its log and exits 130. The handler is
//! installed first thing in `main`, before any work: an interrupt at any moment is seen.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex,
};

use anyhow::{Context, Result};

static REQUESTED: AtomicBool = AtomicBool::new(false);
type Wake = Box<dyn Fn() + Send>;
static WAKE: Mutex<Option<Wake>> = Mutex::new(None);

pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Installs the handler for SIGINT and SIGTERM: it raises the flag, then wakes the run.
pub fn install() -> Result<()> {
    ctrlc::set_handler(|| {
        REQUESTED.store(true, Ordering::SeqCst);
        if let Some(wake) = WAKE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref() {
            wake();
        }
    })
    .context("installing the Ctrl-C handler")
}

/// What wakes the run when Ctrl-C comes; called at once if it came already.
pub fn on_interrupt(wake: impl Fn() + Send + 'static) {
    let mut slot = WAKE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if requested() {
        wake();
    }
    *slot = Some(Box::new(wake));
}
