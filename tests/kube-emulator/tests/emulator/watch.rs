//! WATCH: event types, resume from a resourceVersion, bookmarks, 410 Gone, timeouts,
//! selector transitions and initial events.

use crate::support::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube_emulator::Options;
use std::collections::BTreeMap;
use std::time::Duration;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn next_event<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = Result<WatchEvent<ConfigMap>, kube::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event within 5s")
        .expect("stream open")
        .expect("event decodes")
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.clone().unwrap_or_default()),
        WatchEvent::Modified(o) => {
            format!("MODIFIED {}", o.metadata.name.clone().unwrap_or_default())
        }
        WatchEvent::Deleted(o) => {
            format!("DELETED {}", o.metadata.name.clone().unwrap_or_default())
        }
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(e) => format!("ERROR {}", e.code),
    }
}

#[tokio::test]
async fn watch_sees_added_modified_deleted_in_order() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("x", &[]))
        .await
        .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"a": "b"}})),
    )
    .await
    .unwrap();
    api.delete("x", &DeleteParams::default()).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(describe(&next_event(&mut stream).await));
    }
    assert_eq!(got, ["ADDED x", "MODIFIED x", "DELETED x"]);
}

#[tokio::test]
async fn watch_from_resource_version_replays_only_later_changes() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(&PostParams::default(), &cm("before", &[]))
        .await
        .unwrap();
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    api.create(&PostParams::default(), &cm("after", &[]))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED after");
}

#[tokio::test]
async fn watch_from_zero_starts_with_current_state() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(&PostParams::default(), &cm("one", &[]))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED one");
}

#[tokio::test]
async fn bookmarks_carry_the_current_resource_version() {
    let env = Env::with(Options {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    // A change elsewhere (another namespace's object) moves the global resourceVersion.
    let other: Api<ConfigMap> = Api::namespaced(env.client.clone(), "kube-system");
    other
        .create(&PostParams::default(), &cm("elsewhere", &[]))
        .await
        .unwrap();
    let want = env.emu.current_resource_version().to_string();
    let bookmark = loop {
        if let WatchEvent::Bookmark(b) = next_event(&mut stream).await
            && b.metadata.resource_version == want
        {
            break b;
        }
    };
    assert_eq!(bookmark.types.kind, "ConfigMap");
}

#[tokio::test]
async fn too_old_resource_version_is_410_gone() {
    let env = Env::with(Options {
        history_limit: 3,
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let old = api
        .create(&PostParams::default(), &cm("first", &[]))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("n{i}"), &[]))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default().timeout(20), &old)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected ERROR 410, got {}", describe(&other)),
    }
}

#[tokio::test]
async fn timeout_seconds_ends_the_stream() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("stream ends within 5s");
    assert!(end.is_none());
}

#[tokio::test]
async fn selector_watch_turns_leaving_the_selection_into_deleted() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let rv = api
        .list(&Default::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().labels("app=web").timeout(20), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("x", &[("app", "db")]))
        .await
        .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED x");
    assert_eq!(describe(&next_event(&mut stream).await), "DELETED x");
}

#[tokio::test]
async fn send_initial_events_ends_with_an_annotated_bookmark() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(&PostParams::default(), &cm("one", &[]))
        .await
        .unwrap();
    let wp = WatchParams::streaming_lists().timeout(20);
    let mut stream = api.watch(&wp, "").await.unwrap().boxed();
    assert_eq!(describe(&next_event(&mut stream).await), "ADDED one");
    match next_event(&mut stream).await {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata
                    .annotations
                    .get("k8s.io/initial-events-end")
                    .map(String::as_str),
                Some("true")
            );
        }
        other => panic!(
            "expected the initial-events-end bookmark, got {}",
            describe(&other)
        ),
    }
}

#[tokio::test]
async fn kube_runtime_watcher_sees_every_change() {
    use kube::runtime::{WatchStreamExt, watcher};
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let stream = watcher(api.clone(), watcher::Config::default()).applied_objects();
    let mut stream = stream.boxed();
    api.create(&PostParams::default(), &cm("w1", &[]))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("w1"));
    api.patch(
        "w1",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.data.unwrap()["k"], "v");
}

#[tokio::test]
async fn streaming_list_watcher_works() {
    use kube::runtime::{WatchStreamExt, watcher};
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(&PostParams::default(), &cm("pre", &[]))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists())
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("pre"));
    api.create(&PostParams::default(), &cm("post", &[]))
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("post"));
}

#[tokio::test]
async fn table_watch_sends_one_row_tables() {
    let env = Env::start().await;
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=5",
        env.emu.url()
    );
    let mut resp = env
        .http
        .get(url)
        .bearer_auth(env.emu.admin_token())
        .header("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .send()
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(&PostParams::default(), &cm("t", &[]))
        .await
        .unwrap();
    let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let event: serde_json::Value = serde_json::from_slice(chunk.trim_ascii_end()).unwrap();
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["kind"], "Table");
    assert_eq!(event["object"]["rows"][0]["cells"][0], "t");
}
