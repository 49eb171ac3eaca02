//! The simulator's clock: one monotonic time line (tokio's `Instant`, which tests can pause and
//! advance) from which the wall-clock timestamps on the wire are derived.
//!
//! Deadlines (activation, expiry, removal) are tokio instants, and `startedAt`/`expiresAt` are
//! computed from the same instants, so a test on paused time sees exact, repeatable values.

use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

/// Maps tokio instants to wall-clock timestamps.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_instant: Instant,
    base_wall: Timestamp,
}

impl Clock {
    /// A clock whose `now` is the current wall time.
    pub fn start() -> Self {
        Self::starting_at(Timestamp::now())
    }

    /// A clock whose `now` is `wall` (for tests).
    pub fn starting_at(wall: Timestamp) -> Self {
        Self {
            base_instant: Instant::now(),
            base_wall: wall,
        }
    }

    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// The wall time of `at`, in whole milliseconds (what the API shows).
    pub fn wall(&self, at: Instant) -> Timestamp {
        let elapsed = at.saturating_duration_since(self.base_instant);
        let wall = add(self.base_wall, elapsed);
        Timestamp::from_millisecond(wall.as_millisecond()).unwrap_or(wall)
    }

    pub fn wall_now(&self) -> Timestamp {
        self.wall(self.now())
    }
}

/// `ts + duration`, saturating at the largest timestamp.
pub fn add(ts: Timestamp, duration: Duration) -> Timestamp {
    ts.saturating_add(duration).unwrap_or(Timestamp::MAX)
}

/// `ts + seconds`.
pub fn add_seconds(ts: Timestamp, seconds: u32) -> Timestamp {
    add(ts, Duration::from_secs(u64::from(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn wall_time_follows_paused_tokio_time() {
        let start: Timestamp = "2025-01-02T03:00:00Z".parse().unwrap();
        let clock = Clock::starting_at(start);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(
            clock.wall_now(),
            "2025-01-02T03:00:01.5Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            add_seconds(start, 600),
            "2025-01-02T03:10:00Z".parse::<Timestamp>().unwrap()
        );
    }
}
