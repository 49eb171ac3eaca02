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
    config::Kubeconfig,
};
use secrecy::ExposeSecret;
use serde_json::json;

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
        write_kubeconfig(admin_kubeconfig, server, Some(&self.token), out);
    }

    /// A client as this user.
    pub async fn client(&self, admin_kubeconfig: &Path, dir: &Path) -> Client {
        let path = dir.join(format!(
            "kubeconfig-{}",
            self.username.rsplit(':').next().unwrap()
        ));
        self.write_kubeconfig(admin_kubeconfig, None, &path);
        super::control_plane::client_from(&path).await
    }
}

/// A copy of `kubeconfig` (its first cluster and user) at `out`, pointing at `server` and
/// presenting `token` where given. TLS passes a TCP proxy unchanged: the serving certificate
/// names 127.0.0.1 as an IP SAN, valid on any port.
pub fn write_kubeconfig(kubeconfig: &Path, server: Option<&str>, token: Option<&str>, out: &Path) {
    let file = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
    let cluster = file.clusters[0].cluster.clone().expect("a cluster");
    let ca = cluster
        .certificate_authority_data
        .expect("the launcher's kubeconfig carries its CA");
    let server = server.map_or_else(|| cluster.server.expect("a server"), str::to_owned);
    let token = token.map_or_else(
        || {
            let user = file.auth_infos[0].auth_info.clone().expect("a user");
            user.token.expect("a token").expose_secret().to_owned()
        },
        str::to_owned,
    );
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: control-plane
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: user
  user:
    token: {token}
contexts:
- name: control-plane
  context:
    cluster: control-plane
    user: user
    namespace: default
current-context: control-plane
"
    );
    std::fs::write(out, text).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
