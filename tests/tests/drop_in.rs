//! End-to-end: `cargo xtask install-into` on a replica of Citadel's real shape — its root
//! workspace (no `[workspace.package]`, an excluded submodule), the internal-service Dockerfile's
//! COPY lines, a tracked `.githooks/pre-push` with `core.hooksPath = .githooks`, its sync agent,
//! both submodules and an upstream — leaves Citadel's workspace, Docker build context and hooks
//! as they were, copies only what runs there, and rewires the agent on request. Then the same on
//! a clone of Citadel's real repository, when its bundle is at hand.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sync_tests::{
    status::{RunStatus, SyncStatus},
    *,
};

/// Citadel's root workspace, as ../shared/citadel-workspace.md describes it.
const ROOT_MANIFEST: &str = r#"[workspace]
resolver = "3"
members = [
    "citadel-workspace-server-kernel",
    "citadel-workspace-internal-service",
    "citadel-workspace-types",
    "citadel-workspace-executor",
    "citadel-workspace-server-kernel/tests/common",
]
exclude = ["./citadel-internal-service"]

[workspace.dependencies]
citadel-workspace-types = { path = "citadel-workspace-types" }
"#;

/// What `docker/internal-service/Dockerfile` copies into the image before `cargo build`: the
/// root manifest and the members (a member it does not copy would break the image's build).
const DOCKER_COPIES: [&str; 6] = [
    "Cargo.toml",
    "citadel-workspace-server-kernel",
    "citadel-workspace-internal-service",
    "citadel-workspace-types",
    "citadel-workspace-executor",
    "citadel-internal-service",
];

/// The head of Citadel's sync agent, as its repository has it, and CLAUDE.md's word for it.
const AGENT: &str = "---
name: sync-executor
description: PROACTIVELY synchronizes ALL backend changes from citadel-internal-service, citadel-workspace-server-kernel, citadel-workspace-types, citadel-workspace-client-ts, and others. USE IMMEDIATELY after ANY non-UI code changes and BEFORE any UI testing. MUST BE USED before UI testing. Rebuilds libraries and restarts services automatically.
model: sonnet
tools: Read, Bash(tilt trigger sync-wasm-client*), Bash(tilt logs sync-wasm-client*), Bash(tilt trigger server*), Bash(tilt logs server*)
---

# role

Deployment Synchronizer - I handle ALL synchronization needs after backend changes.
";
const CLAUDE_MD: &str =
    "**ALWAYS run the `sync-executor` agent after making ANY backend changes and BEFORE UI testing.**\n";

/// The files `install-into` leaves out: what needs this repository.
const LEFT_OUT: [&str; 5] =
    ["src/bench.rs", "src/demo.rs", "src/standin.rs", "src/install/into.rs", "src/install/rewire.rs"];

/// The only commands the rewired agent may run.
const AGENT_TOOLS: [&str; 2] = ["Bash(cargo xtask sync:*)", "Bash(cargo xtask status:*)"];

fn package(dir: &Path, name: &str, code: &str) {
    write(&dir.join("Cargo.toml"), &format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"));
    write(&dir.join("src/lib.rs"), code);
}

/// The Citadel workspace's Rust side on top of the Citadel-shaped fixture.
fn citadel_replica() -> Workspace {
    let ws = Workspace::citadel();
    let root = &ws.root;
    write(&root.join("Cargo.toml"), ROOT_MANIFEST);
    for member in ["citadel-workspace-server-kernel", "citadel-workspace-internal-service", "citadel-workspace-types"] {
        package(&root.join(member), member, "pub fn f() {}\n");
    }
    package(&root.join("citadel-workspace-executor"), "citadel-workspace-executor", "pub fn run() {}\n");
    package(&root.join("citadel-workspace-server-kernel/tests/common"), "common", "pub fn helper() {}\n");
    let copies: String = DOCKER_COPIES.iter().map(|path| format!("COPY ./{path} ./{path}\n")).collect();
    write(
        &root.join("docker/internal-service/Dockerfile"),
        &format!(
            "FROM rust:1.90\nWORKDIR /usr/src/app\n{copies}RUN cargo build --bin citadel-workspace-internal-service\n"
        ),
    );
    // The internal-service submodule is a cargo workspace of its own.
    let submodule = root.join("citadel-internal-service");
    write(&submodule.join("Cargo.toml"), "[workspace]\nmembers = [\"service\"]\nresolver = \"2\"\n");
    package(&submodule.join("service"), "citadel-internal-service", "pub fn serve() {}\n");
    ws.commit_all("citadel-internal-service", "its own workspace");
    write(
        &root.join(".githooks/pre-push"),
        "#!/bin/sh\n# check-submodule-pointers-pushed\necho citadel-hook-ran >&2\nexit 0\n",
    );
    make_executable(&root.join(".githooks/pre-push"));
    git(root, &["config", "core.hooksPath", ".githooks"]);
    write(&root.join(".claude/agents/sync.md"), AGENT);
    write(&root.join("CLAUDE.md"), CLAUDE_MD);
    ws.commit_all(".", "Citadel's Rust workspace, Dockerfile and hooks");
    ws.add_origin();
    ws
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).current_dir(dir).output().unwrap_or_else(|err| panic!("{program}: {err}"))
}

#[track_caller]
fn succeeded(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The workspace's members, as cargo lists them.
fn members(dir: &Path) -> Vec<String> {
    let metadata = succeeded(run_in(dir, "cargo", &["metadata", "--no-deps", "--format-version", "1", "--offline"]));
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    let mut names: Vec<String> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| package["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// `cargo xtask ARGS` in `dir`, as a developer types it there: the installed xtask, built where
/// its build outlives the test (in the tests' own target directory), one target directory per
/// test: two copies of the same crate in one would pass for each other (cargo hashes a path
/// package from its workspace's root, and a copy written before the other's build looks fresh).
fn cargo_xtask_command(dir: &Path, args: &[&str]) -> Command {
    let test = std::thread::current().name().unwrap_or("main").to_owned();
    let mut command = Command::new("cargo");
    command
        .arg("xtask")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir().join("drop-in-xtask").join(test))
        .env_remove("TILT_PORT");
    command
}

fn cargo_xtask(dir: &Path, args: &[&str]) -> Output {
    cargo_xtask_command(dir, args).output().expect("running cargo xtask")
}

/// A flat YAML front matter (as agent files have it): its `key: value` pairs.
fn front_matter(text: &str) -> Vec<(String, String)> {
    let inside = text.strip_prefix("---\n").and_then(|rest| rest.split_once("\n---\n")).expect("front matter").0;
    inside
        .lines()
        .map(|line| {
            let (key, value) = line.split_once(": ").unwrap_or_else(|| panic!("not `key: value`: {line}"));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// The rewired agent keeps the `name` and `description` CLAUDE.md and Claude Code find it by,
/// may run the sync and the status only, and does just that.
#[track_caller]
fn assert_rewired(root: &Path, original: &str) {
    let agent = fs::read_to_string(root.join(".claude/agents/sync.md")).unwrap();
    let (before, after) = (front_matter(original), front_matter(&agent));
    let value = |entries: &[(String, String)], key: &str| {
        entries.iter().find(|(k, _)| k == key).map(|(_, value)| value.clone()).unwrap_or_default()
    };
    let name = value(&after, "name");
    assert_eq!(name, value(&before, "name"));
    assert_eq!(value(&after, "description"), value(&before, "description"));
    assert!(fs::read_to_string(root.join("CLAUDE.md")).unwrap().contains(&format!("`{name}` agent")));
    let tools: Vec<String> = value(&after, "tools").split(", ").map(str::to_owned).collect();
    assert_eq!(tools, AGENT_TOOLS, "{agent}");
    let keys: Vec<&str> = after.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["name", "description", "model", "tools"]);
    assert!(agent.contains("`cargo xtask sync --json`") && !agent.contains("tilt trigger"), "{agent}");
    for field in ["`status`", "`failed_step`", "`cause`", "`location`", "`error_log`"] {
        assert!(agent.contains(field), "the agent reads {field}: {agent}");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != ".git" {
                copy_tree(&entry.path(), &to.join(entry.file_name()));
            }
        }
    } else {
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(from, to).unwrap();
    }
}

#[test]
fn install_into_leaves_citadels_workspace_docker_builds_and_hooks_as_they_were() {
    let ws = citadel_replica();
    let root = &ws.root;
    let members_before = members(root);
    docker_context_loads(&ws, "before");
    assert_eq!(ws.git_status(), "", "the replica starts clean");

    // The workspace's path has a space: the submodule's alias reaches the xtask through a link
    // in cargo's home, here one of the test's own.
    let cargo_home = ws.aside.join("cargo-home");
    let xtask = |args: &[&str]| Command::new(xtask_bin()).args(args).env("CARGO_HOME", &cargo_home).output().unwrap();
    let install = xtask(&["install-into", root.to_str().unwrap()]);
    let said = succeeded(install);
    assert!(said.contains("xtask/Cargo.toml") && said.contains(".cargo/config.toml"), "{said}");
    assert!(said.contains("cargo xtask install-hook"), "it says what to do next: {said}");
    assert!(
        said.contains(".claude/agents/sync.md is the sync agent") && said.contains(" --agent` rewires it"),
        "it says the agent exists and how to rewire it: {said}"
    );
    assert_eq!(fs::read_to_string(root.join(".claude/agents/sync.md")).unwrap(), AGENT, "not without --agent");
    let status: Vec<String> = ws.git_status().lines().map(str::to_owned).collect();
    assert_eq!(status, ["?? .cargo/config.toml".to_owned()].into_iter().chain(xtask_files(root)).collect::<Vec<_>>());
    assert_eq!(members(root), members_before, "Citadel's workspace members are unchanged");
    for file in LEFT_OUT {
        assert!(!root.join("xtask").join(file).exists(), "{file} stays in the xtask's repository");
    }
    let manifest = fs::read_to_string(root.join("xtask/Cargo.toml")).unwrap();
    assert!(manifest.contains("\ndefault = []\n"), "{manifest}");

    docker_context_loads(&ws, "after");

    // Installing again writes nothing.
    let again = succeeded(xtask(&["install-into", root.to_str().unwrap()]));
    assert!(again.contains("nothing written"), "{again}");

    // The copy has only what runs there: sync, status, the hook and agent commands, --version.
    let help = succeeded(cargo_xtask(root, &["--help"]));
    for command in ["sync", "status", "install-hook", "uninstall-hook", "uninstall-agent"] {
        assert!(help.contains(&format!("  {command} ")), "{command}: {help}");
    }
    for command in ["demo", "bench", "install-into"] {
        assert!(!help.contains(&format!("  {command} ")), "{command}: {help}");
    }
    assert!(succeeded(cargo_xtask(root, &["--version"])).starts_with("cargo xtask "));

    // `cargo xtask` from the root and from inside a submodule; the xtask's own files need no rebuild.
    let plan = succeeded(cargo_xtask(root, &["sync", "--plan", "--json"]));
    let plan: serde_json::Value = serde_json::from_str(&plan).unwrap();
    assert!(plan["steps"].as_array().unwrap().iter().all(|step| step["run"] == false), "{plan}");
    assert!(plan["changed"].as_array().unwrap().iter().any(|path| path == "xtask/src/main.rs"), "{plan}");
    succeeded(xtask(&["install-hook", "--root", root.to_str().unwrap()]));
    let inside = root.join("citadel-internal-service/service/src");
    let from_submodule = succeeded(cargo_xtask(&inside, &["sync", "--plan"]));
    assert!(from_submodule.starts_with("Plan:"), "{from_submodule}");
    assert_eq!(
        ws.git_status().lines().count(),
        status.len(),
        "install-hook changes nothing git shows: {}",
        ws.git_status()
    );
    let submodule_status = git(&root.join("citadel-internal-service"), &["status", "--porcelain"]);
    assert_eq!(submodule_status, "", "the submodule's per-clone alias is ignored there");

    // A push runs Citadel's hook and ours.
    git(root, &["add", "--all"]);
    git(root, &["commit", "--quiet", "-m", "Add cargo xtask sync"]);
    ws.tilt(&all_succeed(100));
    let mut git_push = Command::new("git");
    git_push.args(["push", "origin", "main"]).current_dir(root).env("SYNC_XTASK", xtask_bin());
    let push = ws.standin_env(&mut git_push).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&push.stdout), String::from_utf8_lossy(&push.stderr));
    assert!(push.status.success(), "{said}");
    assert!(said.contains("citadel-hook-ran"), "Citadel's hook ran: {said}");
    assert!(said.contains("SUCCESS: Nothing to rebuild"), "ours ran, and found nothing to rebuild: {said}");

    succeeded(xtask(&["uninstall-hook", "--root", root.to_str().unwrap()]));
    assert_eq!(git(root, &["config", "--local", "--get", "core.hooksPath"]).trim(), ".githooks");

    // The agent, rewired and put back, byte for byte; the fields it reads are the report's.
    let said = succeeded(xtask(&["install-into", root.to_str().unwrap(), "--agent"]));
    assert!(said.contains("rewired .claude/agents/sync.md") && said.contains(".git/xtask-agent/sync.md"), "{said}");
    assert_rewired(root, AGENT);
    assert_eq!(ws.git_status(), " M .claude/agents/sync.md\n", "the previous agent is kept outside the work tree");
    let again = succeeded(xtask(&["install-into", root.to_str().unwrap(), "--agent"]));
    assert!(again.contains("nothing written") && !again.contains("rewired"), "{again}");
    let report = Command::new(xtask_bin())
        .args(["sync", "--all", "--json", "--root", root.to_str().unwrap()])
        .env("SYNC_TILT", tilt_bin())
        .env("TILT_STANDIN_SCENARIO", ws.scenario_path())
        .env("TILT_STANDIN_STATE", ws.state_dir())
        .env_remove("TILT_PORT")
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    for field in ["status", "message", "failed_step", "error_log", "steps"] {
        assert!(report.get(field).is_some(), "{field}: {report}");
    }
    for field in ["name", "outcome", "cause", "location"] {
        assert!(report["steps"][0].get(field).is_some(), "{field}: {report}");
    }
    let restored = succeeded(cargo_xtask(root, &["uninstall-agent"]));
    assert!(restored.contains("byte for byte"), "{restored}");
    assert_eq!(fs::read_to_string(root.join(".claude/agents/sync.md")).unwrap(), AGENT);
    assert_eq!(ws.git_status(), "");
    assert!(!root.join(".git/xtask-agent").exists());
}

/// Citadel's real repository, as a git bundle: `SYNC_CITADEL_BUNDLE`, else where this machine
/// keeps it beside the repository (`../shared/citadel`).
fn citadel_bundle() -> Result<PathBuf, String> {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/citadel/citadel-workspace.bundle");
    let candidates: Vec<PathBuf> = std::env::var_os("SYNC_CITADEL_BUNDLE")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/work/shared/citadel/citadel-workspace.bundle"), beside])
        .collect();
    candidates.iter().find(|path| path.is_file()).cloned().ok_or_else(|| {
        let tried: Vec<String> = candidates.iter().map(|path| path.display().to_string()).collect();
        format!("no bundle of Citadel's repository at {} (SYNC_CITADEL_BUNDLE names one)", tried.join(" or "))
    })
}

#[test]
fn the_real_citadel_takes_the_drop_in_rewires_its_agent_and_every_json_goes_into_head() {
    let bundle = match citadel_bundle() {
        Ok(bundle) => bundle,
        Err(why) => return println!("skipped: {why}"),
    };
    let temp = tempfile::tempdir().unwrap();
    let root = temp.path().join("citadel workspace");
    let clone = run_in(temp.path(), "git", &["clone", "--quiet", bundle.to_str().unwrap(), root.to_str().unwrap()]);
    succeeded(clone);
    let root = root.canonicalize().unwrap();
    let agent = root.join(".claude/agents/sync.md");
    let original = fs::read(&agent).expect("Citadel has its sync agent");
    let cargo_home = temp.path().join("cargo-home");
    let xtask = |args: &[&str]| Command::new(xtask_bin()).args(args).env("CARGO_HOME", &cargo_home).output().unwrap();

    let said = succeeded(xtask(&["install-into", root.to_str().unwrap()]));
    assert!(said.contains(" --agent` rewires it"), "it says the agent exists and how to rewire it: {said}");
    assert_eq!(fs::read(&agent).unwrap(), original);
    let said = succeeded(xtask(&["install-into", root.to_str().unwrap(), "--agent"]));
    assert!(said.contains("rewired .claude/agents/sync.md"), "{said}");
    assert_rewired(&root, &String::from_utf8(original.clone()).unwrap());
    let status = git(&root, &["status", "--porcelain"]);
    assert_eq!(status, " M .claude/agents/sync.md\n?? .cargo/\n?? xtask/\n");

    // Every `--json` output into `head`, as typed there (through cargo); Tilt is the stand-in.
    let scenario = temp.path().join("scenario.toml");
    fs::write(&scenario, toml::to_string(&all_succeed(100)).unwrap()).unwrap();
    let with_tilt = |args: &[&str]| {
        let mut command = cargo_xtask_command(&root, args);
        command
            .env("SYNC_TILT", tilt_bin())
            .env("TILT_STANDIN_SCENARIO", &scenario)
            .env("TILT_STANDIN_STATE", temp.path().join("tilt-state"));
        command
    };
    succeeded(with_tilt(&["--version"]).output().unwrap()); // built once, before the pipes
    let plan = into_head(with_tilt(&["sync", "--plan", "--json"]), 2);
    plan.assert_quiet(&[0]);
    assert!(plan.head.starts_with("{\n  \"base\""), "{plan:?}");
    let synced = into_head(with_tilt(&["sync", "--json"]), 1);
    synced.assert_quiet(&[0]);
    assert_eq!(synced.head, "{\n", "{synced:?}");
    let report = succeeded(with_tilt(&["sync", "--json"]).output().unwrap());
    let report: SyncStatus = serde_json::from_str(&report).unwrap();
    assert_eq!(report.status, RunStatus::Success, "only the xtask's own files changed: {report:?}");
    for args in [&["status", "--json"][..], &["sync", "--plan", "--json"], &["sync", "--json"]] {
        into_head(with_tilt(args), 1).assert_quiet(&[0, 1, 2]);
        into_gone_head(with_tilt(args)).assert_quiet(&[]);
    }

    let restored = succeeded(cargo_xtask(&root, &["uninstall-agent"]));
    assert!(restored.contains("byte for byte"), "{restored}");
    assert_eq!(fs::read(&agent).unwrap(), original);
    assert_eq!(git(&root, &["status", "--porcelain"]), "?? .cargo/\n?? xtask/\n");
}

/// The internal-service image's build context, only what its Dockerfile copies, loads in cargo.
fn docker_context_loads(ws: &Workspace, when: &str) {
    let context = ws.aside.join(format!("docker-context-{when}"));
    for path in DOCKER_COPIES {
        copy_tree(&ws.root.join(path), &context.join(path));
    }
    succeeded(run_in(&context, "cargo", &["metadata", "--no-deps", "--format-version", "1", "--offline"]));
}

/// `git status` lines of the xtask's files, as installed (untracked, sorted as git lists them).
fn xtask_files(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    collect(&root.join("xtask"), root, &mut files);
    files.sort();
    files.into_iter().map(|file| format!("?? {file}")).collect()
}

fn collect(dir: &Path, root: &Path, files: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path: PathBuf = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name == "target") {
            continue;
        }
        if path.is_dir() {
            collect(&path, root, files);
        } else {
            files.push(path.strip_prefix(root).unwrap().to_str().unwrap().to_owned());
        }
    }
}
