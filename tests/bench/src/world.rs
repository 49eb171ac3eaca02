//! The bench's world: the real Kubernetes control plane (tests/control-plane, its own processes),
//! the QoD simulator (in this process), a scratch folder with the kubeconfig and the HMAC key, and
//! helpers to create, count and delete QodSessions.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt, stream};
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
};
use qod_operator::{api::QodSession, simulator};
use qod_test_support::{Cluster, ControlPlane, session::spec};
use serde_json::Value;

use crate::operator::Operator;

/// The kubeconfig's file name in the world's folder.
pub const KUBECONFIG: &str = "kubeconfig";

pub struct Setup {
    pub binary: PathBuf,
    pub extra_args: Vec<String>,
}

pub struct World {
    pub sim: simulator::RunningSimulator,
    pub dir: PathBuf,
    /// Where this scenario's QodSessions live (the operator watches it alone).
    pub namespace: String,
    pub api: Api<QodSession>,
    pub http: reqwest::Client,
    /// The control plane's launcher process (see [`crate::cpu::Sample::take`]).
    pub control_plane_pid: Option<u32>,
}

impl World {
    pub async fn start(name: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("qod-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        // One control plane for the whole run; it stops when this process ends.
        let control_plane = ControlPlane::shared_off_runtime().await;
        std::fs::copy(control_plane.kubeconfig(), dir.join(KUBECONFIG))?;
        std::fs::write(dir.join("hmac-key"), "qod-bench-key-0123456789abcdef\n")?;
        let Cluster { api, namespace, .. } = Cluster::on(control_plane, name).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sim = simulator::spawn(
            listener,
            simulator::SimulatorConfig {
                available_after: Duration::from_millis(100),
                ..simulator::SimulatorConfig::default()
            },
        )
        .await?;
        Ok(Self {
            api,
            namespace,
            sim,
            dir,
            http: qod_test_support::http::client(),
            control_plane_pid: control_plane.pid(),
        })
    }

    pub async fn operator(&self, setup: &Setup) -> anyhow::Result<Operator> {
        let mut operator = Operator::start(
            &setup.binary,
            &self.dir,
            &self.namespace,
            &format!("{}/quality-on-demand/v1", self.sim.base_url()),
            &setup.extra_args,
        )?;
        operator.wait_ready(&self.http).await?;
        Ok(operator)
    }

    /// Creates `count` QodSessions (distinct devices), 64 requests at a time.
    pub async fn create_sessions(&self, from: usize, count: usize) -> anyhow::Result<()> {
        stream::iter(from..from + count)
            .map(|i| async move { self.create_session(i).await.map(|_| ()) })
            .buffer_unordered(64)
            .try_collect::<()>()
            .await
    }

    /// Creates QodSession `bench-<i>` (a device of its own) and returns it as stored.
    pub async fn create_session(&self, i: usize) -> anyhow::Result<QodSession> {
        let spec = spec(&format!("+3670{i:08}"), "QOS_L", 3600);
        self.api
            .create(
                &PostParams::default(),
                &QodSession::new(&format!("bench-{i}"), spec),
            )
            .await
            .context("creating a QodSession")
    }

    /// Every QodSession.
    pub async fn sessions(&self) -> anyhow::Result<Vec<QodSession>> {
        Ok(self.api.list(&ListParams::default()).await?.items)
    }

    /// How many QodSessions are AVAILABLE with their session id and expiry recorded.
    pub async fn delete_all(&self) -> anyhow::Result<()> {
        self.api
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        Ok(())
    }

    /// Sessions the provider still holds (not removed).
    pub async fn provider_sessions(&self) -> anyhow::Result<usize> {
        let all: Vec<Value> = self
            .http
            .get(format!("{}/_sim/sessions", self.sim.base_url()))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(all.len())
    }

    pub async fn stop(self) {
        self.sim.shutdown().await;
        if std::env::var_os("QOD_BENCH_LOG").is_some() {
            println!("  operator log kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Polls `probe` every `every` until it yields true; fails after `timeout`.
pub async fn until<F, Fut>(
    what: &str,
    every: Duration,
    timeout: Duration,
    mut probe: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if probe().await? {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
