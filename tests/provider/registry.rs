//! The provider registry fed by its watches on the real API server (tests/control-plane), with
//! two simulators as two providers: a ClusterQodProvider (CAMARA, bearer token from a Secret in
//! the operator's namespace) for the namespaces its selector picks, and a QodProvider (Network
//! as Code, API key from a Secret in its own namespace) for its own namespace. Sessions land at
//! the provider their reference names, each with its own credentials; the registry follows
//! label changes, spec changes and deletions.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use qod_operator::{
    api::{ClusterQodProvider, ProviderKind, ProviderRef, QodProvider},
    providers::{self, ClientFactory, ClientSettings, ProviderRegistry, Refusal, Resolved},
    qod::Timeouts,
    simulator::{self, RunningSimulator},
};
use qod_test_support::{ControlPlane, control_plane, eventually, simulator::Sim};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::secret_credentials::request;

const WAIT: Duration = Duration::from_secs(20);

async fn start(config: simulator::SimulatorConfig) -> RunningSimulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    simulator::spawn(listener, config).await.unwrap()
}

async fn sessions_at(sim: &RunningSimulator) -> usize {
    Sim::of(sim).sessions(false).await.len()
}

/// Server-side apply of `object` through `api`, as the test.
async fn apply<K>(api: Api<K>, object: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object["metadata"]["name"].as_str().unwrap().to_owned();
    api.patch(
        &name,
        &PatchParams::apply("qod-operator-tests").force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

async fn label(client: &Client, namespace: &str, labels: Value) {
    Api::<Namespace>::all(client.clone())
        .patch(
            namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": labels}})),
        )
        .await
        .unwrap();
}

fn reference(kind: ProviderKind, name: &str) -> ProviderRef {
    ProviderRef {
        kind,
        name: name.to_owned(),
    }
}

/// Waits until resolving `reference` from `namespace` gives what `accept` takes.
async fn until<T>(
    registry: &ProviderRegistry,
    what: &str,
    namespace: &str,
    reference: &ProviderRef,
    accept: impl Fn(Result<Resolved, Refusal>) -> Option<T>,
) -> T {
    eventually(what, WAIT, || async {
        accept(registry.resolve(namespace, Some(reference)))
    })
    .await
}

#[tokio::test]
async fn sessions_land_at_the_provider_their_reference_names() {
    let plane = ControlPlane::shared();
    let client = plane.client().await;
    control_plane::install_crd(&client).await;
    let operator = plane.namespace("registry-operator").await;
    let team_a = plane.namespace("registry-team-a").await;
    let team_b = plane.namespace("registry-team-b").await;
    // Labels of this test alone: other tests' namespaces share the control plane.
    label(&client, &team_a, json!({"qod-test": team_a})).await;

    let camara_sim = start(simulator::SimulatorConfig {
        require_auth: true,
        bearer_token: Some(SecretString::from("token-of-telco-a")),
        ..simulator::SimulatorConfig::default()
    })
    .await;
    let nac_sim = start(simulator::SimulatorConfig {
        api_key: Some(SecretString::from("key-of-team-b")),
        ..simulator::SimulatorConfig::default()
    })
    .await;
    apply(
        Api::<Secret>::namespaced(client.clone(), &operator),
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "telco-a", "namespace": operator},
        "stringData": {"token": "token-of-telco-a"}}),
    )
    .await;
    apply(
        Api::<Secret>::namespaced(client.clone(), &team_b),
        json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "nac", "namespace": team_b},
        "stringData": {"api-key": "key-of-team-b"}}),
    )
    .await;
    let cluster_name = format!("{operator}-telco-a");
    apply(
        Api::<ClusterQodProvider>::all(client.clone()),
        json!({"apiVersion": "qod.dev/v1alpha1", "kind": "ClusterQodProvider",
        "metadata": {"name": cluster_name},
        "spec": {
            "camara": {"url": format!("{}/quality-on-demand/v1", camara_sim.base_url()),
                       "auth": {"bearerTokenSecretRef": {"name": "telco-a", "key": "token"}}},
            "namespaceSelector": {"matchLabels": {"qod-test": team_a}},
        }}),
    )
    .await;
    apply(
        Api::<QodProvider>::namespaced(client.clone(), &team_b),
        json!({"apiVersion": "qod.dev/v1alpha1", "kind": "QodProvider",
        "metadata": {"name": "nac", "namespace": team_b},
        "spec": {"networkAsCode": {"url": nac_sim.base_url(),
                                   "apiKeySecretRef": {"name": "nac", "key": "api-key"}}}}),
    )
    .await;

    let registry = Arc::new(ProviderRegistry::new(
        Box::new(ClientFactory::new(
            client.clone(),
            ClientSettings {
                timeouts: Timeouts::default(),
                cluster_resource_namespace: operator.clone(),
            },
        )),
        None,
    ));
    let stop = CancellationToken::new();
    let watching = tokio::spawn(providers::watch::run(
        registry.clone(),
        client.clone(),
        None,
        stop.clone(),
        |_| {},
    ));
    eventually("the registry's first lists", WAIT, || async {
        registry.is_synced().then_some(())
    })
    .await;

    // The ClusterQodProvider serves team-a, with the token from the operator's namespace.
    let telco_a = reference(ProviderKind::ClusterQodProvider, &cluster_name);
    let resolved = registry.resolve(&team_a, Some(&telco_a)).unwrap();
    assert_eq!(resolved.label, format!("ClusterQodProvider/{cluster_name}"));
    resolved.api.create_session(&request()).await.unwrap();
    assert_eq!(
        registry.resolve(&team_b, Some(&telco_a)).unwrap_err(),
        Refusal::ProviderNotAllowed {
            name: cluster_name.clone(),
            namespace: team_b.clone()
        }
    );

    // The QodProvider serves team-b only, with the key from team-b.
    let nac = reference(ProviderKind::QodProvider, "nac");
    let resolved = registry.resolve(&team_b, Some(&nac)).unwrap();
    assert_eq!(resolved.label, format!("QodProvider/{team_b}/nac"));
    resolved.api.create_session(&request()).await.unwrap();
    assert!(matches!(
        registry.resolve(&team_a, Some(&nac)),
        Err(Refusal::ProviderNotFound { .. })
    ));
    assert_eq!(sessions_at(&camara_sim).await, 1);
    assert_eq!(sessions_at(&nac_sim).await, 1);
    assert_eq!(
        registry.resolve(&team_a, None).unwrap_err(),
        Refusal::NoProvider
    );

    // A label makes team-b eligible for the ClusterQodProvider.
    label(&client, &team_b, json!({"qod-test": team_a})).await;
    until(&registry, "team-b selected", &team_b, &telco_a, |r| r.ok()).await;

    // A spec change rebuilds the client; its new settings show.
    let before = registry.resolve(&team_b, Some(&nac)).unwrap().api;
    apply(
        Api::<QodProvider>::namespaced(client.clone(), &team_b),
        json!({"apiVersion": "qod.dev/v1alpha1", "kind": "QodProvider",
        "metadata": {"name": "nac", "namespace": team_b},
        "spec": {"networkAsCode": {"url": nac_sim.base_url(),
                                   "apiKeySecretRef": {"name": "nac", "key": "api-key"}},
                 "maxSessions": 3}}),
    )
    .await;
    let after = until(&registry, "maxSessions 3", &team_b, &nac, |r| {
        r.ok().filter(|r| r.max_sessions == Some(3))
    })
    .await;
    assert!(!Arc::ptr_eq(&before, &after.api));

    // Deleted: gone from the registry.
    Api::<ClusterQodProvider>::all(client.clone())
        .delete(&cluster_name, &DeleteParams::default())
        .await
        .unwrap();
    Api::<QodProvider>::namespaced(client.clone(), &team_b)
        .delete("nac", &DeleteParams::default())
        .await
        .unwrap();
    until(
        &registry,
        "the ClusterQodProvider gone",
        &team_a,
        &telco_a,
        |r| matches!(r, Err(Refusal::ProviderNotFound { .. })).then_some(()),
    )
    .await;
    until(&registry, "the QodProvider gone", &team_b, &nac, |r| {
        matches!(r, Err(Refusal::ProviderNotFound { .. })).then_some(())
    })
    .await;

    stop.cancel();
    tokio::time::timeout(WAIT, watching).await.unwrap().unwrap();
}
