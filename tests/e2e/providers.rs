//! Several providers per cluster, as users set them up with kubectl: two simulators stand for two
//! telcos, each with credentials of its own in a Secret, one as a QodProvider of the test's
//! namespace and one as a ClusterQodProvider; the simulator the operator's flags name stays the
//! default. Sessions land where their resource says; a provider that cannot be used (missing,
//! without its Secret, at its quota) refuses with a reason and no call; a provider being deleted
//! waits for the sessions that use it; a changed providerRef moves the session.

use std::time::Duration;

use qod_operator::simulator::{self, ClientCredentials, RunningSimulator};
use qod_test_support::{
    eventually,
    simulator::{Sim, provider_calls},
};
use secrecy::SecretString;
use serde_json::Value;

use crate::world::{WAIT, World, sink_uid};

/// A simulator that accepts only `token` as bearer token.
async fn telco_with_bearer(token: &str) -> RunningSimulator {
    telco(simulator::SimulatorConfig {
        require_auth: true,
        bearer_token: Some(SecretString::from(token)),
        ..simulator::SimulatorConfig::default()
    })
    .await
}

/// A simulator whose token endpoint accepts only this client.
async fn telco_with_oauth(client_id: &str, secret: &str) -> RunningSimulator {
    telco(simulator::SimulatorConfig {
        require_auth: true,
        client_credentials: Some(ClientCredentials {
            client_id: client_id.into(),
            client_secret: SecretString::from(secret),
        }),
        ..simulator::SimulatorConfig::default()
    })
    .await
}

pub(crate) async fn telco(config: simulator::SimulatorConfig) -> RunningSimulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    simulator::spawn(
        listener,
        simulator::SimulatorConfig {
            available_after: Duration::from_millis(200),
            ..config
        },
    )
    .await
    .unwrap()
}

pub(crate) async fn sessions_at(sim: &RunningSimulator) -> Vec<Value> {
    Sim::of(sim).sessions(false).await
}

pub(crate) async fn creates_at(sim: &RunningSimulator) -> u64 {
    provider_calls(&Sim::of(sim).stats().await, "create")
}

/// A QodSession for a device of its own, using `provider_ref` (YAML of the field, or empty).
fn session(name: &str, phone: &str, provider_ref: &str) -> String {
    format!(
        "apiVersion: qod.dev/v1alpha1
kind: QodSession
metadata: {{name: {name}}}
spec:
  device: {{phoneNumber: \"{phone}\"}}
  applicationServer: {{ipv4Address: 198.51.100.7}}
  qosProfile: QOS_L
  duration: 600
{provider_ref}
"
    )
}

pub(crate) async fn apply(world: &World, name: &str, manifest: &str) {
    let path = world.dir.join(format!("{name}.yaml"));
    std::fs::write(&path, manifest).unwrap();
    world
        .kubectl(&["apply", "-f", path.to_str().unwrap()])
        .await;
}

/// `kubectl get` of one field of one object.
pub(crate) async fn field(world: &World, object: &str, path: &str) -> String {
    world
        .kubectl(&["get", object, "-o", &format!("jsonpath={{{path}}}")])
        .await
}

pub(crate) async fn wait_field(world: &World, object: &str, path: &str, want: &str) {
    eventually(&format!("{object} {path} = {want}"), WAIT, || async {
        (field(world, object, path).await == want).then_some(())
    })
    .await;
}

/// The reason of a resource's Ready condition, as a [`field`] path.
pub(crate) const READY_REASON: &str = r#".status.conditions[?(@.type=="Ready")].reason"#;
/// The message of a resource's Ready condition, as a [`field`] path.
pub(crate) const READY_MESSAGE: &str = r#".status.conditions[?(@.type=="Ready")].message"#;

/// The live sessions at the simulator whose sink names the resource `name`.
pub(crate) async fn held_for(world: &World, name: &str) -> Vec<Value> {
    let uid = field(world, &format!("qod/{name}"), ".metadata.uid").await;
    world
        .provider_sessions()
        .await
        .into_iter()
        .filter(|s| sink_uid(s) == uid)
        .collect()
}

#[tokio::test]
async fn sessions_land_at_the_provider_their_resource_names() {
    let world = World::start("providers").await;
    world.install_crd().await;
    let namespace = world.namespace().to_owned();
    let telco_a = telco_with_bearer("token-of-a").await;
    let telco_b = telco_with_oauth("client-of-b", "secret-of-b").await;
    let cluster_b = format!("telco-b-{namespace}");

    // Each provider's credentials in a Secret: a QodProvider's in its own namespace, a
    // ClusterQodProvider's in the operator's (here the same namespace, POD_NAMESPACE).
    world
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "telco-a",
            "--from-literal=token=token-of-a",
        ])
        .await;
    world
        .kubectl(&[
            "create",
            "secret",
            "generic",
            "telco-b",
            "--from-literal=client-secret=secret-of-b",
        ])
        .await;
    apply(
        &world,
        "providers",
        &format!(
            "apiVersion: qod.dev/v1alpha1
kind: QodProvider
metadata: {{name: telco-a}}
spec:
  camara:
    url: {a}/quality-on-demand/v1
    auth: {{bearerTokenSecretRef: {{name: telco-a, key: token}}}}
---
apiVersion: qod.dev/v1alpha1
kind: ClusterQodProvider
metadata: {{name: {cluster_b}}}
spec:
  camara:
    url: {b}/quality-on-demand/v1
    auth:
      oauth2:
        tokenUrl: {b}/oauth/token
        clientId: client-of-b
        clientSecretSecretRef: {{name: telco-b, key: client-secret}}
  maxSessions: 1
---
apiVersion: qod.dev/v1alpha1
kind: QodProvider
metadata: {{name: no-secret}}
spec:
  camara:
    url: {a}/quality-on-demand/v1
    auth: {{bearerTokenSecretRef: {{name: not-there, key: token}}}}
",
            a = telco_a.base_url(),
            b = telco_b.base_url(),
        ),
    )
    .await;
    let _operator = world.leading_operator("op-providers").await;

    // The keeper reports each provider: Ready when its credentials can be obtained.
    wait_field(
        &world,
        "qodprovider/telco-a",
        r#".status.conditions[?(@.type=="Ready")].status"#,
        "True",
    )
    .await;
    wait_field(
        &world,
        &format!("clusterqodprovider/{cluster_b}"),
        r#".status.conditions[?(@.type=="Ready")].status"#,
        "True",
    )
    .await;
    wait_field(
        &world,
        "qodprovider/no-secret",
        r#".status.conditions[?(@.type=="Ready")].reason"#,
        "CredentialsNotFound",
    )
    .await;

    apply(
        &world,
        "sessions",
        &[
            session(
                "at-a",
                "+36721601240001",
                "  providerRef: {kind: QodProvider, name: telco-a}",
            ),
            session(
                "at-b",
                "+36721601240002",
                &format!("  providerRef: {{kind: ClusterQodProvider, name: {cluster_b}}}"),
            ),
            session("at-default", "+36721601240003", ""),
            session(
                "at-missing",
                "+36721601240004",
                "  providerRef: {kind: QodProvider, name: nowhere}",
            ),
            session(
                "without-secret",
                "+36721601240005",
                "  providerRef: {kind: QodProvider, name: no-secret}",
            ),
        ]
        .join("---\n"),
    )
    .await;
    for name in ["at-a", "at-b", "at-default"] {
        wait_field(
            &world,
            &format!("qod/{name}"),
            ".status.qosStatus",
            "AVAILABLE",
        )
        .await;
    }
    wait_field(
        &world,
        "qod/at-missing",
        r#".status.conditions[?(@.type=="Ready")].reason"#,
        "ProviderNotFound",
    )
    .await;
    wait_field(
        &world,
        "qod/without-secret",
        r#".status.conditions[?(@.type=="Ready")].reason"#,
        "CredentialsNotFound",
    )
    .await;
    let message = field(
        &world,
        "qod/without-secret",
        r#".status.conditions[?(@.type=="Ready")].message"#,
    )
    .await;
    assert!(
        message.contains("not-there") && message.contains("token"),
        "names the Secret and key: {message}"
    );

    // Each session is at its own provider, made with that provider's credentials.
    let uid = |name: &'static str| {
        let world = &world;
        async move { field(world, &format!("qod/{name}"), ".metadata.uid").await }
    };
    let held_a = sessions_at(&telco_a).await;
    let held_b = sessions_at(&telco_b).await;
    assert_eq!(held_a.len(), 1, "{held_a:#?}");
    assert_eq!(sink_uid(&held_a[0]), uid("at-a").await);
    assert_eq!(held_b.len(), 1, "{held_b:#?}");
    assert_eq!(sink_uid(&held_b[0]), uid("at-b").await);
    let held_default = world.provider_sessions().await;
    assert_eq!(held_default.len(), 1, "{held_default:#?}");
    assert_eq!(sink_uid(&held_default[0]), uid("at-default").await);
    assert_eq!(
        field(&world, "qod/at-a", ".status.provider").await,
        "QodProvider/telco-a"
    );
    assert_eq!(
        field(&world, "qod/at-default", ".status.provider").await,
        ""
    );

    // A ClusterQodProvider serves only the namespaces its selector picks; labelling the
    // namespace lets the waiting session through without any change to it.
    let gold = format!("gold-{namespace}");
    apply(
        &world,
        "gold",
        &format!(
            "apiVersion: qod.dev/v1alpha1
kind: ClusterQodProvider
metadata: {{name: {gold}}}
spec:
  camara: {{url: {a}/quality-on-demand/v1, auth: {{bearerTokenSecretRef: {{name: telco-a, key: token}}}}}}
  namespaceSelector:
    matchLabels: {{qod.dev/tier: gold-{namespace}}}
---
{session}",
            a = telco_a.base_url(),
            session = session(
                "gold-only",
                "+36721601240007",
                &format!("  providerRef: {{kind: ClusterQodProvider, name: {gold}}}"),
            ),
        ),
    )
    .await;
    wait_field(
        &world,
        "qod/gold-only",
        r#".status.conditions[?(@.type=="Ready")].reason"#,
        "ProviderNotAllowed",
    )
    .await;
    assert_eq!(
        sessions_at(&telco_a).await.len(),
        1,
        "no call for the refused namespace"
    );
    world
        .kubectl(&[
            "label",
            "namespace",
            &namespace,
            &format!("qod.dev/tier=gold-{namespace}"),
        ])
        .await;
    wait_field(&world, "qod/gold-only", ".status.qosStatus", "AVAILABLE").await;
    world.kubectl(&["delete", "qod/gold-only"]).await;
    world
        .kubectl(&["delete", &format!("clusterqodprovider/{gold}")])
        .await;

    // maxSessions 1: a second session through telco-b waits, with no call, until a slot frees.
    apply(
        &world,
        "second-at-b",
        &session(
            "second-at-b",
            "+36721601240006",
            &format!("  providerRef: {{kind: ClusterQodProvider, name: {cluster_b}}}"),
        ),
    )
    .await;
    wait_field(
        &world,
        "qod/second-at-b",
        r#".status.conditions[?(@.type=="Ready")].reason"#,
        "ProviderQuotaExceeded",
    )
    .await;
    assert_eq!(
        creates_at(&telco_b).await,
        1,
        "no call for the refused create"
    );
    wait_field(
        &world,
        &format!("clusterqodprovider/{cluster_b}"),
        ".status.sessions",
        "1",
    )
    .await;

    // A provider cannot go while sessions use it: its deletion waits for them.
    world
        .kubectl(&["delete", "qodprovider/telco-a", "--wait=false"])
        .await;
    wait_field(
        &world,
        "qodprovider/telco-a",
        r#".status.conditions[?(@.type=="Ready")].reason"#,
        "Deleting",
    )
    .await;
    assert_eq!(
        sessions_at(&telco_a).await.len(),
        1,
        "the session stays meanwhile"
    );

    world.kubectl(&["delete", "qod/at-a", "qod/at-b"]).await;
    // telco-a goes once its session is deleted there; second-at-b gets telco-b's free slot.
    eventually("telco-a to be gone", WAIT, || async {
        let out = world.kubectl_output(&["get", "qodprovider/telco-a"]).await;
        (!out.status.success()).then_some(())
    })
    .await;
    assert!(
        sessions_at(&telco_a).await.is_empty(),
        "nothing left at telco-a"
    );
    wait_field(&world, "qod/second-at-b", ".status.qosStatus", "AVAILABLE").await;
    let held_b = sessions_at(&telco_b).await;
    assert_eq!(held_b.len(), 1, "{held_b:#?}");
    assert_eq!(sink_uid(&held_b[0]), uid("second-at-b").await);

    // Naming another provider moves the session: deleted at the default, created at telco-b
    // once its slot is free again.
    world.kubectl(&["delete", "qod/second-at-b"]).await;
    world
        .kubectl(&[
            "patch",
            "qod/at-default",
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"providerRef":{{"kind":"ClusterQodProvider","name":"{cluster_b}"}}}}}}"#),
        ])
        .await;
    wait_field(
        &world,
        "qod/at-default",
        ".status.provider",
        &format!("ClusterQodProvider/{cluster_b}"),
    )
    .await;
    wait_field(&world, "qod/at-default", ".status.qosStatus", "AVAILABLE").await;
    assert!(
        world.provider_sessions().await.is_empty(),
        "deleted at the default provider"
    );
    let held_b = sessions_at(&telco_b).await;
    assert_eq!(held_b.len(), 1, "{held_b:#?}");
    assert_eq!(sink_uid(&held_b[0]), uid("at-default").await);

    world.kubectl(&["delete", "qod", "--all"]).await;
    world
        .kubectl(&[
            "delete",
            &format!("clusterqodprovider/{cluster_b}"),
            "qodprovider/no-secret",
        ])
        .await;
    assert!(
        sessions_at(&telco_b).await.is_empty(),
        "nothing left at telco-b"
    );
    telco_a.shutdown().await;
    telco_b.shutdown().await;
    world.stop().await;
}

/// A provider that hangs holds only its own share of the operator's passes: sessions of another
/// provider are created meanwhile, not after the hung calls time out.
#[tokio::test]
async fn a_hanging_provider_does_not_hold_up_another() {
    let world = World::start("hanging-provider").await;
    world.install_crd().await;
    let hanging = telco(simulator::SimulatorConfig::default()).await;
    apply(
        &world,
        "hanging",
        &format!(
            "apiVersion: qod.dev/v1alpha1
kind: QodProvider
metadata: {{name: hanging}}
spec:
  camara: {{url: {}/quality-on-demand/v1}}
",
            hanging.base_url()
        ),
    )
    .await;
    let _operator = world
        .leading_operator_with("op-hanging", &["--provider-timeout=15m"])
        .await;
    // Once the operator knows its profiles (a listing it could not get would hold every
    // session before its create), the provider makes each session and holds the answers until
    // the test releases them; the operator waits longer than the test runs, so no hung call
    // ends (and frees its pass) meanwhile.
    let hanging_control = Sim::of(&hanging);
    eventually("the hanging provider's profiles listed", WAIT, || async {
        let stats = hanging_control.stats().await;
        (stats["apiRequests"]["retrieve_qos_profiles"]["200"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    hanging_control
        .faults(serde_json::json!({"holdAnswers": true}))
        .await;

    // More creates than the operator's passes per provider (16) wait on the hanging provider.
    let at_hanging: Vec<String> = (0..20)
        .map(|i| {
            session(
                &format!("hung-{i}"),
                &format!("+367216012{:05}", 50_000 + i),
                "  providerRef: {kind: QodProvider, name: hanging}",
            )
        })
        .collect();
    apply(&world, "hung", &at_hanging.join("---\n")).await;
    eventually("16 creates held by the hanging provider", WAIT, || async {
        (sessions_at(&hanging).await.len() >= 16).then_some(())
    })
    .await;

    // The default provider's sessions go AVAILABLE while the hung calls are still unanswered;
    // were they queued behind them, they would come after the hanging provider's answers.
    apply(
        &world,
        "others",
        &[
            session("other-1", "+36721601260001", ""),
            session("other-2", "+36721601260002", ""),
        ]
        .join("---\n"),
    )
    .await;
    for name in ["other-1", "other-2"] {
        wait_field(
            &world,
            &format!("qod/{name}"),
            ".status.qosStatus",
            "AVAILABLE",
        )
        .await;
    }
    let answered = world
        .kubectl(&[
            "get",
            "qod",
            "-o",
            r#"jsonpath={range .items[?(@.spec.providerRef.name=="hanging")]}{.status.sessionId}{end}"#,
        ])
        .await;
    assert!(
        answered.is_empty(),
        "the hanging provider answered before the others were served: {answered}"
    );

    hanging_control.faults(serde_json::json!({})).await;
    world
        .kubectl(&["delete", "qod", "--all", "--wait=false"])
        .await;
    hanging.shutdown().await;
    world.stop().await;
}
