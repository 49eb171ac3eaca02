//! Sessions as the API shows them: `SessionInfo` in the shape of the path's version.
//!
//! v1.x: RFC 3339 `startedAt`/`expiresAt` only once the session left REQUESTED, `statusInfo`,
//! `sink`, and `device` reduced to the single identifier used (`DeviceResponse`). v0.11: the
//! same with the whole device echoed. v0.10: `webhook` instead of `sink`, no `statusInfo`, and
//! `startedAt`/`expiresAt` as integer epoch seconds, always present (required there; while
//! REQUESTED they are the creation time and the scheduled end). The sink's credential is never
//! echoed.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::{clock, reply::ApiVersion, store::Session, validation::single_identifier};
use crate::qod::model::{QosStatus, SessionInfo, Webhook};

/// The `source` of a session's CloudEvents: its URL at the simulator.
pub fn session_url(base_url: &str, version: ApiVersion, id: &uuid::Uuid) -> String {
    format!(
        "{}{}/sessions/{id}",
        base_url.trim_end_matches('/'),
        version.base_path()
    )
}

/// The `SessionInfo` of `session` for `version`.
pub fn session_info(session: &Session, version: ApiVersion) -> Value {
    let requested = session.status == QosStatus::Requested;
    let (started_at, expires_at) = if requested {
        (None, None)
    } else {
        (session.started_at, session.expires_at())
    };
    let callback_url = session.callback.as_ref().map(|c| c.url.to_string());
    let info = SessionInfo {
        session_id: session.id.to_string(),
        qos_status: session.status.clone(),
        status_info: match version {
            ApiVersion::V0_10 => None,
            _ => session.status_info.clone(),
        },
        duration: Some(session.reported_duration()),
        started_at,
        expires_at,
        qos_profile: Some(session.profile.name().to_owned()),
        device: session.device.as_ref().map(|device| match version {
            ApiVersion::V1 => single_identifier(device),
            _ => device.clone(),
        }),
        application_server: Some(session.application_server.clone()),
        device_ports: session.device_ports.clone(),
        application_server_ports: session.application_server_ports.clone(),
        sink: match version {
            ApiVersion::V0_10 => None,
            _ => callback_url.clone(),
        },
        webhook: match version {
            ApiVersion::V0_10 => callback_url.map(|notification_url| Webhook {
                notification_url,
                notification_auth_token: None,
            }),
            _ => None,
        },
    };
    let mut value = serde_json::to_value(&info).unwrap_or_else(|_| json!({}));
    if version == ApiVersion::V0_10 {
        let start = session.started_at.unwrap_or(session.created_at);
        let end = session
            .expires_at()
            .unwrap_or_else(|| clock::add_seconds(start, session.duration));
        value["startedAt"] = json!(epoch(start));
        value["expiresAt"] = json!(epoch(end));
    }
    value
}

fn epoch(ts: Timestamp) -> i64 {
    ts.as_second()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        qod::event::NotificationFormat,
        simulator::{
            clock::Clock, notifier::Callback, profiles, reply::Dialect, store::NewSession,
        },
    };
    use secrecy::SecretString;
    use uuid::Uuid;

    fn session(available_after: Duration) -> Session {
        let clock = Clock::starting_at("2025-01-02T03:00:00Z".parse().unwrap());
        Session::create(
            NewSession {
                id: Uuid::nil(),
                version: ApiVersion::V1,
                dialect: Dialect::Camara,
                device: Some(
                    serde_json::from_value(json!({
                        "phoneNumber": "+15550000001",
                        "ipv4Address": {"publicAddress": "198.51.100.7", "publicPort": 1}
                    }))
                    .unwrap(),
                ),
                application_server: serde_json::from_value(
                    json!({"ipv4Address": "203.0.113.0/24"}),
                )
                .unwrap(),
                device_ports: None,
                application_server_ports: None,
                profile: profiles::Table::builtin().find("QOS_L").unwrap(),
                duration: 600,
                callback: Some(Callback {
                    url: "https://op.example.org/n".parse().unwrap(),
                    authorization: Some(SecretString::from("Bearer do-not-echo")),
                    credential_expires_at: None,
                }),
                format: NotificationFormat::V1,
                outbox: None,
            },
            clock.now(),
            &clock,
            available_after,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn v1_requested_has_no_timestamps_and_one_identifier() {
        let value = session_info(&session(Duration::from_secs(1)), ApiVersion::V1);
        assert_eq!(
            value,
            json!({
                "sessionId": "00000000-0000-0000-0000-000000000000",
                "qosStatus": "REQUESTED", "duration": 600, "qosProfile": "QOS_L",
                "device": {"phoneNumber": "+15550000001"},
                "applicationServer": {"ipv4Address": "203.0.113.0/24"},
                "sink": "https://op.example.org/n"
            })
        );
        assert!(!value.to_string().contains("do-not-echo"));
    }

    #[tokio::test(start_paused = true)]
    async fn v1_available_has_rfc3339_times() {
        let value = session_info(&session(Duration::ZERO), ApiVersion::V1);
        assert_eq!(value["qosStatus"], "AVAILABLE");
        assert_eq!(value["startedAt"], "2025-01-02T03:00:00Z");
        assert_eq!(value["expiresAt"], "2025-01-02T03:10:00Z");
    }

    #[tokio::test(start_paused = true)]
    async fn v0_10_uses_webhook_and_epoch_seconds_even_while_requested() {
        let value = session_info(&session(Duration::from_secs(1)), ApiVersion::V0_10);
        assert_eq!(value["startedAt"], 1_735_786_800);
        assert_eq!(value["expiresAt"], 1_735_786_800 + 600);
        assert_eq!(
            value["webhook"],
            json!({"notificationUrl": "https://op.example.org/n"})
        );
        assert!(value.get("sink").is_none());
        assert_eq!(
            value["device"]["ipv4Address"]["publicPort"], 1,
            "whole device"
        );
    }
}
