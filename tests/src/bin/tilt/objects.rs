//! The API objects `tilt get … -o json` prints: `UIResource` (the "(Tiltfile)" one too) and
//! `DockerComposeService`, alone or in a `List`; fields in Tilt's order, pretty-printed with a
//! 4-space indent as Tilt's printers do.

use serde::Serialize;
use sync_tests::scenario::Kind;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::timeline::{Condition, ResourceStatus};

/// The name of the Tiltfile's own resource.
pub const TILTFILE: &str = "(Tiltfile)";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List<T> {
    api_version: &'static str,
    items: Vec<T>,
    kind: &'static str,
    metadata: ListMetadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMetadata {
    resource_version: &'static str,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UiResource<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    status: UiStatus,
}

/// The fields of Tilt's `UIResourceStatus` the stand-in fills, in Tilt's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UiStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    build_history: Vec<BuildTerminated>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_build: Option<BuildRunning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compose_resource_info: Option<ComposeInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_resource_info: Option<LocalInfo>,
    runtime_status: &'static str,
    update_status: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    specs: Vec<TargetSpec>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    queued: bool,
    conditions: Vec<ConditionJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildTerminated {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    start_time: String,
    finish_time: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildRunning {
    start_time: String,
    #[serde(rename = "spanID")]
    span_id: String,
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
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    last_transition_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComposeService<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: ComposeSpec<'a>,
    status: ComposeStatus,
}

#[derive(Serialize)]
struct ComposeSpec<'a> {
    service: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComposeStatus {
    #[serde(rename = "containerID", skip_serializing_if = "Option::is_none")]
    container_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_state: Option<ContainerState>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerState {
    status: &'static str,
    running: bool,
    #[serde(skip_serializing_if = "is_zero")]
    exit_code: i32,
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_status: Option<&'static str>,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

/// Turns times in milliseconds since scenario start into Kubernetes `MicroTime`s.
#[derive(Clone, Copy)]
pub struct Clock {
    pub start_unix_ms: i64,
}

impl Clock {
    fn at(self, offset_ms: i64) -> String {
        micro_time(self.start_unix_ms + offset_ms)
    }

    fn conditions(self, conditions: &[Condition]) -> Vec<ConditionJson> {
        conditions
            .iter()
            .map(|c| ConditionJson {
                kind: c.kind,
                status: if c.status { "True" } else { "False" },
                last_transition_time: self.at(c.since_ms),
                reason: c.reason,
            })
            .collect()
    }
}

/// A resource's UIResource.
pub fn ui_resource<'a>(status: &'a ResourceStatus, clock: Clock) -> UiResource<'a> {
    let (compose, local, spec) = match status.kind {
        Kind::Compose => {
            let health = status.container.as_ref().and_then(|c| c.health);
            (Some(ComposeInfo { health_status: health }), None, ("dc", "docker-compose"))
        }
        Kind::Local => (None, Some(LocalInfo { pid: status.pid }), ("local", "local")),
    };
    UiResource {
        api_version: "tilt.dev/v1alpha1",
        kind: "UIResource",
        metadata: Metadata { name: status.name },
        status: UiStatus {
            build_history: status
                .build_history
                .iter()
                .map(|b| BuildTerminated {
                    error: b.error.clone(),
                    start_time: clock.at(b.start_ms),
                    finish_time: clock.at(b.finish_ms),
                    span_id: format!("build:{}", b.number),
                })
                .collect(),
            current_build: status
                .current_build
                .map(|b| BuildRunning { start_time: clock.at(b.start_ms), span_id: format!("build:{}", b.number) }),
            compose_resource_info: compose,
            local_resource_info: local,
            runtime_status: status.runtime_status.as_str(),
            update_status: status.update_status.as_str(),
            specs: vec![TargetSpec { id: format!("{}:{}", spec.0, status.name), kind: spec.1 }],
            queued: status.queued,
            conditions: clock.conditions(&status.conditions),
        },
    }
}

/// The "(Tiltfile)" UIResource: loaded before scenario start, nothing to run.
pub fn tiltfile_resource(clock: Clock) -> UiResource<'static> {
    let loaded = |kind| Condition { kind, status: true, reason: None, since_ms: 0 };
    UiResource {
        api_version: "tilt.dev/v1alpha1",
        kind: "UIResource",
        metadata: Metadata { name: TILTFILE },
        status: UiStatus {
            build_history: Vec::new(),
            current_build: None,
            compose_resource_info: None,
            local_resource_info: None,
            runtime_status: "not_applicable",
            update_status: "ok",
            specs: Vec::new(),
            queued: false,
            conditions: clock.conditions(&[loaded("UpToDate"), loaded("Ready")]),
        },
    }
}

/// A compose resource's DockerComposeService; `None` for a local resource.
pub fn compose_service<'a>(status: &'a ResourceStatus, clock: Clock) -> Option<ComposeService<'a>> {
    if status.kind != Kind::Compose {
        return None;
    }
    let container = status.container.as_ref();
    Some(ComposeService {
        api_version: "tilt.dev/v1alpha1",
        kind: "DockerComposeService",
        metadata: Metadata { name: status.name },
        spec: ComposeSpec { service: status.name },
        status: ComposeStatus {
            container_id: container.map(|c| c.id.clone()),
            container_name: container.map(|_| format!("standin-{}-1", status.name)),
            container_state: container.map(|c| ContainerState {
                status: if c.exited.is_some() { "exited" } else { "running" },
                running: c.exited.is_none(),
                exit_code: c.exited.map_or(0, |(_, code)| code),
                started_at: clock.at(c.started_ms),
                finished_at: c.exited.map(|(at, _)| clock.at(at)),
                health_status: c.health,
            }),
        },
    })
}

/// Several objects as a `kubectl`-style `List`.
pub fn list<T: Serialize>(items: Vec<T>) -> Result<String, String> {
    pretty(&List { api_version: "v1", items, kind: "List", metadata: ListMetadata { resource_version: "" } })
}

/// One object, pretty-printed as Tilt's printers do (4-space indent).
pub fn pretty(object: &impl Serialize) -> Result<String, String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Model;
    use sync_tests::scenario::{BuildSpec, Resource, Scenario};

    #[test]
    fn objects_have_tilts_shape() {
        let s = Scenario::new([
            Resource::compose("server").build(BuildSpec::new(100, &[]).healthy(50).runtime(&[], 10).exit_code(3)),
            Resource::local("ui").serve_only("./ui.sh"),
        ]);
        let triggers = [crate::state::Trigger { resource: "server".to_owned(), ms: 0 }];
        let statuses = Model::new(&s, &triggers, 1000).statuses();
        let clock = Clock { start_unix_ms: 0 };
        let server: serde_json::Value = serde_json::to_value(ui_resource(&statuses[0], clock)).unwrap();
        assert_eq!(server["status"]["specs"], serde_json::json!([{"id": "dc:server", "type": "docker-compose"}]));
        assert_eq!(server["status"]["composeResourceInfo"], serde_json::json!({"healthStatus": "healthy"}));
        let ui: serde_json::Value = serde_json::to_value(ui_resource(&statuses[1], clock)).unwrap();
        assert_eq!(ui["status"]["localResourceInfo"], serde_json::json!({}));
        assert_eq!(ui["status"]["updateStatus"], "none");

        let dc = serde_json::to_value(compose_service(&statuses[0], clock)).unwrap();
        let state = &dc["status"]["containerState"];
        assert_eq!((state["status"].as_str(), state["running"].as_bool()), (Some("exited"), Some(false)));
        assert_eq!(
            (state["exitCode"].as_i64(), state["finishedAt"].as_str()),
            (Some(3), Some("1970-01-01T00:00:00.110000Z"))
        );
        assert!(compose_service(&statuses[1], clock).is_none());

        let text = list(vec![tiltfile_resource(clock)]).unwrap();
        assert!(text.starts_with("{\n    \"apiVersion\": \"v1\",\n    \"items\": [\n"), "{text}");
        assert!(
            text.ends_with("    \"kind\": \"List\",\n    \"metadata\": {\n        \"resourceVersion\": \"\"\n    }\n}"),
            "{text}"
        );
    }

    #[test]
    fn times_are_utc_microseconds() {
        assert_eq!(micro_time(1_250), "1970-01-01T00:00:01.250000Z");
    }
}
