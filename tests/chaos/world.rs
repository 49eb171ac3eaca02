//! The pieces every test here starts: a real Kubernetes API with the CRD (a namespace of the
//! test's own on the test binary's control plane), a QoD simulator (in-process, or as its own
//! process when its logs matter), and operator processes that can be SIGKILLed and started
//! again on the same webhook port (the sinks registered with the provider name that port).

use std::{
    ffi::OsStr,
    fs::OpenOptions,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use kube::{Api, Client};
use qod_operator::{
    api::{ApplicationServer, Device, QodSession, QodSessionSpec, conditions},
    simulator,
};
use serde_json::Value;

use crate::support::{ControlPlane, control_plane, eventually, metrics};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory for a test's files and logs, under the target directory.
pub fn test_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("chaos")
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The API server with the CRD installed, the test's namespace, and a kubeconfig for
/// processes.
pub struct Cluster {
    pub client: Client,
    pub api: Api<QodSession>,
    pub namespace: String,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// A namespace named after `test` on the test binary's shared control plane.
    pub async fn start(test: &str) -> Self {
        Self::on(ControlPlane::shared(), test).await
    }

    /// A namespace named after `test` on `control_plane` (one of the test's own, to kill and
    /// restart, or started with flags of its own).
    pub async fn on(control_plane: &ControlPlane, test: &str) -> Self {
        let client = control_plane.client().await;
        control_plane::install_crd(&client).await;
        let namespace = control_plane.namespace(test).await;
        Self {
            api: Api::namespaced(client.clone(), &namespace),
            kubeconfig: control_plane.kubeconfig().to_owned(),
            client,
            namespace,
        }
    }
}

/// The simulator's test-control API, wherever the simulator runs.
#[derive(Clone)]
pub struct Sim {
    pub base: String,
    pub http: reqwest::Client,
}

impl Sim {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    /// The base URL the operator's `--provider-url` takes.
    pub fn provider_url(&self) -> String {
        format!("{}/quality-on-demand/v1", self.base)
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: &Value) -> Value {
        self.http
            .put(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str) {
        self.http
            .post(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }

    /// Waits until the simulator answers its health check.
    pub async fn wait_up(&self) {
        eventually("the simulator to answer", WAIT, || async {
            let answer = self.http.get(format!("{}/healthz", self.base)).send().await;
            answer.is_ok_and(|a| a.status().is_success()).then_some(())
        })
        .await;
    }

    pub async fn faults(&self, faults: Value) {
        self.put("/_sim/faults", &faults).await;
    }

    /// Live sessions (and the removed ones with `removed`).
    pub async fn sessions(&self, removed: bool) -> Vec<Value> {
        let path = if removed {
            "/_sim/sessions?removed=true"
        } else {
            "/_sim/sessions"
        };
        serde_json::from_value(self.get(path).await).unwrap()
    }

    pub async fn stats(&self) -> Value {
        self.get("/_sim/stats").await
    }

    /// Every API request counted so far, all operations and statuses.
    pub async fn api_calls(&self) -> u64 {
        total_calls(&self.stats().await)
    }
}

/// The sum of `apiRequests` in a stats snapshot.
pub fn total_calls(stats: &Value) -> u64 {
    stats["apiRequests"]
        .as_object()
        .into_iter()
        .flat_map(|ops| ops.values())
        .filter_map(Value::as_object)
        .flat_map(|codes| codes.values())
        .filter_map(Value::as_u64)
        .sum()
}

/// The API requests made between two stats snapshots, by operation and status (those with
/// none left out), to tell what a count of calls was made of.
pub fn calls_between(before: &Value, after: &Value) -> Value {
    let mut made = serde_json::Map::new();
    for (operation, codes) in after["apiRequests"].as_object().into_iter().flatten() {
        for (code, count) in codes.as_object().into_iter().flatten() {
            let earlier = before["apiRequests"][operation][code].as_u64().unwrap_or(0);
            let new = count.as_u64().unwrap_or(0).saturating_sub(earlier);
            if new > 0 {
                made.insert(format!("{operation} {code}"), new.into());
            }
        }
    }
    Value::Object(made)
}

/// The resource uid a provider session's sink names (`.../notifications/<uid>`).
pub fn sink_uid(session: &Value) -> Option<&str> {
    session["sink"].as_str()?.rsplit('/').next()
}

/// An in-process simulator that answers AVAILABLE 200 ms after a create.
pub async fn in_process_simulator() -> (simulator::RunningSimulator, Sim) {
    simulator_with(simulator::SimulatorConfig {
        available_after: Duration::from_millis(200),
        ..simulator::SimulatorConfig::default()
    })
    .await
}

/// An in-process simulator with `config`.
pub async fn simulator_with(
    config: simulator::SimulatorConfig,
) -> (simulator::RunningSimulator, Sim) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let running = simulator::spawn(listener, config).await.unwrap();
    let sim = Sim::new(running.base_url());
    (running, sim)
}

/// `qod-operator simulator` as its own process: its log is its own (`simulator.log`, appended
/// to by every incarnation), and it can be SIGKILLed and started again on the same port, as a
/// provider that goes down.
pub struct SimProcess(Child);

impl SimProcess {
    /// Starts a simulator on 127.0.0.1:`port` that answers AVAILABLE 200 ms after a create and
    /// logs at debug level, with `args` added; waits until it answers.
    pub async fn start<I, S>(dir: &Path, port: u16, args: I) -> (Self, Sim)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("simulator.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_qod-operator"))
            .arg("simulator")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--available-after", "200ms"])
            .args(args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let process = Self(child);
        let sim = Sim::new(format!("http://127.0.0.1:{port}"));
        sim.wait_up().await;
        (process, sim)
    }

    /// SIGKILL: the port is closed at once (connections refused), and the sessions it held are
    /// gone with it.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How to start an operator process.
#[derive(Clone)]
pub struct OperatorSetup {
    pub kubeconfig: PathBuf,
    /// Watched alone (`--namespace`), and named in `POD_NAMESPACE`, so tests on one control
    /// plane never see each other's resources.
    pub namespace: String,
    pub provider_url: String,
    pub hmac_key_file: PathBuf,
    /// Fixed for the whole test: the sinks registered at the provider name it.
    pub webhook_port: u16,
    /// `--webhook-public-url`; `http://127.0.0.1:<webhook_port>` unless changed.
    pub webhook_public_url: String,
    pub log: PathBuf,
    pub rust_log: &'static str,
    pub extra_args: Vec<String>,
}

impl OperatorSetup {
    pub fn new(dir: &Path, cluster: &Cluster, provider_url: String) -> Self {
        let hmac_key_file = dir.join("hmac-key");
        if !hmac_key_file.exists() {
            std::fs::write(&hmac_key_file, "chaos-test-hmac-key-0123456789abcdef\n").unwrap();
        }
        let webhook_port = free_port();
        Self {
            kubeconfig: cluster.kubeconfig.clone(),
            namespace: cluster.namespace.clone(),
            provider_url,
            hmac_key_file,
            webhook_port,
            webhook_public_url: format!("http://127.0.0.1:{webhook_port}"),
            log: dir.join("operator.log"),
            rust_log: "info",
            extra_args: Vec::new(),
        }
    }
}

/// One `qod-operator run` process. Its output is appended to the setup's log file, so the log
/// of every incarnation survives.
pub struct Operator {
    child: Child,
    pub probe_port: u16,
    http: reqwest::Client,
}

impl Operator {
    /// Starts the process; it is running, not necessarily ready.
    pub fn start(setup: &OperatorSetup) -> Self {
        let probe_port = free_port();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&setup.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_qod-operator"))
            .arg("run")
            .args(["--provider-url", &setup.provider_url])
            .args([
                "--webhook-listen",
                &format!("127.0.0.1:{}", setup.webhook_port),
            ])
            .args(["--webhook-public-url", &setup.webhook_public_url])
            .args(["--probe-listen", &format!("127.0.0.1:{probe_port}")])
            .arg("--hmac-key-file")
            .arg(&setup.hmac_key_file)
            .arg("--leader-election=false")
            .args(["--requested-refresh", "1s"])
            .args(["--namespace", &setup.namespace])
            .args(&setup.extra_args)
            .env("KUBECONFIG", &setup.kubeconfig)
            .env("POD_NAME", "qod-operator-chaos")
            .env("POD_NAMESPACE", &setup.namespace)
            .env("RUST_LOG", setup.rust_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            child,
            probe_port,
            http: reqwest::Client::new(),
        }
    }

    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn start_ready(setup: &OperatorSetup) -> Self {
        let operator = Self::start(setup);
        operator.wait_ready().await;
        operator
    }

    pub async fn probe(&self, path: &str) -> Option<u16> {
        self.http
            .get(format!("http://127.0.0.1:{}{path}", self.probe_port))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// The sum of the operator's metric `name` over the series whose labels contain `labels`.
    pub async fn metric_sum(&self, name: &str, labels: &str) -> f64 {
        let text = self
            .http
            .get(format!("http://127.0.0.1:{}/metrics", self.probe_port))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics::sum(&text, name, labels)
    }

    pub async fn wait_ready(&self) {
        eventually("the operator to be ready", WAIT, || async {
            (self.probe("/readyz").await == Some(200)).then_some(())
        })
        .await;
    }

    /// The process's resident memory in KiB, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit; returns whether it exited successfully.
    pub async fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        eventually("the operator to exit after SIGTERM", WAIT, || {
            let status = self.child.try_wait().unwrap();
            async move { status }
        })
        .await
        .success()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A spec whose device (by phone number) is unique to `index`, so sessions never conflict.
pub fn spec(index: usize, profile: &str, duration: u32) -> QodSessionSpec {
    QodSessionSpec {
        device: Device {
            phone_number: Some(format!("+3670{:07}", index)),
            ..Device::default()
        },
        application_server: ApplicationServer {
            ipv4_address: Some("198.51.100.7".into()),
            ..ApplicationServer::default()
        },
        device_ports: None,
        application_server_ports: None,
        qos_profile: profile.into(),
        duration,
        auto_extend: false,
        provider_ref: None,
        management_policy: Default::default(),
        deletion_policy: Default::default(),
    }
}

/// `(status, reason, message)` of the Ready condition.
pub fn ready(session: &QodSession) -> Option<(String, String, String)> {
    let status = session.status.as_ref()?;
    let ready = conditions::find(&status.conditions, conditions::READY)?;
    Some((
        ready.status.clone(),
        ready.reason.clone(),
        ready.message.clone(),
    ))
}

pub fn qos_status(session: &QodSession) -> Option<&str> {
    session.status.as_ref()?.qos_status.as_deref()
}

pub fn session_id(session: &QodSession) -> Option<&str> {
    session.status.as_ref()?.session_id.as_deref()
}
