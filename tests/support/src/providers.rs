//! Provider registries for tests that run the controller without watching provider resources.

use std::sync::Arc;

use qod_operator::{
    providers::{ClientFactory, ClientSettings, ProviderRegistry},
    qod::{ProviderClients, SessionApi, Timeouts},
};

/// A registry whose only provider is `default` (as `--provider-url` gives it): sessions that
/// name a provider resource are refused as not synced, since nothing watches them here.
pub fn default_only(client: kube::Client, default: Arc<dyn SessionApi>) -> Arc<ProviderRegistry> {
    Arc::new(ProviderRegistry::new(
        Box::new(ClientFactory::new(
            client,
            ClientSettings {
                timeouts: Timeouts::default(),
                cluster_resource_namespace: "default".into(),
            },
        )),
        Some(ProviderClients {
            sessions: default,
            profiles: None,
        }),
    ))
}
