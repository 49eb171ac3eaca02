//! The operator stopped mid-flight, between a provider create and the status write that records
//! its id (the simulator's `answerDelayMs` holds the answer back after the session exists), by
//! SIGKILL and by SIGTERM; a new process converges with exactly one session per resource and no
//! orphan, and a delete afterwards leaves nothing at the provider.

use serde_json::json;

use crate::{
    support::eventually,
    world::{WAIT, World, assert_one_session_each},
};

/// Sessions applied in each round (distinct devices, so none overlaps another's flow).
const PER_ROUND: usize = 4;

fn manifests(round: usize) -> String {
    (0..PER_ROUND)
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

/// Applies a round of sessions while the provider holds its answers back, and waits until every
/// one of them exists at the provider (created, id not yet known to the operator).
async fn apply_with_answers_held(world: &World, round: usize, expected_total: usize) {
    world.faults(json!({"answerDelayMs": 4000})).await;
    let file = world.dir.join(format!("round-{round}.yaml"));
    std::fs::write(&file, manifests(round)).unwrap();
    world
        .kubectl(&["apply", "-f", file.to_str().unwrap()])
        .await;
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
