//! `cargo xtask bench`: what the sync costs, in figures. Part 1 runs the same four-step scenario
//! on the Tilt stand-in with fixed build durations, with our defaults and configured as the seed
//! protocol. Part 2 pushes a large synthetic Tilt log through the classifier.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, BufReader, Read, Write},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use camino::Utf8Path;
use xshell::Shell;

use crate::{
    config::Protocol,
    flags,
    model::LogLine,
    scan::{self, Verdict},
    standin::StandIn,
    tilt::read_json_log,
    usage,
};

const RESOURCES: [&str; 4] = ["sync-wasm-client", "server", "internal-service", "ui"];

impl flags::Bench {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        let build = Duration::from_millis(self.build_ms);
        println!("Part 2 first (its peak memory is this process's own): the classifier");
        classifier(self.log_mb)?;
        println!("\nPart 1: a four-step sync, every build {} ms, on the Tilt stand-in", self.build_ms);
        let stand_in = StandIn::build(sh)?;
        let bench_dir = stand_in.project.join("target/xtask-bench");
        let scenario = bench_dir.join("scenario.toml");
        fs::create_dir_all(&bench_dir)?;
        stand_in.write_scenario(sh, &scenario, &["bench", "--build-ms", &self.build_ms.to_string()])?;
        let runs: [(&str, &[&str]); 2] = [
            ("ours (defaults: follow the log)", &[]),
            ("seed protocol (--no-stream --poll 10s --settle 5s)", &["--no-stream", "--poll", "10s", "--settle", "5s"]),
        ];
        println!(
            "{:52} {:>8} {:>10} {:>10} {:>9} {:>7} {:>11} {:>9}",
            "configuration", "wall s", "median ovh", "worst ovh", "cpu ms", "cpu %", "calls/step", "per run"
        );
        for (index, (name, args)) in runs.iter().enumerate() {
            let figures = sync_once(sh, &stand_in, &bench_dir.join(format!("run-{index}")), &scenario, args, build)?;
            println!(
                "{name:52} {:>8.2} {:>9.3}s {:>9.3}s {:>9} {:>6.2}% {:>11} {:>9}",
                figures.wall.as_secs_f64(),
                figures.median_overhead.as_secs_f64(),
                figures.worst_overhead.as_secs_f64(),
                figures.cpu_ms,
                figures.cpu_ms as f64 / figures.wall.as_millis() as f64 * 100.0,
                figures.calls_per_step,
                figures.calls_per_run,
            );
        }
        println!(
            "(overhead = a step's wall time minus its build's {} ms; cpu = the sync process alone, not Tilt's)",
            self.build_ms
        );
        Ok(())
    }
}

struct Figures {
    wall: Duration,
    median_overhead: Duration,
    worst_overhead: Duration,
    cpu_ms: u64,
    calls_per_step: usize,
    calls_per_run: usize,
}

fn sync_once(
    sh: &Shell,
    stand_in: &StandIn,
    dir: &Utf8Path,
    scenario: &Utf8Path,
    args: &[&str],
    build: Duration,
) -> Result<Figures> {
    let workspace = dir.join("citadel");
    let state = dir.join("tilt-state");
    stand_in.make_workspace(sh, &workspace)?;
    let args: Vec<&str> = ["--all", "--json"].into_iter().chain(args.iter().copied()).collect();
    let started = Instant::now();
    let output = Command::from(stand_in.sync(sh, &workspace, scenario, &state, &args))
        .stderr(Stdio::null())
        .output()
        .context("running the sync")?;
    let wall = started.elapsed();
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading the sync's --json report")?;
    if report["status"] != "success" {
        bail!("the benchmark's sync did not succeed: {report}");
    }
    let mut overheads: Vec<Duration> = report["steps"]
        .as_array()
        .map(|steps| steps.iter().filter_map(|step| step["duration_ms"].as_u64()).map(Duration::from_millis).collect())
        .unwrap_or_default();
    let overheads_of_steps = overheads.iter_mut().map(|took| took.saturating_sub(build)).collect::<Vec<_>>();
    let mut sorted = overheads_of_steps.clone();
    sorted.sort();
    let (per_step, per_run) = count_calls(&state.join("calls.jsonl"))?;
    Ok(Figures {
        wall,
        median_overhead: sorted.get(sorted.len() / 2).copied().unwrap_or_default(),
        worst_overhead: sorted.last().copied().unwrap_or_default(),
        cpu_ms: report["cpu_ms"].as_u64().unwrap_or_default(),
        calls_per_step: per_step,
        calls_per_run: per_run,
    })
}

/// The most Tilt calls any one step made (calls naming its resource alone), and the calls made
/// once per run (version, resource list, Tiltfile, the log stream naming every resource).
fn count_calls(calls: &Utf8Path) -> Result<(usize, usize)> {
    let text = fs::read_to_string(calls).with_context(|| format!("reading {calls}"))?;
    let mut per_resource: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_run = 0;
    for line in text.lines() {
        let call: serde_json::Value = serde_json::from_str(line)?;
        let args: Vec<&str> = call["args"].as_array().into_iter().flatten().filter_map(|arg| arg.as_str()).collect();
        let named: Vec<&&str> = args.iter().filter(|arg| RESOURCES.contains(arg)).collect();
        match named[..] {
            [resource] => *per_resource.entry((*resource).to_owned()).or_default() += 1,
            _ => per_run += 1,
        }
    }
    Ok((per_resource.values().copied().max().unwrap_or_default(), per_run))
}

/// Feeds `megabytes` of synthetic `tilt logs --json` output (ANSI codes, long lines, several
/// resources) through the reader and the step's classifier, as a sync does.
fn classifier(megabytes: usize) -> Result<()> {
    let protocol = Protocol::load(None)?;
    let step = protocol.step("server").context("the built-in protocol has a server step")?;
    let (bytes, input) = synthetic_log(megabytes << 20);
    let (sender, lines_read) = mpsc::sync_channel::<LogLine>(1024);
    let started = Instant::now();
    let reader = thread::spawn(move || {
        read_json_log(BufReader::with_capacity(64 << 10, input), &["server".to_owned()], |line| {
            sender.send(line).is_ok()
        });
    });
    let mut sink = io::BufWriter::new(io::sink());
    let (mut lines, mut errors) = (0u64, 0u64);
    for line in lines_read {
        lines += 1;
        let _ = writeln!(sink, "{}", line.text);
        if matches!(scan::classify(step, &line.text), Verdict::Error(..)) {
            errors += 1;
        }
    }
    reader.join().map_err(|_| anyhow::anyhow!("the log reader panicked"))?;
    let elapsed = started.elapsed();
    let peak_rss = usage::own().map_or(0, |usage| usage.peak_rss);
    println!(
        "classifier: {:.0} MB of Tilt JSON log, {lines} lines of `server` ({errors} error lines), in {:.2}s: {:.0} MB/s; peak RSS {:.1} MB",
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        peak_rss as f64 / (1 << 20) as f64,
    );
    Ok(())
}

/// `tilt logs --follow --json` output: a build header, then a block of lines of several
/// resources (colour codes, a long line, near misses of the error patterns) repeated up to the
/// size asked for, so that making the input costs next to nothing.
fn synthetic_log(size: usize) -> (usize, impl Read + Send) {
    let header = json_line("server", "build:1", "init", "CLI Trigger");
    let mut block = Vec::new();
    for n in 1..=10_000u64 {
        let (resource, span) = match n {
            _ if n % 7 == 0 => ("ui", "build:2"),
            _ if n % 3 == 0 => ("server", "dc:server"),
            _ => ("server", "build:1"),
        };
        let message = match n % 10 {
            0 => format!("\\u001b[1m\\u001b[32m   Compiling\\u001b[0m thiserror v1.0.{n}"),
            1 => "found 0 vulnerabilities, 0 errors".to_owned(),
            2 => format!("\\u001b[0;32m[INFO]\\u001b[0m request {n} served in 3ms"),
            3 if n % 1000 == 3 => format!("\\u001b[33mwarning\\u001b[0m: {}", "long line ".repeat(2000)),
            4 => format!("note: {} -> {n}", "target/debug/deps/libcitadel_workspace_types".repeat(4)),
            _ => format!("   Compiling citadel-crate-{n} v0.{}.{}", n % 13, n % 7),
        };
        block.extend(json_line(resource, span, "", &message));
    }
    let repeats = size.div_ceil(block.len());
    let total = header.len() + repeats * block.len();
    (total, io::Cursor::new(header).chain(Repeated { block, offset: 0, left: repeats }))
}

fn json_line(resource: &str, span: &str, build_event: &str, message: &str) -> Vec<u8> {
    format!(
        "{{\"time\":\"2026-11-25T10:00:00Z\",\"resource\":\"{resource}\",\"level\":\"INFO\",\"message\":\"{message}\\n\",\"spanID\":\"{span}\",\"progressID\":\"\",\"buildEvent\":\"{build_event}\",\"source\":\"\"}}\n"
    )
    .into_bytes()
}

/// `block`, `left` more times.
struct Repeated {
    block: Vec<u8>,
    offset: usize,
    left: usize,
}

impl Read for Repeated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.offset == self.block.len() {
            if self.left == 0 {
                return Ok(0);
            }
            self.left -= 1;
            self.offset = 0;
        }
        let count = buf.len().min(self.block.len() - self.offset);
        buf[..count].copy_from_slice(&self.block[self.offset..self.offset + count]);
        self.offset += count;
        Ok(count)
    }
}
