//! Refusals: every answer other than 204 is an `application/problem+json` body (RFC 9457)
//! `{type, title, status, detail}` whose detail says what was wrong, so whoever runs the
//! provider side can fix it from the answer alone. Each refusal also names its metric result.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::metrics::NotificationResult;

/// The media type of a problem body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Why a notification request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the body is not a notification (the detail names the field).
    Invalid(String),
    /// 401: no bearer token, or not the resource's.
    Unauthorized(String),
    /// 404: no such resource, or no resource holds the session.
    NotFound(String),
    /// 408: the body did not arrive in time.
    BodyTimeout(String),
    /// 409: the resource holds another session.
    Conflict(String),
    /// 413: the body is larger than the limit.
    TooLarge(String),
    /// 415: not a JSON CloudEvent (batch).
    UnsupportedMedia(String),
    /// 500: a failure a retry does not fix (logged).
    Internal(String),
    /// 503: the Kubernetes API could not take the write, the cache is not synced, the
    /// resource's session is being created, or the request ran out of time; retry.
    Unavailable(String),
    /// 503: too many requests in flight; retry.
    Overloaded(String),
}

/// Seconds a provider is asked to wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl Refusal {
    pub const fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) | Self::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short, stable name; also the last segment of the problem `type`.
    pub const fn slug(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid-notification",
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not-found",
            Self::BodyTimeout(_) => "body-timeout",
            Self::Conflict(_) => "session-mismatch",
            Self::TooLarge(_) => "too-large",
            Self::UnsupportedMedia(_) => "unsupported-media-type",
            Self::Internal(_) => "internal",
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded(_) => "overloaded",
        }
    }

    const fn title(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "The body is not a qos-status-changed notification",
            Self::Unauthorized(_) => "Missing or wrong bearer token",
            Self::NotFound(_) => "No such session",
            Self::BodyTimeout(_) => "The request body did not arrive in time",
            Self::Conflict(_) => "The resource holds another session",
            Self::TooLarge(_) => "The body is too large",
            Self::UnsupportedMedia(_) => "Unsupported media type",
            Self::Internal(_) => "The notification could not be stored",
            Self::Unavailable(_) => "Not stored; retry later",
            Self::Overloaded(_) => "Too many notifications in flight; retry later",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Self::Invalid(d)
            | Self::Unauthorized(d)
            | Self::NotFound(d)
            | Self::BodyTimeout(d)
            | Self::Conflict(d)
            | Self::TooLarge(d)
            | Self::UnsupportedMedia(d)
            | Self::Internal(d)
            | Self::Unavailable(d)
            | Self::Overloaded(d) => d,
        }
    }

    /// The metric result this refusal counts as.
    pub const fn result(&self) -> NotificationResult {
        match self {
            Self::Invalid(_) => NotificationResult::Invalid,
            Self::Unauthorized(_) => NotificationResult::Unauthorized,
            Self::NotFound(_) => NotificationResult::NotFound,
            Self::BodyTimeout(_) => NotificationResult::Timeout,
            Self::Conflict(_) => NotificationResult::Conflict,
            Self::TooLarge(_) => NotificationResult::TooLarge,
            Self::UnsupportedMedia(_) => NotificationResult::UnsupportedMedia,
            Self::Internal(_) => NotificationResult::Internal,
            Self::Unavailable(_) => NotificationResult::Unavailable,
            Self::Overloaded(_) => NotificationResult::Overloaded,
        }
    }

    /// How bad this refusal is, for the answer to a batch: the worst one wins. A retryable
    /// failure ranks first (the provider must retry the batch), then refusals of the caller
    /// (401 before 404 before 409), which a retry does not fix.
    pub const fn severity(&self) -> u8 {
        match self {
            Self::Unavailable(_) | Self::Overloaded(_) => 9,
            Self::Internal(_) => 8,
            Self::BodyTimeout(_) => 7,
            Self::Unauthorized(_) => 6,
            Self::TooLarge(_) | Self::UnsupportedMedia(_) | Self::Invalid(_) => 5,
            Self::NotFound(_) => 4,
            Self::Conflict(_) => 3,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({
            "type": format!("urn:qod-operator:webhook:{}", self.slug()),
            "title": self.title(),
            "status": status.as_u16(),
            "detail": self.detail(),
        });
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self {
            Self::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"qod-operator\""),
                );
            }
            Self::Unavailable(_) | Self::Overloaded(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
            }
            _ => {}
        }
        response
    }
}
