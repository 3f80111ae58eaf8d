//! The API objects `tilt get … -o json` prints: `UIResource` (the "(Tiltfile)" one too) and
//! `DockerComposeService`, alone or in a `List`, with the fields the real Tilt fills (see the
//! captures in `../shared/docker/captures/`). kubectl's printer prints them with sorted keys and
//! a 4-space indent: each is turned into a `serde_json::Value` (whose maps are sorted) first.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use sync_tests::scenario::Kind;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::compose::{container_id, ContainerStatus};
use crate::timeline::{Condition, ResourceStatus};

/// The name of the Tiltfile's own resource.
pub const TILTFILE: &str = "(Tiltfile)";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List {
    api_version: &'static str,
    items: Vec<Value>,
    kind: &'static str,
    metadata: ListMetadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMetadata {
    resource_version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    annotations: BTreeMap<&'static str, String>,
    creation_timestamp: String,
    name: &'a str,
    owner_references: [OwnerReference; 1],
    resource_version: String,
    uid: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnerReference {
    api_version: &'static str,
    block_owner_deletion: bool,
    controller: bool,
    kind: &'static str,
    name: &'static str,
    uid: String,
}

/// `spec: {}`.
#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiResource<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Empty,
    status: UiStatus,
}

/// The fields of Tilt's `UIResourceStatus` the stand-in fills.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    build_history: Vec<BuildTerminated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compose_resource_info: Option<ComposeInfo>,
    conditions: Vec<ConditionJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_build: Option<BuildRunning>,
    disable_status: UiDisableStatus,
    last_deploy_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_resource_info: Option<LocalInfo>,
    order: usize,
    pending_build_since: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    queued: bool,
    runtime_status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    specs: Vec<TargetSpec>,
    /// 1: `TRIGGER_MODE_MANUAL` (0, auto, is left out as Go's `omitempty` does).
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_mode: Option<u8>,
    update_status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildTerminated {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    finish_time: String,
    #[serde(rename = "spanID")]
    span_id: String,
    start_time: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildRunning {
    #[serde(rename = "spanID")]
    span_id: String,
    start_time: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComposeInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    health_status: Option<&'static str>,
}

#[derive(Serialize)]
struct LocalInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
}

#[derive(Serialize)]
struct TargetSpec {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConditionJson {
    last_transition_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    status: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiDisableStatus {
    disabled_count: u32,
    enabled_count: u32,
    sources: Option<[DisableSource; 1]>,
    state: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DisableSource {
    config_map: ConfigMapSource,
}

#[derive(Serialize)]
struct ConfigMapSource {
    key: &'static str,
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComposeService<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: ComposeSpec<'a>,
    status: ComposeStatusJson,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComposeSpec<'a> {
    disable_source: DisableSource,
    image_maps: [String; 1],
    project: Project,
    service: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Project {
    config_paths: [String; 1],
    name: String,
    project_path: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComposeStatusJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    apply_error: Option<String>,
    #[serde(rename = "containerID", skip_serializing_if = "Option::is_none")]
    container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_state: Option<ContainerState>,
    disable_status: DcDisableStatus,
    last_apply_finish_time: Option<String>,
    last_apply_start_time: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerState {
    #[serde(skip_serializing_if = "is_zero")]
    exit_code: i32,
    finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_status: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    running: bool,
    started_at: Option<String>,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DcDisableStatus {
    disabled: bool,
    last_update_time: String,
    reason: String,
    state: &'static str,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

/// Turns times in milliseconds since scenario start into the API's times.
#[derive(Clone, Copy)]
pub struct Clock {
    pub start_unix_ms: i64,
    /// When Tilt loaded the Tiltfile and made the objects.
    pub loaded_ms: i64,
}

impl Clock {
    /// A `MicroTime`: `2026-08-01T12:00:00.250000Z`.
    fn at(self, offset_ms: i64) -> String {
        micro_time(self.start_unix_ms + offset_ms)
    }

    /// A `Time`, whole seconds: `2026-08-01T12:00:00Z`.
    fn second(self, offset_ms: i64) -> String {
        let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        datetime(self.start_unix_ms + offset_ms).format(&format).unwrap_or_default()
    }

    /// The `resourceVersion` of an object last changed at `changed_ms`: later changes have
    /// larger ones, as Tilt's counter.
    fn version(self, changed_ms: i64) -> String {
        (self.start_unix_ms + changed_ms.max(self.loaded_ms)).to_string()
    }

    fn metadata<'a>(
        self,
        kind: &str,
        name: &'a str,
        changed_ms: i64,
        annotations: &[(&'static str, String)],
    ) -> Metadata<'a> {
        Metadata {
            annotations: annotations.iter().cloned().collect(),
            creation_timestamp: self.second(self.loaded_ms),
            name,
            owner_references: [OwnerReference {
                api_version: "tilt.dev/v1alpha1",
                block_owner_deletion: true,
                controller: true,
                kind: "Tiltfile",
                name: TILTFILE,
                uid: uid("Tiltfile", TILTFILE),
            }],
            resource_version: self.version(changed_ms),
            uid: uid(kind, name),
        }
    }

    fn conditions(self, conditions: &[Condition]) -> Vec<ConditionJson> {
        conditions
            .iter()
            .map(|c| ConditionJson {
                last_transition_time: self.at(c.since_ms),
                reason: c.reason,
                status: if c.status { "True" } else { "False" },
                kind: c.kind,
            })
            .collect()
    }
}

/// A UUID-shaped id, the same for an object every time.
fn uid(kind: &str, name: &str) -> String {
    let hex = container_id(0, &format!("{kind}/{name}"));
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn disable_source(name: &str) -> DisableSource {
    DisableSource { config_map: ConfigMapSource { key: "isDisabled", name: format!("{name}-disable") } }
}

/// A resource's UIResource.
pub fn ui_resource(status: &ResourceStatus, clock: Clock) -> Result<Value, String> {
    let (compose, local, specs) = match (status.kind, &status.compose) {
        (Kind::Compose, Some(compose)) => {
            let health = compose.seen.as_ref().and_then(|c| c.health);
            let specs = vec![
                TargetSpec { id: format!("image:{}", compose.names.image_target()), kind: "image" },
                TargetSpec { id: format!("docker-compose:{}", status.name), kind: "docker-compose" },
            ];
            (Some(ComposeInfo { health_status: health }), None, specs)
        }
        _ => {
            let specs = vec![TargetSpec { id: format!("local:{}", status.name), kind: "local" }];
            (None, Some(LocalInfo { pid: status.pid }), specs)
        }
    };
    let state = if status.disabled { "Disabled" } else { "Enabled" };
    let object = UiResource {
        api_version: "tilt.dev/v1alpha1",
        kind: "UIResource",
        metadata: clock.metadata(
            "UIResource",
            status.name,
            status.changed_ms,
            &[("tilt.dev/resource", status.name.to_owned())],
        ),
        spec: Empty {},
        status: UiStatus {
            build_history: status
                .build_history
                .iter()
                .map(|b| BuildTerminated {
                    error: b.error.clone(),
                    finish_time: clock.at(b.finish_ms),
                    span_id: format!("build:{}", b.number),
                    start_time: clock.at(b.start_ms),
                })
                .collect(),
            compose_resource_info: compose,
            conditions: clock.conditions(&status.conditions),
            current_build: status
                .current_build
                .map(|b| BuildRunning { span_id: format!("build:{}", b.number), start_time: clock.at(b.start_ms) }),
            disable_status: UiDisableStatus {
                disabled_count: u32::from(status.disabled),
                enabled_count: u32::from(!status.disabled),
                sources: Some([disable_source(status.name)]),
                state,
            },
            last_deploy_time: status.last_deploy_ms.map(|at| clock.at(at)),
            local_resource_info: local,
            order: status.order,
            pending_build_since: None,
            queued: status.queued,
            runtime_status: status.runtime_status.as_str(),
            specs,
            trigger_mode: Some(1),
            update_status: status.update_status.as_str(),
        },
    };
    serde_json::to_value(object).map_err(|e| e.to_string())
}

/// The "(Tiltfile)" UIResource: loaded when the objects were made, and again at `reloaded_ms`
/// when an edit removed a resource; nothing to run.
pub fn tiltfile_resource(clock: Clock, reloaded_ms: Option<i64>) -> Result<Value, String> {
    let loaded = |kind| Condition { kind, status: true, reason: None, since_ms: clock.loaded_ms };
    let object = UiResource {
        api_version: "tilt.dev/v1alpha1",
        kind: "UIResource",
        metadata: clock.metadata(
            "UIResource",
            TILTFILE,
            clock.loaded_ms,
            &[("tilt.dev/resource", TILTFILE.to_owned())],
        ),
        spec: Empty {},
        status: UiStatus {
            build_history: reloaded_ms
                .map(|reloaded| BuildTerminated {
                    error: None,
                    finish_time: clock.at(reloaded),
                    span_id: format!("tiltfile:{TILTFILE}:2"),
                    start_time: clock.at(reloaded - 200),
                })
                .into_iter()
                .chain([BuildTerminated {
                    error: None,
                    finish_time: clock.at(clock.loaded_ms),
                    span_id: format!("tiltfile:{TILTFILE}:1"),
                    start_time: clock.at(clock.loaded_ms - 500),
                }])
                .collect(),
            compose_resource_info: None,
            conditions: clock.conditions(&[loaded("UpToDate"), loaded("Ready")]),
            current_build: None,
            disable_status: UiDisableStatus { disabled_count: 0, enabled_count: 0, sources: None, state: "Enabled" },
            last_deploy_time: Some(clock.at(clock.loaded_ms)),
            local_resource_info: None,
            order: 1,
            pending_build_since: None,
            queued: false,
            runtime_status: "not_applicable",
            specs: Vec::new(),
            trigger_mode: None,
            update_status: "ok",
        },
    };
    serde_json::to_value(object).map_err(|e| e.to_string())
}

/// A compose resource's DockerComposeService; `None` for a local resource.
pub fn compose_service(status: &ResourceStatus, clock: Clock) -> Option<Result<Value, String>> {
    let compose = status.compose.as_ref()?;
    let names = &compose.names;
    let container = compose.container.as_ref();
    let apply = compose.apply.as_ref();
    let (disabled, state) = if status.disabled { (true, "Disabled") } else { (false, "Enabled") };
    let annotations = [
        ("tilt.dev/log-span-id", format!("dockercompose:{}", status.name)),
        ("tilt.dev/managed-by", "buildcontrol".to_owned()),
        ("tilt.dev/resource", status.name.to_owned()),
    ];
    let object = ComposeService {
        api_version: "tilt.dev/v1alpha1",
        kind: "DockerComposeService",
        metadata: clock.metadata("DockerComposeService", status.name, compose.changed_ms, &annotations),
        spec: ComposeSpec {
            disable_source: disable_source(status.name),
            image_maps: [names.image_target()],
            project: Project {
                config_paths: [names.compose_file()],
                name: names.project.clone(),
                project_path: names.dir.clone(),
            },
            service: status.name,
        },
        status: ComposeStatusJson {
            apply_error: apply.and_then(|(_, error)| error.clone()),
            container_id: container.map(|c| c.id.clone()),
            // The container's name comes with the apply's result.
            container_name: container.and(apply).map(|_| names.container()),
            container_state: container.map(|c| ContainerState {
                exit_code: c.exit_code,
                finished_at: c.finished_ms.map(|at| clock.at(at)),
                health_status: c.health,
                running: c.status == ContainerStatus::Running,
                started_at: c.started_ms.map(|at| clock.at(at)),
                status: c.status.as_str(),
            }),
            disable_status: DcDisableStatus {
                disabled,
                last_update_time: clock.second(status.toggled_ms.unwrap_or(clock.loaded_ms)),
                reason: format!("ConfigMap/key \"{}-disable\"/\"isDisabled\" is {disabled}", status.name),
                state,
            },
            last_apply_finish_time: apply.map(|(a, _)| clock.at(a.finish_ms)),
            last_apply_start_time: apply.map(|(a, _)| clock.at(a.start_ms)),
        },
    };
    Some(serde_json::to_value(object).map_err(|e| e.to_string()))
}

/// Several objects as a `kubectl`-style `List`.
pub fn list(items: Vec<Value>) -> Result<String, String> {
    let list = List { api_version: "v1", items, kind: "List", metadata: ListMetadata { resource_version: "" } };
    pretty(&serde_json::to_value(list).map_err(|e| e.to_string())?)
}

/// One object, pretty-printed as Tilt's printers do (4-space indent).
pub fn pretty(object: &Value) -> Result<String, String> {
    let mut buffer = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut buffer, formatter);
    object.serialize(&mut serializer).map_err(|e| e.to_string())?;
    String::from_utf8(buffer).map_err(|e| e.to_string())
}

pub fn datetime(unix_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339, UTC, microseconds (Kubernetes `MicroTime`): `2026-08-01T12:00:00.250000Z`.
pub fn micro_time(unix_ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    datetime(unix_ms).format(&format).unwrap_or_default()
}

/// The order of a `tilt get` answer: the apiserver lists objects in no fixed order, so every
/// answer (and every watch's first burst) comes in a new one. `seed` varies it.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for at in (1..items.len()).rev() {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let pick = state.wrapping_mul(0x2545_F491_4F6C_DD1D) % (at as u64 + 1);
        items.swap(at, usize::try_from(pick).unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Action;
    use crate::timeline::Model;
    use sync_tests::scenario::{BuildSpec, Resource, Scenario};

    #[test]
    fn objects_have_tilts_shape() {
        let s = Scenario::new([
            Resource::compose("server").build(BuildSpec::new(100, &[]).healthy(50).runtime(&[], 10).exit_code(3)),
            Resource::local("ui").serve_only("./ui.sh"),
        ]);
        let statuses = Model::new(&s, &[Action::trigger("server", 0)], 1000).statuses();
        let clock = Clock { start_unix_ms: 0, loaded_ms: -1000 };
        let server = ui_resource(&statuses[0], clock).unwrap();
        let specs = serde_json::json!([
            {"id": "image:citadel-workspace_server", "type": "image"},
            {"id": "docker-compose:server", "type": "docker-compose"}
        ]);
        assert_eq!(server["status"]["specs"], specs);
        assert_eq!(server["status"]["composeResourceInfo"], serde_json::json!({"healthStatus": "unhealthy"}));
        assert_eq!(server["status"]["runtimeStatus"], "error");
        assert_eq!(server["status"]["disableStatus"]["state"], "Enabled");
        let ui = ui_resource(&statuses[1], clock).unwrap();
        assert_eq!(ui["status"]["localResourceInfo"], serde_json::json!({}));
        assert_eq!(ui["status"]["updateStatus"], "none");

        let dc = compose_service(&statuses[0], clock).unwrap().unwrap();
        let state = &dc["status"]["containerState"];
        assert_eq!((state["status"].as_str(), state.get("running")), (Some("exited"), None));
        assert_eq!(state["exitCode"].as_i64(), Some(3));
        assert_eq!(dc["status"]["containerID"].as_str().map(str::len), Some(64));
        assert_eq!(dc["metadata"]["annotations"]["tilt.dev/log-span-id"], "dockercompose:server");
        assert!(compose_service(&statuses[1], clock).is_none());

        let text = list(vec![tiltfile_resource(clock, None).unwrap()]).unwrap();
        assert!(text.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n"), "{text}");
        assert!(
            text.ends_with("    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}"),
            "{text}"
        );
        let keys: Vec<&String> = server["status"].as_object().unwrap().keys().collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted as kubectl prints: {keys:?}");
    }

    #[test]
    fn times_are_utc_microseconds() {
        assert_eq!(micro_time(1_250), "1970-01-01T00:00:01.250000Z");
    }

    #[test]
    fn a_shuffle_keeps_every_item_and_varies() {
        let orders: std::collections::HashSet<Vec<u32>> = (0..20)
            .map(|seed| {
                let mut items = vec![1, 2, 3, 4, 5];
                shuffle(&mut items, seed);
                let mut sorted = items.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, [1, 2, 3, 4, 5]);
                items
            })
            .collect();
        assert!(orders.len() > 5, "{orders:?}");
    }
}
