//! The Tilt stand-in's calls and settings the engine's tests need beyond triggering builds:
//! `tilt disable`/`enable` (a canceled build, an emptied history), a resource a Tiltfile edit
//! removed, and Tilt's log limit. Each looks at a chosen moment through
//! `Workspace::tilt_cli_at`, so nothing here waits.

use serde_json::Value;
use sync_tests::{
    scenario::{BuildSpec, Resource, Scenario},
    Run, Workspace,
};

fn json(run: &Run) -> Value {
    run.assert_code(0);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout))
}

fn records(run: &Run) -> Vec<Value> {
    run.assert_code(0);
    run.stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON log record")).collect()
}

/// A server whose triggered build takes 3 s, printing a line every 300 ms.
fn slow_server() -> Scenario {
    let lines: Vec<String> = (1..=10).map(|n| format!("   Compiling crate-{n}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    Scenario::new([Resource::compose("server").history(BuildSpec::new(100, &[])).build(BuildSpec::new(3000, &lines))])
}

#[test]
fn disabling_a_building_resource_cancels_its_build_as_tilt_does() {
    let ws = Workspace::citadel();
    ws.tilt(&slow_server());
    ws.tilt_cli(&["trigger", "server"]).assert_code(0);
    let disabled = ws.tilt_cli_at(1000, &["disable", "server"]);
    assert_eq!((disabled.code, disabled.stdout.as_str(), disabled.stderr.as_str()), (Some(0), "", ""));

    let lines = records(&ws.tilt_cli_at(1200, &["logs", "--json", "server"]));
    let last: Vec<(&str, &str)> = lines[lines.len() - 2..]
        .iter()
        .map(|r| (r["spanID"].as_str().unwrap_or_default(), r["message"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(
        last,
        [
            ("disabletoggle-server", "Resource \"server\" disabled. To enable/disable it, use the Tilt Web UI."),
            ("build:2", "Build Failed: build canceled"),
        ]
    );
    let status = &json(&ws.tilt_cli_at(1200, &["get", "uiresource", "server", "-o", "json"]))["status"];
    assert_eq!((status["updateStatus"].as_str(), status["runtimeStatus"].as_str()), (Some("none"), Some("none")));
    assert_eq!(status["disableStatus"]["state"], "Disabled");
    assert_eq!(status["conditions"][1]["reason"], "Disabled");
    // The history was emptied; the canceled build is recorded after that.
    let history = status["buildHistory"].as_array().cloned().unwrap_or_default();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (history[0]["spanID"].as_str(), history[0]["error"].as_str()),
        (Some("build:2"), Some("build canceled"))
    );
    let service = &json(&ws.tilt_cli_at(1200, &["get", "dockercomposeservice", "server", "-o", "json"]))["status"];
    assert!(service.get("containerID").is_none(), "its container is removed: {service}");
    assert_eq!(service["disableStatus"]["state"], "Disabled");

    let refused = ws.tilt_cli_at(1300, &["trigger", "server"]);
    assert_eq!((refused.code, refused.stderr.trim()), (Some(1), "Error: resource \"server\" is currently disabled"));
    let unknown = ws.tilt_cli_at(1300, &["disable", "nope"]);
    assert_eq!((unknown.code, unknown.stderr.trim()), (Some(1), "Error: no such resource \"nope\""));
    let nothing = ws.tilt_cli_at(1300, &["enable"]);
    assert_eq!((nothing.code, nothing.stderr.trim()), (Some(1), "Error: must specify at least one resource"));

    ws.tilt_cli_at(1400, &["enable", "server"]).assert_code(0);
    let status = &json(&ws.tilt_cli_at(1500, &["get", "uiresource", "server", "-o", "json"]))["status"];
    assert_eq!(status["disableStatus"]["state"], "Enabled");
    assert_eq!(status["updateStatus"], "error", "the canceled build is its last");
    ws.tilt_cli_at(1600, &["trigger", "server"]).assert_code(0);
}

#[test]
fn a_resource_a_tiltfile_edit_removed_is_gone() {
    let ws = Workspace::citadel();
    let scenario = slow_server();
    let server = scenario.resources[0].clone().removed_after(1000);
    ws.tilt(&scenario.with_resource(server));
    ws.tilt_cli(&["trigger", "server"]).assert_code(0);
    ws.tilt_cli_at(500, &["get", "uiresource", "server", "-o", "json"]).assert_code(0);

    let gone = ws.tilt_cli_at(1500, &["get", "uiresource", "server", "-o", "json"]);
    assert_eq!(
        (gone.code, gone.stderr.trim()),
        (Some(1), "Error from server (NotFound): uiresources.tilt.dev \"server\" not found")
    );
    assert_eq!(ws.tilt_cli_at(1500, &["get", "uiresources", "-o", "name"]).stdout, "uiresource.tilt.dev/(Tiltfile)\n");
    let trigger = ws.tilt_cli_at(1500, &["trigger", "server"]);
    assert_eq!((trigger.code, trigger.stderr.trim()), (Some(1), "Error: (404): resource \"server\" does not exist"));
}

#[test]
fn past_its_log_limit_tilt_keeps_the_newest_lines() {
    let ws = Workspace::citadel();
    let lines: Vec<String> = (0..100).map(|n| format!("{n:03} {}", "x".repeat(45))).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let chatty = Resource::local("wasm").build(BuildSpec::new(500, &lines));
    ws.tilt(&Scenario { log_limit_bytes: 2000, ..Scenario::new([chatty]) });
    ws.tilt_cli(&["trigger", "wasm"]).assert_code(0);
    let kept = records(&ws.tilt_cli_at(2000, &["logs", "--json"]));
    let texts: Vec<&str> = kept.iter().map(|r| r["message"].as_str().unwrap_or_default()).collect();
    let bytes: usize = texts.iter().map(|t| t.len() + 1).sum();
    assert!(bytes <= 2000, "{bytes} bytes kept");
    assert_eq!(texts.last().map(|t| &t[..3]), Some("099"), "the newest line stays");
    assert!(!texts.contains(&"CLI Trigger"), "the build's header was cut: {texts:?}");
    // What was cut never comes back, even once the log is quiet again.
    let later = records(&ws.tilt_cli_at(5000, &["logs", "--json"]));
    assert_eq!(later.len(), kept.len());
}
