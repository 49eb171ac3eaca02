//! Starting and stopping an emulator, and the kubeconfig and clients that reach it.

use crate::auth::{AlwaysAllow, Authorizer, Rbac, UserInfo};
use crate::http::{Shared, router};
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which authorizer runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Authorization {
    /// Every authenticated (or anonymous, when allowed) request is allowed.
    #[default]
    AlwaysAllow,
    /// RBAC objects in the store decide; `system:masters` (the admin token) may do anything.
    Rbac,
}

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind; `127.0.0.1:0` picks a free port.
    pub listen: SocketAddr,
    /// How many change events the watch history keeps.
    pub history_limit: usize,
    /// Period of watch BOOKMARK events.
    pub bookmark_interval: Duration,
    /// Watch timeout when the client sends no `timeoutSeconds`.
    pub default_watch_timeout: Duration,
    /// Authorizer.
    pub authorization: Authorization,
    /// Serve requests without a bearer token as `system:anonymous`.
    pub allow_anonymous: bool,
    /// The admin bearer token (group `system:masters`) written into the kubeconfig.
    pub admin_token: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(30),
            default_watch_timeout: Duration::from_secs(1800),
            authorization: Authorization::AlwaysAllow,
            allow_anonymous: true,
            admin_token: "kube-emulator-admin-token".to_string(),
        }
    }
}

/// Errors while starting the emulator or building a client for it.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Binding the listener failed.
    #[error("failed to bind {addr}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig could not be parsed by kube.
    #[error("failed to load the generated kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// kube could not build a client.
    #[error("failed to build a kube client")]
    Client(#[source] kube::Error),
}

/// Entry point.
#[derive(Debug, Clone, Copy)]
pub struct Emulator;

impl Emulator {
    /// Binds, starts serving in the background and returns a handle.
    pub async fn start(opts: Options) -> Result<RunningEmulator, StartError> {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: opts.listen,
            source,
        })?;
        let mut store = Store::new(opts.history_limit);
        store
            .tokens
            .insert(opts.admin_token.clone(), UserInfo::admin());
        crate::bootstrap::seed(&mut store);
        let store = Arc::new(Mutex::new(store));
        let authorizer: Arc<dyn Authorizer> = match opts.authorization {
            Authorization::AlwaysAllow => Arc::new(AlwaysAllow),
            Authorization::Rbac => Arc::new(Rbac),
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            store: store.clone(),
            authorizer,
            server_address: addr.to_string(),
            bookmark_interval: opts.bookmark_interval,
            default_watch_timeout: opts.default_watch_timeout,
            allow_anonymous: opts.allow_anonymous,
            shutdown: stop_rx.clone(),
        });
        let app = router(shared);
        let mut graceful = stop_rx;
        let task = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = graceful.changed().await;
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(
                    error = &e as &dyn std::error::Error,
                    "kube-emulator server stopped"
                );
            }
        });
        tracing::debug!(%addr, "kube-emulator listening");
        Ok(RunningEmulator {
            addr,
            store,
            admin_token: opts.admin_token,
            stop: stop_tx,
            task: Some(task),
        })
    }
}

/// A running emulator. Dropping it stops the server (open watches end).
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    store: Arc<Mutex<Store>>,
    admin_token: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A kubeconfig for the admin user, with `default` as the namespace.
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_for_token(&self.admin_token)
    }

    /// A kubeconfig that authenticates with `token`.
    pub fn kubeconfig_yaml_for_token(&self, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-emulator\n  cluster:\n    server: {url}\ncontexts:\n- name: kube-emulator\n  context:\n    cluster: kube-emulator\n    user: kube-emulator-user\n    namespace: default\ncurrent-context: kube-emulator\nusers:\n- name: kube-emulator-user\n  user:\n    token: {token:?}\npreferences: {{}}\n",
            url = self.url(),
        )
    }

    /// Writes the admin kubeconfig to a file.
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// Registers a bearer token for a user (e.g. a service account).
    pub fn add_token(&self, token: &str, user: UserInfo) {
        let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
        store.tokens.insert(token.to_string(), user);
    }

    /// A kube client for the admin user.
    pub async fn client(&self) -> Result<kube::Client, StartError> {
        self.client_with_token(&self.admin_token).await
    }

    /// A kube client authenticating with `token`.
    pub async fn client_with_token(&self, token: &str) -> Result<kube::Client, StartError> {
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml_for_token(token))
                .map_err(StartError::Kubeconfig)?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(StartError::Kubeconfig)?;
        kube::Client::try_from(config).map_err(StartError::Client)
    }

    /// The current global resourceVersion (for tests that reason about history).
    pub fn current_resource_version(&self) -> u64 {
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .current_rv()
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
