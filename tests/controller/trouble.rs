//! The controller when things go wrong: refused credentials, a failing provider, a crash
//! between a create and recording its answer.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
};
use qod_operator::{
    api::intent::{CREATE_INTENT, CreateIntent, effective_status},
    qod::{NotificationTarget, SessionApi, SessionRequest, camara},
};
use qod_test_support::eventually;
use serde_json::json;

use crate::{
    harness::Harness, harness::Setup, harness::TestTokens, harness::WAIT, harness::provider_calls,
    harness::qos_status, harness::ready, harness::session_id, harness::sessions_of, harness::spec,
};

#[tokio::test]
async fn refused_credentials_say_so_and_do_not_loop() {
    let mut setup = Setup::default();
    setup.simulator.require_auth = true;
    setup.simulator.bearer_token = Some("the-right-token".into());
    setup.provider_token = Some("a-wrong-token");
    let h = Harness::start(setup).await;
    h.create("locked-out", spec("+36721601230101")).await;

    let refused = h
        .wait_for("Ready=False Unauthorized", "locked-out", |s| {
            ready(s).is_some_and(|(_, reason)| reason == "Unauthorized")
        })
        .await;
    let status = refused.status.as_ref().unwrap();
    let condition = &status.conditions[0];
    assert_eq!(condition.status, "False");
    assert!(condition.message.contains("401"), "{}", condition.message);
    assert_eq!(status.consecutive_failures, 1);
    assert!(status.session_id.is_none());

    // The next attempt is ten minutes away: over a second of watching, nothing more is sent.
    let before = provider_calls(&h.provider_stats().await, "create");
    assert_eq!(before, 1, "one create, no blind retry");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(provider_calls(&h.provider_stats().await, "create"), before);
    h.stop().await;
}

#[tokio::test]
async fn a_failing_provider_is_retried_until_one_session_exists() {
    let h = Harness::start(Setup::default()).await;
    h.faults(json!({"errorRate": 1.0})).await;
    let uid = h
        .create("storm", spec("+36721601230102"))
        .await
        .uid()
        .unwrap();
    let failing = h
        .wait_for("a few failed attempts", "storm", |s| {
            s.status
                .as_ref()
                .is_some_and(|st| st.consecutive_failures >= 2)
        })
        .await;
    assert_eq!(ready(&failing).unwrap().1, "ProviderUnavailable");

    h.faults(json!({})).await;
    let available = h
        .wait_for("AVAILABLE after the storm", "storm", |s| {
            qos_status(s) == Some("AVAILABLE")
        })
        .await;
    assert_eq!(available.status.as_ref().unwrap().consecutive_failures, 0);
    let at_provider = sessions_of(&h.provider_sessions().await, &uid);
    assert_eq!(
        at_provider.len(),
        1,
        "exactly one session: {at_provider:#?}"
    );
    h.stop().await;
}

/// Where the crashed operator had recorded its create's intent.
#[derive(Clone, Copy)]
enum IntentIn {
    /// A resource's first create: in the metadata write that adds the finalizer.
    Metadata,
    /// Later creates (after a replace or a renewal): in status.
    Status,
}

#[tokio::test]
async fn a_first_session_whose_id_was_never_recorded_is_adopted() {
    a_session_whose_id_was_never_recorded_is_adopted(IntentIn::Metadata, "+36721601230103").await;
}

#[tokio::test]
async fn a_later_session_whose_id_was_never_recorded_is_adopted() {
    a_session_whose_id_was_never_recorded_is_adopted(IntentIn::Status, "+36721601230104").await;
}

async fn a_session_whose_id_was_never_recorded_is_adopted(intent_in: IntentIn, phone: &str) {
    let h = Harness::start(Setup {
        start_controller: false,
        ..Setup::default()
    })
    .await;
    let created = h.create("crashed", spec(phone)).await;
    let uid = created.uid().unwrap();

    // The operator's last act before the crash: finalizer and intent recorded, create sent ...
    let intent = CreateIntent {
        requested_at: Time("2026-11-24T12:00:00Z".parse().unwrap()),
        session_fingerprint: created.spec.session_fingerprint(),
        duration: 600,
        generation: created.metadata.generation,
        provider: None,
    };
    let annotations = match intent_in {
        IntentIn::Metadata => json!({CREATE_INTENT: intent.to_annotation()}),
        IntentIn::Status => json!({}),
    };
    h.api
        .patch(
            "crashed",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {
                "finalizers": ["qod.dev/session"],
                "annotations": annotations,
            }})),
        )
        .await
        .unwrap();
    if let IntentIn::Status = intent_in {
        h.api
            .patch_status(
                "crashed",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {
                    "createRequestedAt": intent.requested_at,
                    "sessionFingerprint": intent.session_fingerprint,
                    "requestedDuration": intent.duration,
                }})),
            )
            .await
            .unwrap();
    }
    let provider = camara::CamaraClient::new(camara::CamaraConfig::new(format!(
        "{}/quality-on-demand/v1",
        h.sim.base_url()
    )))
    .unwrap();
    let sink =
        qod_operator::controller::Sink::new("http://127.0.0.1:9", std::sync::Arc::new(TestTokens));
    let lost = provider
        .create_session(&SessionRequest {
            device: qod_operator::qod::Device::from(&created.spec.device),
            application_server: qod_operator::qod::ApplicationServer::from(
                &created.spec.application_server,
            ),
            device_ports: None,
            application_server_ports: None,
            qos_profile: "QOS_L".into(),
            duration: 600,
            notification: Some(NotificationTarget {
                url: sink.url_for(&uid),
                token: secrecy::SecretString::from("t0123456789012345678"),
                token_expires_at: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2),
            }),
        })
        .await
        .unwrap();
    // ... and the answer never reached the status.

    let mut h = h;
    h.start_controller();
    let adopted = h
        .wait_for("the lost session to be adopted", "crashed", |s| {
            session_id(s) == Some(lost.session_id.as_str())
        })
        .await;
    assert!(effective_status(&adopted).create_requested_at.is_none());
    h.wait_for("AVAILABLE", "crashed", |s| {
        qos_status(s) == Some("AVAILABLE")
    })
    .await;
    let at_provider = sessions_of(&h.provider_sessions().await, &uid);
    assert_eq!(
        at_provider.len(),
        1,
        "adopted, not duplicated: {at_provider:#?}"
    );
    assert_eq!(provider_calls(&h.provider_stats().await, "create"), 1);
    h.stop().await;
}

/// A controller that must stop (shutdown, or its replica lost the lease) abandons the provider
/// calls in flight instead of waiting for their answers, and the next one adopts what they did.
#[tokio::test]
async fn stopping_abandons_calls_in_flight_and_the_next_controller_adopts_their_sessions() {
    let mut h = Harness::start(Setup::default()).await;
    // The provider creates at once and holds its answer back far longer than the test waits.
    h.faults(json!({"answerDelayMs": 20_000})).await;
    let names = ["held-1", "held-2", "held-3"];
    let mut uids = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let created = h.create(name, spec(&format!("+3672160123040{i}"))).await;
        uids.push(created.uid().unwrap());
    }
    eventually(
        "the creates to take effect at the provider",
        WAIT,
        || async { (h.provider_sessions().await.len() == names.len()).then_some(()) },
    )
    .await;

    h.stop_controller().await;
    assert_eq!(
        provider_calls(&h.provider_stats().await, "create"),
        0,
        "the controller stopped without waiting for an answer"
    );

    h.faults(json!({})).await;
    h.start_controller();
    for (name, uid) in names.iter().zip(&uids) {
        let available = h
            .wait_for("AVAILABLE", name, |s| qos_status(s) == Some("AVAILABLE"))
            .await;
        let held = sessions_of(&h.provider_sessions().await, uid);
        assert_eq!(held.len(), 1, "{name}: {held:#?}");
        assert_eq!(held[0]["sessionId"].as_str(), session_id(&available));
    }
    assert_eq!(h.provider_stats().await["sessionsCreated"], names.len());
    h.stop().await;
}
