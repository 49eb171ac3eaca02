//! The `Ready` condition: its reasons, how the network's status maps onto it, and the rule that
//! `lastTransitionTime` moves only when the condition's status flips. Shared by the controller
//! and the webhook, which both report what the network says.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::qod::{QosStatus, StatusInfo};

/// The condition type users wait on: True while the network provides the QoS.
pub const READY: &str = "Ready";
/// True while the annotation qod.dev/paused stops the resource's provider calls; removed when
/// it no longer does. Separate from `Ready`, which keeps describing the session (it runs on at
/// the provider while the operator is paused), so whoever waits on `Ready` is not disturbed.
pub const PAUSED: &str = "Paused";

/// CamelCase reasons of the `Ready` condition.
pub mod reason {
    /// The network provides the QoS.
    pub const SESSION_AVAILABLE: &str = "SessionAvailable";
    /// The session exists; the network has not confirmed it yet.
    pub const SESSION_REQUESTED: &str = "SessionRequested";
    /// The session's duration ran out.
    pub const DURATION_EXPIRED: &str = "DurationExpired";
    /// The network ended the session early (or never started it).
    pub const NETWORK_TERMINATED: &str = "NetworkTerminated";
    /// The session was deleted on request.
    pub const DELETE_REQUESTED: &str = "DeleteRequested";
    /// UNAVAILABLE without a reason, or a status word the operator does not know.
    pub const SESSION_UNAVAILABLE: &str = "SessionUnavailable";
    /// The provider no longer knows the session.
    pub const SESSION_GONE: &str = "SessionGone";
    /// No session yet: one is being created.
    pub const CREATING: &str = "Creating";
    /// The session is being replaced after a change of device, server, ports or profile.
    pub const REPLACING: &str = "Replacing";
    /// The resource is being deleted.
    pub const DELETING: &str = "Deleting";
    /// The provider refused the credentials (401/403): a human must fix them.
    pub const UNAUTHORIZED: &str = "Unauthorized";
    /// The provider refused the request as invalid (400/404/422): the spec must change.
    pub const REJECTED: &str = "Rejected";
    /// The provider holds a conflicting session for the same flow (409).
    pub const CONFLICT: &str = "Conflict";
    /// The provider failed or could not be reached; the operator retries.
    pub const PROVIDER_UNAVAILABLE: &str = "ProviderUnavailable";
    /// A credential of the provider (a Secret, a key, a file) is missing or unreadable.
    pub const CREDENTIALS_NOT_FOUND: &str = "CredentialsNotFound";
    /// The provider has `maxSessions` live sessions; retried when one ends.
    pub const PROVIDER_QUOTA_EXCEEDED: &str = "ProviderQuotaExceeded";
    /// The provider's QoS Profiles API does not list the profile, or lists it INACTIVE; no
    /// session is created until it is listed ACTIVE.
    pub const PROFILE_NOT_AVAILABLE: &str = "ProfileNotAvailable";
    /// The profile is DEPRECATED: no new session is created with it.
    pub const PROFILE_DEPRECATED: &str = "ProfileDeprecated";
    /// The session named by qod.dev/session-id differs from the spec; nothing was changed.
    pub const IMPORT_MISMATCH: &str = "ImportMismatch";
    /// The provider does not know the session named by qod.dev/session-id.
    pub const IMPORT_NOT_FOUND: &str = "ImportNotFound";
    /// managementPolicy Observe without the annotation qod.dev/session-id: nothing to observe.
    pub const SESSION_ID_REQUIRED: &str = "SessionIdRequired";
    /// Reason of the `Paused` condition.
    pub const PAUSED: &str = "Paused";
    /// spec.applicationServer.serviceRef names a Service without an external address yet.
    pub const WAITING_FOR_SERVICE_ADDRESS: &str = "WaitingForServiceAddress";
    /// spec.applicationServer.serviceRef names a Service that does not exist (a session made
    /// for it was deleted).
    pub const SERVICE_NOT_FOUND: &str = "ServiceNotFound";
    // The refusals of `crate::providers::Refusal` (ProviderNotFound, ProviderNotAllowed,
    // NoProvider, InvalidProvider, ProvidersNotSynced) carry their own reason words.
}

/// `Ready` as the network's words imply it: status, reason and a message for humans.
pub fn ready_from_network(
    qos_status: &QosStatus,
    status_info: Option<&StatusInfo>,
) -> (&'static str, &'static str, String) {
    match (qos_status, status_info) {
        (QosStatus::Available, _) => (
            "True",
            reason::SESSION_AVAILABLE,
            "the network provides the requested QoS".to_owned(),
        ),
        (QosStatus::Requested, _) => (
            "False",
            reason::SESSION_REQUESTED,
            "the session is requested; waiting for the network to provide it".to_owned(),
        ),
        (QosStatus::Unavailable, Some(StatusInfo::DurationExpired)) => (
            "False",
            reason::DURATION_EXPIRED,
            "the session ended: its duration ran out".to_owned(),
        ),
        (QosStatus::Unavailable, Some(StatusInfo::NetworkTerminated)) => (
            "False",
            reason::NETWORK_TERMINATED,
            "the network ended the session".to_owned(),
        ),
        (QosStatus::Unavailable, Some(StatusInfo::DeleteRequested)) => (
            "False",
            reason::DELETE_REQUESTED,
            "the session was deleted".to_owned(),
        ),
        (QosStatus::Unavailable, info) => (
            "False",
            reason::SESSION_UNAVAILABLE,
            match info {
                Some(info) => format!("the network reports the session UNAVAILABLE ({info})"),
                None => "the network reports the session UNAVAILABLE".to_owned(),
            },
        ),
        (QosStatus::Other(word), _) => (
            "False",
            reason::SESSION_UNAVAILABLE,
            format!("the network reports an unknown status `{word}`"),
        ),
    }
}

/// A `Ready` condition.
pub fn ready(
    status: &str,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation,
        last_transition_time: Time(now),
    }
}

/// Puts `new` into `conditions`, replacing the one of the same type. `lastTransitionTime` is
/// kept when the status does not change, so it says when the condition last flipped.
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            *old = new;
        }
        None => conditions.push(new),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let t0: Timestamp = "2026-11-24T12:00:00Z".parse().unwrap();
        let t1 = t0 + SignedDuration::from_secs(60);
        let t2 = t1 + SignedDuration::from_secs(60);
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            ready("False", reason::CREATING, "creating", Some(1), t0),
        );
        set(
            &mut conditions,
            ready("False", reason::SESSION_REQUESTED, "requested", Some(1), t1),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, reason::SESSION_REQUESTED);
        assert_eq!(conditions[0].last_transition_time, Time(t0));
        set(
            &mut conditions,
            ready("True", reason::SESSION_AVAILABLE, "available", Some(2), t2),
        );
        assert_eq!(conditions[0].last_transition_time, Time(t2));
        assert_eq!(conditions[0].observed_generation, Some(2));
    }

    #[test]
    fn only_available_is_ready() {
        let cases = [
            (
                QosStatus::Available,
                None,
                "True",
                reason::SESSION_AVAILABLE,
            ),
            (
                QosStatus::Requested,
                None,
                "False",
                reason::SESSION_REQUESTED,
            ),
            (
                QosStatus::Unavailable,
                Some(StatusInfo::DurationExpired),
                "False",
                reason::DURATION_EXPIRED,
            ),
            (
                QosStatus::Unavailable,
                Some(StatusInfo::NetworkTerminated),
                "False",
                reason::NETWORK_TERMINATED,
            ),
            (
                QosStatus::Unavailable,
                Some(StatusInfo::DeleteRequested),
                "False",
                reason::DELETE_REQUESTED,
            ),
            (
                QosStatus::Unavailable,
                None,
                "False",
                reason::SESSION_UNAVAILABLE,
            ),
            (
                QosStatus::Other("BLA".into()),
                None,
                "False",
                reason::SESSION_UNAVAILABLE,
            ),
        ];
        for (qos, info, status, why) in cases {
            let (s, r, message) = ready_from_network(&qos, info.as_ref());
            assert_eq!((s, r), (status, why), "{qos} {info:?}");
            assert!(!message.is_empty());
        }
    }
}
