//! The provider down as a process (connection refused, not a 503) and the provider that hangs
//! (accepts, never answers): while it lasts the operator's calls stay bounded by its backoff,
//! each waiting resource says `Ready=False` with reason `ProviderUnavailable` and a message
//! naming the cause, and once the provider is back every resource converges (AVAILABLE,
//! exactly one session each at the provider, no orphan) within one backoff step of the return.
//!
//! What a user expects of a provider that comes back: the sessions it held before are still
//! there (they live in its database, not in its process). The simulator holds sessions in
//! memory, so a restarted simulator is empty: the "refused" test therefore leaves no resource
//! depending on a session the old process held. Every resource of it either is created during
//! the outage, or changes its profile (a replace: the DELETE of the old session meets 404,
//! which counts as done, then a create) or is deleted (DELETE 404: the finalizer goes). A
//! resource that only kept its session would look AVAILABLE until its next resync found the
//! session gone, which says something about the simulator, not the operator. The "hang" test
//! keeps the provider's state (the in-process simulator, hung by its `latencyMs` fault), so
//! there an untouched resource must keep its very session, and no other.
//!
//! "One backoff step": provider failures are spaced by `controller::backoff::delay`, doubling
//! from `FIRST` up to `CAP` with up to 25 % jitter, counted from the start of the failed pass
//! and stored in whole seconds. From the outage's length the test derives the most attempts any
//! resource can have made, and the step that follows them; each resource must be AVAILABLE
//! within that step (plus, for the hang, one provider timeout for an attempt still in flight)
//! and a fixed allowance for the pass itself after the provider's return.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use qod_operator::{
    api::QodSession,
    controller::backoff::{CAP, FIRST},
    simulator::MAX_LATENCY_MS,
};
use qod_test_support::{
    Cluster, eventually,
    net::free_port,
    operator::{Operator, OperatorSetup},
    session::{numbered_spec, qos_status, ready, session_id},
    simulator::{Sim, SimProcess, in_process_simulator, sink_uid},
    test_dir,
};
use serde_json::{Value, json};

use crate::OPERATOR;

/// Resources AVAILABLE before the provider goes away.
const BEFORE: usize = 4;
/// Resources created while it is away.
const DURING: usize = 4;
/// How long the provider stays away.
const OUTAGE: Duration = Duration::from_secs(15);
/// The operator's `--provider-timeout` in the hang test.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(2);
/// What one pass needs once its retry is due, on a loaded 2-core machine: a create, AVAILABLE
/// 200 ms later, its status written. A resource that missed its retry waits one more step,
/// twice the last, which is longer than this.
const SETTLE: Duration = Duration::from_secs(10);
/// The jitter `backoff::delay` adds: up to a quarter of the step.
const JITTER: f64 = 1.25;
/// The label the operator's provider-call metric gives a call that got no answer at all.
const NO_ANSWER: &str = r#"code="none""#;
const PROVIDER_REQUESTS: &str = "qod_operator_provider_requests_total";

/// `next_attempt_at` is stored in whole seconds (truncated), so a stored wait can come up to this
/// much early.
const STAMP: Duration = Duration::from_secs(1);

/// The shortest wait `backoff::delay` schedules after the `failures`-th failure in a row.
fn backoff_floor(failures: u32) -> Duration {
    FIRST
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(CAP)
}

/// The longest wait `backoff::delay` schedules after the `failures`-th failure in a row.
fn backoff_step(failures: u32) -> Duration {
    backoff_floor(failures).mul_f64(JITTER)
}

/// The most attempts one resource can start within `window` of its first when each attempt
/// takes `call`: the wait is counted from the attempt's start (the pass's clock), comes up to
/// `STAMP` early, and the next attempt cannot start before the last one ended.
fn max_attempts(window: Duration, call: Duration) -> u32 {
    let mut attempts = 1;
    let mut next_start = Duration::ZERO;
    loop {
        next_start += call.max(backoff_floor(attempts).saturating_sub(STAMP));
        if next_start > window {
            return attempts;
        }
        attempts += 1;
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn create(api: &Api<QodSession>, name: &str, index: usize) {
    api.create(
        &PostParams::default(),
        &QodSession::new(name, numbered_spec(index, "QOS_M", 1800)),
    )
    .await
    .unwrap();
}

async fn available(api: &Api<QodSession>, name: &str, within: Duration) -> QodSession {
    eventually(&format!("{name} AVAILABLE and Ready"), within, || async {
        let resource = api.get(name).await.unwrap();
        let (status, _, _) = ready(&resource)?;
        (status == "True" && qos_status(&resource) == Some("AVAILABLE")).then_some(resource)
    })
    .await
}

/// What the resources ask of the provider while it is away: `DURING` new ones, `replaced` get a
/// new profile (delete, then create), `deleted` are deleted. Returns the names that stay.
async fn disturb(api: &Api<QodSession>, replaced: &[&str], deleted: &[&str]) -> Vec<String> {
    for (index, name) in names("during", DURING).iter().enumerate() {
        create(api, name, 100 + index).await;
    }
    for name in replaced {
        let patch = json!({"spec": {"qosProfile": "QOS_L"}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
    for name in deleted {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    names("before", BEFORE)
        .into_iter()
        .filter(|name| !deleted.contains(&name.as_str()))
        .chain(names("during", DURING))
        .collect()
}

/// Each of `waiting` says the provider is unavailable, naming `cause`.
async fn assert_unavailable(api: &Api<QodSession>, waiting: &[String], cause: &str) {
    for name in waiting {
        let (status, _, message) = eventually(
            &format!("{name} to say the provider is unavailable"),
            OUTAGE,
            || async {
                ready(&api.get(name).await.unwrap())
                    .filter(|(_, reason, _)| reason == "ProviderUnavailable")
            },
        )
        .await;
        assert_eq!(status, "False", "{name}");
        assert!(
            message.contains(cause),
            "{name}: the message names the cause ({cause}): {message}"
        );
    }
    let example = ready(&api.get(&waiting[0]).await.unwrap()).unwrap();
    println!("provider down: Ready of {}: {example:?}", waiting[0]);
}

/// The most failures in a row any of `names` has recorded.
async fn failures_recorded(api: &Api<QodSession>, names: &[String]) -> u32 {
    let mut most = 0;
    for name in names {
        if let Ok(resource) = api.get(name).await {
            let failures = resource.status.map_or(0, |s| s.consecutive_failures);
            most = most.max(failures);
        }
    }
    most
}

/// Waits for every resource to converge after the provider's return at `returned`, within
/// `ceiling` of it: `live` AVAILABLE with exactly one session each at the provider (of the
/// profile their spec names now), `deleted` gone, and no other session at the provider.
/// Returns each resource's session id and the slowest convergence.
async fn converge(
    api: &Api<QodSession>,
    sim: &Sim,
    live: &[String],
    deleted: &[&str],
    returned: Instant,
    ceiling: Duration,
) -> (BTreeMap<String, String>, Duration) {
    let mut slowest = Duration::ZERO;
    let mut held = BTreeMap::new();
    for name in live {
        let within = ceiling.saturating_sub(returned.elapsed());
        let resource = available(api, name, within).await;
        slowest = slowest.max(returned.elapsed());
        held.insert(resource.uid().unwrap(), name.clone());
    }
    for name in deleted {
        let within = ceiling.saturating_sub(returned.elapsed());
        eventually(&format!("{name} gone"), within, || async {
            api.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
        slowest = slowest.max(returned.elapsed());
    }
    let sessions = sim.sessions(false).await;
    let mut ids = BTreeMap::new();
    for session in &sessions {
        let uid = sink_uid(session).unwrap_or_default();
        let name = held
            .get(uid)
            .unwrap_or_else(|| panic!("an orphan session at the provider: {session:#}"));
        let previous = ids.insert(
            name.clone(),
            session["sessionId"].as_str().unwrap().to_owned(),
        );
        assert!(previous.is_none(), "{name} has two sessions: {sessions:#?}");
    }
    for name in live {
        let resource = api.get(name).await.unwrap();
        let id = ids
            .get(name)
            .unwrap_or_else(|| panic!("{name} has no session at the provider: {sessions:#?}"));
        assert_eq!(session_id(&resource), Some(id.as_str()), "{name}");
        let session = sessions.iter().find(|s| s["sessionId"] == *id).unwrap();
        assert_eq!(
            session["qosProfile"].as_str(),
            Some(&*resource.spec.qos_profile),
            "{name}"
        );
    }
    (ids, slowest)
}

fn total(stats: &Value, field: &str) -> u64 {
    stats[field]
        .as_object()
        .into_iter()
        .flat_map(|ops| ops.values())
        .filter_map(Value::as_u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_process_that_is_down_is_retried_boundedly_and_all_converge_after_its_return() {
    let dir = test_dir("chaos/provider-refused");
    let cluster = Cluster::start("provider-refused").await;
    let api = &cluster.api;
    let port = free_port();
    let (mut provider, sim) = SimProcess::start(OPERATOR, &dir, port, None::<&str>).await;
    let setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, sim.provider_url());
    let operator = Operator::start_ready(&setup).await;

    for (index, name) in names("before", BEFORE).iter().enumerate() {
        create(api, name, index).await;
    }
    for name in names("before", BEFORE) {
        available(api, &name, Duration::from_secs(30)).await;
    }
    assert_eq!(
        operator
            .metric_sum(PROVIDER_REQUESTS, NO_ANSWER)
            .await
            .unwrap(),
        0.0
    );

    provider.kill();
    let down = Instant::now();
    let (replaced, deleted) = (["before-0", "before-1"], ["before-2", "before-3"]);
    let live = disturb(api, &replaced, &deleted).await;
    assert_unavailable(api, &live, "connection refused").await;
    // The outage's schedule: it lasts OUTAGE, whatever the operator does meanwhile.
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;

    // Every call of the outage failed without an answer; each resource's attempts are spaced by
    // the backoff, so there are at most `max_attempts` of them per resource.
    let outage = down.elapsed();
    let calls = operator
        .metric_sum(PROVIDER_REQUESTS, NO_ANSWER)
        .await
        .unwrap() as u64;
    let waiting = DURING + replaced.len() + deleted.len();
    // A refused connection fails at once.
    let failures = max_attempts(outage, Duration::ZERO);
    let bound = (waiting as u64) * u64::from(failures);
    let recorded = failures_recorded(api, &live).await;
    println!(
        "provider refused: {calls} calls in {outage:?} for {waiting} resources (bound {bound}); \
         at most {recorded} failures in a row recorded (bound {failures})"
    );
    assert!(calls >= waiting as u64, "every resource tried: {calls}");
    assert!(calls <= bound, "{calls} calls, more than {bound}");
    assert!(recorded <= failures, "{recorded} failures in a row");

    let (_provider, _) = SimProcess::start(OPERATOR, &dir, port, None::<&str>).await;
    let returned = Instant::now();
    let ceiling = backoff_step(failures) + SETTLE;
    let (ids, slowest) = converge(api, &sim, &live, &deleted, returned, ceiling).await;
    println!(
        "provider refused: every resource converged {slowest:?} after the provider's return \
         (ceiling {ceiling:?}: step {:?} after {failures} failures + {SETTLE:?})",
        backoff_step(failures)
    );
    assert_eq!(ids.len(), live.len());
    // The restarted provider holds only what was created after its return.
    assert_eq!(sim.stats().await["sessionsCreated"], live.len());
    drop(operator);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_hangs_is_retried_boundedly_and_all_converge_after_its_return() {
    let dir = test_dir("chaos/provider-hangs");
    let cluster = Cluster::start("provider-hangs").await;
    let api = &cluster.api;
    let (running, sim) = in_process_simulator().await;
    let mut setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, sim.provider_url());
    setup.extra_args = vec![
        "--provider-timeout".into(),
        format!("{}s", PROVIDER_TIMEOUT.as_secs()),
    ];
    let mut operator = Operator::start_ready(&setup).await;

    for (index, name) in names("before", BEFORE).iter().enumerate() {
        create(api, name, index).await;
    }
    let mut kept = String::new();
    for name in names("before", BEFORE) {
        let resource = available(api, &name, Duration::from_secs(30)).await;
        if name == "before-3" {
            kept = session_id(&resource).unwrap().to_owned();
        }
    }

    // The hang: every API request is held far longer than the operator waits (the operator
    // gives up after PROVIDER_TIMEOUT, and the simulator then drops the request undone).
    sim.faults(json!({"latencyMs": MAX_LATENCY_MS})).await;
    let hung = Instant::now();
    let created_before = sim.stats().await["sessionsCreated"].as_u64().unwrap();
    let (replaced, deleted) = (["before-0", "before-1"], ["before-2"]);
    let live = disturb(api, &replaced, &deleted).await;
    let affected: Vec<String> = live.iter().filter(|n| *n != "before-3").cloned().collect();
    assert_unavailable(api, &affected, "timed out").await;
    // The hang's schedule: it lasts OUTAGE, whatever the operator does meanwhile.
    tokio::time::sleep(OUTAGE.saturating_sub(hung.elapsed())).await;

    let outage = hung.elapsed();
    let failures = max_attempts(outage, PROVIDER_TIMEOUT);
    let recorded = failures_recorded(api, &live).await;
    let stats = sim.stats().await;
    assert_eq!(
        stats["sessionsCreated"], created_before,
        "nothing was created while the provider hung"
    );
    sim.faults(json!({})).await;
    let returned = Instant::now();

    // An attempt in flight at the return still waits out its timeout before the next step.
    let ceiling = PROVIDER_TIMEOUT + backoff_step(failures) + SETTLE;
    let (ids, slowest) = converge(api, &sim, &live, &deleted, returned, ceiling).await;
    assert_eq!(
        ids["before-3"], kept,
        "the untouched resource kept its session"
    );

    // Counted at the provider: the requests it held until their client gave up. Every one of
    // them is also a call without an answer at the operator. The untouched resource may have
    // had a re-read due (its session is re-read soon after it became AVAILABLE), so it counts
    // for the upper bound, not for the lower one.
    let waiting = affected.len() + deleted.len();
    let bound = ((BEFORE + DURING) as u64) * u64::from(failures);
    let attempts = eventually(
        "the operator's and the provider's counts to agree",
        PROVIDER_TIMEOUT * 3,
        || async {
            let held = total(&sim.stats().await, "apiRequestsAbandoned");
            let gave_up = operator
                .metric_sum(PROVIDER_REQUESTS, NO_ANSWER)
                .await
                .unwrap() as u64;
            (held == gave_up).then_some(held)
        },
    )
    .await;
    println!(
        "provider hangs: {attempts} requests held in {outage:?} for {waiting} resources \
         (bound {bound}); at most {recorded} failures in a row recorded (bound {failures}); \
         every resource converged {slowest:?} after the return (ceiling {ceiling:?})"
    );
    assert!(
        attempts >= waiting as u64,
        "every resource tried: {attempts}"
    );
    assert!(
        attempts <= bound,
        "{attempts} held requests, more than {bound}"
    );
    assert!(recorded <= failures, "{recorded} failures in a row");
    assert!(operator.terminate().await);
    running.shutdown().await;
}
