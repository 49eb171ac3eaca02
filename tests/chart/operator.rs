//! The release binary, started as the chart's two Deployments start it (operator and simulator,
//! with only addresses and file paths made local), the operator authenticated as the chart's
//! ServiceAccount against a real API server with RBAC, runs a whole session lifecycle: so the
//! chart's flags parse, the two find each other, and the RBAC is enough (the API server's audit
//! log shows no request of the ServiceAccount refused).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use k8s_openapi::api::{apps::v1::Deployment, coordination::v1::Lease, core::v1::Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use qod_operator::api::{ClusterQodProvider, QosProfile};
use qod_test_support::{eventually, net::free_ports, process::Process, simulator::Sim, tools};
use serde_json::Value;

use crate::{
    cluster::Cluster,
    harness::*,
    install::{create_session, create_session_at, qodsessions},
};

/// Runs the release binary with `args` and the container's environment: plain values as
/// given, the downward API's fields as a pod named `POD` in the release namespace would see them.
fn from_container(
    container: &Value,
    args: &[String],
    extra_env: &[(&str, &Path)],
    log: PathBuf,
) -> Process {
    let mut cmd = Command::new(tools::release_operator());
    cmd.args(args).env_clear();
    for (name, value) in extra_env {
        cmd.env(name, value);
    }
    for var in container["env"].as_array().unwrap() {
        let value = match var
            .pointer("/valueFrom/fieldRef/fieldPath")
            .and_then(Value::as_str)
        {
            Some("metadata.name") => POD,
            Some("metadata.namespace") => NAMESPACE,
            Some(other) => panic!("unexpected fieldRef {other}"),
            None => str(var, "/value"),
        };
        cmd.env(str(var, "/name"), value);
    }
    Process::start(cmd, &log)
}

/// The operator pod's name, as the downward API would give it.
const POD: &str = "qod-qod-operator-7d4b9c-x2x7q";

/// How long a started container's command may take to answer.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// A Deployment's arguments with the pod's network and files swapped for this machine's:
/// listen addresses on 127.0.0.1, the Service names for those addresses, the mounted HMAC key
/// for a file holding the same key. Nothing else changes.
fn localize(args: &[String], sim: u16, webhook: u16, probes: u16, hmac_key: &Path) -> Vec<String> {
    args.iter()
        .map(|arg| match arg.split_once('=') {
            Some(("--webhook-listen", "0.0.0.0:8443")) => {
                format!("--webhook-listen=127.0.0.1:{webhook}")
            }
            Some(("--probe-listen", "0.0.0.0:8080")) => {
                format!("--probe-listen=127.0.0.1:{probes}")
            }
            Some((
                "--webhook-public-url",
                "http://qod-qod-operator-webhook.qod-system.svc:8443",
            )) => {
                format!("--webhook-public-url=http://127.0.0.1:{webhook}")
            }
            Some((
                "--provider-url",
                "http://qod-qod-operator-simulator:9091/quality-on-demand/v1",
            )) => {
                format!("--provider-url=http://127.0.0.1:{sim}/quality-on-demand/v1")
            }
            Some(("--hmac-key-file", "/etc/qod-operator/hmac/key")) => {
                format!("--hmac-key-file={}", hmac_key.display())
            }
            Some(("--listen", "0.0.0.0:9091")) => format!("--listen=127.0.0.1:{sim}"),
            Some(("--public-url", "http://qod-qod-operator-simulator.qod-system.svc:9091")) => {
                format!("--public-url=http://127.0.0.1:{sim}")
            }
            Some((flag, value))
                if value.contains("svc")
                    || value.contains("0.0.0.0")
                    || value.starts_with("/etc/") =>
            {
                panic!("{flag}={value} is not localized")
            }
            _ => arg.clone(),
        })
        .collect()
}

/// Every request with who made it and the answer, without bodies.
const AUDIT_POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
";

/// The audit events of one user, once the API server has stopped (and so written them all).
fn audit_events_of(log: &Path, user: &str) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("audit log {}: {e}", log.display()))
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("an audit event per line"))
        .filter(|event| event["user"]["username"] == user)
        .collect()
}

/// `verb resource[/subresource]` of an audit event.
fn call(event: &Value) -> String {
    let target = &event["objectRef"];
    let mut call = format!(
        "{} {}",
        str(event, "/verb"),
        target["resource"].as_str().unwrap_or("-")
    );
    if let Some(sub) = target["subresource"].as_str() {
        call = format!("{call}/{sub}");
    }
    call
}

#[tokio::test]
async fn the_chart_runs_a_session_lifecycle_without_a_forbidden_call() {
    // Built before anything else: the build blocks its thread for minutes when cold.
    tokio::task::spawn_blocking(tools::release_operator)
        .await
        .unwrap();
    // A control plane of its own, for its audit log; and its release is RELEASE in NAMESPACE,
    // the names the Service URLs that `localize` swaps are made of.
    let dir = scratch("operator");
    let policy = dir.join("audit-policy.yaml");
    std::fs::write(&policy, AUDIT_POLICY).unwrap();
    let audit_log = dir.join("audit.log");
    let mut cluster = Cluster::own(
        "chart-operator",
        &[
            &format!("--audit-policy-file={}", policy.display()),
            &format!("--audit-log-path={}", audit_log.display()),
        ],
    );
    cluster
        .helm_release("install", &["--set", "simulator.enabled=true"])
        .await;
    let admin = cluster.admin().await;

    // What helm installed: both containers' arguments and environment, and the HMAC key.
    let deployments = Api::<Deployment>::namespaced(admin.clone(), NAMESPACE);
    let as_json = |d: Deployment| serde_json::to_value(d).unwrap();
    let operator_deployment = as_json(deployments.get(FULLNAME).await.unwrap());
    let simulator_deployment =
        as_json(deployments.get("qod-qod-operator-simulator").await.unwrap());
    let secret = Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .get("qod-qod-operator-hmac")
        .await
        .unwrap();
    let key_file = dir.join("hmac-key");
    std::fs::write(&key_file, &secret.data.unwrap()["key"].0).unwrap();
    let [sim, webhook, probes] = free_ports();
    let localized = |deployment: &Value| {
        localize(
            &strings(&container(deployment)["args"]),
            sim,
            webhook,
            probes,
            &key_file,
        )
    };
    let http = qod_test_support::http::client();

    let mut simulator = from_container(
        container(&simulator_deployment),
        &localized(&simulator_deployment),
        &[],
        dir.join("simulator.log"),
    );
    let sim_url = format!("http://127.0.0.1:{sim}");
    simulator
        .wait_ready(&http, &format!("{sim_url}/healthz"), READY_WITHIN)
        .await;

    // The operator authenticates with a token issued for the chart's ServiceAccount.
    let kubeconfig = cluster.service_account_kubeconfig().await;
    let mut operator = from_container(
        container(&operator_deployment),
        &localized(&operator_deployment),
        &[("KUBECONFIG", &kubeconfig)],
        dir.join("operator.log"),
    );
    operator
        .wait_ready(
            &http,
            &format!("http://127.0.0.1:{probes}/readyz"),
            READY_WITHIN,
        )
        .await;
    // Ready does not wait for leadership (every replica serves the webhook); the lease, in
    // the release namespace under the pod's name, shows this process leads.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), NAMESPACE);
    eventually(
        "the pod to hold the lease",
        Duration::from_secs(20),
        || async {
            let holder = leases
                .get_opt(FULLNAME)
                .await
                .unwrap()?
                .spec?
                .holder_identity;
            (holder.as_deref() == Some(POD)).then_some(())
        },
    )
    .await;

    // Create: the controller makes the session; the network's AVAILABLE reaches the status
    // through the webhook (lastNotification is written by the webhook only).
    let sessions = qodsessions(admin.clone(), Some("default"));
    create_session(admin.clone(), "default", "camera-uplink").await;
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
    let sim_control = Sim::new(&sim_url);
    let sim_sessions = || sim_control.sessions(false);
    assert_eq!(sim_sessions().await.len(), 1);

    // The simulator's QoS profiles, written as QosProfile resources under the chart's RBAC.
    let profiles = Api::<QosProfile>::all(admin.clone());
    eventually(
        "the default provider's QosProfiles",
        Duration::from_secs(20),
        || async {
            let listed = profiles
                .list(
                    &kube::api::ListParams::default()
                        .labels(&format!("qod.dev/installation={NAMESPACE}")),
                )
                .await
                .ok()?;
            listed
                .items
                .iter()
                .any(|p| p.spec.provider == "default" && p.spec.profile == "QOS_E")
                .then_some(())
        },
    )
    .await;

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

    // The chart's ClusterQodProvider for the simulator serves sessions that name it. Its URL is
    // the simulator's Service, made local as the flags are.
    let simulator_provider = "qod-qod-operator-simulator";
    let providers = Api::<ClusterQodProvider>::all(admin.clone());
    providers
        .patch(
            simulator_provider,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"camara": {
                "url": format!("{sim_url}/quality-on-demand/v1")
            }}})),
        )
        .await
        .unwrap();
    create_session_at(
        admin.clone(),
        "default",
        "via-provider",
        Some(serde_json::json!({"kind": "ClusterQodProvider", "name": simulator_provider})),
    )
    .await;
    eventually(
        "AVAILABLE through the chart's provider resource",
        Duration::from_secs(20),
        || async {
            let status = sessions.get("via-provider").await.ok()?.data["status"].clone();
            (status["qosStatus"] == "AVAILABLE"
                && status["provider"] == format!("ClusterQodProvider/{simulator_provider}"))
            .then_some(())
        },
    )
    .await;
    eventually(
        "the provider to be Ready with one session",
        Duration::from_secs(40),
        || async {
            let status = providers.get(simulator_provider).await.ok()?.status?;
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
            (ready.status == "True" && status.sessions == Some(1)).then_some(())
        },
    )
    .await;
    assert_eq!(sim_sessions().await.len(), 1);
    sessions
        .delete("via-provider", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "the session through the provider to be gone",
        Duration::from_secs(20),
        || async {
            sessions
                .get_opt("via-provider")
                .await
                .unwrap()
                .is_none()
                .then_some(())
        },
    )
    .await;
    assert!(
        sim_sessions().await.is_empty(),
        "nothing left at the network"
    );

    // SIGTERM (what the kubelet sends): the process exits cleanly and gives up the lease,
    // again as the ServiceAccount.
    let exit = operator
        .terminate("the operator", Duration::from_secs(20))
        .await;
    assert!(exit.success(), "exit {exit}:\n{}", operator.log());
    let holder = leases
        .get(FULLNAME)
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder, None, "the lease is released");
    let log = operator.log();
    let bad = log
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("forbidden") || l.contains(r#""level":"ERROR""#));
    assert!(bad.is_none(), "{bad:?} in the operator's log:\n{log}");
    simulator.assert_running();

    // The API server's word: every request the ServiceAccount made, none refused, and the ones
    // the lifecycle needs among them (so the check is not vacuous).
    cluster.stop();
    let events = audit_events_of(&audit_log, &cluster.service_account_user());
    let refused: Vec<String> = events
        .iter()
        .filter(|e| e["responseStatus"]["code"] == 403)
        .map(|e| format!("{} {}", call(e), e["requestURI"]))
        .collect();
    assert!(
        refused.is_empty(),
        "the ServiceAccount was refused: {refused:#?}"
    );
    let calls: BTreeSet<String> = events.iter().map(call).collect();
    for needed in [
        "list qodsessions",
        "watch qodsessions",
        "patch qodsessions",
        "patch qodsessions/status",
        "create events",
        "create leases",
        "patch leases",
    ] {
        assert!(calls.contains(needed), "no {needed} in {calls:#?}");
    }
}
