//! One watch of every `QodSession` (or one namespace's), shared by the controller and the
//! webhook: a reflector store of the objects, an [`Index`] that finds a resource by uid or by
//! session id, and a feed of changed objects that triggers the controller.
//!
//! Objects are kept without what the operator never reads (`slim.rs`). One watch instead of one
//! per reader halves the API server's fan-out.

pub mod index;
mod slim;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::{Stream, StreamExt};
use kube::{
    Api, Client,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::sync::{Notify, mpsc};

pub use index::{Index, Located};

use crate::api::QodSession;

/// The shared cache. Cloning is cheap; the watch stops when the last clone is dropped.
#[derive(Clone)]
pub struct SessionCache {
    store: Store<QodSession>,
    shared: Arc<CacheState>,
    _watch: Arc<AbortOnDrop>,
}

/// What the watch task and the handles both reach.
#[derive(Default)]
struct CacheState {
    index: Index,
    /// Controllers listening for changed objects; dropped receivers are pruned on send.
    listeners: Mutex<Vec<mpsc::UnboundedSender<ObjectRef<QodSession>>>>,
    /// Wakes every [`SessionCache::newer_than`] waiting when any object changes.
    changed: Notify,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl SessionCache {
    /// Starts watching QodSessions in `namespace` (all when `None`). Call inside a tokio
    /// runtime. Watch errors are logged and retried with kube's default backoff.
    pub fn start(client: Client, namespace: Option<&str>) -> Self {
        let api: Api<QodSession> = match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        };
        let writer = reflector::store::Writer::<QodSession>::default();
        let store = writer.as_reader();
        let shared = Arc::new(CacheState::default());
        let task = tokio::spawn(keep_in_step(api, writer, Arc::clone(&shared)));
        Self {
            store,
            shared,
            _watch: Arc::new(AbortOnDrop(task)),
        }
    }

    /// Whether the first full list has been applied (until then lookups cannot say "unknown").
    pub fn has_synced(&self) -> bool {
        self.shared.index.has_synced()
    }

    /// The resource with `uid`.
    pub fn by_uid(&self, uid: &str) -> Option<Located> {
        self.shared.index.by_uid(uid)
    }

    /// The resource whose status holds `session_id`.
    pub fn by_session(&self, session_id: &str) -> Option<Located> {
        self.shared.index.by_session(session_id)
    }

    /// The cached object of a located resource, if it is still that object (same uid).
    pub fn get(&self, located: &Located) -> Option<Arc<QodSession>> {
        self.store
            .get(&ObjectRef::new(&located.name).within(&located.namespace))
            .filter(|s| s.metadata.uid.as_deref() == Some(located.uid.as_str()))
    }

    /// The cached copy of `located` once it is newer than `seen` (another resourceVersion), or
    /// `None` when none comes `within` that time. Waiting costs nothing while no object changes.
    pub async fn newer_than(
        &self,
        located: &Located,
        seen: &QodSession,
        within: Duration,
    ) -> Option<Arc<QodSession>> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            // Created before the check: a change in between still wakes it.
            let changed = self.shared.changed.notified();
            if let Some(copy) = self.get(located)
                && copy.metadata.resource_version != seen.metadata.resource_version
            {
                return Some(copy);
            }
            tokio::time::timeout_at(deadline, changed).await.ok()?;
        }
    }

    /// Hands every cached resource that `wanted` picks to the controllers again, as if it had
    /// changed: what it depends on outside itself (its provider) did.
    pub fn retrigger(&self, wanted: impl Fn(&QodSession) -> bool) {
        let keys: Vec<_> = self
            .store
            .state()
            .iter()
            .filter(|s| wanted(s))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect();
        if !keys.is_empty() {
            self.shared.notify(&keys);
        }
    }

    /// Hands the resources whose applicationServer names Service `name` of `namespace` to the
    /// controllers again: the Service changed.
    pub fn retrigger_referencing(&self, namespace: &str, name: &str) {
        self.notify_located(self.shared.index.referencing(namespace, name));
    }

    /// Hands the resources with these uids to the controllers again (their wakeup is due);
    /// uids no longer cached are skipped.
    pub fn retrigger_uids<'a>(&self, uids: impl IntoIterator<Item = &'a str>) {
        self.notify_located(
            uids.into_iter()
                .filter_map(|uid| self.shared.index.by_uid(uid)),
        );
    }

    fn notify_located(&self, located: impl IntoIterator<Item = Located>) {
        let keys: Vec<_> = located
            .into_iter()
            .map(|located| ObjectRef::<QodSession>::new(&located.name).within(&located.namespace))
            .collect();
        if !keys.is_empty() {
            self.shared.notify(&keys);
        }
    }

    /// Number of resources known.
    pub fn len(&self) -> usize {
        self.shared.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many resources hold each `status.qosStatus` word (`None`: no word yet).
    pub fn count_by_qos_status(&self) -> HashMap<Option<String>, i64> {
        let mut counts = HashMap::new();
        for session in self.store.state() {
            let word = session
                .status
                .as_ref()
                .and_then(|s| s.qos_status.as_deref().map(str::to_owned));
            *counts.entry(word).or_insert(0) += 1;
        }
        counts
    }

    /// The objects, for a controller's lookups.
    pub fn store(&self) -> Store<QodSession> {
        self.store.clone()
    }

    /// Every object now in the cache, then each object as it changes (and all of them again
    /// after a relist). A controller that starts late (on winning the lease) so still sees
    /// every resource once. Ends when the cache is dropped.
    pub fn changes(&self) -> impl Stream<Item = Arc<QodSession>> + Send + 'static {
        let (sender, receiver) = mpsc::unbounded_channel();
        // Listen first, then take the snapshot: a change in between is seen twice, never lost.
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sender);
        let snapshot = self.store.state();
        let store = self.store.clone();
        let live = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|r| (r, receiver))
        })
        .filter_map(move |key| std::future::ready(store.get(&key)));
        futures::stream::iter(snapshot).chain(live)
    }
}

async fn keep_in_step(
    api: Api<QodSession>,
    mut writer: reflector::store::Writer<QodSession>,
    shared: Arc<CacheState>,
) {
    // Lists may come from the API server's watch cache (as the controller's did): a write
    // decided on a cached object carries its resourceVersion, so a slightly old list can
    // cost a conflict, never a lost update.
    let mut events = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .modify({
            let mut slimmer = slim::Slimmer::default();
            move |session| slimmer.slim(session)
        })
        .boxed();
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "watching QodSessions failed; retrying"
                );
                continue;
            }
        };
        writer.apply_watcher_event(&event);
        shared.index.apply(&event);
        match &event {
            watcher::Event::Apply(session) => {
                shared.notify(&[ObjectRef::from_obj(session)]);
                shared.changed.notify_waiters();
            }
            watcher::Event::InitDone => {
                let keys: Vec<_> = writer
                    .as_reader()
                    .state()
                    .iter()
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect();
                shared.notify(&keys);
            }
            // A deleted object needs no reconcile: its finalizer brought it there first.
            watcher::Event::Delete(_) | watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }
}

impl CacheState {
    /// Hands changed objects to every listener still listening.
    fn notify(&self, keys: &[ObjectRef<QodSession>]) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|listener| keys.iter().all(|key| listener.send(key.clone()).is_ok()));
    }
}
