//! Objects a fresh cluster has: the `default`, `kube-system`, `kube-public` and
//! `kube-node-lease` namespaces, and the `default` service account in each.

use crate::store::Store;
use serde_json::json;

/// Creates the initial objects.
pub fn seed(store: &mut Store) {
    let now = crate::meta::now_rfc3339();
    let ns_key = crate::registry::StorageKey {
        group: String::new(),
        resource: "namespaces".to_string(),
    };
    let sa_key = crate::registry::StorageKey {
        group: String::new(),
        resource: "serviceaccounts".to_string(),
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        store.put(
            &ns_key,
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "uid": uuid::Uuid::new_v4().to_string(),
                    "creationTimestamp": now,
                    "labels": {"kubernetes.io/metadata.name": ns},
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }),
        );
        store.put(
            &sa_key,
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": "default",
                    "namespace": ns,
                    "uid": uuid::Uuid::new_v4().to_string(),
                    "creationTimestamp": now,
                },
            }),
        );
    }
}
