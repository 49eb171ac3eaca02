//! Where list items are merged by key instead of replaced.
//!
//! Server-side apply, strategic merge patch and managed-fields tracking all need to know which
//! lists are "maps" keyed by some fields (`conditions` by `type`, `containers` by `name`). For
//! custom resources this comes from the CRD schema (`x-kubernetes-list-type: map` and
//! `x-kubernetes-list-map-keys`); for built-in types, which carry no schema here, a small table
//! of the well-known keyed lists stands in for their Go struct tags.

use serde_json::Value;

/// The schema of field `field` under the object schema `schema`.
pub fn child<'a>(schema: Option<&'a Value>, field: &str) -> Option<&'a Value> {
    let s = schema?;
    s.get("properties")
        .and_then(|p| p.get(field))
        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
}

/// The item schema of an array schema.
pub fn items(schema: Option<&Value>) -> Option<&Value> {
    schema?.get("items")
}

fn builtin_keys(field: &str) -> Option<Vec<String>> {
    let keys: &[&str] = match field {
        "conditions" => &["type"],
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "secrets" => &["name"],
        "volumeMounts" => &["mountPath"],
        "ownerReferences" => &["uid"],
        "ports" => &["port"],
        _ => return None,
    };
    Some(keys.iter().map(|k| k.to_string()).collect())
}

/// The merge keys of the list stored in `field`, if it is a keyed list. `schema` is the list's
/// own schema (None when unknown, e.g. built-in types).
pub fn map_keys(schema: Option<&Value>, field: &str, sample: &[Value]) -> Option<Vec<String>> {
    if let Some(s) = schema {
        if s.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
            let keys: Vec<String> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| {
                    k.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if !keys.is_empty() {
                return Some(keys);
            }
        }
        if s.get("type").is_some() {
            return None;
        }
    }
    let mut keys = builtin_keys(field)?;
    if field == "ports"
        && sample
            .iter()
            .any(|i| i.get("containerPort").is_some() && i.get("port").is_none())
    {
        keys = vec!["containerPort".to_string()];
    }
    if sample.iter().all(Value::is_object) {
        Some(keys)
    } else {
        None
    }
}

/// The key of one list item: the key fields present in it, in key order.
pub fn item_key(item: &Value, keys: &[String]) -> serde_json::Map<String, Value> {
    keys.iter()
        .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}

/// Whether `item` has exactly the key `key`.
pub fn item_matches(item: &Value, keys: &[String], key: &serde_json::Map<String, Value>) -> bool {
    keys.iter().all(|k| item.get(k) == key.get(k))
}
