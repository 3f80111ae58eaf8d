//! Named scenarios shared by the tests, `cargo xtask demo` and `cargo xtask bench` (which get
//! them as TOML from the `scenario` binary).

use crate::scenario::{buildkit_error, BuildSpec, CallCost, Kind, Resource, Scenario};
use crate::{INTERNAL_RUNNING, SERVER_RUNNING, UI_READY, WASM_DONE};

/// What one call of the real CLI costs on a 2-core machine (`../shared/tilt-cli.md`, "Cost").
pub const REAL_CALL_COST: CallCost = CallCost { wall_ms: 70, cpu_ms: 80 };

/// The WASM client's build as the demo shows it: it passes.
fn demo_wasm() -> Resource {
    Resource::compose("sync-wasm-client").build(BuildSpec::new(
        1500,
        &[
            "\u{1b}[0;32m[INFO]\u{1b}[0m Running in container mode",
            "\u{1b}[0;32m[INFO]\u{1b}[0m Starting WASM client synchronization...",
            "\u{1b}[0;32m[INFO]\u{1b}[0m Running wasm-pack build...",
            "   Compiling thiserror v1.0.69",
            "   Compiling citadel-internal-service-wasm-client v0.1.0",
            "    Finished `release` profile [optimized] target(s) in 41.20s",
            "\u{1b}[1;33m[WARNING]\u{1b}[0m generate_types.sh not found, skipping TypeScript type generation",
            "added 212 packages, and audited 213 packages in 3s",
            "found 0 vulnerabilities",
            "\u{1b}[0;32m[INFO]\u{1b}[0m Verifying synchronization...",
            "\u{1b}[0;32m[INFO]\u{1b}[0m ✅ All WASM files are synchronized (size: 1843221 bytes)",
            WASM_DONE,
        ],
    ))
}

/// The server with an earlier failed build in its log, and `build` as the next one.
fn demo_server(build: BuildSpec) -> Resource {
    Resource::compose("server")
        .history(
            BuildSpec::new(100, &["error[E0425]: cannot find value `workspace_id` in this scope"])
                .failing(&buildkit_error(101)),
        )
        .build(build)
}

fn demo_rest() -> [Resource; 2] {
    [
        Resource::compose("internal-service").build(BuildSpec::new(
            1000,
            &[
                "   Compiling citadel-workspace-internal-service v0.1.0",
                "    Finished `dev` profile [unoptimized + debuginfo] target(s) in 21.50s",
                INTERNAL_RUNNING,
            ],
        )),
        Resource::compose("ui")
            .build(BuildSpec::new(800, &["> vite", UI_READY, "  ➜  Local:   http://localhost:5173/"])),
    ]
}

/// `cargo xtask demo`, first run: every build succeeds. The server's log still holds an
/// earlier failed build, which must not fail this sync.
pub fn demo_happy() -> Scenario {
    let server = demo_server(BuildSpec::new(
        1200,
        &[
            "   Compiling citadel-workspace-types v0.1.0",
            "   Compiling citadel-workspace-server-kernel v0.1.0",
            "    Finished `dev` profile [unoptimized + debuginfo] target(s) in 38.02s",
            SERVER_RUNNING,
        ],
    ));
    let [internal, ui] = demo_rest();
    Scenario::new([demo_wasm(), server, internal, ui])
}

/// `cargo xtask demo`, second run: the server fails to compile. The WASM client's build
/// passes; the internal service and the UI are never triggered.
pub fn demo_failing() -> Scenario {
    let server = demo_server(
        BuildSpec::new(
            1200,
            &[
                "   Compiling citadel-workspace-types v0.1.0",
                "   Compiling citadel-workspace-server-kernel v0.1.0",
                "\u{1b}[0m\u{1b}[1m\u{1b}[38;5;9merror[E0425]\u{1b}[0m\u{1b}[1m: cannot find value `peer_id` in this scope\u{1b}[0m",
                "  --> citadel-workspace-server-kernel/src/kernel.rs:42:17",
                "error: could not compile `citadel-workspace-server-kernel` (bin) due to 1 previous error",
            ],
        )
        .failing(&buildkit_error(101)),
    );
    let [internal, ui] = demo_rest();
    Scenario::new([demo_wasm(), server, internal, ui])
}

/// The success line of each resource in the benchmark, in step order.
const BENCH_SUCCESS: [(&str, &str); 4] = [
    ("sync-wasm-client", WASM_DONE),
    ("server", "Running `target/debug/citadel-workspace-server-kernel --config /usr/src/app/kernel.toml`"),
    ("internal-service", "Running `target/debug/citadel-workspace-internal-service --bind '0.0.0.0:12345'`"),
    ("ui", UI_READY),
];

/// `cargo xtask bench`: four resources whose every build takes `build_ms` and prints 19
/// `Compiling` lines, then its success line. `Kind::Compose`: all of it is build output.
/// `Kind::Local`: the WASM client's update command prints it all; the server and the internal
/// service compile in their update command and print the success line from their serve process
/// at once; the UI is serve-only, its server ready at once (as in the bench's real Tilt).
pub fn bench(build_ms: u64, kind: Kind) -> Scenario {
    let compiling: Vec<String> = (1..20).map(|n| format!("   Compiling crate-{n} v0.1.{n}")).collect();
    let compiling: Vec<&str> = compiling.iter().map(String::as_str).collect();
    let resources = BENCH_SUCCESS.map(|(name, success)| {
        let all: Vec<&str> = compiling.iter().copied().chain([success]).collect();
        match (kind, name) {
            (Kind::Compose, _) => Resource::compose(name).build(BuildSpec::new(build_ms, &all)),
            (Kind::Local, "sync-wasm-client") => {
                Resource::local(name).cmd("./sync-wasm-clients.sh").build(BuildSpec::new(build_ms, &all))
            }
            (Kind::Local, "ui") => {
                Resource::local(name).serve_only("npm run dev").build(BuildSpec::new(0, &[]).runtime(&[success], 0))
            }
            (Kind::Local, _) => Resource::local(name)
                .cmd(&format!("cargo build --bin {name}"))
                .serve(&format!("cargo run --bin {name}"))
                .build(BuildSpec::new(build_ms, &compiling).runtime(&[success], 0)),
        }
    });
    Scenario::new(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_named_scenarios_have_the_four_resources_in_step_order() {
        for scenario in [demo_happy(), demo_failing(), bench(3000, Kind::Compose), bench(3000, Kind::Local)] {
            let names: Vec<&str> = scenario.resources.iter().map(|r| r.name.as_str()).collect();
            assert_eq!(names, ["sync-wasm-client", "server", "internal-service", "ui"]);
        }
        let local = bench(3000, Kind::Local);
        assert_eq!(local.resources[3].update_cmd(), None);
        assert_eq!(local.resources[1].build[0].runtime.len(), 1);
        assert_eq!(bench(3000, Kind::Compose).resources[0].build[0].lines.len(), 20);
    }
}
