//! What the webhook accepts before it looks at a body: the media type (single CloudEvent,
//! batch, or 415), the body size (413, checked on `Content-Length` and while reading), the time
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
/// Plain JSON: what legacy (v0.9) providers send, read as a single event.
pub const JSON: &str = "application/json";

/// How the body is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Single,
    Batch,
}

/// The body's shape from `Content-Type`. Parameters are allowed; a `charset` must be UTF-8
/// (JSON is UTF-8).
pub fn shape(headers: &HeaderMap) -> Result<Shape, Refusal> {
    let accepted = format!("accepted: {CLOUDEVENTS_JSON}, {JSON}, {CLOUDEVENTS_BATCH_JSON}");
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(Refusal::UnsupportedMedia(format!(
            "the request has no Content-Type; {accepted}"
        )));
    };
    let Ok(text) = value.to_str() else {
        return Err(Refusal::UnsupportedMedia(format!(
            "the Content-Type is not readable text; {accepted}"
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
    match essence.as_str() {
        CLOUDEVENTS_JSON | JSON => Ok(Shape::Single),
        CLOUDEVENTS_BATCH_JSON => Ok(Shape::Batch),
        other => Err(Refusal::UnsupportedMedia(format!(
            "media type `{other}` is not supported; {accepted}"
        ))),
    }
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
