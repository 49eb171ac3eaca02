//! One test's world: a namespace of its own on the test binary's real control plane
//! (tests/control-plane, reached through a kubeconfig whose context names that namespace, as
//! kubectl reaches any cluster), the QoD simulator, a scratch folder, and the operator
//! processes started against them. Everything the tests observe goes through kubectl or the
//! simulator's `/_sim/` control API.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use kube::config::Kubeconfig;
use qod_operator::simulator;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::{
    process::Operator,
    support::{ControlPlane, tools},
};

/// How long a step may take before the test fails (never waited out when things work).
pub const WAIT: Duration = Duration::from_secs(60);

pub struct World {
    sim: simulator::RunningSimulator,
    pub dir: PathBuf,
    /// The test's namespace, the default one of its kubeconfig.
    namespace: String,
    /// A control plane of the test's own, when it needs a fresh cluster.
    own: Option<ControlPlane>,
    http: reqwest::Client,
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
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{test}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let control_plane = match &own {
            Some(own) => own,
            None => ControlPlane::shared(),
        };
        let namespace = control_plane.namespace(test).await;
        write_kubeconfig(
            control_plane.kubeconfig(),
            &namespace,
            &dir.join("kubeconfig"),
        );
        std::fs::write(dir.join("hmac-key"), format!("e2e-{test}-key-0123456789\n")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = simulator::spawn(
            listener,
            // Faster than the operator's 1 s re-read of REQUESTED sessions, so the AVAILABLE
            // notification often lands in the same whole second as the last read.
            simulator::SimulatorConfig {
                available_after: Duration::from_millis(200),
                ..simulator::SimulatorConfig::default()
            },
        )
        .await
        .unwrap();
        Self {
            sim,
            dir,
            namespace,
            own,
            http: reqwest::Client::new(),
        }
    }

    /// `qod-operator run` (the release build) as its own process, as a Deployment would
    /// start it.
    pub fn operator(&self, name: &str) -> Operator {
        self.operator_with(name, &[])
    }

    /// [`Self::operator`] with more flags.
    pub fn operator_with(&self, name: &str, extra_args: &[&str]) -> Operator {
        Operator::start(
            tools::release_operator(),
            name,
            &self.dir.join("kubeconfig"),
            &self.namespace,
            &format!("{}/quality-on-demand/v1", self.sim.base_url()),
            &self.dir.join("hmac-key"),
            &self.dir,
            extra_args,
        )
    }

    /// The simulator's base URL (`http://127.0.0.1:<port>`).
    pub fn sim_url(&self) -> &str {
        self.sim.base_url()
    }

    /// Starts an operator and waits until it answers `/readyz` and holds the lease.
    pub async fn leading_operator(&self, name: &str) -> Operator {
        let operator = self.operator(name);
        crate::support::eventually(&format!("{name} to lead"), WAIT, || async {
            (operator.ready().await && operator.leads().await == Some(true)).then_some(())
        })
        .await;
        operator
    }

    /// Runs kubectl off the runtime's threads, in the test's namespace.
    pub async fn kubectl_output(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(tools::kubectl());
        cmd.args(args)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HOME", &self.dir)
            .current_dir(repo());
        let what = format!("kubectl {}", args.join(" "));
        tokio::task::spawn_blocking(move || {
            cmd.output()
                .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
        })
        .await
        .unwrap()
    }

    /// Runs kubectl; fails the test (with kubectl's output) unless it succeeds. Returns stdout.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args).await;
        assert!(
            out.status.success(),
            "kubectl {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
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
        self.kubectl(&[
            "wait",
            "--for=condition=established",
            "crd/qodsessions.qod.dev",
            "crd/qodproviders.qod.dev",
            "crd/clusterqodproviders.qod.dev",
            "crd/qosprofiles.qod.dev",
            "--timeout=30s",
        ])
        .await;
    }

    /// The test's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Every session the provider holds (`GET /_sim/sessions`).
    pub async fn provider_sessions(&self) -> Vec<Value> {
        serde_json::from_value(self.sim_get("/_sim/sessions").await).unwrap()
    }

    /// The provider's counters (`GET /_sim/stats`).
    pub async fn provider_stats(&self) -> Value {
        self.sim_get("/_sim/stats").await
    }

    async fn sim_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim.base_url()))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The control plane of the test's own ([`World::start_own`]), to kill and restart.
    pub fn control_plane(&mut self) -> &mut ControlPlane {
        self.own
            .as_mut()
            .expect("a world started with World::start_own")
    }

    /// `PUT /_sim/faults`.
    pub async fn faults(&self, faults: Value) {
        self.http
            .put(format!("{}/_sim/faults", self.sim.base_url()))
            .json(&faults)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
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
    session["sink"]
        .as_str()
        .and_then(|sink| sink.rsplit_once("/notifications/"))
        .map(|(_, uid)| uid)
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

/// A copy of the admin kubeconfig whose context defaults to `namespace`, so every kubectl
/// command of the test (and `kubectl apply` of manifests without a namespace) stays in it.
fn write_kubeconfig(admin: &Path, namespace: &str, path: &Path) {
    let mut config = Kubeconfig::read_from(admin).unwrap();
    for named in &mut config.contexts {
        if let Some(context) = named.context.as_mut() {
            context.namespace = Some(namespace.to_owned());
        }
    }
    // JSON is YAML: kubectl reads it as it is.
    std::fs::write(path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
