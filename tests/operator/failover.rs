//! Two operator processes against one API and one provider: one leads; when it dies the other
//! takes over within the lease duration and finishes what was pending, without duplicates,
//! also when it dies in the middle of 500 creates.

use std::{path::PathBuf, time::Duration};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, PostParams},
};
use qod_operator::{
    api::{QodSession, QodSessionSpec, intent::effective_status},
    simulator::RunningSimulator,
};
use qod_test_support::{
    Cluster, eventually,
    operator::{Operator, OperatorSetup},
    session,
    simulator::{Sim, in_process_simulator},
    test_dir,
};
use serde_json::{Value, json};

use crate::OPERATOR;

const WAIT: Duration = Duration::from_secs(30);

/// The shared control plane with a namespace of the test's own, and a simulator.
struct World {
    client: Client,
    namespace: String,
    kubeconfig: PathBuf,
    sim: RunningSimulator,
    provider: Sim,
    api: Api<QodSession>,
    dir: PathBuf,
}

impl World {
    async fn start(test: &str) -> Self {
        let dir = test_dir(test);
        let Cluster {
            client,
            api,
            namespace,
            kubeconfig,
        } = Cluster::start(test).await;
        let (sim, provider) = in_process_simulator().await;
        Self {
            client,
            namespace,
            kubeconfig,
            sim,
            provider,
            api,
            dir,
        }
    }

    fn operator(&self, name: &str) -> Operator {
        let setup = OperatorSetup::new(
            OPERATOR,
            &self.dir,
            &self.kubeconfig,
            &self.namespace,
            self.provider.provider_url(),
        );
        Operator::start(&setup.replica(name))
    }

    /// Two replicas, once one leads and the other is ready: (both, the leader's index, the
    /// other's).
    async fn pair(&self, first: &str, second: &str) -> ([Operator; 2], usize, usize) {
        let operators = [self.operator(first), self.operator(second)];
        let leader = the_leader(&[&operators[0], &operators[1]]).await;
        let survivor = 1 - leader;
        // Readiness needs only the replica's cache synced, not the lease.
        eventually(
            "the replica that does not lead to be ready",
            WAIT,
            || async { operators[survivor].ready().await.then_some(()) },
        )
        .await;
        (operators, leader, survivor)
    }

    async fn sessions_of(&self, uid: &str) -> Vec<Value> {
        self.provider.sessions_of(uid).await
    }

    async fn stats(&self) -> Value {
        self.provider.stats().await
    }

    async fn faults(&self, faults: Value) {
        self.provider.faults(faults).await;
    }

    async fn stop(self) {
        self.sim.shutdown().await;
    }
}

fn spec() -> QodSessionSpec {
    session::spec("+36721601239901", "QOS_L", 600)
}

/// Waits until exactly one of `operators` leads, and returns its index.
async fn the_leader(operators: &[&Operator]) -> usize {
    eventually("exactly one leader", WAIT, || async {
        let mut leaders = Vec::new();
        for (index, operator) in operators.iter().enumerate() {
            if operator.leads().await == Some(true) {
                leaders.push(index);
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    })
    .await
}

#[tokio::test]
async fn the_survivor_finishes_a_create_the_leader_died_in() {
    let world = World::start("failover").await;
    let (mut operators, leader, survivor) = world.pair("op-a", "op-b").await;

    // The provider creates the session but holds the answer back, so the leader dies with the
    // session made and its id unrecorded: the survivor must find it, not make a second one.
    world.faults(json!({"answerDelayMs": 3000})).await;
    let created = world
        .api
        .create(&PostParams::default(), &QodSession::new("pending", spec()))
        .await
        .unwrap();
    let uid = created.uid().unwrap();
    eventually("the session to exist at the provider", WAIT, || async {
        (world.sessions_of(&uid).await.len() == 1).then_some(())
    })
    .await;
    let made = world.sessions_of(&uid).await[0]["sessionId"].clone();
    operators[leader].kill();
    let pending = effective_status(&world.api.get("pending").await.unwrap());
    assert!(pending.session_id.is_none() && pending.create_requested_at.is_some());
    world.faults(json!({})).await;

    let took_over = std::time::Instant::now();
    eventually("the survivor to lead", WAIT, || async {
        (operators[survivor].leads().await == Some(true)).then_some(())
    })
    .await;
    assert!(
        took_over.elapsed() <= Duration::from_secs(4 + 3),
        "took {:?}, the lease lasts 4 s",
        took_over.elapsed()
    );

    let available = eventually("the session to be AVAILABLE", WAIT, || async {
        let session = world.api.get("pending").await.unwrap();
        let status = session.status?;
        (status.qos_status.as_deref() == Some("AVAILABLE")).then_some(status)
    })
    .await;
    let at_provider = world.sessions_of(&uid).await;
    assert_eq!(
        at_provider.len(),
        1,
        "exactly one session: {at_provider:#?}"
    );
    assert_eq!(
        at_provider[0]["sessionId"], made,
        "the one the dead leader made, adopted"
    );
    assert_eq!(
        at_provider[0]["sessionId"].as_str(),
        available.session_id.as_deref()
    );

    // Its metrics show the lookup that found the session, and its reconcile passes.
    let survivor_op = &operators[survivor];
    let lookups = survivor_op
        .metric(r#"qod_operator_provider_requests_total{provider="default",operation="retrieve_sessions",code="200"}"#)
        .await;
    assert!(lookups.is_some_and(|n| n >= 1.0), "lookups: {lookups:?}");
    // A pass is counted when it returns, just after its status write made the resource
    // AVAILABLE.
    eventually("a reconcile pass counted as ok", WAIT, || async {
        survivor_op
            .metric(r#"qod_operator_reconciliations_total{outcome="ok"}"#)
            .await
            .filter(|passes| *passes >= 1.0)
    })
    .await;
    // The resources by status, counted from its cache.
    eventually(
        "the sessions gauge to count the AVAILABLE one",
        WAIT,
        || async {
            let available = survivor_op
                .metric(r#"qod_operator_sessions{qos_status="AVAILABLE"}"#)
                .await;
            (available == Some(1.0)).then_some(())
        },
    )
    .await;

    // The survivor also deletes it.
    world
        .api
        .delete("pending", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the resource to go", WAIT, || async {
        world
            .api
            .get_opt("pending")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(world.sessions_of(&uid).await.is_empty());
    assert!(
        operators[survivor].terminate().await,
        "a clean exit on SIGTERM"
    );
    world.stop().await;
}

/// SIGTERM releases the lease on the way out (the holder is cleared at once), and the other
/// replica leads within the lease duration: kube-lease-manager's candidates look again when the
/// lease they saw would expire, so a release spares them the forced takeover, not the wait.
#[tokio::test]
async fn sigterm_releases_the_lease_and_the_other_replica_takes_over() {
    let world = World::start("handover").await;
    let mut operators = [world.operator("op-c"), world.operator("op-d")];
    let leader = the_leader(&[&operators[0], &operators[1]]).await;
    let other = 1 - leader;

    let stopping = std::time::Instant::now();
    assert!(
        operators[leader].terminate().await,
        "a clean exit on SIGTERM"
    );
    let leases: Api<Lease> = Api::namespaced(world.client.clone(), &world.namespace);
    let holder = leases
        .get("qod-operator")
        .await
        .unwrap()
        .spec
        .and_then(|spec| spec.holder_identity)
        .filter(|holder| !holder.is_empty());
    assert!(
        holder.is_none() || holder.as_deref() == Some(operators[other].name.as_str()),
        "released on exit, still held by {holder:?}"
    );
    eventually("the other to lead", WAIT, || async {
        (operators[other].leads().await == Some(true)).then_some(())
    })
    .await;
    assert!(
        stopping.elapsed() < Duration::from_secs(4 + 3),
        "took {:?}; the lease lasts 4 s",
        stopping.elapsed()
    );
    world.stop().await;
}

/// Sessions created at once for the failover under load.
const UNDER_LOAD: usize = 500;

/// The leader SIGKILLed in the middle of 500 creates (half of them made at the provider, some
/// with their answers on the way): the other replica takes over, adopts what the dead leader
/// made but could not record, and finishes the rest; the provider made exactly one session per
/// resource. Prints how soon the new leader made its first provider call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_in_the_middle_of_500_creates_leaves_no_duplicate() {
    let world = World::start("failover-load").await;
    let (mut operators, leader, survivor) = world.pair("op-e", "op-f").await;
    // Answers held back a while, so creates are in flight when the leader dies.
    world.faults(json!({"answerDelayMs": 400})).await;

    let mut uids = Vec::with_capacity(UNDER_LOAD);
    for i in 0..UNDER_LOAD {
        let mut spec = spec();
        spec.device.phone_number = Some(format!("+3672160124{i:04}").into());
        let created = world
            .api
            .create(
                &PostParams::default(),
                &QodSession::new(&format!("load-{i}"), spec),
            )
            .await
            .unwrap();
        uids.push(created.uid().unwrap());
    }
    let made_before = eventually(
        "half the sessions made at the provider",
        WAIT * 4,
        || async {
            let made = world.stats().await["sessionsCreated"].as_u64().unwrap();
            (made >= UNDER_LOAD as u64 / 2).then_some(made)
        },
    )
    .await;
    operators[leader].kill();
    let killed = std::time::Instant::now();
    let pending = world
        .api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|r| {
            let status = effective_status(r);
            status.create_requested_at.is_some() && status.session_id.is_none()
        })
        .count();
    world.faults(json!({})).await;

    let new_leader = &operators[survivor];
    let led_after = eventually("the survivor to lead", WAIT, || async {
        (new_leader.leads().await == Some(true)).then(|| killed.elapsed())
    })
    .await;
    let first_call_after = eventually("the new leader's first provider call", WAIT, || async {
        let calls = new_leader
            .metric_sum("qod_operator_provider_requests_total", "")
            .await?;
        (calls > 0.0).then(|| killed.elapsed())
    })
    .await;
    let all_available = eventually("every session AVAILABLE", WAIT * 4, || async {
        let list = world.api.list(&Default::default()).await.ok()?;
        let available = list
            .items
            .iter()
            .filter(|r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| s.qos_status.as_deref() == Some("AVAILABLE"))
            })
            .count();
        (available == UNDER_LOAD).then(|| killed.elapsed())
    })
    .await;
    let stats = world.stats().await;
    let lookups = new_leader
        .metric_sum(
            "qod_operator_provider_requests_total",
            r#"operation="retrieve_sessions""#,
        )
        .await
        .unwrap();
    println!(
        "failover under load: leader SIGKILLed with {made_before} of {UNDER_LOAD} sessions made at \
         the provider and {pending} creates unrecorded; the survivor led after {:.2} s, made its \
         first provider call after {:.2} s ({lookups} lookups), all AVAILABLE after {:.2} s; \
         sessions created {}",
        led_after.as_secs_f64(),
        first_call_after.as_secs_f64(),
        all_available.as_secs_f64(),
        stats["sessionsCreated"]
    );
    assert_eq!(
        stats["sessionsCreated"].as_u64(),
        Some(UNDER_LOAD as u64),
        "one session per resource, ever: {stats}"
    );
    for uid in &uids {
        let theirs = world.sessions_of(uid).await;
        assert_eq!(theirs.len(), 1, "{uid}: {theirs:#?}");
    }
    assert!(
        lookups >= pending as f64,
        "each of the {pending} unrecorded creates was looked up before anything else ({lookups})"
    );

    world
        .api
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    eventually("every resource gone", WAIT * 4, || async {
        let left = world.api.list(&Default::default()).await.ok()?.items.len();
        (left == 0).then_some(())
    })
    .await;
    assert_eq!(world.stats().await["liveSessions"], 0);
    world.stop().await;
}
