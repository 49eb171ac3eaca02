//! The real binary, started exactly as the chart's Deployment starts it and authenticated as
//! the chart's ServiceAccount against the in-memory API with RBAC on, runs a whole session
//! lifecycle: so the chart's flags parse and its RBAC is enough.

use std::{
    fs::File,
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::Secret};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube_emulator::Authorization;
use qod_operator::simulator;
use serde_json::{Value, json};

use crate::{
    harness::*,
    install::{Cluster, chart_arg, qodsessions},
    support::eventually,
};

/// The operator process; killed when the test ends, however it ends.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Deployment's arguments with the pod's network and files swapped for this machine's:
/// listen addresses on 127.0.0.1, the simulator Service for the in-process simulator, the
/// mounted HMAC key for a file holding the same key. Nothing else changes.
fn localize(args: &[String], sim: &str, webhook: u16, probes: u16, hmac_key: &Path) -> Vec<String> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some(("--webhook-listen", "0.0.0.0:8443")) => {
                format!("--webhook-listen=127.0.0.1:{webhook}")
            }
            Some(("--probe-listen", "0.0.0.0:8080")) => {
                format!("--probe-listen=127.0.0.1:{probes}")
            }
            Some(("--webhook-public-url", url)) => {
                assert_eq!(url, "http://qod-qod-operator-webhook.qod-system.svc:8443");
                format!("--webhook-public-url=http://127.0.0.1:{webhook}")
            }
            Some(("--provider-url", url)) => {
                let path = url
                    .strip_prefix("http://qod-qod-operator-simulator:9091")
                    .unwrap_or_else(|| panic!("unexpected provider URL {url}"));
                format!("--provider-url={sim}{path}")
            }
            Some(("--hmac-key-file", "/etc/qod-operator/hmac/key")) => {
                format!("--hmac-key-file={}", hmac_key.display())
            }
            _ => arg.clone(),
        })
        .collect()
}

#[tokio::test]
async fn the_chart_runs_a_session_lifecycle_without_a_forbidden_call() {
    let cluster = Cluster::start(Authorization::Rbac).await;
    cluster
        .helm(&[
            "install",
            RELEASE,
            &chart_arg(),
            "-n",
            NAMESPACE,
            "--create-namespace",
            "--set",
            "simulator.enabled=true",
        ])
        .await;
    let admin = cluster.admin().await;

    // What helm installed: the container's arguments and environment, and the HMAC key.
    let deployment = Api::<Deployment>::namespaced(admin.clone(), NAMESPACE)
        .get(FULLNAME)
        .await
        .unwrap();
    let deployment = serde_json::to_value(deployment).unwrap();
    let container = container(&deployment);
    let args = strings(&container["args"]);
    let secret = Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .get("qod-qod-operator-hmac")
        .await
        .unwrap();
    let dir = scratch("operator");
    let key_file = dir.join("hmac-key");
    std::fs::write(&key_file, &secret.data.unwrap()["key"].0).unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim = simulator::spawn(
        listener,
        simulator::Config {
            available_after: Duration::from_millis(200),
            ..simulator::Config::default()
        },
    )
    .await
    .unwrap();
    let (webhook, probes) = (free_port(), free_port());
    let args = localize(&args, sim.base_url(), webhook, probes, &key_file);

    // The pod's environment: the downward API's values, the chart's plain values, and a
    // kubeconfig holding a token issued for the chart's ServiceAccount.
    let token = cluster
        .kubectl(&["create", "token", FULLNAME, "-n", NAMESPACE])
        .await;
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        cluster.emu.kubeconfig_yaml_for_token(token.trim()),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qod-operator"));
    cmd.args(&args).env_clear().env("KUBECONFIG", &kubeconfig);
    for var in container["env"].as_array().unwrap() {
        let name = str(var, "/name");
        let value = match (
            name,
            var.pointer("/valueFrom/fieldRef/fieldPath")
                .and_then(Value::as_str),
        ) {
            (_, Some("metadata.name")) => "qod-qod-operator-7d4b9c-x2x7q",
            (_, Some("metadata.namespace")) => NAMESPACE,
            (_, Some(other)) => panic!("unexpected fieldRef {other}"),
            (_, None) => str(var, "/value"),
        };
        cmd.env(name, value);
    }
    let log = dir.join("operator.log");
    let out = File::create(&log).unwrap();
    cmd.stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null());
    let mut operator = Operator(cmd.spawn().unwrap());
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();

    let http = reqwest::Client::new();
    eventually("the operator to be ready", Duration::from_secs(20), || {
        if let Ok(Some(status)) = operator.0.try_wait() {
            panic!("the operator exited with {status}:\n{}", log_text());
        }
        let ready = http.get(format!("http://127.0.0.1:{probes}/readyz")).send();
        async move {
            ready
                .await
                .is_ok_and(|r| r.status().is_success())
                .then_some(())
        }
    })
    .await;
    // Ready does not wait for leadership (every replica serves the webhook); the lease, in
    // the release namespace under the pod's name, shows this process leads.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    eventually(
        "the pod to hold the lease",
        Duration::from_secs(20),
        || async {
            let holder = leases
                .get_opt("qod-operator")
                .await
                .unwrap()?
                .spec?
                .holder_identity;
            (holder.as_deref() == Some("qod-qod-operator-7d4b9c-x2x7q")).then_some(())
        },
    )
    .await;

    // Create: the controller makes the session; the network's AVAILABLE reaches the status
    // through the webhook (lastNotification is written by the webhook only).
    let sessions = qodsessions(admin.clone(), Some("default"));
    let session: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "qod.dev/v1alpha1",
        "kind": "QodSession",
        "metadata": {"name": "camera-uplink", "namespace": "default"},
        "spec": {
            "device": {"phoneNumber": "+36721601234567"},
            "applicationServer": {"ipv4Address": "198.51.100.7"},
            "qosProfile": "QOS_L",
            "duration": 600
        }
    }))
    .unwrap();
    sessions
        .create(&PostParams::default(), &session)
        .await
        .unwrap();
    eventually(
        "AVAILABLE through the webhook",
        Duration::from_secs(20),
        || async {
            let status = sessions.get("camera-uplink").await.ok()?.data["status"].clone();
            (status["qosStatus"] == "AVAILABLE" && status["lastNotification"].is_object())
                .then_some(())
        },
    )
    .await;
    let sim_sessions = || async {
        http.get(format!("{}/_sim/sessions", sim.base_url()))
            .send()
            .await
            .unwrap()
            .json::<Vec<Value>>()
            .await
            .unwrap()
    };
    assert_eq!(sim_sessions().await.len(), 1);

    // Delete: the session ends at the network, then the finalizer goes.
    sessions
        .delete("camera-uplink", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the resource to be gone",
        Duration::from_secs(20),
        || async {
            sessions
                .get_opt("camera-uplink")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    let left = sim_sessions().await;
    assert!(left.is_empty(), "sessions left at the network: {left:?}");

    // SIGTERM (what the kubelet sends): the process exits cleanly and gives up the lease,
    // again as the ServiceAccount.
    let pid = operator.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = eventually("the operator to exit", Duration::from_secs(20), || {
        let exited = operator.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert!(exit.success(), "exit {exit}:\n{}", log_text());
    let holder = leases
        .get("qod-operator")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder, None, "the lease is released");

    // A denied call is a 403 whose message says "forbidden"; none may appear, nor any error.
    let log = log_text();
    let bad = log
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("forbidden") || l.contains(r#""level":"ERROR""#));
    assert!(bad.is_none(), "{bad:?} in the operator's log:\n{log}");
    sim.shutdown().await;
    drop(operator);
}
