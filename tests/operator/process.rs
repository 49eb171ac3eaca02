//! An operator process: started with the test's kubeconfig, namespace and provider, stopped with
//! SIGTERM or SIGKILL, observed through its probe port.

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::support::eventually;

pub struct Operator {
    pub name: String,
    child: Child,
    pub probe_port: u16,
    http: reqwest::Client,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Operator {
    /// Starts `binary run` against `kubeconfig` and the provider at `provider_url`, watching
    /// `namespace` only and holding its lease there, so tests sharing a control plane never
    /// see each other's resources or compete for one lease; `extra_args` are added last.
    // Each argument is a different fact about the process a test chooses.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        binary: &Path,
        name: &str,
        kubeconfig: &Path,
        namespace: &str,
        provider_url: &str,
        hmac_key_file: &Path,
        log_dir: &Path,
        extra_args: &[&str],
    ) -> Self {
        let probe_port = free_port();
        let webhook_port = free_port();
        let log = std::fs::File::create(log_dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(binary)
            .arg("run")
            .args(["--provider-url", provider_url])
            .args(["--webhook-listen", &format!("127.0.0.1:{webhook_port}")])
            .args([
                "--webhook-public-url",
                &format!("http://127.0.0.1:{webhook_port}"),
            ])
            .args(["--probe-listen", &format!("127.0.0.1:{probe_port}")])
            .arg("--hmac-key-file")
            .arg(hmac_key_file)
            .args(["--lease-duration-seconds", "4"])
            .args(["--requested-refresh", "1s"])
            .args(["--namespace", namespace])
            .args(extra_args)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", namespace)
            // QOD_TEST_OPERATOR_LOG=debug (any RUST_LOG filter) to see more of a failing test.
            .env(
                "RUST_LOG",
                std::env::var("QOD_TEST_OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            name: name.to_owned(),
            child,
            probe_port,
            http: reqwest::Client::new(),
        }
    }

    /// Whether this process holds the lease, as its `/metrics` says; `None` when it does not answer.
    pub async fn leads(&self) -> Option<bool> {
        let text = self.metrics().await?;
        text.lines()
            .find_map(|line| line.strip_prefix("qod_operator_leader "))
            .map(|value| value.trim() == "1")
    }

    async fn metrics(&self) -> Option<String> {
        self.http
            .get(format!("http://127.0.0.1:{}/metrics", self.probe_port))
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
        Some(crate::support::metrics::sum(
            &self.metrics().await?,
            name,
            labels,
        ))
    }

    pub async fn ready(&self) -> bool {
        self.http
            .get(format!("http://127.0.0.1:{}/readyz", self.probe_port))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// Whether the process is still running (it has not exited for any reason).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL: no chance to release anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited successfully.
    pub async fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        eventually(
            &format!("{} to exit after SIGTERM", self.name),
            Duration::from_secs(20),
            || {
                let status = self.child.try_wait().unwrap();
                async move { status }
            },
        )
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
