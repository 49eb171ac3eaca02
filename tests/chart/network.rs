//! The NetworkPolicy, as a security scanner reads it: on by default, ingress to the webhook and
//! probe/metrics ports only, egress left alone unless rules are given.

use serde_json::{Value, json};

use crate::harness::*;

fn with(extra: &[&str]) -> Rendered {
    let mut args = MINIMAL.to_vec();
    args.extend_from_slice(extra);
    render(&args)
}

fn policy(r: &Rendered) -> &Value {
    r.get("NetworkPolicy", FULLNAME)
}

/// The operator pods' labels, as the Deployment's template gives them.
fn operator_pod_labels(r: &Rendered) -> &Value {
    &r.get("Deployment", FULLNAME)["spec"]["template"]["metadata"]["labels"]
}

/// The operator container's port names.
fn container_ports(r: &Rendered) -> Vec<String> {
    r.operator()["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str(p, "/name").to_string())
        .collect()
}

#[test]
fn by_default_only_the_webhook_and_metrics_ports_take_traffic_and_egress_is_left_alone() {
    let r = with(&[]);
    let np = policy(&r);
    assert_eq!(np["metadata"]["namespace"], NAMESPACE);
    // It selects the operator pods, and only them.
    let selector = np["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .unwrap();
    let pod = operator_pod_labels(&r);
    for (key, value) in selector {
        assert_eq!(&pod[key], value, "the operator pods carry {key}");
    }
    assert_eq!(selector["app.kubernetes.io/component"], "operator");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress"]));
    assert!(np["spec"]["egress"].is_null(), "{np:#}");
    assert_eq!(
        np["spec"]["ingress"],
        json!([
            {"ports": [{"port": "webhook", "protocol": "TCP"}]},
            {"ports": [{"port": "http-metrics", "protocol": "TCP"}],
             "from": [{"namespaceSelector": {}}]},
        ]),
        "the webhook from anywhere, metrics from the cluster"
    );
    // The named ports are the container's own, so the rules open exactly those.
    assert_eq!(container_ports(&r), ["webhook", "http-metrics"]);
    // The simulator does not change that unless the webhook's peers are narrowed.
    let sim = render(&["--set", "simulator.enabled=true"]);
    assert_eq!(policy(&sim)["spec"], np["spec"]);
}

#[test]
fn peers_narrow_ingress_and_egress_rules_restrict_egress_with_dns() {
    let r = with(&[
        "-f",
        &fixture("networkpolicy.yaml"),
        "--set",
        "simulator.enabled=true",
    ]);
    let np = policy(&r);
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let simulator = json!({"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "qod-operator",
        "app.kubernetes.io/instance": "qod",
        "app.kubernetes.io/component": "simulator",
    }}});
    // The simulator's pod is the one the Deployment makes.
    let sim_pod = &r.get("Deployment", "qod-qod-operator-simulator")["spec"]["template"]["metadata"]
        ["labels"];
    for (key, value) in simulator["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&sim_pod[key], value);
    }
    assert_eq!(
        np["spec"]["ingress"],
        json!([
            {"ports": [{"port": "webhook", "protocol": "TCP"}],
             "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                {"ipBlock": {"cidr": "203.0.113.0/24"}},
                // The simulator notifies the webhook too.
                simulator,
             ]},
            {"ports": [{"port": "http-metrics", "protocol": "TCP"}],
             "from": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
             }]},
        ])
    );
    assert_eq!(
        np["spec"]["egress"],
        json!([
            // The given rules, as given...
            {"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}],
             "ports": [{"port": 443, "protocol": "TCP"}]},
            {"to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}],
             "ports": [{"port": 443, "protocol": "TCP"}]},
            // ... DNS to where dnsTo says...
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
             "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]},
            // ... and the simulator the operator calls.
            {"ports": [{"port": 9091, "protocol": "TCP"}], "to": [simulator]},
        ])
    );

    // Without dnsTo, DNS may go anywhere; without the simulator, no rule for it.
    let r = with(&[
        "--set",
        "networkPolicy.egress[0].to[0].ipBlock.cidr=10.96.0.1/32",
        "--set",
        "networkPolicy.egress[0].ports[0].port=443",
    ]);
    assert_eq!(
        policy(&r)["spec"]["egress"],
        json!([
            {"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}], "ports": [{"port": 443}]},
            {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        ])
    );
}

#[test]
fn the_policy_can_be_turned_off_and_bad_peers_are_refused() {
    let r = with(&["--set", "networkPolicy.enabled=false"]);
    assert!(r.of_kind("NetworkPolicy").is_empty(), "{:?}", r.names());

    let schema = "values don't meet the specifications of the schema";
    let mut args = MINIMAL.to_vec();
    args.extend_from_slice(&["--set", "networkPolicy.webhookFrom[0].podSelektor.app=x"]);
    let error = refused(&args);
    assert!(
        error.contains(schema)
            && error.contains("/networkPolicy/webhookFrom/0")
            && error.contains("podSelektor"),
        "{error}"
    );
    let mut args = MINIMAL.to_vec();
    args.extend_from_slice(&["--set", "networkPolicy.egress[0].ports[0].protocol=ICMP"]);
    let error = refused(&args);
    assert!(
        error.contains(schema) && error.contains("/networkPolicy/egress/0/ports/0/protocol"),
        "{error}"
    );
}
