//! The provider resources' own reconciler (leader only): it holds each provider's finalizer
//! while QodSessions use it, so deleting a provider waits for them and no session is left at a
//! provider the operator no longer knows; it reports `Ready` (the spec builds a client and its
//! credentials can be obtained) and the number of live sessions; and it brings the QodSessions
//! that name a provider back to the controller when the provider changes, so a session waiting
//! for it (ProviderNotFound, CredentialsNotFound, a quota) goes on at once.

use std::{
    collections::HashMap,
    fmt::Debug,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{Controller, controller::Action, watcher},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    ProviderKey, ProviderRegistry,
    usage::{live_sessions_at, names},
};
use crate::{
    api::{
        CONTROLLER_MANAGER, ClusterQodProvider, PROVIDER_FINALIZER, ProviderRef, ProviderStatus,
        QodProvider, conditions, conditions::reason,
    },
    cache::SessionCache,
    finalizers,
};

/// How often a provider's status is brought up to date without any change to it.
const RESYNC: Duration = Duration::from_secs(30);
/// How soon a provider being deleted looks again at the sessions that hold it.
const DELETION_RECHECK: Duration = Duration::from_secs(5);

/// What the two provider kinds share for the keeper.
pub trait ProviderObject:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
    fn key(&self) -> ProviderKey;
    fn status(&self) -> Option<&ProviderStatus>;
    /// The API to write this object through.
    fn api(&self, client: Client) -> Api<Self>;
}

impl ProviderObject for QodProvider {
    fn key(&self) -> ProviderKey {
        ProviderKey::qod_provider(self.namespace().unwrap_or_default(), self.name_any())
    }
    fn status(&self) -> Option<&ProviderStatus> {
        self.status.as_ref()
    }
    fn api(&self, client: Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }
}

impl ProviderObject for ClusterQodProvider {
    fn key(&self) -> ProviderKey {
        ProviderKey::cluster_provider(self.name_any())
    }
    fn status(&self) -> Option<&ProviderStatus> {
        self.status.as_ref()
    }
    fn api(&self, client: Client) -> Api<Self> {
        Api::all(client)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not {action} {provider}")]
    Kube {
        action: &'static str,
        provider: String,
        #[source]
        source: kube::Error,
    },
}

struct Keeper {
    client: Client,
    cache: SessionCache,
    registry: Arc<ProviderRegistry>,
    /// The spec generation and readiness each provider last had, to bring its sessions back
    /// only when either changes.
    seen: Mutex<HashMap<ProviderKey, (Option<i64>, String)>>,
}

/// Runs the keeper for both kinds until `stop` is cancelled. `namespace` confines QodProviders
/// (the operator's `--namespace`).
pub async fn run(
    client: Client,
    cache: SessionCache,
    registry: Arc<ProviderRegistry>,
    namespace: Option<&str>,
    stop: CancellationToken,
) {
    let keeper = Arc::new(Keeper {
        client: client.clone(),
        cache,
        registry,
        seen: Mutex::default(),
    });
    let namespaced: Api<QodProvider> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    tokio::join!(
        keep(namespaced, Arc::clone(&keeper), stop.clone()),
        keep(Api::<ClusterQodProvider>::all(client), keeper, stop),
    );
}

async fn keep<K: ProviderObject>(api: Api<K>, keeper: Arc<Keeper>, stop: CancellationToken) {
    let passes = Controller::new(api, watcher::Config::default())
        .run(reconcile::<K>, error_policy::<K>, keeper)
        .for_each(|result| async move {
            if let Err(error) = result {
                debug!(error = %error, "provider keeper");
            }
        });
    // Abandoning a pass anywhere is safe: each step is one idempotent write, done again by the
    // next leader.
    tokio::select! {
        () = stop.cancelled() => {}
        () = passes => {}
    }
}

fn error_policy<K: ProviderObject>(provider: Arc<K>, error: &Error, _: Arc<Keeper>) -> Action {
    warn!(provider = %provider.key(), error = %crate::telemetry::error_chain(error), "keeping the provider failed");
    Action::requeue(Duration::from_secs(10))
}

async fn reconcile<K: ProviderObject>(
    provider: Arc<K>,
    keeper: Arc<Keeper>,
) -> Result<Action, Error> {
    let key = provider.key();
    let api = provider.api(keeper.client.clone());
    let sessions = keeper.cache.store().state();
    let recorded_as = ProviderRef {
        kind: key.kind,
        name: key.name.clone(),
    }
    .key();
    let live = live_sessions_at(
        sessions.iter().map(AsRef::as_ref),
        key.namespace.as_deref().unwrap_or_default(),
        &recorded_as,
        "",
    );
    let naming = sessions.iter().filter(|s| names(s, &key)).count();
    let has_finalizer = provider
        .finalizers()
        .iter()
        .any(|f| f == PROVIDER_FINALIZER);
    let now = Timestamp::now();

    if provider.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        if live == 0 && naming == 0 {
            remove_finalizer(&api, provider.as_ref(), &key).await?;
            info!(provider = %key, "no QodSession uses the provider any more; deletion goes ahead");
            keeper.retrigger(&key);
            return Ok(Action::await_change());
        }
        let ready = conditions::ready(
            "False",
            "Deleting",
            format!(
                "deletion waits for the QodSessions that use this provider: {live} with a \
                 session at it, {naming} naming it in providerRef"
            ),
            provider.meta().generation,
            now,
        );
        write_status(&api, provider.as_ref(), &key, ready, live).await?;
        return Ok(Action::requeue(DELETION_RECHECK));
    }
    if !has_finalizer {
        add_finalizer(&api, provider.as_ref(), &key).await?;
        // The write brings the provider back through the watch.
        return Ok(Action::await_change());
    }

    let ready = readiness(&keeper.registry, &key, provider.meta().generation, now).await;
    let changed = {
        let mut seen = keeper.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now_seen = (provider.meta().generation, ready.reason.clone());
        seen.insert(key.clone(), now_seen.clone()) != Some(now_seen)
    };
    write_status(&api, provider.as_ref(), &key, ready, live).await?;
    if changed {
        keeper.retrigger(&key);
    }
    Ok(Action::requeue(RESYNC))
}

impl Keeper {
    /// Hands the QodSessions that name `key` to the controller again.
    fn retrigger(&self, key: &ProviderKey) {
        self.cache.retrigger(|session| names(session, key));
    }
}

/// `Ready`: the spec makes a client and its credentials can be obtained (Secret read, OAuth2
/// token fetched). The QoD API itself is not called for this.
async fn readiness(
    registry: &ProviderRegistry,
    key: &ProviderKey,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let reference = ProviderRef {
        kind: key.kind,
        name: key.name.clone(),
    };
    let (status, why, message) = match registry.resolve_recorded(
        key.namespace.as_deref().unwrap_or_default(),
        Some(&reference),
    ) {
        Err(refusal) => ("False", refusal.reason(), refusal.to_string()),
        Ok(resolved) => match resolved.api.check_credentials().await {
            Ok(()) => (
                "True",
                "CredentialsFound",
                "the client is built and its credentials were obtained".to_owned(),
            ),
            Err(error) => (
                "False",
                if error.credentials_not_found() {
                    reason::CREDENTIALS_NOT_FOUND
                } else if matches!(error, crate::qod::Error::Token { .. }) {
                    reason::UNAUTHORIZED
                } else {
                    reason::PROVIDER_UNAVAILABLE
                },
                crate::telemetry::error_chain(&error),
            ),
        },
    };
    conditions::ready(status, why, message, generation, now)
}

/// Writes `ready` and `sessions` when they differ from what the provider's status holds.
async fn write_status<K: ProviderObject>(
    api: &Api<K>,
    provider: &K,
    key: &ProviderKey,
    ready: Condition,
    sessions: usize,
) -> Result<(), Error> {
    let old = provider.status().cloned().unwrap_or_default();
    let mut next = old.clone();
    conditions::set(&mut next.conditions, ready);
    next.sessions = Some(u32::try_from(sessions).unwrap_or(u32::MAX));
    next.observed_generation = provider.meta().generation;
    if next == old {
        return Ok(());
    }
    let params = PatchParams {
        field_manager: Some(CONTROLLER_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_status(
        &provider.name_any(),
        &params,
        &Patch::Merge(json!({ "status": next })),
    )
    .await
    .map(drop)
    .map_err(|source| Error::Kube {
        action: "write the status of",
        provider: key.to_string(),
        source,
    })
}

/// Adds the finalizer (see [`finalizers::addition`]).
async fn add_finalizer<K: ProviderObject>(
    api: &Api<K>,
    provider: &K,
    key: &ProviderKey,
) -> Result<(), Error> {
    let patch = finalizers::addition(provider, PROVIDER_FINALIZER);
    api.patch(
        &provider.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
    .map_err(|source| Error::Kube {
        action: "add the finalizer to",
        provider: key.to_string(),
        source,
    })
}

/// Removes the finalizer (see [`finalizers::removal`]).
async fn remove_finalizer<K: ProviderObject>(
    api: &Api<K>,
    provider: &K,
    key: &ProviderKey,
) -> Result<(), Error> {
    let error = |source| Error::Kube {
        action: "remove the finalizer from",
        provider: key.to_string(),
        source,
    };
    let Some(patch) = finalizers::removal(provider, PROVIDER_FINALIZER)
        .map_err(|e| error(kube::Error::SerdeError(e)))?
    else {
        return Ok(());
    };
    match api
        .patch(
            &provider.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(error(source)),
    }
}
