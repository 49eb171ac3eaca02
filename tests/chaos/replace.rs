//! A profile changed and changed back while the replacement's delete is unanswered: the
//! provider deletes the old session, the status write that forgets it loses the race with the
//! second change (409), and the next pass finds a fingerprint that matches the spec again on a
//! session that no longer exists. Found by the chaos run against the real API server.

use kube::{
    ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use qod_operator::api::QodSession;
use qod_test_support::{
    Cluster, eventually,
    operator::{Operator, OperatorSetup},
    session::{numbered_spec, qos_status, session_id},
    simulator::{in_process_simulator, sink_uid},
    test_dir,
};
use serde_json::json;

use crate::{OPERATOR, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_changed_back_during_its_replacement_still_gets_a_session() {
    let dir = test_dir("chaos/replace");
    let cluster = Cluster::start("replace").await;
    let (running, sim) = in_process_simulator().await;
    let setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, sim.provider_url());
    let _operator = Operator::start_ready(&setup).await;
    let api = &cluster.api;
    let profile = |name: &'static str| Patch::Merge(json!({"spec": {"qosProfile": name}}));

    let created = api
        .create(
            &PostParams::default(),
            &QodSession::new("flip", numbered_spec(1, "QOS_L", 1800)),
        )
        .await
        .unwrap();
    let uid = created.uid().unwrap();
    let held = || async {
        sim.sessions(false)
            .await
            .into_iter()
            .filter(|s| sink_uid(s) == Some(uid.as_str()))
            .collect::<Vec<_>>()
    };
    eventually("flip AVAILABLE", WAIT, || async {
        (qos_status(&api.get("flip").await.unwrap()) == Some("AVAILABLE")).then_some(())
    })
    .await;

    // The replacement's delete happens at the provider; its answer is held back.
    sim.faults(json!({"answerDelayMs": 3000})).await;
    api.patch("flip", &PatchParams::default(), &profile("QOS_M"))
        .await
        .unwrap();
    eventually("the old session deleted at the provider", WAIT, || async {
        held().await.is_empty().then_some(())
    })
    .await;
    // The profile goes back before the answer arrives, and the next provider call fails.
    sim.faults(json!({"errorRate": 1.0, "retryAfterSeconds": 1}))
        .await;
    api.patch("flip", &PatchParams::default(), &profile("QOS_L"))
        .await
        .unwrap();
    eventually("a failed attempt recorded", WAIT, || async {
        let status = api.get("flip").await.unwrap().status?;
        (status.consecutive_failures >= 1).then_some(())
    })
    .await;
    sim.faults(json!({})).await;

    eventually(
        "one AVAILABLE QOS_L session, the one status names",
        WAIT,
        || async {
            let resource = api.get("flip").await.unwrap();
            let sessions = held().await;
            (qos_status(&resource) == Some("AVAILABLE")
                && sessions.len() == 1
                && sessions[0]["qosProfile"] == "QOS_L"
                && sessions[0]["sessionId"].as_str() == session_id(&resource))
            .then_some(())
        },
    )
    .await;
    running.shutdown().await;
}
