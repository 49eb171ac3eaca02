//! The resource's schema: the committed CRD equals the generated one, and the CEL rules refuse
//! what the API server must refuse (checked offline with kube's CEL evaluator).

use kube::core::cel::validate_cel_schema;
use serde_json::{Value, json};

use super::*;

#[test]
fn committed_crds_match_the_generated_ones() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/crds");
    let mut expected = Vec::new();
    for crd in crds() {
        let generated = crd_yaml(&crd).expect("CRD serialises");
        let file = format!("{}.yaml", crd.metadata.name.expect("a CRD has a name"));
        let path = format!("{dir}/{file}");
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{path}: {e}; run `cargo run -- crd --out-dir deploy/crds`")
        });
        assert!(
            committed == generated,
            "{path} is out of date: run `cargo run -- crd --out-dir deploy/crds`"
        );
        expected.push(file);
    }
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("deploy/crds exists")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .collect();
    files.sort_unstable();
    expected.sort_unstable();
    assert_eq!(
        files, expected,
        "deploy/crds holds exactly one file per CRD"
    );
}

#[test]
fn crd_prints_every_crd_as_one_stream() {
    let stream = crds_yaml().expect("CRDs serialise");
    let names: Vec<String> = stream
        .split("---\n")
        .map(|document| {
            let crd: CustomResourceDefinition =
                serde_saphyr::from_str(document).expect("each document is a CRD");
            crd.metadata.name.expect("named")
        })
        .collect();
    assert_eq!(
        names,
        [
            "qodsessions.qod.dev",
            "qodproviders.qod.dev",
            "clusterqodproviders.qod.dev",
            "qosprofiles.qod.dev"
        ]
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
        [
            "Profile", "Device", "QoS", "Info", "Expires", "Provider", "Age"
        ]
    );
}

/// The issue's example of a ClusterQodProvider, and a namespaced NaC provider.
const CLUSTER_PROVIDER: &str = r#"
apiVersion: qod.dev/v1alpha1
kind: ClusterQodProvider
metadata: { name: telco-a }
spec:
  camara:
    url: https://api.telco-a.example/quality-on-demand/v1
    version: v0.11
    auth:
      oauth2: { tokenUrl: "https://auth.telco-a.example/token", clientId: my-app, clientSecretSecretRef: { name: telco-a, key: client-secret } }
  namespaceSelector: { matchLabels: { team: media } }
  maxSessions: 200
status:
  conditions:
    - { type: Ready, status: "True", reason: Accepted, message: "token obtained", lastTransitionTime: "2026-01-01T00:00:00Z" }
  sessions: 17
  observedGeneration: 3
"#;

#[test]
fn the_issues_provider_example_reads_and_writes_unchanged() {
    let provider: ClusterQodProvider = serde_saphyr::from_str(CLUSTER_PROVIDER).unwrap();
    let camara = provider.spec.provider.camara.as_ref().expect("camara");
    assert_eq!(camara.version, provider::CamaraVersion::V0_11);
    let oauth = camara
        .auth
        .as_ref()
        .and_then(|a| a.oauth2.as_ref())
        .expect("oauth2");
    assert_eq!(oauth.client_secret_secret_ref.key, "client-secret");
    assert_eq!(provider.spec.provider.max_sessions, Some(200));
    assert_eq!(
        provider
            .spec
            .namespace_selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref()),
        Some(&[("team".to_owned(), "media".to_owned())].into())
    );
    let status = provider.status.as_ref().expect("status");
    assert_eq!(
        (status.sessions, status.observed_generation),
        (Some(17), Some(3))
    );

    let written = serde_json::to_value(&provider).unwrap();
    let original: Value = serde_saphyr::from_str(CLUSTER_PROVIDER).unwrap();
    assert_eq!(written["spec"], original["spec"]);
    assert_eq!(written["status"], original["status"]);
    let again: ClusterQodProvider = serde_json::from_value(written).unwrap();
    assert_eq!((again.spec, again.status), (provider.spec, provider.status));

    let nac: QodProvider = serde_json::from_value(json!({
        "apiVersion": "qod.dev/v1alpha1", "kind": "QodProvider",
        "metadata": {"name": "nac", "namespace": "media"},
        "spec": {"networkAsCode": {"url": "https://nac.example", "apiKeySecretRef": {"name": "nac", "key": "api-key"}}}
    }))
    .unwrap();
    let spec = nac
        .spec
        .provider
        .network_as_code
        .as_ref()
        .expect("networkAsCode");
    assert_eq!(spec.rapid_api_host, None);
    assert!(nac.spec.provider.camara.is_none());
}

#[test]
fn a_session_names_its_provider_or_none() {
    let spec = json!({
        "device": {"phoneNumber": "+36721601234567"},
        "applicationServer": {"ipv4Address": "198.51.100.7"},
        "qosProfile": "QOS_L",
        "duration": 600,
    });
    let without: QodSessionSpec = serde_json::from_value(spec.clone()).unwrap();
    assert_eq!(without.provider_ref, None);
    assert_eq!(
        serde_json::to_value(&without).unwrap(),
        spec,
        "nothing added"
    );

    let mut with = spec;
    with["providerRef"] = json!({"kind": "ClusterQodProvider", "name": "telco-a"});
    let parsed: QodSessionSpec = serde_json::from_value(with.clone()).unwrap();
    assert_eq!(
        parsed.provider_ref,
        Some(ProviderRef {
            kind: ProviderKind::ClusterQodProvider,
            name: "telco-a".into()
        })
    );
    assert_eq!(serde_json::to_value(&parsed).unwrap(), with);
    with["providerRef"]["kind"] = json!("Issuer");
    assert!(serde_json::from_value::<QodSessionSpec>(with).is_err());
}

#[test]
fn a_provider_names_exactly_one_api_and_one_auth_method() {
    let camara = json!({"url": "https://qod.example/quality-on-demand/v1"});
    let nac = json!({"url": "https://nac.example", "apiKeySecretRef": {"name": "n", "key": "k"}});
    assert_eq!(
        cel_message::<ProviderSpec>(json!({ "camara": camara })),
        None
    );
    assert_eq!(
        cel_message::<ProviderSpec>(json!({ "networkAsCode": nac })),
        None
    );
    for spec in [json!({}), json!({ "camara": camara, "networkAsCode": nac })] {
        let message = cel_message::<ProviderSpec>(spec).expect("refused");
        assert!(
            message.contains("spec needs exactly one of camara or networkAsCode"),
            "{message}"
        );
    }

    let secret = json!({"name": "s", "key": "k"});
    let oauth2 = json!({"tokenUrl": "https://auth.example/token", "clientId": "c", "clientSecretSecretRef": secret});
    use provider::CamaraProviderAuth;
    assert_eq!(
        cel_message::<CamaraProviderAuth>(json!({ "oauth2": oauth2 })),
        None
    );
    assert_eq!(
        cel_message::<CamaraProviderAuth>(json!({ "bearerTokenSecretRef": secret })),
        None
    );
    for auth in [
        json!({}),
        json!({ "oauth2": oauth2, "bearerTokenSecretRef": secret }),
    ] {
        let message = cel_message::<CamaraProviderAuth>(auth).expect("refused");
        assert!(
            message.contains("auth needs exactly one of oauth2 or bearerTokenSecretRef"),
            "{message}"
        );
    }
}

#[test]
fn the_provider_crds_carry_names_scope_columns_and_field_rules() {
    for (crd, scope, short) in [
        (QodProvider::crd(), "Namespaced", "qodp"),
        (ClusterQodProvider::crd(), "Cluster", "cqodp"),
    ] {
        let crd = serde_json::to_value(crd).expect("CRD as JSON");
        assert_eq!(crd["spec"]["scope"], scope);
        assert_eq!(crd["spec"]["names"]["shortNames"], json!([short]));
        // Not in category `qod`: `kubectl get qod` expands a category before a short name,
        // so it would list providers with the sessions, and `kubectl delete qod --all` would
        // delete every ClusterQodProvider.
        assert!(crd["spec"]["names"]["categories"].is_null(), "{crd}");
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], json!({}));
        let columns: Vec<(&str, &str)> = version["additionalPrinterColumns"]
            .as_array()
            .expect("printer columns")
            .iter()
            .filter_map(|c| Some((c["name"].as_str()?, c["jsonPath"].as_str()?)))
            .collect();
        assert_eq!(
            columns,
            [
                ("CAMARA", ".spec.camara.url"),
                ("NaC", ".spec.networkAsCode.url"),
                ("Version", ".spec.camara.version"),
                ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
                ("Sessions", ".status.sessions"),
                ("Age", ".metadata.creationTimestamp"),
            ]
        );
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(spec["properties"]["maxSessions"]["minimum"], json!(1.0));
        assert_eq!(
            spec["properties"]["camara"]["properties"]["version"]["default"],
            json!("v1")
        );
        assert_eq!(
            spec["x-kubernetes-validations"][0]["rule"],
            json!("has(self.camara) != has(self.networkAsCode)"),
            "the shared spec's rule survives flattening"
        );
        assert_eq!(
            spec["properties"]["namespaceSelector"].is_object(),
            scope == "Cluster",
            "only a ClusterQodProvider selects namespaces"
        );
    }
}

#[test]
fn a_namespace_selector_takes_only_the_operators_kubernetes_knows() {
    let spec = |expressions: Value| {
        json!({
            "camara": {"url": "https://qod.example/quality-on-demand/v1"},
            "namespaceSelector": {"matchExpressions": expressions},
        })
    };
    for fine in [
        json!([{"key": "team", "operator": "In", "values": ["media"]}]),
        json!([{"key": "team", "operator": "NotIn", "values": ["a", "b"]}]),
        json!([{"key": "team", "operator": "Exists"}, {"key": "x", "operator": "DoesNotExist"}]),
    ] {
        assert_eq!(
            cel_message::<ClusterQodProviderSpec>(spec(fine.clone())),
            None,
            "{fine}"
        );
    }
    for bad in [
        json!([{"key": "team", "operator": "Equals", "values": ["media"]}]),
        json!([{"key": "team", "operator": "In"}]),
        json!([{"key": "team", "operator": "In", "values": []}]),
        json!([{"key": "team", "operator": "Exists", "values": ["media"]}]),
    ] {
        let message = cel_message::<ClusterQodProviderSpec>(spec(bad.clone())).expect("refused");
        assert!(
            message.contains("namespaceSelector.matchExpressions: operator must be"),
            "{bad}: {message}"
        );
    }
}
