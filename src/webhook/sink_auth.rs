//! Who may notify about a resource: the request must carry `Authorization: Bearer <token>`
//! where the token is the resource's HMAC token ([`SinkKeys`]) or, only when one is
//! configured, the static token of the seeds' receivers. The scheme name is matched without
//! regard to case (RFC 9110); the token is compared byte for byte in constant time. A token
//! of another resource is as wrong as any other. Tokens are never logged.

use axum::http::{HeaderMap, header};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::problem::Refusal;
use crate::sink_keys::SinkKeys;

/// Checks bearer tokens.
#[derive(Clone, Debug)]
pub struct Authenticator {
    keys: SinkKeys,
    static_token: Option<SecretString>,
}

/// The token a request presents, not yet checked.
pub struct Presented<'a>(&'a [u8]);

impl Authenticator {
    pub fn new(keys: SinkKeys, static_token: Option<SecretString>) -> Self {
        Self { keys, static_token }
    }

    pub fn keys(&self) -> &SinkKeys {
        &self.keys
    }

    /// The bearer token of the request, or a 401 saying what is missing.
    pub fn presented(headers: &HeaderMap) -> Result<Presented<'_>, Refusal> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Refusal::Unauthorized(
                "the request has no Authorization header; expected `Bearer <token>` with the token registered for this session".into(),
            ));
        };
        let bytes = value.as_bytes();
        let scheme_len = "Bearer ".len();
        match bytes.get(..scheme_len) {
            Some(scheme) if scheme.eq_ignore_ascii_case(b"Bearer ") => {
                let token = bytes.get(scheme_len..).unwrap_or_default();
                if token.is_empty() {
                    Err(Refusal::Unauthorized(
                        "the Authorization header carries an empty bearer token".into(),
                    ))
                } else {
                    Ok(Presented(token))
                }
            }
            _ => Err(Refusal::Unauthorized(
                "the Authorization header is not of the form `Bearer <token>`".into(),
            )),
        }
    }

    /// Whether `presented` may notify about the resource with `uid`.
    pub fn check(&self, uid: &str, presented: &Presented<'_>) -> Result<(), Refusal> {
        if self.is_static(presented) || self.keys.verify_or_reload(uid, presented.0) {
            Ok(())
        } else {
            Err(wrong_token())
        }
    }

    /// Whether `presented` may learn that no resource holds a session: only the static token,
    /// good for every session, can be checked without a resource. Anyone else gets the answer
    /// a wrong token gets, so session ids cannot be probed without credentials.
    pub fn check_unknown_session(&self, presented: &Presented<'_>) -> Result<(), Refusal> {
        if self.is_static(presented) {
            Ok(())
        } else {
            Err(wrong_token())
        }
    }

    fn is_static(&self, presented: &Presented<'_>) -> bool {
        self.static_token
            .as_ref()
            .is_some_and(|token| bool::from(token.expose_secret().as_bytes().ct_eq(presented.0)))
    }
}

fn wrong_token() -> Refusal {
    Refusal::Unauthorized("the bearer token is not the one registered for this session".into())
}

impl Authenticator {}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn check(auth: &Authenticator, uid: &str, value: Option<&str>) -> Result<(), Refusal> {
        let headers = headers(value);
        let presented = Authenticator::presented(&headers)?;
        auth.check(uid, &presented)
    }

    #[test]
    fn only_the_resources_token_or_a_configured_static_token_passes() {
        let keys = SinkKeys::from_bytes(b"key".to_vec(), None).unwrap();
        let token = keys.token_for("uid-a");
        let good = format!("Bearer {}", token.expose_secret());
        let auth = Authenticator::new(keys.clone(), None);
        assert!(check(&auth, "uid-a", Some(&good)).is_ok());
        assert!(check(&auth, "uid-a", Some(&good.replace("Bearer", "bearer"))).is_ok());
        for bad in [
            None,
            Some(""),
            Some("Bearer "),
            Some("Basic dXNlcjpwYXNz"),
            Some(token.expose_secret()),
            Some("Bearer my-token"),
            Some(&format!("Bearer  {}", token.expose_secret())),
            Some(&format!("Bearer Bearer {}", token.expose_secret())),
        ] {
            assert!(
                matches!(check(&auth, "uid-a", bad), Err(Refusal::Unauthorized(_))),
                "{bad:?}"
            );
        }
        assert!(
            check(&auth, "uid-b", Some(&good)).is_err(),
            "another resource's token"
        );

        let with_static = Authenticator::new(keys, Some(SecretString::from("my-token")));
        assert!(check(&with_static, "uid-b", Some("Bearer my-token")).is_ok());
        assert!(check(&with_static, "uid-b", Some("Bearer my-token2")).is_err());
    }

    #[test]
    fn only_the_static_token_may_learn_that_a_session_is_unknown() {
        let keys = SinkKeys::from_bytes(b"key".to_vec(), None).unwrap();
        let resource_token = format!("Bearer {}", keys.token_for("uid-a").expose_secret());
        let unknown = |auth: &Authenticator, value: &str| {
            let headers = headers(Some(value));
            let presented = Authenticator::presented(&headers).unwrap();
            auth.check_unknown_session(&presented)
        };
        let without_static = Authenticator::new(keys.clone(), None);
        assert!(matches!(
            unknown(&without_static, &resource_token),
            Err(Refusal::Unauthorized(_))
        ));
        let with_static = Authenticator::new(keys, Some(SecretString::from("my-token")));
        assert!(unknown(&with_static, "Bearer my-token").is_ok());
        assert!(unknown(&with_static, &resource_token).is_err());
    }
}
