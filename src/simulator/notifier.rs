//! Notification delivery: one worker per session with a sink POSTs each status change as a
//! CloudEvent, in order, retrying with capped exponential backoff.
//!
//! The body comes from [`crate::qod::event::render`] in the session's format; the request
//! carries `Content-Type: application/cloudevents+json` and, when the session has a
//! credential, `Authorization: Bearer <token>`. Faults set through `/_sim/faults` act here:
//! dropped and duplicated deliveries, and reordering (an event is held back briefly and sent
//! after the next one of the same session). Every delivery is recorded on its session for
//! `/_sim/sessions` and counted in `/_sim/stats`. Tokens never reach the logs.

use std::{sync::Arc, time::Duration};

use axum::http::{HeaderValue, StatusCode, header};
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{SimulatorState, faults::Faults};
use crate::qod::{
    event::{NotificationFormat, RenderedEvent, render},
    model::{QosStatus, StatusInfo},
};

/// The media type of a structured-mode CloudEvent.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
/// How long a held event waits for a later one when notifications are reordered.
const REORDER_HOLD: Duration = Duration::from_secs(1);

/// Where a session's notifications go and how the simulator authenticates to it.
#[derive(Clone, Debug)]
pub struct Callback {
    pub url: reqwest::Url,
    /// The full `Authorization` header value (`Bearer ...`).
    pub authorization: Option<SecretString>,
    /// `sinkCredential.accessTokenExpiresUtc`: after it, nothing is sent.
    pub credential_expires_at: Option<Timestamp>,
}

/// Retries of a notification whose sink answered non-2xx or could not be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per notification, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled after each failure.
    pub initial_backoff: Duration,
    /// The longest wait between attempts.
    pub max_backoff: Duration,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A status change waiting to be sent.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub event_id: String,
    pub qos_status: QosStatus,
    pub status_info: Option<StatusInfo>,
    pub time: Timestamp,
}

/// What became of one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Queued or being retried.
    Pending,
    /// The sink answered 2xx.
    Delivered,
    /// Every attempt failed, or the sink answered 410 Gone.
    Failed,
    /// Dropped on purpose (the `dropNotificationRate` fault).
    Dropped,
    /// Not sent: the sink credential had expired.
    CredentialExpired,
}

/// One delivery of one event, as `/_sim/sessions` shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub event_id: String,
    pub qos_status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_info: Option<String>,
    pub time: Timestamp,
    pub outcome: Outcome,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// A second copy sent by the `duplicateNotificationRate` fault.
    pub duplicate: bool,
}

impl Delivery {
    pub fn pending(event: &Outgoing, duplicate: bool) -> Self {
        Self {
            event_id: event.event_id.clone(),
            qos_status: event.qos_status.to_string(),
            status_info: event.status_info.as_ref().map(ToString::to_string),
            time: event.time,
            outcome: Outcome::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            duplicate,
        }
    }

    pub fn fail(&mut self, reason: &str) {
        self.outcome = Outcome::Failed;
        self.last_error = Some(reason.to_owned());
    }
}

/// Everything a worker needs to reach its sink.
struct Worker {
    shared: Arc<SimulatorState>,
    session_id: Uuid,
    callback: Callback,
    format: NotificationFormat,
    /// The CloudEvent `source`: the session's URL at the simulator.
    source: String,
    cancel: CancellationToken,
}

/// Starts the notifier of one session; status changes are sent through the returned sender.
/// The worker stops when the sender is dropped (after sending what is queued) or on cancel.
pub(super) fn start(
    shared: &Arc<SimulatorState>,
    session_id: Uuid,
    callback: Callback,
    format: NotificationFormat,
    source: String,
) -> UnboundedSender<Outgoing> {
    let (sender, receiver) = unbounded_channel();
    let worker = Worker {
        shared: Arc::clone(shared),
        session_id,
        callback,
        format,
        source,
        cancel: shared.generation(),
    };
    shared.tasks.spawn(worker.run(receiver));
    sender
}

enum Next {
    Event(Outgoing),
    HoldExpired,
    Closed,
}

impl Worker {
    async fn run(self, mut receiver: UnboundedReceiver<Outgoing>) {
        let mut held: Option<Outgoing> = None;
        loop {
            let next = tokio::select! {
                () = self.cancel.cancelled() => return,
                next = receive(&mut receiver, held.is_some()) => next,
            };
            match next {
                Next::Event(event) => {
                    if self.shared.faults().reorder_notifications {
                        match held.take() {
                            // The later event overtakes the held one.
                            Some(previous) => {
                                self.dispatch(event).await;
                                self.dispatch(previous).await;
                            }
                            None => held = Some(event),
                        }
                    } else {
                        if let Some(previous) = held.take() {
                            self.dispatch(previous).await;
                        }
                        self.dispatch(event).await;
                    }
                }
                Next::HoldExpired => {
                    if let Some(previous) = held.take() {
                        self.dispatch(previous).await;
                    }
                }
                Next::Closed => {
                    if let Some(previous) = held.take() {
                        self.dispatch(previous).await;
                    }
                    return;
                }
            }
        }
    }

    /// Applies the drop and duplicate faults, then delivers.
    async fn dispatch(&self, event: Outgoing) {
        let faults = self.shared.faults();
        if Faults::draw(faults.drop_notification_rate) {
            tracing::info!(session_id = %self.session_id, event_id = %event.event_id,
                "notification dropped (fault injection)");
            self.finish(&event.event_id, false, Outcome::Dropped, None, None);
            return;
        }
        self.deliver(&event, false).await;
        if Faults::draw(faults.duplicate_notification_rate) {
            self.shared
                .record(self.session_id, Delivery::pending(&event, true));
            self.shared.stats.notification_duplicated();
            self.deliver(&event, true).await;
        }
    }

    /// Sends one event, retrying per the policy.
    async fn deliver(&self, event: &Outgoing, duplicate: bool) {
        let policy = self.shared.config.notification_retry;
        let body = render(
            self.format,
            &RenderedEvent {
                id: &event.event_id,
                source: &self.source,
                time: event.time,
                session_id: &self.session_id.to_string(),
                qos_status: &event.qos_status,
                status_info: event.status_info.as_ref(),
            },
        )
        .to_string();
        let attempts = policy.attempts.max(1);
        let mut last_status = None;
        let mut last_error = None;
        for attempt in 1..=attempts {
            if let Some(expires) = self.callback.credential_expires_at
                && expires <= self.shared.clock.wall_now()
            {
                tracing::warn!(session_id = %self.session_id, event_id = %event.event_id,
                    "notification not sent: the sink credential has expired");
                self.finish(
                    &event.event_id,
                    duplicate,
                    Outcome::CredentialExpired,
                    None,
                    Some("the sink credential has expired".to_owned()),
                );
                return;
            }
            self.shared.stats.notification_attempted();
            let result = tokio::select! {
                () = self.cancel.cancelled() => return,
                result = self.post(body.clone()) => result,
            };
            self.shared
                .update(self.session_id, &event.event_id, duplicate, |d| {
                    d.attempts = attempt;
                });
            match result {
                Ok(status) if status.is_success() => {
                    tracing::info!(session_id = %self.session_id, event_id = %event.event_id,
                        qos_status = %event.qos_status, attempt, "notification delivered");
                    self.finish(
                        &event.event_id,
                        duplicate,
                        Outcome::Delivered,
                        Some(status.as_u16()),
                        None,
                    );
                    return;
                }
                Ok(StatusCode::GONE) => {
                    tracing::info!(session_id = %self.session_id, event_id = %event.event_id,
                        "the sink answered 410 Gone; not retrying");
                    self.finish(
                        &event.event_id,
                        duplicate,
                        Outcome::Failed,
                        Some(StatusCode::GONE.as_u16()),
                        Some("the sink is gone".to_owned()),
                    );
                    return;
                }
                Ok(status) => {
                    last_status = Some(status.as_u16());
                    last_error = Some(format!("the sink answered {status}"));
                }
                Err(error) => {
                    last_error = Some(error);
                }
            }
            tracing::debug!(session_id = %self.session_id, event_id = %event.event_id, attempt,
                error = last_error.as_deref().unwrap_or_default(), "notification attempt failed");
            self.shared
                .update(self.session_id, &event.event_id, duplicate, |d| {
                    d.last_status = last_status;
                    d.last_error.clone_from(&last_error);
                });
            if attempt < attempts {
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = tokio::time::sleep(policy.backoff(attempt)) => {}
                }
            }
        }
        tracing::warn!(session_id = %self.session_id, event_id = %event.event_id, attempts,
            error = last_error.as_deref().unwrap_or_default(), "notification failed");
        self.finish(
            &event.event_id,
            duplicate,
            Outcome::Failed,
            last_status,
            last_error,
        );
    }

    async fn post(&self, body: String) -> Result<StatusCode, String> {
        let mut request = self
            .shared
            .http
            .post(self.callback.url.clone())
            .header(header::CONTENT_TYPE, CLOUDEVENTS_JSON)
            .timeout(self.shared.config.notification_retry.timeout)
            .body(body);
        if let Some(authorization) = &self.callback.authorization {
            let mut value = HeaderValue::from_str(authorization.expose_secret())
                .map_err(|_| "the Authorization value is not a valid header".to_owned())?;
            value.set_sensitive(true);
            request = request.header(header::AUTHORIZATION, value);
        }
        match request.send().await {
            Ok(response) => Ok(response.status()),
            Err(error) => Err(describe(&error)),
        }
    }

    fn finish(
        &self,
        event_id: &str,
        duplicate: bool,
        outcome: Outcome,
        status: Option<u16>,
        error: Option<String>,
    ) {
        self.shared.stats.notification_finished(outcome);
        self.shared
            .update(self.session_id, event_id, duplicate, |d| {
                d.outcome = outcome;
                if status.is_some() {
                    d.last_status = status;
                }
                if outcome == Outcome::Delivered {
                    d.last_error = None;
                } else if error.is_some() {
                    d.last_error.clone_from(&error);
                }
            });
    }
}

async fn receive(receiver: &mut UnboundedReceiver<Outgoing>, holding: bool) -> Next {
    let next = if holding {
        match tokio::time::timeout(REORDER_HOLD, receiver.recv()).await {
            Ok(next) => next,
            Err(_) => return Next::HoldExpired,
        }
    } else {
        receiver.recv().await
    };
    next.map_or(Next::Closed, Next::Event)
}

/// A short reason for a failed request, without the URL (it may carry secrets).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_request() {
        "request failed"
    } else {
        "failed"
    };
    match std::error::Error::source(error) {
        Some(cause) => format!("{kind}: {}", crate::telemetry::error_chain(cause)),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (1..=5).map(|a| policy.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        assert_eq!(policy.backoff(40), Duration::from_millis(500));
    }
}
