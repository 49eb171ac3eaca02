//! A spec change that lands while a create's outcome is unknown: the operator dies after the
//! provider made the session and before its id was recorded, and the profile changes
//! meanwhile. The next incarnation adopts the session it finds, which has the old profile, so
//! it must still replace it with one of the new profile.

use std::time::Duration;

use kube::{
    ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use qod_operator::api::{QodSession, intent::effective_status};
use qod_test_support::{
    Cluster, eventually,
    operator::{Operator, OperatorSetup},
    session::{numbered_spec, qos_status, session_id},
    simulator::{in_process_simulator, sink_uid},
    test_dir,
};
use serde_json::json;

use crate::OPERATOR;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_changed_during_an_interrupted_create_is_applied_after_adoption() {
    let dir = test_dir("chaos/adoption");
    let cluster = Cluster::start("adoption").await;
    let (running, sim) = in_process_simulator().await;
    let setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, sim.provider_url());
    let mut operator = Operator::start_ready(&setup).await;
    let api = &cluster.api;

    // The provider makes the session but holds its answer back.
    sim.faults(json!({"answerDelayMs": 5000})).await;
    let created = api
        .create(
            &PostParams::default(),
            &QodSession::new("changed", numbered_spec(1, "QOS_M", 1800)),
        )
        .await
        .unwrap();
    let uid = created.uid().unwrap();
    eventually(
        "the session to exist at the provider",
        Duration::from_secs(30),
        || async {
            let held = sim.sessions(false).await;
            held.iter()
                .any(|s| sink_uid(s) == Some(uid.as_str()))
                .then_some(())
        },
    )
    .await;
    // The profile changes, and the operator dies before it recorded the session's id.
    let patch = json!({"spec": {"qosProfile": "QOS_L"}});
    api.patch("changed", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    operator.kill();
    let pending = effective_status(&api.get("changed").await.unwrap());
    assert!(pending.session_id.is_none() && pending.create_requested_at.is_some());
    sim.faults(json!({})).await;

    let _operator = Operator::start_ready(&setup).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let resource = api.get("changed").await.unwrap();
        let held: Vec<_> = sim
            .sessions(false)
            .await
            .into_iter()
            .filter(|s| sink_uid(s) == Some(uid.as_str()))
            .collect();
        if qos_status(&resource) == Some("AVAILABLE")
            && held.len() == 1
            && held[0]["qosProfile"] == "QOS_L"
            && held[0]["sessionId"].as_str() == session_id(&resource)
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            let profiles: Vec<_> = held.iter().map(|s| s["qosProfile"].clone()).collect();
            let status = resource.status.unwrap_or_default();
            panic!(
                "after 30 s the spec says QOS_L (generation {:?}) and the provider holds {profiles:?}; \
                 status: qosStatus {:?}, observedGeneration {:?}",
                resource.metadata.generation, status.qos_status, status.observed_generation
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.shutdown().await;
}
