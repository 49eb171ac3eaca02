//! The reconcile planner: from a `QodSession` (spec, status, metadata) and the clock, decide the
//! one next step. Pure: no IO, no Kubernetes or provider calls, so every rule of DESIGN.md's
//! "Reconcile rules" is covered by table tests. The IO layer ([`super::reconcile`]) carries the step out
//! and records its outcome in status; the next pass plans again from there.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::{
    api::{
        DeletionPolicy, FINALIZER, ImportOutcome, ManagementPolicy, QodSession, QodSessionStatus,
    },
    qod::{QosStatus, StatusInfo},
};

/// Timing knobs of the planner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How often a session is re-read from the provider even without a reason.
    pub resync_interval: Duration,
    /// How soon a session still REQUESTED is re-read, in case its notification is lost.
    pub requested_refresh: Duration,
    /// How long after `expiresAt` a session still shown AVAILABLE is re-read.
    pub expiry_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(300),
            requested_refresh: Duration::from_secs(15),
            expiry_grace: Duration::from_secs(10),
        }
    }
}

/// Why a session is deleted at the provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// The resource is being deleted.
    Finalize,
    /// Session-defining fields changed: delete, then create anew.
    Replace,
    /// The session ended (expired or terminated by the network) and a new one is wanted; a
    /// terminated session still holds the flow at the provider until deleted.
    Renew,
}

/// Why a session is extended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtendReason {
    /// `spec.duration` grew beyond what was asked so far.
    DurationRaised,
    /// `autoExtend` keeps the session alive.
    AutoExtend,
}

/// The one next step for a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Record the intent to manage a session before anything exists at the provider.
    AddFinalizer,
    /// A create may have taken effect without its id being recorded: look the device's
    /// sessions up and adopt the one whose sink names this resource.
    Adopt,
    /// Create a session (the IO layer records the intent first, and adds the finalizer in the
    /// same write when it is missing).
    Create,
    /// Re-read the session from the provider.
    Refresh { session_id: String },
    /// Ask the provider for more time.
    Extend {
        session_id: String,
        seconds: u32,
        reason: ExtendReason,
    },
    /// Delete the session at the provider and forget it (404 counts as done).
    Delete {
        session_id: String,
        reason: DeleteReason,
    },
    /// Nothing remains at the provider: let Kubernetes delete the resource.
    RemoveFinalizer,
    /// Read the session the annotation `qod.dev/session-id` names and, if it matches the spec,
    /// record it as this resource's (managed or observed); otherwise say why and change nothing.
    Import { session_id: String },
    /// deletionPolicy Orphan: leave the session at the provider, say so in an Event, and let
    /// Kubernetes delete the resource.
    Orphan { session_id: String },
    /// The annotation `qod.dev/paused` is set: no provider call; say so in status.
    Pause,
    /// managementPolicy Observe without the annotation `qod.dev/session-id`: say so in status.
    MissingSessionId,
    /// Nothing to do now; look again after this long, or (`None`) when the resource changes.
    Wait(Option<Duration>),
}

/// Decides the next step for `session` at `now`. The rules, in order: a paused resource waits;
/// a resource being deleted lets its session go as its policies say; an observed resource only
/// reads; a managed one imports, creates, replaces, extends or renews its session.
pub fn plan(session: &QodSession, now: Timestamp, settings: &Settings) -> Plan {
    // Paused: no provider call, not even for a deletion, until the annotation goes.
    if session.is_paused() {
        return Plan::Pause;
    }
    let has_finalizer = session
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|name| name == FINALIZER));
    let status = super::status::current(session);
    let session_id = status.session_id.clone();
    let create_pending = status.create_requested_at.is_some();
    let spec = &session.spec;
    let observe = spec.management_policy == ManagementPolicy::Observe;

    // After a failed provider call, wait as the failure asked, unless the spec changed since.
    let spec_changed = status.observed_generation < session.metadata.generation;
    let retry_in = status
        .next_attempt_at
        .as_ref()
        .map(|t| until(now, t.0))
        .filter(|wait| !wait.is_zero() && !spec_changed);

    if session.metadata.deletion_timestamp.is_some() {
        // An observed session is not ours: a finalizer left from Manage goes without a call.
        if observe {
            return if has_finalizer {
                Plan::RemoveFinalizer
            } else {
                Plan::Wait(None)
            };
        }
        if let (true, Some(session_id), DeletionPolicy::Orphan) =
            (has_finalizer, &session_id, spec.deletion_policy)
        {
            return Plan::Orphan {
                session_id: session_id.clone(),
            };
        }
        if let (true, Some(_), Some(wait)) = (has_finalizer, &session_id, retry_in) {
            return Plan::Wait(Some(wait.max(MIN_WAIT)));
        }
        return match (has_finalizer, session_id) {
            (false, _) => Plan::Wait(None),
            (true, Some(session_id)) => Plan::Delete {
                session_id,
                reason: DeleteReason::Finalize,
            },
            // Looked up even to orphan it, so the Event can name it.
            (true, None) if create_pending => Plan::Adopt,
            (true, None) => Plan::RemoveFinalizer,
        };
    }

    if observe {
        return observed(session, &status, spec_changed, retry_in, now, settings);
    }

    // A session named by the annotation is imported once, by a resource with none of its own.
    let import = session.annotated_session_id().filter(|id| {
        session_id.is_none() && !create_pending && !import_was(&status, id, ImportOutcome::Imported)
    });
    if !has_finalizer {
        // A resource's first create adds the finalizer in the write that records its intent;
        // an import needs it before the session becomes ours.
        let first_create =
            session_id.is_none() && !create_pending && retry_in.is_none() && import.is_none();
        return if first_create {
            Plan::Create
        } else {
            Plan::AddFinalizer
        };
    }
    if let Some(wait) = retry_in {
        return Plan::Wait(Some(wait.max(MIN_WAIT)));
    }
    let Some(session_id) = session_id else {
        return match import {
            Some(id) => import_unless_refused(&status, id, spec_changed),
            None if create_pending => Plan::Adopt,
            None => Plan::Create,
        };
    };

    if status.session_fingerprint.as_deref() != Some(spec.session_fingerprint().as_str()) {
        return Plan::Delete {
            session_id,
            reason: DeleteReason::Replace,
        };
    }
    follow(
        session,
        &status,
        session_id,
        spec_changed,
        Act::Manage,
        now,
        settings,
    )
}

/// Observe: read the session the annotation names and nothing else.
fn observed(
    session: &QodSession,
    status: &QodSessionStatus,
    spec_changed: bool,
    retry_in: Option<Duration>,
    now: Timestamp,
    settings: &Settings,
) -> Plan {
    let Some(id) = session.annotated_session_id() else {
        return Plan::MissingSessionId;
    };
    if let Some(wait) = retry_in {
        return Plan::Wait(Some(wait.max(MIN_WAIT)));
    }
    // Another session, or a spec it was not checked against: check it (again) first.
    let fingerprint = session.spec.session_fingerprint();
    let checked = status.session_id.as_deref() == Some(id)
        && status.session_fingerprint.as_deref() == Some(fingerprint.as_str());
    if !checked {
        return import_unless_refused(status, id, spec_changed);
    }
    follow(
        session,
        status,
        id.to_owned(),
        spec_changed,
        Act::Observe,
        now,
        settings,
    )
}

/// Whether the last import of `id` had `outcome`.
fn import_was(status: &QodSessionStatus, id: &str, outcome: ImportOutcome) -> bool {
    status
        .import
        .as_ref()
        .is_some_and(|record| record.session_id == id && record.outcome == outcome)
}

/// Import `id`, unless it was refused for the spec as it is (a refusal is final for a session
/// id and a spec: neither changes at the provider).
fn import_unless_refused(status: &QodSessionStatus, id: &str, spec_changed: bool) -> Plan {
    if import_was(status, id, ImportOutcome::Refused) && !spec_changed {
        Plan::Wait(None)
    } else {
        Plan::Import {
            session_id: id.to_owned(),
        }
    }
}

/// What the planner may do to a session beyond reading it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Act {
    /// Extend and renew it as the spec asks.
    Manage,
    /// Only read it.
    Observe,
}

/// The steps for a session the status holds and the spec still describes: reads on schedule,
/// and (when managed) extensions and renewals.
fn follow(
    session: &QodSession,
    status: &QodSessionStatus,
    session_id: String,
    spec_changed: bool,
    act: Act,
    now: Timestamp,
    settings: &Settings,
) -> Plan {
    let spec = &session.spec;
    let manage = act == Act::Manage;
    // The last answer left the session's state unknown (e.g. an extension was refused):
    // read it before deciding anything else.
    if status.last_synced_at.is_none() {
        return Plan::Refresh { session_id };
    }

    let qos_status = status
        .qos_status
        .as_deref()
        .map_or(QosStatus::Requested, QosStatus::from);
    let since_sync = status
        .last_synced_at
        .as_ref()
        .map_or(Duration::MAX, |t| elapsed(t.0, now));
    let resync_in = settings.resync_interval.saturating_sub(since_sync);

    match qos_status {
        QosStatus::Unavailable => {
            // The session is over. A new one is wanted if autoExtend says so, if the duration
            // was changed since the status was written (e.g. a longer one after expiry; a change
            // of the policies alone asks for nothing), or if the session was deleted (not ended
            // by the network) while the resource still wants one: a replacement whose outcome
            // was lost, or a delete by another client.
            let deleted = status
                .status_info
                .as_deref()
                .is_some_and(|info| StatusInfo::from(info) == StatusInfo::DeleteRequested);
            let duration_changed = spec_changed && status.requested_duration != Some(spec.duration);
            if manage && (spec.auto_extend || duration_changed || deleted) {
                Plan::Delete {
                    session_id,
                    reason: DeleteReason::Renew,
                }
            } else {
                Plan::Wait(None)
            }
        }
        QosStatus::Requested => {
            let refresh_in = settings.requested_refresh.saturating_sub(since_sync);
            if refresh_in.is_zero() {
                Plan::Refresh { session_id }
            } else {
                Plan::Wait(Some(refresh_in))
            }
        }
        QosStatus::Available => {
            // A notification made the session AVAILABLE after our last read: read it once for
            // what events do not carry (startedAt, expiresAt, the granted duration). Both times
            // are stored in whole seconds, so within one second the order is unknown: read once
            // the clock is past that second, when the read is surely after the notification.
            let notified_and_synced = status
                .last_notification
                .as_ref()
                .and_then(|n| n.time.as_ref())
                .zip(status.last_synced_at.as_ref())
                .map(|(notified, synced)| (notified.0.as_second(), synced.0.as_second()));
            if let (None, Some((notified, synced))) = (&status.expires_at, notified_and_synced) {
                if notified > synced || (notified == synced && now.as_second() > synced) {
                    return Plan::Refresh { session_id };
                }
                if notified == synced {
                    let to_next_second = 1_000_000_000 - now.subsec_nanosecond().max(0) as u64;
                    return Plan::Wait(Some(Duration::from_nanos(to_next_second)));
                }
            }
            let requested = status.requested_duration.unwrap_or(spec.duration);
            if manage && spec.duration > requested {
                return Plan::Extend {
                    session_id,
                    seconds: spec.duration - requested,
                    reason: ExtendReason::DurationRaised,
                };
            }
            let expires_in = status.expires_at.as_ref().map(|t| until(now, t.0));
            if let Some(expires_in) =
                expires_in.filter(|_| manage && spec.auto_extend && !status.extension_capped)
            {
                let renew_in = expires_in.saturating_sub(renew_before(spec.duration));
                if renew_in.is_zero() {
                    return Plan::Extend {
                        session_id,
                        seconds: spec.duration,
                        reason: ExtendReason::AutoExtend,
                    };
                }
                return Plan::Wait(Some(renew_in.min(resync_in).max(MIN_WAIT)))
                    .or_refresh(resync_in, session_id);
            }
            // A session past its end that still reads AVAILABLE lost its notification.
            let overdue_in = expires_in.map(|d| d + settings.expiry_grace);
            let expired_unseen = expires_in.is_some_and(|d| d.is_zero())
                && status
                    .expires_at
                    .as_ref()
                    .is_some_and(|t| elapsed(t.0, now) >= settings.expiry_grace);
            if expired_unseen {
                return Plan::Refresh { session_id };
            }
            let wait = overdue_in.map_or(resync_in, |d| d.min(resync_in));
            Plan::Wait(Some(wait.max(MIN_WAIT))).or_refresh(resync_in, session_id)
        }
        QosStatus::Other(_) => Plan::Wait(Some(resync_in)).or_refresh(resync_in, session_id),
    }
}

/// The shortest wait the planner asks for, so a clock at the edge never spins.
const MIN_WAIT: Duration = Duration::from_secs(1);

impl Plan {
    /// Refresh instead when the resync is due.
    fn or_refresh(self, resync_in: Duration, session_id: String) -> Self {
        if resync_in.is_zero() {
            Self::Refresh { session_id }
        } else {
            self
        }
    }
}

/// How long before expiry an autoExtend session is extended: a fifth of its duration, at least
/// 30 s and at most 5 minutes, to leave time for retries; but never more than half the
/// duration, or each extension would land inside the next window and extend again at once.
pub fn renew_before(duration_seconds: u32) -> Duration {
    let window = u64::from(duration_seconds / 5).clamp(30, 300);
    Duration::from_secs(window.min(u64::from(duration_seconds / 2)).max(1))
}

/// Time from `then` to `now`, zero when `then` is in the future.
fn elapsed(then: Timestamp, now: Timestamp) -> Duration {
    until(then, now)
}

/// Time from `now` until `then`, zero when `then` has passed.
fn until(now: Timestamp, then: Timestamp) -> Duration {
    let span: SignedDuration = then.duration_since(now);
    Duration::try_from(span).unwrap_or(Duration::ZERO)
}
