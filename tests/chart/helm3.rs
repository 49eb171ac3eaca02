//! The chart with Helm 3 as well as Helm 4 (the other tests use Helm 4): lint, the same objects
//! rendered, and install, upgrade (the HMAC key kept) and uninstall against a real API server.

use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret, rbac::v1::ClusterRole};
use kube::Api;
use qod_test_support::tools;

use crate::{
    cluster::Cluster,
    harness::{
        NAMESPACE, RELEASE, Rendered, chart, chart_arg, helm_command_of, output, scratch,
        template_raw, text,
    },
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

#[tokio::test]
async fn helm_3_installs_upgrades_and_uninstalls() {
    // A release of its own on the shared control plane (Helm 3 skips the CRD already there).
    let cluster = Cluster::shared("chart-helm3").await;
    let chart = chart_arg();
    let release = |verb| {
        [
            verb,
            cluster.release.as_str(),
            &chart,
            "--namespace",
            &cluster.namespace,
            SIMULATOR[0],
            SIMULATOR[1],
        ]
    };
    let notes = cluster.helm3(&release("install")).await;
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    let admin = cluster.admin().await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &cluster.namespace);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &cluster.namespace);
    let cluster_roles: Api<ClusterRole> = Api::all(admin);
    let fullname = cluster.fullname.as_str();
    deployments.get(fullname).await.unwrap();
    cluster_roles.get(fullname).await.unwrap();
    let hmac = format!("{fullname}-hmac");
    let key = secrets.get(&hmac).await.unwrap().data;
    assert!(key.as_ref().is_some_and(|k| k.contains_key("key")));
    cluster.helm3(&release("upgrade")).await;
    assert_eq!(
        secrets.get(&hmac).await.unwrap().data,
        key,
        "the HMAC key survives an upgrade"
    );
    cluster
        .helm3(&[
            "uninstall",
            &cluster.release,
            "--namespace",
            &cluster.namespace,
        ])
        .await;
    assert!(deployments.get_opt(fullname).await.unwrap().is_none());
    assert!(cluster_roles.get_opt(fullname).await.unwrap().is_none());
}
