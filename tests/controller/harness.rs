//! A running controller against the real control plane (a namespace of its own) and the simulator, with helpers to drive and
//! observe both.

use std::{sync::Arc, time::Duration};

use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use qod_operator::{
    api::{QodSession, QodSessionSpec},
    cache::SessionCache,
    controller::{self, Sink, SinkTokens, plan},
    metrics::Metrics,
    qod::{
        camara::{CamaraAuth, CamaraClient, CamaraConfig},
        credentials::SecretSource,
    },
    simulator::{self, RunningSimulator},
};
pub use qod_test_support::simulator::{provider_calls, sessions_of};
use qod_test_support::{Cluster, eventually, providers, session, simulator::Sim, test_log};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(30);

/// Tokens that are easy to recognise; the webhook's HMAC keys are tested elsewhere.
pub struct TestTokens;

impl SinkTokens for TestTokens {
    fn token_for(&self, uid: &str) -> SecretString {
        SecretString::from(format!("test-token-for-{uid}"))
    }
}

/// What differs between tests.
pub struct Setup {
    pub simulator: simulator::SimulatorConfig,
    pub provider_token: Option<&'static str>,
    pub start_controller: bool,
}

impl Default for Setup {
    fn default() -> Self {
        let mut simulator = simulator::SimulatorConfig {
            available_after: Duration::from_millis(100),
            ..simulator::SimulatorConfig::default()
        };
        // No webhook runs here: the sink refuses, and the controller learns by reading.
        simulator.notification_retry.attempts = 1;
        Self {
            simulator,
            provider_token: None,
            start_controller: true,
        }
    }
}

pub struct Harness {
    pub namespace: String,
    pub client: Client,
    pub api: Api<QodSession>,
    pub sim: RunningSimulator,
    /// The simulator's test-control API.
    provider: Sim,
    provider_token: Option<&'static str>,
    controller: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    /// The controller's metrics, as its `/metrics` would expose them.
    pub metrics: Arc<Metrics>,
}

/// Fast timing, so lost notifications are repaired within a test's patience.
pub fn planner() -> plan::PlannerSettings {
    plan::PlannerSettings {
        resync_interval: Duration::from_secs(2),
        requested_refresh: Duration::from_secs(1),
        expiry_grace: Duration::from_millis(500),
    }
}

impl Harness {
    pub async fn start(setup: Setup) -> Self {
        test_log::init();
        let Cluster {
            client,
            api,
            namespace,
            ..
        } = Cluster::start("controller").await;
        let (sim, provider) = Sim::start(setup.simulator).await;
        let mut harness = Self {
            api,
            namespace,
            client,
            sim,
            provider,
            provider_token: setup.provider_token,
            controller: None,
            metrics: Arc::new(Metrics::new()),
        };
        if setup.start_controller {
            harness.start_controller();
        }
        harness
    }

    pub fn start_controller(&mut self) {
        self.start_controller_on(SessionCache::start(
            self.client.clone(),
            Some(&self.namespace),
        ));
    }

    /// Starts the controller over a cache of one's own (as the leader's controller starts over
    /// the cache the webhook has been keeping).
    pub fn start_controller_on(&mut self, cache: SessionCache) {
        self.start_controller_with(self.client.clone(), cache);
    }

    /// Starts the controller with a Kubernetes client of one's own (to see or disturb its
    /// requests) over `cache`.
    pub fn start_controller_with(&mut self, client: Client, cache: SessionCache) {
        let mut config = CamaraConfig::new(format!("{}/quality-on-demand/v1", self.sim.base_url()));
        if let Some(token) = self.provider_token {
            config.auth = CamaraAuth::Bearer(SecretSource::Value(SecretString::from(token)));
        }
        let provider = Arc::new(CamaraClient::new(config).unwrap());
        let providers = providers::default_only(client.clone(), provider);
        let sink = Sink::new("http://127.0.0.1:9", Arc::new(TestTokens));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(controller::run(
            client,
            cache,
            providers,
            sink,
            controller::ControllerConfig {
                planner: planner(),
                metrics: Arc::clone(&self.metrics),
                ..controller::ControllerConfig::default()
            },
            shutdown.clone().cancelled_owned(),
        ));
        self.controller = Some((shutdown, task));
    }

    pub async fn stop_controller(&mut self) {
        if let Some((shutdown, task)) = self.controller.take() {
            shutdown.cancel();
            task.await.unwrap();
        }
    }

    pub async fn create(&self, name: &str, spec: QodSessionSpec) -> QodSession {
        self.api
            .create(&PostParams::default(), &QodSession::new(name, spec))
            .await
            .unwrap()
    }

    pub async fn patch_spec(&self, name: &str, spec: Value) {
        self.api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
            .unwrap();
    }

    /// Waits until the resource satisfies `ready`, and returns it; on timeout the failure shows
    /// the resource's last status.
    pub async fn wait_for(
        &self,
        what: &str,
        name: &str,
        ready: impl Fn(&QodSession) -> bool,
    ) -> QodSession {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let current = self.api.get_opt(name).await.unwrap();
            if let Some(session) = current.as_ref().filter(|s| ready(s)) {
                return session.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {what}; last status of {name}: {:#?}",
                current.map(|s| s.status)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the resource is gone from the API.
    pub async fn wait_gone(&self, name: &str) {
        eventually("the resource to be deleted", WAIT, || async {
            self.api
                .get_opt(name)
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }

    /// The simulator's live sessions.
    pub async fn provider_sessions(&self) -> Vec<Value> {
        self.provider.sessions(false).await
    }

    pub async fn provider_stats(&self) -> Value {
        self.provider.stats().await
    }

    pub async fn sim_post(&self, path: &str) {
        self.provider.post(path).await;
    }

    pub async fn faults(&self, faults: Value) {
        self.provider.faults(faults).await;
    }

    pub async fn stop(mut self) {
        self.stop_controller().await;
        self.sim.shutdown().await;
    }
}

/// A session spec with a phone number and an IPv4 server; `phone` tells tests apart.
pub fn spec(phone: &str) -> QodSessionSpec {
    session::spec(phone, "QOS_L", 600)
}

pub use qod_test_support::session::{qos_status, session_id};

/// `(status, reason)` of the Ready condition.
pub fn ready(session: &QodSession) -> Option<(String, String)> {
    session::ready(session).map(|(status, reason, _)| (status, reason))
}
