//! The provider resources (`qod.dev/v1alpha1`): `QodProvider` (namespaced, serves its own
//! namespace) and `ClusterQodProvider` (cluster-scoped, serves the namespaces its selector
//! picks), like cert-manager's Issuer and ClusterIssuer. Both carry the same [`ProviderSpec`]:
//! which API (CAMARA or Network as Code), where, and which Secret keys hold the credentials.
//! A `QodSession` chooses one by [`ProviderRef`].
//!
//! As for `QodSession`, the schema carries every rule, so `kubectl apply` of a bad manifest is
//! refused with a message that names the field.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The finalizer that keeps a provider while QodSessions use it (hold a session there, or name
/// it in `providerRef`), so no session is left at a provider the operator no longer knows.
pub const PROVIDER_FINALIZER: &str = "qod.dev/provider";

/// A DNS-1123 subdomain: what Kubernetes accepts as the name of a Secret or a custom resource.
const DNS1123_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// An http(s) URL without user info, query or fragment: URLs end up in logs, errors and printer
/// columns, so they must never carry a credential (the client refuses the same at build time).
const HTTP_URL: &str = r"^https?://[^\s/?#@]+(/[^\s?#]*)?$";

/// Where a QoD API is and how to authenticate to it; shared by both provider kinds. Exactly one
/// of `camara` and `networkAsCode`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("has(self.camara) != has(self.networkAsCode)")
        .message("spec needs exactly one of camara or networkAsCode")
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// A CAMARA Quality-on-Demand API (v1 by default; v0.11 and v0.10 selectable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camara: Option<CamaraProvider>,
    /// Nokia Network as Code (RapidAPI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_as_code: Option<NetworkAsCodeProvider>,
    /// The most sessions alive at the same time through this provider; no limit when absent.
    #[schemars(range(min = 1, max = 1_000_000))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions: Option<u32>,
}

/// A CAMARA QoD provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CamaraProvider {
    /// Base URL of the API including its base path, e.g.
    /// https://api.example.com/quality-on-demand/v1 (http or https, no credentials, query or
    /// fragment).
    #[schemars(length(min = 8, max = 2048), regex(pattern = HTTP_URL))]
    pub url: String,
    /// The CAMARA QoD version the provider speaks: v1 (1.0, 1.1), v0.11 or v0.10.
    #[serde(default)]
    pub version: CamaraVersion,
    /// How to authenticate; no credentials are sent when absent (a provider behind a gateway
    /// that authenticates otherwise, or the simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<CamaraProviderAuth>,
    /// Base URL of the provider's CAMARA QoS Profiles API including its base path, e.g.
    /// https://api.example.com/qos-profiles/v1 (same credentials). When absent, a v1 provider
    /// whose url ends in /quality-on-demand/v1 is asked beside it; other versions have none.
    /// Profiles are listed as QosProfile resources and checked before a session is created.
    #[schemars(length(min = 8, max = 2048), regex(pattern = HTTP_URL))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_profiles_url: Option<String>,
}

/// The CAMARA QoD API versions the operator speaks.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CamaraVersion {
    #[default]
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "v0.11")]
    V0_11,
    #[serde(rename = "v0.10")]
    V0_10,
}

impl From<CamaraVersion> for crate::qod::ApiVersion {
    fn from(version: CamaraVersion) -> Self {
        match version {
            CamaraVersion::V1 => Self::V1,
            CamaraVersion::V0_11 => Self::V0_11,
            CamaraVersion::V0_10 => Self::V0_10,
        }
    }
}

/// Credentials of a CAMARA provider: exactly one of `oauth2` and `bearerTokenSecretRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(
    validation = Rule::new("has(self.oauth2) != has(self.bearerTokenSecretRef)")
        .message("auth needs exactly one of oauth2 or bearerTokenSecretRef")
)]
#[serde(rename_all = "camelCase")]
pub struct CamaraProviderAuth {
    /// OAuth2 client credentials; the access token is cached until shortly before it expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
    /// A Secret key holding a static bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret_ref: Option<SecretKeyRef>,
}

/// OAuth2 client credentials grant (RFC 6749 section 4.4).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    /// The token endpoint, e.g. https://auth.example.com/oauth2/token.
    #[schemars(length(min = 8, max = 2048), regex(pattern = HTTP_URL))]
    pub token_url: String,
    /// The client id the provider issued.
    #[schemars(length(min = 1, max = 1024))]
    pub client_id: String,
    /// The Secret key holding the client secret.
    pub client_secret_secret_ref: SecretKeyRef,
}

/// Nokia Network as Code.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAsCodeProvider {
    /// The host (and optional path prefix) the QoD paths are appended to, e.g.
    /// https://network-as-code.p-eu.rapidapi.com.
    #[schemars(length(min = 8, max = 2048), regex(pattern = HTTP_URL))]
    pub url: String,
    /// The Secret key holding the RapidAPI application key (sent as X-RapidAPI-Key).
    pub api_key_secret_ref: SecretKeyRef,
    /// The X-RapidAPI-Host header; network-as-code.nokia.rapidapi.com when absent.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9.:-]+$"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rapid_api_host: Option<String>,
}

/// One key of a Secret: in the QodProvider's own namespace, or in the operator's namespace for
/// a ClusterQodProvider. The operator reads only the Secrets it is pointed at.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
    /// The key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A provider for the QodSessions of its own namespace.
// Each printer column repeats `type_ = "string"`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "qod.dev",
    version = "v1alpha1",
    kind = "QodProvider",
    plural = "qodproviders",
    namespaced,
    shortname = "qodp",
    status = "ProviderStatus",
    doc = "A QoD provider (CAMARA or Network as Code) for the QodSessions of this namespace: its API, URL and credentials by Secret reference.",
    printcolumn(name = "CAMARA", type_ = "string", json_path = ".spec.camara.url"),
    printcolumn(name = "NaC", type_ = "string", json_path = ".spec.networkAsCode.url"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.camara.version",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(name = "Sessions", type_ = "integer", json_path = ".status.sessions"),
    printcolumn(
        name = "Max-Sessions",
        type_ = "integer",
        json_path = ".spec.maxSessions",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct QodProviderSpec {
    #[serde(flatten)]
    pub provider: ProviderSpec,
}

/// A provider for the QodSessions of every namespace its selector picks.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "qod.dev",
    version = "v1alpha1",
    kind = "ClusterQodProvider",
    plural = "clusterqodproviders",
    shortname = "cqodp",
    status = "ProviderStatus",
    doc = "A cluster-wide QoD provider (CAMARA or Network as Code) for the QodSessions of the namespaces its namespaceSelector picks: its API, URL and credentials by reference to Secrets in the operator's namespace.",
    printcolumn(name = "CAMARA", type_ = "string", json_path = ".spec.camara.url"),
    printcolumn(name = "NaC", type_ = "string", json_path = ".spec.networkAsCode.url"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".spec.camara.version",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(name = "Sessions", type_ = "integer", json_path = ".status.sessions"),
    printcolumn(
        name = "Max-Sessions",
        type_ = "integer",
        json_path = ".spec.maxSessions",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterQodProviderSpec {
    #[serde(flatten)]
    pub provider: ProviderSpec,
    /// The namespaces whose QodSessions may use this provider; every namespace when absent
    /// (an empty selector also selects every namespace).
    #[x_kube(
        validation = Rule::new("!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'] && ((e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0)))")
            .message("namespaceSelector.matchExpressions: operator must be In, NotIn, Exists or DoesNotExist; In and NotIn need values, Exists and DoesNotExist take none")
    )]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// What the operator reports about a provider.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderStatus {
    /// `Ready` is True while the credentials are found and accepted and the API answers.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Live sessions through this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<u32>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Which provider a QodSession uses. A QodProvider is always looked up in the session's own
/// namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ProviderRef {
    /// QodProvider (same namespace) or ClusterQodProvider.
    pub kind: ProviderKind,
    /// The provider's name.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub name: String,
}

impl ProviderRef {
    /// `<kind>/<name>`: how `status.provider` names the provider (a QodProvider's namespace is
    /// the session's).
    pub fn key(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// The reference a [`key`](Self::key) was made from.
    pub fn from_key(key: &str) -> Option<Self> {
        let (kind, name) = key.split_once('/')?;
        let kind = match kind {
            "QodProvider" => ProviderKind::QodProvider,
            "ClusterQodProvider" => ProviderKind::ClusterQodProvider,
            _ => return None,
        };
        (!name.is_empty() && !name.contains('/')).then(|| Self {
            kind,
            name: name.to_owned(),
        })
    }
}

/// The two provider kinds.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum ProviderKind {
    QodProvider,
    ClusterQodProvider,
}

impl ProviderKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QodProvider => "QodProvider",
            Self::ClusterQodProvider => "ClusterQodProvider",
        }
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
