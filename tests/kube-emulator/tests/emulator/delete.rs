//! Deletion: finalizers and deletionTimestamp, DELETED once finalizers are gone, no new
//! finalizers while deleting, preconditions, namespace and CRD cascades.

use crate::support::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use serde_json::json;
use std::time::Duration;

async fn next_type<S, K>(stream: &mut S) -> String
where
    S: futures::Stream<Item = Result<WatchEvent<K>, kube::Error>> + Unpin,
{
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match e {
            WatchEvent::Added(_) => return "ADDED".into(),
            WatchEvent::Modified(_) => return "MODIFIED".into(),
            WatchEvent::Deleted(_) => return "DELETED".into(),
            WatchEvent::Error(e) => return format!("ERROR {}", e.code),
            WatchEvent::Bookmark(_) => continue,
        }
    }
}

#[tokio::test]
async fn finalizers_delay_deletion_until_removed() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let mut w = widget("w", 1);
    w.metadata.finalizers = Some(vec!["example.dev/hold".into()]);
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default().timeout(20),
            &created.metadata.resource_version.clone().unwrap(),
        )
        .await
        .unwrap()
        .boxed();

    let resp = api.delete("w", &DeleteParams::default()).await.unwrap();
    let deleting = resp
        .left()
        .expect("object returned while finalizers remain");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert_eq!(
        deleting.metadata.generation,
        Some(2),
        "graceful deletion bumps generation like the real server"
    );
    assert_eq!(next_type(&mut stream).await, "MODIFIED");
    assert!(
        api.get("w")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );

    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(next_type(&mut stream).await, "DELETED");
    assert_eq!(api_err(api.get("w").await).code, 404);
}

#[tokio::test]
async fn no_new_finalizers_on_an_object_being_deleted() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let mut w = widget("w", 1);
    w.metadata.finalizers = Some(vec!["a/one".into()]);
    api.create(&PostParams::default(), &w).await.unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();
    let s = api_err(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["a/one", "b/two"]}})),
        )
        .await,
    );
    assert_eq!(s.code, 422);
    let cause = &s.details.unwrap().causes[0];
    assert_eq!(cause.field, "metadata.finalizers");
    assert!(
        cause
            .message
            .contains("no new finalizers can be added if the object is being deleted"),
        "{}",
        cause.message
    );
    // Other changes are still allowed.
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn delete_without_finalizers_removes_at_once() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let resp = api.delete("c", &DeleteParams::default()).await.unwrap();
    assert!(
        resp.is_right(),
        "built-in deletes answer with a Success Status"
    );
    assert_eq!(api_err(api.get("c").await).code, 404);
    assert_eq!(
        api_err(api.delete("c", &DeleteParams::default()).await).code,
        404
    );
}

#[tokio::test]
async fn delete_preconditions_conflict() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: Some("1".into()),
            uid: None,
        }),
        ..Default::default()
    };
    let s = api_err(api.delete("c", &dp).await);
    assert_eq!(s.code, 409);
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let env = Env::with_widgets().await;
    let ns: Api<Namespace> = Api::all(env.client.clone());
    ns.create(
        &PostParams::default(),
        &Namespace {
            metadata: ObjectMeta {
                name: Some("tmp".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let widgets: Api<Widget> = Api::namespaced(env.client.clone(), "tmp");
    let mut held = widget("held", 1);
    held.metadata.finalizers = Some(vec!["example.dev/hold".into()]);
    widgets.create(&PostParams::default(), &held).await.unwrap();
    widgets
        .create(&PostParams::default(), &widget("free", 1))
        .await
        .unwrap();
    ns.delete("tmp", &DeleteParams::default()).await.unwrap();
    let terminating = ns.get("tmp").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    assert_eq!(api_err(widgets.get("free").await).code, 404);
    let s = api_err(
        widgets
            .create(&PostParams::default(), &widget("late", 1))
            .await,
    );
    assert_eq!(s.code, 403);
    widgets
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    assert_eq!(api_err(ns.get("tmp").await).code, 404);
}

#[tokio::test]
async fn deleting_a_crd_removes_its_objects_and_its_discovery() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let env = Env::with_widgets().await;
    env.widgets()
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    Api::<CustomResourceDefinition>::all(env.client.clone())
        .delete("widgets.example.dev", &DeleteParams::default())
        .await
        .unwrap();
    let (code, _) = env.get_json("/apis/example.dev/v1").await;
    assert_eq!(code, 404);
    let (code, _) = env
        .get_json("/apis/example.dev/v1/namespaces/default/widgets")
        .await;
    assert_eq!(code, 404);
    // Re-creating the CRD starts empty.
    env.create_crd(widget_crd()).await;
    assert!(
        env.widgets()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
