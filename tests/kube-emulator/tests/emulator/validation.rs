//! Custom resource validation: one test per schema keyword, plus pruning, defaults, CEL
//! and the exact Status the real server returns.

use crate::support::*;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// POSTs a widget with the given spec and returns (code, body).
async fn post(env: &Env, spec: Value) -> (u16, Value) {
    env.raw(
        reqwest::Method::POST,
        "/apis/example.dev/v1/namespaces/default/widgets",
        Some("application/json"),
        Some(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": spec})),
    )
    .await
}

/// Asserts a 422 whose causes are exactly (field, message) pairs.
async fn rejects(spec: Value, want: &[(&str, &str)]) -> Value {
    let env = Env::with_widgets().await;
    let (code, body) = post(&env, spec).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "Invalid");
    assert_eq!(body["details"]["kind"], "Widget");
    assert_eq!(body["details"]["group"], "example.dev");
    let causes: Vec<(String, String)> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap().to_string(),
                c["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
    assert_eq!(causes, want);
    body
}

#[tokio::test]
async fn minimum_with_the_real_servers_message() {
    let body = rejects(
        json!({"size": 0}),
        &[(
            "spec.size",
            "Invalid value: 0: spec.size in body should be greater than or equal to 1",
        )],
    )
    .await;
    assert_eq!(
        body["message"],
        "Widget.example.dev \"w\" is invalid: spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
    );
}

#[tokio::test]
async fn maximum() {
    rejects(
        json!({"size": 1001}),
        &[(
            "spec.size",
            "Invalid value: 1001: spec.size in body should be less than or equal to 1000",
        )],
    )
    .await;
}

#[tokio::test]
async fn exclusive_minimum() {
    rejects(
        json!({"size": 1, "ratio": 0}),
        &[(
            "spec.ratio",
            "Invalid value: 0: spec.ratio in body should be greater than 0",
        )],
    )
    .await;
}

#[tokio::test]
async fn types() {
    rejects(
        json!({"size": "big"}),
        &[(
            "spec.size",
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\"",
        )],
    )
    .await;
    rejects(
        json!({"size": 1, "enabled": "yes"}),
        &[(
            "spec.enabled",
            "Invalid value: \"string\": spec.enabled in body must be of type boolean: \"string\"",
        )],
    )
    .await;
}

#[tokio::test]
async fn required() {
    rejects(json!({"color": "red"}), &[("spec.size", "Required value")]).await;
}

#[tokio::test]
async fn enum_values() {
    rejects(
        json!({"size": 1, "color": "green"}),
        &[(
            "spec.color",
            "Unsupported value: \"green\": supported values: \"red\", \"blue\"",
        )],
    )
    .await;
}

#[tokio::test]
async fn pattern() {
    rejects(
        json!({"size": 1, "name": "ABC"}),
        &[(
            "spec.name",
            "Invalid value: \"ABC\": spec.name in body should match '^[a-z]+$'",
        )],
    )
    .await;
}

#[tokio::test]
async fn min_and_max_length() {
    rejects(
        json!({"size": 1, "name": "a"}),
        &[(
            "spec.name",
            "Invalid value: \"a\": spec.name in body should be at least 2 chars long",
        )],
    )
    .await;
    rejects(
        json!({"size": 1, "name": "abcdefghijk"}),
        &[("spec.name", "Too long: may not be more than 10 bytes")],
    )
    .await;
}

#[tokio::test]
async fn format() {
    rejects(
        json!({"size": 1, "ip": "300.1.1.1"}),
        &[(
            "spec.ip",
            "Invalid value: \"300.1.1.1\": spec.ip in body must be of type ipv4: \"300.1.1.1\"",
        )],
    )
    .await;
}

#[tokio::test]
async fn min_and_max_items() {
    rejects(
        json!({"size": 9, "tags": []}),
        &[(
            "spec.tags",
            "Invalid value: 0: spec.tags in body should have at least 1 items",
        )],
    )
    .await;
    rejects(
        json!({"size": 9, "tags": ["a", "b", "c", "d"]}),
        &[("spec.tags", "Too many: 4: must have at most 3 items")],
    )
    .await;
}

#[tokio::test]
async fn min_properties() {
    rejects(
        json!({"size": 1, "labels": {}}),
        &[(
            "spec.labels",
            "Invalid value: 0: spec.labels in body should have at least 1 properties",
        )],
    )
    .await;
}

#[tokio::test]
async fn every_bad_field_is_named() {
    let body = rejects(
        json!({"size": 0, "color": "green"}),
        &[
            (
                "spec.color",
                "Unsupported value: \"green\": supported values: \"red\", \"blue\"",
            ),
            (
                "spec.size",
                "Invalid value: 0: spec.size in body should be greater than or equal to 1",
            ),
        ],
    )
    .await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(" is invalid: [spec.color: Unsupported value"),
        "{}",
        body["message"]
    );
}

#[tokio::test]
async fn cel_rule() {
    rejects(
        json!({"size": 1, "tags": ["a", "b"]}),
        &[(
            "spec",
            "Invalid value: \"object\": cannot have more tags than size",
        )],
    )
    .await;
}

#[tokio::test]
async fn cel_transition_rule_uses_old_self() {
    let env = Env::with_widgets().await;
    let (code, _) = post(&env, json!({"size": 1, "immutableId": "a"})).await;
    assert_eq!(code, 201);
    let api = env.widgets();
    let s = api_err(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"immutableId": "b"}})),
        )
        .await,
    );
    assert_eq!(s.code, 422);
    let cause = &s.details.unwrap().causes[0];
    assert_eq!(cause.field, "spec.immutableId");
    assert!(
        cause.message.ends_with("immutableId is immutable"),
        "{}",
        cause.message
    );
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unknown_fields_are_pruned_with_a_warning_unless_preserved() {
    let env = Env::with_widgets().await;
    let (code, body) = post(
        &env,
        json!({"size": 1, "bogus": 1, "extra": {"anything": {"goes": true}}}),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert!(body["spec"].get("bogus").is_none());
    assert_eq!(body["spec"]["extra"]["anything"]["goes"], true);
    let stored = env.widgets().get("w").await.unwrap();
    assert_eq!(stored.spec.size, 1);
}

#[tokio::test]
async fn strict_field_validation_refuses_unknown_fields() {
    let env = Env::with_widgets().await;
    let (code, body) = env
        .raw(
            reqwest::Method::POST,
            "/apis/example.dev/v1/namespaces/default/widgets?fieldValidation=Strict",
            Some("application/json"),
            Some(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1, "bogus": 1}})),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["message"],
        "strict decoding error: unknown field \"spec.bogus\""
    );
}

#[tokio::test]
async fn defaults_are_applied() {
    let env = Env::with_widgets().await;
    let w = env
        .widgets()
        .create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    assert_eq!(w.spec.color.as_deref(), Some("blue"));
}

#[tokio::test]
async fn validation_runs_on_updates_too() {
    let env = Env::with_widgets().await;
    let api = env.widgets();
    api.create(&PostParams::default(), &widget("w", 1))
        .await
        .unwrap();
    let s = api_err(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": -1}})),
        )
        .await,
    );
    assert_eq!(s.code, 422);
    assert_eq!(api.get("w").await.unwrap().spec.size, 1);
}

#[tokio::test]
async fn crd_with_bad_names_is_refused() {
    let env = Env::start().await;
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("wrong.example.dev");
    let (code, body) = env
        .raw(
            reqwest::Method::POST,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some("application/json"),
            Some(crd),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
}

#[tokio::test]
async fn one_of_is_checked() {
    let env = Env::start().await;
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["oneOf"] =
        json!([{"required": ["name"]}, {"required": ["ip"]}]);
    env.create_crd(crd).await;
    let (code, _) = post(&env, json!({"size": 1, "name": "abc"})).await;
    assert_eq!(code, 201);
    let (code, body) = env
        .raw(
            reqwest::Method::POST,
            "/apis/example.dev/v1/namespaces/default/widgets",
            Some("application/json"),
            Some(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "both"}, "spec": {"size": 1, "name": "abc", "ip": "1.2.3.4"}})),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "Invalid value: \"object\": spec in body must validate one and only one schema (oneOf)"
    );
}

#[tokio::test]
async fn crd_with_a_cel_rule_that_does_not_compile_is_refused() {
    let env = Env::start().await;
    let mut crd = widget_crd();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.size >>> 1", "message": "broken"}]);
    let (code, body) = env
        .raw(
            reqwest::Method::POST,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            Some("application/json"),
            Some(crd),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(
        body["details"]["causes"][0]["field"],
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    );
    let (code, _) = env.get_json("/apis/example.dev/v1").await;
    assert_eq!(code, 404, "a refused CRD registers nothing");
}
