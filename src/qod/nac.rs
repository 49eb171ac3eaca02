//! The Nokia Network as Code (NaC) client, talking to NaC the way its SDK does
//! (`specs/QOD_API_NOTES.md`, section 9): CAMARA v1 bodies on `/quality-on-demand/v1/...` below
//! the RapidAPI host, authenticated by `X-RapidAPI-Key`/`X-RapidAPI-Host` headers, with no OAuth
//! and no `x-correlator`.
//!
//! The wire is CAMARA v1, so the calls are made by [`CamaraClient`]; this module holds only
//! what NaC does differently: its defaults, its headers and its "no sessions" answer (a 404 from
//! retrieve-sessions, which the SDK turns into an empty list, and so do we). Nokia's error bodies
//! (`{"detail": ..}`, `{"message": ..}`) are mapped by HTTP status in `error`.

use async_trait::async_trait;
use tracing::debug;

use super::{
    Device, SessionApi, SessionInfo, SessionRequest,
    camara::{ApiVersion, CamaraClient},
    credentials::{DEFAULT_RAPIDAPI_HOST, RapidApiKey, SecretSource},
    error::Error,
    http::{Timeouts, Transport, build_client, join, parse_base_url},
};

/// NaC's production (and, since SDK 10, only) API host.
pub const DEFAULT_BASE_URL: &str = "https://network-as-code.p-eu.rapidapi.com";
/// The QoD API below the NaC host, as SDK 8.0.0 and 10.0.0's `*_v1` methods use it.
pub const QOD_BASE_PATH: [&str; 2] = ["quality-on-demand", "v1"];

/// Settings of the NaC provider.
#[derive(Clone, Debug)]
pub struct NacConfig {
    /// The host (and optional path prefix) the QoD paths are appended to.
    /// Default [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// The RapidAPI application key, sent as `X-RapidAPI-Key`.
    pub api_key: SecretSource,
    /// `X-RapidAPI-Host`; default [`DEFAULT_RAPIDAPI_HOST`], `None` sends no such header.
    pub rapidapi_host: Option<String>,
    /// Default 5 s connect, 30 s whole request.
    pub timeouts: Timeouts,
}

impl NacConfig {
    /// The production NaC endpoint with `api_key` and the default RapidAPI host.
    pub fn new(api_key: SecretSource) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key,
            rapidapi_host: Some(DEFAULT_RAPIDAPI_HOST.to_owned()),
            timeouts: Timeouts::default(),
        }
    }
}

/// A client of Nokia Network as Code QoD.
#[derive(Debug)]
pub struct NacClient {
    inner: CamaraClient,
}

impl NacClient {
    /// Builds the client; the API key is read on the first call.
    pub fn new(config: NacConfig) -> Result<Self, Error> {
        let host = parse_base_url("NaC URL", &config.base_url)?;
        let base = join(&host, &QOD_BASE_PATH);
        let auth = RapidApiKey::new(config.api_key, config.rapidapi_host.as_deref())?;
        let transport =
            Transport::new(build_client(&config.timeouts)?, base, Box::new(auth), false);
        Ok(Self {
            inner: CamaraClient::with_transport(transport, ApiVersion::V1, "nac"),
        })
    }
}

#[async_trait]
impl SessionApi for NacClient {
    async fn create_session(&self, request: &SessionRequest) -> Result<SessionInfo, Error> {
        self.inner.create_session(request).await
    }

    async fn get_session(&self, session_id: &str) -> Result<SessionInfo, Error> {
        self.inner.get_session(session_id).await
    }

    async fn delete_session(&self, session_id: &str) -> Result<(), Error> {
        self.inner.delete_session(session_id).await
    }

    async fn extend_session(
        &self,
        session_id: &str,
        additional_seconds: u32,
    ) -> Result<SessionInfo, Error> {
        self.inner
            .extend_session(session_id, additional_seconds)
            .await
    }

    async fn sessions_of_device(&self, device: &Device) -> Result<Vec<SessionInfo>, Error> {
        match self.inner.sessions_of_device(device).await {
            // Nokia answers 404 `{"detail": "QoS subscription not found"}` for a device
            // without sessions; its SDK reads that as an empty list.
            Err(err) if err.is_not_found() => {
                debug!("NaC answered 404 to retrieve-sessions: no sessions");
                Ok(Vec::new())
            }
            other => other,
        }
    }

    async fn check_credentials(&self) -> Result<(), Error> {
        self.inner.check_credentials().await
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use serde_json::json;

    use super::*;
    use crate::qod::{
        ApplicationServer, NotificationTarget,
        http::testing::{Reply, RequestLog, Seen},
    };

    const SESSION_ID: &str = "08305343-7ed2-43b7-8eda-4c5ae9805bd0";

    fn config(server: &RequestLog, key: SecretSource) -> NacConfig {
        NacConfig {
            base_url: server.url(""),
            ..NacConfig::new(key)
        }
    }

    fn key() -> SecretSource {
        SecretSource::Value(SecretString::from("rapid-api-key-value"))
    }

    fn request() -> SessionRequest {
        SessionRequest {
            device: Device {
                phone_number: Some("+99999991001".into()),
                ..Device::default()
            },
            application_server: ApplicationServer {
                ipv4_address: Some("5.6.7.8".into()),
                ipv6_address: None,
            },
            device_ports: None,
            application_server_ports: None,
            qos_profile: "DOWNLINK_M_UPLINK_L".into(),
            duration: 3600,
            notification: Some(NotificationTarget {
                url: "https://op.example.org/notifications/uid-9".into(),
                token: SecretString::from("sink-token-value-0123456789"),
                token_expires_at: "2025-01-02T04:00:00Z".parse().unwrap(),
            }),
        }
    }

    fn nokia_session() -> serde_json::Value {
        // Nokia's ISO timestamps with microseconds (SDK mock S1).
        json!({"sessionId": SESSION_ID, "qosStatus": "REQUESTED", "duration": 3600,
               "qosProfile": "DOWNLINK_M_UPLINK_L",
               "startedAt": "2024-06-18T08:48:12.300312Z", "expiresAt": "2024-06-18T09:48:12.300312Z",
               "messages": [{"severity": "INFO", "description": "x"}]})
    }

    #[test]
    fn defaults_are_nokias_production_endpoint() {
        let config = NacConfig::new(key());
        assert_eq!(config.base_url, "https://network-as-code.p-eu.rapidapi.com");
        assert_eq!(
            config.rapidapi_host.as_deref(),
            Some("network-as-code.nokia.rapidapi.com")
        );
        assert!(!format!("{config:?}").contains("rapid-api-key-value"));
    }

    #[tokio::test]
    async fn create_sends_the_v1_body_with_rapidapi_headers_and_no_correlator() {
        let server = RequestLog::start(|_, _| Reply::json(201, nokia_session())).await;
        let client = NacClient::new(config(&server, key())).unwrap();
        let info = client.create_session(&request()).await.unwrap();
        assert_eq!(info.session_id, SESSION_ID);
        assert!(info.started_at.is_some());

        let seen = &server.seen()[0];
        assert_eq!(seen.path, "/quality-on-demand/v1/sessions");
        assert_eq!(
            seen.json(),
            json!({
                "device": {"phoneNumber": "+99999991001"},
                "applicationServer": {"ipv4Address": "5.6.7.8"},
                "qosProfile": "DOWNLINK_M_UPLINK_L", "duration": 3600,
                "sink": "https://op.example.org/notifications/uid-9",
                "sinkCredential": {"credentialType": "ACCESSTOKEN",
                                   "accessToken": "sink-token-value-0123456789",
                                   "accessTokenExpiresUtc": "2025-01-02T04:00:00Z",
                                   "accessTokenType": "bearer"}
            })
        );
        assert_eq!(seen.header("x-rapidapi-key"), Some("rapid-api-key-value"));
        assert_eq!(
            seen.header("x-rapidapi-host"),
            Some("network-as-code.nokia.rapidapi.com")
        );
        assert_eq!(seen.header("x-correlator"), None);
        assert_eq!(seen.header("authorization"), None);
        assert!(!format!("{client:?}").contains("rapid-api-key-value"));
    }

    #[tokio::test]
    async fn the_host_header_can_be_changed_or_left_out_and_a_path_prefix_is_kept() {
        let server = RequestLog::start(|_, _| Reply::json(200, nokia_session())).await;
        let mut config = config(&server, key());
        config.base_url = server.url("/prefix");
        config.rapidapi_host = Some("network-as-code.nokia-stage.rapidapi.com".into());
        NacClient::new(config.clone())
            .unwrap()
            .get_session(SESSION_ID)
            .await
            .unwrap();
        config.rapidapi_host = None;
        NacClient::new(config)
            .unwrap()
            .get_session(SESSION_ID)
            .await
            .unwrap();
        let seen = server.seen();
        assert_eq!(
            seen[0].path,
            format!("/prefix/quality-on-demand/v1/sessions/{SESSION_ID}")
        );
        assert_eq!(
            seen[0].header("x-rapidapi-host"),
            Some("network-as-code.nokia-stage.rapidapi.com")
        );
        assert_eq!(seen[1].header("x-rapidapi-host"), None);
    }

    #[tokio::test]
    async fn retrieve_404_means_no_sessions_but_other_errors_stay_errors() {
        let server = RequestLog::start(|_, n| match n {
            0 => Reply::json(404, json!({"detail": "QoS subscription not found"})),
            1 => Reply::json(200, json!([nokia_session()])),
            _ => Reply::json(403, json!({"message": "Invalid API key."})),
        })
        .await;
        let client = NacClient::new(config(&server, key())).unwrap();
        let device = request().device;
        assert!(client.sessions_of_device(&device).await.unwrap().is_empty());
        assert_eq!(client.sessions_of_device(&device).await.unwrap().len(), 1);
        let err = client.sessions_of_device(&device).await.unwrap_err();
        assert_eq!(err.status(), Some(403));
        let info = err.info().unwrap();
        assert_eq!(info.code, "PERMISSION_DENIED");
        assert_eq!(info.message, "Invalid API key.");
        assert_eq!(
            server.seen()[0].path,
            "/quality-on-demand/v1/retrieve-sessions"
        );
        assert_eq!(
            server.seen()[0].json(),
            json!({"device": {"phoneNumber": "+99999991001"}})
        );
    }

    #[tokio::test]
    async fn nokia_error_bodies_map_by_status() {
        let server = RequestLog::start(|seen: &Seen, _| match seen.method.as_str() {
            "GET" => Reply::json(404, json!({"detail": "Session not found"})),
            "DELETE" => Reply::json(200, json!({})),
            _ => Reply::json(
                422,
                json!({"detail": [{"loc": ["body", "duration"], "msg": "must be positive", "type": "value_error"}]}),
            ),
        })
        .await;
        let client = NacClient::new(config(&server, key())).unwrap();
        let err = client.get_session(SESSION_ID).await.unwrap_err();
        assert!(err.is_not_found());
        assert_eq!(err.info().unwrap().message, "Session not found");
        let err = client.extend_session(SESSION_ID, 60).await.unwrap_err();
        assert_eq!(err.status(), Some(422));
        assert!(err.info().unwrap().message.contains("duration"), "{err}");
        client.delete_session(SESSION_ID).await.unwrap();
    }

    /// Keys sent when the key file changes after a refusal with `refusal` (the provider
    /// accepts only the new key): each request's `x-rapidapi-key`, in order.
    async fn keys_sent_around_a_rotation(refusal: u16) -> Vec<String> {
        let path = std::env::temp_dir().join(format!("qod-nac-key-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "old-key\n").unwrap();
        let server = RequestLog::start(move |seen: &Seen, _| {
            if seen.header("x-rapidapi-key") == Some("new-key") {
                Reply::json(200, nokia_session())
            } else {
                Reply::json(refusal, json!({"message": "Invalid API key."}))
            }
        })
        .await;
        let client = NacClient::new(config(&server, SecretSource::File(path.clone()))).unwrap();
        let err = client.get_session(SESSION_ID).await.unwrap_err();
        assert_eq!(err.status(), Some(refusal));
        std::fs::write(&path, "new-key\n").unwrap();
        client.get_session(SESSION_ID).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        server
            .seen()
            .iter()
            .map(|s| s.header("x-rapidapi-key").unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_rotated_key_file_is_used_after_a_401() {
        assert_eq!(
            keys_sent_around_a_rotation(401).await,
            ["old-key", "old-key", "new-key"]
        );
    }

    #[tokio::test]
    async fn a_rotated_key_file_is_used_at_once_after_a_403() {
        // RapidAPI refuses an unknown key with 403: a key file that changed meanwhile is worth
        // the one retry, an unchanged one is not.
        assert_eq!(
            keys_sent_around_a_rotation(403).await,
            ["old-key", "old-key", "new-key"]
        );
    }
}
