//! The `qos-status-changed` notification in every shape providers send (section 8 of
//! `specs/QOD_API_NOTES.md`): the legacy v0.9 body, CloudEvents of v0.10, v0.11 and v1.x, and
//! Nokia's hybrid carrying both `event.eventDetail` and `data`. Parsing is lenient about extra
//! fields and strict about what the operator relies on (session id, status, event type).
//! Rendering produces each shape, for the simulator.

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::model::{QosStatus, StatusInfo};

/// CAMARA v1.x (and the OpenAPI files from v0.11 on use this spelling).
pub const TYPE_V1: &str = "org.camaraproject.quality-on-demand.v1.qos-status-changed";
/// CAMARA v0.11.
pub const TYPE_V0_11: &str = "org.camaraproject.quality-on-demand.v0.qos-status-changed";
/// CAMARA v0.10 and Nokia's hybrid.
pub const TYPE_V0_10: &str = "org.camaraproject.qod.v0.qos-status-changed";
/// What the CAMARA conformance tests assert for v1 providers (the spec says [`TYPE_V1`]).
pub const TYPE_V1_SHORT: &str = "org.camaraproject.qod.v1.qos-status-changed";
/// Every `type` accepted as a status change.
pub const ACCEPTED_TYPES: [&str; 4] = [TYPE_V1, TYPE_V0_11, TYPE_V0_10, TYPE_V1_SHORT];
/// `event.eventType` of the legacy (v0.9) body.
pub const LEGACY_EVENT_TYPE: &str = "QOS_STATUS_CHANGED";

/// One status change of one session, whatever shape it arrived in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusChanged {
    /// CloudEvent `id` (or legacy `event.eventId`); unique per `source`.
    pub id: Option<String>,
    /// CloudEvent `source`.
    pub source: Option<String>,
    /// When the change happened (`time` or legacy `event.eventTime`).
    pub time: Option<Timestamp>,
    pub session_id: String,
    pub qos_status: QosStatus,
    pub status_info: Option<StatusInfo>,
}

/// Why a notification body was refused. The message names the field and the reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("the body is not valid JSON: {0}")]
    Syntax(String),
    #[error("`{path}`: {reason}")]
    Field { path: String, reason: String },
    #[error("`{field}` is missing")]
    Missing { field: &'static str },
    #[error("unknown event type `{0}`; accepted: {accepted}", accepted = ACCEPTED_TYPES.join(", "))]
    UnknownType(String),
    #[error("a batch must be a JSON array of events")]
    NotABatch,
    #[error("event {index} of the batch: {source}")]
    InBatch {
        index: usize,
        #[source]
        source: Box<EventError>,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    session_id: String,
    qos_status: QosStatus,
    #[serde(default)]
    status_info: Option<StatusInfo>,
}

/// The legacy `event` object (v0.9, Nokia hybrid). The payload stays raw until the type is
/// known, so an unknown event type is reported as such and not as a bad payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LegacyEvent {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    event_detail: Option<Value>,
}

/// Every field any shape may carry at the top level.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    event: Option<LegacyEvent>,
    // The v0.9 spec's own example is the `event` object without its wrapper.
    #[serde(flatten)]
    bare: LegacyEvent,
}

/// Parses one notification body (a single event).
pub fn parse_event(body: &[u8]) -> Result<StatusChanged, EventError> {
    from_value(parse_json(body)?)
}

/// Parses one structured event already read as JSON.
pub fn parse_event_value(value: Value) -> Result<StatusChanged, EventError> {
    from_value(value)
}

/// Reads a body as JSON, for the parsers here.
pub fn parse_json(body: &[u8]) -> Result<Value, EventError> {
    serde_json::from_slice(body).map_err(|e| EventError::Syntax(e.to_string()))
}

/// The context attributes of a CloudEvent that arrived apart from its `data` (the HTTP
/// binding's binary mode, where they travel in headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub time: Option<Timestamp>,
}

/// Builds the status change from `attributes` and the event's `data` alone: the same
/// accepted types and the same payload rules as a structured event (paths are named from
/// `data`).
pub fn parse_data(attributes: Attributes, data: Value) -> Result<StatusChanged, EventError> {
    let Attributes {
        id,
        source,
        event_type,
        time,
    } = attributes;
    if !ACCEPTED_TYPES.contains(&event_type.as_str()) {
        return Err(EventError::UnknownType(event_type));
    }
    let detail = checked_detail(typed(data, "data")?)?;
    Ok(StatusChanged {
        id: Some(id),
        source: Some(source),
        time,
        session_id: detail.session_id,
        qos_status: detail.qos_status,
        status_info: detail.status_info,
    })
}

/// The payload's own rule beyond its types.
fn checked_detail(detail: Detail) -> Result<Detail, EventError> {
    if detail.session_id.is_empty() {
        return Err(EventError::Field {
            path: "data.sessionId".into(),
            reason: "must not be empty".into(),
        });
    }
    Ok(detail)
}

/// Parses a batch body (`application/cloudevents-batch+json`): a JSON array of events.
pub fn parse_batch(body: &[u8]) -> Result<Vec<StatusChanged>, EventError> {
    let Value::Array(items) = parse_json(body)? else {
        return Err(EventError::NotABatch);
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            from_value(item).map_err(|source| EventError::InBatch {
                index,
                source: Box::new(source),
            })
        })
        .collect()
}

/// Deserialises `value`, naming the failing field by its full path from the body's root.
fn typed<T: serde::de::DeserializeOwned>(value: Value, prefix: &str) -> Result<T, EventError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let inner = e.path().to_string();
        let path = match (prefix, inner.as_str()) {
            ("", inner) => inner.to_owned(),
            (prefix, ".") => prefix.to_owned(),
            (prefix, inner) => format!("{prefix}.{inner}"),
        };
        EventError::Field {
            path,
            reason: e.into_inner().to_string(),
        }
    })
}

fn from_value(value: Value) -> Result<StatusChanged, EventError> {
    if !value.is_object() {
        return Err(EventError::Field {
            path: ".".into(),
            reason: "an event must be a JSON object".into(),
        });
    }
    let Envelope {
        id,
        source,
        event_type,
        time,
        data,
        event,
        bare,
    } = typed(value, "")?;
    let (legacy, legacy_path) = match event {
        Some(event) => (Some(event), "event.eventDetail"),
        None if bare.event_type.is_some() => (Some(bare), "eventDetail"),
        None => (None, ""),
    };

    match (
        &event_type,
        legacy.as_ref().and_then(|l| l.event_type.as_deref()),
    ) {
        (Some(t), _) if !ACCEPTED_TYPES.contains(&t.as_str()) => {
            return Err(EventError::UnknownType(t.clone()));
        }
        (None, Some(t)) if t != LEGACY_EVENT_TYPE => {
            return Err(EventError::UnknownType(t.to_owned()));
        }
        (None, None) => return Err(EventError::Missing { field: "type" }),
        _ => {}
    }

    let (legacy_id, legacy_time, legacy_detail) = match legacy {
        Some(l) => (l.event_id, l.event_time, l.event_detail),
        None => (None, None, None),
    };
    // `data` is the CloudEvent payload; `event.eventDetail` the legacy one. Prefer `data`.
    let detail: Detail = checked_detail(match (data, legacy_detail) {
        (Some(data), _) => typed(data, "data")?,
        (None, Some(detail)) => typed(detail, legacy_path)?,
        (None, None) => return Err(EventError::Missing { field: "data" }),
    })?;
    let time = match time.or(legacy_time) {
        Some(text) => Some(text.parse::<Timestamp>().map_err(|e| EventError::Field {
            path: "time".into(),
            reason: format!("`{text}` is not an RFC 3339 date-time: {e}"),
        })?),
        None => None,
    };
    Ok(StatusChanged {
        id: id.or(legacy_id),
        source,
        time,
        session_id: detail.session_id,
        qos_status: detail.qos_status,
        status_info: detail.status_info,
    })
}

/// The notification shapes a provider may send; the simulator can produce each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NotificationFormat {
    /// CloudEvent with [`TYPE_V1`].
    #[default]
    V1,
    /// CloudEvent with [`TYPE_V0_11`].
    V0_11,
    /// CloudEvent with [`TYPE_V0_10`].
    V0_10,
    /// Nokia's hybrid: CloudEvent fields, `event.eventDetail` and `data` together.
    NacHybrid,
}

impl NotificationFormat {
    /// Every format, for exhaustive tests.
    pub const ALL: [Self; 4] = [Self::V1, Self::V0_11, Self::V0_10, Self::NacHybrid];

    pub const fn event_type(self) -> &'static str {
        match self {
            Self::V1 => TYPE_V1,
            Self::V0_11 => TYPE_V0_11,
            Self::V0_10 | Self::NacHybrid => TYPE_V0_10,
        }
    }
}

/// Renders a status change in `format`. `id`, `source` and `time` must be set for a CloudEvent.
pub fn render(format: NotificationFormat, event: &RenderedEvent<'_>) -> Value {
    let mut data = Map::new();
    data.insert("sessionId".into(), json!(event.session_id));
    data.insert("qosStatus".into(), json!(event.qos_status.as_str()));
    if let Some(info) = event.status_info {
        data.insert("statusInfo".into(), json!(info.as_str()));
    }
    let time = event.time.to_string();
    let mut body = json!({
        "id": event.id,
        "source": event.source,
        "type": format.event_type(),
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "time": time,
        "data": Value::Object(data.clone()),
    });
    if format == NotificationFormat::NacHybrid {
        body["event"] = json!({
            "eventId": event.id,
            "eventType": LEGACY_EVENT_TYPE,
            "eventTime": time,
            "eventDetail": Value::Object(data),
        });
    }
    body
}

/// What [`render`] needs.
#[derive(Clone, Copy, Debug)]
pub struct RenderedEvent<'a> {
    pub id: &'a str,
    pub source: &'a str,
    pub time: Timestamp,
    pub session_id: &'a str,
    pub qos_status: &'a QosStatus,
    pub status_info: Option<&'a StatusInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<StatusChanged, EventError> {
        parse_event(value.to_string().as_bytes())
    }

    #[test]
    fn legacy_v09_body_with_and_without_wrapper() {
        let detail = json!({"sessionId": "7698d710-98b7-4695-a958-7b228f08128c",
                            "qosStatus": "UNAVAILABLE", "statusInfo": "DURATION_EXPIRED"});
        let event = json!({"eventId": "5698d710-9b1b-4695-a958-7b228f08128c",
                           "eventType": "QOS_STATUS_CHANGED", "eventTime": "2023-05-30T10:18:28Z",
                           "eventDetail": detail});
        for body in [
            json!({"eventSubscriptionId": "sub", "event": event.clone()}),
            event,
        ] {
            let parsed = parse(body).unwrap();
            assert_eq!(parsed.session_id, "7698d710-98b7-4695-a958-7b228f08128c");
            assert_eq!(parsed.qos_status, QosStatus::Unavailable);
            assert_eq!(parsed.status_info, Some(StatusInfo::DurationExpired));
            assert_eq!(
                parsed.id.as_deref(),
                Some("5698d710-9b1b-4695-a958-7b228f08128c")
            );
            assert_eq!(parsed.time, Some("2023-05-30T10:18:28Z".parse().unwrap()));
        }
    }

    #[test]
    fn every_accepted_type_string_parses() {
        for event_type in ACCEPTED_TYPES {
            let parsed = parse(json!({
                "id": "e-1", "source": "https://p/s/1", "type": event_type, "specversion": "1.0",
                "time": "2025-01-02T03:04:05Z",
                "data": {"sessionId": "s-1", "qosStatus": "AVAILABLE"}
            }))
            .unwrap();
            assert_eq!(parsed.qos_status, QosStatus::Available);
            assert_eq!(parsed.status_info, None);
        }
    }

    #[test]
    fn data_wins_over_event_detail() {
        let parsed = parse(json!({
            "id": "e-1", "source": "s", "type": TYPE_V0_10, "time": "2025-01-02T03:04:05Z",
            "event": {"eventType": "QOS_STATUS_CHANGED", "eventTime": "2025-01-02T03:04:05Z",
                      "eventDetail": {"sessionId": "old", "qosStatus": "REQUESTED"}},
            "data": {"sessionId": "new", "qosStatus": "AVAILABLE"}
        }))
        .unwrap();
        assert_eq!(parsed.session_id, "new");
    }

    #[test]
    fn unknown_type_is_named() {
        let err = parse(json!({"type": "com.example.other", "data": {}})).unwrap_err();
        assert_eq!(err, EventError::UnknownType("com.example.other".into()));
        assert!(err.to_string().contains("com.example.other"));
    }

    #[test]
    fn wrong_field_types_name_the_path() {
        let err =
            parse(json!({"type": TYPE_V1, "data": {"sessionId": 5, "qosStatus": "AVAILABLE"}}))
                .unwrap_err();
        match err {
            EventError::Field { path, .. } => assert_eq!(path, "data.sessionId"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_parts_are_named() {
        assert_eq!(
            parse(json!({"type": TYPE_V1})).unwrap_err(),
            EventError::Missing { field: "data" }
        );
        assert_eq!(
            parse(json!({"data": {"sessionId": "s", "qosStatus": "AVAILABLE"}})).unwrap_err(),
            EventError::Missing { field: "type" }
        );
        assert!(matches!(
            parse(json!({"type": TYPE_V1, "data": {"qosStatus": "AVAILABLE"}})).unwrap_err(),
            EventError::Field { path, .. } if path == "data"
        ));
        assert!(matches!(
            parse_event(b"{not json"),
            Err(EventError::Syntax(_))
        ));
        assert!(matches!(parse(json!([1])), Err(EventError::Field { .. })));
    }

    #[test]
    fn data_apart_from_its_attributes_follows_the_same_rules() {
        let attributes = |event_type: &str| Attributes {
            id: "e-1".into(),
            source: "https://p/s/1".into(),
            event_type: event_type.into(),
            time: None,
        };
        let data = json!({"sessionId": "s-1", "qosStatus": "AVAILABLE"});
        for event_type in ACCEPTED_TYPES {
            let parsed = parse_data(attributes(event_type), data.clone()).unwrap();
            assert_eq!(parsed.session_id, "s-1");
            assert_eq!(parsed.id.as_deref(), Some("e-1"));
        }
        assert_eq!(
            parse_data(attributes("x"), data).unwrap_err(),
            EventError::UnknownType("x".into())
        );
        assert!(matches!(
            parse_data(attributes(TYPE_V1), json!({"sessionId": "", "qosStatus": "AVAILABLE"})),
            Err(EventError::Field { path, .. }) if path == "data.sessionId"
        ));
    }

    #[test]
    fn batch_names_the_bad_index() {
        let good = json!({"type": TYPE_V1, "data": {"sessionId": "s", "qosStatus": "AVAILABLE"}});
        let body = json!([good.clone(), good.clone()]).to_string();
        assert_eq!(parse_batch(body.as_bytes()).unwrap().len(), 2);
        let bad = json!([good, {"type": "x"}]).to_string();
        assert!(matches!(
            parse_batch(bad.as_bytes()).unwrap_err(),
            EventError::InBatch { index: 1, .. }
        ));
        assert_eq!(parse_batch(b"{}").unwrap_err(), EventError::NotABatch);
    }

    #[test]
    fn rendered_events_parse_back_in_every_format() {
        let time: Timestamp = "2025-01-02T03:04:05Z".parse().unwrap();
        for format in NotificationFormat::ALL {
            let body = render(
                format,
                &RenderedEvent {
                    id: "e-7",
                    source: "https://sim/sessions/s-7",
                    time,
                    session_id: "s-7",
                    qos_status: &QosStatus::Unavailable,
                    status_info: Some(&StatusInfo::DeleteRequested),
                },
            );
            assert_eq!(body["type"], format.event_type());
            assert_eq!(
                body.get("event").is_some(),
                format == NotificationFormat::NacHybrid
            );
            let parsed = parse(body).unwrap();
            assert_eq!(
                parsed,
                StatusChanged {
                    id: Some("e-7".into()),
                    source: Some("https://sim/sessions/s-7".into()),
                    time: Some(time),
                    session_id: "s-7".into(),
                    qos_status: QosStatus::Unavailable,
                    status_info: Some(StatusInfo::DeleteRequested),
                }
            );
        }
    }
}
