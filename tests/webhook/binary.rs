//! CloudEvents binary content mode: the attributes in `ce-*` headers (percent-encoded as the
//! HTTP binding says), the event's data as the body. Each event here is also sent in
//! structured mode to a twin resource, so "as structured mode does" is checked field by field;
//! the token check, dedupe, ordering and limits are the same, and a request in neither mode is
//! told what each mode needs.

use jiff::{SignedDuration, Timestamp};
use qod_operator::{api::QodSession, qod::event};
use serde_json::{Value, json};

use crate::harness::{Answer, CLOUDEVENTS, Hook, cloud_event, snapshot};

/// A source that needs percent-encoding in a header (space, non-ASCII).
const SOURCE: &str = "urn:qod-provider:Qualité de service";

/// Percent-encodes a header value as the binding says (section 3.1.3.2): space, `"`, `%` and
/// everything outside printable ASCII, byte by byte of its UTF-8.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if (b'!'..=b'~').contains(&byte) && byte != b'"' && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Header names and values of a request.
type Headers = Vec<(String, String)>;

/// A refused request: what it is, its headers and body, the status and words of the detail.
type Refused = (&'static str, Headers, String, u16, Vec<&'static str>);

/// The `ce-*` headers and the body of `event` (a structured event) in binary mode.
fn binary(event: &Value) -> (Headers, String) {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    for attribute in ["specversion", "id", "source", "type", "time"] {
        if let Some(value) = event.get(attribute).and_then(Value::as_str) {
            headers.push((format!("ce-{attribute}"), encode(value)));
        }
    }
    (headers, event["data"].to_string())
}

/// `event` as an event of `event_type` from [`SOURCE`].
fn from_source(event_type: &str, mut event: Value) -> Value {
    event["type"] = json!(event_type);
    event["source"] = json!(SOURCE);
    event
}

/// POSTs `headers` and `body` to `path` of the webhook at `base` with `authorization` (when
/// given).
async fn post(
    hook: &Hook,
    base: &str,
    path: &str,
    authorization: Option<&str>,
    headers: &[(String, String)],
    body: String,
) -> Answer {
    let mut all: Vec<(&str, &str)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    if let Some(authorization) = authorization {
        all.push(("authorization", authorization));
    }
    hook.post_with_headers(base, path, &all, body).await
}

/// `headers` and `body` to the resource's sink with its token.
async fn post_to_sink(
    hook: &Hook,
    resource: &QodSession,
    headers: &[(String, String)],
    body: String,
) -> Answer {
    let path = Hook::path(resource);
    let authorization = hook.bearer(resource);
    post(hook, &hook.base, &path, Some(&authorization), headers, body).await
}

/// `event` in binary mode to the resource's sink with its token.
async fn notify_binary(hook: &Hook, resource: &QodSession, event: &Value) -> Answer {
    let (headers, body) = binary(event);
    post_to_sink(hook, resource, &headers, body).await
}

/// The status as the webhook leaves it, without what differs between twin resources by
/// construction: the session id (each holds its own) and when Ready last flipped.
fn comparable(resource: &QodSession) -> Value {
    let mut status = serde_json::to_value(Hook::status(resource)).unwrap();
    status.as_object_mut().unwrap().remove("sessionId");
    for condition in status["conditions"].as_array_mut().into_iter().flatten() {
        condition
            .as_object_mut()
            .unwrap()
            .remove("lastTransitionTime");
    }
    status
}

#[tokio::test]
async fn a_binary_mode_event_updates_status_exactly_as_its_structured_twin_does() {
    let hook = Hook::start().await;
    let t0 = Timestamp::now();
    for (n, event_type) in event::ACCEPTED_TYPES.into_iter().enumerate() {
        let structured_session = format!("5e55{n:04}-0000-4000-8000-000000000001");
        let binary_session = format!("b1a5{n:04}-0000-4000-8000-000000000001");
        let structured = hook
            .resource(&format!("structured-{n}"), Some(&structured_session))
            .await;
        let binary_twin = hook
            .resource(&format!("binary-{n}"), Some(&binary_session))
            .await;
        for (step, (qos, info)) in [
            ("AVAILABLE", None),
            ("UNAVAILABLE", Some("NETWORK_TERMINATED")),
        ]
        .into_iter()
        .enumerate()
        {
            let id = format!("e-{n}-{step}");
            let time = t0 + SignedDuration::from_secs(i64::try_from(step).unwrap());
            let answer = hook
                .notify(
                    &structured,
                    &from_source(
                        event_type,
                        cloud_event(&structured_session, qos, info, &id, time),
                    ),
                )
                .await;
            assert_eq!(answer.status, 204, "{event_type} structured: {answer:?}");
            let answer = notify_binary(
                &hook,
                &binary_twin,
                &from_source(
                    event_type,
                    cloud_event(&binary_session, qos, info, &id, time),
                ),
            )
            .await;
            assert_eq!(answer.status, 204, "{event_type} binary: {answer:?}");
            assert!(answer.body.is_empty());

            let from_binary = hook.get(&format!("binary-{n}")).await;
            let status = Hook::status(&from_binary);
            assert_eq!(status.qos_status.as_deref(), Some(qos), "{event_type}");
            assert_eq!(status.status_info.as_deref(), info, "{event_type}");
            // Percent-decoded before it is stored.
            let last = status.last_notification.unwrap();
            assert_eq!(last.source.as_deref(), Some(SOURCE), "{event_type}");
            assert_eq!(last.id.as_deref(), Some(id.as_str()), "{event_type}");
            assert_eq!(
                comparable(&from_binary),
                comparable(&hook.get(&format!("structured-{n}")).await),
                "{event_type}, step {step}"
            );
        }
    }
    assert_eq!(
        hook.metric("qod_operator_notifications_total{result=\"applied\"}"),
        Some(16.0)
    );

    // The session route finds the resource by the session id in the body.
    let session = "b1a5ffff-0000-4000-8000-000000000002";
    let resource = hook.resource("by-session", Some(session)).await;
    let (headers, body) = binary(&cloud_event(session, "AVAILABLE", None, "e-s", t0));
    let answer = post(
        &hook,
        &hook.base,
        "/notifications",
        Some(&hook.bearer(&resource)),
        &headers,
        body,
    )
    .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(
        hook.status_of("by-session").await.qos_status.as_deref(),
        Some("AVAILABLE")
    );
}

#[tokio::test]
async fn a_binary_mode_event_needs_the_resources_token() {
    let hook = Hook::start().await;
    let session = "b1a5a000-0000-4000-8000-000000000003";
    let target = hook.resource("guarded", Some(session)).await;
    let other = hook
        .resource("neighbour", Some("b1a5a000-0000-4000-8000-000000000004"))
        .await;
    let (headers, body) = binary(&cloud_event(
        session,
        "AVAILABLE",
        None,
        "e-1",
        Timestamp::now(),
    ));
    let before = snapshot(&hook.get("guarded").await);
    for (what, path, authorization, mentions) in [
        (
            "no token",
            Hook::path(&target),
            None,
            "no Authorization header",
        ),
        (
            "a wrong token",
            Hook::path(&target),
            Some("Bearer 0000".to_owned()),
            "not the one registered",
        ),
        (
            "another resource's token",
            Hook::path(&target),
            Some(hook.bearer(&other)),
            "not the one registered",
        ),
        (
            "another resource's token on the session route",
            "/notifications".to_owned(),
            Some(hook.bearer(&other)),
            "not the one registered",
        ),
    ] {
        let answer = post(
            &hook,
            &hook.base,
            &path,
            authorization.as_deref(),
            &headers,
            body.clone(),
        )
        .await;
        assert_eq!(answer.status, 401, "{what}: {answer:?}");
        assert!(answer.detail().contains(mentions), "{what}: {answer:?}");
        assert!(
            answer
                .www_authenticate
                .as_deref()
                .is_some_and(|v| v.starts_with("Bearer")),
            "{what}: {answer:?}"
        );
        assert_eq!(
            snapshot(&hook.get("guarded").await),
            before,
            "{what} changed the resource"
        );
    }
    // The right token stores it.
    let answer = post_to_sink(&hook, &target, &headers, body).await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(
        hook.status_of("guarded").await.qos_status.as_deref(),
        Some("AVAILABLE")
    );
}

#[tokio::test]
async fn binary_mode_events_are_deduplicated_and_ordered_as_structured_ones() {
    let hook = Hook::start().await;
    let session = "b1a5d000-0000-4000-8000-000000000005";
    let target = hook.resource("deduped", Some(session)).await;
    let t0 = Timestamp::now();
    let first = from_source(
        event::TYPE_V1,
        cloud_event(session, "AVAILABLE", None, "e-1", t0),
    );
    assert_eq!(notify_binary(&hook, &target, &first).await.status, 204);
    let stored = hook.get("deduped").await;
    assert_eq!(
        Hook::status(&stored).qos_status.as_deref(),
        Some("AVAILABLE")
    );

    // The same (source, id) again, even carrying other words and a later time, changes
    // nothing: in binary mode, in structured mode, and at a replica with no memory of it.
    let mut repeated = from_source(
        event::TYPE_V1,
        cloud_event(
            session,
            "UNAVAILABLE",
            Some("NETWORK_TERMINATED"),
            "e-1",
            t0 + SignedDuration::from_secs(2),
        ),
    );
    assert_eq!(notify_binary(&hook, &target, &repeated).await.status, 204);
    assert_eq!(snapshot(&hook.get("deduped").await), snapshot(&stored));
    assert_eq!(
        hook.metric("qod_operator_notifications_total{result=\"duplicate\"}"),
        Some(1.0)
    );
    assert_eq!(hook.notify(&target, &repeated).await.status, 204);
    assert_eq!(snapshot(&hook.get("deduped").await), snapshot(&stored));
    let replica = hook
        .replica(qod_operator::cache::SessionCache::start(
            hook.client.clone(),
            Some(&hook.namespace),
        ))
        .await;
    let (headers, body) = binary(&repeated);
    let answer = post(
        &hook,
        &replica,
        &Hook::path(&target),
        Some(&hook.bearer(&target)),
        &headers,
        body,
    )
    .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(snapshot(&hook.get("deduped").await), snapshot(&stored));

    // An older event is stale and ignored.
    let older = from_source(
        event::TYPE_V1,
        cloud_event(
            session,
            "REQUESTED",
            None,
            "e-0",
            t0 - SignedDuration::from_secs(5),
        ),
    );
    assert_eq!(notify_binary(&hook, &target, &older).await.status, 204);
    assert_eq!(snapshot(&hook.get("deduped").await), snapshot(&stored));
    assert_eq!(
        hook.metric("qod_operator_notifications_total{result=\"stale\"}"),
        Some(1.0)
    );

    // A new id is applied.
    repeated["id"] = json!("e-2");
    assert_eq!(notify_binary(&hook, &target, &repeated).await.status, 204);
    let status = hook.status_of("deduped").await;
    assert_eq!(status.qos_status.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(status.last_notification.unwrap().id.as_deref(), Some("e-2"));
}

/// Requests in neither mode, and binary-mode requests with a header or body wrong, are refused
/// with a detail that says what is accepted or names the header, and change nothing.
#[tokio::test]
async fn requests_in_neither_mode_or_with_bad_headers_are_told_what_is_accepted() {
    let hook = Hook::start().await;
    let session = "b1a5e000-0000-4000-8000-000000000006";
    let target = hook.resource("refusing", Some(session)).await;
    let event = from_source(
        event::TYPE_V1,
        cloud_event(session, "AVAILABLE", None, "e-1", Timestamp::now()),
    );
    let (good, data) = binary(&event);
    // The binary-mode headers with one changed (`None` removes it).
    let changed = |name: &str, value: Option<&str>| {
        let mut headers: Headers = good.iter().filter(|(n, _)| n != name).cloned().collect();
        if let Some(value) = value {
            headers.push((name.to_owned(), value.to_owned()));
        }
        headers
    };
    let plain = |content_type: Option<&str>| {
        content_type
            .map(|ct| vec![("content-type".to_owned(), ct.to_owned())])
            .unwrap_or_default()
    };
    let neither = [
        "structured mode",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
        "binary mode",
        "ce-specversion",
        "ce-type",
    ];
    let cases: Vec<Refused> = vec![
        (
            "the data as text/plain without ce-* headers",
            plain(Some("text/plain")),
            data.clone(),
            415,
            [&["`text/plain`"][..], &neither].concat(),
        ),
        (
            "no Content-Type and no ce-* headers",
            plain(None),
            data.clone(),
            415,
            [&["no Content-Type"][..], &neither].concat(),
        ),
        (
            "application/octet-stream without ce-* headers",
            plain(Some("application/octet-stream")),
            data.clone(),
            415,
            neither.to_vec(),
        ),
        (
            "the data as application/json without ce-* headers",
            plain(Some("application/json")),
            data.clone(),
            400,
            vec!["`type` is missing", "binary-mode event", "ce-specversion"],
        ),
        (
            "binary mode with data that is not JSON",
            changed("content-type", Some("text/plain")),
            data.clone(),
            415,
            vec!["binary mode", "`text/plain` is not JSON"],
        ),
        (
            "binary mode without ce-specversion",
            changed("ce-specversion", None),
            data.clone(),
            400,
            vec!["`ce-specversion` header is missing"],
        ),
        (
            "binary mode without ce-type",
            changed("ce-type", None),
            data.clone(),
            400,
            vec!["`ce-type` header is missing"],
        ),
        (
            "binary mode of CloudEvents 0.3",
            changed("ce-specversion", Some("0.3")),
            data.clone(),
            400,
            vec!["`0.3`", "only CloudEvents 1.0"],
        ),
        (
            "binary mode with an unknown type",
            changed("ce-type", Some("org.camaraproject.device-roaming.v0.roaming-status")),
            data.clone(),
            400,
            vec!["org.camaraproject.device-roaming.v0.roaming-status"],
        ),
        (
            "binary mode with a ce-id that is not UTF-8",
            changed("ce-id", Some("e%C0%A0")),
            data.clone(),
            400,
            vec!["`ce-id`", "UTF-8"],
        ),
        (
            "binary mode with a bad ce-time",
            changed("ce-time", Some("yesterday")),
            data.clone(),
            400,
            vec!["`ce-time`", "yesterday"],
        ),
        (
            "binary mode with a ce-datacontenttype header",
            changed("ce-datacontenttype", Some("application/json")),
            data.clone(),
            400,
            vec!["ce-datacontenttype", "Content-Type"],
        ),
        (
            "binary mode with a wrong type of sessionId",
            good.clone(),
            json!({"sessionId": 5, "qosStatus": "AVAILABLE"}).to_string(),
            400,
            vec!["data.sessionId"],
        ),
        (
            "binary mode with a body over the limit",
            good.clone(),
            json!({"sessionId": session, "qosStatus": "AVAILABLE", "padding": "x".repeat(100 * 1024)})
                .to_string(),
            413,
            vec!["65536 bytes"],
        ),
    ];
    for (what, headers, body, status, mentions) in cases {
        let before = snapshot(&hook.get("refusing").await);
        let answer = post_to_sink(&hook, &target, &headers, body).await;
        assert_eq!(answer.status, status, "{what}: {answer:?}");
        let detail = answer.detail();
        for word in mentions {
            assert!(
                detail.contains(word),
                "{what}: `{detail}` does not mention `{word}`"
            );
        }
        assert_eq!(
            snapshot(&hook.get("refusing").await),
            before,
            "{what} changed the resource"
        );
    }

    // A structured event sent as application/json with its attributes copied into ce-*
    // headers (binary mode by the binding) is still read, as before binary mode existed.
    let answer = post_to_sink(
        &hook,
        &target,
        &changed("content-type", Some("application/json")),
        event.to_string(),
    )
    .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(
        hook.status_of("refusing").await.qos_status.as_deref(),
        Some("AVAILABLE")
    );
    // And a CloudEvents media type is structured mode whatever headers come along.
    let later = from_source(
        event::TYPE_V1,
        cloud_event(
            session,
            "UNAVAILABLE",
            Some("DURATION_EXPIRED"),
            "e-2",
            Timestamp::now() + SignedDuration::from_secs(1),
        ),
    );
    let answer = post_to_sink(
        &hook,
        &target,
        &changed("content-type", Some(CLOUDEVENTS)),
        later.to_string(),
    )
    .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(
        hook.status_of("refusing").await.status_info.as_deref(),
        Some("DURATION_EXPIRED")
    );
}
