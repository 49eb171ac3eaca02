//! What one notification does to one resource, decided from the resource as just read and the
//! event alone (pure; the handler does the IO). The rules:
//!
//! - The event's session must be the one in `status.sessionId`. While a create is in flight
//!   (`status.createRequestedAt` set) an event for another or an unrecorded session may be the
//!   new session's, so the provider is asked to retry (503); otherwise no session is 404 and
//!   another session is 409. Either way nothing changes.
//! - An event with the `(source, id)` of `status.lastNotification` is a duplicate, and one
//!   older than it (by event time) is stale: both are acknowledged and change nothing.
//! - A session's status only moves forward (REQUESTED, AVAILABLE, UNAVAILABLE, which is
//!   final), so an event behind the status the resource holds for that session, whoever wrote
//!   it, is a reordered, stale one. This also orders events within one second, which the
//!   stored event time (`metav1.Time`, whole seconds) cannot.
//! - Otherwise the network's words are written verbatim with the `Ready` condition they imply
//!   ([`conditions::ready_from_network`]), whose transition time moves only when its status
//!   flips ([`conditions::set`]).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::{
    api::{
        NotificationRef, QodSession,
        conditions::{self, READY},
        intent,
    },
    qod::{QosStatus, event::StatusChanged},
};

/// What to do with an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Write this to the status.
    Apply(Box<StatusUpdate>),
    /// The same event was applied before.
    Duplicate,
    /// Older than what the status holds.
    Stale(&'static str),
    /// The resource holds no session.
    NoSession,
    /// The resource holds another session.
    OtherSession { held: String },
    /// A create is in flight: the event may be for the session being created.
    SessionPending,
}

/// The fields the webhook owns, as they are to be written.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusUpdate {
    pub qos_status: String,
    pub status_info: Option<String>,
    pub last_notification: NotificationRef,
    pub ready: Condition,
}

fn whole_seconds(time: Timestamp) -> i64 {
    time.as_second()
}

/// Decides what `event` does to `resource` at `now`.
pub fn decide(resource: &QodSession, event: &StatusChanged, now: Timestamp) -> Decision {
    let status = &intent::effective_status(resource);
    let held = status.session_id.as_deref().filter(|id| !id.is_empty());
    if held != Some(event.session_id.as_str()) {
        return match held {
            _ if status.create_requested_at.is_some() => Decision::SessionPending,
            None => Decision::NoSession,
            Some(held) => Decision::OtherSession {
                held: held.to_owned(),
            },
        };
    }

    if let Some(last) = &status.last_notification {
        if event.id.is_some()
            && last.id.as_deref() == event.id.as_deref()
            && last.source.as_deref() == event.source.as_deref()
        {
            return Decision::Duplicate;
        }
        // Status times are stored in whole seconds (metav1.Time), so the event's time is
        // compared at that precision: an event stale by this test is surely older.
        if let (Some(time), Some(Time(last_time))) = (event.time, &last.time)
            && whole_seconds(time) < whole_seconds(*last_time)
        {
            return Decision::Stale("the event is older than the notification last applied");
        }
    }
    // Within one second, order comes from the lifecycle, which only moves forward.
    if let (Some(current), Some(incoming)) = (
        status
            .qos_status
            .as_deref()
            .map(QosStatus::from)
            .as_ref()
            .and_then(QosStatus::stage),
        event.qos_status.stage(),
    ) && incoming < current
    {
        return Decision::Stale("the session has already moved past this status");
    }

    let (ready, reason, message) =
        conditions::ready_from_network(&event.qos_status, event.status_info.as_ref());
    let mut conditions_now = status.conditions.clone();
    // The webhook reports the network, not the spec: the condition keeps the generation the
    // controller last observed.
    let observed_generation = status.observed_generation.or_else(|| {
        conditions::find(&status.conditions, READY).and_then(|c| c.observed_generation)
    });
    conditions::set(
        &mut conditions_now,
        conditions::ready(ready, reason, message, observed_generation, now),
    );
    let Some(ready) = conditions_now.into_iter().find(|c| c.type_ == READY) else {
        // `set` always leaves a Ready condition; this arm only satisfies the type checker.
        return Decision::Stale("no Ready condition could be computed");
    };
    Decision::Apply(Box::new(StatusUpdate {
        qos_status: event.qos_status.as_str().to_owned(),
        status_info: event.status_info.as_ref().map(|s| s.as_str().to_owned()),
        last_notification: NotificationRef {
            time: event.time.map(Time),
            id: event.id.as_deref().map(Box::from),
            source: event.source.as_deref().map(Box::from),
        },
        ready,
    }))
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::{
        api::{QodSessionSpec, QodSessionStatus, conditions::reason},
        qod::StatusInfo,
    };

    fn now() -> Timestamp {
        "2026-11-24T12:00:00Z".parse().unwrap()
    }

    fn resource(status: QodSessionStatus) -> QodSession {
        let mut r = QodSession::new("r", QodSessionSpec::example());
        r.status = Some(status);
        r
    }

    fn holding(session: &str) -> QodSessionStatus {
        QodSessionStatus {
            session_id: Some(session.into()),
            qos_status: Some("REQUESTED".into()),
            observed_generation: Some(3),
            ..QodSessionStatus::default()
        }
    }

    fn event(session: &str, qos: QosStatus, id: &str, seconds_ago: i64) -> StatusChanged {
        StatusChanged {
            id: Some(id.into()),
            source: Some("https://provider/sessions/x".into()),
            time: Some(now() - SignedDuration::from_secs(seconds_ago)),
            session_id: session.into(),
            qos_status: qos,
            status_info: None,
        }
    }

    fn applied(decision: Decision) -> StatusUpdate {
        match decision {
            Decision::Apply(update) => *update,
            other => panic!("expected Apply, got {other:?}"),
        }
    }

    #[test]
    fn an_event_for_the_held_session_is_applied_verbatim_with_ready() {
        let mut e = event("s-1", QosStatus::Unavailable, "e-1", 5);
        e.status_info = Some(StatusInfo::NetworkTerminated);
        let update = applied(decide(&resource(holding("s-1")), &e, now()));
        assert_eq!(update.qos_status, "UNAVAILABLE");
        assert_eq!(update.status_info.as_deref(), Some("NETWORK_TERMINATED"));
        assert_eq!(update.last_notification.id.as_deref(), Some("e-1"));
        assert_eq!(update.last_notification.time, e.time.map(Time));
        assert_eq!(update.ready.status, "False");
        assert_eq!(update.ready.reason, reason::NETWORK_TERMINATED);
        assert_eq!(update.ready.observed_generation, Some(3));
        assert_eq!(update.ready.last_transition_time, Time(now()));
    }

    #[test]
    fn ready_keeps_its_transition_time_when_its_status_does_not_flip() {
        let earlier = now() - SignedDuration::from_secs(600);
        let mut status = holding("s-1");
        status.conditions = vec![conditions::ready(
            "False",
            reason::SESSION_REQUESTED,
            "requested",
            Some(3),
            earlier,
        )];
        let mut e = event("s-1", QosStatus::Unavailable, "e-1", 1);
        e.status_info = Some(StatusInfo::DurationExpired);
        let update = applied(decide(&resource(status.clone()), &e, now()));
        assert_eq!(update.ready.last_transition_time, Time(earlier));
        assert_eq!(update.ready.reason, reason::DURATION_EXPIRED);

        let update = applied(decide(
            &resource(status),
            &event("s-1", QosStatus::Available, "e-2", 1),
            now(),
        ));
        assert_eq!(update.ready.status, "True");
        assert_eq!(update.ready.last_transition_time, Time(now()));
    }

    #[test]
    fn sessions_must_match() {
        let e = event("s-2", QosStatus::Available, "e-1", 1);
        assert_eq!(
            decide(&resource(holding("s-1")), &e, now()),
            Decision::OtherSession { held: "s-1".into() }
        );
        assert_eq!(
            decide(&resource(QodSessionStatus::default()), &e, now()),
            Decision::NoSession
        );
        let mut no_status = resource(QodSessionStatus::default());
        no_status.status = None;
        assert_eq!(decide(&no_status, &e, now()), Decision::NoSession);
        let creating = QodSessionStatus {
            create_requested_at: Some(Time(now())),
            ..holding("s-1")
        };
        assert_eq!(
            decide(&resource(creating), &e, now()),
            Decision::SessionPending
        );
        // A first create's intent lives in the metadata until the controller answers it.
        let mut first_create = no_status;
        first_create.metadata.annotations = Some(
            [(
                intent::CREATE_INTENT.to_owned(),
                intent::CreateIntent {
                    requested_at: Time(now()),
                    session_fingerprint: "f".into(),
                    duration: 600,
                    generation: Some(1),
                    provider: None,
                }
                .to_annotation(),
            )]
            .into_iter()
            .collect(),
        );
        assert_eq!(decide(&first_create, &e, now()), Decision::SessionPending);
    }

    #[test]
    fn duplicates_stale_and_reordered_events_change_nothing() {
        let mut status = holding("s-1");
        status.qos_status = Some("AVAILABLE".into());
        status.last_notification = Some(NotificationRef {
            time: Some(Time(now() - SignedDuration::from_secs(10))),
            id: Some("e-5".into()),
            source: Some("https://provider/sessions/x".into()),
        });
        let r = resource(status.clone());
        assert_eq!(
            decide(&r, &event("s-1", QosStatus::Available, "e-5", 10), now()),
            Decision::Duplicate
        );
        assert!(matches!(
            decide(&r, &event("s-1", QosStatus::Requested, "e-4", 20), now()),
            Decision::Stale(_)
        ));
        // Same id from another source is another event.
        let mut other_source = event("s-1", QosStatus::Available, "e-5", 5);
        other_source.source = Some("https://elsewhere".into());
        assert!(matches!(
            decide(&r, &other_source, now()),
            Decision::Apply(_)
        ));
        // Equal times are applied in arrival order.
        assert!(matches!(
            decide(&r, &event("s-1", QosStatus::Available, "e-6", 10), now()),
            Decision::Apply(_)
        ));

        // UNAVAILABLE is final: an AVAILABLE that overtook nothing is stale even without times.
        status.qos_status = Some("UNAVAILABLE".into());
        status.last_notification = None;
        let mut late = event("s-1", QosStatus::Available, "e-3", 0);
        late.time = None;
        assert!(matches!(
            decide(&resource(status), &late, now()),
            Decision::Stale(_)
        ));
    }

    #[test]
    fn within_one_second_the_lifecycle_orders_events() {
        let mut status = holding("s-1");
        status.qos_status = Some("AVAILABLE".into());
        status.last_notification = Some(NotificationRef {
            time: Some(Time(now())),
            id: Some("e-2".into()),
            source: None,
        });
        // 300 ms earlier, in the same second as the stored (whole-second) time.
        let mut late = event("s-1", QosStatus::Requested, "e-1", 0);
        late.time = Some(now() + SignedDuration::from_millis(100));
        assert!(matches!(
            decide(&resource(status.clone()), &late, now()),
            Decision::Stale(_)
        ));
        // Forward moves and words without a stage are applied.
        let mut terminated = event("s-1", QosStatus::Unavailable, "e-3", 0);
        terminated.time = Some(now() + SignedDuration::from_millis(100));
        assert!(matches!(
            decide(&resource(status.clone()), &terminated, now()),
            Decision::Apply(_)
        ));
        let mut odd = event("s-1", QosStatus::Other("SUSPENDED".into()), "e-4", 0);
        odd.time = Some(now() + SignedDuration::from_millis(100));
        assert!(matches!(
            decide(&resource(status), &odd, now()),
            Decision::Apply(_)
        ));
    }

    #[test]
    fn events_without_time_or_id_are_applied() {
        let mut status = holding("s-1");
        status.last_notification = Some(NotificationRef {
            time: Some(Time(now())),
            id: None,
            source: None,
        });
        let mut e = event("s-1", QosStatus::Available, "x", 0);
        e.id = None;
        e.time = None;
        e.source = None;
        let update = applied(decide(&resource(status), &e, now()));
        assert_eq!(update.last_notification, NotificationRef::default());
    }
}
