//! The reconcile planner: from a `QodSession` (spec, status, metadata) and the clock, decide the
//! one next step, by the first of an ordered list of rules (`RULES`) that applies. Pure: no
//! IO, no Kubernetes or provider calls, so every rule is covered by the table tests in
//! `plan_tests.rs`. [`super::reconcile`] carries the step out and records its outcome in status;
//! the next pass plans again from there. The rules in words: docs/architecture.md, "Reconcile
//! rules".

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::{
    api::{
        DeletionPolicy, FINALIZER, ImportOutcome, ManagementPolicy, QodSession, QodSessionSpec,
        QodSessionStatus,
    },
    qod::{QosStatus, StatusInfo},
};

/// Timing knobs of the planner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannerSettings {
    /// How often a session is re-read from the provider even without a reason.
    pub resync_interval: Duration,
    /// How soon a session still REQUESTED is re-read, in case its notification is lost.
    pub requested_refresh: Duration,
    /// How long after `expiresAt` a session still shown AVAILABLE is re-read.
    pub expiry_grace: Duration,
}

impl Default for PlannerSettings {
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

/// Decides the next step for `session` at `now`: the first of `RULES` that applies.
pub fn plan(session: &QodSession, now: Timestamp, settings: &PlannerSettings) -> Plan {
    let facts = Facts::of(session, now, settings);
    RULES
        .iter()
        .find_map(|rule| rule(&facts))
        // Not reached: a resource without a session to follow meets a rule before the last.
        .unwrap_or(Plan::Wait(None))
}

/// A rule decides the step when it applies, and leaves it to the next rule otherwise.
type Rule = fn(&Facts) -> Option<Plan>;

/// The rules in the order they apply: pause and deletion first, whatever else holds; then what
/// a resource needs before it has a session (the annotation to observe, the finalizer, the wait
/// after a failure, an import, a create); then how a session it has is followed (replaced,
/// read, renewed, extended, read again on schedule).
const RULES: [Rule; 16] = [
    pause_rule,
    deletion_rule,
    missing_session_id_rule,
    finalizer_rule,
    backoff_rule,
    import_rule,
    create_rule,
    replace_rule,
    unknown_state_rule,
    renew_rule,
    requested_rule,
    notified_rule,
    duration_raised_rule,
    auto_extend_rule,
    expiry_rule,
    resync_rule,
];

/// What the rules read of a resource, worked out once per plan.
struct Facts<'a> {
    session: &'a QodSession,
    /// The status, with a first create's intent from the metadata.
    status: QodSessionStatus,
    now: Timestamp,
    settings: &'a PlannerSettings,
    /// managementPolicy Manage: the session is ours to create, extend, renew and delete.
    manage: bool,
    has_finalizer: bool,
    /// A create was sent, or is about to be, without its outcome recorded.
    create_pending: bool,
    /// The spec changed since the status was last written for it.
    spec_changed: bool,
    /// How long a failed provider call asked to wait, unless the spec changed since.
    retry_in: Option<Duration>,
    /// The session's state as last recorded (REQUESTED when none is).
    qos_status: QosStatus,
    /// Time since the session was last read (`Duration::MAX` when never).
    since_sync: Duration,
    /// Time until the session's next read on the resync schedule.
    resync_in: Duration,
}

impl<'a> Facts<'a> {
    fn of(session: &'a QodSession, now: Timestamp, settings: &'a PlannerSettings) -> Self {
        let status = super::status_change::current(session);
        let spec_changed = status.observed_generation < session.metadata.generation;
        let retry_in = status
            .next_attempt_at
            .as_ref()
            .map(|t| until(now, t.0))
            .filter(|wait| !wait.is_zero() && !spec_changed);
        let qos_status = status
            .qos_status
            .as_deref()
            .map_or(QosStatus::Requested, QosStatus::from);
        let since_sync = status
            .last_synced_at
            .as_ref()
            .map_or(Duration::MAX, |t| elapsed(t.0, now));
        Self {
            session,
            manage: session.spec.management_policy == ManagementPolicy::Manage,
            has_finalizer: session
                .metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|name| name == FINALIZER)),
            create_pending: status.create_requested_at.is_some(),
            spec_changed,
            retry_in,
            qos_status,
            since_sync,
            resync_in: settings.resync_interval.saturating_sub(since_sync),
            status,
            now,
            settings,
        }
    }

    fn spec(&self) -> &'a QodSessionSpec {
        &self.session.spec
    }

    /// The session the status holds: the one the rules after [`create_rule`] follow.
    fn session_id(&self) -> Option<String> {
        self.status.session_id.as_deref().map(str::to_owned)
    }

    /// Time until the session's recorded end, if one is recorded.
    fn expires_in(&self) -> Option<Duration> {
        self.status
            .expires_at
            .as_ref()
            .map(|t| until(self.now, t.0))
    }

    /// The session the annotation names, while it is still to be imported: under Manage once,
    /// by a resource with none of its own; under Observe until the status shows it checked
    /// against the spec as it is (another session, or a changed spec, is checked again).
    fn import_wanted(&self) -> Option<&'a str> {
        let id = self.session.annotated_session_id()?;
        let status = &self.status;
        let wanted = if self.manage {
            status.session_id.is_none()
                && !self.create_pending
                && !import_was(status, id, ImportOutcome::Imported)
        } else {
            status.session_id.as_deref() != Some(id)
                || status.session_fingerprint.as_deref()
                    != Some(self.spec().session_fingerprint().as_str())
        };
        wanted.then_some(id)
    }
}

/// Paused: no provider call, not even for a deletion, until the annotation goes.
fn pause_rule(f: &Facts) -> Option<Plan> {
    f.session.is_paused().then_some(Plan::Pause)
}

/// Being deleted: the session goes as the policies say, before any rule that would make or
/// keep one.
fn deletion_rule(f: &Facts) -> Option<Plan> {
    f.session.metadata.deletion_timestamp.as_ref()?;
    // Without our finalizer nothing is ours to let go. An observed session is not ours either:
    // a finalizer left from Manage goes without a call.
    if !f.has_finalizer {
        return Some(Plan::Wait(None));
    }
    if !f.manage {
        return Some(Plan::RemoveFinalizer);
    }
    Some(match f.session_id() {
        Some(session_id) if f.spec().deletion_policy == DeletionPolicy::Orphan => {
            Plan::Orphan { session_id }
        }
        Some(session_id) => backoff_rule(f).unwrap_or(Plan::Delete {
            session_id,
            reason: DeleteReason::Finalize,
        }),
        // Looked up even to orphan it, so the Event can name it.
        None if f.create_pending => Plan::Adopt,
        None => Plan::RemoveFinalizer,
    })
}

/// Observe without the annotation `qod.dev/session-id`: there is nothing to read, so this comes
/// before every rule that reads.
fn missing_session_id_rule(f: &Facts) -> Option<Plan> {
    (!f.manage && f.session.annotated_session_id().is_none()).then_some(Plan::MissingSessionId)
}

/// Manage without our finalizer: it goes on before a session can become ours, so none is left
/// behind by a deletion. A resource's first create adds it in the write that records its
/// intent; an import needs it before the session becomes ours.
fn finalizer_rule(f: &Facts) -> Option<Plan> {
    if !f.manage || f.has_finalizer {
        return None;
    }
    let first_create = f.status.session_id.is_none()
        && !f.create_pending
        && f.retry_in.is_none()
        && f.import_wanted().is_none();
    Some(if first_create {
        Plan::Create
    } else {
        Plan::AddFinalizer
    })
}

/// After a failed provider call, wait as the failure asked (unless the spec changed since):
/// every rule after this one calls the provider.
fn backoff_rule(f: &Facts) -> Option<Plan> {
    f.retry_in.map(|wait| Plan::Wait(Some(wait.max(MIN_WAIT))))
}

/// A session the annotation names is checked against the spec and imported before the
/// resource creates or follows one of its own.
fn import_rule(f: &Facts) -> Option<Plan> {
    let id = f.import_wanted()?;
    Some(import_unless_refused(&f.status, id, f.spec_changed))
}

/// Manage without a session: adopt the one an unanswered create may have made, or create one.
/// Every rule after this one follows the session the status holds.
fn create_rule(f: &Facts) -> Option<Plan> {
    if !f.manage || f.status.session_id.is_some() {
        return None;
    }
    Some(if f.create_pending {
        Plan::Adopt
    } else {
        Plan::Create
    })
}

/// Manage: session-defining fields changed, so the session is deleted to be created anew; no
/// point reading, extending or renewing the old one first.
fn replace_rule(f: &Facts) -> Option<Plan> {
    if !f.manage
        || f.status.session_fingerprint.as_deref() == Some(f.spec().session_fingerprint().as_str())
    {
        return None;
    }
    Some(Plan::Delete {
        session_id: f.session_id()?,
        reason: DeleteReason::Replace,
    })
}

/// The last answer left the session's state unknown (e.g. an extension was refused): read it
/// before deciding anything that depends on its state.
fn unknown_state_rule(f: &Facts) -> Option<Plan> {
    if f.status.last_synced_at.is_some() {
        return None;
    }
    Some(Plan::Refresh {
        session_id: f.session_id()?,
    })
}

/// UNAVAILABLE: the session is over; renew it when a new one is wanted, else wait for a change.
fn renew_rule(f: &Facts) -> Option<Plan> {
    if f.qos_status != QosStatus::Unavailable {
        return None;
    }
    let session_id = f.session_id()?;
    // A new one is wanted if autoExtend says so, if the duration was changed since the status
    // was written (e.g. a longer one after expiry; a change of the policies alone asks for
    // nothing), or if the session was deleted (not ended by the network) while the resource
    // still wants one: a replacement whose outcome was lost, or a delete by another client.
    let deleted = f
        .status
        .status_info
        .as_deref()
        .is_some_and(|info| StatusInfo::from(info) == StatusInfo::DeleteRequested);
    let duration_changed = f.spec_changed && f.status.requested_duration != Some(f.spec().duration);
    Some(
        if f.manage && (f.spec().auto_extend || duration_changed || deleted) {
            Plan::Delete {
                session_id,
                reason: DeleteReason::Renew,
            }
        } else {
            Plan::Wait(None)
        },
    )
}

/// REQUESTED: read again soon, in case the notification that it became AVAILABLE is lost.
fn requested_rule(f: &Facts) -> Option<Plan> {
    if f.qos_status != QosStatus::Requested {
        return None;
    }
    let session_id = f.session_id()?;
    let refresh_in = f.settings.requested_refresh.saturating_sub(f.since_sync);
    Some(if refresh_in.is_zero() {
        Plan::Refresh { session_id }
    } else {
        Plan::Wait(Some(refresh_in))
    })
}

/// A notification made the session AVAILABLE after our last read: read it once for what events
/// do not carry (startedAt, expiresAt, the granted duration), which the extend rules need.
fn notified_rule(f: &Facts) -> Option<Plan> {
    if f.qos_status != QosStatus::Available || f.status.expires_at.is_some() {
        return None;
    }
    let notified = f.status.last_notification.as_ref()?.time.as_ref()?;
    let synced = f.status.last_synced_at.as_ref()?;
    let (notified, synced) = (notified.0.as_second(), synced.0.as_second());
    // Both times are stored in whole seconds, so within one second the order is unknown: read
    // once the clock is past that second, when the read is surely after the notification.
    if notified > synced || (notified == synced && f.now.as_second() > synced) {
        return Some(Plan::Refresh {
            session_id: f.session_id()?,
        });
    }
    if notified == synced {
        let to_next_second = 1_000_000_000 - f.now.subsec_nanosecond().max(0) as u64;
        return Some(Plan::Wait(Some(Duration::from_nanos(to_next_second))));
    }
    None
}

/// Manage, AVAILABLE: `spec.duration` grew beyond what was asked so far; ask for the
/// difference before autoExtend's schedule, which counts from the duration asked.
fn duration_raised_rule(f: &Facts) -> Option<Plan> {
    if !f.manage || f.qos_status != QosStatus::Available {
        return None;
    }
    let requested = f.status.requested_duration.unwrap_or(f.spec().duration);
    if f.spec().duration <= requested {
        return None;
    }
    Some(Plan::Extend {
        session_id: f.session_id()?,
        seconds: f.spec().duration - requested,
        reason: ExtendReason::DurationRaised,
    })
}

/// Manage, AVAILABLE, autoExtend (and not capped by the provider): extend shortly before the
/// end, and until then wait for it (or the resync, if sooner).
fn auto_extend_rule(f: &Facts) -> Option<Plan> {
    if !(f.manage
        && f.qos_status == QosStatus::Available
        && f.spec().auto_extend
        && !f.status.extension_capped)
    {
        return None;
    }
    let expires_in = f.expires_in()?;
    let session_id = f.session_id()?;
    let renew_in = expires_in.saturating_sub(renew_before(f.spec().duration));
    Some(if renew_in.is_zero() {
        Plan::Extend {
            session_id,
            seconds: f.spec().duration,
            reason: ExtendReason::AutoExtend,
        }
    } else {
        Plan::Wait(Some(renew_in.min(f.resync_in).max(MIN_WAIT)))
            .or_refresh(f.resync_in, session_id)
    })
}

/// AVAILABLE past its end by the grace: the notification that it ended was lost; read it.
fn expiry_rule(f: &Facts) -> Option<Plan> {
    if f.qos_status != QosStatus::Available {
        return None;
    }
    let expires_at = f.status.expires_at.as_ref()?;
    let expired_unseen = until(f.now, expires_at.0).is_zero()
        && elapsed(expires_at.0, f.now) >= f.settings.expiry_grace;
    if !expired_unseen {
        return None;
    }
    Some(Plan::Refresh {
        session_id: f.session_id()?,
    })
}

/// Last: read the session on the resync schedule, and an AVAILABLE one also once its end is
/// overdue; wait until then.
fn resync_rule(f: &Facts) -> Option<Plan> {
    let session_id = f.session_id()?;
    let wait = match f.qos_status {
        QosStatus::Available => {
            let overdue_in = f.expires_in().map(|d| d + f.settings.expiry_grace);
            overdue_in
                .map_or(f.resync_in, |d| d.min(f.resync_in))
                .max(MIN_WAIT)
        }
        _ => f.resync_in,
    };
    Some(Plan::Wait(Some(wait)).or_refresh(f.resync_in, session_id))
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
