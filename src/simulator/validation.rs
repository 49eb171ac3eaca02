//! Request validation: turns raw request bodies into checked values or the error the spec
//! prescribes for the path's API version.
//!
//! Bodies are parsed with `serde_path_to_error`, so a wrong type names its field
//! (`devicePorts.ports[0]: invalid value ...`). The checks the JSON schema cannot express with
//! serde types (patterns, ranges, "at least one of") follow, then the business rules (profile
//! table, duration limits, sink credential types). Every message names the offending field.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use axum::http::{HeaderValue, StatusCode};
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::{
    notifier::Callback,
    profiles::{QosProfile, Table},
    reply::{ApiError, ApiVersion, Dialect, code},
};
use crate::qod::{
    model::{
        ACCESS_TOKEN_TYPE_BEARER, ApplicationServer, CREDENTIAL_TYPE_ACCESS_TOKEN, CreateSession,
        Device, ExtendSessionDuration, PortsSpec, RetrieveSessionsInput, SinkCredential, Webhook,
    },
    profiles::ProfileStatus,
};

/// The longest session v0.10 allows, and its default duration.
pub const V0_10_MAX_DURATION: u32 = 86_400;
/// v0.10's bound on `requestedAdditionalDuration`.
pub const V0_10_MAX_EXTENSION: u32 = 86_399;
/// `format: int32` on every duration.
const INT32_MAX: u32 = i32::MAX.unsigned_abs();

/// A create request that passed every check.
#[derive(Debug)]
pub struct ValidCreate {
    pub device: Option<Device>,
    pub application_server: ApplicationServer,
    pub device_ports: Option<PortsSpec>,
    pub application_server_ports: Option<PortsSpec>,
    pub profile: Arc<QosProfile>,
    /// Granted duration in seconds.
    pub duration: u32,
    pub callback: Option<Callback>,
}

/// Parses a JSON body into `T`, naming the failing field in the error.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "the request body is empty; a JSON object is expected",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("the request body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::invalid(format!("request body: {inner}"))
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Checks a `POST /sessions` body for `version` against the profiles on offer.
pub fn create(
    version: ApiVersion,
    dialect: Dialect,
    body: &[u8],
    profiles: &Table,
) -> Result<ValidCreate, ApiError> {
    let request: CreateSession = parse_json(body)?;
    check_callback_shape(version, &request)?;
    check_profile_name(&request.qos_profile)?;
    let device = match request.device {
        Some(device) => {
            check_device(version, "device", &device)?;
            Some(device)
        }
        None => return Err(missing_device()),
    };
    check_application_server(&request.application_server)?;
    if let Some(ports) = &request.device_ports {
        check_ports("devicePorts", ports)?;
    }
    if let Some(ports) = &request.application_server_ports {
        check_ports("applicationServerPorts", ports)?;
    }
    let requested = match (version, request.duration) {
        (ApiVersion::V0_10, None) => None,
        (_, None) => return Err(ApiError::invalid("duration: is required")),
        (_, Some(0)) => return Err(ApiError::invalid("duration: must be at least 1 second")),
        (_, Some(d)) if d > INT32_MAX => {
            return Err(ApiError::invalid("duration: must fit a 32-bit integer"));
        }
        (ApiVersion::V0_10, Some(d)) if d > V0_10_MAX_DURATION => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                code::OUT_OF_RANGE,
                format!("duration: {d} exceeds the maximum of {V0_10_MAX_DURATION} seconds"),
            ));
        }
        (_, Some(d)) => Some(d),
    };
    let profile = usable_profile(profiles, &request.qos_profile)?;
    let duration = match requested {
        Some(duration) => {
            if duration < profile.min_duration || duration > profile.max_duration {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    code::DURATION_OUT_OF_RANGE,
                    format!(
                        "duration: {duration} s is out of the range {}..={} s allowed for QoS \
                         profile {}",
                        profile.min_duration,
                        profile.max_duration,
                        profile.name()
                    ),
                ));
            }
            duration
        }
        // v0.10: "Maximal value of 24 hours is used if not set", within the profile's limit.
        None => V0_10_MAX_DURATION.min(profile.max_duration),
    };
    let callback = if version.uses_sink() {
        sink_callback(request.sink.as_deref(), request.sink_credential.as_ref())?
    } else {
        webhook_callback(dialect, request.webhook.as_ref())?
    };
    Ok(ValidCreate {
        device,
        application_server: request.application_server,
        device_ports: request.device_ports,
        application_server_ports: request.application_server_ports,
        profile,
        duration,
        callback,
    })
}

/// Checks a `POST /sessions/{id}/extend` body; returns the requested additional seconds.
pub fn extend(version: ApiVersion, body: &[u8]) -> Result<u32, ApiError> {
    let request: ExtendSessionDuration = parse_json(body)?;
    let seconds = request.requested_additional_duration;
    if seconds == 0 {
        return Err(ApiError::invalid(
            "requestedAdditionalDuration: must be at least 1 second",
        ));
    }
    if seconds > INT32_MAX {
        return Err(ApiError::invalid(
            "requestedAdditionalDuration: must fit a 32-bit integer",
        ));
    }
    if version == ApiVersion::V0_10 && seconds > V0_10_MAX_EXTENSION {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code::OUT_OF_RANGE,
            format!(
                "requestedAdditionalDuration: {seconds} exceeds the maximum of \
                 {V0_10_MAX_EXTENSION} seconds"
            ),
        ));
    }
    Ok(seconds)
}

/// Checks a `POST /retrieve-sessions` body; returns the device to look up.
pub fn retrieve(version: ApiVersion, body: &[u8]) -> Result<Device, ApiError> {
    let request: RetrieveSessionsInput = parse_json(body)?;
    let device = request.device.ok_or_else(missing_device)?;
    check_device(version, "device", &device)?;
    Ok(device)
}

/// The identifier the v1.1 `DeviceResponse` (at most one property) echoes: the first of phone
/// number, IPv4, IPv6 and network access identifier that was given.
pub fn single_identifier(device: &Device) -> Device {
    if let Some(phone) = &device.phone_number {
        Device {
            phone_number: Some(phone.clone()),
            ..Device::default()
        }
    } else if let Some(ipv4) = &device.ipv4_address {
        Device {
            ipv4_address: Some(ipv4.clone()),
            ..Device::default()
        }
    } else if let Some(ipv6) = &device.ipv6_address {
        Device {
            ipv6_address: Some(ipv6.clone()),
            ..Device::default()
        }
    } else {
        Device {
            network_access_identifier: device.network_access_identifier.clone(),
            ..Device::default()
        }
    }
}

fn missing_device() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        code::MISSING_IDENTIFIER,
        "device: is required (the device cannot be identified from a two-legged access token)",
    )
}

/// `webhook` belongs to v0.10, `sink`/`sinkCredential` to v0.11+; a body must use its path's.
fn check_callback_shape(version: ApiVersion, request: &CreateSession) -> Result<(), ApiError> {
    if version.uses_sink() {
        if request.webhook.is_some() {
            return Err(ApiError::invalid(format!(
                "webhook: not part of CAMARA QoD {} (use `sink` and `sinkCredential`; \
                 `webhook` is the v0.10 shape served under /qod/v0)",
                version.as_str()
            )));
        }
    } else {
        let field = match (&request.sink, &request.sink_credential) {
            (Some(_), _) => Some("sink"),
            (None, Some(_)) => Some("sinkCredential"),
            (None, None) => None,
        };
        if let Some(field) = field {
            return Err(ApiError::invalid(format!(
                "{field}: not part of CAMARA QoD v0.10 (use `webhook`; `sink` is the v0.11+ \
                 shape served under /quality-on-demand/v1)"
            )));
        }
    }
    Ok(())
}

fn check_profile_name(name: &str) -> Result<(), ApiError> {
    let length = name.chars().count();
    if !(3..=256).contains(&length) {
        return Err(ApiError::invalid(format!(
            "qosProfile: must be 3 to 256 characters long, got {length}"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(ApiError::invalid(format!(
            "qosProfile: `{name}` does not match ^[a-zA-Z0-9_.-]+$"
        )));
    }
    Ok(())
}

fn usable_profile(profiles: &Table, name: &str) -> Result<Arc<QosProfile>, ApiError> {
    let Some(profile) = profiles.find(name) else {
        return Err(ApiError::invalid(format!(
            "qosProfile: unknown QoS profile `{name}`; this provider offers {}",
            profiles.usable_names().join(", ")
        )));
    };
    if *profile.status() != ProfileStatus::Active {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::QOS_PROFILE_NOT_APPLICABLE,
            format!(
                "qosProfile: QoS profile {name} is {} and cannot be used for new sessions",
                profile.status().as_str()
            ),
        ));
    }
    Ok(profile)
}

pub(super) fn check_device(
    version: ApiVersion,
    field: &str,
    device: &Device,
) -> Result<(), ApiError> {
    if device.is_empty() {
        return Err(ApiError::invalid(format!(
            "{field}: must contain at least one of phoneNumber, networkAccessIdentifier, \
             ipv4Address, ipv6Address"
        )));
    }
    if let Some(phone) = &device.phone_number
        && !valid_phone_number(version, phone)
    {
        let pattern = match version {
            ApiVersion::V0_10 => r"^\+?[0-9]{5,15}$",
            _ => r"^\+[1-9][0-9]{4,14}$",
        };
        return Err(ApiError::invalid(format!(
            "{field}.phoneNumber: `{phone}` does not match {pattern}"
        )));
    }
    if let Some(nai) = &device.network_access_identifier
        && nai.trim().is_empty()
    {
        return Err(ApiError::invalid(format!(
            "{field}.networkAccessIdentifier: must not be empty"
        )));
    }
    if let Some(ipv4) = &device.ipv4_address {
        if ipv4.public_address.parse::<Ipv4Addr>().is_err() {
            return Err(ApiError::invalid(format!(
                "{field}.ipv4Address.publicAddress: `{}` is not a single IPv4 address",
                ipv4.public_address
            )));
        }
        if let Some(private) = &ipv4.private_address
            && private.parse::<Ipv4Addr>().is_err()
        {
            return Err(ApiError::invalid(format!(
                "{field}.ipv4Address.privateAddress: `{private}` is not a single IPv4 address"
            )));
        }
        if ipv4.private_address.is_none() && ipv4.public_port.is_none() {
            return Err(ApiError::invalid(format!(
                "{field}.ipv4Address: publicAddress needs privateAddress or publicPort as well"
            )));
        }
    }
    if let Some(ipv6) = &device.ipv6_address
        && ipv6.parse::<Ipv6Addr>().is_err()
    {
        return Err(ApiError::invalid(format!(
            "{field}.ipv6Address: `{ipv6}` is not a single IPv6 address"
        )));
    }
    Ok(())
}

/// v0.11+: E.164 with `+` (`^\+[1-9][0-9]{4,14}$`); v0.10: `^\+?[0-9]{5,15}$`.
fn valid_phone_number(version: ApiVersion, phone: &str) -> bool {
    let digits = match (version, phone.strip_prefix('+')) {
        (ApiVersion::V0_10, Some(rest)) => rest,
        (ApiVersion::V0_10, None) => phone,
        (_, Some(rest)) if !rest.starts_with('0') => rest,
        _ => return false,
    };
    (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

fn check_application_server(server: &ApplicationServer) -> Result<(), ApiError> {
    if server.ipv4_address.is_none() && server.ipv6_address.is_none() {
        return Err(ApiError::invalid(
            "applicationServer: must contain ipv4Address or ipv6Address",
        ));
    }
    if let Some(v4) = &server.ipv4_address
        && parse_ipv4_network(v4).is_none()
    {
        return Err(ApiError::invalid(format!(
            "applicationServer.ipv4Address: `{v4}` is not an IPv4 address or address/mask"
        )));
    }
    if let Some(v6) = &server.ipv6_address
        && parse_ipv6_network(v6).is_none()
    {
        return Err(ApiError::invalid(format!(
            "applicationServer.ipv6Address: `{v6}` is not an IPv6 address or address/mask"
        )));
    }
    Ok(())
}

/// `a.b.c.d` or `a.b.c.d/len`: the address and prefix length (32 without a mask).
pub fn parse_ipv4_network(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (address, length) = split_prefix(text, 32)?;
    Some((address.parse().ok()?, length))
}

/// An IPv6 address with an optional `/len` (128 without).
pub fn parse_ipv6_network(text: &str) -> Option<(Ipv6Addr, u8)> {
    let (address, length) = split_prefix(text, 128)?;
    Some((address.parse().ok()?, length))
}

fn split_prefix(text: &str, max: u8) -> Option<(&str, u8)> {
    match text.split_once('/') {
        None => Some((text, max)),
        Some((address, length)) => {
            if length.is_empty() || !length.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let length: u8 = length.parse().ok()?;
            (length <= max).then_some((address, length))
        }
    }
}

fn check_ports(field: &str, ports: &PortsSpec) -> Result<(), ApiError> {
    if ports.ranges.is_none() && ports.ports.is_none() {
        return Err(ApiError::invalid(format!(
            "{field}: must contain `ranges` or `ports`"
        )));
    }
    if let Some(ranges) = &ports.ranges {
        if ranges.is_empty() {
            return Err(ApiError::invalid(format!(
                "{field}.ranges: must not be empty"
            )));
        }
        for (index, range) in ranges.iter().enumerate() {
            if range.from > range.to {
                return Err(ApiError::invalid(format!(
                    "{field}.ranges[{index}]: `from` ({}) is greater than `to` ({})",
                    range.from, range.to
                )));
            }
        }
    }
    if ports.ports.as_ref().is_some_and(Vec::is_empty) {
        return Err(ApiError::invalid(format!(
            "{field}.ports: must not be empty"
        )));
    }
    Ok(())
}

fn callback_url(
    field: &str,
    url: &str,
    invalid_code: &'static str,
) -> Result<reqwest::Url, ApiError> {
    let invalid = |reason: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            invalid_code,
            format!("{field}: {reason}"),
        )
    };
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| invalid(format!("`{url}` is not an absolute URL: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host_str().is_none() {
        return Err(invalid(format!(
            "`{url}` is not an http(s) URL with a host; notifications are delivered over HTTP"
        )));
    }
    Ok(parsed)
}

fn bearer_header(field: &str, value: String) -> Result<SecretString, ApiError> {
    if HeaderValue::from_str(&value).is_err() {
        return Err(ApiError::invalid(format!(
            "{field}: contains characters that cannot be sent in an Authorization header"
        )));
    }
    Ok(SecretString::from(value))
}

fn sink_callback(
    sink: Option<&str>,
    credential: Option<&SinkCredential>,
) -> Result<Option<Callback>, ApiError> {
    let Some(sink) = sink else {
        if credential.is_some() {
            return Err(ApiError::invalid(
                "sinkCredential: given without `sink`; there is nothing to authenticate to",
            ));
        }
        return Ok(None);
    };
    let url = callback_url("sink", sink, code::INVALID_SINK)?;
    let Some(credential) = credential else {
        return Ok(Some(Callback {
            url,
            authorization: None,
            credential_expires_at: None,
        }));
    };
    if credential.credential_type != CREDENTIAL_TYPE_ACCESS_TOKEN {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code::INVALID_CREDENTIAL,
            format!(
                "sinkCredential.credentialType: only ACCESSTOKEN is supported, got `{}`",
                credential.credential_type
            ),
        ));
    }
    match credential.access_token_type.as_deref() {
        Some(kind) if kind.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE_BEARER) => {}
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                code::INVALID_TOKEN,
                format!("sinkCredential.accessTokenType: only bearer is supported, got `{other}`"),
            ));
        }
        None => {
            return Err(ApiError::invalid(
                "sinkCredential.accessTokenType: is required for ACCESSTOKEN",
            ));
        }
    }
    let token = match &credential.access_token {
        Some(token) if !token.expose_secret().is_empty() => token.expose_secret(),
        _ => {
            return Err(ApiError::invalid(
                "sinkCredential.accessToken: is required for ACCESSTOKEN",
            ));
        }
    };
    let Some(expires) = credential.access_token_expires_utc else {
        return Err(ApiError::invalid(
            "sinkCredential.accessTokenExpiresUtc: is required for ACCESSTOKEN",
        ));
    };
    Ok(Some(Callback {
        url,
        authorization: Some(bearer_header(
            "sinkCredential.accessToken",
            format!("Bearer {token}"),
        )?),
        credential_expires_at: Some(expires),
    }))
}

/// The v0.10 webhook. Its token is sent after `Bearer ` unless it already starts with it: the
/// Nokia SDK stores `"Bearer " + token` and Nokia copies the field verbatim.
fn webhook_callback(
    dialect: Dialect,
    webhook: Option<&Webhook>,
) -> Result<Option<Callback>, ApiError> {
    let Some(webhook) = webhook else {
        return Ok(None);
    };
    let url = callback_url(
        "webhook.notificationUrl",
        &webhook.notification_url,
        code::INVALID_ARGUMENT,
    )?;
    let authorization = match &webhook.notification_auth_token {
        None => None,
        Some(token) => {
            let token = token.expose_secret();
            let length = token.chars().count();
            // v0.10 asks for 20..256 characters; Nokia's gateway does not check.
            if dialect == Dialect::Camara && !(20..=256).contains(&length) {
                return Err(ApiError::invalid(format!(
                    "webhook.notificationAuthToken: must be 20 to 256 characters long, got \
                     {length}"
                )));
            }
            let value = if token.starts_with("Bearer ") {
                token.to_owned()
            } else {
                format!("Bearer {token}")
            };
            Some(bearer_header("webhook.notificationAuthToken", value)?)
        }
    };
    Ok(Some(Callback {
        url,
        authorization,
        credential_expires_at: None::<Timestamp>,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// Validation against the built-in profiles.
    fn create(version: ApiVersion, dialect: Dialect, body: &[u8]) -> Result<ValidCreate, ApiError> {
        super::create(version, dialect, body, &Table::builtin())
    }

    fn v1_body() -> Value {
        json!({
            "device": {"phoneNumber": "+15550000001",
                       "ipv4Address": {"publicAddress": "198.51.100.7", "publicPort": 40001}},
            "applicationServer": {"ipv4Address": "203.0.113.0/24"},
            "devicePorts": {"ranges": [{"from": 5000, "to": 5010}]},
            "qosProfile": "QOS_L", "duration": 600,
            "sink": "https://op.example.org/qod/notify",
            "sinkCredential": {"credentialType": "ACCESSTOKEN", "accessToken": "s3cr3t-abc",
                               "accessTokenExpiresUtc": "2030-01-02T04:00:00Z",
                               "accessTokenType": "bearer"}
        })
    }

    fn create_v1(body: &Value) -> Result<ValidCreate, ApiError> {
        create(ApiVersion::V1, Dialect::Camara, body.to_string().as_bytes())
    }

    fn error_of(body: &Value) -> (StatusCode, &'static str, String) {
        let error = create_v1(body).unwrap_err();
        (error.status, error.code, error.message)
    }

    #[test]
    fn a_complete_v1_request_passes_and_builds_the_bearer_header() {
        let valid = create_v1(&v1_body()).unwrap();
        assert_eq!(valid.duration, 600);
        assert_eq!(valid.profile.name(), "QOS_L");
        let callback = valid.callback.unwrap();
        assert_eq!(callback.url.as_str(), "https://op.example.org/qod/notify");
        assert_eq!(
            callback.authorization.unwrap().expose_secret(),
            "Bearer s3cr3t-abc"
        );
    }

    #[test]
    fn wrong_types_and_bad_json_name_the_field() {
        let mut body = v1_body();
        body["devicePorts"]["ports"] = json!([70000]);
        let (status, code, message) = error_of(&body);
        assert_eq!(
            (status, code),
            (StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT)
        );
        assert!(message.starts_with("devicePorts.ports[0]:"), "{message}");

        let mut body = v1_body();
        body["duration"] = json!("long");
        assert!(error_of(&body).2.starts_with("duration:"));

        let mut body = v1_body();
        body.as_object_mut().unwrap().remove("qosProfile");
        assert!(error_of(&body).2.contains("qosProfile"));

        let error = create(ApiVersion::V1, Dialect::Camara, b"{\"device\":").unwrap_err();
        assert!(
            error.message.contains("not valid JSON"),
            "{}",
            error.message
        );
        let error = create(ApiVersion::V1, Dialect::Camara, b"").unwrap_err();
        assert!(error.message.contains("empty"), "{}", error.message);
    }

    #[test]
    fn phone_numbers_follow_the_versions_pattern() {
        for good in ["+15550000001", "+36721601234567", "+12345"] {
            assert!(valid_phone_number(ApiVersion::V1, good), "{good}");
        }
        for bad in [
            "15550000001",
            "+0123456",
            "+1234",
            "+1234567890123456",
            "+1555-000",
        ] {
            assert!(!valid_phone_number(ApiVersion::V1, bad), "{bad}");
        }
        assert!(valid_phone_number(ApiVersion::V0_10, "9382948473"));
        assert!(valid_phone_number(ApiVersion::V0_10, "+0123456"));
        assert!(!valid_phone_number(ApiVersion::V0_10, "1234"));

        let mut body = v1_body();
        body["device"]["phoneNumber"] = json!("0036721601234567");
        let (_, _, message) = error_of(&body);
        assert!(message.starts_with("device.phoneNumber:"), "{message}");
    }

    #[test]
    fn device_rules() {
        let mut body = v1_body();
        body.as_object_mut().unwrap().remove("device");
        let (status, code, _) = error_of(&body);
        assert_eq!(
            (status, code),
            (StatusCode::UNPROCESSABLE_ENTITY, code::MISSING_IDENTIFIER)
        );

        body["device"] = json!({});
        assert_eq!(error_of(&body).0, StatusCode::BAD_REQUEST);

        body["device"] = json!({"ipv4Address": {"publicAddress": "198.51.100.7"}});
        assert!(error_of(&body).2.contains("privateAddress or publicPort"));
        body["device"] = json!({"ipv4Address": {"publicAddress": "198.51.100.7",
                                                "privateAddress": "10.0.0.1"}});
        assert!(create_v1(&body).is_ok());
        body["device"] = json!({"ipv4Address": {"publicAddress": "198.51.100.0/24",
                                                "publicPort": 1}});
        assert!(
            error_of(&body)
                .2
                .starts_with("device.ipv4Address.publicAddress")
        );
        body["device"] = json!({"ipv6Address": "2001:db8::1"});
        assert!(create_v1(&body).is_ok());
        body["device"] = json!({"ipv6Address": "2001:db8::zz"});
        assert!(error_of(&body).2.starts_with("device.ipv6Address"));
    }

    #[test]
    fn application_server_and_ports() {
        let mut body = v1_body();
        body["applicationServer"] = json!({});
        assert!(error_of(&body).2.starts_with("applicationServer:"));
        body["applicationServer"] = json!({"ipv4Address": "203.0.113.0/33"});
        assert!(
            error_of(&body)
                .2
                .starts_with("applicationServer.ipv4Address")
        );
        body["applicationServer"] = json!({"ipv6Address": "2001:db8::/64"});
        assert!(create_v1(&body).is_ok());
        body["devicePorts"] = json!({"ranges": [{"from": 10, "to": 5}]});
        assert!(error_of(&body).2.starts_with("devicePorts.ranges[0]"));
        body["devicePorts"] = json!({});
        assert!(error_of(&body).2.starts_with("devicePorts:"));
        body["devicePorts"] = json!({"ports": []});
        assert!(error_of(&body).2.starts_with("devicePorts.ports"));
    }

    #[test]
    fn profile_and_duration_rules() {
        let mut body = v1_body();
        body["qosProfile"] = json!("QO");
        assert_eq!(error_of(&body).1, code::INVALID_ARGUMENT);
        body["qosProfile"] = json!("QOS L");
        assert!(error_of(&body).2.contains("does not match"));
        body["qosProfile"] = json!("QOS_UNKNOWN");
        let (status, code, message) = error_of(&body);
        assert_eq!(
            (status, code),
            (StatusCode::BAD_REQUEST, code::INVALID_ARGUMENT)
        );
        assert!(message.contains("QOS_E"), "{message}");
        body["qosProfile"] = json!("QOS_LEGACY");
        assert_eq!(error_of(&body).1, code::QOS_PROFILE_NOT_APPLICABLE);

        body["qosProfile"] = json!("QOS_E");
        body["duration"] = json!(3601);
        assert_eq!(error_of(&body).1, code::DURATION_OUT_OF_RANGE);
        body["duration"] = json!(0);
        assert_eq!(error_of(&body).1, code::INVALID_ARGUMENT);
        body.as_object_mut().unwrap().remove("duration");
        assert!(error_of(&body).2.starts_with("duration:"));
    }

    #[test]
    fn sink_credential_rules() {
        let mut body = v1_body();
        body["sinkCredential"]["credentialType"] = json!("PLAIN");
        assert_eq!(error_of(&body).1, code::INVALID_CREDENTIAL);
        let mut body = v1_body();
        body["sinkCredential"]["accessTokenType"] = json!("mac");
        assert_eq!(error_of(&body).1, code::INVALID_TOKEN);
        let mut body = v1_body();
        body["sinkCredential"]
            .as_object_mut()
            .unwrap()
            .remove("accessToken");
        assert!(error_of(&body).2.starts_with("sinkCredential.accessToken"));
        let mut body = v1_body();
        body["sink"] = json!("ftp://example.org/x");
        assert_eq!(error_of(&body).1, code::INVALID_SINK);
        body["sink"] = json!("http://127.0.0.1:9/x");
        assert!(
            create_v1(&body).is_ok(),
            "http sinks are accepted for local use"
        );
        body.as_object_mut().unwrap().remove("sink");
        assert!(error_of(&body).2.starts_with("sinkCredential"));
    }

    #[test]
    fn callback_shapes_belong_to_their_versions() {
        let mut body = v1_body();
        body["webhook"] = json!({"notificationUrl": "https://x.example"});
        assert!(error_of(&body).2.starts_with("webhook:"));

        let v0 = json!({
            "device": {"phoneNumber": "9382948473"},
            "applicationServer": {"ipv4Address": "5.6.7.8"},
            "qosProfile": "QOS_L",
            "sink": "https://x.example"
        });
        let error = create(
            ApiVersion::V0_10,
            Dialect::Camara,
            v0.to_string().as_bytes(),
        )
        .unwrap_err();
        assert!(error.message.starts_with("sink:"), "{}", error.message);
    }

    #[test]
    fn v0_webhook_token_is_prefixed_once_and_duration_defaults() {
        let body = |token: &str| {
            json!({
                "device": {"phoneNumber": "9382948473"},
                "applicationServer": {"ipv4Address": "5.6.7.8"},
                "qosProfile": "QOS_E",
                "webhook": {"notificationUrl": "https://x.example/n",
                            "notificationAuthToken": token}
            })
            .to_string()
        };
        let plain = create(
            ApiVersion::V0_10,
            Dialect::Camara,
            body("0123456789abcdefghij-token").as_bytes(),
        )
        .unwrap();
        assert_eq!(
            plain.duration, 3_600,
            "default capped at the profile maximum"
        );
        assert_eq!(
            plain
                .callback
                .unwrap()
                .authorization
                .unwrap()
                .expose_secret(),
            "Bearer 0123456789abcdefghij-token"
        );
        let nokia = create(
            ApiVersion::V0_10,
            Dialect::Nac,
            body("Bearer my-token").as_bytes(),
        )
        .unwrap();
        assert_eq!(
            nokia
                .callback
                .unwrap()
                .authorization
                .unwrap()
                .expose_secret(),
            "Bearer my-token"
        );
        let short = create(ApiVersion::V0_10, Dialect::Camara, body("short").as_bytes());
        assert!(short.unwrap_err().message.contains("notificationAuthToken"));
    }

    #[test]
    fn extend_and_retrieve_bodies() {
        assert_eq!(
            extend(ApiVersion::V1, br#"{"requestedAdditionalDuration": 300}"#).unwrap(),
            300
        );
        assert!(extend(ApiVersion::V1, br#"{"requestedAdditionalDuration": 0}"#).is_err());
        assert!(extend(ApiVersion::V1, br#"{"requestedAdditionalDuration": 90000}"#).is_ok());
        assert_eq!(
            extend(
                ApiVersion::V0_10,
                br#"{"requestedAdditionalDuration": 90000}"#
            )
            .unwrap_err()
            .code,
            code::OUT_OF_RANGE
        );
        let error = extend(ApiVersion::V1, br#"{"requestedAdditionalDuration": -1}"#).unwrap_err();
        assert!(error.message.starts_with("requestedAdditionalDuration:"));

        assert_eq!(
            retrieve(ApiVersion::V1, b"{}").unwrap_err().code,
            code::MISSING_IDENTIFIER
        );
        let device = retrieve(
            ApiVersion::V1,
            br#"{"device": {"phoneNumber": "+15550000001"}}"#,
        )
        .unwrap();
        assert_eq!(device.phone_number.as_deref(), Some("+15550000001"));
    }

    #[test]
    fn single_identifier_prefers_the_phone_number() {
        let device: Device = serde_json::from_value(json!({
            "phoneNumber": "+15550000001", "networkAccessIdentifier": "a@b",
            "ipv4Address": {"publicAddress": "1.2.3.4", "publicPort": 1}, "ipv6Address": "::1"
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(single_identifier(&device)).unwrap(),
            json!({"phoneNumber": "+15550000001"})
        );
        let nai_only = Device {
            network_access_identifier: Some("a@b".into()),
            ..Device::default()
        };
        assert_eq!(single_identifier(&nai_only), nai_only);
    }
}
