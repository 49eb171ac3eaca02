//! Create and update rules: identity fields, AlreadyExists, missing namespace, generateName,
//! optimistic concurrency and generation.

use crate::support::*;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use std::collections::BTreeMap;

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

#[tokio::test]
async fn create_sets_uid_timestamp_generation_and_resource_version() {
    let env = Env::with_widgets().await;
    let w = env
        .widgets()
        .create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    assert!(w.metadata.uid.as_deref().is_some_and(|u| u.len() == 36));
    assert!(w.metadata.creation_timestamp.is_some());
    assert_eq!(w.metadata.generation, Some(1));
    assert_eq!(w.metadata.namespace.as_deref(), Some("default"));
    let rv: u64 = w.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv > 0);
}

#[tokio::test]
async fn create_twice_is_409_already_exists() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    api.create(&PostParams::default(), &cm("dup"))
        .await
        .unwrap();
    let s = api_err(api.create(&PostParams::default(), &cm("dup")).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(s.message, "configmaps \"dup\" already exists");
}

#[tokio::test]
async fn create_in_missing_namespace_is_404() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), "nope");
    let s = api_err(api.create(&PostParams::default(), &cm("x")).await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
    assert_eq!(s.message, "namespaces \"nope\" not found");
}

#[tokio::test]
async fn generate_name_makes_a_unique_name() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let mut c = cm("");
    c.metadata.name = None;
    c.metadata.generate_name = Some("gen-".into());
    let a = api.create(&PostParams::default(), &c).await.unwrap();
    let b = api.create(&PostParams::default(), &c).await.unwrap();
    let (a, b) = (a.metadata.name.unwrap(), b.metadata.name.unwrap());
    assert!(a.starts_with("gen-") && a.len() == 9, "{a}");
    assert_ne!(a, b);
}

#[tokio::test]
async fn create_without_name_is_422() {
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let mut c = cm("");
    c.metadata.name = None;
    let s = api_err(api.create(&PostParams::default(), &c).await);
    assert_eq!(s.code, 422);
    assert_eq!(s.details.unwrap().causes[0].field, "metadata.name");
}

#[tokio::test]
async fn resource_version_is_global_and_increasing() {
    let env = Env::with_widgets().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    let a = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let w = env
        .widgets()
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let b = cms.create(&PostParams::default(), &cm("b")).await.unwrap();
    let rv = |m: &ObjectMeta| m.resource_version.clone().unwrap().parse::<u64>().unwrap();
    assert!(rv(&a.metadata) < rv(&w.metadata) && rv(&w.metadata) < rv(&b.metadata));
}

#[tokio::test]
async fn put_with_stale_resource_version_is_409_conflict() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let first = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let mut fresh = first.clone();
    fresh.spec.size = 2;
    api.replace("w", &PostParams::default(), &fresh)
        .await
        .unwrap();
    let mut stale = first;
    stale.spec.size = 3;
    let s = api_err(api.replace("w", &PostParams::default(), &stale).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        s.message,
        "Operation cannot be fulfilled on widgets.example.dev \"w\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn put_of_custom_resource_without_resource_version_is_422() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let s = api_err(
        api.replace("w", &PostParams::default(), &widget("w", 2))
            .await,
    );
    assert_eq!(s.code, 422);
    assert_eq!(
        s.details.unwrap().causes[0].field,
        "metadata.resourceVersion"
    );
}

#[tokio::test]
async fn generation_grows_only_with_spec_changes() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let w = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    // Metadata-only change: same generation, new resourceVersion.
    let mut m = w.clone();
    m.metadata.labels = Some(BTreeMap::from([("a".into(), "b".into())]));
    let m = api.replace("w", &PostParams::default(), &m).await.unwrap();
    assert_eq!(m.metadata.generation, Some(1));
    assert_ne!(m.metadata.resource_version, w.metadata.resource_version);
    // Status-only change through /status: same generation.
    let mut st = m.clone();
    st.status = Some(WidgetStatus {
        phase: Some("Ready".into()),
        observed_generation: Some(1),
    });
    let st = api
        .replace_status("w", &PostParams::default(), &st)
        .await
        .unwrap();
    assert_eq!(st.metadata.generation, Some(1));
    // Spec change: generation 2.
    let mut s = st.clone();
    s.spec.size = 5;
    let s = api.replace("w", &PostParams::default(), &s).await.unwrap();
    assert_eq!(s.metadata.generation, Some(2));
}

#[tokio::test]
async fn status_changes_bump_generation_without_status_subresource() {
    let env = Env::start().await;
    env.create_crd(gadget_crd()).await;
    let (code, created) = env
        .raw(reqwest::Method::POST, "/apis/example.dev/v1/gadgets", Some("application/json"),
            Some(serde_json::json!({"apiVersion": "example.dev/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"a": 1}})))
        .await;
    assert_eq!(code, 201, "{created}");
    let mut next = created.clone();
    next["status"] = serde_json::json!({"phase": "x"});
    let (code, updated) = env
        .raw(
            reqwest::Method::PUT,
            "/apis/example.dev/v1/gadgets/g",
            Some("application/json"),
            Some(next),
        )
        .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["metadata"]["generation"], 2);
    assert_eq!(updated["status"]["phase"], "x");
}

#[tokio::test]
async fn unchanged_update_keeps_resource_version() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let w = api
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let again = api.replace("w", &PostParams::default(), &w).await.unwrap();
    assert_eq!(again.metadata.resource_version, w.metadata.resource_version);
}

#[tokio::test]
async fn namespaces_and_cluster_scoped_objects_work() {
    let env = Env::start().await;
    let ns: Api<Namespace> = Api::all(env.client.clone());
    let created = ns
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("team-a".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "team-a");
    cms.create(&PostParams::default(), &cm("x")).await.unwrap();
    let bad = Namespace {
        metadata: ObjectMeta {
            name: Some("Bad_Name".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        api_err(ns.create(&PostParams::default(), &bad).await).code,
        422
    );
}

#[tokio::test]
async fn core_builtin_types_are_stored() {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    use k8s_openapi::api::events::v1::Event as NewEvent;
    let env = Env::start().await;
    let c = env.client.clone();
    let meta = |n: &str| ObjectMeta {
        name: Some(n.into()),
        ..Default::default()
    };
    Api::<Secret>::default_namespaced(c.clone())
        .create(
            &PostParams::default(),
            &Secret {
                metadata: meta("s"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Api::<ServiceAccount>::default_namespaced(c.clone())
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta("sa"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Api::<Lease>::default_namespaced(c.clone())
        .create(
            &PostParams::default(),
            &Lease {
                metadata: meta("l"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ev = NewEvent {
        metadata: meta("e"),
        event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            jiff::Timestamp::now(),
        )),
        ..Default::default()
    };
    Api::<NewEvent>::default_namespaced(c.clone())
        .create(&PostParams::default(), &ev)
        .await
        .unwrap();
    let core_ev = k8s_openapi::api::core::v1::Event {
        metadata: meta("e2"),
        involved_object: Default::default(),
        ..Default::default()
    };
    Api::<k8s_openapi::api::core::v1::Event>::default_namespaced(c.clone())
        .create(&PostParams::default(), &core_ev)
        .await
        .unwrap();
    assert_eq!(
        Api::<Lease>::default_namespaced(c)
            .get("l")
            .await
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("l")
    );
}

#[tokio::test]
async fn kube_event_recorder_creates_then_patches_a_series() {
    use k8s_openapi::api::events::v1::Event as NewEvent;
    use kube::Resource;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let env = Env::with_widgets().await;
    let w = env
        .widgets()
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let recorder = Recorder::new(
        env.client.clone(),
        Reporter {
            controller: "test".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Created".into(),
        note: Some("made it".into()),
        action: "Create".into(),
        secondary: None,
    };
    let reference = w.object_ref(&());
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<NewEvent> = Api::default_namespaced(env.client.clone());
    let list = events.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(2));
    assert_eq!(
        list.items[0]
            .regarding
            .as_ref()
            .and_then(|r| r.name.as_deref()),
        Some("w")
    );
}

#[tokio::test]
async fn dry_run_create_stores_nothing() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let out = api.create(&pp, &widget("dry", 1)).await.unwrap();
    assert_eq!(
        out.spec.color.as_deref(),
        Some("blue"),
        "defaults are applied in a dry run"
    );
    assert_eq!(api_err(api.get("dry").await).code, 404);
}

#[tokio::test]
async fn delete_collection_by_label() {
    use kube::api::{DeleteParams, ListParams};
    let env = Env::start().await;
    let api: Api<ConfigMap> = Api::default_namespaced(env.client.clone());
    for (name, team) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut c = cm(name);
        c.metadata.labels = Some(BTreeMap::from([("team".to_string(), team.to_string())]));
        api.create(&PostParams::default(), &c).await.unwrap();
    }
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("team=x"),
    )
    .await
    .unwrap();
    let left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);
}
