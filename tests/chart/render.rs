//! `helm template` with default and non-default values: what each object says.

use serde_json::{Value, json};

use crate::harness::*;

fn minimal() -> Rendered {
    render(MINIMAL)
}

fn with(extra: &[&str]) -> Rendered {
    let mut args = MINIMAL.to_vec();
    args.extend_from_slice(extra);
    render(&args)
}

/// What no variant of the chart may ever grant.
fn assert_never_overreaches(r: &Rendered) {
    for role in r
        .of_kind("ClusterRole")
        .into_iter()
        .chain(r.of_kind("Role"))
    {
        for (groups, resources, _, verbs) in rules(role) {
            for resource in &resources {
                assert!(
                    !["configmaps", "pods", "*"].contains(&resource.as_str()),
                    "{} grants {resource}",
                    str(role, "/metadata/name")
                );
                // Secrets only by name: a provider resource's keys, never a list or a watch.
                assert!(
                    resource != "secrets" || verbs == ["get"],
                    "{} grants {verbs:?} on secrets",
                    str(role, "/metadata/name")
                );
            }
            // The QosProfiles are the operator's own output: it removes one the provider no
            // longer lists. Nothing users write is ever deleted by the operator.
            let own_output = resources == ["qosprofiles"];
            for verb in &verbs {
                assert!(
                    (own_output && verb == "delete")
                        || ![
                            "update",
                            "delete",
                            "deletecollection",
                            "*",
                            "escalate",
                            "bind"
                        ]
                        .contains(&verb.as_str()),
                    "{} grants {verb} on {groups:?}/{resources:?}",
                    str(role, "/metadata/name")
                );
            }
        }
    }
}

#[test]
fn default_values_alone_are_refused_with_what_to_set() {
    let error = refused(&[]);
    assert!(
        error.contains("provider.url is required") && error.contains("simulator.enabled=true"),
        "{error}"
    );
}

#[test]
fn defaults_render_the_operator_with_a_secure_pod() {
    let r = minimal();
    assert_eq!(
        r.names(),
        [
            "ClusterRole/qod-qod-operator",
            "ClusterRole/qod-qod-operator-providers",
            "ClusterRoleBinding/qod-qod-operator",
            "ClusterRoleBinding/qod-qod-operator-providers",
            "Deployment/qod-qod-operator",
            "NetworkPolicy/qod-qod-operator",
            "PodDisruptionBudget/qod-qod-operator",
            "Role/qod-qod-operator-leader-election",
            "RoleBinding/qod-qod-operator-leader-election",
            "Secret/qod-qod-operator-hmac",
            "Service/qod-qod-operator-metrics",
            "Service/qod-qod-operator-webhook",
            "ServiceAccount/qod-qod-operator",
        ]
    );
    for object in &r.objects {
        if object["kind"] != "ClusterRole" && object["kind"] != "ClusterRoleBinding" {
            assert_eq!(object["metadata"]["namespace"], NAMESPACE, "{object}");
        }
    }
    let deployment = r.get("Deployment", FULLNAME);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], FULLNAME);
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    let c = r.operator();
    assert_eq!(c["image"], "qod-operator:0.1.0");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"], json!({"drop": ["ALL"]}));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(c["resources"]["requests"]["cpu"].is_string(), "{c}");
    assert!(c["resources"]["limits"]["memory"].is_string(), "{c}");

    assert_eq!(
        c["ports"],
        json!([
            {"name": "webhook", "containerPort": 8443, "protocol": "TCP"},
            {"name": "http-metrics", "containerPort": 8080, "protocol": "TCP"},
        ])
    );
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http-metrics"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "http-metrics"})
    );

    let env = &c["env"];
    assert_eq!(
        env[0],
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    );
    assert_eq!(
        env[1],
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    );
    assert_eq!(env[2], json!({"name": "RUST_LOG", "value": "info"}));
    assert_eq!(env.as_array().unwrap().len(), 3, "{env}");

    assert_eq!(
        r.args(),
        [
            "run",
            "--log-format=json",
            "--probe-listen=0.0.0.0:8080",
            "--webhook-listen=0.0.0.0:8443",
            "--webhook-public-url=https://qod-webhook.example.com",
            "--hmac-key-file=/etc/qod-operator/hmac/key",
            "--provider=camara",
            "--provider-url=https://qod.example.com/quality-on-demand/v1",
            "--camara-version=v1",
            "--resync-interval=5m",
            "--profile-refresh=10m",
            "--lease-name=qod-qod-operator",
        ]
    );

    // The HMAC key is a mounted file from the generated Secret; no provider Secret is needed.
    assert_eq!(
        c["volumeMounts"],
        json!([{"name": "hmac", "mountPath": "/etc/qod-operator/hmac", "readOnly": true}])
    );
    assert_eq!(
        pod["volumes"],
        json!([{"name": "hmac", "secret": {"secretName": "qod-qod-operator-hmac", "defaultMode": 0o440, "items": [{"key": "key", "path": "key"}]}}])
    );
    let key = str(r.get("Secret", "qod-qod-operator-hmac"), "/data/key");
    assert_eq!(key.len(), 88, "64 random characters, base64: {key}");

    // Spread over nodes, selecting exactly the operator pods.
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(
        pod["topologySpreadConstraints"],
        json!([{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": selector}}])
    );
    for (k, v) in selector.as_object().unwrap() {
        assert_eq!(&deployment["spec"]["template"]["metadata"]["labels"][k], v);
    }
    assert_eq!(selector["app.kubernetes.io/component"], "operator");
    assert_never_overreaches(&r);
}

#[test]
fn services_keep_the_webhook_apart_from_metrics() {
    let r = minimal();
    let selector = &r.get("Deployment", FULLNAME)["spec"]["selector"]["matchLabels"];
    let webhook = r.get("Service", "qod-qod-operator-webhook");
    assert_eq!(webhook["spec"]["type"], "ClusterIP");
    assert_eq!(
        webhook["spec"]["ports"],
        json!([{"name": "webhook", "port": 8443, "targetPort": "webhook", "protocol": "TCP"}])
    );
    let metrics = r.get("Service", "qod-qod-operator-metrics");
    assert_eq!(metrics["spec"]["type"], "ClusterIP");
    assert_eq!(
        metrics["spec"]["ports"],
        json!([{"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}])
    );
    assert_eq!(&webhook["spec"]["selector"], selector);
    assert_eq!(&metrics["spec"]["selector"], selector);

    let r = with(&["--set", "webhook.service.type=LoadBalancer"]);
    assert_eq!(
        r.get("Service", "qod-qod-operator-webhook")["spec"]["type"],
        "LoadBalancer"
    );
    assert_eq!(
        r.get("Service", "qod-qod-operator-metrics")["spec"]["type"],
        "ClusterIP"
    );
}

#[test]
fn cluster_rbac_grants_exactly_the_verbs_the_operator_uses() {
    let r = minimal();
    assert_eq!(
        rules(r.get("ClusterRole", FULLNAME)),
        [
            rule(
                &["qod.dev"],
                &["qodsessions"],
                &[],
                &["get", "list", "watch", "patch"]
            ),
            rule(&["qod.dev"], &["qodsessions/status"], &[], &["patch"]),
            rule(
                &["qod.dev"],
                &["qodproviders"],
                &[],
                &["get", "list", "watch", "patch"]
            ),
            rule(&["qod.dev"], &["qodproviders/status"], &[], &["patch"]),
            rule(&[""], &["secrets"], &[], &["get"]),
            rule(&[""], &["services"], &[], &["get", "list", "watch"]),
            rule(&["events.k8s.io"], &["events"], &[], &["create", "patch"]),
        ]
    );
    // Cluster-scoped kinds need a ClusterRole of their own, also with watchNamespace.
    assert_eq!(
        rules(r.get("ClusterRole", "qod-qod-operator-providers")),
        [
            rule(
                &["qod.dev"],
                &["clusterqodproviders"],
                &[],
                &["get", "list", "watch", "patch"]
            ),
            rule(
                &["qod.dev"],
                &["clusterqodproviders/status"],
                &[],
                &["patch"]
            ),
            rule(&[""], &["namespaces"], &[], &["list", "watch"]),
            rule(
                &["qod.dev"],
                &["qosprofiles"],
                &[],
                &["list", "create", "patch", "delete"]
            ),
        ]
    );
    assert_eq!(
        r.get("ClusterRoleBinding", "qod-qod-operator-providers")["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}])
    );
    assert!(
        r.find("Role", "qod-qod-operator-provider-secrets")
            .is_none(),
        "the ClusterRole reads Secrets in the release namespace already"
    );
    assert_never_overreaches(&r);
    let binding = r.get("ClusterRoleBinding", FULLNAME);
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}])
    );

    // kube-lease-manager 0.13 gets, creates and patches (strategic and apply) its Lease.
    let lease_role = r.get("Role", "qod-qod-operator-leader-election");
    assert_eq!(lease_role["metadata"]["namespace"], NAMESPACE);
    assert_eq!(
        rules(lease_role),
        [
            rule(&["coordination.k8s.io"], &["leases"], &[], &["create"]),
            rule(
                &["coordination.k8s.io"],
                &["leases"],
                &[FULLNAME],
                &["get", "patch"]
            ),
        ]
    );
    let binding = r.get("RoleBinding", "qod-qod-operator-leader-election");
    assert_eq!(
        binding["roleRef"]["name"],
        "qod-qod-operator-leader-election"
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}])
    );
    assert!(r.find("ClusterRole", "qod-qod-operator-crd").is_none());
}

#[test]
fn watch_namespace_and_install_crd_switch_the_rbac() {
    let r = with(&["--set", "watchNamespace=apps", "--set", "installCRD=true"]);
    assert!(r.find("ClusterRole", FULLNAME).is_none(), "{:?}", r.names());
    assert!(
        r.find("ClusterRoleBinding", FULLNAME).is_none(),
        "{:?}",
        r.names()
    );
    let role = r.get("Role", FULLNAME);
    assert_eq!(role["metadata"]["namespace"], "apps");
    assert_eq!(rules(role), rules(minimal().get("ClusterRole", FULLNAME)));
    assert_eq!(
        rules(r.get("ClusterRole", "qod-qod-operator-providers")),
        rules(minimal().get("ClusterRole", "qod-qod-operator-providers"))
    );
    // ClusterQodProviders' Secrets are in the release namespace, outside the Role in apps.
    let secrets = r.get("Role", "qod-qod-operator-provider-secrets");
    assert_eq!(secrets["metadata"]["namespace"], NAMESPACE);
    assert_eq!(rules(secrets), [rule(&[""], &["secrets"], &[], &["get"])]);
    assert_eq!(
        r.get("RoleBinding", "qod-qod-operator-provider-secrets")["roleRef"]["name"],
        "qod-qod-operator-provider-secrets"
    );
    let binding = r.get("RoleBinding", FULLNAME);
    assert_eq!(binding["metadata"]["namespace"], "apps");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["subjects"][0]["namespace"], NAMESPACE);

    assert_eq!(
        rules(r.get("ClusterRole", "qod-qod-operator-crd")),
        [
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                &[],
                &["create"]
            ),
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                &[
                    "qodsessions.qod.dev",
                    "qodproviders.qod.dev",
                    "clusterqodproviders.qod.dev",
                    "qosprofiles.qod.dev"
                ],
                &["patch", "list", "watch"]
            )
        ]
    );
    assert_eq!(
        r.get("ClusterRoleBinding", "qod-qod-operator-crd")["subjects"][0]["name"],
        FULLNAME
    );
    let args = r.args();
    assert!(args.contains(&"--namespace=apps".to_string()), "{args:?}");
    assert!(args.contains(&"--install-crd".to_string()), "{args:?}");
    assert_never_overreaches(&r);

    let r = with(&["--set", "rbac.create=false"]);
    assert!(
        r.of_kind("ClusterRole").is_empty() && r.of_kind("Role").is_empty(),
        "{:?}",
        r.names()
    );
    assert!(r.of_kind("ClusterRoleBinding").is_empty() && r.of_kind("RoleBinding").is_empty());
}

#[test]
fn disruption_budget_only_with_more_than_one_replica() {
    let pdb = minimal();
    let pdb = pdb.get("PodDisruptionBudget", FULLNAME);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        "operator"
    );
    let one = with(&["--set", "replicas=1"]);
    assert!(
        one.of_kind("PodDisruptionBudget").is_empty(),
        "{:?}",
        one.names()
    );
    assert_eq!(one.get("Deployment", FULLNAME)["spec"]["replicas"], 1);
    let three = with(&["--set", "replicas=3"]);
    assert_eq!(three.get("Deployment", FULLNAME)["spec"]["replicas"], 3);
    assert_eq!(three.of_kind("PodDisruptionBudget").len(), 1);
    let off = with(&["--set", "podDisruptionBudget.enabled=false"]);
    assert!(off.of_kind("PodDisruptionBudget").is_empty());
}

#[test]
fn leader_election_off_needs_one_replica_and_drops_the_lease_role() {
    let r = with(&[
        "--set",
        "replicas=1",
        "--set",
        "leaderElection.enabled=false",
    ]);
    assert!(
        r.find("Role", "qod-qod-operator-leader-election").is_none(),
        "{:?}",
        r.names()
    );
    let env = &r.operator()["env"];
    assert!(
        env.as_array()
            .unwrap()
            .contains(&json!({"name": "QOD_LEADER_ELECTION", "value": "false"})),
        "{env}"
    );
}

#[test]
fn simulator_objects_only_when_enabled_and_the_operator_points_at_it() {
    for r in [
        minimal(),
        render(&[
            "--set",
            "replicas=1",
            "--set",
            "provider.url=https://x.example/q",
            "--set",
            "webhook.publicUrl=https://h.example",
        ]),
    ] {
        assert!(r.find("Deployment", "qod-qod-operator-simulator").is_none());
        assert!(r.find("Service", "qod-qod-operator-simulator").is_none());
        assert!(
            r.find("ClusterQodProvider", "qod-qod-operator-simulator")
                .is_none()
        );
    }
    let r = render(&["--set", "simulator.enabled=true"]);
    assert_eq!(
        r.args(),
        [
            "run",
            "--log-format=json",
            "--probe-listen=0.0.0.0:8080",
            "--webhook-listen=0.0.0.0:8443",
            "--webhook-public-url=http://qod-qod-operator-webhook.qod-system.svc:8443",
            "--hmac-key-file=/etc/qod-operator/hmac/key",
            "--provider=camara",
            "--provider-url=http://qod-qod-operator-simulator:9091/quality-on-demand/v1",
            "--camara-version=v1",
            "--resync-interval=5m",
            "--profile-refresh=10m",
            "--lease-name=qod-qod-operator",
        ]
    );
    let sim = r.get("Deployment", "qod-qod-operator-simulator");
    assert_eq!(sim["spec"]["replicas"], 1);
    let c = container(sim);
    assert_eq!(
        strings(&c["args"]),
        [
            "simulator",
            "--log-format=json",
            "--listen=0.0.0.0:9091",
            "--public-url=http://qod-qod-operator-simulator.qod-system.svc:9091",
        ]
    );
    assert_eq!(c["image"], r.operator()["image"]);
    assert_eq!(c["securityContext"], r.operator()["securityContext"]);
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": 9091, "protocol": "TCP"}])
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/healthz", "port": "http"})
    );
    assert_eq!(
        sim["spec"]["template"]["spec"]["automountServiceAccountToken"],
        false
    );
    let svc = r.get("Service", "qod-qod-operator-simulator");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http", "port": 9091, "targetPort": "http", "protocol": "TCP"}])
    );
    assert_eq!(
        svc["spec"]["selector"],
        sim["spec"]["selector"]["matchLabels"]
    );
    // The simulator is also a provider resource, at its Service.
    assert_eq!(
        r.get("ClusterQodProvider", "qod-qod-operator-simulator")["spec"],
        json!({"camara": {
            "url": "http://qod-qod-operator-simulator.qod-system.svc:9091/quality-on-demand/v1",
            "version": "v1"
        }})
    );
    // The operator's Services never select the simulator pod, nor it theirs.
    let sim_labels = &sim["spec"]["template"]["metadata"]["labels"];
    let webhook_selector = &r.get("Service", "qod-qod-operator-webhook")["spec"]["selector"];
    assert_ne!(
        sim_labels["app.kubernetes.io/component"],
        webhook_selector["app.kubernetes.io/component"]
    );
    // The simulator replaces the provider settings, credentials included.
    let r = render(&[
        "--set",
        "simulator.enabled=true",
        "--set",
        "provider.auth.method=bearer",
        "--set",
        "provider.url=https://real.example/qod",
    ]);
    assert!(r.args().contains(
        &"--provider-url=http://qod-qod-operator-simulator:9091/quality-on-demand/v1".to_string()
    ));
    assert!(
        !r.args()
            .iter()
            .any(|a| a.starts_with("--bearer-token-file")),
        "{:?}",
        r.args()
    );
    assert!(r.find("Secret", "qod-qod-operator-provider").is_none());
    assert_never_overreaches(&r);
}

#[test]
fn non_default_values_render_credentials_ingress_and_monitoring() {
    let r = render(&["-f", &fixture("nondefault.yaml")]);
    assert_eq!(
        r.args(),
        [
            "run",
            "--log-format=text",
            "--probe-listen=0.0.0.0:8080",
            "--webhook-listen=0.0.0.0:8443",
            "--webhook-public-url=https://qod-webhook.example.com",
            "--hmac-key-file=/etc/qod-operator/hmac/key",
            "--hmac-previous-key-file=/etc/qod-operator/hmac/previous-key",
            "--provider=nac",
            "--provider-url=https://network-as-code.p-eu.rapidapi.com/qod/v0",
            "--rapidapi-host=network-as-code.nokia.rapidapi.com",
            "--api-key-file=/etc/qod-operator/provider/api-key",
            "--webhook-static-token-file=/etc/qod-operator/provider/webhook-static-token",
            "--resync-interval=1m 30s",
            "--profile-refresh=10m",
            "--lease-name=qod-qod-operator",
            "--namespace=apps",
            "--install-crd",
            "--concurrency=8",
            "--example-extra-arg=1",
        ]
    );
    let deployment = r.get("Deployment", FULLNAME);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert!(r.of_kind("PodDisruptionBudget").is_empty());
    assert_eq!(pod["topologySpreadConstraints"], Value::Null);
    assert_eq!(pod["terminationGracePeriodSeconds"], 45);
    assert_eq!(pod["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(
        r.operator()["image"],
        "registry.example.com/qod-operator:1.2.3"
    );
    assert_eq!(
        pod["volumes"],
        json!([
            {"name": "hmac", "secret": {"secretName": "my-hmac", "defaultMode": 0o440, "items": [
                {"key": "key", "path": "key"}, {"key": "previous-key", "path": "previous-key"}]}},
            {"name": "provider", "secret": {"secretName": "qod-qod-operator-provider", "defaultMode": 0o440, "items": [
                {"key": "api-key", "path": "api-key"}, {"key": "webhook-static-token", "path": "webhook-static-token"}]}},
        ])
    );
    // With hmac.existingSecret the chart makes no HMAC Secret; the credentials go into its own.
    assert!(r.find("Secret", "qod-qod-operator-hmac").is_none());
    let secret = r.get("Secret", "qod-qod-operator-provider");
    assert_eq!(
        secret["data"],
        json!({"api-key": "c2VjcmV0LWFwaS1rZXk=", "webhook-static-token": "c3RhdGlj"})
    );

    let ingress = r.get("Ingress", "qod-qod-operator-webhook");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ingress["spec"]["tls"],
        json!([{"secretName": "qod-webhook-tls", "hosts": ["qod-webhook.example.com"]}])
    );
    assert_eq!(
        ingress["spec"]["rules"],
        json!([{"host": "qod-webhook.example.com", "http": {"paths": [{"path": "/notifications", "pathType": "Prefix",
            "backend": {"service": {"name": "qod-qod-operator-webhook", "port": {"name": "webhook"}}}}]}}])
    );

    let monitor = r.get("ServiceMonitor", FULLNAME);
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{"port": "http-metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}])
    );
    let metrics_labels = &r.get("Service", "qod-qod-operator-metrics")["metadata"]["labels"];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(
            &metrics_labels[k], v,
            "ServiceMonitor selects the metrics Service by {k}"
        );
    }
    // The webhook Service must not be scraped: it lacks the metrics component label.
    let webhook_labels = &r.get("Service", "qod-qod-operator-webhook")["metadata"]["labels"];
    assert_ne!(webhook_labels["app.kubernetes.io/component"], "metrics");
    assert_never_overreaches(&r);
}

#[test]
fn oauth2_credentials_come_from_the_chart_secret_or_an_existing_one() {
    let oauth = [
        "--set",
        "provider.auth.method=oauth2",
        "--set",
        "provider.auth.tokenUrl=https://auth.example.com/oauth/token",
        "--set",
        "provider.auth.clientId=my-client",
    ];
    let mut args = oauth.to_vec();
    args.extend(["--set", "provider.auth.clientSecret=s3cret"]);
    let r = with(&args);
    let flags = r.args();
    for flag in [
        "--token-url=https://auth.example.com/oauth/token",
        "--client-id=my-client",
        "--client-secret-file=/etc/qod-operator/provider/client-secret",
    ] {
        assert!(
            flags.contains(&flag.to_string()),
            "{flag} missing from {flags:?}"
        );
    }
    assert_eq!(
        r.get("Secret", "qod-qod-operator-provider")["data"],
        json!({"client-secret": "czNjcmV0"})
    );
    assert_eq!(
        r.operator()["volumeMounts"][1],
        json!({"name": "provider", "mountPath": "/etc/qod-operator/provider", "readOnly": true})
    );
    // New credentials through helm upgrade roll the pods.
    let checksum = |r: &Rendered| {
        r.get("Deployment", FULLNAME)["spec"]["template"]["metadata"]["annotations"]
            ["checksum/provider-secret"]
            .clone()
    };
    assert!(checksum(&r).is_string());
    let mut rotated = oauth.to_vec();
    rotated.extend(["--set", "provider.auth.clientSecret=n3w"]);
    assert_ne!(checksum(&with(&rotated)), checksum(&r));

    let mut args = oauth.to_vec();
    args.extend(["--set", "provider.existingSecret=telco-credentials"]);
    let r = with(&args);
    assert!(
        r.find("Secret", "qod-qod-operator-provider").is_none(),
        "{:?}",
        r.names()
    );
    assert!(
        checksum(&r).is_null(),
        "no checksum of a Secret the chart does not own"
    );
    let volumes = &r.get("Deployment", FULLNAME)["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        volumes[1],
        json!({"name": "provider", "secret": {"secretName": "telco-credentials", "defaultMode": 0o440,
            "items": [{"key": "client-secret", "path": "client-secret"}]}})
    );

    let r = with(&[
        "--set",
        "provider.auth.method=bearer",
        "--set",
        "provider.auth.bearerToken=tok",
    ]);
    assert!(
        r.args()
            .contains(&"--bearer-token-file=/etc/qod-operator/provider/bearer-token".to_string())
    );
    assert_eq!(
        r.get("Secret", "qod-qod-operator-provider")["data"],
        json!({"bearer-token": "dG9r"})
    );
}

#[test]
fn webhook_public_url_follows_the_ingress_host() {
    let r = render(&[
        "--set",
        "provider.url=https://qod.example.com/qod",
        "--set",
        "webhook.ingress.enabled=true",
        "--set",
        "webhook.ingress.host=hooks.example.com",
    ]);
    assert!(
        r.args()
            .contains(&"--webhook-public-url=http://hooks.example.com".to_string()),
        "{:?}",
        r.args()
    );
    let r = with(&["--set", "webhook.publicUrl=https://edge.example.com/qod/"]);
    assert!(
        r.args()
            .contains(&"--webhook-public-url=https://edge.example.com/qod".to_string()),
        "{:?}",
        r.args()
    );
}

#[test]
fn nac_without_a_rapidapi_host_keeps_the_operators_default() {
    let r = with(&[
        "--set",
        "provider.name=nac",
        "--set",
        "provider.auth.method=apiKey",
        "--set",
        "provider.auth.apiKey=k",
    ]);
    let args = r.args();
    assert!(args.contains(&"--provider=nac".to_string()), "{args:?}");
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--rapidapi-host") || a.starts_with("--camara-version")),
        "{args:?}"
    );
}

#[test]
fn providers_values_become_provider_resources() {
    let spec = json!({"networkAsCode": {
        "url": "https://network-as-code.p-eu.rapidapi.com",
        "apiKeySecretRef": {"name": "nac", "key": "api-key"}
    }});
    let providers = json!([
        {"kind": "QodProvider", "name": "team", "namespace": "media", "spec": spec},
        {"kind": "QodProvider", "name": "here", "spec": spec},
        {"kind": "ClusterQodProvider", "name": "shared", "spec": spec},
    ]);
    let r = render(&[
        "--set",
        "simulator.enabled=true",
        "--set-json",
        &format!("providers={providers}"),
    ]);
    let team = r.get("QodProvider", "team");
    assert_eq!(team["metadata"]["namespace"], "media");
    assert_eq!(team["spec"], spec);
    assert_eq!(
        r.get("QodProvider", "here")["metadata"]["namespace"],
        "qod-system",
        "the release namespace by default"
    );
    let shared = r.get("ClusterQodProvider", "shared");
    assert!(shared["metadata"].get("namespace").is_none());
    assert_eq!(shared["spec"], spec);
}
