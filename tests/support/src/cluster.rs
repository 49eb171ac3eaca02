//! A test's part of a real Kubernetes API: the operator's CRDs installed, a namespace of the
//! test's own, a client and a kubeconfig for processes.

use std::path::PathBuf;

use kube::{Api, Client};
use qod_operator::api::QodSession;

use crate::control_plane::{ControlPlane, install_crd};

pub struct Cluster {
    pub client: Client,
    /// The test's QodSessions.
    pub api: Api<QodSession>,
    pub namespace: String,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// A namespace named after `test` on the test binary's shared control plane.
    pub async fn start(test: &str) -> Self {
        Self::on(ControlPlane::shared_off_runtime().await, test).await
    }

    /// A namespace named after `test` on `control_plane` (one of the test's own, to kill and
    /// restart, or started with flags of its own).
    pub async fn on(control_plane: &ControlPlane, test: &str) -> Self {
        let client = control_plane.client().await;
        install_crd(&client).await;
        let namespace = control_plane.namespace(test).await;
        Self {
            api: Api::namespaced(client.clone(), &namespace),
            kubeconfig: control_plane.kubeconfig().to_owned(),
            client,
            namespace,
        }
    }
}
