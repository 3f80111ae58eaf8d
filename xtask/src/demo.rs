//! `cargo xtask demo`: a real sync in a throwaway Citadel-shaped git workspace, against the
//! bundled Tilt stand-in: once where every build passes, once where the server fails to compile.

use std::{
    fs,
    process::{Command, Stdio},
};

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::Shell;

use crate::{flags, standin::StandIn};

/// The stand-in's named scenarios (`sync_tests::scenarios`), with a title.
const SCENARIOS: [(&str, &str); 2] =
    [("every build passes", "demo-happy"), ("the server fails to compile", "demo-failing")];

impl flags::Demo {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let stand_in = StandIn::build(sh, self.build.target_dir.as_deref())?;
        let demo = stand_in.target.join("xtask-demo");
        for (index, (title, scenario)) in SCENARIOS.iter().enumerate() {
            let workspace = demo.join(format!("citadel-{}", index + 1));
            stand_in.make_workspace(sh, &workspace)?;
            let scenario_name = *scenario;
            let scenario = demo.join(format!("{scenario_name}.toml"));
            stand_in.write_scenario(sh, &scenario, &[scenario_name])?;
            println!("\n=== Demo {}: {title} ===", index + 1);
            println!("$ cargo xtask sync --root {workspace} --all   (Tilt stand-in scenario: {scenario})\n");
            let state = demo.join(format!("tilt-state-{}", index + 1));
            let sync = stand_in.sync(sh, &workspace, &scenario, &state, &["--all"]);
            // Progress (stderr) shows live; the report (stdout) is printed with the saved log.
            let run = Command::from(sync).stderr(Stdio::inherit()).output().context("running the sync")?;
            print!("{}", String::from_utf8_lossy(&run.stdout));
            println!("(exit status {})", run.status.code().unwrap_or(-1));
            for log in error_logs(&workspace.join("logs"))? {
                println!("\n--- {log} ---\n{}", fs::read_to_string(&log).with_context(|| format!("reading {log}"))?);
            }
        }
        println!("\nThe demo workspaces, and their logs/, are under {demo}.");
        Ok(())
    }
}

fn error_logs(dir: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
    let Ok(entries) = dir.read_dir_utf8() else { return Ok(Vec::new()) };
    let mut logs = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_name().starts_with("sync-error-") {
            logs.push(entry.into_path());
        }
    }
    logs.sort();
    Ok(logs)
}
