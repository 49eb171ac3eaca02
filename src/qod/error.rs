//! Errors of the QoD provider layer. One enum; every variant knows whether a retry can help.

use std::{fmt, time::Duration};

use serde::Deserialize;

use super::{model::ErrorInfo, secret::SecretProblem};

/// What the client was doing; a bounded label for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    Create,
    Get,
    Delete,
    Extend,
    RetrieveSessions,
    FetchToken,
    /// `POST /retrieve-qos-profiles` of the QoS Profiles API.
    RetrieveProfiles,
    /// `GET /qos-profiles/{name}` of the QoS Profiles API.
    GetProfile,
}

impl Operation {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Get => "get",
            Self::Delete => "delete",
            Self::Extend => "extend",
            Self::RetrieveSessions => "retrieve_sessions",
            Self::FetchToken => "fetch_token",
            Self::RetrieveProfiles => "retrieve_qos_profiles",
            Self::GetProfile => "get_qos_profile",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened on the wire, in a few words. The transport's own error says it too, but deep
/// in a long chain after the URL; `Ready` should name the cause where a human looks first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportFailure {
    /// Nothing listens at the provider's address (its process is down).
    ConnectionRefused,
    /// The connection was not established within the connect timeout.
    ConnectTimedOut,
    /// The provider took longer than the request timeout to answer.
    TimedOut,
    /// The connection failed otherwise (DNS, TLS, network unreachable).
    ConnectFailed,
    /// The connection broke before the whole answer arrived.
    ConnectionLost,
}

impl TransportFailure {
    /// Classifies a reqwest error.
    pub fn of(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            return if error.is_connect() {
                Self::ConnectTimedOut
            } else {
                Self::TimedOut
            };
        }
        if error.is_connect() {
            let refused =
                std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
            return if refused {
                Self::ConnectionRefused
            } else {
                Self::ConnectFailed
            };
        }
        Self::ConnectionLost
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionRefused => "connection refused",
            Self::ConnectTimedOut => "timed out connecting",
            Self::TimedOut => "timed out waiting for the answer",
            Self::ConnectFailed => "could not connect",
            Self::ConnectionLost => "the connection broke before the answer was complete",
        }
    }
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest provider error text we keep, so a hostile or broken provider cannot bloat status.
const MAX_MESSAGE_CHARS: usize = 1024;

/// An error from the QoD provider layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The provider answered with an error status. `info` is its CAMARA error body, or one
    /// derived from the HTTP status and a non-CAMARA body (Nokia's `detail`/`message`).
    #[error("{operation}: the provider answered {}: {} ({})", info.status, info.code, info.message)]
    Api {
        operation: Operation,
        info: ErrorInfo,
        /// From the `Retry-After` header of a 429 or 503.
        retry_after: Option<Duration>,
    },

    /// The request could not be sent (connect failure, DNS, TLS): nothing reached the provider.
    #[error("{operation}: could not reach the QoD provider: {cause}")]
    Unreachable {
        operation: Operation,
        cause: TransportFailure,
        #[source]
        source: reqwest::Error,
    },

    /// A request that is safe to repeat timed out or lost its connection after being sent.
    #[error("{operation}: no complete answer from the QoD provider: {cause}")]
    NoAnswer {
        operation: Operation,
        cause: TransportFailure,
        #[source]
        source: reqwest::Error,
    },

    /// A create was sent but its outcome is unknown (timeout or reset before the answer).
    /// The session may exist: look the device's sessions up before any new create, because a
    /// blind re-POST can make a second, billable session.
    #[error("create: the outcome is unknown (the request was sent, then: {cause})")]
    CreateOutcomeUnknown {
        cause: TransportFailure,
        #[source]
        source: reqwest::Error,
    },

    /// A success status with a body that does not match the API.
    #[error("{operation}: the provider's answer (HTTP {status}) could not be read: {reason}")]
    InvalidResponse {
        operation: Operation,
        status: u16,
        reason: String,
    },

    /// The configured API version has no such operation (retrieve-sessions before v0.11).
    #[error("{operation} is not part of CAMARA QoD {version}")]
    Unsupported {
        operation: Operation,
        version: &'static str,
    },

    /// The request cannot be expressed in the configured API version, or breaks one of its
    /// fixed rules (e.g. v0.10 needs a device, allows at most 86400 s). Nothing was sent.
    #[error("{operation}: invalid `{field}`: {reason}")]
    InvalidRequest {
        operation: Operation,
        field: &'static str,
        reason: String,
    },

    /// A credential could not be loaded (file missing, empty).
    #[error("could not load the {what}")]
    Credential {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// A credential's key of a Kubernetes Secret cannot be used: the Secret or the key is
    /// missing, the value is empty, the operator may not read it, or the API did not answer.
    #[error("cannot use the {what} from key `{key}` of Secret {namespace}/{name}: {problem}")]
    SecretKey {
        what: &'static str,
        namespace: String,
        name: String,
        key: String,
        problem: SecretProblem,
        #[source]
        source: Option<Box<kube::Error>>,
    },

    /// The OAuth2 token endpoint refused the client credentials or gave an unusable answer.
    #[error("the token endpoint answered {status}: {message}")]
    Token { status: u16, message: String },

    /// The client could not be built from its configuration.
    #[error("invalid QoD provider configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether repeating the same call later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { info, .. } => is_retryable_status(info.status),
            Self::Token { status, .. } => is_retryable_status(*status),
            Self::Unreachable { .. } | Self::NoAnswer { .. } => true,
            // The operation may have happened: repeating it blindly is exactly what must not be
            // done. The caller recovers by looking the session up instead.
            Self::CreateOutcomeUnknown { .. } => false,
            Self::InvalidResponse { status, .. } => *status >= 500,
            Self::SecretKey { problem, .. } => problem.is_transient(),
            Self::Unsupported { .. }
            | Self::InvalidRequest { .. }
            | Self::Credential { .. }
            | Self::Config(_) => false,
        }
    }

    /// Whether a failed create may still have made a session: no answer came back, or a 2xx
    /// answer could not be read. Either way, look the device's sessions up before creating.
    pub fn may_have_created(&self) -> bool {
        match self {
            Self::CreateOutcomeUnknown { .. } => true,
            Self::InvalidResponse {
                operation: Operation::Create,
                status,
                ..
            } => (200..300).contains(status),
            _ => false,
        }
    }

    /// A credential is missing or unreadable (a file, or a Secret or key that does not exist, is
    /// empty or may not be read): a human must fix it (Ready=False `CredentialsNotFound`). An
    /// unreachable Kubernetes API is not that: it heals by itself.
    pub fn credentials_not_found(&self) -> bool {
        match self {
            Self::Credential { .. } => true,
            Self::SecretKey { problem, .. } => !problem.is_transient(),
            _ => false,
        }
    }

    /// How long the provider asked us to wait (`Retry-After` of a 429 or 503).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status the provider answered with, if it answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { info, .. } => Some(info.status),
            Self::Token { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The provider does not know the session (or the device).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The provider's CAMARA error body, for the user's eyes.
    pub fn info(&self) -> Option<&ErrorInfo> {
        match self {
            Self::Api { info, .. } => Some(info),
            _ => None,
        }
    }

    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Api { info, .. } => match info.status {
                401 | 403 => "unauthorized",
                404 => "not_found",
                409 => "conflict",
                429 => "rate_limited",
                400..=499 => "rejected",
                _ => "server_error",
            },
            Self::Unreachable { .. } => "unreachable",
            Self::NoAnswer { .. } => "no_answer",
            Self::CreateOutcomeUnknown { .. } => "outcome_unknown",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::Unsupported { .. } => "unsupported",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Credential { .. } | Self::SecretKey { .. } | Self::Token { .. } => "credentials",
            Self::Config(_) => "config",
        }
    }
}

/// 408, 425, 429 and 5xx are worth retrying; every other 4xx needs a change first.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || status >= 500
}

/// The error body of any provider, normalised to CAMARA's `{status, code, message}`.
///
/// CAMARA sends exactly that; Nokia declares `status` as a string, its FastAPI layer answers
/// `{"detail": "..."}` or `{"detail": [{"loc": .., "msg": ..}]}`, and the RapidAPI gateway
/// `{"message": "..."}`. Whatever arrives, the HTTP status is the truth and the text is kept.
pub fn error_info_from_body(status: u16, body: &[u8]) -> ErrorInfo {
    #[derive(Deserialize)]
    struct Lenient {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<serde_json::Value>,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }

    let parsed = serde_json::from_slice::<Lenient>(body).ok();
    let code = parsed
        .as_ref()
        .and_then(|p| p.code.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| default_code(status).to_owned());
    let message = parsed
        .and_then(|p| p.message.or(p.detail))
        .map(|value| match value {
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let message = if message.is_empty() {
        format!("HTTP {status} without a body")
    } else {
        truncate(message)
    };
    ErrorInfo::new(status, code, message)
}

/// The CAMARA code for a status, used when the provider sent none.
fn default_code(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "CONFLICT",
        410 => "GONE",
        422 => "UNPROCESSABLE_CONTENT",
        429 => "TOO_MANY_REQUESTS",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "TIMEOUT",
        _ => "UNKNOWN",
    }
}

fn truncate(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 section 10.2.3).
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camara_body_is_kept_as_sent() {
        let info = error_info_from_body(
            409,
            br#"{"status":409,"code":"CONFLICT","message":"Conflict with an existing session"}"#,
        );
        assert_eq!(
            info,
            ErrorInfo::new(409, "CONFLICT", "Conflict with an existing session")
        );
    }

    #[test]
    fn nokia_bodies_map_by_http_status() {
        let detail = error_info_from_body(404, br#"{"detail":"QoS subscription not found"}"#);
        assert_eq!(
            detail,
            ErrorInfo::new(404, "NOT_FOUND", "QoS subscription not found")
        );
        let gateway = error_info_from_body(403, br#"{"message":"Invalid API key."}"#);
        assert_eq!(
            gateway,
            ErrorInfo::new(403, "PERMISSION_DENIED", "Invalid API key.")
        );
        let fastapi = error_info_from_body(
            422,
            br#"{"detail":[{"loc":["body","duration"],"msg":"bad"}]}"#,
        );
        assert_eq!(fastapi.code, "UNPROCESSABLE_CONTENT");
        assert!(fastapi.message.contains("duration"), "{}", fastapi.message);
        // Nokia's typed bodies carry `status` as a string: the HTTP status wins.
        let typed = error_info_from_body(
            409,
            br#"{"status":"409","code":"ALREADY_EXISTS","message":"exists"}"#,
        );
        assert_eq!(typed, ErrorInfo::new(409, "ALREADY_EXISTS", "exists"));
    }

    #[test]
    fn non_json_and_empty_bodies_still_say_something() {
        assert_eq!(
            error_info_from_body(502, b"<html>bad gateway</html>").message,
            "<html>bad gateway</html>"
        );
        assert_eq!(
            error_info_from_body(503, b"").message,
            "HTTP 503 without a body"
        );
    }

    #[test]
    fn long_messages_are_truncated() {
        let body = format!(r#"{{"message":"{}"}}"#, "x".repeat(10_000));
        let info = error_info_from_body(500, body.as_bytes());
        assert_eq!(info.message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn retry_classification() {
        let api = |status| Error::Api {
            operation: Operation::Get,
            info: ErrorInfo::new(status, "X", "y"),
            retry_after: None,
        };
        for status in [429, 500, 502, 503, 504] {
            assert!(api(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 422] {
            assert!(!api(status).is_retryable(), "{status}");
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
