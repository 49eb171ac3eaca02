//! Patch types: JSON merge, JSON patch (with `test`), strategic merge (built-ins only) and
//! server-side apply (create, ownership, conflicts, force, keyed lists).

use crate::support::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
        ])),
        ..Default::default()
    }
}

#[tokio::test]
async fn json_merge_patch_sets_and_removes_fields() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(&PostParams::default(), &cm("m")).await.unwrap();
    let out = api
        .patch(
            "m",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .unwrap();
    let data = out.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["b", "c"]);
}

#[tokio::test]
async fn json_patch_applies_operations_and_test_failures_are_422() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(&PostParams::default(), &cm("j")).await.unwrap();
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/a", "value": "1"},
        {"op": "replace", "path": "/data/a", "value": "10"},
        {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}
    ]))
    .unwrap();
    let out = api
        .patch("j", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(out.data.unwrap()["a"], "10");
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/a", "value": "nope"},
        {"op": "remove", "path": "/data/a"}
    ]))
    .unwrap();
    let s = api_err(
        api.patch("j", &PatchParams::default(), &Patch::<()>::Json(failing))
            .await,
    );
    assert_eq!(s.code, 422);
    assert_eq!(api.get("j").await.unwrap().data.unwrap()["a"], "10");
}

#[tokio::test]
async fn json_patch_test_for_null_passes_on_absent_path_like_kube_finalizer_helper() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.dev/cleanup"]}
    ]))
    .unwrap();
    let out = api
        .patch("w", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .unwrap();
    assert_eq!(
        out.metadata.finalizers,
        Some(vec!["example.dev/cleanup".to_string()])
    );
}

#[tokio::test]
async fn strategic_merge_is_415_for_custom_resources() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let s = api_err(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 2}})),
        )
        .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (415, "UnsupportedMediaType"));
}

#[tokio::test]
async fn strategic_merge_merges_keyed_lists_on_builtins() {
    use k8s_openapi::api::apps::v1::Deployment;
    let env = Env::start().await;
    let api: Api<Deployment> = Api::default_namespaced(env.client.clone());
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
            {"name": "main", "image": "x:1"}, {"name": "side", "image": "y:1"}
        ]}}}
    })).unwrap();
    let created = api.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let out = api
        .patch("d", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "x:2"}]}}}})))
        .await
        .unwrap();
    let containers = out.spec.unwrap().template.spec.unwrap().containers;
    let images: Vec<(String, String)> = containers
        .into_iter()
        .map(|c| (c.name, c.image.unwrap_or_default()))
        .collect();
    assert_eq!(
        images,
        [
            ("main".to_string(), "x:2".to_string()),
            ("side".to_string(), "y:1".to_string())
        ]
    );
    assert_eq!(out.metadata.generation, Some(2));
}

#[tokio::test]
async fn server_side_apply_creates_when_absent_and_records_the_manager() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let body = json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "ssa"}, "spec": {"size": 4}});
    let out = api
        .patch("ssa", &PatchParams::apply("tester"), &Patch::Apply(body))
        .await
        .unwrap();
    assert_eq!(out.spec.size, 4);
    assert_eq!(out.metadata.generation, Some(1));
    let mf = out.metadata.managed_fields.unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("tester"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
}

#[tokio::test]
async fn server_side_apply_requires_a_field_manager() {
    let env = Env::with_widgets().await;
    let (code, body) = env
        .raw(reqwest::Method::PATCH, "/apis/example.dev/v1/namespaces/default/widgets/x", Some("application/apply-patch+yaml"),
            Some(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "x"}, "spec": {"size": 1}})))
        .await;
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn server_side_apply_accepts_yaml() {
    let env = Env::with_widgets().await;
    let yaml = "apiVersion: example.dev/v1\nkind: Widget\nmetadata:\n  name: yaml-widget\nspec:\n  size: 7\n";
    let resp = env
        .http
        .patch(format!(
            "{}/apis/example.dev/v1/namespaces/default/widgets/yaml-widget?fieldManager=yaml",
            env.emu.url()
        ))
        .bearer_auth(env.emu.admin_token())
        .header("content-type", "application/apply-patch+yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    let code = resp.status().as_u16();
    assert_eq!(code, 201, "{}", resp.text().await.unwrap());
    assert_eq!(env.widgets().get("yaml-widget").await.unwrap().spec.size, 7);
}

#[tokio::test]
async fn server_side_apply_removes_fields_the_manager_stopped_sending() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let pp = PatchParams::apply("mgr");
    api.patch("w", &pp, &Patch::Apply(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"keep": "1", "drop": "1"}}, "spec": {"size": 3, "name": "abc"}}))).await.unwrap();
    let out = api.patch("w", &pp, &Patch::Apply(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"keep": "1"}}, "spec": {"size": 3}}))).await.unwrap();
    assert_eq!(out.spec.name, None);
    let labels = out.metadata.labels.unwrap();
    assert!(labels.contains_key("keep") && !labels.contains_key("drop"));
}

#[tokio::test]
async fn server_side_apply_conflicts_unless_forced() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let w = |size: i64| json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": size}});
    api.patch("w", &PatchParams::apply("alice"), &Patch::Apply(w(3)))
        .await
        .unwrap();
    // Same value: shared ownership, no conflict.
    api.patch("w", &PatchParams::apply("bob"), &Patch::Apply(w(3)))
        .await
        .unwrap();
    let s = api_err(
        api.patch("w", &PatchParams::apply("carol"), &Patch::Apply(w(5)))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert!(
        s.message.starts_with("Apply failed with 2 conflicts"),
        "{}",
        s.message
    );
    assert!(
        s.message.contains("conflict with \"alice\""),
        "{}",
        s.message
    );
    assert_eq!(s.details.unwrap().causes[0].field, ".spec.size");
    let forced = api
        .patch(
            "w",
            &PatchParams::apply("carol").force(),
            &Patch::Apply(w(5)),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.size, 5);
    let owners: Vec<String> = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.to_string().contains("f:size"))
        })
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(owners, ["carol"]);
}

/// Field ownership is simplified (see `fields.rs`): this pins the part the operator relies on —
/// two managers each applying their own condition to the same keyed list (`conditions` by
/// `type`) keep each other's entries, and a manager that drops its condition removes only its
/// own.
#[tokio::test]
async fn server_side_apply_two_managers_share_a_keyed_list() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let status = |conds: serde_json::Value| json!({"apiVersion": "example.dev/v1", "kind": "Widget", "status": {"conditions": conds}});
    api.patch_status(
        "w",
        &PatchParams::apply("operator").force(),
        &Patch::Apply(status(json!([{"type": "Ready", "status": "True"}]))),
    )
    .await
    .unwrap();
    api.patch_status(
        "w",
        &PatchParams::apply("webhook").force(),
        &Patch::Apply(status(json!([{"type": "Notified", "status": "True"}]))),
    )
    .await
    .unwrap();
    let path = "/apis/example.dev/v1/namespaces/default/widgets/w";
    let (_, both) = env.get_json(path).await;
    let types: Vec<&str> = both["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["Ready", "Notified"]);
    api.patch_status(
        "w",
        &PatchParams::apply("operator").force(),
        &Patch::Apply(status(json!([{"type": "Ready", "status": "False"}]))),
    )
    .await
    .unwrap();
    api.patch_status(
        "w",
        &PatchParams::apply("webhook").force(),
        &Patch::Apply(status(json!([]))),
    )
    .await
    .unwrap();
    let (_, after) = env.get_json(path).await;
    assert_eq!(
        after["status"]["conditions"],
        json!([{"type": "Ready", "status": "False"}])
    );
    let mf = after["metadata"]["managedFields"].as_array().unwrap();
    let op = mf.iter().find(|m| m["manager"] == "operator").unwrap();
    assert_eq!(op["subresource"], "status");
    assert!(
        op["fieldsV1"]["f:status"]["f:conditions"]
            .get("k:{\"type\":\"Ready\"}")
            .is_some(),
        "{op}"
    );
}

#[tokio::test]
async fn apply_to_main_resource_ignores_status_and_update_takes_ownership() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let out = api
        .patch("w", &PatchParams::apply("a"), &Patch::Apply(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2}, "status": {"phase": "x"}})))
        .await
        .unwrap();
    assert_eq!(out.status, None);
    // A merge patch by another manager takes ownership of what it changes...
    api.patch(
        "w",
        &PatchParams {
            field_manager: Some("editor".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"spec": {"size": 9}})),
    )
    .await
    .unwrap();
    // ...so re-applying the old value conflicts with it.
    let s = api_err(api.patch("w", &PatchParams::apply("a"), &Patch::Apply(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 2}}))).await);
    assert!(
        s.message.contains("conflict with \"editor\""),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn a_resource_version_in_an_apply_is_a_precondition() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let created = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let read_at = created.metadata.resource_version.clone().unwrap();
    let status = |rv: &str, word: &str| {
        json!({"apiVersion": "example.dev/v1", "kind": "Widget",
               "metadata": {"name": "w", "resourceVersion": rv},
               "status": {"phase": word}})
    };
    // The first writer's precondition holds; the second writer read the same version and loses.
    api.patch_status(
        "w",
        &PatchParams::apply("first").force(),
        &Patch::Apply(status(&read_at, "one")),
    )
    .await
    .unwrap();
    let stale = api
        .patch_status(
            "w",
            &PatchParams::apply("second").force(),
            &Patch::Apply(status(&read_at, "two")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&stale, kube::Error::Api(s) if s.code == 409),
        "{stale:?}"
    );
    let (_, stored) = env
        .get_json("/apis/example.dev/v1/namespaces/default/widgets/w")
        .await;
    assert_eq!(stored["status"]["phase"], "one");
}
