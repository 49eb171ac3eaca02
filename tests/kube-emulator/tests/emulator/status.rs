//! The status subresource: writes to /status change only status; writes to the object leave
//! status untouched; create drops status.

use crate::support::*;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn create_drops_status_when_the_subresource_is_enabled() {
    let env = Env::with_widgets().await;
    let mut w = widget("w", 1);
    w.status = Some(WidgetStatus {
        phase: Some("Fake".into()),
        observed_generation: None,
    });
    let created = env
        .widgets()
        .create(&PostParams::default(), &w)
        .await
        .unwrap();
    assert_eq!(created.status, None);
}

#[tokio::test]
async fn writes_to_the_main_resource_ignore_status() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    api.patch_status(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Ready"}})),
    )
    .await
    .unwrap();
    let patched = api
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}, "status": {"phase": "Hacked"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.size, 2);
    assert_eq!(patched.status.unwrap().phase.as_deref(), Some("Ready"));
}

#[tokio::test]
async fn writes_to_status_change_only_status() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let after = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 99}, "metadata": {"labels": {"x": "y"}}, "status": {"phase": "Ready"}})),
        )
        .await
        .unwrap();
    assert_eq!(after.spec.size, 1);
    assert!(after.metadata.labels.is_none_or(|l| l.is_empty()));
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Ready"));
    assert_eq!(after.metadata.generation, Some(1));
}

#[tokio::test]
async fn status_path_is_404_without_the_subresource() {
    let env = Env::start().await;
    env.create_crd(gadget_crd()).await;
    env.raw(
        reqwest::Method::POST,
        "/apis/example.dev/v1/gadgets",
        Some("application/json"),
        Some(json!({"apiVersion": "example.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}})),
    )
    .await;
    let (code, body) = env.get_json("/apis/example.dev/v1/gadgets/g/status").await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = env.get_json("/apis/example.dev/v1/gadgets/g").await;
    assert_eq!(code, 200);
}
