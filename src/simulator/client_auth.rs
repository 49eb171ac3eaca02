//! Authentication: the OAuth2 client-credentials token endpoint (`POST /oauth/token`), the
//! bearer check on API calls, and Nokia's RapidAPI key check.
//!
//! API calls are accepted with a token this simulator issued (not expired, not revoked), with
//! the static `--bearer-token-file` token, or with no credentials at all unless
//! `--require-auth` is set. The static token can be replaced at run time (`PUT /_sim/auth`), as
//! a provider rotating a client's credential would. NaC calls (`X-RapidAPI-Key`) are checked
//! against `--api-key-file` when one is configured. The client secret and the API key files are
//! re-read on every check, so a rotated (re-mounted) Secret takes effect at once and the old
//! value is refused from then on. Secrets are compared in constant time and never logged.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use super::{
    SimulatorState,
    reply::{ApiError, Dialect, X_RAPIDAPI_KEY},
};

/// The only grant the token endpoint supports.
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";

/// The client id and secret the token endpoint accepts.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// A secret to check against, re-read from its file (when it has one) at every check: the
/// simulator's checks are few and the file tiny, and reading each time needs no watcher. A file
/// that cannot be read, or is empty (a writer between truncate and write), keeps the last value.
#[derive(Debug)]
pub(super) struct WatchedSecret {
    what: &'static str,
    file: Option<PathBuf>,
    value: Mutex<SecretString>,
}

impl WatchedSecret {
    pub fn new(what: &'static str, value: SecretString, file: Option<PathBuf>) -> Self {
        Self {
            what,
            file,
            value: Mutex::new(value),
        }
    }

    /// The value to check against now.
    pub fn current(&self) -> SecretString {
        let mut value = self.value.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = &self.file {
            match super::read_secret_file(self.what, file) {
                Ok(read) if read.expose_secret() != value.expose_secret() => {
                    tracing::info!(secret = self.what, "re-read a changed secret file");
                    *value = read;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    error = %crate::telemetry::error_chain(&error),
                    "keeping the last {} read", self.what
                ),
            }
        }
        value.clone()
    }
}

/// Tokens issued by the token endpoint, each with its expiry.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: HashMap<String, Instant>,
}

impl Tokens {
    /// A fresh random token valid for `ttl`.
    pub fn issue(&mut self, now: Instant, ttl: Duration) -> String {
        self.issued.retain(|_, expires| *expires > now);
        let token = format!("sim.{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        self.issued.insert(token.clone(), now + ttl);
        token
    }

    /// Whether `token` was issued here and is still valid.
    pub fn is_valid(&self, token: &str, now: Instant) -> bool {
        // Constant time per comparison; the map is small in a simulator.
        self.issued.iter().any(|(issued, expires)| {
            constant_time_eq(issued.as_bytes(), token.as_bytes()) && *expires > now
        })
    }

    /// Revokes every issued token; returns how many were still valid.
    pub fn revoke_all(&mut self, now: Instant) -> usize {
        let valid = self.issued.values().filter(|e| **e > now).count();
        self.issued.clear();
        valid
    }
}

/// Compares two secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the credentials of an API call.
pub(super) fn authorize(
    shared: &SimulatorState,
    dialect: Dialect,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let config = &shared.config;
    if dialect == Dialect::Nac {
        if let Some(expected) = &shared.api_key {
            let given = headers
                .get(X_RAPIDAPI_KEY)
                .map(HeaderValue::as_bytes)
                .unwrap_or_default();
            if !constant_time_eq(given, expected.current().expose_secret().as_bytes()) {
                return Err(ApiError::invalid_api_key());
            }
        }
        return Ok(());
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return if config.require_auth {
            Err(ApiError::unauthenticated())
        } else {
            Ok(())
        };
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(ApiError::unauthenticated)?;
    if let Some(static_token) = shared.bearer_token()
        && constant_time_eq(static_token.expose_secret().as_bytes(), token.as_bytes())
    {
        return Ok(());
    }
    if shared.tokens().is_valid(token, shared.clock.now()) {
        Ok(())
    } else {
        Err(ApiError::unauthenticated())
    }
}

/// `POST /oauth/token`: the client-credentials grant (RFC 6749 section 4.4). Client
/// credentials come from the form or from HTTP Basic authentication.
pub(super) async fn token_endpoint(
    State(shared): State<Arc<SimulatorState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let response = issue_token(&shared, &headers, &body);
    if response.status().is_success() {
        shared.stats.token_issued();
    } else {
        shared.stats.token_rejected();
    }
    response
}

fn issue_token(shared: &SimulatorState, headers: &HeaderMap, body: &[u8]) -> Response {
    let form: Vec<(String, String)> = match serde_urlencoded_pairs(body) {
        Some(form) => form,
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            );
        }
    };
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    match field("grant_type") {
        Some(GRANT_CLIENT_CREDENTIALS) => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "only grant_type=client_credentials is supported",
            );
        }
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "grant_type is missing",
            );
        }
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(basic_credentials);
    let (client_id, client_secret) = match (&basic, field("client_id")) {
        (Some((id, secret)), _) => (Some(id.as_str()), Some(secret.as_str())),
        (None, id) => (id, field("client_secret")),
    };
    if let (Some(expected), Some(expected_secret)) =
        (&shared.config.client_credentials, &shared.client_secret)
    {
        let Some(client_id) = client_id else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "client authentication is required (client_id and client_secret)",
            );
        };
        let secret_ok = client_secret.is_some_and(|secret| {
            constant_time_eq(
                secret.as_bytes(),
                expected_secret.current().expose_secret().as_bytes(),
            )
        });
        if client_id != expected.client_id || !secret_ok {
            tracing::info!("token request refused: unknown client or wrong secret");
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            );
        }
    }
    let ttl = shared.config.token_ttl;
    let token = shared.tokens().issue(shared.clock.now(), ttl);
    let expires_in = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    let mut response = (
        StatusCode::OK,
        Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": expires_in,
        })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"qod-simulator\""),
        );
    }
    response
}

/// Decodes `application/x-www-form-urlencoded` pairs; `None` when the body is not UTF-8.
fn serde_urlencoded_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `Basic base64(id:secret)`, with id and secret form-decoded as RFC 6749 section 2.3.1 says.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded.trim())?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((percent_decode(id)?, percent_decode(secret)?))
}

/// Standard base64 with optional padding.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let trimmed = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in trimmed.bytes() {
        buffer = (buffer << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tokens_expire_and_can_be_revoked() {
        let mut tokens = Tokens::default();
        let now = Instant::now();
        let token = tokens.issue(now, Duration::from_secs(10));
        assert!(tokens.is_valid(&token, now));
        assert!(!tokens.is_valid("sim.other", now));
        assert!(!tokens.is_valid(&token, now + Duration::from_secs(10)));
        let second = tokens.issue(now, Duration::from_secs(10));
        assert_ne!(token, second);
        assert_eq!(tokens.revoke_all(now), 2);
        assert!(!tokens.is_valid(&second, now));
    }

    #[test]
    fn form_and_basic_credentials_decode() {
        let form =
            serde_urlencoded_pairs(b"grant_type=client_credentials&client_id=a%2Bb&x=1+2").unwrap();
        assert_eq!(form[1], ("client_id".into(), "a+b".into()));
        assert_eq!(form[2], ("x".into(), "1 2".into()));
        assert!(serde_urlencoded_pairs(b"a=%zz").is_none());
        // "operator:s3cret" in base64.
        assert_eq!(
            basic_credentials("Basic b3BlcmF0b3I6czNjcmV0"),
            Some(("operator".into(), "s3cret".into()))
        );
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI").unwrap(), b"ab");
        assert!(basic_credentials("Bearer x").is_none());
    }

    #[test]
    fn a_watched_secret_follows_its_file_and_keeps_the_last_value_when_it_is_unreadable() {
        let path = std::env::temp_dir().join(format!("qod-sim-secret-{}", Uuid::new_v4()));
        std::fs::write(&path, "first\n").unwrap();
        let secret = WatchedSecret::new(
            "test secret",
            SecretString::from("first"),
            Some(path.clone()),
        );
        assert_eq!(secret.current().expose_secret(), "first");
        std::fs::write(&path, "second\n").unwrap();
        assert_eq!(secret.current().expose_secret(), "second");
        // Half-written (truncated) or gone: the last good value stays.
        std::fs::write(&path, "").unwrap();
        assert_eq!(secret.current().expose_secret(), "second");
        std::fs::remove_file(&path).unwrap();
        assert_eq!(secret.current().expose_secret(), "second");
        let fixed = WatchedSecret::new("test secret", SecretString::from("fixed"), None);
        assert_eq!(fixed.current().expose_secret(), "fixed");
        assert!(!format!("{secret:?}{fixed:?}").contains("second"));
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
