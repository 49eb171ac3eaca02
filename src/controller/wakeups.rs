//! When each resource's next pass is due after a wait (its resync read, its end, a retry the
//! pass asked for), kept compactly: the uid as 16 bytes and an instant, in a map and an ordered
//! set, about 100 bytes a resource. kube's scheduler, which would otherwise hold the wait,
//! keeps two copies of the resource's reference (name, namespace, uid and resourceVersion
//! strings) in a map and a timer wheel: about 930 bytes a session, the largest per-session cost
//! after the cached object itself (BENCHMARKS.md, "Fifth look"). Every AVAILABLE session waits
//! for its next read, so at 100,000 sessions that is 90 MB.
//!
//! A due resource is handed to the controller through the cache, as if it had changed. Errors'
//! retries (the error policy) and immediate passes stay with kube's scheduler.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use kube::runtime::controller::Action;
use tokio::{sync::Notify, time::Instant};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cache::{SessionCache, index::canonical_uuid};

/// When a pass wants the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// After this long, even without a change (zero: at once).
    After(Duration),
    /// When the resource changes.
    OnChange,
}

/// The pending wakeups of every resource, one at most each.
#[derive(Debug, Default)]
pub struct Wakeups {
    state: Mutex<State>,
    /// Wakes [`Wakeups::run`] when a wakeup earlier than all others is added.
    earlier: Notify,
}

#[derive(Debug, Default)]
struct State {
    at: HashMap<u128, Instant>,
    due: BTreeSet<(Instant, u128)>,
}

impl State {
    fn set(&mut self, key: u128, when: Option<Instant>) {
        if let Some(previous) = self.at.remove(&key) {
            self.due.remove(&(previous, key));
        }
        if let Some(when) = when {
            self.at.insert(key, when);
            self.due.insert((when, key));
        }
    }

    fn earliest(&self) -> Option<Instant> {
        self.due.first().map(|(when, _)| *when)
    }
}

impl Wakeups {
    /// The controller's action after a pass of the resource with `uid` that wants `next`:
    /// a wait is kept here (replacing any earlier one of that resource) and the controller
    /// only waits for a change; an immediate pass goes to kube's scheduler.
    pub fn action(&self, uid: Option<&str>, next: Next) -> Action {
        let Some(key) = uid.and_then(key_of) else {
            // Not a uid the API server makes (a UUID in lower case): kube keeps the wait.
            return match next {
                Next::After(wait) => Action::requeue(wait),
                Next::OnChange => Action::await_change(),
            };
        };
        match next {
            Next::After(wait) if wait.is_zero() => {
                self.forget(key);
                Action::requeue(wait)
            }
            Next::After(wait) => {
                let when = Instant::now() + wait;
                let mut state = self.lock();
                let was_earliest = state.earliest();
                state.set(key, Some(when));
                drop(state);
                if was_earliest.is_none_or(|earliest| when < earliest) {
                    self.earlier.notify_one();
                }
                Action::await_change()
            }
            Next::OnChange => {
                self.forget(key);
                Action::await_change()
            }
        }
    }

    /// Drops the wakeup of the resource with `uid` (a pass failed; the error policy decides).
    pub fn forget_uid(&self, uid: Option<&str>) {
        if let Some(key) = uid.and_then(key_of) {
            self.forget(key);
        }
    }

    fn forget(&self, key: u128) {
        self.lock().set(key, None);
    }

    /// Number of pending wakeups.
    pub fn len(&self) -> usize {
        self.lock().at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the wakeups due at `now`, earliest first.
    fn take_due(&self, now: Instant) -> Vec<String> {
        let mut state = self.lock();
        let mut due = Vec::new();
        while let Some(&(when, key)) = state.due.first()
            && when <= now
        {
            state.set(key, None);
            due.push(Uuid::from_u128(key).hyphenated().to_string());
        }
        due
    }

    /// Hands each resource to the controllers through `cache` when its wakeup is due, until
    /// `stop` is cancelled. A resource deleted meanwhile is not found and skipped.
    pub async fn run(&self, cache: &SessionCache, stop: &CancellationToken) {
        loop {
            // Created before reading the earliest: an earlier one added in between still wakes.
            let earlier = self.earlier.notified();
            let earliest = self.lock().earliest();
            let due = async {
                match earliest {
                    Some(when) => tokio::time::sleep_until(when).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = earlier => {}
                () = due => {
                    let uids = self.take_due(Instant::now());
                    cache.retrigger_uids(uids.iter().map(String::as_str));
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The uid as 16 bytes, when it is a UUID written as the API server writes them (so the
/// string made back from the key finds the resource).
fn key_of(uid: &str) -> Option<u128> {
    canonical_uuid(uid).map(|uuid| uuid.as_u128())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "0b7e9f0e-6c1a-4a55-9f3d-2d9c1b8e4a10";
    const OTHER: &str = "7d1c2b3a-0000-4a55-9f3d-2d9c1b8e4a10";

    #[test]
    fn only_uids_written_as_the_api_server_does_are_kept() {
        assert!(key_of(UID).is_some());
        assert_eq!(key_of(&UID.to_uppercase()), None);
        assert_eq!(key_of("0b7e9f0e6c1a4a559f3d2d9c1b8e4a10"), None);
        assert_eq!(key_of("not-a-uid"), None);
        let wakeups = Wakeups::default();
        let kept_by_kube = wakeups.action(Some("uid-1"), Next::After(Duration::from_secs(5)));
        assert_eq!(kept_by_kube, Action::requeue(Duration::from_secs(5)));
        assert!(wakeups.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_is_kept_here_and_replaced_by_the_next_pass() {
        let wakeups = Wakeups::default();
        let start = Instant::now();
        assert_eq!(
            wakeups.action(Some(UID), Next::After(Duration::from_secs(300))),
            Action::await_change()
        );
        wakeups.action(Some(OTHER), Next::After(Duration::from_secs(60)));
        assert_eq!(wakeups.len(), 2);
        // A later pass of the first resource moves its wakeup earlier; one entry each.
        wakeups.action(Some(UID), Next::After(Duration::from_secs(30)));
        assert_eq!(wakeups.len(), 2);
        assert!(wakeups.take_due(start + Duration::from_secs(29)).is_empty());
        assert_eq!(wakeups.take_due(start + Duration::from_secs(30)), [UID]);
        assert_eq!(wakeups.take_due(start + Duration::from_secs(300)), [OTHER]);
        assert!(wakeups.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_that_waits_for_a_change_or_goes_at_once_drops_the_wakeup() {
        let wakeups = Wakeups::default();
        wakeups.action(Some(UID), Next::After(Duration::from_secs(30)));
        assert_eq!(
            wakeups.action(Some(UID), Next::OnChange),
            Action::await_change()
        );
        assert!(wakeups.is_empty());
        wakeups.action(Some(UID), Next::After(Duration::from_secs(30)));
        assert_eq!(
            wakeups.action(Some(UID), Next::After(Duration::ZERO)),
            Action::requeue(Duration::ZERO),
            "an immediate pass is kube's"
        );
        assert!(wakeups.is_empty());
        wakeups.action(Some(UID), Next::After(Duration::from_secs(30)));
        wakeups.forget_uid(Some(UID));
        assert!(wakeups.is_empty());
    }
}
