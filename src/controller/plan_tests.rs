//! Table tests of the planner: every state a resource can be in, against the clock.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;

use super::plan::{DeleteReason, ExtendReason, Plan, PlannerSettings, plan};
use crate::api::{
    DeletionPolicy, Device, FINALIZER, ImportOutcome, ImportRecord, ManagementPolicy,
    PAUSED_ANNOTATION, ProviderKind, ProviderRef, QodSession, QodSessionSpec, QodSessionStatus,
    SESSION_ID_ANNOTATION,
    intent::{CREATE_INTENT, CreateIntent},
};

const ID: &str = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
/// A session made by someone else, named by the annotation qod.dev/session-id.
const THEIRS: &str = "7c1d2e3f-0000-4a55-9f3d-2d9c1b8e4a10";

fn now() -> Timestamp {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

fn ago(seconds: i64) -> Time {
    Time(now() - SignedDuration::from_secs(seconds))
}

fn from_now(seconds: i64) -> Time {
    Time(now() + SignedDuration::from_secs(seconds))
}

fn spec() -> QodSessionSpec {
    QodSessionSpec {
        device: Device {
            phone_number: Some("+36721601234567".into()),
            ..Device::default()
        },
        duration: 3600,
        ..QodSessionSpec::example()
    }
}

/// A fresh resource: generation 1, no finalizer, no status.
fn fresh() -> QodSession {
    let mut session = QodSession::new("camera-uplink", spec());
    session.metadata = ObjectMeta {
        name: Some("camera-uplink".into()),
        namespace: Some("media".into()),
        uid: Some("0b7e9f0e-6c1a-4a55-9f3d-2d9c1b8e4a10".into()),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    session
}

trait Fixture: Sized {
    fn finalized(self) -> Self;
    fn deleting(self) -> Self;
    fn create_sent(self) -> Self;
    fn first_create_sent(self) -> Self;
    fn with_session(self, qos_status: &str, synced_seconds_ago: i64) -> Self;
    fn expiring_in(self, seconds: i64) -> Self;
    fn status_info(self, info: &str) -> Self;
    fn edit(self, change: impl FnOnce(&mut QodSessionSpec)) -> Self;
    fn status(self, change: impl FnOnce(&mut QodSessionStatus)) -> Self;
    fn annotated(self, key: &str, value: &str) -> Self;
    fn import_of(self, id: &str) -> Self;
    fn paused(self) -> Self;
    fn observed(self) -> Self;
    fn orphaning(self) -> Self;
    fn import_record(self, id: &str, outcome: ImportOutcome) -> Self;
}

impl Fixture for QodSession {
    fn finalized(mut self) -> Self {
        self.metadata.finalizers = Some(vec![FINALIZER.into()]);
        self
    }
    fn deleting(mut self) -> Self {
        self.metadata.deletion_timestamp = Some(ago(1));
        self
    }
    fn create_sent(self) -> Self {
        self.status(|s| s.create_requested_at = Some(ago(5)))
    }
    fn first_create_sent(mut self) -> Self {
        let intent = CreateIntent {
            requested_at: ago(5),
            session_fingerprint: self.spec.session_fingerprint(),
            duration: self.spec.duration,
            generation: self.metadata.generation,
            provider: None,
        };
        self.metadata.annotations = Some(
            [(CREATE_INTENT.to_owned(), intent.to_annotation())]
                .into_iter()
                .collect(),
        );
        self
    }
    fn with_session(self, qos_status: &str, synced_seconds_ago: i64) -> Self {
        let fingerprint = self.spec.session_fingerprint();
        let duration = self.spec.duration;
        let generation = self.metadata.generation;
        self.status(|s| {
            s.session_id = Some(ID.into());
            s.qos_status = Some(qos_status.into());
            s.session_fingerprint = Some(fingerprint.into());
            s.requested_duration = Some(duration);
            s.last_synced_at = Some(ago(synced_seconds_ago));
            s.observed_generation = generation;
        })
    }
    fn expiring_in(self, seconds: i64) -> Self {
        self.status(|s| s.expires_at = Some(from_now(seconds)))
    }
    fn status_info(self, info: &str) -> Self {
        self.status(|s| s.status_info = Some(info.into()))
    }
    fn edit(mut self, change: impl FnOnce(&mut QodSessionSpec)) -> Self {
        change(&mut self.spec);
        self.metadata.generation = self.metadata.generation.map(|g| g + 1);
        self
    }
    fn status(mut self, change: impl FnOnce(&mut QodSessionStatus)) -> Self {
        let mut status = self.status.take().unwrap_or_default();
        change(&mut status);
        self.status = Some(status);
        self
    }
    fn annotated(mut self, key: &str, value: &str) -> Self {
        self.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value.to_owned());
        self
    }
    fn import_of(self, id: &str) -> Self {
        self.annotated(SESSION_ID_ANNOTATION, id)
    }
    fn paused(self) -> Self {
        self.annotated(PAUSED_ANNOTATION, "true")
    }
    /// managementPolicy Observe, set at creation (generation 1).
    fn observed(mut self) -> Self {
        self.spec.management_policy = ManagementPolicy::Observe;
        self
    }
    /// deletionPolicy Orphan, set at creation (generation 1).
    fn orphaning(mut self) -> Self {
        self.spec.deletion_policy = DeletionPolicy::Orphan;
        self
    }
    fn import_record(self, id: &str, outcome: ImportOutcome) -> Self {
        let generation = self.metadata.generation;
        self.status(|s| {
            s.import = Some(Box::new(ImportRecord {
                session_id: id.into(),
                outcome,
            }));
            s.observed_generation = generation;
        })
    }
}

fn import(id: &str) -> Plan {
    Plan::Import {
        session_id: id.into(),
    }
}

fn delete(reason: DeleteReason) -> Plan {
    Plan::Delete {
        session_id: ID.into(),
        reason,
    }
}

fn refresh() -> Plan {
    Plan::Refresh {
        session_id: ID.into(),
    }
}

fn extend(seconds: u32, reason: ExtendReason) -> Plan {
    Plan::Extend {
        session_id: ID.into(),
        seconds,
        reason,
    }
}

fn wait(seconds: u64) -> Plan {
    Plan::Wait(Some(Duration::from_secs(seconds)))
}

#[test]
fn every_state_gets_its_step() {
    let auto = |s: &mut QodSessionSpec| s.auto_extend = true;
    let settings = PlannerSettings::default();
    let cases: Vec<(&str, QodSession, Plan)> = vec![
        // Intent before action.
        (
            "new resource creates (the finalizer comes with the intent)",
            fresh(),
            Plan::Create,
        ),
        (
            "a first create whose intent is in the metadata is looked up, not repeated",
            fresh().finalized().first_create_sent(),
            Plan::Adopt,
        ),
        (
            "a first create answered in status is not looked up again",
            fresh()
                .finalized()
                .first_create_sent()
                .status(|s| s.observed_generation = Some(1)),
            Plan::Create,
        ),
        (
            "a resource that lost our finalizer while holding a session gets it back",
            fresh().with_session("AVAILABLE", 0).expiring_in(3000),
            Plan::AddFinalizer,
        ),
        (
            "a resource that lost our finalizer while a create was in flight gets it back",
            fresh().create_sent(),
            Plan::AddFinalizer,
        ),
        (
            "finalized resource without a session creates one",
            fresh().finalized(),
            Plan::Create,
        ),
        (
            "a create that may have happened is looked up, not repeated",
            fresh().finalized().create_sent(),
            Plan::Adopt,
        ),
        // Deletion.
        (
            "deleting with a session deletes it at the provider",
            fresh().finalized().with_session("AVAILABLE", 0).deleting(),
            delete(DeleteReason::Finalize),
        ),
        (
            "deleting after an unrecorded create looks it up first",
            fresh().finalized().create_sent().deleting(),
            Plan::Adopt,
        ),
        (
            "deleting with nothing at the provider drops the finalizer",
            fresh().finalized().deleting(),
            Plan::RemoveFinalizer,
        ),
        (
            "deleting without our finalizer is none of our business",
            fresh().deleting(),
            Plan::Wait(None),
        ),
        (
            "deleting an expired session still deletes (404 counts as done)",
            fresh()
                .finalized()
                .with_session("UNAVAILABLE", 0)
                .status_info("DURATION_EXPIRED")
                .deleting(),
            delete(DeleteReason::Finalize),
        ),
        // Replacement.
        (
            "a new profile replaces the session",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(3000)
                .edit(|s| s.qos_profile = "QOS_E".into()),
            delete(DeleteReason::Replace),
        ),
        (
            "a new device replaces the session",
            fresh()
                .finalized()
                .with_session("REQUESTED", 0)
                .edit(|s| s.device.phone_number = Some("+36721601234568".into())),
            delete(DeleteReason::Replace),
        ),
        (
            "new ports replace even an ended session (it may still hold the flow)",
            fresh()
                .finalized()
                .with_session("UNAVAILABLE", 0)
                .status_info("NETWORK_TERMINATED")
                .edit(|s| {
                    s.application_server_ports = Some(Box::new(crate::api::Ports {
                        ports: Some(vec![443]),
                        ranges: None,
                    }))
                }),
            delete(DeleteReason::Replace),
        ),
        // REQUESTED.
        (
            "a just-created session waits for its notification",
            fresh().finalized().with_session("REQUESTED", 0),
            wait(15),
        ),
        (
            "a session REQUESTED for too long is re-read",
            fresh().finalized().with_session("REQUESTED", 20),
            refresh(),
        ),
        (
            "an id without any status yet counts as REQUESTED",
            fresh()
                .finalized()
                .with_session("REQUESTED", 30)
                .status(|s| s.qos_status = None),
            refresh(),
        ),
        // AVAILABLE.
        (
            "an AVAILABLE session waits for its resync",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 100)
                .expiring_in(3000),
            wait(200),
        ),
        (
            "an AVAILABLE session is re-read when the resync is due",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 300)
                .expiring_in(3000),
            refresh(),
        ),
        (
            "a raised duration extends by the difference",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(3000)
                .edit(|s| s.duration = 5400),
            extend(1800, ExtendReason::DurationRaised),
        ),
        (
            "a lowered duration cannot shorten a session: nothing to do",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(3000)
                .edit(|s| s.duration = 600),
            wait(300),
        ),
        (
            "an expiry soon after is watched for before the resync",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(20),
            wait(30),
        ),
        (
            "past its end without a notification, the session is re-read",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(-11),
            refresh(),
        ),
        (
            "autoExtend waits until the renewal window",
            fresh()
                .edit(auto)
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(400),
            // Renewal window: 300 s before the end (a fifth of 3600 s, capped at 5 minutes).
            wait(100),
        ),
        (
            "autoExtend extends by the spec's duration inside the window",
            fresh()
                .edit(auto)
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(299),
            extend(3600, ExtendReason::AutoExtend),
        ),
        (
            "autoExtend stops extending once the provider capped the session",
            fresh()
                .edit(auto)
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(100)
                .status(|s| s.extension_capped = true),
            wait(110),
        ),
        // UNAVAILABLE.
        (
            "an expired session without autoExtend is left as the network reported it",
            fresh()
                .finalized()
                .with_session("UNAVAILABLE", 0)
                .status_info("DURATION_EXPIRED"),
            Plan::Wait(None),
        ),
        (
            "a network-terminated session without autoExtend is left as reported",
            fresh()
                .finalized()
                .with_session("UNAVAILABLE", 0)
                .status_info("NETWORK_TERMINATED"),
            Plan::Wait(None),
        ),
        (
            "an expired autoExtend session is renewed (delete, then create)",
            fresh()
                .edit(auto)
                .finalized()
                .with_session("UNAVAILABLE", 0)
                .status_info("DURATION_EXPIRED"),
            delete(DeleteReason::Renew),
        ),
        (
            "a terminated autoExtend session is deleted before a new create",
            fresh()
                .edit(auto)
                .finalized()
                .with_session("UNAVAILABLE", 0)
                .status_info("NETWORK_TERMINATED"),
            delete(DeleteReason::Renew),
        ),
        (
            "a session deleted while the resource still wants one is renewed",
            fresh()
                .finalized()
                .with_session("UNAVAILABLE", 0)
                .status_info("DELETE_REQUESTED"),
            delete(DeleteReason::Renew),
        ),
        (
            "a longer duration after expiry asks for a new session",
            fresh()
                .finalized()
                .with_session("UNAVAILABLE", 0)
                .status_info("DURATION_EXPIRED")
                .edit(|s| s.duration = 7200),
            delete(DeleteReason::Renew),
        ),
        // Failures wait, unless the user changes the spec.
        (
            "after a failed create, the next attempt waits for its time",
            fresh().finalized().status(|s| {
                s.next_attempt_at = Some(from_now(30));
                s.observed_generation = Some(1);
            }),
            wait(30),
        ),
        (
            "a changed spec retries at once",
            fresh()
                .finalized()
                .status(|s| {
                    s.next_attempt_at = Some(from_now(30));
                    s.observed_generation = Some(1);
                })
                .edit(|s| s.qos_profile = "QOS_M".into()),
            Plan::Create,
        ),
        (
            "a retry time in the past is no reason to wait",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 400)
                .expiring_in(3000)
                .status(|s| s.next_attempt_at = Some(ago(1))),
            refresh(),
        ),
        (
            "a failing delete waits too, but the finalizer stays",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .status(|s| s.next_attempt_at = Some(from_now(60)))
                .deleting(),
            wait(60),
        ),
        (
            "a short autoExtend session renews within half its duration",
            fresh()
                .edit(|s| {
                    s.auto_extend = true;
                    s.duration = 10;
                })
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(5),
            extend(10, ExtendReason::AutoExtend),
        ),
        (
            "a short autoExtend session waits for its window",
            fresh()
                .edit(|s| {
                    s.auto_extend = true;
                    s.duration = 10;
                })
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(8),
            wait(3),
        ),
        (
            "an unknown state is read before anything else, even an overdue extension",
            fresh()
                .edit(auto)
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(-5)
                .status(|s| s.last_synced_at = None),
            refresh(),
        ),
        (
            "AVAILABLE by notification is read once for its expiry",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 5)
                .status(|s| {
                    s.last_notification = Some(crate::api::NotificationRef {
                        time: Some(ago(1)),
                        ..Default::default()
                    })
                }),
            refresh(),
        ),
        (
            "AVAILABLE by notification in the second of the last read is read once that second is over",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 1)
                .status(|s| {
                    s.last_notification = Some(crate::api::NotificationRef {
                        time: Some(ago(1)),
                        ..Default::default()
                    })
                }),
            refresh(),
        ),
        (
            "AVAILABLE by notification within the second of the last read waits for the next second",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .status(|s| {
                    s.last_notification = Some(crate::api::NotificationRef {
                        time: Some(ago(0)),
                        ..Default::default()
                    })
                }),
            wait(1),
        ),
        (
            "a provider that never says when a session expires is not asked again and again",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 1)
                .status(|s| {
                    s.last_notification = Some(crate::api::NotificationRef {
                        time: Some(ago(5)),
                        ..Default::default()
                    })
                }),
            wait(299),
        ),
        // Words the spec does not know.
        (
            "an unknown status is re-read on the resync schedule",
            fresh().finalized().with_session("BLA", 100),
            wait(200),
        ),
        // Paused: nothing at the provider, whatever is due.
        (
            "a paused new resource makes no call",
            fresh().paused(),
            Plan::Pause,
        ),
        (
            "a paused session due for a read is not read",
            fresh().finalized().with_session("REQUESTED", 20).paused(),
            Plan::Pause,
        ),
        (
            "a paused resource whose spec changed replaces nothing",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .edit(|s| s.qos_profile = "QOS_E".into())
                .paused(),
            Plan::Pause,
        ),
        (
            "deleting a paused resource waits, its session kept",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .deleting()
                .paused(),
            Plan::Pause,
        ),
        (
            "a paused annotation other than \"true\" pauses nothing",
            fresh().annotated(PAUSED_ANNOTATION, "false"),
            Plan::Create,
        ),
        // Import (Manage).
        (
            "an import gets the finalizer first, so the session never outlives its resource",
            fresh().import_of(THEIRS),
            Plan::AddFinalizer,
        ),
        (
            "a resource without a session imports the annotated one instead of creating",
            fresh().finalized().import_of(THEIRS),
            import(THEIRS),
        ),
        (
            "a refused import waits for a change of spec or annotation",
            fresh()
                .finalized()
                .import_of(THEIRS)
                .import_record(THEIRS, ImportOutcome::Refused),
            Plan::Wait(None),
        ),
        (
            "a refused import is checked again once the spec changes",
            fresh()
                .finalized()
                .import_of(THEIRS)
                .import_record(THEIRS, ImportOutcome::Refused)
                .edit(|s| s.qos_profile = "QOS_M".into()),
            import(THEIRS),
        ),
        (
            "an annotation naming another id than the refused one is imported",
            fresh()
                .finalized()
                .import_of(THEIRS)
                .import_record(ID, ImportOutcome::Refused),
            import(THEIRS),
        ),
        (
            "an imported session, since replaced, is not imported again: the next is created",
            fresh()
                .finalized()
                .import_of(THEIRS)
                .import_record(THEIRS, ImportOutcome::Imported),
            Plan::Create,
        ),
        (
            "the annotation of a resource holding its own session changes nothing",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 100)
                .expiring_in(3000)
                .import_of(THEIRS),
            wait(200),
        ),
        (
            "a create in flight is looked up, not traded for an import",
            fresh().finalized().create_sent().import_of(THEIRS),
            Plan::Adopt,
        ),
        (
            "an imported session is managed: a raised duration extends it",
            fresh()
                .finalized()
                .import_of(ID)
                .with_session("AVAILABLE", 0)
                .import_record(ID, ImportOutcome::Imported)
                .expiring_in(3000)
                .edit(|s| s.duration = 5400),
            extend(1800, ExtendReason::DurationRaised),
        ),
        // Observe: reads only.
        (
            "Observe without the annotation says so and calls nothing",
            fresh().observed(),
            Plan::MissingSessionId,
        ),
        (
            "Observe reads the annotated session, without a finalizer",
            fresh().observed().import_of(ID),
            import(ID),
        ),
        (
            "Observe of a session refused for this spec waits for a change",
            fresh()
                .observed()
                .import_of(ID)
                .import_record(ID, ImportOutcome::Refused),
            Plan::Wait(None),
        ),
        (
            "Observe never extends, whatever the duration",
            fresh()
                .observed()
                .import_of(ID)
                .with_session("AVAILABLE", 0)
                .expiring_in(3000)
                .edit(|s| s.duration = 5400),
            wait(300),
        ),
        (
            "Observe never autoExtends; it watches for the end",
            fresh()
                .observed()
                .edit(auto)
                .import_of(ID)
                .with_session("AVAILABLE", 0)
                .expiring_in(100),
            wait(110),
        ),
        (
            "Observe re-reads a session REQUESTED for too long",
            fresh()
                .observed()
                .import_of(ID)
                .with_session("REQUESTED", 20),
            refresh(),
        ),
        (
            "Observe re-reads when the resync is due",
            fresh()
                .observed()
                .import_of(ID)
                .with_session("AVAILABLE", 300)
                .expiring_in(3000),
            refresh(),
        ),
        (
            "Observe re-reads a session past its end",
            fresh()
                .observed()
                .import_of(ID)
                .with_session("AVAILABLE", 0)
                .expiring_in(-11),
            refresh(),
        ),
        (
            "Observe leaves an ended session alone, autoExtend or not",
            fresh()
                .observed()
                .edit(auto)
                .import_of(ID)
                .with_session("UNAVAILABLE", 0)
                .status_info("NETWORK_TERMINATED"),
            Plan::Wait(None),
        ),
        (
            "Observe checks the session again after a change of a session-defining field",
            fresh()
                .observed()
                .import_of(ID)
                .with_session("AVAILABLE", 0)
                .expiring_in(3000)
                .edit(|s| s.qos_profile = "QOS_E".into()),
            import(ID),
        ),
        (
            "Observe follows the annotation to another session",
            fresh()
                .observed()
                .import_of(THEIRS)
                .with_session("AVAILABLE", 0)
                .expiring_in(3000),
            import(THEIRS),
        ),
        (
            "deleting an observed resource calls nothing",
            fresh()
                .observed()
                .import_of(ID)
                .with_session("AVAILABLE", 0)
                .deleting(),
            Plan::Wait(None),
        ),
        (
            "deleting an observed resource drops a finalizer left from Manage, without a call",
            fresh()
                .observed()
                .finalized()
                .import_of(ID)
                .with_session("AVAILABLE", 0)
                .deleting(),
            Plan::RemoveFinalizer,
        ),
        // deletionPolicy Orphan.
        (
            "Orphan: deleting the resource leaves the session at the provider",
            fresh()
                .orphaning()
                .finalized()
                .with_session("AVAILABLE", 0)
                .deleting(),
            Plan::Orphan {
                session_id: ID.into(),
            },
        ),
        (
            "Orphan: a failing provider does not hold the deletion up",
            fresh()
                .orphaning()
                .finalized()
                .with_session("AVAILABLE", 0)
                .status(|s| s.next_attempt_at = Some(from_now(60)))
                .deleting(),
            Plan::Orphan {
                session_id: ID.into(),
            },
        ),
        (
            "Orphan: a create in flight is looked up first, so the Event can name it",
            fresh().orphaning().finalized().create_sent().deleting(),
            Plan::Adopt,
        ),
        (
            "Orphan: with nothing at the provider, the finalizer goes",
            fresh().orphaning().finalized().deleting(),
            Plan::RemoveFinalizer,
        ),
        (
            "Orphan applies to deletion only: a new profile still replaces the session",
            fresh()
                .orphaning()
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(3000)
                .edit(|s| s.qos_profile = "QOS_E".into()),
            delete(DeleteReason::Replace),
        ),
        // The policies are not session-defining.
        (
            "a change of policies keeps the session",
            fresh()
                .finalized()
                .with_session("AVAILABLE", 0)
                .expiring_in(3000)
                .edit(|s| s.deletion_policy = DeletionPolicy::Orphan),
            wait(300),
        ),
        (
            "a change of policies after expiry asks for no new session",
            fresh()
                .finalized()
                .with_session("UNAVAILABLE", 0)
                .status_info("DURATION_EXPIRED")
                .edit(|s| s.deletion_policy = DeletionPolicy::Orphan),
            Plan::Wait(None),
        ),
        (
            "Observe to Manage takes the session over: the finalizer first",
            fresh()
                .observed()
                .import_of(ID)
                .with_session("AVAILABLE", 0)
                .expiring_in(3000)
                .edit(|s| s.management_policy = ManagementPolicy::Manage),
            Plan::AddFinalizer,
        ),
    ];

    let mut failures = Vec::new();
    for (name, session, expected) in cases {
        let actual = plan(&session, now(), &settings);
        if actual != expected {
            failures.push(format!(
                "{name}:\n  expected {expected:?}\n  got      {actual:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_planner_never_asks_to_wait_zero() {
    // Walk the clock across a session's whole life: every Wait is at least a second.
    let settings = PlannerSettings::default();
    let session = fresh()
        .edit(|s| s.auto_extend = true)
        .finalized()
        .with_session("AVAILABLE", 0)
        .expiring_in(3600);
    for offset in (0..4000).step_by(7) {
        let later = now() + SignedDuration::from_secs(offset);
        if let Plan::Wait(Some(wait)) = plan(&session, later, &settings) {
            assert!(wait >= Duration::from_secs(1), "at +{offset}s: {wait:?}");
        }
    }
}

#[test]
fn the_fingerprint_ignores_lifetime_fields_only() {
    let base = spec();
    let mut longer = base.clone();
    longer.duration = 60;
    longer.auto_extend = true;
    assert_eq!(base.session_fingerprint(), longer.session_fingerprint());
    let mut policies = base.clone();
    policies.management_policy = ManagementPolicy::Observe;
    policies.deletion_policy = DeletionPolicy::Orphan;
    assert_eq!(base.session_fingerprint(), policies.session_fingerprint());
    let mut other_server = base.clone();
    other_server.application_server.ipv4_address = Some("198.51.100.8".into());
    assert_ne!(
        base.session_fingerprint(),
        other_server.session_fingerprint()
    );
    // A session made before providerRef existed keeps its fingerprint; naming a provider, or
    // another one, replaces it.
    assert_eq!(base.session_fingerprint(), "10577a4fe409e9e190253130");
    let mut at_a = base.clone();
    at_a.provider_ref = Some(Box::new(ProviderRef {
        kind: ProviderKind::ClusterQodProvider,
        name: "telco-a".into(),
    }));
    let mut at_b = at_a.clone();
    at_b.provider_ref = Some(Box::new(ProviderRef {
        kind: ProviderKind::QodProvider,
        name: "telco-a".into(),
    }));
    assert_ne!(base.session_fingerprint(), at_a.session_fingerprint());
    assert_ne!(at_a.session_fingerprint(), at_b.session_fingerprint());
}
