//! The [`ProviderRegistry`]: one built client per provider object, kept in step with the
//! QodProviders, ClusterQodProviders and Namespaces the watches report ([`super::watch`]), and
//! [`ProviderRegistry::resolve`], which answers which client serves a session, or why none may.
//!
//! A client is rebuilt only when its object's spec changes (a new `metadata.generation`, or a
//! new object under the same name), so its token cache and connection pool survive everything
//! else (status writes, label edits, relists after a watch restart).

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    fmt,
    sync::{Arc, PoisonError, RwLock},
};

use kube::ResourceExt;
use tracing::{info, warn};

use super::{
    build::{BuildClient, BuildError},
    key::{DEFAULT_LABEL, ProviderKey},
    selector::NamespaceSelection,
};
use crate::{
    api::{ClusterQodProvider, ProviderKind, ProviderRef, ProviderSpec, QodProvider},
    qod::{ProviderClients, SessionApi, profiles::ProfileApi},
};

/// The provider that serves a session.
#[derive(Clone)]
pub struct Resolved {
    /// `default` for the flags' provider, else the object's [`ProviderKey`] as text
    /// (`ClusterQodProvider/telco-a`, `QodProvider/media/telco-b`): stable, for logs and metrics.
    pub label: String,
    /// The provider object; `None` for the flags' provider.
    pub key: Option<ProviderKey>,
    pub api: Arc<dyn SessionApi>,
    /// Its QoS Profiles API, if it has one.
    pub profiles: Option<Arc<dyn ProfileApi>>,
    /// The object's `spec.maxSessions`.
    pub max_sessions: Option<u32>,
}

impl fmt::Debug for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolved")
            .field("label", &self.label)
            .field("max_sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

/// Why no provider serves a session. Each is a `Ready=False` reason; none calls a provider.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The providerRef names an object that does not exist (a QodProvider is looked up in the
    /// session's namespace only).
    #[error("{kind} {name} does not exist")]
    ProviderNotFound { kind: ProviderKind, name: String },
    /// The ClusterQodProvider's namespaceSelector does not select the session's namespace.
    #[error(
        "ClusterQodProvider {name} does not serve namespace {namespace} (its namespaceSelector)"
    )]
    ProviderNotAllowed { name: String, namespace: String },
    /// No providerRef, and the operator has no provider of its own (flags).
    #[error("no providerRef, and the operator has no default provider")]
    NoProvider,
    /// The provider's spec cannot make a client.
    #[error("{kind} {name} is invalid: {reason}")]
    InvalidProvider {
        kind: ProviderKind,
        name: String,
        reason: BuildError,
    },
    /// The registry has not listed the providers (or namespaces) yet; asking again shortly
    /// gives the real answer.
    #[error("the operator has not read the {what} yet")]
    NotSynced { what: &'static str },
}

impl Refusal {
    /// The `Ready` condition's reason.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::ProviderNotFound { .. } => "ProviderNotFound",
            Self::ProviderNotAllowed { .. } => "ProviderNotAllowed",
            Self::NoProvider => "NoProvider",
            Self::InvalidProvider { .. } => "InvalidProvider",
            Self::NotSynced { .. } => "ProvidersNotSynced",
        }
    }

    /// Only [`Refusal::NotSynced`] heals without any change by a human.
    pub const fn is_transient(&self) -> bool {
        matches!(self, Self::NotSynced { .. })
    }
}

/// What the watches feed; each is listed (and relisted after a watch restart) on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    QodProviders,
    ClusterQodProviders,
    Namespaces,
}

impl Source {
    const fn what(self) -> &'static str {
        match self {
            Self::QodProviders => "QodProviders",
            Self::ClusterQodProviders => "ClusterQodProviders",
            Self::Namespaces => "namespaces",
        }
    }
}

/// One built provider.
struct Entry {
    /// What the client was built from: another uid or generation means another spec.
    uid: Option<String>,
    generation: Option<i64>,
    client: Result<ProviderClients, BuildError>,
    selection: Result<NamespaceSelection, BuildError>,
    max_sessions: Option<u32>,
}

#[derive(Default)]
struct RegistryState {
    providers: HashMap<ProviderKey, Entry>,
    /// Labels of every namespace (for namespace selectors).
    namespaces: HashMap<String, BTreeMap<String, String>>,
    /// Sources whose first list is complete.
    synced: HashSet<Source>,
    /// During a (re)list: what it has delivered so far, so whatever it did not can go at its end.
    relisting: HashMap<Source, HashSet<String>>,
}

/// One client per provider object, and the flags' provider as the default.
pub struct ProviderRegistry {
    builder: Box<dyn BuildClient>,
    default: Option<ProviderClients>,
    state: RwLock<RegistryState>,
    /// Counts changes of the set of providers or their clients, for those that follow it
    /// (the QoS profile sync).
    changes: tokio::sync::watch::Sender<u64>,
}

impl ProviderRegistry {
    pub fn new(builder: Box<dyn BuildClient>, default: Option<ProviderClients>) -> Self {
        Self {
            builder,
            default,
            state: RwLock::new(RegistryState::default()),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Changes whenever a provider is added, rebuilt or removed, or a source is (re)listed.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn changed(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Every provider with a QoS Profiles API and a client that works, by label (`default`
    /// first when it has one).
    pub fn profile_sources(&self) -> Vec<(String, Arc<dyn ProfileApi>)> {
        let default = self
            .default
            .as_ref()
            .and_then(|clients| clients.profiles.clone())
            .map(|api| (DEFAULT_LABEL.to_owned(), api));
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let mut objects: Vec<_> = state
            .providers
            .iter()
            .filter_map(|(key, entry)| {
                let api = entry.client.as_ref().ok()?.profiles.clone()?;
                Some((key.to_string(), api))
            })
            .collect();
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        default.into_iter().chain(objects).collect()
    }

    /// Whether `label` names the flags' provider or a provider object the registry holds.
    pub fn knows(&self, label: &str) -> bool {
        if label == DEFAULT_LABEL {
            return self.default.is_some();
        }
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        state.providers.keys().any(|key| key.to_string() == label)
    }

    /// Which provider serves a session in `session_namespace` that names `reference`.
    pub fn resolve(
        &self,
        session_namespace: &str,
        reference: Option<&ProviderRef>,
    ) -> Result<Resolved, Refusal> {
        self.resolve_with(session_namespace, reference, true)
    }

    /// The provider a session already lives at, as its status records it: the namespace
    /// selector is not asked again, so a session made before the selector changed can still be
    /// read, extended and deleted where it is.
    pub fn resolve_recorded(
        &self,
        session_namespace: &str,
        reference: Option<&ProviderRef>,
    ) -> Result<Resolved, Refusal> {
        self.resolve_with(session_namespace, reference, false)
    }

    fn resolve_with(
        &self,
        session_namespace: &str,
        reference: Option<&ProviderRef>,
        check_namespace: bool,
    ) -> Result<Resolved, Refusal> {
        let Some(reference) = reference else {
            return self
                .default
                .clone()
                .map(|clients| Resolved {
                    label: DEFAULT_LABEL.to_owned(),
                    key: None,
                    api: clients.sessions,
                    profiles: clients.profiles,
                    max_sessions: None,
                })
                .ok_or(Refusal::NoProvider);
        };
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let source = match reference.kind {
            ProviderKind::QodProvider => Source::QodProviders,
            ProviderKind::ClusterQodProvider => Source::ClusterQodProviders,
        };
        if !state.synced.contains(&source) {
            return Err(Refusal::NotSynced {
                what: source.what(),
            });
        }
        let key = ProviderKey::of_ref(session_namespace, reference);
        let entry = state
            .providers
            .get(&key)
            .ok_or_else(|| Refusal::ProviderNotFound {
                kind: reference.kind,
                name: reference.name.clone(),
            })?;
        let invalid = |reason: &BuildError| Refusal::InvalidProvider {
            kind: reference.kind,
            name: reference.name.clone(),
            reason: reason.clone(),
        };
        // The namespace is checked first: a namespace the provider does not serve learns
        // nothing about its spec.
        match &entry.selection {
            Ok(_) if !check_namespace => {}
            Ok(NamespaceSelection::All) => {}
            Ok(selection) => {
                let labels = match state.namespaces.get(session_namespace) {
                    Some(labels) => labels,
                    // Not seen yet: a namespace just made, or the first list still running.
                    None => {
                        return Err(Refusal::NotSynced {
                            what: Source::Namespaces.what(),
                        });
                    }
                };
                if !selection.matches(labels) {
                    return Err(Refusal::ProviderNotAllowed {
                        name: reference.name.clone(),
                        namespace: session_namespace.to_owned(),
                    });
                }
            }
            Err(reason) => return Err(invalid(reason)),
        }
        let clients = entry.client.as_ref().map_err(invalid)?.clone();
        Ok(Resolved {
            label: key.to_string(),
            key: Some(key),
            api: clients.sessions,
            profiles: clients.profiles,
            max_sessions: entry.max_sessions,
        })
    }

    /// Whether every source has been listed once.
    pub fn is_synced(&self) -> bool {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        [
            Source::QodProviders,
            Source::ClusterQodProviders,
            Source::Namespaces,
        ]
        .iter()
        .all(|source| state.synced.contains(source))
    }

    /// A QodProvider was created or changed.
    pub fn apply_qod_provider(&self, provider: &QodProvider) {
        let key = ProviderKey::qod_provider(
            provider.namespace().unwrap_or_default(),
            provider.name_any(),
        );
        self.apply(
            Source::QodProviders,
            key,
            provider,
            &provider.spec.provider,
            Ok(NamespaceSelection::All),
        );
    }

    /// A ClusterQodProvider was created or changed.
    pub fn apply_cluster_provider(&self, provider: &ClusterQodProvider) {
        let key = ProviderKey::cluster_provider(provider.name_any());
        let selection = NamespaceSelection::parse(provider.spec.namespace_selector.as_ref());
        self.apply(
            Source::ClusterQodProviders,
            key,
            provider,
            &provider.spec.provider,
            selection,
        );
    }

    fn apply(
        &self,
        source: Source,
        key: ProviderKey,
        object: &impl ResourceExt,
        spec: &ProviderSpec,
        selection: Result<NamespaceSelection, BuildError>,
    ) {
        let uid = object.uid();
        let generation = object.meta().generation;
        let unchanged = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            if let Some(seen) = state.relisting.get_mut(&source) {
                seen.insert(key.to_string());
            }
            state
                .providers
                .get(&key)
                .is_some_and(|entry| entry.uid == uid && entry.generation == generation)
        };
        if unchanged {
            return;
        }
        // Built outside the lock (the watches are the only writer): resolving never waits for
        // a build.
        let client = self.builder.build(&key, spec);
        match &client {
            Ok(_) => info!(provider = %key, generation, "provider client built"),
            Err(error) => warn!(provider = %key, generation, error = %error, "provider is invalid"),
        }
        let entry = Entry {
            uid,
            generation,
            client,
            selection,
            max_sessions: spec.max_sessions,
        };
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .providers
            .insert(key, entry);
        self.changed();
    }

    /// A provider object is gone.
    pub fn delete_provider(&self, key: &ProviderKey) {
        let removed = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            state.providers.remove(key).is_some()
        };
        if removed {
            info!(provider = %key, "provider removed");
            self.changed();
        }
    }

    /// A namespace was created, or its labels changed.
    pub fn apply_namespace(&self, name: &str, labels: BTreeMap<String, String>) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(seen) = state.relisting.get_mut(&Source::Namespaces) {
            seen.insert(name.to_owned());
        }
        state.namespaces.insert(name.to_owned(), labels);
    }

    pub fn delete_namespace(&self, name: &str) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.namespaces.remove(name);
    }

    /// A (re)list of `source` begins: what it does not deliver before [`Self::relist_done`] is
    /// gone.
    pub fn relist_started(&self, source: Source) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.relisting.insert(source, HashSet::new());
    }

    /// The (re)list of `source` is complete: drops what it did not deliver; `source` is synced.
    pub fn relist_done(&self, source: Source) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let seen = state.relisting.remove(&source).unwrap_or_default();
        match source {
            Source::Namespaces => state.namespaces.retain(|name, _| seen.contains(name)),
            Source::QodProviders | Source::ClusterQodProviders => {
                let kind = match source {
                    Source::QodProviders => ProviderKind::QodProvider,
                    _ => ProviderKind::ClusterQodProvider,
                };
                state
                    .providers
                    .retain(|key, _| key.kind != kind || seen.contains(&key.to_string()));
            }
        }
        state.synced.insert(source);
        drop(state);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::qod::ProviderClients;

    use serde_json::{Value, json};

    use super::*;
    use crate::{
        providers::build::{ClientFactory, ClientSettings, testing::offline_client},
        qod::Timeouts,
    };

    /// The operator's factory, counting what it builds.
    struct Counting {
        factory: ClientFactory,
        builds: Arc<AtomicUsize>,
    }

    impl BuildClient for Counting {
        fn build(
            &self,
            key: &ProviderKey,
            spec: &ProviderSpec,
        ) -> Result<ProviderClients, BuildError> {
            self.builds.fetch_add(1, Ordering::SeqCst);
            self.factory.build(key, spec)
        }
    }

    struct Fixture {
        registry: ProviderRegistry,
        builds: Arc<AtomicUsize>,
        default: Arc<dyn SessionApi>,
    }

    fn camara() -> Value {
        json!({"camara": {"url": "https://qod.example/quality-on-demand/v1"}})
    }

    impl Fixture {
        /// A registry with a default provider, every source listed, and namespaces `media`
        /// (team=media, tier=gold), `labs` (team=labs) and `bare` (no labels).
        fn new() -> Self {
            let builds = Arc::new(AtomicUsize::new(0));
            let factory = ClientFactory::new(
                offline_client(),
                ClientSettings {
                    timeouts: Timeouts::default(),
                    cluster_resource_namespace: "qod-system".into(),
                },
            );
            let default = crate::qod::provider::build(crate::qod::ProviderConfig::Camara(
                crate::qod::CamaraConfig::new("https://default.example/quality-on-demand/v1"),
            ))
            .unwrap();
            let registry = ProviderRegistry::new(
                Box::new(Counting {
                    factory,
                    builds: builds.clone(),
                }),
                Some(default.clone()),
            );
            let default = default.sessions;
            for source in [
                Source::QodProviders,
                Source::ClusterQodProviders,
                Source::Namespaces,
            ] {
                registry.relist_started(source);
                registry.relist_done(source);
            }
            for (name, labels) in [
                ("media", json!({"team": "media", "tier": "gold"})),
                ("labs", json!({"team": "labs"})),
                ("bare", json!({})),
            ] {
                registry.apply_namespace(name, serde_json::from_value(labels).unwrap());
            }
            Self {
                registry,
                builds,
                default,
            }
        }

        fn builds(&self) -> usize {
            self.builds.load(Ordering::SeqCst)
        }

        fn cluster(&self, name: &str, generation: i64, spec: Value) {
            self.registry.apply_cluster_provider(
                &serde_json::from_value(object("ClusterQodProvider", None, name, generation, spec))
                    .unwrap(),
            );
        }

        fn namespaced(&self, namespace: &str, name: &str, generation: i64, spec: Value) {
            self.registry.apply_qod_provider(
                &serde_json::from_value(object(
                    "QodProvider",
                    Some(namespace),
                    name,
                    generation,
                    spec,
                ))
                .unwrap(),
            );
        }

        fn resolve(
            &self,
            namespace: &str,
            kind: ProviderKind,
            name: &str,
        ) -> Result<Resolved, Refusal> {
            self.registry.resolve(
                namespace,
                Some(&ProviderRef {
                    kind,
                    name: name.into(),
                }),
            )
        }
    }

    fn object(
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        generation: i64,
        spec: Value,
    ) -> Value {
        json!({
            "apiVersion": "qod.dev/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                         "generation": generation},
            "spec": spec,
        })
    }

    use ProviderKind::{ClusterQodProvider as Cluster, QodProvider as Namespaced};

    #[tokio::test]
    async fn without_a_provider_ref_the_default_serves_or_there_is_no_provider() {
        let f = Fixture::new();
        let resolved = f.registry.resolve("media", None).unwrap();
        assert_eq!(resolved.label, "default");
        assert_eq!(resolved.key, None);
        assert!(Arc::ptr_eq(&resolved.api, &f.default));

        let without = ProviderRegistry::new(
            Box::new(ClientFactory::new(
                offline_client(),
                ClientSettings {
                    timeouts: Timeouts::default(),
                    cluster_resource_namespace: "qod-system".into(),
                },
            )),
            None,
        );
        let refusal = without.resolve("media", None).unwrap_err();
        assert_eq!(refusal, Refusal::NoProvider);
        assert_eq!(refusal.reason(), "NoProvider");
    }

    #[tokio::test]
    async fn a_qod_provider_serves_its_own_namespace_only() {
        let f = Fixture::new();
        let mut spec = camara();
        spec["maxSessions"] = json!(5);
        f.namespaced("media", "telco-b", 1, spec);
        let resolved = f.resolve("media", Namespaced, "telco-b").unwrap();
        assert_eq!(resolved.label, "QodProvider/media/telco-b");
        assert_eq!(
            resolved.key,
            Some(ProviderKey::qod_provider("media", "telco-b"))
        );
        assert_eq!(resolved.max_sessions, Some(5));
        assert!(!Arc::ptr_eq(&resolved.api, &f.default));

        let refusal = f.resolve("labs", Namespaced, "telco-b").unwrap_err();
        assert_eq!(
            refusal,
            Refusal::ProviderNotFound {
                kind: Namespaced,
                name: "telco-b".into()
            }
        );
        assert_eq!(refusal.to_string(), "QodProvider telco-b does not exist");
        // Nor does a QodProvider answer for a ClusterQodProvider of the same name.
        assert!(matches!(
            f.resolve("media", Cluster, "telco-b"),
            Err(Refusal::ProviderNotFound { kind: Cluster, .. })
        ));
    }

    #[tokio::test]
    async fn a_cluster_provider_serves_the_namespaces_its_selector_picks() {
        let f = Fixture::new();
        f.cluster("everyone", 1, camara());
        let mut empty = camara();
        empty["namespaceSelector"] = json!({});
        f.cluster("empty-selector", 1, empty);
        for namespace in ["media", "labs", "bare", "not-seen-yet"] {
            assert_eq!(
                f.resolve(namespace, Cluster, "everyone").unwrap().label,
                "ClusterQodProvider/everyone"
            );
            f.resolve(namespace, Cluster, "empty-selector").unwrap();
        }

        let with = |selector: Value| {
            let mut spec = camara();
            spec["namespaceSelector"] = selector;
            spec
        };
        f.cluster("labels", 1, with(json!({"matchLabels": {"team": "media"}})));
        f.cluster("in", 1, with(json!({"matchExpressions": [{"key": "team", "operator": "In", "values": ["media", "labs"]}]})));
        f.cluster("not-in", 1, with(json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["labs"]}]})));
        f.cluster(
            "exists",
            1,
            with(json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})),
        );
        f.cluster(
            "absent",
            1,
            with(json!({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]})),
        );
        f.cluster("both", 1, with(json!({"matchLabels": {"team": "media"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["silver"]}]})));
        for (provider, allowed) in [
            ("labels", ["media"].as_slice()),
            ("in", &["media", "labs"]),
            ("not-in", &["media", "bare"]),
            ("exists", &["media"]),
            ("absent", &["bare"]),
            ("both", &[]),
        ] {
            for namespace in ["media", "labs", "bare"] {
                let result = f.resolve(namespace, Cluster, provider);
                if allowed.contains(&namespace) {
                    assert!(result.is_ok(), "{provider} in {namespace}: {result:?}");
                } else {
                    assert_eq!(
                        result.unwrap_err(),
                        Refusal::ProviderNotAllowed {
                            name: provider.into(),
                            namespace: namespace.into()
                        },
                        "{provider} in {namespace}"
                    );
                }
            }
        }

        // Labels change: the answer follows.
        f.registry
            .apply_namespace("labs", [("team".to_owned(), "media".to_owned())].into());
        f.resolve("labs", Cluster, "labels").unwrap();
        // A namespace not seen yet cannot be judged: asked again later.
        let refusal = f.resolve("brand-new", Cluster, "labels").unwrap_err();
        assert!(refusal.is_transient(), "{refusal:?}");
    }

    #[tokio::test]
    async fn an_invalid_spec_is_refused_naming_the_field_after_the_namespace_check() {
        let f = Fixture::new();
        f.cluster("bad-url", 1, json!({"camara": {"url": "qod.example/v1"}, "namespaceSelector": {"matchLabels": {"team": "media"}}}));
        let refusal = f.resolve("media", Cluster, "bad-url").unwrap_err();
        let Refusal::InvalidProvider { kind, name, reason } = &refusal else {
            panic!("{refusal:?}");
        };
        assert_eq!((*kind, name.as_str()), (Cluster, "bad-url"));
        assert!(
            matches!(
                reason,
                BuildError::Field {
                    field: "spec.camara.url",
                    ..
                }
            ),
            "{reason:?}"
        );
        assert!(
            refusal
                .to_string()
                .starts_with("ClusterQodProvider bad-url is invalid: spec.camara.url: "),
            "{refusal}"
        );
        assert_eq!(refusal.reason(), "InvalidProvider");
        assert!(!refusal.is_transient());
        // A namespace it does not serve learns only that.
        assert!(matches!(
            f.resolve("labs", Cluster, "bad-url"),
            Err(Refusal::ProviderNotAllowed { .. })
        ));

        f.namespaced("media", "two-apis", 1, json!({
            "camara": {"url": "https://qod.example/v1"},
            "networkAsCode": {"url": "https://nac.example", "apiKeySecretRef": {"name": "n", "key": "k"}},
        }));
        assert!(matches!(
            f.resolve("media", Namespaced, "two-apis"),
            Err(Refusal::InvalidProvider {
                reason: BuildError::NotOneApi,
                ..
            })
        ));
        f.cluster("bad-selector", 1, json!({"camara": {"url": "https://qod.example/v1"}, "namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}));
        assert!(matches!(
            f.resolve("media", Cluster, "bad-selector"),
            Err(Refusal::InvalidProvider {
                reason: BuildError::Field {
                    field: "spec.namespaceSelector",
                    ..
                },
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_client_is_rebuilt_only_when_the_spec_changes() {
        let f = Fixture::new();
        f.cluster("telco-a", 1, camara());
        let first = f.resolve("media", Cluster, "telco-a").unwrap().api;
        assert_eq!(f.builds(), 1);

        // The same generation again (a status write, a relist): the same client.
        f.cluster("telco-a", 1, camara());
        let again = f.resolve("media", Cluster, "telco-a").unwrap().api;
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(f.builds(), 1);

        // A new generation: a new client.
        f.cluster(
            "telco-a",
            2,
            json!({"camara": {"url": "https://other.example/quality-on-demand/v1"}}),
        );
        let second = f.resolve("media", Cluster, "telco-a").unwrap().api;
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(f.builds(), 2);

        // Deleted and made again under the same name: generation 1 again, but a new object.
        f.registry
            .delete_provider(&ProviderKey::cluster_provider("telco-a"));
        assert!(matches!(
            f.resolve("media", Cluster, "telco-a"),
            Err(Refusal::ProviderNotFound { .. })
        ));
        let mut recreated = object("ClusterQodProvider", None, "telco-a", 2, camara());
        recreated["metadata"]["uid"] = json!("uid-telco-a-2");
        f.registry
            .apply_cluster_provider(&serde_json::from_value(recreated).unwrap());
        let third = f.resolve("media", Cluster, "telco-a").unwrap().api;
        assert!(!Arc::ptr_eq(&second, &third));
        assert_eq!(f.builds(), 3);
    }

    #[tokio::test]
    async fn nothing_is_answered_before_the_first_list_and_a_relist_drops_what_is_gone() {
        let f = Fixture::new();
        let fresh = ProviderRegistry::new(
            Box::new(ClientFactory::new(
                offline_client(),
                ClientSettings {
                    timeouts: Timeouts::default(),
                    cluster_resource_namespace: "qod-system".into(),
                },
            )),
            None,
        );
        let reference = ProviderRef {
            kind: Cluster,
            name: "telco-a".into(),
        };
        let refusal = fresh.resolve("media", Some(&reference)).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::NotSynced {
                what: "ClusterQodProviders"
            }
        );
        assert_eq!(refusal.reason(), "ProvidersNotSynced");
        assert!(!fresh.is_synced());
        assert!(f.registry.is_synced());

        // A relist that no longer holds telco-a (deleted while the watch was down).
        f.cluster("telco-a", 1, camara());
        f.cluster("telco-b", 1, camara());
        f.namespaced("media", "telco-a", 1, camara());
        f.registry.relist_started(Source::ClusterQodProviders);
        f.cluster("telco-b", 1, camara());
        f.registry.relist_done(Source::ClusterQodProviders);
        assert!(matches!(
            f.resolve("media", Cluster, "telco-a"),
            Err(Refusal::ProviderNotFound { .. })
        ));
        f.resolve("media", Cluster, "telco-b").unwrap();
        f.resolve("media", Namespaced, "telco-a")
            .expect("another kind's relist keeps it");
        assert_eq!(f.builds(), 3, "telco-b was not rebuilt by the relist");
    }

    #[tokio::test]
    async fn profile_sources_are_the_providers_with_a_qos_profiles_api() {
        let f = Fixture::new();
        let mut changes = f.registry.changes();
        changes.mark_unchanged();
        f.cluster("telco-a", 1, camara());
        f.cluster(
            "telco-old",
            1,
            json!({"camara": {"url": "https://old.example/quality-on-demand/v0.11", "version": "v0.11"}}),
        );
        f.cluster(
            "telco-own",
            1,
            json!({"camara": {"url": "https://own.example/qod/v0.11", "version": "v0.11",
                              "qosProfilesUrl": "https://own.example/profiles/v1"}}),
        );
        f.cluster(
            "nokia",
            1,
            json!({"networkAsCode": {"url": "https://nac.example",
                                     "apiKeySecretRef": {"name": "nac", "key": "key"}}}),
        );
        f.cluster(
            "broken",
            1,
            json!({"camara": {"url": "ftp://x.example/v1"}}),
        );
        assert!(changes.has_changed().unwrap(), "additions are told");
        let labels: Vec<_> = f
            .registry
            .profile_sources()
            .into_iter()
            .map(|(label, _)| label)
            .collect();
        assert_eq!(
            labels,
            [
                "default",
                "ClusterQodProvider/telco-a",
                "ClusterQodProvider/telco-own"
            ]
        );
        assert!(f.registry.knows("ClusterQodProvider/nokia"));
        changes.mark_unchanged();
        f.registry
            .delete_provider(&ProviderKey::cluster_provider("telco-a"));
        assert!(changes.has_changed().unwrap(), "removals are told");
        assert!(!f.registry.knows("ClusterQodProvider/telco-a"));
    }
}
