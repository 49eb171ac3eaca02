//! The scenarios. Each prints its figures.

use std::{
    collections::HashSet,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use kube::{
    Api, ResourceExt,
    api::ListParams,
    runtime::{WatchStreamExt, watcher},
};
use qod_operator::{api::QodSession, sink_keys::SinkKeys};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::{
    anchor::FastApiReceiver,
    cpu,
    limit::{ApiRequests, Load, MinimalClient, write_statuses},
    world::{Setup, World, until},
};

const POLL: Duration = Duration::from_millis(100);

/// Listing every QodSession loads the API server too: poll large sets less often.
fn poll_for(count: usize) -> Duration {
    POLL.max(Duration::from_millis(count as u64 / 10))
}

/// Waits until `count` sessions are AVAILABLE, seen through one watch: polling with lists
/// would load the API server the operator is measured on (a list of 1,000 costs it as much as
/// dozens of writes).
async fn wait_available(world: &World, count: usize, timeout: Duration) -> anyhow::Result<()> {
    let mut available = HashSet::new();
    let events = watcher(world.api.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let mut events = std::pin::pin!(events);
    let watched = async {
        while let Some(session) = events.try_next().await? {
            let is_available = session.status.as_ref().is_some_and(|st| {
                st.qos_status.as_deref() == Some("AVAILABLE") && st.session_id.is_some()
            });
            if is_available {
                available.insert(session.name_any());
            } else {
                available.remove(&session.name_any());
            }
            if available.len() >= count {
                return Ok(());
            }
        }
        anyhow::bail!("the watch of QodSessions ended")
    };
    tokio::time::timeout(timeout, watched).await.map_err(|_| {
        anyhow::anyhow!("timed out after {timeout:?} waiting for every session AVAILABLE ({count})")
    })?
}

pub async fn reconcile(setup: &Setup, sessions: usize) -> anyhow::Result<()> {
    let world = World::start("reconcile").await?;
    let operator = world.operator(setup).await?;
    println!("reconcile: {sessions} QodSessions created at once (64 creates in flight)");
    let cpu_before = operator.cpu()?;
    let start = Instant::now();
    world.create_sessions(0, sessions).await?;
    let created = start.elapsed();
    wait_available(&world, sessions, Duration::from_secs(600)).await?;
    let available = start.elapsed();
    let cpu_up = operator.cpu()? - cpu_before;
    println!(
        "  created in the API in {:.2} s; all AVAILABLE after {:.2} s: {:.0} sessions/s",
        created.as_secs_f64(),
        available.as_secs_f64(),
        sessions as f64 / available.as_secs_f64()
    );
    println!(
        "  operator CPU while creating: {:.2} s ({:.0}% of one core)",
        cpu_up.as_secs_f64(),
        100.0 * cpu_up.as_secs_f64() / available.as_secs_f64()
    );
    operator.print_memory(&format!("with {sessions} sessions"))?;

    let cpu_before = operator.cpu()?;
    let start = Instant::now();
    world.delete_all().await?;
    until(
        "every session deleted at the provider",
        poll_for(sessions),
        Duration::from_secs(600),
        || async { Ok(world.provider_sessions().await? == 0) },
    )
    .await?;
    let at_provider = start.elapsed();
    until(
        "every resource gone",
        poll_for(sessions),
        Duration::from_secs(600),
        || async { Ok(world.sessions().await?.is_empty()) },
    )
    .await?;
    let gone = start.elapsed();
    let cpu_down = operator.cpu()? - cpu_before;
    println!(
        "  deleted: none left at the provider after {:.2} s ({:.0} sessions/s), resources gone after {:.2} s",
        at_provider.as_secs_f64(),
        sessions as f64 / at_provider.as_secs_f64(),
        gone.as_secs_f64()
    );
    println!(
        "  operator CPU while deleting: {:.2} s",
        cpu_down.as_secs_f64()
    );
    operator.print_memory("at the end")?;
    operator.print_calls(&world.http).await?;
    drop(operator);
    world.stop().await;
    Ok(())
}

/// The operator against the floor: `sessions` QodSessions created at once until all are
/// AVAILABLE, then the minimal client creating as many and writing one status to each, 64 in
/// flight; and the API writes per session the operator made, as the API server counted them.
pub async fn reconcile_vs_floor(setup: &Setup, sessions: usize) -> anyhow::Result<()> {
    let world = World::start("reconcile-vs-floor").await?;
    let client = world.api.clone().into_client();
    let operator = world.operator(setup).await?;
    println!("reconcile-vs-floor: {sessions} QodSessions created at once (64 creates in flight)");
    let before = ApiRequests::read(&client).await?;
    let cpu_before = cpu::Sample::take(Some(operator.pid()), world.control_plane_pid)?;
    let start = Instant::now();
    world.create_sessions(0, sessions).await?;
    wait_available(&world, sessions, Duration::from_secs(600)).await?;
    let operator_time = start.elapsed();
    let operator_cpu = cpu::Sample::take(Some(operator.pid()), world.control_plane_pid)?
        .summary_since(&cpu_before, operator_time);
    // Counted by the API server as each request ends; the creates are the bench's own.
    let requests = ApiRequests::read(&client).await?.since(&before);
    let operator_writes = requests.session_writes() - sessions as f64;
    operator.print_calls(&world.http).await?;
    drop(operator);
    world.stop().await;

    let floor_world = World::start("floor").await?;
    let minimal = MinimalClient::start(floor_world.api.clone(), &floor_world.namespace).await?;
    let cpu_before = cpu::Sample::take(None, floor_world.control_plane_pid)?;
    let start = Instant::now();
    stream::iter(0..sessions)
        .map(|i| {
            let (world, minimal) = (&floor_world, &minimal);
            async move {
                let created = world.create_session(i).await?;
                let status = json!({"qosStatus": "AVAILABLE", "sessionId": format!("floor-{i}")});
                minimal
                    .write_status(&created.name_any(), created.resource_version(), &status)
                    .await
            }
        })
        .buffer_unordered(64)
        .try_collect::<()>()
        .await?;
    let floor_time = start.elapsed();
    let floor_cpu = cpu::Sample::take(None, floor_world.control_plane_pid)?
        .summary_since(&cpu_before, floor_time);
    println!(
        "  operator: all AVAILABLE {:.2} s after the first create ({:.0} sessions/s); \
         {:.2} API writes per session ({operator_writes} in all, {} conflicts), counted by the API server",
        operator_time.as_secs_f64(),
        sessions as f64 / operator_time.as_secs_f64(),
        operator_writes / sessions as f64,
        requests.session_conflicts()
    );
    println!("  operator run's {operator_cpu}");
    println!(
        "  every request the API server counted meanwhile (the bench's creates and polls included): {}",
        requests.breakdown()
    );
    println!(
        "  floor (create, then one status write each, 64 in flight): {:.2} s ({:.0} sessions/s)",
        floor_time.as_secs_f64(),
        sessions as f64 / floor_time.as_secs_f64()
    );
    println!("  floor run's {floor_cpu}");
    println!(
        "reconcile/floor ratio: {:.2}",
        operator_time.as_secs_f64() / floor_time.as_secs_f64()
    );
    drop(minimal);
    floor_world.stop().await;
    Ok(())
}

pub async fn webhook(
    setup: &Setup,
    notifications: usize,
    connections: usize,
    sessions: usize,
) -> anyhow::Result<()> {
    let world = World::start("webhook").await?;
    let operator = world.operator(setup).await?;
    world.create_sessions(0, sessions).await?;
    wait_available(&world, sessions, Duration::from_secs(600)).await?;
    let cpu_before = operator.cpu()?;
    let load = notify(
        &world,
        "webhook",
        &operator.webhook,
        notifications,
        connections,
    )
    .await?;
    let cpu = operator.cpu()? - cpu_before;
    println!("  notifications: {}", load.summary());
    println!(
        "  operator CPU: {:.2} s ({:.0}% of one core)",
        cpu.as_secs_f64(),
        100.0 * cpu.as_secs_f64() / load.elapsed.as_secs_f64()
    );
    let metrics = world
        .http
        .get(format!("{}/metrics", operator.probe))
        .send()
        .await?
        .text()
        .await?;
    // Reconcile passes include the set-up's; a webhook write should add none that call out.
    for line in metrics.lines().filter(|l| {
        (l.starts_with("qod_operator_notifications_total")
            || l.starts_with("qod_operator_reconciliations_total"))
            && !l.ends_with(" 0")
    }) {
        println!("  {line}");
    }
    operator.print_calls(&world.http).await?;
    operator.print_memory(&format!("with {sessions} sessions"))?;
    drop(operator);
    world.stop().await;
    Ok(())
}

/// The webhook against the floor: the same number of status writes to the same resources by
/// the minimal client, at the same concurrency, on the same control plane, one after the other.
pub async fn webhook_vs_limit(
    setup: &Setup,
    notifications: usize,
    connections: usize,
    sessions: usize,
) -> anyhow::Result<()> {
    let world = World::start("webhook-vs-limit").await?;
    let operator = world.operator(setup).await?;
    world.create_sessions(0, sessions).await?;
    wait_available(&world, sessions, Duration::from_secs(600)).await?;
    let webhook = notify(
        &world,
        "webhook",
        &operator.webhook,
        notifications,
        connections,
    )
    .await?;
    operator.print_calls(&world.http).await?;
    // Its controller would react to the client's writes: the floor is measured alone.
    drop(operator);
    let names: Vec<String> = world
        .sessions()
        .await?
        .iter()
        .map(|s| s.name_any())
        .collect();
    let client = MinimalClient::start(world.api.clone(), &world.namespace).await?;
    let limit = write_statuses(&client, &names, connections, webhook.latencies.len()).await?;
    println!(
        "  webhook (each notification a status write): {}",
        webhook.summary()
    );
    println!(
        "  limit (one watch, server-side apply with resourceVersion, {connections} writers): {}; {} conflicts",
        limit.summary(),
        client.conflicts.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "  p99: webhook {:.2} ms, limit {:.2} ms ({:.2}x)",
        webhook.ms(0.99),
        limit.ms(0.99),
        webhook.ms(0.99) / limit.ms(0.99)
    );
    println!(
        "webhook/limit ratio: {:.2}",
        webhook.per_second() / limit.per_second()
    );
    drop(client);
    world.stop().await;
    Ok(())
}

/// The webhook against the FastAPI anchor (issue 15): the same notifications over the same
/// connections to the same resources, first to the FastAPI receiver (parse and token check,
/// no write), then to the operator's webhook (parse, token check, dedupe, a status write by
/// server-side apply to the real API server), on one control plane in one run.
pub async fn webhook_vs_fastapi(
    setup: &Setup,
    venv: &std::path::Path,
    notifications: usize,
    connections: usize,
    sessions: usize,
) -> anyhow::Result<()> {
    // Before anything starts: without the venv nothing here can be measured.
    let python = FastApiReceiver::check(venv)?;
    let world = World::start("webhook-vs-fastapi").await?;
    let operator = world.operator(setup).await?;
    world.create_sessions(0, sessions).await?;
    wait_available(&world, sessions, Duration::from_secs(600)).await?;

    let receiver =
        FastApiReceiver::start(&python, &world.dir.join("hmac-key"), &world.http).await?;
    let cpu_before = cpu::of_process(receiver.pid())?;
    let fastapi = notify(&world, "FastAPI", &receiver.url, notifications, connections).await?;
    let fastapi_cpu = cpu::of_process(receiver.pid())? - cpu_before;
    drop(receiver);

    let cpu_before = cpu::Sample::take(Some(operator.pid()), world.control_plane_pid)?;
    let webhook = notify(
        &world,
        "webhook",
        &operator.webhook,
        notifications,
        connections,
    )
    .await?;
    let webhook_cpu = cpu::Sample::take(Some(operator.pid()), world.control_plane_pid)?
        .summary_since(&cpu_before, webhook.elapsed);
    operator.print_calls(&world.http).await?;
    println!(
        "  FastAPI (uvicorn, one worker; parses the CloudEvent, checks the token, writes nothing): {}",
        fastapi.summary()
    );
    println!(
        "  FastAPI receiver's CPU: {:.0}% of one core",
        100.0 * fastapi_cpu.as_secs_f64() / fastapi.elapsed.as_secs_f64()
    );
    println!(
        "  webhook (parses, checks the token, writes status by server-side apply to the API server): {}",
        webhook.summary()
    );
    println!("  webhook run's {webhook_cpu}");
    println!(
        "  p99: webhook {:.2} ms, FastAPI {:.2} ms ({:.2}x)",
        webhook.ms(0.99),
        fastapi.ms(0.99),
        webhook.ms(0.99) / fastapi.ms(0.99)
    );
    println!(
        "webhook/fastapi ratio: {:.2}",
        webhook.per_second() / fastapi.per_second()
    );
    drop(operator);
    world.stop().await;
    Ok(())
}

/// Sends `notifications` over `connections` connections to the receiver at `base` (the
/// operator's webhook, or an anchor that takes the same requests), spread over every resource
/// (no two connections write the same resource, as a provider notifies one session at a time).
/// `receiver` names it in the printed line.
async fn notify(
    world: &World,
    receiver: &str,
    base: &str,
    notifications: usize,
    connections: usize,
) -> anyhow::Result<Load> {
    let keys = SinkKeys::from_files(&world.dir.join("hmac-key"), None)?;
    let resources = world.sessions().await?;
    anyhow::ensure!(connections > 0 && resources.len() >= connections);
    // (uid, session id, token) of every resource, dealt out to the connections.
    let mut targets: Vec<Vec<(String, String, String)>> = vec![Vec::new(); connections];
    for (i, s) in resources.iter().enumerate() {
        let uid = s.uid().context("no uid")?;
        let id = s
            .status
            .as_ref()
            .and_then(|st| st.session_id.as_deref().map(str::to_owned))
            .context("no session id")?;
        let token = keys.token_for(&uid).expose_secret().to_owned();
        targets[i % connections].push((uid, id, token));
    }
    let per_connection = notifications / connections;
    println!(
        "{receiver}: {} notifications over {connections} connections to {} QodSessions",
        per_connection * connections,
        resources.len()
    );
    let base = Arc::new(base.to_owned());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for mine in targets {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let http = qod_test_support::http::builder()
                .pool_max_idle_per_host(1)
                .http1_only()
                .build()?;
            let mut latencies = Vec::with_capacity(per_connection);
            let mut refused = 0usize;
            for n in 0..per_connection {
                let (uid, session_id, token) = &mine[n % mine.len()];
                let body = json!({
                    "id": uuid::Uuid::new_v4().to_string(),
                    "source": format!("http://bench/sessions/{session_id}"),
                    "type": "org.camaraproject.quality-on-demand.v1.qos-status-changed",
                    "specversion": "1.0",
                    "datacontenttype": "application/json",
                    "time": jiff::Timestamp::now().to_string(),
                    "data": {"sessionId": session_id, "qosStatus": "AVAILABLE"}
                });
                let sent = Instant::now();
                let answer = http
                    .post(format!("{base}/notifications/{uid}"))
                    .header("content-type", "application/cloudevents+json")
                    .bearer_auth(token)
                    .body(body.to_string())
                    .send()
                    .await?;
                let status = answer.status();
                let _ = answer.bytes().await?;
                if status.as_u16() == 204 {
                    latencies.push(sent.elapsed());
                } else {
                    refused += 1;
                }
            }
            anyhow::Ok((latencies, refused))
        }));
    }
    let (mut latencies, mut refused) = (Vec::new(), 0);
    for task in tasks {
        let (mine, bad) = task.await??;
        latencies.extend(mine);
        refused += bad;
    }
    Ok(Load::new(start.elapsed(), latencies, refused))
}

pub async fn startup(setup: &Setup, runs: usize, sessions: usize) -> anyhow::Result<()> {
    anyhow::ensure!(runs > 0);
    let world = World::start("startup").await?;
    // Readiness waits for the first list of these.
    world.create_sessions(0, sessions).await?;
    let kubeconfig = world.dir.join(crate::world::KUBECONFIG);
    let mut operator_times = Vec::new();
    let mut floor_times = Vec::new();
    // In turn, so a slower minute of the shared machine weighs on both alike.
    for _ in 0..runs {
        let mut operator = crate::operator::Operator::start(
            &setup.binary,
            &world.dir,
            &world.namespace,
            &format!("{}/quality-on-demand/v1", world.sim.base_url()),
            &setup.extra_args,
        )?;
        operator_times.push(operator.wait_ready(&world.http).await?);
        drop(operator);
        floor_times.push(list_floor(&kubeconfig, &world.namespace, sessions).await?);
    }
    let operator = Spread::of(operator_times);
    let floor = Spread::of(floor_times);
    println!(
        "startup with {sessions} QodSessions in the API: process start to /readyz OK over {runs} runs: {operator}"
    );
    println!(
        "list floor (a new client listing the same QodSessions as the operator does): {floor}"
    );
    println!(
        "startup/list ratio: {:.2}",
        operator.median.as_secs_f64() / floor.median.as_secs_f64()
    );
    world.stop().await;
    Ok(())
}

/// What any client pays, in this process, before it knows every QodSession: a new client from
/// the kubeconfig (its TLS handshake included) and the list as the operator's watcher sends it
/// (pages of 500; kube leaves `resourceVersion=0` out of a paged list, so both are consistent
/// lists), decoded into QodSessions.
async fn list_floor(
    kubeconfig: &Path,
    namespace: &str,
    sessions: usize,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let client = qod_test_support::kubeconfig::client_from(kubeconfig).await;
    let api: Api<QodSession> = Api::namespaced(client, namespace);
    let mut params = ListParams::default().match_any().limit(500);
    let mut listed = 0;
    loop {
        let page = api.list(&params).await.context("listing QodSessions")?;
        listed += page.items.len();
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    let took = start.elapsed();
    anyhow::ensure!(
        listed == sessions,
        "listed {listed} QodSessions, not {sessions}"
    );
    Ok(took)
}

/// The least, the median and the most of some durations.
struct Spread {
    min: Duration,
    median: Duration,
    max: Duration,
}

impl Spread {
    fn of(mut times: Vec<Duration>) -> Self {
        times.sort();
        Self {
            min: times[0],
            median: times[times.len() / 2],
            max: times[times.len() - 1],
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        write!(
            f,
            "min {:.1} ms, median {:.1} ms, max {:.1} ms",
            ms(self.min),
            ms(self.median),
            ms(self.max)
        )
    }
}

pub async fn memory(setup: &Setup, steps: &[usize]) -> anyhow::Result<()> {
    let world = World::start("memory").await?;
    let operator = world.operator(setup).await?;
    println!("memory: operator resident memory");
    operator.print_memory("idle (ready, no sessions)")?;
    let mut have = 0;
    for &want in steps {
        let step = Instant::now();
        if want > have {
            world.create_sessions(have, want - have).await?;
            have = want;
        }
        // The operator brings about 60 sessions a second to AVAILABLE here: allow for 100,000.
        let allowed = Duration::from_secs(900.max(have as u64 / 20));
        wait_available(&world, have, allowed).await?;
        operator.print_memory(&format!(
            "with {have} sessions AVAILABLE ({:.0} s after this step's first create)",
            step.elapsed().as_secs_f64()
        ))?;
    }
    operator.print_calls(&world.http).await?;
    drop(operator);
    world.stop().await;
    Ok(())
}
