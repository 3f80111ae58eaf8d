//! `cargo run -p sync-tests --bin soak -- [--rounds N] [--seed S]`: the randomized soak of `xtask
//! sync` against the real Tilt (`tests/src/real/soak.rs`), SYNC_REAL_TILT naming the tilt
//! binary. Prints each sync, then the false-green count among the syncs that had to fail and its
//! 95 % upper bound; exits 1 on a false green or a false red.

use std::{env, path::PathBuf, process::ExitCode, time::SystemTime};

use sync_tests::real::soak::{soak, upper_bound};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let value = |flag: &str| args.iter().position(|arg| arg == flag).and_then(|at| args.get(at + 1));
    let rounds: usize = value("--rounds").and_then(|text| text.parse().ok()).unwrap_or(300);
    let seed: u64 = value("--seed")
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |since| since.as_secs()));
    let Some(tilt) = env::var_os("SYNC_REAL_TILT").filter(|tilt| !tilt.is_empty()).map(PathBuf::from) else {
        eprintln!("soak: set SYNC_REAL_TILT to the real tilt binary (`../shared/tilt/install.sh DIR` prints it)");
        return ExitCode::from(2);
    };
    println!("soak: {rounds} syncs, seed {seed} (`--seed {seed}` replays them)");
    let tally = soak(&tilt, rounds, seed, &mut |round| println!("{round}"));
    println!(
        "soak: {} syncs ({} had to fail, {} to pass, the rest either): {} false green (95 % upper bound {:.2} %), \
         {} false red (95 % upper bound {:.2} %)",
        tally.rounds,
        tally.must_fail,
        tally.must_pass,
        tally.false_green,
        tally.false_green_bound() * 100.0,
        tally.false_red,
        upper_bound(tally.false_red, tally.must_pass) * 100.0,
    );
    match tally.false_green + tally.false_red {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}
