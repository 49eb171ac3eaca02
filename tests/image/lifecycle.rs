//! The operator from the image against the real control plane and the simulator, through one
//! session's life, as a Deployment of the image would run it.
//!
//! `buildah run --network host`: the container shares this machine's loopback, where the control
//! plane, the simulator and the test listen (each on 127.0.0.1 only); its kubeconfig and HMAC key
//! come in on a read-only volume, as a Secret would. The process runs as the image's user, which
//! can write nowhere in the image (tests/image/contents.rs), so it does what a read-only root
//! filesystem allows.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use kube::config::Kubeconfig;
use qod_operator::simulator;
use serde_json::Value;

use crate::{
    buildah::{self, text},
    support::{ControlPlane, control_plane, eventually, tools},
};

const WAIT: Duration = Duration::from_secs(60);

const SESSION: &str = "phone-low-latency";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_from_the_image_runs_a_session_through_its_life() {
    let Some(image) = tokio::task::spawn_blocking(|| buildah::image("lifecycle"))
        .await
        .unwrap()
    else {
        return;
    };
    let control_plane = tokio::task::spawn_blocking(ControlPlane::shared)
        .await
        .unwrap();
    control_plane::install_crd(&control_plane.client().await).await;
    let namespace = control_plane.namespace("image").await;

    // The volume: a kubeconfig whose context names the test's namespace, and the HMAC key.
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("image-lifecycle");
    let _ = std::fs::remove_dir_all(&dir);
    let volume = dir.join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    write_kubeconfig(
        control_plane.kubeconfig(),
        &namespace,
        &volume.join("kubeconfig"),
    );
    std::fs::write(volume.join("hmac-key"), "image-lifecycle-key-0123456789\n").unwrap();

    let sim = simulator::spawn(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        simulator::SimulatorConfig {
            available_after: Duration::from_millis(200),
            ..simulator::SimulatorConfig::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let sim_sessions = || async {
        let sessions: Vec<Value> = http
            .get(format!("{}/_sim/sessions", sim.base_url()))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        sessions
    };

    let container = image.container("qod-image-lifecycle");
    let probe_port = free_port();
    let webhook_port = free_port();
    let run_flags: Vec<String> = [
        "--network",
        "host",
        "--volume",
        &format!("{}:/config:ro", volume.display()),
        "--env",
        "KUBECONFIG=/config/kubeconfig",
        "--env",
        "POD_NAME=image-operator",
        "--env",
        &format!("POD_NAMESPACE={namespace}"),
        "--env",
        "RUST_LOG=info",
    ]
    .map(str::to_owned)
    .into();
    let command: Vec<String> = [
        "/usr/local/bin/qod-operator",
        "run",
        "--provider-url",
        &format!("{}/quality-on-demand/v1", sim.base_url()),
        "--webhook-listen",
        &format!("127.0.0.1:{webhook_port}"),
        "--webhook-public-url",
        &format!("http://127.0.0.1:{webhook_port}"),
        "--probe-listen",
        &format!("127.0.0.1:{probe_port}"),
        "--hmac-key-file",
        "/config/hmac-key",
        "--lease-duration-seconds",
        "4",
        "--requested-refresh",
        "1s",
        "--namespace",
        &namespace,
    ]
    .map(str::to_owned)
    .into();
    let log = dir.join("operator.log");
    let mut operator = container.spawn(&run_flags, &command, &log);

    let probe = format!("http://127.0.0.1:{probe_port}");
    eventually(
        "the operator from the image to be ready and lead",
        WAIT,
        || {
            let http = &http;
            let probe = &probe;
            async move {
                let ready = http.get(format!("{probe}/readyz")).send().await.ok()?;
                let metrics = http.get(format!("{probe}/metrics")).send().await.ok()?;
                let leads = metrics
                    .text()
                    .await
                    .ok()?
                    .contains("\nqod_operator_leader 1\n");
                (ready.status().is_success() && leads).then_some(())
            }
        },
    )
    .await;

    // The process that answers is the image's binary, as the image's user, in the image's root.
    let process = find_process(&format!("127.0.0.1:{probe_port}"));
    let pid: u32 = process
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let status = std::fs::read_to_string(process.join("status")).unwrap();
    for field in ["Uid:", "Gid:"] {
        let ids: Vec<&str> = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(ids, ["65532"; 4], "{field} of the operator in the image");
    }
    assert_ne!(
        std::fs::read_link(process.join("root")).unwrap(),
        Path::new("/"),
        "the operator runs in the image's root filesystem"
    );

    // One session's life, with kubectl as users drive it.
    let kubeconfig = volume.join("kubeconfig");
    kubectl(
        &kubeconfig,
        &dir,
        &["apply", "-f", "deploy/examples/phone-number.yaml"],
    )
    .await;
    kubectl(
        &kubeconfig,
        &dir,
        &[
            "wait",
            &format!("qod/{SESSION}"),
            "--for=jsonpath={.status.qosStatus}=AVAILABLE",
            "--timeout=60s",
        ],
    )
    .await;
    let session_id = kubectl(
        &kubeconfig,
        &dir,
        &["get", "qod", SESSION, "-o", "jsonpath={.status.sessionId}"],
    )
    .await;
    let sessions = sim_sessions().await;
    assert_eq!(
        sessions.len(),
        1,
        "one session at the simulator: {sessions:?}"
    );
    assert_eq!(
        sessions[0]["sessionId"],
        session_id.as_str(),
        "{sessions:?}"
    );
    assert_eq!(sessions[0]["qosStatus"], "AVAILABLE", "{sessions:?}");

    kubectl(
        &kubeconfig,
        &dir,
        &["delete", "qod", SESSION, "--wait=true", "--timeout=60s"],
    )
    .await;
    eventually("no session left at the simulator", WAIT, || async {
        sim_sessions().await.is_empty().then_some(())
    })
    .await;
    assert_eq!(
        kubectl(&kubeconfig, &dir, &["get", "qod", "-o", "name"]).await,
        "",
        "no QodSession left"
    );

    assert!(
        operator.terminate(pid).await,
        "the operator from the image exits cleanly on SIGTERM; its log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        !process.exists(),
        "the operator process is gone with buildah run"
    );
}

/// The `/proc/<pid>` of the one process whose command line holds `needle`.
fn find_process(needle: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            path.file_name()?.to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(path.join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            (args.first() == Some(&b"/usr/local/bin/qod-operator".as_slice())
                && args.contains(&needle.as_bytes()))
            .then_some(path)
        })
        .collect();
    assert_eq!(found.len(), 1, "one operator process listening on {needle}");
    found.into_iter().next().unwrap()
}

/// kubectl with `kubeconfig` (and `HOME` for its cache) off the runtime's threads; fails the
/// test with its output unless it succeeds. Returns stdout.
async fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(tools::kubectl());
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
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

/// The control plane's admin kubeconfig with `namespace` as every context's default.
fn write_kubeconfig(admin: &Path, namespace: &str, path: &Path) {
    let mut config = Kubeconfig::read_from(admin).unwrap();
    for named in &mut config.contexts {
        if let Some(context) = named.context.as_mut() {
            context.namespace = Some(namespace.to_owned());
        }
    }
    // JSON is YAML: the operator and kubectl read it as it is.
    std::fs::write(path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}
