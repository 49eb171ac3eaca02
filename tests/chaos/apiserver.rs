//! The Kubernetes API server as a source of faults, counted where requests land (its audit
//! log, tests/support/src/audit.rs), with the operator as its own ServiceAccount so its requests
//! stand apart from the test's:
//!
//! - API priority and fairness answering 429: the operator waits out `Retry-After` instead of
//!   hot-looping, the webhook answers non-2xx for a status it could not store so the provider
//!   retries (a 2xx means stored), and everything converges and is cleaned up.
//! - Watch expiry: the operator cut off from the API server (tests/support/src/proxy.rs) while
//!   resources are created, changed and deleted and etcd compacts, so its resumed watch is
//!   answered 410 Gone; it relists and acts on every change, with no burst of provider calls.

use std::{collections::BTreeMap, net::SocketAddr, path::Path, time::Duration};

use futures::{StreamExt, future::join_all};
use jiff::Timestamp;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchParams},
    core::WatchEvent,
};
use qod_operator::{api::QodSession, simulator};
use qod_test_support::{
    Cluster, ControlPlane, audit,
    audit::AuditLog,
    eventually,
    identity::ServiceAccountUser,
    operator::{Operator, OperatorSetup},
    proxy::TcpProxy,
    session::{numbered_spec, qos_status, ready, session_id},
    simulator::{Sim, deliveries_answered, sink_uid},
    test_dir,
};
use serde_json::{Value, json};

use crate::OPERATOR;

/// The controller's `--concurrency` default plus the webhook's in-flight cap plus its watch:
/// the most requests the operator can have waiting on the API server at once.
const MOST_IN_FLIGHT: usize = 16 + 64 + 1;

/// A simulator that answers AVAILABLE 200 ms after a create and, like a provider that means
/// it, retries a refused notification for about a minute (the webhook's request timeout is
/// 10 s, each attempt may wait 15 s for its answer).
async fn patient_simulator() -> (simulator::RunningSimulator, Sim) {
    Sim::start(simulator::SimulatorConfig {
        available_after: Duration::from_millis(200),
        notification_retry: simulator::RetryPolicy {
            attempts: 20,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(3),
            timeout: Duration::from_secs(15),
        },
        ..simulator::SimulatorConfig::default()
    })
    .await
}

/// The operator as ServiceAccount `qod-operator` of the test's namespace, reaching the API
/// server at `server` (default: where the admin kubeconfig points).
async fn operator_setup(
    dir: &Path,
    cluster: &Cluster,
    sim: &Sim,
    server: Option<&str>,
) -> (OperatorSetup, String) {
    let user =
        ServiceAccountUser::create(&cluster.client, &cluster.namespace, "qod-operator").await;
    let mut setup = OperatorSetup::for_cluster(OPERATOR, dir, cluster, sim.provider_url());
    setup.kubeconfig = dir.join("operator-kubeconfig");
    user.write_kubeconfig(&cluster.kubeconfig, server, &setup.kubeconfig);
    (setup, user.username)
}

/// Every resource AVAILABLE and Ready, each holding the one live provider session made for it.
async fn assert_converged(api: &Api<QodSession>, sim: &Sim, names: &[String], within: Duration) {
    for name in names {
        // Settled: its expiry read from the provider too, so no read of it is still due.
        eventually(&format!("{name} AVAILABLE and Ready"), within, || async {
            let resource = api.get(name).await.unwrap();
            let (status, _, _) = ready(&resource)?;
            let expiry_read = resource.status.as_ref()?.expires_at.is_some();
            (status == "True" && qos_status(&resource) == Some("AVAILABLE") && expiry_read)
                .then_some(())
        })
        .await;
    }
    let live = sim.sessions(false).await;
    for name in names {
        let resource = api.get(name).await.unwrap();
        let uid = resource.uid().unwrap();
        let held: Vec<_> = live
            .iter()
            .filter(|s| sink_uid(s) == Some(uid.as_str()))
            .collect();
        assert_eq!(held.len(), 1, "{name}: one provider session: {held:#?}");
        assert_eq!(
            held[0]["sessionId"].as_str(),
            session_id(&resource),
            "{name}"
        );
    }
}

/// Waits until none of `names` exists any more (their finalizers removed).
async fn assert_gone(api: &Api<QodSession>, names: &[String], within: Duration) {
    for name in names {
        eventually(&format!("{name} deleted"), within, || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }
}

/// Provider calls in a `/_sim/stats` snapshot, per operation (every status code).
fn calls_by_operation(stats: &Value) -> BTreeMap<String, u64> {
    stats["apiRequests"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(operation, codes)| {
            let sum = codes
                .as_object()
                .into_iter()
                .flat_map(|c| c.values())
                .filter_map(Value::as_u64)
                .sum();
            (operation.clone(), sum)
        })
        .collect()
}

/// `after - before` per operation.
fn calls_between(before: &Value, after: &Value) -> BTreeMap<String, u64> {
    let before = calls_by_operation(before);
    calls_by_operation(after)
        .into_iter()
        .map(|(op, n)| {
            let was = before.get(&op).copied().unwrap_or(0);
            (op, n - was)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

const SESSIONS: usize = 40;

/// A priority level of one seat and a short queue for every ServiceAccount of `namespace`:
/// what the API server cannot queue it answers 429. The admin (system:masters) stays exempt,
/// so the test itself can always look.
async fn throttle_service_accounts(admin: &Client, namespace: &str) {
    let apply = PatchParams::apply("qod-operator-tests").force();
    let levels: Api<kube::core::DynamicObject> = Api::all_with(
        admin.clone(),
        &kube::discovery::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk(
                "flowcontrol.apiserver.k8s.io",
                "v1",
                "PriorityLevelConfiguration",
            ),
            "prioritylevelconfigurations",
        ),
    );
    let level = json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
        "metadata": {"name": "qod-tests-tight"},
        "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 1, "lendablePercent": 0, "borrowingLimitPercent": 0,
            "limitResponse": {"type": "Queue",
                "queuing": {"queues": 1, "handSize": 1, "queueLengthLimit": 16}},
        }},
    });
    levels
        .patch("qod-tests-tight", &apply, &Patch::Apply(level))
        .await
        .unwrap();
    let schemas: Api<kube::core::DynamicObject> = Api::all_with(
        admin.clone(),
        &kube::discovery::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema"),
            "flowschemas",
        ),
    );
    let schema = json!({
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "FlowSchema",
        "metadata": {"name": "qod-tests-tight"},
        "spec": {
            "priorityLevelConfiguration": {"name": "qod-tests-tight"},
            // Before the built-in service-accounts schema (9000).
            "matchingPrecedence": 500,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{
                "subjects": [{"kind": "ServiceAccount",
                              "serviceAccount": {"namespace": namespace, "name": "*"}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                   "clusterScope": true, "namespaces": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            }],
        },
    });
    schemas
        .patch("qod-tests-tight", &apply, &Patch::Apply(schema))
        .await
        .unwrap();
    // In force once the API server's APF controller has found its priority level.
    eventually(
        "the FlowSchema to be in force",
        Duration::from_secs(30),
        || async {
            let schema = schemas.get("qod-tests-tight").await.unwrap();
            let conditions = schema.data["status"]["conditions"].as_array()?.clone();
            conditions
                .iter()
                .any(|c| c["type"] == "Dangling" && c["status"] == "False")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_by_the_api_server_the_operator_waits_loses_no_notification_and_converges() {
    let dir = test_dir("chaos/apiserver-429");
    let (mut flags, audit_log) = audit::apiserver_flags(&dir);
    // Under APF the two limits add up to the server's concurrency, shared among the
    // priority levels; ours gets a single seat of it either way.
    flags.extend([
        "--max-requests-inflight=10".to_owned(),
        "--max-mutating-requests-inflight=5".to_owned(),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let control_plane = ControlPlane::start_own_with("apiserver-429", &flags);
    let cluster = Cluster::on(&control_plane, "throttled").await;
    throttle_service_accounts(&cluster.client, &cluster.namespace).await;
    let (running, sim) = patient_simulator().await;
    let (setup, operator_user) = operator_setup(&dir, &cluster, &sim, None).await;
    let mut operator = Operator::start_ready(&setup).await;
    // The burst comes from another throttled user, so it competes for the same seat.
    let load_user = ServiceAccountUser::create(&cluster.client, &cluster.namespace, "load").await;
    let load = load_user.client(&cluster.kubeconfig, &dir).await;
    let load: Api<QodSession> = Api::namespaced(load, &cluster.namespace);

    let started = Timestamp::now();
    let names: Vec<String> = (0..SESSIONS).map(|i| format!("burst-{i}")).collect();
    join_all(names.iter().enumerate().map(|(index, name)| {
        let load = load.clone();
        async move {
            load.create(
                &PostParams::default(),
                &QodSession::new(name, numbered_spec(index, "QOS_M", 1800)),
            )
            .await
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
        }
    }))
    .await;
    println!(
        "429: {SESSIONS} creates took {}",
        Timestamp::now() - started
    );
    assert_converged(&cluster.api, &sim, &names, Duration::from_secs(180)).await;
    let converged = Timestamp::now();
    println!("429: converged after {}", converged - started);

    // No notification lost: the provider retries every refused one until it is delivered (a
    // 2xx), and each delivered one is in the resource's status.
    let live = eventually(
        "every notification delivered",
        Duration::from_secs(90),
        || async {
            let live = sim.sessions(false).await;
            live.iter().all(deliveries_answered).then_some(live)
        },
    )
    .await;
    let mut retried = 0;
    for name in &names {
        let resource = cluster.api.get(name).await.unwrap();
        let uid = resource.uid().unwrap();
        let held = live
            .iter()
            .find(|s| sink_uid(s) == Some(uid.as_str()))
            .unwrap();
        let deliveries = held["deliveries"].as_array().unwrap();
        let delivered: Vec<_> = deliveries
            .iter()
            .filter(|d| d["outcome"] == "delivered")
            .collect();
        assert!(
            deliveries.iter().all(|d| d["outcome"] == "delivered"),
            "{name}: every notification delivered: {deliveries:#?}"
        );
        retried += deliveries
            .iter()
            .filter(|d| d["attempts"].as_u64() > Some(1))
            .count();
        let last = delivered.last().expect("an AVAILABLE notification");
        let stored = &resource.status.as_ref().unwrap().last_notification;
        assert_eq!(
            stored.as_ref().and_then(|n| n.id.as_deref()),
            last["eventId"].as_str(),
            "{name}: the delivered notification is the one stored"
        );
    }

    // Cleanup under the same limits: every provider session deleted, every finalizer gone.
    join_all(names.iter().map(|name| {
        let load = load.clone();
        async move {
            load.delete(name, &DeleteParams::default())
                .await
                .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
        }
    }))
    .await;
    assert_gone(&cluster.api, &names, Duration::from_secs(180)).await;
    assert_eq!(sim.stats().await["liveSessions"], 0, "no orphaned session");
    let finished = Timestamp::now();

    let log = AuditLog::read(&audit_log);
    let ours = log.by_user(&operator_user).since(started);
    let refused = ours.with_code(429);
    let webhook_refused = refused.filter(|e| e.request_uri.contains("qod-operator-webhook"));
    let load_refused = log.by_user(&load_user.username).with_code(429);
    let seconds = (finished - started).get_seconds().max(1) as usize;
    println!(
        "429: the operator made {} requests in {seconds} s ({:.1}/s, peak {}/s), {} answered 429 \
         (peak {}/s; {} of them webhook status writes); the load got {} 429s; {retried} \
         notifications needed more than one attempt. Operator requests per second: {:?}",
        ours.len(),
        ours.len() as f64 / seconds as f64,
        ours.peak_per_second(),
        refused.len(),
        refused.peak_per_second(),
        webhook_refused.len(),
        load_refused.len(),
        ours.per_second(),
    );
    assert!(
        !refused.is_empty(),
        "the API server never answered the operator 429: this run proved nothing"
    );
    // Retry-After honoured: each request waiting on the server is refused at most once a
    // second, so a second holds at most one 429 per request the operator can have in flight
    // (twice that across a second's boundary). A client retrying at once would make hundreds.
    assert!(
        refused.peak_per_second() <= 2 * MOST_IN_FLIGHT,
        "hot loop: {} 429s in one second",
        refused.peak_per_second()
    );
    // The work: per resource a finalizer, a status write after the create, the notification's
    // status write, the deletion's provider call and the finalizer's removal, with a few reads
    // and conflicts; three times that covers a bad run, a hot loop makes far more.
    let needed = SESSIONS * 8;
    let succeeded = ours.len() - refused.len();
    assert!(
        succeeded <= 3 * needed,
        "{succeeded} successful requests for {SESSIONS} resources"
    );
    assert!(operator.terminate().await);
    running.shutdown().await;
}

/// Whether etcd has compacted past `resource_version`: a watch from there is answered 410
/// Gone (with the watch cache off, by etcd itself), instead of replaying what came after.
async fn compacted_past(api: &Api<QodSession>, resource_version: &str) -> bool {
    let params = WatchParams::default().timeout(1);
    match api.watch(&params, resource_version).await {
        Err(kube::Error::Api(status)) if status.code == 410 => true,
        Err(error) => panic!("watching from {resource_version}: {error}"),
        Ok(stream) => match stream.boxed().next().await {
            Some(Ok(WatchEvent::Error(status))) => {
                assert_eq!(status.code, 410, "{status:?}");
                true
            }
            _ => false,
        },
    }
}

/// Resources the cut leaves alone; a relist that touched each at the provider would show.
const UNTOUCHED: usize = 10;

// Before the controller skipped copies a write was refused for (OwnWrite::Refused), a status
// write that conflicted while its watch was down was retried every 200 ms from the same stale
// copy, each pass re-reading the session at the provider: 135 conflicts and 140 provider GETs
// in about 8 s for 18 resources, where this test allows the 15 the changes need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_relists_and_acts_on_every_change_without_a_burst_of_calls() {
    let dir = test_dir("chaos/apiserver-410");
    let (mut flags, audit_log) = audit::apiserver_flags(&dir);
    // Watches served by etcd, which compacts every second: a watch resumed from before a
    // partition finds its revision gone.
    flags.extend([
        "--watch-cache=false".to_owned(),
        "--etcd-compaction-interval=1s".to_owned(),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let control_plane = ControlPlane::start_own_with("apiserver-410", &flags);
    let cluster = Cluster::on(&control_plane, "expiry").await;
    let proxy = TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], control_plane.port()))).await;
    let (running, sim) = patient_simulator().await;
    let (mut setup, operator_user) =
        operator_setup(&dir, &cluster, &sim, Some(&proxy.https_url())).await;
    // kube's watcher logs the 410 it relists on at debug.
    setup.rust_log = "info,kube_runtime=debug,qod_operator=debug".into();
    let mut operator = Operator::start_ready(&setup).await;
    let api = &cluster.api;

    let group = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let untouched: Vec<String> = group("untouched", UNTOUCHED);
    let deleted: Vec<String> = group("deleted", 3);
    let replaced: Vec<String> = group("replaced", 3);
    let extended: Vec<String> = group("extended", 2);
    let created: Vec<String> = group("created", 4);
    let before: Vec<String> = [&untouched, &deleted, &replaced, &extended]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for (index, name) in before.iter().enumerate() {
        api.create(
            &PostParams::default(),
            &QodSession::new(name, numbered_spec(index, "QOS_M", 1800)),
        )
        .await
        .unwrap();
    }
    assert_converged(api, &sim, &before, Duration::from_secs(60)).await;
    let uids: BTreeMap<String, String> =
        join_all(before.iter().map(|name| async move {
            (name.clone(), api.get(name).await.unwrap().uid().unwrap())
        }))
        .await
        .into_iter()
        .collect();

    // The partition. Everything the operator saw is older than `seen`.
    proxy.cut();
    let seen = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let calls_at_cut = sim.stats().await;
    let reads_of = |sessions: Vec<Value>| -> BTreeMap<String, u64> {
        sessions
            .iter()
            .map(|s| {
                (
                    s["sessionId"].as_str().unwrap().to_owned(),
                    s["reads"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let reads_at_cut = reads_of(sim.sessions(false).await);
    for (index, name) in created.iter().enumerate() {
        api.create(
            &PostParams::default(),
            &QodSession::new(name, numbered_spec(100 + index, "QOS_M", 1800)),
        )
        .await
        .unwrap();
    }
    for name in &replaced {
        let patch = json!({"spec": {"qosProfile": "QOS_L"}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
    for name in &extended {
        let patch = json!({"spec": {"duration": 2400}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
    for name in &deleted {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    eventually(
        "etcd to compact past the partition's start",
        Duration::from_secs(60),
        || async { compacted_past(api, &seen).await.then_some(()) },
    )
    .await;
    let restored = Timestamp::now();
    proxy.restore();

    // Every change acted on.
    let live_after: Vec<String> = [&untouched, &replaced, &extended, &created]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    assert_converged(api, &sim, &live_after, Duration::from_secs(90)).await;
    assert_gone(api, &deleted, Duration::from_secs(90)).await;
    let live = sim.sessions(false).await;
    let held = |name: &str| {
        let resource_uid = &uids[name];
        live.iter()
            .find(|s| sink_uid(s) == Some(resource_uid.as_str()))
            .cloned()
    };
    for name in &deleted {
        assert!(held(name).is_none(), "{name}: its session deleted");
    }
    for name in &replaced {
        assert_eq!(held(name).unwrap()["qosProfile"], "QOS_L", "{name}");
    }
    for name in &extended {
        let duration = held(name).unwrap()["duration"].as_u64().unwrap();
        assert!(duration >= 2400, "{name}: extended to {duration} s");
    }
    assert_eq!(
        sim.stats().await["liveSessions"],
        live_after.len(),
        "no duplicate, no orphan"
    );

    // The provider calls since the cut: exactly the writes the changes need, and at most a
    // few reads (a session still REQUESTED is re-read each second until its notification).
    let calls = calls_between(&calls_at_cut, &sim.stats().await);
    let count = |op: &str| calls.get(op).copied().unwrap_or(0);
    let writes = [
        ("create", created.len() + replaced.len()),
        ("delete", deleted.len() + replaced.len()),
        ("extend", extended.len()),
    ];
    let needed: usize = writes.iter().map(|(_, n)| n).sum();
    let total: u64 = calls.values().sum();
    let log = AuditLog::read(&audit_log);
    let relists = log
        .by_user(&operator_user)
        .since(restored)
        .on_resource("qodsessions")
        .with_verb("list");
    let expired = std::fs::read_to_string(&setup.log)
        .unwrap()
        .lines()
        .filter(|line| line.contains("410"))
        .count();
    println!(
        "410: after the restore the operator listed QodSessions {} times ({expired} log lines \
         name a 410); provider calls since the cut: {calls:?} ({total} for {needed} writes \
         needed)",
        relists.len()
    );
    assert!(
        !relists.is_empty(),
        "the operator never relisted after the restore: its watch did not expire"
    );
    for (op, n) in writes {
        assert_eq!(count(op), n as u64, "{op} calls: {calls:?}");
    }
    // Reads only of new sessions (while REQUESTED, and once after AVAILABLE for the expiry):
    // the sessions settled before the cut and kept (untouched, extended: the extension's
    // answer carries what a read would) are not read again, as a relist that re-read
    // everything would.
    let reads_now = reads_of(sim.sessions(false).await);
    let reread: Vec<String> = untouched
        .iter()
        .chain(&extended)
        .filter_map(|name| {
            let id = held(name)?["sessionId"].as_str()?.to_owned();
            let (before, after) = (reads_at_cut.get(&id)?, reads_now.get(&id)?);
            (after > before).then(|| format!("{name}: {before} -> {after}"))
        })
        .collect();
    assert!(
        reread.is_empty(),
        "settled sessions read again after the relist: {reread:?} ({total} provider calls: \
         {calls:?})"
    );
    assert!(operator.terminate().await);
    running.shutdown().await;
}
