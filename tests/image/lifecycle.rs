//! The operator from the image against the real control plane and the simulator, through one
//! session's life, as a Deployment of the image would run it.
//!
//! `buildah run --network host`: the container shares this machine's loopback, where the control
//! plane, the simulator and the test listen (each on 127.0.0.1 only); its kubeconfig and HMAC key
//! come in on a read-only volume, as a Secret would. The process runs as the image's user, which
//! can write nowhere in the image (tests/image/contents.rs), so it does what a read-only root
//! filesystem allows.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use qod_test_support::{
    Cluster, eventually, kubeconfig::KubeconfigCopy, kubectl::Kubectl, net::free_port,
    simulator::in_process_simulator, test_dir,
};

use crate::buildah;

const WAIT: Duration = Duration::from_secs(60);

const SESSION: &str = "phone-low-latency";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_from_the_image_runs_a_session_through_its_life() {
    let Some(image) = tokio::task::spawn_blocking(|| buildah::image("lifecycle"))
        .await
        .unwrap()
    else {
        return;
    };
    let cluster = Cluster::start("image").await;
    let namespace = cluster.namespace;

    // The volume: a kubeconfig whose context names the test's namespace, and the HMAC key.
    let dir = test_dir("image-lifecycle");
    let volume = dir.join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    let kubeconfig = volume.join("kubeconfig");
    KubeconfigCopy::of(&cluster.kubeconfig)
        .namespace(&namespace)
        .write(&kubeconfig);
    std::fs::write(volume.join("hmac-key"), "image-lifecycle-key-0123456789\n").unwrap();

    let (sim, provider) = in_process_simulator().await;
    let http = qod_test_support::http::client();
    let sim_sessions = || provider.sessions(false);

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
    let kubectl = Kubectl::new(&kubeconfig).home(&dir);
    kubectl
        .run(&["apply", "-f", "deploy/examples/phone-number.yaml"])
        .await;
    kubectl
        .run(&[
            "wait",
            &format!("qod/{SESSION}"),
            "--for=jsonpath={.status.qosStatus}=AVAILABLE",
            "--timeout=60s",
        ])
        .await;
    let session_id = kubectl
        .run(&["get", "qod", SESSION, "-o", "jsonpath={.status.sessionId}"])
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

    kubectl
        .run(&["delete", "qod", SESSION, "--wait=true", "--timeout=60s"])
        .await;
    eventually("no session left at the simulator", WAIT, || async {
        sim_sessions().await.is_empty().then_some(())
    })
    .await;
    assert_eq!(
        kubectl.run(&["get", "qod", "-o", "name"]).await,
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
