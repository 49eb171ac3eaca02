//! Fault injection, set with `PUT /_sim/faults`: latency, rate limiting and server errors on the
//! QoD API endpoints, and dropped, duplicated or reordered notifications.
//!
//! Faults never touch `/_sim/*` or `/oauth/token`, so a test can always inspect and repair the
//! simulator. The JSON shape is part of the test-control contract
//! (docs/architecture.md, "Command-line and test-control contract").

use std::time::Duration;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::reply::{ApiError, code};

/// The longest injectable latency, so a typo cannot hang a test run.
pub const MAX_LATENCY_MS: u64 = 60_000;

/// The active faults. Rates are probabilities in 0..=1 drawn per request or notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Share of API requests answered 503 UNAVAILABLE without being processed.
    pub error_rate: f64,
    /// Delay before an API request is handled, in milliseconds. A client that gives up
    /// meanwhile (a timeout) leaves nothing done.
    pub latency_ms: u64,
    /// Share of API requests that get `latencyMs` (default 1: every request).
    pub latency_rate: f64,
    /// Delay after a request was handled and before its answer is sent, in milliseconds: a
    /// client that gives up meanwhile loses the answer of something that did happen (a create
    /// whose outcome it cannot know).
    pub answer_delay_ms: u64,
    /// Share of API requests that get `answerDelayMs` (default 1: every request).
    pub answer_delay_rate: f64,
    /// Hold every answer, after its request took effect, until this is cleared (or the
    /// simulator resets or stops): a provider that hangs for as long as a test needs, with no
    /// deadline a slow machine could outrun.
    pub hold_answers: bool,
    /// Share of API requests answered 429 TOO_MANY_REQUESTS without being processed.
    pub rate_limit_rate: f64,
    /// `Retry-After` (seconds) on injected 429 and 503 answers.
    pub retry_after_seconds: u64,
    /// Share of notifications never sent.
    pub drop_notification_rate: f64,
    /// Share of notifications sent twice (same event id).
    pub duplicate_notification_rate: f64,
    /// Send each session's notifications out of order: an event is held back briefly and sent
    /// after the next one.
    pub reorder_notifications: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            latency_ms: 0,
            latency_rate: 1.0,
            answer_delay_ms: 0,
            answer_delay_rate: 1.0,
            hold_answers: false,
            rate_limit_rate: 0.0,
            retry_after_seconds: 1,
            drop_notification_rate: 0.0,
            duplicate_notification_rate: 0.0,
            reorder_notifications: false,
        }
    }
}

impl Faults {
    /// Every rate in 0..=1 and the latency bounded; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [
            ("errorRate", self.error_rate),
            ("latencyRate", self.latency_rate),
            ("answerDelayRate", self.answer_delay_rate),
            ("rateLimitRate", self.rate_limit_rate),
            ("dropNotificationRate", self.drop_notification_rate),
            (
                "duplicateNotificationRate",
                self.duplicate_notification_rate,
            ),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name}: {rate} is not a probability in 0..1"));
            }
        }
        for (name, ms) in [
            ("latencyMs", self.latency_ms),
            ("answerDelayMs", self.answer_delay_ms),
        ] {
            if ms > MAX_LATENCY_MS {
                return Err(format!(
                    "{name}: {ms} exceeds the maximum of {MAX_LATENCY_MS}"
                ));
            }
        }
        Ok(())
    }

    /// The delay before handling this request: `latencyMs` with probability `latencyRate`.
    pub fn latency(&self) -> Duration {
        if self.latency_ms > 0 && Self::draw(self.latency_rate) {
            Duration::from_millis(self.latency_ms)
        } else {
            Duration::ZERO
        }
    }

    /// The delay before answering this request: `answerDelayMs` with probability
    /// `answerDelayRate`.
    pub fn answer_delay(&self) -> Duration {
        if self.answer_delay_ms > 0 && Self::draw(self.answer_delay_rate) {
            Duration::from_millis(self.answer_delay_ms)
        } else {
            Duration::ZERO
        }
    }

    /// Draws the request-level faults: a 429 or a 503 instead of processing the request.
    pub fn admit(&self) -> Result<(), ApiError> {
        if Self::draw(self.rate_limit_rate) {
            let mut error = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                code::TOO_MANY_REQUESTS,
                "Rate limit reached (simulated).",
            );
            error.retry_after = Some(self.retry_after_seconds);
            return Err(error);
        }
        if Self::draw(self.error_rate) {
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code::UNAVAILABLE,
                "Service temporarily unavailable (simulated).",
            );
            error.retry_after = Some(self.retry_after_seconds);
            return Err(error);
        }
        Ok(())
    }

    /// True with probability `rate` (0 never, 1 always).
    pub fn draw(rate: f64) -> bool {
        if rate <= 0.0 || rate.is_nan() {
            false
        } else if rate >= 1.0 {
            true
        } else {
            rand::random_bool(rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_contract_shape_parses_and_defaults_fill_the_rest() {
        let faults: Faults = serde_json::from_value(json!({
            "errorRate": 0.5, "latencyMs": 20, "rateLimitRate": 0, "retryAfterSeconds": 3,
            "dropNotificationRate": 0.1, "duplicateNotificationRate": 1,
            "reorderNotifications": true
        }))
        .unwrap();
        assert!(faults.validate().is_ok());
        assert_eq!(faults.retry_after_seconds, 3);
        let partial: Faults = serde_json::from_value(json!({"latencyMs": 5})).unwrap();
        assert_eq!(partial.retry_after_seconds, 1);
        assert_eq!(partial.error_rate, 0.0);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let rate: Faults = serde_json::from_value(json!({"errorRate": 1.5})).unwrap();
        assert!(rate.validate().unwrap_err().starts_with("errorRate"));
        let negative: Faults =
            serde_json::from_value(json!({"dropNotificationRate": -0.1})).unwrap();
        assert!(
            negative
                .validate()
                .unwrap_err()
                .starts_with("dropNotificationRate")
        );
        let slow: Faults = serde_json::from_value(json!({"latencyMs": 600_000})).unwrap();
        assert!(slow.validate().unwrap_err().starts_with("latencyMs"));
        assert!(serde_json::from_value::<Faults>(json!({"errorrate": 1})).is_err());
        assert!(serde_json::from_value::<Faults>(json!({"latencyMs": -1})).is_err());
        let share: Faults = serde_json::from_value(json!({"latencyRate": 2})).unwrap();
        assert!(share.validate().unwrap_err().starts_with("latencyRate"));
    }

    #[test]
    fn delays_apply_to_their_share_of_requests_and_to_all_by_default() {
        let all: Faults =
            serde_json::from_value(json!({"latencyMs": 7, "answerDelayMs": 9})).unwrap();
        assert_eq!(all.latency(), Duration::from_millis(7));
        assert_eq!(all.answer_delay(), Duration::from_millis(9));
        let none: Faults = serde_json::from_value(json!({
            "latencyMs": 7, "latencyRate": 0, "answerDelayMs": 9, "answerDelayRate": 0
        }))
        .unwrap();
        assert_eq!(none.latency(), Duration::ZERO);
        assert_eq!(none.answer_delay(), Duration::ZERO);
        assert_eq!(Faults::default().latency(), Duration::ZERO);
    }

    #[test]
    fn certain_rates_always_fire() {
        let limited = Faults {
            rate_limit_rate: 1.0,
            retry_after_seconds: 4,
            ..Faults::default()
        };
        let error = limited.admit().unwrap_err();
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.retry_after, Some(4));
        let broken = Faults {
            error_rate: 1.0,
            ..Faults::default()
        };
        assert_eq!(
            broken.admit().unwrap_err().status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(Faults::default().admit().is_ok());
        assert!(!Faults::draw(0.0));
        assert!(Faults::draw(1.0));
    }
}
