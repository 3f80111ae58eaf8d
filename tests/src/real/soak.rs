//! A randomized soak against the real Tilt: sync after sync of the local-resource Citadel
//! (`local.rs`), each build told at random what to do (pass, a Rust error, an error split in two
//! records, an error 150 lines before the success line, the sync script's `[ERROR]`, one a `\r`
//! hides, 5 MB after an error), each service how to behave (serve, crash at once or after its
//! success line, die or print an error seconds later), how long to take, and what else happens
//! (another terminal's trigger before or during the sync, a resource disabled, Tilt killed and
//! started again). The truth comes from what the builds were told: a sync whose selected steps
//! were all told to pass, on a Tilt whose builds all stood, must pass; one with a step told to
//! fail must fail; the rest (timing decides: a service dying after the run may have ended, a
//! disable) may go either way. A false green is exit 0 where the truth says fail.

use std::{
    fmt,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::real::{initial_builds_done, local::Fixture, resource, TiltUp, CITADEL_RESOURCES};

/// How long one sync may run before it is killed (and counted as a hang).
const SYNC_BOUND: Duration = Duration::from_secs(120);

/// A small, seeded generator (xorshift64*): the same seed replays the same soak.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// True `percent` times in 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, weighted: &'a [(u64, T)]) -> &'a T {
        let total: u64 = weighted.iter().map(|(weight, _)| weight).sum();
        let mut at = self.next() % total;
        for (weight, item) in weighted {
            if at < *weight {
                return item;
            }
            at -= weight;
        }
        &weighted[0].1
    }
}

/// What the sync must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    Pass,
    Fail,
    /// Timing decides.
    Either,
}

/// What else happens around one sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Nothing,
    /// Another terminal triggers a resource just before the sync.
    TriggerBefore(usize),
    /// … or this long after it started.
    TriggerDuring(usize, u64),
    /// A resource of the run is disabled this long after the sync started, enabled after it.
    Disable(usize, u64),
    /// Tilt is killed this long after the sync started, and started again after it.
    KillTilt(u64),
}

/// One sync of the soak: what each resource was told, the arguments, and what happened.
pub struct Round {
    pub number: usize,
    pub args: Vec<String>,
    modes: Vec<(String, String)>,
    event: Event,
    pub truth: Truth,
    pub code: Option<i32>,
    pub verdict: String,
    pub took: Duration,
}

impl Round {
    pub fn false_green(&self) -> bool {
        self.truth == Truth::Fail && self.code == Some(0)
    }

    pub fn false_red(&self) -> bool {
        self.truth == Truth::Pass && self.code != Some(0)
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match (self.false_green(), self.false_red()) {
            (true, _) => "FALSE GREEN",
            (_, true) => "FALSE RED",
            _ => "ok",
        };
        let modes: Vec<String> = self.modes.iter().map(|(key, value)| format!("{key}={value}")).collect();
        write!(
            f,
            "#{} {mark}: sync {} [{}; {:?}] truth {:?}, exit {:?} in {:.1} s: {}",
            self.number,
            self.args.join(" "),
            modes.join(" "),
            self.event,
            self.truth,
            self.code,
            self.took.as_secs_f64(),
            self.verdict
        )
    }
}

/// The soak's tally.
#[derive(Default)]
pub struct Tally {
    pub rounds: usize,
    pub must_fail: usize,
    pub must_pass: usize,
    pub false_green: usize,
    pub false_red: usize,
}

impl Tally {
    fn add(&mut self, round: &Round) {
        self.rounds += 1;
        self.must_fail += usize::from(round.truth == Truth::Fail);
        self.must_pass += usize::from(round.truth == Truth::Pass);
        self.false_green += usize::from(round.false_green());
        self.false_red += usize::from(round.false_red());
    }

    /// The 95 % upper bound of the false-green rate among syncs that had to fail (exact, one
    /// sided: with none seen in n, 1 - 0.05^(1/n), about 3/n).
    pub fn false_green_bound(&self) -> f64 {
        upper_bound(self.false_green, self.must_fail)
    }
}

/// Clopper-Pearson's one-sided 95 % upper bound of a rate seen `k` times in `n`, by bisection on
/// the binomial's tail.
pub fn upper_bound(k: usize, n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    if k >= n {
        return 1.0;
    }
    // P(X <= k | p) = 0.05, found by bisection (decreasing in p).
    let tail = |p: f64| {
        let mut term = (1.0 - p).powi(n as i32);
        let mut sum = term;
        for i in 0..k {
            term *= (n - i) as f64 / (i + 1) as f64 * p / (1.0 - p);
            sum += term;
        }
        sum
    };
    let (mut low, mut high) = (k as f64 / n as f64, 1.0);
    for _ in 0..60 {
        let mid = (low + high) / 2.0;
        if tail(mid) > 0.05 {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

/// Runs `rounds` syncs with `seed` against the real tilt `real`, printing each round through
/// `each`. Returns the tally.
pub fn soak(real: &Path, rounds: usize, seed: u64, each: &mut dyn FnMut(&Round)) -> Tally {
    let mut random = Random::new(seed);
    let mut fx = Fixture::new(real);
    fx.npm = false;
    let repo = fx.repo("citadel");
    let mut tilt = Some(TiltUp::start(&fx.real, &repo, fx.root(), initial_builds_done));
    let mut tally = Tally::default();
    for number in 1..=rounds {
        let up = tilt.get_or_insert_with(|| TiltUp::start(&fx.real, &repo, fx.root(), initial_builds_done));
        let round = one_round(&fx, &repo, up, &mut random, number);
        tally.add(&round);
        each(&round);
        if let Event::KillTilt(_) = round.event {
            tilt = None;
        }
    }
    tally
}

const BUILD_MODES: [(u64, &str); 6] =
    [(76, "ok"), (8, "rust-error"), (4, "split-error"), (4, "error-150"), (6, "sync-error"), (2, "carriage-return")];
const SERVE_MODES: [(u64, &str); 5] =
    [(84, "ok"), (5, "crash"), (5, "crash-after-start"), (3, "exit-after-3s"), (3, "error-after-2.5s")];

fn one_round(fx: &Fixture, repo: &Path, tilt: &mut TiltUp, random: &mut Random, number: usize) -> Round {
    settle(tilt);
    // Whether every build of Tilt stands before the sync (a failed dependency holds builds).
    let stood = tilt.resources().is_ok_and(|list| {
        CITADEL_RESOURCES.iter().all(|name| {
            resource(&list, name).is_ok_and(|item| {
                let status = &item["status"];
                status["buildHistory"][0]["error"].is_null() && status["runtimeStatus"] != "error"
            })
        })
    });
    let mut modes = Vec::new();
    let mut fails = false;
    let mut either = !stood;
    let selected: Vec<usize> = match random.chance(70) {
        true => (0..CITADEL_RESOURCES.len()).collect(),
        false => vec![(random.next() % CITADEL_RESOURCES.len() as u64) as usize],
    };
    for (index, name) in CITADEL_RESOURCES.iter().enumerate() {
        let build = match *name {
            "ui" => "ok",
            "sync-wasm-client" => *random.pick(&BUILD_MODES),
            // The sync script's lines belong to the WASM client.
            _ => *random.pick(&BUILD_MODES[..4]),
        };
        let serve = if *name == "sync-wasm-client" { "ok" } else { *random.pick(&SERVE_MODES) };
        let delay = *random.pick(&[(60, "0"), (30, "1"), (10, "2")]);
        fx.set(&format!("{name}.mode"), build);
        fx.set(&format!("{name}.serve"), serve);
        fx.set(&format!("{name}.delay"), delay);
        if selected.contains(&index) {
            modes.push((format!("{name}.mode"), build.to_owned()));
            modes.push((format!("{name}.serve"), serve.to_owned()));
            fails |= build != "ok" || matches!(serve, "crash" | "crash-after-start");
            either |= matches!(serve, "exit-after-3s" | "error-after-2.5s");
        }
    }
    let resource_of = |random: &mut Random| (random.next() % CITADEL_RESOURCES.len() as u64) as usize;
    let event = match random.next() % 100 {
        0..=9 => Event::TriggerBefore(resource_of(random)),
        10..=19 => Event::TriggerDuring(resource_of(random), 200 + random.next() % 1800),
        20..=22 => {
            Event::Disable(selected[(random.next() % selected.len() as u64) as usize], 300 + random.next() % 1200)
        }
        23..=24 => Event::KillTilt(300 + random.next() % 1200),
        _ => Event::Nothing,
    };
    // Another build of a resource the sync is watching may make it stop as uncertain (safe);
    // Tilt killed or a resource disabled fails the run only if it came before the run ended.
    let interferes = matches!(event, Event::TriggerDuring(index, _) if selected.contains(&index));
    let truth = match event {
        Event::KillTilt(_) | Event::Disable(..) => Truth::Either,
        _ if fails => Truth::Fail,
        _ if either || interferes => Truth::Either,
        _ => Truth::Pass,
    };
    let mut args = vec!["--timeout".to_owned(), "60s".to_owned()];
    match selected.len() == CITADEL_RESOURCES.len() {
        true => args.push("--all".to_owned()),
        false => args.extend(["--step".to_owned(), CITADEL_RESOURCES[selected[0]].to_owned()]),
    }
    if let Event::TriggerBefore(index) = event {
        let _ = tilt.call(&["trigger", CITADEL_RESOURCES[index]]);
    }
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let sync = fx.spawn_sync(repo, tilt.port, &arg_refs, &[]);
    match event {
        Event::TriggerDuring(index, ms) => {
            thread::sleep(Duration::from_millis(ms));
            let _ = tilt.call(&["trigger", CITADEL_RESOURCES[index]]);
        }
        Event::Disable(index, ms) => {
            thread::sleep(Duration::from_millis(ms));
            let _ = tilt.call(&["disable", CITADEL_RESOURCES[index]]);
        }
        Event::KillTilt(ms) => {
            thread::sleep(Duration::from_millis(ms));
            tilt.signal("KILL");
        }
        Event::Nothing | Event::TriggerBefore(_) => {}
    }
    let run = sync.finish_within(SYNC_BOUND);
    if let Event::Disable(index, _) = event {
        let _ = tilt.call(&["enable", CITADEL_RESOURCES[index]]);
        settle(tilt);
    }
    let verdict = run.as_ref().map_or_else(
        || "killed: still running".to_owned(),
        |run| run.stdout.lines().take(2).collect::<Vec<_>>().join(" | ").chars().take(220).collect(),
    );
    Round {
        number,
        args,
        modes,
        event,
        truth,
        code: run.as_ref().and_then(|run| run.code),
        verdict,
        took: started.elapsed(),
    }
}

/// Waits (bounded) until Tilt builds nothing: the next round starts from a Tilt at rest.
fn settle(tilt: &TiltUp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let busy = tilt.resources().is_ok_and(|list: Value| {
            list["items"].as_array().is_some_and(|items| {
                items.iter().any(|item| {
                    item["status"]["currentBuild"]["startTime"].is_string() || item["status"]["queued"] == true
                })
            })
        });
        if !busy {
            return;
        }
        thread::sleep(Duration::from_millis(200));
    }
}
