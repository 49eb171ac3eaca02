//! A webhook served on 127.0.0.1 against the real Kubernetes API (a namespace of its own on the
//! test binary's control plane), with helpers to make resources, post notifications and compare
//! what the resource holds.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use qod_operator::{
    api::{CONTROLLER_MANAGER, DeviceIpv4Address, QodSession, QodSessionSpec, QodSessionStatus},
    cache::SessionCache,
    metrics::Metrics,
    qod::event,
    sink_keys::SinkKeys,
    webhook::{self, Webhook},
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use qod_test_support::{Cluster, ControlPlane, eventually, session, test_log};

pub const WAIT: Duration = Duration::from_secs(10);
pub const CLOUDEVENTS: &str = "application/cloudevents+json";
pub const BATCH: &str = "application/cloudevents-batch+json";

/// A running webhook and the API server behind it.
pub struct Hook {
    /// Set when the test has a control plane of its own (to stop it).
    own: Option<ControlPlane>,
    pub namespace: String,
    pub client: Client,
    pub api: Api<QodSession>,
    pub keys: SinkKeys,
    pub metrics: Arc<Metrics>,
    pub cache: SessionCache,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

/// What a request got back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Answer {
    /// The problem+json body (panics when it is not one).
    pub fn problem(&self) -> Value {
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/problem+json"),
            "{self:?}"
        );
        let problem: Value = serde_json::from_str(&self.body).unwrap();
        for field in ["type", "title", "status", "detail"] {
            assert!(problem.get(field).is_some(), "{field} missing in {problem}");
        }
        assert_eq!(problem["status"], self.status);
        problem
    }

    pub fn detail(&self) -> String {
        self.problem()["detail"].as_str().unwrap().to_owned()
    }
}

/// A session whose device is told apart by its public port.
pub fn spec(port: u16) -> QodSessionSpec {
    let mut spec = session::spec("+36721601234567", "QOS_L", 3600);
    spec.device.ipv4_address = Some(Box::new(DeviceIpv4Address {
        public_address: "203.0.113.10".into(),
        private_address: None,
        public_port: Some(port),
    }));
    spec
}

/// The state of a resource that must not move: its version and status.
pub fn snapshot(resource: &QodSession) -> (Option<String>, String) {
    (
        resource.metadata.resource_version.clone(),
        serde_json::to_string(&resource.status).unwrap(),
    )
}

/// A v1 CloudEvent for `session`.
pub fn cloud_event(
    session: &str,
    qos: &str,
    info: Option<&str>,
    id: &str,
    time: Timestamp,
) -> Value {
    let mut data = json!({"sessionId": session, "qosStatus": qos});
    if let Some(info) = info {
        data["statusInfo"] = json!(info);
    }
    json!({
        "id": id,
        "source": format!("https://provider.example/quality-on-demand/v1/sessions/{session}"),
        "type": event::TYPE_V1,
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "time": time.to_string(),
        "data": data,
    })
}

impl Hook {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the webhook's config changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut webhook::WebhookConfig)) -> Self {
        Self::start_full(adjust, |client| client).await
    }

    /// Starts with the webhook's config changed by `adjust` and its Kubernetes client made by
    /// `wrap` from a working one (to inject API failures).
    pub async fn start_full(
        adjust: impl FnOnce(&mut webhook::WebhookConfig),
        wrap: impl FnOnce(Client) -> Client,
    ) -> Self {
        Self::start_on(None, adjust, wrap).await
    }

    /// Starts on a control plane of the test's own, which [`stop_api_server`] stops.
    ///
    /// [`stop_api_server`]: Self::stop_api_server
    pub async fn start_own(name: &str) -> Self {
        let own = tokio::task::spawn_blocking({
            let name = name.to_owned();
            move || ControlPlane::start_own(&name)
        })
        .await
        .unwrap();
        Self::start_on(Some(own), |_| {}, |client| client).await
    }

    async fn start_on(
        own: Option<ControlPlane>,
        adjust: impl FnOnce(&mut webhook::WebhookConfig),
        wrap: impl FnOnce(Client) -> Client,
    ) -> Self {
        test_log::init();
        let control_plane = own.as_ref().unwrap_or_else(|| ControlPlane::shared());
        let Cluster {
            client,
            api,
            namespace,
            ..
        } = Cluster::on(control_plane, "webhook").await;
        let keys = SinkKeys::from_bytes(b"webhook-test-key".to_vec(), None).unwrap();
        let mut config = webhook::WebhookConfig::new(keys.clone());
        adjust(&mut config);
        let metrics = Arc::new(Metrics::new());
        let wrapped = wrap(client.clone());
        let cache = SessionCache::start(wrapped.clone(), Some(&namespace));
        let hook = Webhook::new(wrapped, cache, config, Arc::clone(&metrics));
        let cache = hook.cache();
        let readiness = hook.readiness();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(hook.serve(listener, shutdown.clone().cancelled_owned()));
        eventually("the webhook's cache to sync", WAIT, || async {
            readiness.is_ready().then_some(())
        })
        .await;
        Self {
            own,
            api,
            namespace,
            client,
            keys,
            metrics,
            cache,
            base,
            // The server closes a keep-alive connection that stays idle for its request timeout
            // (hyper's header read timeout starts while idle); a client that reuses it at that
            // moment loses its request (IncompleteMessage). Dropping idle connections sooner
            // than the shortest timeout a test sets (1.5 s), as any client of such a server
            // should, removes the race.
            http: qod_test_support::http::builder()
                .pool_idle_timeout(Duration::from_millis(500))
                .build()
                .unwrap(),
            shutdown,
        }
    }

    /// Creates a resource and, when `session` is given, records it in status the way the
    /// controller does (merge patch, REQUESTED); waits until the webhook's index knows it.
    pub async fn resource(&self, name: &str, session: Option<&str>) -> QodSession {
        let port = 1000 + u16::try_from(self.cache.len() % 60_000).unwrap();
        let created = self
            .api
            .create(&PostParams::default(), &QodSession::new(name, spec(port)))
            .await
            .unwrap();
        if let Some(session) = session {
            self.record_session(name, session).await;
        }
        let uid = created.metadata.uid.clone().unwrap();
        eventually("the webhook to see the resource", WAIT, || async {
            let known = self.cache.by_uid(&uid).is_some();
            let with_session = session.is_none_or(|s| self.cache.by_session(s).is_some());
            (known && with_session).then_some(())
        })
        .await;
        self.get(name).await
    }

    /// Writes `status.sessionId` (and REQUESTED) as the controller would.
    pub async fn record_session(&self, name: &str, session: &str) {
        self.patch_status(
            name,
            json!({"sessionId": session, "qosStatus": "REQUESTED", "observedGeneration": 1,
                   "createRequestedAt": null}),
        )
        .await;
    }

    /// Merge-patches status as the controller (its field manager).
    pub async fn patch_status(&self, name: &str, status: Value) {
        self.api
            .patch_status(
                name,
                &PatchParams {
                    field_manager: Some(CONTROLLER_MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .unwrap();
    }

    pub async fn get(&self, name: &str) -> QodSession {
        self.api.get(name).await.unwrap()
    }

    pub fn status(resource: &QodSession) -> QodSessionStatus {
        resource.status.clone().unwrap_or_default()
    }

    /// The status of the resource `name` as stored now.
    pub async fn status_of(&self, name: &str) -> QodSessionStatus {
        Self::status(&self.get(name).await)
    }

    /// The sink token of a resource.
    pub fn token(&self, resource: &QodSession) -> String {
        self.token_for_uid(resource.metadata.uid.as_deref().unwrap())
    }

    pub fn token_for_uid(&self, uid: &str) -> String {
        self.keys.token_for(uid).expose_secret().to_owned()
    }

    /// `Bearer <token>` for a resource's sink.
    pub fn bearer(&self, resource: &QodSession) -> String {
        format!("Bearer {}", self.token(resource))
    }

    /// The path of a resource's sink.
    pub fn path(resource: &QodSession) -> String {
        format!(
            "/notifications/{}",
            resource.metadata.uid.as_deref().unwrap()
        )
    }

    /// The sink URL of a resource.
    pub fn sink(&self, resource: &QodSession) -> String {
        format!("{}{}", self.base, Self::path(resource))
    }

    /// POSTs `body` to `path` with a content type and an `Authorization` value.
    pub async fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        self.post_to(&self.base, path, content_type, authorization, body)
            .await
    }

    /// [`post`](Self::post) to the webhook at `base` (another replica).
    pub async fn post_to(
        &self,
        base: &str,
        path: &str,
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let mut headers = Vec::new();
        if let Some(content_type) = content_type {
            headers.push((CONTENT_TYPE.as_str(), content_type));
        }
        if let Some(authorization) = authorization {
            headers.push((AUTHORIZATION.as_str(), authorization));
        }
        self.post_with_headers(base, path, &headers, body).await
    }

    /// POSTs `body` to `path` of the webhook at `base` with exactly `headers`.
    pub async fn post_with_headers(
        &self,
        base: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> Answer {
        let mut request = self.http.post(format!("{base}{path}")).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        Answer {
            status: response.status().as_u16(),
            content_type: header("content-type"),
            www_authenticate: header("www-authenticate"),
            retry_after: header("retry-after"),
            body: response.text().await.unwrap(),
        }
    }

    /// POSTs one CloudEvent to the resource's sink with its own token.
    pub async fn notify(&self, resource: &QodSession, event: &Value) -> Answer {
        self.notify_to(&self.base, resource, event).await
    }

    /// [`notify`](Self::notify) through the webhook at `base` (another replica).
    pub async fn notify_to(&self, base: &str, resource: &QodSession, event: &Value) -> Answer {
        self.post_to(
            base,
            &Self::path(resource),
            Some(CLOUDEVENTS),
            Some(&self.bearer(resource)),
            event.to_string(),
        )
        .await
    }

    /// Another webhook replica with the same keys over `cache`, serving until the hook is
    /// dropped; returns its base URL once its cache has synced.
    pub async fn replica(&self, cache: SessionCache) -> String {
        let replica = Webhook::new(
            self.client.clone(),
            cache.clone(),
            webhook::WebhookConfig::new(self.keys.clone()),
            Arc::new(Metrics::new()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(replica.serve(listener, self.shutdown.clone().cancelled_owned()));
        eventually("the replica's cache to sync", WAIT, || async {
            cache.has_synced().then_some(())
        })
        .await;
        base
    }

    /// SIGKILLs the test's own API server (the webhook keeps running).
    pub fn stop_api_server(&mut self) {
        self.own
            .as_mut()
            .expect("a hook started with start_own")
            .kill();
    }

    /// The webhook's metrics text.
    pub fn metric(&self, line_start: &str) -> Option<f64> {
        self.metrics
            .encode()
            .lines()
            .find_map(|l| l.strip_prefix(line_start))
            .and_then(|rest| rest.trim().parse().ok())
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
