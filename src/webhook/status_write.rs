//! Reading a resource and writing the webhook's status fields to it.
//!
//! The write is a server-side apply to the status subresource with field manager
//! [`WEBHOOK_MANAGER`] and `force`, carrying every field the webhook owns (`qosStatus`,
//! `statusInfo` when the network gave one, `lastNotification`, the `Ready` condition) and the
//! `metadata.resourceVersion` of the object the decision was made on. That precondition makes
//! a concurrent write by the controller a 409 Conflict instead of a lost update; the handler
//! then reads again and decides again (docs/architecture.md, "Status: who writes what").
//!
//! Failures are sorted by what the provider should do: retry (503: the API is unreachable,
//! overloaded or forbids us), give up (404: the resource is gone), or nothing it can fix (500).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Resource,
    api::{Patch, PatchParams},
};
use serde::Serialize;
use serde_json::json;

use super::decide::StatusUpdate;
use crate::{
    api::{NotificationRef, QodSession, WEBHOOK_MANAGER},
    cache::Located,
};

/// Why reading or writing a resource failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the resource changed since it was read")]
    Conflict,
    #[error("the resource no longer exists")]
    Gone,
    #[error("the Kubernetes API could not take the request")]
    Unavailable(#[source] kube::Error),
    #[error("the Kubernetes API refused the status write")]
    Rejected(#[source] kube::Error),
}

impl StoreError {
    fn from_kube(error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status) if status.code == 409 => Self::Conflict,
            kube::Error::Api(status) if status.code == 404 => Self::Gone,
            // 400/422: the write itself is wrong, a retry cannot help. 403 and everything
            // else (5xx, 429, connection and timeout errors) may pass later.
            kube::Error::Api(status) if status.code == 400 || status.code == 422 => {
                Self::Rejected(error)
            }
            _ => Self::Unavailable(error),
        }
    }
}

/// The status fields as applied: only what the webhook owns.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnedStatus<'a> {
    qos_status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_info: Option<&'a str>,
    last_notification: &'a NotificationRef,
    conditions: [&'a Condition; 1],
}

/// The apply body for `update` on the object read at `resource_version`.
pub fn apply_body(
    located: &Located,
    resource_version: &str,
    update: &StatusUpdate,
) -> serde_json::Value {
    json!({
        "apiVersion": QodSession::api_version(&()),
        "kind": QodSession::kind(&()),
        "metadata": {
            "name": located.name,
            "namespace": located.namespace,
            "resourceVersion": resource_version,
        },
        "status": OwnedStatus {
            qos_status: &update.qos_status,
            status_info: update.status_info.as_deref(),
            last_notification: &update.last_notification,
            conditions: [&update.ready],
        },
    })
}

/// Reads the resource; `None` when it is gone or is another object under the same name.
pub async fn read(
    api: &Api<QodSession>,
    located: &Located,
) -> Result<Option<QodSession>, StoreError> {
    let found = api
        .get_opt(&located.name)
        .await
        .map_err(StoreError::from_kube)?;
    Ok(found.filter(|r| r.metadata.uid.as_deref() == Some(located.uid.as_str())))
}

/// Applies `update` to the status of `resource` (as read), with its resourceVersion as the
/// precondition.
pub async fn write(
    api: &Api<QodSession>,
    located: &Located,
    resource: &QodSession,
    update: &StatusUpdate,
) -> Result<(), StoreError> {
    let resource_version = resource
        .metadata
        .resource_version
        .as_deref()
        .unwrap_or_default();
    let body = apply_body(located, resource_version, update);
    api.patch_status(
        &located.name,
        &PatchParams::apply(WEBHOOK_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(StoreError::from_kube)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::conditions;

    #[test]
    fn the_body_carries_every_owned_field_and_the_precondition() {
        let now: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
        let located = Located {
            namespace: "media".into(),
            name: "cam".into(),
            uid: "u".into(),
        };
        let update = StatusUpdate {
            qos_status: "AVAILABLE".into(),
            status_info: None,
            last_notification: NotificationRef {
                time: Some(Time(now)),
                id: Some("e-1".into()),
                source: Some("https://p/s/1".into()),
            },
            ready: conditions::ready("True", "SessionAvailable", "ok", Some(2), now),
        };
        let body = apply_body(&located, "42", &update);
        assert_eq!(body["apiVersion"], "qod.dev/v1alpha1");
        assert_eq!(body["kind"], "QodSession");
        assert_eq!(body["metadata"]["resourceVersion"], "42");
        assert_eq!(body["metadata"]["namespace"], "media");
        assert_eq!(body["status"]["qosStatus"], "AVAILABLE");
        assert!(body["status"].get("statusInfo").is_none());
        assert_eq!(body["status"]["lastNotification"]["id"], "e-1");
        assert_eq!(
            body["status"]["lastNotification"]["time"],
            "2026-11-24T12:00:00Z"
        );
        assert_eq!(body["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(body["status"]["conditions"][0]["observedGeneration"], 2);
    }
}
