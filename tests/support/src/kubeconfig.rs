//! Kubeconfigs: a client from one, and copies of the control plane's admin kubeconfig that
//! change its server (a proxy in front of it), its user (a ServiceAccount's token) or its
//! default namespace.

use std::path::Path;

use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};
use secrecy::ExposeSecret;

/// A kube client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Client {
    qod_operator::tls::install_crypto_provider();
    let file = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("reading {}: {e}", kubeconfig.display()));
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {}: {e}", kubeconfig.display()));
    Client::try_from(config).expect("kube client")
}

/// A copy of a kubeconfig (its first cluster and user), with what [`server`](Self::server),
/// [`token`](Self::token) and [`namespace`](Self::namespace) change.
pub struct KubeconfigCopy<'a> {
    admin: &'a Path,
    server: Option<&'a str>,
    token: Option<&'a str>,
    namespace: &'a str,
}

impl<'a> KubeconfigCopy<'a> {
    pub fn of(admin: &'a Path) -> Self {
        Self {
            admin,
            server: None,
            token: None,
            namespace: "default",
        }
    }

    /// Another server URL. TLS passes a TCP proxy unchanged: the serving certificate names
    /// 127.0.0.1 as an IP SAN, valid on any port.
    pub fn server(mut self, server: &'a str) -> Self {
        self.server = Some(server);
        self
    }

    /// Another user: the bearer token `token`.
    pub fn token(mut self, token: &'a str) -> Self {
        self.token = Some(token);
        self
    }

    /// The namespace that kubectl (and `kubectl apply` of manifests without one) and clients
    /// default to.
    pub fn namespace(mut self, namespace: &'a str) -> Self {
        self.namespace = namespace;
        self
    }

    pub fn write(&self, out: &Path) {
        let file = Kubeconfig::read_from(self.admin)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.admin.display()));
        let cluster = file.clusters[0].cluster.clone().expect("a cluster");
        let ca = cluster
            .certificate_authority_data
            .expect("the launcher's kubeconfig carries its CA");
        let server = self
            .server
            .map_or_else(|| cluster.server.expect("a server"), str::to_owned);
        let token = self.token.map_or_else(
            || {
                let user = file.auth_infos[0].auth_info.clone().expect("a user");
                user.token.expect("a token").expose_secret().to_owned()
            },
            str::to_owned,
        );
        let namespace = self.namespace;
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
    namespace: {namespace}
current-context: control-plane
"
        );
        std::fs::write(out, text).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    }
}
