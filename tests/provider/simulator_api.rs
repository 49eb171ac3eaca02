//! The simulator over HTTP with raw JSON: every endpoint of each path family, the spec's error
//! codes, the session lifecycle with notifications caught by a local sink, OAuth2 tokens, the
//! Network-as-Code dialect, fault injection and the `/_sim` test control.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
};
use jiff::Timestamp;
use qod_operator::{
    qod::{
        event::{self, NotificationFormat},
        model::{QosStatus, StatusInfo},
    },
    simulator::{self, RunningSimulator, SimulatorConfig},
};
use qod_test_support::{eventually, simulator::deliveries_answered};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

const SINK_TOKEN: &str = "sink-token-0123456789";

// ---------------------------------------------------------------------------------------------
// Harness: a simulator, a client for it, and a sink that records notifications.

struct Sim {
    running: RunningSimulator,
    http: reqwest::Client,
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

async fn start(config: SimulatorConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = simulator::spawn(listener, config).await.unwrap();
    Sim {
        running,
        http: qod_test_support::http::client(),
    }
}

/// Activation after 50 ms, quick notification retries.
fn fast_config() -> SimulatorConfig {
    let mut config = SimulatorConfig {
        available_after: Duration::from_millis(50),
        ..SimulatorConfig::default()
    };
    config.notification_retry.initial_backoff = Duration::from_millis(20);
    config.notification_retry.max_backoff = Duration::from_millis(100);
    config.notification_retry.timeout = Duration::from_secs(2);
    config
}

impl Sim {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.running.base_url())
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.http.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, &[]).await
    }

    async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None, &[]).await
    }

    async fn raw_post(&self, path: &str, body: &'static str) -> Answer {
        let response = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn sim_sessions(&self) -> Vec<Value> {
        let answer = self.get("/_sim/sessions?removed=true").await;
        assert_eq!(answer.status, 200);
        answer.body.as_array().cloned().unwrap()
    }

    async fn sim_session(&self, id: &str) -> Value {
        self.sim_sessions()
            .await
            .into_iter()
            .find(|s| s["sessionId"] == id)
            .unwrap_or_else(|| panic!("session {id} unknown to /_sim/sessions"))
    }

    async fn stats(&self) -> Value {
        self.get("/_sim/stats").await.body
    }

    async fn set_faults(&self, faults: Value) -> Answer {
        self.call(Method::PUT, "/_sim/faults", Some(&faults), &[])
            .await
    }

    /// Polls GET until the session reaches `status`.
    async fn wait_for_status(&self, path: &str, status: &str) -> Value {
        eventually(&format!("{path} to be {status}"), WAIT, || async {
            let answer = self.get(path).await;
            (answer.status == 200 && answer.body["qosStatus"] == status).then_some(answer.body)
        })
        .await
    }
}

#[derive(Clone, Debug)]
struct Received {
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

#[derive(Clone, Default)]
struct SinkState {
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests still to be answered 503 before the sink starts accepting.
    fail_next: Arc<AtomicUsize>,
}

struct Sink {
    base: String,
    state: SinkState,
}

async fn start_sink() -> Sink {
    async fn accept(
        State(state): State<SinkState>,
        uri: axum::http::Uri,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        let failing = state
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        state.received.lock().unwrap().push(Received {
            path: uri.path().to_owned(),
            authorization: header("authorization"),
            content_type: header("content-type"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        StatusCode::NO_CONTENT
    }
    let state = SinkState::default();
    let app = Router::new().fallback(accept).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Sink {
        base: format!("http://{addr}"),
        state,
    }
}

impl Sink {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Notifications for `session_id` as (qosStatus, statusInfo) pairs, in arrival order.
    fn statuses(&self, session_id: &str) -> Vec<(String, Option<String>)> {
        self.received()
            .into_iter()
            .filter(|r| r.body["data"]["sessionId"] == session_id)
            .map(|r| {
                (
                    r.body["data"]["qosStatus"].as_str().unwrap().to_owned(),
                    r.body["data"]["statusInfo"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    async fn wait_for(&self, session_id: &str, count: usize) -> Vec<Received> {
        eventually(
            &format!("{count} notification(s) for {session_id}"),
            WAIT,
            || async {
                let mine: Vec<Received> = self
                    .received()
                    .into_iter()
                    .filter(|r| r.body["data"]["sessionId"] == session_id)
                    .collect();
                (mine.len() >= count).then_some(mine)
            },
        )
        .await
    }
}

fn pair(status: &str, info: Option<&str>) -> (String, Option<String>) {
    (status.to_owned(), info.map(str::to_owned))
}

// ---------------------------------------------------------------------------------------------
// Request bodies.

const V1: &str = "/quality-on-demand/v1";
const V011: &str = "/quality-on-demand/v0.11";
const V0: &str = "/qod/v0";

/// A v1 create body; the device's NAT port is the phone number's last four digits, so devices
/// with different numbers are different devices.
fn v1_create(phone: &str, sink: Option<&str>) -> Value {
    let port: u16 = phone[phone.len() - 4..].parse().unwrap();
    let mut body = json!({
        "device": {"phoneNumber": phone,
                   "ipv4Address": {"publicAddress": "203.0.113.10", "publicPort": port}},
        "applicationServer": {"ipv4Address": "198.51.100.0/24"},
        "qosProfile": "QOS_L",
        "duration": 600
    });
    if let Some(sink) = sink {
        body["sink"] = json!(sink);
        body["sinkCredential"] = json!({
            "credentialType": "ACCESSTOKEN", "accessToken": SINK_TOKEN,
            "accessTokenExpiresUtc": "2099-01-01T00:00:00Z", "accessTokenType": "bearer"
        });
    }
    body
}

fn v0_create(phone: &str, webhook: Option<(&str, &str)>) -> Value {
    let mut body = json!({
        "device": {"phoneNumber": phone},
        "applicationServer": {"ipv4Address": "198.51.100.7"},
        "qosProfile": "QOS_M",
        "duration": 600
    });
    if let Some((url, token)) = webhook {
        body["webhook"] = json!({"notificationUrl": url, "notificationAuthToken": token});
    }
    body
}

fn assert_error(answer: &Answer, status: u16, code: &str, mentions: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.body["status"], status, "{answer:?}");
    assert_eq!(answer.body["code"], code, "{answer:?}");
    let message = answer.body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(mentions),
        "message {message:?} should mention {mentions:?}"
    );
}

fn id_of(answer: &Answer) -> String {
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body["sessionId"].as_str().unwrap().to_owned()
}

fn rfc3339(value: &Value) -> Timestamp {
    value.as_str().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Lifecycle and notifications.

#[tokio::test]
async fn v1_session_goes_available_notifies_and_is_deleted_with_delete_requested() {
    let sim = start(fast_config()).await;
    let sink = start_sink().await;

    let created = sim
        .call(
            Method::POST,
            &format!("{V1}/sessions"),
            Some(&v1_create("+36721601234567", Some(&sink.url("/notify")))),
            &[("x-correlator", "corr-123")],
        )
        .await;
    let id = id_of(&created);
    assert_eq!(created.headers["x-correlator"], "corr-123");
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(
        created.body,
        json!({
            "sessionId": id, "qosStatus": "REQUESTED", "duration": 600, "qosProfile": "QOS_L",
            "device": {"phoneNumber": "+36721601234567"},
            "applicationServer": {"ipv4Address": "198.51.100.0/24"},
            "sink": sink.url("/notify")
        }),
        "REQUESTED: no timestamps, one device identifier, no credential"
    );

    let path = format!("{V1}/sessions/{id}");
    let available = sim.wait_for_status(&path, "AVAILABLE").await;
    let started = rfc3339(&available["startedAt"]);
    let expires = rfc3339(&available["expiresAt"]);
    assert_eq!(expires.duration_since(started).as_secs(), 600);
    assert!(available.get("sinkCredential").is_none());
    assert!(!available.to_string().contains(SINK_TOKEN));

    let first = sink.wait_for(&id, 1).await.remove(0);
    assert_eq!(first.path, "/notify");
    assert_eq!(
        first.authorization.as_deref(),
        Some("Bearer sink-token-0123456789")
    );
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/cloudevents+json")
    );
    assert_eq!(first.body["type"], event::TYPE_V1);
    assert_eq!(first.body["specversion"], "1.0");
    assert_eq!(first.body["source"], sim.url(&path));
    assert!(uuid::Uuid::parse_str(first.body["id"].as_str().unwrap()).is_ok());
    rfc3339(&first.body["time"]);
    assert_eq!(
        first.body["data"],
        json!({"sessionId": id, "qosStatus": "AVAILABLE"})
    );

    let deleted = sim.delete(&path).await;
    assert_eq!(deleted.status, 204);
    sink.wait_for(&id, 2).await;
    assert_eq!(
        sink.statuses(&id),
        [
            pair("AVAILABLE", None),
            pair("UNAVAILABLE", Some("DELETE_REQUESTED"))
        ]
    );
    assert_error(&sim.get(&path).await, 404, "NOT_FOUND", &id);
    assert_error(&sim.delete(&path).await, 404, "NOT_FOUND", &id);

    // The sink holds an event before the simulator has its answer and counts the delivery.
    let stats = eventually("both deliveries counted", WAIT, || async {
        let stats = sim.stats().await;
        (stats["notifications"]["delivered"] == 2).then_some(stats)
    })
    .await;
    assert_eq!(stats["apiRequests"]["create"]["201"], 1);
    assert_eq!(stats["apiRequests"]["delete"], json!({"204": 1, "404": 1}));
    sim.running.shutdown().await;
}

#[tokio::test]
async fn every_notification_format_reaches_the_sink_and_parses() {
    let sink = start_sink().await;
    for (index, format) in NotificationFormat::ALL.into_iter().enumerate() {
        let sim = start(SimulatorConfig {
            available_after: Duration::ZERO,
            notification_format: Some(format),
            ..fast_config()
        })
        .await;
        let created = sim
            .post(
                &format!("{V1}/sessions"),
                &v1_create(&format!("+3672160123456{index}"), Some(&sink.url("/f"))),
            )
            .await;
        assert_eq!(created.body["qosStatus"], "AVAILABLE", "available_after 0");
        let id = id_of(&created);
        let received = sink.wait_for(&id, 1).await.remove(0);
        assert_eq!(received.body["type"], format.event_type());
        assert_eq!(
            received.body.get("event").is_some(),
            format == NotificationFormat::NacHybrid,
            "{format:?}"
        );
        let parsed = event::parse_event(received.body.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.session_id, id);
        assert_eq!(parsed.qos_status, QosStatus::Available);
        sim.running.shutdown().await;
    }
}

#[tokio::test]
async fn without_a_configured_format_each_path_notifies_in_its_own() {
    let sim = start(SimulatorConfig {
        available_after: Duration::ZERO,
        ..fast_config()
    })
    .await;
    let sink = start_sink().await;
    let v011 = id_of(
        &sim.post(
            &format!("{V011}/sessions"),
            &v1_create("+15550000011", Some(&sink.url("/a"))),
        )
        .await,
    );
    let v0 = id_of(
        &sim.post(
            &format!("{V0}/sessions"),
            &v0_create("+15550000012", Some((&sink.url("/b"), SINK_TOKEN))),
        )
        .await,
    );
    let nac = id_of(
        &sim.call(
            Method::POST,
            &format!("{V0}/sessions"),
            Some(&v0_create(
                "+15550000013",
                Some((&sink.url("/c"), "Bearer my-token")),
            )),
            &[
                ("x-rapidapi-key", "any"),
                ("x-rapidapi-host", "network-as-code.nokia.rapidapi.com"),
            ],
        )
        .await,
    );
    let v011_event = sink.wait_for(&v011, 1).await.remove(0);
    assert_eq!(v011_event.body["type"], event::TYPE_V0_11);
    let v0_event = sink.wait_for(&v0, 1).await.remove(0);
    assert_eq!(v0_event.body["type"], event::TYPE_V0_10);
    assert!(v0_event.body.get("event").is_none());
    assert_eq!(
        v0_event.authorization.as_deref(),
        Some("Bearer sink-token-0123456789")
    );
    let nac_event = sink.wait_for(&nac, 1).await.remove(0);
    assert_eq!(nac_event.body["event"]["eventType"], "QOS_STATUS_CHANGED");
    assert_eq!(
        nac_event.authorization.as_deref(),
        Some("Bearer my-token"),
        "a token that already starts with `Bearer ` is sent as it is"
    );
    sim.running.shutdown().await;
}

#[tokio::test]
async fn an_expired_session_notifies_duration_expired_and_disappears() {
    let sim = start(fast_config()).await;
    let sink = start_sink().await;
    let mut body = v1_create("+15550000021", Some(&sink.url("/n")));
    body["duration"] = json!(1);
    let id = id_of(&sim.post(&format!("{V1}/sessions"), &body).await);
    let path = format!("{V1}/sessions/{id}");

    sink.wait_for(&id, 2).await;
    assert_eq!(
        sink.statuses(&id),
        [
            pair("AVAILABLE", None),
            pair("UNAVAILABLE", Some("DURATION_EXPIRED"))
        ]
    );
    eventually("the expired session to be gone", WAIT, || async {
        (sim.get(&path).await.status == 404).then_some(())
    })
    .await;
    assert!(
        sim.get("/_sim/sessions")
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The sink holds an event before the simulator has its answer and records the outcome.
    let record = eventually("both deliveries answered", WAIT, || async {
        let record = sim.sim_session(&id).await;
        deliveries_answered(&record).then_some(record)
    })
    .await;
    assert_eq!(record["removed"], true);
    assert_eq!(record["statusInfo"], "DURATION_EXPIRED");
    assert_eq!(record["duration"], 1);
    let outcomes: Vec<&Value> = record["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["outcome"])
        .collect();
    assert_eq!(outcomes, [&json!("delivered"), &json!("delivered")]);
    sim.running.shutdown().await;
}

#[tokio::test]
async fn a_network_termination_keeps_the_session_and_its_flow_until_deleted() {
    let sim = start(SimulatorConfig {
        available_after: Duration::ZERO,
        ..fast_config()
    })
    .await;
    let sink = start_sink().await;
    let body = v1_create("+15550000031", Some(&sink.url("/n")));
    let id = id_of(&sim.post(&format!("{V1}/sessions"), &body).await);
    let path = format!("{V1}/sessions/{id}");

    let terminated = sim
        .post(&format!("/_sim/sessions/{id}/terminate"), &json!({}))
        .await;
    assert_eq!(terminated.status, 200, "{terminated:?}");
    assert_eq!(terminated.body["statusInfo"], "NETWORK_TERMINATED");
    let again = sim
        .post(&format!("/_sim/sessions/{id}/terminate"), &json!({}))
        .await;
    assert_eq!(again.status, 409);

    let info = sim.get(&path).await.body;
    assert_eq!(info["qosStatus"], "UNAVAILABLE");
    assert_eq!(info["statusInfo"], "NETWORK_TERMINATED");
    assert!(info["expiresAt"].is_string());
    sink.wait_for(&id, 2).await;
    assert_eq!(
        sink.statuses(&id)[1],
        pair("UNAVAILABLE", Some("NETWORK_TERMINATED"))
    );

    // The flow stays occupied, and nothing can be extended.
    let conflict = sim.post(&format!("{V1}/sessions"), &body).await;
    assert_error(&conflict, 409, "CONFLICT", &id);
    let extend = sim
        .post(
            &format!("{path}/extend"),
            &json!({"requestedAdditionalDuration": 60}),
        )
        .await;
    assert_error(
        &extend,
        409,
        "QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED",
        "UNAVAILABLE",
    );

    // Deleting an UNAVAILABLE session sends nothing (the record is written synchronously).
    assert_eq!(sim.delete(&path).await.status, 204);
    assert_eq!(
        sim.sim_session(&id).await["deliveries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(sim.post(&format!("{V1}/sessions"), &body).await.status, 201);

    let unknown = sim
        .post(
            &format!("/_sim/sessions/{}/terminate", uuid::Uuid::new_v4()),
            &json!({}),
        )
        .await;
    assert_eq!(unknown.status, 404);
    sim.running.shutdown().await;
}

#[tokio::test]
async fn a_terminated_session_is_removed_after_the_retention() {
    let sim = start(SimulatorConfig {
        available_after: Duration::ZERO,
        terminated_retention: Duration::from_secs(1),
        ..fast_config()
    })
    .await;
    let id = id_of(
        &sim.post(&format!("{V1}/sessions"), &v1_create("+15550000032", None))
            .await,
    );
    assert_eq!(
        sim.post(&format!("/_sim/sessions/{id}/terminate"), &json!({}))
            .await
            .status,
        200
    );
    let path = format!("{V1}/sessions/{id}");
    assert_eq!(
        sim.get(&path).await.body["statusInfo"],
        "NETWORK_TERMINATED"
    );
    eventually("the terminated session to be removed", WAIT, || async {
        (sim.get(&path).await.status == 404).then_some(())
    })
    .await;
    sim.running.shutdown().await;
}

#[tokio::test]
async fn failing_sinks_are_retried_and_then_given_up() {
    let mut config = SimulatorConfig {
        available_after: Duration::ZERO,
        ..fast_config()
    };
    config.notification_retry.attempts = 4;
    let sim = start(config).await;
    let sink = start_sink().await;

    // Two failures, then success on the third attempt.
    sink.state.fail_next.store(2, Ordering::SeqCst);
    let id = id_of(
        &sim.post(
            &format!("{V1}/sessions"),
            &v1_create("+15550000041", Some(&sink.url("/n"))),
        )
        .await,
    );
    sink.wait_for(&id, 1).await;
    let delivery = eventually("the delivery to be recorded", WAIT, || async {
        let record = sim.sim_session(&id).await;
        let delivery = record["deliveries"][0].clone();
        (delivery["outcome"] == "delivered").then_some(delivery)
    })
    .await;
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["lastStatus"], 204);

    // A sink that never accepts: every attempt is used, then the delivery fails.
    sink.state.fail_next.store(100, Ordering::SeqCst);
    let failing = id_of(
        &sim.post(
            &format!("{V1}/sessions"),
            &v1_create("+15550000042", Some(&sink.url("/n"))),
        )
        .await,
    );
    let delivery = eventually("the delivery to fail", WAIT, || async {
        let delivery = sim.sim_session(&failing).await["deliveries"][0].clone();
        (delivery["outcome"] == "failed").then_some(delivery)
    })
    .await;
    assert_eq!(delivery["attempts"], 4);
    assert_eq!(delivery["lastStatus"], 503);

    // An unreachable sink fails the same way, with the connection error recorded.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_url = format!("http://{}/n", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = id_of(
        &sim.post(
            &format!("{V1}/sessions"),
            &v1_create("+15550000043", Some(&dead_url)),
        )
        .await,
    );
    let delivery = eventually("the unreachable delivery to fail", WAIT, || async {
        let delivery = sim.sim_session(&unreachable).await["deliveries"][0].clone();
        (delivery["outcome"] == "failed").then_some(delivery)
    })
    .await;
    assert!(
        delivery["lastError"].as_str().unwrap().contains("connect"),
        "{delivery}"
    );

    let stats = sim.stats().await;
    assert_eq!(stats["notifications"]["delivered"], 1);
    assert_eq!(stats["notifications"]["failed"], 2);
    assert_eq!(stats["notifications"]["attempts"], 3 + 4 + 4);
    sim.running.shutdown().await;
}

#[tokio::test]
async fn notification_faults_drop_duplicate_and_reorder() {
    let sim = start(SimulatorConfig {
        available_after: Duration::ZERO,
        ..fast_config()
    })
    .await;
    let sink = start_sink().await;

    assert_eq!(
        sim.set_faults(json!({"dropNotificationRate": 1}))
            .await
            .status,
        200
    );
    let dropped = id_of(
        &sim.post(
            &format!("{V1}/sessions"),
            &v1_create("+15550000051", Some(&sink.url("/n"))),
        )
        .await,
    );
    eventually("the drop to be recorded", WAIT, || async {
        (sim.sim_session(&dropped).await["deliveries"][0]["outcome"] == "dropped").then_some(())
    })
    .await;
    assert!(sink.statuses(&dropped).is_empty());

    assert_eq!(
        sim.set_faults(json!({"duplicateNotificationRate": 1}))
            .await
            .status,
        200
    );
    let doubled = id_of(
        &sim.post(
            &format!("{V1}/sessions"),
            &v1_create("+15550000052", Some(&sink.url("/n"))),
        )
        .await,
    );
    let copies = sink.wait_for(&doubled, 2).await;
    assert_eq!(
        copies[0].body["id"], copies[1].body["id"],
        "a duplicate keeps its event id"
    );

    assert_eq!(
        sim.set_faults(json!({"reorderNotifications": true}))
            .await
            .status,
        200
    );
    let reordered = id_of(
        &sim.post(
            &format!("{V1}/sessions"),
            &v1_create("+15550000053", Some(&sink.url("/n"))),
        )
        .await,
    );
    assert_eq!(
        sim.delete(&format!("{V1}/sessions/{reordered}"))
            .await
            .status,
        204
    );
    sink.wait_for(&reordered, 2).await;
    assert_eq!(
        sink.statuses(&reordered),
        [
            pair("UNAVAILABLE", Some("DELETE_REQUESTED")),
            pair("AVAILABLE", None)
        ]
    );
    let stats = sim.stats().await;
    assert_eq!(stats["notifications"]["dropped"], 1);
    assert_eq!(stats["notifications"]["duplicated"], 1);
    sim.running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Validation and error codes.

#[tokio::test]
async fn create_validation_answers_the_specs_codes_and_names_the_field() {
    let sim = start(fast_config()).await;
    let sessions = format!("{V1}/sessions");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = v1_create("+15550000061", Some("https://sink.example/n"));
        change(&mut body);
        body
    };
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            with(&|b| b["duration"] = json!("long")),
            400,
            "INVALID_ARGUMENT",
            "duration",
        ),
        (
            with(&|b| b["devicePorts"] = json!({"ports": [70000]})),
            400,
            "INVALID_ARGUMENT",
            "devicePorts.ports[0]",
        ),
        (
            with(&|b| b["device"]["phoneNumber"] = json!("0036721601234567")),
            400,
            "INVALID_ARGUMENT",
            "device.phoneNumber",
        ),
        (
            with(&|b| b["device"] = json!({"ipv4Address": {"publicAddress": "203.0.113.10"}})),
            400,
            "INVALID_ARGUMENT",
            "privateAddress or publicPort",
        ),
        (
            with(&|b| b["device"] = json!({})),
            400,
            "INVALID_ARGUMENT",
            "device",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("device");
            }),
            422,
            "MISSING_IDENTIFIER",
            "device",
        ),
        (
            with(&|b| b["applicationServer"] = json!({})),
            400,
            "INVALID_ARGUMENT",
            "applicationServer",
        ),
        (
            with(&|b| b["qosProfile"] = json!("QO")),
            400,
            "INVALID_ARGUMENT",
            "qosProfile",
        ),
        (
            with(&|b| b["qosProfile"] = json!("QOS L")),
            400,
            "INVALID_ARGUMENT",
            "qosProfile",
        ),
        (
            with(&|b| b["qosProfile"] = json!("QOS_UNKNOWN")),
            400,
            "INVALID_ARGUMENT",
            "QOS_UNKNOWN",
        ),
        (
            with(&|b| b["qosProfile"] = json!("QOS_LEGACY")),
            422,
            "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE",
            "DEPRECATED",
        ),
        (
            with(&|b| b["duration"] = json!(0)),
            400,
            "INVALID_ARGUMENT",
            "duration",
        ),
        (
            with(&|b| {
                b["qosProfile"] = json!("QOS_E");
                b["duration"] = json!(3601);
            }),
            400,
            "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE",
            "QOS_E",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("duration");
            }),
            400,
            "INVALID_ARGUMENT",
            "duration",
        ),
        (
            with(&|b| b["sinkCredential"]["credentialType"] = json!("PLAIN")),
            400,
            "INVALID_CREDENTIAL",
            "ACCESSTOKEN",
        ),
        (
            with(&|b| b["sinkCredential"]["accessTokenType"] = json!("mac")),
            400,
            "INVALID_TOKEN",
            "bearer",
        ),
        (
            with(&|b| b["sink"] = json!("not a url")),
            400,
            "INVALID_SINK",
            "sink",
        ),
        (
            with(&|b| b["webhook"] = json!({"notificationUrl": "https://x.example"})),
            400,
            "INVALID_ARGUMENT",
            "webhook",
        ),
    ];
    for (body, status, code, mentions) in cases {
        let answer = sim.post(&sessions, &body).await;
        assert_error(&answer, status, code, mentions);
    }
    assert_error(
        &sim.raw_post(&sessions, "{\"device\":").await,
        400,
        "INVALID_ARGUMENT",
        "JSON",
    );
    assert_error(
        &sim.raw_post(&sessions, "").await,
        400,
        "INVALID_ARGUMENT",
        "empty",
    );

    let bad_correlator = sim
        .call(
            Method::POST,
            &sessions,
            Some(&v1_create("+15550000062", None)),
            &[("x-correlator", "has space")],
        )
        .await;
    assert_error(&bad_correlator, 400, "INVALID_ARGUMENT", "x-correlator");
    assert!(bad_correlator.headers.get("x-correlator").is_none());

    assert_eq!(
        sim.stats().await["liveSessions"],
        0,
        "no invalid request created anything"
    );
    sim.running.shutdown().await;
}

#[tokio::test]
async fn session_paths_answer_400_for_bad_ids_and_404_for_unknown_ones() {
    let sim = start(fast_config()).await;
    let unknown = uuid::Uuid::new_v4();
    for base in [V1, V011, V0] {
        assert_error(
            &sim.get(&format!("{base}/sessions/not-a-uuid")).await,
            400,
            "INVALID_ARGUMENT",
            "sessionId",
        );
        assert_error(
            &sim.get(&format!("{base}/sessions/{unknown}")).await,
            404,
            "NOT_FOUND",
            "not found",
        );
        assert_error(
            &sim.delete(&format!("{base}/sessions/{unknown}")).await,
            404,
            "NOT_FOUND",
            "not found",
        );
        let extend = sim
            .post(
                &format!("{base}/sessions/{unknown}/extend"),
                &json!({"requestedAdditionalDuration": 5}),
            )
            .await;
        assert_error(&extend, 404, "NOT_FOUND", "not found");
    }
    assert_eq!(sim.get("/nowhere").await.status, 404);
    assert_eq!(sim.get("/healthz").await.status, 200);
    sim.running.shutdown().await;
}

#[tokio::test]
async fn overlapping_flows_conflict_and_separate_ones_do_not() {
    let sim = start(fast_config()).await;
    let sessions = format!("{V1}/sessions");
    let mut body = v1_create("+15550000071", None);
    body["devicePorts"] = json!({"ranges": [{"from": 5000, "to": 5010}]});
    let first = id_of(&sim.post(&sessions, &body).await);

    // Same device (by phone number), a server inside the /24, an overlapping port.
    let mut overlap = body.clone();
    overlap["device"] = json!({"phoneNumber": "+15550000071"});
    overlap["applicationServer"] = json!({"ipv4Address": "198.51.100.77"});
    overlap["devicePorts"] = json!({"ports": [5010]});
    assert_error(
        &sim.post(&sessions, &overlap).await,
        409,
        "CONFLICT",
        &first,
    );

    let mut other_ports = overlap.clone();
    other_ports["devicePorts"] = json!({"ports": [6000]});
    assert_eq!(sim.post(&sessions, &other_ports).await.status, 201);
    let mut other_server = overlap.clone();
    other_server["applicationServer"] = json!({"ipv4Address": "192.0.2.1"});
    assert_eq!(sim.post(&sessions, &other_server).await.status, 201);
    let mut other_device = body.clone();
    other_device["device"] = json!({"phoneNumber": "+15550000072"});
    assert_eq!(sim.post(&sessions, &other_device).await.status, 201);
    assert_eq!(
        sim.stats().await["apiRequests"]["create"],
        json!({"201": 4, "409": 1})
    );
    sim.running.shutdown().await;
}

#[tokio::test]
async fn extend_is_capped_at_the_profile_maximum_and_needs_an_available_session() {
    let sim = start(SimulatorConfig {
        available_after: Duration::from_secs(1),
        ..fast_config()
    })
    .await;
    let mut body = v1_create("+15550000081", None);
    body["qosProfile"] = json!("QOS_E"); // at most 3600 s
    body["duration"] = json!(3000);
    let id = id_of(&sim.post(&format!("{V1}/sessions"), &body).await);
    let extend = format!("{V1}/sessions/{id}/extend");

    let early = sim
        .post(&extend, &json!({"requestedAdditionalDuration": 100}))
        .await;
    assert_error(
        &early,
        409,
        "QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED",
        "REQUESTED",
    );
    assert_error(
        &sim.post(&extend, &json!({"requestedAdditionalDuration": 0}))
            .await,
        400,
        "INVALID_ARGUMENT",
        "requestedAdditionalDuration",
    );

    sim.wait_for_status(&format!("{V1}/sessions/{id}"), "AVAILABLE")
        .await;
    let extended = sim
        .post(&extend, &json!({"requestedAdditionalDuration": 1000}))
        .await;
    assert_eq!(extended.status, 200, "{extended:?}");
    assert_eq!(extended.body["duration"], 3600, "capped silently");
    let started = rfc3339(&extended.body["startedAt"]);
    let expires = rfc3339(&extended.body["expiresAt"]);
    assert_eq!(expires.duration_since(started).as_secs(), 3600);
    assert_eq!(
        sim.get(&format!("{V1}/sessions/{id}")).await.body["duration"],
        3600
    );
    sim.running.shutdown().await;
}

#[tokio::test]
async fn v0_10_path_speaks_the_webhook_shape_with_epoch_seconds() {
    let sim = start(SimulatorConfig {
        available_after: Duration::from_secs(1),
        ..fast_config()
    })
    .await;
    let sink = start_sink().await;
    let sessions = format!("{V0}/sessions");
    let created = sim
        .post(
            &sessions,
            &v0_create("9382948473", Some((&sink.url("/v0"), SINK_TOKEN))),
        )
        .await;
    let id = id_of(&created);
    assert_eq!(created.body["qosStatus"], "REQUESTED");
    assert!(
        created.body["startedAt"].is_i64(),
        "required integers in v0.10: {created:?}"
    );
    assert_eq!(
        created.body["expiresAt"].as_i64().unwrap() - created.body["startedAt"].as_i64().unwrap(),
        600
    );
    assert_eq!(
        created.body["webhook"],
        json!({"notificationUrl": sink.url("/v0")})
    );
    assert!(created.body.get("sink").is_none());
    assert_eq!(created.body["device"], json!({"phoneNumber": "9382948473"}));

    let extend = format!("{sessions}/{id}/extend");
    assert_error(
        &sim.post(&extend, &json!({"requestedAdditionalDuration": 60}))
            .await,
        400,
        "INVALID_ARGUMENT",
        "inactive",
    );
    sim.wait_for_status(&format!("{sessions}/{id}"), "AVAILABLE")
        .await;
    assert_error(
        &sim.post(&extend, &json!({"requestedAdditionalDuration": 86400}))
            .await,
        400,
        "OUT_OF_RANGE",
        "requestedAdditionalDuration",
    );
    let extended = sim
        .post(&extend, &json!({"requestedAdditionalDuration": 240}))
        .await;
    assert_eq!(extended.body["duration"], 840);
    assert!(extended.body.get("statusInfo").is_none());

    let event = sink.wait_for(&id, 1).await.remove(0);
    assert_eq!(event.body["type"], event::TYPE_V0_10);
    assert_eq!(
        event.authorization.as_deref(),
        Some("Bearer sink-token-0123456789")
    );

    let found = sim
        .post(
            &format!("{V0}/retrieve-sessions"),
            &json!({"device": {"phoneNumber": "9382948473"}}),
        )
        .await;
    assert_eq!(found.body.as_array().unwrap().len(), 1);

    // The v0.10 rules: duration at most 86400, optional, webhook not sink, token 20..256.
    let mut long = v0_create("9382948474", None);
    long["duration"] = json!(86401);
    assert_error(
        &sim.post(&sessions, &long).await,
        400,
        "OUT_OF_RANGE",
        "duration",
    );
    let mut default = v0_create("9382948475", None);
    default.as_object_mut().unwrap().remove("duration");
    assert_eq!(sim.post(&sessions, &default).await.body["duration"], 86400);
    let mut sink_shape = v0_create("9382948476", None);
    sink_shape["sink"] = json!("https://x.example");
    assert_error(
        &sim.post(&sessions, &sink_shape).await,
        400,
        "INVALID_ARGUMENT",
        "sink",
    );
    let short = v0_create("9382948477", Some(("https://x.example", "short")));
    assert_error(
        &sim.post(&sessions, &short).await,
        400,
        "INVALID_ARGUMENT",
        "notificationAuthToken",
    );
    let mut no_device = v0_create("9382948478", None);
    no_device.as_object_mut().unwrap().remove("device");
    assert_error(
        &sim.post(&sessions, &no_device).await,
        400,
        "INVALID_ARGUMENT",
        "device",
    );
    sim.running.shutdown().await;
}

#[tokio::test]
async fn v0_11_path_serves_the_sink_shape_with_its_older_codes() {
    let sim = start(SimulatorConfig {
        available_after: Duration::ZERO,
        ..fast_config()
    })
    .await;
    let sessions = format!("{V011}/sessions");
    let created = sim.post(&sessions, &v1_create("+15550000091", None)).await;
    let id = id_of(&created);
    assert_eq!(created.body["qosStatus"], "AVAILABLE");
    assert!(created.body["startedAt"].is_string());
    assert_eq!(
        created.body["device"]["ipv4Address"]["publicPort"], 91,
        "whole device echoed"
    );
    let mut no_device = v1_create("+15550000092", None);
    no_device.as_object_mut().unwrap().remove("device");
    assert_error(
        &sim.post(&sessions, &no_device).await,
        422,
        "UNIDENTIFIABLE_DEVICE",
        "device",
    );
    let extended = sim
        .post(
            &format!("{sessions}/{id}/extend"),
            &json!({"requestedAdditionalDuration": 60}),
        )
        .await;
    assert_eq!(extended.body["duration"], 660);
    // The same session seen through the v1 path has the v1 shape.
    let via_v1 = sim.get(&format!("{V1}/sessions/{id}")).await;
    assert_eq!(
        via_v1.body["device"],
        json!({"phoneNumber": "+15550000091"})
    );
    sim.running.shutdown().await;
}

#[tokio::test]
async fn retrieve_sessions_lists_a_devices_sessions() {
    let sim = start(fast_config()).await;
    let sessions = format!("{V1}/sessions");
    let retrieve = format!("{V1}/retrieve-sessions");
    let a1 = id_of(&sim.post(&sessions, &v1_create("+15550000101", None)).await);
    let mut second = v1_create("+15550000101", None);
    second["applicationServer"] = json!({"ipv6Address": "2001:db8::/64"});
    let a2 = id_of(&sim.post(&sessions, &second).await);
    id_of(&sim.post(&sessions, &v1_create("+15550000102", None)).await);

    let found = sim
        .post(
            &retrieve,
            &json!({"device": {"phoneNumber": "+15550000101"}}),
        )
        .await;
    assert_eq!(found.status, 200);
    let ids: Vec<&str> = found
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sessionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a1.as_str(), a2.as_str()]);
    // Matching by another identifier of the same device works too.
    let by_ip = sim
        .post(&retrieve, &json!({"device": {"ipv4Address": {"publicAddress": "203.0.113.10", "publicPort": 101}}}))
        .await;
    assert_eq!(by_ip.body.as_array().unwrap().len(), 2);
    let none = sim
        .post(
            &retrieve,
            &json!({"device": {"phoneNumber": "+15550000109"}}),
        )
        .await;
    assert_eq!((none.status, none.body.clone()), (200, json!([])));
    assert_error(
        &sim.post(&retrieve, &json!({})).await,
        422,
        "MISSING_IDENTIFIER",
        "device",
    );
    assert_error(
        &sim.post(&retrieve, &json!({"device": {"phoneNumber": "12"}}))
            .await,
        400,
        "INVALID_ARGUMENT",
        "device.phoneNumber",
    );
    sim.running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Network as Code.

#[tokio::test]
async fn nac_clients_get_nokias_answers() {
    let sim = start(SimulatorConfig {
        available_after: Duration::ZERO,
        api_key: Some(SecretString::from("nac-key")),
        require_auth: true,
        ..fast_config()
    })
    .await;
    let nac = [
        ("x-rapidapi-key", "nac-key"),
        ("x-rapidapi-host", "network-as-code.nokia.rapidapi.com"),
    ];
    let wrong = [
        ("x-rapidapi-key", "wrong"),
        ("x-rapidapi-host", "network-as-code.nokia.rapidapi.com"),
    ];
    let sessions = format!("{V1}/sessions");

    let refused = sim
        .call(
            Method::POST,
            &sessions,
            Some(&v1_create("+99999991001", None)),
            &wrong,
        )
        .await;
    assert_eq!(
        (refused.status, refused.body),
        (403, json!({"message": "Invalid API key."}))
    );

    let none = sim
        .call(
            Method::POST,
            &format!("{V1}/retrieve-sessions"),
            Some(&json!({"device": {"phoneNumber": "+99999991001"}})),
            &nac,
        )
        .await;
    assert_eq!(
        (none.status, none.body),
        (404, json!({"detail": "QoS subscription not found"}))
    );

    let created = sim
        .call(
            Method::POST,
            &sessions,
            Some(&v1_create("+99999991001", None)),
            &nac,
        )
        .await;
    let id = id_of(&created);
    let conflict = sim
        .call(
            Method::POST,
            &sessions,
            Some(&v1_create("+99999991001", None)),
            &nac,
        )
        .await;
    assert_eq!(conflict.status, 409);
    assert!(conflict.body["detail"].as_str().unwrap().contains(&id));
    let mut no_device = v1_create("+99999991002", None);
    no_device.as_object_mut().unwrap().remove("device");
    let unprocessable = sim
        .call(Method::POST, &sessions, Some(&no_device), &nac)
        .await;
    assert_eq!(unprocessable.status, 422);
    assert!(unprocessable.body["detail"].is_string());

    let found = sim
        .call(
            Method::POST,
            &format!("{V1}/retrieve-sessions"),
            Some(&json!({"device": {"phoneNumber": "+99999991001"}})),
            &nac,
        )
        .await;
    assert_eq!(found.body.as_array().unwrap().len(), 1);
    let missing = sim
        .call(
            Method::GET,
            &format!("{sessions}/{}", uuid::Uuid::new_v4()),
            None,
            &nac,
        )
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.body["detail"].is_string());
    let deleted = sim
        .call(Method::DELETE, &format!("{sessions}/{id}"), None, &nac)
        .await;
    assert_eq!(deleted.status, 204);
    assert_eq!(sim.sim_session(&id).await["flavour"], "nac");

    // The same simulator still demands OAuth from CAMARA clients.
    assert_error(
        &sim.get(&format!("{sessions}/{id}")).await,
        401,
        "UNAUTHENTICATED",
        "authenticated",
    );
    sim.running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// OAuth2.

async fn token_request(sim: &Sim, form: &'static str, basic: Option<&str>) -> Answer {
    let mut request = sim
        .http
        .post(sim.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    if let Some(basic) = basic {
        request = request.header("authorization", format!("Basic {basic}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Answer {
        status,
        headers,
        body: response.json().await.unwrap(),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn oauth_tokens_are_issued_checked_and_revoked() {
    let dir = std::env::temp_dir().join(format!("qod-sim-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, "s3cret\n").unwrap();
    let sim = start(SimulatorConfig {
        require_auth: true,
        client_credentials: Some(simulator::ClientCredentials {
            client_id: "operator".into(),
            client_secret: simulator::read_secret_file("client secret", &secret_file).unwrap(),
        }),
        bearer_token: Some(SecretString::from("static-token")),
        ..fast_config()
    })
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    let path = format!("{V1}/retrieve-sessions");
    let body = json!({"device": {"phoneNumber": "+15550000111"}});

    assert_error(
        &sim.post(&path, &body).await,
        401,
        "UNAUTHENTICATED",
        "authenticated",
    );

    let wrong = token_request(
        &sim,
        "grant_type=client_credentials&client_id=operator&client_secret=nope",
        None,
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.body["error"].clone()),
        (401, json!("invalid_client"))
    );
    let anonymous = token_request(&sim, "grant_type=client_credentials", None).await;
    assert_eq!(anonymous.body["error"], "invalid_client");
    let no_grant = token_request(&sim, "client_id=operator&client_secret=s3cret", None).await;
    assert_eq!(
        (no_grant.status, no_grant.body["error"].clone()),
        (400, json!("invalid_request"))
    );
    let password = token_request(
        &sim,
        "grant_type=password&client_id=operator&client_secret=s3cret",
        None,
    )
    .await;
    assert_eq!(password.body["error"], "unsupported_grant_type");

    let issued = token_request(
        &sim,
        "grant_type=client_credentials&client_id=operator&client_secret=s3cret",
        None,
    )
    .await;
    assert_eq!(issued.status, 200, "{issued:?}");
    assert_eq!(issued.body["token_type"], "Bearer");
    assert_eq!(issued.body["expires_in"], 3600);
    assert_eq!(issued.headers["cache-control"], "no-store");
    let token = issued.body["access_token"].as_str().unwrap().to_owned();
    // "operator:s3cret" as HTTP Basic.
    let basic = token_request(
        &sim,
        "grant_type=client_credentials",
        Some("b3BlcmF0b3I6czNjcmV0"),
    )
    .await;
    assert_eq!(basic.status, 200);

    let authorised = sim
        .call(
            Method::POST,
            &path,
            Some(&body),
            &[("authorization", &bearer(&token))],
        )
        .await;
    assert_eq!(authorised.status, 200);
    let forged = sim
        .call(
            Method::POST,
            &path,
            Some(&body),
            &[("authorization", "Bearer sim.forged")],
        )
        .await;
    assert_error(&forged, 401, "UNAUTHENTICATED", "authenticated");
    let static_token = sim
        .call(
            Method::POST,
            &path,
            Some(&body),
            &[("authorization", "Bearer static-token")],
        )
        .await;
    assert_eq!(static_token.status, 200);

    let revoked = sim.post("/_sim/tokens/revoke", &json!({})).await;
    assert_eq!(revoked.body, json!({"revoked": 2}));
    let after = sim
        .call(
            Method::POST,
            &path,
            Some(&body),
            &[("authorization", &bearer(&token))],
        )
        .await;
    assert_error(&after, 401, "UNAUTHENTICATED", "authenticated");

    let stats = sim.stats().await;
    assert_eq!(stats["tokensIssued"], 2);
    assert_eq!(stats["tokenRequestsRejected"], 4);
    assert_eq!(
        stats["apiRequests"]["retrieve_sessions"],
        json!({"200": 2, "401": 3})
    );
    sim.running.shutdown().await;
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let sim = start(SimulatorConfig {
        token_ttl: Duration::from_millis(1500),
        ..fast_config()
    })
    .await;
    let issued = token_request(
        &sim,
        "grant_type=client_credentials&client_id=any&client_secret=any",
        None,
    )
    .await;
    assert_eq!(issued.body["expires_in"], 2, "rounded up to whole seconds");
    let token = bearer(issued.body["access_token"].as_str().unwrap());
    let path = format!("{V1}/retrieve-sessions");
    let body = json!({"device": {"phoneNumber": "+15550000121"}});
    assert_eq!(
        sim.call(
            Method::POST,
            &path,
            Some(&body),
            &[("authorization", &token)]
        )
        .await
        .status,
        200
    );
    eventually("the token to expire", WAIT, || async {
        let answer = sim
            .call(
                Method::POST,
                &path,
                Some(&body),
                &[("authorization", &token)],
            )
            .await;
        (answer.status == 401).then_some(())
    })
    .await;
    // Without --require-auth, no credentials at all is still fine.
    assert_eq!(sim.post(&path, &body).await.status, 200);
    sim.running.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Faults, stats, reset, shutdown.

#[tokio::test]
async fn api_faults_rate_limit_and_fail_requests_but_not_the_control_paths() {
    let sim = start(fast_config()).await;
    let path = format!("{V1}/retrieve-sessions");
    let body = json!({"device": {"phoneNumber": "+15550000131"}});

    let set = sim
        .set_faults(json!({"rateLimitRate": 1, "retryAfterSeconds": 7}))
        .await;
    assert_eq!(set.status, 200);
    assert_eq!(sim.get("/_sim/faults").await.body["rateLimitRate"], 1.0);
    let limited = sim.post(&path, &body).await;
    assert_error(&limited, 429, "TOO_MANY_REQUESTS", "Rate limit");
    assert_eq!(limited.headers["retry-after"], "7");
    assert_eq!(
        sim.get("/_sim/stats").await.status,
        200,
        "/_sim is never faulted"
    );
    let token = token_request(&sim, "grant_type=client_credentials", None).await;
    assert_eq!(token.status, 200, "/oauth/token is never faulted");

    sim.set_faults(json!({"errorRate": 1})).await;
    assert_eq!(sim.post(&path, &body).await.status, 503);
    sim.set_faults(json!({"errorRate": 0})).await;
    assert_eq!(sim.post(&path, &body).await.status, 200);

    sim.set_faults(json!({"latencyMs": 150})).await;
    let started = std::time::Instant::now();
    assert_eq!(sim.post(&path, &body).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(150));

    for bad in [
        json!({"errorRate": 1.5}),
        json!({"dropNotificationRate": -0.5}),
        json!({"latencyMs": -1}),
        json!({"errorrate": 0.5}),
        json!({"reorderNotifications": "yes"}),
    ] {
        let answer = sim.set_faults(bad.clone()).await;
        assert_eq!(answer.status, 400, "{bad} -> {answer:?}");
    }
    assert_eq!(
        sim.get("/_sim/faults").await.body["latencyMs"],
        150,
        "bad values change nothing"
    );
    let stats = sim.stats().await;
    assert_eq!(
        stats["apiRequests"]["retrieve_sessions"],
        json!({"200": 2, "429": 1, "503": 1})
    );
    sim.running.shutdown().await;
}

#[tokio::test]
async fn held_answers_wait_for_their_release_or_the_shutdown() {
    let sim = start(fast_config()).await;
    assert_eq!(
        sim.set_faults(json!({"holdAnswers": true})).await.status,
        200
    );
    let create = |phone: &str| {
        let request = sim
            .http
            .post(sim.url(&format!("{V1}/sessions")))
            .json(&v1_create(phone, None));
        tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
    };
    let stored = |count: usize| {
        let sim = &sim;
        async move {
            eventually("the held create to take effect", WAIT, || async {
                (sim.sim_sessions().await.len() == count).then_some(())
            })
            .await
        }
    };

    // Held: the create takes effect, its answer waits until the fault is cleared.
    let first = create("+15550000151");
    stored(1).await;
    assert!(!first.is_finished(), "answered while answers are held");
    sim.set_faults(json!({})).await;
    assert_eq!(first.await.unwrap().unwrap(), 201);

    // Held again: stopping the simulator releases the answer instead of waiting for ever.
    sim.set_faults(json!({"holdAnswers": true})).await;
    let second = create("+15550000152");
    stored(2).await;
    assert!(!second.is_finished(), "answered while answers are held");
    tokio::time::timeout(WAIT, sim.running.shutdown())
        .await
        .expect("shutdown does not wait for held answers");
    assert_eq!(second.await.unwrap().unwrap(), 201);
}

#[tokio::test]
async fn reset_forgets_sessions_faults_and_counters() {
    let sim = start(fast_config()).await;
    let id = id_of(
        &sim.post(&format!("{V1}/sessions"), &v1_create("+15550000141", None))
            .await,
    );
    sim.set_faults(json!({"latencyMs": 10})).await;
    let listed = sim.get("/_sim/sessions").await.body;
    assert_eq!(listed[0]["sessionId"], id);
    assert_eq!(listed[0]["device"]["ipv4Address"]["publicPort"], 141);
    assert_eq!(listed[0]["apiVersion"], "v1");
    assert_eq!(listed[0]["notificationFormat"], "v1");

    assert_eq!(sim.post("/_sim/reset", &json!({})).await.status, 204);
    assert!(
        sim.get("/_sim/sessions?removed=true")
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(sim.get(&format!("{V1}/sessions/{id}")).await.status, 404);
    assert_eq!(sim.get("/_sim/faults").await.body["latencyMs"], 0);
    let stats = sim.stats().await;
    assert_eq!(stats["apiRequests"], json!({"get": {"404": 1}}));
    // The flow is free again.
    assert_eq!(
        sim.post(&format!("{V1}/sessions"), &v1_create("+15550000141", None))
            .await
            .status,
        201
    );
    sim.running.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let sim = start(fast_config()).await;
    let url = sim.url("/healthz");
    assert_eq!(sim.get("/healthz").await.status, 200);
    tokio::time::timeout(WAIT, sim.running.shutdown())
        .await
        .unwrap();
    assert!(
        qod_test_support::http::client()
            .get(url)
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn session_state_is_reported_as_the_model_types_read_it() {
    // The simulator's answers parse with the project's own wire models.
    let sim = start(SimulatorConfig {
        available_after: Duration::ZERO,
        ..fast_config()
    })
    .await;
    let id = id_of(
        &sim.post(&format!("{V1}/sessions"), &v1_create("+15550000151", None))
            .await,
    );
    sim.post(&format!("/_sim/sessions/{id}/terminate"), &json!({}))
        .await;
    for base in [V1, V011, V0] {
        let body = sim.get(&format!("{base}/sessions/{id}")).await.body;
        let info: qod_operator::qod::SessionInfo = serde_json::from_value(body).unwrap();
        assert_eq!(info.qos_status, QosStatus::Unavailable);
        assert!(info.expires_at.is_some());
        let expected = (base != V0).then_some(StatusInfo::NetworkTerminated);
        assert_eq!(info.status_info, expected, "{base}");
    }
    sim.running.shutdown().await;
}
