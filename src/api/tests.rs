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
    // `kubectl get qod` shows the priority-0 columns, `-o wide` all of them.
    let columns: Vec<(&str, i64)> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?, c["priority"].as_i64().unwrap_or(0))))
        .collect();
    assert_eq!(
        columns,
        [
            ("Profile", 0),
            ("Device", 0),
            ("QoS", 0),
            ("Info", 0),
            ("Ready", 1),
            ("Reason", 1),
            ("Expires", 0),
            ("Duration", 1),
            ("Provider", 1),
            ("Session", 1),
            ("Age", 0),
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
        parsed.provider_ref.as_deref(),
        Some(&ProviderRef {
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
        let columns: Vec<(&str, &str, i64)> = version["additionalPrinterColumns"]
            .as_array()
            .expect("printer columns")
            .iter()
            .filter_map(|c| {
                Some((
                    c["name"].as_str()?,
                    c["jsonPath"].as_str()?,
                    c["priority"].as_i64().unwrap_or(0),
                ))
            })
            .collect();
        assert_eq!(
            columns,
            [
                ("CAMARA", ".spec.camara.url", 0),
                ("NaC", ".spec.networkAsCode.url", 0),
                ("Version", ".spec.camara.version", 1),
                (
                    "Ready",
                    ".status.conditions[?(@.type==\"Ready\")].status",
                    0
                ),
                (
                    "Reason",
                    ".status.conditions[?(@.type==\"Ready\")].reason",
                    1
                ),
                ("Sessions", ".status.sessions", 0),
                ("Max-Sessions", ".spec.maxSessions", 1),
                ("Age", ".metadata.creationTimestamp", 0),
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

#[test]
fn the_profile_crd_shows_jitter_and_priority_only_wide() {
    let crd = serde_json::to_value(QosProfile::crd()).expect("CRD as JSON");
    let wide: Vec<(&str, &str)> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .filter(|c| c["priority"].as_i64().unwrap_or(0) > 0)
        .filter_map(|c| Some((c["name"].as_str()?, c["jsonPath"].as_str()?)))
        .collect();
    assert_eq!(
        wide,
        [("Jitter", ".spec.jitter"), ("Priority", ".spec.priority")]
    );
}

#[test]
fn joining_makes_one_line_of_each_paragraph() {
    use super::descriptions::join_paragraphs;
    assert_eq!(join_paragraphs("One line."), "One line.");
    assert_eq!(join_paragraphs(""), "");
    assert_eq!(
        join_paragraphs(
            "Requested session length in seconds, 1 to 86400 (24 hours, the most\nevery CAMARA version accepts)."
        ),
        "Requested session length in seconds, 1 to 86400 (24 hours, the most every CAMARA version accepts)."
    );
    // Paragraph breaks stay, however many blank lines; trailing spaces go.
    assert_eq!(
        join_paragraphs(
            "First paragraph, \nstill the first.\n\nSecond one\ncontinued.\n\n\nThird."
        ),
        "First paragraph, still the first.\n\nSecond one continued.\n\n\nThird."
    );
    // A list item starts a line; its continuation lines join it.
    assert_eq!(
        join_paragraphs(
            "Either:\n- a QodProvider of this\n  namespace, or\n* a ClusterQodProvider\n+ plus\n1. one\n  more\n2) two\nafter."
        ),
        "Either:\n- a QodProvider of this namespace, or\n* a ClusterQodProvider\n+ plus\n1. one more\n2) two after."
    );
    // Nested items keep their indentation.
    assert_eq!(
        join_paragraphs("- outer\n  - inner\n    wrapped"),
        "- outer\n  - inner wrapped"
    );
    // Not list items: a number or dash that is part of the sentence.
    assert_eq!(
        join_paragraphs("from 1 to\n86400 seconds and\n-1 never\n2.5 times"),
        "from 1 to 86400 seconds and -1 never 2.5 times"
    );
    // Fenced code stays as written.
    assert_eq!(
        join_paragraphs("Example:\n```\nspec:\n  duration: 60\n```\nas\nabove."),
        "Example:\n```\nspec:\n  duration: 60\n```\nas above."
    );
}

/// Every `description` string anywhere under `value`, with its JSON path.
fn descriptions<'a>(value: &'a Value, path: String, found: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(text)) = map.get("description") {
                found.push((path.clone(), text));
            }
            for (key, nested) in map {
                descriptions(nested, format!("{path}.{key}"), found);
            }
        }
        Value::Array(items) => {
            for (i, nested) in items.iter().enumerate() {
                descriptions(nested, format!("{path}[{i}]"), found);
            }
        }
        _ => {}
    }
}

#[test]
fn no_description_breaks_a_line_inside_a_sentence() {
    let mut checked = 0;
    for crd in crds() {
        let name = crd.metadata.name.clone().expect("named");
        let crd = serde_json::to_value(crd).expect("CRD as JSON");
        let mut found = Vec::new();
        descriptions(&crd["spec"], String::new(), &mut found);
        assert!(found.len() > 10, "{name} has its field descriptions");
        for (path, text) in found {
            checked += 1;
            // A newline is fine before or after a blank line, and before a list item.
            let lines: Vec<&str> = text.split('\n').collect();
            for pair in lines.windows(2) {
                let next = pair[1].trim_start();
                let intended = pair[0].trim().is_empty()
                    || next.is_empty()
                    || next.starts_with("- ")
                    || next.starts_with("* ");
                assert!(
                    intended,
                    "{name} {path}: a line break inside a sentence:\n{text}"
                );
            }
        }
    }
    assert!(checked > 100, "only {checked} descriptions found");
}

#[test]
fn the_crds_join_what_the_doc_comments_wrap() {
    let duration = |crd: &CustomResourceDefinition| {
        serde_json::to_value(crd).expect("CRD as JSON")["spec"]["versions"][0]["schema"]
            ["openAPIV3Schema"]["properties"]["spec"]["properties"]["duration"]["description"]
            .as_str()
            .expect("duration is described")
            .to_owned()
    };
    let wrapped = duration(&QodSession::crd());
    assert!(
        wrapped.contains('\n'),
        "the doc comment is wrapped: {wrapped:?}"
    );
    let joined = crds()
        .iter()
        .find(|crd| crd.spec.names.kind == "QodSession")
        .map(duration)
        .expect("QodSession among the CRDs");
    assert_eq!(joined, wrapped.replace('\n', " "));
}

/// Every session is cached (kube's store holds it in an `Arc`): the object and the Arc's two
/// counters fit jemalloc's 896-byte size class; 8 bytes more and each costs 1 KiB. Boxing parts
/// most sessions leave out and `Box<str>` for strings keep it there (BENCHMARKS.md, "Fifth
/// look" and "Seventh look").
#[test]
fn a_cached_session_fits_the_allocators_896_byte_class() {
    let arc_counters = 2 * std::mem::size_of::<usize>();
    let size = std::mem::size_of::<QodSession>() + arc_counters;
    assert!(size <= 896, "Arc<QodSession> takes {size} bytes");
}
