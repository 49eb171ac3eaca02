//! Keeps the catalog and the QosProfile resources in step with the providers (leader only):
//! lists each provider's profiles at start, every refresh interval and as soon as its client
//! changes; mirrors what changed into QosProfile resources; brings back to the controller the
//! sessions waiting at a provider whose profiles changed (a profile that appears lets them be
//! created); and tells the sessions running on a profile that became DEPRECATED, with a
//! Warning Event, that they keep running but will not be renewed.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use kube::{
    Client, Resource, ResourceExt,
    runtime::events::{Event, EventType},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    catalog::{Known, ProfileCatalog},
    objects::ProfileObjects,
};
use crate::{
    api::{ProviderRef, QodSession, intent::effective_status},
    cache::SessionCache,
    controller::events::EventPublisher,
    providers::{ProviderRegistry, label_of},
    qod::profiles::{ProfileApi, ProfileStatus},
    telemetry::error_chain,
};

/// How soon a failed write of the QosProfile resources is tried again.
const WRITE_RETRY: Duration = Duration::from_secs(5);

/// What the sync needs.
pub struct ProfileSync {
    pub client: Client,
    pub catalog: Arc<ProfileCatalog>,
    pub registry: Arc<ProviderRegistry>,
    pub cache: SessionCache,
    pub events: EventPublisher,
    /// The operator's own namespace: its QosProfile resources carry it.
    pub installation: String,
    /// How often each provider's profiles are listed.
    pub refresh: Duration,
}

/// When a provider was last listed, and with which client.
struct Listed {
    api: Arc<dyn ProfileApi>,
    at: Instant,
}

impl ProfileSync {
    /// Runs until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let objects = ProfileObjects::new(self.client.clone(), &self.installation);
        let mut registry_changes = self.registry.changes();
        let mut listed: HashMap<String, Listed> = HashMap::new();
        // What the resources and the sessions were last told; `None`: nothing yet.
        let mut mirrored: Option<(BTreeMap<String, Known>, bool)> = None;
        loop {
            let sources = self.registry.profile_sources();
            self.catalog.keep_only(&sources);
            listed.retain(|label, _| sources.iter().any(|(source, _)| source == label));
            let due: Vec<_> = sources
                .iter()
                .filter(|(label, api)| {
                    listed.get(label).is_none_or(|last| {
                        !Arc::ptr_eq(&last.api, api) || last.at.elapsed() >= self.refresh
                    })
                })
                .collect();
            futures::future::join_all(due.iter().map(|(label, api)| async {
                self.catalog.refresh(label, api).await;
            }))
            .await;
            for (label, api) in due {
                listed.insert(
                    label.clone(),
                    Listed {
                        api: Arc::clone(api),
                        at: Instant::now(),
                    },
                );
            }

            let known = self.catalog.snapshot();
            let complete = self.registry.is_synced();
            let mut retry = None;
            if mirrored.as_ref() != Some(&(known.clone(), complete)) {
                match objects.sync(&known, complete).await {
                    Ok(synced) => {
                        debug!(?synced, "QosProfile resources in step");
                        let before = mirrored.map(|(known, _)| known).unwrap_or_default();
                        self.tell_sessions(&before, &known).await;
                        mirrored = Some((known, complete));
                    }
                    Err(error) => {
                        warn!(error = %error_chain(&error), "writing the QosProfile resources failed; retrying");
                        retry = Some(WRITE_RETRY);
                    }
                }
            }

            let next_listing = listed
                .values()
                .map(|last| self.refresh.saturating_sub(last.at.elapsed()))
                .min()
                .unwrap_or(self.refresh);
            let wait = retry.map_or(next_listing, |retry| retry.min(next_listing));
            tokio::select! {
                () = stop.cancelled() => return,
                _ = registry_changes.changed() => {}
                () = self.catalog.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sessions at a provider whose profiles changed from `before` to `now`: those waiting for
    /// a session go back to the controller; those running on a profile that became
    /// DEPRECATED hear so.
    async fn tell_sessions(&self, before: &BTreeMap<String, Known>, now: &BTreeMap<String, Known>) {
        for (provider, known) in now {
            if before.get(provider) == Some(known) {
                continue;
            }
            self.cache.retrigger(|session| {
                let status = effective_status(session);
                status.session_id.is_none()
                    && label_of(&namespace(session), session.spec.provider_ref.as_deref())
                        == *provider
            });
            let Known::Listed(profiles) = known else {
                continue;
            };
            let was_deprecated = |name: &str| match before.get(provider) {
                Some(Known::Listed(earlier)) => earlier
                    .get(name)
                    .is_some_and(|p| p.status == ProfileStatus::Deprecated),
                _ => false,
            };
            for profile in profiles.values() {
                if profile.status != ProfileStatus::Deprecated || was_deprecated(&profile.name) {
                    continue;
                }
                for session in self.running_on(provider, &profile.name) {
                    self.warn_deprecated(&session, provider, &profile.name)
                        .await;
                }
            }
        }
    }

    /// The cached sessions that hold a session at `provider` with profile `name`.
    fn running_on(&self, provider: &str, name: &str) -> Vec<Arc<QodSession>> {
        self.cache
            .store()
            .state()
            .into_iter()
            .filter(|session| {
                let status = effective_status(session);
                let recorded = status.provider.as_deref().and_then(ProviderRef::from_key);
                status.session_id.is_some()
                    && *session.spec.qos_profile == *name
                    && label_of(&namespace(session), recorded.as_ref()) == provider
            })
            .collect()
    }

    async fn warn_deprecated(&self, session: &QodSession, provider: &str, name: &str) {
        let session_id = effective_status(session).session_id.unwrap_or_default();
        let note = format!(
            "QoS profile {name} of {provider} is DEPRECATED: session {session_id} keeps running \
             until it ends, but no new session will be created with it (choose another \
             profile; see kubectl get qosprofiles)"
        );
        warn!(
            session = session.name_any(),
            namespace = namespace(session),
            "{note}"
        );
        let event = Event {
            type_: EventType::Warning,
            reason: "ProfileDeprecated".into(),
            note: Some(note),
            action: "CheckProfile".into(),
            secondary: None,
        };
        if let Err(error) = self.events.publish(&event, &session.object_ref(&())).await {
            warn!(error = %error, "could not record an Event");
        }
    }
}

fn namespace(session: &QodSession) -> String {
    session.namespace().unwrap_or_default()
}
