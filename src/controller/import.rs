//! Whether a session found at the provider is the one a spec describes, for the annotation
//! `qod.dev/session-id` (import and Observe). Pure, so every case is unit-tested.
//!
//! The provider's answer is compared as the provider gives it, tolerant of what the wire does
//! to a request: CAMARA v1 echoes the device by the one identifier it used, addresses may come
//! back in another spelling (`2001:DB8::1`, `198.51.100.7/32`), ports in another order. A field
//! the provider does not echo (a device under a 3-legged token, a detail it got wrong, which
//! reads as absent) cannot be compared and is not held against the session.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use crate::{
    api::QodSessionSpec,
    qod::{self, SessionInfo},
};

/// A session-defining field in which the provider's session differs from the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The spec's field name.
    pub field: &'static str,
    /// The provider's value, as JSON.
    pub provider: String,
    /// The spec's value, as JSON.
    pub spec: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (provider: {}, spec: {})",
            self.field, self.provider, self.spec
        )
    }
}

/// The fields in which `found` differs from `spec`; empty when it is the session `spec`
/// describes.
pub fn differences(spec: &QodSessionSpec, found: &SessionInfo) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut differ = |field, provider: String, spec: String| {
        out.push(Difference {
            field,
            provider,
            spec,
        });
    };

    let device = qod::Device::from(&spec.device);
    if let Some(theirs) = &found.device
        && !same_device(theirs, &device)
    {
        differ("device", json(theirs), json(&device));
    }
    let server = qod::ApplicationServer::from(&spec.application_server);
    if let Some(theirs) = &found.application_server
        && !same_server(theirs, &server)
    {
        differ("applicationServer", json(theirs), json(&server));
    }
    if let Some(theirs) = &found.qos_profile
        && **theirs != *spec.qos_profile
    {
        differ("qosProfile", json(theirs), json(&spec.qos_profile));
    }
    let ports = [
        (
            "devicePorts",
            &found.device_ports,
            spec.device_ports.as_deref(),
        ),
        (
            "applicationServerPorts",
            &found.application_server_ports,
            spec.application_server_ports.as_deref(),
        ),
    ];
    for (field, theirs, ours) in ports {
        let ours = ours.map(qod::PortsSpec::from);
        // Absent in the spec means every port; absent in the answer is not compared, unless
        // the spec also leaves it out.
        match (theirs, &ours) {
            (Some(theirs), _) if intervals(Some(theirs)) != intervals(ours.as_ref()) => {
                differ(field, json(theirs), json(&ours));
            }
            _ => {}
        }
    }
    out
}

/// The same device: at least one identifier in both, and every identifier in both equal.
fn same_device(theirs: &qod::Device, ours: &qod::Device) -> bool {
    let mut shared = 0;
    let mut agree = |a: Option<bool>| match a {
        Some(equal) => {
            shared += 1;
            equal
        }
        None => true,
    };
    let both = |a: &Option<String>, b: &Option<String>, eq: fn(&str, &str) -> bool| {
        a.as_deref().zip(b.as_deref()).map(|(a, b)| eq(a, b))
    };
    let phone = agree(both(&theirs.phone_number, &ours.phone_number, |a, b| {
        a == b
    }));
    let nai = agree(both(
        &theirs.network_access_identifier,
        &ours.network_access_identifier,
        |a, b| a.eq_ignore_ascii_case(b),
    ));
    let ipv6 = agree(both(&theirs.ipv6_address, &ours.ipv6_address, |a, b| {
        same_address(a, b)
    }));
    let ipv4 = agree(
        theirs
            .ipv4_address
            .as_ref()
            .zip(ours.ipv4_address.as_ref())
            .map(|(a, b)| {
                // The private address and port count only when both sides give them.
                let optional = |x: Option<&str>, y: Option<&str>| {
                    x.zip(y).is_none_or(|(x, y)| same_address(x, y))
                };
                same_address(&a.public_address, &b.public_address)
                    && optional(a.private_address.as_deref(), b.private_address.as_deref())
                    && a.public_port.zip(b.public_port).is_none_or(|(x, y)| x == y)
            }),
    );
    phone && nai && ipv6 && ipv4 && shared > 0
}

fn same_server(theirs: &qod::ApplicationServer, ours: &qod::ApplicationServer) -> bool {
    let same = |a: &Option<String>, b: &Option<String>| match (a, b) {
        (Some(a), Some(b)) => network(a).zip(network(b)).map_or(a == b, |(x, y)| x == y),
        (None, None) => true,
        _ => false,
    };
    same(&theirs.ipv4_address, &ours.ipv4_address) && same(&theirs.ipv6_address, &ours.ipv6_address)
}

fn same_address(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// An address or CIDR block as (network, prefix length), host bits cleared: `198.51.100.7`
/// and `198.51.100.7/32` are one network.
fn network(text: &str) -> Option<(IpAddr, u8)> {
    let (address, length) = match text.split_once('/') {
        Some((address, length)) => (address, Some(length.parse::<u8>().ok()?)),
        None => (text, None),
    };
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let length = length.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0);
            Some((IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)), length))
        }
        IpAddr::V6(v6) => {
            let length = length.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - u32::from(length)).unwrap_or(0);
            Some((IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)), length))
        }
    }
}

/// The ports as sorted, merged inclusive intervals; none means every port.
fn intervals(ports: Option<&qod::PortsSpec>) -> Vec<(u16, u16)> {
    let Some(ports) = ports else {
        return vec![(0, u16::MAX)];
    };
    let mut all: Vec<(u16, u16)> = ports
        .ranges
        .iter()
        .flatten()
        .map(|r| (r.from.min(r.to), r.from.max(r.to)))
        .chain(ports.ports.iter().flatten().map(|p| (*p, *p)))
        .collect();
    all.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(all.len());
    for (from, to) in all {
        match merged.last_mut() {
            Some(last) if u32::from(from) <= u32::from(last.1) + 1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// A value shown in a difference, as compact JSON.
fn json<T: serde::Serialize>(value: &T) -> String {
    // Plain wire models and strings always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> QodSessionSpec {
        let mut base = json!({
            "device": {"phoneNumber": "+36721601234567",
                       "ipv4Address": {"publicAddress": "203.0.113.10", "publicPort": 5060}},
            "applicationServer": {"ipv4Address": "198.51.100.7"},
            "devicePorts": {"ranges": [{"from": 5000, "to": 5010}]},
            "qosProfile": "QOS_L", "duration": 600
        });
        if let (Some(base), Some(change)) = (base.as_object_mut(), value.as_object()) {
            for (k, v) in change {
                base.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn found(value: serde_json::Value) -> SessionInfo {
        let mut base = json!({
            "sessionId": "s-1", "qosStatus": "AVAILABLE", "duration": 600,
            "device": {"phoneNumber": "+36721601234567"},
            "applicationServer": {"ipv4Address": "198.51.100.7/32"},
            "devicePorts": {"ports": [5000], "ranges": [{"from": 5001, "to": 5010}]},
            "qosProfile": "QOS_L"
        });
        if let (Some(base), Some(change)) = (base.as_object_mut(), value.as_object()) {
            for (k, v) in change {
                base.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    fn fields(d: &[Difference]) -> Vec<&'static str> {
        d.iter().map(|d| d.field).collect::<Vec<_>>()
    }

    #[test]
    fn the_wires_normalisations_are_no_difference() {
        // v1 echoes one identifier; /32 is the address; ports come back split differently.
        assert_eq!(differences(&spec(json!({})), &found(json!({}))), vec![]);
        let v6 = spec(json!({"device": {"ipv6Address": "2001:db8::1"},
                             "applicationServer": {"ipv6Address": "2001:db8:0:0::/64"}}));
        let answer = found(json!({"device": {"ipv6Address": "2001:DB8:0::1"},
                                  "applicationServer": {"ipv6Address": "2001:db8::/64"}}));
        assert_eq!(differences(&v6, &answer), vec![]);
        // The device by its IPv4 identity only, as v1 may answer.
        let by_ipv4 = found(
            json!({"device": {"ipv4Address": {"publicAddress": "203.0.113.10", "publicPort": 5060}}}),
        );
        assert_eq!(differences(&spec(json!({})), &by_ipv4), vec![]);
    }

    #[test]
    fn what_the_provider_does_not_echo_is_not_compared() {
        let mut bare = found(json!({}));
        bare.device = None;
        bare.application_server = None;
        bare.qos_profile = None;
        bare.device_ports = None;
        assert_eq!(differences(&spec(json!({})), &bare), vec![]);
    }

    #[test]
    fn differing_fields_are_named() {
        let answer = found(json!({
            "device": {"phoneNumber": "+36721601234568"},
            "applicationServer": {"ipv4Address": "198.51.100.8"},
            "qosProfile": "QOS_E",
            "devicePorts": {"ports": [5000]},
            "applicationServerPorts": {"ports": [443]}
        }));
        let found = differences(&spec(json!({})), &answer);
        assert_eq!(
            fields(&found),
            [
                "device",
                "applicationServer",
                "qosProfile",
                "devicePorts",
                "applicationServerPorts"
            ]
        );
        assert_eq!(
            found[2].to_string(),
            r#"qosProfile (provider: "QOS_E", spec: "QOS_L")"#
        );
    }

    #[test]
    fn a_device_known_by_no_shared_identifier_is_not_the_same() {
        let answer = found(json!({"device": {"networkAccessIdentifier": "cam@example.org"}}));
        assert_eq!(fields(&differences(&spec(json!({})), &answer)), ["device"]);
        let other_port = found(
            json!({"device": {"ipv4Address": {"publicAddress": "203.0.113.10", "publicPort": 5061}}}),
        );
        assert_eq!(
            fields(&differences(&spec(json!({})), &other_port)),
            ["device"]
        );
    }
}
