//! Finding a resource by what a notification names: two maps fed by the cache's watch,
//! uid → namespace/name and `status.sessionId` → uid.
//!
//! The index applies `watcher` events the way kube's reflector does (a relist replaces the
//! whole state once it is complete) and says whether it has synced, which `/readyz` uses.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use kube::{ResourceExt, runtime::watcher};
use uuid::Uuid;

use crate::{api::QodSession, sweep::SweepWhenDoubled};

/// Where a resource lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// The UUID `text` is, when written as the API server writes uids (lower case, hyphenated), so
/// that writing the UUID gives `text` back.
pub(crate) fn canonical_uuid(text: &str) -> Option<Uuid> {
    let parsed = Uuid::try_parse(text).ok()?;
    let mut written = Uuid::encode_buffer();
    (parsed.hyphenated().encode_lower(&mut written) == text).then_some(parsed)
}

/// A uid or session id as the maps hold it: 16 bytes, no allocation, when it is a UUID in the
/// API server's form (every uid; most providers' session ids), else the text. The index holds
/// every resource, so this is paid 100,000 times (BENCHMARKS.md, "Fifth look").
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Id {
    Uuid([u8; 16]),
    Text(Box<str>),
}

impl Id {
    fn new(text: &str) -> Self {
        canonical_uuid(text).map_or_else(|| Self::Text(text.into()), |u| Self::Uuid(u.into_bytes()))
    }

    fn text(&self) -> String {
        match self {
            Self::Uuid(bytes) => Uuid::from_bytes(*bytes).hyphenated().to_string(),
            Self::Text(text) => text.to_string(),
        }
    }
}

/// Namespaces kept before the first sweep of those no resource is in any more.
const NAMESPACES_SWEEP_AT: usize = 64;

#[derive(Clone, Debug)]
struct Maps {
    by_uid: HashMap<Id, Entry>,
    by_session: HashMap<Id, Id>,
    /// (namespace, Service name) → uids of the resources whose applicationServer names it.
    by_service: HashMap<(String, String), HashSet<Id>>,
    /// One copy of each namespace name the entries share.
    namespaces: HashSet<Arc<str>>,
    namespaces_sweep: SweepWhenDoubled,
}

impl Default for Maps {
    fn default() -> Self {
        Self {
            by_uid: HashMap::new(),
            by_session: HashMap::new(),
            by_service: HashMap::new(),
            namespaces: HashSet::new(),
            namespaces_sweep: SweepWhenDoubled::new(NAMESPACES_SWEEP_AT),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    namespace: Arc<str>,
    name: Box<str>,
    session_id: Option<Id>,
    service: Option<Box<str>>,
}

impl Maps {
    fn insert(&mut self, session: &QodSession) {
        let Some(uid) = session.metadata.uid.as_deref().map(Id::new) else {
            return;
        };
        self.remove(&uid);
        let session_id = session
            .status
            .as_ref()
            .and_then(|s| s.session_id.as_deref())
            .filter(|id| !id.is_empty())
            .map(Id::new);
        if let Some(id) = &session_id {
            self.by_session.insert(id.clone(), uid.clone());
        }
        let namespace = session.namespace().unwrap_or_default();
        let service = session
            .spec
            .application_server
            .service_ref
            .as_ref()
            .map(|reference| reference.name.clone());
        if let Some(service) = &service {
            self.by_service
                .entry((namespace.clone(), service.to_string()))
                .or_default()
                .insert(uid.clone());
        }
        let namespace = self.shared_namespace(&namespace);
        self.by_uid.insert(
            uid,
            Entry {
                namespace,
                name: session.name_any().into(),
                session_id,
                service,
            },
        );
    }

    /// The copy of `namespace` every entry in it shares.
    fn shared_namespace(&mut self, namespace: &str) -> Arc<str> {
        if let Some(known) = self.namespaces.get(namespace) {
            return Arc::clone(known);
        }
        let shared: Arc<str> = namespace.into();
        self.namespaces.insert(Arc::clone(&shared));
        if self.namespaces_sweep.due(self.namespaces.len()) {
            self.namespaces.retain(|n| Arc::strong_count(n) > 1);
            self.namespaces_sweep.swept(self.namespaces.len());
        }
        shared
    }

    fn remove(&mut self, uid: &Id) {
        let Some(old) = self.by_uid.remove(uid) else {
            return;
        };
        if let Some(id) = old.session_id
            && self.by_session.get(&id).is_some_and(|owner| owner == uid)
        {
            self.by_session.remove(&id);
        }
        if let Some(service) = old.service {
            let key = (old.namespace.to_string(), service.into_string());
            if let Some(uids) = self.by_service.get_mut(&key) {
                uids.remove(uid);
                if uids.is_empty() {
                    self.by_service.remove(&key);
                }
            }
        }
    }

    fn located(&self, uid: &Id) -> Option<Located> {
        self.by_uid.get(uid).map(|e| Located {
            namespace: e.namespace.to_string(),
            name: e.name.to_string(),
            uid: uid.text(),
        })
    }
}

/// The shared, read-mostly index. Cloning is cheap.
#[derive(Clone, Debug, Default)]
pub struct Index {
    maps: Arc<RwLock<Maps>>,
    /// The state being relisted, swapped in at `InitDone`.
    pending: Arc<RwLock<Option<Maps>>>,
    synced: Arc<AtomicBool>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the first full list has been applied (until then lookups cannot say "unknown").
    pub fn has_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// The resource with `uid`.
    pub fn by_uid(&self, uid: &str) -> Option<Located> {
        self.read().located(&Id::new(uid))
    }

    /// The resource whose status holds `session_id`.
    pub fn by_session(&self, session_id: &str) -> Option<Located> {
        let maps = self.read();
        maps.by_session
            .get(&Id::new(session_id))
            .and_then(|uid| maps.located(uid))
    }

    /// The resources whose applicationServer names Service `name` of `namespace`.
    pub fn referencing(&self, namespace: &str, name: &str) -> Vec<Located> {
        let maps = self.read();
        maps.by_service
            .get(&(namespace.to_owned(), name.to_owned()))
            .into_iter()
            .flatten()
            .filter_map(|uid| maps.located(uid))
            .collect()
    }

    /// Number of resources known.
    pub fn len(&self) -> usize {
        self.read().by_uid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one watcher event.
    pub fn apply(&self, event: &watcher::Event<QodSession>) {
        let mut pending = self.pending.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Init => *pending = Some(Maps::default()),
            watcher::Event::InitApply(session) => {
                pending.get_or_insert_with(Maps::default).insert(session);
            }
            watcher::Event::InitDone => {
                let fresh = pending.take().unwrap_or_default();
                *self.maps.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                self.synced.store(true, Ordering::Release);
            }
            watcher::Event::Apply(session) => {
                self.maps
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(session);
            }
            watcher::Event::Delete(session) => {
                if let Some(uid) = &session.metadata.uid {
                    self.maps
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&Id::new(uid));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::api::ObjectMeta;

    use super::*;
    use crate::api::{QodSessionSpec, QodSessionStatus};

    fn session(name: &str, uid: &str, session_id: Option<&str>) -> QodSession {
        let mut s = QodSession::new(name, QodSessionSpec::example());
        s.metadata = ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            ..ObjectMeta::default()
        };
        s.status = Some(QodSessionStatus {
            session_id: session_id.map(Into::into),
            ..QodSessionStatus::default()
        });
        s
    }

    #[test]
    fn finds_resources_by_uid_and_session_and_follows_changes() {
        let index = Index::new();
        assert!(!index.has_synced());
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(session("a", "u-a", Some("s-1"))));
        assert!(
            index.by_uid("u-a").is_none(),
            "a relist shows only when complete"
        );
        index.apply(&watcher::Event::InitDone);
        assert!(index.has_synced());
        assert_eq!(index.by_session("s-1").unwrap().name, "a");
        assert_eq!(index.by_uid("u-a").unwrap().namespace, "ns");

        // The session is replaced: the old id no longer leads anywhere.
        index.apply(&watcher::Event::Apply(session("a", "u-a", Some("s-2"))));
        assert!(index.by_session("s-1").is_none());
        assert_eq!(index.by_session("s-2").unwrap().uid, "u-a");

        // A relist drops what is gone.
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(session("b", "u-b", None)));
        index.apply(&watcher::Event::InitDone);
        assert!(index.by_uid("u-a").is_none());
        assert!(index.by_session("s-2").is_none());
        assert_eq!(index.len(), 1);

        index.apply(&watcher::Event::Delete(session("b", "u-b", None)));
        assert!(index.is_empty());
    }

    #[test]
    fn uuids_are_held_as_bytes_and_given_back_as_written() {
        let uid = "0b7e9f0e-6c1a-4a55-9f3d-2d9c1b8e4a10";
        let session_id = "3fa85f64-5717-4562-b3fc-2c963f66afa6";
        assert!(matches!(Id::new(uid), Id::Uuid(_)));
        assert!(
            matches!(Id::new(&uid.to_uppercase()), Id::Text(_)),
            "another spelling stays text, so it is given back unchanged"
        );
        let index = Index::new();
        index.apply(&watcher::Event::Apply(session("a", uid, Some(session_id))));
        let upper = session_id.to_uppercase();
        index.apply(&watcher::Event::Apply(session("b", "u-b", Some(&upper))));
        let found = index.by_session(session_id).unwrap();
        assert_eq!((found.name.as_str(), found.uid.as_str()), ("a", uid));
        assert_eq!(index.by_uid(uid).unwrap().namespace, "ns");
        assert_eq!(index.by_session(&upper).unwrap().uid, "u-b");
        index.apply(&watcher::Event::Delete(session("a", uid, None)));
        assert!(index.by_session(session_id).is_none());
    }

    #[test]
    fn namespaces_are_shared_and_swept_once_unused() {
        let index = Index::new();
        let in_namespace = |i: usize| {
            let mut s = session("a", &format!("u-{i}"), None);
            s.metadata.namespace = Some(format!("ns-{i}"));
            s
        };
        for i in 0..10 * NAMESPACES_SWEEP_AT {
            index.apply(&watcher::Event::Apply(in_namespace(i)));
            index.apply(&watcher::Event::Delete(in_namespace(i)));
        }
        index.apply(&watcher::Event::Apply(session("a", "u-a", None)));
        index.apply(&watcher::Event::Apply(session("b", "u-b", None)));
        let maps = index.read();
        assert!(maps.namespaces.len() <= 2 * NAMESPACES_SWEEP_AT + 1);
        let (a, b) = (&maps.by_uid[&Id::new("u-a")], &maps.by_uid[&Id::new("u-b")]);
        assert!(
            Arc::ptr_eq(&a.namespace, &b.namespace),
            "one copy of \"ns\""
        );
    }

    #[test]
    fn finds_the_resources_that_name_a_service() {
        let index = Index::new();
        let mut web = session("a", "u-a", None);
        web.spec.application_server.service_ref =
            Some(crate::api::ServiceRef { name: "web".into() });
        index.apply(&watcher::Event::Apply(web.clone()));
        index.apply(&watcher::Event::Apply(session("b", "u-b", None)));
        let names = |index: &Index| -> Vec<String> {
            index
                .referencing("ns", "web")
                .into_iter()
                .map(|l| l.name)
                .collect()
        };
        assert_eq!(names(&index), ["a"]);
        assert!(index.referencing("other", "web").is_empty());
        // Another Service named, then the resource gone: nothing left behind.
        web.spec.application_server.service_ref =
            Some(crate::api::ServiceRef { name: "api".into() });
        index.apply(&watcher::Event::Apply(web.clone()));
        assert!(names(&index).is_empty());
        assert_eq!(index.referencing("ns", "api").len(), 1);
        index.apply(&watcher::Event::Delete(web));
        assert!(index.referencing("ns", "api").is_empty());
    }
}
