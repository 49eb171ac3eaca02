//! A session's life through the controller: create, replace, extend, lost notifications,
//! autoExtend, delete.

use kube::{ResourceExt, api::DeleteParams};
use qod_test_support::eventually;
use serde_json::json;

use crate::{
    harness::Harness, harness::Setup, harness::WAIT, harness::provider_calls, harness::qos_status,
    harness::ready, harness::session_id, harness::sessions_of, harness::spec,
};

#[tokio::test]
async fn a_session_becomes_available_and_deleting_the_resource_deletes_it() {
    let h = Harness::start(Setup::default()).await;
    let created = h.create("camera-uplink", spec("+36721601230001")).await;
    let uid = created.uid().unwrap();

    let available = h
        .wait_for("the session to be AVAILABLE", "camera-uplink", |s| {
            qos_status(s) == Some("AVAILABLE")
        })
        .await;
    assert_eq!(
        ready(&available),
        Some(("True".into(), "SessionAvailable".into()))
    );
    assert!(
        available
            .finalizers()
            .contains(&"qod.dev/session".to_owned())
    );
    let status = available.status.as_ref().unwrap();
    assert!(status.expires_at.is_some() && status.started_at.is_some());
    assert_eq!(status.device.as_deref(), Some("+36721601230001"));
    assert_eq!(status.observed_generation, Some(1));

    let at_provider = sessions_of(&h.provider_sessions().await, &uid);
    assert_eq!(at_provider.len(), 1, "{at_provider:#?}");
    assert_eq!(at_provider[0]["sessionId"].as_str(), session_id(&available));
    assert_eq!(at_provider[0]["qosProfile"], "QOS_L");

    h.api
        .delete("camera-uplink", &DeleteParams::default())
        .await
        .unwrap();
    h.wait_gone("camera-uplink").await;
    assert!(sessions_of(&h.provider_sessions().await, &uid).is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_new_profile_replaces_the_session() {
    let h = Harness::start(Setup::default()).await;
    let uid = h
        .create("replace", spec("+36721601230002"))
        .await
        .uid()
        .unwrap();
    let first = h
        .wait_for("AVAILABLE", "replace", |s| {
            qos_status(s) == Some("AVAILABLE")
        })
        .await;
    let first_id = session_id(&first).unwrap().to_owned();

    h.patch_spec("replace", json!({"qosProfile": "QOS_M"}))
        .await;
    let second = h
        .wait_for("a new AVAILABLE session", "replace", |s| {
            qos_status(s) == Some("AVAILABLE") && session_id(s).is_some_and(|id| id != first_id)
        })
        .await;

    let at_provider = sessions_of(&h.provider_sessions().await, &uid);
    assert_eq!(
        at_provider.len(),
        1,
        "exactly one session: {at_provider:#?}"
    );
    assert_eq!(at_provider[0]["qosProfile"], "QOS_M");
    assert_eq!(at_provider[0]["sessionId"].as_str(), session_id(&second));
    h.stop().await;
}

#[tokio::test]
async fn a_longer_duration_extends_the_same_session() {
    let h = Harness::start(Setup::default()).await;
    let uid = h
        .create("extend", spec("+36721601230003"))
        .await
        .uid()
        .unwrap();
    let first = h
        .wait_for("AVAILABLE", "extend", |s| {
            qos_status(s) == Some("AVAILABLE")
        })
        .await;

    h.patch_spec("extend", json!({"duration": 900})).await;
    let extended = h
        .wait_for("the extension to be recorded", "extend", |s| {
            s.status.as_ref().and_then(|st| st.requested_duration) == Some(900)
        })
        .await;
    assert_eq!(session_id(&extended), session_id(&first));
    let at_provider = sessions_of(&h.provider_sessions().await, &uid);
    assert_eq!(at_provider.len(), 1);
    assert_eq!(at_provider[0]["duration"], 900);
    h.stop().await;
}

#[tokio::test]
async fn a_lost_notification_is_repaired_by_resync() {
    let h = Harness::start(Setup::default()).await;
    let uid = h
        .create("resync", spec("+36721601230004"))
        .await
        .uid()
        .unwrap();
    let available = h
        .wait_for("AVAILABLE", "resync", |s| {
            qos_status(s) == Some("AVAILABLE")
        })
        .await;
    let id = session_id(&available).unwrap().to_owned();

    // The network ends the session; its notification cannot reach anyone here.
    h.sim_post(&format!("/_sim/sessions/{id}/terminate")).await;
    let terminated = h
        .wait_for("the resync to see the termination", "resync", |s| {
            s.status.as_ref().and_then(|st| st.status_info.as_deref()) == Some("NETWORK_TERMINATED")
        })
        .await;
    assert_eq!(qos_status(&terminated), Some("UNAVAILABLE"));
    assert_eq!(
        ready(&terminated),
        Some(("False".into(), "NetworkTerminated".into()))
    );
    // Without autoExtend the operator leaves the ended session as the network reported it.
    assert_eq!(session_id(&terminated), Some(id.as_str()));
    assert_eq!(sessions_of(&h.provider_sessions().await, &uid).len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn auto_extend_brings_an_expired_session_back() {
    let h = Harness::start(Setup::default()).await;
    let mut short = spec("+36721601230005");
    short.duration = 3;
    short.auto_extend = true;
    let uid = h.create("keepalive", short).await.uid().unwrap();
    let first = h
        .wait_for("AVAILABLE", "keepalive", |s| {
            qos_status(s) == Some("AVAILABLE")
        })
        .await;
    let first_id = session_id(&first).unwrap().to_owned();

    // The provider fails every call until the session has expired there.
    h.faults(json!({"errorRate": 1.0})).await;
    qod_test_support::eventually(
        "the session to expire at the provider",
        crate::harness::WAIT,
        || async {
            sessions_of(&h.provider_sessions().await, &uid)
                .is_empty()
                .then_some(())
        },
    )
    .await;
    h.faults(json!({})).await;

    let renewed = h
        .wait_for("a new AVAILABLE session", "keepalive", |s| {
            qos_status(s) == Some("AVAILABLE") && session_id(s).is_some_and(|id| id != first_id)
        })
        .await;
    let at_provider = sessions_of(&h.provider_sessions().await, &uid);
    assert_eq!(at_provider.len(), 1, "{at_provider:#?}");
    assert_eq!(at_provider[0]["sessionId"].as_str(), session_id(&renewed));
    h.stop().await;
}

/// One provider call per intent while the cache lags behind our own writes (the real API
/// server delivers each write's watch event after the write returns): N creates, N deletes,
/// no lookup, since no create's answer was lost.
#[tokio::test]
async fn a_fault_free_lifecycle_makes_one_provider_call_per_intent() {
    const COUNT: usize = 100;
    let h = Harness::start(Setup::default()).await;
    let names: Vec<String> = (0..COUNT).map(|i| format!("intent-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        h.create(name, spec(&format!("+36721601250{i:03}"))).await;
    }
    for name in &names {
        h.wait_for("AVAILABLE", name, |s| qos_status(s) == Some("AVAILABLE"))
            .await;
    }
    for name in &names {
        h.api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in &names {
        h.wait_gone(name).await;
    }
    let stats = h.provider_stats().await;
    let calls = |operation: &str| provider_calls(&stats, operation);
    assert_eq!(
        (calls("create"), calls("delete"), calls("retrieve_sessions")),
        (COUNT as u64, COUNT as u64, 0),
        "{stats}"
    );
    h.stop().await;
}

/// Resync reads that find nothing new are remembered, not written: at scale they would be most
/// of the API server's writes. (One that finds something is written: see the lost
/// notification above.)
#[tokio::test]
async fn resync_reads_that_find_nothing_new_write_nothing() {
    let h = Harness::start(Setup::default()).await;
    h.create("quiet", spec("+36721601230099")).await;
    h.wait_for("AVAILABLE with its end known", "quiet", |s| {
        qos_status(s) == Some("AVAILABLE")
            && s.status.as_ref().is_some_and(|st| st.expires_at.is_some())
    })
    .await;
    let reads = || async { provider_calls(&h.provider_stats().await, "get") };
    let after = |count: u64| {
        eventually("another resync read", WAIT, move || async move {
            (reads().await > count).then_some(())
        })
    };
    // Once a resync has read the settled session, nothing else is written.
    after(reads().await).await;
    let settled = h.api.get("quiet").await.unwrap().resource_version();
    for _ in 0..2 {
        after(reads().await).await;
    }
    let now = h.api.get("quiet").await.unwrap();
    assert_eq!(now.resource_version(), settled, "{:?}", now.status);
    assert_eq!(qos_status(&now), Some("AVAILABLE"));
    h.stop().await;
}
