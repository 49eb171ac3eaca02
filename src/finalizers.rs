//! The finalizer patches both controllers send (QodSessions, and the provider resources).

use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

/// A merge patch adding `finalizer` to `object`'s list, guarded by the resourceVersion the list
/// was read at, so a finalizer another controller added meanwhile is never dropped. Callers may
/// add more to its `metadata`.
pub fn addition<K: Resource>(object: &K, finalizer: &str) -> Value {
    let mut finalizers = object.finalizers().to_vec();
    finalizers.push(finalizer.to_owned());
    json!({
        "metadata": {
            "resourceVersion": object.resource_version(),
            "finalizers": finalizers,
        }
    })
}

/// A JSON patch removing `finalizer` at the index `object` holds it, testing that it is still
/// there. Unlike a resourceVersion guard, this does not conflict with status writes made
/// meanwhile, and the test still keeps a list someone else changed from being cut at the wrong
/// place. `None` when `object` does not hold it.
pub fn removal<K: Resource>(
    object: &K,
    finalizer: &str,
) -> Result<Option<json_patch::Patch>, serde_json::Error> {
    let Some(index) = object.finalizers().iter().position(|f| f == finalizer) else {
        return Ok(None);
    };
    let path = format!("/metadata/finalizers/{index}");
    serde_json::from_value(json!([
        {"op": "test", "path": path, "value": finalizer},
        {"op": "remove", "path": path},
    ]))
    .map(Some)
}
