//! `helm lint --strict`, and bad values refused at install time with a message that says what
//! is wrong (values.schema.json for shapes, the chart's checks for combinations).

use crate::harness::*;

fn lint(args: &[&str]) {
    let dir = scratch("lint");
    let out = output(
        helm_command(&dir)
            .arg("lint")
            .arg("--strict")
            .arg(chart())
            .args(args),
    );
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "helm lint --strict {args:?} failed:\n{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("0 chart(s) failed"), "{stdout}");
    assert!(
        !stdout.contains("[WARNING]") && !stdout.contains("[ERROR]"),
        "{stdout}"
    );
}

#[test]
fn lint_is_clean_with_default_and_non_default_values() {
    lint(&[]);
    lint(MINIMAL);
    lint(&["--set", "simulator.enabled=true"]);
    lint(&["-f", &fixture("nondefault.yaml")]);
    lint(&[
        "--set",
        "simulator.enabled=true",
        "-f",
        &fixture("networkpolicy.yaml"),
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "grafanaDashboard.enabled=true",
    ]);
    lint(&[
        "--set",
        "provider.url=https://qod.example.com/qod",
        "--set",
        "webhook.publicUrl=https://h.example.com",
        "--set",
        "provider.auth.method=oauth2",
        "--set",
        "provider.auth.tokenUrl=https://auth.example.com/token",
        "--set",
        "provider.auth.clientId=c",
        "--set",
        "provider.existingSecret=creds",
        "--set",
        "replicas=1",
        "--set",
        "leaderElection.enabled=false",
    ]);
}

/// Refused with every fragment in `expected` in helm's message.
fn assert_refused(extra: &[&str], expected: &[&str]) {
    let mut args = vec!["--set", "simulator.enabled=true"];
    args.extend_from_slice(extra);
    let error = refused(&args);
    for fragment in expected {
        assert!(
            error.contains(fragment),
            "{extra:?}: expected {fragment:?} in:\n{error}"
        );
    }
}

#[test]
fn schema_refuses_bad_shapes_naming_the_value() {
    let schema = "values don't meet the specifications of the schema";
    assert_refused(&["--set", "replicas=0"], &[schema, "/replicas", "minimum"]);
    assert_refused(
        &["--set", "replicas=two"],
        &[schema, "/replicas", "want integer"],
    );
    assert_refused(
        &["--set", "replica=3"],
        &[schema, "additional properties 'replica' not allowed"],
    );
    assert_refused(
        &["--set", "provider.name=telco"],
        &[schema, "/provider/name", "'camara', 'nac'"],
    );
    assert_refused(
        &["--set", "provider.camaraVersion=v2"],
        &[schema, "/provider/camaraVersion", "'v1', 'v0.11', 'v0.10'"],
    );
    assert_refused(
        &["--set", "provider.auth.method=basic"],
        &[schema, "/provider/auth/method"],
    );
    assert_refused(
        &["--set", "provider.url=ftp://qod.example.com"],
        &[schema, "/provider/url", "ftp://qod.example.com"],
    );
    assert_refused(
        &["--set", "webhook.publicUrl=qod-webhook.example.com"],
        &[schema, "/webhook/publicUrl"],
    );
    assert_refused(
        &["--set", "resyncInterval=soon"],
        &[schema, "/resyncInterval", "soon"],
    );
    assert_refused(
        &["--set", "logFormat=yaml"],
        &[schema, "/logFormat", "'json', 'text'"],
    );
    assert_refused(&["--set", "concurrency=0"], &[schema, "/concurrency"]);
    assert_refused(
        &["--set", "watchNamespace=Not_A_Namespace"],
        &[schema, "/watchNamespace"],
    );
    assert_refused(
        &["--set", "webhook.service.type=ExternalName"],
        &[schema, "/webhook/service/type"],
    );
    assert_refused(
        &["--set", "image.pullPolicy=Sometimes"],
        &[schema, "/image/pullPolicy"],
    );
    assert_refused(
        &["--set", "podDisruptionBudget.minAvailable=half"],
        &[schema, "/podDisruptionBudget/minAvailable"],
    );
    assert_refused(
        &["--set", "livenessProbe.httpGet.path=healthz"],
        &[schema, "/livenessProbe/httpGet/path"],
    );
}

#[test]
fn combinations_that_cannot_work_are_refused_with_what_to_change() {
    let real = [
        "--set",
        "simulator.enabled=false",
        "--set",
        "provider.url=https://qod.example.com/qod",
        "--set",
        "webhook.publicUrl=https://h.example.com",
    ];
    let refuse = |extra: &[&str], expected: &str| {
        let mut args = real.to_vec();
        args.extend_from_slice(extra);
        let error = refused(&args);
        assert!(
            error.contains(expected),
            "{extra:?}: expected {expected:?} in:\n{error}"
        );
    };
    refuse(&["--set", "provider.url="], "provider.url is required");
    refuse(
        &["--set", "webhook.publicUrl="],
        "webhook.publicUrl is required",
    );
    refuse(
        &["--set", "leaderElection.enabled=false"],
        "leaderElection.enabled=false needs replicas: 1 (got 2)",
    );
    refuse(
        &["--set", "provider.auth.method=oauth2"],
        "provider.auth.method=oauth2 needs provider.auth.tokenUrl and provider.auth.clientId",
    );
    refuse(
        &[
            "--set",
            "provider.auth.method=oauth2",
            "--set",
            "provider.auth.tokenUrl=https://a.example/t",
            "--set",
            "provider.auth.clientId=c",
        ],
        "needs provider.auth.clientSecret (or provider.existingSecret with key client-secret)",
    );
    refuse(
        &["--set", "provider.auth.method=bearer"],
        "needs provider.auth.bearerToken",
    );
    refuse(
        &["--set", "provider.auth.method=apiKey"],
        "needs provider.auth.apiKey",
    );
    refuse(
        &["--set", "webhook.staticToken.enabled=true"],
        "needs webhook.staticToken.value",
    );
    refuse(
        &["--set", "webhook.ingress.enabled=true"],
        "webhook.ingress.enabled=true needs webhook.ingress.host",
    );
    refuse(
        &["--set", "serviceAccount.create=false"],
        "serviceAccount.name is required when serviceAccount.create is false",
    );
}
