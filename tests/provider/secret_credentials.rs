//! Credentials from Kubernetes Secrets (a provider resource's `...SecretRef`), read through the
//! real API server (tests/control-plane) by a `get` of the one Secret, used against the
//! simulator: a rotated Secret is picked up without a restart, a missing Secret or key is named
//! without any call to the provider, and `get` alone is enough (no list, no watch).

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use qod_operator::{
    qod::{
        ApplicationServer, CamaraAuth, CamaraClient, CamaraConfig, ClientCredentials, Device,
        Error, NacClient, NacConfig, SecretKeyRef, SecretProblem, SecretSource, SessionApi,
        SessionRequest,
    },
    simulator::{self, RunningSimulator},
};
use qod_test_support::{
    ControlPlane,
    kubeconfig::{KubeconfigCopy, client_from},
    simulator::Sim,
};
use secrecy::SecretString;
use serde_json::{Value, json};

/// A plain session request (also used by the registry's tests).
pub(crate) fn request() -> SessionRequest {
    SessionRequest {
        device: Device {
            phone_number: Some("+36721601234567".into()),
            ..Device::default()
        },
        application_server: ApplicationServer {
            ipv4_address: Some("198.51.100.7".into()),
            ipv6_address: None,
        },
        device_ports: None,
        application_server_ports: None,
        qos_profile: "QOS_L".into(),
        duration: 600,
        notification: None,
    }
}

/// Writes Secret `namespace/name` with `data` (server-side apply, so a rotation is the same call).
async fn write_secret(client: &Client, namespace: &str, name: &str, data: Value) {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": data,
    });
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply("qod-operator-tests").force(),
            &Patch::Apply(secret),
        )
        .await
        .unwrap();
}

fn secret_file(test: &str, value: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("qod-{test}-{}", uuid::Uuid::new_v4()));
    std::fs::write(&path, value).unwrap();
    path
}

async fn start(config: simulator::SimulatorConfig) -> RunningSimulator {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    simulator::spawn(listener, config).await.unwrap()
}

/// How many `operation` requests the simulator answered with `status`.
async fn answered(sim: &RunningSimulator, operation: &str, status: u16) -> u64 {
    let stats = Sim::of(sim).stats().await;
    stats["apiRequests"][operation][status.to_string()]
        .as_u64()
        .unwrap_or(0)
}

/// A client as a ServiceAccount of `namespace` that may only `get` Secrets there (what the
/// operator's RBAC grants), and nothing else anywhere.
async fn only_get_on_secrets(plane: &ControlPlane, namespace: &str) -> Client {
    let admin = plane.client().await;
    let apply = PatchParams::apply("qod-operator-tests").force();
    let name = "secret-reader";
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    accounts
        .patch(
            name,
            &apply,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                                  "metadata": {"name": name, "namespace": namespace}})),
        )
        .await
        .unwrap();
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    });
    for object in [role, binding] {
        let kind = object["kind"].as_str().unwrap();
        let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            kind,
        ));
        Api::<kube::core::DynamicObject>::namespaced_with(admin.clone(), namespace, &resource)
            .patch(name, &apply, &Patch::Apply(object))
            .await
            .unwrap();
    }
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let token = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let kubeconfig = plane.dir().join(format!("kubeconfig-{namespace}-{name}"));
    KubeconfigCopy::of(plane.kubeconfig())
        .token(&token)
        .write(&kubeconfig);
    client_from(&kubeconfig).await
}

#[tokio::test]
async fn a_rotated_secret_is_used_without_a_restart_with_get_alone() {
    let plane = ControlPlane::shared();
    let admin = plane.client().await;
    let namespace = plane.namespace("secret-rotation").await;
    let reader = only_get_on_secrets(plane, &namespace).await;
    write_secret(&admin, &namespace, "nac", json!({"api-key": "key-one\n"})).await;
    let provider_key = secret_file("nac-key", "key-one");
    let sim = start(simulator::SimulatorConfig {
        api_key: Some(SecretString::from("key-one")),
        api_key_file: Some(provider_key.clone()),
        ..simulator::SimulatorConfig::default()
    })
    .await;
    let key = SecretKeyRef::new(reader, &namespace, "nac", "api-key");
    let client = NacClient::new(NacConfig {
        base_url: sim.base_url().to_owned(),
        ..NacConfig::new(SecretSource::Kubernetes(key))
    })
    .unwrap();
    let created = client.create_session(&request()).await.unwrap();

    // The Secret first, then the provider: the old key is refused once (403), the Secret read
    // again, and the call repeated with the new key.
    write_secret(&admin, &namespace, "nac", json!({"api-key": "key-two"})).await;
    std::fs::write(&provider_key, "key-two").unwrap();
    client.get_session(&created.session_id).await.unwrap();
    assert_eq!(answered(&sim, "get", 403).await, 1);
    assert_eq!(answered(&sim, "get", 200).await, 1);
    std::fs::remove_file(&provider_key).unwrap();
}

#[tokio::test]
async fn an_oauth2_client_secret_comes_from_a_secret() {
    let plane = ControlPlane::shared();
    let admin = plane.client().await;
    let namespace = plane.namespace("secret-oauth2").await;
    write_secret(
        &admin,
        &namespace,
        "telco",
        json!({"client-secret": "s3cr3t"}),
    )
    .await;
    let provider_secret = secret_file("client-secret", "s3cr3t");
    let sim = start(simulator::SimulatorConfig {
        require_auth: true,
        client_credentials: Some(simulator::ClientCredentials {
            client_id: "operator".into(),
            client_secret: SecretString::from("s3cr3t"),
        }),
        client_secret_file: Some(provider_secret.clone()),
        ..simulator::SimulatorConfig::default()
    })
    .await;
    let mut config = CamaraConfig::new(format!("{}/quality-on-demand/v1", sim.base_url()));
    config.auth = CamaraAuth::ClientCredentials(ClientCredentials::new(
        format!("{}/oauth/token", sim.base_url()),
        "operator",
        SecretSource::Kubernetes(SecretKeyRef::new(
            admin,
            &namespace,
            "telco",
            "client-secret",
        )),
    ));
    let client = CamaraClient::new(config).unwrap();
    client.create_session(&request()).await.unwrap();
    assert_eq!(answered(&sim, "create", 201).await, 1);
    std::fs::remove_file(&provider_secret).unwrap();
}

#[tokio::test]
async fn a_missing_or_forbidden_secret_is_named_and_nothing_reaches_the_provider() {
    let plane = ControlPlane::shared();
    let admin = plane.client().await;
    let namespace = plane.namespace("secret-missing").await;
    let elsewhere = plane.namespace("secret-elsewhere").await;
    let reader = only_get_on_secrets(plane, &namespace).await;
    write_secret(
        &admin,
        &namespace,
        "telco",
        json!({"other": "hunter2", "blank": " \n"}),
    )
    .await;
    write_secret(&admin, &elsewhere, "telco", json!({"token": "hunter2"})).await;
    let sim = start(simulator::SimulatorConfig::default()).await;
    let client_for = |namespace: &str, name: &str, key: &str| {
        let mut config = CamaraConfig::new(format!("{}/quality-on-demand/v1", sim.base_url()));
        config.auth = CamaraAuth::Bearer(SecretSource::Kubernetes(SecretKeyRef::new(
            reader.clone(),
            namespace,
            name,
            key,
        )));
        CamaraClient::new(config).unwrap()
    };
    for (secret_namespace, name, key, expected) in [
        (&namespace, "absent", "token", SecretProblem::SecretNotFound),
        (&namespace, "telco", "token", SecretProblem::KeyMissing),
        (&namespace, "telco", "blank", SecretProblem::Empty),
        (&elsewhere, "telco", "token", SecretProblem::Forbidden),
    ] {
        let error = client_for(secret_namespace, name, key)
            .create_session(&request())
            .await
            .unwrap_err();
        let Error::SecretKey { problem, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(*problem, expected, "{error}");
        assert!(error.credentials_not_found(), "{error}");
        let text = error.to_string();
        assert!(
            text.contains(&format!("Secret {secret_namespace}/{name}"))
                && text.contains(&format!("`{key}`")),
            "{text}"
        );
        let chain = format!("{text} {error:?}");
        assert!(!chain.contains("hunter2"), "{chain}");
    }
    let stats = Sim::of(&sim).stats().await;
    assert_eq!(
        stats["apiRequests"],
        json!({}),
        "no call reached the provider"
    );
}
