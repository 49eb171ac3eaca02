//! CloudEvents binary content mode (HTTP protocol binding v1.0.2, section 3.1): the event's
//! attributes travel in `ce-*` headers and its `data` is the body, declared by `Content-Type`.
//! Event routers (Knative, Argo Events, cloud event buses) forward in this mode by default, and
//! the binding says receivers SHOULD accept it next to structured mode.
//!
//! Read here: `ce-specversion` (must be `1.0`), `ce-id`, `ce-source`, `ce-type` (required, not
//! empty) and `ce-time` (optional, RFC 3339). Other attributes (`ce-subject`, extensions) are
//! ignored, as their members are in structured mode. A `ce-datacontenttype` header is refused:
//! the binding says `Content-Type` is that attribute and the header MUST NOT be sent. Values
//! are decoded as the binding says: surrounding whitespace trimmed, a double-quoted string
//! unescaped (older senders quote), then one round of percent-decoding whose bytes must be
//! UTF-8. The body is read as the event's `data` with the rules of [`crate::qod::event`].
//!
//! The parsing is our own rather than `cloudevents-sdk`'s: 0.9 fits axum 0.8 and http 1, but
//! does not percent-decode header values, its errors do not name the header, and it would
//! bring chrono, snafu, url and more for the few lines below.

use axum::http::HeaderMap;
use jiff::Timestamp;
use serde_json::Value;

use crate::qod::event::{self, Attributes, EventError, StatusChanged};

pub const SPECVERSION: &str = "ce-specversion";
pub const ID: &str = "ce-id";
pub const SOURCE: &str = "ce-source";
pub const TYPE: &str = "ce-type";
pub const TIME: &str = "ce-time";
pub const DATACONTENTTYPE: &str = "ce-datacontenttype";

/// The attributes every binary-mode event carries; any of them marks a request as one.
pub const REQUIRED: [&str; 4] = [SPECVERSION, ID, SOURCE, TYPE];

/// The only CloudEvents version (1.0.x all say `1.0`).
pub const SPEC_VERSION: &str = "1.0";

/// Why a binary-mode event was refused. The message names the header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BinaryError {
    #[error(
        "binary mode: the `{0}` header is missing (a binary-mode event carries ce-specversion, ce-id, ce-source and ce-type)"
    )]
    Missing(&'static str),
    #[error("binary mode: the `{0}` header is empty")]
    Empty(&'static str),
    #[error("binary mode: the `{0}` header is given more than once")]
    Repeated(&'static str),
    #[error("binary mode: the `{header}` header cannot be decoded: {reason}")]
    Encoding {
        header: &'static str,
        reason: &'static str,
    },
    #[error("binary mode: `ce-specversion` is `{0}`; only CloudEvents {SPEC_VERSION} is supported")]
    SpecVersion(String),
    #[error("binary mode: `ce-time` is `{value}`, not an RFC 3339 date-time: {reason}")]
    Time { value: String, reason: String },
    #[error(
        "binary mode: the `ce-datacontenttype` header must not be sent; the Content-Type header is the data's media type"
    )]
    DataContentTypeHeader,
    #[error("binary mode: {0} (the body is the event's `data`)")]
    Data(EventError),
    #[error("binary mode: unknown `ce-type` `{0}`; accepted: {accepted}", accepted = event::ACCEPTED_TYPES.join(", "))]
    UnknownType(String),
    /// A whole structured event sent in binary mode (see [`parse`]) that does not parse.
    #[error("{0}")]
    Structured(EventError),
}

/// Whether the request carries any binary-mode attribute header. One without
/// `ce-specversion` is still read as binary mode, so the answer names what is missing rather
/// than a structured member the sender never meant to send.
pub fn is_binary(headers: &HeaderMap) -> bool {
    REQUIRED.iter().any(|name| headers.contains_key(*name))
}

/// Reads a binary-mode event from its headers and body.
///
/// A JSON object body with a `specversion` member is a whole structured event whose sender
/// also copied its attributes into headers (with `Content-Type: application/json`, which by
/// the binding makes it binary mode). It is read as the structured event it is: webhooks
/// accepted such requests before binary mode existed, and no status-change `data` has that
/// member.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<StatusChanged, BinaryError> {
    let data = event::parse_json(body).map_err(BinaryError::Data)?;
    if data
        .as_object()
        .is_some_and(|object| object.contains_key("specversion"))
    {
        return event::parse_event_value(data).map_err(BinaryError::Structured);
    }
    parse_data(attributes(headers)?, data)
}

fn parse_data(attributes: Attributes, data: Value) -> Result<StatusChanged, BinaryError> {
    event::parse_data(attributes, data).map_err(|error| match error {
        EventError::UnknownType(event_type) => BinaryError::UnknownType(event_type),
        other => BinaryError::Data(other),
    })
}

/// The context attributes from the `ce-*` headers.
pub fn attributes(headers: &HeaderMap) -> Result<Attributes, BinaryError> {
    if headers.contains_key(DATACONTENTTYPE) {
        return Err(BinaryError::DataContentTypeHeader);
    }
    let spec_version = required(headers, SPECVERSION)?;
    if spec_version != SPEC_VERSION {
        return Err(BinaryError::SpecVersion(spec_version));
    }
    let id = required(headers, ID)?;
    let source = required(headers, SOURCE)?;
    let event_type = required(headers, TYPE)?;
    let time = match header(headers, TIME)? {
        Some(value) => Some(value.parse::<Timestamp>().map_err(|e| BinaryError::Time {
            reason: e.to_string(),
            value,
        })?),
        None => None,
    };
    Ok(Attributes {
        id,
        source,
        event_type,
        time,
    })
}

fn required(headers: &HeaderMap, name: &'static str) -> Result<String, BinaryError> {
    match header(headers, name)? {
        None => Err(BinaryError::Missing(name)),
        Some(value) if value.is_empty() => Err(BinaryError::Empty(name)),
        Some(value) => Ok(value),
    }
}

/// The decoded value of one attribute header, if present.
fn header(headers: &HeaderMap, name: &'static str) -> Result<Option<String>, BinaryError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    // Two values cannot be told apart from a list with a comma in it: refuse rather than pick.
    if values.next().is_some() {
        return Err(BinaryError::Repeated(name));
    }
    decode(value.as_bytes())
        .map(Some)
        .map_err(|reason| BinaryError::Encoding {
            header: name,
            reason,
        })
}

/// Decodes a header value as the binding says (section 3.1.3.2): trim, unquote, then one
/// round of percent-decoding; the bytes must be UTF-8 (overlong forms such as `%C0%A0` are
/// not). Lower-case hex digits are accepted, and so are unnecessarily encoded characters.
pub fn decode(raw: &[u8]) -> Result<String, &'static str> {
    let trimmed = raw.trim_ascii();
    let unquoted = match trimmed {
        [b'"', inner @ .., b'"'] => unquote(inner)?,
        [b'"', ..] => return Err("a quoted value has no closing double quote"),
        other => other.to_vec(),
    };
    let decoded = percent_decode(&unquoted)?;
    String::from_utf8(decoded).map_err(|_| "the percent-decoded bytes are not UTF-8")
}

/// The content of an RFC 9110 quoted string (without its quotes): `\x` stands for `x`.
fn unquote(inner: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(inner.len());
    let mut bytes = inner.iter();
    while let Some(&byte) = bytes.next() {
        match byte {
            b'\\' => out.push(
                *bytes
                    .next()
                    .ok_or("a quoted value ends in a lone backslash")?,
            ),
            b'"' => return Err("a quoted value has an unescaped double quote inside"),
            other => out.push(other),
        }
    }
    Ok(out)
}

fn percent_decode(bytes: &[u8]) -> Result<Vec<u8>, &'static str> {
    const BAD: &str = "`%` is not followed by two hexadecimal digits";
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'%' {
            out.push(byte);
            continue;
        }
        let [high, low, tail @ ..] = rest else {
            return Err(BAD);
        };
        let (Some(high), Some(low)) = (hex(*high), hex(*low)) else {
            return Err(BAD);
        };
        out.push((high << 4) | low);
        rest = tail;
    }
    Ok(out)
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::qod::{QosStatus, StatusInfo};

    const DATA: &[u8] =
        br#"{"sessionId": "s-1", "qosStatus": "UNAVAILABLE", "statusInfo": "DURATION_EXPIRED"}"#;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    fn complete() -> HeaderMap {
        headers(&[
            (SPECVERSION, b"1.0"),
            (ID, b"e-1"),
            (SOURCE, b"https://provider.example/sessions/s-1"),
            (TYPE, event::TYPE_V1.as_bytes()),
            (TIME, b"2025-01-02T03:04:05Z"),
            ("content-type", b"application/json"),
        ])
    }

    fn without(name: &str) -> HeaderMap {
        let mut headers = complete();
        headers.remove(name);
        headers
    }

    fn with(name: &'static str, value: &[u8]) -> HeaderMap {
        let mut headers = complete();
        headers.insert(name, HeaderValue::from_bytes(value).unwrap());
        headers
    }

    #[test]
    fn a_complete_event_parses_from_headers_and_body() {
        assert_eq!(
            parse(&complete(), DATA).unwrap(),
            StatusChanged {
                id: Some("e-1".into()),
                source: Some("https://provider.example/sessions/s-1".into()),
                time: Some("2025-01-02T03:04:05Z".parse().unwrap()),
                session_id: "s-1".into(),
                qos_status: QosStatus::Unavailable,
                status_info: Some(StatusInfo::DurationExpired),
            }
        );
        // `ce-time` is optional, as `time` is in structured mode.
        assert_eq!(parse(&without(TIME), DATA).unwrap().time, None);
        for event_type in event::ACCEPTED_TYPES {
            let parsed = parse(&with(TYPE, event_type.as_bytes()), DATA);
            assert!(parsed.is_ok(), "{event_type}: {parsed:?}");
        }
    }

    #[test]
    fn a_missing_attribute_names_its_header() {
        for name in REQUIRED {
            let error = parse(&without(name), DATA).unwrap_err();
            assert_eq!(error, BinaryError::Missing(name));
            assert!(error.to_string().contains(&format!("`{name}`")), "{error}");
        }
        assert_eq!(
            parse(&with(ID, b"  "), DATA).unwrap_err(),
            BinaryError::Empty(ID)
        );
        let mut repeated = complete();
        repeated.append(SOURCE, HeaderValue::from_static("https://other.example"));
        assert_eq!(
            parse(&repeated, DATA).unwrap_err(),
            BinaryError::Repeated(SOURCE)
        );
    }

    #[test]
    fn header_values_are_percent_decoded() {
        // The binding's own example, upper- and lower-case hex.
        for encoded in [
            "Euro%20%E2%82%AC%20%F0%9F%98%80",
            "Euro%20%e2%82%ac%20%f0%9f%98%80",
        ] {
            assert_eq!(decode(encoded.as_bytes()).unwrap(), "Euro € 😀");
        }
        // Unnecessarily encoded characters are accepted; one round only.
        assert_eq!(decode(b"%61bc%2541").unwrap(), "abc%41");
        // Whitespace around the value is not part of it; quoted strings (older senders).
        assert_eq!(decode(b"  plain \t").unwrap(), "plain");
        assert_eq!(
            decode(br#""a \"quoted\" value%21""#).unwrap(),
            r#"a "quoted" value!"#
        );
        for (bad, why) in [
            ("%C0%A0", "UTF-8"),
            ("%FF", "UTF-8"),
            ("100%", "two hexadecimal"),
            ("%4", "two hexadecimal"),
            ("%zz", "two hexadecimal"),
            ("\"open", "closing"),
            (r#""a"b""#, "unescaped"),
            (r#""trailing\"#, "closing"),
        ] {
            let error = decode(bad.as_bytes()).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }

        let parsed = parse(
            &with(
                SOURCE,
                b"https://provider.example/sessions/s%201%20%E2%82%AC",
            ),
            DATA,
        )
        .unwrap();
        assert_eq!(
            parsed.source.as_deref(),
            Some("https://provider.example/sessions/s 1 €")
        );
        assert_eq!(
            parse(&with(ID, b"e%C0%A0"), DATA).unwrap_err(),
            BinaryError::Encoding {
                header: ID,
                reason: "the percent-decoded bytes are not UTF-8"
            }
        );
    }

    #[test]
    fn only_spec_version_1_0_is_accepted() {
        for version in ["0.3", "1.1", "1", ""] {
            let error = parse(&with(SPECVERSION, version.as_bytes()), DATA).unwrap_err();
            if version.is_empty() {
                assert_eq!(error, BinaryError::Empty(SPECVERSION));
            } else {
                assert_eq!(error, BinaryError::SpecVersion(version.into()));
                assert!(
                    error.to_string().contains("only CloudEvents 1.0"),
                    "{error}"
                );
            }
        }
        // Percent-encoded, it is still 1.0.
        assert!(parse(&with(SPECVERSION, b"1%2E0"), DATA).is_ok());
    }

    #[test]
    fn bad_attributes_and_data_are_named() {
        let error = parse(&with(TIME, b"yesterday"), DATA).unwrap_err();
        assert!(
            matches!(&error, BinaryError::Time { value, .. } if value == "yesterday"),
            "{error:?}"
        );
        assert!(error.to_string().contains("`ce-time`"));

        let error = parse(&with(TYPE, b"com.example.other"), DATA).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("unknown `ce-type` `com.example.other`")
        );

        assert_eq!(
            parse(&with(DATACONTENTTYPE, b"application/json"), DATA).unwrap_err(),
            BinaryError::DataContentTypeHeader
        );

        let error = parse(
            &complete(),
            br#"{"sessionId": 5, "qosStatus": "AVAILABLE"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("data.sessionId"), "{error}");
        let error = parse(&complete(), b"{not json").unwrap_err().to_string();
        assert!(error.contains("not valid JSON"), "{error}");
        let error = parse(&complete(), b"[]").unwrap_err().to_string();
        assert!(error.contains("`data`"), "{error}");
    }

    #[test]
    fn a_structured_event_with_headers_copied_is_read_as_structured() {
        let body = json!({
            "id": "from-body", "source": "s", "type": event::TYPE_V0_10, "specversion": "1.0",
            "data": {"sessionId": "s-2", "qosStatus": "AVAILABLE"}
        });
        let parsed = parse(&complete(), body.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.id.as_deref(), Some("from-body"));
        assert_eq!(parsed.session_id, "s-2");
    }

    /// The binding's encoding rule, to check decoding against.
    fn encode(text: &str) -> String {
        let mut out = String::new();
        for c in text.chars() {
            if matches!(c, '!'..='~') && c != '"' && c != '%' {
                out.push(c);
            } else {
                let mut buffer = [0; 4];
                for byte in c.encode_utf8(&mut buffer).bytes() {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn decoding_inverts_the_bindings_encoding(text in any::<String>()) {
            prop_assert_eq!(decode(encode(&text).as_bytes()).unwrap(), text);
        }

        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}
