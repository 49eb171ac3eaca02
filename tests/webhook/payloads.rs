//! Every notification example of the vendored CAMARA spec files, Nokia's two shapes and the
//! reference implementation's extras are accepted and land in the resource's status.

use qod_operator::{
    api::conditions::{self, READY},
    qod::{QosStatus, StatusInfo},
};
use qod_test_support::camara::{
    SPEC_FILES, nokia_hybrid_notification, notification_examples, payload,
};
use serde_json::{Value, json};

use crate::harness::{BATCH, CLOUDEVENTS, Hook};

/// Posts `body` to a fresh resource holding the body's session and checks the status it
/// leaves: the network's words verbatim, Ready as they imply, and the event's identity.
async fn lands_in_status(hook: &Hook, name: &str, body: &Value, content_type: &str) {
    let expected = payload(body).clone();
    let session = expected["sessionId"].as_str().unwrap();
    let resource = hook.resource(name, Some(session)).await;
    let answer = hook
        .post(
            &format!(
                "/notifications/{}",
                resource.metadata.uid.as_deref().unwrap()
            ),
            Some(content_type),
            Some(&format!("Bearer {}", hook.token(&resource))),
            body.to_string(),
        )
        .await;
    assert_eq!(answer.status, 204, "{name}: {answer:?}\n{body:#}");
    assert!(answer.body.is_empty());

    let status = hook.status_of(name).await;
    let qos = expected["qosStatus"].as_str().unwrap();
    let info = expected["statusInfo"].as_str();
    assert_eq!(status.session_id.as_deref(), Some(session), "{name}");
    assert_eq!(status.qos_status.as_deref(), Some(qos), "{name}");
    assert_eq!(status.status_info.as_deref(), info, "{name}");
    let (ready, reason, _) =
        conditions::ready_from_network(&QosStatus::from(qos), info.map(StatusInfo::from).as_ref());
    let condition = conditions::find(&status.conditions, READY).expect("Ready is set");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        (ready, reason),
        "{name}"
    );
    assert_eq!(condition.observed_generation, Some(1), "{name}");
    let last = status.last_notification.expect("lastNotification is set");
    let id = body
        .get("id")
        .or_else(|| body.pointer("/event/eventId"))
        .or_else(|| body.get("eventId"))
        .and_then(Value::as_str);
    assert_eq!(last.id.as_deref(), id, "{name}");
    assert_eq!(
        last.source.as_deref(),
        body.get("source").and_then(Value::as_str),
        "{name}"
    );
    let time = body
        .get("time")
        .or_else(|| body.pointer("/event/eventTime"))
        .or_else(|| body.get("eventTime"))
        .and_then(Value::as_str)
        .map(|t| t.parse::<jiff::Timestamp>().unwrap());
    // metav1.Time keeps whole seconds.
    assert_eq!(
        last.time.map(|t| t.0.as_second()),
        time.map(|t| t.as_second()),
        "{name}"
    );
}

#[tokio::test]
async fn every_spec_example_lands_in_status() {
    let hook = Hook::start().await;
    let mut count = 0;
    for file in SPEC_FILES {
        let examples = notification_examples(file);
        assert!(!examples.is_empty(), "{file}: no notification example");
        for example in examples {
            // Legacy bodies are plain JSON; CloudEvents say so.
            let content_type = if example.get("type").is_some() {
                CLOUDEVENTS
            } else {
                "application/json"
            };
            count += 1;
            lands_in_status(&hook, &format!("example-{count}"), &example, content_type).await;
        }
    }
    assert!(count >= SPEC_FILES.len(), "only {count} examples");
}

#[tokio::test]
async fn nokia_shapes_and_reference_extras_land_in_status() {
    let hook = Hook::start().await;
    // Nokia's documented hybrid: CloudEvent fields, the legacy event object and data.
    let hybrid = nokia_hybrid_notification();
    lands_in_status(&hook, "nokia-hybrid", &hybrid, CLOUDEVENTS).await;
    // Nokia's older receiver example: the legacy event only, REQUESTED allowed.
    let legacy = json!({"event": {"eventType": "QOS_STATUS_CHANGED",
                                  "eventTime": "2024-06-18T08:50:00Z",
                                  "eventDetail": {"sessionId": "5e6f7a8b-0000-4000-8000-00000000000a",
                                                  "qosStatus": "REQUESTED"}}});
    lands_in_status(
        &hook,
        "nokia-legacy",
        &legacy,
        "application/json; charset=utf-8",
    )
    .await;
    // The conformance tests' type string for v1, and the DT reference implementation's extras.
    let conformance = json!({
        "id": "e-1", "source": "https://qod.example.net/sessions/s-2", "subject": "",
        "type": "org.camaraproject.qod.v1.qos-status-changed",
        "specversion": "1.0", "time": "2025-01-02T03:04:05Z",
        "data": {"sessionId": "1b2c3d4e-0000-4000-8000-000000000002", "qosStatus": "UNAVAILABLE",
                 "statusInfo": "NETWORK_TERMINATED", "notificationUrl": "https://op/notify"}
    });
    lands_in_status(
        &hook,
        "reference",
        &conformance,
        "application/cloudevents+json; charset=UTF-8",
    )
    .await;
}

#[tokio::test]
async fn a_batch_is_applied_in_order() {
    let hook = Hook::start().await;
    let session = "7b8e4d10-2c3a-4f1e-9d6b-5a4c3b2a1f00";
    let resource = hook.resource("batched", Some(session)).await;
    let body = json!([
        {"id": "1", "source": "s", "type": "org.camaraproject.qod.v0.qos-status-changed",
         "time": "2025-01-02T03:04:05Z", "data": {"sessionId": session, "qosStatus": "AVAILABLE"}},
        {"id": "2", "source": "s", "type": "org.camaraproject.quality-on-demand.v1.qos-status-changed",
         "time": "2025-01-02T03:04:06Z",
         "data": {"sessionId": session, "qosStatus": "UNAVAILABLE", "statusInfo": "DELETE_REQUESTED"}}
    ]);
    let answer = hook
        .post(
            &format!(
                "/notifications/{}",
                resource.metadata.uid.as_deref().unwrap()
            ),
            Some(BATCH),
            Some(&format!("Bearer {}", hook.token(&resource))),
            body.to_string(),
        )
        .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    let status = hook.status_of("batched").await;
    assert_eq!(status.qos_status.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(status.status_info.as_deref(), Some("DELETE_REQUESTED"));
    assert_eq!(status.last_notification.unwrap().id.as_deref(), Some("2"));
    assert_eq!(
        hook.metric("qod_operator_notifications_total{result=\"applied\"}"),
        Some(2.0)
    );
}

#[tokio::test]
async fn the_session_route_finds_the_resource_by_session_id() {
    let hook = Hook::start().await;
    let session = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
    let resource = hook.resource("by-session", Some(session)).await;
    let event =
        crate::harness::cloud_event(session, "AVAILABLE", None, "e-1", jiff::Timestamp::now());
    let answer = hook
        .post(
            "/notifications",
            Some(CLOUDEVENTS),
            Some(&format!("Bearer {}", hook.token(&resource))),
            event.to_string(),
        )
        .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    let status = hook.status_of("by-session").await;
    assert_eq!(status.qos_status.as_deref(), Some("AVAILABLE"));
    let ready = conditions::find(&status.conditions, READY).unwrap();
    assert_eq!(ready.status, "True");
}

#[tokio::test]
async fn a_configured_static_token_is_accepted() {
    let hook = Hook::start_with(|config| {
        config.static_token = Some(secrecy::SecretString::from("my-token"));
    })
    .await;
    let session = "aaaaaaaa-5717-4562-b3fc-2c963f66afa6";
    let resource = hook.resource("static", Some(session)).await;
    let event =
        crate::harness::cloud_event(session, "AVAILABLE", None, "e-1", jiff::Timestamp::now());
    let answer = hook
        .post(
            &format!(
                "/notifications/{}",
                resource.metadata.uid.as_deref().unwrap()
            ),
            Some(CLOUDEVENTS),
            Some("Bearer my-token"),
            event.to_string(),
        )
        .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(
        hook.status_of("static").await.qos_status.as_deref(),
        Some("AVAILABLE")
    );
}
