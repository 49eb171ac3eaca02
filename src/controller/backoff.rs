//! Retry spacing: capped exponential backoff with jitter for transient failures and a long wait
//! for failures a human must fix, so a failing provider sees a bounded request rate. Provider
//! failures are counted in the resource's status (they survive restarts, and our own status
//! writes cannot re-trigger a retry early); Kubernetes API failures are counted here, in memory.

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// The first retry of a transient failure.
pub const FIRST: Duration = Duration::from_millis(500);
/// The longest wait between retries of transient failures.
pub const CAP: Duration = Duration::from_secs(300);
/// The wait after an error a human must fix (credentials, an invalid request).
pub const PERMANENT: Duration = Duration::from_secs(600);

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

/// Entries kept before the first sweep of resources that no longer exist.
const SWEEP_AT: usize = 1024;

/// Consecutive Kubernetes API failures per resource (by uid).
#[derive(Debug)]
pub struct Backoff {
    inner: Mutex<Failures>,
}

#[derive(Debug)]
struct Failures {
    by_key: HashMap<String, u32>,
    /// The size at which entries of resources that are gone are swept out: a resource deleted
    /// while its last pass failed is never reset by a success.
    sweep_at: usize,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Failures {
                by_key: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        }
    }
}

impl Backoff {
    /// The wait before retrying `key` once more. `exists` tells whether a resource still
    /// exists, for the occasional sweep (amortised: the next one waits until the map doubles).
    pub fn next(
        &self,
        key: &str,
        retry_after: Option<Duration>,
        exists: impl Fn(&str) -> bool,
    ) -> Duration {
        let attempt = {
            let mut failures = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let count = failures.by_key.entry(key.to_owned()).or_insert(0);
            *count = count.saturating_add(1);
            let attempt = *count;
            if failures.by_key.len() > failures.sweep_at {
                failures.by_key.retain(|k, _| k == key || exists(k));
                failures.sweep_at = SWEEP_AT.max(failures.by_key.len() * 2);
            }
            attempt
        };
        delay(attempt, true, retry_after)
    }

    /// Forgets the failures of `key` after a success.
    pub fn reset(&self, key: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .remove(key);
    }

    /// Resources with failures remembered.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn failures_of_deleted_resources_are_swept_out() {
        let backoff = Backoff::default();
        // 10,000 resources that failed once and were then deleted; five still exist.
        let alive = |k: &str| k.ends_with("-alive");
        for i in 0..10_000 {
            let key = if i % 2000 == 0 {
                format!("{i}-alive")
            } else {
                format!("{i}-deleted")
            };
            backoff.next(&key, None, alive);
        }
        assert!(backoff.len() <= SWEEP_AT + 1, "{}", backoff.len());
        let mut survivors: Vec<_> = (0..10_000)
            .step_by(2000)
            .map(|i| format!("{i}-alive"))
            .collect();
        survivors.retain(|k| backoff.inner.lock().unwrap().by_key.contains_key(k));
        assert_eq!(survivors.len(), 5, "the living keep their counts");
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
