//! Pure status changes: how each outcome of a step (a session read, created, extended, deleted,
//! or a provider error) changes a `QodSessionStatus`, and the JSON merge patch that moves the
//! stored status to the new one.
//!
//! Status is written by merge patch with explicit nulls, not server-side apply: the network's
//! words (`qosStatus`, `statusInfo`) are written by both the controller and the webhook, and
//! with server-side apply a field both managers once set would survive the other's removal, so a
//! stale `statusInfo` could outlive its session. A `resourceVersion` precondition in the patch
//! keeps the two writers from losing each other's updates (docs/architecture.md, "Status: who
//! writes what").

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value};

use crate::{
    api::{
        QodSession, QodSessionStatus,
        conditions::{self, reason},
    },
    qod::{self, QosStatus, SessionInfo, StatusInfo},
    telemetry::error_chain,
};

/// The status before any write: what the resource holds (or an empty one), with a first
/// create's intent from its metadata (see [`crate::api::intent`]).
pub fn current(session: &QodSession) -> QodSessionStatus {
    crate::api::intent::effective_status(session)
}

/// The provider's view of a session, recorded as the network's words, unless the status holds
/// newer words for the same session: an answer given before a notification the webhook has
/// already written (a create answered REQUESTED, a read that crossed the AVAILABLE event) must
/// not move status backwards. Then only what the answer adds (times, device) is taken, and the
/// status does not count as synced, so the planner reads the session again for the rest.
pub fn record_session(
    status: &mut QodSessionStatus,
    info: &SessionInfo,
    generation: Option<i64>,
    now: Timestamp,
) {
    let same_session = status.session_id.as_deref() == Some(info.session_id.as_str());
    let held_stage = status
        .qos_status
        .as_deref()
        .map(QosStatus::from)
        .and_then(|held| held.stage());
    let behind = same_session
        && matches!((held_stage, info.qos_status.stage()), (Some(held), Some(answer)) if answer < held);
    status.session_id = Some(info.session_id.as_str().into());
    if behind {
        status.started_at = info.started_at.map(Time).or(status.started_at.take());
        status.expires_at = info.expires_at.map(Time).or(status.expires_at.take());
    } else {
        status.qos_status = Some(info.qos_status.as_str().into());
        status.status_info = info.status_info.as_ref().map(|s| s.as_str().into());
        status.started_at = info.started_at.map(Time);
        status.expires_at = info.expires_at.map(Time);
        status.last_synced_at = Some(Time(now));
    }
    if let Some(device) = info.device.as_ref().and_then(device_label) {
        status.device = Some(device.into());
    }
    clear_failures(status);
    set_ready_from_network(status, generation, now);
}

/// Counts `quiet_read`, a read from the provider that found nothing new and so was kept in
/// memory instead of written (see `reconcile`'s refresh), as the last sync when it is the later
/// one. Never when status holds none: that asks for a read.
pub fn count_quiet_read(status: &mut QodSessionStatus, quiet_read: Option<Timestamp>) {
    if let (Some(read), Some(Time(stored))) = (quiet_read, status.last_synced_at.as_ref())
        && read > *stored
    {
        status.last_synced_at = Some(Time(read));
    }
}

/// A provider call succeeded: the next one needs no waiting.
pub fn clear_failures(status: &mut QodSessionStatus) {
    status.consecutive_failures = 0;
    status.next_attempt_at = None;
}

/// `Ready` from the network's current words in `status`.
pub fn set_ready_from_network(
    status: &mut QodSessionStatus,
    generation: Option<i64>,
    now: Timestamp,
) {
    let qos = status
        .qos_status
        .as_deref()
        .map_or(QosStatus::Requested, QosStatus::from);
    let info = status.status_info.as_deref().map(StatusInfo::from);
    let (ready, why, message) = conditions::ready_from_network(&qos, info.as_ref());
    set_ready(status, ready, why, message, generation, now);
}

/// Sets `Ready`, keeping its transition time when the status does not flip.
pub fn set_ready(
    status: &mut QodSessionStatus,
    ready: &str,
    why: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    conditions::set(
        &mut status.conditions,
        conditions::ready(ready, why, message, generation, now),
    );
}

/// The provider no longer has the session (404 on read). Past its end that is the expiry the
/// spec describes; before it, the network removed it without a word we saw.
pub fn record_session_gone(status: &mut QodSessionStatus, generation: Option<i64>, now: Timestamp) {
    let expired = status.expires_at.as_ref().is_some_and(|t| t.0 <= now);
    status.qos_status = Some(QosStatus::Unavailable.as_str().into());
    if expired {
        status.status_info = Some(StatusInfo::DurationExpired.as_str().into());
        set_ready_from_network(status, generation, now);
    } else {
        set_ready(
            status,
            "False",
            reason::SESSION_GONE,
            "the provider no longer has the session",
            generation,
            now,
        );
    }
    status.last_synced_at = Some(Time(now));
    clear_failures(status);
}

/// Forgets the session after it was deleted at the provider.
pub fn forget_session(status: &mut QodSessionStatus) {
    status.session_id = None;
    status.qos_status = None;
    status.status_info = None;
    status.started_at = None;
    status.expires_at = None;
    status.requested_duration = None;
    status.extension_capped = false;
    status.extension_capped_reason = None;
    status.profile = None;
    status.application_server = None;
    status.session_fingerprint = None;
    status.provider = None;
    status.create_requested_at = None;
    status.last_synced_at = None;
    status.last_notification = None;
    clear_failures(status);
}

/// A provider error: `Ready` with a reason that says who must act, and when to try again.
/// Returns that wait. `provider_failures` is the provider's current run of provider-wide
/// failures across all resources (see [`super::provider_health`]): the wait after such a
/// failure grows with the shorter of that run and this resource's own.
pub fn record_error(
    status: &mut QodSessionStatus,
    action: &str,
    error: &qod::Error,
    provider_failures: u32,
    generation: Option<i64>,
    now: Timestamp,
) -> std::time::Duration {
    status.consecutive_failures = status.consecutive_failures.saturating_add(1);
    let transient = error.is_retryable() || error.may_have_created() || error.status() == Some(409);
    let run = if super::provider_health::is_provider_wide(error) {
        status.consecutive_failures.min(provider_failures.max(1))
    } else {
        status.consecutive_failures
    };
    let wait = match error.status() {
        Some(401 | 403) => super::backoff::CREDENTIALS,
        _ if error.credentials_not_found() => super::backoff::CREDENTIALS,
        _ => super::backoff::delay(run, transient, error.retry_after()),
    };
    let wait_span = jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::MAX);
    let next = now.saturating_add(wait_span).unwrap_or(now);
    // Stored in whole seconds: rounded up, so the retry never comes early.
    let next = if next.subsec_nanosecond() > 0 {
        Timestamp::from_second(next.as_second().saturating_add(1)).unwrap_or(next)
    } else {
        next
    };
    status.next_attempt_at = Some(Time(next));
    let why = match error.status() {
        _ if error.credentials_not_found() => reason::CREDENTIALS_NOT_FOUND,
        Some(401 | 403) => reason::UNAUTHORIZED,
        Some(409) => reason::CONFLICT,
        Some(400 | 404 | 422) => reason::REJECTED,
        _ if matches!(error, qod::Error::InvalidRequest { .. }) => reason::REJECTED,
        _ => reason::PROVIDER_UNAVAILABLE,
    };
    let message = format!("{action} failed: {}", error_chain(error));
    set_ready(status, "False", why, message, generation, now);
    wait
}

/// A short display of the device for `kubectl get`: the first identifier the provider echoed.
pub fn device_label(device: &qod::Device) -> Option<String> {
    device
        .phone_number
        .clone()
        .or_else(|| device.network_access_identifier.clone())
        .or_else(|| {
            device
                .ipv4_address
                .as_ref()
                .map(|a| a.public_address.clone())
        })
        .or_else(|| device.ipv6_address.clone())
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed members carry their new
/// value, removed members `null`; arrays are replaced whole.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, old_value) in old {
                match new.get(key) {
                    None => {
                        patch.insert(key.clone(), Value::Null);
                    }
                    Some(new_value) => {
                        if let Some(change) = merge_diff(old_value, new_value) {
                            patch.insert(key.clone(), change);
                        }
                    }
                }
            }
            for (key, new_value) in new {
                if !old.contains_key(key) {
                    patch.insert(key.clone(), new_value.clone());
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (old, new) if old == new => None,
        (_, new) => Some(new.clone()),
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    fn info(value: Value) -> SessionInfo {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_quiet_read_counts_only_when_later_and_only_over_a_stored_sync() {
        let stored = now() - SignedDuration::from_secs(60);
        let mut status = QodSessionStatus {
            last_synced_at: Some(Time(stored)),
            ..QodSessionStatus::default()
        };
        count_quiet_read(&mut status, Some(stored - SignedDuration::from_secs(1)));
        assert_eq!(status.last_synced_at, Some(Time(stored)), "an older read");
        count_quiet_read(&mut status, Some(now()));
        assert_eq!(status.last_synced_at, Some(Time(now())));
        let mut asks_for_a_read = QodSessionStatus::default();
        count_quiet_read(&mut asks_for_a_read, Some(now()));
        assert_eq!(asks_for_a_read.last_synced_at, None);
    }

    #[test]
    fn merge_diff_sets_changes_and_nulls_removals() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": "x"});
        let new = json!({"a": 1, "b": {"c": 5, "d": 3}, "e": [1], "added": true});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"b": {"c": 5}, "e": [1], "gone": null, "added": true}))
        );
        assert_eq!(merge_diff(&old, &old), None);
    }

    #[test]
    fn a_read_records_the_network_words_and_ready() {
        let mut status = QodSessionStatus::default();
        record_session(
            &mut status,
            &info(
                json!({"sessionId": "s-1", "qosStatus": "AVAILABLE", "duration": 600,
                         "startedAt": "2026-11-24T11:59:00Z", "expiresAt": "2026-11-24T12:09:00Z",
                         "device": {"phoneNumber": "+36721601234567"}}),
            ),
            Some(3),
            now(),
        );
        assert_eq!(status.session_id.as_deref(), Some("s-1"));
        assert_eq!(status.qos_status.as_deref(), Some("AVAILABLE"));
        assert_eq!(status.device.as_deref(), Some("+36721601234567"));
        let ready = conditions::find(&status.conditions, conditions::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", reason::SESSION_AVAILABLE)
        );
        assert_eq!(ready.observed_generation, Some(3));
        // A later read without statusInfo clears the old one.
        status.status_info = Some("NETWORK_TERMINATED".into());
        record_session(
            &mut status,
            &info(json!({"sessionId": "s-1", "qosStatus": "UNAVAILABLE"})),
            Some(3),
            now(),
        );
        assert_eq!(status.status_info, None);
        assert_eq!(status.started_at, None);
    }

    #[test]
    fn an_answer_behind_the_status_never_moves_it_backwards() {
        // The webhook wrote AVAILABLE before the create's REQUESTED answer was recorded.
        let notified = Time(now() - SignedDuration::from_secs(1));
        let mut status = QodSessionStatus {
            session_id: Some("s-1".into()),
            qos_status: Some("AVAILABLE".into()),
            last_synced_at: Some(Time(now() - SignedDuration::from_secs(60))),
            ..QodSessionStatus::default()
        };
        record_session(
            &mut status,
            &info(json!({"sessionId": "s-1", "qosStatus": "REQUESTED",
                         "device": {"phoneNumber": "+36721601234567"}})),
            Some(2),
            now(),
        );
        assert_eq!(status.qos_status.as_deref(), Some("AVAILABLE"));
        let ready = conditions::find(&status.conditions, conditions::READY).unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(status.device.as_deref(), Some("+36721601234567"));
        assert!(
            status.last_synced_at.as_ref().unwrap().0 < notified.0,
            "not counted as a sync, so the session is read again"
        );

        // UNAVAILABLE is final: an AVAILABLE read that crossed the notification changes nothing.
        status.qos_status = Some("UNAVAILABLE".into());
        status.status_info = Some("NETWORK_TERMINATED".into());
        record_session(
            &mut status,
            &info(json!({"sessionId": "s-1", "qosStatus": "AVAILABLE",
                         "expiresAt": "2026-11-24T12:09:00Z"})),
            Some(2),
            now(),
        );
        assert_eq!(status.qos_status.as_deref(), Some("UNAVAILABLE"));
        assert_eq!(status.status_info.as_deref(), Some("NETWORK_TERMINATED"));

        // Another session's words are always taken.
        record_session(
            &mut status,
            &info(json!({"sessionId": "s-2", "qosStatus": "REQUESTED"})),
            Some(2),
            now(),
        );
        assert_eq!(status.qos_status.as_deref(), Some("REQUESTED"));
        assert_eq!(status.status_info, None);
    }

    #[test]
    fn gone_after_its_end_reads_as_expired() {
        let mut status = QodSessionStatus {
            qos_status: Some("AVAILABLE".into()),
            expires_at: Some(Time(now() - SignedDuration::from_secs(5))),
            ..QodSessionStatus::default()
        };
        record_session_gone(&mut status, Some(1), now());
        assert_eq!(status.qos_status.as_deref(), Some("UNAVAILABLE"));
        assert_eq!(status.status_info.as_deref(), Some("DURATION_EXPIRED"));
        let ready = conditions::find(&status.conditions, conditions::READY).unwrap();
        assert_eq!(ready.reason, reason::DURATION_EXPIRED);

        let mut early = QodSessionStatus {
            qos_status: Some("AVAILABLE".into()),
            expires_at: Some(Time(now() + SignedDuration::from_secs(500))),
            ..QodSessionStatus::default()
        };
        record_session_gone(&mut early, Some(1), now());
        assert_eq!(early.status_info, None);
        let ready = conditions::find(&early.conditions, conditions::READY).unwrap();
        assert_eq!(ready.reason, reason::SESSION_GONE);
    }

    #[test]
    fn a_provider_wide_failure_backs_off_by_the_providers_run_when_it_is_shorter() {
        let unavailable = qod::Error::Api {
            operation: qod::Operation::Create,
            info: qod::model::ErrorInfo::new(503, "UNAVAILABLE", "busy"),
            retry_after: None,
        };
        let after_eight = |provider_failures: u32| {
            let mut s = QodSessionStatus {
                consecutive_failures: 7,
                ..QodSessionStatus::default()
            };
            record_error(
                &mut s,
                "create",
                &unavailable,
                provider_failures,
                Some(1),
                now(),
            )
        };
        let jittered = |n: u32| super::super::backoff::delay(n, true, None).mul_f64(1.25);
        // An unlucky resource of a provider that answers most calls retries soon...
        assert!(after_eight(2) <= jittered(2));
        // ...and every resource of a provider that is down backs off by its own run.
        assert!(after_eight(500) >= super::super::backoff::FIRST * 128);
        // A refusal of this request is about this resource alone.
        let mut s = QodSessionStatus {
            consecutive_failures: 7,
            ..QodSessionStatus::default()
        };
        let conflict = qod::Error::Api {
            operation: qod::Operation::Create,
            info: qod::model::ErrorInfo::new(409, "CONFLICT", "taken"),
            retry_after: None,
        };
        assert!(
            record_error(&mut s, "create", &conflict, 0, Some(1), now())
                >= super::super::backoff::FIRST * 128
        );
    }

    #[test]
    fn the_next_attempt_is_never_earlier_than_the_wait() {
        let now: Timestamp = "2026-11-26T12:00:00.9Z".parse().unwrap();
        let mut s = QodSessionStatus::default();
        let unavailable = qod::Error::Api {
            operation: qod::Operation::Get,
            info: qod::model::ErrorInfo::new(503, "UNAVAILABLE", "busy"),
            retry_after: None,
        };
        let wait = record_error(&mut s, "read", &unavailable, 1, Some(1), now);
        let next = s.next_attempt_at.unwrap().0;
        // Stored in whole seconds (metav1.Time), so rounded up rather than cut.
        assert_eq!(next.subsec_nanosecond(), 0);
        assert!(
            next >= now + jiff::SignedDuration::try_from(wait).unwrap(),
            "{next}"
        );
    }

    #[test]
    fn errors_name_who_must_act() {
        let api = |status: u16| qod::Error::Api {
            operation: qod::Operation::Create,
            info: qod::model::ErrorInfo::new(status, "X", "the provider's words"),
            retry_after: None,
        };
        for (status, why) in [
            (401, reason::UNAUTHORIZED),
            (403, reason::UNAUTHORIZED),
            (409, reason::CONFLICT),
            (422, reason::REJECTED),
            (400, reason::REJECTED),
            (503, reason::PROVIDER_UNAVAILABLE),
        ] {
            let mut s = QodSessionStatus::default();
            let wait = record_error(&mut s, "create", &api(status), 1, Some(1), now());
            if matches!(status, 401 | 403) {
                // A rotated Secret reaches the file after the provider refuses the old value.
                assert_eq!(wait, super::super::backoff::CREDENTIALS);
            }
            let ready = conditions::find(&s.conditions, conditions::READY).unwrap();
            assert_eq!(ready.reason, why, "{status}");
            assert!(
                ready.message.contains("the provider's words"),
                "{}",
                ready.message
            );
        }
    }

    #[test]
    fn forgetting_a_session_clears_every_session_field() {
        let mut status = QodSessionStatus {
            session_id: Some("s".into()),
            qos_status: Some("AVAILABLE".into()),
            status_info: Some("X".into()),
            requested_duration: Some(60),
            extension_capped: true,
            extension_capped_reason: Some("r".into()),
            profile: Some(std::sync::Arc::default()),
            session_fingerprint: Some("f".into()),
            last_synced_at: Some(Time(now())),
            device: Some("+36721601234567".into()),
            ..QodSessionStatus::default()
        };
        forget_session(&mut status);
        let left = serde_json::to_value(&status).unwrap();
        assert_eq!(left, json!({"device": "+36721601234567"}));
    }
}
