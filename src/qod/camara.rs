//! The CAMARA QoD client: [`SessionApi`] over the API versions v1.x (default), v0.11 and v0.10.
//!
//! This module owns what differs between versions (`specs/QOD_API_NOTES.md`, section 10): the
//! callback fields (`sink`/`sinkCredential` from v0.11, `webhook` in v0.10), the rules v0.10
//! fixes on `device`, `duration` and extension, and the missing retrieve-sessions of v0.10.
//! Everything about sending and judging requests is in `http`; credentials are in `credentials`.
//! Answers are parsed leniently by the shared model (epoch or RFC 3339 timestamps alike).

use std::{
    fmt,
    str::FromStr,
    sync::atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use reqwest::Method;
use secrecy::ExposeSecret as _;
use tracing::{Span, instrument, warn};

use super::{
    Device, NotificationTarget, SessionApi, SessionInfo, SessionRequest,
    credentials::{ClientCredentials, NoAuth, OAuthTokens, SecretSource, StaticBearer},
    error::{Error, Operation},
    http::{Answer, Call, RequestAuth, Timeouts, Transport, build_client, parse_base_url},
    model::{CreateSession, ExtendSessionDuration, RetrieveSessionsInput, SinkCredential, Webhook},
};

/// The CAMARA QoD API version a provider speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    /// v1.0 and v1.1 (base path `/quality-on-demand/v1`).
    #[default]
    V1,
    /// v0.11 (base path `/quality-on-demand/v0.11`).
    V0_11,
    /// v0.10 (base path `/qod/v0`).
    V0_10,
}

impl ApiVersion {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V0_11 => "v0.11",
            Self::V0_10 => "v0.10",
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApiVersion {
    type Err = Error;

    /// Accepts `v1`, `v1.0`, `v1.1`, `v0.11`, `v0.10` (with or without the `v`).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let trimmed = value.trim();
        let bare = trimmed.strip_prefix(['v', 'V']).unwrap_or(trimmed);
        match bare {
            "1" | "1.0" | "1.1" => Ok(Self::V1),
            "0.11" => Ok(Self::V0_11),
            "0.10" => Ok(Self::V0_10),
            _ => Err(Error::Config(format!(
                "unknown CAMARA QoD version `{value}`; use v1, v0.11 or v0.10"
            ))),
        }
    }
}

/// How the client authenticates to a CAMARA provider.
#[derive(Clone, Debug, Default)]
pub enum CamaraAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// A fixed bearer token (re-read from its file when refused).
    Bearer(SecretSource),
    /// OAuth2 client credentials; the access token is cached until shortly before expiry.
    ClientCredentials(ClientCredentials),
}

/// Settings of a CAMARA provider.
#[derive(Clone, Debug)]
pub struct CamaraConfig {
    /// The API's base URL including its base path, e.g. `https://host/quality-on-demand/v1`.
    pub base_url: String,
    /// Default [`ApiVersion::V1`].
    pub version: ApiVersion,
    /// Default none.
    pub auth: CamaraAuth,
    /// Default 5 s connect, 30 s whole request.
    pub timeouts: Timeouts,
    /// Where its QoS Profiles API is (base URL including `/qos-profiles/v1`); default: beside
    /// `base_url` for v1 (see [`Self::qos_profiles_url`]).
    pub qos_profiles_url: Option<String>,
}

impl CamaraConfig {
    /// A v1 provider at `base_url` without authentication and with the default timeouts.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            version: ApiVersion::default(),
            auth: CamaraAuth::default(),
            timeouts: Timeouts::default(),
            qos_profiles_url: None,
        }
    }

    /// The base URL of the provider's QoS Profiles API: the one given, else for v1 the one
    /// beside the QoD API (`…/quality-on-demand/v1` → `…/qos-profiles/v1`). `None`: the
    /// provider has none we know of (before v1 the profiles API did not exist).
    pub fn qos_profiles_url(&self) -> Option<String> {
        self.qos_profiles_url.clone().or_else(|| {
            (self.version == ApiVersion::V1)
                .then(|| {
                    super::profiles::base_url_beside(&self.base_url, super::profiles::BASE_PATH)
                })
                .flatten()
        })
    }
}

/// v0.10 caps a session at one day, and an extension at one second less.
const V0_10_MAX_DURATION: u32 = 86_400;
const V0_10_MAX_EXTENSION: u32 = 86_399;
/// v0.10 bounds `webhook.notificationAuthToken`.
const V0_10_TOKEN_CHARS: std::ops::RangeInclusive<usize> = 20..=256;

/// A client of one CAMARA QoD provider (also the engine of the NaC flavour, which speaks the
/// v1 wire on its own paths).
#[derive(Debug)]
pub struct CamaraClient {
    transport: Transport,
    version: ApiVersion,
    /// `camara` or `nac`, for the logs.
    flavour: &'static str,
    /// Whether the plain-http sink warning was logged (once per client).
    warned_plain_sink: AtomicBool,
}

impl CamaraClient {
    /// Builds the client (one connection pool); nothing is fetched or read until the first call.
    pub fn new(config: CamaraConfig) -> Result<Self, Error> {
        let transport = camara_transport(
            "provider URL",
            &config.base_url,
            config.auth,
            &config.timeouts,
        )?;
        Ok(Self::with_transport(transport, config.version, "camara"))
    }

    pub(crate) fn with_transport(
        transport: Transport,
        version: ApiVersion,
        flavour: &'static str,
    ) -> Self {
        Self {
            transport,
            version,
            flavour,
            warned_plain_sink: AtomicBool::new(false),
        }
    }

    /// The API version this client speaks.
    pub fn version(&self) -> ApiVersion {
        self.version
    }

    /// The `POST /sessions` body for this version.
    fn create_body(&self, request: &SessionRequest) -> Result<CreateSession, Error> {
        let invalid = |field, reason: String| Error::InvalidRequest {
            operation: Operation::Create,
            field,
            reason,
        };
        if request.duration == 0 {
            return Err(invalid("duration", "must be at least 1 second".to_owned()));
        }
        let device = (!request.device.is_empty()).then(|| request.device.clone());
        let mut body = CreateSession {
            device,
            application_server: request.application_server.clone(),
            device_ports: request.device_ports.clone(),
            application_server_ports: request.application_server_ports.clone(),
            qos_profile: request.qos_profile.clone(),
            // Optional before v0.11 (defaulting to a day there): always sent.
            duration: Some(request.duration),
            sink: None,
            sink_credential: None,
            webhook: None,
        };
        match self.version {
            ApiVersion::V0_10 => {
                if body.device.is_none() {
                    return Err(invalid(
                        "device",
                        "CAMARA QoD v0.10 requires at least one device identifier".to_owned(),
                    ));
                }
                if request.duration > V0_10_MAX_DURATION {
                    return Err(invalid(
                        "duration",
                        format!("CAMARA QoD v0.10 allows at most {V0_10_MAX_DURATION} seconds"),
                    ));
                }
                body.webhook = request
                    .notification
                    .as_ref()
                    .map(|target| webhook(target, &invalid))
                    .transpose()?;
            }
            ApiVersion::V0_11 | ApiVersion::V1 => {
                if let Some(target) = &request.notification {
                    self.check_sink(&target.url);
                    body.sink = Some(target.url.clone());
                    body.sink_credential = Some(SinkCredential::access_token(
                        target.token.clone(),
                        target.token_expires_at,
                    ));
                }
            }
        }
        Ok(body)
    }

    /// v1.1 requires an https sink; the simulator and local setups use http, so only warn.
    fn check_sink(&self, url: &str) {
        let https = url
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        if self.version == ApiVersion::V1
            && !https
            && !self.warned_plain_sink.swap(true, Ordering::Relaxed)
        {
            warn!(
                sink = url,
                "the notification sink is not https://; CAMARA QoD v1.1 providers refuse it"
            );
        }
    }

    async fn send(
        &self,
        operation: Operation,
        method: Method,
        path: &[&str],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        self.transport
            .send(&Call {
                operation,
                method,
                path,
                body,
            })
            .await
    }

    /// `POST /retrieve-sessions` as the raw result, for flavours that map its errors.
    pub(crate) async fn retrieve_sessions(
        &self,
        device: &Device,
    ) -> Result<Vec<SessionInfo>, Error> {
        if self.version == ApiVersion::V0_10 {
            return Err(Error::Unsupported {
                operation: Operation::RetrieveSessions,
                version: self.version.as_str(),
            });
        }
        let input = RetrieveSessionsInput {
            // Empty means "the device of the (3-legged) token".
            device: (!device.is_empty()).then(|| device.clone()),
        };
        let body = to_json(Operation::RetrieveSessions, &input)?;
        self.send(
            Operation::RetrieveSessions,
            Method::POST,
            &["retrieve-sessions"],
            Some(body),
        )
        .await?
        .json()
    }
}

/// The transport of a CAMARA API at `base_url`: every CAMARA API (QoD, QoS Profiles) of a
/// provider authenticates, correlates and is judged the same way, so they share this.
pub(crate) fn camara_transport(
    what: &str,
    base_url: &str,
    auth: CamaraAuth,
    timeouts: &Timeouts,
) -> Result<Transport, Error> {
    let base = parse_base_url(what, base_url)?;
    let http = build_client(timeouts)?;
    let auth: Box<dyn RequestAuth> = match auth {
        CamaraAuth::None => Box::new(NoAuth),
        CamaraAuth::Bearer(token) => Box::new(StaticBearer::new(token)),
        CamaraAuth::ClientCredentials(credentials) => {
            Box::new(OAuthTokens::new(credentials, http.clone())?)
        }
    };
    Ok(Transport::new(http, base, auth, true))
}

pub(crate) fn to_json(
    operation: Operation,
    value: &impl serde::Serialize,
) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::InvalidRequest {
        operation,
        field: "body",
        reason: e.to_string(),
    })
}

fn webhook(
    target: &NotificationTarget,
    invalid: &impl Fn(&'static str, String) -> Error,
) -> Result<Webhook, Error> {
    let chars = target.token.expose_secret().chars().count();
    if !V0_10_TOKEN_CHARS.contains(&chars) {
        return Err(invalid(
            "notificationAuthToken",
            format!(
                "CAMARA QoD v0.10 needs {} to {} characters, the token has {chars}",
                V0_10_TOKEN_CHARS.start(),
                V0_10_TOKEN_CHARS.end()
            ),
        ));
    }
    Ok(Webhook {
        notification_url: target.url.clone(),
        notification_auth_token: Some(target.token.clone()),
    })
}

fn check_session_id(operation: Operation, session_id: &str) -> Result<(), Error> {
    if session_id.trim().is_empty() {
        return Err(Error::InvalidRequest {
            operation,
            field: "sessionId",
            reason: "is empty".to_owned(),
        });
    }
    Ok(())
}

#[async_trait]
impl SessionApi for CamaraClient {
    #[instrument(skip_all, fields(operation = "create", flavour = self.flavour, api = self.version.as_str(), session_id = tracing::field::Empty))]
    async fn create_session(&self, request: &SessionRequest) -> Result<SessionInfo, Error> {
        let body = to_json(Operation::Create, &self.create_body(request)?)?;
        let info: SessionInfo = self
            .send(Operation::Create, Method::POST, &["sessions"], Some(body))
            .await?
            .json()?;
        Span::current().record("session_id", info.session_id.as_str());
        Ok(info)
    }

    #[instrument(skip_all, fields(operation = "get", flavour = self.flavour, api = self.version.as_str(), session_id))]
    async fn get_session(&self, session_id: &str) -> Result<SessionInfo, Error> {
        check_session_id(Operation::Get, session_id)?;
        self.send(Operation::Get, Method::GET, &["sessions", session_id], None)
            .await?
            .json()
    }

    #[instrument(skip_all, fields(operation = "delete", flavour = self.flavour, api = self.version.as_str(), session_id))]
    async fn delete_session(&self, session_id: &str) -> Result<(), Error> {
        check_session_id(Operation::Delete, session_id)?;
        // CAMARA answers 204; Nokia has answered 200 with `{}`. Any 2xx means deleted.
        self.send(
            Operation::Delete,
            Method::DELETE,
            &["sessions", session_id],
            None,
        )
        .await?;
        Ok(())
    }

    #[instrument(skip_all, fields(operation = "extend", flavour = self.flavour, api = self.version.as_str(), session_id))]
    async fn extend_session(
        &self,
        session_id: &str,
        additional_seconds: u32,
    ) -> Result<SessionInfo, Error> {
        check_session_id(Operation::Extend, session_id)?;
        let max = match self.version {
            ApiVersion::V0_10 => V0_10_MAX_EXTENSION,
            // The provider caps the total at the profile's maxDuration (silently).
            ApiVersion::V0_11 | ApiVersion::V1 => u32::MAX,
        };
        if !(1..=max).contains(&additional_seconds) {
            return Err(Error::InvalidRequest {
                operation: Operation::Extend,
                field: "requestedAdditionalDuration",
                reason: format!(
                    "must be between 1 and {max} seconds on CAMARA QoD {}",
                    self.version
                ),
            });
        }
        let body = to_json(
            Operation::Extend,
            &ExtendSessionDuration {
                requested_additional_duration: additional_seconds,
            },
        )?;
        self.send(
            Operation::Extend,
            Method::POST,
            &["sessions", session_id, "extend"],
            Some(body),
        )
        .await?
        .json()
    }

    #[instrument(skip_all, fields(operation = "retrieve_sessions", flavour = self.flavour, api = self.version.as_str()))]
    async fn sessions_of_device(&self, device: &Device) -> Result<Vec<SessionInfo>, Error> {
        self.retrieve_sessions(device).await
    }

    async fn check_credentials(&self) -> Result<(), Error> {
        self.transport.check_credentials().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;
    use serde_json::{Value, json};

    use super::*;
    use crate::qod::{
        ApplicationServer, DeviceIpv4Address, PortRange, PortsSpec, QosStatus, TransportFailure,
        http::testing::{Reply, RequestLog, Seen, closed_port_url},
    };

    const SESSION_ID: &str = "7b8e4d10-2c3a-4f1e-9d6b-5a4c3b2a1f00";

    fn request() -> SessionRequest {
        SessionRequest {
            device: Device {
                phone_number: Some("+15550000001".into()),
                ipv4_address: Some(DeviceIpv4Address {
                    public_address: "198.51.100.7".into(),
                    private_address: None,
                    public_port: Some(40001),
                }),
                ..Device::default()
            },
            application_server: ApplicationServer {
                ipv4_address: Some("203.0.113.0/24".into()),
                ipv6_address: None,
            },
            device_ports: Some(PortsSpec {
                ranges: Some(vec![PortRange {
                    from: 5000,
                    to: 5010,
                }]),
                ports: None,
            }),
            application_server_ports: Some(PortsSpec {
                ranges: None,
                ports: Some(vec![443]),
            }),
            qos_profile: "QOS_L".into(),
            duration: 600,
            notification: Some(NotificationTarget {
                url: "https://op.example.org/notifications/uid-1".into(),
                token: SecretString::from("0123456789abcdef0123456789abcdef"),
                token_expires_at: "2025-01-02T04:00:00Z".parse().unwrap(),
            }),
        }
    }

    fn session(status: &str) -> Value {
        json!({"sessionId": SESSION_ID, "qosStatus": status, "duration": 600,
               "qosProfile": "QOS_L", "applicationServer": {"ipv4Address": "203.0.113.0/24"}})
    }

    /// A provider that creates, reads, extends, lists and deletes like a happy CAMARA v1 one.
    async fn happy_provider() -> RequestLog {
        RequestLog::start(
            |seen: &Seen, _| match (seen.method.as_str(), seen.path.as_str()) {
                ("POST", p) if p.ends_with("/sessions") => Reply::json(201, session("REQUESTED")),
                ("POST", p) if p.ends_with("/extend") => Reply::json(200, session("AVAILABLE")),
                ("POST", p) if p.ends_with("/retrieve-sessions") => {
                    Reply::json(200, json!([session("AVAILABLE")]))
                }
                ("GET", _) => Reply::json(200, session("AVAILABLE")),
                ("DELETE", _) => Reply::raw(204, &[], ""),
                _ => Reply::json(
                    404,
                    json!({"status": 404, "code": "NOT_FOUND", "message": "?"}),
                ),
            },
        )
        .await
    }

    fn client(server: &RequestLog, base_path: &str, version: ApiVersion) -> CamaraClient {
        let mut config = CamaraConfig::new(server.url(base_path));
        config.version = version;
        CamaraClient::new(config).unwrap()
    }

    fn short_timeouts() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_millis(300),
        }
    }

    #[test]
    fn versions_parse_from_their_usual_spellings() {
        for (text, version) in [
            ("v1", ApiVersion::V1),
            ("1.1", ApiVersion::V1),
            ("v0.11", ApiVersion::V0_11),
            ("V0.10", ApiVersion::V0_10),
        ] {
            assert_eq!(text.parse::<ApiVersion>().unwrap(), version, "{text}");
        }
        assert!(matches!(
            "v0.9".parse::<ApiVersion>(),
            Err(Error::Config(_))
        ));
    }

    #[tokio::test]
    async fn v1_create_sends_the_exact_v1_body_with_sink_credential_and_a_correlator() {
        let server = happy_provider().await;
        let client = client(&server, "/quality-on-demand/v1", ApiVersion::V1);
        let info = client.create_session(&request()).await.unwrap();
        assert_eq!(info.session_id, SESSION_ID);
        assert_eq!(info.qos_status, QosStatus::Requested);

        let seen = &server.seen()[0];
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path, "/quality-on-demand/v1/sessions");
        assert_eq!(
            seen.json(),
            json!({
                "device": {"phoneNumber": "+15550000001",
                           "ipv4Address": {"publicAddress": "198.51.100.7", "publicPort": 40001}},
                "applicationServer": {"ipv4Address": "203.0.113.0/24"},
                "devicePorts": {"ranges": [{"from": 5000, "to": 5010}]},
                "applicationServerPorts": {"ports": [443]},
                "qosProfile": "QOS_L", "duration": 600,
                "sink": "https://op.example.org/notifications/uid-1",
                "sinkCredential": {"credentialType": "ACCESSTOKEN",
                                   "accessToken": "0123456789abcdef0123456789abcdef",
                                   "accessTokenExpiresUtc": "2025-01-02T04:00:00Z",
                                   "accessTokenType": "bearer"}
            })
        );
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(seen.header("accept"), Some("application/json"));
        assert_eq!(seen.header("authorization"), None);
        let correlator = seen.header("x-correlator").expect("x-correlator");
        uuid::Uuid::parse_str(correlator).expect("a UUID");
    }

    #[tokio::test]
    async fn v0_11_create_uses_sink_and_omits_an_empty_device() {
        let server = happy_provider().await;
        let client = client(&server, "/quality-on-demand/v0.11", ApiVersion::V0_11);
        let mut request = request();
        request.device = Device::default();
        request.device_ports = None;
        request.application_server_ports = None;
        client.create_session(&request).await.unwrap();
        let seen = &server.seen()[0];
        assert_eq!(seen.path, "/quality-on-demand/v0.11/sessions");
        assert_eq!(
            seen.json(),
            json!({
                "applicationServer": {"ipv4Address": "203.0.113.0/24"},
                "qosProfile": "QOS_L", "duration": 600,
                "sink": "https://op.example.org/notifications/uid-1",
                "sinkCredential": {"credentialType": "ACCESSTOKEN",
                                   "accessToken": "0123456789abcdef0123456789abcdef",
                                   "accessTokenExpiresUtc": "2025-01-02T04:00:00Z",
                                   "accessTokenType": "bearer"}
            })
        );
        assert!(seen.header("x-correlator").is_some());
    }

    #[tokio::test]
    async fn v0_10_create_uses_webhook_and_parses_epoch_timestamps() {
        let server = RequestLog::start(|_, _| {
            Reply::json(
                201,
                json!({"sessionId": SESSION_ID, "qosStatus": "AVAILABLE", "duration": 600,
                       "startedAt": 1735786805, "expiresAt": 1735787405}),
            )
        })
        .await;
        let client = client(&server, "/qod/v0", ApiVersion::V0_10);
        let mut request = request();
        request.device_ports = None;
        let info = client.create_session(&request).await.unwrap();
        assert_eq!(info.expires_at.unwrap().as_second(), 1_735_787_405);

        let seen = &server.seen()[0];
        assert_eq!(seen.path, "/qod/v0/sessions");
        assert_eq!(
            seen.json(),
            json!({
                "device": {"phoneNumber": "+15550000001",
                           "ipv4Address": {"publicAddress": "198.51.100.7", "publicPort": 40001}},
                "applicationServer": {"ipv4Address": "203.0.113.0/24"},
                "applicationServerPorts": {"ports": [443]},
                "qosProfile": "QOS_L", "duration": 600,
                "webhook": {"notificationUrl": "https://op.example.org/notifications/uid-1",
                            "notificationAuthToken": "0123456789abcdef0123456789abcdef"}
            })
        );
    }

    #[tokio::test]
    async fn v0_10_rules_are_checked_before_anything_is_sent() {
        let server = happy_provider().await;
        let client = client(&server, "/qod/v0", ApiVersion::V0_10);

        let mut no_device = request();
        no_device.device = Device::default();
        let err = client.create_session(&no_device).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidRequest {
                    field: "device",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.is_retryable());

        let mut too_long = request();
        too_long.duration = 86_401;
        let err = client.create_session(&too_long).await.unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidRequest {
                field: "duration",
                ..
            }
        ));

        let mut short_token = request();
        if let Some(target) = short_token.notification.as_mut() {
            target.token = SecretString::from("too-short");
        }
        let err = client.create_session(&short_token).await.unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidRequest {
                field: "notificationAuthToken",
                ..
            }
        ));
        assert!(!err.to_string().contains("too-short"), "{err}");

        for seconds in [0, 86_400] {
            let err = client
                .extend_session(SESSION_ID, seconds)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidRequest {
                        field: "requestedAdditionalDuration",
                        ..
                    }
                ),
                "{seconds}: {err:?}"
            );
        }
        client.extend_session(SESSION_ID, 86_399).await.unwrap();

        let err = client
            .sessions_of_device(&request().device)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unsupported {
                    operation: Operation::RetrieveSessions,
                    version: "v0.10"
                }
            ),
            "{err:?}"
        );
        assert_eq!(server.seen().len(), 1, "only the valid extend was sent");
    }

    #[tokio::test]
    async fn zero_duration_and_zero_extension_are_refused_on_every_version() {
        let server = happy_provider().await;
        let client = client(&server, "/quality-on-demand/v1", ApiVersion::V1);
        let mut request = request();
        request.duration = 0;
        assert!(matches!(
            client.create_session(&request).await,
            Err(Error::InvalidRequest {
                field: "duration",
                ..
            })
        ));
        assert!(matches!(
            client.extend_session(SESSION_ID, 0).await,
            Err(Error::InvalidRequest { .. })
        ));
        client.extend_session(SESSION_ID, 200_000).await.unwrap();
        assert!(matches!(
            client.get_session(" ").await,
            Err(Error::InvalidRequest {
                field: "sessionId",
                ..
            })
        ));
        assert_eq!(server.seen().len(), 1);
    }

    #[tokio::test]
    async fn get_extend_retrieve_and_delete_use_the_spec_paths_and_bodies() {
        let server = happy_provider().await;
        let client = client(&server, "/quality-on-demand/v1", ApiVersion::V1);
        let got = client.get_session(SESSION_ID).await.unwrap();
        assert_eq!(got.qos_status, QosStatus::Available);
        client.extend_session(SESSION_ID, 300).await.unwrap();
        let found = client
            .sessions_of_device(&Device {
                phone_number: Some("+15550000001".into()),
                ..Device::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        client.delete_session(SESSION_ID).await.unwrap();

        let seen = server.seen();
        let calls: Vec<(String, String)> = seen
            .iter()
            .map(|s| (s.method.to_string(), s.path.clone()))
            .collect();
        let base = "/quality-on-demand/v1";
        assert_eq!(
            calls,
            [
                ("GET".into(), format!("{base}/sessions/{SESSION_ID}")),
                (
                    "POST".into(),
                    format!("{base}/sessions/{SESSION_ID}/extend")
                ),
                ("POST".into(), format!("{base}/retrieve-sessions")),
                ("DELETE".into(), format!("{base}/sessions/{SESSION_ID}")),
            ]
        );
        assert_eq!(seen[1].json(), json!({"requestedAdditionalDuration": 300}));
        assert_eq!(
            seen[2].json(),
            json!({"device": {"phoneNumber": "+15550000001"}})
        );
        assert!(seen[0].body.is_empty());
        let correlators: std::collections::HashSet<_> =
            seen.iter().map(|s| s.header("x-correlator")).collect();
        assert_eq!(correlators.len(), 4, "a fresh correlator per call");
    }

    #[tokio::test]
    async fn camara_errors_keep_their_body_and_classification() {
        let server = RequestLog::start(|seen: &Seen, _| match seen.path.rsplit('/').next() {
            Some("conflict") => Reply::json(
                409,
                json!({"status": 409, "code": "CONFLICT", "message": "Conflict with an existing session"}),
            ),
            Some("invalid") => Reply::json(
                400,
                json!({"status": 400, "code": "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE", "message": "too long"}),
            ),
            Some("gone") => Reply::json(
                404,
                json!({"status": 404, "code": "NOT_FOUND", "message": "The specified resource is not found."}),
            ),
            Some("busy") => Reply::raw(
                429,
                &[("retry-after", "7"), ("content-type", "application/json")],
                r#"{"status":429,"code":"TOO_MANY_REQUESTS","message":"slow down"}"#,
            ),
            Some("down") => Reply::raw(503, &[("retry-after", "Thu, 01 Jan 2099 00:00:00 GMT")], ""),
            Some("html") => Reply::raw(502, &[("content-type", "text/html")], "<h1>bad gateway</h1>"),
            _ => Reply::json(200, json!({"qosStatus": "AVAILABLE"})),
        })
        .await;
        let client = client(&server, "/quality-on-demand/v1", ApiVersion::V1);

        let err = client.get_session("conflict").await.unwrap_err();
        assert_eq!(err.status(), Some(409));
        assert_eq!(err.info().unwrap().code, "CONFLICT");
        assert!(!err.is_retryable());

        let err = client.get_session("invalid").await.unwrap_err();
        assert_eq!(
            err.info().unwrap().code,
            "QUALITY_ON_DEMAND.DURATION_OUT_OF_RANGE"
        );

        let err = client.delete_session("gone").await.unwrap_err();
        assert!(err.is_not_found());

        let err = client.get_session("busy").await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(err.info().unwrap().message, "slow down");

        let err = client.get_session("down").await.unwrap_err();
        assert!(err.is_retryable());
        assert!(
            err.retry_after().unwrap() > Duration::from_secs(365 * 24 * 3600),
            "{err:?}"
        );
        assert_eq!(err.info().unwrap().code, "UNAVAILABLE");

        let err = client.get_session("html").await.unwrap_err();
        assert!(matches!(err, Error::Api { .. }));
        assert_eq!(err.status(), Some(502));
        assert!(err.to_string().contains("bad gateway"), "{err}");

        // A 2xx that does not fit names the missing field.
        let err = client.get_session("fine").await.unwrap_err();
        match &err {
            Error::InvalidResponse { status, reason, .. } => {
                assert_eq!(*status, 200);
                assert!(reason.contains("sessionId"), "{reason}");
            }
            other => panic!("expected InvalidResponse, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreadable_201_may_have_created_a_session() {
        let server =
            RequestLog::start(|_, _| Reply::json(201, json!({"qosStatus": "REQUESTED"}))).await;
        let client = client(&server, "/quality-on-demand/v1", ApiVersion::V1);
        let err = client.create_session(&request()).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidResponse { status: 201, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("sessionId"), "{err}");
        assert!(err.may_have_created());
        assert!(!err.is_retryable());
        assert_eq!(server.seen().len(), 1);
    }

    #[tokio::test]
    async fn retry_after_is_ignored_on_statuses_that_do_not_define_it() {
        let server = RequestLog::start(|_, _| Reply::raw(500, &[("retry-after", "9")], "{}")).await;
        let client = client(&server, "/quality-on-demand/v1", ApiVersion::V1);
        let err = client.get_session(SESSION_ID).await.unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), None);
    }

    #[tokio::test]
    async fn create_is_never_repeated_after_a_server_error() {
        let server = RequestLog::start(|_, _| Reply::raw(503, &[], "")).await;
        let client = client(&server, "/quality-on-demand/v1", ApiVersion::V1);
        let err = client.create_session(&request()).await.unwrap_err();
        assert_eq!(err.status(), Some(503));
        assert_eq!(server.seen().len(), 1);
    }

    #[tokio::test]
    async fn a_create_without_answer_is_outcome_unknown_and_not_repeated() {
        let server = RequestLog::start(|_, _| Reply::Hang).await;
        let mut config = CamaraConfig::new(server.url("/quality-on-demand/v1"));
        config.timeouts = short_timeouts();
        let client = CamaraClient::new(config).unwrap();
        let err = client.create_session(&request()).await.unwrap_err();
        assert!(matches!(err, Error::CreateOutcomeUnknown { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert!(err.may_have_created());
        assert_eq!(server.seen().len(), 1, "sent exactly once");
        // The cause leads the message, not buried in the transport's chain.
        assert!(err.to_string().contains("timed out"), "{err}");

        for err in [
            client.get_session(SESSION_ID).await.unwrap_err(),
            client.delete_session(SESSION_ID).await.unwrap_err(),
            client.extend_session(SESSION_ID, 60).await.unwrap_err(),
            client
                .sessions_of_device(&request().device)
                .await
                .unwrap_err(),
        ] {
            assert!(matches!(err, Error::NoAnswer { .. }), "{err:?}");
            assert!(err.is_retryable());
            assert!(
                err.to_string().ends_with(
                    "no complete answer from the QoD provider: timed out waiting for the answer"
                ),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable_even_for_create() {
        let mut config = CamaraConfig::new(format!("{}/quality-on-demand/v1", closed_port_url()));
        config.timeouts = short_timeouts();
        let client = CamaraClient::new(config).unwrap();
        let err = client.create_session(&request()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unreachable {
                    operation: Operation::Create,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.is_retryable());
        assert_eq!(
            err.to_string(),
            "create: could not reach the QoD provider: connection refused"
        );
        let err = client.get_session(SESSION_ID).await.unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_connect_timeout_is_unreachable_even_for_create() {
        // A listener that never accepts, its backlog filled: further SYNs go unanswered.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(1).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "the backlog never filled"
            );
            match tokio::time::timeout(
                Duration::from_millis(200),
                tokio::net::TcpStream::connect(addr),
            )
            .await
            {
                Ok(Ok(stream)) => fillers.push(stream),
                Ok(Err(e)) => panic!("connect failed: {e}"),
                Err(_) => break,
            }
        }
        let mut config = CamaraConfig::new(format!("http://{addr}/quality-on-demand/v1"));
        config.timeouts = Timeouts {
            connect: Duration::from_millis(200),
            request: Duration::from_secs(5),
        };
        let client = CamaraClient::new(config).unwrap();
        let err = client.create_session(&request()).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Unreachable {
                    operation: Operation::Create,
                    cause: TransportFailure::ConnectTimedOut,
                    ..
                }
            ),
            "{err:?}"
        );
        drop(listener);
    }

    /// A provider whose OAuth tokens are `tok-N`; the API accepts only tokens listed in `valid`.
    async fn oauth_provider(valid: &'static [&'static str]) -> RequestLog {
        RequestLog::start(move |seen: &Seen, n| {
            if seen.path == "/oauth/token" {
                return Reply::json(
                    200,
                    json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": 3600}),
                );
            }
            let token = seen.header("authorization").unwrap_or_default();
            if valid.iter().any(|v| token == format!("Bearer {v}")) {
                Reply::json(201, session("REQUESTED"))
            } else {
                Reply::json(
                    401,
                    json!({"status": 401, "code": "UNAUTHENTICATED", "message": "expired"}),
                )
            }
        })
        .await
    }

    fn oauth_client(server: &RequestLog) -> CamaraClient {
        let mut config = CamaraConfig::new(server.url("/quality-on-demand/v1"));
        config.auth = CamaraAuth::ClientCredentials(ClientCredentials::new(
            server.url("/oauth/token"),
            "client-1",
            SecretSource::Value(SecretString::from("client-secret-value")),
        ));
        CamaraClient::new(config).unwrap()
    }

    #[tokio::test]
    async fn one_token_serves_many_calls() {
        let server = oauth_provider(&["tok-0"]).await;
        let client = oauth_client(&server);
        client.create_session(&request()).await.unwrap();
        client.get_session(SESSION_ID).await.unwrap();
        client.get_session(SESSION_ID).await.unwrap();
        assert_eq!(server.seen_at("/oauth/token").len(), 1);
        for seen in server.seen().iter().filter(|s| s.path != "/oauth/token") {
            assert_eq!(seen.header("authorization"), Some("Bearer tok-0"));
        }
    }

    #[tokio::test]
    async fn a_401_refreshes_the_token_once_and_repeats_even_a_create() {
        let server = oauth_provider(&["tok-1"]).await;
        let client = oauth_client(&server);
        let info = client.create_session(&request()).await.unwrap();
        assert_eq!(info.session_id, SESSION_ID);
        assert_eq!(server.seen_at("/oauth/token").len(), 2);
        let creates = server.seen_at("/quality-on-demand/v1/sessions");
        assert_eq!(creates.len(), 2);
        assert_eq!(creates[0].header("authorization"), Some("Bearer tok-0"));
        assert_eq!(creates[1].header("authorization"), Some("Bearer tok-1"));
        assert_eq!(
            creates[0].header("x-correlator"),
            creates[1].header("x-correlator"),
            "the repeat belongs to the same call"
        );
    }

    #[tokio::test]
    async fn a_second_401_is_returned_without_looping() {
        let server = oauth_provider(&[]).await;
        let client = oauth_client(&server);
        let err = client.create_session(&request()).await.unwrap_err();
        assert_eq!(err.status(), Some(401));
        assert!(!err.is_retryable());
        assert_eq!(server.seen_at("/oauth/token").len(), 2);
        assert_eq!(server.seen_at("/quality-on-demand/v1/sessions").len(), 2);
        // The refused token is not reused by the next call.
        client.get_session(SESSION_ID).await.unwrap_err();
        let gets = server.seen_at(&format!("/quality-on-demand/v1/sessions/{SESSION_ID}"));
        assert_eq!(gets[0].header("authorization"), Some("Bearer tok-2"));
    }

    #[tokio::test]
    async fn a_403_is_not_repeated() {
        let server = RequestLog::start(|seen: &Seen, _| {
            if seen.path == "/oauth/token" {
                Reply::json(200, json!({"access_token": "t", "expires_in": 3600}))
            } else {
                Reply::json(
                    403,
                    json!({"status": 403, "code": "PERMISSION_DENIED", "message": "no"}),
                )
            }
        })
        .await;
        let client = oauth_client(&server);
        let err = client.create_session(&request()).await.unwrap_err();
        assert_eq!(err.status(), Some(403));
        assert_eq!(server.seen_at("/quality-on-demand/v1/sessions").len(), 1);
    }

    #[tokio::test]
    async fn a_rotated_bearer_token_file_is_picked_up_after_a_401() {
        let path = std::env::temp_dir().join(format!("qod-bearer-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "old-token\n").unwrap();
        let server = RequestLog::start(|seen: &Seen, _| {
            if seen.header("authorization") == Some("Bearer new-token") {
                Reply::json(200, session("AVAILABLE"))
            } else {
                Reply::json(
                    401,
                    json!({"status": 401, "code": "UNAUTHENTICATED", "message": "x"}),
                )
            }
        })
        .await;
        let mut config = CamaraConfig::new(server.url("/quality-on-demand/v1"));
        config.auth = CamaraAuth::Bearer(SecretSource::File(path.clone()));
        let client = CamaraClient::new(config).unwrap();

        let err = client.get_session(SESSION_ID).await.unwrap_err();
        assert_eq!(err.status(), Some(401));
        assert_eq!(
            server.seen().len(),
            1,
            "an unchanged file is not tried twice"
        );

        std::fs::write(&path, "new-token\n").unwrap();
        client.get_session(SESSION_ID).await.unwrap();
        let tokens: Vec<_> = server
            .seen()
            .iter()
            .map(|s| s.header("authorization").unwrap().to_owned())
            .collect();
        assert_eq!(
            tokens,
            ["Bearer old-token", "Bearer old-token", "Bearer new-token"]
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[tokio::test]
    async fn a_missing_credential_file_fails_before_sending() {
        let server = happy_provider().await;
        let mut config = CamaraConfig::new(server.url("/quality-on-demand/v1"));
        config.auth = CamaraAuth::Bearer(SecretSource::File("/nonexistent/qod-token".into()));
        let client = CamaraClient::new(config).unwrap();
        let err = client.get_session(SESSION_ID).await.unwrap_err();
        assert!(matches!(err, Error::Credential { .. }), "{err:?}");
        assert!(!err.is_retryable());
        assert!(server.seen().is_empty());
    }

    #[tokio::test]
    async fn secrets_never_show_in_debug_or_errors() {
        let server = RequestLog::start(|seen: &Seen, _| {
            if seen.path == "/oauth/token" {
                Reply::json(
                    200,
                    json!({"access_token": "the-access-token", "expires_in": 3600}),
                )
            } else {
                Reply::json(
                    401,
                    json!({"status": 401, "code": "UNAUTHENTICATED", "message": "no"}),
                )
            }
        })
        .await;
        let mut config = CamaraConfig::new(server.url("/quality-on-demand/v1"));
        config.auth = CamaraAuth::ClientCredentials(ClientCredentials::new(
            server.url("/oauth/token"),
            "client-1",
            SecretSource::Value(SecretString::from("the-client-secret")),
        ));
        let config_debug = format!("{config:?}");
        let client = CamaraClient::new(config).unwrap();
        let err = client.create_session(&request()).await.unwrap_err();
        let text = format!("{config_debug} {client:?} {err} {err:?} {:?}", request());
        for secret in [
            "the-client-secret",
            "the-access-token",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let bearer = CamaraConfig {
            auth: CamaraAuth::Bearer(SecretSource::Value(SecretString::from("static-token"))),
            ..CamaraConfig::new("http://127.0.0.1:1/x")
        };
        assert!(!format!("{bearer:?}").contains("static-token"));
        let bearer_client = CamaraClient::new(bearer).unwrap();
        assert!(!format!("{bearer_client:?}").contains("static-token"));
    }

    #[tokio::test]
    async fn a_session_id_cannot_escape_its_path_segment() {
        let server = happy_provider().await;
        let client = client(&server, "/quality-on-demand/v1", ApiVersion::V1);
        client.get_session("../retrieve-sessions").await.unwrap();
        assert_eq!(
            server.seen()[0].path,
            "/quality-on-demand/v1/sessions/..%2Fretrieve-sessions"
        );
    }

    #[tokio::test]
    async fn any_2xx_on_delete_counts_as_deleted() {
        let server = RequestLog::start(|_, n| match n {
            0 => Reply::json(200, json!({})),
            _ => Reply::raw(202, &[], "not json"),
        })
        .await;
        let client = client(&server, "/quality-on-demand/v1", ApiVersion::V1);
        client.delete_session(SESSION_ID).await.unwrap();
        client.delete_session(SESSION_ID).await.unwrap();
    }
}
