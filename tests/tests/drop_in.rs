//! End-to-end: `cargo xtask install-into` on a replica of Citadel's real shape — its root
//! workspace (no `[workspace.package]`, an excluded submodule), the internal-service Dockerfile's
//! COPY lines, a tracked `.githooks/pre-push` with `core.hooksPath = .githooks`, both submodules
//! and an upstream — leaves Citadel's workspace, Docker build context and hooks as they were.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use sync_tests::*;

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

/// `cargo xtask ARGS` in `dir`, the installed xtask built where its build outlives the test.
fn cargo_xtask(dir: &Path, args: &[&str]) -> Output {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/drop-in-xtask");
    Command::new("cargo")
        .arg("xtask")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("running cargo xtask")
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
    let status: Vec<String> = ws.git_status().lines().map(str::to_owned).collect();
    assert_eq!(status, ["?? .cargo/config.toml".to_owned()].into_iter().chain(xtask_files(root)).collect::<Vec<_>>());
    assert_eq!(members(root), members_before, "Citadel's workspace members are unchanged");

    docker_context_loads(&ws, "after");

    // Installing again writes nothing.
    let again = succeeded(xtask(&["install-into", root.to_str().unwrap()]));
    assert!(again.contains("nothing written"), "{again}");

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
