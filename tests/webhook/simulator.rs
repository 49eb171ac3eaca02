//! End to end with the QoD simulator as the provider: a session created at the simulator with
//! the resource's sink and token notifies AVAILABLE, then the network's termination, and each
//! lands in the resource's status through the webhook, in every notification format the
//! simulator speaks (v1, v0.11, v0.10 and Nokia's hybrid on their own API paths). No controller
//! runs here: the test does the controller's part (record the session id in status).

use std::time::{Duration, Instant};

use qod_operator::{
    api::{
        QodSession,
        conditions::{self, READY, reason},
    },
    simulator::{self, RunningSimulator},
};
use serde_json::{Value, json};

use qod_test_support::{
    eventually,
    simulator::{Sim, deliveries_answered},
};

use crate::harness::Hook;

/// How long a notification may take to show in status (the issue's promise is "within a
/// second"; the sender's retries stay well within it).
const PROMPTLY: Duration = Duration::from_secs(1);

/// How a session is created at the simulator, which decides its notification format.
#[derive(Clone, Copy, Debug)]
enum Flavour {
    V1,
    V0_11,
    V0_10,
    Nac,
}

impl Flavour {
    const ALL: [Self; 4] = [Self::V1, Self::V0_11, Self::V0_10, Self::Nac];

    /// The path and headers of the create call, and the body with the sink and its token.
    fn create(
        self,
        sink: &str,
        token: &str,
        port: u16,
    ) -> (&'static str, Vec<(&'static str, &'static str)>, Value) {
        // One device per port: a terminated session keeps its flow until it is deleted.
        let device = json!({"phoneNumber": format!("+3672160{port:07}"),
                            "ipv4Address": {"publicAddress": "203.0.113.10", "publicPort": port}});
        let mut body = json!({
            "device": device,
            "applicationServer": {"ipv4Address": "198.51.100.7"},
            "qosProfile": "QOS_L",
            "duration": 600,
        });
        let credential = json!({"credentialType": "ACCESSTOKEN", "accessToken": token,
                                "accessTokenExpiresUtc": "2099-01-01T00:00:00Z",
                                "accessTokenType": "bearer"});
        match self {
            Self::V1 | Self::V0_11 => {
                body["sink"] = json!(sink);
                body["sinkCredential"] = credential;
            }
            // v0.10 sends `Bearer <notificationAuthToken>`.
            Self::V0_10 => {
                body["webhook"] = json!({"notificationUrl": sink, "notificationAuthToken": token});
            }
            // NaC copies the field into the header as it is, so it is registered with its scheme.
            Self::Nac => {
                body["webhook"] = json!({"notificationUrl": sink, "notificationAuthToken": format!("Bearer {token}")});
            }
        }
        let (path, headers) = match self {
            Self::V1 => ("/quality-on-demand/v1/sessions", vec![]),
            Self::V0_11 => ("/quality-on-demand/v0.11/sessions", vec![]),
            Self::V0_10 => ("/qod/v0/sessions", vec![]),
            Self::Nac => (
                "/qod/v0/sessions",
                vec![
                    ("x-rapidapi-key", "any"),
                    ("x-rapidapi-host", "network-as-code.nokia.rapidapi.com"),
                ],
            ),
        };
        (path, headers, body)
    }

    fn format(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V0_11 => "v0.11",
            Self::V0_10 => "v0.10",
            Self::Nac => "nac",
        }
    }
}

async fn start_simulator() -> (RunningSimulator, Sim) {
    let mut config = simulator::SimulatorConfig {
        available_after: Duration::from_millis(300),
        ..simulator::SimulatorConfig::default()
    };
    config.notification_retry.initial_backoff = Duration::from_millis(50);
    Sim::start(config).await
}

/// Creates a session at the simulator for `resource` the way the controller does: the create
/// is marked in flight in status first, the session id recorded after.
async fn create_session(
    hook: &Hook,
    sim: &RunningSimulator,
    resource: &QodSession,
    flavour: Flavour,
    port: u16,
) -> String {
    let name = resource.metadata.name.clone().unwrap();
    hook.patch_status(
        &name,
        json!({"createRequestedAt": jiff::Timestamp::now().to_string()}),
    )
    .await;
    let (path, headers, body) = flavour.create(&hook.sink(resource), &hook.token(resource), port);
    let mut request = hook
        .http
        .post(format!("{}{path}", sim.base_url()))
        .json(&body);
    for (header, value) in headers {
        request = request.header(header, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{flavour:?}: {created}");
    let session = created["sessionId"].as_str().unwrap().to_owned();
    hook.record_session(&name, &session).await;
    session
}

async fn wait_for_status(
    hook: &Hook,
    name: &str,
    qos: &str,
    info: Option<&str>,
    within: Duration,
) -> QodSession {
    let started = Instant::now();
    let resource = eventually(&format!("{name} to show {qos}"), within, || async {
        let resource = hook.get(name).await;
        let status = Hook::status(&resource);
        (status.qos_status.as_deref() == Some(qos) && status.status_info.as_deref() == info)
            .then_some(resource)
    })
    .await;
    tracing::info!(name, qos, elapsed = ?started.elapsed(), "status shown");
    resource
}

#[tokio::test]
async fn available_then_network_termination_land_in_status_in_every_format() {
    let hook = Hook::start().await;
    let (sim, provider) = start_simulator().await;
    for (n, flavour) in Flavour::ALL.into_iter().enumerate() {
        let name = format!("e2e-{}", flavour.format().replace('.', "-"));
        let resource = hook.resource(&name, None).await;
        let port = 5000 + u16::try_from(n).unwrap();
        let session = create_session(&hook, &sim, &resource, flavour, port).await;

        // AVAILABLE comes 300 ms after the create, through the webhook.
        let available = wait_for_status(
            &hook,
            &name,
            "AVAILABLE",
            None,
            PROMPTLY + Duration::from_millis(300),
        )
        .await;
        let ready = conditions::find(&Hook::status(&available).conditions, READY)
            .unwrap()
            .clone();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", reason::SESSION_AVAILABLE)
        );
        // The webhook answers the simulator after its status write, so the status can show
        // before the simulator has recorded the answer.
        let delivered = eventually(
            &format!("{flavour:?}: the simulator to record the AVAILABLE delivery answered"),
            PROMPTLY,
            || async {
                let delivered = provider.session(&session).await;
                deliveries_answered(&delivered).then_some(delivered)
            },
        )
        .await;
        assert_eq!(
            delivered["notificationFormat"],
            flavour.format(),
            "{delivered}"
        );
        let deliveries = delivered["deliveries"].as_array().unwrap();
        assert!(
            deliveries
                .iter()
                .any(|d| d["outcome"] == "delivered" && d["lastStatus"] == 204),
            "{flavour:?}: {delivered:#}"
        );

        // The network ends the session.
        let answer = hook
            .http
            .post(format!(
                "{}/_sim/sessions/{session}/terminate",
                sim.base_url()
            ))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        let terminated = wait_for_status(
            &hook,
            &name,
            "UNAVAILABLE",
            Some("NETWORK_TERMINATED"),
            PROMPTLY,
        )
        .await;
        let status = Hook::status(&terminated);
        let ready = conditions::find(&status.conditions, READY).unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason, reason::NETWORK_TERMINATED);
        assert_eq!(status.session_id.as_deref(), Some(session.as_str()));
        let last = status.last_notification.unwrap();
        assert!(last.id.is_some(), "{flavour:?}");
    }
    assert_eq!(
        hook.metric("qod_operator_notifications_total{result=\"unauthorized\"}"),
        Some(0.0)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicated_and_reordered_deliveries_end_in_the_newest_status() {
    let hook = Hook::start().await;
    let (sim, provider) = start_simulator().await;
    let faults = hook
        .http
        .put(format!("{}/_sim/faults", sim.base_url()))
        .json(&json!({"duplicateNotificationRate": 1.0, "reorderNotifications": true}))
        .send()
        .await
        .unwrap();
    assert!(faults.status().is_success());
    let resource = hook.resource("faulty", None).await;
    let session = create_session(&hook, &sim, &resource, Flavour::V1, 6000).await;

    // AVAILABLE is held back by the reorder fault until the next event (or a second passes);
    // terminate at once so the UNAVAILABLE overtakes it.
    eventually(
        "the simulator to reach AVAILABLE",
        Duration::from_secs(5),
        || async { (provider.session(&session).await["qosStatus"] == "AVAILABLE").then_some(()) },
    )
    .await;
    let answer = hook
        .http
        .post(format!(
            "{}/_sim/sessions/{session}/terminate",
            sim.base_url()
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // Every delivery (two events, each twice) is answered, and the status ends terminated.
    let delivered = eventually(
        "every delivery to be answered",
        Duration::from_secs(10),
        || async {
            let session = provider.session(&session).await;
            let deliveries = session["deliveries"].as_array().unwrap().clone();
            (deliveries.len() >= 4 && deliveries.iter().all(|d| d["outcome"] == "delivered"))
                .then_some(deliveries)
        },
    )
    .await;
    assert!(
        delivered.iter().all(|d| d["lastStatus"] == 204),
        "{delivered:#?}"
    );
    let status = hook.status_of("faulty").await;
    assert_eq!(
        status.qos_status.as_deref(),
        Some("UNAVAILABLE"),
        "{status:?}"
    );
    assert_eq!(status.status_info.as_deref(), Some("NETWORK_TERMINATED"));
    assert!(
        hook.metric("qod_operator_notifications_total{result=\"duplicate\"}")
            .unwrap()
            >= 1.0
    );
    sim.shutdown().await;
}
