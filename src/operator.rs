//! `qod-operator run`: wires the controller, the notification webhook, the probes and, with
//! `--simulator` (feature `simulator`), an in-process QoD simulator, and stops them together on
//! shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        events::Reporter,
        wait::{await_condition, conditions},
    },
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    api::{self, CONTROLLER_MANAGER},
    cache::SessionCache,
    config::{ConfigError, ControllerArgs, ProviderArgs},
    controller::{self, Sink, events::EventPublisher},
    leader::{self, LeaderArgs, LeaderError, Term},
    metrics::Metrics,
    probes,
    profiles::{ProfileCatalog, ProfileSync},
    providers::{self, ClientFactory, ProviderRegistry},
    qod,
    services::ServiceAddresses,
    webhook::{self, Webhook, args::WebhookArgs},
};

/// Everything `run` is told.
#[derive(Clone, Debug)]
pub struct RunArgs {
    pub provider: ProviderArgs,
    pub controller: ControllerArgs,
    pub webhook: WebhookArgs,
    pub leader: LeaderArgs,
}

/// Why the operator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid settings")]
    Config(#[from] ConfigError),
    #[error("invalid webhook settings")]
    Webhook(#[from] webhook::args::ArgsError),
    #[error("invalid QoD provider settings")]
    Provider(#[source] qod::Error),
    #[error("cannot reach the Kubernetes API (kubeconfig or in-cluster settings)")]
    Kubernetes(#[source] kube::Error),
    #[error("cannot install the CRD {name}")]
    InstallCrd {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the CRD {name} was not established within {within:?}")]
    CrdNotEstablished { name: String, within: Duration },
    #[error("cannot listen on {addr} ({what})")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[cfg(feature = "simulator")]
    #[error("cannot start the built-in simulator")]
    Simulator(#[source] std::io::Error),
    #[error("--webhook-public-url is required: the provider must be able to reach the webhook")]
    MissingPublicUrl,
    #[error("the {0} server failed")]
    Serve(&'static str, #[source] std::io::Error),
    #[error("leader election failed")]
    Leader(#[from] LeaderError),
}

/// How long `--install-crd` waits for the API server to establish the CRD.
const CRD_ESTABLISHED_WITHIN: Duration = Duration::from_secs(30);

/// Runs the operator until `shutdown` is cancelled.
pub async fn run(args: RunArgs, shutdown: CancellationToken) -> Result<(), RunError> {
    let mut controller_config = args.controller.controller_config()?;
    let keys = args.webhook.keys()?;
    let webhook_config = args.webhook.config(keys.clone())?;

    crate::tls::install_crypto_provider();
    let client = Client::try_default().await.map_err(RunError::Kubernetes)?;
    if args.controller.install_crd {
        install_crds(&client).await?;
    }

    let webhook_listener = bind("webhook", args.webhook.webhook_listen).await?;
    let probe_listener = bind("probes", args.controller.probe_listen).await?;
    let webhook_port = webhook_listener
        .local_addr()
        .map_err(|source| RunError::Listen {
            what: "webhook",
            addr: args.webhook.webhook_listen,
            source,
        })?
        .port();

    #[cfg(feature = "simulator")]
    let simulator = if args.provider.simulator {
        Some(start_simulator().await?)
    } else {
        None
    };
    #[cfg(feature = "simulator")]
    let simulator_url = simulator.as_ref().map(|sim| sim.base_url().to_owned());
    // Built without the simulator, there is no --simulator flag.
    #[cfg(not(feature = "simulator"))]
    let simulator_url: Option<String> = None;
    let provider_url = match &simulator_url {
        Some(url) => Some(format!("{url}/quality-on-demand/v1")),
        None => args.provider.provider_url.clone(),
    };
    let metrics = Arc::new(Metrics::new());
    // The flags' provider serves the QodSessions without a providerRef; without one, only
    // sessions that name a provider resource are served.
    let default_provider = match &provider_url {
        Some(url) => Some(
            qod::provider::build(args.provider.provider_config(url)?)
                .map_err(RunError::Provider)?,
        ),
        None => {
            info!(
                "no --provider-url and no --simulator: only QodSessions with a providerRef are served"
            );
            None
        }
    };
    // Every provider resource's client, with the flags' provider as the default. Kept in step
    // by its watches on every replica.
    let settings = providers::ClientSettings {
        timeouts: args.provider.timeouts(),
        cluster_resource_namespace: args
            .provider
            .cluster_resource_namespace
            .clone()
            .unwrap_or_else(|| args.leader.lease_namespace.clone()),
    };
    let registry = Arc::new(ProviderRegistry::new(
        Box::new(ClientFactory::new(client.clone(), settings)),
        default_provider,
    ));
    let public_url = match (&args.webhook.webhook_public_url, &simulator_url) {
        (Some(url), _) => url.clone(),
        // The in-process simulator reaches the webhook on this machine.
        (None, Some(_)) => format!("http://127.0.0.1:{webhook_port}"),
        (None, None) => return Err(RunError::MissingPublicUrl),
    };
    if keys.is_file_backed() {
        info!(public_url, "notification sinks");
    } else {
        warn!(
            public_url,
            "no --hmac-key-file: sink tokens use a random key, so notifications of sessions \
             created before a restart will be refused until the next resync"
        );
    }

    // One watch of the QodSessions for the webhook (every replica) and the controller (the
    // leader).
    let cache = SessionCache::start(client.clone(), args.controller.namespace.as_deref());
    let webhook = Webhook::new(
        client.clone(),
        cache.clone(),
        webhook_config,
        metrics.clone(),
    );
    controller_config.metrics = metrics.clone();
    let elect = args.leader.leader_election;
    let ready = probes::Ready::new(webhook.readiness(), !elect);
    metrics.set_leader(!elect);
    let sink = Sink::new(&public_url, Arc::new(keys));

    let serve_webhook = webhook.serve(webhook_listener, shutdown.clone().cancelled_owned());
    let serve_probes = probes::serve(
        probe_listener,
        ready.clone(),
        metrics.clone(),
        cache.clone(),
        shutdown.clone().cancelled_owned(),
    );
    let namespace = args.controller.namespace.clone();
    let profiles = Arc::new(ProfileCatalog::new(metrics.clone()));
    controller_config.profiles = Some(Arc::clone(&profiles));
    let services = Arc::new(ServiceAddresses::default());
    controller_config.services = Some(Arc::clone(&services));
    let reconcile = |stop: CancellationToken| {
        let (client, cache, ready, providers) = (
            client.clone(),
            cache.clone(),
            ready.clone(),
            Arc::clone(&registry),
        );
        let profile_sync = ProfileSync {
            client: client.clone(),
            catalog: Arc::clone(&profiles),
            registry: Arc::clone(&registry),
            cache: cache.clone(),
            events: EventPublisher::new(
                client.clone(),
                Reporter {
                    controller: "qod-operator".into(),
                    instance: args.controller.pod_name.clone(),
                },
            ),
            installation: args.leader.lease_namespace.clone(),
            refresh: args.controller.profile_refresh,
        };
        async move {
            ready.set_controller_running(true);
            // The sessions' controller, the providers' keeper and the profile sync write, so
            // they run on the leader only.
            tokio::join!(
                controller::run(
                    client.clone(),
                    cache.clone(),
                    Arc::clone(&providers),
                    sink,
                    controller_config,
                    stop.clone().cancelled_owned(),
                ),
                providers::keeper::run(
                    client,
                    cache,
                    providers,
                    namespace.as_deref(),
                    stop.clone()
                ),
                profile_sync.run(stop),
            );
            ready.set_controller_running(false);
        }
    };
    let run_controller = async {
        let term = if elect {
            let identity = args
                .controller
                .pod_name
                .clone()
                .unwrap_or_else(|| format!("qod-operator-{}", uuid::Uuid::new_v4()));
            let on_change = |leading: bool| {
                ready.set_leading(leading);
                metrics.set_leader(leading);
            };
            leader::lead(
                client.clone(),
                &args.leader,
                identity,
                shutdown.clone(),
                on_change,
                reconcile,
            )
            .await
        } else {
            reconcile(shutdown.clone()).await;
            Ok(Term::Shutdown)
        };
        // Whatever stopped the controller stops the rest too.
        shutdown.cancel();
        term
    };
    let watch_providers = providers::watch::run(
        Arc::clone(&registry),
        client.clone(),
        args.controller.namespace.as_deref(),
        shutdown.clone(),
        |namespace| {
            cache.retrigger(|session| {
                session.namespace().as_deref() == Some(namespace)
                    && session.spec.provider_ref.is_some()
            });
        },
    );
    // Every replica keeps the Services' addresses, as it keeps the providers.
    let watch_services = services.run(
        client.clone(),
        args.controller.namespace.as_deref(),
        cache.clone(),
        shutdown.clone(),
    );
    let (webhook_result, probes_result, term, (), ()) = tokio::join!(
        serve_webhook,
        serve_probes,
        run_controller,
        watch_providers,
        watch_services
    );
    #[cfg(feature = "simulator")]
    if let Some(sim) = simulator {
        sim.shutdown().await;
    }
    webhook_result.map_err(|e| RunError::Serve("webhook", e))?;
    probes_result.map_err(|e| RunError::Serve("probe", e))?;
    if term? == Term::Lost {
        return Err(LeaderError::Lost.into());
    }
    info!("stopped");
    Ok(())
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Listen { what, addr, source })
}

#[cfg(feature = "simulator")]
async fn start_simulator() -> Result<crate::simulator::RunningSimulator, RunError> {
    use crate::simulator;

    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(RunError::Simulator)?;
    let sim = simulator::spawn(listener, simulator::SimulatorConfig::default())
        .await
        .map_err(RunError::Simulator)?;
    info!(url = sim.base_url(), "built-in QoD simulator running");
    Ok(sim)
}

/// Applies every CRD of the operator by server-side apply and waits until the API server serves
/// them.
async fn install_crds(client: &Client) -> Result<(), RunError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in api::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(
            &name,
            &PatchParams::apply(CONTROLLER_MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(|source| RunError::InstallCrd {
            name: name.clone(),
            source,
        })?;
    }
    // All applied first, so the API server establishes them in parallel.
    for crd in api::crds() {
        let name = crd.metadata.name.unwrap_or_default();
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(CRD_ESTABLISHED_WITHIN, established).await {
            Ok(Ok(_)) => info!(crd = name, "CRD installed"),
            Ok(Err(error)) => {
                return Err(RunError::InstallCrd {
                    name,
                    source: kube::Error::Service(Box::new(error)),
                });
            }
            Err(_) => {
                return Err(RunError::CrdNotEstablished {
                    name,
                    within: CRD_ESTABLISHED_WITHIN,
                });
            }
        }
    }
    Ok(())
}
