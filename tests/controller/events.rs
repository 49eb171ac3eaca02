//! Events about QodSessions: a repeat joins the first Event's series, and the memory behind
//! that is bounded.

use std::num::NonZeroUsize;

use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::{
    Api, Resource,
    api::ListParams,
    runtime::events::{Event, EventType, Reporter},
};
use qod_operator::controller::events::EventPublisher;

use crate::harness::{Harness, Setup, spec};

fn event(reason: &str) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(format!("{reason} happened")),
        action: "Create".into(),
        secondary: None,
    }
}

fn reporter() -> Reporter {
    Reporter {
        controller: "qod-operator".into(),
        instance: Some("qod-operator-0".into()),
    }
}

async fn events(h: &Harness) -> Vec<K8sEvent> {
    let mut events = Api::<K8sEvent>::namespaced(h.client.clone(), &h.namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    events.sort_by(|a, b| a.event_time.cmp(&b.event_time));
    events
}

#[tokio::test]
async fn a_repeated_event_counts_up_one_series() {
    let h = Harness::start(Setup {
        start_controller: false,
        ..Setup::default()
    })
    .await;
    let session = h.create("repeats", spec("+36721601230201")).await;
    let regarding = session.object_ref(&());
    let publisher = EventPublisher::new(h.client.clone(), reporter());

    for _ in 0..3 {
        publisher
            .publish(&event("ProviderUnavailable"), &regarding)
            .await
            .unwrap();
    }
    publisher
        .publish(&event("Unauthorized"), &regarding)
        .await
        .unwrap();

    let events = events(&h).await;
    assert_eq!(events.len(), 2, "{events:#?}");
    let repeated = &events[0];
    assert_eq!(repeated.reason.as_deref(), Some("ProviderUnavailable"));
    assert_eq!(repeated.type_.as_deref(), Some("Warning"));
    assert_eq!(
        repeated.note.as_deref(),
        Some("ProviderUnavailable happened")
    );
    assert_eq!(
        repeated.regarding.as_ref().unwrap().uid,
        session.metadata.uid
    );
    assert_eq!(
        repeated.reporting_controller.as_deref(),
        Some("qod-operator")
    );
    assert_eq!(
        repeated.reporting_instance.as_deref(),
        Some("qod-operator-0")
    );
    let series = repeated.series.as_ref().expect("a series after repeats");
    assert_eq!(series.count, 3);
    assert!(series.last_observed_time.0 >= repeated.event_time.as_ref().unwrap().0);
    assert_eq!(events[1].reason.as_deref(), Some("Unauthorized"));
    assert!(events[1].series.is_none());
    h.stop().await;
}

#[tokio::test]
async fn the_memory_of_recent_events_is_bounded() {
    let h = Harness::start(Setup {
        start_controller: false,
        ..Setup::default()
    })
    .await;
    let session = h.create("bounded", spec("+36721601230202")).await;
    let regarding = session.object_ref(&());
    let publisher = EventPublisher::with_capacity(h.client.clone(), reporter(), NonZeroUsize::MIN);

    publisher
        .publish(&event("First"), &regarding)
        .await
        .unwrap();
    publisher
        .publish(&event("Second"), &regarding)
        .await
        .unwrap();
    // "First" was forgotten to make room for "Second": its repeat is a new Event.
    publisher
        .publish(&event("First"), &regarding)
        .await
        .unwrap();

    let reasons: Vec<_> = events(&h)
        .await
        .iter()
        .map(|e| (e.reason.clone().unwrap(), e.series.is_some()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("First".to_owned(), false),
            ("Second".to_owned(), false),
            ("First".to_owned(), false)
        ]
    );
    h.stop().await;
}
