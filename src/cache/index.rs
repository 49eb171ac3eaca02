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

use crate::api::QodSession;

/// Where a resource lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

#[derive(Clone, Debug, Default)]
struct Maps {
    by_uid: HashMap<String, Entry>,
    by_session: HashMap<String, String>,
    /// (namespace, Service name) → uids of the resources whose applicationServer names it.
    by_service: HashMap<(String, String), HashSet<String>>,
}

#[derive(Clone, Debug)]
struct Entry {
    namespace: String,
    name: String,
    session_id: Option<String>,
    service: Option<String>,
}

impl Maps {
    fn insert(&mut self, session: &QodSession) {
        let Some(uid) = session.metadata.uid.clone() else {
            return;
        };
        self.remove(&uid);
        let session_id = session
            .status
            .as_ref()
            .and_then(|s| s.session_id.clone())
            .filter(|id| !id.is_empty());
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
                .entry((namespace.clone(), service.clone()))
                .or_default()
                .insert(uid.clone());
        }
        self.by_uid.insert(
            uid,
            Entry {
                namespace,
                name: session.name_any(),
                session_id,
                service,
            },
        );
    }

    fn remove(&mut self, uid: &str) {
        let Some(old) = self.by_uid.remove(uid) else {
            return;
        };
        if let Some(id) = old.session_id
            && self.by_session.get(&id).is_some_and(|owner| owner == uid)
        {
            self.by_session.remove(&id);
        }
        if let Some(service) = old.service {
            let key = (old.namespace, service);
            if let Some(uids) = self.by_service.get_mut(&key) {
                uids.remove(uid);
                if uids.is_empty() {
                    self.by_service.remove(&key);
                }
            }
        }
    }

    fn located(&self, uid: &str) -> Option<Located> {
        self.by_uid.get(uid).map(|e| Located {
            namespace: e.namespace.clone(),
            name: e.name.clone(),
            uid: uid.to_owned(),
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
        self.read().located(uid)
    }

    /// The resource whose status holds `session_id`.
    pub fn by_session(&self, session_id: &str) -> Option<Located> {
        let maps = self.read();
        maps.by_session
            .get(session_id)
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
                        .remove(uid);
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
