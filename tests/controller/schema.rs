//! Invalid manifests are refused by the API server, with a message that names the field.

use kube::api::PostParams;
use qod_operator::api::QodSession;
use qod_test_support::session::{manifest, valid_spec};
use serde_json::{Value, json};

use crate::harness::{Harness, Setup};

#[tokio::test]
async fn invalid_manifests_are_refused_naming_the_field() {
    let h = Harness::start(Setup {
        start_controller: false,
        ..Setup::default()
    })
    .await;
    let with = |pointer: &str, value: Value| {
        let mut spec = valid_spec();
        *spec.pointer_mut(pointer).unwrap() = value;
        spec
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "zero duration",
            with("/duration", json!(0)),
            "spec.duration",
        ),
        (
            "a day and a second",
            with("/duration", json!(86_401)),
            "spec.duration",
        ),
        (
            "phone without +",
            with("/device/phoneNumber", json!("36721601234567")),
            "spec.device.phoneNumber",
        ),
        (
            "short profile",
            with("/qosProfile", json!("Q")),
            "spec.qosProfile",
        ),
        (
            "profile with spaces",
            with("/qosProfile", json!("QOS L")),
            "spec.qosProfile",
        ),
        (
            "no device identifier",
            with("/device", json!({})),
            "device needs at least one of",
        ),
        (
            "no server address",
            with("/applicationServer", json!({})),
            "applicationServer needs ipv4Address or ipv6Address",
        ),
        (
            "server address not an IP",
            with("/applicationServer", json!({"ipv4Address": "example.com"})),
            "spec.applicationServer.ipv4Address",
        ),
        (
            "IPv4 device without port or private address",
            with(
                "/device",
                json!({"ipv4Address": {"publicAddress": "203.0.113.10"}}),
            ),
            "privateAddress or publicPort",
        ),
        (
            "port out of range",
            {
                let mut s = valid_spec();
                s["devicePorts"] = json!({"ports": [70000]});
                s
            },
            "spec.devicePorts.ports",
        ),
        (
            "range running backwards",
            {
                let mut s = valid_spec();
                s["devicePorts"] = json!({"ranges": [{"from": 6000, "to": 5000}]});
                s
            },
            "from must not exceed to",
        ),
        (
            "missing duration",
            {
                let mut s = valid_spec();
                s.as_object_mut().unwrap().remove("duration");
                s
            },
            "spec.duration",
        ),
    ];
    let api = kube::Api::<kube::core::DynamicObject>::namespaced_with(
        h.client.clone(),
        &h.namespace,
        &kube::api::ApiResource::erase::<QodSession>(&()),
    );
    let mut wrong = Vec::new();
    for (index, (what, spec, expected)) in cases.into_iter().enumerate() {
        let object: kube::core::DynamicObject =
            serde_json::from_value(manifest(&format!("bad-{index}"), spec)).unwrap();
        match api.create(&PostParams::default(), &object).await {
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(expected) => {}
            Err(kube::Error::Api(status)) => {
                wrong.push(format!("{what}: {} {}", status.code, status.message))
            }
            Err(other) => wrong.push(format!("{what}: {other}")),
            Ok(_) => wrong.push(format!("{what}: accepted")),
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as expected:\n{}",
        wrong.join("\n")
    );
    h.stop().await;
}
