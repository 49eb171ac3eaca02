//! Credentials of the QoD clients: OAuth2 client credentials with a cached access token, a
//! static bearer token, and Nokia's RapidAPI key. Where their secrets come from, and how they
//! are re-read, is [`super::secret`].
//!
//! A rotated Secret must take effect without a restart: a static secret is re-read whenever the
//! provider refuses it (401/403) and every few minutes, and the OAuth client secret is read for
//! every token fetch.
//! Secret values are [`SecretString`]s: redacted in `Debug`, sent only as sensitive headers or
//! form fields, and never logged or copied into an error.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use reqwest::{
    StatusCode, Url,
    header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue},
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio::time::Instant;
use tracing::{debug, instrument};

pub use super::secret::SecretSource;
use super::{
    error::{Error, Operation, error_info_from_body},
    http::{
        BodyError, Credentials, MAX_BODY_BYTES, RequestAuth, parse_base_url, read_body,
        transport_error,
    },
    secret::CachedSecret,
};

/// Builds a header value that hyper and our logs treat as sensitive.
fn sensitive_header(value: &str, what: &'static str) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(value).map_err(|_| Error::Credential {
        what,
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the value contains characters not allowed in an HTTP header",
        ),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// No credentials (a provider behind a gateway that authenticates otherwise, or the simulator).
#[derive(Debug)]
pub(crate) struct NoAuth;

#[async_trait]
impl RequestAuth for NoAuth {
    async fn credentials(&self) -> Result<Credentials, Error> {
        Ok(Credentials {
            headers: HeaderMap::new(),
            generation: 0,
        })
    }

    async fn refused(&self, _generation: u64, _status: StatusCode) -> bool {
        false
    }
}

/// A static bearer token, e.g. one issued out of band and mounted from a Secret.
#[derive(Debug)]
pub(crate) struct StaticBearer {
    token: CachedSecret,
}

impl StaticBearer {
    pub fn new(source: SecretSource) -> Self {
        Self {
            token: CachedSecret::new(source, "bearer token"),
        }
    }
}

#[async_trait]
impl RequestAuth for StaticBearer {
    async fn credentials(&self) -> Result<Credentials, Error> {
        let (token, generation) = self.token.current().await?;
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            sensitive_header(&format!("Bearer {}", token.expose_secret()), "bearer token")?,
        );
        Ok(Credentials {
            headers,
            generation,
        })
    }

    async fn refused(&self, generation: u64, _status: StatusCode) -> bool {
        self.token.reload(generation).await
    }
}

/// The default `X-RapidAPI-Host` of Nokia Network as Code.
pub const DEFAULT_RAPIDAPI_HOST: &str = "network-as-code.nokia.rapidapi.com";
const X_RAPIDAPI_KEY: HeaderName = HeaderName::from_static("x-rapidapi-key");
const X_RAPIDAPI_HOST: HeaderName = HeaderName::from_static("x-rapidapi-host");

/// Nokia Network as Code: `X-RapidAPI-Key` and (optionally) `X-RapidAPI-Host` on every call.
#[derive(Debug)]
pub(crate) struct RapidApiKey {
    key: CachedSecret,
    host: Option<HeaderValue>,
}

impl RapidApiKey {
    pub fn new(key: SecretSource, host: Option<&str>) -> Result<Self, Error> {
        let host = host
            .map(|host| {
                HeaderValue::from_str(host).map_err(|_| {
                    Error::Config(format!("`{host}` is not a valid X-RapidAPI-Host value"))
                })
            })
            .transpose()?;
        Ok(Self {
            key: CachedSecret::new(key, "RapidAPI key"),
            host,
        })
    }
}

#[async_trait]
impl RequestAuth for RapidApiKey {
    async fn credentials(&self) -> Result<Credentials, Error> {
        let (key, generation) = self.key.current().await?;
        let mut headers = HeaderMap::new();
        headers.insert(
            X_RAPIDAPI_KEY,
            sensitive_header(key.expose_secret(), "RapidAPI key")?,
        );
        if let Some(host) = &self.host {
            headers.insert(X_RAPIDAPI_HOST, host.clone());
        }
        Ok(Credentials {
            headers,
            generation,
        })
    }

    async fn refused(&self, generation: u64, _status: StatusCode) -> bool {
        self.key.reload(generation).await
    }
}

/// How the client authenticates itself at the token endpoint (RFC 6749 section 2.3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `client_secret_basic`: HTTP Basic with the form-urlencoded id and secret, as RFC 6749
    /// requires every server to accept. The default.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` as form fields, for servers that
    /// accept only that. Never both: RFC 6749 forbids using two methods in one request.
    RequestBody,
}

/// OAuth2 client credentials grant settings.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    /// The token endpoint, e.g. `https://auth.example.net/oauth/token`.
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretSource,
    /// Space-separated scopes to request; none by default (the provider's defaults apply).
    pub scope: Option<String>,
    pub client_auth: ClientAuthMethod,
}

impl ClientCredentials {
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: SecretSource,
    ) -> Self {
        Self {
            token_url: token_url.into(),
            client_id: client_id.into(),
            client_secret,
            scope: None,
            client_auth: ClientAuthMethod::default(),
        }
    }
}

/// Lifetime assumed when the token endpoint does not say (`expires_in` is only RECOMMENDED).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// A token is replaced this long before it expires, so no request carries one about to lapse.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// OAuth2 client credentials: fetches an access token and caches it until shortly before it
/// expires. One fetch at a time: concurrent callers wait for it instead of fetching too.
pub(crate) struct OAuthTokens {
    config: ClientCredentials,
    token_url: Url,
    http: reqwest::Client,
    state: tokio::sync::Mutex<TokenState>,
}

impl fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cached token is a secret too; say only whether there is one.
        f.debug_struct("OAuthTokens")
            .field("config", &self.config)
            .field("token_url", &self.token_url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct TokenState {
    token: Option<CachedToken>,
    /// Counts fetched tokens; identifies which one a refused request carried.
    generation: u64,
}

struct CachedToken {
    value: SecretString,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<ExpiresIn>,
}

/// `expires_in` is a number, but some servers send it as a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ExpiresIn {
    Seconds(u64),
    Text(String),
}

/// RFC 6749 section 5.2 error answer.
#[derive(Deserialize)]
struct TokenErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

impl OAuthTokens {
    pub fn new(config: ClientCredentials, http: reqwest::Client) -> Result<Self, Error> {
        let token_url = parse_base_url("token URL", &config.token_url)?;
        if config.client_id.trim().is_empty() {
            return Err(Error::Config("the OAuth2 client id is empty".to_owned()));
        }
        Ok(Self {
            config,
            token_url,
            http,
            state: tokio::sync::Mutex::new(TokenState::default()),
        })
    }

    /// The form body of a token request (with the client's id and secret for
    /// [`ClientAuthMethod::RequestBody`]).
    fn token_form(&self, secret: &SecretString) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        if let Some(scope) = &self.config.scope {
            form.append_pair("scope", scope);
        }
        if self.config.client_auth == ClientAuthMethod::RequestBody {
            form.append_pair("client_id", &self.config.client_id);
            form.append_pair("client_secret", secret.expose_secret());
        }
        form.finish()
    }

    #[instrument(skip_all, fields(operation = "fetch_token"))]
    async fn fetch(&self) -> Result<(SecretString, Duration), Error> {
        // Read for every fetch, so a rotated client secret is used from the next fetch on.
        let secret = self
            .config
            .client_secret
            .load("OAuth2 client secret")
            .await?;
        let request = self
            .http
            .post(self.token_url.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        let request = match self.config.client_auth {
            ClientAuthMethod::Basic => {
                // RFC 6749 2.3.1: id and secret are form-urlencoded before Basic encoding.
                // reqwest marks the Authorization header sensitive.
                let id: String =
                    form_urlencoded::byte_serialize(self.config.client_id.as_bytes()).collect();
                let secret: String =
                    form_urlencoded::byte_serialize(secret.expose_secret().as_bytes()).collect();
                request.basic_auth(id, Some(secret))
            }
            ClientAuthMethod::RequestBody => request,
        };
        let body = self.token_form(&secret);
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(Operation::FetchToken, e))?;
        let status = response.status();
        // Capped as every provider answer is: a token endpoint is just as remote.
        let body = match read_body(&mut response).await {
            Ok(body) => body,
            Err(BodyError::Transport(e)) => return Err(transport_error(Operation::FetchToken, e)),
            Err(BodyError::TooLarge) => {
                return Err(Error::Token {
                    status: status.as_u16(),
                    message: format!("the answer is larger than {MAX_BODY_BYTES} bytes"),
                });
            }
        };
        debug!(status = status.as_u16(), "token endpoint answered");
        if !status.is_success() {
            return Err(Error::Token {
                status: status.as_u16(),
                message: token_error_message(status, &body),
            });
        }
        let unusable = |reason: String| Error::Token {
            status: status.as_u16(),
            message: format!("unusable token answer: {reason}"),
        };
        // Never echo the body or serde's text: both could contain the token.
        let mut deserializer = serde_json::Deserializer::from_slice(&body);
        let answer: TokenAnswer =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
                unusable(match e.inner().classify() {
                    serde_json::error::Category::Data => {
                        format!("`{}` is missing or has the wrong type", e.path())
                    }
                    _ => "the body is not a JSON object".to_owned(),
                })
            })?;
        if let Some(kind) = &answer.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(unusable(format!("token_type `{kind}` is not Bearer")));
        }
        if answer.access_token.expose_secret().is_empty() {
            return Err(unusable("access_token is empty".to_owned()));
        }
        let lifetime = match answer.expires_in {
            None => DEFAULT_TOKEN_LIFETIME,
            Some(ExpiresIn::Seconds(seconds)) => Duration::from_secs(seconds),
            Some(ExpiresIn::Text(text)) => text
                .trim()
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| unusable("expires_in is not a number of seconds".to_owned()))?,
        };
        Ok((answer.access_token, lifetime))
    }
}

/// What a refusing token endpoint said, from its RFC 6749 error body or whatever it sent.
fn token_error_message(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<TokenErrorAnswer>(body) {
        Ok(TokenErrorAnswer {
            error,
            error_description: Some(description),
        }) => format!("{error}: {description}"),
        Ok(TokenErrorAnswer { error, .. }) => error,
        Err(_) => error_info_from_body(status.as_u16(), body).message,
    }
}

/// When to replace a token that lives `lifetime`: [`REFRESH_MARGIN`] before its end, or half
/// way for tokens shorter than twice the margin.
fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.saturating_sub(REFRESH_MARGIN.min(lifetime / 2))
}

#[async_trait]
impl RequestAuth for OAuthTokens {
    async fn credentials(&self) -> Result<Credentials, Error> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let token = match &state.token {
            Some(token) if now < token.refresh_at => token.value.clone(),
            _ => {
                let (value, lifetime) = self.fetch().await?;
                state.generation += 1;
                state.token = Some(CachedToken {
                    value: value.clone(),
                    refresh_at: now + refresh_after(lifetime),
                });
                value
            }
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            sensitive_header(&format!("Bearer {}", token.expose_secret()), "access token")?,
        );
        Ok(Credentials {
            headers,
            generation: state.generation,
        })
    }

    async fn refused(&self, generation: u64, status: StatusCode) -> bool {
        let mut state = self.state.lock().await;
        if state.generation == generation {
            // Revoked or expired early (401), or the client's grants changed (403): either way
            // the next request should carry a token fetched now, with the current secret.
            state.token = None;
        }
        status == StatusCode::UNAUTHORIZED
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use serde_json::json;

    use super::*;
    use crate::qod::http::{
        Timeouts, build_client,
        testing::{Reply, RequestLog},
    };

    fn temp_file(content: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("qod-auth-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[test]
    fn tokens_are_refreshed_shortly_before_they_expire() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(3570)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(20)),
            Duration::from_secs(10)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    fn token_cache(
        server: &RequestLog,
        client_auth: ClientAuthMethod,
        secret: SecretSource,
    ) -> OAuthTokens {
        let mut config = ClientCredentials::new(server.url("/oauth/token"), "client id+1", secret);
        config.client_auth = client_auth;
        config.scope = Some("quality-on-demand:sessions:create".to_owned());
        OAuthTokens::new(config, build_client(&Timeouts::default()).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn basic_client_auth_sends_the_encoded_id_and_secret_in_the_header_only() {
        let server = RequestLog::start(|_, n| {
            Reply::json(
                200,
                json!({"access_token": format!("tok-{n}"), "token_type": "bearer", "expires_in": 3600}),
            )
        })
        .await;
        let tokens = token_cache(
            &server,
            ClientAuthMethod::Basic,
            SecretSource::Value(SecretString::from("p@ss/w+rd")),
        );
        let first = tokens.credentials().await.unwrap();
        let again = tokens.credentials().await.unwrap();
        assert_eq!(first.headers[AUTHORIZATION], "Bearer tok-0");
        assert_eq!(again.headers[AUTHORIZATION], "Bearer tok-0");
        assert!(first.headers[AUTHORIZATION].is_sensitive());

        let seen = server.seen_at("/oauth/token");
        assert_eq!(seen.len(), 1, "the token is cached");
        let form = seen[0].form();
        assert_eq!(form["grant_type"], "client_credentials");
        assert_eq!(form["scope"], "quality-on-demand:sessions:create");
        assert!(!form.contains_key("client_secret"));
        assert_eq!(
            seen[0].header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        // base64("client+id%2B1:p%40ss%2Fw%2Brd")
        assert_eq!(
            seen[0].header("authorization"),
            Some("Basic Y2xpZW50K2lkJTJCMTpwJTQwc3MlMkZ3JTJCcmQ=")
        );
    }

    #[tokio::test]
    async fn request_body_client_auth_sends_form_fields_and_no_basic_header() {
        let server = RequestLog::start(|_, _| {
            Reply::json(200, json!({"access_token": "t", "expires_in": "60"}))
        })
        .await;
        let tokens = token_cache(
            &server,
            ClientAuthMethod::RequestBody,
            SecretSource::Value(SecretString::from("p@ss")),
        );
        tokens.credentials().await.unwrap();
        let seen = &server.seen_at("/oauth/token")[0];
        assert_eq!(seen.header("authorization"), None);
        let form = seen.form();
        assert_eq!(form["client_id"], "client id+1");
        assert_eq!(form["client_secret"], "p@ss");
    }

    #[tokio::test]
    async fn an_expired_token_is_fetched_again_and_a_refusal_drops_the_cached_one() {
        let fetches = std::sync::Arc::new(AtomicU32::new(0));
        let counter = fetches.clone();
        let server = RequestLog::start(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            Reply::json(200, json!({"access_token": "t", "expires_in": 0}))
        })
        .await;
        let tokens = token_cache(
            &server,
            ClientAuthMethod::Basic,
            SecretSource::Value(SecretString::from("s")),
        );
        tokens.credentials().await.unwrap();
        tokens.credentials().await.unwrap();
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "expires_in 0 is never reused"
        );

        let server = RequestLog::start(|_, _| {
            Reply::json(200, json!({"access_token": "t", "expires_in": 3600}))
        })
        .await;
        let tokens = token_cache(
            &server,
            ClientAuthMethod::Basic,
            SecretSource::Value(SecretString::from("s")),
        );
        let used = tokens.credentials().await.unwrap();
        assert!(
            tokens
                .refused(used.generation, StatusCode::UNAUTHORIZED)
                .await
        );
        let fresh = tokens.credentials().await.unwrap();
        assert_ne!(fresh.generation, used.generation);
        // A late refusal of the old token does not throw the fresh one away.
        tokens
            .refused(used.generation, StatusCode::UNAUTHORIZED)
            .await;
        tokens.credentials().await.unwrap();
        assert_eq!(server.seen_at("/oauth/token").len(), 2);
        // 403: the token is dropped, but a retry is not suggested.
        assert!(
            !tokens
                .refused(fresh.generation, StatusCode::FORBIDDEN)
                .await
        );
    }

    #[tokio::test]
    async fn token_endpoint_errors_say_what_it_said_and_never_the_secret() {
        let server = RequestLog::start(|_, _| {
            Reply::json(
                401,
                json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
            )
        })
        .await;
        let tokens = token_cache(
            &server,
            ClientAuthMethod::Basic,
            SecretSource::Value(SecretString::from("the-client-secret")),
        );
        let err = tokens.credentials().await.unwrap_err();
        assert!(matches!(err, Error::Token { status: 401, .. }), "{err:?}");
        assert!(!err.is_retryable());
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("invalid_client: Client authentication failed"),
            "{text}"
        );
        assert!(!text.contains("the-client-secret"), "{text}");
        assert!(!format!("{tokens:?}").contains("the-client-secret"));
    }

    #[tokio::test]
    async fn a_malformed_token_answer_does_not_echo_the_token() {
        let server = RequestLog::start(|_, _| {
            Reply::json(
                200,
                json!({"access_token": "leaky-token", "token_type": "mac"}),
            )
        })
        .await;
        let tokens = token_cache(
            &server,
            ClientAuthMethod::Basic,
            SecretSource::Value(SecretString::from("s")),
        );
        let err = tokens.credentials().await.unwrap_err();
        assert!(err.to_string().contains("token_type `mac`"), "{err}");

        let server =
            RequestLog::start(|_, _| Reply::json(200, json!({"access_token": 12345678}))).await;
        let tokens = token_cache(
            &server,
            ClientAuthMethod::Basic,
            SecretSource::Value(SecretString::from("s")),
        );
        let err = tokens.credentials().await.unwrap_err().to_string();
        assert!(err.contains("`access_token`"), "{err}");
        assert!(!err.contains("12345678"), "{err}");
    }

    #[tokio::test]
    async fn an_oversized_token_answer_is_refused_not_read_whole() {
        let oversized = format!("{{\"access_token\": \"{}\"}}", "t".repeat(MAX_BODY_BYTES));
        let server = RequestLog::start(move |_, _| {
            Reply::raw(200, &[("content-type", "application/json")], &oversized)
        })
        .await;
        let tokens = token_cache(
            &server,
            ClientAuthMethod::Basic,
            SecretSource::Value(SecretString::from("s")),
        );
        let err = tokens.credentials().await.unwrap_err();
        assert!(matches!(err, Error::Token { status: 200, .. }), "{err:?}");
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[tokio::test]
    async fn the_client_secret_file_is_read_for_every_fetch() {
        let path = temp_file("first-secret\n");
        let server = RequestLog::start(|_, _| {
            Reply::json(200, json!({"access_token": "t", "expires_in": 0}))
        })
        .await;
        let tokens = token_cache(
            &server,
            ClientAuthMethod::RequestBody,
            SecretSource::File(path.clone()),
        );
        tokens.credentials().await.unwrap();
        std::fs::write(&path, "second-secret\n").unwrap();
        tokens.credentials().await.unwrap();
        let secrets: Vec<String> = server
            .seen_at("/oauth/token")
            .iter()
            .map(|s| s.form()["client_secret"].clone())
            .collect();
        assert_eq!(secrets, ["first-secret", "second-secret"]);
        std::fs::remove_file(&path).unwrap();
    }
}
