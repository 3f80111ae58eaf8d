//! Putting the xtask to work in a Citadel clone: `install-into` (run from this repository
//! only), the alias inside submodules, the pre-push hook, and the sync agent's file.

pub mod agent;
pub mod alias;
pub mod hook;
#[cfg(feature = "repo-only")]
pub mod into;
#[cfg(feature = "repo-only")]
pub mod rewire;
