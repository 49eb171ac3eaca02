//! Waiting for a condition with a deadline, instead of sleeping and hoping.

use std::{future::Future, time::Duration};

use tokio::time::Instant;

/// Polls `probe` every 20 ms until it yields `Some`, and returns that value. Fails the test,
/// naming `what`, when `timeout` passes first.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
