//! The chart with Helm 3 as well as Helm 4 (the other tests use Helm 4): lint, the same objects
//! rendered, and install, upgrade (the HMAC key kept) and uninstall against the in-memory API.

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
use kube::Api;
use kube_emulator::{Emulator, Options};

use crate::{
    harness::{
        NAMESPACE, RELEASE, Rendered, chart, helm_command_of, output, scratch, template_raw, text,
    },
    support::tools,
};

const SIMULATOR: [&str; 2] = ["--set", "simulator.enabled=true"];

fn helm3(dir: &std::path::Path, args: &[&str]) -> Result<String, String> {
    let out = output(helm_command_of(tools::helm3(), dir).args(args));
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

#[test]
fn helm_3_lints_and_renders_the_same_objects_as_helm_4() {
    let dir = scratch("helm3-template");
    let version = helm3(&dir, &["version", "--short"]).unwrap();
    assert!(version.starts_with("v3."), "{version}");
    let chart = chart();
    let chart = chart.to_str().unwrap();
    helm3(
        &dir,
        &[&["lint", "--strict", chart][..], &SIMULATOR].concat(),
    )
    .unwrap_or_else(|e| panic!("helm 3 lint: {e}"));
    for values in [
        &SIMULATOR[..],
        &[
            "--set",
            "provider.url=https://qod.example.com/quality-on-demand/v1",
            "--set",
            "webhook.publicUrl=https://qod-webhook.example.com",
        ][..],
    ] {
        let three = helm3(
            &dir,
            &[
                &["template", RELEASE, chart, "--namespace", NAMESPACE][..],
                values,
            ]
            .concat(),
        )
        .unwrap_or_else(|e| panic!("helm 3 template {values:?}: {e}"));
        let four = template_raw(RELEASE, NAMESPACE, values).unwrap();
        assert_eq!(
            Rendered::parse(&three).names(),
            Rendered::parse(&four).names(),
            "{values:?}"
        );
    }
    // The schema refuses bad values under Helm 3 too.
    let refused = helm3(
        &dir,
        &[
            "template",
            RELEASE,
            chart,
            "--namespace",
            NAMESPACE,
            "--set",
            "replicas=-1",
        ],
    )
    .unwrap_err();
    assert!(refused.contains("replicas"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_3_installs_upgrades_and_uninstalls() {
    let dir = scratch("helm3-install");
    let emulator = Emulator::start(Options::default()).await.unwrap();
    emulator.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
    let client = emulator.client().await.unwrap();
    let chart = chart();
    let chart = chart.to_str().unwrap().to_owned();
    let run = |args: Vec<String>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut cmd = helm_command_of(tools::helm3(), &dir);
            cmd.env("KUBECONFIG", dir.join("kubeconfig")).args(&args);
            let out = output(&mut cmd);
            assert!(
                out.status.success(),
                "helm 3 {args:?}:\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        })
    };
    let install = |verb: &str| {
        [
            verb,
            RELEASE,
            &chart,
            "--namespace",
            "default",
            SIMULATOR[0],
            SIMULATOR[1],
        ]
        .map(String::from)
        .to_vec()
    };
    run(install("install")).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let fullname = "qod-qod-operator";
    assert!(deployments.get_opt(fullname).await.unwrap().is_some());
    let hmac = format!("{fullname}-hmac");
    let key = secrets.get(&hmac).await.unwrap().data;
    run(install("upgrade")).await.unwrap();
    assert_eq!(
        secrets.get(&hmac).await.unwrap().data,
        key,
        "the HMAC key survives an upgrade"
    );
    run(["uninstall", RELEASE, "--namespace", "default"]
        .map(String::from)
        .to_vec())
    .await
    .unwrap();
    assert!(deployments.get_opt(fullname).await.unwrap().is_none());
    emulator.shutdown().await;
}
