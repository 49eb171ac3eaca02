//! Memory kept per resource (by uid) between passes, bounded: entries of resources that no
//! longer exist are swept out when the map has doubled since the last sweep (`crate::sweep`),
//! since a resource deleted at the wrong moment never gets the pass that would remove its entry.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use crate::sweep::SweepWhenDoubled;

/// Entries kept before the first sweep.
const SWEEP_AT: usize = 1024;

#[derive(Debug)]
pub struct PerResource<V> {
    inner: Mutex<Entries<V>>,
}

#[derive(Debug)]
struct Entries<V> {
    by_uid: HashMap<String, V>,
    sweep: SweepWhenDoubled,
}

impl<V> Default for PerResource<V> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Entries {
                by_uid: HashMap::new(),
                sweep: SweepWhenDoubled::new(SWEEP_AT),
            }),
        }
    }
}

impl<V: Clone> PerResource<V> {
    /// Changes the entry of `uid` (made with `V::default()` when absent) and returns its new
    /// value; `exists` tells, for a sweep, whether a resource still exists.
    pub fn update(&self, uid: &str, exists: impl Fn(&str) -> bool, change: impl FnOnce(&mut V)) -> V
    where
        V: Default,
    {
        let mut entries = self.lock();
        let value = entries.by_uid.entry(uid.to_owned()).or_default();
        change(value);
        let value = value.clone();
        if entries.sweep.due(entries.by_uid.len()) {
            entries.by_uid.retain(|k, _| k == uid || exists(k));
            let kept = entries.by_uid.len();
            entries.sweep.swept(kept);
        }
        value
    }

    pub fn get(&self, uid: &str) -> Option<V> {
        self.lock().by_uid.get(uid).cloned()
    }

    pub fn remove(&self, uid: &str) {
        self.lock().by_uid.remove(uid);
    }

    pub fn len(&self) -> usize {
        self.lock().by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Entries<V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_deleted_resources_are_swept_out() {
        let map = PerResource::<u32>::default();
        // 10,000 resources that left an entry and were then deleted; five still exist.
        let alive = |k: &str| k.ends_with("-alive");
        for i in 0..10_000 {
            let key = if i % 2000 == 0 {
                format!("{i}-alive")
            } else {
                format!("{i}-deleted")
            };
            map.update(&key, alive, |n| *n += 1);
        }
        assert!(map.len() <= SWEEP_AT + 1, "{}", map.len());
        let survivors = (0..10_000)
            .step_by(2000)
            .filter(|i| map.get(&format!("{i}-alive")) == Some(1))
            .count();
        assert_eq!(survivors, 5, "the living keep their entries");
    }
}
