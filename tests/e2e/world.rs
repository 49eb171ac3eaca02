//! One test's world: a namespace of its own on the test binary's real control plane
//! (tests/control-plane, reached through a kubeconfig whose context names that namespace, as
//! kubectl reaches any cluster), the QoD simulator, a scratch folder, and the operator
//! processes started against them. Everything the tests observe goes through kubectl or the
//! simulator's `/_sim/` control API.

use std::{path::PathBuf, process::Output, time::Duration};

use qod_operator::simulator::RunningSimulator;
use qod_test_support::{
    ControlPlane, eventually,
    kubeconfig::KubeconfigCopy,
    kubectl::Kubectl,
    operator::{Operator, OperatorSetup},
    simulator::{self, Sim, in_process_simulator},
    test_dir, tools,
};
use serde_json::Value;
use tokio::sync::OnceCell;

/// How long a step may take before the test fails (never waited out when things work).
pub const WAIT: Duration = Duration::from_secs(60);

pub struct World {
    sim: RunningSimulator,
    /// The simulator's test-control API.
    provider: Sim,
    pub dir: PathBuf,
    /// The test's namespace, the default one of its kubeconfig.
    namespace: String,
    /// A control plane of the test's own, when it needs a fresh cluster.
    own: Option<ControlPlane>,
    kubectl: Kubectl,
}

impl World {
    /// A namespace of the test's own on the test binary's shared control plane.
    pub async fn start(test: &str) -> Self {
        Self::on(test, None).await
    }

    /// A fresh cluster of the test's own (nothing installed yet, as a user's new cluster).
    pub async fn start_own(test: &str) -> Self {
        let own = tokio::task::spawn_blocking({
            let name = format!("e2e-{test}");
            move || ControlPlane::start_own(&name)
        })
        .await
        .unwrap();
        Self::on(test, Some(own)).await
    }

    async fn on(test: &str, own: Option<ControlPlane>) -> Self {
        // Built off the runtime's threads: the build blocks for minutes when cold.
        tokio::task::spawn_blocking(tools::release_operator)
            .await
            .unwrap();
        let dir = test_dir(&format!("e2e-{test}"));
        let control_plane = match &own {
            Some(own) => own,
            None => ControlPlane::shared(),
        };
        let namespace = control_plane.namespace(test).await;
        let kubeconfig = dir.join("kubeconfig");
        KubeconfigCopy::of(control_plane.kubeconfig())
            .namespace(&namespace)
            .write(&kubeconfig);
        // Faster than the operator's 1 s re-read of REQUESTED sessions, so the AVAILABLE
        // notification often lands in the same whole second as the last read.
        let (sim, provider) = in_process_simulator().await;
        Self {
            sim,
            provider,
            kubectl: Kubectl::new(&kubeconfig).home(&dir),
            dir,
            namespace,
            own,
        }
    }

    /// `qod-operator run` (the release build) as its own process, as a Deployment would
    /// start it.
    pub fn operator(&self, name: &str) -> Operator {
        self.operator_with(name, &[])
    }

    /// [`Self::operator`] with more flags.
    pub fn operator_with(&self, name: &str, extra_args: &[&str]) -> Operator {
        let mut setup = OperatorSetup::new(
            tools::release_operator(),
            &self.dir,
            self.kubectl.kubeconfig(),
            &self.namespace,
            self.provider.provider_url(),
        )
        .replica(name);
        setup.extra_args = extra_args.iter().map(|arg| arg.to_string()).collect();
        Operator::start(&setup)
    }

    /// The simulator's base URL (`http://127.0.0.1:<port>`).
    pub fn sim_url(&self) -> &str {
        self.sim.base_url()
    }

    /// Starts an operator and waits until it answers `/readyz` and holds the lease.
    pub async fn leading_operator(&self, name: &str) -> Operator {
        self.leading_operator_with(name, &[]).await
    }

    /// [`Self::leading_operator`] with more flags.
    pub async fn leading_operator_with(&self, name: &str, extra_args: &[&str]) -> Operator {
        let operator = self.operator_with(name, extra_args);
        eventually(&format!("{name} to lead"), WAIT, || async {
            (operator.ready().await && operator.leads().await == Some(true)).then_some(())
        })
        .await;
        operator
    }

    /// Runs kubectl off the runtime's threads, in the test's namespace.
    pub async fn kubectl_output(&self, args: &[&str]) -> Output {
        self.kubectl.output(args).await
    }

    /// Runs kubectl; fails the test (with kubectl's output) unless it succeeds. Returns stdout.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl.run(args).await
    }

    /// `kubectl apply -f deploy/crds/`, then waits until the API serves the type. On the
    /// shared control plane once per test binary: two kubectl applies creating the CRD at once
    /// would have one fail with AlreadyExists.
    pub async fn install_crd(&self) {
        static SHARED: OnceCell<()> = OnceCell::const_new();
        if self.own.is_some() {
            self.apply_crd().await;
        } else {
            SHARED.get_or_init(|| self.apply_crd()).await;
        }
    }

    async fn apply_crd(&self) {
        self.kubectl(&["apply", "-f", "deploy/crds/"]).await;
        self.wait_crd_established().await;
    }

    pub async fn wait_crd_established(&self) {
        self.kubectl
            .wait_established(&[
                "crd/qodsessions.qod.dev",
                "crd/qodproviders.qod.dev",
                "crd/clusterqodproviders.qod.dev",
                "crd/qosprofiles.qod.dev",
            ])
            .await;
    }

    /// The test's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Every session the provider holds (`GET /_sim/sessions`).
    pub async fn provider_sessions(&self) -> Vec<Value> {
        self.provider.sessions(false).await
    }

    /// The provider's counters (`GET /_sim/stats`).
    pub async fn provider_stats(&self) -> Value {
        self.provider.stats().await
    }

    /// The control plane of the test's own ([`World::start_own`]), to kill and restart.
    pub fn control_plane(&mut self) -> &mut ControlPlane {
        self.own
            .as_mut()
            .expect("a world started with World::start_own")
    }

    /// `PUT /_sim/faults`.
    pub async fn faults(&self, faults: Value) {
        self.provider.faults(faults).await;
    }

    /// `name uid sessionId qosStatus` of every QodSession of the test, through kubectl.
    pub async fn resources(&self) -> Vec<Resource> {
        let out = self
            .kubectl(&[
                "get",
                "qodsessions",
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.name}{"\t"}{.metadata.uid}{"\t"}{.status.sessionId}{"\t"}{.status.qosStatus}{"\n"}{end}"#,
            ])
            .await;
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let cells: Vec<&str> = line.split('\t').collect();
                let cell = |i: usize| cells.get(i).copied().unwrap_or_default().to_owned();
                Resource {
                    name: cell(0),
                    uid: cell(1),
                    session_id: cell(2),
                    qos_status: cell(3),
                }
            })
            .collect()
    }

    pub async fn stop(self) {
        self.sim.shutdown().await;
        if let Some(mut own) = self.own {
            tokio::task::spawn_blocking(move || own.stop())
                .await
                .unwrap();
        }
    }
}

/// A QodSession as `kubectl get -o jsonpath` shows it.
#[derive(Debug, Clone)]
pub struct Resource {
    pub name: String,
    pub uid: String,
    pub session_id: String,
    pub qos_status: String,
}

/// The uid in a session's sink (`<public url>/notifications/<uid>`).
pub fn sink_uid(session: &Value) -> &str {
    simulator::sink_uid(session)
        .unwrap_or_else(|| panic!("a session without an operator sink: {session}"))
}

/// Fails unless the provider holds exactly one session per resource, each the one the
/// resource's status names, and nothing else (no duplicate, no orphan).
pub fn assert_one_session_each(resources: &[Resource], at_provider: &[Value]) {
    assert_eq!(
        at_provider.len(),
        resources.len(),
        "one session per resource; resources {resources:#?}, provider {at_provider:#?}"
    );
    for resource in resources {
        let theirs: Vec<&Value> = at_provider
            .iter()
            .filter(|s| sink_uid(s) == resource.uid)
            .collect();
        assert_eq!(
            theirs.len(),
            1,
            "{} has {} sessions at the provider: {theirs:#?}",
            resource.name,
            theirs.len()
        );
        assert_eq!(
            theirs[0]["sessionId"].as_str(),
            Some(resource.session_id.as_str()),
            "{}'s status names the session the provider holds",
            resource.name
        );
    }
}
