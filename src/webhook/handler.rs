//! The two notification routes and what happens to one request:
//!
//! 1. a slot among the requests in flight, else 503 with `Retry-After`;
//! 2. `Authorization: Bearer <token>` (401): on `/notifications/{uid}` checked against the uid
//!    before anything else; on `/notifications` its presence first, its value once the event's
//!    session has led to a resource (a session no resource holds is answered as a wrong token
//!    is, unless the token is the static one, so ids cannot be probed);
//! 3. the content mode from the media type and `ce-*` headers (415), the size (413) and the
//!    time the body takes (408);
//! 4. parsing every shape providers send, structured ([`crate::qod::event`]) or binary
//!    ([`binary`]); 400 naming the field or header;
//! 5. per event, in order: find the resource, drop a duplicate seen recently, read the
//!    resource, [`decide`], and write the status ([`status_write`]), re-reading and deciding again
//!    when the write conflicts with another writer.
//!
//! 204 means every event is stored or was safely ignored (duplicate, stale). A batch is
//! answered with its worst outcome ([`Refusal::severity`]): 503 if any event could not be
//! stored (the rest are not tried; re-sending the batch is safe since stored events are then
//! duplicates), else 401, 404 or 409 for the first event refused that way; events before and
//! after a refused one are still applied.
//!
//! Metrics: `qod_operator_notifications_total{result}` counts each event once the body is
//! parsed, and each request refused before that (or timed out) once;
//! `qod_operator_notification_duration_seconds` observes every request.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use jiff::Timestamp;
use kube::{Api, Client};
use tokio::sync::Semaphore;

use super::{
    binary,
    decide::{Decision, decide},
    dedupe::Recent,
    limits::{self, Limits, Shape},
    problem::Refusal,
    sink_auth::{Authenticator, Presented},
    status_write::{self, StoreError},
};
use crate::{
    api::QodSession,
    cache::{Located, SessionCache},
    metrics::{Metrics, NotificationResult},
    qod::event::{EventError, StatusChanged, parse_batch, parse_event},
};

/// Reads and writes of one event before the webhook gives up on a resource that keeps
/// changing under it.
const MAX_ATTEMPTS: usize = 5;

/// How long a notification waits for the cache to show the create it answers (see
/// `past_pending_create`); well inside the provider's request timeout.
const PENDING_CREATE_WAIT: Duration = Duration::from_secs(2);

/// Everything the handlers share.
pub struct WebhookState {
    pub client: Client,
    pub auth: Authenticator,
    pub cache: SessionCache,
    pub recent: Recent,
    pub limits: Limits,
    pub in_flight: Arc<Semaphore>,
    pub metrics: Arc<Metrics>,
    /// Kept here so the background tasks live as long as any router serving this state.
    pub _tasks: super::Tasks,
}

/// `POST /notifications/{uid}`: the sink the controller registers for a resource.
pub async fn by_uid(
    State(shared): State<Arc<WebhookState>>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    shared.handle(Some(uid), headers, body).await
}

/// `POST /notifications`: the resource is found by the session id in the event.
pub async fn by_session(
    State(shared): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    shared.handle(None, headers, body).await
}

/// The detail of a structured single event that does not parse. A body without `type` is
/// most often a binary-mode event whose sender left out the `ce-*` headers, so say how that
/// mode is recognised.
fn structured_error(error: EventError) -> String {
    match error {
        EventError::Missing { field: "type" } => format!(
            "{error} (read in structured mode: no ce-* headers came; a binary-mode event carries \
             its attributes in ce-specversion, ce-id, ce-source and ce-type headers and its data \
             as the body)"
        ),
        other => other.to_string(),
    }
}

/// How one event ended, when it did not end in a refusal.
type EventOutcome = Result<NotificationResult, Refusal>;

impl WebhookState {
    async fn handle(&self, uid: Option<String>, headers: HeaderMap, body: Body) -> Response {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.limits.request_timeout;
        let response = match tokio::time::timeout_at(
            deadline,
            self.process(uid.as_deref(), &headers, body, deadline),
        )
        .await
        {
            Ok(response) => response,
            Err(_) => {
                self.metrics.notification(NotificationResult::Timeout);
                tracing::warn!(timeout = ?self.limits.request_timeout,
                    "a notification was not stored within the request timeout");
                Refusal::Unavailable(format!(
                    "the notification was not stored within {:?}; retry",
                    self.limits.request_timeout
                ))
                .into_response()
            }
        };
        self.metrics.notification_duration(started.elapsed());
        response
    }

    /// Counts and renders a refusal of the whole request.
    fn refuse(&self, refusal: Refusal) -> Response {
        self.metrics.notification(refusal.result());
        refusal.into_response()
    }

    async fn process(
        &self,
        uid: Option<&str>,
        headers: &HeaderMap,
        body: Body,
        deadline: tokio::time::Instant,
    ) -> Response {
        let presented = match Authenticator::presented(headers) {
            Ok(presented) => presented,
            Err(refusal) => {
                tracing::info!(uid, "notification refused: {}", refusal.detail());
                return self.refuse(refusal);
            }
        };
        if let Some(uid) = uid
            && let Err(refusal) = self.auth.check(uid, &presented)
        {
            tracing::warn!(uid, "notification refused: {}", refusal.detail());
            return self.refuse(refusal);
        }
        let shape = match limits::shape(headers) {
            Ok(shape) => shape,
            Err(refusal) => return self.refuse(refusal),
        };
        if let Err(refusal) = limits::check_declared_length(headers, self.limits.max_body_bytes) {
            return self.refuse(refusal);
        }
        let bytes = match tokio::time::timeout_at(
            deadline,
            limits::read_body(body, self.limits.max_body_bytes),
        )
        .await
        {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(refusal)) => return self.refuse(refusal),
            Err(_) => {
                return self.refuse(Refusal::BodyTimeout(format!(
                    "the body did not arrive within {:?}",
                    self.limits.request_timeout
                )));
            }
        };
        let parsed = match shape {
            Shape::Single => parse_event(&bytes)
                .map(|event| vec![event])
                .map_err(structured_error),
            Shape::Batch => parse_batch(&bytes).map_err(|error| error.to_string()),
            Shape::Binary => binary::parse(headers, &bytes)
                .map(|event| vec![event])
                .map_err(|error| error.to_string()),
        };
        let events = match parsed {
            Ok(events) => events,
            Err(error) => {
                tracing::info!(uid, error = %error, "notification refused: not a valid event");
                return self.refuse(Refusal::Invalid(error));
            }
        };
        // The cap guards the work that costs (reads and writes at the Kubernetes API), so it is
        // taken only once a whole, well-formed body is here: slow or bogus bodies hold a
        // connection until the request timeout, never a permit real notifications need.
        let Ok(_permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            return self.refuse(Refusal::Overloaded(format!(
                "more than {} notifications are being handled; retry",
                self.limits.max_in_flight
            )));
        };
        if !self.cache.has_synced() {
            return self.refuse(Refusal::Unavailable(
                "the webhook has not finished loading the QodSessions yet; retry".into(),
            ));
        }

        let mut worst: Option<Refusal> = None;
        for event in &events {
            let outcome = self.one(uid, &presented, event).await;
            let result = match &outcome {
                Ok(result) => *result,
                Err(refusal) => refusal.result(),
            };
            self.metrics.notification(result);
            if let Err(refusal) = outcome {
                let retryable = refusal.status() == StatusCode::SERVICE_UNAVAILABLE;
                if worst
                    .as_ref()
                    .is_none_or(|w| refusal.severity() > w.severity())
                {
                    worst = Some(refusal);
                }
                if retryable {
                    break;
                }
            }
        }
        match worst {
            None => StatusCode::NO_CONTENT.into_response(),
            Some(refusal) => refusal.into_response(),
        }
    }

    /// Handles one event of the request.
    async fn one(
        &self,
        uid: Option<&str>,
        presented: &Presented<'_>,
        event: &StatusChanged,
    ) -> EventOutcome {
        let located = match uid {
            Some(uid) => self.cache.by_uid(uid).ok_or_else(|| {
                tracing::info!(uid, session_id = %event.session_id,
                    "notification refused: no QodSession has this uid");
                Refusal::NotFound(format!("no QodSession has uid `{uid}`"))
            })?,
            None => {
                let Some(located) = self.cache.by_session(&event.session_id) else {
                    self.auth
                        .check_unknown_session(presented)
                        .inspect_err(|refusal| {
                            tracing::warn!(session_id = %event.session_id,
                                "notification refused: {} (no QodSession holds the session)",
                                refusal.detail());
                        })?;
                    tracing::info!(session_id = %event.session_id,
                        "notification refused: no QodSession holds this session");
                    return Err(Refusal::NotFound(format!(
                        "no QodSession holds session `{}`",
                        event.session_id
                    )));
                };
                self.auth
                    .check(&located.uid, presented)
                    .inspect_err(|refusal| {
                        tracing::warn!(namespace = %located.namespace, name = %located.name,
                        session_id = %event.session_id,
                        "notification refused: {}", refusal.detail());
                    })?;
                located
            }
        };

        let key = self
            .recent
            .key(&located.uid, event.source.as_deref(), event.id.as_deref());
        if let Some(key) = &key
            && self.recent.contains(key)
        {
            tracing::debug!(namespace = %located.namespace, name = %located.name,
                session_id = %event.session_id, event_id = ?event.id,
                "duplicate notification acknowledged");
            return Ok(NotificationResult::Duplicate);
        }

        let result = self.store(&located, event).await?;
        if let Some(key) = key {
            self.recent.insert(key);
        }
        Ok(result)
    }

    /// The cached copy of the resource, waited for while it shows the resource's create in
    /// flight. A provider that answers a create quickly can notify before our status write of
    /// its answer is in the cache; reading the resource then and refusing would cost a read,
    /// the provider a retry and the session the Retry-After. The wait is bounded: a create
    /// whose answer is slow to be recorded is still refused with 503.
    async fn past_pending_create(
        &self,
        located: &Located,
        event: &StatusChanged,
    ) -> Option<Arc<QodSession>> {
        let deadline = tokio::time::Instant::now() + PENDING_CREATE_WAIT;
        let mut cached = self.cache.get(located);
        while let Some(copy) = &cached {
            if decide(copy, event, Timestamp::now()) != Decision::SessionPending {
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let _held = self.metrics.awaiting_create();
            match self.cache.newer_than(located, copy, left).await {
                Some(newer) => cached = Some(newer),
                None => break,
            }
        }
        cached
    }

    /// Decides on the cached resource and writes; on a conflicting write, or when the cached
    /// copy would not take the event, reads the resource and decides again.
    ///
    /// The cached copy saves a read per notification. A write decided on it carries its
    /// resourceVersion, so a copy that lags behind the API costs a conflict, never a lost
    /// update; any other verdict (duplicate, stale, another session) could be the lag's, so it
    /// is only given on a fresh read.
    async fn store(&self, located: &Located, event: &StatusChanged) -> EventOutcome {
        let api: Api<QodSession> = Api::namespaced(self.client.clone(), &located.namespace);
        let name = format!("{}/{}", located.namespace, located.name);
        let mut cached = self.past_pending_create(located, event).await;
        for attempt in 1..=MAX_ATTEMPTS {
            let from_cache = cached.is_some();
            let resource = match cached.take() {
                Some(resource) => resource,
                None => match status_write::read(&api, located).await {
                    Ok(Some(resource)) => Arc::new(resource),
                    Ok(None) => {
                        return Err(Refusal::NotFound(format!(
                            "the QodSession {name} no longer exists"
                        )));
                    }
                    Err(error) => return Err(self.store_failure(&name, event, error)),
                },
            };
            let decision = decide(&resource, event, Timestamp::now());
            if from_cache && !matches!(decision, Decision::Apply(_)) {
                continue;
            }
            match decision {
                Decision::Apply(update) => {
                    match status_write::write(&api, located, &resource, &update).await {
                        Ok(()) => {
                            tracing::info!(namespace = %located.namespace, name = %located.name,
                                session_id = %event.session_id, qos_status = %update.qos_status,
                                status_info = update.status_info.as_deref().unwrap_or_default(),
                                event_id = ?event.id, "notification applied to status");
                            return Ok(NotificationResult::Applied);
                        }
                        Err(StoreError::Conflict) => {
                            tracing::debug!(namespace = %located.namespace, name = %located.name,
                                attempt, "status write conflicted; reading again");
                        }
                        Err(error) => return Err(self.store_failure(&name, event, error)),
                    }
                }
                Decision::Duplicate => {
                    tracing::debug!(namespace = %located.namespace, name = %located.name,
                        session_id = %event.session_id, event_id = ?event.id,
                        "notification already applied; acknowledged");
                    return Ok(NotificationResult::Duplicate);
                }
                Decision::Stale(why) => {
                    tracing::info!(namespace = %located.namespace, name = %located.name,
                        session_id = %event.session_id, event_id = ?event.id,
                        "stale notification acknowledged and ignored: {why}");
                    return Ok(NotificationResult::Stale);
                }
                Decision::NoSession => {
                    tracing::info!(namespace = %located.namespace, name = %located.name,
                        session_id = %event.session_id,
                        "notification refused: the resource holds no session");
                    return Err(Refusal::NotFound(format!(
                        "the QodSession {name} holds no session; session `{}` is unknown",
                        event.session_id
                    )));
                }
                Decision::OtherSession { held } => {
                    tracing::info!(namespace = %located.namespace, name = %located.name,
                        session_id = %event.session_id, held = %held,
                        "notification refused: the resource holds another session");
                    return Err(Refusal::Conflict(format!(
                        "the QodSession {name} holds session `{held}`, not `{}`",
                        event.session_id
                    )));
                }
                Decision::SessionPending => {
                    tracing::info!(namespace = %located.namespace, name = %located.name,
                        session_id = %event.session_id,
                        "notification deferred: the resource's session is being created");
                    return Err(Refusal::Unavailable(format!(
                        "the QodSession {name} is creating its session and has not recorded `{}` yet; retry",
                        event.session_id
                    )));
                }
            }
        }
        Err(Refusal::Unavailable(format!(
            "the QodSession {name} kept changing while the notification was written; retry"
        )))
    }

    fn store_failure(&self, name: &str, event: &StatusChanged, error: StoreError) -> Refusal {
        match error {
            StoreError::Gone => {
                Refusal::NotFound(format!("the QodSession {name} no longer exists"))
            }
            StoreError::Conflict => Refusal::Unavailable(format!(
                "the QodSession {name} changed while the notification was written; retry"
            )),
            StoreError::Unavailable(source) => {
                tracing::warn!(resource = name, session_id = %event.session_id,
                    error = &source as &dyn std::error::Error,
                    "the Kubernetes API could not take a notification; the provider is asked to retry");
                Refusal::Unavailable(
                    "the Kubernetes API could not take the status update; retry".into(),
                )
            }
            StoreError::Rejected(source) => {
                tracing::error!(resource = name, session_id = %event.session_id,
                    error = &source as &dyn std::error::Error,
                    "the Kubernetes API refused the webhook's status update");
                Refusal::Internal(format!(
                    "the Kubernetes API refused the status update of {name}"
                ))
            }
        }
    }
}
