//! The controller's status writes that the real API server refuses with 409 because someone
//! wrote the resource in between (the webhook with the network's news, a user's edit): an
//! outcome that took effect at the provider is applied again to a fresh read, never lost.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use http::{Method, Request};
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    client::Body,
};
use qod_operator::{
    api::{QodSession, intent::CREATE_INTENT},
    cache::SessionCache,
};
use serde_json::{Value, json};

use crate::harness::{Harness, Setup, provider_calls, qos_status, session_id, sessions_of, spec};

/// A client that, before the first write whose merge patch satisfies `outcome`, has
/// another writer label the resource: the write still carries the old resourceVersion and the
/// API server refuses it. `disturbed` tells whether that happened.
fn edited_before_the_outcome(
    inner: Client,
    disturbed: Arc<AtomicBool>,
    outcome: fn(&Value) -> bool,
) -> Client {
    let service = tower::service_fn(move |request: Request<Body>| {
        let inner = inner.clone();
        let disturbed = Arc::clone(&disturbed);
        async move {
            // .../namespaces/{namespace}/qodsessions/{name}[/status]
            let path: Vec<String> = request.uri().path().split('/').map(str::to_owned).collect();
            let Some(at) = path.iter().position(|s| s == "qodsessions") else {
                return inner.send(request).await;
            };
            if request.method() != Method::PATCH || path.len() <= at + 1 {
                return inner.send(request).await;
            }
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await?;
            let patch: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if outcome(&patch) && !disturbed.swap(true, Ordering::SeqCst) {
                let (namespace, name) = (&path[at - 1], &path[at + 1]);
                Api::<QodSession>::namespaced(inner.clone(), namespace)
                    .patch(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"labels": {"edited": "meanwhile"}}})),
                    )
                    .await?;
            }
            inner
                .send(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    });
    Client::new(service, "default")
}

/// A harness whose controller's client has the resource edited before its first write (of
/// metadata or status) that satisfies `outcome` (see [`edited_before_the_outcome`]).
async fn edited_before(outcome: fn(&Value) -> bool) -> (Harness, Arc<AtomicBool>) {
    let mut h = Harness::start(Setup {
        start_controller: false,
        ..Setup::default()
    })
    .await;
    let disturbed = Arc::new(AtomicBool::new(false));
    let client = edited_before_the_outcome(h.client.clone(), Arc::clone(&disturbed), outcome);
    let cache = SessionCache::start(h.client.clone(), Some(&h.namespace));
    h.start_controller_with(client, cache);
    (h, disturbed)
}

/// A pass whose write meets a newer resource (here the create's intent) ends as a conflict:
/// counted as such, not as an error, and the next pass, on the fresh copy, carries on.
#[tokio::test]
async fn a_pass_that_meets_a_newer_resource_counts_as_a_conflict_not_an_error() {
    let (h, disturbed) =
        edited_before(|patch| patch["metadata"]["annotations"][CREATE_INTENT].is_string()).await;

    h.create("intent", spec("+36721601230303")).await;
    h.wait_for("AVAILABLE", "intent", |s| {
        qos_status(s) == Some("AVAILABLE")
    })
    .await;
    assert!(disturbed.load(Ordering::SeqCst), "the test's edit happened");
    let metrics = h.metrics.encode();
    let value = |series: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // At least the one provoked; a pass that ran before the cache saw the edit meets it too.
    assert!(
        value("qod_operator_reconcile_conflicts_total") >= 1.0,
        "{metrics}"
    );
    assert!(
        value(r#"qod_operator_reconciliations_total{outcome="conflict"}"#) >= 1.0,
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .filter(|l| l.starts_with("qod_operator_reconcile_errors_total{"))
            .all(|l| l.ends_with(" 0")),
        "no error counted: {metrics}"
    );
    let stats = h.provider_stats().await;
    assert_eq!(provider_calls(&stats, "create"), 1, "{stats}");
    h.stop().await;
}

#[tokio::test]
async fn an_extension_whose_status_write_conflicts_is_not_asked_for_twice() {
    let (h, disturbed) = edited_before(|patch| patch["status"]["requestedDuration"] == 900).await;

    let uid = h
        .create("extended", spec("+36721601230302"))
        .await
        .uid()
        .unwrap();
    h.wait_for("AVAILABLE", "extended", |s| {
        qos_status(s) == Some("AVAILABLE")
    })
    .await;
    h.patch_spec("extended", json!({"duration": 900})).await;
    h.wait_for("the extension to be recorded", "extended", |s| {
        s.status.as_ref().and_then(|st| st.requested_duration) == Some(900)
    })
    .await;
    assert!(disturbed.load(Ordering::SeqCst), "the test's edit happened");
    let at_provider = sessions_of(&h.provider_sessions().await, &uid);
    assert_eq!(at_provider.len(), 1, "{at_provider:#?}");
    assert_eq!(at_provider[0]["duration"], 900, "extended once, by 300 s");
    let stats = h.provider_stats().await;
    assert_eq!(provider_calls(&stats, "extend"), 1, "{stats}");
    h.stop().await;
}

#[tokio::test]
async fn a_create_whose_status_write_conflicts_keeps_its_session_without_a_lookup() {
    let (h, disturbed) = edited_before(|patch| patch["status"]["sessionId"].is_string()).await;

    let created = h.create("edited", spec("+36721601230301")).await;
    let uid = created.uid().unwrap();
    let available = h
        .wait_for("AVAILABLE", "edited", |s| {
            qos_status(s) == Some("AVAILABLE")
        })
        .await;
    assert!(disturbed.load(Ordering::SeqCst), "the test's edit happened");
    assert_eq!(
        available.labels().get("edited").map(String::as_str),
        Some("meanwhile")
    );
    let at_provider = sessions_of(&h.provider_sessions().await, &uid);
    assert_eq!(at_provider.len(), 1, "{at_provider:#?}");
    assert_eq!(
        session_id(&available),
        at_provider[0]["sessionId"].as_str(),
        "status names the one session"
    );
    let stats = h.provider_stats().await;
    assert_eq!(provider_calls(&stats, "create"), 1, "{stats}");
    assert_eq!(
        provider_calls(&stats, "retrieve_sessions"),
        0,
        "the create's answer was kept, so nothing had to be looked up: {stats}"
    );
    h.stop().await;
}
