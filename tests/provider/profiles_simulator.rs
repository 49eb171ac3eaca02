//! The QoS Profiles client against the simulator over HTTP: every filter, 404, the credential
//! check, the counters, and `/_sim/profiles` changing what both the QoS Profiles API and the
//! QoD API answer (a profile added, deprecated, removed; its durations enforced).

use std::time::Duration;

use qod_operator::{
    qod::{
        BitRate, CamaraAuth, CamaraClient, CamaraConfig, CamaraProfilesClient, Device, DurationFit,
        Error, ProfileApi, ProfileFilter, ProfileStatus, QosProfile, SecretSource, SessionApi,
        SessionRequest,
    },
    simulator::{self, RunningSimulator},
};
use qod_test_support::simulator::provider_calls;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};

const TOKEN: &str = "profiles-static-token";
const BUILT_IN: usize = 10;

async fn start() -> RunningSimulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    simulator::spawn(
        listener,
        simulator::SimulatorConfig {
            available_after: Duration::ZERO,
            require_auth: true,
            bearer_token: Some(SecretString::from(TOKEN)),
            ..simulator::SimulatorConfig::default()
        },
    )
    .await
    .unwrap()
}

fn provider(sim: &RunningSimulator, token: &str) -> CamaraConfig {
    let mut config = CamaraConfig::new(format!("{}/quality-on-demand/v1", sim.base_url()));
    config.auth = CamaraAuth::Bearer(SecretSource::Value(SecretString::from(token)));
    config
}

fn profiles(sim: &RunningSimulator, token: &str) -> CamaraProfilesClient {
    CamaraProfilesClient::for_provider(
        &provider(sim, token),
        &format!("{}/qos-profiles/v1", sim.base_url()),
    )
    .unwrap()
}

fn sessions(sim: &RunningSimulator) -> CamaraClient {
    CamaraClient::new(provider(sim, TOKEN)).unwrap()
}

fn device(n: u32) -> Device {
    Device {
        phone_number: Some(format!("+3672160{n:07}")),
        ..Device::default()
    }
}

/// A session for a device of its own (`n`), so sessions never overlap.
fn session(n: u32, profile: &str, duration: u32) -> SessionRequest {
    let mut request =
        crate::simulator_prism::request(&format!("+3672160{n:07}"), profile, duration);
    // Its IPv4 identity is the same for every phone number: the flows would overlap.
    request.device.ipv4_address = None;
    request
}

fn names(profiles: &[QosProfile]) -> Vec<&str> {
    profiles.iter().map(|p| p.name.as_str()).collect()
}

async fn control(
    sim: &RunningSimulator,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request =
        qod_test_support::http::client().request(method, format!("{}/_sim{path}", sim.base_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The refusal of a create: its status and CAMARA code.
async fn refusal(qod: &CamaraClient, n: u32, profile: &str, duration: u32) -> (u16, String) {
    let err = qod
        .create_session(&session(n, profile, duration))
        .await
        .unwrap_err();
    (
        err.status().unwrap_or_default(),
        err.info().map(|i| i.code.clone()).unwrap_or_default(),
    )
}

/// `PUT /_sim/profiles/{name}/status`.
async fn set_status(sim: &RunningSimulator, name: &str, status: &str) -> StatusCode {
    let path = format!("/profiles/{name}/status");
    let body = json!({ "status": status });
    control(sim, reqwest::Method::PUT, &path, Some(body))
        .await
        .0
}

#[tokio::test]
async fn every_filter_is_honoured_and_figures_arrive_in_their_units() {
    let sim = start().await;
    let client = profiles(&sim, TOKEN);

    let all = client
        .retrieve_profiles(&ProfileFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), BUILT_IN, "{:?}", names(&all));
    let qos_e = all.iter().find(|p| p.name == "QOS_E").unwrap();
    assert!(qos_e.is_usable());
    assert_eq!(qos_e.min_duration_seconds, Some(1));
    assert_eq!(qos_e.max_duration_seconds, Some(3_600), "1 Hours");
    assert_eq!(qos_e.max_downstream_rate, Some(BitRate(10_000_000)));
    assert_eq!(qos_e.max_upstream_rate, Some(BitRate(5_000_000)));
    assert_eq!(qos_e.packet_delay_budget, Some(Duration::from_millis(10)));
    assert_eq!(qos_e.jitter, Some(Duration::from_millis(5)));
    assert_eq!(qos_e.duration_fit(7_200), DurationFit::AboveMaximum(3_600));
    let qos_l = all.iter().find(|p| p.name == "QOS_L").unwrap();
    assert_eq!(qos_l.max_duration_seconds, Some(86_400), "1 Days");
    assert_eq!(qos_l.max_downstream_rate.unwrap().to_string(), "1 Gbps");

    let by_name = ProfileFilter {
        name: Some("QOS_M".into()),
        ..ProfileFilter::default()
    };
    assert_eq!(
        names(&client.retrieve_profiles(&by_name).await.unwrap()),
        ["QOS_M"]
    );
    for (status, expected) in [
        (ProfileStatus::Deprecated, vec!["QOS_LEGACY"]),
        (ProfileStatus::Inactive, vec!["QOS_MAINTENANCE"]),
    ] {
        let filter = ProfileFilter {
            status: Some(status),
            ..ProfileFilter::default()
        };
        assert_eq!(
            names(&client.retrieve_profiles(&filter).await.unwrap()),
            expected
        );
    }
    let active = ProfileFilter {
        status: Some(ProfileStatus::Active),
        ..ProfileFilter::default()
    };
    let active = client.retrieve_profiles(&active).await.unwrap();
    assert_eq!(active.len(), BUILT_IN - 2);
    assert!(active.iter().all(QosProfile::is_usable));
    let name_and_other_status = ProfileFilter {
        name: Some("QOS_M".into()),
        status: Some(ProfileStatus::Deprecated),
        ..ProfileFilter::default()
    };
    assert!(
        client
            .retrieve_profiles(&name_and_other_status)
            .await
            .unwrap()
            .is_empty()
    );
    // Every profile is available to every device of the simulator.
    let for_device = ProfileFilter {
        device: Some(device(1)),
        ..ProfileFilter::default()
    };
    assert_eq!(
        client.retrieve_profiles(&for_device).await.unwrap().len(),
        BUILT_IN
    );
    let bad_device = ProfileFilter {
        device: Some(Device {
            phone_number: Some("0036".into()),
            ..Device::default()
        }),
        ..ProfileFilter::default()
    };
    let refused = client.retrieve_profiles(&bad_device).await.unwrap_err();
    assert_eq!(refused.status(), Some(400), "{refused}");
    assert!(
        refused.info().unwrap().message.contains("phoneNumber"),
        "{refused}"
    );

    let legacy = client.get_profile("QOS_LEGACY").await.unwrap();
    assert_eq!(legacy.status, ProfileStatus::Deprecated);
    let missing = client.get_profile("QOS_NOPE").await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert_eq!(missing.info().unwrap().code, "NOT_FOUND");

    let (_, stats) = control(&sim, reqwest::Method::GET, "/stats", None).await;
    assert_eq!(provider_calls(&stats, "retrieve_qos_profiles"), 8);
    assert_eq!(provider_calls(&stats, "get_qos_profile"), 2);
    assert_eq!(stats["apiRequests"]["get_qos_profile"]["404"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_profiles_api_checks_credentials_like_the_sessions_api() {
    let sim = start().await;
    let stranger = profiles(&sim, "not-the-token");
    let refused = stranger.get_profile("QOS_E").await.unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
    assert_eq!(refused.info().unwrap().code, "UNAUTHENTICATED");
    let refused = stranger
        .retrieve_profiles(&ProfileFilter::default())
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused}");
    assert!(!refused.to_string().contains("not-the-token"));
    // Network as Code clients (RapidAPI key) find no such API.
    let nac = qod_test_support::http::client()
        .get(format!(
            "{}/qos-profiles/v1/qos-profiles/QOS_E",
            sim.base_url()
        ))
        .header("x-rapidapi-key", "k")
        .send()
        .await
        .unwrap();
    assert_eq!(nac.status(), StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

#[tokio::test]
async fn profiles_changed_at_the_simulator_change_both_apis() {
    let sim = start().await;
    let client = profiles(&sim, TOKEN);
    let qod = sessions(&sim);
    let put = reqwest::Method::PUT;

    // A new profile, in units the client must convert: sessions of 2 to 90 minutes.
    let (status, created) = control(
        &sim,
        put.clone(),
        "/profiles/QOS_NEW",
        Some(json!({
            "status": "ACTIVE",
            "description": "added at run time",
            "minDuration": {"value": 2, "unit": "Minutes"},
            "maxDuration": {"value": 90, "unit": "Minutes"},
            "maxDownstreamRate": {"value": 300, "unit": "kbps"},
            "jitter": {"value": 1500, "unit": "Microseconds"},
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "QOS_NEW");
    let new = client.get_profile("QOS_NEW").await.unwrap();
    assert_eq!(new.min_duration_seconds, Some(120));
    assert_eq!(new.max_duration_seconds, Some(5_400));
    assert_eq!(new.max_downstream_rate, Some(BitRate(300_000)));
    assert_eq!(new.jitter, Some(Duration::from_micros(1_500)));
    let all = client
        .retrieve_profiles(&ProfileFilter::default())
        .await
        .unwrap();
    assert_eq!(all.len(), BUILT_IN + 1);

    // The sessions API enforces the new profile's limits.
    for (n, duration) in [(1, 119), (2, 5_401)] {
        assert_eq!(
            refusal(&qod, n, "QOS_NEW", duration).await,
            (400, "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE".into()),
            "{duration}"
        );
    }
    let running = qod
        .create_session(&session(3, "QOS_NEW", 600))
        .await
        .unwrap();

    // Deprecated: listed as such, refused for new sessions, the running one untouched.
    assert_eq!(
        set_status(&sim, "QOS_NEW", "DEPRECATED").await,
        StatusCode::OK
    );
    let deprecated = ProfileFilter {
        status: Some(ProfileStatus::Deprecated),
        ..ProfileFilter::default()
    };
    assert_eq!(
        names(&client.retrieve_profiles(&deprecated).await.unwrap()),
        ["QOS_LEGACY", "QOS_NEW"]
    );
    assert_eq!(
        refusal(&qod, 4, "QOS_NEW", 600).await,
        (422, "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE".into())
    );
    qod.get_session(&running.session_id).await.unwrap();

    // A built-in profile made INACTIVE, then ACTIVE again.
    for (status, expected) in [("INACTIVE", Some(422)), ("ACTIVE", None)] {
        assert_eq!(set_status(&sim, "QOS_S", status).await, StatusCode::OK);
        let result = qod.create_session(&session(5, "QOS_S", 600)).await;
        assert_eq!(
            result.as_ref().err().and_then(Error::status),
            expected,
            "{status}"
        );
    }

    // Removed: gone from both APIs; the running session keeps its profile.
    let (status, _) = control(&sim, reqwest::Method::DELETE, "/profiles/QOS_NEW", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        client
            .get_profile("QOS_NEW")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let err = qod
        .create_session(&session(6, "QOS_NEW", 600))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(
        err.info().unwrap().message.contains("unknown QoS profile"),
        "{err}"
    );
    let kept = qod.get_session(&running.session_id).await.unwrap();
    assert_eq!(kept.qos_profile.as_deref(), Some("QOS_NEW"));
    let (status, _) = control(&sim, reqwest::Method::DELETE, "/profiles/QOS_NEW", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Replacing a built-in profile changes its limits: QOS_E sessions up to two hours.
    let (status, _) = control(
        &sim,
        put.clone(),
        "/profiles/QOS_E",
        Some(json!({"name": "QOS_E", "status": "ACTIVE", "maxDuration": {"value": 2, "unit": "Hours"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    qod.create_session(&session(7, "QOS_E", 7_200))
        .await
        .unwrap();
    assert_eq!(
        client
            .get_profile("QOS_E")
            .await
            .unwrap()
            .max_duration_seconds,
        Some(7_200)
    );

    // Malformed changes are refused and change nothing.
    for (path, body) in [
        ("/profiles/QOS_BAD", json!({"status": "RETIRED"})),
        (
            "/profiles/QOS_BAD",
            json!({"name": "QOS_OTHER", "status": "ACTIVE"}),
        ),
        (
            "/profiles/QOS_BAD",
            json!({"status": "ACTIVE", "maxDuration": {"value": 1, "unit": "Weeks"}}),
        ),
        ("/profiles/QOS_E/status", json!({"status": "GONE"})),
    ] {
        let (status, answer) = control(&sim, put.clone(), path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
    }
    assert_eq!(
        set_status(&sim, "QOS_NONE", "ACTIVE").await,
        StatusCode::NOT_FOUND
    );

    // A reset restores the built-in set.
    let (status, _) = control(&sim, reqwest::Method::POST, "/reset", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, listed) = control(&sim, reqwest::Method::GET, "/profiles", None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(BUILT_IN));
    assert_eq!(
        client
            .get_profile("QOS_E")
            .await
            .unwrap()
            .max_duration_seconds,
        Some(3_600)
    );
    sim.shutdown().await;
}
