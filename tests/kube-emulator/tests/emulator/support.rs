//! Shared helpers: starting an emulator, the test CRDs, raw HTTP and polling.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{Client, CustomResource};
use kube_emulator::{Emulator, Options, RunningEmulator};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The typed view of the test custom resource (its CRD is [`widget_crd`], written by hand so
/// every validation keyword is exercised).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[kube(
    group = "example.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wg"
)]
#[serde(rename_all = "camelCase")]
pub struct WidgetSpec {
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WidgetStatus {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The CRD for `widgets.example.dev/v1` (status subresource, printer columns, a rich schema
/// and CEL rules).
pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"], "categories": ["example"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "x-kubernetes-validations": [
                                {"rule": "!has(self.tags) || size(self.tags) <= self.size", "message": "cannot have more tags than size"}
                            ],
                            "properties": {
                                "size": {"type": "integer", "minimum": 1, "maximum": 1000},
                                "color": {"type": "string", "enum": ["red", "blue"], "default": "blue"},
                                "name": {"type": "string", "minLength": 2, "maxLength": 10, "pattern": "^[a-z]+$"},
                                "ip": {"type": "string", "format": "ipv4"},
                                "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0},
                                "tags": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string"}},
                                "labels": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "immutableId": {
                                    "type": "string",
                                    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "immutableId is immutable"}]
                                },
                                "enabled": {"type": "boolean"}
                            }
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "phase": {"type": "string"},
                                "observedGeneration": {"type": "integer"},
                                "conditions": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "map",
                                    "x-kubernetes-list-map-keys": ["type"],
                                    "items": {
                                        "type": "object",
                                        "required": ["type", "status"],
                                        "properties": {
                                            "type": {"type": "string"},
                                            "status": {"type": "string"},
                                            "reason": {"type": "string"}
                                        }
                                    }
                                }
                            }
                        }
                    }
                }}
            }]
        }
    })
}

/// A cluster-scoped CRD without a status subresource (`gadgets.example.dev/v1`).
pub fn gadget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "scope": "Cluster",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    })
}

/// A running emulator plus an admin client.
pub struct Env {
    pub emu: RunningEmulator,
    pub client: Client,
    pub http: reqwest::Client,
}

impl Env {
    /// Starts an emulator with default options.
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    /// Starts an emulator with the given options.
    pub async fn with(opts: Options) -> Self {
        let emu = Emulator::start(opts).await.expect("emulator starts");
        let client = emu.client().await.expect("client builds");
        Self {
            emu,
            client,
            http: reqwest::Client::new(),
        }
    }

    /// Starts an emulator and registers the Widget CRD.
    pub async fn with_widgets() -> Self {
        let env = Self::start().await;
        env.create_crd(widget_crd()).await;
        env
    }

    /// POSTs a CRD and returns it.
    pub async fn create_crd(&self, crd: Value) -> CustomResourceDefinition {
        let crd: CustomResourceDefinition = serde_json::from_value(crd).expect("crd json");
        Api::<CustomResourceDefinition>::all(self.client.clone())
            .create(&PostParams::default(), &crd)
            .await
            .expect("crd created")
    }

    /// Widgets in `default`.
    pub fn widgets(&self) -> Api<Widget> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// A raw request with the admin token; returns status and JSON body.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.emu.url(), path))
            .bearer_auth(self.emu.admin_token());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.expect("request sent");
        let code = resp.status().as_u16();
        let text = resp.text().await.expect("body read");
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GET as JSON.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        self.raw(reqwest::Method::GET, path, None, None).await
    }
}

/// A widget with the given name and size.
pub fn widget(name: &str, size: i64) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            size,
            ..Default::default()
        },
    )
}

// The deadline-polling helper shared by every test binary of the repository.
#[path = "../../../support/wait.rs"]
mod wait;
pub use wait::eventually;

/// The API error of a kube result.
pub fn api_err<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> kube::core::Status {
    match r {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}
