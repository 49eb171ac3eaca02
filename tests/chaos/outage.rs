//! The provider down for a while (every API call answered 503): resources say so in `Ready`
//! (reason `ProviderUnavailable`, the message naming the failure), the operator backs off
//! (the request rate falls as the outage lasts), and everything converges once the provider
//! is back, without duplicates.

use std::time::Duration;

use kube::{
    ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use qod_operator::api::QodSession;
use qod_test_support::{
    Cluster, eventually,
    operator::{Operator, OperatorSetup},
    session::{numbered_spec, qos_status, ready, session_id},
    simulator::{in_process_simulator, sink_uid},
    test_dir,
};
use serde_json::json;

use crate::OPERATOR;

const BEFORE: usize = 4;
const DURING: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_shows_in_ready_backs_off_and_converges_when_the_provider_returns() {
    let dir = test_dir("chaos/outage");
    let cluster = Cluster::start("outage").await;
    let (running, sim) = in_process_simulator().await;
    let setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, sim.provider_url());
    let mut operator = Operator::start_ready(&setup).await;
    let api = &cluster.api;

    for index in 0..BEFORE {
        let name = format!("before-{index}");
        api.create(
            &PostParams::default(),
            &QodSession::new(&name, numbered_spec(index, "QOS_M", 1800)),
        )
        .await
        .unwrap();
    }
    let names =
        |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}-{i}")).collect::<Vec<_>>();
    for name in names("before", BEFORE) {
        eventually(
            &format!("{name} AVAILABLE"),
            Duration::from_secs(30),
            || async {
                (qos_status(&api.get(&name).await.unwrap()) == Some("AVAILABLE")).then_some(())
            },
        )
        .await;
    }

    // The outage: every API call is a 503 (Retry-After: 1). New resources need a create; the
    // old ones get a new profile, so they need a delete and a create.
    sim.faults(json!({"errorRate": 1.0, "retryAfterSeconds": 1}))
        .await;
    for index in 0..DURING {
        let name = format!("during-{index}");
        api.create(
            &PostParams::default(),
            &QodSession::new(&name, numbered_spec(100 + index, "QOS_M", 1800)),
        )
        .await
        .unwrap();
    }
    for name in names("before", BEFORE) {
        let patch = json!({"spec": {"qosProfile": "QOS_L"}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
    for name in names("during", DURING)
        .into_iter()
        .chain(names("before", BEFORE))
    {
        let (status, _reason, message) = eventually(
            &format!("{name} to say the provider is unavailable"),
            Duration::from_secs(30),
            || async {
                ready(&api.get(&name).await.unwrap())
                    .filter(|(_, reason, _)| reason == "ProviderUnavailable")
            },
        )
        .await;
        assert_eq!(status, "False", "{name}");
        let lower = message.to_lowercase();
        assert!(
            lower.contains("503") || lower.contains("unavailable"),
            "{name}: the message names the failure: {message}"
        );
    }
    let first = api.get("during-0").await.unwrap();
    println!("outage: Ready of a new resource: {:?}", ready(&first));

    // Backoff: two observation windows of 10 s each (measuring a rate, not waiting for a
    // condition). Without backoff ten resources would make hundreds of calls a second.
    let resources = (BEFORE + DURING) as f64;
    let mut rates = Vec::new();
    for _ in 0..2 {
        let before = sim.api_calls().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let calls = sim.api_calls().await - before;
        rates.push(calls as f64 / 10.0);
    }
    let stats = sim.stats().await;
    println!(
        "outage: {:.1} then {:.1} provider calls/s for {resources} resources ({})",
        rates[0], rates[1], stats["apiRequests"]
    );
    // Backoff doubles from 0.5 s: in the first window a resource retries at most ~5 times (one
    // attempt may be a create and a lookup), in the second at most twice.
    assert!(
        rates[0] <= resources * 1.0,
        "first window: {:.1} calls/s",
        rates[0]
    );
    assert!(
        rates[1] <= resources * 0.4,
        "second window: {:.1} calls/s",
        rates[1]
    );
    assert!(
        rates[1] <= rates[0],
        "the rate falls as the outage lasts: {rates:?}"
    );
    assert_eq!(
        stats["liveSessions"], BEFORE,
        "nothing was created or deleted meanwhile"
    );

    // The provider returns: each resource converges to one AVAILABLE session of its spec.
    sim.faults(json!({})).await;
    let recovered = std::time::Instant::now();
    for name in names("during", DURING)
        .into_iter()
        .chain(names("before", BEFORE))
    {
        let resource = eventually(
            &format!("{name} AVAILABLE again"),
            Duration::from_secs(120),
            || async {
                let resource = api.get(&name).await.unwrap();
                let (status, _, _) = ready(&resource)?;
                (status == "True" && qos_status(&resource) == Some("AVAILABLE")).then_some(resource)
            },
        )
        .await;
        let uid = resource.uid().unwrap();
        let held: Vec<_> = sim
            .sessions(false)
            .await
            .into_iter()
            .filter(|s| sink_uid(s) == Some(uid.as_str()))
            .collect();
        assert_eq!(held.len(), 1, "{name}: {held:#?}");
        assert_eq!(held[0]["sessionId"].as_str(), session_id(&resource));
        let profile = if name.starts_with("before") {
            "QOS_L"
        } else {
            "QOS_M"
        };
        assert_eq!(held[0]["qosProfile"], profile, "{name}");
    }
    println!(
        "outage: converged {:?} after the provider returned",
        recovered.elapsed()
    );
    assert_eq!(sim.stats().await["liveSessions"], BEFORE + DURING);
    assert!(operator.terminate().await);
    running.shutdown().await;
}
