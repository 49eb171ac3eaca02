//! The provider's health across all resources. A provider-wide failure (unreachable, no answer,
//! 5xx, 429) is a fact about the provider, not about the resource whose call met it: when the
//! provider answers most calls, one resource's unlucky run of failures must not push its retry
//! minutes away, and when the provider is down, every resource's retries should space out.
//! So the backoff of a provider-wide failure grows with the shorter of the resource's own run
//! of failures and the provider's current run (failures since its last answer).

use std::sync::{
    Arc,
    atomic::{AtomicU32, Ordering},
};

use async_trait::async_trait;

use crate::qod::{self, Device, SessionApi, SessionInfo, SessionRequest};

/// The run of provider-wide failures since the provider last answered.
#[derive(Debug, Default)]
pub struct ProviderHealth {
    failures_in_a_row: AtomicU32,
}

impl ProviderHealth {
    /// Provider-wide failures since the last answer.
    pub fn failures_in_a_row(&self) -> u32 {
        self.failures_in_a_row.load(Ordering::Relaxed)
    }

    fn observe<T>(&self, result: &Result<T, qod::Error>) {
        match result {
            Err(error) if is_provider_wide(error) => {
                self.failures_in_a_row.fetch_add(1, Ordering::Relaxed);
            }
            // Any answer, an error about one session included, shows the provider works.
            _ => self.failures_in_a_row.store(0, Ordering::Relaxed),
        }
    }
}

/// Whether `error` says something about the provider rather than about the one request.
pub fn is_provider_wide(error: &qod::Error) -> bool {
    error.is_retryable() || error.may_have_created()
}

/// A provider whose every answer is observed by a [`ProviderHealth`].
pub struct Observed {
    pub inner: Arc<dyn SessionApi>,
    pub health: Arc<ProviderHealth>,
}

impl Observed {
    fn seen<T>(&self, result: Result<T, qod::Error>) -> Result<T, qod::Error> {
        self.health.observe(&result);
        result
    }
}

#[async_trait]
impl SessionApi for Observed {
    async fn create_session(&self, request: &SessionRequest) -> Result<SessionInfo, qod::Error> {
        self.seen(self.inner.create_session(request).await)
    }

    async fn get_session(&self, session_id: &str) -> Result<SessionInfo, qod::Error> {
        self.seen(self.inner.get_session(session_id).await)
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), qod::Error> {
        self.seen(self.inner.delete_session(session_id).await)
    }

    async fn extend_session(
        &self,
        session_id: &str,
        additional_seconds: u32,
    ) -> Result<SessionInfo, qod::Error> {
        self.seen(
            self.inner
                .extend_session(session_id, additional_seconds)
                .await,
        )
    }

    async fn sessions_of_device(&self, device: &Device) -> Result<Vec<SessionInfo>, qod::Error> {
        self.seen(self.inner.sessions_of_device(device).await)
    }

    async fn check_credentials(&self) -> Result<(), qod::Error> {
        self.inner.check_credentials().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qod::Operation;

    fn unreachable() -> qod::Error {
        qod::Error::Api {
            operation: Operation::Get,
            info: qod::model::ErrorInfo::new(503, "UNAVAILABLE", "down"),
            retry_after: None,
        }
    }

    #[test]
    fn a_run_of_provider_wide_failures_ends_with_any_answer() {
        let health = ProviderHealth::default();
        health.observe::<()>(&Err(unreachable()));
        health.observe::<()>(&Err(unreachable()));
        assert_eq!(health.failures_in_a_row(), 2);
        health.observe(&Ok(()));
        assert_eq!(health.failures_in_a_row(), 0);
        health.observe::<()>(&Err(unreachable()));
        // A refusal of one request (here: no such session) is still an answer.
        health.observe::<()>(&Err(qod::Error::Api {
            operation: Operation::Get,
            info: qod::model::ErrorInfo::new(404, "NOT_FOUND", "gone"),
            retry_after: None,
        }));
        assert_eq!(health.failures_in_a_row(), 0);
    }
}
