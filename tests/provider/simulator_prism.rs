//! The simulator behind `prism proxy --errors` with the official v1.1 OpenAPI file: every endpoint
//! is driven, on its happy path and on each error it documents, and any request or response the
//! spec does not allow fails the test. The client under the requests is our own CAMARA client.

use std::time::Duration;

use jiff::{Timestamp, ToSpan};
use qod_operator::{
    qod::{
        ApplicationServer, Device, DeviceIpv4Address, NotificationTarget, QosStatus, SessionApi,
        SessionRequest,
        camara::{ApiVersion, CamaraAuth, CamaraClient, CamaraConfig},
        credentials::SecretSource,
    },
    simulator::{self, SimulatorConfig},
};
use qod_test_support::{eventually, prism::Prism, tools::camara_spec};
use secrecy::SecretString;

const TOKEN: &str = "simulator-static-token";

pub(crate) fn request(phone: &str, profile: &str, duration: u32) -> SessionRequest {
    SessionRequest {
        device: Device {
            phone_number: Some(phone.into()),
            ipv4_address: Some(DeviceIpv4Address {
                public_address: "203.0.113.10".into(),
                private_address: None,
                public_port: Some(5060),
            }),
            ..Device::default()
        },
        application_server: ApplicationServer {
            ipv4_address: Some("198.51.100.7".into()),
            ipv6_address: None,
        },
        device_ports: None,
        application_server_ports: None,
        qos_profile: profile.into(),
        duration,
        notification: Some(NotificationTarget {
            // v1.1 demands https sinks; `.localhost` keeps the simulator's deliveries local.
            url: "https://qod-operator.localhost:8443/notifications/7f9d3c1e-2b4a-4d6e-8f0a-1c2b3d4e5f60"
                .into(),
            token: SecretString::from("0123456789abcdef0123456789abcdef"),
            token_expires_at: Timestamp::now() + 2.hours(),
        }),
    }
}

#[tokio::test]
async fn v1_endpoints_answer_as_the_v1_1_spec_allows() {
    drive(
        "camara-qod-v1.1.0.yaml",
        "quality-on-demand/v1",
        ApiVersion::V1,
    )
    .await;
}

#[tokio::test]
async fn v0_11_endpoints_answer_as_the_v0_11_spec_allows() {
    drive(
        "camara-qod-v0.11.1.yaml",
        "quality-on-demand/v0.11",
        ApiVersion::V0_11,
    )
    .await;
}

#[tokio::test]
async fn v0_10_endpoints_answer_as_the_v0_10_spec_allows() {
    drive("camara-qod-v0.10.1.yaml", "qod/v0", ApiVersion::V0_10).await;
}

/// Drives every endpoint of one API version through a validating proxy of that version's spec.
async fn drive(spec: &str, base_path: &str, version: ApiVersion) {
    let mut config = SimulatorConfig {
        available_after: Duration::from_millis(300),
        bearer_token: Some(SecretString::from(TOKEN)),
        ..SimulatorConfig::default()
    };
    config.notification_retry.attempts = 1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = simulator::spawn(listener, config).await.unwrap();
    let prism = Prism::proxy(
        &camara_spec(spec),
        &format!("{}/{base_path}", sim.base_url()),
    )
    .await;
    let client = {
        let mut config = CamaraConfig::new(prism.url());
        config.version = version;
        config.auth = CamaraAuth::Bearer(SecretSource::Value(SecretString::from(TOKEN)));
        CamaraClient::new(config).unwrap()
    };

    let created = client
        .create_session(&request("+36721601234567", "QOS_L", 600))
        .await
        .unwrap();
    assert_eq!(created.qos_status, QosStatus::Requested);

    // Extending before the network made it AVAILABLE: 409 SESSION_EXTENSION_NOT_ALLOWED
    // (v0.10 answers 400: the session is not active).
    let early = client
        .extend_session(&created.session_id, 60)
        .await
        .unwrap_err();
    let refused_extension = if version == ApiVersion::V0_10 {
        400
    } else {
        409
    };
    assert_eq!(early.status(), Some(refused_extension), "{early}");

    let available = eventually(
        "the session to become AVAILABLE",
        Duration::from_secs(5),
        || {
            let client = &client;
            let id = created.session_id.clone();
            async move {
                let info = client.get_session(&id).await.unwrap();
                (info.qos_status == QosStatus::Available).then_some(info)
            }
        },
    )
    .await;
    assert!(available.started_at.is_some() && available.expires_at.is_some());

    let extended = client
        .extend_session(&created.session_id, 60)
        .await
        .unwrap();
    assert_eq!(extended.duration, Some(660));

    // CAMARA v0.10 has no retrieve-sessions.
    if version != ApiVersion::V0_10 {
        let listed = client
            .sessions_of_device(&request("+36721601234567", "QOS_L", 600).device)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        let stranger_device = Device {
            phone_number: Some("+36721609999999".into()),
            ..Device::default()
        };
        let none = client.sessions_of_device(&stranger_device).await.unwrap();
        assert!(none.is_empty());
    }

    // The same device and server again: the flows overlap, 409 CONFLICT.
    let duplicate = client
        .create_session(&request("+36721601234567", "QOS_L", 600))
        .await
        .unwrap_err();
    assert_eq!(duplicate.status(), Some(409), "{duplicate}");

    // A profile the provider does not offer, and a duration above the profile's maximum (QOS_E
    // is sold in slots of at most one hour).
    let unknown_profile = client
        .create_session(&request("+36721601234568", "NO_SUCH_PROFILE", 600))
        .await
        .unwrap_err();
    assert!(
        matches!(unknown_profile.status(), Some(400 | 422)),
        "{unknown_profile}"
    );
    let too_long = client
        .create_session(&request("+36721601234568", "QOS_E", 7_200))
        .await
        .unwrap_err();
    assert_eq!(too_long.status(), Some(400), "{too_long}");

    // A token the provider does not know.
    let stranger = {
        let mut config = CamaraConfig::new(prism.url());
        config.auth = CamaraAuth::Bearer(SecretSource::Value(SecretString::from("wrong")));
        CamaraClient::new(config).unwrap()
    };
    let refused = stranger.get_session(&created.session_id).await.unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");

    // Rate limiting with Retry-After, injected at the simulator (v0.10 documents no 429).
    if version != ApiVersion::V0_10 {
        let control = qod_test_support::http::client();
        let faults = format!("{}/_sim/faults", sim.base_url());
        control
            .put(&faults)
            .json(&serde_json::json!({"rateLimitRate": 1.0, "retryAfterSeconds": 7}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let limited = client.get_session(&created.session_id).await.unwrap_err();
        assert_eq!(limited.status(), Some(429), "{limited}");
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
        control
            .put(&faults)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }

    client.delete_session(&created.session_id).await.unwrap();
    let gone = client.get_session(&created.session_id).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    let gone_again = client
        .delete_session(&created.session_id)
        .await
        .unwrap_err();
    assert!(gone_again.is_not_found(), "{gone_again}");

    prism.assert_no_violations();
    sim.shutdown().await;
}
