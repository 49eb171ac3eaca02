//! An in-memory QoD provider: CAMARA Quality-on-Demand v1 (plus v0.11 and v0.10 shapes) and
//! Nokia Network-as-Code behaviour, with an OAuth2 token endpoint, notifications to each
//! session's sink, and test control under `/_sim/`.
//!
//! It exists so the operator can be tried without a telco account and tested end to end. The
//! wire models are those of [`crate::qod`]. Start one with [`spawn`] (tests, the operator's
//! `--simulator` mode) or from the CLI (`qod-operator simulator`). It is behind the cargo
//! feature `simulator`, which no part of the operator reaches into (docs/architecture.md, "The
//! simulator's boundary").
//!
//! Paths:
//! - `/quality-on-demand/v1`, `/quality-on-demand/v0.11`, `/qod/v0`: the QoD API
//!   (`POST /sessions`, `GET|DELETE /sessions/{id}`, `POST /sessions/{id}/extend`,
//!   `POST /retrieve-sessions`); a request carrying `X-RapidAPI-Key` gets Nokia's answers.
//! - `/qos-profiles/v1`: the CAMARA QoS Profiles API (`POST /retrieve-qos-profiles`,
//!   `GET /qos-profiles/{name}`) for the profiles the QoD API enforces (see [`profiles`]).
//! - `POST /oauth/token`: client-credentials grant.
//! - `/_sim/...`: test control (see [`control`]); `GET /healthz`.
//!
//! Known deviation: `http://` sinks are accepted (and echoed) for local use, although v1.1
//! requires `^https://`.

mod api;
mod client_auth;
mod clock;
mod control;
mod faults;
mod lifecycle;
mod notifier;
mod profile_api;
mod profiles;
mod render;
mod reply;
mod stats;
mod store;
mod validation;

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use axum::{Router, http::StatusCode, response::IntoResponse, routing::get};
use secrecy::SecretString;
use tokio::{
    net::TcpListener,
    sync::{Notify, watch},
    task::JoinHandle,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

pub use client_auth::ClientCredentials;
pub use faults::MAX_LATENCY_MS;
pub use notifier::RetryPolicy;

use self::{faults::Faults, reply::ApiVersion};
use crate::qod::event::NotificationFormat;

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Delay between create (REQUESTED) and AVAILABLE; zero answers AVAILABLE in the 201.
    pub available_after: Duration,
    /// The notification format for every session; `None` picks the path's own (v1 for
    /// `/quality-on-demand/v1`, v0.11 for `/quality-on-demand/v0.11`, v0.10 for `/qod/v0`, and
    /// Nokia's hybrid for NaC clients on `/qod/v0`).
    pub notification_format: Option<NotificationFormat>,
    /// Lifetime of tokens from `/oauth/token`.
    pub token_ttl: Duration,
    /// Refuse API calls that carry no credentials at all.
    pub require_auth: bool,
    /// A bearer token accepted besides the issued ones.
    pub bearer_token: Option<SecretString>,
    /// When set, the token endpoint accepts only these client credentials.
    pub client_credentials: Option<ClientCredentials>,
    /// When set, NaC calls must carry this `X-RapidAPI-Key`.
    pub api_key: Option<SecretString>,
    /// The file `client_credentials`' secret came from: re-read while running, so a rotated
    /// (re-mounted) Secret takes effect without a restart, as at a real provider.
    pub client_secret_file: Option<PathBuf>,
    /// The file `api_key` came from; re-read likewise.
    pub api_key_file: Option<PathBuf>,
    /// How long a NETWORK_TERMINATED session is kept before it is removed (CAMARA: at least
    /// 360 s).
    pub terminated_retention: Duration,
    /// Retries of notifications.
    pub notification_retry: RetryPolicy,
    /// The simulator's URL as others reach it (the CloudEvent `source`); default
    /// `http://<listen address>`.
    pub public_url: Option<String>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            available_after: Duration::from_secs(1),
            notification_format: None,
            token_ttl: Duration::from_secs(3600),
            require_auth: false,
            bearer_token: None,
            client_credentials: None,
            api_key: None,
            client_secret_file: None,
            api_key_file: None,
            terminated_retention: Duration::from_secs(360),
            notification_retry: RetryPolicy::default(),
            public_url: None,
        }
    }
}

/// Errors of setting the simulator up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the {what} from {}", path.display())]
    ReadSecret {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the {what} file {} is empty", path.display())]
    EmptySecret { what: &'static str, path: PathBuf },
    #[error("failed to build the HTTP client for notifications")]
    HttpClient(#[source] reqwest::Error),
}

/// Reads a secret from a file (a mounted Secret), without trailing whitespace.
pub fn read_secret_file(what: &'static str, path: &Path) -> Result<SecretString, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadSecret {
        what,
        path: path.to_owned(),
        source,
    })?;
    let trimmed = text.trim_end();
    if trimmed.is_empty() {
        return Err(Error::EmptySecret {
            what,
            path: path.to_owned(),
        });
    }
    Ok(SecretString::from(trimmed.to_owned()))
}

/// Parses a `--notification-format` value: `v1`, `v0.11`, `v0.10` or `nac`.
pub fn parse_notification_format(text: &str) -> Result<NotificationFormat, String> {
    match text {
        "v1" => Ok(NotificationFormat::V1),
        "v0.11" => Ok(NotificationFormat::V0_11),
        "v0.10" => Ok(NotificationFormat::V0_10),
        "nac" => Ok(NotificationFormat::NacHybrid),
        other => Err(format!(
            "unknown notification format `{other}`; expected v1, v0.11, v0.10 or nac"
        )),
    }
}

/// The name [`parse_notification_format`] accepts for `format`.
pub fn format_name(format: NotificationFormat) -> &'static str {
    match format {
        NotificationFormat::V1 => "v1",
        NotificationFormat::V0_11 => "v0.11",
        NotificationFormat::V0_10 => "v0.10",
        NotificationFormat::NacHybrid => "nac",
    }
}

/// Everything the handlers and background tasks share.
struct SimulatorState {
    config: SimulatorConfig,
    clock: clock::Clock,
    /// Base of the CloudEvent `source` URLs.
    base_url: String,
    store: Mutex<store::Store>,
    /// The QoS profiles on offer; changed through `/_sim/profiles`.
    profiles: Mutex<profiles::Table>,
    /// A watch channel, so held answers ([`Faults::hold_answers`]) learn when they are released.
    faults: watch::Sender<Faults>,
    tokens: Mutex<client_auth::Tokens>,
    /// The static bearer token accepted besides issued ones: `SimulatorConfig::bearer_token` at start,
    /// replaced by `PUT /_sim/auth` (a credential rotation at the provider).
    bearer_token: Mutex<Option<SecretString>>,
    /// The client secret the token endpoint accepts, when it checks one.
    client_secret: Option<client_auth::WatchedSecret>,
    /// The `X-RapidAPI-Key` NaC calls must carry, when one is configured.
    api_key: Option<client_auth::WatchedSecret>,
    stats: stats::Stats,
    /// Wakes the scheduler after a change of deadlines.
    wake: Notify,
    http: reqwest::Client,
    tasks: TaskTracker,
    /// Cancelled on shutdown.
    cancel: CancellationToken,
    /// Cancelled (and replaced) on reset, so in-flight deliveries of forgotten sessions stop.
    generation: Mutex<CancellationToken>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimulatorState {
    fn store(&self) -> MutexGuard<'_, store::Store> {
        lock(&self.store)
    }

    fn profiles(&self) -> MutexGuard<'_, profiles::Table> {
        lock(&self.profiles)
    }

    fn tokens(&self) -> MutexGuard<'_, client_auth::Tokens> {
        lock(&self.tokens)
    }

    fn bearer_token(&self) -> Option<SecretString> {
        lock(&self.bearer_token).clone()
    }

    fn set_bearer_token(&self, token: Option<SecretString>) {
        *lock(&self.bearer_token) = token;
    }

    fn faults(&self) -> Faults {
        self.faults.borrow().clone()
    }

    fn set_faults(&self, faults: Faults) {
        self.faults.send_replace(faults);
    }

    /// Returns once `holdAnswers` is cleared (a reset clears it too) or the simulator stops.
    async fn answers_released(&self) {
        let mut faults = self.faults.subscribe();
        tokio::select! {
            _ = faults.wait_for(|faults| !faults.hold_answers) => {}
            () = self.cancel.cancelled() => {}
        }
    }

    fn generation(&self) -> CancellationToken {
        lock(&self.generation).clone()
    }

    /// Adds a delivery record to a session (live or removed).
    fn record(&self, session_id: Uuid, delivery: notifier::Delivery) {
        if let Some(session) = self.store().any_mut(&session_id) {
            session.deliveries.push(delivery);
        }
    }

    /// Changes the latest delivery record of `event_id` (the copy when `duplicate`).
    fn update(
        &self,
        session_id: Uuid,
        event_id: &str,
        duplicate: bool,
        change: impl FnOnce(&mut notifier::Delivery),
    ) {
        let mut store = self.store();
        let Some(session) = store.any_mut(&session_id) else {
            return;
        };
        if let Some(delivery) = session
            .deliveries
            .iter_mut()
            .rev()
            .find(|d| d.event_id == event_id && d.duplicate == duplicate)
        {
            change(delivery);
        }
    }

    /// Forgets sessions (no notifications), stops their deliveries, clears faults and counters,
    /// restores the built-in profiles. Issued tokens stay valid.
    fn reset(&self) {
        let fresh = self.cancel.child_token();
        let previous = std::mem::replace(&mut *lock(&self.generation), fresh);
        previous.cancel();
        self.store().clear();
        *self.profiles() = profiles::Table::builtin();
        self.set_faults(Faults::default());
        self.stats.reset();
        self.wake.notify_one();
    }
}

/// A simulator: a handle to the state its handlers and background tasks share, which is what
/// [`router`] serves. Create it inside a tokio runtime: it starts the lifecycle scheduler.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<SimulatorState>,
}

impl Simulator {
    /// A simulator whose CloudEvent sources start with `base_url` (unless the config names a
    /// public URL).
    pub fn new(config: SimulatorConfig, base_url: impl Into<String>) -> Result<Self, Error> {
        let http = crate::tls::http_client_builder()
            .connect_timeout(config.notification_retry.timeout)
            .build()
            .map_err(Error::HttpClient)?;
        let cancel = CancellationToken::new();
        let base_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| base_url.into())
            .trim_end_matches('/')
            .to_owned();
        let shared = Arc::new(SimulatorState {
            clock: clock::Clock::start(),
            base_url,
            store: Mutex::default(),
            profiles: Mutex::new(profiles::Table::builtin()),
            faults: watch::Sender::new(Faults::default()),
            tokens: Mutex::default(),
            bearer_token: Mutex::new(config.bearer_token.clone()),
            client_secret: config.client_credentials.as_ref().map(|c| {
                client_auth::WatchedSecret::new(
                    "client secret",
                    c.client_secret.clone(),
                    config.client_secret_file.clone(),
                )
            }),
            api_key: config.api_key.clone().map(|key| {
                client_auth::WatchedSecret::new("API key", key, config.api_key_file.clone())
            }),
            stats: stats::Stats::default(),
            wake: Notify::new(),
            http,
            tasks: TaskTracker::new(),
            generation: Mutex::new(cancel.child_token()),
            cancel,
            config,
        });
        shared.tasks.spawn(lifecycle::run(Arc::clone(&shared)));
        Ok(Self { shared })
    }

    /// Stops the scheduler and every notifier and waits for them.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}

/// The simulator's HTTP routes.
pub fn router(state: Simulator) -> Router {
    let mut router = Router::new();
    for version in ApiVersion::ALL {
        router = router.nest(version.base_path(), api::routes(version));
    }
    router
        .nest(crate::qod::profiles::BASE_PATH, profile_api::routes())
        .nest("/_sim", control::routes())
        .route(
            "/oauth/token",
            axum::routing::post(client_auth::token_endpoint),
        )
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            reply::ApiError::not_found("no such path at this QoD simulator").render(
                ApiVersion::V1,
                reply::Dialect::Camara,
                None,
            )
        })
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, "method not allowed").into_response()
        })
        .with_state(state.shared)
}

/// A simulator serving on a socket.
pub struct RunningSimulator {
    base_url: String,
    state: Simulator,
    server: JoinHandle<io::Result<()>>,
}

impl RunningSimulator {
    /// `http://<address>:<port>`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stops accepting requests, lets running ones finish, and stops the background tasks.
    pub async fn shutdown(self) {
        self.state.shared.cancel.cancel();
        match self.server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "the simulator's server ended with an error"
            ),
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "the simulator's server task failed"
            ),
        }
        self.state.shutdown().await;
    }

    /// Waits until the server stops on its own (it only does on an I/O error or shutdown).
    pub async fn wait(&mut self) -> io::Result<()> {
        match (&mut self.server).await {
            Ok(result) => result,
            Err(error) => Err(io::Error::other(error)),
        }
    }
}

/// Serves a simulator on `listener` until [`RunningSimulator::shutdown`].
pub async fn spawn(listener: TcpListener, config: SimulatorConfig) -> io::Result<RunningSimulator> {
    let local_addr = listener.local_addr()?;
    let base_url = format!("http://{local_addr}");
    let state = Simulator::new(config, base_url.clone()).map_err(io::Error::other)?;
    let app = router(state.clone());
    let shutdown = state.shared.cancel.clone().cancelled_owned();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    tracing::info!(%local_addr, "QoD simulator listening");
    Ok(RunningSimulator {
        base_url,
        state,
        server,
    })
}
