//! A kube-runtime `Controller` with the finalizer helper and server-side-apply status writes
//! runs against the emulator and sees every change, as the operator will.

use crate::support::*;
use futures::StreamExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const FINALIZER: &str = "example.dev/cleanup";

struct Ctx {
    client: kube::Client,
    cleanups: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed")]
struct ReconcileError(#[source] Box<kube::runtime::finalizer::Error<kube::Error>>);

async fn reconcile(obj: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let api: Api<Widget> = Api::namespaced(
        ctx.client.clone(),
        obj.metadata.namespace.as_deref().unwrap_or("default"),
    );
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Event::Apply(w) => {
                let status = serde_json::json!({
                    "apiVersion": "example.dev/v1", "kind": "Widget",
                    "status": {"phase": format!("size-{}", w.spec.size), "observedGeneration": w.metadata.generation}
                });
                api.patch_status(&w.metadata.name.clone().unwrap_or_default(), &PatchParams::apply("test-controller").force(), &Patch::Apply(status))
                    .await?;
                Ok(Action::await_change())
            }
            Event::Cleanup(_) => {
                ctx.cleanups.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| ReconcileError(Box::new(e)))
}

fn error_policy(_: Arc<Widget>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(50))
}

#[tokio::test]
async fn controller_sees_create_update_and_delete() {
    let env = Env::with_widgets().await;
    let ctx = Arc::new(Ctx {
        client: env.client.clone(),
        cleanups: AtomicUsize::new(0),
    });
    let api: Api<Widget> = Api::all(env.client.clone());
    let controller = Controller::new(api, Default::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    let widgets = env.widgets();
    widgets
        .create(&PostParams::default(), &widget("c1", 2))
        .await
        .unwrap();
    let seen = eventually(
        "status for generation 1",
        Duration::from_secs(10),
        || async {
            let w = widgets.get("c1").await.ok()?;
            let st = w.status.clone()?;
            (st.observed_generation == Some(1)).then_some(w)
        },
    )
    .await;
    assert_eq!(seen.status.unwrap().phase.as_deref(), Some("size-2"));
    assert_eq!(seen.metadata.finalizers, Some(vec![FINALIZER.to_string()]));

    widgets
        .patch(
            "c1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"size": 5}})),
        )
        .await
        .unwrap();
    eventually(
        "status for generation 2",
        Duration::from_secs(10),
        || async {
            let st = widgets.get("c1").await.ok()?.status?;
            (st.observed_generation == Some(2) && st.phase.as_deref() == Some("size-5"))
                .then_some(())
        },
    )
    .await;

    widgets
        .delete("c1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "finalizer removed and object gone",
        Duration::from_secs(10),
        || async {
            matches!(widgets.get("c1").await, Err(kube::Error::Api(s)) if s.code == 404)
                .then_some(())
        },
    )
    .await;
    assert_eq!(ctx.cleanups.load(Ordering::SeqCst), 1);
    handle.abort();
}
