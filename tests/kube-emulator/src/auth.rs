//! Authentication (bearer tokens) and authorization (an [`Authorizer`] hook with an RBAC
//! implementation).
//!
//! Every request is mapped to a [`UserInfo`] from its bearer token (or `system:anonymous`
//! without one), then the configured authorizer decides on its [`Attributes`] — the same
//! verb/group/resource/namespace/name tuple the real server's RBAC sees. [`AlwaysAllow`] is the
//! default; [`Rbac`] evaluates Roles, ClusterRoles and their bindings from the store, giving
//! `system:masters` members everything, as the real server does.

use crate::store::Store;
use serde_json::Value;

/// Who is making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name, e.g. `admin` or `system:serviceaccount:ns:name`.
    pub name: String,
    /// Groups, e.g. `system:masters`, `system:serviceaccounts`.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The admin user written into the kubeconfig.
    pub fn admin() -> Self {
        Self {
            name: "kube-emulator-admin".to_string(),
            groups: vec![
                "system:masters".to_string(),
                "system:authenticated".to_string(),
            ],
        }
    }

    /// The anonymous user (no token).
    pub fn anonymous() -> Self {
        Self {
            name: "system:anonymous".to_string(),
            groups: vec!["system:unauthenticated".to_string()],
        }
    }

    /// A service account user.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_string(),
            ],
        }
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection (or the HTTP verb in
    /// lower case for non-resource paths).
    pub verb: String,
    /// API group.
    pub group: String,
    /// Plural resource ("" for non-resource requests).
    pub resource: String,
    /// Subresource ("" for none).
    pub subresource: String,
    /// Namespace ("" for cluster scope).
    pub namespace: String,
    /// Object name ("" for collections).
    pub name: String,
    /// Request path, for non-resource requests.
    pub path: String,
}

/// Decides whether a user may do something. Implement it to plug in another policy.
pub trait Authorizer: Send + Sync + std::fmt::Debug {
    /// `Ok(())` to allow, `Err(reason)` to deny.
    fn authorize(&self, store: &Store, user: &UserInfo, attrs: &Attributes) -> Result<(), String>;
}

/// Allows everything (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _: &Store, _: &UserInfo, _: &Attributes) -> Result<(), String> {
        Ok(())
    }
}

/// Evaluates RBAC objects held in the store.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rbac;

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn subject_matches(subject: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = subject.get("name").and_then(Value::as_str).unwrap_or("");
    match kind {
        "User" => user.name == name,
        "Group" => user.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = subject
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let verbs = strs(rule.get("verbs"));
    let verb_ok = verbs.iter().any(|v| *v == "*" || *v == attrs.verb);
    if !verb_ok {
        return false;
    }
    if attrs.resource.is_empty() {
        return strs(rule.get("nonResourceURLs")).iter().any(|u| {
            *u == "*"
                || *u == attrs.path
                || u.strip_suffix('*')
                    .is_some_and(|p| attrs.path.starts_with(p))
        });
    }
    let groups = strs(rule.get("apiGroups"));
    if !groups.iter().any(|g| *g == "*" || *g == attrs.group) {
        return false;
    }
    let full = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resources = strs(rule.get("resources"));
    let res_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == full
            || (attrs.subresource.is_empty() && *r == attrs.resource)
            || r.strip_prefix("*/").is_some_and(|s| s == attrs.subresource)
            || r.strip_suffix("/*")
                .is_some_and(|p| p == attrs.resource && !attrs.subresource.is_empty())
    });
    if !res_ok {
        return false;
    }
    let names = strs(rule.get("resourceNames"));
    names.is_empty() || names.iter().any(|n| *n == attrs.name)
}

impl Rbac {
    fn role_rules<'a>(store: &'a Store, role_ref: &Value, binding_ns: &str) -> Vec<&'a Value> {
        let kind = role_ref.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
        let (resource, ns) = if kind == "ClusterRole" {
            ("clusterroles", "")
        } else {
            ("roles", binding_ns)
        };
        let key = crate::registry::StorageKey {
            group: "rbac.authorization.k8s.io".to_string(),
            resource: resource.to_string(),
        };
        store
            .get(&key, ns, name)
            .and_then(|r| r.get("rules"))
            .and_then(Value::as_array)
            .map(|rules| rules.iter().collect())
            .unwrap_or_default()
    }
}

const DISCOVERY_PREFIXES: &[&str] = &[
    "/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz",
];

impl Authorizer for Rbac {
    fn authorize(&self, store: &Store, user: &UserInfo, attrs: &Attributes) -> Result<(), String> {
        if user.groups.iter().any(|g| g == "system:masters") {
            return Ok(());
        }
        // The system:discovery / system:public-info-viewer roles of a real cluster.
        if attrs.resource.is_empty()
            && attrs.verb == "get"
            && DISCOVERY_PREFIXES
                .iter()
                .any(|p| attrs.path == *p || attrs.path.starts_with(&format!("{p}/")))
        {
            return Ok(());
        }
        let rbac = |resource: &str| crate::registry::StorageKey {
            group: "rbac.authorization.k8s.io".to_string(),
            resource: resource.to_string(),
        };
        for (_, crb) in store.list(&rbac("clusterrolebindings"), None) {
            let subjects = crb.get("subjects").and_then(Value::as_array);
            if subjects.is_some_and(|s| s.iter().any(|s| subject_matches(s, user, ""))) {
                let role_ref = crb.get("roleRef").cloned().unwrap_or(Value::Null);
                if Self::role_rules(store, &role_ref, "")
                    .iter()
                    .any(|r| rule_allows(r, attrs))
                {
                    return Ok(());
                }
            }
        }
        if !attrs.namespace.is_empty() {
            for (_, rb) in store.list(&rbac("rolebindings"), Some(&attrs.namespace)) {
                let subjects = rb.get("subjects").and_then(Value::as_array);
                if subjects
                    .is_some_and(|s| s.iter().any(|s| subject_matches(s, user, &attrs.namespace)))
                {
                    let role_ref = rb.get("roleRef").cloned().unwrap_or(Value::Null);
                    if Self::role_rules(store, &role_ref, &attrs.namespace)
                        .iter()
                        .any(|r| rule_allows(r, attrs))
                    {
                        return Ok(());
                    }
                }
            }
        }
        Err(String::new())
    }
}

/// The Forbidden message the real server writes.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    if attrs.resource.is_empty() {
        return format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            user.name, attrs.verb, attrs.path
        );
    }
    let qualified = if attrs.group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.group)
    };
    let full_resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let head = if attrs.name.is_empty() {
        qualified
    } else {
        format!("{qualified} \"{}\"", attrs.name)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", attrs.namespace)
    };
    format!(
        "{head} is forbidden: User \"{}\" cannot {} resource \"{full_resource}\" in API group \"{}\" {scope}",
        user.name, attrs.verb, attrs.group
    )
}
