//! Keeps a [`ProviderRegistry`] in step with the cluster: one watch of QodProviders (of the
//! operator's namespace when it has one), one of ClusterQodProviders and one of Namespaces'
//! metadata (their labels, for namespace selectors). Each watch lists first and relists after
//! a restart; the registry drops what a relist no longer holds.
//!
//! RBAC: list and watch on `qodproviders` and `clusterqodproviders` (qod.dev) and on
//! `namespaces` (core). Secrets are not watched: a client reads its own with a `get`.

use std::sync::Arc;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, ResourceExt,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{
    key::ProviderKey,
    registry::{ProviderRegistry, Source},
};
use crate::api::{ClusterQodProvider, QodProvider};

/// One watch's news, in the registry's terms.
enum Update {
    QodProvider(watcher::Event<QodProvider>),
    ClusterQodProvider(watcher::Event<ClusterQodProvider>),
    Namespace(watcher::Event<PartialObjectMeta<Namespace>>),
}

/// Runs the watches until `shutdown`, feeding `registry`. `namespace` confines the QodProvider
/// watch (the operator's `--namespace`). `namespace_changed` hears of every namespace whose
/// labels may have changed, so sessions a namespaceSelector refused can be looked at again.
pub async fn run(
    registry: Arc<ProviderRegistry>,
    client: Client,
    namespace: Option<&str>,
    shutdown: CancellationToken,
    namespace_changed: impl Fn(&str),
) {
    let qod_providers: Api<QodProvider> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let config = watcher::Config::default;
    let updates = stream::select_all([
        watcher(qod_providers, config())
            .default_backoff()
            .map(|event| event.map(Update::QodProvider))
            .boxed(),
        watcher(Api::<ClusterQodProvider>::all(client.clone()), config())
            .default_backoff()
            .map(|event| event.map(Update::ClusterQodProvider))
            .boxed(),
        // Metadata only: the labels are all the selectors need.
        watcher(Api::<PartialObjectMeta<Namespace>>::all(client), config())
            .default_backoff()
            .map(|event| event.map(Update::Namespace))
            .boxed(),
    ]);
    let mut updates = std::pin::pin!(updates.take_until(shutdown.cancelled_owned()));
    while let Some(update) = updates.next().await {
        match update {
            Ok(Update::Namespace(watcher::Event::Apply(changed))) => {
                registry.apply_namespace(&changed.name_any(), changed.labels().clone());
                namespace_changed(&changed.name_any());
            }
            Ok(update) => apply(&registry, update),
            // The watcher retries with backoff by itself; the error is only reported.
            Err(error) => warn!(error = %error, "watching the provider resources failed; retrying"),
        }
    }
}

fn apply(registry: &ProviderRegistry, update: Update) {
    match update {
        Update::QodProvider(event) => feed(
            registry,
            Source::QodProviders,
            event,
            |p| registry.apply_qod_provider(p),
            |p| {
                registry.delete_provider(&ProviderKey::qod_provider(
                    p.namespace().unwrap_or_default(),
                    p.name_any(),
                ));
            },
        ),
        Update::ClusterQodProvider(event) => feed(
            registry,
            Source::ClusterQodProviders,
            event,
            |p| registry.apply_cluster_provider(p),
            |p| registry.delete_provider(&ProviderKey::cluster_provider(p.name_any())),
        ),
        Update::Namespace(event) => feed(
            registry,
            Source::Namespaces,
            event,
            |n| registry.apply_namespace(&n.name_any(), n.labels().clone()),
            |n| registry.delete_namespace(&n.name_any()),
        ),
    }
}

/// One watcher event: applied, deleted, or a step of a (re)list.
fn feed<K>(
    registry: &ProviderRegistry,
    source: Source,
    event: watcher::Event<K>,
    apply: impl Fn(&K),
    delete: impl Fn(&K),
) {
    match event {
        watcher::Event::Init => registry.relist_started(source),
        watcher::Event::InitApply(object) | watcher::Event::Apply(object) => apply(&object),
        watcher::Event::Delete(object) => delete(&object),
        watcher::Event::InitDone => registry.relist_done(source),
    }
}
