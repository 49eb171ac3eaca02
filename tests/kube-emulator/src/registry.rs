//! The resource registry: which group/version/resources the server serves.
//!
//! Built-in types are listed here once; custom resources are added when a
//! `CustomResourceDefinition` is created or updated and removed when it is deleted. Discovery,
//! OpenAPI, routing and validation all read from this registry, so a CRD becomes usable the
//! moment its POST returns.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One printer column of a CRD version (`additionalPrinterColumns`).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Header.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    /// Optional OpenAPI format.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 = shown by default, >0 only with `-o wide`.
    pub priority: i64,
    /// JSONPath relative to the object, e.g. `.spec.duration`.
    pub json_path: String,
}

/// One served group/version/resource.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group ("" for core).
    pub group: String,
    /// Version, e.g. `v1`.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories (`kubectl get all`, `kubectl get qod`).
    pub categories: Vec<String>,
    /// Whether the `status` subresource exists.
    pub status_subresource: bool,
    /// Printer columns (custom resources only).
    pub printer_columns: Vec<PrinterColumn>,
    /// The version's `openAPIV3Schema` (custom resources only), prepared for validation and
    /// shared, as every request clones its type.
    pub schema: Option<Arc<crate::validation::Schema>>,
    /// Name of the CRD that registered this type, `None` for built-ins.
    pub crd: Option<String>,
    /// Whether `metadata.generation` is maintained.
    pub tracks_generation: bool,
    /// Whether this is the storage version (objects are stored with this apiVersion).
    pub storage: bool,
}

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The raw `openAPIV3Schema`, if any.
    pub fn raw_schema(&self) -> Option<&Value> {
        self.schema.as_deref().map(crate::validation::Schema::raw)
    }

    /// Whether this type is a custom resource.
    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    /// The key objects of this type are stored under (shared by all versions).
    pub fn storage_key(&self) -> StorageKey {
        StorageKey {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    /// A subject for error messages about `name`.
    pub fn subject(&self, name: &str) -> Box<crate::error::Subject> {
        Box::new(crate::error::Subject {
            group: self.group.clone(),
            resource: self.plural.clone(),
            kind: self.kind.clone(),
            name: name.to_string(),
        })
    }
}

/// Where objects of one resource are stored (all versions share it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorageKey {
    /// API group.
    pub group: String,
    /// Plural resource.
    pub resource: String,
}

/// All served types, keyed by (group, version, plural).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// Shared: every request takes its type out of the registry.
    types: BTreeMap<(String, String, String), Arc<ResourceType>>,
    /// Grows on every change; used as the OpenAPI hash and discovery ETag.
    pub generation: u64,
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    generation: bool,
}

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        status: false,
        generation: false,
    }
}

impl Builtin {
    /// Has a status subresource.
    const fn status(mut self) -> Self {
        self.status = true;
        self
    }

    /// Maintains metadata.generation.
    const fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
}

const BUILTINS: &[Builtin] = &[
    b("", "v1", "namespaces", "Namespace", false, &["ns"]).status(),
    b("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
    b("", "v1", "secrets", "Secret", true, &[]),
    b("", "v1", "events", "Event", true, &["ev"]),
    b("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
    b("", "v1", "services", "Service", true, &["svc"]).status(),
    b("", "v1", "pods", "Pod", true, &["po"]).status(),
    b("", "v1", "endpoints", "Endpoints", true, &["ep"]),
    b(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
    )
    .status(),
    b("", "v1", "nodes", "Node", false, &["no"]).status(),
    b("apps", "v1", "deployments", "Deployment", true, &["deploy"])
        .status()
        .generation(),
    b("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"])
        .status()
        .generation(),
    b("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"])
        .status()
        .generation(),
    b("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"])
        .status()
        .generation(),
    b("batch", "v1", "jobs", "Job", true, &[])
        .status()
        .generation(),
    b("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
    b("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
    ),
    b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
    ),
    b(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
    )
    .status()
    .generation(),
    b(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
    )
    .generation(),
    b(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
    )
    .status()
    .generation(),
    b(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
    )
    .status(),
    b(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        &[],
    )
    .generation(),
    b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
    )
    .status()
    .generation(),
];

impl Registry {
    /// A registry holding the built-in types.
    pub fn with_builtins() -> Self {
        let mut reg = Registry::default();
        for bt in BUILTINS {
            let rt = ResourceType {
                group: bt.group.to_string(),
                version: bt.version.to_string(),
                plural: bt.plural.to_string(),
                singular: bt.kind.to_lowercase(),
                kind: bt.kind.to_string(),
                namespaced: bt.namespaced,
                short_names: bt.short.iter().map(|s| s.to_string()).collect(),
                categories: if matches!(
                    bt.plural,
                    "pods"
                        | "services"
                        | "deployments"
                        | "statefulsets"
                        | "daemonsets"
                        | "replicasets"
                        | "jobs"
                ) {
                    vec!["all".to_string()]
                } else {
                    Vec::new()
                },
                status_subresource: bt.status,
                printer_columns: Vec::new(),
                schema: None,
                crd: None,
                tracks_generation: bt.generation,
                storage: true,
            };
            reg.insert(rt);
        }
        reg
    }

    fn insert(&mut self, rt: ResourceType) {
        self.types.insert(
            (rt.group.clone(), rt.version.clone(), rt.plural.clone()),
            Arc::new(rt),
        );
        self.generation += 1;
    }

    /// Finds a served type.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceType>> {
        self.types
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
    }

    /// The storage version of a resource (for objects touched through another version).
    pub fn storage_type(&self, key: &StorageKey) -> Option<&Arc<ResourceType>> {
        self.types
            .values()
            .filter(|t| t.group == key.group && t.plural == key.resource)
            .find(|t| t.storage)
    }

    /// All served types.
    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Group names with their versions, in a stable order (core group excluded).
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.types.values() {
            if t.group.is_empty() {
                continue;
            }
            let versions = out.entry(t.group.clone()).or_default();
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        for versions in out.values_mut() {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }

    /// Types in one group/version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceType>> + 'a {
        self.types
            .values()
            .filter(move |t| t.group == group && t.version == version)
    }

    /// Registers (or replaces) the types defined by a CRD object.
    pub fn register_crd(&mut self, crd: &Value) {
        self.unregister_crd(crate::meta::name(crd));
        for rt in types_from_crd(crd) {
            self.insert(rt);
        }
    }

    /// Removes the types a CRD registered.
    pub fn unregister_crd(&mut self, crd_name: &str) {
        let before = self.types.len();
        self.types.retain(|_, t| t.crd.as_deref() != Some(crd_name));
        if self.types.len() != before {
            self.generation += 1;
        }
    }
}

/// Kubernetes version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u64, u64) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    (level, major, num.parse().unwrap_or(0))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn strings_at(v: &Value, path: &[&str]) -> Vec<String> {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return Vec::new(),
        }
    }
    cur.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The served types a CRD defines (one per served version).
pub fn types_from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = crd.get("spec").cloned().unwrap_or(Value::Null);
    let group = str_at(&spec, &["group"]).to_string();
    let plural = str_at(&spec, &["names", "plural"]).to_string();
    let kind = str_at(&spec, &["names", "kind"]).to_string();
    let singular = match str_at(&spec, &["names", "singular"]) {
        "" => kind.to_lowercase(),
        s => s.to_string(),
    };
    let namespaced = str_at(&spec, &["scope"]) != "Cluster";
    let short_names = strings_at(&spec, &["names", "shortNames"]);
    let categories = strings_at(&spec, &["names", "categories"]);
    let crd_name = crate::meta::name(crd).to_string();
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .map(|v| {
            let printer_columns = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .map(|cols| {
                    cols.iter()
                        .map(|c| PrinterColumn {
                            name: str_at(c, &["name"]).to_string(),
                            type_: str_at(c, &["type"]).to_string(),
                            format: str_at(c, &["format"]).to_string(),
                            description: str_at(c, &["description"]).to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            json_path: str_at(c, &["jsonPath"]).to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            ResourceType {
                group: group.clone(),
                version: str_at(v, &["name"]).to_string(),
                plural: plural.clone(),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced,
                short_names: short_names.clone(),
                categories: categories.clone(),
                status_subresource: v
                    .get("subresources")
                    .and_then(|s| s.get("status"))
                    .is_some(),
                printer_columns,
                schema: v
                    .get("schema")
                    .and_then(|s| s.get("openAPIV3Schema"))
                    .map(|s| Arc::new(crate::validation::Schema::new(s.clone()))),
                crd: Some(crd_name.clone()),
                tracks_generation: true,
                storage: v.get("storage").and_then(Value::as_bool).unwrap_or(true),
            }
        })
        .collect()
}
