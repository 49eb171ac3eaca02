//! Reconciling `QodSession`s with the QoD provider. A pure planner ([`plan`]) decides the next
//! step from the resource and the clock; [`reconcile`] carries it out (at most one provider call
//! per pass) and records the outcome in status ([`status_change`]) and Events ([`events`]); [`backoff`]
//! spaces out retries.

pub mod backoff;
pub mod events;
pub mod import;
pub mod own_write;
mod per_resource;
pub mod plan;
#[cfg(test)]
mod plan_tests;
pub mod profile_check;
pub mod provider_choice;
pub mod provider_health;
pub mod reconcile;
pub mod status_change;
pub mod wakeups;

use std::{future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Client, ResourceExt,
    runtime::{
        Controller,
        controller::{self, Action},
        events::Reporter,
    },
};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::events::EventPublisher;
use crate::{
    api::QodSession, cache::SessionCache, metrics::Metrics, profiles::ProfileCatalog,
    providers::ProviderRegistry, qod, services::ServiceAddresses, sink_keys::SinkKeys,
    telemetry::error_chain,
};

/// Issues the bearer token the provider must present when it notifies about a resource's
/// session; the webhook checks it. Implemented by the HMAC keys ([`SinkKeys`]).
pub trait SinkTokens: Send + Sync {
    fn token_for(&self, uid: &str) -> SecretString;
}

impl SinkTokens for SinkKeys {
    fn token_for(&self, uid: &str) -> SecretString {
        SinkKeys::token_for(self, uid)
    }
}

/// Where providers send notifications, and the tokens they present.
#[derive(Clone)]
pub struct Sink {
    /// The webhook's public URL; sinks are `<public_url>/notifications/<uid>`.
    pub public_url: String,
    pub tokens: Arc<dyn SinkTokens>,
}

impl Sink {
    pub fn new(public_url: &str, tokens: Arc<dyn SinkTokens>) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            tokens,
        }
    }

    /// The sink URL of the resource with `uid`.
    pub fn url_for(&self, uid: &str) -> String {
        format!("{}/notifications/{uid}", self.public_url)
    }

    /// Whether `url` is a sink for `uid` (how a lost session is recognised). Any host counts:
    /// the public URL may have changed since the session was made, and the uid alone names
    /// the resource.
    pub fn is_sink_of(url: &str, uid: &str) -> bool {
        url.trim_end_matches('/')
            .strip_suffix(uid)
            .is_some_and(|rest| rest.ends_with("/notifications/"))
    }
}

/// Passes in flight overall for each pass a single provider may have in flight.
const PASSES_PER_PROVIDER_SLOT: u16 = 4;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Passes that talk to one provider at the same time (each provider rate-limits); four
    /// times as many passes run at once overall.
    pub concurrency: u16,
    /// The planner's timing.
    pub planner: plan::PlannerSettings,
    /// Shown as the reporting instance of Events (the pod name in a cluster).
    pub instance: Option<String>,
    /// Where reconcile passes are counted and timed.
    pub metrics: Arc<Metrics>,
    /// The providers' QoS profiles, shared with the sync that keeps them; `None`: one of the
    /// controller's own, filled on demand.
    pub profiles: Option<Arc<ProfileCatalog>>,
    /// The Services' addresses, kept by their watch; `None`: none are known (sessions naming a
    /// Service wait).
    pub services: Option<Arc<ServiceAddresses>>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            planner: plan::PlannerSettings::default(),
            instance: None,
            metrics: Arc::new(Metrics::new()),
            profiles: None,
            services: None,
        }
    }
}

/// What every reconcile pass shares.
pub struct Context {
    pub client: Client,
    /// The providers, and which one each step uses.
    pub providers: provider_choice::Providers,
    /// What the providers' QoS Profiles APIs list, checked before a create.
    pub profiles: Arc<ProfileCatalog>,
    /// The external addresses of the Services sessions may name.
    pub services: Arc<ServiceAddresses>,
    pub sink: Sink,
    pub planner: plan::PlannerSettings,
    pub events: EventPublisher,
    pub backoff: backoff::Backoff,
    pub metrics: Arc<Metrics>,
    /// The shared watch, to tell which resources still exist.
    pub cache: SessionCache,
    /// Cancelled when the controller must stop (shutdown, or leadership lost): passes in
    /// flight are abandoned at once and none starts, so a replica that no longer leads makes
    /// no provider call.
    pub stop: CancellationToken,
    /// Our last write of each resource, or the copy a write was refused for, so a pass never
    /// plans from a cached copy known to be stale.
    pub own_writes: per_resource::PerResource<own_write::OwnWrite>,
    /// When each resource's session was last read without finding anything new. Such reads are
    /// not written: one per session every resync interval would, at 100,000 sessions, be most
    /// of what the API server can write.
    pub quiet_reads: per_resource::PerResource<Option<jiff::Timestamp>>,
    /// When each resource's next pass is due after a wait.
    pub wakeups: wakeups::Wakeups,
}

/// Why a reconcile pass failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} at the QoD provider failed")]
    Provider {
        action: &'static str,
        #[source]
        source: qod::Error,
    },
    #[error("could not {action} the QodSession")]
    Kube {
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("the QodSession has no {0}")]
    MissingMetadata(&'static str),
}

impl Error {
    /// Whether the same pass can succeed later without a human changing something.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Provider { source, .. } => {
                source.is_retryable() || source.may_have_created() || source.status() == Some(409)
            }
            Self::Kube { .. } => true,
            Self::MissingMetadata(_) => false,
        }
    }

    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Provider { source, .. } => source.metric_label(),
            Self::Kube { .. } => "kubernetes",
            Self::MissingMetadata(_) => "invalid_object",
        }
    }

    /// The write lost an optimistic-lock race (HTTP 409 from the Kubernetes API).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Kube { source: kube::Error::Api(status), .. } if status.code == 409)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Provider { source, .. } => source.retry_after(),
            _ => None,
        }
    }
}

/// The wait before re-reading after a write lost an optimistic-lock race.
const CONFLICT_RETRY: Duration = Duration::from_millis(200);

/// Runs the controller over the resources in `cache` until `shutdown` resolves. It reconciles
/// every cached resource once, then each as it changes.
pub async fn run(
    client: Client,
    cache: SessionCache,
    providers: Arc<ProviderRegistry>,
    sink: Sink,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let reporter = Reporter {
        controller: "qod-operator".into(),
        instance: config.instance.clone(),
    };
    let context = Arc::new(Context {
        events: EventPublisher::new(client.clone(), reporter),
        client,
        providers: provider_choice::Providers::new(
            providers,
            Arc::clone(&config.metrics),
            config.concurrency,
        ),
        profiles: config
            .profiles
            .unwrap_or_else(|| Arc::new(ProfileCatalog::new(Arc::clone(&config.metrics)))),
        services: config.services.unwrap_or_default(),
        sink,
        planner: config.planner,
        backoff: backoff::Backoff::default(),
        metrics: config.metrics,
        cache: cache.clone(),
        stop: CancellationToken::new(),
        own_writes: per_resource::PerResource::default(),
        quiet_reads: per_resource::PerResource::default(),
        wakeups: wakeups::Wakeups::default(),
    });
    info!("controller starting");
    let stopping = {
        let stop = context.stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        })
    };
    let waking = {
        let context = Arc::clone(&context);
        tokio::spawn(async move { context.wakeups.run(&context.cache, &context.stop).await })
    };
    Controller::for_shared_stream(cache.changes(), cache.store())
        // Passes that talk to a provider are limited per provider (`Providers::begin`); the
        // overall bound keeps the rest (finalizers, status-only passes) from flooding the API.
        .with_config(
            controller::Config::default()
                .concurrency(config.concurrency.saturating_mul(PASSES_PER_PROVIDER_SLOT)),
        )
        .graceful_shutdown_on(context.stop.clone().cancelled_owned())
        .run(reconcile::reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                match error {
                    controller::Error::ReconcilerFailed(..) => {}
                    // Deleted before its queued pass ran: nothing left to do.
                    controller::Error::ObjectNotFound(object) => {
                        debug!(object = %object, "deleted before its pass");
                    }
                    other => warn!(error = %other, "controller"),
                }
            }
        })
        .await;
    stopping.abort();
    waking.abort();
    info!("controller stopped");
}

/// Spaces out retries: transient errors back off exponentially (honouring `Retry-After`),
/// errors that need a human back off long. Never a hot loop.
fn error_policy(session: Arc<QodSession>, error: &Error, context: Arc<Context>) -> Action {
    if error.is_conflict() {
        context.metrics.reconcile_conflict();
        if let (Some(uid), Some(at)) = (session.uid(), session.resource_version()) {
            context.own_writes.update(
                &uid,
                |uid| context.cache.by_uid(uid).is_some(),
                |last| *last = own_write::OwnWrite::Refused { at },
            );
        }
        // Our cached copy was older than the stored one (often our own previous write): plan
        // again once the watch brings a newer one (the next pass skips this copy). Optimistic
        // locking doing its job, not a failure.
        debug!(error = %error_chain(error), "stale copy; retrying");
        return Action::requeue(CONFLICT_RETRY);
    }
    context.metrics.reconcile_error(error.metric_label());
    let key = session.uid().unwrap_or_default();
    let delay = if error.is_transient() {
        context.backoff.next(&key, error.retry_after(), |uid| {
            context.cache.by_uid(uid).is_some()
        })
    } else {
        backoff::PERMANENT
    };
    warn!(
        error = %error_chain(error),
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_are_recognised_by_their_uid() {
        let uid = "0b7e9f0e-6c1a-4a55-9f3d-2d9c1b8e4a10";
        assert!(Sink::is_sink_of(
            &format!("https://op.example.org/qod/notifications/{uid}"),
            uid
        ));
        assert!(Sink::is_sink_of(
            &format!("http://127.0.0.1:8443/notifications/{uid}/"),
            uid
        ));
        assert!(!Sink::is_sink_of(
            "https://op.example.org/notifications/another-uid",
            uid
        ));
        assert!(!Sink::is_sink_of(&format!("https://x/{uid}"), uid));
    }
}
