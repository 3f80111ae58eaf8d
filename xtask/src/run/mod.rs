//! The pure run machine: one step's build followed from Tilt's log and status to a verdict,
//! and each passed step watched until the run ends. No I/O: `engine.rs` carries out its actions.

pub mod scan;
pub mod step;
