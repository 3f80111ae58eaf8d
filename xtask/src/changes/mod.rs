//! What changed and which steps it needs: the git calls, the build graph (each step's inputs),
//! the claims of changed paths on steps, and the one place that decides which steps run and why.

pub mod gather;
pub mod git;
pub mod glob;
pub mod graph;
pub mod plan;
pub mod record;
pub mod select;
