//! What the webhook accepts before it looks at a body: the content mode from the media type
//! and `ce-*` headers (a structured single CloudEvent, a batch, binary mode, or 415), the body size (413, checked on `Content-Length` and while reading), the time
//! a body may take to arrive (408), and the number of requests in flight (503 with
//! `Retry-After`). A public endpoint must bound all four.

use std::time::Duration;

use axum::{
    body::Body,
    http::{HeaderMap, header},
};
use futures::StreamExt;

use super::problem::Refusal;

/// The limits of the notification endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body accepted, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Time for one request, body included: a body still arriving then is 408, a request
    /// still waiting on the Kubernetes API is 503.
    pub request_timeout: Duration,
    /// Requests handled at once; more are refused with 503 and `Retry-After`.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 64,
        }
    }
}

/// A single CloudEvent in structured mode.
pub const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";
/// A batch of CloudEvents (a JSON array).
pub const CLOUDEVENTS_BATCH_JSON: &str = "application/cloudevents-batch+json";
/// Plain JSON: what legacy (v0.9) providers send, read as a single event; in binary mode, the
/// media type of the event's data.
pub const JSON: &str = "application/json";

/// Every way a notification may arrive, for the details of 415 answers.
pub const ACCEPTED: &str = "accepted: structured mode with Content-Type \
    application/cloudevents+json or application/json (one event) or \
    application/cloudevents-batch+json (a batch), or binary mode with the event's attributes \
    in ce-specversion, ce-id, ce-source and ce-type headers (ce-time optional) and its data \
    as a JSON body (Content-Type application/json)";

/// How the body is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One event in structured mode (or a legacy body).
    Single,
    /// A JSON array of structured-mode events.
    Batch,
    /// Binary mode: the attributes are in `ce-*` headers and the body is the event's `data`
    /// ([`super::binary`]).
    Binary,
}

/// The body's shape from `Content-Type` and the `ce-*` headers, as the HTTP binding tells the
/// modes apart: a CloudEvents media type is structured (or batched) mode whatever the headers
/// say; otherwise attribute headers make it binary mode. Parameters are allowed; a `charset`
/// must be UTF-8 (JSON is UTF-8).
pub fn shape(headers: &HeaderMap) -> Result<Shape, Refusal> {
    let binary = super::binary::is_binary(headers);
    let Some(essence) = media_type(headers)? else {
        // The binding leaves the data's media type optional; ours can only be JSON.
        if binary {
            return Ok(Shape::Binary);
        }
        return Err(Refusal::UnsupportedMedia(format!(
            "the request has no Content-Type and no ce-* headers; {ACCEPTED}"
        )));
    };
    let unsupported = || {
        Refusal::UnsupportedMedia(format!(
            "media type `{essence}` is not supported; {ACCEPTED}"
        ))
    };
    if essence.starts_with("application/cloudevents-batch") {
        return (essence == CLOUDEVENTS_BATCH_JSON)
            .then_some(Shape::Batch)
            .ok_or_else(unsupported);
    }
    if essence.starts_with("application/cloudevents") {
        return (essence == CLOUDEVENTS_JSON)
            .then_some(Shape::Single)
            .ok_or_else(unsupported);
    }
    if binary {
        return if essence == JSON || essence.ends_with("+json") {
            Ok(Shape::Binary)
        } else {
            Err(Refusal::UnsupportedMedia(format!(
                "binary mode: the data's media type `{essence}` is not JSON; {ACCEPTED}"
            )))
        };
    }
    if essence == JSON {
        return Ok(Shape::Single);
    }
    Err(unsupported())
}

/// The lower-cased media type of `Content-Type` without parameters, if there is one.
fn media_type(headers: &HeaderMap) -> Result<Option<String>, Refusal> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let Ok(text) = value.to_str() else {
        return Err(Refusal::UnsupportedMedia(format!(
            "the Content-Type is not readable text; {ACCEPTED}"
        )));
    };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = value.trim().trim_matches('"');
            if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                return Err(Refusal::UnsupportedMedia(format!(
                    "charset `{charset}` is not supported; JSON bodies must be UTF-8"
                )));
            }
        }
    }
    Ok(Some(essence))
}

/// Refuses a body announced larger than `max` before reading it.
pub fn check_declared_length(headers: &HeaderMap, max: usize) -> Result<(), Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > max as u64 => Err(too_large(max)),
        _ => Ok(()),
    }
}

fn too_large(max: usize) -> Refusal {
    Refusal::TooLarge(format!("the body exceeds the limit of {max} bytes"))
}

/// Reads the body, refusing it as soon as it grows past `max` bytes.
pub async fn read_body(body: Body, max: usize) -> Result<Vec<u8>, Refusal> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| Refusal::Invalid(format!("the request body could not be read: {e}")))?;
        if bytes.len().saturating_add(chunk.len()) > max {
            return Err(too_large(max));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn media_types_map_to_shapes() {
        for (value, expected) in [
            ("application/cloudevents+json", Some(Shape::Single)),
            (
                "application/cloudevents+json; charset=utf-8",
                Some(Shape::Single),
            ),
            ("Application/JSON;charset=\"UTF-8\"", Some(Shape::Single)),
            ("application/cloudevents-batch+json", Some(Shape::Batch)),
            ("application/json; charset=iso-8859-1", None),
            ("text/plain", None),
            ("application/cloudevents+xml", None),
            ("", None),
        ] {
            assert_eq!(shape(&with_type(value)).ok(), expected, "{value}");
        }
        assert!(matches!(
            shape(&HeaderMap::new()),
            Err(Refusal::UnsupportedMedia(d)) if d.contains("no Content-Type")
        ));
    }

    #[test]
    fn ce_headers_make_binary_mode_unless_the_media_type_is_a_cloudevents_one() {
        let binary = |content_type: Option<&str>, ce: &'static str| {
            let mut headers = content_type.map(with_type).unwrap_or_default();
            headers.insert(ce, HeaderValue::from_static("1.0"));
            shape(&headers)
        };
        for content_type in [
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("application/vnd.example+json"),
            None,
        ] {
            assert_eq!(binary(content_type, "ce-specversion"), Ok(Shape::Binary));
        }
        // Any attribute header counts, so the parser can name the missing ce-specversion.
        assert_eq!(
            binary(Some("application/json"), "ce-type"),
            Ok(Shape::Binary)
        );
        assert_eq!(
            binary(Some("application/cloudevents+json"), "ce-specversion"),
            Ok(Shape::Single)
        );
        assert_eq!(
            binary(Some("application/cloudevents-batch+json"), "ce-id"),
            Ok(Shape::Batch)
        );
        assert!(matches!(
            binary(Some("text/plain"), "ce-specversion"),
            Err(Refusal::UnsupportedMedia(d)) if d.contains("binary mode") && d.contains("`text/plain` is not JSON")
        ));
        // Neither mode: the answer says what both need.
        for refused in [shape(&with_type("text/plain")), shape(&HeaderMap::new())] {
            let Err(Refusal::UnsupportedMedia(detail)) = refused else {
                panic!("{refused:?}")
            };
            for word in [
                "structured mode",
                "application/cloudevents+json",
                "binary mode",
                "ce-specversion",
            ] {
                assert!(detail.contains(word), "{detail} lacks {word}");
            }
        }
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        assert_eq!(read_body(Body::from("12345"), 5).await.unwrap(), b"12345");
        assert!(matches!(
            read_body(Body::from("123456"), 5).await,
            Err(Refusal::TooLarge(_))
        ));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("6"));
        assert!(check_declared_length(&headers, 5).is_err());
        assert!(check_declared_length(&headers, 6).is_ok());
    }
}
