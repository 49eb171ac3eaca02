//! Kubernetes Events (events.k8s.io/v1) about QodSessions.
//!
//! Like kube's `Recorder`, the same event on the same resource again within a few minutes
//! counts up the first Event's `series` instead of creating another. Unlike it, the memory of
//! recent Events is bounded (least recently used goes first) and costs no scan per publish:
//! kube's keeps every Event of the last six minutes, which at 10,000 resources created at once
//! was a third of the operator's memory.

use std::{
    num::NonZeroUsize,
    sync::{Mutex, PoisonError},
};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::{core::v1::ObjectReference, events::v1::Event as K8sEvent},
    apimachinery::pkg::apis::meta::v1::MicroTime,
};
use kube::{
    Api, Client,
    api::{ObjectMeta, Patch, PatchParams, PostParams},
    runtime::events::{Event, EventType, Reporter},
};
use lru::LruCache;
use serde_json::json;

/// How long a repeat still joins the earlier Event's series (kube's and client-go's window).
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// The longest `note` events.k8s.io/v1 accepts, in bytes: the API server refuses the whole
/// Event beyond it, and a provider's error text (in CreateFailed) can be longer.
const MAX_NOTE_BYTES: usize = 1024;

/// Ends a note that was cut to fit, so readers know the text goes on.
const CUT_MARKER: &str = " [… cut]";

/// Resources × reasons remembered for series.
const REMEMBERED: NonZeroUsize = NonZeroUsize::MIN.saturating_add(1023);

/// What makes two events "the same" for a series: the resource and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    regarding: String,
    type_: EventType,
    reason: String,
    action: String,
}

#[derive(Clone, Debug)]
struct Recorded {
    namespace: String,
    name: String,
    count: i32,
    last: Timestamp,
}

/// Publishes Events as one reporting controller (and instance).
pub struct EventPublisher {
    client: Client,
    reporter: Reporter,
    recent: Mutex<LruCache<Key, Recorded>>,
}

impl EventPublisher {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self::with_capacity(client, reporter, REMEMBERED)
    }

    /// A publisher that remembers `capacity` recent Events for series.
    pub fn with_capacity(client: Client, reporter: Reporter, capacity: NonZeroUsize) -> Self {
        Self {
            client,
            reporter,
            recent: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Creates an Event about `regarding`, or counts up the series of the same recent one.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            regarding: regarding
                .uid
                .clone()
                .or_else(|| regarding.name.clone())
                .unwrap_or_default(),
            type_: event.type_,
            reason: event.reason.clone(),
            action: event.action.clone(),
        };
        let earlier = self
            .lock()
            .get(&key)
            .filter(|r| r.last + SERIES_WINDOW > now)
            .cloned();
        let recorded = match earlier {
            Some(earlier) => {
                let count = earlier.count + 1;
                Api::<K8sEvent>::namespaced(self.client.clone(), &earlier.namespace)
                    .patch(
                        &earlier.name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"series": {
                            "count": count,
                            "lastObservedTime": MicroTime(now),
                        }})),
                    )
                    .await?;
                Recorded {
                    count,
                    last: now,
                    ..earlier
                }
            }
            None => {
                let fresh = self.new_event(event, regarding, now);
                let namespace = fresh.metadata.namespace.clone().unwrap_or_default();
                let created = Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
                    .create(&PostParams::default(), &fresh)
                    .await?;
                Recorded {
                    namespace,
                    name: created.metadata.name.unwrap_or_default(),
                    count: 1,
                    last: now,
                }
            }
        };
        self.lock().put(key, recorded);
        Ok(())
    }

    fn new_event(&self, event: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        K8sEvent {
            metadata: ObjectMeta {
                // Cluster-scoped objects have their Events in "default", as client-go does.
                namespace: Some(
                    regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                ),
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .into(),
            ),
            reason: Some(event.reason.clone()),
            action: Some(event.action.clone()),
            note: event.note.as_deref().map(bounded_note),
            regarding: Some(regarding.clone()),
            related: event.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| controller.clone()),
            ),
            ..K8sEvent::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Key, Recorded>> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `note` as it is when it fits [`MAX_NOTE_BYTES`]; otherwise cut at a char boundary and
/// marked as cut, within the limit.
fn bounded_note(note: &str) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note.to_owned();
    }
    let mut end = MAX_NOTE_BYTES - CUT_MARKER.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_that_fits_is_kept_as_it_is() {
        let note = "é".repeat(MAX_NOTE_BYTES / 2);
        assert_eq!(bounded_note(&note), note);
    }

    #[test]
    fn a_long_note_is_cut_at_a_char_boundary_and_says_so() {
        // Multi-byte characters of every width, so the cut lands inside one of them.
        for unit in ["x", "é", "€", "🔥"] {
            let note = format!("provider said: {}", unit.repeat(2000));
            let bounded = bounded_note(&note);
            assert!(
                bounded.len() <= MAX_NOTE_BYTES,
                "{unit}: {} bytes",
                bounded.len()
            );
            assert!(
                bounded.len() > MAX_NOTE_BYTES - CUT_MARKER.len() - 4,
                "{unit}"
            );
            let kept = bounded.strip_suffix(CUT_MARKER).expect("marked as cut");
            assert!(note.starts_with(kept), "{unit}: a prefix of the note");
        }
    }
}
