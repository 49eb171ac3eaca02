//! The resource's schema: the committed CRD equals the generated one, and the CEL rules refuse
//! what the API server must refuse (checked offline with kube's CEL evaluator).

use kube::core::cel::validate_cel_schema;
use serde_json::{Value, json};

use super::*;

#[test]
fn committed_crd_matches_the_generated_one() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/crds/qodsessions.qod.dev.yaml"
    );
    let committed = std::fs::read_to_string(path).expect("deploy/crds file exists");
    let generated = crd_yaml().expect("CRD serialises");
    assert!(
        committed == generated,
        "{path} is out of date: run `cargo run -- crd > deploy/crds/qodsessions.qod.dev.yaml`"
    );
}

fn cel_message<T: schemars::JsonSchema>(value: Value) -> Option<String> {
    validate_cel_schema::<T>(&value, None)
        .err()
        .map(|e| e.to_string())
}

#[test]
fn device_needs_an_identifier() {
    assert_eq!(
        cel_message::<Device>(json!({"phoneNumber": "+36721601234567"})),
        None
    );
    let message = cel_message::<Device>(json!({})).expect("refused");
    assert!(
        message.contains("device needs at least one of"),
        "{message}"
    );
}

#[test]
fn device_ipv4_needs_private_address_or_port() {
    assert_eq!(
        cel_message::<DeviceIpv4Address>(
            json!({"publicAddress": "203.0.113.10", "publicPort": 5060})
        ),
        None
    );
    let message = cel_message::<DeviceIpv4Address>(json!({"publicAddress": "203.0.113.10"}))
        .expect("refused");
    assert!(
        message.contains("privateAddress or publicPort"),
        "{message}"
    );
}

#[test]
fn application_server_needs_an_address() {
    assert_eq!(
        cel_message::<ApplicationServer>(json!({"ipv6Address": "2001:db8::/64"})),
        None
    );
    let message = cel_message::<ApplicationServer>(json!({})).expect("refused");
    assert!(message.contains("ipv4Address or ipv6Address"), "{message}");
}

#[test]
fn port_ranges_run_upwards_and_ports_need_content() {
    assert_eq!(
        cel_message::<PortRange>(json!({"from": 5000, "to": 5010})),
        None
    );
    assert_eq!(
        cel_message::<PortRange>(json!({"from": 5000, "to": 5000})),
        None
    );
    let message = cel_message::<PortRange>(json!({"from": 5010, "to": 5000})).expect("refused");
    assert!(message.contains("from must not exceed to"), "{message}");
    let message = cel_message::<Ports>(json!({})).expect("refused");
    assert!(message.contains("give ports or ranges"), "{message}");
}

#[test]
fn the_schema_carries_the_field_rules() {
    let crd = serde_json::to_value(QodSession::crd()).expect("CRD as JSON");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["duration"]["minimum"], json!(1.0));
    assert_eq!(spec["properties"]["duration"]["maximum"], json!(86400.0));
    assert_eq!(
        spec["properties"]["qosProfile"]["pattern"],
        json!("^[a-zA-Z0-9_.-]+$")
    );
    assert_eq!(
        spec["properties"]["device"]["properties"]["phoneNumber"]["pattern"],
        json!(r"^\+[1-9][0-9]{4,14}$")
    );
    let required: Vec<&str> = spec["required"]
        .as_array()
        .expect("required list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        required,
        ["applicationServer", "device", "duration", "qosProfile"]
    );
    let names = &crd["spec"]["names"];
    assert_eq!(names["shortNames"], json!(["qod"]));
    assert_eq!(names["categories"], json!(["qod"]));
    assert_eq!(
        crd["spec"]["versions"][0]["subresources"]["status"],
        json!({})
    );
    let columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        ["Profile", "Device", "QoS", "Info", "Expires", "Age"]
    );
}
