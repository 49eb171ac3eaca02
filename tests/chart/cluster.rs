//! Where the chart gets installed: a real control plane (tests/control-plane: kube-apiserver
//! 1.35 with RBAC, no controller manager, no kubelet), helm and kubectl as its admin, and the
//! chart's ServiceAccount holding a token from the TokenRequest API, as the operator pod would.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use kube::Client;
use serde_json::{Value, json};

use crate::{
    harness::*,
    support::{ControlPlane, control_plane, tools},
};

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
        let plane = ControlPlane::shared();
        // The CRD is cluster-wide and shared: applied and Established before helm runs, since
        // a helm install that finds it present skips it without waiting for it.
        control_plane::install_crd(&plane.client().await).await;
        let namespace = plane.namespace(prefix).await;
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

    /// Runs a command with the admin kubeconfig, off the runtime's thread.
    async fn output(&self, mut cmd: Command, what: String) -> Output {
        cmd.env("KUBECONFIG", self.plane().kubeconfig());
        tokio::task::spawn_blocking(move || {
            cmd.output()
                .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
        })
        .await
        .unwrap()
    }

    /// Runs `cmd` as the admin; fails the test on a non-zero exit, else gives its stdout.
    async fn run(&self, cmd: Command, what: String) -> String {
        let out = self.output(cmd, what.clone()).await;
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// helm 4 as the admin.
    pub async fn helm(&self, args: &[&str]) -> String {
        self.helm_of(&helm(), args).await
    }

    /// Helm 3 as the admin.
    pub async fn helm3(&self, args: &[&str]) -> String {
        self.helm_of(tools::helm3(), args).await
    }

    async fn helm_of(&self, binary: &Path, args: &[&str]) -> String {
        let mut cmd = helm_command_of(binary, &self.dir);
        cmd.args(args);
        self.run(cmd, format!("{} {args:?}", binary.display()))
            .await
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

    pub async fn kubectl(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(tools::kubectl());
        cmd.args(args);
        self.run(cmd, format!("kubectl {args:?}")).await
    }

    /// kubectl's stderr, for commands that must fail.
    pub async fn kubectl_fails(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(tools::kubectl());
        cmd.args(args);
        let out = self.output(cmd, format!("kubectl {args:?}")).await;
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded:\n{}",
            text(&out.stdout)
        );
        text(&out.stderr)
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
        let admin = std::fs::read_to_string(self.plane().kubeconfig()).unwrap();
        let mut config: Value = serde_saphyr::from_str(&admin).unwrap();
        config["users"][0]["user"] = json!({"token": token.trim()});
        let path = self.dir.join(format!("{}.kubeconfig", self.fullname));
        // JSON is YAML, which is what kubeconfig readers expect.
        std::fs::write(&path, config.to_string()).unwrap();
        path
    }

    /// A client authenticated as the chart's ServiceAccount.
    pub async fn service_account(&self) -> Client {
        control_plane::client_from(&self.service_account_kubeconfig().await).await
    }
}
