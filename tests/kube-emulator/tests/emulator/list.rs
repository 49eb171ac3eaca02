//! LIST: collection resourceVersion, paging and selectors.

use crate::support::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use std::collections::BTreeMap;

async fn seed(env: &Env) -> Api<ConfigMap> {
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let items = [
        ("a", "web", "prod"),
        ("b", "web", "dev"),
        ("c", "db", "prod"),
        ("d", "", ""),
    ];
    for (name, app, tier) in items {
        let mut labels = BTreeMap::new();
        if !app.is_empty() {
            labels.insert("app".to_string(), app.to_string());
            labels.insert("tier".to_string(), tier.to_string());
        }
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels),
                ..Default::default()
            },
            ..Default::default()
        };
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    api
}

fn names(list: &kube::core::ObjectList<ConfigMap>) -> Vec<String> {
    list.items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn list_returns_collection_resource_version() {
    let env = Env::start().await;
    let api = seed(&env).await;
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert_eq!(rv, env.emu.current_resource_version());
    let max_item = list
        .items
        .iter()
        .map(|c| {
            c.metadata
                .resource_version
                .clone()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .max()
        .unwrap();
    assert!(rv >= max_item);
}

#[tokio::test]
async fn limit_and_continue_page_through_everything() {
    let env = Env::start().await;
    let api = seed(&env).await;
    let first = api.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(names(&first), ["a", "b", "c"]);
    assert_eq!(first.metadata.remaining_item_count, Some(1));
    let token = first.metadata.continue_.clone().unwrap();
    let second = api
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(names(&second), ["d"]);
    assert!(second.metadata.continue_.is_none());
    // kube's paginated helper agrees.
    let all: Vec<String> = api
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(all, ["a"]);
}

#[tokio::test]
async fn label_selector_operators() {
    let env = Env::start().await;
    let api = seed(&env).await;
    let sel = |s: &str| ListParams::default().labels(s);
    let cases: &[(&str, &[&str])] = &[
        ("app=web", &["a", "b"]),
        ("app==web", &["a", "b"]),
        ("app!=web", &["c", "d"]),
        ("tier in (prod)", &["a", "c"]),
        ("tier notin (prod)", &["b", "d"]),
        ("app", &["a", "b", "c"]),
        ("!app", &["d"]),
        ("app=web,tier=prod", &["a"]),
        ("app in (web,db),tier!=dev", &["a", "c"]),
    ];
    for (selector, want) in cases {
        let got = names(&api.list(&sel(selector)).await.unwrap());
        assert_eq!(&got, want, "selector {selector}");
    }
}

#[tokio::test]
async fn field_selectors_on_name_and_namespace() {
    let env = Env::start().await;
    seed(&env).await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    assert_eq!(
        names(
            &api.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    assert_eq!(
        names(
            &api.list(&ListParams::default().fields("metadata.name!=b"))
                .await
                .unwrap()
        ),
        ["a", "c", "d"]
    );
    let all: Api<ConfigMap> = Api::all(env.client.clone());
    let in_default = all
        .list(&ListParams::default().fields("metadata.namespace=default"))
        .await
        .unwrap();
    assert_eq!(in_default.items.len(), 4);
    let s = api_err(
        api.list(&ListParams::default().fields("spec.foo=bar"))
            .await,
    );
    assert_eq!(s.code, 400);
}

#[tokio::test]
async fn metadata_only_get_list_and_watch() {
    use futures::StreamExt;
    use kube::api::{WatchEvent, WatchParams};
    let env = Env::start().await;
    let api = seed(&env).await;
    let one = api.get_metadata("a").await.unwrap();
    assert_eq!(one.types.unwrap().kind, "PartialObjectMetadata");
    assert_eq!(one.metadata.labels.unwrap()["app"], "web");
    let list = api
        .list_metadata(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api
        .watch_metadata(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("e".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match event {
        WatchEvent::Added(o) => assert_eq!(o.metadata.name.as_deref(), Some("e")),
        other => panic!("unexpected {other:?}"),
    }
}
