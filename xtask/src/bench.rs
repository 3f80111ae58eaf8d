//! `cargo xtask bench`: what the sync costs, in figures. Part 1 pushes a large synthetic Tilt log
//! through the reader and the run machine, as a sync does (every line through `Machine::handle`). Part 2 runs a four-step sync of Citadel-shaped local
//! resources on the Tilt stand-in, every CLI call costing what the real one does, with our
//! defaults and as the seed protocol. Part 3 (`--real-tilt`) runs the same sync on the real Tilt
//! and measures when each verdict comes after the build's end as Tilt records it.

use std::{
    fs,
    io::{self, BufReader, Read},
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use tilt_log::{read_json_log, Logged};
use xshell::{cmd, Shell};

use crate::{
    flags, process,
    protocol::Protocol,
    run::{Action, Event, Machine, Now, Timing},
    standin::StandIn,
    store::status::{Outcome, RunStatus, SyncStatus},
    tilt::model::{ResourceKind, ResourceStatus, WallTime},
    tilt::Tilt,
    usage,
};

const RESOURCES: [&str; 4] = ["sync-wasm-client", "server", "internal-service", "ui"];
/// The seed protocol: look 5 s after each trigger, then every 10 s.
const SEED: [&str; 5] = ["--no-stream", "--poll", "10s", "--settle", "5s"];

impl flags::Bench {
    pub fn run(&self, sh: &Shell) -> Result<()> {
        println!("Part 1: the run machine (the peak memory is this process's own)");
        classifier(self.log_mb)?;
        if self.machine_only {
            return Ok(());
        }
        let stand_in = StandIn::build(sh, self.build.target_dir.as_deref())?;
        let dir = stand_in.target.join("xtask-bench");
        println!(
            "\nPart 2: a four-step sync of Citadel-shaped local resources, every build {} ms, on the Tilt \
             stand-in; every CLI call costs 70 ms wall and 80 ms CPU, as the real one does",
            self.build_ms
        );
        let scenario = dir.join("scenario.toml");
        let build_ms = self.build_ms.to_string();
        stand_in.write_scenario(sh, &scenario, &["bench", "--build-ms", &build_ms, "--local", "--call-cost"])?;
        print_header();
        for (name, args) in [("ours", &[][..]), ("seed protocol (--no-stream --poll 10s --settle 5s)", &SEED[..])] {
            let run_dir = dir.join(if args.is_empty() { "ours" } else { "seed" });
            let workspace = run_dir.join("citadel");
            let state = run_dir.join("tilt-state");
            stand_in.make_workspace(sh, &workspace)?;
            let all: Vec<&str> = ["--all", "--json"].into_iter().chain(args.iter().copied()).collect();
            let started = Instant::now();
            let output = Command::from(stand_in.sync(sh, &workspace, &scenario, &state, &all))
                .stderr(Stdio::null())
                .output()
                .context("running the sync")?;
            let wall = started.elapsed();
            let report = read_report(&output.stdout, RunStatus::Success)?;
            let calls = fs::read_to_string(state.join("calls.jsonl")).unwrap_or_default().lines().count();
            let (overheads, _) = around_builds(&report, &stand_in.statuses(&scenario, &state)?);
            print_row(name, &Figures { wall, overheads, cpu_ms: report.cpu_ms, calls });
        }
        if let Some(real) = &self.real_tilt {
            self.real_tilt(sh, &stand_in, real, &dir.join("real"))?;
        }
        println!(
            "(overhead: a step's time, trigger to verdict, minus its build's; cpu: the sync process alone, not \
             Tilt's; calls: every tilt invocation of the run, its streams included)"
        );
        Ok(())
    }

    /// Part 3: the sync on the real Tilt, `runs` times, and once as the seed protocol.
    fn real_tilt(&self, sh: &Shell, stand_in: &StandIn, program: &Utf8Path, dir: &Utf8Path) -> Result<()> {
        println!(
            "\nPart 3: the same sync on the real Tilt ({program}), local resources, every build about {} ms, \
             {} runs",
            self.build_ms, self.runs
        );
        let workspace = dir.join("citadel");
        stand_in.make_workspace(sh, &workspace)?;
        let tilt = RealTilt::start(sh, program, &workspace, &dir.join("bin"), self.build_ms)?;
        print_header();
        let (mut latencies, mut delays) = (Vec::new(), Vec::new());
        let (mut one_shot, mut services, mut failures) = (Vec::new(), Vec::new(), Vec::new());
        let mut ours = Figures::default();
        for _ in 0..self.runs {
            let (figures, timing) = tilt.sync(sh, &workspace, &["--all"], RunStatus::Success)?;
            for (resource, after_end) in &timing.by_resource {
                match resource.as_str() {
                    "sync-wasm-client" => one_shot.push(*after_end),
                    _ => services.push(*after_end),
                }
            }
            latencies.extend(timing.after_end);
            delays.extend(timing.before_start);
            ours.wall += figures.wall;
            ours.overheads.extend(figures.overheads);
            ours.cpu_ms += figures.cpu_ms;
            ours.calls = ours.calls.max(figures.calls);
        }
        ours.wall /= self.runs.max(1);
        ours.cpu_ms /= u64::from(self.runs.max(1));
        print_row(&format!("ours (mean of {} runs; overheads of all)", self.runs), &ours);
        let seed_all: Vec<&str> = SEED.iter().copied().chain(["--all"]).collect();
        let (seed, _) = tilt.sync(sh, &workspace, &seed_all, RunStatus::Success)?;
        print_row("seed protocol (--no-stream --poll 10s --settle 5s)", &seed);
        // A failed build's verdict: the server's build fails on a Rust error.
        let fail = dir.join("bin/fail-server");
        fs::write(&fail, "").with_context(|| format!("writing {fail}"))?;
        for _ in 0..self.runs {
            let (_, timing) = tilt.sync(sh, &workspace, &["--step", "server"], RunStatus::Failed)?;
            failures.extend(timing.after_end);
        }
        fs::remove_file(&fail).with_context(|| format!("removing {fail}"))?;
        for (what, figures) in [
            ("a one-shot (sync-wasm-client)", &mut one_shot),
            ("a service", &mut services),
            ("a failed build", &mut failures),
        ] {
            figures.sort();
            println!(
                "verdict after Tilt's finishTime, {what}: median {:.3}s, p90 {:.3}s, worst {:.3}s ({} builds)",
                median(figures).as_secs_f64(),
                percentile(figures, 90).as_secs_f64(),
                figures.last().copied().unwrap_or_default().as_secs_f64(),
                figures.len()
            );
        }
        latencies.sort();
        delays.sort();
        println!(
            "of a step's overhead, over {} builds: from the step's start to the build's start as Tilt records it \
             (the `tilt trigger` call, ~70 ms, then Tilt's own scheduling) median {:.3}s, worst {:.3}s; from the \
             build's end as Tilt records it (finishTime) to the verdict median {:.3}s, worst {:.3}s",
            latencies.len(),
            median(&delays).as_secs_f64(),
            delays.last().copied().unwrap_or_default().as_secs_f64(),
            median(&latencies).as_secs_f64(),
            latencies.last().copied().unwrap_or_default().as_secs_f64()
        );
        Ok(())
    }
}

/// Where a step's time goes around its build, on the real Tilt.
struct AroundBuilds {
    before_start: Vec<Duration>,
    after_end: Vec<Duration>,
    /// Each step's resource, and its verdict after Tilt's finishTime.
    by_resource: Vec<(String, Duration)>,
}

#[derive(Default)]
struct Figures {
    wall: Duration,
    overheads: Vec<Duration>,
    cpu_ms: u64,
    calls: usize,
}

fn print_header() {
    println!(
        "{:58} {:>8} {:>10} {:>10} {:>8} {:>7} {:>6}",
        "configuration", "wall s", "median ovh", "worst ovh", "cpu ms", "cpu %", "calls"
    );
}

fn print_row(name: &str, figures: &Figures) {
    let mut overheads = figures.overheads.clone();
    overheads.sort();
    println!(
        "{name:58} {:>8.2} {:>9.3}s {:>9.3}s {:>8} {:>6.2}% {:>6}",
        figures.wall.as_secs_f64(),
        median(&overheads).as_secs_f64(),
        overheads.last().copied().unwrap_or_default().as_secs_f64(),
        figures.cpu_ms,
        figures.cpu_ms as f64 / figures.wall.as_millis().max(1) as f64 * 100.0,
        figures.calls,
    );
}

/// The `percent`-th percentile of sorted figures (nearest rank).
fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        n => sorted[(n * percent).div_ceil(100).clamp(1, n) - 1],
    }
}

fn median(sorted: &[Duration]) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

/// What the benchmark reads of a sync's `--json` report.
struct Report {
    cpu_ms: u64,
    steps: Vec<StepFigures>,
}

struct StepFigures {
    resource: String,
    took: Duration,
    started_at: Option<WallTime>,
    decided_at: Option<WallTime>,
    build: Option<u64>,
}

/// The sync's report, which must say `expected`.
fn read_report(stdout: &[u8], expected: RunStatus) -> Result<Report> {
    let report: SyncStatus = serde_json::from_slice(stdout).context("reading the sync's --json report")?;
    if report.status != expected {
        bail!("the benchmark's sync did not end as expected ({expected:?}): {}", String::from_utf8_lossy(stdout));
    }
    Ok(Report {
        cpu_ms: report.cpu_ms.unwrap_or_default(),
        steps: report
            .steps
            .into_iter()
            .filter(|step| matches!(step.outcome, Outcome::Ok | Outcome::Failed))
            .map(|step| StepFigures {
                resource: step.resource,
                took: Duration::from_millis(step.duration_ms),
                started_at: step.started_at,
                decided_at: step.decided_at,
                build: step.build,
            })
            .collect(),
    })
}

/// A real `tilt up` serving a Citadel-shaped workspace of local resources, stopped when dropped.
struct RealTilt {
    program: Utf8PathBuf,
    port: u16,
    /// A wrapper that counts the sync's calls before running the real tilt.
    counting: Utf8PathBuf,
    calls: Utf8PathBuf,
    child: Child,
}

impl RealTilt {
    fn start(sh: &Shell, program: &Utf8Path, workspace: &Utf8Path, bin: &Utf8Path, build_ms: u64) -> Result<RealTilt> {
        fs::create_dir_all(bin).with_context(|| format!("creating {bin}"))?;
        // A run cut short leaves its switch: the first builds must pass.
        let _ = fs::remove_file(bin.join("fail-server"));
        // Each build prints 19 `Compiling` lines over `build_ms` (but the first builds, at once).
        let pause = format!("{:.3}", build_ms as f64 / 19.0 / 1000.0);
        let fast = bin.join("fast");
        let build = format!(
            "#!/bin/sh\n# cargo xtask bench: a build printing 19 lines over {build_ms} ms.\nn=1\nwhile [ $n -le 19 ]; do\n  \
             echo \"   Compiling crate-$n v0.1.$n\"\n  [ -e '{fast}' ] || sleep {pause}\n  n=$((n + 1))\ndone\n\
             if [ -e '{bin}/fail-'\"$1\" ]; then echo 'error[E0425]: cannot find value `x` in this scope'; exit 101; fi\n\
             [ \"$1\" = sync-wasm-client ] && echo '[INFO] WASM client synchronization complete!'\nexit 0\n"
        );
        let serve = "#!/bin/sh\n# cargo xtask bench: a service that says it is up, then serves.\ncase \"$1\" in\n  \
             server) echo 'Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`' ;;\n  \
             internal-service) echo \"Running \\`target/debug/citadel-workspace-internal-service --bind '0.0.0.0:12345'\\`\" ;;\n  \
             ui) echo '  VITE v5.4.2  ready in 412 ms' ;;\nesac\nexec sleep 100000\n";
        for (name, text) in [("build.sh", build.as_str()), ("serve.sh", serve)] {
            fs::write(bin.join(name), text).with_context(|| format!("writing {bin}/{name}"))?;
            make_executable(&bin.join(name))?;
        }
        let tiltfile: String = RESOURCES
            .iter()
            .map(|name| {
                let (update, serve, deps) = match *name {
                    "sync-wasm-client" => (true, false, ""),
                    "ui" => (false, true, ", resource_deps=['server', 'internal-service']"),
                    _ => (true, true, ", resource_deps=['sync-wasm-client']"),
                };
                let update = if update { format!(", cmd='{bin}/build.sh {name}'") } else { String::new() };
                let serve = if serve { format!(", serve_cmd='{bin}/serve.sh {name}'") } else { String::new() };
                let manual = if *name == "ui" { "" } else { ", trigger_mode=TRIGGER_MODE_MANUAL" };
                format!("local_resource('{name}'{update}{serve}{manual}{deps})\n")
            })
            .collect();
        fs::write(workspace.join("Tiltfile"), tiltfile).context("writing the bench's Tiltfile")?;
        fs::write(&fast, "").with_context(|| format!("writing {fast}"))?;
        let calls = bin.join("calls");
        let counting = bin.join("tilt");
        fs::write(&counting, format!("#!/bin/sh\necho \"$*\" >> '{calls}'\nexec '{program}' \"$@\"\n"))
            .context("writing the counting wrapper")?;
        make_executable(&counting)?;

        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).context("a free port")?.port();
        let log = fs::File::create(bin.join("tilt-up.log")).context("creating the tilt up log")?;
        let port_text = port.to_string();
        let mut up = Command::from(cmd!(sh, "{program} up --port {port_text} --stream --web-mode=prod"));
        up.current_dir(workspace).env("TILT_DISABLE_ANALYTICS", "1").stderr(log.try_clone()?);
        let child = process::spawn(up, Stdio::from(log)).context("starting tilt up")?;
        let tilt = RealTilt { program: program.to_owned(), port, counting, calls, child };
        tilt.wait_until_built(sh, Duration::from_secs(90))?;
        fs::remove_file(&fast).with_context(|| format!("removing {fast}"))?;
        Ok(tilt)
    }

    fn statuses(&self, sh: &Shell) -> Result<Vec<ResourceStatus>> {
        Ok(Tilt::new(sh, self.program.clone(), Some(self.port), Duration::from_secs(30)).state()?.statuses)
    }

    /// Until every resource has built once and nothing builds.
    fn wait_until_built(&self, sh: &Shell, bound: Duration) -> Result<()> {
        let deadline = Instant::now() + bound;
        loop {
            if let Ok(statuses) = self.statuses(sh) {
                let built = |name: &str| {
                    statuses
                        .iter()
                        .any(|status| status.name == name && status.current.is_none() && !status.finished.is_empty())
                };
                if RESOURCES.iter().all(|name| built(name)) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!("the real Tilt did not finish its first builds within {}s", bound.as_secs());
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// `sync --all ARGS`, and for each step how long before its build's start and after its end.
    /// A sync with `args`, which must end `expected`.
    fn sync(
        &self,
        sh: &Shell,
        workspace: &Utf8Path,
        args: &[&str],
        expected: RunStatus,
    ) -> Result<(Figures, AroundBuilds)> {
        let _ = fs::remove_file(&self.calls);
        let xtask = Utf8PathBuf::try_from(std::env::current_exe()?).context("this program's path is not UTF-8")?;
        let counting = &self.counting;
        let port = self.port.to_string();
        let started = Instant::now();
        let output = Command::from(cmd!(
            sh,
            "{xtask} sync --root {workspace} --json --tilt {counting} --tilt-port {port} {args...}"
        ))
        .stderr(Stdio::null())
        .output()
        .context("running the sync")?;
        let wall = started.elapsed();
        let report = read_report(&output.stdout, expected)?;
        let (overheads, around) = around_builds(&report, &self.statuses(sh)?);
        let calls = fs::read_to_string(&self.calls).unwrap_or_default().lines().count();
        Ok((Figures { wall, overheads, cpu_ms: report.cpu_ms, calls }, around))
    }
}

/// Each step's overhead (its time minus its build's, as Tilt records the build: a local update
/// command's build includes Tilt's 250 ms sleep after it), and where it lies around the build.
fn around_builds(report: &Report, statuses: &[ResourceStatus]) -> (Vec<Duration>, AroundBuilds) {
    let mut overheads = Vec::new();
    let mut around = AroundBuilds { before_start: Vec::new(), after_end: Vec::new(), by_resource: Vec::new() };
    for step in &report.steps {
        let status = statuses.iter().find(|status| status.name == step.resource);
        let build = status.and_then(|status| status.finished_build(step.build?));
        let (Some(build), Some(started), Some(decided)) = (build, step.started_at, step.decided_at) else {
            continue;
        };
        let (Some(start), Some(finish)) = (build.start, build.finish) else { continue };
        let work = Duration::try_from(finish - start).unwrap_or_default();
        overheads.push(step.took.saturating_sub(work));
        around.before_start.push(Duration::try_from(start - started).unwrap_or_default());
        let after_end = Duration::try_from(decided - finish).unwrap_or_default();
        around.after_end.push(after_end);
        around.by_resource.push((step.resource.clone(), after_end));
    }
    (overheads, around)
}

impl Drop for RealTilt {
    fn drop(&mut self) {
        // Tilt stops its serve processes (each in a session of its own) when asked to stop.
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) sends a signal; it touches no memory of ours.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(100));
        }
        process::kill_group(&mut self.child);
    }
}

fn make_executable(path: &Utf8Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).with_context(|| format!("making {path} executable"))
}

/// Feeds `megabytes` of synthetic `tilt logs --json` output (ANSI codes, long lines, several
/// resources) through the reader and the run machine, while the server step watches its build:
/// every line goes the way a sync's lines go, the clock read once per event as the engine does.
fn classifier(megabytes: usize) -> Result<()> {
    let protocol = Protocol::load(None)?;
    let server =
        protocol.steps.iter().position(|step| step.name == "server").context("the protocol has a server step")?;
    let (bytes, input) = synthetic_log(megabytes << 20);
    let (sender, read) = mpsc::sync_channel::<Logged>(1024);
    let timing = Timing {
        settle: Duration::ZERO,
        catch_up: Duration::from_millis(400),
        after_error: Duration::from_secs(10),
        status_wait: Duration::from_secs(10),
        status_quiet: Duration::from_millis(300),
        containers_wait: Duration::from_secs(2),
        polled: false,
    };
    let mut machine = Machine::new(&protocol, vec![server], timing);
    let mut actions = Vec::new();
    let origin = (Instant::now(), WallTime::now_utc());
    let now = || Now { at: Instant::now(), origin };
    let status = ResourceStatus { name: "server".to_owned(), kind: ResourceKind::Local, ..ResourceStatus::default() };
    machine.handle(Event::Status(status), now(), &mut actions);
    if !actions.iter().any(|action| matches!(action, Action::Trigger(_))) {
        bail!("the run machine did not trigger the server step: {actions:?}");
    }
    actions.clear();
    machine.handle(Event::Triggered(Ok(WallTime::now_utc())), now(), &mut actions);
    let started = Instant::now();
    let reader = thread::spawn(move || {
        read_json_log(&mut BufReader::with_capacity(64 << 10, input), &["server".to_owned()], &mut |logged| {
            sender.send(logged).is_ok()
        });
    });
    let (mut lines, mut kept) = (0u64, 0u64);
    for logged in read {
        let event = match logged {
            Logged::Line(line) => {
                lines += 1;
                Event::Line(line)
            }
            Logged::Volume(volume) => Event::Volume(volume),
        };
        machine.handle(event, now(), &mut actions);
        kept += actions.drain(..).filter(|action| matches!(action, Action::Keep(_))).count() as u64;
    }
    reader.join().map_err(|_| anyhow::anyhow!("the log reader panicked"))?;
    let elapsed = started.elapsed();
    let peak_rss = usage::peak_rss().unwrap_or(0);
    let state = if machine.is_done() { "decided (an error line?)" } else { "still watching" };
    println!(
        "run machine: {:.0} MB of Tilt JSON log, {lines} lines of `server` ({kept} kept for its log), in {:.2}s: \
         {:.0} MB/s; peak RSS {:.1} MB; the step is {state}",
        bytes as f64 / 1e6,
        elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / elapsed.as_secs_f64(),
        peak_rss as f64 / f64::from(1 << 20),
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
        "{{\"time\":\"2026-11-25T10:00:00Z\",\"resource\":\"{resource}\",\"level\":\"info\",\"message\":\"{message}\",\"spanID\":\"{span}\",\"progressID\":\"\",\"buildEvent\":\"{build_event}\",\"source\":\"\"}}\n"
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
