//! How the simulator answers: the API versions it serves, the two dialects (CAMARA and Nokia
//! Network as Code), and error bodies in the shape each version and dialect uses.
//!
//! Handlers raise one [`ApiError`] with the v1.1 code; [`ApiError::render`] adapts it to the
//! path's version (v0.11 and v0.10 have older code names and v0.10 has no 422) and to the
//! caller's dialect (Nokia answers `{"detail": ...}` for 404/409/422 and its RapidAPI gateway
//! `{"message": ...}` for a bad key), so the v1.1 responses satisfy the spec's per-status code
//! enums.

use axum::{
    Json,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use crate::qod::model::ErrorInfo;

/// The request header carrying a correlation id, echoed in every answer (v0.11+).
pub const X_CORRELATOR: &str = "x-correlator";
/// Present on every Network-as-Code request (RapidAPI); its presence selects the NaC dialect.
pub const X_RAPIDAPI_KEY: &str = "x-rapidapi-key";

/// Error codes of CAMARA QoD v1.1 (section 6 of the API notes).
pub mod code {
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    pub const OUT_OF_RANGE: &str = "OUT_OF_RANGE";
    pub const DURATION_OUT_OF_RANGE: &str = "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE";
    pub const INVALID_CREDENTIAL: &str = "INVALID_CREDENTIAL";
    pub const INVALID_TOKEN: &str = "INVALID_TOKEN";
    pub const INVALID_SINK: &str = "INVALID_SINK";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const CONFLICT: &str = "CONFLICT";
    pub const SESSION_EXTENSION_NOT_ALLOWED: &str =
        "QUALITY_ON_DEMAND.SESSION_EXTENSION_NOT_ALLOWED";
    pub const MISSING_IDENTIFIER: &str = "MISSING_IDENTIFIER";
    pub const QOS_PROFILE_NOT_APPLICABLE: &str = "QUALITY_ON_DEMAND.QOS_PROFILE_NOT_APPLICABLE";
    pub const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";
    pub const UNAVAILABLE: &str = "UNAVAILABLE";
}

/// The API shape a path family speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ApiVersion {
    /// `/quality-on-demand/v1`: CAMARA v1.x (and Nokia's v1 paths).
    #[serde(rename = "v1")]
    V1,
    /// `/quality-on-demand/v0.11`: CAMARA v0.11, the v1 shape with older error code names.
    #[serde(rename = "v0.11")]
    V0_11,
    /// `/qod/v0`: CAMARA v0.10 (`webhook`, epoch-second timestamps), also Nokia's v0 paths.
    #[serde(rename = "v0.10")]
    V0_10,
}

impl ApiVersion {
    pub const ALL: [Self; 3] = [Self::V1, Self::V0_11, Self::V0_10];

    /// The path prefix the version is served under.
    pub const fn base_path(self) -> &'static str {
        match self {
            Self::V1 => "/quality-on-demand/v1",
            Self::V0_11 => "/quality-on-demand/v0.11",
            Self::V0_10 => "/qod/v0",
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V0_11 => "v0.11",
            Self::V0_10 => "v0.10",
        }
    }

    /// True for the shapes with `sink`/`sinkCredential` (v0.11 and later).
    pub const fn uses_sink(self) -> bool {
        !matches!(self, Self::V0_10)
    }
}

/// Who is calling, judged by the request headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Dialect {
    /// A CAMARA client: OAuth2 bearer token (or nothing), CAMARA error bodies.
    Camara,
    /// A Nokia Network-as-Code client: RapidAPI headers, FastAPI-style error bodies.
    Nac,
}

impl Dialect {
    /// NaC clients always send `X-RapidAPI-Key`; CAMARA clients never do.
    pub fn of(headers: &HeaderMap) -> Self {
        if headers.contains_key(X_RAPIDAPI_KEY) {
            Self::Nac
        } else {
            Self::Camara
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Camara => "camara",
            Self::Nac => "nac",
        }
    }
}

/// An error answer, described with CAMARA v1.1 codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for the `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
    /// Set for the RapidAPI gateway's answer to a wrong key (`{"message": ...}`).
    pub gateway: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            gateway: false,
        }
    }

    /// 400 INVALID_ARGUMENT: the body or a parameter breaks the schema.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code::NOT_FOUND, message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHENTICATED,
            "Request not authenticated due to missing, invalid, or expired credentials. \
             A new authentication is required.",
        )
    }

    /// The RapidAPI gateway's refusal of a wrong `X-RapidAPI-Key`.
    pub fn invalid_api_key() -> Self {
        Self {
            gateway: true,
            ..Self::new(
                StatusCode::FORBIDDEN,
                code::PERMISSION_DENIED,
                "Invalid API key.",
            )
        }
    }

    /// The code and status this error has on `version`'s wire.
    fn adapted(&self, version: ApiVersion) -> (StatusCode, &'static str) {
        match version {
            ApiVersion::V1 => (self.status, self.code),
            // v0.11 used the older device error names (renamed in v1.0).
            ApiVersion::V0_11 => match self.code {
                code::MISSING_IDENTIFIER => (self.status, "UNIDENTIFIABLE_DEVICE"),
                other => (self.status, other),
            },
            // v0.10 has no 422 and no QoD-specific codes.
            ApiVersion::V0_10 => match self.code {
                code::DURATION_OUT_OF_RANGE => (self.status, code::OUT_OF_RANGE),
                code::INVALID_SINK | code::INVALID_CREDENTIAL | code::INVALID_TOKEN => {
                    (self.status, code::INVALID_ARGUMENT)
                }
                _ if self.status == StatusCode::UNPROCESSABLE_ENTITY => {
                    (StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT)
                }
                other => (self.status, other),
            },
        }
    }

    /// The answer for `version` and `dialect`, echoing `correlator` when there is one.
    pub fn render(
        &self,
        version: ApiVersion,
        dialect: Dialect,
        correlator: Option<&HeaderValue>,
    ) -> Response {
        let (status, code) = self.adapted(version);
        let body = match dialect {
            Dialect::Nac if self.gateway => json!({ "message": self.message }),
            Dialect::Nac
                if matches!(
                    status,
                    StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY
                ) =>
            {
                json!({ "detail": self.message })
            }
            _ => json!(ErrorInfo::new(status.as_u16(), code, self.message.clone())),
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(correlator) = correlator {
            headers.insert(HeaderName::from_static(X_CORRELATOR), correlator.clone());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn camara_errors_carry_status_code_and_message() {
        let error = ApiError::new(StatusCode::CONFLICT, code::CONFLICT, "overlap");
        let response = error.render(ApiVersion::V1, Dialect::Camara, None);
        assert_eq!(response.status(), StatusCode::CONFLICT);
        assert_eq!(
            body_of(response).await,
            json!({"status": 409, "code": "CONFLICT", "message": "overlap"})
        );
    }

    #[tokio::test]
    async fn older_versions_get_older_codes() {
        let missing = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::MISSING_IDENTIFIER,
            "no device",
        );
        let v011 = body_of(missing.render(ApiVersion::V0_11, Dialect::Camara, None)).await;
        assert_eq!(v011["code"], "UNIDENTIFIABLE_DEVICE");
        let v010 = missing.render(ApiVersion::V0_10, Dialect::Camara, None);
        assert_eq!(v010.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_of(v010).await["code"], "INVALID_ARGUMENT");
        let duration = ApiError::new(
            StatusCode::BAD_REQUEST,
            code::DURATION_OUT_OF_RANGE,
            "too long",
        );
        let v010 = body_of(duration.render(ApiVersion::V0_10, Dialect::Camara, None)).await;
        assert_eq!(v010["code"], "OUT_OF_RANGE");
    }

    #[tokio::test]
    async fn nac_errors_use_detail_and_the_gateway_message() {
        let not_found = ApiError::not_found("QoS subscription not found");
        let body = body_of(not_found.render(ApiVersion::V1, Dialect::Nac, None)).await;
        assert_eq!(body, json!({"detail": "QoS subscription not found"}));
        let key = ApiError::invalid_api_key();
        let response = key.render(ApiVersion::V1, Dialect::Nac, None);
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            body_of(response).await,
            json!({"message": "Invalid API key."})
        );
        // A 400 stays a CAMARA body: Nokia's typed 400s carry status, code and message too.
        let bad = body_of(ApiError::invalid("x").render(ApiVersion::V1, Dialect::Nac, None)).await;
        assert_eq!(bad["code"], "INVALID_ARGUMENT");
    }

    #[tokio::test]
    async fn retry_after_and_correlator_are_headers() {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            code::TOO_MANY_REQUESTS,
            "slow down",
        );
        error.retry_after = Some(7);
        let correlator = HeaderValue::from_static("abc-123");
        let response = error.render(ApiVersion::V1, Dialect::Camara, Some(&correlator));
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        assert_eq!(response.headers()[X_CORRELATOR], "abc-123");
    }

    #[test]
    fn dialect_follows_the_rapidapi_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(Dialect::of(&headers), Dialect::Camara);
        headers.insert(X_RAPIDAPI_KEY, HeaderValue::from_static("k"));
        assert_eq!(Dialect::of(&headers), Dialect::Nac);
    }
}
