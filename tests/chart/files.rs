//! Committed files that must stay in step: the chart's CRDs, the plain manifests in deploy/, and
//! the values table in the chart README.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::*;

/// The command that regenerates deploy/qod-operator.yaml (also in deploy/README.md).
const REGENERATE: &str = "helm template qod-operator charts/qod-operator --namespace qod-system -f deploy/values.yaml > deploy/qod-operator.yaml";

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

#[test]
fn chart_crds_are_the_generated_ones() {
    let files = |dir: &str| {
        let mut names: Vec<String> = std::fs::read_dir(repo_root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort_unstable();
        names
    };
    let crds = files("charts/qod-operator/crds");
    assert_eq!(
        crds,
        [
            "clusterqodproviders.qod.dev.yaml",
            "qodproviders.qod.dev.yaml",
            "qodsessions.qod.dev.yaml",
            "qosprofiles.qod.dev.yaml"
        ]
    );
    assert_eq!(files("deploy/crds"), crds);
    for file in &crds {
        assert!(
            read(&format!("charts/qod-operator/crds/{file}"))
                == read(&format!("deploy/crds/{file}")),
            "charts/qod-operator/crds/{file} differs from deploy/crds/; run: \
             cargo run -- crd --out-dir deploy/crds && cp deploy/crds/*.yaml charts/qod-operator/crds/"
        );
    }
}

#[test]
fn plain_manifests_are_the_rendered_chart() {
    let rendered = template_raw(
        "qod-operator",
        "qod-system",
        &[
            "-f",
            &repo_root().join("deploy/values.yaml").display().to_string(),
        ],
    )
    .unwrap_or_else(|e| panic!("rendering deploy/values.yaml failed:\n{e}"));
    let committed = read("deploy/qod-operator.yaml");
    if committed != rendered {
        let line = committed
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_string(), |n| format!("line {}", n + 1));
        panic!(
            "deploy/qod-operator.yaml is out of step with the chart (first difference at {line}); from the repository root run:\n  {REGENERATE}"
        );
    }
    let objects = Rendered::parse(&committed);
    let mut kinds: Vec<&str> = objects.objects.iter().map(|o| str(o, "/kind")).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ],
        "plain manifests: RBAC, deployment, services and the NetworkPolicy; no Secret (the HMAC key is created by hand), no simulator"
    );
    assert!(read("deploy/values.yaml").contains(REGENERATE));
    assert!(read("deploy/README.md").contains(REGENERATE));

    let namespace: Value = serde_saphyr::from_str(&read("deploy/namespace.yaml")).unwrap();
    assert_eq!(namespace["kind"], "Namespace");
    assert_eq!(namespace["metadata"]["name"], "qod-system");
}

/// Dotted paths of the values, down to leaves (scalars, lists and empty maps).
fn leaves(prefix: &str, value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(&path, v, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

#[test]
fn readme_documents_every_value_and_nothing_else() {
    let values: Value = serde_saphyr::from_str(&read("charts/qod-operator/values.yaml")).unwrap();
    let mut paths = BTreeSet::new();
    leaves("", &values, &mut paths);
    let readme = read("charts/qod-operator/README.md");
    // Table rows: | `path` | default | description |
    let (_, table) = readme
        .split_once("\n## Values\n")
        .expect("README has a \"## Values\" section");
    let documented: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(path, _)| path.to_string()))
        .collect();
    let covered = |leaf: &String| {
        documented
            .iter()
            .any(|d| leaf == d || leaf.starts_with(&format!("{d}.")))
    };
    let missing: Vec<_> = paths.iter().filter(|p| !covered(p)).collect();
    assert!(
        missing.is_empty(),
        "values missing from charts/qod-operator/README.md: {missing:?}"
    );
    let exists = |d: &String| {
        paths
            .iter()
            .any(|p| p == d || p.starts_with(&format!("{d}.")))
    };
    let stale: Vec<_> = documented.iter().filter(|d| !exists(d)).collect();
    assert!(
        stale.is_empty(),
        "README documents values that do not exist: {stale:?}"
    );

    // The schema knows every top-level value, so a typo is refused instead of ignored.
    let schema: Value =
        serde_json::from_str(&read("charts/qod-operator/values.schema.json")).unwrap();
    for key in values.as_object().unwrap().keys() {
        assert!(
            schema["properties"][key].is_object(),
            "values.schema.json lacks {key}"
        );
    }
}
