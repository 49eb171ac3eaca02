//! The object store: every object by resource, namespace and name, one global
//! resourceVersion counter, and a bounded history of watch events.
//!
//! All writes go through [`Store::put`] and [`Store::remove`], which stamp the next
//! resourceVersion, append to the history (dropping the oldest past the limit and remembering
//! the newest dropped revision, so a watch from before it gets `410 Gone`) and broadcast the
//! event to open watches while the store lock is held, so a watch that replays the history and
//! then subscribes never misses or repeats an event.

use crate::registry::{Registry, StorageKey};
use bytes::Bytes;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// `ADDED`, `MODIFIED` or `DELETED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// An object as stored: immutable and shared (by the store, the history, watch events and
/// responses), with its JSON encoded at most once however many responses and watch events
/// carry it.
#[derive(Debug)]
pub struct Stored {
    value: Value,
    json: OnceLock<Bytes>,
}

impl Stored {
    /// Wraps a value.
    pub fn new(value: Value) -> Self {
        Self {
            value,
            json: OnceLock::new(),
        }
    }

    /// The value as JSON (encoded on first use).
    pub fn json(&self) -> &Bytes {
        self.json
            .get_or_init(|| Bytes::from(self.value.to_string().into_bytes()))
    }

    /// The value, copied only when it is still shared.
    pub fn into_value(self: Arc<Self>) -> Value {
        Arc::try_unwrap(self)
            .map(|s| s.value)
            .unwrap_or_else(|s| s.value.clone())
    }
}

impl Deref for Stored {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.value
    }
}

/// Response bodies are either fresh values or stored objects.
pub trait IntoShared {
    /// As a shared [`Stored`].
    fn into_shared(self) -> Arc<Stored>;
}

impl IntoShared for Value {
    fn into_shared(self) -> Arc<Stored> {
        Arc::new(Stored::new(self))
    }
}

impl IntoShared for Arc<Stored> {
    fn into_shared(self) -> Arc<Stored> {
        self
    }
}

/// One change, as kept in the history and sent to watches.
#[derive(Debug)]
pub struct Change {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Which resource.
    pub key: StorageKey,
    /// The object after the change (for DELETED: its last state, with the deletion's rv).
    pub object: Arc<Stored>,
    /// The object before the change (MODIFIED only), so selector watches can turn a change
    /// that leaves the selection into DELETED.
    pub old: Option<Arc<Stored>>,
}

/// Kept changes to replay plus a receiver for later ones.
pub type Subscription = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

/// (namespace or "", name).
pub type ObjKey = (String, String);

/// The mutable server state, guarded by one mutex.
#[derive(Debug)]
pub struct Store {
    /// Served types.
    pub registry: Registry,
    /// Shared with responses and watch events, which therefore need no deep copies.
    objects: HashMap<StorageKey, BTreeMap<ObjKey, Arc<Stored>>>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Highest resourceVersion whose event was dropped from the history.
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
    /// Bearer tokens and the users they stand for.
    pub tokens: HashMap<String, crate::auth::UserInfo>,
}

impl Store {
    /// A store with the built-in types and the given history bound.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            rv: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            tx,
            tokens: HashMap::new(),
        }
    }

    /// The current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The highest revision no longer in the history.
    pub fn compacted_rv(&self) -> u64 {
        self.compacted
    }

    /// One object.
    pub fn get(&self, key: &StorageKey, ns: &str, name: &str) -> Option<&Value> {
        self.get_shared(key, ns, name).map(|o| &***o)
    }

    /// One object, shared.
    pub fn get_shared(&self, key: &StorageKey, ns: &str, name: &str) -> Option<&Arc<Stored>> {
        self.objects
            .get(key)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
    }

    /// All objects of a resource (optionally in one namespace), ordered by namespace and name.
    pub fn list<'a>(
        &'a self,
        key: &StorageKey,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjKey, &'a Arc<Stored>)> + 'a {
        self.objects
            .get(key)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(move |((ons, _), _)| ns.is_none_or(|n| n == ons))
    }

    /// Whether any object lives in the namespace.
    pub fn namespace_is_empty(&self, ns: &str) -> bool {
        !self
            .objects
            .values()
            .any(|m| m.keys().any(|(ons, _)| ons == ns))
    }

    /// Names of every (resource, namespace, name) in a namespace.
    pub fn keys_in_namespace(&self, ns: &str) -> Vec<(StorageKey, String)> {
        let mut out = Vec::new();
        for (key, map) in &self.objects {
            for (ons, name) in map.keys() {
                if ons == ns {
                    out.push((key.clone(), name.clone()));
                }
            }
        }
        out
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
    }

    /// Stores an object (create or update), stamping the next resourceVersion into it, and
    /// records ADDED or MODIFIED. Returns the stored object.
    pub fn put(&mut self, key: &StorageKey, mut obj: Value) -> Arc<Stored> {
        let rv = self.next_rv();
        crate::meta::set_meta(
            &mut obj,
            "resourceVersion",
            Some(Value::String(rv.to_string())),
        );
        let okey = (
            crate::meta::namespace(&obj).to_string(),
            crate::meta::name(&obj).to_string(),
        );
        let obj = Arc::new(Stored::new(obj));
        let old = self
            .objects
            .entry(key.clone())
            .or_default()
            .insert(okey, obj.clone());
        let kind = if old.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(Change {
            rv,
            kind,
            key: key.clone(),
            object: obj.clone(),
            old,
        });
        obj
    }

    /// Removes an object, recording DELETED with `last` (stamped with the deletion's rv) as
    /// the object. Returns the removed object as sent in the event.
    pub fn remove(
        &mut self,
        key: &StorageKey,
        ns: &str,
        name: &str,
        last: Option<Value>,
    ) -> Option<Arc<Stored>> {
        let removed = self
            .objects
            .get_mut(key)
            .and_then(|m| m.remove(&(ns.to_string(), name.to_string())))?;
        let rv = self.next_rv();
        let mut obj = last.unwrap_or_else(|| removed.into_value());
        crate::meta::set_meta(
            &mut obj,
            "resourceVersion",
            Some(Value::String(rv.to_string())),
        );
        let obj = Arc::new(Stored::new(obj));
        self.record(Change {
            rv,
            kind: EventType::Deleted,
            key: key.clone(),
            object: obj.clone(),
            old: None,
        });
        Some(obj)
    }

    /// The kept events newer than `rv` for one resource, plus a receiver for later ones.
    /// `Err(compacted)` when `rv` is older than the history reaches.
    pub fn subscribe_from(&self, key: &StorageKey, rv: u64) -> Result<Subscription, u64> {
        if rv < self.compacted {
            return Err(self.compacted);
        }
        let replay = self
            .history
            .iter()
            .filter(|c| c.rv > rv && &c.key == key)
            .cloned()
            .collect();
        Ok((replay, self.tx.subscribe()))
    }

    /// A receiver for changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// Removes every object of a resource (CRD deletion), recording DELETED for each.
    pub fn remove_all(&mut self, key: &StorageKey) {
        let keys: Vec<ObjKey> = self
            .objects
            .get(key)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for (ns, name) in keys {
            self.remove(key, &ns, &name, None);
        }
    }
}
