//! The controller never sends the provider a request the spec forbids: the operator process
//! drives a whole session lifecycle (a create whose answer is lost and adopted through
//! retrieve-sessions, extend, replace, delete) through `prism proxy --errors` with the official
//! CAMARA QoD v1.1 OpenAPI file in front of the simulator; Prism judges every request and
//! response.

use std::time::Duration;

use kube::{
    ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use qod_operator::{api::QodSession, simulator};
use qod_test_support::{
    Cluster, eventually,
    operator::{Operator, OperatorSetup},
    prism::Prism,
    session::{numbered_spec, qos_status, session_id},
    simulator::{Sim, sink_uid},
    test_dir,
    tools::camara_spec,
};
use secrecy::SecretString;
use serde_json::json;

use crate::OPERATOR;

const WAIT: Duration = Duration::from_secs(40);

/// Waits until `name` is AVAILABLE with exactly one provider session of `profile`, its own.
async fn available(api: &kube::Api<QodSession>, sim: &Sim, name: &str, profile: &str) {
    eventually(
        &format!("{name} AVAILABLE with {profile}"),
        WAIT,
        || async {
            let resource = api.get(name).await.unwrap();
            let uid = resource.uid().unwrap();
            let held = sim.sessions(false).await;
            let mine: Vec<_> = held
                .iter()
                .filter(|s| sink_uid(s) == Some(uid.as_str()))
                .collect();
            (qos_status(&resource) == Some("AVAILABLE")
                && mine.len() == 1
                && mine[0]["qosProfile"] == profile
                && mine[0]["sessionId"].as_str() == session_id(&resource))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_lifecycle_through_a_validating_proxy_sends_nothing_the_spec_forbids() {
    let dir = test_dir("hostile/prism");
    let cluster = Cluster::start("prism").await;
    // The spec demands credentials: a static bearer token on both sides.
    let token = "prism-lifecycle-token";
    let (running, sim) = Sim::start(simulator::SimulatorConfig {
        available_after: Duration::from_millis(200),
        bearer_token: Some(SecretString::from(token)),
        require_auth: true,
        ..simulator::SimulatorConfig::default()
    })
    .await;
    std::fs::write(dir.join("bearer-token"), token).unwrap();
    let prism = Prism::proxy(&camara_spec("camara-qod-v1.1.0.yaml"), &sim.provider_url()).await;
    let mut setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, prism.url());
    // v1.1 demands https sinks; notifications cannot arrive here (no TLS), so status comes
    // from the operator's reads, which Prism judges too.
    setup.webhook_public_url = format!("https://qod-operator.localhost:{}", setup.webhook_port);
    setup.extra_args = vec![
        "--provider-timeout".into(),
        "2s".into(),
        "--bearer-token-file".into(),
        dir.join("bearer-token").display().to_string(),
    ];
    let _operator = Operator::start_ready(&setup).await;
    let api = &cluster.api;

    // The first create's answer is held beyond the operator's timeout: it must look the
    // device's sessions up (retrieve-sessions) and adopt, not create again.
    sim.faults(json!({"answerDelayMs": 3000})).await;
    api.create(
        &PostParams::default(),
        &QodSession::new("through-prism", numbered_spec(7, "QOS_L", 600)),
    )
    .await
    .unwrap();
    eventually("the session to exist at the provider", WAIT, || async {
        (!sim.sessions(false).await.is_empty()).then_some(())
    })
    .await;
    sim.faults(json!({})).await;
    available(api, &sim, "through-prism", "QOS_L").await;

    // A longer duration: extend.
    let patch = json!({"spec": {"duration": 900}});
    api.patch(
        "through-prism",
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .unwrap();
    eventually("the extension", WAIT, || async {
        let held = sim.sessions(false).await;
        (held.len() == 1 && held[0]["duration"].as_u64() >= Some(900)).then_some(())
    })
    .await;

    // A new profile: replace (delete, then create).
    let patch = json!({"spec": {"qosProfile": "QOS_M"}});
    api.patch(
        "through-prism",
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .unwrap();
    available(api, &sim, "through-prism", "QOS_M").await;

    api.delete("through-prism", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the resource and its session gone", WAIT, || async {
        let gone = api.get_opt("through-prism").await.unwrap().is_none();
        (gone && sim.sessions(false).await.is_empty()).then_some(())
    })
    .await;

    let stats = sim.stats().await;
    println!("through Prism: {}", stats["apiRequests"]);
    for operation in ["create", "get", "extend", "delete", "retrieve_sessions"] {
        assert!(
            stats["apiRequests"].get(operation).is_some(),
            "the lifecycle exercised {operation}: {stats}"
        );
    }
    assert_eq!(
        stats["sessionsCreated"], 2,
        "one create per profile, the lost answer adopted"
    );
    prism.assert_no_violations();
    running.shutdown().await;
}
