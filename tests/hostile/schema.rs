//! Manifests with hostile values (huge strings, odd unicode, out-of-range and NaN-ish numbers,
//! deep nesting, literals JSON does not allow) are refused by the API server with the CRD's
//! schema, before the controller could ever see them; the API server stays usable after.

use kube::{
    Api, Client,
    api::{ApiResource, ListParams, PostParams},
    core::DynamicObject,
};
use qod_operator::api::{ClusterQodProvider, QodProvider, QodSession};
use serde_json::{Value, json};

use qod_test_support::{
    Cluster,
    session::{manifest, valid_spec},
};

fn nested(depth: usize) -> Value {
    let mut value = json!("deep");
    for _ in 0..depth {
        value = json!({ "a": value });
    }
    value
}

/// POSTs raw bytes as a QodSession into `namespace`; the status code of the answer.
async fn post_raw(client: &Client, namespace: &str, body: String) -> u16 {
    let request = http::Request::post(format!(
        "/apis/qod.dev/v1alpha1/namespaces/{namespace}/qodsessions"
    ))
    .header("content-type", "application/json")
    .body(body.into_bytes())
    .unwrap();
    match client.request_text(request).await {
        Ok(_) => 201,
        Err(kube::Error::Api(status)) => status.code,
        Err(other) => panic!("no answer: {other}"),
    }
}

/// The shared control plane with the CRD: a namespace of the test's own, and the QodSessions
/// API (untyped, so anything can be sent) in it.
async fn cluster(test: &str) -> (Client, String, Api<DynamicObject>) {
    let Cluster {
        client, namespace, ..
    } = Cluster::start(test).await;
    let api = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::erase::<QodSession>(&()),
    );
    (client, namespace, api)
}

/// Control characters pass `^[^@\s]+@[^@\s]+$` (`\s` is whitespace only), so the identifier
/// reaches the provider as the user wrote it.
#[tokio::test]
async fn control_characters_in_the_network_access_identifier_are_refused() {
    let (_, _, api) = cluster("schema-nai").await;
    let mut accepted = Vec::new();
    for (index, identifier) in [
        "user@exa\u{0}mple.com",
        "user\u{202e}@example.com",
        "us\u{200b}er@example.com",
        "user@example.com\u{7}",
    ]
    .into_iter()
    .enumerate()
    {
        let mut spec = valid_spec();
        spec["device"] = json!({ "networkAccessIdentifier": identifier });
        let object: DynamicObject =
            serde_json::from_value(manifest(&format!("nai-{index}"), spec)).unwrap();
        if api.create(&PostParams::default(), &object).await.is_ok() {
            accepted.push(format!("{identifier:?}"));
        }
    }
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
}

#[tokio::test]
async fn hostile_manifests_are_refused_by_the_schema() {
    let (client, namespace, api) = cluster("schema-hostile").await;
    let with = |pointer: &str, value: Value| {
        let mut spec = valid_spec();
        match spec.pointer_mut(pointer) {
            Some(slot) => *slot = value,
            None => {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                spec.pointer_mut(parent).unwrap()[key] = value;
            }
        }
        spec
    };
    let megabyte = "9".repeat(1 << 20);
    let cases: Vec<(&str, Value)> = vec![
        (
            "a 1 MiB phone number",
            with("/device/phoneNumber", json!(format!("+{megabyte}"))),
        ),
        (
            "a 1 MiB profile",
            with("/qosProfile", json!(megabyte.clone())),
        ),
        (
            "a 257-character profile",
            with("/qosProfile", json!("Q".repeat(257))),
        ),
        (
            "a 64 KiB network access identifier",
            with(
                "/device/networkAccessIdentifier",
                json!(format!("{}@example.com", "u".repeat(65536))),
            ),
        ),
        (
            "fullwidth digits in the phone number",
            with(
                "/device/phoneNumber",
                json!("+３６７２１６０１２３４５６７"),
            ),
        ),
        (
            "a right-to-left override in the phone number",
            with("/device/phoneNumber", json!("+36721601234\u{202e}567")),
        ),
        (
            "a newline after the phone number",
            with("/device/phoneNumber", json!("+36721601234567\n")),
        ),
        (
            "a zero-width space in the profile",
            with("/qosProfile", json!("QOS\u{200b}_L")),
        ),
        (
            "a Cyrillic O in the profile",
            with("/qosProfile", json!("Q\u{41e}S_L")),
        ),
        (
            "an emoji profile",
            with("/qosProfile", json!("QOS_\u{1f525}")),
        ),
        (
            "a NUL in the profile",
            with("/qosProfile", json!("QOS_L\u{0}")),
        ),
        (
            "fullwidth digits in the server address",
            with("/applicationServer/ipv4Address", json!("１９８.51.100.7")),
        ),
        (
            "an address past 255",
            with("/applicationServer/ipv4Address", json!("999.51.100.7")),
        ),
        (
            "a negative prefix length",
            with("/applicationServer/ipv4Address", json!("198.51.100.0/-1")),
        ),
        (
            "an IPv6 address with a zone",
            with("/applicationServer/ipv6Address", json!("fe80::1%eth0\u{0}")),
        ),
        ("a negative duration", with("/duration", json!(-1))),
        ("a zero duration", with("/duration", json!(0))),
        (
            "a duration of 2^31",
            with("/duration", json!(2_147_483_648_u64)),
        ),
        ("a duration of i64::MAX", with("/duration", json!(i64::MAX))),
        ("a duration of u64::MAX", with("/duration", json!(u64::MAX))),
        ("a duration of 1e308", with("/duration", json!(1e308))),
        ("a fractional duration", with("/duration", json!(600.5))),
        ("a duration as a string", with("/duration", json!("600"))),
        ("a duration of \"NaN\"", with("/duration", json!("NaN"))),
        (
            "a duration of \"Infinity\"",
            with("/duration", json!("Infinity")),
        ),
        ("a duration of true", with("/duration", json!(true))),
        ("a duration of null", with("/duration", Value::Null)),
        ("a port of -1", with("/devicePorts", json!({"ports": [-1]}))),
        (
            "a port of 65536",
            with("/devicePorts", json!({"ports": [65536]})),
        ),
        (
            "a port of 1e10",
            with("/devicePorts", json!({"ports": [1e10]})),
        ),
        (
            "a fractional port",
            with("/devicePorts", json!({"ports": [5060.5]})),
        ),
        (
            "1025 ports",
            with("/devicePorts", json!({"ports": vec![5060; 1025]})),
        ),
        (
            "a range from -5",
            with(
                "/applicationServerPorts",
                json!({"ranges": [{"from": -5, "to": 10}]}),
            ),
        ),
        (
            "a public port of 70000",
            with(
                "/device/ipv4Address",
                json!({"publicAddress": "203.0.113.10", "publicPort": 70000}),
            ),
        ),
        ("autoExtend as a string", with("/autoExtend", json!("yes"))),
        (
            "an object for the phone number",
            with("/device/phoneNumber", json!({"e164": "+36721601234567"})),
        ),
        (
            "the phone number 100 levels deep",
            with("/device/phoneNumber", nested(100)),
        ),
        (
            "an array for the device",
            with("/device", json!(["+36721601234567"])),
        ),
        ("a spec that is a string", json!("QOS_L for everyone")),
        ("a deeply nested device", with("/device", nested(100))),
    ];
    let mut accepted = Vec::new();
    let mut codes = std::collections::BTreeMap::<u16, u32>::new();
    for (index, (what, spec)) in cases.iter().enumerate() {
        let object: DynamicObject =
            serde_json::from_value(manifest(&format!("hostile-{index}"), spec.clone())).unwrap();
        let code = match api.create(&PostParams::default(), &object).await {
            Ok(_) => 201,
            Err(kube::Error::Api(status)) => status.code,
            Err(other) => panic!("{what}: no answer: {other}"),
        };
        *codes.entry(code).or_default() += 1;
        if !matches!(code, 400 | 413 | 422) {
            accepted.push(format!("{what}: {code}"));
        }
    }

    // Literals JSON itself does not allow, and nesting deeper than any decoder should follow.
    let raw = |duration: &str| {
        manifest("raw", valid_spec())
            .to_string()
            .replace("\"duration\":600", &format!("\"duration\":{duration}"))
    };
    let deep_unknown = {
        let mut text = manifest("deep", valid_spec()).to_string();
        let depth = 100_000;
        text.insert_str(
            text.len() - 2,
            &format!(",\"x\":{}1{}", "[".repeat(depth), "]".repeat(depth)),
        );
        text
    };
    for (what, body) in [
        ("duration NaN", raw("NaN")),
        ("duration Infinity", raw("Infinity")),
        ("duration -Infinity", raw("-Infinity")),
        ("duration 1e999", raw("1e999")),
        ("duration 0x258", raw("0x258")),
        ("duration 00600", raw("00600")),
        ("a 100 000-deep array in an unknown field", deep_unknown),
    ] {
        assert!(
            body.contains("duration") || what.contains("deep"),
            "{what}: {body:.200}"
        );
        let code = post_raw(&client, &namespace, body).await;
        *codes.entry(code).or_default() += 1;
        if !matches!(code, 400 | 413 | 422) {
            accepted.push(format!("{what}: {code}"));
        }
    }
    println!("hostile manifests: answers by status {codes:?}");
    assert!(
        accepted.is_empty(),
        "hostile manifests not refused:\n{}",
        accepted.join("\n")
    );

    // Nothing was stored, and the API server still takes a valid manifest.
    assert!(
        api.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let object: DynamicObject = serde_json::from_value(manifest("fine", valid_spec())).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

/// A provider manifest of `kind` named `name` (namespaced when `namespace` is given).
fn provider(kind: &str, name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "qod.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }))
    .unwrap()
}

/// Bad QodProvider and ClusterQodProvider manifests are refused by the API server, and the
/// message names the field (or the rule's own words, which name it).
#[tokio::test]
async fn bad_provider_manifests_are_refused_naming_the_field() {
    let (client, namespace, _) = cluster("schema-providers").await;
    let namespaced = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::erase::<QodProvider>(&()),
    );
    let clustered =
        Api::<DynamicObject>::all_with(client, &ApiResource::erase::<ClusterQodProvider>(&()));
    let secret = json!({"name": "telco", "key": "client-secret"});
    let oauth2 = json!({"tokenUrl": "https://auth.telco.example/token", "clientId": "app", "clientSecretSecretRef": secret});
    let camara = |auth: Value| json!({"url": "https://api.telco.example/quality-on-demand/v1", "auth": auth});
    let nac =
        json!({"url": "https://nac.example", "apiKeySecretRef": {"name": "nac", "key": "api-key"}});
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "both camara and networkAsCode",
            json!({"camara": camara(json!({"oauth2": oauth2})), "networkAsCode": nac}),
            "spec needs exactly one of camara or networkAsCode",
        ),
        (
            "neither camara nor networkAsCode",
            json!({"maxSessions": 10}),
            "spec needs exactly one of camara or networkAsCode",
        ),
        (
            "both auth methods",
            json!({"camara": camara(json!({"oauth2": oauth2, "bearerTokenSecretRef": secret}))}),
            "auth needs exactly one of oauth2 or bearerTokenSecretRef",
        ),
        (
            "an empty auth",
            json!({"camara": camara(json!({}))}),
            "auth needs exactly one of oauth2 or bearerTokenSecretRef",
        ),
        (
            "maxSessions 0",
            json!({"networkAsCode": nac, "maxSessions": 0}),
            "spec.maxSessions",
        ),
        (
            "an unknown CAMARA version",
            json!({"camara": {"url": "https://api.telco.example/qod/v2", "version": "v2"}}),
            "spec.camara.version",
        ),
        (
            "credentials in the URL",
            json!({"camara": {"url": "https://user:pass@api.telco.example/quality-on-demand/v1"}}),
            "spec.camara.url",
        ),
        (
            "a URL that is not http(s)",
            json!({"networkAsCode": {"url": "ftp://nac.example", "apiKeySecretRef": {"name": "nac", "key": "api-key"}}}),
            "spec.networkAsCode.url",
        ),
        (
            "a Secret name that Kubernetes would refuse",
            json!({"networkAsCode": {"url": "https://nac.example", "apiKeySecretRef": {"name": "NAC_KEY", "key": "api-key"}}}),
            "spec.networkAsCode.apiKeySecretRef.name",
        ),
        (
            "a Secret key with a slash",
            json!({"camara": camara(json!({"bearerTokenSecretRef": {"name": "telco", "key": "../token"}}))}),
            "spec.camara.auth.bearerTokenSecretRef.key",
        ),
        (
            "an OAuth2 token URL with a query",
            json!({"camara": camara(json!({"oauth2": {"tokenUrl": "https://auth.telco.example/token?secret=1", "clientId": "app", "clientSecretSecretRef": secret}}))}),
            "spec.camara.auth.oauth2.tokenUrl",
        ),
        (
            "an OAuth2 client without a secret",
            json!({"camara": camara(json!({"oauth2": {"tokenUrl": "https://auth.telco.example/token", "clientId": "app"}}))}),
            "spec.camara.auth.oauth2.clientSecretSecretRef",
        ),
    ];
    let mut wrong = Vec::new();
    for (index, (what, spec, expected)) in cases.iter().enumerate() {
        for (kind, api) in [
            ("QodProvider", &namespaced),
            ("ClusterQodProvider", &clustered),
        ] {
            let name = format!("{namespace}-bad-{index}");
            match api
                .create(&PostParams::default(), &provider(kind, &name, spec.clone()))
                .await
            {
                Ok(_) => wrong.push(format!("{kind} with {what}: accepted")),
                Err(kube::Error::Api(status)) if status.message.contains(expected) => {}
                Err(other) => wrong.push(format!("{kind} with {what}: {other}")),
            }
        }
    }

    let selector_cases = [
        (
            "an unknown operator",
            json!({"matchExpressions": [{"key": "team", "operator": "Equals", "values": ["media"]}]}),
        ),
        (
            "In without values",
            json!({"matchExpressions": [{"key": "team", "operator": "In"}]}),
        ),
        (
            "Exists with values",
            json!({"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["x"]}]}),
        ),
    ];
    for (index, (what, selector)) in selector_cases.iter().enumerate() {
        let spec = json!({"networkAsCode": nac, "namespaceSelector": selector});
        let name = format!("{namespace}-selector-{index}");
        match clustered
            .create(
                &PostParams::default(),
                &provider("ClusterQodProvider", &name, spec),
            )
            .await
        {
            Ok(_) => wrong.push(format!("namespaceSelector with {what}: accepted")),
            Err(kube::Error::Api(status))
                if status.message.contains("spec.namespaceSelector")
                    && status
                        .message
                        .contains("operator must be In, NotIn, Exists or DoesNotExist") => {}
            Err(other) => wrong.push(format!("namespaceSelector with {what}: {other}")),
        }
    }
    // A QodProvider has no namespaceSelector: the API server drops the unknown field.
    let spec = json!({"networkAsCode": nac, "namespaceSelector": {}});
    let stored = namespaced
        .create(
            &PostParams::default(),
            &provider("QodProvider", "no-selector", spec),
        )
        .await
        .unwrap();
    assert!(
        stored.data["spec"].get("namespaceSelector").is_none(),
        "{:?}",
        stored.data
    );
    assert!(
        wrong.is_empty(),
        "not refused as expected:\n{}",
        wrong.join("\n")
    );

    // The example is accepted, and the defaults are applied.
    let name = format!("{namespace}-telco-a");
    let spec = json!({
        "camara": {"url": "https://api.telco-a.example/quality-on-demand/v1", "auth": {"oauth2": oauth2}},
        "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["media"]}]},
        "maxSessions": 200,
    });
    let stored = clustered
        .create(
            &PostParams::default(),
            &provider("ClusterQodProvider", &name, spec),
        )
        .await
        .unwrap();
    assert_eq!(stored.data["spec"]["camara"]["version"], "v1", "defaulted");
    clustered.delete(&name, &Default::default()).await.unwrap();
}

#[tokio::test]
async fn a_provider_ref_names_a_kind_and_a_valid_name() {
    let (_, _, api) = cluster("schema-provider-ref").await;
    let mut wrong = Vec::new();
    for (index, (reference, expected)) in [
        (
            json!({"kind": "Issuer", "name": "telco-a"}),
            "spec.providerRef.kind",
        ),
        (
            json!({"kind": "QodProvider", "name": "Telco_A"}),
            "spec.providerRef.name",
        ),
        (
            json!({"kind": "QodProvider", "name": "a".repeat(254)}),
            "spec.providerRef.name",
        ),
        (
            json!({"kind": "ClusterQodProvider"}),
            "spec.providerRef.name",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut spec = valid_spec();
        spec["providerRef"] = reference.clone();
        let object: DynamicObject =
            serde_json::from_value(manifest(&format!("ref-{index}"), spec)).unwrap();
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => wrong.push(format!("{reference}: accepted")),
            Err(kube::Error::Api(status)) if status.message.contains(expected) => {}
            Err(other) => wrong.push(format!("{reference}: {other}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "not refused as expected:\n{}",
        wrong.join("\n")
    );
    let mut spec = valid_spec();
    spec["providerRef"] = json!({"kind": "ClusterQodProvider", "name": "telco-a"});
    let object: DynamicObject = serde_json::from_value(manifest("ref-fine", spec)).unwrap();
    let stored = api.create(&PostParams::default(), &object).await.unwrap();
    assert_eq!(stored.data["spec"]["providerRef"]["name"], "telco-a");
}
