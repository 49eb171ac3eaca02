//! Request plumbing shared by every QoD client flavour: one `reqwest::Client` with connect and
//! whole-request timeouts, URL building, credentials from a [`RequestAuth`], the single retry
//! after a refused (401) credential, and the mapping of every outcome to [`Error`].
//!
//! The flavours (`camara`, `nac`) only decide paths, bodies and headers; how an answer becomes
//! a result is decided here once, so both flavours classify errors identically. The rules that
//! matter for billing: a transport failure before anything was sent is [`Error::Unreachable`];
//! after a create was sent it is [`Error::CreateOutcomeUnknown`] and never retried here; the only
//! repeated request is the one after a 401, which the provider refused and so did not act on.

use std::{
    fmt,
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;
use reqwest::{
    Method, StatusCode, Url,
    header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER},
};
use serde::de::DeserializeOwned;
use tracing::{debug, warn};
use uuid::Uuid;

use super::error::{Error, Operation, TransportFailure, error_info_from_body, parse_retry_after};

/// Default limit for establishing a connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default limit for a whole request, from sending to the last byte of the answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The CAMARA correlation header (v0.11+; harmless to older providers).
pub const X_CORRELATOR: HeaderName = HeaderName::from_static("x-correlator");

/// Largest answer body read; QoD answers are a few kilobytes, so more means a broken provider.
pub(crate) const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Time limits of every provider call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection, TLS included. Default 5 s.
    pub connect: Duration,
    /// The whole request, connect included, until the answer's body is read. Default 30 s.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: DEFAULT_CONNECT_TIMEOUT,
            request: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// Builds the one HTTP client of a provider (connections are pooled and reused by it).
pub(crate) fn build_client(timeouts: &Timeouts) -> Result<reqwest::Client, Error> {
    if timeouts.connect.is_zero() || timeouts.request.is_zero() {
        return Err(Error::Config(
            "timeouts must be longer than zero".to_owned(),
        ));
    }
    crate::tls::http_client_builder()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request)
        .user_agent(concat!("qod-operator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
}

/// Parses a configured base URL. Only http(s), and no user info: URLs end up in logs and error
/// messages, so they must never carry a credential.
pub(crate) fn parse_base_url(what: &str, url: &str) -> Result<Url, Error> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| Error::Config(format!("the {what} `{url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "the {what} must start with http:// or https://"
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::Config(format!(
            "the {what} must not carry credentials; use the credential settings instead"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::Config(format!(
            "the {what} must not have a query or fragment"
        )));
    }
    Ok(parsed)
}

/// `base` with `segments` appended as path segments (each percent-encoded, so a session id can
/// never change the path's shape).
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The credential headers for one request and which version of the credential they carry.
/// (Their values are marked sensitive, so `Debug` prints them as `Sensitive`.)
#[derive(Debug)]
pub(crate) struct Credentials {
    pub headers: HeaderMap,
    pub generation: u64,
}

/// Supplies the credential headers of a flavour and learns when the provider refuses them.
#[async_trait]
pub(crate) trait RequestAuth: Send + Sync + fmt::Debug {
    /// Headers for the next request, loading or fetching the credential when needed.
    async fn credentials(&self) -> Result<Credentials, Error>;

    /// The provider refused the credential of `generation` with `status` (401 or 403). Drops
    /// or re-reads it; returns whether a different credential is now available to try once.
    async fn refused(&self, generation: u64, status: StatusCode) -> bool;
}

/// One provider call: what it is for, and the request to make.
pub(crate) struct Call<'a> {
    pub operation: Operation,
    pub method: Method,
    /// Path segments below the base URL.
    pub path: &'a [&'a str],
    /// A JSON body, already serialised.
    pub body: Option<Vec<u8>>,
}

/// A successful (2xx) answer.
pub(crate) struct Answer {
    pub operation: Operation,
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl Answer {
    /// Parses the body; a mismatch names the offending field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        decode_json(self.operation, self.status.as_u16(), &self.body)
    }
}

/// Parses a 2xx body as `T`. A mismatch becomes [`Error::InvalidResponse`] naming the field.
pub(crate) fn decode_json<T: DeserializeOwned>(
    operation: Operation,
    status: u16,
    body: &[u8],
) -> Result<T, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::InvalidResponse {
            operation,
            status,
            reason: "the body is empty".to_owned(),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let reason = if path == "." {
            e.inner().to_string()
        } else {
            format!("`{path}`: {}", e.inner())
        };
        Error::InvalidResponse {
            operation,
            status,
            reason,
        }
    })
}

/// The HTTP side of one provider: client, base URL, credentials and whether to correlate.
#[derive(Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
    base: Url,
    auth: Box<dyn RequestAuth>,
    /// Send a fresh UUID `x-correlator` with every call (CAMARA); NaC's SDK sends none.
    correlate: bool,
}

/// What came back for one attempt, before it is judged.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Vec<u8>, BodyError>,
}

pub(crate) enum BodyError {
    Transport(reqwest::Error),
    TooLarge,
}

impl Transport {
    /// See [`crate::qod::SessionApi::check_credentials`].
    pub async fn check_credentials(&self) -> Result<(), Error> {
        self.auth.credentials().await.map(drop)
    }

    pub fn new(
        client: reqwest::Client,
        base: Url,
        auth: Box<dyn RequestAuth>,
        correlate: bool,
    ) -> Self {
        Self {
            client,
            base,
            auth,
            correlate,
        }
    }

    /// Makes the call. A refusal (401, or a 403 for a credential that has since been rotated)
    /// makes the credential be refreshed and, when the [`RequestAuth`] has a different one, the
    /// call repeated once (the provider refused the first attempt, so repeating it, even a
    /// create, cannot duplicate anything); a second refusal is returned as the error it is.
    pub async fn send(&self, call: &Call<'_>) -> Result<Answer, Error> {
        let correlator = self.correlate.then(Uuid::new_v4);
        let credentials = self.auth.credentials().await?;
        let reply = self.attempt(call, &credentials, correlator).await?;
        if !matches!(
            reply.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            return judge(call.operation, reply);
        }
        let fresh = self
            .auth
            .refused(credentials.generation, reply.status)
            .await;
        // Whether a refusal is worth a retry is the credential's call: a new OAuth token helps
        // only after a 401, a re-read key file after a 401 or a 403 (RapidAPI refuses an
        // unknown key with 403).
        if !fresh {
            return judge(call.operation, reply);
        }
        debug!(
            status = reply.status.as_u16(),
            "credential refused; retrying once with a fresh one"
        );
        let credentials = self.auth.credentials().await?;
        let reply = self.attempt(call, &credentials, correlator).await?;
        if matches!(
            reply.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        ) {
            // Remember the refusal so the next call re-reads or re-fetches, but do not loop.
            self.auth
                .refused(credentials.generation, reply.status)
                .await;
        }
        judge(call.operation, reply)
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        credentials: &Credentials,
        correlator: Option<Uuid>,
    ) -> Result<Reply, Error> {
        let url = join(&self.base, call.path);
        let mut request = self
            .client
            .request(call.method.clone(), url)
            .headers(credentials.headers.clone())
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(correlator) = correlator {
            request = request.header(X_CORRELATOR, correlator.to_string());
        }
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body.clone());
        }
        let started = Instant::now();
        let mut response = request
            .send()
            .await
            .map_err(|e| transport_error(call.operation, e))?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body = read_body(&mut response).await;
        debug!(
            status = status.as_u16(),
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            correlator = correlator.map(tracing::field::display),
            "provider answered"
        );
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// Reads at most [`MAX_BODY_BYTES`] of an answer.
pub(crate) async fn read_body(response: &mut reqwest::Response) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns an answer into a result: 2xx is an [`Answer`], anything else an [`Error::Api`].
fn judge(operation: Operation, reply: Reply) -> Result<Answer, Error> {
    let status = reply.status;
    if status.is_success() {
        return match reply.body {
            Ok(body) => Ok(Answer {
                operation,
                status,
                body,
            }),
            // The provider acted (2xx) but the answer was lost half-way.
            Err(BodyError::Transport(source)) => Err(transport_error(operation, source)),
            Err(BodyError::TooLarge) => Err(Error::InvalidResponse {
                operation,
                status: status.as_u16(),
                reason: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            }),
        };
    }
    let info = match &reply.body {
        Ok(body) => error_info_from_body(status.as_u16(), body),
        Err(_) => {
            let mut info = error_info_from_body(status.as_u16(), b"");
            info.message = format!("HTTP {}; the body could not be read", status.as_u16());
            info
        }
    };
    let retry_after = if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        reply
            .headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()))
    } else {
        None
    };
    if status.is_server_error() {
        warn!(status = status.as_u16(), code = %info.code, "provider error");
    } else {
        debug!(status = status.as_u16(), code = %info.code, "provider refused the request");
    }
    Err(Error::Api {
        operation,
        info,
        retry_after,
    })
}

/// Classifies a failure of the transport. Nothing was sent when connecting failed; otherwise
/// the request may have reached the provider, which matters only for a create.
pub(crate) fn transport_error(operation: Operation, source: reqwest::Error) -> Error {
    if source.is_builder() {
        Error::Config(format!(
            "{operation}: the request could not be built: {source}"
        ))
    } else if source.is_connect() {
        Error::Unreachable {
            operation,
            cause: TransportFailure::of(&source),
            source,
        }
    } else if operation == Operation::Create {
        Error::CreateOutcomeUnknown {
            cause: TransportFailure::of(&source),
            source,
        }
    } else {
        Error::NoAnswer {
            operation,
            cause: TransportFailure::of(&source),
            source,
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A recording HTTP server on 127.0.0.1 for the clients' tests: every request is kept
    //! (method, path, headers, body) and answered by a closure the test supplies.

    use std::{
        collections::HashMap,
        net::SocketAddr,
        sync::{Arc, Mutex},
    };

    use axum::{
        Router,
        body::{Body, Bytes},
        http::{HeaderMap, Method, Request, StatusCode},
        response::Response,
    };

    /// A request as the server saw it.
    #[derive(Clone, Debug)]
    pub struct Seen {
        pub method: Method,
        pub path: String,
        pub headers: HeaderMap,
        pub body: Bytes,
    }

    impl Seen {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).and_then(|v| v.to_str().ok())
        }

        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body).expect("the request body is JSON")
        }

        pub fn form(&self) -> HashMap<String, String> {
            form_urlencoded::parse(&self.body).into_owned().collect()
        }
    }

    /// How the server answers one request.
    pub enum Reply {
        Json(StatusCode, serde_json::Value),
        Raw(StatusCode, Vec<(&'static str, String)>, String),
        /// Read the request, then never answer.
        Hang,
    }

    impl Reply {
        pub fn json(status: u16, body: serde_json::Value) -> Self {
            Self::Json(StatusCode::from_u16(status).expect("a status"), body)
        }

        pub fn raw(status: u16, headers: &[(&'static str, &str)], body: &str) -> Self {
            Self::Raw(
                StatusCode::from_u16(status).expect("a status"),
                headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
                body.to_owned(),
            )
        }
    }

    type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

    /// The server, with the log of every request it got; it stops when dropped.
    pub struct RequestLog {
        pub addr: SocketAddr,
        seen: Arc<Mutex<Vec<Seen>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for RequestLog {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl RequestLog {
        /// Starts a server answering with `handler(request, how many requests to the same
        /// path came before it)`.
        pub async fn start(
            handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static,
        ) -> Self {
            let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
            let handler: Arc<Handler> = Arc::new(handler);
            let state = seen.clone();
            let app = Router::new().fallback(move |request: Request<Body>| {
                let seen = state.clone();
                let handler = handler.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = axum::body::to_bytes(body, usize::MAX)
                        .await
                        .expect("the request body");
                    let request = Seen {
                        method: parts.method,
                        path: parts.uri.path().to_owned(),
                        headers: parts.headers,
                        body,
                    };
                    let earlier = {
                        let mut seen = seen.lock().expect("lock");
                        let earlier = seen.iter().filter(|s| s.path == request.path).count();
                        seen.push(request.clone());
                        earlier
                    };
                    match handler(&request, earlier) {
                        Reply::Json(status, body) => Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Body::from(body.to_string()))
                            .expect("a response"),
                        Reply::Raw(status, headers, body) => {
                            let mut response = Response::builder().status(status);
                            for (name, value) in headers {
                                response = response.header(name, value);
                            }
                            response.body(Body::from(body)).expect("a response")
                        }
                        Reply::Hang => std::future::pending().await,
                    }
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind 127.0.0.1:0");
            let addr = listener.local_addr().expect("local addr");
            let task = tokio::spawn(async move {
                axum::serve(listener, app).await.expect("serve");
            });
            Self { addr, seen, task }
        }

        pub fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        pub fn seen(&self) -> Vec<Seen> {
            self.seen.lock().expect("lock").clone()
        }

        pub fn seen_at(&self, path: &str) -> Vec<Seen> {
            self.seen().into_iter().filter(|s| s.path == path).collect()
        }
    }

    /// A port on 127.0.0.1 that nothing listens on (bound, then released).
    pub fn closed_port_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_appends_encoded_segments_below_the_base_path() {
        let base = parse_base_url("base URL", "https://h/quality-on-demand/v1/").unwrap();
        assert_eq!(
            join(&base, &["sessions", "a/b?c"]).as_str(),
            "https://h/quality-on-demand/v1/sessions/a%2Fb%3Fc"
        );
        let bare = parse_base_url("base URL", "https://h").unwrap();
        assert_eq!(join(&bare, &["sessions"]).as_str(), "https://h/sessions");
    }

    #[test]
    fn base_urls_with_credentials_or_odd_schemes_are_refused() {
        for bad in [
            "ftp://h/x",
            "https://user:pw@h/x",
            "https://h/x?token=1",
            "no url",
        ] {
            assert!(
                matches!(parse_base_url("base URL", bad), Err(Error::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn zero_timeouts_are_a_configuration_error() {
        let timeouts = Timeouts {
            connect: Duration::ZERO,
            ..Timeouts::default()
        };
        assert!(matches!(build_client(&timeouts), Err(Error::Config(_))));
    }

    #[test]
    fn decode_names_the_field_that_does_not_fit() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            inner: Vec<Inner>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            count: u32,
        }
        let err =
            decode_json::<Outer>(Operation::Get, 200, br#"{"inner":[{"count":"x"}]}"#).unwrap_err();
        assert!(err.to_string().contains("`inner[0].count`"), "{err}");
        let empty = decode_json::<Outer>(Operation::Get, 200, b"").unwrap_err();
        assert!(empty.to_string().contains("empty"), "{empty}");
    }
}
