//! One provider call per intent, as a user would see it on a real API server (whose watch lags
//! every write): 300 QodSessions applied at once, the profile changed on 100 (replace) and the
//! duration raised on 100 (extend), then everything deleted. The provider's counters and the
//! operator's own `/metrics` must show exactly the calls the intents need and no error.

use std::collections::HashSet;

use qod_test_support::{eventually, simulator::provider_calls};
use serde_json::Value;

use crate::world::{World, sink_uid};

const SESSIONS: usize = 300;
const REPLACED: std::ops::Range<usize> = 0..100;
const EXTENDED: std::ops::Range<usize> = 100..200;

/// How long one phase of 300 sessions may take on a loaded 2-core machine.
const PHASE: std::time::Duration = std::time::Duration::from_secs(180);

/// Session `i`'s profile and duration, before or after the changes.
fn wanted(i: usize, changed: bool) -> (&'static str, u64) {
    let profile = if changed && REPLACED.contains(&i) {
        "QOS_M"
    } else {
        "QOS_L"
    };
    let duration = if changed && EXTENDED.contains(&i) {
        1200
    } else {
        600
    };
    (profile, duration)
}

/// The manifests of every session; `changed` applies the profile and duration changes.
fn manifests(changed: bool) -> String {
    (0..SESSIONS)
        .map(|i| {
            let (profile, duration) = wanted(i, changed);
            format!(
                "apiVersion: qod.dev/v1alpha1\nkind: QodSession\nmetadata:\n  name: intent-{i}\n\
                 spec:\n  device:\n    phoneNumber: \"+3672170{i:05}\"\n  applicationServer:\n    \
                 ipv4Address: 198.51.100.7\n  qosProfile: {profile}\n  duration: {duration}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

async fn apply(world: &World, changed: bool) {
    let file = world.dir.join(format!("intents-{changed}.yaml"));
    std::fs::write(&file, manifests(changed)).unwrap();
    world
        .kubectl(&["apply", "-f", file.to_str().unwrap()])
        .await;
}

/// Whether every resource is AVAILABLE with the one provider session its status names, and the
/// provider holds `profile(i)` and at least `duration(i)` for each.
async fn settled(world: &World, changed: bool) -> bool {
    let resources = world.resources().await;
    let at_provider = world.provider_sessions().await;
    if resources.len() != SESSIONS || at_provider.len() != SESSIONS {
        return false;
    }
    let by_uid: std::collections::HashMap<&str, &Value> =
        at_provider.iter().map(|s| (sink_uid(s), s)).collect();
    resources.iter().all(|r| {
        let Some(session) = by_uid.get(r.uid.as_str()) else {
            return false;
        };
        let i: usize = r.name.trim_start_matches("intent-").parse().unwrap();
        let (profile, duration) = wanted(i, changed);
        r.qos_status == "AVAILABLE"
            && session["sessionId"].as_str() == Some(r.session_id.as_str())
            && session["qosProfile"] == profile
            && session["duration"].as_u64() == Some(duration)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_replace_extend_delete_make_one_provider_call_per_intent() {
    let world = World::start("intents").await;
    world.install_crd().await;
    let operator = world.leading_operator("op-intents").await;

    apply(&world, false).await;
    eventually("300 sessions AVAILABLE", PHASE, || async {
        settled(&world, false).await.then_some(())
    })
    .await;
    let first_ids: HashSet<String> = world
        .resources()
        .await
        .into_iter()
        .map(|r| r.session_id)
        .collect();

    apply(&world, true).await;
    eventually(
        "100 sessions replaced and 100 extended, all AVAILABLE",
        PHASE,
        || async { settled(&world, true).await.then_some(()) },
    )
    .await;
    let replaced = world
        .resources()
        .await
        .into_iter()
        .filter(|r| !first_ids.contains(&r.session_id))
        .count();
    assert_eq!(
        replaced,
        REPLACED.len(),
        "exactly the sessions whose profile changed have a new id"
    );

    world
        .kubectl(&["delete", "qodsessions", "--all", "--timeout=180s"])
        .await;
    eventually("no session left at the provider", PHASE, || async {
        world.provider_sessions().await.is_empty().then_some(())
    })
    .await;

    let stats = world.provider_stats().await;
    let at_provider = [
        provider_calls(&stats, "create"),
        provider_calls(&stats, "delete"),
        provider_calls(&stats, "extend"),
        provider_calls(&stats, "retrieve_sessions"),
    ];
    let reconcile_errors = operator
        .metric_sum("qod_operator_reconcile_errors_total", "")
        .await
        .unwrap();
    let conflicts = operator
        .metric_sum("qod_operator_reconcile_conflicts_total", "")
        .await
        .unwrap();
    println!(
        "provider calls: create {}, delete {}, extend {}, retrieve-sessions {}, get {}; \
         reconcile errors {reconcile_errors}, conflicts {conflicts}",
        at_provider[0],
        at_provider[1],
        at_provider[2],
        at_provider[3],
        provider_calls(&stats, "get"),
    );
    // A replace is a create and a delete; every resource's end is one delete.
    let creates = (SESSIONS + REPLACED.len()) as u64;
    let deletes = creates;
    assert_eq!(
        at_provider,
        [creates, deletes, EXTENDED.len() as u64, 0],
        "create, delete, extend, retrieve-sessions: one call per intent; provider stats {stats}"
    );
    // The operator counts the same calls it made.
    for (operation, expected) in [
        ("create", creates),
        ("delete", deletes),
        ("extend", EXTENDED.len() as u64),
    ] {
        let label = format!("operation=\"{operation}\"");
        let counted = operator
            .metric_sum("qod_operator_provider_requests_total", &label)
            .await
            .unwrap();
        assert_eq!(
            counted, expected as f64,
            "{operation} in the operator's /metrics"
        );
    }
    assert_eq!(
        reconcile_errors, 0.0,
        "no reconcile error in a fault-free run"
    );
    world.stop().await;
}
