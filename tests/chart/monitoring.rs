//! The chart as an SRE reads it: the alerts (files/prometheus-rules.yaml, carried by the optional
//! PrometheusRule) and the Grafana dashboard (files/grafana-dashboard.json, in the optional
//! ConfigMap). promtool checks and unit-tests the rules; every query names a metric that a live
//! operator's /metrics really exports; the API server takes both objects.
//!
//! promtool comes from `$PROMTOOL`, `target/tools/promtool` (tests/install-promtool.sh, which
//! .ci/run calls) or PATH; the tests that need it say so and pass without it.

use std::{
    collections::BTreeSet,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use qod_test_support::{eventually, metrics, net::free_ports, process::Process};
use serde_json::{Value, json};

use crate::{
    cluster::Cluster,
    harness::*,
    install::{create_session, create_session_at, qodsessions},
};

const RULES: &str = "charts/qod-operator/files/prometheus-rules.yaml";
const RULE_TESTS: &str = "tests/chart/alerts/prometheus-rules.test.yaml";
const DASHBOARD: &str = "charts/qod-operator/files/grafana-dashboard.json";

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn rule_file() -> Value {
    serde_saphyr::from_str(&read(RULES)).unwrap()
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap()
}

/// Every alerting rule of a rule file's `groups`.
fn alerts(groups: &Value) -> Vec<&Value> {
    groups
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .collect()
}

fn alert_names(groups: &Value) -> Vec<String> {
    alerts(groups)
        .iter()
        .map(|r| str(r, "/alert").to_string())
        .collect()
}

/// promtool, or `None` (and a note on stderr) when this machine has none.
fn promtool(test: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("PROMTOOL").map(PathBuf::from),
        Some(repo_root().join("target/tools/promtool/bin/promtool")),
    ];
    if let Some(found) = candidates.into_iter().flatten().find(|p| p.is_file()) {
        return Some(found);
    }
    if let Ok(out) = Command::new("promtool").arg("--version").output()
        && out.status.success()
    {
        return Some(PathBuf::from("promtool"));
    }
    eprintln!(
        "SKIPPED {test}: promtool not found (run tests/install-promtool.sh, as .ci/run does, or set PROMTOOL)"
    );
    None
}

/// Runs promtool; fails the test with its output unless it succeeds. Gives stdout and stderr.
fn run_promtool(promtool: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new(promtool);
    cmd.args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "promtool {args:?} failed:\n{all}");
    all
}

// ---- PromQL: which metrics an expression reads ----

/// PromQL's keywords and aggregation operators: words that are never metric names.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Index just past the string literal starting at `i`.
fn skip_string(chars: &[char], mut i: usize) -> usize {
    let quote = chars[i];
    i += 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Index just past the bracketed group (`{...}`, `[...]`, `(...)`) starting at `i`, strings and
/// nested groups inside included.
fn skip_group(chars: &[char], mut i: usize) -> usize {
    let (open, close) = (
        chars[i],
        match chars[i] {
            '{' => '}',
            '[' => ']',
            _ => ')',
        },
    );
    let mut depth = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names a PromQL expression (Grafana variables allowed) selects: every identifier
/// outside label matchers, strings and ranges that is neither a keyword, a function (followed by
/// `(`) nor in a `by`/`without`/`on`/`ignoring`/`group_*` label list.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_string(&chars, i);
        } else if matches!(c, '{' | '[') {
            i = skip_group(&chars, i);
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '$' {
            // A Grafana variable: $name or ${name}.
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = skip_group(&chars, i);
            } else {
                while i < chars.len() && is_word(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            // A number or a duration.
            while i < chars.len() && (is_word(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && is_word(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let before_paren = chars.get(next) == Some(&'(');
            if matches!(
                word.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) {
                if before_paren {
                    i = skip_group(&chars, next);
                }
            } else if !before_paren && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The selector part of a Grafana `label_values(selector, label)` query (none for
/// `label_values(label)`); other queries as they are.
fn grafana_query_expr(query: &str) -> Option<String> {
    let Some(inner) = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(')'))
    else {
        return Some(query.to_string());
    };
    // The last comma outside braces and strings ends the selector.
    let chars: Vec<char> = inner.chars().collect();
    let (mut i, mut comma) = (0, None);
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(&chars, i);
                continue;
            }
            '{' | '[' | '(' => {
                i = skip_group(&chars, i);
                continue;
            }
            ',' => comma = Some(i),
            _ => {}
        }
        i += 1;
    }
    comma.map(|at| chars[..at].iter().collect())
}

/// (where, PromQL) of every query of the dashboard: panel targets (rows' panels too) and query
/// variables.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            panels(&panel["panels"], out);
        }
    }
    let mut all = Vec::new();
    panels(&dashboard["panels"], &mut all);
    let mut queries = Vec::new();
    for panel in all {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push((
                format!("panel {:?} {}", panel["title"], target["refId"]),
                str(target, "/expr").to_string(),
            ));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .unwrap_or_else(|| panic!("variable without a query: {variable}"));
        if let Some(expr) = grafana_query_expr(query) {
            queries.push((format!("variable {}", variable["name"]), expr));
        }
    }
    queries
}

/// (where, PromQL) of every rule of the rule file.
fn rule_queries() -> Vec<(String, String)> {
    alerts(&rule_file()["groups"])
        .iter()
        .map(|r| {
            (
                format!("alert {}", str(r, "/alert")),
                str(r, "/expr").to_string(),
            )
        })
        .collect()
}

/// The metric names a scrape has samples of, and those its `# TYPE` lines declare (with the
/// suffixes each type's samples carry), which include families with no series yet.
fn exported(scrape: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut sampled = BTreeSet::new();
    let mut declared = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').expect("# TYPE name type");
            let suffixes: &[&str] = match kind.trim() {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            for suffix in suffixes {
                declared.insert(format!("{family}{suffix}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            sampled.insert(line[..end].to_string());
        }
    }
    (sampled, declared)
}

#[test]
fn metric_names_are_read_out_of_promql() {
    let names = |e: &str| metric_names(e).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (operation, le) (rate(a_bucket{x=~"b{1}|c", y!="rate(d)"}[$__rate_interval])))
               / on (job) group_left max without (pod) (b:recorded) > bool 0.1
               and c offset 5m or count by (version) (d{job=~"$job"}) unless ${var} # e_commented"#
        ),
        ["a_bucket", "b:recorded", "c", "d"]
    );
    assert_eq!(
        grafana_query_expr(r#"label_values(m{namespace=~"$namespace", x="a,b"}, job)"#),
        Some(r#"m{namespace=~"$namespace", x="a,b"}"#.to_string())
    );
    assert_eq!(grafana_query_expr("label_values(namespace)"), None);
}

// ---- The alerts ----

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = promtool("alert_rules_pass_promtool_check_and_their_unit_tests") else {
        return;
    };
    let names = alert_names(&rule_file()["groups"]);
    let checked = run_promtool(&promtool, &["check", "rules", RULES], None);
    assert!(
        checked.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{checked}"
    );
    let tested = run_promtool(&promtool, &["test", "rules", RULE_TESTS], None);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Each alert is shown firing by the unit tests, and shown quiet on a healthy operator.
    let tests: Value = serde_saphyr::from_str(&read(RULE_TESTS)).unwrap();
    for name in &names {
        let cases: Vec<&Value> = tests["tests"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
            .filter(|case| case["alertname"] == name.as_str())
            .collect();
        assert!(
            cases
                .iter()
                .any(|c| c["exp_alerts"].as_array().unwrap().is_empty()),
            "no test shows {name} quiet"
        );
        assert!(
            cases
                .iter()
                .any(|c| !c["exp_alerts"].as_array().unwrap().is_empty()),
            "no test shows {name} firing"
        );
    }
}

#[test]
fn the_prometheus_rule_is_off_by_default_and_carries_the_rule_file_when_on() {
    let r = render(MINIMAL);
    assert!(r.of_kind("PrometheusRule").is_empty(), "{:?}", r.names());

    let file = rule_file();
    let mut args = MINIMAL.to_vec();
    args.extend_from_slice(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "prometheusRule.labels.release=prometheus",
    ]);
    let r = render(&args);
    let rule = r.get("PrometheusRule", FULLNAME);
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["metadata"]["namespace"], NAMESPACE);
    assert_eq!(rule["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        rule["spec"]["groups"], file["groups"],
        "the PrometheusRule carries files/prometheus-rules.yaml as it is"
    );

    // Alerts left out, labels added (and the file's severity overridden).
    args.extend_from_slice(&[
        "--set",
        "prometheusRule.disabledAlerts={QodSessionsUnavailable,QodOperatorMetricsAbsent}",
        "--set",
        "prometheusRule.alertLabels.team=network",
        "--set",
        "prometheusRule.alertLabels.severity=page",
    ]);
    let r = render(&args);
    let groups = &r.get("PrometheusRule", FULLNAME)["spec"]["groups"];
    let mut expected: Vec<String> = alert_names(&file["groups"]);
    expected.retain(|n| n != "QodSessionsUnavailable" && n != "QodOperatorMetricsAbsent");
    assert_eq!(alert_names(groups), expected);
    for alert in alerts(groups) {
        assert_eq!(
            alert["labels"],
            json!({"severity": "page", "team": "network"})
        );
        let original = alerts(&file["groups"])
            .into_iter()
            .find(|a| a["alert"] == alert["alert"])
            .unwrap();
        assert_eq!(alert["expr"], original["expr"]);
        assert_eq!(alert["annotations"], original["annotations"]);
    }
    // What the chart renders is a rule file promtool takes too.
    if let Some(promtool) = promtool("promtool check of the rendered PrometheusRule") {
        let dir = scratch("rendered-rules");
        let path = dir.join("rules.yaml");
        std::fs::write(&path, json!({"groups": groups}).to_string()).unwrap();
        let checked = run_promtool(
            &promtool,
            &["check", "rules", &path.display().to_string()],
            None,
        );
        assert!(
            checked.contains(&format!("SUCCESS: {} rules found", expected.len())),
            "{checked}"
        );
    }
}

#[test]
fn disabled_alerts_must_name_alerts_of_the_rule_file() {
    // The schema lists the file's alert names, so a typo is refused rather than ignored.
    let schema: Value =
        serde_json::from_str(&read("charts/qod-operator/values.schema.json")).unwrap();
    let listed =
        &schema["properties"]["prometheusRule"]["properties"]["disabledAlerts"]["items"]["enum"];
    assert_eq!(
        strings(listed),
        alert_names(&rule_file()["groups"]),
        "values.schema.json's prometheusRule.disabledAlerts enum is out of step with {RULES}"
    );
    let mut args = MINIMAL.to_vec();
    args.extend_from_slice(&["--set", "prometheusRule.disabledAlerts={QodSessionPending}"]);
    let error = refused(&args);
    assert!(
        error.contains("/prometheusRule/disabledAlerts/0"),
        "{error}"
    );
}

// ---- The dashboard ----

#[test]
fn the_dashboard_config_map_is_off_by_default_and_labelled_for_the_sidecar_when_on() {
    let r = render(MINIMAL);
    assert!(r.of_kind("ConfigMap").is_empty(), "{:?}", r.names());

    let name = format!("{FULLNAME}-dashboard");
    let mut args = MINIMAL.to_vec();
    args.extend_from_slice(&["--set", "grafanaDashboard.enabled=true"]);
    let r = render(&args);
    let map = r.get("ConfigMap", &name);
    assert_eq!(map["metadata"]["namespace"], NAMESPACE);
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert!(map["metadata"]["annotations"].is_null(), "{map:#}");
    let data = map["data"].as_object().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["qod-operator.json"]);
    let carried: Value = serde_json::from_str(data["qod-operator.json"].as_str().unwrap())
        .expect("the ConfigMap holds JSON");
    assert_eq!(carried, dashboard(), "the ConfigMap carries {DASHBOARD}");

    // Another sidecar label, namespace and folder annotation.
    args.extend_from_slice(&[
        "--set",
        "grafanaDashboard.label=example.com/dashboard",
        "--set-string",
        "grafanaDashboard.labelValue=qod",
        "--set",
        "grafanaDashboard.namespace=monitoring",
        "--set",
        "grafanaDashboard.annotations.grafana_folder=QoD",
    ]);
    let r = render(&args);
    let map = r.get("ConfigMap", &name);
    assert_eq!(map["metadata"]["namespace"], "monitoring");
    assert_eq!(map["metadata"]["labels"]["example.com/dashboard"], "qod");
    assert!(map["metadata"]["labels"]["grafana_dashboard"].is_null());
    assert_eq!(
        map["metadata"]["annotations"],
        json!({"grafana_folder": "QoD"})
    );
}

#[test]
fn the_dashboard_shows_sessions_provider_calls_notifications_and_reconciles() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "qod-operator");
    let queries = dashboard_queries(&dashboard);
    let used: BTreeSet<String> = queries.iter().flat_map(|(_, q)| metric_names(q)).collect();
    for metric in [
        "qod_operator_sessions",
        "qod_operator_provider_requests_total",
        "qod_operator_provider_request_duration_seconds_bucket",
        "qod_operator_notifications_total",
        "qod_operator_reconciliations_total",
        "qod_operator_reconcile_errors_total",
    ] {
        assert!(used.contains(metric), "no panel reads {metric}: {used:?}");
    }
    // Provider calls by operation and code; sessions by status; notifications by result.
    let exprs: Vec<&str> = queries.iter().map(|(_, q)| q.as_str()).collect();
    for grouping in [
        "by (operation, code) (rate(qod_operator_provider_requests_total",
        "by (operation, le) (rate(qod_operator_provider_request_duration_seconds_bucket",
        "by (qos_status)",
        "by (result) (rate(qod_operator_notifications_total",
        "by (outcome) (rate(qod_operator_reconciliations_total",
        "by (error) (rate(qod_operator_reconcile_errors_total",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(grouping)),
            "no query groups {grouping}"
        );
    }
    // Every panel queries the chosen data source; ids are unique; panels fit the 24 columns.
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "duplicate id");
        let grid = &panel["gridPos"];
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24);
        if panel["type"] != "row" {
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{}",
                panel["title"]
            );
            assert!(!panel["targets"].as_array().unwrap().is_empty());
        }
    }
    // The queries are PromQL promtool parses, once Grafana's variables are filled in.
    if let Some(promtool) = promtool("promtool check of the dashboard's queries") {
        let rules: Vec<Value> = queries
            .iter()
            .enumerate()
            .map(|(n, (_, q))| {
                let q = q
                    .replace("$__rate_interval", "5m")
                    .replace("$namespace", ".*")
                    .replace("$job", ".*")
                    .replace("$provider", ".*");
                json!({"record": format!("dashboard:query_{n}"), "expr": q})
            })
            .collect();
        let dir = scratch("dashboard-queries");
        let path = dir.join("queries.yaml");
        std::fs::write(
            &path,
            json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
        )
        .unwrap();
        let checked = run_promtool(
            &promtool,
            &["check", "rules", &path.display().to_string()],
            None,
        );
        assert!(
            checked.contains(&format!("SUCCESS: {} rules found", queries.len())),
            "{checked}"
        );
    }
}

// ---- Against a live operator ----

/// A QodProvider at a port nothing listens on: its calls get no answer (`code="none"`), so the
/// provider error series exist too.
fn unreachable_provider(namespace: &str, port: u16) -> Value {
    json!({
        "apiVersion": "qod.dev/v1alpha1",
        "kind": "QodProvider",
        "metadata": {"name": "unreachable", "namespace": namespace},
        "spec": {"camara": {"url": format!("http://127.0.0.1:{port}/quality-on-demand/v1")}}
    })
}

/// The label that makes the API server refuse updates of a QodSession (see [`refuse_updates`]).
const REFUSE_UPDATES: &str = "qod.dev/test-refuse-updates";

fn dynamic_api(
    client: kube::Client,
    namespace: Option<&str>,
    (group, version, kind, plural): (&str, &str, &str, &str),
) -> Api<DynamicObject> {
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    match namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    }
}

const POLICY: (&str, &str, &str, &str) = (
    "admissionregistration.k8s.io",
    "v1",
    "ValidatingAdmissionPolicy",
    "validatingadmissionpolicies",
);
const POLICY_BINDING: (&str, &str, &str, &str) = (
    "admissionregistration.k8s.io",
    "v1",
    "ValidatingAdmissionPolicyBinding",
    "validatingadmissionpolicybindings",
);

/// A ValidatingAdmissionPolicy that refuses every update of the QodSessions of `namespace`
/// labelled [`REFUSE_UPDATES`]: the operator's finalizer patch on such a session fails, a
/// Kubernetes error, which is what `qod_operator_reconcile_errors_total` counts (a provider's
/// failures are recorded in status instead). Named after the namespace; removed by the caller.
async fn refuse_updates(client: &kube::Client, namespace: &str) {
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": namespace},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": ["qod.dev"], "apiVersions": ["*"],
                "operations": ["UPDATE"], "resources": ["qodsessions"]
            }]},
            "validations": [{"expression": "false", "message": "updates refused by the chart test"}]
        }
    });
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": namespace},
        "spec": {
            "policyName": namespace,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "objectSelector": {"matchLabels": {REFUSE_UPDATES: "true"}}
            }
        }
    });
    for (kind, object) in [(POLICY, policy), (POLICY_BINDING, binding)] {
        dynamic_api(client.clone(), None, kind)
            .create(
                &PostParams::default(),
                &serde_json::from_value(object).unwrap(),
            )
            .await
            .unwrap();
    }
}

async fn remove_refusal(client: &kube::Client, namespace: &str) {
    for kind in [POLICY_BINDING, POLICY] {
        let _ = dynamic_api(client.clone(), None, kind)
            .delete(namespace, &DeleteParams::default())
            .await;
    }
}

#[tokio::test]
async fn every_query_names_a_metric_a_live_operator_exports() {
    // The operator with its built-in simulator, on the shared control plane, watching a
    // namespace of its own; one session through the simulator (create, notification, reads)
    // and one through a provider that never answers, so the families have series.
    let qod_test_support::Cluster {
        client: admin,
        namespace,
        kubeconfig,
        ..
    } = qod_test_support::Cluster::start("chart-metrics").await;
    let sessions = qodsessions(admin.clone(), Some(&namespace));

    // A session whose updates the API server refuses, in force before the operator starts
    // (a dry-run update is refused), so its first pass fails.
    refuse_updates(&admin, &namespace).await;
    let refused = json!({
        "apiVersion": "qod.dev/v1alpha1",
        "kind": "QodSession",
        "metadata": {"name": "refused-writes", "labels": {REFUSE_UPDATES: "true"}},
        "spec": {
            "device": {"phoneNumber": "+36721601234569"},
            "applicationServer": {"ipv4Address": "198.51.100.7"},
            "qosProfile": "QOS_L",
            "duration": 600
        }
    });
    sessions
        .create(
            &PostParams::default(),
            &serde_json::from_value(refused).unwrap(),
        )
        .await
        .unwrap();
    eventually(
        "the admission policy to refuse updates",
        Duration::from_secs(30),
        || async {
            let patch = Patch::Merge(json!({"metadata": {"annotations": {"probe": "1"}}}));
            let params = PatchParams {
                dry_run: true,
                ..PatchParams::default()
            };
            matches!(
                sessions.patch("refused-writes", &params, &patch).await,
                Err(kube::Error::Api(status)) if status.code == 403 || status.code == 422
            )
            .then_some(())
        },
    )
    .await;

    let dir = scratch("metrics");
    let [webhook, probes, closed] = free_ports();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qod-operator"));
    cmd.args(["run", "--simulator", "--namespace", &namespace])
        .arg(format!("--webhook-listen=127.0.0.1:{webhook}"))
        .arg(format!("--probe-listen=127.0.0.1:{probes}"))
        .args(["--requested-refresh", "1s"])
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", "metrics-0")
        .env("POD_NAMESPACE", &namespace)
        .env("RUST_LOG", "info");
    let mut operator = Process::start(cmd, &dir.join("operator.log"));
    let http = qod_test_support::http::client();
    operator
        .wait_ready(
            &http,
            &format!("http://127.0.0.1:{probes}/readyz"),
            Duration::from_secs(20),
        )
        .await;

    let providers = dynamic_api(
        admin.clone(),
        Some(&namespace),
        ("qod.dev", "v1alpha1", "QodProvider", "qodproviders"),
    );
    providers
        .create(
            &PostParams::default(),
            &serde_json::from_value(unreachable_provider(&namespace, closed)).unwrap(),
        )
        .await
        .unwrap();
    create_session(admin.clone(), &namespace, "through-simulator").await;
    create_session_at(
        admin.clone(),
        &namespace,
        "through-nowhere",
        Some(json!({"kind": "QodProvider", "name": "unreachable"})),
    )
    .await;
    eventually(
        "AVAILABLE through the webhook",
        Duration::from_secs(30),
        || async {
            let status = sessions.get("through-simulator").await.ok()?.data["status"].clone();
            (status["qosStatus"] == "AVAILABLE" && status["lastNotification"].is_object())
                .then_some(())
        },
    )
    .await;
    let metrics_url = format!("http://127.0.0.1:{probes}/metrics");
    let scrape = eventually(
        "a scrape with provider calls answered and unanswered, an applied notification and a failed pass",
        Duration::from_secs(30),
        || async {
            let text = http.get(&metrics_url).send().await.ok()?.text().await.ok()?;
            let sum = |name, labels| metrics::sum(&text, name, labels);
            (sum("qod_operator_provider_requests_total", "code=\"201\"") >= 1.0
                && sum("qod_operator_provider_requests_total", "code=\"none\"") >= 1.0
                && sum("qod_operator_notifications_total", "result=\"applied\"") >= 1.0
                && sum("qod_operator_reconcile_errors_total", "error=\"kubernetes\"") >= 1.0
                && sum("qod_operator_sessions", "qos_status=\"AVAILABLE\"") >= 1.0
                && sum("qod_operator_leader", "") == 1.0)
                .then_some(text)
        },
    )
    .await;
    let (sampled, declared) = exported(&scrape);

    let mut queries = rule_queries();
    queries.extend(dashboard_queries(&dashboard()));
    let mut unknown = Vec::new();
    let mut only_declared = BTreeSet::new();
    for (place, query) in &queries {
        let names = metric_names(query);
        assert!(
            !names.is_empty() || query.contains("absent("),
            "{place} reads no metric: {query}"
        );
        for name in names {
            if sampled.contains(&name) {
                continue;
            }
            if declared.contains(&name) {
                only_declared.insert(name);
            } else {
                unknown.push(format!("{place}: {name}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "queries name metrics the operator does not export: {unknown:#?}\nexported: {sampled:#?}"
    );
    // Every family the queries read had series in this scrape, not only a # TYPE line.
    assert!(
        only_declared.is_empty(),
        "no series in the scrape for {only_declared:?}"
    );

    if let Some(promtool) = promtool("promtool check metrics on a live scrape") {
        check_metrics(&promtool, &scrape);
    }
    drop(operator);
    remove_refusal(&admin, &namespace).await;
}

/// `promtool check metrics` on a scrape. promtool reads the classic Prometheus text format;
/// the operator serves OpenMetrics only (whatever the Accept header), whose `info` type the
/// classic parser refuses, and whose counters' `# TYPE` lines name the family without
/// `_total`. So: the scrape as served must either pass or fail on that `info` type alone, and
/// the same metrics in the classic format (as client libraries serve them to a scraper that
/// asks for it) must pass promtool's lint with nothing to say.
fn check_metrics(promtool: &Path, scrape: &str) {
    let mut cmd = Command::new(promtool);
    cmd.args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    if !out.status.success() {
        assert!(
            said.contains(r#"unknown metric type "info""#),
            "promtool check metrics on the scrape as served: {said}"
        );
        eprintln!(
            "NOTE: promtool check metrics cannot parse the scrape as served (OpenMetrics `info` type): {}",
            said.trim()
        );
    }
    let classic = classic_text(scrape);
    let linted = run_promtool(promtool, &["check", "metrics"], Some(&classic));
    assert!(
        linted.trim().is_empty(),
        "promtool check metrics on the classic text of the scrape: {linted}\n{classic}"
    );
}

/// An OpenMetrics scrape in the classic text format: counters' HELP and TYPE lines name the
/// `_total` series, `info` becomes a gauge `_info`, UNIT and EOF lines go.
fn classic_text(scrape: &str) -> String {
    let kinds: std::collections::BTreeMap<&str, &str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    let mut out = String::new();
    for line in scrape.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["HELP", "TYPE"].into_iter().find_map(|k| {
            let rest = line
                .strip_prefix("# ")?
                .strip_prefix(k)?
                .strip_prefix(' ')?;
            Some((k, rest.split_once(' ').unwrap_or((rest, ""))))
        });
        match meta {
            Some((k, (family, rest))) => {
                let (suffix, rest) = match kinds[family] {
                    "counter" => ("_total", rest),
                    "info" if k == "TYPE" => ("_info", "gauge"),
                    "info" => ("_info", rest),
                    _ => ("", rest),
                };
                out.push_str(&format!("# {k} {family}{suffix} {rest}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

// ---- Against the API server ----

/// A PrometheusRule CRD of the test's own: group, names and a structural schema for the fields
/// the chart writes (what the Prometheus Operator documents for monitoring.coreos.com/v1
/// PrometheusRule), without unknown fields, so the API server would prune what it does not
/// know and the stored object is compared with the file.
const PROMETHEUS_RULE_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "prometheusrules.monitoring.coreos.com"},
  "spec": {
    "group": "monitoring.coreos.com",
    "names": {"kind": "PrometheusRule", "plural": "prometheusrules", "singular": "prometheusrule", "listKind": "PrometheusRuleList"},
    "scope": "Namespaced",
    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
      "type": "object",
      "required": ["spec"],
      "properties": {
        "spec": {"type": "object", "properties": {
          "groups": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "required": ["name"], "properties": {
              "name": {"type": "string", "minLength": 1},
              "interval": {"type": "string"},
              "rules": {"type": "array", "items": {"type": "object", "required": ["expr"], "properties": {
                "alert": {"type": "string"},
                "record": {"type": "string"},
                "expr": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "for": {"type": "string", "pattern": "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}}
              }}}
            }}}
        }}
      }
    }}}]
  }
}"#;

#[tokio::test]
async fn the_api_server_takes_the_network_policy_the_prometheus_rule_and_the_dashboard() {
    let cluster = Cluster::shared("chart-monitoring").await;
    cluster
        .apply_crd(
            "prometheusrules.json",
            PROMETHEUS_RULE_CRD,
            "prometheusrules.monitoring.coreos.com",
        )
        .await;
    let notes = cluster
        .helm_release(
            "install",
            &[
                "--set",
                "simulator.enabled=true",
                "-f",
                &fixture("networkpolicy.yaml"),
                "--set",
                "prometheusRule.enabled=true",
                "--set",
                "grafanaDashboard.enabled=true",
            ],
        )
        .await;
    assert!(notes.contains("STATUS: deployed"), "{notes}");

    let get = |kind: &'static str, name: String| {
        let cluster = &cluster;
        async move {
            let json = cluster
                .kubectl(&["get", kind, &name, "-n", &cluster.namespace, "-o", "json"])
                .await;
            serde_json::from_str::<Value>(&json).unwrap()
        }
    };
    let fullname = cluster.fullname.clone();
    // Stored as rendered: nothing refused, nothing pruned or defaulted away.
    let rendered = Rendered::parse(
        &template_raw(
            &cluster.release,
            &cluster.namespace,
            &[
                "--set",
                "simulator.enabled=true",
                "-f",
                &fixture("networkpolicy.yaml"),
            ],
        )
        .unwrap(),
    );
    let policy = get("networkpolicy", fullname.clone()).await;
    assert_eq!(
        policy["spec"],
        rendered.get("NetworkPolicy", &fullname)["spec"],
        "the API server keeps the NetworkPolicy as the chart wrote it"
    );
    let rule = get("prometheusrule", fullname.clone()).await;
    assert_eq!(
        rule["spec"]["groups"],
        rule_file()["groups"],
        "the API server keeps every field of the rules"
    );
    let map = get("configmap", format!("{fullname}-dashboard")).await;
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1");
    let stored: Value =
        serde_json::from_str(map["data"]["qod-operator.json"].as_str().unwrap()).unwrap();
    assert_eq!(stored, dashboard());

    cluster
        .helm(&["uninstall", &cluster.release, "-n", &cluster.namespace])
        .await;
}
