//! The whole loop: the real controller creates the session at the simulator with this
//! webhook's sink and HMAC token, and the network's notifications reach the resource's status
//! through the webhook, each within a second. Resync is set to an hour, so nothing but the
//! webhook can bring the news.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use kube::api::PostParams;
use qod_operator::{
    api::{
        QodSession, WEBHOOK_MANAGER,
        conditions::{self, READY, reason},
    },
    controller::{self, Sink, plan},
    qod::camara::{CamaraClient, CamaraConfig},
    simulator,
};
use qod_test_support::{eventually, providers, simulator::Sim};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::harness::{Hook, spec};

/// The promise: the status shows a notification within a second.
const PROMPTLY: Duration = Duration::from_secs(1);

/// The controller and the webhook on one resource cache, with a simulator as the provider.
struct Loop {
    hook: Hook,
    sim: simulator::RunningSimulator,
    sim_control: Sim,
    shutdown: CancellationToken,
    controller: tokio::task::JoinHandle<()>,
}

impl Loop {
    /// The simulator makes each session AVAILABLE `available_after` its create.
    async fn start(available_after: Duration) -> Self {
        let hook = Hook::start().await;
        let (sim, sim_control) = Sim::start(simulator::SimulatorConfig {
            available_after,
            ..simulator::SimulatorConfig::default()
        })
        .await;
        let provider = Arc::new(
            CamaraClient::new(CamaraConfig::new(format!(
                "{}/quality-on-demand/v1",
                sim.base_url()
            )))
            .unwrap(),
        );
        let shutdown = CancellationToken::new();
        let controller = tokio::spawn(controller::run(
            hook.client.clone(),
            hook.cache.clone(),
            providers::default_only(hook.client.clone(), provider),
            Sink::new(&hook.base, Arc::new(hook.keys.clone())),
            controller::ControllerConfig {
                planner: plan::PlannerSettings {
                    resync_interval: Duration::from_secs(3600),
                    requested_refresh: Duration::from_secs(3600),
                    expiry_grace: Duration::from_secs(3600),
                },
                ..controller::ControllerConfig::default()
            },
            shutdown.clone().cancelled_owned(),
        ));
        Self {
            hook,
            sim,
            sim_control,
            shutdown,
            controller,
        }
    }

    /// Ends `session_id` at the simulator as the network would (NETWORK_TERMINATED).
    async fn terminate(&self, session_id: &str) {
        let answer = self
            .hook
            .http
            .post(format!(
                "{}/_sim/sessions/{session_id}/terminate",
                self.sim.base_url()
            ))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.controller.await.unwrap();
        self.sim.shutdown().await;
    }
}

#[tokio::test]
async fn the_controller_and_the_webhook_together_show_the_networks_news_within_a_second() {
    let running = Loop::start(Duration::from_millis(500)).await;
    let (hook, sim_control) = (&running.hook, &running.sim_control);

    hook.api
        .create(
            &PostParams::default(),
            &QodSession::new("camera-uplink", spec(5060)),
        )
        .await
        .unwrap();
    let uid = hook.get("camera-uplink").await.metadata.uid.unwrap();

    // The controller registered this webhook's sink; the simulator holds the session.
    let session = eventually(
        "the session at the simulator",
        Duration::from_secs(10),
        || async { sim_control.sessions(false).await.into_iter().next() },
    )
    .await;
    assert_eq!(
        session["sink"],
        format!("{}/notifications/{uid}", hook.base)
    );
    assert_eq!(session["sinkAuthorization"], true);
    let id = session["sessionId"].as_str().unwrap().to_owned();

    // AVAILABLE: from the simulator's change to the resource's status.
    let became_available = eventually(
        "the simulator to make it AVAILABLE",
        Duration::from_secs(10),
        || async {
            let sessions = sim_control.sessions(false).await;
            (sessions.first()?["qosStatus"] == "AVAILABLE").then(Instant::now)
        },
    )
    .await;
    let resource = eventually("AVAILABLE through the webhook", PROMPTLY, || async {
        let resource = hook.get("camera-uplink").await;
        let status = Hook::status(&resource);
        (status.qos_status.as_deref() == Some("AVAILABLE") && status.last_notification.is_some())
            .then_some(resource)
    })
    .await;
    let status = Hook::status(&resource);
    assert_eq!(status.session_id.as_deref(), Some(id.as_str()));
    let ready = conditions::find(&status.conditions, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", reason::SESSION_AVAILABLE)
    );
    let available_after = became_available.elapsed();

    // The network ends it.
    running.terminate(&id).await;
    let terminated_at = Instant::now();
    let status = eventually(
        "NETWORK_TERMINATED through the webhook",
        PROMPTLY,
        || async {
            let status = hook.status_of("camera-uplink").await;
            (status.status_info.as_deref() == Some("NETWORK_TERMINATED")).then_some(status)
        },
    )
    .await;
    assert_eq!(status.qos_status.as_deref(), Some("UNAVAILABLE"));
    let ready = conditions::find(&status.conditions, READY).unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reason::NETWORK_TERMINATED)
    );
    tracing::info!(?available_after, terminated_after = ?terminated_at.elapsed(), "latencies");

    // Every delivery was accepted at the first attempt or a retry; none was refused for auth.
    assert_eq!(
        hook.metric("qod_operator_notifications_total{result=\"unauthorized\"}"),
        Some(0.0)
    );
    // Both were accepted. One may count as stale rather than applied: the controller's own
    // read can record the same news a moment before the event arrives, so the status can show
    // it before the webhook has counted (or even received) the event.
    let accepted_count = || {
        ["applied", "stale", "duplicate"]
            .iter()
            .map(|result| {
                hook.metric(&format!(
                    "qod_operator_notifications_total{{result=\"{result}\"}}"
                ))
                .unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    // Not timed: the event may still be on its way, as a retry.
    eventually(
        "both notifications accepted",
        Duration::from_secs(10),
        || async { (accepted_count() >= 2.0).then_some(()) },
    )
    .await;
    assert!(
        hook.metric("qod_operator_notifications_total{result=\"applied\"}")
            .unwrap()
            >= 1.0
    );
    running.stop().await;
}

/// The two writers' mechanisms (docs/architecture.md, "Status: who writes what"): the webhook
/// applies `statusInfo` by server-side apply, and the controller's merge patch for the renewed
/// session removes it, although the webhook's field manager set it. With server-side apply on
/// both sides, the webhook's ownership would keep the stale reason on the new session. The
/// sessions stay REQUESTED here, so after the renewal only the controller writes.
#[tokio::test]
async fn the_controller_removes_the_reason_the_webhook_wrote_when_it_renews_the_session() {
    let running = Loop::start(Duration::from_secs(3600)).await;
    let hook = &running.hook;
    let mut renewing = spec(5061);
    renewing.auto_extend = true;
    hook.api
        .create(
            &PostParams::default(),
            &QodSession::new("renewing", renewing),
        )
        .await
        .unwrap();
    let first_id = eventually("the first session", Duration::from_secs(10), || async {
        hook.status_of("renewing").await.session_id
    })
    .await;

    // The provider refuses every call until the ended session has been seen, so the renewal
    // cannot replace the webhook's write before the test reads it.
    running.sim_control.faults(json!({"errorRate": 1.0})).await;
    running.terminate(&first_id).await;
    let ended = eventually(
        "NETWORK_TERMINATED through the webhook",
        Duration::from_secs(10),
        || async {
            let resource = hook.get("renewing").await;
            let status = Hook::status(&resource);
            (status.status_info.as_deref() == Some("NETWORK_TERMINATED")).then_some(resource)
        },
    )
    .await;
    assert_eq!(status_info_owners(&ended), [WEBHOOK_MANAGER]);
    running.sim_control.faults(json!({})).await;

    // autoExtend: the controller deletes the ended session and creates the next one.
    let renewed = eventually("the renewed session", Duration::from_secs(30), || async {
        let resource = hook.get("renewing").await;
        let status = Hook::status(&resource);
        let id = status.session_id.as_deref();
        (id.is_some() && id != Some(&*first_id)).then_some(resource)
    })
    .await;
    let status = Hook::status(&renewed);
    assert_eq!(status.qos_status.as_deref(), Some("REQUESTED"));
    assert_eq!(
        status.status_info, None,
        "no reason left from the ended session"
    );
    assert!(status_info_owners(&renewed).is_empty());
    running.stop().await;
}

/// The field managers that own `status.statusInfo` of `resource`.
fn status_info_owners(resource: &QodSession) -> Vec<&str> {
    resource
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| {
            entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| fields.0.to_string().contains("\"f:statusInfo\""))
        })
        .filter_map(|entry| entry.manager.as_deref())
        .collect()
}
