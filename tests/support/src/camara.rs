//! The notification examples of the vendored CAMARA spec files (`tests/fixtures/camara/`) and
//! of Nokia's documentation, for the tests that parse them and the tests that post them to the
//! webhook.

use serde_json::{Value, json};

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

/// Nokia's documented hybrid notification of a session AVAILABLE: CloudEvent fields, the legacy
/// `event.eventDetail` and `data` together.
pub fn nokia_hybrid_notification() -> Value {
    json!({
        "id": "9c7e3ab2-4f0a-4d1e-8b55-2f1d0c3a7e61",
        "source": "https://network-as-code.nokia.example/qod/v0/sessions/08305343-7ed2-43b7-8eda-4c5ae9805bd0",
        "type": "org.camaraproject.qod.v0.qos-status-changed",
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "time": "2024-06-18T08:48:12.300312Z",
        "event": {
            "eventType": "QOS_STATUS_CHANGED",
            "eventTime": "2024-06-18T08:48:12.300312Z",
            "eventDetail": {"sessionId": "08305343-7ed2-43b7-8eda-4c5ae9805bd0",
                            "qosStatus": "AVAILABLE", "statusInfo": null}
        },
        "data": {"sessionId": "08305343-7ed2-43b7-8eda-4c5ae9805bd0",
                 "qosStatus": "AVAILABLE", "statusInfo": null}
    })
}
