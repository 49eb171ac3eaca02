//! The QoS Profiles API against Prism with the official CAMARA files: our client's requests
//! against a mock of v1.1.0 (and v1.2.0-rc.3), whose example answer it must read; and the
//! simulator's answers behind `prism proxy --errors` with v1.1.0, on the happy paths and on each
//! error the spec documents that a valid request can meet (401, 404, 429).

use std::time::Duration;

use qod_operator::{
    qod::{
        BitRate, CamaraAuth, CamaraProfilesClient, Device, ProfileApi, ProfileFilter,
        ProfileStatus, SecretSource, Timeouts, error::Error,
    },
    simulator::{self, SimulatorConfig},
};
use qod_test_support::{prism::Prism, tools::camara_spec};
use secrecy::SecretString;

const TOKEN: &str = "simulator-static-token";

fn client(url: &str, token: &str) -> CamaraProfilesClient {
    CamaraProfilesClient::new(
        url,
        CamaraAuth::Bearer(SecretSource::Value(SecretString::from(token))),
        &Timeouts::default(),
    )
    .unwrap()
}

/// The device of the sessions client's Prism tests.
fn device() -> Device {
    crate::client_prism::request().device
}

/// Every filter the spec allows, alone and together.
fn filters() -> Vec<ProfileFilter> {
    vec![
        ProfileFilter::default(),
        ProfileFilter {
            device: Some(device()),
            ..ProfileFilter::default()
        },
        ProfileFilter {
            name: Some("QOS_L".into()),
            ..ProfileFilter::default()
        },
        ProfileFilter {
            status: Some(ProfileStatus::Deprecated),
            ..ProfileFilter::default()
        },
        ProfileFilter {
            device: Some(device()),
            name: Some("QOS_L".into()),
            status: Some(ProfileStatus::Active),
        },
    ]
}

/// Unwraps a client result; on error, shows what Prism objected to.
fn ok<T>(prism: &Prism, what: &str, result: Result<T, Error>) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}\nPrism violations: {:#?}", prism.violations()))
}

async fn requests_are_valid(spec: &str) {
    let prism = Prism::mock(&camara_spec(spec)).await;
    let client = client(&prism.url(), "prism-accepts-any");
    for filter in filters() {
        let listed = ok(&prism, "retrieve", client.retrieve_profiles(&filter).await);
        // The spec's example: `voice`, 100 kbps both ways, 1 to 10 days, 50 ms, 5 ms.
        let voice = listed.first().expect("the example list has an entry");
        assert_eq!(voice.name, "voice");
        assert_eq!(voice.status, ProfileStatus::Active);
        assert_eq!(voice.target_min_downstream_rate, Some(BitRate(100_000)));
        assert_eq!(voice.min_duration_seconds, Some(86_400));
        assert_eq!(voice.max_duration_seconds, Some(864_000));
        assert_eq!(voice.packet_delay_budget, Some(Duration::from_millis(50)));
        assert_eq!(voice.jitter, Some(Duration::from_millis(5)));
        assert_eq!(voice.packet_error_loss_rate, Some(3));
    }
    let one = ok(&prism, "get", client.get_profile("QOS_L").await);
    assert!(!one.name.is_empty());
    prism.assert_no_violations();
}

#[tokio::test]
async fn v1_1_requests_are_valid() {
    requests_are_valid("camara-qos-profiles-v1.1.0.yaml").await;
}

#[tokio::test]
async fn v1_2_rc_3_requests_are_valid() {
    requests_are_valid("camara-qos-profiles-v1.2.0-rc.3.yaml").await;
}

#[tokio::test]
async fn the_simulator_answers_as_the_v1_1_spec_allows() {
    let config = SimulatorConfig {
        require_auth: true,
        bearer_token: Some(SecretString::from(TOKEN)),
        ..SimulatorConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = simulator::spawn(listener, config).await.unwrap();
    let prism = Prism::proxy(
        &camara_spec("camara-qos-profiles-v1.1.0.yaml"),
        &format!("{}/qos-profiles/v1", sim.base_url()),
    )
    .await;
    let client = client(&prism.url(), TOKEN);

    for filter in filters() {
        let listed = ok(&prism, "retrieve", client.retrieve_profiles(&filter).await);
        if filter.name.is_none() && filter.status.is_none() {
            assert!(listed.len() >= 8, "{}", listed.len());
        }
    }
    let qos_e = ok(&prism, "get", client.get_profile("QOS_E").await);
    assert_eq!(qos_e.max_duration_seconds, Some(3_600));

    let missing = client.get_profile("QOS_NOPE").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    let stranger = self::client(&prism.url(), "wrong");
    for refused in [
        stranger.get_profile("QOS_E").await.unwrap_err(),
        stranger
            .retrieve_profiles(&ProfileFilter::default())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(refused.status(), Some(401), "{refused}");
    }

    // A run-time profile with every figure, in other units, is answered validly too.
    let control = qod_test_support::http::client();
    control
        .put(format!("{}/_sim/profiles/QOS_FULL", sim.base_url()))
        .json(&serde_json::json!({
            "status": "DEPRECATED",
            "description": "every figure",
            "targetMinUpstreamRate": {"value": 1, "unit": "bps"},
            "maxUpstreamRate": {"value": 2, "unit": "kbps"},
            "maxUpstreamBurstRate": {"value": 3, "unit": "Mbps"},
            "targetMinDownstreamRate": {"value": 4, "unit": "Gbps"},
            "maxDownstreamRate": {"value": 5, "unit": "Tbps"},
            "maxDownstreamBurstRate": {"value": 1024, "unit": "Tbps"},
            "minDuration": {"value": 1, "unit": "Days"},
            "maxDuration": {"value": 7, "unit": "Days"},
            "priority": 100,
            "packetDelayBudget": {"value": 900, "unit": "Microseconds"},
            "jitter": {"value": 1, "unit": "Nanoseconds"},
            "packetErrorLossRate": 10,
            "l4sQueueType": "l4s-queue",
            "serviceClass": "real_time_interactive",
        }))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let full = ok(&prism, "get", client.get_profile("QOS_FULL").await);
    assert_eq!(full.max_downstream_rate, Some(BitRate(5_000_000_000_000)));
    assert_eq!(full.max_duration_seconds, Some(604_800));
    assert_eq!(full.packet_delay_budget, Some(Duration::from_micros(900)));
    ok(
        &prism,
        "retrieve",
        client.retrieve_profiles(&ProfileFilter::default()).await,
    );

    // Rate limiting, injected at the simulator.
    let faults = format!("{}/_sim/faults", sim.base_url());
    control
        .put(&faults)
        .json(&serde_json::json!({"rateLimitRate": 1.0, "retryAfterSeconds": 4}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let limited = client.get_profile("QOS_E").await.unwrap_err();
    assert_eq!(limited.status(), Some(429), "{limited}");
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(4)));

    prism.assert_no_violations();
    sim.shutdown().await;
}
