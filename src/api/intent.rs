//! The intent of a resource's first create, recorded in its metadata.
//!
//! A create is recorded as intent before it is sent, so that a crash before its answer is
//! recorded leads to a lookup instead of a second session. Later creates (after a replace or a
//! renewal) record it in status (`createRequestedAt`). The first one would need two writes
//! there: the finalizer (metadata) and then the intent (status), since no single write can reach
//! both. So the first create's intent travels in the same metadata write as the finalizer, as the
//! annotation [`CREATE_INTENT`], and counts for as long as the controller has recorded no outcome
//! in status (`observedGeneration` unset). The annotation then stays as a harmless record.
//!
//! Every reader of status that cares whether a create may be in flight (the planner, the
//! reconcile driver, the webhook) reads it through [`effective_status`] (docs/architecture.md,
//! "Reconcile rules").

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

use super::{QodSession, QodSessionStatus};

/// Annotation holding the first create's intent (JSON, see [`CreateIntent`]).
pub const CREATE_INTENT: &str = "qod.dev/create-intent";

/// What a create was about to ask, as the status records it for later creates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateIntent {
    /// When the create was about to be sent.
    pub requested_at: Time,
    /// The spec's session fingerprint at that time (a session found later was made from it).
    pub session_fingerprint: String,
    /// The duration asked for.
    pub duration: u32,
    /// The generation of the spec the create was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// The provider the create was sent to (`status.provider`'s form; absent: the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

impl CreateIntent {
    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        // Plain strings and integers always serialise.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The intent recorded on `session` that no status outcome has answered yet. An annotation
    /// that does not parse (edited by hand) counts as none: a create then follows instead of a
    /// lookup, which is what the resource would get without the annotation.
    pub fn pending_on(session: &QodSession) -> Option<Self> {
        let status = session.status.as_ref();
        if status.is_some_and(|s| s.observed_generation.is_some() || s.session_id.is_some()) {
            return None;
        }
        let value = session.metadata.annotations.as_ref()?.get(CREATE_INTENT)?;
        serde_json::from_str(value).ok()
    }
}

/// The status as the operator reasons about it: what the resource stores, with a pending
/// first-create intent from its metadata filled in as a status intent would be.
pub fn effective_status(session: &QodSession) -> QodSessionStatus {
    let mut status = session.status.clone().unwrap_or_default();
    if let Some(intent) = CreateIntent::pending_on(session) {
        status.create_requested_at = Some(intent.requested_at);
        status.session_fingerprint = Some(intent.session_fingerprint.into());
        status.requested_duration = Some(intent.duration);
        status.observed_generation = intent.generation;
        status.provider = intent.provider.map(Into::into);
    }
    status
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn session(annotation: Option<&str>, status: Option<QodSessionStatus>) -> QodSession {
        let mut session = QodSession::new("s", crate::api::QodSessionSpec::example());
        session.metadata.annotations =
            annotation.map(|a| BTreeMap::from([(CREATE_INTENT.to_owned(), a.to_owned())]));
        session.status = status;
        session
    }

    fn intent() -> CreateIntent {
        CreateIntent {
            requested_at: Time("2026-11-26T12:00:00Z".parse().unwrap()),
            session_fingerprint: "abc".into(),
            duration: 600,
            generation: Some(1),
            provider: Some("ClusterQodProvider/telco-a".into()),
        }
    }

    #[test]
    fn a_first_create_intent_counts_until_the_controller_records_an_outcome() {
        let annotation = intent().to_annotation();
        let pending = effective_status(&session(Some(&annotation), None));
        assert_eq!(pending.create_requested_at, Some(intent().requested_at));
        assert_eq!(pending.session_fingerprint.as_deref(), Some("abc"));
        assert_eq!(pending.requested_duration, Some(600));
        assert_eq!(pending.observed_generation, Some(1));
        assert_eq!(
            pending.provider.as_deref(),
            Some("ClusterQodProvider/telco-a")
        );

        // The webhook's write (no observedGeneration) leaves it pending.
        let notified = QodSessionStatus {
            qos_status: Some("AVAILABLE".into()),
            ..QodSessionStatus::default()
        };
        let still = effective_status(&session(Some(&annotation), Some(notified)));
        assert!(still.create_requested_at.is_some());

        // Any outcome the controller recorded answers it.
        let answered = QodSessionStatus {
            observed_generation: Some(1),
            ..QodSessionStatus::default()
        };
        let done = effective_status(&session(Some(&annotation), Some(answered.clone())));
        assert_eq!(done, answered);
    }

    #[test]
    fn no_or_unreadable_annotation_is_no_intent() {
        assert_eq!(
            effective_status(&session(None, None)),
            QodSessionStatus::default()
        );
        assert_eq!(
            effective_status(&session(Some("{not json"), None)),
            QodSessionStatus::default()
        );
    }
}
