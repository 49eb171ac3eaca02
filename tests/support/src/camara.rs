//! The notification examples of the vendored CAMARA spec files (`tests/fixtures/camara/`), for
//! the tests that parse them and the tests that post them to the webhook.

use serde_json::Value;

use crate::tools::camara_spec;

/// Every QoD spec file with notification examples, oldest first.
pub const SPEC_FILES: [&str; 6] = [
    "camara-qod-v0.9.0.yaml",
    "camara-qod-v0.10.1.yaml",
    "camara-qod-v0.11.1.yaml",
    "camara-qod-v1.0.0.yaml",
    "camara-qod-v1.1.0.yaml",
    "camara-qod-v1.2.0-rc.3.yaml",
];

/// Every status-changed event (CloudEvent or legacy body) in the spec `file`.
pub fn notification_examples(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(camara_spec(file)).expect("read spec");
    let spec: Value = serde_saphyr::from_str(&text).expect("spec is YAML");
    let mut found = Vec::new();
    collect_events(&spec, &mut found);
    found
}

fn collect_events(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            let cloud_event = map
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(".qos-status-changed"));
            let legacy = map.get("eventType").and_then(Value::as_str) == Some("QOS_STATUS_CHANGED");
            if cloud_event || legacy {
                found.push(value.clone());
            } else {
                map.values().for_each(|v| collect_events(v, found));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_events(v, found)),
        _ => {}
    }
}

/// The payload an example carries: `data`, else the legacy `eventDetail`.
pub fn payload(example: &Value) -> &Value {
    example
        .get("data")
        .or_else(|| example.get("eventDetail"))
        .or_else(|| example.pointer("/event/eventDetail"))
        .expect("example has a payload")
}
