//! Prints a named scenario of the Tilt stand-in as TOML on stdout, for `cargo xtask demo` and
//! `cargo xtask bench`:
//! `scenario demo-happy`, `scenario demo-failing`,
//! `scenario bench --build-ms 3000 [--local] [--call-cost]`.

use std::process::ExitCode;

use sync_tests::scenario::{Kind, Scenario};
use sync_tests::scenarios;

const USAGE: &str = "usage: scenario demo-happy | demo-failing | bench --build-ms MS [--local] [--call-cost]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let printed = named(&args).and_then(|scenario| toml::to_string(&scenario).map_err(|e| e.to_string()));
    match printed {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("scenario: {error}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// The scenario the command line names.
fn named(args: &[String]) -> Result<Scenario, String> {
    let Some((name, flags)) = args.split_first() else { return Err("which scenario?".to_owned()) };
    match name.as_str() {
        "demo-happy" | "demo-failing" if !flags.is_empty() => Err(format!("`{name}` takes no flags")),
        "demo-happy" => Ok(scenarios::demo_happy()),
        "demo-failing" => Ok(scenarios::demo_failing()),
        "bench" => bench(flags),
        other => Err(format!("no scenario named `{other}`")),
    }
}

/// `bench --build-ms MS [--local] [--call-cost]`.
fn bench(flags: &[String]) -> Result<Scenario, String> {
    let mut build_ms = None;
    let mut kind = Kind::Compose;
    let mut call_cost = None;
    let mut flags = flags.iter();
    while let Some(flag) = flags.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (flag.as_str(), None),
        };
        match flag {
            "--build-ms" => {
                let value = inline.or_else(|| flags.next().cloned()).ok_or("--build-ms needs a value")?;
                build_ms =
                    Some(value.parse::<u64>().map_err(|_| format!("--build-ms: `{value}` is not milliseconds"))?);
            }
            "--local" => kind = Kind::Local,
            "--call-cost" => call_cost = Some(scenarios::REAL_CALL_COST),
            other => return Err(format!("unknown flag `{other}`")),
        }
    }
    let build_ms = build_ms.ok_or("bench needs --build-ms")?;
    Ok(Scenario { call_cost, ..scenarios::bench(build_ms, kind) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn names_and_flags() {
        assert!(named(&strings(&["demo-happy"])).is_ok());
        let bench = named(&strings(&["bench", "--build-ms", "3000", "--local", "--call-cost"])).unwrap();
        assert_eq!(bench.call_cost, Some(scenarios::REAL_CALL_COST));
        assert_eq!(bench.resources[0].kind, Kind::Local);
        assert_eq!(named(&strings(&["bench", "--build-ms=20"])).unwrap().resources[0].build[0].duration_ms, 20);
        assert!(named(&strings(&["bench"])).is_err());
        assert!(named(&strings(&["bench", "--build-ms", "x"])).is_err());
        assert!(named(&strings(&["demo-happy", "--local"])).is_err());
        assert!(named(&strings(&["nope"])).is_err());
    }
}
