//! What changed and which steps it needs: the git calls, the path rules, and the one place
//! that decides which steps run and why.

pub mod git;
pub mod glob;
pub mod plan;
pub mod select;
