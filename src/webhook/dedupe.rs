//! Recently handled events, so a provider's retries and duplicates are answered without a
//! Kubernetes round trip. A CloudEvent `id` is unique per `source`; the key also carries the
//! resource uid, so one resource's events can never mark another's as seen. Bounded: the
//! least recently seen key goes first. This is only a fast path: `status.lastNotification`
//! is what makes dedupe hold across restarts and replicas.
//!
//! A key is a 128-bit digest of (uid, source, id) under hash keys chosen at random per process:
//! about 60 bytes an entry instead of about 600 for the three strings held twice (BENCHMARKS.md,
//! "Fifth look"). Taking a new event for a seen one needs a collision of a keyed 128-bit hash,
//! which no sender can aim for and chance makes about 2^-116 likely per event at the default
//! capacity (4,096 keys).

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    sync::{Mutex, PoisonError},
};

/// The digest of (resource uid, event source, event id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(u128);

/// A bounded set of recently seen event keys.
#[derive(Debug)]
pub struct Recent {
    capacity: usize,
    /// Two independently keyed hashers, one for each half of a key.
    hashers: [RandomState; 2],
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    /// Key → the sequence number of its latest touch.
    seen: HashMap<Key, u64>,
    /// Touches in order; stale entries (superseded by a later touch) are skipped on eviction.
    order: VecDeque<(u64, Key)>,
    next: u64,
}

impl Recent {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            hashers: [RandomState::new(), RandomState::new()],
            inner: Mutex::new(Lru::default()),
        }
    }

    /// The key of an event, when it has an id to dedupe on.
    pub fn key(&self, uid: &str, source: Option<&str>, id: Option<&str>) -> Option<Key> {
        let id = id.filter(|id| !id.is_empty())?;
        // `str`'s Hash ends each string with a marker, so the three stay apart.
        let half = |hasher: &RandomState| hasher.hash_one((uid, source.unwrap_or_default(), id));
        let [high, low] = &self.hashers;
        Some(Key(u128::from(half(high)) << 64 | u128::from(half(low))))
    }

    /// Whether `key` was remembered (and marks it as recently used).
    pub fn contains(&self, key: &Key) -> bool {
        let mut lru = self.lock();
        if lru.seen.contains_key(key) {
            lru.touch(*key, self.capacity);
            true
        } else {
            false
        }
    }

    /// Remembers `key`, forgetting the least recently used key when full.
    pub fn insert(&self, key: Key) {
        let mut lru = self.lock();
        lru.touch(key, self.capacity);
        while lru.seen.len() > self.capacity {
            lru.evict_oldest();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lru {
    fn touch(&mut self, key: Key, capacity: usize) {
        let stamp = self.next;
        self.next += 1;
        self.seen.insert(key, stamp);
        self.order.push_back((stamp, key));
        // Superseded touches pile up in `order` when the same keys recur (a provider retrying
        // one event is answered from here each time); compact then.
        if self.order.len() > capacity.saturating_mul(4) {
            self.compact();
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((stamp, key)) = self.order.pop_front() {
            if self.seen.get(&key) == Some(&stamp) {
                self.seen.remove(&key);
                return;
            }
        }
    }

    fn compact(&mut self) {
        let seen = &self.seen;
        self.order
            .retain(|(stamp, key)| seen.get(key) == Some(stamp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(recent: &Recent, id: &str) -> Key {
        recent.key("uid", Some("src"), Some(id)).unwrap()
    }

    #[test]
    fn keeps_the_most_recently_used_keys() {
        let recent = Recent::new(2);
        recent.insert(key(&recent, "a"));
        recent.insert(key(&recent, "b"));
        assert!(recent.contains(&key(&recent, "a"))); // a is now newer than b
        recent.insert(key(&recent, "c"));
        assert!(recent.contains(&key(&recent, "a")));
        assert!(!recent.contains(&key(&recent, "b")));
        assert!(recent.contains(&key(&recent, "c")));
        assert_eq!(recent.len(), 2);
    }

    #[test]
    fn repeated_touches_stay_bounded() {
        let recent = Recent::new(3);
        for i in 0..1000 {
            recent.insert(key(&recent, &format!("k{}", i % 5)));
            let _ = recent.contains(&key(&recent, "k0"));
        }
        assert_eq!(recent.len(), 3);
        assert!(recent.lock().order.len() <= 12 + 2);
    }

    #[test]
    fn a_storm_of_one_repeated_event_stays_bounded() {
        let recent = Recent::new(3);
        recent.insert(key(&recent, "retried"));
        for _ in 0..100_000 {
            assert!(recent.contains(&key(&recent, "retried")));
        }
        assert_eq!(recent.len(), 1);
        assert!(recent.lock().order.len() <= 12 + 1);
    }

    #[test]
    fn events_without_an_id_have_no_key_and_uids_separate_keys() {
        let recent = Recent::new(4);
        assert_eq!(recent.key("u", Some("s"), None), None);
        assert_eq!(recent.key("u", Some("s"), Some("")), None);
        recent.insert(recent.key("u1", Some("s"), Some("e")).unwrap());
        assert!(!recent.contains(&recent.key("u2", Some("s"), Some("e")).unwrap()));
        assert!(recent.contains(&recent.key("u1", Some("s"), Some("e")).unwrap()));
        // The parts stay apart: moving a character from one to the next is another key.
        assert_ne!(
            recent.key("u1", Some("se"), Some("e")),
            recent.key("u1", Some("s"), Some("ee"))
        );
        assert_ne!(
            recent.key("u1", None, Some("e")),
            recent.key("u1", Some("e"), Some("e"))
        );
    }
}
