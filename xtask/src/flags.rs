//! The whole command line in one place: every subcommand and flag, with its help text.

use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand};

use crate::protocol::duration::Duration;

/// Which Tilt to talk to, for `sync` and `status`.
#[derive(Debug, Args)]
pub struct TiltArgs {
    /// The Tilt executable
    #[arg(long = "tilt", value_name = "PROGRAM", env = "SYNC_TILT", default_value = "tilt")]
    pub program: Utf8PathBuf,

    /// Port of the Tilt instance to talk to (passed to every Tilt call)
    #[arg(long = "tilt-port", value_name = "PORT", env = "TILT_PORT")]
    pub port: Option<u16>,
}

const SYNC_EXAMPLES: &str = "Examples:
  cargo xtask sync                   rebuild what your change needs, in order
  cargo xtask sync --plan            which steps would run, and why (asks Tilt nothing)
  cargo xtask sync --step server     rebuild the server (and only it), whatever changed
  cargo xtask sync --all --json      every step; one JSON object on stdout
  cargo xtask sync -q                the verdict line only (hooks, recipes)
  cargo xtask sync --timeout 1m30s   a step may take 90 s at most
  TILT_PORT=10351 cargo xtask sync   the Tilt serving another port";

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about = "Automation for the Citadel workspace")]
pub struct Xtask {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Sync(Sync),
    Status(Status),
    InstallHook(InstallHook),
    UninstallHook(UninstallHook),
    UninstallAgent(UninstallAgent),
    // Only in this repository (Cargo.toml, `repo-only`): the copy in Citadel has no such files.
    #[cfg(feature = "repo-only")]
    Demo(Demo),
    #[cfg(feature = "repo-only")]
    Bench(Bench),
    #[cfg(feature = "repo-only")]
    InstallInto(InstallInto),
}

/// Does the last sync still stand? Shows the last sync (when, result, each step's outcome and
/// time), what changed since, and each resource's state in Tilt now, without building anything.
///
/// Exit status: 0 the last sync still stands, 1 it does not (a step needs running again: it
/// names it), 2 it cannot tell (no sync recorded, Tilt not running, not a git repository).
#[derive(Debug, Args)]
pub struct Status {
    /// The workspace [default: the workspace holding the xtask crate]
    #[arg(long, value_name = "DIR")]
    pub root: Option<Utf8PathBuf>,
    /// Protocol file replacing the built-in `xtask/sync.toml`
    #[arg(long, value_name = "FILE")]
    pub config: Option<Utf8PathBuf>,
    #[command(flatten)]
    pub tilt: TiltArgs,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

/// Put this xtask into a Citadel work tree: `xtask/` (a Cargo workspace of its own, so Citadel's
/// workspace, cargo commands and Docker builds do not change; only what runs there: sync,
/// status, the hooks) and the `cargo xtask` alias merged into its `.cargo/config.toml`. Run from
/// the xtask's own repository; idempotent.
#[cfg(feature = "repo-only")]
#[derive(Debug, Args)]
pub struct InstallInto {
    /// The root of the Citadel work tree
    #[arg(value_name = "DIR")]
    pub dir: Utf8PathBuf,
    /// Also rewire Citadel's sync agent (`.claude/agents/sync.md`, which CLAUDE.md tells every
    /// coding agent to run) to run `cargo xtask sync` and report its verdict; the previous file
    /// is kept under `.git/` and `cargo xtask uninstall-agent` puts it back
    #[arg(long)]
    pub agent: bool,
}

/// Put back the sync agent (`.claude/agents/sync.md`) that `install-into --agent` replaced,
/// byte for byte, from the copy it kept under the git directory.
#[derive(Debug, Args)]
pub struct UninstallAgent {
    /// The root of the work tree [default: the workspace holding the xtask crate]
    #[arg(value_name = "DIR")]
    pub dir: Option<Utf8PathBuf>,
}

/// Where cargo builds the Tilt stand-in that `demo` and `bench` run.
#[cfg(feature = "repo-only")]
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Cargo's target directory [default: cargo's own choice: CARGO_TARGET_DIR, build.target-dir,
    /// else target/]
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<Utf8PathBuf>,
}

/// Print what a sync costs: the classifier's throughput and peak memory on a large synthetic
/// log; a four-step sync of Citadel-shaped local resources on the Tilt stand-in, each CLI call
/// costing what the real one does, with our defaults and as the seed protocol (wall time,
/// per-step overhead, CPU, Tilt calls); with --real-tilt, the same on the real Tilt, and when
/// each verdict comes after the build's end as Tilt records it.
#[cfg(feature = "repo-only")]
#[derive(Debug, Args)]
pub struct Bench {
    /// How long each of the four builds takes
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub build_ms: u64,
    /// Size of the synthetic log pushed through the classifier, in MiB
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub log_mb: usize,
    /// Also run the sync on this real Tilt binary (e.g. from ../shared/tilt/install.sh)
    #[arg(long, value_name = "PATH")]
    pub real_tilt: Option<Utf8PathBuf>,
    /// Syncs on the real Tilt (each of four builds)
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub runs: u32,
    /// Part 1 alone: the log through the run machine
    #[arg(long)]
    pub machine_only: bool,
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Install a git pre-push hook that runs `cargo xtask sync` on what a push changes.
///
/// The hook lives in a folder inside `.git` (no tracked file, no file of the work tree changes)
/// and `core.hooksPath` is set, locally, to it; every hook there forwards to the hooks in effect
/// before (Citadel's `.githooks`), with the same arguments and input, so they keep running: the
/// previous pre-push hook runs first and its failure stops the push. The push is blocked only
/// when a needed step fails; when Tilt is not running the hook warns and lets the push go,
/// unless installed with --strict. `git push --no-verify` skips it. Running it again updates it.
#[derive(Debug, Args)]
pub struct InstallHook {
    /// The repository [default: the workspace holding the xtask crate]
    #[arg(long, value_name = "DIR")]
    pub root: Option<Utf8PathBuf>,
    /// Block the push also when the sync cannot run (Tilt not running, bad configuration)
    #[arg(long)]
    pub strict: bool,
}

/// Remove the hooks `install-hook` wrote and restore `core.hooksPath` exactly as it was.
#[derive(Debug, Args)]
pub struct UninstallHook {
    /// The repository [default: the workspace holding the xtask crate]
    #[arg(long, value_name = "DIR")]
    pub root: Option<Utf8PathBuf>,
}

/// Run a real sync in a throwaway Citadel-shaped git workspace against the bundled Tilt
/// stand-in: once where every build passes, once where the server fails to compile.
#[cfg(feature = "repo-only")]
#[derive(Debug, Args)]
pub struct Demo {
    #[command(flatten)]
    pub build: BuildArgs,
}

/// Rebuild the services a backend change touched, through Tilt, in protocol order, and say in
/// one line whether the UI can be tested now.
///
/// Without --all or --step, the steps are those the changes need: for each step, what changed
/// since its last good sync (else since the upstream's merge-base), submodules included, that its
/// build reads (its Dockerfile, what the image copies or the container mounts, the crates its
/// cargo build compiles) or a path rule adds, and Tilt's word that the build that passed still
/// stands; `--plan` shows which steps would run and why, from each changed path to the build.
///
/// Each step triggers its Tilt resource, follows that build's log (and only that build's),
/// stops at the first error (after at most one remediation per error kind) and succeeds only on
/// the step's success line (or a healthy container), once Tilt records the build finished. The
/// steps, patterns, remediations, how inputs are derived and path rules are in `xtask/sync.toml`.
///
/// Exit status: 0 success, 1 a step failed or timed out, 2 usage, configuration or environment
/// problem (Tilt missing or not running, unknown resource, bad protocol file), 130 interrupted.
/// Logs are saved under `<root>/logs`: `sync-status.json` after every run, `sync-error-<UTC
/// time>.log` for a failure, `<step>.log` for each step's latest build.
#[derive(Debug, Args)]
#[command(after_long_help = SYNC_EXAMPLES)]
pub struct Sync {
    /// The workspace being synced (logs go to <ROOT>/logs) [default: the workspace holding the
    /// xtask crate]
    #[arg(long, value_name = "DIR")]
    pub root: Option<Utf8PathBuf>,

    /// Protocol file replacing the built-in `xtask/sync.toml`
    #[arg(long, value_name = "FILE")]
    pub config: Option<Utf8PathBuf>,

    #[command(flatten)]
    pub tilt: TiltArgs,

    /// Run every step of the protocol, whatever changed
    #[arg(long, conflicts_with = "step")]
    pub all: bool,

    /// Run this step (repeatable), whatever changed; steps always run in protocol order
    #[arg(long, value_name = "NAME")]
    pub step: Vec<String>,

    /// Print which steps would run and why, then exit (no Tilt call)
    #[arg(long)]
    pub plan: bool,

    /// Count changes from this revision [default: the last successful sync, else the merge-base
    /// with the branch's upstream, else HEAD]
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,

    /// Run as git's pre-push hook: plan against the refs git sends on standard input; when Tilt
    /// is unavailable, warn and let the push go
    #[arg(long, hide = true)]
    pub pre_push: bool,

    /// With --pre-push: block the push when the sync cannot run at all (e.g. Tilt not running)
    #[arg(long, hide = true)]
    pub strict: bool,

    /// Override every step's timeout (e.g. 90s, 5m)
    #[arg(long, value_name = "DUR", value_parser = Duration::timeout)]
    pub timeout: Option<Duration>,

    /// How often to look at the log when it cannot be streamed (Tilt older than 0.36.1)
    #[arg(long, value_name = "DUR", value_parser = Duration::poll_interval)]
    pub poll: Option<Duration>,

    /// A fixed wait after each trigger before the log is looked at (the seed protocol: 5s)
    #[arg(long, value_name = "DUR")]
    pub settle: Option<Duration>,

    /// Poll `tilt logs` every --poll instead of following the log as Tilt writes it (the seed
    /// protocol's way: `--no-stream --poll 10s --settle 5s`)
    #[arg(long)]
    pub no_stream: bool,

    /// Print one JSON object instead of the text report (also when the sync cannot start)
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,

    /// Print the verdict line only (for hooks and recipes); the log is still saved
    #[arg(short, long)]
    pub quiet: bool,

    /// Stream each build's log to stderr and say how the log is followed
    #[arg(short, long)]
    pub verbose: bool,
}
