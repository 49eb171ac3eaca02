//! The real QoD clients against the built-in simulator over HTTP: every operation on the v1,
//! v0.11 and v0.10 paths and in the NaC flavour, every error class the controller tells apart
//! (404, 409, 400, 422, 429 and 503 with `Retry-After`, a create without answer), and the
//! OAuth2 token refresh after a revocation. The simulator's `/_sim/` control and counters show
//! what reached the provider, so "sent exactly once" is asserted, not assumed.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{Router, http::HeaderMap, http::StatusCode};
use jiff::{Timestamp, ToSpan};
use qod_operator::{
    qod::{
        ApiVersion, ApplicationServer, CamaraAuth, CamaraClient, CamaraConfig, ClientAuthMethod,
        ClientCredentials, Device, DeviceIpv4Address, Error, NacClient, NacConfig,
        NotificationTarget, Operation, PortsSpec, QosStatus, SecretSource, SessionApi,
        SessionRequest, Timeouts,
    },
    simulator::{self, RunningSimulator},
};
use qod_test_support::eventually;
use secrecy::SecretString;
use serde_json::{Value, json};

const PHONE: &str = "+36721601234567";
const SINK_TOKEN: &str = "7d1c0a9e5b3f4e2d8c6b1a0f9e8d7c6b";
const UNKNOWN_SESSION: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
const WAIT: Duration = Duration::from_secs(10);

async fn start(config: simulator::SimulatorConfig) -> RunningSimulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    simulator::spawn(listener, config).await.unwrap()
}

/// Sessions are AVAILABLE in the 201, so they can be extended at once.
fn available_at_once() -> simulator::SimulatorConfig {
    simulator::SimulatorConfig {
        available_after: Duration::ZERO,
        ..simulator::SimulatorConfig::default()
    }
}

fn device() -> Device {
    Device {
        phone_number: Some(PHONE.into()),
        ipv4_address: Some(DeviceIpv4Address {
            public_address: "203.0.113.10".into(),
            private_address: None,
            public_port: Some(5060),
        }),
        ..Device::default()
    }
}

fn request(sink: Option<&Sink>) -> SessionRequest {
    SessionRequest {
        device: device(),
        application_server: ApplicationServer {
            ipv4_address: Some("198.51.100.0/24".into()),
            ipv6_address: None,
        },
        device_ports: None,
        application_server_ports: Some(PortsSpec {
            ranges: None,
            ports: Some(vec![443]),
        }),
        qos_profile: "QOS_L".into(),
        duration: 600,
        notification: sink.map(|sink| NotificationTarget {
            url: sink.url(),
            token: SecretString::from(SINK_TOKEN),
            token_expires_at: Timestamp::now() + 2.hours(),
        }),
    }
}

fn camara(sim: &RunningSimulator, base_path: &str, version: ApiVersion) -> CamaraClient {
    let mut config = CamaraConfig::new(format!("{}{base_path}", sim.base_url()));
    config.version = version;
    CamaraClient::new(config).unwrap()
}

/// A notification receiver on 127.0.0.1 that keeps the `Authorization` of every call.
struct Sink {
    addr: SocketAddr,
    authorizations: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start() -> Self {
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let seen = authorizations.clone();
        let app = Router::new().fallback(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                let value = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push(value);
                StatusCode::NO_CONTENT
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            authorizations,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/notifications/uid-1", self.addr)
    }

    fn authorizations(&self) -> Vec<String> {
        self.authorizations.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The simulator's test control (`/_sim/...`).
struct Control {
    base: String,
    http: reqwest::Client,
}

impl Control {
    fn of(sim: &RunningSimulator) -> Self {
        Self {
            base: format!("{}/_sim", sim.base_url()),
            http: qod_test_support::http::client(),
        }
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "GET {path}");
        response.json().await.unwrap()
    }

    async fn sessions(&self) -> Vec<Value> {
        serde_json::from_value(self.get("/sessions").await).unwrap()
    }

    async fn stats(&self) -> Value {
        self.get("/stats").await
    }

    /// How many `operation` requests the simulator answered with `status`.
    async fn answered(&self, operation: &str, status: u16) -> u64 {
        self.stats().await["apiRequests"][operation][status.to_string()]
            .as_u64()
            .unwrap_or(0)
    }

    async fn set_faults(&self, faults: Value) {
        let response = self
            .http
            .put(format!("{}/faults", self.base))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "PUT /faults {faults}");
    }

    async fn revoke_tokens(&self) -> u64 {
        let response = self
            .http
            .post(format!("{}/tokens/revoke", self.base))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        body["revoked"].as_u64().unwrap()
    }
}

/// Create, read, extend, find, delete, and the 404s after it, on one client.
async fn full_lifecycle(client: &dyn SessionApi, control: &Control, sink: &Sink) -> String {
    let created = client.create_session(&request(Some(sink))).await.unwrap();
    assert_eq!(created.qos_status, QosStatus::Available);
    assert_eq!(created.duration, Some(600));
    assert!(created.started_at.is_some() && created.expires_at.is_some());
    let id = created.session_id.clone();

    let read = client.get_session(&id).await.unwrap();
    assert_eq!(read.session_id, id);
    assert_eq!(read.qos_profile.as_deref(), Some("QOS_L"));

    let extended = client.extend_session(&id, 300).await.unwrap();
    assert_eq!(extended.duration, Some(900));
    assert_eq!(
        extended.expires_at.unwrap().as_second() - created.expires_at.unwrap().as_second(),
        300
    );

    // The provider got the notification target and calls it with the session's token.
    let held = control.sessions().await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["sink"], sink.url());
    assert_eq!(held[0]["sinkAuthorization"], true);
    let expected = format!("Bearer {SINK_TOKEN}");
    eventually("the AVAILABLE notification", WAIT, || async {
        sink.authorizations().contains(&expected).then_some(())
    })
    .await;
    assert!(sink.authorizations().iter().all(|a| *a == expected));

    client.delete_session(&id).await.unwrap();
    assert!(client.get_session(&id).await.unwrap_err().is_not_found());
    assert!(client.delete_session(&id).await.unwrap_err().is_not_found());
    id
}

#[tokio::test]
async fn every_operation_on_v1() {
    let sim = start(available_at_once()).await;
    let control = Control::of(&sim);
    let sink = Sink::start().await;
    let client = camara(&sim, "/quality-on-demand/v1", ApiVersion::V1);

    let created = client.create_session(&request(None)).await.unwrap();
    let found = client.sessions_of_device(&device()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].session_id, created.session_id);
    client.delete_session(&created.session_id).await.unwrap();
    assert!(
        client
            .sessions_of_device(&device())
            .await
            .unwrap()
            .is_empty()
    );

    full_lifecycle(&client, &control, &sink).await;
    let held = Control::of(&sim).get("/sessions?removed=true").await;
    assert!(
        held.as_array()
            .unwrap()
            .iter()
            .all(|s| s["apiVersion"] == "v1")
    );
}

#[tokio::test]
async fn every_operation_on_v0_11() {
    let sim = start(available_at_once()).await;
    let control = Control::of(&sim);
    let sink = Sink::start().await;
    let client = camara(&sim, "/quality-on-demand/v0.11", ApiVersion::V0_11);

    let created = client.create_session(&request(None)).await.unwrap();
    // v0.11 echoes the whole device.
    assert_eq!(created.device, Some(device()));
    let found = client.sessions_of_device(&device()).await.unwrap();
    assert_eq!(found.len(), 1);
    client.delete_session(&created.session_id).await.unwrap();

    full_lifecycle(&client, &control, &sink).await;
}

#[tokio::test]
async fn every_operation_on_v0_10() {
    let sim = start(available_at_once()).await;
    let control = Control::of(&sim);
    let sink = Sink::start().await;
    let client = camara(&sim, "/qod/v0", ApiVersion::V0_10);

    // Epoch-second timestamps parse like RFC 3339 ones.
    let created = client.create_session(&request(None)).await.unwrap();
    assert!(created.expires_at.unwrap() > created.started_at.unwrap());
    client.delete_session(&created.session_id).await.unwrap();

    let err = client.sessions_of_device(&device()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                operation: Operation::RetrieveSessions,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(control.answered("retrieve_sessions", 200).await, 0);

    let id = full_lifecycle(&client, &control, &sink).await;
    let held = control.get("/sessions?removed=true").await;
    let session = held
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sessionId"] == id.as_str())
        .unwrap();
    assert_eq!(session["apiVersion"], "v0.10");
}

#[tokio::test]
async fn every_operation_in_the_nac_flavour() {
    let sim = start(simulator::SimulatorConfig {
        api_key: Some(SecretString::from("nac-application-key")),
        ..available_at_once()
    })
    .await;
    let control = Control::of(&sim);
    let sink = Sink::start().await;
    let nac = |key: &str| {
        NacClient::new(NacConfig {
            base_url: sim.base_url().to_owned(),
            ..NacConfig::new(SecretSource::Value(SecretString::from(key)))
        })
        .unwrap()
    };
    let client = nac("nac-application-key");

    // No sessions: Nokia's 404 reads as an empty list.
    assert!(
        client
            .sessions_of_device(&device())
            .await
            .unwrap()
            .is_empty()
    );
    let created = client.create_session(&request(None)).await.unwrap();
    assert_eq!(client.sessions_of_device(&device()).await.unwrap().len(), 1);
    client.delete_session(&created.session_id).await.unwrap();

    full_lifecycle(&client, &control, &sink).await;
    let held = control.get("/sessions?removed=true").await;
    assert!(
        held.as_array()
            .unwrap()
            .iter()
            .all(|s| s["flavour"] == "nac" && s["apiVersion"] == "v1"),
        "{held}"
    );

    // Nokia's own error bodies: `{"detail": ..}` for a 404, the gateway's `{"message": ..}`.
    let err = client.get_session(UNKNOWN_SESSION).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(err.info().unwrap().message.contains("not found"), "{err}");
    let err = nac("wrong-key")
        .get_session(UNKNOWN_SESSION)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.info().unwrap().code, "PERMISSION_DENIED");
    assert_eq!(err.info().unwrap().message, "Invalid API key.");
}

#[tokio::test]
async fn provider_refusals_keep_their_status_and_code() {
    let sim = start(available_at_once()).await;
    let client = camara(&sim, "/quality-on-demand/v1", ApiVersion::V1);

    let err = client.get_session(UNKNOWN_SESSION).await.unwrap_err();
    assert!(err.is_not_found() && !err.is_retryable(), "{err:?}");

    // 409: a second session over the same flow.
    client.create_session(&request(None)).await.unwrap();
    let err = client.create_session(&request(None)).await.unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(err.info().unwrap().code, "CONFLICT");
    assert!(!err.is_retryable());

    // 400: longer than the profile allows.
    let mut too_long = request(None);
    too_long.qos_profile = "QOS_E".into();
    too_long.duration = 7200;
    too_long.device.phone_number = Some("+36721601234568".into());
    too_long.device.ipv4_address = None;
    let err = client.create_session(&too_long).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(
        err.info().unwrap().code,
        "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE"
    );
    assert!(!err.is_retryable());

    // 422: a profile that is not ACTIVE, and a missing device (two-legged token).
    let mut inactive = too_long.clone();
    inactive.qos_profile = "QOS_MAINTENANCE".into();
    inactive.duration = 60;
    let err = client.create_session(&inactive).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert_eq!(
        err.info().unwrap().code,
        "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE"
    );
    let mut no_device = request(None);
    no_device.device = Device::default();
    let err = client.create_session(&no_device).await.unwrap_err();
    assert_eq!(err.status(), Some(422));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn extending_a_session_that_is_not_available_is_refused_per_version() {
    let sim = start(simulator::SimulatorConfig {
        available_after: Duration::from_secs(3600),
        ..simulator::SimulatorConfig::default()
    })
    .await;
    let v1 = camara(&sim, "/quality-on-demand/v1", ApiVersion::V1);
    let pending = v1.create_session(&request(None)).await.unwrap();
    assert_eq!(pending.qos_status, QosStatus::Requested);
    assert_eq!(pending.started_at, None);
    let err = v1
        .extend_session(&pending.session_id, 60)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(
        err.info().unwrap().code,
        "QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED"
    );
    v1.delete_session(&pending.session_id).await.unwrap();

    // v0.10 says "inactive" with a 400.
    let v010 = camara(&sim, "/qod/v0", ApiVersion::V0_10);
    let pending = v010.create_session(&request(None)).await.unwrap();
    let err = v010
        .extend_session(&pending.session_id, 60)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
}

#[tokio::test]
async fn rate_limits_and_outages_carry_retry_after_and_a_create_is_sent_once() {
    let sim = start(available_at_once()).await;
    let control = Control::of(&sim);
    let client = camara(&sim, "/quality-on-demand/v1", ApiVersion::V1);

    control
        .set_faults(json!({"rateLimitRate": 1.0, "retryAfterSeconds": 7}))
        .await;
    let err = client.create_session(&request(None)).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(control.answered("create", 429).await, 1, "not re-sent");
    let err = client.get_session(UNKNOWN_SESSION).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));

    control
        .set_faults(json!({"errorRate": 1.0, "retryAfterSeconds": 3}))
        .await;
    let err = client.create_session(&request(None)).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.info().unwrap().code, "UNAVAILABLE");
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(control.answered("create", 503).await, 1, "not re-sent");

    control.set_faults(json!({})).await;
    client.create_session(&request(None)).await.unwrap();
}

#[tokio::test]
async fn a_create_without_answer_is_outcome_unknown() {
    let sim = start(available_at_once()).await;
    let control = Control::of(&sim);
    let mut config = CamaraConfig::new(format!("{}/quality-on-demand/v1", sim.base_url()));
    config.timeouts = Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_millis(300),
    };
    let client = CamaraClient::new(config).unwrap();
    control.set_faults(json!({"latencyMs": 3000})).await;

    let err = client.create_session(&request(None)).await.unwrap_err();
    assert!(matches!(err, Error::CreateOutcomeUnknown { .. }), "{err:?}");
    assert!(err.may_have_created() && !err.is_retryable());
    let err = client.get_session(UNKNOWN_SESSION).await.unwrap_err();
    assert!(matches!(err, Error::NoAnswer { .. }) && err.is_retryable());

    // The recovery the controller performs: look the device up instead of creating again.
    control.set_faults(json!({})).await;
    let held = client.sessions_of_device(&device()).await.unwrap();
    assert!(held.len() <= 1, "{held:?}");
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_call_succeeds() {
    // A secret with characters that RFC 6749's form-encoding changes.
    let secret = "s3cr3t/with+chars=";
    let sim = start(simulator::SimulatorConfig {
        require_auth: true,
        client_credentials: Some(simulator::ClientCredentials {
            client_id: "operator-1".into(),
            client_secret: SecretString::from(secret),
        }),
        ..available_at_once()
    })
    .await;
    let control = Control::of(&sim);
    let secret_file =
        std::env::temp_dir().join(format!("qod-client-secret-{}", uuid::Uuid::new_v4()));
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let client_with = |method: ClientAuthMethod| {
        let mut credentials = ClientCredentials::new(
            format!("{}/oauth/token", sim.base_url()),
            "operator-1",
            SecretSource::File(secret_file.clone()),
        );
        credentials.client_auth = method;
        let mut config = CamaraConfig::new(format!("{}/quality-on-demand/v1", sim.base_url()));
        config.auth = CamaraAuth::ClientCredentials(credentials);
        CamaraClient::new(config).unwrap()
    };
    let client = client_with(ClientAuthMethod::Basic);

    let created = client.create_session(&request(None)).await.unwrap();
    client.get_session(&created.session_id).await.unwrap();
    assert_eq!(
        control.stats().await["tokensIssued"],
        1,
        "one token, cached"
    );

    assert_eq!(control.revoke_tokens().await, 1);
    client.get_session(&created.session_id).await.unwrap();
    let stats = control.stats().await;
    assert_eq!(stats["tokensIssued"], 2, "exactly one refresh");
    assert_eq!(stats["apiRequests"]["get"]["401"], 1);
    assert_eq!(stats["apiRequests"]["get"]["200"], 2);

    // The same with the credentials in the form body.
    let form_client = client_with(ClientAuthMethod::RequestBody);
    form_client.get_session(&created.session_id).await.unwrap();
    assert_eq!(control.stats().await["tokensIssued"], 3);

    // A wrong secret is the token endpoint's refusal, not the API's.
    std::fs::write(&secret_file, "wrong\n").unwrap();
    let err = client_with(ClientAuthMethod::Basic)
        .get_session(&created.session_id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Token { status: 401, .. }), "{err:?}");
    assert!(!err.to_string().contains("wrong"), "{err}");
    std::fs::remove_file(&secret_file).unwrap();
}

#[tokio::test]
async fn a_static_bearer_token_is_accepted_and_a_wrong_one_refused_once() {
    let sim = start(simulator::SimulatorConfig {
        require_auth: true,
        bearer_token: Some(SecretString::from("static-bearer-token")),
        ..available_at_once()
    })
    .await;
    let control = Control::of(&sim);
    let with_token = |token: &str| {
        let mut config = CamaraConfig::new(format!("{}/quality-on-demand/v1", sim.base_url()));
        config.auth = CamaraAuth::Bearer(SecretSource::Value(SecretString::from(token)));
        CamaraClient::new(config).unwrap()
    };
    with_token("static-bearer-token")
        .create_session(&request(None))
        .await
        .unwrap();
    let err = with_token("not-the-token")
        .create_session(&request(None))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.info().unwrap().code, "UNAUTHENTICATED");
    assert_eq!(
        control.answered("create", 401).await,
        1,
        "an unchanged static token is not sent twice"
    );
}
