//! Errors are real `Status` objects that kube and kubectl parse.

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn not_found_is_a_status_object() {
    let env = Env::with_widgets().await;
    let (code, body) = env
        .get_json("/apis/example.dev/v1/namespaces/default/widgets/missing")
        .await;
    assert_eq!(code, 404);
    assert_eq!(
        body,
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "widgets.example.dev \"missing\" not found", "reason": "NotFound",
            "details": {"name": "missing", "group": "example.dev", "kind": "widgets"}, "code": 404
        })
    );
    let s = api_err(env.widgets().get("missing").await);
    assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn unknown_paths_are_404_status() {
    let env = Env::start().await;
    let (code, body) = env.get_json("/apis/nothing.dev/v1/things").await;
    assert_eq!(code, 404);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "NotFound");
}

#[tokio::test]
async fn wrong_method_is_405() {
    let env = Env::start().await;
    let (code, body) = env
        .raw(
            reqwest::Method::PUT,
            "/api/v1/namespaces/default/configmaps",
            Some("application/json"),
            Some(json!({})),
        )
        .await;
    assert_eq!(code, 405, "{body}");
    assert_eq!(body["reason"], "MethodNotAllowed");
}

#[tokio::test]
async fn unknown_patch_type_is_415() {
    let env = Env::start().await;
    let (code, body) = env
        .raw(
            reqwest::Method::PATCH,
            "/api/v1/namespaces/default/configmaps/x",
            Some("text/plain"),
            Some(json!({})),
        )
        .await;
    assert_eq!(code, 415, "{body}");
}

#[tokio::test]
async fn mismatched_kind_is_400() {
    let env = Env::start().await;
    let (code, body) = env
        .raw(
            reqwest::Method::POST,
            "/api/v1/namespaces/default/configmaps",
            Some("application/json"),
            Some(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["reason"], "BadRequest");
}
