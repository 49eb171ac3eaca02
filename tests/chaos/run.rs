//! The chaos run: QodSessions created, changed (profile, duration) and deleted at random while
//! the simulator injects faults, the operator process is SIGKILLed and restarted, and so is the
//! control plane (etcd and kube-apiserver; the operator rides that out in the same process,
//! its webhook asking the provider to retry meanwhile). Then the invariants: one session per
//! live resource matching its spec, status equal to the provider's truth within 30 s of the
//! faults stopping, no duplicates, no orphans, no finalizer left behind, a bounded number of
//! provider calls per resource, and zero sessions once every resource is deleted.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use jiff::Timestamp;
use kube::{
    ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use qod_operator::{
    api::{QodSession, intent::effective_status},
    sink_keys::SinkKeys,
};
use qod_test_support::{
    Cluster, ControlPlane,
    operator::{Operator, OperatorSetup},
    session::numbered_spec,
    simulator::{calls_between, in_process_simulator, sink_uid, total_calls},
    test_dir,
};
use rand::{RngExt, SeedableRng, rngs::StdRng};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::OPERATOR;

/// Every resource converges this soon after the faults stop (issue 14's target).
const CONVERGED_WITHIN: Duration = Duration::from_secs(30);

const PROFILES: [&str; 4] = ["QOS_E", "QOS_S", "QOS_M", "QOS_L"];

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// What the test asked of one resource.
struct Tracked {
    name: String,
    index: usize,
    uid: String,
    profile: String,
    duration: u32,
    deleted: bool,
    profile_changes: u32,
    duration_changes: u32,
}

/// The faults of one epoch. Both kinds share the request errors (20% 503, 5% 429 with
/// Retry-After) and the notification faults (20% dropped, 20% duplicated, reordered).
/// "timeouts": 5% of requests wait 2.5 s before being handled and 5% have their answer held
/// 2.5 s after being handled, beyond the operator's 2 s `--provider-timeout`: requests that did
/// nothing and creates whose outcome the operator cannot know. "slow": half the requests take
/// 300 ms more and 30% hold their answer 1.2 s, within the timeout, which widens the window
/// between a create and its status write for the kills.
fn faults(epoch: u32) -> Value {
    let mut faults = json!({
        "errorRate": 0.2, "rateLimitRate": 0.05, "retryAfterSeconds": 1,
        "dropNotificationRate": 0.2, "duplicateNotificationRate": 0.2,
        "reorderNotifications": true,
    });
    let delays = if epoch.is_multiple_of(2) {
        json!({"latencyMs": 2500, "latencyRate": 0.05, "answerDelayMs": 2500, "answerDelayRate": 0.05})
    } else {
        json!({"latencyMs": 300, "latencyRate": 0.5, "answerDelayMs": 1200, "answerDelayRate": 0.3})
    };
    for (key, value) in delays.as_object().unwrap() {
        faults[key] = value.clone();
    }
    faults
}

/// Resources whose create was sent and whose answer is not recorded yet.
async fn creates_in_flight(api: &kube::Api<QodSession>) -> usize {
    api.list(&ListParams::default())
        .await
        .map(|list| {
            list.items
                .iter()
                .filter(|r| {
                    let status = effective_status(r);
                    status.create_requested_at.is_some() && status.session_id.is_none()
                })
                .count()
        })
        .unwrap_or(0)
}

/// Every way the world differs from the invariants; empty when it converged.
async fn problems(
    cluster: &Cluster,
    sim: &qod_test_support::simulator::Sim,
    tracked: &[Tracked],
) -> Vec<String> {
    let mut problems = Vec::new();
    let resources: HashMap<String, QodSession> = cluster
        .api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| (r.name_any(), r))
        .collect();
    let mut at_provider: HashMap<String, Vec<Value>> = HashMap::new();
    for session in sim.sessions(false).await {
        let uid = sink_uid(&session).unwrap_or_default().to_owned();
        at_provider.entry(uid).or_default().push(session);
    }
    let mut live_uids = Vec::new();
    for t in tracked {
        let held = at_provider
            .get(&t.uid)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if t.deleted {
            if resources.contains_key(&t.name) {
                problems.push(format!("{}: deleted but still present (finalizer)", t.name));
            }
            if !held.is_empty() {
                problems.push(format!(
                    "{}: deleted but {} session(s) at the provider",
                    t.name,
                    held.len()
                ));
            }
            continue;
        }
        live_uids.push(t.uid.clone());
        let Some(resource) = resources.get(&t.name) else {
            problems.push(format!("{}: missing", t.name));
            continue;
        };
        let [session] = held else {
            problems.push(format!(
                "{}: {} sessions at the provider",
                t.name,
                held.len()
            ));
            continue;
        };
        let status = resource.status.clone().unwrap_or_default();
        let mut differs = Vec::new();
        if status.session_id.as_deref() != session["sessionId"].as_str() {
            differs.push(format!(
                "sessionId {:?} vs {}",
                status.session_id, session["sessionId"]
            ));
        }
        if session["qosStatus"] != "AVAILABLE" || status.qos_status.as_deref() != Some("AVAILABLE")
        {
            differs.push(format!(
                "qosStatus {:?} vs {}",
                status.qos_status, session["qosStatus"]
            ));
        }
        if session["qosProfile"] != t.profile.as_str() {
            differs.push(format!(
                "profile {} vs {}",
                t.profile, session["qosProfile"]
            ));
        }
        if session["duration"].as_u64().unwrap_or(0) < u64::from(t.duration) {
            differs.push(format!(
                "duration {} vs {}",
                t.duration, session["duration"]
            ));
        }
        // A notification carries no expiry: the status holds the provider's only once the
        // operator has read the session after it, a read that may wait for a retry's backoff.
        let provider_expiry = session["expiresAt"]
            .as_str()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map(|t| t.as_second());
        let status_expiry = status.expires_at.as_ref().map(|t| t.0.as_second());
        if provider_expiry.is_none() || status_expiry != provider_expiry {
            differs.push(format!(
                "expiresAt {:?} vs {}",
                status.expires_at, session["expiresAt"]
            ));
        }
        // An answer older than a notification already stored leaves the status unsynced, and
        // the operator reads the session once more.
        if status.last_synced_at.is_none() {
            differs.push("not synced since the last answer".to_owned());
        }
        if session["device"]["phoneNumber"] != format!("+3670{:07}", t.index) {
            differs.push(format!("device {}", session["device"]));
        }
        if status.observed_generation != resource.metadata.generation {
            differs.push(format!(
                "observedGeneration {:?} vs generation {:?}",
                status.observed_generation, resource.metadata.generation
            ));
        }
        if !differs.is_empty() {
            problems.push(format!("{}: {}", t.name, differs.join(", ")));
        }
    }
    for (uid, sessions) in &at_provider {
        if !live_uids.contains(uid) && !tracked.iter().any(|t| &t.uid == uid) {
            problems.push(format!(
                "orphan: {} session(s) for unknown uid {uid}",
                sessions.len()
            ));
        }
    }
    problems
}

/// Polls `problems` until there are none; fails with the last list after `timeout`.
async fn converge(
    cluster: &Cluster,
    sim: &qod_test_support::simulator::Sim,
    tracked: &[Tracked],
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let found = problems(cluster, sim, tracked).await;
        if found.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "not converged after {timeout:?}: {} problem(s), first ones:\n{}",
            found.len(),
            found
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Sessions of one resource whose lifetimes overlap at the provider: each one a duplicate.
fn overlapping(history: &[Value]) -> (usize, BTreeMap<String, usize>) {
    let mut by_uid: BTreeMap<String, Vec<(Timestamp, Option<Timestamp>)>> = BTreeMap::new();
    for session in history {
        let created: Timestamp = session["createdAt"].as_str().unwrap().parse().unwrap();
        let removed = session["removedAt"].as_str().map(|t| t.parse().unwrap());
        by_uid
            .entry(sink_uid(session).unwrap_or_default().to_owned())
            .or_default()
            .push((created, removed));
    }
    let mut duplicates = 0;
    let mut creates = BTreeMap::new();
    for (uid, mut lives) in by_uid {
        lives.sort();
        for pair in lives.windows(2) {
            if pair[0].1.is_none_or(|removed| removed > pair[1].0) {
                duplicates += 1;
            }
        }
        creates.insert(uid, lives.len());
    }
    (duplicates, creates)
}

/// (uid, session id) of a resource that holds an AVAILABLE session, read while the API is up.
async fn an_available_resource(api: &kube::Api<QodSession>) -> Option<(String, String)> {
    let list = api.list(&ListParams::default()).await.ok()?;
    list.items.iter().find_map(|r| {
        let status = r.status.as_ref()?;
        (status.qos_status.as_deref() == Some("AVAILABLE"))
            .then(|| Some((r.uid()?, status.session_id.as_deref()?.to_owned())))
            .flatten()
    })
}

/// Posts a notification that would change `uid`'s status (a new event) to the webhook while
/// the API server is down: the webhook cannot store it, so it must not answer 2xx (which tells
/// the provider it was stored) but 503 with `Retry-After`. Fails the test otherwise; returns
/// whether the operator answered at all.
async fn assert_webhook_asks_to_retry(setup: &OperatorSetup, uid: &str, session_id: &str) -> bool {
    let keys = SinkKeys::from_files(&setup.hmac_key_file, None).unwrap();
    let event = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "source": format!("http://chaos/sessions/{session_id}"),
        "type": "org.camaraproject.quality-on-demand.v1.qos-status-changed",
        "specversion": "1.0",
        "time": Timestamp::now().to_string(),
        "data": {"sessionId": session_id, "qosStatus": "AVAILABLE"}
    });
    let answer = qod_test_support::http::client()
        .post(format!(
            "http://127.0.0.1:{}/notifications/{uid}",
            setup.webhook_port
        ))
        .header("content-type", "application/cloudevents+json")
        .bearer_auth(keys.token_for(uid).expose_secret())
        .body(event.to_string())
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    // The operator may itself be down at this moment (its own kill schedule): nothing answered,
    // nothing claimed.
    let Ok(answer) = answer else { return false };
    assert_eq!(
        answer.status().as_u16(),
        503,
        "a notification the webhook could not store, answered {}",
        answer.status()
    );
    assert!(
        answer.headers().contains_key("retry-after"),
        "503 without Retry-After: {:?}",
        answer.headers()
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_run_loses_no_session_and_makes_no_duplicate() {
    let count = env_number("QOD_CHAOS_SESSIONS", 150) as usize;
    let seconds = env_number("QOD_CHAOS_SECONDS", 50);
    let seed = env_number("QOD_CHAOS_SEED", rand::random::<u32>().into());
    let mut report = String::new();
    let mut say = |line: String| {
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
    };
    say(format!(
        "chaos: seed {seed} (QOD_CHAOS_SEED={seed} replays the random choices), {count} sessions, {seconds} s of faults"
    ));
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = test_dir("chaos/run");
    // A control plane of its own, SIGKILLed (etcd and kube-apiserver) and restarted during the run.
    let mut control_plane = tokio::task::spawn_blocking(|| ControlPlane::start_own("chaos-run"))
        .await
        .unwrap();
    let cluster = Cluster::on(&control_plane, "run").await;
    let (running, sim) = in_process_simulator().await;
    let mut setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, sim.provider_url());
    setup.extra_args = [
        "--provider-timeout",
        "2s",
        "--provider-connect-timeout",
        "1s",
    ]
    .map(String::from)
    .to_vec();
    let mut operator = Operator::start_ready(&setup).await;

    let mut tracked: Vec<Tracked> = Vec::new();
    let (mut kills, mut kills_mid_create, mut epoch) = (0u32, 0u32, 0u32);
    let (mut api_kills, mut api_down, mut asked_to_retry) = (0u32, Duration::ZERO, 0u32);
    let (mut creates, mut profile_changes, mut duration_changes, mut deletes) = (0, 0, 0, 0);
    sim.faults(faults(epoch)).await;
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let mut next_kill = started + Duration::from_millis(rng.random_range(2000..6000));
    let mut next_epoch = started + Duration::from_secs(8);
    let mut next_api_kill = started + Duration::from_millis(rng.random_range(6000..12000));
    // About three actions per resource over the run.
    let pace = Duration::from_millis((seconds * 1000 / (count as u64 * 3)).max(5));
    while Instant::now() < end {
        let live: Vec<usize> = (0..tracked.len())
            .filter(|i| !tracked[*i].deleted)
            .collect();
        let create = tracked.len() < count && (live.is_empty() || rng.random_bool(0.45));
        if create {
            let index = tracked.len();
            let profile = PROFILES[rng.random_range(0..PROFILES.len())];
            let duration = rng.random_range(1800..3600);
            let name = format!("chaos-{index:04}");
            let made = cluster
                .api
                .create(
                    &PostParams::default(),
                    &QodSession::new(&name, numbered_spec(index, profile, duration)),
                )
                .await
                .unwrap();
            tracked.push(Tracked {
                name,
                index,
                uid: made.uid().unwrap(),
                profile: profile.into(),
                duration,
                deleted: false,
                profile_changes: 0,
                duration_changes: 0,
            });
            creates += 1;
        } else if !live.is_empty() {
            let t = &mut tracked[live[rng.random_range(0..live.len())]];
            let roll: f64 = rng.random();
            if roll < 0.45 {
                let profile = PROFILES[rng.random_range(0..PROFILES.len())];
                t.profile = profile.into();
                t.profile_changes += 1;
                profile_changes += 1;
                let patch = json!({"spec": {"qosProfile": profile}});
                cluster
                    .api
                    .patch(&t.name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .unwrap();
            } else if roll < 0.85 {
                t.duration = rng.random_range(1800..3600);
                t.duration_changes += 1;
                duration_changes += 1;
                let patch = json!({"spec": {"duration": t.duration}});
                cluster
                    .api
                    .patch(&t.name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .unwrap();
            } else {
                t.deleted = true;
                deletes += 1;
                cluster
                    .api
                    .delete(&t.name, &DeleteParams::default())
                    .await
                    .unwrap();
            }
        }
        if Instant::now() >= next_epoch {
            epoch += 1;
            sim.faults(faults(epoch)).await;
            next_epoch += Duration::from_secs(8);
        }
        if Instant::now() >= next_kill {
            // Half the kills wait (up to 3 s) for a create in flight: SIGKILL between the
            // provider's create and the status write that records its id.
            let mut in_flight = creates_in_flight(&cluster.api).await;
            if rng.random_bool(0.5) {
                let deadline = Instant::now() + Duration::from_secs(3);
                while in_flight == 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    in_flight = creates_in_flight(&cluster.api).await;
                }
            }
            operator.kill();
            kills += 1;
            kills_mid_create += u32::from(in_flight > 0);
            // Downtime is part of the schedule, not a wait for a condition.
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..1500))).await;
            operator = Operator::start(&setup);
            next_kill = Instant::now() + Duration::from_millis(rng.random_range(3000..9000));
        }
        if Instant::now() >= next_api_kill {
            let probe = an_available_resource(&cluster.api).await;
            let down_at = Instant::now();
            control_plane = tokio::task::spawn_blocking(move || {
                control_plane.kill();
                control_plane
            })
            .await
            .unwrap();
            api_kills += 1;
            if let Some((uid, session_id)) = probe {
                asked_to_retry +=
                    u32::from(assert_webhook_asks_to_retry(&setup, &uid, &session_id).await);
            }
            // Downtime is part of the schedule, not a wait for a condition.
            tokio::time::sleep(Duration::from_millis(rng.random_range(500..3000))).await;
            control_plane = tokio::task::spawn_blocking(move || {
                control_plane.restart();
                control_plane
            })
            .await
            .unwrap();
            api_down += down_at.elapsed();
            next_api_kill = Instant::now() + Duration::from_millis(rng.random_range(8000..16000));
        }
        // Pacing of the schedule (an action every `pace`), not a wait for a condition.
        tokio::time::sleep(pace).await;
    }
    let chaos_stats = sim.stats().await;
    say(format!(
        "actions: {creates} creates, {profile_changes} profile changes, {duration_changes} duration changes, {deletes} deletes; \
         {kills} SIGKILLs ({kills_mid_create} with a create in flight); \
         kube-apiserver and etcd SIGKILLed and restarted {api_kills} times ({:.1} s down in all; \
         the webhook answered 503 with Retry-After to {asked_to_retry} notification(s) meanwhile)",
        api_down.as_secs_f64()
    ));
    say(format!(
        "provider during the faults: {} API calls ({}), notifications {}",
        total_calls(&chaos_stats),
        chaos_stats["apiRequests"],
        chaos_stats["notifications"]
    ));

    // Convergence: faults off, the last incarnation keeps running.
    sim.faults(json!({})).await;
    operator.wait_ready().await;
    let took = converge(&cluster, &sim, &tracked, Duration::from_secs(240)).await;
    // Provider-wide failures back off by the provider's run, not by one resource's unlucky
    // streak (controller/provider_health.rs): no resource is left minutes behind.
    assert!(
        took <= CONVERGED_WITHIN,
        "converged only {took:?} after the faults stopped (target {CONVERGED_WITHIN:?})"
    );
    let live = tracked.iter().filter(|t| !t.deleted).count();
    say(format!(
        "converged {:.1} s after the faults stopped: {live} live resources, each with exactly one matching session \
         and status = provider truth; {} deleted resources gone, 0 orphans",
        took.as_secs_f64(),
        tracked.len() - live
    ));

    // Quiet: with everything converged (the reads after notifications included) and the resync
    // at 5 min, the provider hears (almost) nothing. A 5 s observation window to measure a rate, not a wait for a condition.
    let before = sim.stats().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = sim.stats().await;
    let quiet_calls = total_calls(&after) - total_calls(&before);
    say(format!(
        "quiet window: {quiet_calls} provider calls in 5 s for {live} converged resources {}",
        calls_between(&before, &after)
    ));

    // Everything deleted: no finalizer left, no session left.
    for t in tracked.iter_mut().filter(|t| !t.deleted) {
        cluster
            .api
            .delete(&t.name, &DeleteParams::default())
            .await
            .unwrap();
        t.deleted = true;
    }
    converge(&cluster, &sim, &tracked, Duration::from_secs(120)).await;
    let remaining = cluster
        .api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    let stats = sim.stats().await;
    let history = sim.sessions(true).await;
    let (duplicates, sessions_by_uid) = overlapping(&history);
    let created = stats["sessionsCreated"].as_u64().unwrap();
    let allowed: u64 = tracked
        .iter()
        .map(|t| 1 + u64::from(t.profile_changes))
        .sum();
    let over: Vec<String> = tracked
        .iter()
        .filter(|t| {
            sessions_by_uid.get(&t.uid).copied().unwrap_or(0) > 1 + t.profile_changes as usize
        })
        .map(|t| {
            format!(
                "{} ({} sessions, {} profile changes)",
                t.name, sessions_by_uid[&t.uid], t.profile_changes
            )
        })
        .collect();
    let calls = total_calls(&stats);
    let intended: u64 = tracked
        .iter()
        .map(|t| 2 + 2 * u64::from(t.profile_changes) + u64::from(t.duration_changes))
        .sum();
    say(format!(
        "after deleting everything: {remaining} resources, {} sessions at the provider",
        stats["liveSessions"]
    ));
    say(format!(
        "sessions created {created} (history {}), at most one per resource plus one per profile change = {allowed}; \
         duplicates (overlapping sessions of one resource) {duplicates}; resources over their share {}",
        history.len(),
        over.len()
    ));
    say(format!(
        "provider calls {calls} for {} resources = {:.1} per resource; {intended} intended operations \
         (create + delete + 2 per profile change + 1 per duration change) = {:.2} calls per operation",
        tracked.len(),
        calls as f64 / tracked.len() as f64,
        calls as f64 / intended as f64
    ));
    std::fs::write(dir.join("figures.txt"), &report).unwrap();

    assert_eq!(remaining, 0, "no resource stuck with a finalizer");
    assert_eq!(stats["liveSessions"], 0, "the provider holds no session");
    assert_eq!(
        created as usize,
        history.len(),
        "the history holds every session ever created"
    );
    assert_eq!(
        duplicates, 0,
        "no two sessions of one resource alive at once"
    );
    assert!(
        over.is_empty(),
        "resources with more sessions than creates they needed: {over:?}"
    );
    assert!(created <= allowed);
    // Hot loops: each intended operation costs one call, retried under 25% refusals (1.33
    // expected attempts), plus reads while REQUESTED (1 s refresh, AVAILABLE after 200 ms),
    // the read after AVAILABLE, lookups after an unknown outcome, and reads after restarts
    // (measured: about 1.75 calls per operation in all). Four calls per intended operation is
    // generous for that; one resource retrying without backoff (hundreds of calls a second)
    // would exceed it within seconds, and the quiet window catches a converged one that polls.
    assert!(
        calls <= 4 * intended,
        "{calls} provider calls for {intended} intended operations: something loops"
    );
    assert!(
        quiet_calls <= 2 + live as u64 / 10,
        "{quiet_calls} calls in a quiet 5 s: something loops"
    );
    assert!(operator.terminate().await, "a clean exit on SIGTERM");
    drop(running);
}
