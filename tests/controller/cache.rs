//! The cache the controller and the webhook share: slim objects, lookups, and a feed of
//! changes that a controller starting late (on winning the lease) still sees whole.

use std::{
    collections::{BTreeSet, HashMap},
    time::Duration,
};

use futures::{Stream, StreamExt};
use kube::{
    ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use qod_operator::{api::QodSession, cache::SessionCache};
use qod_test_support::eventually;
use serde_json::json;

use crate::{harness::Harness, harness::Setup, harness::qos_status, harness::spec};

const WAIT: Duration = Duration::from_secs(10);

async fn next_name(
    changes: &mut (impl Stream<Item = std::sync::Arc<QodSession>> + Unpin),
) -> String {
    tokio::time::timeout(WAIT, changes.next())
        .await
        .expect("a change within the deadline")
        .expect("the feed is open while the cache lives")
        .name_any()
}

#[tokio::test]
async fn the_cache_keeps_slim_objects_and_feeds_a_controller_that_starts_late() {
    let mut h = Harness::start(Setup {
        start_controller: false,
        ..Setup::default()
    })
    .await;
    let first = h.create("first", spec("+36721601230101")).await;
    h.create("second", spec("+36721601230102")).await;
    // kubectl apply's copy of the manifest (as large as the object), another team's annotation
    // and a label: none is read by the operator. qod.dev/paused is.
    h.api
        .patch(
            "first",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"QodSession\"}",
                    "team": "media",
                    "qod.dev/paused": "false"
                },
                "labels": {"app": "video"}
            }})),
        )
        .await
        .unwrap();
    let stored = h.api.get("first").await.unwrap();
    assert!(
        !stored.managed_fields().is_empty(),
        "the API keeps managedFields, so slimming has something to drop"
    );

    let cache = SessionCache::start(h.client.clone(), Some(&h.namespace));
    eventually("the cache to sync", WAIT, || async {
        cache.has_synced().then_some(())
    })
    .await;
    assert_eq!(cache.len(), 2);
    let located = cache.by_uid(&first.uid().unwrap()).unwrap();
    assert_eq!(
        (located.namespace.as_str(), located.name.as_str()),
        (stored.namespace().unwrap().as_str(), "first")
    );
    let cached = cache.get(&located).unwrap();
    assert!(cached.managed_fields().is_empty());
    assert_eq!(
        cached.annotations().keys().collect::<Vec<_>>(),
        ["qod.dev/paused"],
        "only the operator's annotations are kept"
    );
    assert!(cached.labels().is_empty());
    assert_eq!(
        stored.labels().len(),
        1,
        "the API server keeps what the cache drops"
    );
    assert_eq!(cached.spec, stored.spec);
    assert_eq!(cached.resource_version(), stored.resource_version());

    // A listener that comes after the sync gets every object first, then the changes.
    let mut changes = Box::pin(cache.changes());
    let snapshot = BTreeSet::from([next_name(&mut changes).await, next_name(&mut changes).await]);
    assert_eq!(
        snapshot,
        BTreeSet::from(["first".to_owned(), "second".to_owned()])
    );
    h.patch_spec("second", json!({"duration": 120})).await;
    assert_eq!(next_name(&mut changes).await, "second");

    // The controller starts on the synced cache, as the leader's does, and still reconciles
    // the resources that were there before it.
    h.start_controller_on(cache.clone());
    for name in ["first", "second"] {
        h.wait_for("the session to be AVAILABLE", name, |s| {
            qos_status(s) == Some("AVAILABLE")
        })
        .await;
    }

    // What /metrics reports as qod_operator_sessions{qos_status}.
    eventually(
        "the cache to count both sessions AVAILABLE",
        WAIT,
        || async {
            (cache.count_by_qos_status() == HashMap::from([(Some("AVAILABLE".to_owned()), 2)]))
                .then_some(())
        },
    )
    .await;

    h.api
        .delete("first", &DeleteParams::default())
        .await
        .unwrap();
    h.wait_gone("first").await;
    eventually("the cache to forget the deleted resource", WAIT, || async {
        cache.by_uid(&first.uid().unwrap()).is_none().then_some(())
    })
    .await;
    assert!(cache.get(&located).is_none());
    h.stop().await;
}
