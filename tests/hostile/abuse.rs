//! The webhook of a running operator process under abuse: slow clients trickling headers or
//! bodies (slowloris), oversized bodies (declared and streamed), deeply nested JSON, and a
//! flood far beyond the in-flight cap, all at once. Meanwhile `/healthz` keeps answering fast,
//! a new QodSession still becomes AVAILABLE, every answer is a documented status, and the
//! process's resident memory stays bounded.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use kube::{ResourceExt, api::PostParams};
use qod_operator::{api::QodSession, qod::event, simulator, sink_keys::SinkKeys};
use qod_test_support::{
    Cluster, eventually,
    operator::{Operator, OperatorSetup},
    session::{numbered_spec, qos_status, session_id},
    simulator::in_process_simulator,
    test_dir,
};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};

use crate::OPERATOR;

/// How long the abuse lasts.
const ABUSE: Duration = Duration::from_secs(10);
const SLOW_HEADERS: usize = 300;
const SLOW_BODIES: usize = 40;
const FLOOD: usize = 3000;
const FLOOD_CONCURRENCY: usize = 200;
const DOCUMENTED: [u16; 9] = [204, 400, 401, 404, 408, 409, 413, 415, 503];

type Tally = Arc<Mutex<BTreeMap<String, BTreeMap<u16, u32>>>>;

fn count(tally: &Tally, kind: &str, status: u16) {
    *tally
        .lock()
        .unwrap()
        .entry(kind.to_owned())
        .or_default()
        .entry(status)
        .or_default() += 1;
}

/// A connection that sends a request line and then one header byte a second, never finishing
/// its headers. Returns whether the server closed it before `until`.
async fn slow_headers(addr: String, until: Instant) -> bool {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return false;
    };
    if stream
        .write_all(b"POST /notifications/x HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .is_err()
    {
        return true;
    }
    while Instant::now() < until {
        // The attacker's pace, not a wait for a condition.
        tokio::time::sleep(Duration::from_secs(1)).await;
        if stream.write_all(b"a").await.is_err() {
            return true;
        }
    }
    false
}

/// Complete headers with a valid token, then a body one byte every 300 ms. Returns the status
/// the server answered with (0 when it closed without one).
async fn slow_body(
    addr: String,
    path: String,
    token: String,
    until: Instant,
    sent_headers: Arc<AtomicUsize>,
) -> u16 {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return 0;
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/cloudevents+json\r\nContent-Length: 60000\r\n\r\n{{"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    sent_headers.fetch_add(1, Ordering::Relaxed);
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            },
            // The attacker's pace, not a wait for a condition.
            () = tokio::time::sleep(Duration::from_millis(300)) => {
                if Instant::now() > until || stream.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A chunked body of up to 20 MiB without a length, sent as fast as the server reads it.
/// Returns the status the server answered with (0 when it closed without one).
async fn streamed(addr: String, path: String, token: String) -> u16 {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return 0;
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/cloudevents+json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return 0;
    }
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
        for _ in 0..320 {
            if writer.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    });
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    while let Ok(Ok(n)) =
        tokio::time::timeout(Duration::from_secs(20), reader.read(&mut buffer)).await
    {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    sender.abort();
    String::from_utf8_lossy(&answer)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// An operator started with `webhook_args`, one resource it has made AVAILABLE, and what a
/// provider needs to notify about that resource.
struct Target {
    /// The test's namespace on the API server, where the resources are.
    cluster: Cluster,
    running: simulator::RunningSimulator,
    operator: Operator,
    uid: String,
    token: String,
    session: String,
    /// The webhook's `host:port`.
    addr: String,
}

async fn available_target(test: &str, webhook_args: &[&str]) -> Target {
    let dir = test_dir(&format!("hostile/{test}"));
    let cluster = Cluster::start(test).await;
    let (running, sim) = in_process_simulator().await;
    let mut setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, sim.provider_url());
    setup.extra_args = webhook_args.iter().map(|a| a.to_string()).collect();
    let operator = Operator::start_ready(&setup).await;
    let api = &cluster.api;
    api.create(
        &PostParams::default(),
        &QodSession::new("victim", numbered_spec(1, "QOS_M", 1800)),
    )
    .await
    .unwrap();
    let victim = eventually("victim AVAILABLE", Duration::from_secs(30), || async {
        let resource = api.get("victim").await.unwrap();
        (qos_status(&resource) == Some("AVAILABLE")).then_some(resource)
    })
    .await;
    let uid = victim.uid().unwrap();
    let key = std::fs::read_to_string(&setup.hmac_key_file).unwrap();
    let token = SinkKeys::from_bytes(key.trim_end().as_bytes(), None)
        .unwrap()
        .token_for(&uid)
        .expose_secret()
        .to_owned();
    Target {
        session: session_id(&victim).unwrap().to_owned(),
        addr: format!("127.0.0.1:{}", setup.webhook_port),
        cluster,
        running,
        operator,
        uid,
        token,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_under_abuse_keeps_the_operator_responsive_and_its_memory_bounded() {
    let Target {
        cluster,
        running,
        operator,
        uid,
        token,
        session,
        addr,
    } = available_target(
        "abuse",
        &[
            "--webhook-request-timeout",
            "2s",
            "--webhook-max-in-flight",
            "16",
        ],
    )
    .await;
    let url = format!("http://{addr}/notifications/{uid}");
    let api = &cluster.api;
    let baseline_kib = operator.rss_kib();

    let tally: Tally = Arc::default();
    let until = Instant::now() + ABUSE;
    let mut attackers = tokio::task::JoinSet::new();
    let slow_closed = Arc::new(AtomicUsize::new(0));
    for _ in 0..SLOW_HEADERS {
        let (addr, closed) = (addr.clone(), Arc::clone(&slow_closed));
        attackers.spawn(async move {
            if slow_headers(addr, until).await {
                closed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // Slow bodies without the resource's token: refused on their headers, before the body.
    for _ in 0..SLOW_BODIES {
        let (addr, path, token, tally) = (
            addr.clone(),
            format!("/notifications/{uid}"),
            "0".repeat(64),
            Arc::clone(&tally),
        );
        attackers.spawn(async move {
            let status = slow_body(addr, path, token, until, Arc::default()).await;
            count(&tally, "slow body", status);
        });
    }
    // The webhook closes a keep-alive connection that sends no request within its request
    // timeout (2 s here: the header timeout that stops the trickling above). A client that keeps
    // idle connections as long may send on one just as it is closed and see no answer at all
    // (README, "The header read timeout"), so this one, as pooled clients should, lets them go
    // sooner.
    let http = qod_test_support::http::builder()
        .timeout(Duration::from_secs(20))
        .pool_idle_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    // Oversized: declared (Content-Length) and streamed without a length.
    for index in 0..20 {
        let (http, url, token, tally) =
            (http.clone(), url.clone(), token.clone(), Arc::clone(&tally));
        let (addr, uid) = (addr.clone(), uid.clone());
        attackers.spawn(async move {
            let status = if index % 2 == 0 {
                http.post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/cloudevents+json")
                    .body(vec![b' '; 20 << 20])
                    .send()
                    .await
                    .map_or(0, |r| r.status().as_u16())
            } else {
                streamed(addr, format!("/notifications/{uid}"), token).await
            };
            // A refusal answered while the client still streams may reach it as a reset
            // before the status line: 0 here means the server cut the body off.
            count(
                &tally,
                if index % 2 == 0 {
                    "oversized"
                } else {
                    "oversized (streamed)"
                },
                status,
            );
        });
    }
    // Deeply nested JSON, just under the size limit.
    for _ in 0..50 {
        let (http, url, token, tally) =
            (http.clone(), url.clone(), token.clone(), Arc::clone(&tally));
        attackers.spawn(async move {
            let status = http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/cloudevents-batch+json")
                .body("[".repeat(60_000))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            count(&tally, "deep nesting", status);
        });
    }
    // The flood: valid events far beyond the in-flight cap of 16.
    let flood = Arc::new(tokio::sync::Semaphore::new(FLOOD_CONCURRENCY));
    for index in 0..FLOOD {
        let (http, url, token, tally, flood, session) = (
            http.clone(),
            url.clone(),
            token.clone(),
            Arc::clone(&tally),
            Arc::clone(&flood),
            session.clone(),
        );
        attackers.spawn(async move {
            let _permit = flood.acquire_owned().await.unwrap();
            let body = json!({
                "id": format!("flood-{index}"),
                "source": "https://provider.example/quality-on-demand/v1/sessions",
                "type": event::TYPE_V1,
                "specversion": "1.0",
                "time": jiff::Timestamp::now().to_string(),
                "data": {"sessionId": session, "qosStatus": "AVAILABLE"},
            });
            let status = http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/cloudevents+json")
                .body(body.to_string())
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            count(&tally, "flood", status);
        });
    }

    // Meanwhile: health answers fast, reconcile goes on, memory is sampled.
    api.create(
        &PostParams::default(),
        &QodSession::new("meanwhile", numbered_spec(2, "QOS_M", 1800)),
    )
    .await
    .unwrap();
    let (mut worst_health, mut peak_kib, mut available_after) =
        (Duration::ZERO, baseline_kib, None);
    let started = Instant::now();
    while Instant::now() < until || available_after.is_none() {
        let asked = Instant::now();
        assert_eq!(
            operator.probe("/healthz").await,
            Some(200),
            "/healthz answers"
        );
        worst_health = worst_health.max(asked.elapsed());
        peak_kib = peak_kib.max(operator.rss_kib());
        if available_after.is_none()
            && qos_status(&api.get("meanwhile").await.unwrap()) == Some("AVAILABLE")
        {
            available_after = Some(started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "meanwhile not AVAILABLE within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while attackers.join_next().await.is_some() {}
    let after_kib = operator.rss_kib();
    let tally = tally.lock().unwrap().clone();
    let closed = slow_closed.load(Ordering::Relaxed);
    println!(
        "abuse: answers {tally:?}; {closed}/{SLOW_HEADERS} header-trickling connections closed by the server within {ABUSE:?}; \
         /healthz worst {worst_health:?}; meanwhile AVAILABLE after {available_after:?}; \
         RSS {baseline_kib} KiB before, peak {peak_kib} KiB, {after_kib} KiB after"
    );
    // 503 is the in-flight cap, shared by every kind of request here. A refusal of a body
    // the client is still sending (413, 503) may reach it as a reset before the status line:
    // 0 for the oversized kinds means the server cut the body off.
    let only = |kind: &str, allowed: &[u16]| {
        assert!(
            tally[kind]
                .keys()
                .all(|s| allowed.contains(s) && (*s == 0 || DOCUMENTED.contains(s))),
            "{kind}: {:?}",
            tally[kind]
        );
    };
    only("oversized", &[413, 503, 0]);
    only("oversized (streamed)", &[413, 503, 0]);
    only("deep nesting", &[400, 503]);
    only("slow body", &[401, 503]);
    only("flood", &[204, 503]);
    assert!(
        tally["flood"].contains_key(&503),
        "the in-flight cap refused some of the flood"
    );
    assert!(
        tally["flood"].contains_key(&204),
        "notifications still got through the flood"
    );
    assert!(
        worst_health < Duration::from_secs(1),
        "/healthz took {worst_health:?}"
    );
    // 20 oversized bodies of 20 MiB would be 400 MiB if buffered; the limit is 64 KiB each.
    assert!(
        peak_kib < baseline_kib + 100 * 1024,
        "RSS grew from {baseline_kib} KiB to {peak_kib} KiB"
    );
    running.shutdown().await;
}

/// Slow bodies on `POST /notifications`, where no token can be checked before the body names
/// the session: each holds an in-flight permit until the request timeout, so a handful of
/// unauthenticated clients keep every real notification at 503 for as long as they like.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_slow_bodies_do_not_starve_real_notifications() {
    // Bound by name: a field left to `..` would be dropped (the operator killed) at once.
    let Target {
        cluster: _cluster,
        running,
        operator: _operator,
        uid,
        token,
        session,
        addr,
    } = available_target(
        "starve",
        &[
            "--webhook-request-timeout",
            "5s",
            "--webhook-max-in-flight",
            "8",
        ],
    )
    .await;

    let until = Instant::now() + Duration::from_secs(6);
    let mut attackers = tokio::task::JoinSet::new();
    let sent_headers = Arc::new(AtomicUsize::new(0));
    for _ in 0..16 {
        attackers.spawn(slow_body(
            addr.clone(),
            "/notifications".into(),
            "0".repeat(64),
            until,
            Arc::clone(&sent_headers),
        ));
    }
    eventually(
        "the attackers to send their headers",
        Duration::from_secs(5),
        || async { (sent_headers.load(Ordering::Relaxed) == 16).then_some(()) },
    )
    .await;
    // The provider's real notifications meanwhile (an event older than the stored status:
    // 204 and ignored), one every 200 ms.
    let http = qod_test_support::http::client();
    let mut answers = BTreeMap::<u16, u32>::new();
    for index in 0..20 {
        let body = json!({
            "id": format!("real-{index}"),
            "source": "https://provider.example/quality-on-demand/v1/sessions",
            "type": event::TYPE_V1,
            "specversion": "1.0",
            "time": "2020-01-01T00:00:00Z",
            "data": {"sessionId": session, "qosStatus": "AVAILABLE"},
        });
        let status = http
            .post(format!("http://{addr}/notifications/{uid}"))
            .bearer_auth(&token)
            .header("content-type", "application/cloudevents+json")
            .body(body.to_string())
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        *answers.entry(status).or_default() += 1;
        // The provider's pace, not a wait for a condition.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while attackers.join_next().await.is_some() {}
    println!("real notifications during the slow-body attack: {answers:?}");
    assert!(
        answers.get(&204).copied().unwrap_or(0) >= 10,
        "real notifications were starved: {answers:?}"
    );
    running.shutdown().await;
}

/// A connection that never finishes its headers is closed once the request timeout has
/// passed. Without a header timeout each one keeps a socket and a task forever, and enough of
/// them exhaust the process's file descriptors, which the probe port shares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_headers_are_closed() {
    let dir = test_dir("hostile/slowloris");
    let cluster = Cluster::start("slowloris").await;
    let (running, sim) = in_process_simulator().await;
    let mut setup = OperatorSetup::for_cluster(OPERATOR, &dir, &cluster, sim.provider_url());
    setup.extra_args = ["--webhook-request-timeout", "2s"]
        .map(String::from)
        .to_vec();
    let _operator = Operator::start_ready(&setup).await;
    let addr = format!("127.0.0.1:{}", setup.webhook_port);
    let started = Instant::now();
    let closed = slow_headers(addr, started + Duration::from_secs(15)).await;
    assert!(
        closed,
        "a connection trickling its headers was still open after {:?}",
        started.elapsed()
    );
    running.shutdown().await;
}
