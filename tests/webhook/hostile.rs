//! Malformed and hostile requests: each gets its documented status code and a problem+json
//! body saying what was wrong, and leaves the resource exactly as it was (same
//! resourceVersion, same status).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use qod_operator::qod::event;
use qod_test_support::eventually;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{BATCH, CLOUDEVENTS, Hook, WAIT, cloud_event, snapshot};

const SESSION: &str = "7b8e4d10-2c3a-4f1e-9d6b-5a4c3b2a1f00";
const OTHER_SESSION: &str = "c0ffee00-2c3a-4f1e-9d6b-5a4c3b2a1f00";

/// One request of the table.
struct Case {
    what: &'static str,
    path: String,
    content_type: Option<&'static str>,
    authorization: Option<String>,
    body: String,
    status: u16,
    /// Words the problem's detail must contain (empty for 204).
    mentions: &'static [&'static str],
}

#[tokio::test]
async fn malformed_and_hostile_requests_change_nothing() {
    let hook = Hook::start().await;
    let target = hook.resource("target", Some(SESSION)).await;
    let other = hook.resource("other", Some(OTHER_SESSION)).await;
    let uid = target.metadata.uid.clone().unwrap();
    let path = format!("/notifications/{uid}");
    let good_auth = format!("Bearer {}", hook.token(&target));

    // An applied event first, so stale and duplicate events have something to be older than.
    let applied_at = Timestamp::now();
    let applied = cloud_event(SESSION, "AVAILABLE", None, "e-applied", applied_at);
    assert_eq!(hook.notify(&target, &applied).await.status, 204);

    let valid = |id: &str| {
        cloud_event(
            SESSION,
            "UNAVAILABLE",
            Some("DURATION_EXPIRED"),
            id,
            Timestamp::now(),
        )
        .to_string()
    };
    let case =
        |what, content_type, authorization: Option<String>, body: String, status, mentions| Case {
            what,
            path: path.clone(),
            content_type,
            authorization,
            body,
            status,
            mentions,
        };
    let huge = {
        let mut event = cloud_event(SESSION, "UNAVAILABLE", None, "e-huge", Timestamp::now());
        event["padding"] = json!("x".repeat(100 * 1024));
        event.to_string()
    };
    let cases = vec![
        case("bad JSON", Some(CLOUDEVENTS), Some(good_auth.clone()), "{not json".into(), 400, &["not valid JSON"]),
        case("empty body", Some(CLOUDEVENTS), Some(good_auth.clone()), String::new(), 400, &["JSON"]),
        case("a JSON array as a single event", Some(CLOUDEVENTS), Some(good_auth.clone()), format!("[{}]", valid("e-arr")), 400, &["object"]),
        case(
            "wrong type of sessionId",
            Some(CLOUDEVENTS),
            Some(good_auth.clone()),
            json!({"id": "e-t", "source": "s", "type": event::TYPE_V1, "time": "2025-01-02T03:04:05Z",
                   "data": {"sessionId": 5, "qosStatus": "UNAVAILABLE"}}).to_string(),
            400,
            &["data.sessionId"],
        ),
        case(
            "wrong type of time",
            Some(CLOUDEVENTS),
            Some(good_auth.clone()),
            json!({"id": "e-t", "source": "s", "type": event::TYPE_V1, "time": "yesterday",
                   "data": {"sessionId": SESSION, "qosStatus": "UNAVAILABLE"}}).to_string(),
            400,
            &["time", "yesterday"],
        ),
        case(
            "missing data",
            Some(CLOUDEVENTS),
            Some(good_auth.clone()),
            json!({"id": "e-m", "source": "s", "type": event::TYPE_V1, "time": "2025-01-02T03:04:05Z"}).to_string(),
            400,
            &["`data` is missing"],
        ),
        case(
            "missing qosStatus",
            Some(CLOUDEVENTS),
            Some(good_auth.clone()),
            json!({"id": "e-m", "source": "s", "type": event::TYPE_V1, "data": {"sessionId": SESSION}}).to_string(),
            400,
            &["qosStatus"],
        ),
        case(
            "missing type",
            Some(CLOUDEVENTS),
            Some(good_auth.clone()),
            json!({"id": "e-m", "source": "s", "data": {"sessionId": SESSION, "qosStatus": "AVAILABLE"}}).to_string(),
            400,
            &["`type` is missing"],
        ),
        case(
            "unknown event type",
            Some(CLOUDEVENTS),
            Some(good_auth.clone()),
            json!({"id": "e-u", "source": "s", "type": "org.camaraproject.device-roaming.v0.roaming-status",
                   "data": {"sessionId": SESSION, "qosStatus": "AVAILABLE"}}).to_string(),
            400,
            &["org.camaraproject.device-roaming.v0.roaming-status"],
        ),
        case(
            "batch with a bad item",
            Some(BATCH),
            Some(good_auth.clone()),
            format!("[{}, {{\"type\": \"x\"}}]", valid("e-b1")),
            400,
            &["event 1 of the batch", "`x`"],
        ),
        case("batch that is not an array", Some(BATCH), Some(good_auth.clone()), valid("e-b2"), 400, &["array"]),
        case("huge body", Some(CLOUDEVENTS), Some(good_auth.clone()), huge, 413, &["65536 bytes"]),
        case("wrong media type", Some("text/plain"), Some(good_auth.clone()), valid("e-mt"), 415, &["text/plain"]),
        case("XML CloudEvent", Some("application/cloudevents+xml"), Some(good_auth.clone()), valid("e-mt"), 415, &["application/cloudevents+json"]),
        case("no media type", None, Some(good_auth.clone()), valid("e-mt"), 415, &["no Content-Type"]),
        case("a charset other than UTF-8", Some("application/json; charset=iso-8859-1"), Some(good_auth.clone()), valid("e-cs"), 415, &["iso-8859-1"]),
        case("missing token", Some(CLOUDEVENTS), None, valid("e-a1"), 401, &["no Authorization header"]),
        case("wrong token", Some(CLOUDEVENTS), Some("Bearer 0000".into()), valid("e-a2"), 401, &["not the one registered"]),
        case("the token without its scheme", Some(CLOUDEVENTS), Some(hook.token(&target)), valid("e-a3"), 401, &["Bearer <token>"]),
        case("basic auth", Some(CLOUDEVENTS), Some("Basic dXNlcjpwYXNz".into()), valid("e-a4"), 401, &["Bearer <token>"]),
        case("a static token that is not configured", Some(CLOUDEVENTS), Some("Bearer my-token".into()), valid("e-a5"), 401, &["not the one registered"]),
        case("the token of another resource", Some(CLOUDEVENTS), Some(format!("Bearer {}", hook.token(&other))), valid("e-a6"), 401, &["not the one registered"]),
        case(
            "the session of another resource (409)",
            Some(CLOUDEVENTS),
            Some(good_auth.clone()),
            cloud_event(OTHER_SESSION, "UNAVAILABLE", Some("NETWORK_TERMINATED"), "e-x", Timestamp::now()).to_string(),
            409,
            &[SESSION, OTHER_SESSION],
        ),
        case(
            "an unknown session (409: the resource holds another)",
            Some(CLOUDEVENTS),
            Some(good_auth.clone()),
            cloud_event("no-such-session", "UNAVAILABLE", None, "e-y", Timestamp::now()).to_string(),
            409,
            &["no-such-session"],
        ),
        case(
            "a stale event (older than the one applied)",
            Some(CLOUDEVENTS),
            Some(good_auth.clone()),
            cloud_event(SESSION, "REQUESTED", None, "e-old", applied_at - SignedDuration::from_secs(5)).to_string(),
            204,
            &[],
        ),
        case("a duplicate event", Some(CLOUDEVENTS), Some(good_auth.clone()), applied.to_string(), 204, &[]),
        Case {
            what: "an unknown uid (with that uid's own token)",
            path: "/notifications/00000000-0000-4000-8000-000000000000".into(),
            content_type: Some(CLOUDEVENTS),
            authorization: Some(format!(
                "Bearer {}",
                hook.token_for_uid("00000000-0000-4000-8000-000000000000")
            )),
            body: valid("e-nf"),
            status: 404,
            mentions: &["00000000-0000-4000-8000-000000000000"],
        },
        Case {
            // The token cannot be checked without a resource: nothing is revealed about the
            // session, as if the token were wrong.
            what: "an unknown session on the session route, with another resource's token",
            path: "/notifications".into(),
            content_type: Some(CLOUDEVENTS),
            authorization: Some(good_auth.clone()),
            body: cloud_event("no-such-session", "UNAVAILABLE", None, "e-z", Timestamp::now()).to_string(),
            status: 401,
            mentions: &["not the one registered"],
        },
        Case {
            what: "the session route with another resource's token",
            path: "/notifications".into(),
            content_type: Some(CLOUDEVENTS),
            authorization: Some(format!("Bearer {}", hook.token(&other))),
            body: valid("e-sr"),
            status: 401,
            mentions: &["not the one registered"],
        },
        Case {
            what: "the session route without a token",
            path: "/notifications".into(),
            content_type: Some(CLOUDEVENTS),
            authorization: None,
            body: valid("e-sr2"),
            status: 401,
            mentions: &["no Authorization header"],
        },
        Case {
            what: "an unknown path",
            path: "/notify".into(),
            content_type: Some(CLOUDEVENTS),
            authorization: Some(good_auth.clone()),
            body: valid("e-p"),
            status: 404,
            mentions: &["/notifications/{uid}"],
        },
    ];

    for case in cases {
        let before = (
            snapshot(&hook.get("target").await),
            snapshot(&hook.get("other").await),
        );
        let answer = hook
            .post(
                &case.path,
                case.content_type,
                case.authorization.as_deref(),
                case.body,
            )
            .await;
        assert_eq!(answer.status, case.status, "{}: {answer:?}", case.what);
        if case.status == 204 {
            assert!(answer.body.is_empty(), "{}", case.what);
        } else {
            let detail = answer.detail();
            for word in case.mentions {
                assert!(
                    detail.contains(word),
                    "{}: `{detail}` does not mention `{word}`",
                    case.what
                );
            }
        }
        if case.status == 401 {
            assert!(
                answer
                    .www_authenticate
                    .as_deref()
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{}: {answer:?}",
                case.what
            );
        }
        let after = (
            snapshot(&hook.get("target").await),
            snapshot(&hook.get("other").await),
        );
        assert_eq!(before, after, "{} changed a resource", case.what);
    }

    // Each refusal was counted under its bounded result.
    for (result, at_least) in [
        ("invalid", 11.0),
        ("too_large", 1.0),
        ("unsupported_media", 4.0),
        ("unauthorized", 9.0),
        ("conflict", 2.0),
        ("not_found", 1.0),
        ("stale", 1.0),
        ("duplicate", 1.0),
        ("applied", 1.0),
    ] {
        let count = hook
            .metric(&format!(
                "qod_operator_notifications_total{{result=\"{result}\"}}"
            ))
            .unwrap();
        assert!(count >= at_least, "{result}: {count}");
    }
    let text = hook.metrics.encode();
    assert!(!text.contains(&uid), "metrics never carry a uid");
}

#[tokio::test]
async fn reordered_events_end_in_the_newest_state() {
    let hook = Hook::start().await;
    let target = hook.resource("reordered", Some(SESSION)).await;
    let t0 = Timestamp::now();
    let available = cloud_event(SESSION, "AVAILABLE", None, "e-1", t0);
    let terminated = cloud_event(
        SESSION,
        "UNAVAILABLE",
        Some("NETWORK_TERMINATED"),
        "e-2",
        t0 + SignedDuration::from_millis(500),
    );
    // The newer event overtakes the older one.
    assert_eq!(hook.notify(&target, &terminated).await.status, 204);
    let settled = hook.get("reordered").await;
    assert_eq!(hook.notify(&target, &available).await.status, 204);
    let after = hook.get("reordered").await;
    assert_eq!(
        snapshot(&settled),
        snapshot(&after),
        "the late AVAILABLE changed the status"
    );
    let status = Hook::status(&after);
    assert_eq!(status.qos_status.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(status.status_info.as_deref(), Some("NETWORK_TERMINATED"));
    assert_eq!(status.last_notification.unwrap().id.as_deref(), Some("e-2"));

    // Without event times, UNAVAILABLE is still final for the session.
    let mut timeless = cloud_event(SESSION, "AVAILABLE", None, "e-3", t0);
    timeless.as_object_mut().unwrap().remove("time");
    assert_eq!(hook.notify(&target, &timeless).await.status, 204);
    assert_eq!(snapshot(&hook.get("reordered").await), snapshot(&after));
}

#[tokio::test]
async fn duplicates_are_recognised_from_status_after_a_restart() {
    let hook = Hook::start().await;
    let target = hook.resource("restarted", Some(SESSION)).await;
    let event = cloud_event(SESSION, "AVAILABLE", None, "e-1", Timestamp::now());
    assert_eq!(hook.notify(&target, &event).await.status, 204);
    let stored = hook.get("restarted").await;

    // A second webhook (another replica, or this one restarted) has no memory of the event.
    let second = hook
        .replica(qod_operator::cache::SessionCache::start(
            hook.client.clone(),
            Some(&hook.namespace),
        ))
        .await;
    assert_eq!(hook.notify_to(&second, &target, &event).await.status, 204);
    assert_eq!(snapshot(&hook.get("restarted").await), snapshot(&stored));
}

#[tokio::test]
async fn a_batch_answers_its_worst_outcome_and_keeps_the_good_events() {
    let hook = Hook::start().await;
    let target = hook.resource("mixed", Some(SESSION)).await;
    let t0 = Timestamp::now();
    let body = json!([
        cloud_event(SESSION, "AVAILABLE", None, "e-1", t0),
        cloud_event(OTHER_SESSION, "AVAILABLE", None, "e-2", t0),
        cloud_event(
            SESSION,
            "UNAVAILABLE",
            Some("DURATION_EXPIRED"),
            "e-3",
            t0 + SignedDuration::from_secs(1)
        ),
    ]);
    let answer = hook
        .post(
            &format!("/notifications/{}", target.metadata.uid.as_deref().unwrap()),
            Some(BATCH),
            Some(&format!("Bearer {}", hook.token(&target))),
            body.to_string(),
        )
        .await;
    assert_eq!(answer.status, 409, "{answer:?}");
    assert!(answer.detail().contains(OTHER_SESSION));
    let status = hook.status_of("mixed").await;
    assert_eq!(status.qos_status.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(status.last_notification.unwrap().id.as_deref(), Some("e-3"));
}

#[tokio::test]
async fn a_resource_without_a_session_is_404_and_one_creating_its_session_is_asked_to_retry() {
    let hook = Hook::start().await;
    let target = hook.resource("sessionless", None).await;
    let event = cloud_event(SESSION, "AVAILABLE", None, "e-1", Timestamp::now());
    let answer = hook.notify(&target, &event).await;
    assert_eq!(answer.status, 404, "{answer:?}");
    assert!(answer.detail().contains("holds no session"));

    // While a create is in flight, the event may be for the session being created.
    hook.patch_status(
        "sessionless",
        json!({"createRequestedAt": Timestamp::now().to_string()}),
    )
    .await;
    let answer = hook.notify(&target, &event).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.retry_after.as_deref(), Some("1"));
    assert!(answer.detail().contains("creating its session"));

    // Once the controller records the session, the retry lands.
    hook.record_session("sessionless", SESSION).await;
    assert_eq!(hook.notify(&target, &event).await.status, 204);
    assert_eq!(
        hook.status_of("sessionless").await.qos_status.as_deref(),
        Some("AVAILABLE")
    );
}

/// A provider that notifies before the operator has recorded its create's answer: the webhook
/// holds the notification until the cache shows the session, and applies it, rather than
/// answering 503 and costing the provider a retry.
#[tokio::test]
async fn a_notification_that_outruns_its_creates_answer_waits_for_it() {
    let hook = Hook::start().await;
    let target = hook.resource("outrun", None).await;
    hook.patch_status(
        "outrun",
        json!({"createRequestedAt": Timestamp::now().to_string()}),
    )
    .await;
    let uid = target.metadata.uid.clone().unwrap();
    eventually("the cache to show the create in flight", WAIT, || async {
        let located = hook.cache.by_uid(&uid)?;
        let cached = hook.cache.get(&located)?;
        cached
            .status
            .as_ref()?
            .create_requested_at
            .as_ref()
            .map(|_| ())
    })
    .await;

    let event = cloud_event(SESSION, "AVAILABLE", None, "e-1", Timestamp::now());
    let recorded = async {
        eventually("the webhook to hold the notification", WAIT, || async {
            (hook.metric("qod_operator_notifications_awaiting_create") == Some(1.0)).then_some(())
        })
        .await;
        hook.record_session("outrun", SESSION).await;
    };
    let (answer, ()) = tokio::join!(hook.notify(&target, &event), recorded);
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(
        hook.status_of("outrun").await.qos_status.as_deref(),
        Some("AVAILABLE")
    );
    assert_eq!(
        hook.metric("qod_operator_notifications_awaiting_create"),
        Some(0.0)
    );
}

/// Sends raw bytes and returns the response's status line and the rest.
async fn raw(hook: &Hook, request: &[u8], then: Option<Duration>) -> (u16, String) {
    let addr = hook.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    if let Some(wait) = then {
        tokio::time::sleep(wait).await;
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test]
async fn a_huge_chunked_body_without_a_length_is_refused_while_reading() {
    let hook = Hook::start().await;
    let target = hook.resource("chunked", Some(SESSION)).await;
    let before = snapshot(&hook.get("chunked").await);
    let mut request = format!(
        "POST /notifications/{} HTTP/1.1\r\nhost: x\r\ncontent-type: {CLOUDEVENTS}\r\n\
         authorization: Bearer {}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        target.metadata.uid.as_deref().unwrap(),
        hook.token(&target)
    )
    .into_bytes();
    let chunk = "x".repeat(16 * 1024);
    for _ in 0..8 {
        request.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = raw(&hook, &request, None).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert_eq!(snapshot(&hook.get("chunked").await), before);
}

#[tokio::test]
async fn slow_bodies_time_out_and_requests_beyond_the_cap_are_refused() {
    let hook = Hook::start_with(|config| {
        config.limits.max_in_flight = 1;
        config.limits.request_timeout = Duration::from_millis(1500);
    })
    .await;
    let target = hook.resource("slow", Some(SESSION)).await;
    let before = snapshot(&hook.get("slow").await);
    // A request that announces a body and never sends it ...
    let head = format!(
        "POST /notifications/{} HTTP/1.1\r\nhost: x\r\ncontent-type: {CLOUDEVENTS}\r\n\
         authorization: Bearer {}\r\ncontent-length: 500\r\nconnection: close\r\n\r\n{{\"id\":",
        target.metadata.uid.as_deref().unwrap(),
        hook.token(&target)
    );
    let slow = {
        let addr = hook.base.trim_start_matches("http://").to_owned();
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(head.as_bytes()).await.unwrap();
            let mut response = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
                    .await;
            String::from_utf8_lossy(&response).into_owned()
        })
    };
    // ... does not hold the only slot: the cap guards work at the Kubernetes API, not waiting
    // for bodies, so a real notification meanwhile is stored.
    let event = cloud_event(SESSION, "AVAILABLE", None, "e-1", Timestamp::now());
    assert_eq!(hook.notify(&target, &event).await.status, 204);
    let stored = snapshot(&hook.get("slow").await);
    assert_ne!(stored, before);
    let held = slow.await.unwrap();
    assert!(held.starts_with("HTTP/1.1 408"), "{held}");
    assert!(held.contains("did not arrive within"), "{held}");
    assert_eq!(snapshot(&hook.get("slow").await), stored);

    // Notifications beyond the cap while one is being stored are refused with Retry-After.
    let overloaded = qod_test_support::eventually(
        "a notification beyond the cap of 1",
        Duration::from_secs(10),
        || async {
            // Distinct, newer events: each one reads and writes at the API, so they overlap.
            let events: Vec<_> = (0..16)
                .map(|i| {
                    let time = Timestamp::now() + jiff::SignedDuration::from_secs(i + 1);
                    cloud_event(
                        SESSION,
                        "AVAILABLE",
                        None,
                        &format!("burst-{}", uuid::Uuid::new_v4()),
                        time,
                    )
                })
                .collect();
            let burst = events.iter().map(|event| hook.notify(&target, event));
            futures::future::join_all(burst)
                .await
                .into_iter()
                .find(|answer| answer.status == 503)
        },
    )
    .await;
    assert_eq!(overloaded.retry_after.as_deref(), Some("1"));
    assert!(overloaded.detail().contains("more than 1 notifications"));
    assert!(
        hook.metric("qod_operator_notifications_total{result=\"overloaded\"}")
            .unwrap()
            >= 1.0
    );
    assert!(
        hook.metric("qod_operator_notifications_total{result=\"timeout\"}")
            .unwrap()
            >= 1.0
    );
}

#[tokio::test]
async fn the_kubernetes_api_being_down_is_503() {
    let mut hook = Hook::start_own("webhook-api-down").await;
    let target = hook.resource("down", Some(SESSION)).await;
    hook.stop_api_server();
    let event = cloud_event(SESSION, "AVAILABLE", None, "e-1", Timestamp::now());
    let answer = hook.notify(&target, &event).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.retry_after.as_deref(), Some("1"));
    assert!(answer.detail().contains("Kubernetes API"), "{answer:?}");
    assert!(
        hook.metric("qod_operator_notifications_total{result=\"unavailable\"}")
            .unwrap()
            >= 1.0
    );
}
