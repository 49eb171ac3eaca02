//! A [`SessionApi`] or [`ProfileApi`] that records every call of the one it wraps in the
//! operator's metrics (`qod_operator_provider_requests_total{provider,operation,code}` and its
//! duration histogram), so both flavours, both APIs and the simulator are measured the same
//! way, in one place.

use std::{future::Future, sync::Arc, time::Instant};

use async_trait::async_trait;

use super::{
    Device, Error, Operation, SessionApi, SessionInfo, SessionRequest,
    profiles::{ProfileApi, ProfileFilter, QosProfile},
};
use crate::metrics::Metrics;

/// `A` is `dyn SessionApi` or `dyn ProfileApi`.
pub struct Metered<A: ?Sized> {
    inner: Arc<A>,
    metrics: Arc<Metrics>,
    /// The `provider` label (see [`crate::providers::ProviderKey`]).
    provider: Arc<str>,
}

impl<A: ?Sized> Metered<A> {
    pub fn new(inner: Arc<A>, metrics: Arc<Metrics>, provider: Arc<str>) -> Self {
        Self {
            inner,
            metrics,
            provider,
        }
    }

    /// Times `call`. A success counts as the status the API documents for the operation (the
    /// trait's results carry none); an error as the status the provider answered, or none.
    async fn observe<T>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        let result = call.await;
        let code = match &result {
            Ok(_) => Some(match operation {
                Operation::Create => 201,
                Operation::Delete => 204,
                _ => 200,
            }),
            Err(error) => error.status(),
        };
        self.metrics
            .provider_request(&self.provider, operation.as_str(), code, started.elapsed());
        result
    }
}

#[async_trait]
impl SessionApi for Metered<dyn SessionApi> {
    async fn create_session(&self, request: &SessionRequest) -> Result<SessionInfo, Error> {
        self.observe(Operation::Create, self.inner.create_session(request))
            .await
    }

    async fn get_session(&self, session_id: &str) -> Result<SessionInfo, Error> {
        self.observe(Operation::Get, self.inner.get_session(session_id))
            .await
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Error> {
        self.observe(Operation::Delete, self.inner.delete_session(session_id))
            .await
    }

    async fn extend_session(
        &self,
        session_id: &str,
        additional_seconds: u32,
    ) -> Result<SessionInfo, Error> {
        self.observe(
            Operation::Extend,
            self.inner.extend_session(session_id, additional_seconds),
        )
        .await
    }

    async fn sessions_of_device(&self, device: &Device) -> Result<Vec<SessionInfo>, Error> {
        self.observe(
            Operation::RetrieveSessions,
            self.inner.sessions_of_device(device),
        )
        .await
    }

    async fn check_credentials(&self) -> Result<(), Error> {
        self.inner.check_credentials().await
    }
}

#[async_trait]
impl ProfileApi for Metered<dyn ProfileApi> {
    async fn retrieve_profiles(&self, filter: &ProfileFilter) -> Result<Vec<QosProfile>, Error> {
        self.observe(
            Operation::RetrieveProfiles,
            self.inner.retrieve_profiles(filter),
        )
        .await
    }

    async fn get_profile(&self, name: &str) -> Result<QosProfile, Error> {
        self.observe(Operation::GetProfile, self.inner.get_profile(name))
            .await
    }
}
