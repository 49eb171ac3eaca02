//! Status writes that the API server refuses. The webhook's Kubernetes client goes through an
//! interceptor that sees every status PATCH. For a conflict, "the controller" changes the
//! resource first, as a concurrent writer would, and the real API server refuses the webhook's
//! write by its `metadata.resourceVersion` precondition; refusals a test cannot provoke
//! (always 409, 422, 403) the interceptor answers itself.

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response};
use jiff::Timestamp;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
    client::Body,
};
use qod_operator::{
    api::{CONTROLLER_MANAGER, QodSession},
    cache::SessionCache,
};
use serde_json::{Value, json};

use crate::harness::{Hook, cloud_event};

const SESSION: &str = "7b8e4d10-2c3a-4f1e-9d6b-5a4c3b2a1f00";
const REPLACED: &str = "9e9e9e9e-2c3a-4f1e-9d6b-5a4c3b2a1f00";

/// What the interceptor does with status PATCHes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// The first one: the controller replaces the session, then 409.
    ReplaceThenConflict,
    /// Every one: 409.
    AlwaysConflict,
    /// Every one: this error code.
    Fail(u16),
}

#[derive(Default)]
struct Seen {
    /// Bodies of the status PATCHes, in order.
    bodies: Vec<Value>,
}

fn status_reply(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .unwrap()
}

/// A client that sends everything to `inner` except the status PATCHes `plan` answers.
fn intercepting(inner: Client, plan: Plan, seen: Arc<Mutex<Seen>>) -> Client {
    let service = tower::service_fn(move |request: Request<Body>| {
        let inner = inner.clone();
        let seen = Arc::clone(&seen);
        async move {
            if request.method() != Method::PATCH || !request.uri().path().ends_with("/status") {
                return inner.send(request).await;
            }
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await?;
            let patch: Value = serde_json::from_slice(&bytes).unwrap();
            let first = {
                let mut seen = seen.lock().unwrap();
                seen.bodies.push(patch.clone());
                seen.bodies.len() == 1
            };
            let conflict = || {
                status_reply(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on qodsessions.qod.dev: the object has been modified",
                )
            };
            match plan {
                Plan::ReplaceThenConflict if first => {
                    let name = patch["metadata"]["name"].as_str().unwrap();
                    // .../namespaces/{namespace}/qodsessions/{name}/status
                    let path: Vec<&str> = parts.uri.path().split('/').collect();
                    let namespace = path[path.len() - 4];
                    Api::<QodSession>::namespaced(inner.clone(), namespace)
                        .patch_status(
                            name,
                            &PatchParams {
                                field_manager: Some(CONTROLLER_MANAGER.into()),
                                ..PatchParams::default()
                            },
                            &Patch::Merge(json!({"status": {"sessionId": REPLACED,
                                                             "qosStatus": "REQUESTED"}})),
                        )
                        .await?;
                    // The webhook's write still names the resourceVersion it decided on.
                    let answer = inner
                        .send(Request::from_parts(parts, Body::from(bytes)))
                        .await?;
                    assert_eq!(
                        answer.status(),
                        409,
                        "the API server refuses a write made on a replaced copy"
                    );
                    Ok(answer)
                }
                Plan::ReplaceThenConflict => {
                    inner
                        .send(Request::from_parts(parts, Body::from(bytes)))
                        .await
                }
                Plan::AlwaysConflict => Ok(conflict()),
                Plan::Fail(code) => Ok(status_reply(code, "Invalid", "refused by the test")),
            }
        }
    });
    Client::new(service, "default")
}

async fn start(plan: Plan) -> (Hook, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let hook = Hook::start_full(|_| {}, {
        let seen = Arc::clone(&seen);
        move |client| intercepting(client, plan, seen)
    })
    .await;
    (hook, seen)
}

#[tokio::test]
async fn a_conflicting_write_is_decided_again_on_the_fresh_resource() {
    let (hook, seen) = start(Plan::ReplaceThenConflict).await;
    let target = hook.resource("raced", Some(SESSION)).await;
    let read_at = target.metadata.resource_version.clone().unwrap();
    let event = cloud_event(SESSION, "AVAILABLE", None, "e-1", Timestamp::now());

    // The controller replaced the session between the webhook's read and its write: on the
    // second look the event is for a session the resource no longer holds.
    let answer = hook.notify(&target, &event).await;
    assert_eq!(answer.status, 409, "{answer:?}");
    assert!(answer.detail().contains(REPLACED), "{answer:?}");
    let bodies = seen.lock().unwrap().bodies.clone();
    assert_eq!(bodies.len(), 1, "nothing is written after the re-decision");
    assert_eq!(bodies[0]["metadata"]["resourceVersion"], read_at.as_str());
    assert_eq!(bodies[0]["status"]["qosStatus"], "AVAILABLE");
    let status = hook.status_of("raced").await;
    assert_eq!(status.session_id.as_deref(), Some(REPLACED));
    assert_eq!(status.qos_status.as_deref(), Some("REQUESTED"));
    assert!(status.last_notification.is_none());

    // An event for the new session goes through (the interceptor only conflicts once).
    let fresh = cloud_event(REPLACED, "AVAILABLE", None, "e-2", Timestamp::now());
    let answer = hook.notify(&target, &fresh).await;
    assert_eq!(answer.status, 204, "{answer:?}");
    let bodies = seen.lock().unwrap().bodies.clone();
    let current = hook.get("raced").await;
    assert_ne!(bodies[1]["metadata"]["resourceVersion"], read_at.as_str());
    assert_eq!(
        Hook::status(&current).qos_status.as_deref(),
        Some("AVAILABLE")
    );
}

#[tokio::test]
async fn a_resource_that_keeps_changing_is_a_503_after_a_few_tries() {
    let (hook, seen) = start(Plan::AlwaysConflict).await;
    let target = hook.resource("busy", Some(SESSION)).await;
    let event = cloud_event(SESSION, "AVAILABLE", None, "e-1", Timestamp::now());
    let answer = hook.notify(&target, &event).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(answer.retry_after.as_deref(), Some("1"));
    assert!(answer.detail().contains("kept changing"), "{answer:?}");
    assert_eq!(seen.lock().unwrap().bodies.len(), 5);
    assert_eq!(
        hook.status_of("busy").await.qos_status.as_deref(),
        Some("REQUESTED")
    );
}

#[tokio::test]
async fn refusals_of_the_api_server_map_to_retry_or_not() {
    // 422: the write itself is wrong; a retry cannot help.
    let (hook, _) = start(Plan::Fail(422)).await;
    let target = hook.resource("invalid", Some(SESSION)).await;
    let event = cloud_event(SESSION, "AVAILABLE", None, "e-1", Timestamp::now());
    let answer = hook.notify(&target, &event).await;
    assert_eq!(answer.status, 500, "{answer:?}");
    assert!(
        hook.metric("qod_operator_notifications_total{result=\"internal\"}")
            .unwrap()
            >= 1.0
    );

    // 403: missing RBAC may be fixed; the provider should retry.
    let (hook, _) = start(Plan::Fail(403)).await;
    let target = hook.resource("forbidden", Some(SESSION)).await;
    let answer = hook.notify(&target, &event).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.detail().contains("Kubernetes API"));
    // A refused event is not remembered as seen: the retry is written once the API takes it.
    assert_eq!(hook.notify(&target, &event).await.status, 503);
}

/// A client whose watches fail: a cache over it lists once and then never moves, as a cache
/// lagging behind the API does.
fn frozen_watches(inner: Client) -> Client {
    let service = tower::service_fn(move |request: Request<Body>| {
        let inner = inner.clone();
        async move {
            let watch = request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
            if watch {
                return Ok(status_reply(
                    500,
                    "InternalError",
                    "watches frozen by the test",
                ));
            }
            inner.send(request).await
        }
    });
    Client::new(service, "default")
}

#[tokio::test]
async fn a_lagging_cache_never_decides_alone() {
    let hook = Hook::start().await;
    let target = hook.resource("lagging", Some(SESSION)).await;
    let lagging = SessionCache::start(frozen_watches(hook.client.clone()), Some(&hook.namespace));
    let replica = hook.replica(lagging.clone()).await;

    // The controller replaces the session; the replica's cache still holds the old one, so on
    // its own it would refuse the new session's notification as another session's (409).
    hook.record_session("lagging", REPLACED).await;
    let located = lagging
        .by_uid(target.metadata.uid.as_deref().unwrap())
        .unwrap();
    let cached = lagging.get(&located).unwrap();
    assert_eq!(
        cached.status.as_ref().unwrap().session_id.as_deref(),
        Some(SESSION)
    );
    let t0 = Timestamp::now();
    let first = cloud_event(REPLACED, "AVAILABLE", None, "e-1", t0);
    let answer = hook.notify_to(&replica, &target, &first).await;
    assert_eq!(answer.status, 204, "{answer:?}");
    let stored = hook.get("lagging").await;
    let status = stored.status.as_ref().unwrap();
    assert_eq!(status.session_id.as_deref(), Some(REPLACED));
    assert_eq!(status.qos_status.as_deref(), Some("AVAILABLE"));

    // A write decided on the stale copy carries its old resourceVersion: the API refuses it,
    // and the replica decides again on a fresh read instead of losing the event.
    let second = cloud_event(
        REPLACED,
        "UNAVAILABLE",
        None,
        "e-2",
        t0 + jiff::SignedDuration::from_secs(1),
    );
    let answer = hook.notify_to(&replica, &target, &second).await;
    assert_eq!(answer.status, 204, "{answer:?}");
    let stored = hook.get("lagging").await;
    let status = stored.status.as_ref().unwrap();
    assert_eq!(status.qos_status.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(
        status
            .last_notification
            .as_ref()
            .and_then(|n| n.id.as_deref()),
        Some("e-2")
    );
}
