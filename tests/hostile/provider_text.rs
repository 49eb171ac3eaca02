//! A provider whose error text is far longer than an Event may carry: the operator's
//! CreateFailed Event must still be accepted by the real API server (events.k8s.io/v1 refuses a
//! `note` over 1024 bytes, and with it the whole Event), its note cut at a character boundary
//! and saying so.

use std::time::Duration;

use axum::{Json, Router, http::StatusCode};
use k8s_openapi::api::events::v1::Event;
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use qod_operator::api::QodSession;
use qod_test_support::{
    Cluster, eventually,
    operator::{Operator, OperatorSetup},
    session::numbered_spec,
    test_dir,
};
use serde_json::json;

use crate::OPERATOR;

/// The most bytes a note may have on a real API server.
const MAX_NOTE_BYTES: usize = 1024;

/// A provider that refuses every request with 400 and an error message of `message`.
async fn refusing_provider(message: String) -> String {
    let app = Router::new().fallback(move || {
        let body = json!({"status": 400, "code": "INVALID_ARGUMENT", "message": message});
        async move { (StatusCode::BAD_REQUEST, Json(body)) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/quality-on-demand/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_error_longer_than_an_event_allows_is_recorded_cut() {
    let dir = test_dir("hostile/provider-text");
    let cluster = Cluster::start("provider-text").await;
    // Characters of one to four bytes, so a byte limit cuts inside one of them.
    let message = "refused: x é € 🔥 ".repeat(500);
    let setup =
        OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, refusing_provider(message).await);
    let _operator = Operator::start_ready(&setup).await;
    cluster
        .api
        .create(
            &PostParams::default(),
            &QodSession::new("refused", numbered_spec(1, "QOS_M", 600)),
        )
        .await
        .unwrap();

    let events: Api<Event> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let note = eventually(
        "the CreateFailed Event on the API server",
        Duration::from_secs(30),
        || async {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("CreateFailed"))
                .and_then(|e| e.note)
        },
    )
    .await;
    assert!(note.len() <= MAX_NOTE_BYTES, "{} bytes: {note}", note.len());
    assert!(
        note.len() > MAX_NOTE_BYTES - 32,
        "cut near the limit, not far before it: {} bytes",
        note.len()
    );
    assert!(
        note.starts_with("create: the provider answered 400") && note.contains("refused: x é € 🔥"),
        "the note names the failure and the provider's text: {note}"
    );
    assert!(note.ends_with("cut]"), "the note says it was cut: {note}");
    let log = std::fs::read_to_string(&setup.log).unwrap();
    assert!(
        !log.contains("could not record an Event"),
        "every Event was recorded"
    );
}
