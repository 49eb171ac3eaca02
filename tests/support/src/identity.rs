//! Kubeconfigs of other users than the admin, so the API server (its audit log, API priority
//! and fairness) tells the operator's requests from the test's. The admin is in
//! `system:masters`, which APF exempts from every limit; a ServiceAccount is not.

use std::path::Path;

use k8s_openapi::api::{
    authentication::v1::TokenRequest, core::v1::ServiceAccount, rbac::v1::ClusterRoleBinding,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

use crate::kubeconfig::{KubeconfigCopy, client_from};

/// A ServiceAccount's credentials as a kubeconfig.
pub struct ServiceAccountUser {
    /// The name the API server (and its audit log) knows it by.
    pub username: String,
    pub token: String,
}

impl ServiceAccountUser {
    /// Makes ServiceAccount `namespace/name` a cluster-admin (these tests are about load and
    /// watches, not permissions) and issues it a token valid for two hours.
    pub async fn create(admin: &Client, namespace: &str, name: &str) -> Self {
        let apply = PatchParams::apply("qod-operator-tests").force();
        let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
        let account = json!({
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        });
        accounts
            .patch(name, &apply, &Patch::Apply(account))
            .await
            .unwrap_or_else(|e| panic!("ServiceAccount {namespace}/{name}: {e}"));
        let binding_name = format!("{namespace}-{name}");
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": binding_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        });
        Api::<ClusterRoleBinding>::all(admin.clone())
            .patch(&binding_name, &apply, &Patch::Apply(binding))
            .await
            .unwrap_or_else(|e| panic!("ClusterRoleBinding {binding_name}: {e}"));
        let request: TokenRequest = serde_json::from_value(json!({
            "spec": {"expirationSeconds": 7200},
        }))
        .unwrap();
        let issued = accounts
            .create_token_request(name, &Default::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("token of {namespace}/{name}: {e}"));
        let token = issued.status.expect("an issued token has a status").token;
        Self {
            username: format!("system:serviceaccount:{namespace}:{name}"),
            token,
        }
    }

    /// Writes a kubeconfig for this user to `out`, with the cluster (CA) of `admin_kubeconfig`
    /// and its server, or `server` instead (a proxy in front of it).
    pub fn write_kubeconfig(&self, admin_kubeconfig: &Path, server: Option<&str>, out: &Path) {
        let copy = KubeconfigCopy::of(admin_kubeconfig).token(&self.token);
        match server {
            Some(server) => copy.server(server),
            None => copy,
        }
        .write(out);
    }

    /// A client as this user.
    pub async fn client(&self, admin_kubeconfig: &Path, dir: &Path) -> Client {
        let path = dir.join(format!(
            "kubeconfig-{}",
            self.username.rsplit(':').next().unwrap()
        ));
        self.write_kubeconfig(admin_kubeconfig, None, &path);
        client_from(&path).await
    }
}
