//! Which provider a step talks to. A create goes to the provider the spec names, checked
//! against the provider's namespaces; everything done to an existing session (lookup, read,
//! extension, delete) goes to the provider `status.provider` records, so a changed providerRef
//! still deletes the old session where it lives. Each provider gets its own health (backoff)
//! and its own `provider` label in the metrics.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use kube::ResourceExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::provider_health::{Observed, ProviderHealth};
use crate::{
    api::{ProviderRef, QodSession, conditions::reason, intent::effective_status},
    metrics::Metrics,
    providers::{ProviderRegistry, Refusal, Resolved},
    qod::{SessionApi, metered::Metered, profiles::ProfileApi},
};

/// The provider a step uses.
pub struct InUse {
    /// `status.provider`'s form of it (`None`: the default provider).
    pub recorded_as: Option<String>,
    /// Observed by `health`, metered under its label.
    pub api: Arc<dyn SessionApi>,
    /// Its QoS Profiles API, as the registry built it (the catalog meters it).
    pub profiles: Option<Arc<dyn ProfileApi>>,
    pub health: Arc<ProviderHealth>,
    /// The provider's cap on live sessions.
    pub max_sessions: Option<u32>,
    label: Arc<str>,
}

impl InUse {
    /// The metrics label (`default`, `ClusterQodProvider/<name>`, `QodProvider/<ns>/<name>`).
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// Why a step cannot use a provider now; none of these calls one.
#[derive(Debug, thiserror::Error)]
pub enum Unserved {
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// `status.provider` holds something this operator did not write.
    #[error("status.provider `{0}` names no provider kind this operator knows")]
    UnknownRecorded(String),
    #[error("{provider} has {max} live sessions, its maxSessions; retried when one ends")]
    QuotaExceeded { provider: String, max: u32 },
}

impl Unserved {
    /// The `Ready` condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Refused(refusal) => refusal.reason(),
            Self::UnknownRecorded(_) => "ProviderNotFound",
            Self::QuotaExceeded { .. } => reason::PROVIDER_QUOTA_EXCEEDED,
        }
    }

    /// When to look again. A change of the provider resources also brings the resource back
    /// (see the provider watch); this is the fallback.
    pub fn retry_in(&self) -> Duration {
        match self {
            Self::Refused(refusal) if refusal.is_transient() => Duration::from_secs(2),
            Self::QuotaExceeded { .. } => QUOTA_RETRY,
            _ => Duration::from_secs(60),
        }
    }
}

/// How soon a create refused for the provider's quota looks again.
const QUOTA_RETRY: Duration = Duration::from_secs(10);

/// The registry, and what the controller keeps per provider.
pub struct Providers {
    registry: Arc<ProviderRegistry>,
    metrics: Arc<Metrics>,
    health: Mutex<HashMap<String, Arc<ProviderHealth>>>,
    /// Held from counting a provider's live sessions to recording a create's intent, for
    /// providers with `maxSessions`, so concurrent creates cannot overshoot the cap.
    quota_slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Passes in flight per provider, at most `per_provider` each: a provider that hangs holds
    /// its own share of the controller's passes, never another provider's.
    in_flight: Mutex<HashMap<String, Arc<Semaphore>>>,
    per_provider: usize,
}

impl Providers {
    /// `per_provider`: passes that may talk to one provider at the same time.
    pub fn new(registry: Arc<ProviderRegistry>, metrics: Arc<Metrics>, per_provider: u16) -> Self {
        Self {
            registry,
            metrics,
            health: Mutex::default(),
            quota_slots: Mutex::default(),
            in_flight: Mutex::default(),
            per_provider: usize::from(per_provider.max(1)),
        }
    }

    /// Waits for one of `provider`'s pass slots; the pass holds it until it ends.
    pub async fn begin(&self, provider: &InUse) -> Option<OwnedSemaphorePermit> {
        let slots = Arc::clone(
            self.in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(provider.label.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_provider))),
        );
        // Never closed, so acquiring only fails if it were.
        slots.acquire_owned().await.ok()
    }

    /// The provider a new session of `session` is created at.
    pub fn named(&self, session: &QodSession) -> Result<InUse, Unserved> {
        let namespace = session.namespace().unwrap_or_default();
        let reference = session.spec.provider_ref.as_deref();
        let resolved = self.registry.resolve(&namespace, reference)?;
        Ok(self.in_use(resolved, reference.map(ProviderRef::key)))
    }

    /// The provider the session of `session` lives at (or, for a create in flight, was sent
    /// to).
    pub fn recorded(&self, session: &QodSession) -> Result<InUse, Unserved> {
        let namespace = session.namespace().unwrap_or_default();
        let recorded = effective_status(session).provider;
        let reference = match &recorded {
            Some(key) => Some(
                ProviderRef::from_key(key)
                    .ok_or_else(|| Unserved::UnknownRecorded(key.to_string()))?,
            ),
            None => None,
        };
        let resolved = self
            .registry
            .resolve_recorded(&namespace, reference.as_ref())?;
        Ok(self.in_use(resolved, recorded.map(String::from)))
    }

    fn in_use(&self, resolved: Resolved, recorded_as: Option<String>) -> InUse {
        let health = Arc::clone(
            self.health
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(resolved.label.clone())
                .or_default(),
        );
        let label: Arc<str> = resolved.label.into();
        let metered = Arc::new(Metered::new(
            resolved.api,
            Arc::clone(&self.metrics),
            Arc::clone(&label),
        ));
        InUse {
            recorded_as,
            api: Arc::new(Observed {
                inner: metered,
                health: Arc::clone(&health),
            }),
            health,
            profiles: resolved.profiles,
            max_sessions: resolved.max_sessions,
            label,
        }
    }

    /// The lock a create through `provider` holds while it counts and records, if the
    /// provider caps its sessions.
    pub async fn quota_slot(&self, provider: &InUse) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        provider.max_sessions?;
        let slot = Arc::clone(
            self.quota_slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(provider.label.to_string())
                .or_default(),
        );
        Some(slot.lock_owned().await)
    }
}
