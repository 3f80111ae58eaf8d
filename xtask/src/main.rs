//! `cargo xtask`: automation for the Citadel workspace. `main` parses the flags and dispatches;
//! every subcommand lives in its own module.

mod config;
mod duration;
mod flags;
mod live;
mod report;
mod scan;
mod step;
mod sync;
mod tilt;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let flags = flags::Xtask::parse();
    let outcome = match flags.command {
        flags::Command::Sync(sync) => sync.run(),
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(sync::EXIT_ENVIRONMENT)
        }
    }
}
