//! Carrying out the planner's step: the provider call, the status write that records its
//! outcome, the finalizer patches and the Events. Decisions live in [`super::plan`]; how an
//! outcome changes status lives in [`super::status_change`].

use std::{sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
    },
};
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use super::{
    Context, Error, import,
    own_write::OwnWrite,
    plan::{DeleteReason, ExtendReason, Plan, plan},
    profile_check::{Admission, admit},
    provider_choice::{InUse, Unserved},
    status_change,
    wakeups::Next,
};
use crate::{
    api::{
        ApplicationServerStatus, CONTROLLER_MANAGER, FINALIZER, ImportOutcome, ImportRecord,
        ManagementPolicy, PAUSED_ANNOTATION, QodSession, QodSessionSpec, QodSessionStatus,
        SESSION_ID_ANNOTATION,
        conditions::{self, reason},
        intent::{CREATE_INTENT, CreateIntent},
    },
    cache::Located,
    finalizers,
    profiles::Verdict,
    providers::usage::live_sessions_at,
    qod::{self, NotificationTarget, SessionRequest},
    services::Resolution,
    telemetry::error_chain,
};

/// How long after the session's requested end the notification token stays valid; a session
/// the provider extends (autoExtend) keeps notifying until then, and resync covers the rest.
const TOKEN_GRACE: SignedDuration = SignedDuration::from_hours(24 * 30);

/// Status writes of an outcome that took effect at the provider, each after a fresh read when
/// the one before conflicted; more conflicts than this in a row fail the pass (retried).
const OUTCOME_WRITE_ATTEMPTS: usize = 4;

/// How soon a pass looks again while the Services are not listed yet.
const SERVICES_NOT_SYNCED: Duration = Duration::from_secs(2);

/// How soon a session waiting for a Service's address looks again without any change (the
/// Service watch brings it back sooner).
const SERVICE_RECHECK: Duration = Duration::from_secs(300);

/// The `Ready` reason and message of a create or an import that waits for its Service, if it
/// must.
fn service_wait(resolution: &Resolution) -> Option<(&'static str, String)> {
    match resolution {
        Resolution::Found { .. } => None,
        Resolution::NotFound { name } => Some((
            reason::SERVICE_NOT_FOUND,
            format!("Service {name} (spec.applicationServer.serviceRef) does not exist"),
        )),
        Resolution::NoAddress { why } => Some((reason::WAITING_FOR_SERVICE_ADDRESS, why.clone())),
        Resolution::NotSynced => Some((
            reason::WAITING_FOR_SERVICE_ADDRESS,
            "the operator has not listed the Services yet".to_owned(),
        )),
    }
}

/// How soon a create the profile check refused looks again without any change (a change of
/// the provider's profiles, see [`crate::profiles::sync`], or of the spec brings it back
/// sooner).
const PROFILE_RECHECK: Duration = Duration::from_secs(60);

/// A step not taken, and why: `Ready` False with `reason` and `message`.
struct StepRefusal {
    reason: &'static str,
    message: String,
    /// The Event action under which the refusal is also a Warning Event, when `Ready` did not
    /// say so already; without one, `Ready` (and the log, where the caller writes one) tells it.
    warning: Option<&'static str>,
    retry: Retry,
}

/// When a refused step is looked at again.
enum Retry {
    /// After this long, even without a change.
    After(Duration),
    /// When the resource changes.
    OnChange,
    /// As the planner says for the status written.
    AsPlanned,
}

/// One pass: plan, act, record.
pub async fn reconcile(session: Arc<QodSession>, context: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    // Abandoning a pass anywhere is a crash at that point, which every step is safe against
    // (a create's intent is recorded before it is sent); the next leader carries on.
    let result = tokio::select! {
        biased;
        () = context.stop.cancelled() => {
            info!("controller stopping: pass abandoned");
            return Ok(Action::await_change());
        }
        result = pass(&session, &context) => result,
    };
    let outcome = match &result {
        Ok(_) => "ok",
        Err(error) if error.is_conflict() => "conflict",
        Err(_) => "error",
    };
    context.metrics.reconciled(outcome, started.elapsed());
    let uid = session.metadata.uid.as_deref();
    match result {
        Ok(next) => Ok(context.wakeups.action(uid, next)),
        Err(error) => {
            // The error policy decides when to look again.
            context.wakeups.forget_uid(uid);
            Err(error)
        }
    }
}

async fn pass(session: &QodSession, context: &Context) -> Result<Next, Error> {
    let uid = session.uid().ok_or(Error::MissingMetadata("uid"))?;
    if let Some(last) = context.own_writes.get(&uid) {
        if last.is_missing_from(session) {
            // The cache lags behind our own last write: planning from this copy would repeat
            // what that write recorded (a second delete, a lookup for a create already
            // recorded). The write's watch event brings the resource back; the requeue is a
            // fallback.
            debug!("the cached copy predates our last write; waiting for it");
            return Ok(Next::After(OWN_WRITE_PENDING));
        }
        context.own_writes.remove(&uid);
    }
    // A Service as application server: plan with its addresses in the spec, so a change of
    // address changes the session fingerprint (the session is replaced) and a Service without
    // one leaves a fingerprint no session was made with (a live session is deleted).
    let (effective, service) = match &session.spec.application_server.service_ref {
        None => (None, None),
        Some(reference) => {
            let namespace = session.namespace().unwrap_or_default();
            let resolution = context.services.resolve(&namespace, &reference.name).await;
            if resolution == Resolution::NotSynced && session.metadata.deletion_timestamp.is_none()
            {
                debug!("Services not listed yet");
                return Ok(Next::After(SERVICES_NOT_SYNCED));
            }
            let mut effective = session.clone();
            if let Resolution::Found { addresses, .. } = &resolution {
                let server = &mut effective.spec.application_server;
                server.ipv4_address = addresses.ipv4.as_deref().map(Box::from);
                server.ipv6_address = addresses.ipv6.as_deref().map(Box::from);
            }
            (Some(effective), Some(resolution))
        }
    };
    let session = effective.as_ref().unwrap_or(session);
    let now = Timestamp::now();
    let quiet_read = context.quiet_reads.get(&uid).flatten();
    let step = match quiet_read {
        Some(_) => {
            let mut planned = session.clone();
            let mut status = status_change::current(session);
            status_change::count_quiet_read(&mut status, quiet_read);
            planned.status = Some(status);
            plan(&planned, now, &context.planner)
        }
        None => plan(session, now, &context.planner),
    };
    let span = info_span!(
        "step",
        step = step_name(&step),
        session_id = tracing::field::Empty
    );
    let action = Pass {
        session,
        context,
        api: Api::namespaced(
            context.client.clone(),
            &session
                .namespace()
                .ok_or(Error::MissingMetadata("namespace"))?,
        ),
        uid: &uid,
        now,
        quiet_read,
        service,
    }
    .run(step)
    .instrument(span)
    .await?;
    context.backoff.reset(&uid);
    Ok(action)
}

/// How soon a pass skipped for a lagging cache looks again, should no watch event come.
const OWN_WRITE_PENDING: Duration = Duration::from_secs(1);

/// How long a create through a provider with maxSessions holds the provider's lock for the
/// cache to show its intent; past it the next create may not count this one (the watch is
/// down), which the cap tolerates rather than stopping every create.
const QUOTA_CACHE_WAIT: Duration = Duration::from_secs(2);

fn step_name(step: &Plan) -> &'static str {
    match step {
        Plan::AddFinalizer => "add_finalizer",
        Plan::Adopt => "adopt",
        Plan::Create => "create",
        Plan::Refresh { .. } => "refresh",
        Plan::Extend { .. } => "extend",
        Plan::Delete { .. } => "delete",
        Plan::RemoveFinalizer => "remove_finalizer",
        Plan::Import { .. } => "import",
        Plan::Orphan { .. } => "orphan",
        Plan::Pause => "pause",
        Plan::MissingSessionId => "missing_session_id",
        Plan::Wait(_) => "wait",
    }
}

struct Pass<'a> {
    session: &'a QodSession,
    context: &'a Context,
    api: Api<QodSession>,
    uid: &'a str,
    now: Timestamp,
    /// The last read that found nothing new (see [`Context::quiet_reads`]).
    quiet_read: Option<Timestamp>,
    /// How `spec.applicationServer.serviceRef` resolved, when it is set.
    service: Option<Resolution>,
}

impl Pass<'_> {
    async fn run(&self, step: Plan) -> Result<Next, Error> {
        let providers = &self.context.providers;
        let chosen = match &step {
            Plan::AddFinalizer => return self.add_finalizer().await,
            Plan::RemoveFinalizer => return self.remove_finalizer().await,
            Plan::Wait(after) => return self.wait(*after).await,
            Plan::Orphan { session_id } => return self.orphan(session_id).await,
            Plan::Pause => return self.pause().await,
            Plan::MissingSessionId => return self.missing_session_id().await,
            Plan::Create | Plan::Import { .. } => {
                if let Some(waiting) = self.service.as_ref().and_then(service_wait) {
                    return self.no_service_address(waiting).await;
                }
                // An import reads at the provider the spec names, as a create would go there.
                providers.named(self.session)
            }
            Plan::Adopt | Plan::Refresh { .. } | Plan::Extend { .. } | Plan::Delete { .. } => {
                providers.recorded(self.session)
            }
        };
        let provider = match chosen {
            Ok(provider) => provider,
            Err(unserved) => return self.unserved(&unserved).await,
        };
        let _slot = providers.begin(&provider).await;
        let p = &provider;
        match step {
            Plan::Adopt => self.adopt(p).await,
            Plan::Create => self.create(p).await,
            Plan::Refresh { session_id } => self.refresh(p, &session_id).await,
            Plan::Extend {
                session_id,
                seconds,
                reason,
            } => self.extend(p, &session_id, seconds, reason).await,
            Plan::Delete { session_id, reason } => self.delete(p, &session_id, reason).await,
            Plan::Import { session_id } => self.import(p, &session_id).await,
            // Returned above.
            Plan::AddFinalizer
            | Plan::RemoveFinalizer
            | Plan::Wait(_)
            | Plan::Orphan { .. }
            | Plan::Pause
            | Plan::MissingSessionId => Ok(Next::OnChange),
        }
    }

    /// Refuses the step without calling the provider: writes `next` with `Ready` False as
    /// `refusal` says, fires its Warning Event when `Ready` did not say so already, and comes
    /// back as it asks.
    async fn refuse(
        &self,
        mut next: QodSessionStatus,
        refusal: StepRefusal,
    ) -> Result<Next, Error> {
        let StepRefusal {
            reason,
            message,
            warning,
            retry,
        } = refusal;
        let known = conditions::find(&next.conditions, conditions::READY)
            .is_some_and(|c| c.reason == reason && c.message == message);
        next.observed_generation = self.generation();
        status_change::set_ready(
            &mut next,
            "False",
            reason,
            message.clone(),
            self.generation(),
            self.now,
        );
        self.write_status(self.session, &next).await?;
        if let Some(action) = warning.filter(|_| !known) {
            self.event(EventType::Warning, reason, action, message)
                .await;
        }
        Ok(match retry {
            Retry::After(wait) => Next::After(wait),
            Retry::OnChange => Next::OnChange,
            Retry::AsPlanned => self.then(&next),
        })
    }

    /// No provider may serve this step now: say why in `Ready`, call none, and look again.
    async fn unserved(&self, unserved: &Unserved) -> Result<Next, Error> {
        info!(reason = unserved.reason(), "{unserved}");
        let refusal = StepRefusal {
            reason: unserved.reason(),
            message: unserved.to_string(),
            warning: None,
            retry: Retry::After(unserved.retry_in()),
        };
        self.refuse(status_change::current(self.session), refusal)
            .await
    }

    /// The Service named as application server is missing or offers no address: say so, call
    /// nothing, and wait for the Service to change (its watch brings the resource back).
    async fn no_service_address(
        &self,
        (reason, message): (&'static str, String),
    ) -> Result<Next, Error> {
        info!(reason, "{message}");
        let refusal = StepRefusal {
            reason,
            message,
            warning: None,
            retry: Retry::After(SERVICE_RECHECK),
        };
        self.refuse(status_change::current(self.session), refusal)
            .await
    }

    /// When to come back after a step that left `status`: plan again on it (with the exact
    /// clock; stored timestamps keep whole seconds only) and wait as that plan says.
    fn then(&self, status: &QodSessionStatus) -> Next {
        let mut updated = self.session.clone();
        let mut status = status.clone();
        status_change::count_quiet_read(&mut status, self.quiet_read);
        updated.status = Some(status);
        match plan(&updated, self.now, &self.context.planner) {
            Plan::Wait(Some(wait)) => Next::After(wait),
            Plan::Wait(None) => Next::OnChange,
            _ => Next::After(Duration::ZERO),
        }
    }

    fn generation(&self) -> Option<i64> {
        self.session.metadata.generation
    }

    fn spec(&self) -> &QodSessionSpec {
        &self.session.spec
    }

    /// Creates the session, after recording the intent so a crash before the answer is
    /// recorded leads to a lookup instead of a second create. A resource's first create
    /// records it in the write that adds the finalizer (see [`crate::api::intent`]).
    async fn create(&self, provider: &InUse) -> Result<Next, Error> {
        let verdict = match &provider.profiles {
            Some(api) => {
                self.context
                    .profiles
                    .check(provider.label(), api, &self.spec().qos_profile)
                    .await
            }
            None => Verdict::Unchecked,
        };
        let (duration, capped, bought) = match admit(self.spec(), verdict) {
            Admission::Create {
                duration,
                capped,
                profile,
            } => (duration, capped, profile),
            Admission::Refuse { reason, message } => {
                let refusal = StepRefusal {
                    reason,
                    message,
                    warning: Some("CheckProfile"),
                    retry: Retry::After(PROFILE_RECHECK),
                };
                return self
                    .refuse(status_change::current(self.session), refusal)
                    .await;
            }
        };
        // With maxSessions, count and record under the provider's lock, and keep it until the
        // cache shows the intent, so the next create through it counts this one.
        let slot = self.context.providers.quota_slot(provider).await;
        if let (Some(max), Some(recorded_as)) = (provider.max_sessions, &provider.recorded_as) {
            let namespace = self.session.namespace().unwrap_or_default();
            let live = live_sessions_at(
                self.context.cache.store().state().iter().map(AsRef::as_ref),
                &namespace,
                recorded_as,
                self.uid,
            );
            if live >= max as usize {
                return self
                    .unserved(&Unserved::QuotaExceeded {
                        provider: provider.label().to_owned(),
                        max,
                    })
                    .await;
            }
        }
        let mut intent = status_change::current(self.session);
        intent.create_requested_at = Some(Time(self.now));
        intent.session_fingerprint = Some(self.spec().session_fingerprint().into());
        intent.requested_duration = Some(self.spec().duration);
        intent.observed_generation = self.generation();
        intent.provider = provider.recorded_as.as_deref().map(Box::from);
        if status_change::current(self.session)
            .session_fingerprint
            .is_none()
        {
            status_change::set_ready(
                &mut intent,
                "False",
                reason::CREATING,
                "creating the session at the provider",
                self.generation(),
                self.now,
            );
        }
        let written = if self.has_finalizer() {
            self.write_status(self.session, &intent).await?
        } else {
            Some(self.add_finalizer_with_intent(provider).await?)
        };
        let session = written.as_ref().unwrap_or(self.session);
        if let (Some(_), Some(written)) = (&slot, &written) {
            let located = Located {
                namespace: written.namespace().unwrap_or_default(),
                name: written.name_any(),
                uid: self.uid.to_owned(),
            };
            let seen = self.session;
            self.context
                .cache
                .newer_than(&located, seen, QUOTA_CACHE_WAIT)
                .await;
        }
        drop(slot);

        let request = self.session_request(duration);
        match provider.api.create_session(&request).await {
            Ok(info) => {
                tracing::Span::current().record("session_id", info.session_id.as_str());
                let created = |status: &mut QodSessionStatus| {
                    status.create_requested_at = None;
                    // Capped at the profile's maximum: the session cannot be extended, and
                    // autoExtend renews it when it ends.
                    status.extension_capped = capped.is_some();
                    status.extension_capped_reason = capped.as_deref().map(Box::from);
                    status.profile.clone_from(&bought);
                    status.application_server = self.server_in_use().map(Box::new);
                    status.session_fingerprint = intent.session_fingerprint.clone();
                    status.provider = intent.provider.clone();
                    status.requested_duration = intent.requested_duration;
                    status.observed_generation = self.generation();
                    status_change::record_session(status, &info, self.generation(), self.now);
                };
                // Another session recorded meanwhile is not ours to overwrite.
                let still_ours = |status: &QodSessionStatus| {
                    status
                        .session_id
                        .as_ref()
                        .is_none_or(|id| **id == info.session_id)
                };
                let done = self.record_outcome(session, still_ours, created).await?;
                self.event(
                    EventType::Normal,
                    "Created",
                    "Create",
                    format!(
                        "created session {} ({}, {duration} s)",
                        info.session_id,
                        self.spec().qos_profile,
                    ),
                )
                .await;
                Ok(self.then(&done))
            }
            Err(error) if error.status() == Some(409) => {
                // The flow is taken: perhaps by our own earlier create whose answer was lost.
                if let Some(found) = self.find_ours(provider).await? {
                    return self.adopted(session, intent, found).await;
                }
                self.create_failed(provider, session, intent, error, false)
                    .await
            }
            Err(error) => {
                // Keep the intent while the session may exist; drop it when it surely does not.
                let may_exist =
                    error.may_have_created() || error.status().is_some_and(|s| s >= 500);
                self.create_failed(provider, session, intent, error, may_exist)
                    .await
            }
        }
    }

    async fn create_failed(
        &self,
        provider: &InUse,
        session: &QodSession,
        mut intent: QodSessionStatus,
        error: qod::Error,
        may_exist: bool,
    ) -> Result<Next, Error> {
        if !may_exist {
            intent.create_requested_at = None;
        }
        self.event(
            EventType::Warning,
            "CreateFailed",
            "Create",
            error_chain(&error),
        )
        .await;
        self.provider_failed(provider, session, intent, "create", error)
            .await
    }

    /// Looks for a session of ours that an interrupted create may have made, and adopts it.
    async fn adopt(&self, provider: &InUse) -> Result<Next, Error> {
        let mut next = status_change::current(self.session);
        match self.find_ours(provider).await {
            Ok(Some(found)) => return self.adopted(self.session, next, found).await,
            Ok(None) => {}
            Err(Error::Provider {
                source: qod::Error::Unsupported { .. },
                ..
            }) => {
                self.event(
                    EventType::Warning,
                    "LookupUnsupported",
                    "Adopt",
                    "this provider cannot list a device's sessions (CAMARA v0.10), so a session \
                     from an interrupted create cannot be found; creating a new one"
                        .to_owned(),
                )
                .await;
            }
            Err(Error::Provider { action, source }) => {
                return self
                    .provider_failed(provider, self.session, next, action, source)
                    .await;
            }
            Err(error) => return Err(error),
        }
        // No session of ours was found, or none could be looked for (the Event says so): the
        // next pass creates. The generation marks the intent answered, should it have come
        // from the metadata (see `crate::api::intent`).
        next.create_requested_at = None;
        next.observed_generation = self.generation();
        self.write_status(self.session, &next).await?;
        Ok(self.then(&next))
    }

    /// The provider's session whose sink names this resource, if any.
    async fn find_ours(&self, provider: &InUse) -> Result<Option<qod::SessionInfo>, Error> {
        let device = qod::Device::from(&self.spec().device);
        let sessions = provider
            .api
            .sessions_of_device(&device)
            .await
            .map_err(|source| Error::Provider {
                action: "look up the device's sessions",
                source,
            })?;
        Ok(sessions.into_iter().find(|s| {
            s.notification_url()
                .is_some_and(|url| super::Sink::is_sink_of(url, self.uid))
        }))
    }

    async fn adopted(
        &self,
        session: &QodSession,
        mut next: QodSessionStatus,
        found: qod::SessionInfo,
    ) -> Result<Next, Error> {
        tracing::Span::current().record("session_id", found.session_id.as_str());
        next.create_requested_at = None;
        // The session was made from the spec the create intent recorded, which may be older
        // than the current one: keep that fingerprint, so a change made meanwhile still
        // replaces it. Without one, its origin is unknown and the mismatch replaces it too.
        next.requested_duration = Some(next.requested_duration.unwrap_or(self.spec().duration));
        next.observed_generation = self.generation();
        status_change::record_session(&mut next, &found, self.generation(), self.now);
        self.write_status(session, &next).await?;
        self.event(
            EventType::Normal,
            "Adopted",
            "Adopt",
            format!(
                "found session {} from an interrupted create; adopted it instead of creating another",
                found.session_id
            ),
        )
        .await;
        Ok(self.then(&next))
    }

    /// Reads the session the annotation names and, when it is the session the spec describes,
    /// records it as this resource's; otherwise records why not and changes nothing at the
    /// provider. Its notifications go to whoever created it, so its status comes from reads.
    async fn import(&self, provider: &InUse, session_id: &str) -> Result<Next, Error> {
        let mut next = status_change::current(self.session);
        next.observed_generation = self.generation();
        let found = match provider.api.get_session(session_id).await {
            Ok(found) => found,
            Err(error) if error.is_not_found() => {
                let message = format!(
                    "the provider has no session {session_id} (annotation {SESSION_ID_ANNOTATION}); nothing was changed"
                );
                return self
                    .import_refused(next, session_id, reason::IMPORT_NOT_FOUND, message)
                    .await;
            }
            Err(error) => {
                return self
                    .provider_failed(
                        provider,
                        self.session,
                        next,
                        "read the session to import",
                        error,
                    )
                    .await;
            }
        };
        let differences = import::differences(self.spec(), &found);
        if !differences.is_empty() {
            let listed: Vec<String> = differences.iter().map(ToString::to_string).collect();
            let message = format!(
                "session {session_id} differs from the spec in {}; nothing was changed",
                listed.join("; ")
            );
            return self
                .import_refused(next, session_id, reason::IMPORT_MISMATCH, message)
                .await;
        }
        tracing::Span::current().record("session_id", session_id);
        if next.session_id.as_deref() != Some(session_id) {
            // Observe moved to another session: nothing of the last one carries over.
            status_change::forget_session(&mut next);
        }
        next.session_fingerprint = Some(self.spec().session_fingerprint().into());
        next.provider = provider.recorded_as.as_deref().map(Box::from);
        next.requested_duration = Some(found.duration.unwrap_or(self.spec().duration));
        next.import = Some(Box::new(ImportRecord {
            session_id: session_id.to_owned(),
            outcome: ImportOutcome::Imported,
        }));
        status_change::record_session(&mut next, &found, self.generation(), self.now);
        self.write_status(self.session, &next).await?;
        let how = match self.spec().management_policy {
            ManagementPolicy::Manage => "managing it from now on",
            ManagementPolicy::Observe => "observing it",
        };
        self.event(
            EventType::Normal,
            "Imported",
            "Import",
            format!("session {session_id} matches the spec; {how}"),
        )
        .await;
        Ok(self.then(&next))
    }

    /// An import refused: say why in `Ready` (with a Warning Event when the reason is new) and
    /// wait for the spec or the annotation to change.
    async fn import_refused(
        &self,
        mut next: QodSessionStatus,
        session_id: &str,
        reason: &'static str,
        message: String,
    ) -> Result<Next, Error> {
        if next.session_id.is_some() {
            // Observe: the session shown so far is no longer the one the resource names.
            status_change::forget_session(&mut next);
        }
        next.import = Some(Box::new(ImportRecord {
            session_id: session_id.to_owned(),
            outcome: ImportOutcome::Refused,
        }));
        status_change::clear_failures(&mut next);
        let refusal = StepRefusal {
            reason,
            message,
            warning: Some("Import"),
            retry: Retry::AsPlanned,
        };
        self.refuse(next, refusal).await
    }

    /// deletionPolicy Orphan: the session stays at the provider; only the finalizer goes.
    async fn orphan(&self, session_id: &str) -> Result<Next, Error> {
        self.event(
            EventType::Normal,
            "Orphaned",
            "Delete",
            format!("left session {session_id} at the provider (deletionPolicy Orphan)"),
        )
        .await;
        self.remove_finalizer().await
    }

    /// The annotation qod.dev/paused is set: say so, call nothing, and wait for it to go (its
    /// removal is a change of the resource, which brings it back).
    async fn pause(&self) -> Result<Next, Error> {
        let mut next = status_change::current(self.session);
        let paused = conditions::find(&next.conditions, conditions::PAUSED)
            .is_some_and(|c| c.status == "True");
        if !paused {
            conditions::set(
                &mut next.conditions,
                Condition {
                    type_: conditions::PAUSED.to_owned(),
                    status: "True".to_owned(),
                    reason: reason::PAUSED.to_owned(),
                    message: format!(
                        "annotation {PAUSED_ANNOTATION} is set: no provider call until it is removed"
                    ),
                    observed_generation: self.generation(),
                    last_transition_time: Time(self.now),
                },
            );
            self.write_status(self.session, &next).await?;
        }
        Ok(Next::OnChange)
    }

    /// Observe without the annotation: nothing to read until it is set.
    async fn missing_session_id(&self) -> Result<Next, Error> {
        let refusal = StepRefusal {
            reason: reason::SESSION_ID_REQUIRED,
            message: format!(
                "managementPolicy Observe needs the annotation {SESSION_ID_ANNOTATION} naming the session to observe"
            ),
            warning: None,
            retry: Retry::OnChange,
        };
        self.refuse(status_change::current(self.session), refusal)
            .await
    }

    async fn refresh(&self, provider: &InUse, session_id: &str) -> Result<Next, Error> {
        let mut next = status_change::current(self.session);
        next.observed_generation = self.generation();
        match provider.api.get_session(session_id).await {
            Ok(info) => {
                status_change::record_session(&mut next, &info, self.generation(), self.now);
                let stored = status_change::current(self.session);
                let mut as_stored = next.clone();
                as_stored.last_synced_at.clone_from(&stored.last_synced_at);
                // A status without a sync time asks for a read to be recorded; otherwise a read
                // with nothing new but its time is remembered, not written. Compared as stored
                // (times in whole seconds), as `write_status` would.
                let unchanged = serde_json::to_value(&as_stored)
                    .ok()
                    .zip(serde_json::to_value(&stored).ok())
                    .is_some_and(|(new, old)| status_change::merge_diff(&old, &new).is_none());
                // A Paused condition left from before the resume must be written away.
                let resumed = !self.session.is_paused()
                    && conditions::find(&stored.conditions, conditions::PAUSED).is_some();
                if stored.last_synced_at.is_some() && unchanged && !resumed {
                    self.context.quiet_reads.update(
                        self.uid,
                        |uid| self.context.cache.by_uid(uid).is_some(),
                        |read| *read = Some(self.now),
                    );
                    debug!("read the session: nothing new");
                    return Ok(self.then(&next));
                }
            }
            Err(error) if error.is_not_found() => {
                status_change::record_session_gone(&mut next, self.generation(), self.now);
            }
            Err(error) => {
                return self
                    .provider_failed(provider, self.session, next, "read the session", error)
                    .await;
            }
        }
        self.write_status(self.session, &next).await?;
        Ok(self.then(&next))
    }

    async fn extend(
        &self,
        provider: &InUse,
        session_id: &str,
        seconds: u32,
        why: ExtendReason,
    ) -> Result<Next, Error> {
        let mut next = status_change::current(self.session);
        next.observed_generation = self.generation();
        match provider.api.extend_session(session_id, seconds).await {
            Ok(info) => {
                // Recorded through conflicts: a lost record would extend a second time.
                let requested = next
                    .requested_duration
                    .unwrap_or(self.spec().duration)
                    .saturating_add(seconds);
                let extended = |status: &mut QodSessionStatus| {
                    status.observed_generation = self.generation();
                    status.requested_duration = Some(requested);
                    // The provider caps a session at its profile's maximum; asking again is
                    // futile.
                    let granted = info.duration.filter(|granted| *granted < requested);
                    status.extension_capped = granted.is_some();
                    status.extension_capped_reason = granted.map(|granted| {
                        format!("the provider granted {granted} s of the {requested} s asked")
                            .into()
                    });
                    status_change::record_session(status, &info, self.generation(), self.now);
                };
                let still_ours =
                    |status: &QodSessionStatus| status.session_id.as_deref() == Some(session_id);
                let next = self
                    .record_outcome(self.session, still_ours, extended)
                    .await?;
                let why = match why {
                    ExtendReason::DurationRaised => "duration raised",
                    ExtendReason::AutoExtend => "autoExtend",
                };
                self.event(
                    EventType::Normal,
                    "Extended",
                    "Extend",
                    format!("extended session {session_id} by {seconds} s ({why})"),
                )
                .await;
                Ok(self.then(&next))
            }
            Err(error) if error.status() == Some(409) || error.is_not_found() => {
                // The session is no longer AVAILABLE: read what it is now.
                next.last_synced_at = None;
                self.write_status(self.session, &next).await?;
                Ok(self.then(&next))
            }
            Err(error) => {
                self.provider_failed(provider, self.session, next, "extend the session", error)
                    .await
            }
        }
    }

    async fn delete(
        &self,
        provider: &InUse,
        session_id: &str,
        why: DeleteReason,
    ) -> Result<Next, Error> {
        match provider.api.delete_session(session_id).await {
            Ok(()) => {}
            Err(error) if error.is_not_found() => {}
            Err(error) => {
                let next = status_change::current(self.session);
                return self
                    .provider_failed(provider, self.session, next, "delete the session", error)
                    .await;
            }
        }
        let (event_reason, message) = match why {
            DeleteReason::Finalize => ("Deleted", format!("deleted session {session_id}")),
            DeleteReason::Replace => (
                "Replaced",
                format!(
                    "deleted session {session_id}: device, application server, ports or profile \
                     changed; creating a new one"
                ),
            ),
            DeleteReason::Renew => (
                "Renewing",
                format!("deleted ended session {session_id}; creating a new one"),
            ),
        };
        self.event(EventType::Normal, event_reason, "Delete", message)
            .await;
        if why == DeleteReason::Finalize {
            return self.remove_finalizer().await;
        }
        let (why_ready, text) = match why {
            DeleteReason::Replace => (reason::REPLACING, "replacing the session"),
            _ => (reason::CREATING, "creating a new session"),
        };
        let deleted = |status: &mut QodSessionStatus| {
            status_change::forget_session(status);
            status.observed_generation = self.generation();
            status_change::set_ready(
                status,
                "False",
                why_ready,
                text,
                self.generation(),
                self.now,
            );
        };
        let still_ours =
            |status: &QodSessionStatus| status.session_id.as_deref() == Some(session_id);
        let next = self
            .record_outcome(self.session, still_ours, deleted)
            .await?;
        Ok(self.then(&next))
    }

    /// Records in status the outcome of a provider call that took effect. A conflict means
    /// someone wrote the resource in between (the webhook with the network's news, a user
    /// editing it): the outcome is applied again to a fresh read rather than lost, since a lost
    /// create leads to a lookup (or, without one, a second billable session) and a lost delete
    /// leaves status naming a session that no longer exists. Nothing is written when the fresh
    /// status is no longer about this session (`still_ours`). Returns the status as stored.
    async fn record_outcome(
        &self,
        base: &QodSession,
        still_ours: impl Fn(&QodSessionStatus) -> bool,
        apply: impl Fn(&mut QodSessionStatus),
    ) -> Result<QodSessionStatus, Error> {
        let mut next = status_change::current(base);
        apply(&mut next);
        let mut written = self.write_status(base, &next).await;
        for _ in 1..OUTCOME_WRITE_ATTEMPTS {
            match written {
                Err(Error::Kube {
                    source: kube::Error::Api(ref refused),
                    ..
                }) if refused.code == 409 => {}
                other => return other.map(|_| next),
            }
            let fresh = self
                .api
                .get(&base.name_any())
                .await
                .map_err(|source| Error::Kube {
                    action: "re-read after a conflict",
                    source,
                })?;
            next = status_change::current(&fresh);
            if !still_ours(&next) {
                info!(
                    recorded = next.session_id.as_deref(),
                    "status now names another session; this outcome is not recorded"
                );
                return Ok(next);
            }
            apply(&mut next);
            written = self.write_status(&fresh, &next).await;
        }
        written.map(|_| next)
    }

    /// Records a provider failure in status (`Ready`, when to try again) and comes back then.
    /// The retry time lives in status so that our own status writes, which re-trigger the
    /// controller at once, cannot turn a failing call into a hot loop.
    async fn provider_failed(
        &self,
        provider: &InUse,
        base: &QodSession,
        mut next: QodSessionStatus,
        action: &'static str,
        error: qod::Error,
    ) -> Result<Next, Error> {
        next.observed_generation = self.generation();
        // The wait starts when the call failed, not when the pass began: a call that timed out
        // after 30 s must not have used its whole backoff up already.
        let wait = status_change::record_error(
            &mut next,
            action,
            &error,
            provider.health.failures_in_a_row(),
            self.generation(),
            Timestamp::now(),
        );
        warn!(
            error = %error_chain(&error),
            provider = provider.label(),
            retry_in = ?wait,
            failures = next.consecutive_failures,
            "{action} failed"
        );
        self.write_status(base, &next).await?;
        Ok(Next::After(wait))
    }

    /// Nothing to do at the provider; keep `observedGeneration` current.
    async fn wait(&self, after: Option<Duration>) -> Result<Next, Error> {
        let mut next = status_change::current(self.session);
        next.observed_generation = self.generation();
        self.write_status(self.session, &next).await?;
        Ok(after.map_or(Next::OnChange, Next::After))
    }

    fn has_finalizer(&self) -> bool {
        self.session.finalizers().iter().any(|f| f == FINALIZER)
    }

    async fn add_finalizer(&self) -> Result<Next, Error> {
        self.patch_metadata(None, "add the finalizer to").await?;
        Ok(Next::After(Duration::ZERO))
    }

    /// Adds the finalizer and the first create's intent in one write.
    async fn add_finalizer_with_intent(&self, provider: &InUse) -> Result<QodSession, Error> {
        let intent = CreateIntent {
            requested_at: Time(self.now),
            session_fingerprint: self.spec().session_fingerprint(),
            duration: self.spec().duration,
            generation: self.generation(),
            provider: provider.recorded_as.clone(),
        };
        self.patch_metadata(Some(intent), "add the finalizer and the create intent to")
            .await
    }

    /// Removes our finalizer by a JSON patch that first tests it is still at the index we saw.
    /// Unlike a resourceVersion guard, this does not conflict with the status writes that
    /// follow a deletion (the provider's notification, through the webhook), which would
    /// otherwise send the pass round again to a second DELETE; the test still keeps a
    /// finalizer list that someone else changed meanwhile from being cut at the wrong place.
    async fn remove_finalizer(&self) -> Result<Next, Error> {
        let action = "remove the finalizer from";
        let patch = finalizers::removal(self.session, FINALIZER).map_err(|e| Error::Kube {
            action,
            source: kube::Error::SerdeError(e),
        })?;
        let Some(patch) = patch else {
            return Ok(Next::OnChange);
        };
        match self
            .api
            .patch(
                &self.session.name_any(),
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await
        {
            Ok(_) => self.remember(OwnWrite::FinalizerRemoved),
            // Already gone: nothing left to hold.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(Error::Kube { action, source }),
        }
        Ok(Next::OnChange)
    }

    /// Adds our finalizer (and `intent`, when given), guarded by the resourceVersion the
    /// finalizer list was read at, so a finalizer another controller added meanwhile is never
    /// dropped.
    async fn patch_metadata(
        &self,
        intent: Option<CreateIntent>,
        action: &'static str,
    ) -> Result<QodSession, Error> {
        let mut patch = finalizers::addition(self.session, FINALIZER);
        if let Some(intent) = intent {
            patch["metadata"]["annotations"] = json!({ CREATE_INTENT: intent.to_annotation() });
        }
        self.api
            .patch(
                &self.session.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .inspect(|stored| self.wrote(self.session, stored))
            .map_err(|source| Error::Kube { action, source })
    }

    /// Writes `next` over the status of `base` when it differs: a merge patch with explicit
    /// nulls, guarded by `base`'s resourceVersion. Returns the stored object when it wrote.
    async fn write_status(
        &self,
        base: &QodSession,
        next: &QodSessionStatus,
    ) -> Result<Option<QodSession>, Error> {
        let action = "write the status of";
        let to_json = |s: &QodSessionStatus| {
            serde_json::to_value(s).map_err(|e| Error::Kube {
                action,
                source: kube::Error::SerdeError(e),
            })
        };
        let old = match &base.status {
            Some(status) => to_json(status)?,
            None => json!({}),
        };
        // The first write after the annotation qod.dev/paused is gone says so.
        let resumed;
        let next = if self.session.is_paused()
            || conditions::find(&next.conditions, conditions::PAUSED).is_none()
        {
            next
        } else {
            let mut unpaused = next.clone();
            unpaused
                .conditions
                .retain(|c| c.type_ != conditions::PAUSED);
            resumed = unpaused;
            &resumed
        };
        let Some(diff) = status_change::merge_diff(&old, &to_json(next)?) else {
            return Ok(None);
        };
        let patch = json!({
            "metadata": {"resourceVersion": base.resource_version()},
            "status": diff,
        });
        let params = PatchParams {
            field_manager: Some(CONTROLLER_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        let stored = self
            .api
            .patch_status(&base.name_any(), &params, &Patch::Merge(&patch))
            .await
            .map_err(|source| Error::Kube { action, source })?;
        self.wrote(base, &stored);
        Ok(Some(stored))
    }

    /// Remembers our write of `stored` over `base` for the next pass (see [`OwnWrite`]).
    fn wrote(&self, base: &QodSession, stored: &QodSession) {
        if let (Some(over), Some(written)) = (base.resource_version(), stored.resource_version()) {
            self.remember(OwnWrite::Wrote { over, written });
        }
    }

    fn remember(&self, write: OwnWrite) {
        let cache = &self.context.cache;
        self.context.own_writes.update(
            self.uid,
            |uid| cache.by_uid(uid).is_some(),
            |entry| *entry = write,
        );
    }

    /// What status.applicationServer shows for a session created now.
    fn server_in_use(&self) -> Option<ApplicationServerStatus> {
        match &self.service {
            Some(Resolution::Found { addresses, via }) => Some(ApplicationServerStatus {
                ipv4_address: addresses.ipv4.clone(),
                ipv6_address: addresses.ipv6.clone(),
                source: Some(via.clone()),
            }),
            _ => None,
        }
    }

    /// The create request for a session of `duration` seconds.
    fn session_request(&self, duration: u32) -> SessionRequest {
        let spec = self.spec();
        let expires = self.now + SignedDuration::from_secs(i64::from(duration)) + TOKEN_GRACE;
        SessionRequest {
            device: qod::Device::from(&spec.device),
            application_server: qod::ApplicationServer::from(&spec.application_server),
            device_ports: spec.device_ports.as_deref().map(qod::PortsSpec::from),
            application_server_ports: spec
                .application_server_ports
                .as_deref()
                .map(qod::PortsSpec::from),
            qos_profile: spec.qos_profile.to_string(),
            duration,
            notification: Some(NotificationTarget {
                url: self.context.sink.url_for(self.uid),
                token: self.context.sink.tokens.token_for(self.uid),
                token_expires_at: expires,
            }),
        }
    }

    /// Publishes an Event; a failure to record it is logged, never fatal.
    async fn event(&self, type_: EventType, reason: &str, action: &str, note: String) {
        match type_ {
            EventType::Normal => info!(reason, "{note}"),
            EventType::Warning => warn!(reason, "{note}"),
        }
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: action.to_owned(),
            secondary: None,
        };
        let reference = self.session.object_ref(&());
        if let Err(error) = self.context.events.publish(&event, &reference).await {
            warn!(error = %error, "could not record an Event");
        }
    }
}
