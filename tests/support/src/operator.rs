//! `qod-operator run` as its own process: started with a test's kubeconfig, namespace and
//! provider, stopped with SIGTERM or SIGKILL, observed through its probe port.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{
    cluster::Cluster,
    metrics,
    net::free_port,
    process::{Process, status_kib},
};

/// How long an operator may take to become ready or to exit after SIGTERM.
const WAIT: Duration = Duration::from_secs(30);

/// How to start an operator process.
#[derive(Clone)]
pub struct OperatorSetup {
    /// The debug build (`env!("CARGO_BIN_EXE_qod-operator")`) or the release one
    /// ([`crate::tools::release_operator`]).
    pub binary: PathBuf,
    pub kubeconfig: PathBuf,
    /// Watched alone (`--namespace`), and named in `POD_NAMESPACE`, so tests on one control
    /// plane never see each other's resources or compete for one lease.
    pub namespace: String,
    pub provider_url: String,
    pub hmac_key_file: PathBuf,
    /// Fixed for the whole setup: the sinks registered at the provider name it, so an operator
    /// started again on it receives their notifications.
    pub webhook_port: u16,
    /// `--webhook-public-url`; `http://127.0.0.1:<webhook_port>` unless changed.
    pub webhook_public_url: String,
    /// `POD_NAME`: the lease holder's identity.
    pub pod_name: String,
    /// `--lease-duration-seconds` for a replica that competes for the lease; `None` runs without
    /// leader election.
    pub lease_seconds: Option<u32>,
    /// Appended to by every incarnation.
    pub log: PathBuf,
    /// `RUST_LOG`; `QOD_TEST_OPERATOR_LOG` (any RUST_LOG filter) unless set, else `info`.
    pub rust_log: String,
    pub extra_args: Vec<String>,
}

impl OperatorSetup {
    /// One operator of `binary` without leader election, for `kubeconfig` and `namespace`: its
    /// HMAC key `dir/hmac-key` (written when missing), its log `dir/operator.log`.
    pub fn new(
        binary: impl AsRef<Path>,
        dir: &Path,
        kubeconfig: &Path,
        namespace: &str,
        provider_url: String,
    ) -> Self {
        let hmac_key_file = dir.join("hmac-key");
        if !hmac_key_file.exists() {
            std::fs::write(&hmac_key_file, "qod-test-hmac-key-0123456789abcdef\n")
                .unwrap_or_else(|e| panic!("writing {}: {e}", hmac_key_file.display()));
        }
        let webhook_port = free_port();
        Self {
            binary: binary.as_ref().to_owned(),
            kubeconfig: kubeconfig.to_owned(),
            namespace: namespace.to_owned(),
            provider_url,
            hmac_key_file,
            webhook_port,
            webhook_public_url: format!("http://127.0.0.1:{webhook_port}"),
            pod_name: "qod-operator-test".into(),
            lease_seconds: None,
            log: dir.join("operator.log"),
            rust_log: std::env::var("QOD_TEST_OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            extra_args: Vec::new(),
        }
    }

    /// [`new`](Self::new) for `cluster`'s kubeconfig and namespace.
    pub fn for_cluster(
        binary: impl AsRef<Path>,
        dir: &Path,
        cluster: &Cluster,
        provider_url: String,
    ) -> Self {
        Self::new(
            binary,
            dir,
            &cluster.kubeconfig,
            &cluster.namespace,
            provider_url,
        )
    }

    /// A replica named `name` that competes for the lease (4 s), as a Deployment's pods do; its
    /// log `<name>.log` next to the setup's.
    pub fn replica(mut self, name: &str) -> Self {
        self.log = self.log.with_file_name(format!("{name}.log"));
        self.pod_name = name.to_owned();
        self.lease_seconds = Some(4);
        self
    }
}

/// One `qod-operator run` process.
pub struct Operator {
    process: Process,
    /// `POD_NAME`: the lease holder's identity.
    pub name: String,
    pub probe_port: u16,
    http: reqwest::Client,
}

impl Operator {
    /// Starts the process; it is running, not necessarily ready.
    pub fn start(setup: &OperatorSetup) -> Self {
        let probe_port = free_port();
        let mut cmd = Command::new(&setup.binary);
        cmd.arg("run")
            .args(["--provider-url", &setup.provider_url])
            .args([
                "--webhook-listen",
                &format!("127.0.0.1:{}", setup.webhook_port),
            ])
            .args(["--webhook-public-url", &setup.webhook_public_url])
            .args(["--probe-listen", &format!("127.0.0.1:{probe_port}")])
            .arg("--hmac-key-file")
            .arg(&setup.hmac_key_file);
        match setup.lease_seconds {
            Some(seconds) => cmd.args(["--lease-duration-seconds", &seconds.to_string()]),
            None => cmd.arg("--leader-election=false"),
        };
        cmd.args(["--requested-refresh", "1s"])
            .args(["--namespace", &setup.namespace])
            .args(&setup.extra_args)
            .env("KUBECONFIG", &setup.kubeconfig)
            .env("POD_NAME", &setup.pod_name)
            .env("POD_NAMESPACE", &setup.namespace)
            .env("RUST_LOG", &setup.rust_log);
        Self {
            process: Process::start(cmd, &setup.log),
            name: setup.pod_name.clone(),
            probe_port,
            http: crate::http::client(),
        }
    }

    /// Starts the process and waits until `/readyz` answers 200.
    pub async fn start_ready(setup: &OperatorSetup) -> Self {
        let mut operator = Self::start(setup);
        operator.wait_ready().await;
        operator
    }

    fn probe_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.probe_port)
    }

    /// The status `path` of the probe port answers, `None` when it does not answer.
    pub async fn probe(&self, path: &str) -> Option<u16> {
        self.http
            .get(self.probe_url(path))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    pub async fn ready(&self) -> bool {
        self.probe("/readyz").await == Some(200)
    }

    /// Waits until `/readyz` answers 200; fails the test at once when the process exits.
    pub async fn wait_ready(&mut self) {
        let url = self.probe_url("/readyz");
        self.process.wait_ready(&self.http, &url, WAIT).await;
    }

    async fn metrics(&self) -> Option<String> {
        self.http
            .get(self.probe_url("/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// The value of one series of `/metrics` (`name{labels}` exactly as exposed).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await?;
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    }

    /// The sum of every series of the metric `name` whose labels contain `labels` (such as
    /// `operation="create"`; empty for all), or `None` when the process does not answer.
    pub async fn metric_sum(&self, name: &str, labels: &str) -> Option<f64> {
        Some(metrics::sum(&self.metrics().await?, name, labels))
    }

    /// Whether this process holds the lease, as its `/metrics` says; `None` when it does not
    /// answer.
    pub async fn leads(&self) -> Option<bool> {
        let text = self.metrics().await?;
        text.lines()
            .find_map(|line| line.strip_prefix("qod_operator_leader "))
            .map(|value| value.trim() == "1")
    }

    /// Whether the process is still running (it has not exited for any reason).
    pub fn running(&mut self) -> bool {
        self.process.running()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The process's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmRSS")
    }

    /// SIGKILL: no chance to finish or release anything.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, then waits for the exit; returns whether it exited successfully.
    pub async fn terminate(&mut self) -> bool {
        self.process.terminate(&self.name, WAIT).await.success()
    }
}
