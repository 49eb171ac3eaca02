//! Our CAMARA client against Prism serving the official OpenAPI file of each version it speaks:
//! Prism validates every request (body, headers, path parameters, security) and any violation it
//! reports fails the test. The answers are the spec's own examples, so parsing them is tested too.

use std::path::PathBuf;

use jiff::{Timestamp, ToSpan};
use qod_operator::qod::{
    ApplicationServer, Device, DeviceIpv4Address, NotificationTarget, PortRange, PortsSpec,
    QosStatus, SessionApi, SessionRequest,
    camara::{ApiVersion, CamaraAuth, CamaraClient, CamaraConfig},
    credentials::SecretSource,
    error::Error,
};
use qod_test_support::{prism::Prism, tools::camara_spec};
use secrecy::SecretString;

/// The spec's example session id; Prism checks path parameters against `format: uuid`.
const SESSION_ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";

pub(crate) fn request() -> SessionRequest {
    SessionRequest {
        device: Device {
            phone_number: Some("+36721601234567".into()),
            ipv4_address: Some(DeviceIpv4Address {
                public_address: "203.0.113.10".into(),
                private_address: None,
                public_port: Some(5060),
            }),
            ..Device::default()
        },
        application_server: ApplicationServer {
            ipv4_address: Some("198.51.100.0/24".into()),
            ipv6_address: None,
        },
        device_ports: Some(PortsSpec {
            ranges: Some(vec![PortRange {
                from: 5000,
                to: 5010,
            }]),
            ports: Some(vec![5060]),
        }),
        application_server_ports: Some(PortsSpec {
            ranges: None,
            ports: Some(vec![443]),
        }),
        qos_profile: "QOS_L".into(),
        duration: 3600,
        notification: Some(NotificationTarget {
            // Prism fires the spec's callback at the sink. `.localhost` is the reserved loopback
            // name (RFC 6761), so nothing outside is called; a hostname is needed because
            // v0.11's `format: url` refuses IP literals of private ranges.
            url: "https://qod-operator.localhost:8443/notifications/0b7e9f0e-6c1a-4a55-9f3d-2d9c1b8e4a10"
                .into(),
            token: SecretString::from(
                "7d1c0a9e5b3f4e2d8c6b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d",
            ),
            token_expires_at: Timestamp::now() + 2.hours(),
        }),
    }
}

fn client(prism: &Prism, version: ApiVersion) -> CamaraClient {
    let mut config = CamaraConfig::new(prism.url());
    config.version = version;
    config.auth = CamaraAuth::Bearer(SecretSource::Value(SecretString::from("prism-accepts-any")));
    CamaraClient::new(config).expect("client builds")
}

/// Unwraps a client result; on error, shows what Prism objected to.
fn ok<T>(prism: &Prism, what: &str, result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}\nPrism violations: {:#?}", prism.violations()))
}

/// Runs every operation the version has and checks the parsed example answers.
async fn exercise(spec: PathBuf, version: ApiVersion) {
    let prism = Prism::mock(&spec).await;
    let client = client(&prism, version);

    let created = ok(&prism, "create", client.create_session(&request()).await);
    assert!(!created.session_id.is_empty());
    assert!(matches!(
        created.qos_status,
        QosStatus::Requested | QosStatus::Available
    ));

    let read = ok(&prism, "get", client.get_session(SESSION_ID).await);
    assert!(!read.session_id.is_empty());

    let extended = ok(
        &prism,
        "extend",
        client.extend_session(SESSION_ID, 600).await,
    );
    assert!(extended.duration.is_some());

    ok(&prism, "delete", client.delete_session(SESSION_ID).await);

    match version {
        ApiVersion::V0_10 => assert!(matches!(
            client.sessions_of_device(&request().device).await,
            Err(Error::Unsupported { .. })
        )),
        _ => {
            let sessions = ok(
                &prism,
                "retrieve sessions",
                client.sessions_of_device(&request().device).await,
            );
            assert!(sessions.iter().all(|s| !s.session_id.is_empty()));
        }
    }

    prism.assert_no_violations();
}

#[tokio::test]
async fn v1_1_requests_are_valid() {
    exercise(camara_spec("camara-qod-v1.1.0.yaml"), ApiVersion::V1).await;
}

#[tokio::test]
async fn v1_0_requests_are_valid() {
    exercise(camara_spec("camara-qod-v1.0.0.yaml"), ApiVersion::V1).await;
}

#[tokio::test]
async fn v0_11_requests_are_valid() {
    exercise(camara_spec("camara-qod-v0.11.1.yaml"), ApiVersion::V0_11).await;
}

#[tokio::test]
async fn v0_10_requests_are_valid() {
    exercise(camara_spec("camara-qod-v0.10.1.yaml"), ApiVersion::V0_10).await;
}

/// The harness must be able to fail: a request the spec forbids is reported.
#[tokio::test]
async fn an_invalid_request_is_reported_as_a_violation() {
    let prism = Prism::mock(&camara_spec("camara-qod-v1.1.0.yaml")).await;
    let answer = qod_test_support::http::client()
        .post(format!("{}/sessions", prism.url()))
        .bearer_auth("x")
        .json(&serde_json::json!({"applicationServer": {}, "qosProfile": "Q", "duration": 0}))
        .send()
        .await
        .expect("prism answers");
    assert!(answer.status().is_client_error());
    let violations = prism.violations();
    assert!(
        violations.iter().any(|v| v.contains("qosProfile"))
            && violations.iter().any(|v| v.contains("duration")),
        "{violations:#?}"
    );
}
