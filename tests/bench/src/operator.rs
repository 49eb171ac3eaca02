//! The operator process: started with the world's kubeconfig, provider and HMAC key; its memory
//! (`/proc/<pid>/status` VmHWM, VmRSS) and CPU time (`/proc/<pid>/stat` utime + stime).

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use qod_test_support::net::free_ports;

pub struct Operator {
    child: Child,
    pub probe: String,
    pub webhook: String,
    pub started: Instant,
}

impl Operator {
    pub fn start(
        binary: &Path,
        dir: &Path,
        namespace: &str,
        provider_url: &str,
        extra_args: &[String],
    ) -> anyhow::Result<Self> {
        let [probe_port, webhook_port] = free_ports();
        let webhook = format!("http://127.0.0.1:{webhook_port}");
        let log = std::fs::File::create(dir.join("operator.log"))?;
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("run")
            .args(["--provider-url", provider_url])
            .args(["--webhook-listen", &format!("127.0.0.1:{webhook_port}")])
            .args(["--webhook-public-url", &webhook])
            .args(["--probe-listen", &format!("127.0.0.1:{probe_port}")])
            .arg("--hmac-key-file")
            .arg(dir.join("hmac-key"))
            .arg("--leader-election=false")
            .args(["--namespace", namespace])
            .args(extra_args)
            .env("KUBECONFIG", dir.join(crate::world::KUBECONFIG))
            // QOD_BENCH_LOG (a RUST_LOG filter) to see what the operator did; logging costs.
            .env(
                "RUST_LOG",
                std::env::var("QOD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("QOD_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Self {
            child,
            probe: format!("http://127.0.0.1:{probe_port}"),
            webhook,
            started,
        })
    }

    /// Polls `/readyz` every millisecond; returns the time from spawn to the first 200.
    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        let deadline = self.started + Duration::from_secs(60);
        let url = format!("{}/readyz", self.probe);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the operator exited with {status} before it was ready");
            }
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(self.started.elapsed());
            }
            anyhow::ensure!(Instant::now() < deadline, "not ready within 60 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Resident memory from `/proc/<pid>/status`.
    fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Memory {
            peak_kib: kib("VmHWM:"),
            now_kib: kib("VmRSS:"),
            anonymous_kib: kib("RssAnon:"),
            files_kib: kib("RssFile:"),
        })
    }

    /// User + system CPU time so far.
    pub fn cpu(&self) -> anyhow::Result<Duration> {
        crate::cpu::of_process(self.child.id())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Prints the provider calls the operator made, per operation, and its reconcile errors
    /// and conflicts so far, from its own `/metrics`.
    pub async fn print_calls(&self, http: &reqwest::Client) -> anyhow::Result<()> {
        let text = http
            .get(format!("{}/metrics", self.probe))
            .send()
            .await?
            .text()
            .await?;
        let mut calls: BTreeMap<String, f64> = BTreeMap::new();
        let (mut errors, mut conflicts) = (0.0, 0.0);
        let mut notifications = Vec::new();
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if let Some(labels) = series.strip_prefix("qod_operator_provider_requests_total{") {
                let operation = labels
                    .split(',')
                    .find_map(|l| l.strip_prefix("operation=\""))
                    .and_then(|l| l.strip_suffix('"'))
                    .unwrap_or("?");
                *calls.entry(operation.to_owned()).or_default() += value;
            } else if let Some(labels) = series.strip_prefix("qod_operator_notifications_total{") {
                if value > 0.0 {
                    notifications.push(format!(
                        "{} {value}",
                        labels.trim_start_matches("result=").trim_matches('"')
                    ));
                }
            } else if series.starts_with("qod_operator_reconcile_errors_total") {
                errors += value;
            } else if series == "qod_operator_reconcile_conflicts_total" {
                conflicts += value;
            }
        }
        let calls: Vec<String> = calls
            .iter()
            .map(|(operation, n)| format!("{operation} {n}"))
            .collect();
        let none = |list: &[String]| {
            if list.is_empty() {
                "none".to_owned()
            } else {
                list.join(", ")
            }
        };
        println!(
            "  provider calls: {}; reconcile errors {errors}, conflicts {conflicts}; notifications: {}",
            none(&calls),
            none(&notifications)
        );
        Ok(())
    }

    pub fn print_memory(&self, what: &str) -> anyhow::Result<()> {
        let memory = self.memory()?;
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "  operator RSS {what}: peak {:.1} MiB, now {:.1} MiB (now {:.1} anonymous, \
             {:.1} mapped from files: code and data of the binary and its libraries)",
            mib(memory.peak_kib),
            mib(memory.now_kib),
            mib(memory.anonymous_kib),
            mib(memory.files_kib),
        );
        Ok(())
    }
}

/// Resident memory in KiB. The part mapped from files is code and data (the binary's, libc's),
/// the same with any number of sessions and reclaimable under a memory limit; sessions cost
/// anonymous memory (BENCHMARKS.md, "Sixth look").
struct Memory {
    peak_kib: u64,
    now_kib: u64,
    anonymous_kib: u64,
    files_kib: u64,
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
