//! Wire models of the CAMARA Quality-on-Demand API (v1.x shape), tolerant of the v0.10 and v0.11
//! shapes and of Nokia Network as Code (see `specs/QOD_API_NOTES.md`, sections 3, 4 and 10).
//!
//! Requests are serialised exactly as the spec names them; responses are parsed leniently:
//! unknown fields are ignored, timestamps may be epoch seconds (v0.10) or RFC 3339 (v0.11+), and
//! enum values the spec does not list are kept verbatim instead of failing the parse.

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// Defines a string enum that keeps values outside the spec's list verbatim (`Other`), so the
/// network's words reach the user unchanged and a new provider value never breaks parsing.
macro_rules! open_string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value the CAMARA spec does not list, kept as the provider sent it.
            Other(String),
        }

        impl $name {
            /// The value as it appears on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Other(value) => value,
                }
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                match value {
                    $($wire => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(deserializer)?;
                Ok(Self::from(value.as_ref()))
            }
        }
    };
}
// Also used by the QoS Profiles models (`super::profiles`).
pub(crate) use open_string_enum;

open_string_enum!(
    /// `qosStatus` of a session.
    QosStatus {
        /// QoS has been requested; the network has not answered yet.
        Requested => "REQUESTED",
        /// The network provides the requested QoS.
        Available => "AVAILABLE",
        /// The QoS is not (or no longer) provided; `statusInfo` may say why.
        Unavailable => "UNAVAILABLE",
    }
);

impl QosStatus {
    /// Where this status stands in a session's life: REQUESTED, then AVAILABLE, then
    /// UNAVAILABLE (final). A session never moves back, so news behind the stage a status
    /// already holds is reordered or stale, whoever brings it. Words outside CAMARA's three
    /// have no stage.
    pub fn stage(&self) -> Option<u8> {
        match self {
            Self::Requested => Some(0),
            Self::Available => Some(1),
            Self::Unavailable => Some(2),
            Self::Other(_) => None,
        }
    }
}

open_string_enum!(
    /// `statusInfo`: why a session became `UNAVAILABLE`.
    StatusInfo {
        /// The requested duration ran out.
        DurationExpired => "DURATION_EXPIRED",
        /// The network ended the session early (or never started it).
        NetworkTerminated => "NETWORK_TERMINATED",
        /// The API consumer deleted the session.
        DeleteRequested => "DELETE_REQUESTED",
    }
);

/// The device a session is for. At least one identifier must be present.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    /// E.164 with a leading `+` (v0.11+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// `{local}@{domain}` GPSI; declared by CAMARA "for future use", used by Nokia.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_access_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<DeviceIpv4Address>,
    /// A single IPv6 address within the device's prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
}

impl Device {
    /// True when no identifier is set (the spec requires at least one).
    pub fn is_empty(&self) -> bool {
        self.phone_number.is_none()
            && self.network_access_identifier.is_none()
            && self.ipv4_address.is_none()
            && self.ipv6_address.is_none()
    }
}

/// The device's IPv4 identity: public address plus a private address and/or a public port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceIpv4Address {
    pub public_address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
}

/// The application server end of the flow: an address or a CIDR block, v4 and/or v6.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationServer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
}

/// Single ports and/or port ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<PortRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<u16>>,
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

/// The only `credentialType` CAMARA v0.11 to v1.1 allows for a sink.
pub const CREDENTIAL_TYPE_ACCESS_TOKEN: &str = "ACCESSTOKEN";
/// The only `accessTokenType` the spec allows.
pub const ACCESS_TOKEN_TYPE_BEARER: &str = "bearer";

/// `sinkCredential` (v0.11+). Only `ACCESSTOKEN` may be used; the other types are parsed so a
/// provider (or the simulator) can refuse them with a clear error.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkCredential {
    pub credential_type: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_optional_secret"
    )]
    pub access_token: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_expires_utc: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_type: Option<String>,
}

impl SinkCredential {
    /// A bearer access token valid until `expires`.
    pub fn access_token(token: SecretString, expires: Timestamp) -> Self {
        Self {
            credential_type: CREDENTIAL_TYPE_ACCESS_TOKEN.to_owned(),
            access_token: Some(token),
            access_token_expires_utc: Some(expires),
            access_token_type: Some(ACCESS_TOKEN_TYPE_BEARER.to_owned()),
        }
    }
}

/// The v0.9/v0.10 callback (`webhook`), replaced by `sink`/`sinkCredential` in v0.11.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub notification_url: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "expose_optional_secret"
    )]
    pub notification_auth_token: Option<SecretString>,
}

/// Body of `POST /sessions`. One struct serves every version: the client fills either
/// `sink`/`sinkCredential` (v0.11+) or `webhook` (v0.10), never both.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSession {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    pub application_server: ApplicationServer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_ports: Option<PortsSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_server_ports: Option<PortsSpec>,
    pub qos_profile: String,
    /// Seconds. Optional on the wire before v0.11; we always send it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_credential: Option<SinkCredential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

/// A session as the provider reports it (create 201, get 200, extend 200, retrieve-sessions).
///
/// Only `sessionId` and `qosStatus` must be well formed. Everything else is an echo or a detail
/// that a sloppy provider may get wrong; such a field reads as absent rather than failing the
/// whole answer, because failing a create's answer would lose the id of a billable session.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub session_id: String,
    pub qos_status: QosStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_info: Option<StatusInfo>,
    /// Required by the spec, but Nokia has answered without it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::deserialize"
    )]
    pub duration: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::timestamp"
    )]
    pub started_at: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::timestamp"
    )]
    pub expires_at: Option<Timestamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::deserialize"
    )]
    pub qos_profile: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::deserialize"
    )]
    pub device: Option<Device>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::deserialize"
    )]
    pub application_server: Option<ApplicationServer>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::deserialize"
    )]
    pub device_ports: Option<PortsSpec>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::deserialize"
    )]
    pub application_server_ports: Option<PortsSpec>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::deserialize"
    )]
    pub sink: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::deserialize"
    )]
    pub webhook: Option<Webhook>,
}

impl SessionInfo {
    /// Where the provider sends this session's notifications, whatever the API version.
    pub fn notification_url(&self) -> Option<&str> {
        self.sink
            .as_deref()
            .or_else(|| self.webhook.as_ref().map(|w| w.notification_url.as_str()))
    }
}

/// Body of `POST /sessions/{id}/extend`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtendSessionDuration {
    pub requested_additional_duration: u32,
}

/// Body of `POST /retrieve-sessions` (v0.11+).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrieveSessionsInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
}

/// The CAMARA error body `{status, code, message}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ErrorInfo {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }
}

fn expose_optional_secret<S: Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => serializer.serialize_str(secret.expose_secret()),
        None => serializer.serialize_none(),
    }
}

/// Reading optional fields that must not fail the whole answer when malformed.
pub(crate) mod lenient {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, de::DeserializeOwned};
    use serde_json::Value;

    /// The field if it has the expected shape, otherwise `None`.
    pub fn deserialize<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        let value = Option::<Value>::deserialize(deserializer)?;
        Ok(value.and_then(|v| serde_json::from_value(v).ok()))
    }

    /// A timestamp in either accepted form, otherwise `None`.
    pub fn timestamp<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        let value = Option::<Value>::deserialize(deserializer)?;
        Ok(value.and_then(|v| super::timestamp::deserialize_optional(v).ok().flatten()))
    }
}

/// Timestamps that are RFC 3339 strings (v0.11+, Nokia in practice) or epoch seconds (v0.10).
mod timestamp {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, de::Error as _};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Seconds(i64),
        Text(String),
    }

    /// Accepts an RFC 3339 string or integer epoch seconds; `null` or absent is `None`.
    pub fn deserialize_optional<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        match Option::<Wire>::deserialize(deserializer)? {
            None => Ok(None),
            Some(Wire::Seconds(seconds)) => Timestamp::from_second(seconds)
                .map(Some)
                .map_err(D::Error::custom),
            Some(Wire::Text(text)) => text.parse::<Timestamp>().map(Some).map_err(|e| {
                D::Error::custom(format!("`{text}` is not an RFC 3339 date-time: {e}"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn session_info_accepts_epoch_seconds_and_rfc3339() {
        let v010: SessionInfo = serde_json::from_value(json!({
            "sessionId": "s", "qosStatus": "AVAILABLE", "duration": 600,
            "startedAt": 1735786805, "expiresAt": 1735787405
        }))
        .unwrap();
        let v1: SessionInfo = serde_json::from_value(json!({
            "sessionId": "s", "qosStatus": "AVAILABLE", "duration": 600,
            "startedAt": "2025-01-02T03:00:05Z", "expiresAt": "2025-01-02T03:10:05Z"
        }))
        .unwrap();
        assert_eq!(v010.started_at, v1.started_at);
        assert_eq!(v010.expires_at, v1.expires_at);
    }

    #[test]
    fn session_info_ignores_unknown_fields_and_keeps_unknown_status_words() {
        let info: SessionInfo = serde_json::from_value(json!({
            "sessionId": "1234", "qosStatus": "BLA", "statusInfo": "SOMETHING_NEW",
            "messages": [{"severity": "INFO", "description": "x"}],
            "notificationUrl": "https://x", "startedAt": null
        }))
        .unwrap();
        assert_eq!(info.qos_status, QosStatus::Other("BLA".into()));
        assert_eq!(info.status_info.unwrap().as_str(), "SOMETHING_NEW");
        assert_eq!(info.duration, None);
        assert_eq!(info.started_at, None);
    }

    #[test]
    fn malformed_echoes_read_as_absent_but_the_id_is_kept() {
        let info: SessionInfo = serde_json::from_value(json!({
            "sessionId": "3fa85f64-5717-4562-b3fc-2c963f66afa6", "qosStatus": "REQUESTED",
            "startedAt": "yesterday", "duration": -5,
            "device": {"ipv4Address": {}}, "applicationServer": "nowhere",
            "devicePorts": {"ports": [70000]}
        }))
        .unwrap();
        assert_eq!(info.session_id, "3fa85f64-5717-4562-b3fc-2c963f66afa6");
        assert_eq!(info.started_at, None);
        assert_eq!(info.duration, None);
        assert_eq!(info.device, None);
        assert_eq!(info.application_server, None);
        assert_eq!(info.device_ports, None);
    }

    #[test]
    fn session_id_and_status_must_be_well_formed() {
        let err =
            serde_json::from_value::<SessionInfo>(json!({"qosStatus": "AVAILABLE"})).unwrap_err();
        assert!(err.to_string().contains("sessionId"), "{err}");
        let err = serde_json::from_value::<SessionInfo>(json!({"sessionId": "s", "qosStatus": 3}))
            .unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
    }

    #[test]
    fn timestamps_reject_text_that_is_not_rfc3339() {
        let err = timestamp::deserialize_optional(json!("yesterday")).unwrap_err();
        assert!(err.to_string().contains("`yesterday`"), "{err}");
    }

    #[test]
    fn create_session_serialises_only_the_callback_form_that_is_set() {
        let request = CreateSession {
            device: Some(Device {
                phone_number: Some("+15550000001".into()),
                ..Device::default()
            }),
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
            application_server_ports: None,
            qos_profile: "QOS_L".into(),
            duration: Some(600),
            sink: Some("https://op.example.org/qod/notify".into()),
            sink_credential: Some(SinkCredential::access_token(
                SecretString::from("s3cr3t-abc"),
                "2025-01-02T04:00:00Z".parse().unwrap(),
            )),
            webhook: None,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({
                "device": {"phoneNumber": "+15550000001"},
                "applicationServer": {"ipv4Address": "203.0.113.0/24"},
                "devicePorts": {"ranges": [{"from": 5000, "to": 5010}]},
                "qosProfile": "QOS_L", "duration": 600,
                "sink": "https://op.example.org/qod/notify",
                "sinkCredential": {"credentialType": "ACCESSTOKEN", "accessToken": "s3cr3t-abc",
                                   "accessTokenExpiresUtc": "2025-01-02T04:00:00Z", "accessTokenType": "bearer"}
            })
        );
        let debug = format!("{request:?}");
        assert!(
            !debug.contains("s3cr3t-abc"),
            "secret leaked in Debug: {debug}"
        );
    }

    #[test]
    fn v010_webhook_round_trips_and_hides_its_token_in_debug() {
        let body = json!({
            "device": {"ipv4Address": {"publicAddress": "198.51.100.7", "publicPort": 40001},
                       "phoneNumber": "+15550000001"},
            "applicationServer": {"ipv4Address": "203.0.113.10/32"},
            "applicationServerPorts": {"ports": [443]},
            "qosProfile": "QOS_L", "duration": 600,
            "webhook": {"notificationUrl": "https://op.example.org/qod/notify",
                        "notificationAuthToken": "0123456789abcdefghij-token"}
        });
        let parsed: CreateSession = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), body);
        assert!(!format!("{parsed:?}").contains("0123456789abcdefghij-token"));
    }
}
