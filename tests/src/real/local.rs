//! The real-Tilt suites' Citadel of local resources: a git repository whose Tiltfile runs
//! Citadel's four resources as `local_resource`s, their update and serve commands scripts that a
//! control file each steers (`<resource>.mode`, `.delay`, `.serve`), and the real tilt behind a
//! wrapper that records every call. tests/tests/real_tilt.rs and the soak use it.

use std::{
    fs,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::{
    git, make_executable, path_with,
    real::{alive, process_group, signal, spawn_sync, start_time, RunningSync},
    write,
};

/// The update command of a local resource: `$CTL/<resource>.mode` says what it prints,
/// `$CTL/<resource>.delay` how long it takes; each run appends its mode to `<resource>.runs`.
const BUILD_SH: &str = r#"#!/bin/sh
r="$1"
ctl='@CTL@'
echo "$$ $(cut -d' ' -f22 /proc/$$/stat)" >> "$ctl/pids"
mode=$(cat "$ctl/$r.mode" 2>/dev/null || echo ok)
delay=$(cat "$ctl/$r.delay" 2>/dev/null || echo 0)
echo "$mode" >> "$ctl/$r.runs"
echo "   Compiling $r v0.1.0 (/usr/src/app/$r)"
echo "   Compiling thiserror v1.0.69"
[ "$delay" = 0 ] || sleep "$delay"
if [ "$r" = sync-wasm-client ] && [ -e "$ctl/ts2688" ]; then
  echo "error TS2688: Cannot find type definition file for 'node'."
  echo "  The file is in the program because:"
  exit 1
fi
case "$mode" in
  rust-error)
    echo 'error[E0425]: cannot find value `x` in this scope'
    echo '  --> src/main.rs:40:10'
    echo "error: could not compile \`$r\` (bin \"$r\") due to 1 previous error"
    exit 101 ;;
  sync-error)
    echo '[ERROR] ❌ WASM files are NOT synchronized!' ;;
  split-error)
    # Flushed mid-line: Tilt's follow stream sends the line as two records.
    printf 'err'
    sleep 0.5
    echo "or: could not compile \`$r\` (bin \"$r\") due to 1 previous error" ;;
  error-150)
    echo "error: could not compile \`$r\` (lib) due to 1 previous error"
    i=0
    while [ $i -lt 150 ]; do echo "[INFO] copying pkg/file-$i.js"; i=$((i + 1)); done ;;
  error-then-5mb)
    # Past Tilt's 2 MB of log: it cuts this resource's oldest lines, the error among them.
    echo '[ERROR] ❌ WASM files are NOT synchronized!'
    awk 'BEGIN { for (i = 0; i < 20000; i++) printf "[INFO] copying pkg/file-%05d.js %0200d\n", i, 0 }' ;;
  carriage-return)
    printf '[WARNING] x\r[ERROR] ❌ WASM files are NOT synchronized!\n' ;;
esac
echo '    Finished `dev` profile [unoptimized + debuginfo] target(s) in 0.42s'
if [ "$r" = sync-wasm-client ]; then
  echo 'found 0 vulnerabilities, 0 errors'
  echo '[INFO] WASM client synchronization complete!'
fi
"#;

/// The serve command of a local resource: `$CTL/<resource>.serve` says how it behaves.
const SERVE_SH: &str = r#"#!/bin/sh
r="$1"
ctl='@CTL@'
echo "$$ $(cut -d' ' -f22 /proc/$$/stat)" >> "$ctl/pids"
mode=$(cat "$ctl/$r.serve" 2>/dev/null || echo ok)
case "$r" in
  server) line='     Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`' ;;
  internal-service) line="     Running \`target/debug/citadel-workspace-internal-service --bind '0.0.0.0:12345'\`" ;;
  *) echo '> vite'; line='  VITE v5.4.2  ready in 412 ms' ;;
esac
case "$mode" in
  crash)
    echo "$line"
    echo "thread 'main' panicked at src/main.rs:40:10:"
    echo 'called `Result::unwrap()` on an `Err` value: Os { code: 98, kind: AddrInUse }'
    exit 101 ;;
  crash-after-start)
    echo "$line"
    sleep 0.7
    echo "thread 'main' panicked at src/main.rs:40:10:"
    echo 'called `Result::unwrap()` on an `Err` value: ConnectionReset'
    exit 101 ;;
  exit-after-3s)
    echo "$line"
    sleep 3
    exit 1 ;;
  error-after-2.5s)
    echo "$line"
    sleep 2.5
    echo 'Error: the peer went away'
    exec sleep 100000 ;;
esac
echo "$line"
exec sleep 100000
"#;

pub struct Fixture {
    temp: Option<TempDir>,
    pub real: PathBuf,
    ctl: PathBuf,
    pub bin: PathBuf,
    /// Put first on PATH when `npm` is wanted.
    npm_dir: PathBuf,
    pub npm: bool,
    calls: PathBuf,
}

impl Fixture {
    pub fn new(real: &Path) -> Fixture {
        let temp = tempfile::Builder::new().prefix("real-tilt-").tempdir().expect("making a temp dir");
        let root = temp.path().to_path_buf();
        let (ctl, bin, npm_dir, calls) =
            (root.join("ctl"), root.join("bin"), root.join("npm-bin"), root.join("tilt.calls"));
        for dir in [&ctl, &bin, &npm_dir] {
            fs::create_dir_all(dir).expect("making a directory");
        }
        let ctl_text = ctl.to_str().expect("a UTF-8 temp path");
        for (name, text) in [("build.sh", BUILD_SH), ("serve.sh", SERVE_SH)] {
            write(&bin.join(name), &text.replace("@CTL@", ctl_text));
            make_executable(&bin.join(name));
        }
        // Records every call, then is the real tilt.
        let wrapper = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{calls}'\nexec '{real}' \"$@\"\n",
            calls = calls.display(),
            real = real.display()
        );
        write(&bin.join("tilt"), &wrapper);
        make_executable(&bin.join("tilt"));
        let npm = format!(
            "#!/bin/sh\necho \"$PWD|$*\" >> '{}'\nrm -f '{}'\necho 'added 1 package, and audited 2 packages in 1s'\n",
            root.join("npm.calls").display(),
            ctl.join("ts2688").display()
        );
        write(&npm_dir.join("npm"), &npm);
        make_executable(&npm_dir.join("npm"));
        Fixture { temp: Some(temp), real: real.to_owned(), ctl, bin, npm_dir, npm: false, calls }
    }

    pub fn root(&self) -> &Path {
        self.temp.as_ref().expect("the fixture's directory").path()
    }

    /// A git repository laid out like Citadel (for the built-in protocol), committed.
    pub fn repo(&self, name: &str) -> PathBuf {
        let repo = self.root().join(name);
        let script = |name: &str| format!("'{}'", self.bin.join(name).display());
        let (build, serve) = (script("build.sh"), script("serve.sh"));
        let manual = "trigger_mode=TRIGGER_MODE_MANUAL";
        let tiltfile = [
            "# Citadel's services as local resources, for the real-Tilt tests of `xtask sync`.".to_owned(),
            format!("local_resource('sync-wasm-client', cmd=\"{build} sync-wasm-client\", {manual})"),
            format!("local_resource('server', cmd=\"{build} server\", serve_cmd=\"{serve} server\","),
            format!("    {manual}, resource_deps=['sync-wasm-client'])"),
            format!("local_resource('internal-service', cmd=\"{build} internal-service\","),
            format!("    serve_cmd=\"{serve} internal-service\", {manual}, resource_deps=['sync-wasm-client'])"),
            format!("local_resource('ui', serve_cmd=\"{serve} ui\","),
            "    resource_deps=['sync-wasm-client', 'server', 'internal-service'])\n".to_owned(),
        ]
        .join("\n");
        let files = [
            ("Tiltfile", tiltfile.as_str()),
            (".gitignore", ".worktrees/\ntarget/\n"),
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"citadel-workspace-server-kernel\", \"citadel-workspace-types\"]\n",
            ),
            ("README.md", "# citadel-workspace\n"),
            ("citadel-workspace-server-kernel/Cargo.toml", "[package]\nname = \"citadel-workspace-server-kernel\"\n"),
            ("citadel-workspace-server-kernel/src/main.rs", "fn main() {\n    println!(\"{x}\");\n}\n"),
            ("citadel-workspace-types/Cargo.toml", "[package]\nname = \"citadel-workspace-types\"\n"),
            ("citadel-workspace-types/src/lib.rs", "pub struct Workspace;\n"),
            ("citadel-workspace-internal-service/src/main.rs", "fn main() {}\n"),
            (
                "citadel-internal-service/typescript-client/package.json",
                "{\"name\": \"citadel-ts\", \"scripts\": {\"build\": \"tsc\"}}\n",
            ),
            ("citadel-internal-service/citadel-internal-service-wasm-client/src/lib.rs", "\n"),
            (
                "citadel-workspaces/package.json",
                "{\"name\": \"citadel-workspaces\", \"scripts\": {\"dev\": \"vite\"}}\n",
            ),
        ];
        for (path, text) in files {
            write(&repo.join(path), text);
        }
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        git(&repo, &["config", "user.email", "dev@example.com"]);
        git(&repo, &["config", "user.name", "Dev"]);
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "--quiet", "-m", "initial"]);
        repo.canonicalize().expect("a canonical path")
    }

    /// Writes a control file.
    pub fn set(&self, name: &str, text: &str) {
        write(&self.ctl.join(name), text);
    }

    /// The modes `<resource>`'s update command ran with, in order.
    pub fn runs(&self, resource: &str) -> Vec<String> {
        fs::read_to_string(self.ctl.join(format!("{resource}.runs")))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Waits until `resource`'s update command has started `count` times in all.
    #[track_caller]
    pub fn wait_runs(&self, resource: &str, count: usize, bound: Duration) {
        let deadline = Instant::now() + bound;
        while self.runs(resource).len() < count {
            assert!(
                Instant::now() < deadline,
                "{resource}'s update command did not start (run {count}) within {bound:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every call made through the tilt wrapper, as its arguments.
    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(&self.calls).map(|text| text.lines().map(str::to_owned).collect()).unwrap_or_default()
    }

    /// The resources triggered through the wrapper since the `mark`-th call.
    pub fn triggers_since(&self, mark: usize) -> Vec<String> {
        self.calls()
            .iter()
            .skip(mark)
            .filter_map(|call| {
                let mut words = call.split_whitespace();
                (words.next() == Some("trigger")).then(|| words.next().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// The built-in protocol with each `(from, to)` replaced once, written aside: its path.
    pub fn protocol(&self, replacements: &[(&str, &str)]) -> String {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../xtask/sync.toml");
        let mut protocol = fs::read_to_string(path).expect("reading xtask/sync.toml");
        for (from, to) in replacements {
            assert!(protocol.contains(from), "xtask/sync.toml has no `{from}`");
            protocol = protocol.replacen(from, to, 1);
        }
        let edited = self.root().join("protocol.toml");
        write(&edited, &protocol);
        edited.to_str().expect("a UTF-8 path").to_owned()
    }

    /// Starts `xtask sync --root ROOT ARGS` against the Tilt on `port`, through the wrapper
    /// (with the fake `npm` first on PATH when wanted).
    pub fn spawn_sync(&self, root: &Path, port: u16, args: &[&str], env: &[(&str, &str)]) -> RunningSync {
        let path = path_with(&self.npm_dir);
        let mut env = env.to_vec();
        if self.npm {
            env.push(("PATH", &path));
        }
        spawn_sync(&self.bin.join("tilt"), self.root(), root, port, args, &env)
    }
}

impl Drop for Fixture {
    /// Kills whatever the scripts started that is still running (Tilt is gone by now), and keeps
    /// the directory of a failed scenario for a look.
    fn drop(&mut self) {
        let pids = fs::read_to_string(self.ctl.join("pids")).unwrap_or_default();
        let own = process_group(std::process::id()).unwrap_or(0);
        for line in pids.lines() {
            let mut fields = line.split_whitespace().filter_map(|field| field.parse::<u64>().ok());
            let (Some(pid), Some(started)) = (fields.next(), fields.next()) else { continue };
            let Ok(pid) = u32::try_from(pid) else { continue };
            // The same process (not another that got its number since), still running.
            if !alive(pid) || start_time(pid) != Some(started) {
                continue;
            }
            eprintln!("real tilt: process {pid} (a build or serve script) outlived its Tilt: killed");
            match process_group(pid).filter(|group| *group == pid && *group != own) {
                Some(group) => signal(&format!("-{group}"), "KILL"),
                None => signal(&pid.to_string(), "KILL"),
            }
        }
        if thread::panicking() {
            if let Some(temp) = self.temp.take() {
                eprintln!("real tilt: the failed scenario's files are kept in {}", temp.keep().display());
            }
        }
    }
}
