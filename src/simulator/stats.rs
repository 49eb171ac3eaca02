//! Counters for `GET /_sim/stats`: API requests by operation and HTTP status, tokens, and
//! notification outcomes. Tests use them to assert what a client did (for example that a
//! create was not re-sent) without scraping logs.

use std::{
    collections::BTreeMap,
    sync::{Mutex, PoisonError},
};

use serde::Serialize;

use super::notifier::Outcome;
use crate::qod::Operation;

/// Counts of notification deliveries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationCounts {
    /// HTTP requests made to sinks, retries included.
    pub attempts: u64,
    pub delivered: u64,
    pub failed: u64,
    /// Dropped by the fault, or not sent because the sink credential had expired.
    pub dropped: u64,
    /// Extra copies sent by the duplicate fault.
    pub duplicated: u64,
}

/// A snapshot of every counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    /// Operation (`create`, `get`, `delete`, `extend`, `retrieve_sessions`, and of the QoS
    /// Profiles API `retrieve_qos_profiles`, `get_qos_profile`) to HTTP status to count.
    pub api_requests: BTreeMap<&'static str, BTreeMap<String, u64>>,
    /// API requests by operation whose client went away before the answer (it timed out
    /// during `latencyMs` or `answerDelayMs`): never answered, so not in `apiRequests`. Those
    /// cut off during `latencyMs` did nothing.
    pub api_requests_abandoned: BTreeMap<&'static str, u64>,
    /// Sessions created, counted when the create takes effect: also those whose answer never
    /// reached the client (it gave up or died during `answerDelayMs`), which the 201s in
    /// `apiRequests` miss.
    pub sessions_created: u64,
    pub tokens_issued: u64,
    pub token_requests_rejected: u64,
    pub tokens_revoked: u64,
    pub notifications: NotificationCounts,
    /// Sessions currently held (filled in when the snapshot is served).
    pub live_sessions: usize,
}

/// The counters, shared by every handler and notifier.
#[derive(Debug, Default)]
pub struct Stats {
    inner: Mutex<StatsSnapshot>,
}

impl Stats {
    fn with<R>(&self, f: impl FnOnce(&mut StatsSnapshot) -> R) -> R {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    pub fn api_request(&self, operation: Operation, status: u16) {
        self.with(|s| {
            *s.api_requests
                .entry(operation.as_str())
                .or_default()
                .entry(status.to_string())
                .or_default() += 1;
        });
    }

    pub fn api_request_abandoned(&self, operation: Operation) {
        self.with(|s| {
            *s.api_requests_abandoned
                .entry(operation.as_str())
                .or_default() += 1
        });
    }

    pub fn session_created(&self) {
        self.with(|s| s.sessions_created += 1);
    }

    pub fn token_issued(&self) {
        self.with(|s| s.tokens_issued += 1);
    }

    pub fn token_rejected(&self) {
        self.with(|s| s.token_requests_rejected += 1);
    }

    pub fn tokens_revoked(&self, count: usize) {
        self.with(|s| s.tokens_revoked += count as u64);
    }

    pub fn notification_attempted(&self) {
        self.with(|s| s.notifications.attempts += 1);
    }

    pub fn notification_duplicated(&self) {
        self.with(|s| s.notifications.duplicated += 1);
    }

    pub fn notification_finished(&self, outcome: Outcome) {
        self.with(|s| match outcome {
            Outcome::Delivered => s.notifications.delivered += 1,
            Outcome::Failed => s.notifications.failed += 1,
            Outcome::Dropped | Outcome::CredentialExpired => s.notifications.dropped += 1,
            Outcome::Pending => {}
        });
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        self.with(|s| s.clone())
    }

    pub fn reset(&self) {
        self.with(|s| *s = StatsSnapshot::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_serialise_in_camel_case_by_operation_and_status() {
        let stats = Stats::default();
        stats.api_request(Operation::Create, 201);
        stats.api_request(Operation::Create, 201);
        stats.api_request(Operation::Create, 409);
        stats.api_request_abandoned(Operation::Get);
        stats.token_issued();
        stats.notification_finished(Outcome::Delivered);
        stats.notification_finished(Outcome::CredentialExpired);
        let value = serde_json::to_value(stats.snapshot()).unwrap();
        assert_eq!(
            value["apiRequests"],
            json!({"create": {"201": 2, "409": 1}})
        );
        assert_eq!(value["apiRequestsAbandoned"], json!({"get": 1}));
        assert_eq!(value["tokensIssued"], 1);
        assert_eq!(value["notifications"]["delivered"], 1);
        assert_eq!(value["notifications"]["dropped"], 1);
        stats.reset();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }
}
