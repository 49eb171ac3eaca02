//! Retry spacing: capped exponential backoff with jitter for transient failures and a long wait
//! for failures a human must fix, so a failing provider sees a bounded request rate. Provider
//! failures are counted in the resource's status (they survive restarts, and our own status
//! writes cannot re-trigger a retry early); passes that fail without a status write (mostly
//! Kubernetes API failures) are counted here, in memory.

use std::time::Duration;

use super::per_resource::PerResource;

/// The first retry of a transient failure.
pub const FIRST: Duration = Duration::from_millis(500);
/// The longest wait between retries of transient failures.
pub const CAP: Duration = Duration::from_secs(300);
/// The wait after an error a human must fix in the resource (an invalid request); changing
/// its spec retries at once.
pub const PERMANENT: Duration = Duration::from_secs(600);
/// The wait after the provider refused our credentials (401, 403). The fix is outside the
/// resource (a rotated Secret, whose new contents reach the mounted file a minute or so after
/// the provider already refuses the old value), so it is looked for sooner.
pub const CREDENTIALS: Duration = Duration::from_secs(60);

/// The wait after the `failures`-th failure in a row (1 for the first); at least `retry_after`
/// when the server asked for it.
pub fn delay(failures: u32, transient: bool, retry_after: Option<Duration>) -> Duration {
    let base = if transient {
        FIRST
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(CAP)
    } else {
        PERMANENT
    };
    // Up to a quarter more, so resources failing together do not retry together.
    let jitter = base.mul_f64(rand::random::<f64>() * 0.25);
    (base + jitter).max(retry_after.unwrap_or_default())
}

/// Consecutive failed passes per resource (by uid): the errors a pass returns instead of
/// recording them in status, mostly the Kubernetes API's, but also a provider call outside a
/// step's own record (the lookup after a create answered 409).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: PerResource<u32>,
}

impl Backoff {
    /// The wait before retrying `key` once more; `exists` tells which resources still exist.
    pub fn next(
        &self,
        key: &str,
        retry_after: Option<Duration>,
        exists: impl Fn(&str) -> bool,
    ) -> Duration {
        let attempt = self
            .failures
            .update(key, exists, |count| *count = count.saturating_add(1));
        delay(attempt, true, retry_after)
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset(&self, key: &str) {
        self.failures.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_until_the_cap_and_reset_on_success() {
        let backoff = Backoff::default();
        let waits: Vec<Duration> = (0..12).map(|_| backoff.next("a", None, all)).collect();
        assert!(waits[0] >= FIRST && waits[0] <= FIRST.mul_f64(1.25));
        assert!(waits[3] >= FIRST * 8);
        assert!(waits.iter().all(|w| *w <= CAP.mul_f64(1.25)));
        assert!(waits[11] >= CAP);
        backoff.reset("a");
        assert!(backoff.next("a", None, all) <= FIRST.mul_f64(1.25));
        // Other resources keep their own count.
        assert!(backoff.next("b", None, all) <= FIRST.mul_f64(1.25));
    }

    fn all(_: &str) -> bool {
        true
    }

    #[test]
    fn failures_a_human_must_fix_wait_long() {
        assert!(delay(1, false, None) >= PERMANENT);
    }

    #[test]
    fn retry_after_is_a_floor() {
        assert!(delay(1, true, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
    }
}
