//! Discovery and OpenAPI: what kube and kubectl read before they do anything.

use crate::support::*;
use kube::discovery::{Discovery, Scope};

#[tokio::test]
async fn version_is_served() {
    let env = Env::start().await;
    let v = env.client.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "35"));
}

#[tokio::test]
async fn core_and_group_discovery() {
    let env = Env::start().await;
    let (_, api) = env.get_json("/api").await;
    assert_eq!(api["versions"][0], "v1");
    let (_, v1) = env.get_json("/api/v1").await;
    let names: Vec<&str> = v1["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for want in [
        "namespaces",
        "configmaps",
        "secrets",
        "events",
        "serviceaccounts",
        "serviceaccounts/token",
        "namespaces/status",
    ] {
        assert!(names.contains(&want), "{want} missing from /api/v1");
    }
    let (_, apis) = env.get_json("/apis").await;
    let groups: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for want in [
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
        "policy",
        "apiextensions.k8s.io",
    ] {
        assert!(groups.contains(&want), "{want} missing from /apis");
    }
}

#[tokio::test]
async fn a_new_crd_is_discoverable_at_once() {
    let env = Env::with_widgets().await;
    let (code, list) = env.get_json("/apis/example.dev/v1").await;
    assert_eq!(code, 200);
    let widgets = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "widgets")
        .unwrap()
        .clone();
    assert_eq!(widgets["kind"], "Widget");
    assert_eq!(widgets["namespaced"], true);
    assert_eq!(widgets["shortNames"][0], "wg");
    assert_eq!(widgets["categories"][0], "example");
    assert!(
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "widgets/status")
    );
    let discovery = Discovery::new(env.client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .groups()
        .find(|g| g.name() == "example.dev")
        .unwrap()
        .recommended_kind("Widget")
        .unwrap();
    assert_eq!(ar.plural, "widgets");
    assert_eq!(caps.scope, Scope::Namespaced);
}

#[tokio::test]
async fn crd_gets_established_condition() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let env = Env::start().await;
    let crd: CustomResourceDefinition = env.create_crd(widget_crd()).await;
    let conds = crd.status.unwrap().conditions.unwrap();
    let established = conds.iter().find(|c| c.type_ == "Established").unwrap();
    assert_eq!(established.status, "True");
    let api: kube::Api<CustomResourceDefinition> = kube::Api::all(env.client.clone());
    let cond = kube::runtime::wait::conditions::is_crd_established();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        kube::runtime::wait::await_condition(api, "widgets.example.dev", cond),
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test]
async fn openapi_v3_publishes_patch_operations_with_field_validation() {
    let env = Env::with_widgets().await;
    let (_, index) = env.get_json("/openapi/v3").await;
    let url = index["paths"]["apis/example.dev/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, doc) = env.get_json(&url).await;
    assert_eq!(code, 200);
    let op = &doc["paths"]["/apis/example.dev/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Widget");
    assert!(
        op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
    assert!(
        op["requestBody"]["content"]
            .get("application/strategic-merge-patch+json")
            .is_none()
    );
    assert!(index["paths"].get("api/v1").is_some());
}

#[tokio::test]
async fn table_format_uses_printer_columns() {
    let env = Env::with_widgets().await;
    env.widgets()
        .create(&kube::api::PostParams::default(), &widget("w", 3))
        .await
        .unwrap();
    let resp = env
        .http
        .get(format!(
            "{}/apis/example.dev/v1/namespaces/default/widgets",
            env.emu.url()
        ))
        .bearer_auth(env.emu.admin_token())
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .unwrap();
    let table: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(table["kind"], "Table");
    let cols: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Size", "Ready", "Phase", "Age"]);
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[0], "w");
    assert_eq!(cells[1], 3);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn updating_a_crd_updates_what_is_served() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams};
    let env = Env::with_widgets().await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    let patch = serde_json::json!({"spec": {"names": {"shortNames": ["wg", "wdg"]}}});
    crds.patch(
        "widgets.example.dev",
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .unwrap();
    let (_, list) = env.get_json("/apis/example.dev/v1").await;
    let widgets = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "widgets")
        .unwrap()
        .clone();
    assert_eq!(widgets["shortNames"], serde_json::json!(["wg", "wdg"]));
    let crd = crds.get("widgets.example.dev").await.unwrap();
    assert_eq!(crd.metadata.generation, Some(2));
}
