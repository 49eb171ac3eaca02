//! Where the chart gets installed: a real control plane (tests/control-plane: kube-apiserver
//! 1.35 with RBAC, no controller manager, no kubelet), helm and kubectl as its admin, and the
//! chart's ServiceAccount holding a token from the TokenRequest API, as the operator pod would.

use std::path::{Path, PathBuf};

use kube::Client;
use qod_test_support::{
    ControlPlane, command,
    kubeconfig::{KubeconfigCopy, client_from},
    kubectl::Kubectl,
    tools,
};

use crate::harness::*;

pub struct Cluster {
    /// `None`: the test binary's shared control plane.
    own: Option<ControlPlane>,
    /// helm's home and the test's files.
    pub dir: PathBuf,
    pub release: String,
    /// The release namespace.
    pub namespace: String,
    /// `<release>-qod-operator`, as the chart names its objects.
    pub fullname: String,
}

impl Cluster {
    /// A release of its own on the shared control plane. Release and namespace share one name,
    /// unique in the binary, so tests running in parallel never meet: even the cluster-scoped
    /// objects (ClusterRole and ClusterRoleBinding) are named after the release.
    pub async fn shared(prefix: &str) -> Self {
        // The CRD is cluster-wide and shared: applied and Established before helm runs, since
        // a helm install that finds it present skips it without waiting for it.
        let namespace = qod_test_support::Cluster::start(prefix).await.namespace;
        Self::new(None, namespace.clone(), namespace)
    }

    /// A fresh control plane of this test alone (helm installs `crds/` itself there), with
    /// the release [`RELEASE`] in [`NAMESPACE`] and more kube-apiserver flags.
    pub fn own(name: &str, apiserver_args: &[&str]) -> Self {
        let plane = ControlPlane::start_own_with(name, apiserver_args);
        Self::new(Some(plane), RELEASE.into(), NAMESPACE.into())
    }

    fn new(own: Option<ControlPlane>, release: String, namespace: String) -> Self {
        Self {
            own,
            dir: scratch("cluster"),
            fullname: format!("{release}-qod-operator"),
            release,
            namespace,
        }
    }

    fn plane(&self) -> &ControlPlane {
        self.own.as_ref().unwrap_or_else(|| ControlPlane::shared())
    }

    /// Stops a control plane of one's own, which flushes its audit log.
    pub fn stop(&mut self) {
        self.own
            .as_mut()
            .expect("only a control plane of one's own stops")
            .stop();
    }

    pub async fn admin(&self) -> Client {
        self.plane().client().await
    }

    /// Another fresh namespace.
    pub async fn namespace(&self, prefix: &str) -> String {
        self.plane().namespace(prefix).await
    }

    /// helm 4 as the admin.
    pub async fn helm(&self, args: &[&str]) -> String {
        self.helm_of(tools::helm(), args).await
    }

    /// Helm 3 as the admin.
    pub async fn helm3(&self, args: &[&str]) -> String {
        self.helm_of(tools::helm3(), args).await
    }

    async fn helm_of(&self, binary: &Path, args: &[&str]) -> String {
        let mut cmd = helm_command_of(binary, &self.dir);
        cmd.args(args).env("KUBECONFIG", self.plane().kubeconfig());
        let out = command::output_off_runtime(cmd).await;
        command::succeeded(&format!("{} {args:?}", binary.display()), &out)
    }

    /// `helm <verb> <release> <chart> -n <namespace> <args>` with helm 4 (`install` creates the
    /// namespace when it is missing).
    pub async fn helm_release(&self, verb: &str, args: &[&str]) -> String {
        let chart = chart_arg();
        let mut all = vec![verb, &self.release, &chart, "-n", &self.namespace];
        if verb == "install" {
            all.push("--create-namespace");
        }
        all.extend_from_slice(args);
        self.helm(&all).await
    }

    /// kubectl as the admin.
    fn admin_kubectl(&self) -> Kubectl {
        Kubectl::new(self.plane().kubeconfig())
    }

    pub async fn kubectl(&self, args: &[&str]) -> String {
        self.admin_kubectl().run(args).await
    }

    /// kubectl's stderr, for commands that must fail.
    pub async fn kubectl_fails(&self, args: &[&str]) -> String {
        self.admin_kubectl().fails(args).await
    }

    /// Applies the CRD `definition` (JSON, kept as `file` in the test's folder) server-side
    /// and waits until the API server serves `crd` (`<plural>.<group>`).
    pub async fn apply_crd(&self, file: &str, definition: &str, crd: &str) {
        let path = self.dir.join(file);
        std::fs::write(&path, definition).unwrap();
        self.kubectl(&["apply", "--server-side", "-f", &path.display().to_string()])
            .await;
        self.admin_kubectl()
            .wait_established(&[&format!("crd/{crd}")])
            .await;
    }

    /// The chart's ServiceAccount's user name, as the API server (and its audit log) knows it.
    pub fn service_account_user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.fullname)
    }

    /// A kubeconfig holding a token issued for the chart's ServiceAccount (TokenRequest API):
    /// the admin kubeconfig's server and CA, another user.
    pub async fn service_account_kubeconfig(&self) -> PathBuf {
        let token = self
            .kubectl(&["create", "token", &self.fullname, "-n", &self.namespace])
            .await;
        let path = self.dir.join(format!("{}.kubeconfig", self.fullname));
        KubeconfigCopy::of(self.plane().kubeconfig())
            .token(token.trim())
            .write(&path);
        path
    }

    /// A client authenticated as the chart's ServiceAccount.
    pub async fn service_account(&self) -> Client {
        client_from(&self.service_account_kubeconfig().await).await
    }
}
