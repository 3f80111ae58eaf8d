//! The Tilt stand-in against the real Tilt and Compose: each case captured in
//! `../shared/docker/captures/` (what Tilt v0.37.6 and Compose v2 printed after one trigger) is
//! played by a stand-in scenario of the same shape, and what the stand-in prints is compared
//! with the capture on what matters: the sequence of spans, sources and line shapes (not
//! timestamps, ids or durations), the objects' field names and the kinds of their values, and
//! the states the status goes through (the capture's polls must be a subsequence of the
//! stand-in's). Without the captures the test says it is skipped, and why.
//!
//! After a real `tilt trigger`, the test looks at any moment through `Workspace::tilt_cli_at`
//! (which moves the stand-in's time origin), so its samples do not depend on the machine's load.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;
use sync_tests::{
    scenario::{buildkit_error, BuildSpec, Resource, Scenario, Update},
    Run, Workspace, WASM_DONE,
};

/// Where the captures are: the shared folder of this machine, or beside the repository.
fn captures() -> Result<PathBuf, String> {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/docker/captures");
    [PathBuf::from("/work/shared/docker/captures"), beside]
        .into_iter()
        .find(|dir| dir.join("A-healthy-force.logs.jsonl").is_file())
        .ok_or_else(|| "no captures in /work/shared/docker/captures or ../shared/docker/captures".to_owned())
}

/// One captured case and the stand-in scenario of its shape.
struct Case {
    name: &'static str,
    resource: &'static str,
    scenario: Scenario,
    /// How long after the trigger the case is over.
    length_ms: i64,
}

const SERVER_UP: [&str; 2] = [
    "2026-11-30T22:44:13Z  INFO citadel-workspace-server-kernel: starting, mode=ok",
    "INFO citadel-workspace-server-kernel: listening on 0.0.0.0:12349",
];
const COMPILED: [&str; 3] = [
    "   Compiling citadel-workspace-types v0.1.0 (/usr/src/app/citadel-workspace-types)",
    "   Compiling citadel-workspace-server-kernel v0.1.0 (/usr/src/app/citadel-workspace-server-kernel)",
    "    Finished `release` profile [optimized] target(s) in 1.02s",
];

/// A server that came up healthy at `tilt up` (the capture's initial state).
fn server() -> Resource {
    Resource::compose("server").history(BuildSpec::new(1000, &[]).runtime(&SERVER_UP, 0).healthy(600))
}

const WASM_START: [&str; 6] = [
    "\u{1b}[0;32m[INFO]\u{1b}[0m Running in container mode",
    "\u{1b}[0;32m[INFO]\u{1b}[0m Starting WASM client synchronization...",
    "\u{1b}[0;32m[INFO]\u{1b}[0m Running wasm-pack build...",
    "   Compiling citadel-internal-service-wasm-client v0.1.0 (/workspace/citadel-internal-service)",
    "    Finished `release` profile [optimized] target(s) in 1.00s",
    "\u{1b}[1;33m[WARNING]\u{1b}[0m generate_types.sh not found, skipping TypeScript type generation",
];
const WASM_OK: [&str; 3] = [
    "\u{1b}[0;32m[INFO]\u{1b}[0m Verifying synchronization...",
    WASM_DONE,
    "\u{1b}[0;32m[INFO]\u{1b}[0m Usage: restart the services",
];
const WASM_FAILED: &str = "\u{1b}[0;31m[ERROR]\u{1b}[0m WASM build failed - pkg directory not created";

/// The WASM client's output: its start, then `tail`.
fn wasm_run(tail: &[&'static str]) -> Vec<&'static str> {
    WASM_START.iter().chain(tail).copied().collect()
}

/// The one-shot WASM client, done before the trigger.
fn wasm(build: BuildSpec) -> Resource {
    let done = BuildSpec::new(800, &[]).runtime(&wasm_run(&WASM_OK), 500).exit_code(0);
    Resource::compose("sync-wasm-client").history(done).build(build)
}

fn cases() -> Vec<Case> {
    let rust_error = [
        "   Compiling citadel-workspace-types v0.1.0 (/usr/src/app/citadel-workspace-types)",
        "   Compiling citadel-workspace-server-kernel v0.1.0 (/usr/src/app/citadel-workspace-server-kernel)",
        "error[E0425]: cannot find value `peer_id` in this scope",
        "  --> citadel-workspace-server-kernel/src/kernel.rs:40:9",
        "   |",
        "40 |         peer_id,",
        "   |         ^^^^^^^ not found in this scope",
        "",
        "error: could not compile `citadel-workspace-server-kernel` (bin \"citadel-workspace-server-kernel\") due to 1 previous error",
    ];
    let failed = BuildSpec::new(1200, &rust_error).failing(&buildkit_error(101)).update(Update::Recreate);
    let crashed = BuildSpec::new(1000, &COMPILED)
        .runtime(&["starting, mode=crash", "shutting down"], 500)
        .healthy(100)
        .exit_code(1);
    vec![
        Case {
            name: "A-healthy-force",
            resource: "server",
            scenario: Scenario::new([server().build(BuildSpec::new(1400, &[]).runtime(&SERVER_UP, 0).healthy(800))]),
            length_ms: 3000,
        },
        Case {
            name: "B-buildfail",
            resource: "server",
            scenario: Scenario::new([server()
                .build(BuildSpec::new(1200, &rust_error).failing(&buildkit_error(101)).update(Update::Recreate))]),
            length_ms: 2500,
        },
        // The server prints its first lines at once (before Tilt's build end), crashes later.
        Case {
            name: "C-crash",
            resource: "server",
            scenario: Scenario::new([server().history(failed).build(
                BuildSpec::new(1600, &COMPILED)
                    .runtime(&["starting, mode=crash", "listening on 0.0.0.0:12349", "shutting down"], 300)
                    .healthy(200)
                    .exit_code(1)
                    .update(Update::Recreate),
            )]),
            length_ms: 3000,
        },
        Case {
            name: "D-unhealthy",
            resource: "server",
            scenario: Scenario::new([server().history(crashed).build(
                BuildSpec::new(1600, &COMPILED)
                    .runtime(&["starting, mode=unhealthy", "not listening"], 0)
                    .unhealthy(2500)
                    .update(Update::Recreate),
            )]),
            length_ms: 5500,
        },
        Case {
            name: "E-oneshot0",
            resource: "sync-wasm-client",
            scenario: Scenario::new([wasm(BuildSpec::new(1200, &[]).runtime(&wasm_run(&WASM_OK), 1000).exit_code(0))]),
            length_ms: 3500,
        },
        Case {
            name: "F-oneshot1",
            resource: "sync-wasm-client",
            scenario: Scenario::new([wasm(
                BuildSpec::new(1200, &[]).runtime(&wasm_run(&[WASM_FAILED]), 700).exit_code(1),
            )]),
            length_ms: 3500,
        },
    ]
}

/// The stand-in after one `tilt trigger`, looked at any moment after it.
struct Replay {
    ws: Workspace,
}

impl Replay {
    fn start(case: &Case) -> Replay {
        let ws = Workspace::citadel();
        ws.tilt(&case.scenario);
        ws.tilt_cli(&["trigger", case.resource]).assert_code(0);
        Replay { ws }
    }

    /// `tilt ARGS` as if called `after_ms` after the trigger.
    fn at(&self, after_ms: i64, args: &[&str]) -> Run {
        let run = self.ws.tilt_cli_at(after_ms, args);
        run.assert_code(0);
        run
    }

    fn json(&self, after_ms: i64, args: &[&str]) -> Value {
        let run = self.at(after_ms, args);
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("`tilt {args:?}` is not JSON ({e}): {}", run.stdout))
    }
}

// ---------------------------------------------------------------------------------------------
// Lines: spans, sources and shapes.

/// What a line is, whatever its times, ids, names and durations.
fn shape(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let last = words.last().copied().unwrap_or_default();
    let starts_with_seconds = words.first().is_some_and(|w| w.contains('.') && w.parse::<f64>().is_ok());
    let shape = if text.is_empty() {
        "∅"
    } else if text == "CLI Trigger" || text == "Initial Build" || text.starts_with("STEP ") || text == "------" {
        text
    } else if text.contains(" Changed: [") {
        "N Files Changed: [...]"
    } else if text.starts_with("      Container ") {
        return format!("rm {last}");
    } else if text.starts_with(" Container ") {
        return format!("up {last}");
    } else if text == "     No stopped containers" {
        "No stopped containers"
    } else if text.starts_with("     Step ") {
        let title = text.split_once('(').map_or("", |(_, title)| title);
        return format!("Step {} ({title}", words.get(1).copied().unwrap_or_default());
    } else if text.starts_with("     DONE IN: ") && text.ends_with("s ") {
        "DONE IN"
    } else if text.starts_with('#') && words.get(1).is_some_and(|w| w.contains('.') && w.parse::<f64>().is_ok()) {
        "#N <seconds> <output>"
    } else if text.starts_with('#') && words.get(1) == Some(&"ERROR:") {
        "#N ERROR: <reason>"
    } else if text.starts_with('#') {
        "#N <step>"
    } else if text.starts_with(" > [") && text.ends_with(':') {
        " > [<step>] RUN <command>:"
    } else if starts_with_seconds {
        "<seconds> <output>"
    } else if text.starts_with("failed to solve: ") {
        "failed to solve: <reason>"
    } else if text.starts_with("got unexpected error during build/deploy: command [") && text.ends_with("] failed.") {
        "got unexpected error during build/deploy: command [...] failed."
    } else if text == "error: exit status 17" {
        text
    } else if text.starts_with("Build Failed: command [") && text.ends_with("] failed.") {
        "Build Failed: command [...] failed."
    } else if text.starts_with("healthcheck: ") {
        "healthcheck: <output>"
    } else {
        "<output>"
    };
    shape.to_owned()
}

/// One record as `span kind / source / buildEvent / shape`.
fn token(record: &Value) -> String {
    let span = record["spanID"].as_str().unwrap_or_default();
    let kind = span.split(':').next().unwrap_or_default();
    let field = |key: &str| record[key].as_str().unwrap_or_default().to_owned();
    format!("{kind}/{}/{}/{}", field("source"), field("buildEvent"), shape(&field("message")))
}

/// The tokens of `resource`'s records from its triggered build's header on, with what varies
/// in length folded: BuildKit's steps (and the empty lines between them) into one, and runs of
/// output lines into one.
fn line_shapes(records: &[Value], resource: &str, header_span: Option<&str>) -> Vec<String> {
    let own: Vec<&Value> = records.iter().filter(|r| r["resource"] == resource).collect();
    let from = own
        .iter()
        .position(|r| r["buildEvent"] == "init" && header_span.is_none_or(|span| r["spanID"] == span))
        .expect("the triggered build's header");
    let tokens: Vec<String> = own[from..].iter().map(|r| token(r)).collect();
    let step = "build/build//#N <step>";
    let gap = "build/build//∅";
    let mut folded: Vec<String> = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        if tokens[at] == step {
            // step (gap* step)*
            let mut end = at + 1;
            loop {
                let gaps = tokens[end..].iter().take_while(|t| *t == gap).count();
                if tokens.get(end + gaps).is_some_and(|t| t == step) {
                    end += gaps + 1;
                } else {
                    break;
                }
            }
            folded.push("build/build//<BuildKit steps>".to_owned());
            at = end;
            continue;
        }
        let repeats = tokens[at].ends_with("<output>") && folded.last() == Some(&tokens[at]);
        if !repeats {
            folded.push(tokens[at].clone());
        }
        at += 1;
    }
    folded
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("a JSON log record")).collect()
}

// ---------------------------------------------------------------------------------------------
// Objects: field names and the kinds of their values.

/// Every field path with the kind of its value (`status.buildHistory[].spanID: string`).
fn fields(value: &Value, path: &str, found: &mut std::collections::BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            found.insert(path.to_owned(), "object".to_owned());
            for (key, value) in map {
                let path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                fields(value, &path, found);
            }
        }
        Value::Array(items) => {
            found.insert(path.to_owned(), "array".to_owned());
            for item in items {
                fields(item, &format!("{path}[]"), found);
            }
        }
        other => {
            found.insert(path.to_owned(), kind(other));
        }
    }
}

/// What kind of value: `null`, `bool`, `number`, or what a string holds.
fn kind(value: &Value) -> String {
    let Some(text) = value.as_str() else {
        return match value {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            _ => "number",
        }
        .to_owned();
    };
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    let kind = if text.len() == 27 && text.ends_with('Z') && text.as_bytes().get(19) == Some(&b'.') {
        "time with µs"
    } else if text.len() == 20 && text.ends_with('Z') && text.as_bytes().get(10) == Some(&b'T') {
        "time"
    } else if text.len() == 64 && hex(text) {
        "64 hex digits"
    } else if text.len() == 36 && text.split('-').map(str::len).eq([8, 4, 4, 4, 12]) {
        "uuid"
    } else if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        "digits"
    } else if let Some((prefix, _)) =
        text.split_once(':').filter(|(p, _)| ["docker-compose", "image", "build", "dockercompose"].contains(p))
    {
        return format!("string {prefix}:…");
    } else {
        "string"
    };
    kind.to_owned()
}

/// Fields the Tiltfile decides, not Tilt: the capture's resources have labels, the stand-in's
/// none.
fn tiltfile_specific(path: &str) -> bool {
    path.starts_with("metadata.labels")
}

fn field_kinds(value: &Value) -> std::collections::BTreeMap<String, String> {
    let mut found = std::collections::BTreeMap::new();
    fields(value, "", &mut found);
    found.retain(|path, _| !tiltfile_specific(path));
    found
}

// ---------------------------------------------------------------------------------------------
// States: what the polls saw.

/// What a poll saw of the UIResource: update, runtime, health, an error in the last build.
type UiState = (String, String, String, bool);
/// What a poll saw of the DockerComposeService: state (`{}` without a container), exit code,
/// whether it is the container the case ends with, health.
type DcState = (String, i64, bool, String);

fn dc_state(status: &Value, final_id: &str) -> DcState {
    let state = &status["containerState"];
    let id = status["containerID"].as_str().unwrap_or_default();
    (
        state["status"].as_str().unwrap_or("{}").to_owned(),
        state["exitCode"].as_i64().unwrap_or(0),
        !id.is_empty() && id == final_id,
        state["healthStatus"].as_str().unwrap_or_default().to_owned(),
    )
}

fn ui_state(status: &Value) -> UiState {
    (
        status["updateStatus"].as_str().unwrap_or_default().to_owned(),
        status["runtimeStatus"].as_str().unwrap_or_default().to_owned(),
        status["composeResourceInfo"]["healthStatus"].as_str().unwrap_or_default().to_owned(),
        status["buildHistory"][0]["error"].is_string(),
    )
}

/// The states in a capture's poll file (`   0.5 upd=… rt=… cur=… last=… err=… health=… |
/// <12-digit id>|<containerState>`; an error may span lines).
fn polled(text: &str, final_id: &str) -> (Vec<UiState>, Vec<DcState>) {
    let mut entries: Vec<String> = Vec::new();
    for line in text.lines() {
        let starts = line.split_whitespace().next().is_some_and(|w| w.parse::<f64>().is_ok()) && line.contains(" upd=");
        match entries.last_mut() {
            Some(entry) if !starts => entry.push_str(&format!("\n{line}")),
            _ => entries.push(line.to_owned()),
        }
    }
    let between = |entry: &str, from: &str, to: &str| -> String {
        let rest = entry.split_once(from).map_or("", |(_, rest)| rest);
        rest.split_once(to).map_or(rest, |(value, _)| value).to_owned()
    };
    let (mut ui, mut dc) = (Vec::new(), Vec::new());
    for entry in entries {
        let health = between(&entry, " health=", " | ");
        let has_error = !between(&entry, " err=", " health=").trim().is_empty();
        ui.push((between(&entry, "upd=", " rt="), between(&entry, " rt=", " cur="), health, has_error));
        let (_, tail) = entry.split_once(" | ").unwrap_or_default();
        let (short_id, state) = tail.split_once('|').unwrap_or_default();
        let state: Value = serde_json::from_str(state).unwrap_or(Value::Null);
        let mut status = serde_json::json!({"containerState": state});
        if !short_id.is_empty() {
            let id = if final_id.starts_with(short_id) { final_id } else { short_id };
            status["containerID"] = Value::from(id);
        }
        if state.is_null() {
            status = serde_json::json!({});
        }
        dc.push(dc_state(&status, final_id));
    }
    (distinct(ui), distinct(dc))
}

/// Consecutive repeats removed.
fn distinct<T: PartialEq>(mut states: Vec<T>) -> Vec<T> {
    states.dedup();
    states
}

/// Whether `part` appears in `whole` in order (not necessarily together).
fn in_order<T: PartialEq>(part: &[T], whole: &[T]) -> bool {
    let mut rest = whole.iter();
    part.iter().all(|wanted| rest.any(|state| state == wanted))
}

/// The stand-in's states every 20 ms from the trigger to the case's end, from one call that
/// answers both kinds at once (as one snapshot).
fn sampled(replay: &Replay, case: &Case, final_id: &str) -> (Vec<UiState>, Vec<DcState>) {
    let (mut ui, mut dc) = (Vec::new(), Vec::new());
    for after_ms in (0..case.length_ms).step_by(20) {
        let list = replay.json(after_ms, &["get", "uiresources,dockercomposeservices", "-o", "json"]);
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let named =
            |kind: &str| items.iter().find(|o| o["kind"] == kind && o["metadata"]["name"] == case.resource).cloned();
        let resource = named("UIResource").expect("the resource's UIResource");
        let service = named("DockerComposeService").expect("the resource's DockerComposeService");
        ui.push(ui_state(&resource["status"]));
        dc.push(dc_state(&service["status"], final_id));
    }
    (distinct(ui), distinct(dc))
}

// ---------------------------------------------------------------------------------------------

fn replay(case: &Case, dir: &Path) -> Vec<String> {
    let mut differences = Vec::new();
    let read = |file: String| fs::read_to_string(dir.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let replay = Replay::start(case);
    let end = case.length_ms;

    // Lines.
    let captured = line_shapes(&json_lines(&read(format!("{}.logs.jsonl", case.name))), case.resource, None);
    let logs = replay.at(end, &["logs", "--json", case.resource]);
    let records = json_lines(&logs.stdout);
    let last_build = records.iter().rev().filter_map(|r| r["spanID"].as_str()).find(|s| s.starts_with("build:"));
    let played = line_shapes(&records, case.resource, last_build);
    if played != captured {
        differences.push(format!("lines differ:\n  captured {captured:#?}\n  stand-in {played:#?}"));
    }

    // Objects at the end.
    let captured_ui: Value =
        serde_json::from_str(&read(format!("{}.uiresource.{}.json", case.name, case.resource))).expect("JSON");
    let captured_dc: Value =
        serde_json::from_str(&read(format!("{}.dcs.{}.json", case.name, case.resource))).expect("JSON");
    let played_ui = replay.json(end, &["get", "uiresource", case.resource, "-o", "json"]);
    let played_dc = replay.json(end, &["get", "dockercomposeservice", case.resource, "-o", "json"]);
    for (kind, captured, played) in
        [("UIResource", &captured_ui, &played_ui), ("DockerComposeService", &captured_dc, &played_dc)]
    {
        let (captured, played) = (field_kinds(captured), field_kinds(played));
        if captured != played {
            let only = |a: &std::collections::BTreeMap<String, String>,
                        b: &std::collections::BTreeMap<String, String>| {
                a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>()
            };
            differences.push(format!(
                "{kind} fields differ:\n  only captured {:#?}\n  only stand-in {:#?}",
                only(&captured, &played),
                only(&played, &captured)
            ));
        }
    }
    for (what, value) in [
        ("annotation tilt.dev/log-span-id", &played_dc["metadata"]["annotations"]["tilt.dev/log-span-id"]),
        ("spec id", &played_ui["status"]["specs"][1]["id"]),
    ] {
        let wanted =
            format!("{}:{}", if what.starts_with("spec") { "docker-compose" } else { "dockercompose" }, case.resource);
        if value.as_str() != Some(wanted.as_str()) {
            differences.push(format!("{what} is {value}, not {wanted}"));
        }
    }

    // States: the capture's polls, in order, among the stand-in's.
    let final_id = |dc: &Value| dc["status"]["containerID"].as_str().unwrap_or_default().to_owned();
    let (captured_ui_states, captured_dc_states) =
        polled(&read(format!("{}.poll.txt", case.name)), &final_id(&captured_dc));
    let (played_ui_states, played_dc_states) = sampled(&replay, case, &final_id(&played_dc));
    if !in_order(&captured_ui_states, &played_ui_states) {
        differences
            .push(format!("UIResource states:\n  captured {captured_ui_states:?}\n  stand-in {played_ui_states:?}"));
    }
    if !in_order(&captured_dc_states, &played_dc_states) {
        differences.push(format!(
            "DockerComposeService states:\n  captured {captured_dc_states:?}\n  stand-in {played_dc_states:?}"
        ));
    }
    differences
}

#[test]
fn the_stand_in_plays_each_captured_case_as_the_real_tilt_and_compose_did() {
    let dir = match captures() {
        Ok(dir) => dir,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let mut failures = Vec::new();
    for case in cases() {
        let differences = replay(&case, &dir);
        if !differences.is_empty() {
            failures.push(format!("{}:\n{}", case.name, differences.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_capture_readers_read_what_they_should() {
    assert_eq!(shape("#12 1.251 error[E0425]: cannot find value"), "#N <seconds> <output>");
    assert_eq!(shape("1.251 error[E0425]: cannot find value"), "<seconds> <output>");
    assert_eq!(shape("     Step 1 - 1.22s (Force update)"), "Step 1 (Force update)");
    assert_eq!(shape("      Container ws-server-1  Stopping"), "rm Stopping");
    assert_eq!(shape(" Container ws-server-1  Running"), "up Running");
    assert_eq!(kind(&Value::from("2026-11-30T22:44:13.783502Z")), "time with µs");
    assert_eq!(kind(&Value::from("docker-compose:server")), "string docker-compose:…");
    let poll = "   0.5 upd=in_progress rt=ok cur=build:5 last=build:2 err=boom\nerror: exit status 17\n health=healthy | 20ee68e25722|{\"status\":\"running\",\"healthStatus\":\"healthy\"}\n   1.6 upd=in_progress rt=error cur=build:5 last=build:2 err= health=unhealthy | |\n";
    let (ui, dc) = polled(poll, "20ee68e25722aaaa");
    assert_eq!(ui[0], ("in_progress".to_owned(), "ok".to_owned(), "healthy".to_owned(), true));
    assert_eq!(dc, [("running".to_owned(), 0, true, "healthy".to_owned()), ("{}".to_owned(), 0, false, String::new())]);
    assert!(in_order(&[1, 3], &[1, 2, 3]) && !in_order(&[3, 1], &[1, 2, 3]));
}
