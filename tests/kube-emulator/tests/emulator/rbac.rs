//! Authentication and the RBAC authorizer.

use crate::support::*;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube_emulator::{Authorization, Options, UserInfo};
use serde_json::json;

#[tokio::test]
async fn unknown_token_is_401() {
    let env = Env::start().await;
    let client = env.emu.client_with_token("bogus").await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(client);
    let s = api_err(api.list(&ListParams::default()).await);
    assert_eq!(s.code, 401);
}

#[tokio::test]
async fn rbac_denies_without_binding_and_allows_with_one() {
    let env = Env::with(Options {
        authorization: Authorization::Rbac,
        ..Default::default()
    })
    .await;
    env.emu
        .add_token("sa-token", UserInfo::service_account("default", "operator"));
    let sa_client = env.emu.client_with_token("sa-token").await.unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(sa_client.clone());
    let s = api_err(api.list(&ListParams::default()).await);
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        s.message,
        "configmaps is forbidden: User \"system:serviceaccount:default:operator\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    let admin = &env;
    admin.raw(reqwest::Method::POST, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", Some("application/json"),
        Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "cm-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]}))).await;
    admin.raw(reqwest::Method::POST, "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", Some("application/json"),
        Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "op"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": "default"}]}))).await;
    api.list(&ListParams::default()).await.unwrap();
    // Reading is allowed, writing is not; other namespaces are not.
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("x".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        api_err(api.create(&PostParams::default(), &cm).await).code,
        403
    );
    let other: Api<ConfigMap> = Api::namespaced(sa_client, "kube-system");
    assert_eq!(api_err(other.list(&ListParams::default()).await).code, 403);
}

#[tokio::test]
async fn cluster_role_binding_grants_cluster_wide_and_subresources_are_separate() {
    let env = Env::with(Options {
        authorization: Authorization::Rbac,
        ..Default::default()
    })
    .await;
    env.create_crd(widget_crd()).await;
    env.emu
        .add_token("t", UserInfo::service_account("ops", "op"));
    env.raw(reqwest::Method::POST, "/apis/rbac.authorization.k8s.io/v1/clusterroles", Some("application/json"),
        Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "widgets"},
            "rules": [{"apiGroups": ["example.dev"], "resources": ["widgets"], "verbs": ["get", "list", "watch", "patch"]}]}))).await;
    env.raw(reqwest::Method::POST, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", Some("application/json"),
        Some(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "widgets"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "widgets"},
            "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "ops"}]}))).await;
    env.widgets()
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let client = env.emu.client_with_token("t").await.unwrap();
    let all: Api<Widget> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let ns: Api<Widget> = Api::default_namespaced(client);
    let s = api_err(
        ns.patch_status(
            "w",
            &Default::default(),
            &kube::api::Patch::Merge(json!({"status": {"phase": "x"}})),
        )
        .await,
    );
    assert_eq!(s.code, 403);
    assert!(
        s.message
            .contains("cannot patch resource \"widgets/status\" in API group \"example.dev\""),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn token_request_issues_a_service_account_token() {
    let env = Env::with(Options {
        authorization: Authorization::Rbac,
        ..Default::default()
    })
    .await;
    let sas: Api<ServiceAccount> = Api::default_namespaced(env.client.clone());
    sas.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: ObjectMeta {
                name: Some("bot".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (code, tr) = env
        .raw(reqwest::Method::POST, "/api/v1/namespaces/default/serviceaccounts/bot/token", Some("application/json"),
            Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})))
        .await;
    assert_eq!(code, 201, "{tr}");
    let token = tr["status"]["token"].as_str().unwrap();
    let client = env.emu.client_with_token(token).await.unwrap();
    let s = api_err(
        Api::<ConfigMap>::default_namespaced(client)
            .list(&ListParams::default())
            .await,
    );
    assert!(
        s.message.contains("system:serviceaccount:default:bot"),
        "{}",
        s.message
    );
}
