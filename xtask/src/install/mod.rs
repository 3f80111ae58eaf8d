//! Putting the xtask to work in a Citadel clone: `install-into` and the pre-push hook.

pub mod hook;
pub mod into;
