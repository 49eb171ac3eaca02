//! The operator's Prometheus metrics: one registry for the whole process, every metric
//! registered up front with the `qod_operator_` prefix (docs/architecture.md, "Operations"), so
//! each part only records. Served as text by the probe server's `/metrics` ([`Metrics::encode`]).
//!
//! Labels are bounded: operations, outcomes, error categories, HTTP status codes and the
//! network's status words (unknown words fold into `other`). Never a name, uid or session id.

use std::{fmt, time::Duration};

use prometheus_client::{
    encoding::{EncodeLabelSet, text},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info},
    registry::{Registry, Unit},
};

/// The media type of [`Metrics::encode`]'s output (OpenMetrics text, which Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What became of one notification (or of a request refused before its events were read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationResult {
    /// Written to the resource's status.
    Applied,
    /// The same event (`source`, `id`) was applied before; acknowledged, nothing written.
    Duplicate,
    /// Older than the status already holds; acknowledged, nothing written.
    Stale,
    /// Missing or wrong bearer token.
    Unauthorized,
    /// No resource with that uid, or no resource holds that session.
    NotFound,
    /// The resource holds another session.
    Conflict,
    /// The body is not a notification the operator understands.
    Invalid,
    /// The media type is not a (batch of) CloudEvent(s) in JSON.
    UnsupportedMedia,
    /// The body exceeds the size limit.
    TooLarge,
    /// The Kubernetes API could not take the write (or is not synced yet); the provider retries.
    Unavailable,
    /// Too many requests in flight.
    Overloaded,
    /// The request did not finish within the time limit.
    Timeout,
    /// The operator failed in a way a retry does not fix (a bug; see the logs).
    Internal,
}

impl NotificationResult {
    /// Every result, so each label value exists (at zero) from the start.
    pub const ALL: [Self; 13] = [
        Self::Applied,
        Self::Duplicate,
        Self::Stale,
        Self::Unauthorized,
        Self::NotFound,
        Self::Conflict,
        Self::Invalid,
        Self::UnsupportedMedia,
        Self::TooLarge,
        Self::Unavailable,
        Self::Overloaded,
        Self::Timeout,
        Self::Internal,
    ];

    /// The `result` label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Invalid => "invalid",
            Self::UnsupportedMedia => "unsupported_media",
            Self::TooLarge => "too_large",
            Self::Unavailable => "unavailable",
            Self::Overloaded => "overloaded",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for NotificationResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
    operation: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderOperationLabels {
    provider: String,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QosStatusLabel {
    qos_status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// The `qos_status` label values of `qod_operator_sessions`.
pub const SESSION_STATES: [&str; 5] = ["REQUESTED", "AVAILABLE", "UNAVAILABLE", "none", "other"];

/// Buckets for the webhook's answer time: a notification is one read and one write.
const NOTIFICATION_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Buckets for one reconcile pass (at most one provider call plus a status write).
const RECONCILE_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];
/// Buckets for one provider call (network latency, OAuth token fetches, timeouts).
const PROVIDER_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// The process's metrics. Create one at start and share it (`Arc<Metrics>`); recording is
/// lock-free.
pub struct Metrics {
    registry: Registry,
    notifications: Family<ResultLabel, Counter>,
    notification_duration: Histogram,
    reconcile_duration: Histogram,
    reconciliations: Family<OutcomeLabel, Counter>,
    reconcile_errors: Family<ErrorLabel, Counter>,
    reconcile_conflicts: Counter,
    provider_requests: Family<ProviderLabels, Counter>,
    provider_request_duration: Family<ProviderOperationLabels, Histogram>,
    sessions: Family<QosStatusLabel, Gauge>,
    leader: Gauge,
    notifications_awaiting_create: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric, `qod_operator_build_info` carrying this crate's version.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("qod_operator");

        let notifications = Family::<ResultLabel, Counter>::default();
        registry.register(
            "notifications",
            "Notifications received by the webhook, by result",
            notifications.clone(),
        );
        for result in NotificationResult::ALL {
            // Touch every label value so dashboards see zeros rather than gaps.
            let _ = notifications.get_or_create(&ResultLabel {
                result: result.as_str(),
            });
        }
        let notification_duration = Histogram::new(NOTIFICATION_BUCKETS);
        registry.register_with_unit(
            "notification_duration",
            "Time the webhook took to answer a notification request",
            Unit::Seconds,
            notification_duration.clone(),
        );

        let reconcile_duration = Histogram::new(RECONCILE_BUCKETS);
        registry.register_with_unit(
            "reconcile_duration",
            "Time of one reconcile pass",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconciliations = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "reconciliations",
            "Reconcile passes, by outcome",
            reconciliations.clone(),
        );
        let reconcile_errors = Family::<ErrorLabel, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconcile passes, by error category",
            reconcile_errors.clone(),
        );
        // Shown at zero from the start, so dashboards and alerts see the series before the
        // first failure (provider failures are recorded in status, not counted here).
        let _ = reconcile_errors.get_or_create(&ErrorLabel {
            error: "kubernetes",
        });
        let reconcile_conflicts = Counter::default();
        registry.register(
            "reconcile_conflicts",
            "Reconcile passes whose write met a newer resource (409) and that were planned again; \
             optimistic locking at work, not failures",
            reconcile_conflicts.clone(),
        );

        let provider_requests = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "provider_requests",
            "Calls to QoD providers, by provider (`default` for the flags' one, else `<kind>/[<namespace>/]<name>`), operation and HTTP status code (`none` when no answer came)",
            provider_requests.clone(),
        );
        let provider_request_duration =
            Family::<ProviderOperationLabels, Histogram>::new_with_constructor(
                provider_histogram as fn() -> Histogram,
            );
        registry.register_with_unit(
            "provider_request_duration",
            "Time of one call to a QoD provider, by provider and operation",
            Unit::Seconds,
            provider_request_duration.clone(),
        );

        let sessions = Family::<QosStatusLabel, Gauge>::default();
        registry.register(
            "sessions",
            "QodSession resources, by the network's qosStatus (`none` before the first status)",
            sessions.clone(),
        );
        let notifications_awaiting_create = Gauge::default();
        registry.register(
            "notifications_awaiting_create",
            "Notifications the webhook holds until the create they answer is recorded in status",
            notifications_awaiting_create.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader lease and reconciles, else 0",
            leader.clone(),
        );
        registry.register(
            "build",
            "The running qod-operator build",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );

        Self {
            registry,
            notifications,
            notification_duration,
            reconcile_duration,
            reconciliations,
            reconcile_errors,
            reconcile_conflicts,
            provider_requests,
            provider_request_duration,
            sessions,
            leader,
            notifications_awaiting_create,
        }
    }

    /// Counts a notification held until its create is recorded, for as long as the guard lives.
    pub fn awaiting_create(&self) -> impl Drop + use<> {
        struct Held(Gauge);
        impl Drop for Held {
            fn drop(&mut self) {
                self.0.dec();
            }
        }
        self.notifications_awaiting_create.inc();
        Held(self.notifications_awaiting_create.clone())
    }

    /// Counts one notification outcome.
    pub fn notification(&self, result: NotificationResult) {
        self.notifications
            .get_or_create(&ResultLabel {
                result: result.as_str(),
            })
            .inc();
    }

    /// Records how long the webhook took to answer one request.
    pub fn notification_duration(&self, elapsed: Duration) {
        self.notification_duration.observe(elapsed.as_secs_f64());
    }

    /// Records one reconcile pass: its outcome (a static word such as `ok`, `requeue`, `error`)
    /// and how long it took.
    pub fn reconciled(&self, outcome: &'static str, elapsed: Duration) {
        self.reconciliations
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.reconcile_duration.observe(elapsed.as_secs_f64());
    }

    /// Counts a failed reconcile pass by its error category (the error's `metric_label`).
    /// A pass whose write conflicted with a newer version of the resource.
    pub fn reconcile_conflict(&self) {
        self.reconcile_conflicts.inc();
    }

    pub fn reconcile_error(&self, error: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabel { error })
            .inc();
    }

    /// Records one provider call: the operation (`create`, `get`, `delete`, `extend`,
    /// `find`, `token`...), the HTTP status it got (`None` when no answer came: timeout,
    /// connection failure) and its duration.
    pub fn provider_request(
        &self,
        provider: &str,
        operation: &'static str,
        code: Option<u16>,
        elapsed: Duration,
    ) {
        let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        self.provider_requests
            .get_or_create(&ProviderLabels {
                provider: provider.to_owned(),
                operation,
                code,
            })
            .inc();
        self.provider_request_duration
            .get_or_create(&ProviderOperationLabels {
                provider: provider.to_owned(),
                operation,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the number of resources whose status holds `qos_status` (the network's word, or
    /// `None` before any). Words outside CAMARA's three count as `other`.
    pub fn set_sessions(&self, qos_status: Option<&str>, count: i64) {
        self.sessions
            .get_or_create(&QosStatusLabel {
                qos_status: session_state(qos_status),
            })
            .set(count);
    }

    /// Sets every `qod_operator_sessions` series at once from `(qosStatus, count)` pairs;
    /// states not named are set to zero. Words outside CAMARA's three add up under `other`.
    pub fn set_session_counts<'a>(&self, counts: impl IntoIterator<Item = (Option<&'a str>, i64)>) {
        let mut totals = [0i64; SESSION_STATES.len()];
        for (word, count) in counts {
            let state = session_state(word);
            if let Some(slot) = SESSION_STATES.iter().position(|s| *s == state)
                && let Some(total) = totals.get_mut(slot)
            {
                *total += count;
            }
        }
        for (state, total) in SESSION_STATES.iter().zip(totals) {
            self.sessions
                .get_or_create(&QosStatusLabel { qos_status: state })
                .set(total);
        }
    }

    /// Whether this replica leads (reconciles).
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        if text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

fn provider_histogram() -> Histogram {
    Histogram::new(PROVIDER_BUCKETS)
}

/// The bounded label value for a `qosStatus` word.
fn session_state(word: Option<&str>) -> &'static str {
    match word {
        None => "none",
        Some("REQUESTED") => "REQUESTED",
        Some("AVAILABLE") => "AVAILABLE",
        Some("UNAVAILABLE") => "UNAVAILABLE",
        Some(_) => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metric names the README and the chart's dashboard and alerts use, but for the gauge
    /// of notifications awaiting a create, which the webhook's tests check.
    const NAMES: [&str; 11] = [
        "qod_operator_notifications_total",
        "qod_operator_notification_duration_seconds",
        "qod_operator_reconcile_duration_seconds",
        "qod_operator_reconciliations_total",
        "qod_operator_reconcile_errors_total",
        "qod_operator_reconcile_conflicts_total",
        "qod_operator_provider_requests_total",
        "qod_operator_provider_request_duration_seconds",
        "qod_operator_sessions",
        "qod_operator_leader",
        "qod_operator_build_info",
    ];

    #[test]
    fn every_metric_is_exposed_with_the_prefix() {
        let metrics = Metrics::new();
        metrics.reconciled("ok", Duration::from_millis(3));
        metrics.reconcile_error("provider_unavailable");
        metrics.reconcile_conflict();
        metrics.provider_request("default", "create", Some(201), Duration::from_millis(40));
        metrics.provider_request("ClusterQodProvider/a", "get", None, Duration::from_secs(5));
        metrics.set_sessions(Some("AVAILABLE"), 2);
        metrics.set_leader(true);
        metrics.notification(NotificationResult::Applied);
        metrics.notification_duration(Duration::from_millis(2));
        let text = metrics.encode();
        for name in NAMES {
            assert!(
                text.lines().any(|l| l.starts_with(name)),
                "{name} missing in\n{text}"
            );
        }
        assert!(text.contains(r#"qod_operator_notifications_total{result="applied"} 1"#));
        assert!(text.contains(r#"qod_operator_notifications_total{result="stale"} 0"#));
        assert!(
            Metrics::new()
                .encode()
                .contains(r#"qod_operator_reconcile_errors_total{error="kubernetes"} 0"#),
            "the Kubernetes error series exists before any error"
        );
        assert!(
            text.contains(r#"qod_operator_provider_requests_total{provider="ClusterQodProvider/a",operation="get",code="none"} 1"#)
        );
        assert!(text.contains(r#"qod_operator_sessions{qos_status="AVAILABLE"} 2"#));
        assert!(text.contains("qod_operator_leader 1"));
        assert!(text.contains(&format!(
            r#"qod_operator_build_info{{version="{}"}} 1"#,
            env!("CARGO_PKG_VERSION")
        )));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn unknown_status_words_fold_into_other() {
        let metrics = Metrics::new();
        metrics.set_session_counts([
            (Some("AVAILABLE"), 3),
            (Some("SOMETHING_NEW"), 1),
            (Some("ANOTHER"), 2),
            (None, 4),
        ]);
        let text = metrics.encode();
        assert!(text.contains(r#"qod_operator_sessions{qos_status="other"} 3"#));
        assert!(text.contains(r#"qod_operator_sessions{qos_status="none"} 4"#));
        assert!(text.contains(r#"qod_operator_sessions{qos_status="REQUESTED"} 0"#));
        assert!(!text.contains("SOMETHING_NEW"));
    }
}
