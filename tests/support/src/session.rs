//! QodSession specs for tests, and what tests read of a session's status.

use qod_operator::api::{Device, QodSession, QodSessionSpec, conditions};
use serde_json::{Value, json};

/// A session for the device with phone number `phone` (which tells tests' sessions apart), to
/// an IPv4 application server, with no policy or provider reference of its own.
pub fn spec(phone: &str, profile: &str, duration: u32) -> QodSessionSpec {
    QodSessionSpec {
        device: Device {
            phone_number: Some(phone.into()),
            ..Device::default()
        },
        qos_profile: profile.into(),
        duration,
        ..QodSessionSpec::example()
    }
}

/// A spec whose device (by phone number) is unique to `index`, so sessions never conflict.
pub fn numbered_spec(index: usize, profile: &str, duration: u32) -> QodSessionSpec {
    spec(&format!("+3670{index:07}"), profile, duration)
}

/// A QodSession manifest as a user writes it, with `spec` as given (valid or not).
pub fn manifest(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "qod.dev/v1alpha1",
        "kind": "QodSession",
        "metadata": {"name": name},
        "spec": spec,
    })
}

/// The spec of a valid manifest (a phone number, an IPv4 server, QOS_L for 600 s), for tests
/// that break one field at a time.
pub fn valid_spec() -> Value {
    json!({
        "device": {"phoneNumber": "+36721601234567"},
        "applicationServer": {"ipv4Address": "198.51.100.7"},
        "qosProfile": "QOS_L",
        "duration": 600
    })
}

/// `(status, reason, message)` of the Ready condition.
pub fn ready(session: &QodSession) -> Option<(String, String, String)> {
    let status = session.status.as_ref()?;
    let ready = conditions::find(&status.conditions, conditions::READY)?;
    Some((
        ready.status.clone(),
        ready.reason.clone(),
        ready.message.clone(),
    ))
}

pub fn qos_status(session: &QodSession) -> Option<&str> {
    session.status.as_ref()?.qos_status.as_deref()
}

pub fn session_id(session: &QodSession) -> Option<&str> {
    session.status.as_ref()?.session_id.as_deref()
}
