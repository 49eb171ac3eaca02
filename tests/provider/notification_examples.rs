//! Every `qos-status-changed` example in the vendored CAMARA spec files, and the shapes Nokia and
//! the reference implementations send, parse into the session id, status and reason they carry.

use qod_operator::qod::event::{ACCEPTED_TYPES, parse_batch, parse_event};
use qod_test_support::camara::{
    SPEC_FILES, nokia_hybrid_notification, notification_examples, payload,
};
use serde_json::{Value, json};

#[test]
fn every_spec_example_parses() {
    for file in SPEC_FILES {
        let examples = notification_examples(file);
        assert!(
            !examples.is_empty(),
            "{file}: no notification example found"
        );
        for example in examples {
            let parsed = parse_event(example.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{file}: {e}\n{example:#}"));
            let expected = payload(&example);
            assert_eq!(
                parsed.session_id,
                expected["sessionId"].as_str().unwrap(),
                "{file}"
            );
            assert_eq!(
                parsed.qos_status.as_str(),
                expected["qosStatus"].as_str().unwrap(),
                "{file}"
            );
            assert_eq!(
                parsed.status_info.as_ref().map(|s| s.as_str()),
                expected["statusInfo"].as_str(),
                "{file}"
            );
            if let Some(event_type) = example.get("type").and_then(Value::as_str) {
                assert!(ACCEPTED_TYPES.contains(&event_type), "{file}: {event_type}");
            }
        }
    }
}

/// Nokia's documented hybrid: CloudEvent fields, legacy `event.eventDetail` and `data` together.
#[test]
fn nokia_hybrid_notification_parses() {
    let body = nokia_hybrid_notification();
    let parsed = parse_event(body.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.session_id, "08305343-7ed2-43b7-8eda-4c5ae9805bd0");
    assert_eq!(parsed.qos_status.as_str(), "AVAILABLE");
    assert_eq!(parsed.status_info, None);
    assert_eq!(
        parsed.id.as_deref(),
        Some("9c7e3ab2-4f0a-4d1e-8b55-2f1d0c3a7e61")
    );
    assert_eq!(
        parsed.time.map(|t| t.to_string()),
        Some("2024-06-18T08:48:12.300312Z".to_owned())
    );
}

/// Nokia's older receiver example: only the legacy `event` object, REQUESTED allowed.
#[test]
fn nokia_legacy_notification_parses() {
    let body = json!({"event": {"eventType": "QOS_STATUS_CHANGED",
                                "eventTime": "2024-06-18T08:50:00Z",
                                "eventDetail": {"sessionId": "s-1", "qosStatus": "REQUESTED"}}});
    let parsed = parse_event(body.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.qos_status.as_str(), "REQUESTED");
    assert_eq!(parsed.id, None);
}

/// Deutsche Telekom's reference implementation adds an empty `subject` and `data.notificationUrl`.
#[test]
fn extra_fields_of_the_reference_implementation_are_ignored() {
    let body = json!({
        "id": "e-1", "source": "https://qod.example.net/sessions/s-2", "subject": "",
        "type": "org.camaraproject.quality-on-demand.v0.qos-status-changed",
        "specversion": "1.0", "time": "2025-01-02T03:04:05Z",
        "data": {"sessionId": "s-2", "qosStatus": "UNAVAILABLE",
                 "statusInfo": "NETWORK_TERMINATED", "notificationUrl": "https://op/notify"}
    });
    let parsed = parse_event(body.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.status_info.unwrap().as_str(), "NETWORK_TERMINATED");
}

#[test]
fn batch_of_mixed_versions_parses_in_order() {
    let body = json!([
        {"id": "1", "source": "s", "type": "org.camaraproject.qod.v0.qos-status-changed",
         "time": "2025-01-02T03:04:05Z", "data": {"sessionId": "a", "qosStatus": "AVAILABLE"}},
        {"id": "2", "source": "s", "type": "org.camaraproject.quality-on-demand.v1.qos-status-changed",
         "time": "2025-01-02T03:04:06Z",
         "data": {"sessionId": "a", "qosStatus": "UNAVAILABLE", "statusInfo": "DELETE_REQUESTED"}}
    ]);
    let parsed = parse_batch(body.to_string().as_bytes()).unwrap();
    let ids: Vec<_> = parsed.iter().map(|e| e.id.as_deref().unwrap()).collect();
    assert_eq!(ids, ["1", "2"]);
}
