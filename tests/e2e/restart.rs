//! Stopped mid-flight, between a provider create and the status write that records its id (the
//! simulator's `answerDelayMs` holds the answer back after the session exists): the operator,
//! by SIGKILL and by SIGTERM, where a new process converges with exactly one session per
//! resource and no orphan; and kube-apiserver, by SIGKILL and a restart, which the same operator
//! process rides out. A delete afterwards leaves nothing at the provider.

use qod_test_support::eventually;
use serde_json::json;

use crate::world::{WAIT, World, assert_one_session_each};

/// Sessions applied in each round of the operator restarts (distinct devices, so none overlaps
/// another's flow).
const PER_ROUND: usize = 4;

/// Sessions applied before kube-apiserver dies, and again once it is back.
const AROUND_THE_OUTAGE: usize = 15;

/// `count` QodSessions `restart-<round>-<i>`, each with a device of its own.
fn manifests(round: usize, count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "apiVersion: qod.dev/v1alpha1\nkind: QodSession\nmetadata:\n  name: restart-{round}-{i}\n\
                 spec:\n  device:\n    phoneNumber: \"+3672160{round}{i:06}\"\n  applicationServer:\n    \
                 ipv4Address: 198.51.100.7\n  qosProfile: QOS_L\n  duration: 600\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// `kubectl apply` of a round of `count` sessions.
async fn apply(world: &World, round: usize, count: usize) {
    let file = world.dir.join(format!("round-{round}.yaml"));
    std::fs::write(&file, manifests(round, count)).unwrap();
    world
        .kubectl(&["apply", "-f", file.to_str().unwrap()])
        .await;
}

/// Applies a round of sessions while the provider holds its answers back, and waits until every
/// one of them exists at the provider (created, id not yet known to the operator).
async fn apply_with_answers_held(world: &World, round: usize, expected_total: usize) {
    world.faults(json!({"answerDelayMs": 4000})).await;
    apply(world, round, PER_ROUND).await;
    eventually("the creates to reach the provider", WAIT, || async {
        (world.provider_sessions().await.len() == expected_total).then_some(())
    })
    .await;
}

async fn converge(world: &World, expected: usize) {
    world
        .kubectl(&[
            "wait",
            "qod",
            "--all",
            "--for=jsonpath={.status.qosStatus}=AVAILABLE",
            "--timeout=60s",
        ])
        .await;
    let resources = world.resources().await;
    assert_eq!(resources.len(), expected);
    assert!(resources.iter().all(|r| r.qos_status == "AVAILABLE"));
    assert_one_session_each(&resources, &world.provider_sessions().await);
}

#[tokio::test]
async fn sigkill_and_sigterm_mid_create_converge_without_duplicates_or_orphans() {
    let world = World::start("restart").await;
    world.install_crd().await;

    // SIGKILL with creates made and unanswered: nothing was recorded but the intent.
    let mut first = world.leading_operator("op-restart-1").await;
    apply_with_answers_held(&world, 1, PER_ROUND).await;
    first.kill();
    let recorded: Vec<_> = world
        .resources()
        .await
        .into_iter()
        .filter(|r| !r.session_id.is_empty())
        .collect();
    assert!(
        recorded.is_empty(),
        "the answers were held: no id can be recorded yet: {recorded:#?}"
    );
    world.faults(json!({})).await;
    let mut second = world.leading_operator("op-restart-2").await;
    converge(&world, PER_ROUND).await;

    // SIGTERM with creates in flight: the process exits cleanly, whatever it finished.
    apply_with_answers_held(&world, 2, 2 * PER_ROUND).await;
    assert!(second.terminate().await, "a clean exit on SIGTERM");
    world.faults(json!({})).await;
    let mut third = world.leading_operator("op-restart-3").await;
    converge(&world, 2 * PER_ROUND).await;

    // Deleting everything ends every session at the provider.
    world.kubectl(&["delete", "qod", "--all"]).await;
    let left = world.provider_sessions().await;
    assert!(left.is_empty(), "sessions left at the provider: {left:#?}");
    assert!(world.resources().await.is_empty());
    assert!(third.terminate().await, "a clean exit on SIGTERM");
    world.stop().await;
}

/// kube-apiserver SIGKILLed while creates are in flight (made at the provider, answers on the
/// way, so their status writes meet a dead server) and restarted on the same data and port;
/// more sessions are applied as soon as it is back. The operator process keeps running, every
/// session becomes AVAILABLE with the one provider session its status names (the provider
/// created no other), and deleting them leaves no session and no resource held by a finalizer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_killed_and_restarted_mid_create_is_ridden_out_without_duplicates() {
    let mut world = World::start_own("apiserver-restart").await;
    world.install_crd().await;
    let mut operator = world.leading_operator("op-outage").await;

    world.faults(json!({"answerDelayMs": 1500})).await;
    apply(&world, 5, AROUND_THE_OUTAGE).await;
    eventually("creates to reach the provider", WAIT, || async {
        (!world.provider_sessions().await.is_empty()).then_some(())
    })
    .await;
    // Blocking for the moment the servers take to die and start again; the simulator keeps
    // serving on the other worker thread.
    tokio::task::block_in_place(|| world.control_plane().kill());
    eventually(
        "a status write to fail on the dead API server",
        WAIT,
        || async {
            operator
                .metric(r#"qod_operator_reconcile_errors_total{error="kubernetes"}"#)
                .await
                .filter(|errors| *errors >= 1.0)
        },
    )
    .await;
    tokio::task::block_in_place(|| world.control_plane().restart());
    world.faults(json!({})).await;
    apply(&world, 6, AROUND_THE_OUTAGE).await;

    converge(&world, 2 * AROUND_THE_OUTAGE).await;
    assert!(
        operator.running(),
        "the operator process rode the outage out without a restart"
    );
    let stats = world.provider_stats().await;
    assert_eq!(
        stats["sessionsCreated"],
        2 * AROUND_THE_OUTAGE,
        "one create per resource, none repeated: {stats}"
    );
    assert_eq!(
        operator.leads().await,
        Some(true),
        "the operator still leads"
    );

    // kubectl delete waits for the finalizers: when it returns, each session has ended.
    world.kubectl(&["delete", "qod", "--all"]).await;
    let left = world.provider_sessions().await;
    assert!(left.is_empty(), "sessions left at the provider: {left:#?}");
    assert!(world.resources().await.is_empty());
    assert!(operator.terminate().await, "a clean exit on SIGTERM");
    world.stop().await;
}
