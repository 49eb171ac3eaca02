//! WATCH: a newline-delimited stream of `{"type": ..., "object": ...}` events.
//!
//! A watch starts either from "now with the current state" (`resourceVersion` empty or `0`:
//! synthetic ADDED events for every object, then live changes), or from a given
//! resourceVersion (every kept change after it, then live changes; an ERROR event with a
//! `410 Expired` Status when the history no longer reaches back that far). With
//! `sendInitialEvents=true` the initial ADDED events end with a BOOKMARK annotated
//! `k8s.io/initial-events-end`. Periodic BOOKMARKs are sent when `allowWatchBookmarks=true`,
//! and the stream ends after `timeoutSeconds`.
//!
//! With a label or field selector, a change that moves an object into the selection is sent
//! as ADDED and one that moves it out as DELETED, as the real server's watch cache does.

use crate::api::{present, presents_as_is};
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::selectors::Selectors;
use crate::store::{Change, EventType, Store, Stored};
use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// What a watch asks for.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// Resource being watched (the version the client used).
    pub rt: ResourceType,
    /// Namespace, or None for all.
    pub namespace: Option<String>,
    /// Selectors.
    pub selectors: Selectors,
    /// `resourceVersion` param.
    pub resource_version: String,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: bool,
    /// `timeoutSeconds` (or the server default).
    pub timeout: Duration,
    /// How often bookmarks are sent.
    pub bookmark_interval: Duration,
    /// `Some(includeObject)` when the client asked for `as=Table` (`kubectl get -w`): each
    /// event then carries a one-row Table.
    pub table: Option<String>,
    /// The client asked for `as=PartialObjectMetadata` (metadata-only watches).
    pub metadata_only: bool,
}

/// One event line around an already serialized object: the bytes
/// `json!({"type": kind, "object": object}).to_string()` gives, without copying the object
/// into a temporary `Value` (`kind` is a plain upper-case word needing no escaping).
fn line_with(kind: &str, object_json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object_json.len() + kind.len() + 24);
    out.extend_from_slice(b"{\"object\":");
    out.extend_from_slice(object_json);
    out.extend_from_slice(b",\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\"}\n");
    Bytes::from(out)
}

fn line(kind: &str, object: &Value) -> Bytes {
    line_with(kind, object.to_string().as_bytes())
}

fn bookmark(rt: &ResourceType, rv: u64, initial_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end && let Some(m) = metadata.as_object_mut() {
        m.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    line(
        "BOOKMARK",
        &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": metadata}),
    )
}

fn in_scope(req: &WatchRequest, obj: &Value) -> bool {
    req.namespace
        .as_deref()
        .is_none_or(|ns| crate::meta::namespace(obj) == ns)
}

/// Whether this watch sends objects exactly as stored (no Table, no metadata-only, same
/// version), so their serialization can be shared.
fn sends_as_stored(req: &WatchRequest, obj: &Value) -> bool {
    req.table.is_none() && !req.metadata_only && presents_as_is(&req.rt, obj)
}

/// One event line for `obj`; its JSON, when sent as stored, is encoded once for every watch
/// and response that carries it.
fn event(req: &WatchRequest, kind: &str, obj: &Stored) -> Bytes {
    if sends_as_stored(req, obj) {
        line_with(kind, obj.json())
    } else {
        line(kind, &render(req, obj))
    }
}

/// The object as this watch sends it (plain, or a one-row Table).
fn render(req: &WatchRequest, obj: &Value) -> Value {
    let presented = present(&req.rt, obj);
    match &req.table {
        Some(include) => {
            let meta = json!({"resourceVersion": crate::meta::resource_version(&presented)});
            crate::table::build(&req.rt, std::slice::from_ref(&presented), meta, include)
        }
        None if req.metadata_only => crate::table::partial(&presented),
        None => presented,
    }
}

/// Turns one change into the event this watch must see, if any.
fn translate(req: &WatchRequest, change: &Change) -> Option<Bytes> {
    if change.key != req.rt.storage_key() || !in_scope(req, &change.object) {
        return None;
    }
    let now = req.selectors.matches(&change.object);
    let kind = match change.kind {
        EventType::Modified => {
            let before = change
                .old
                .as_ref()
                .is_some_and(|o| req.selectors.matches(o));
            match (before, now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            }
        }
        other if now => other.as_str(),
        _ => return None,
    };
    Some(event(req, kind, &change.object))
}

/// Starts a watch: computes the initial events under the store lock and returns a channel of
/// body chunks fed by a background task.
pub fn start(
    store: Arc<Mutex<Store>>,
    req: WatchRequest,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<mpsc::Receiver<Bytes>, ApiError> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut initial: Vec<Bytes> = Vec::new();
    let rx_changes: broadcast::Receiver<Arc<Change>>;
    let mut last_rv: u64;
    {
        let guard = store.lock().unwrap_or_else(|e| e.into_inner());
        let rv_param = req.resource_version.as_str();
        if rv_param.is_empty() || rv_param == "0" || req.send_initial_events {
            for (_, obj) in guard.list(&req.rt.storage_key(), req.namespace.as_deref()) {
                if req.selectors.matches(obj) {
                    initial.push(event(&req, "ADDED", obj));
                }
            }
            last_rv = guard.current_rv();
            if req.send_initial_events && req.bookmarks {
                initial.push(bookmark(&req.rt, last_rv, true));
            }
            rx_changes = guard.subscribe();
        } else {
            let from: u64 = rv_param.parse().map_err(|_| {
                ApiError::BadRequest(format!("invalid resource version: {rv_param}"))
            })?;
            last_rv = from;
            match guard.subscribe_from(&req.rt.storage_key(), from) {
                Ok((replay, rx)) => {
                    for change in replay {
                        last_rv = change.rv;
                        if let Some(b) = translate(&req, &change) {
                            initial.push(b);
                        }
                    }
                    rx_changes = rx;
                }
                Err(compacted) => {
                    let status =
                        ApiError::Gone(format!("too old resource version: {from} ({compacted})"))
                            .to_status();
                    initial.push(line("ERROR", &status));
                    tokio::spawn(async move {
                        for b in initial {
                            if tx.send(b).await.is_err() {
                                break;
                            }
                        }
                    });
                    return Ok(rx);
                }
            }
        }
    }
    tokio::spawn(run(store, req, tx, initial, rx_changes, last_rv, shutdown));
    Ok(rx)
}

async fn run(
    store: Arc<Mutex<Store>>,
    req: WatchRequest,
    tx: mpsc::Sender<Bytes>,
    initial: Vec<Bytes>,
    mut changes: broadcast::Receiver<Arc<Change>>,
    mut last_rv: u64,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    for b in initial {
        if tx.send(b).await.is_err() {
            return;
        }
    }
    let deadline = tokio::time::sleep(req.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(req.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = shutdown.changed() => return,
            _ = tx.closed() => return,
            _ = ticker.tick(), if req.bookmarks => {
                // Drain what is already published under the lock, so the bookmark's
                // resourceVersion never runs ahead of an event this watch has not sent.
                let mut pending = Vec::new();
                let rv = {
                    let guard = store.lock().unwrap_or_else(|e| e.into_inner());
                    loop {
                        match changes.try_recv() {
                            Ok(c) => pending.push(c),
                            Err(broadcast::error::TryRecvError::Empty) => break,
                            Err(_) => return,
                        }
                    }
                    guard.current_rv()
                };
                for c in pending {
                    if let Some(b) = translate(&req, &c) && tx.send(b).await.is_err() {
                        return;
                    }
                }
                last_rv = last_rv.max(rv);
                if tx.send(bookmark(&req.rt, last_rv, false)).await.is_err() {
                    return;
                }
            }
            msg = changes.recv() => match msg {
                Ok(change) => {
                    last_rv = last_rv.max(change.rv);
                    if let Some(b) = translate(&req, &change) && tx.send(b).await.is_err() {
                        return;
                    }
                }
                // Lagged or closed: end the stream; the client re-watches from its last rv.
                Err(_) => return,
            }
        }
    }
}
