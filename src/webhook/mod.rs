//! The notification webhook: the endpoint QoD providers call when a session's status changes,
//! which writes the network's words into the `QodSession`'s status within milliseconds.
//!
//! Routes (served on their own listener, on every replica):
//! - `POST /notifications/{uid}`: the sink the controller registers for a resource
//!   (`<public URL>/notifications/<uid>`);
//! - `POST /notifications`: the resource is found by the session id in the event.
//!
//! Each request must carry `Authorization: Bearer <token>` with the resource's token, the
//! lowercase hex of HMAC-SHA256(key, uid) ([`SinkKeys`]). The controller registers that plain
//! hex token as CAMARA's `sinkCredential.accessToken` (providers send `Bearer <token>`) and as
//! `Bearer <token>` in NaC's `notificationAuthToken` (NaC copies the field into the header as
//! it is), so the header is `Bearer <token>` either way.
//!
//! Content modes (CloudEvents HTTP protocol binding v1.0.2), each with the same token check,
//! limits, ordering and dedupe:
//!
//! | mode | recognised by | body |
//! | --- | --- | --- |
//! | structured | `Content-Type: application/cloudevents+json`, or `application/json` without `ce-*` headers | one event, in every shape of [`crate::qod::event`] (legacy v0.9 included) |
//! | batched | `Content-Type: application/cloudevents-batch+json` | a JSON array of structured events |
//! | binary | `ce-specversion: 1.0`, `ce-id`, `ce-source`, `ce-type` headers (`ce-time` optional; values percent-decoded), `Content-Type` JSON or absent | the event's `data` (`{sessionId, qosStatus, statusInfo}`); every accepted `type` ([`binary`]) |
//!
//! Answers:
//!
//! | status | when |
//! | --- | --- |
//! | 204 | every event is stored, or was a duplicate or older than what is stored (ignored) |
//! | 400 | the body is not a `qos-status-changed` event (the detail names the field), or a binary-mode header is missing or wrong (the detail names the header) |
//! | 401 | no bearer token, or not this resource's (`WWW-Authenticate: Bearer`) |
//! | 404 | no resource with that uid, or none holds the event's session |
//! | 408 | the body did not arrive within the request timeout |
//! | 409 | the resource holds another session |
//! | 413 | the body is larger than the limit |
//! | 415 | neither mode: not `application/cloudevents+json`, `application/json` or `application/cloudevents-batch+json`, and no `ce-*` headers; or binary mode with data that is not JSON (the detail says what each mode needs) |
//! | 500 | the API server refused the write as invalid (a bug; logged) |
//! | 503 | the Kubernetes API could not take the write, the webhook is still loading, the resource is creating its session, the request timed out, or too many are in flight (`Retry-After`) |
//!
//! Every refusal is an `application/problem+json` body ([`problem`]). Batches are answered
//! with their worst outcome (see [`handler`]). Modules: [`sink_auth`] (the bearer check, with the
//! keys and tokens of [`crate::sink_keys`]), [`limits`] (content mode, size, time, in-flight),
//! [`binary`] (binary mode's headers), [`dedupe`] (recent events), [`decide`] (what an event
//! does, pure), [`status_write`] (reading and writing), [`handler`] (the routes), [`args`]
//! (command-line flags).

pub mod args;
pub mod binary;
pub mod decide;
pub mod dedupe;
pub mod handler;
pub mod limits;
pub mod problem;
pub mod server;
pub mod sink_auth;
pub mod status_write;

use std::{future::Future, io, sync::Arc, time::Duration};

use axum::{Router, routing::post};
use kube::Client;
use secrecy::SecretString;
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};

pub use args::WebhookArgs;
pub use limits::Limits;

use crate::{cache::SessionCache, metrics::Metrics, sink_keys::SinkKeys};

/// How the webhook runs.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// The HMAC keys of sink tokens (share them with the controller).
    pub keys: SinkKeys,
    /// A fixed token accepted for every resource (the seeds' "Bearer my-token" receivers);
    /// only when configured.
    pub static_token: Option<SecretString>,
    pub limits: Limits,
    /// How often the key files are re-read (a rotated Secret takes effect without restart).
    pub key_reload_interval: Duration,
    /// How many recent events are remembered for dedupe.
    pub dedupe_capacity: usize,
}

impl WebhookConfig {
    /// Defaults for everything but the keys.
    pub fn new(keys: SinkKeys) -> Self {
        Self {
            keys,
            static_token: None,
            limits: Limits::default(),
            key_reload_interval: Duration::from_secs(60),
            dedupe_capacity: 4096,
        }
    }
}

/// The webhook's background tasks, stopped when the last handle to its state goes.
pub struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Whether the webhook can answer: the cache of resources has synced. For `/readyz`.
#[derive(Clone)]
pub struct Readiness(SessionCache);

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.0.has_synced()
    }
}

/// The notification webhook, ready to serve.
pub struct Webhook {
    shared: Arc<handler::WebhookState>,
    keys: SinkKeys,
}

impl Webhook {
    /// The webhook over `cache` (which finds the resources notifications are about). For
    /// file-backed keys it starts re-reading the key files, which stops when the webhook and
    /// every router made from it are dropped. Call inside a tokio runtime.
    pub fn new(
        client: Client,
        cache: SessionCache,
        config: WebhookConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let mut tasks = Vec::new();
        if config.keys.is_file_backed() {
            tasks.push(tokio::spawn(reload_keys(
                config.keys.clone(),
                config.key_reload_interval,
            )));
        }
        let shared = Arc::new(handler::WebhookState {
            client,
            auth: sink_auth::Authenticator::new(config.keys.clone(), config.static_token),
            cache,
            recent: dedupe::Recent::new(config.dedupe_capacity),
            in_flight: Arc::new(Semaphore::new(config.limits.max_in_flight.max(1))),
            limits: config.limits,
            metrics,
            _tasks: Tasks(tasks),
        });
        Self {
            shared,
            keys: config.keys,
        }
    }

    /// The routes, for serving on a listener of one's own (tests, or merging into a server).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/notifications", post(handler::by_session))
            .route("/notifications/{uid}", post(handler::by_uid))
            .fallback(|| async {
                problem::Refusal::NotFound(
                    "no such path; notifications go to POST /notifications/{uid}".into(),
                )
            })
            .with_state(Arc::clone(&self.shared))
    }

    /// Whether the webhook can answer (its cache has synced).
    pub fn readiness(&self) -> Readiness {
        Readiness(self.shared.cache.clone())
    }

    /// The cache behind lookups (tests wait on it).
    pub fn cache(&self) -> SessionCache {
        self.shared.cache.clone()
    }

    /// The keys tokens are checked with (the controller issues tokens with the same keys).
    pub fn keys(&self) -> &SinkKeys {
        &self.keys
    }

    /// Serves until `shutdown` completes, then lets running requests finish.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "notification webhook listening");
        }
        let header_timeout = self.shared.limits.request_timeout;
        server::serve(listener, self.router(), header_timeout, shutdown).await
    }
}

async fn reload_keys(keys: SinkKeys, every: Duration) {
    let mut ticker = tokio::time::interval(every.max(Duration::from_secs(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(error) = keys.reload() {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "could not re-read the HMAC key files; keeping the keys in force"
            );
        }
    }
}
