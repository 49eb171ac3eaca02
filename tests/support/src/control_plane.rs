//! A real Kubernetes control plane (etcd + kube-apiserver 1.35, `tests/control-plane/run`) for
//! the tests. One per test binary ([`ControlPlane::shared`]), where each test isolates itself in
//! a namespace of its own ([`ControlPlane::namespace`]); a test that stops or restarts the API
//! server starts one of its own ([`ControlPlane::start_own`]).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{Api, Client, api::PostParams};
use serde_json::json;

use crate::{
    command,
    kubeconfig::client_from,
    paths::{repo_root, test_dir},
};

/// How long a built control plane may take to answer `/readyz` (the target is 10 s; a
/// loaded CI machine gets margin).
const READY_WITHIN: Duration = Duration::from_secs(90);

/// Builds the control plane once per test binary (minutes when cold, a file check when not), so
/// the time to ready measures the servers alone.
fn build() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = repo_root().join("tests/control-plane/build");
        let out = command::output(&mut Command::new(&script));
        let what = format!("{} (needs Go and the Go module proxy)", script.display());
        command::succeeded(&what, &out);
    });
}

pub struct ControlPlane {
    child: Option<Child>,
    /// Held open: the launcher stops when it closes, so a test binary that ends in any way
    /// takes its control plane with it.
    stdin: Option<ChildStdin>,
    dir: PathBuf,
    kubeconfig: PathBuf,
    port: u16,
    /// Kept across restarts; `None` for a temporary one the launcher removes.
    data_dir: Option<PathBuf>,
    /// kube-apiserver flags beyond the launcher's own, kept for restarts.
    apiserver_args: Vec<String>,
}

impl ControlPlane {
    /// The test binary's control plane, started on first use.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(|| Self::launch(scratch("shared"), None, None, Vec::new()))
    }

    /// [`shared`](Self::shared) from async code: the first call blocks for as long as the
    /// control plane takes to start, so it runs off the runtime's threads.
    pub async fn shared_off_runtime() -> &'static ControlPlane {
        tokio::task::spawn_blocking(Self::shared)
            .await
            .expect("the control plane started")
    }

    /// A control plane of this test alone, whose data survives [`kill`](Self::kill) and
    /// [`restart`](Self::restart) on the same port.
    pub fn start_own(name: &str) -> ControlPlane {
        Self::start_own_with(name, &[])
    }

    /// [`start_own`](Self::start_own) with more kube-apiserver flags (an audit log, low
    /// in-flight limits, a short compaction interval...), kept across restarts.
    pub fn start_own_with(name: &str, apiserver_args: &[&str]) -> ControlPlane {
        let dir = scratch(name);
        let data = dir.join("data");
        let args = apiserver_args.iter().map(|a| a.to_string()).collect();
        Self::launch(dir, Some(data), None, args)
    }

    fn launch(
        dir: PathBuf,
        data_dir: Option<PathBuf>,
        port: Option<u16>,
        apiserver_args: Vec<String>,
    ) -> ControlPlane {
        build();
        let kubeconfig = dir.join("kubeconfig");
        // Appended to across restarts; kube-apiserver's own log is in the data folder.
        let log = dir.join("control-plane.log");
        let mut cmd = Command::new(repo_root().join("tests/control-plane/run"));
        cmd.arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--stop-on-stdin-eof");
        if let Some(data) = &data_dir {
            cmd.arg("--data-dir").arg(data);
        }
        if let Some(port) = port {
            cmd.arg("--port").arg(port.to_string());
        }
        if !apiserver_args.is_empty() {
            cmd.arg("--").args(&apiserver_args);
        }
        let started = Instant::now();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .expect("control plane log file"),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tests/control-plane/run: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        // The launcher prints one line once /readyz answers; reading it blocks, so a thread
        // reads while this one keeps the deadline.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Drain the rest so the launcher never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(READY_WITHIN) {
            Ok(Some(Ok(line))) if line.starts_with("control-plane: ready at ") => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "control plane not ready within {READY_WITHIN:?} ({other:?}); its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            }
        };
        let port = line
            .trim_start_matches("control-plane: ready at https://127.0.0.1:")
            .split(',')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        eprintln!(
            "control plane ready in {:.1} s at https://127.0.0.1:{port}",
            started.elapsed().as_secs_f64()
        );
        ControlPlane {
            child: Some(child),
            stdin,
            dir,
            kubeconfig,
            port,
            data_dir,
            apiserver_args,
        }
    }

    /// The admin kubeconfig (a bearer token in `system:masters`), as kubectl and helm use it.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The test's scratch folder next to the kubeconfig.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The launcher's process id (etcd runs inside it, kube-apiserver as its child), while it
    /// runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// An admin client; made on the calling test's runtime.
    pub async fn client(&self) -> Client {
        client_from(&self.kubeconfig).await
    }

    /// A fresh namespace named `<prefix>-<n>`, unique in this test binary's control plane.
    pub async fn namespace(&self, prefix: &str) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let name = format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
        Api::<Namespace>::all(self.client().await)
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        name
    }

    /// SIGKILL of the launcher; its servers die with it and its data stays.
    pub fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the control plane again on the same data and port (after [`kill`](Self::kill)
    /// or [`stop`](Self::stop)): clients holding the kubeconfig keep working.
    pub fn restart(&mut self) {
        assert!(
            self.data_dir.is_some(),
            "only a control plane of one's own can restart"
        );
        self.kill();
        let again = Self::launch(
            self.dir.clone(),
            self.data_dir.clone(),
            Some(self.port),
            self.apiserver_args.clone(),
        );
        let mut old = std::mem::replace(self, again);
        // Its folder and data are the new one's now: not for its Drop to remove.
        old.data_dir = None;
    }

    /// SIGTERM, and waits for the launcher to stop its servers.
    pub fn stop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
        // Kept data (~120 MiB of etcd each) is the test's alone: gone with it, unless the test
        // failed and its logs (kube-apiserver.log in the data folder) may tell why.
        if self.data_dir.is_some() && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A scratch folder for one control plane, emptied first.
fn scratch(name: &str) -> PathBuf {
    test_dir(&format!("control-plane-{name}-{}", std::process::id()))
}

/// The operator's CRDs (QodSession, QodProvider, ClusterQodProvider), applied (server-side, so
/// every test binary and operator agree on them) and established.
pub async fn install_crd(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::{
        api::{Patch, PatchParams},
        runtime::wait::{await_condition, conditions},
    };
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in qod_operator::api::crds() {
        let name = crd.metadata.name.clone().expect("the CRD has a name");
        crds.patch(
            &name,
            &PatchParams::apply("qod-operator-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("applying the CRD {name}: {e}"));
    }
    for crd in qod_operator::api::crds() {
        let name = crd.metadata.name.expect("the CRD has a name");
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("the CRD {name} established within 30 s"))
        .expect("watching the CRD");
    }
}
