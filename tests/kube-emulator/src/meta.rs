//! Helpers to read and write `metadata` on objects held as `serde_json::Value`.
//!
//! The emulator stores every object as JSON, so these accessors are the one place that knows
//! where names, labels, finalizers and timestamps live.

use serde_json::{Map, Value};

/// `metadata` of an object, if it is a map.
pub fn metadata(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created when absent.
pub fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    let root = obj.as_object_mut()?;
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
}

/// A string field of `metadata` (empty when absent).
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    metadata(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Sets (or with `None` removes) a field of `metadata`.
pub fn set_meta(obj: &mut Value, field: &str, value: Option<Value>) {
    if let Some(meta) = metadata_mut(obj) {
        match value {
            Some(v) => {
                meta.insert(field.to_string(), v);
            }
            None => {
                meta.remove(field);
            }
        }
    }
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// `metadata.resourceVersion`.
pub fn resource_version(obj: &Value) -> &str {
    meta_str(obj, "resourceVersion")
}

/// `metadata.labels` as string pairs (non-string values are ignored).
pub fn labels(obj: &Value) -> Vec<(String, String)> {
    metadata(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    metadata(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    metadata(obj)
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

/// `metadata.generation` (0 when absent).
pub fn generation(obj: &Value) -> i64 {
    metadata(obj)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Current time in the RFC 3339 second precision the API server uses.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    let secs = now.as_second();
    jiff::Timestamp::from_second(secs)
        .unwrap_or(now)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Current time in the microsecond precision used by `MicroTime` fields (managedFields uses
/// seconds; events use micro).
pub fn parse_time(value: &str) -> Option<jiff::Timestamp> {
    value.parse::<jiff::Timestamp>().ok()
}

/// Whether two versions of an object are equal apart from `metadata.resourceVersion` and the
/// timestamps inside `metadata.managedFields`, i.e. whether an update changed anything (a write
/// that only refreshes a manager's timestamp is a no-op, as on the real server; a new manager
/// or new owned fields is not). Compares in place: copying both objects per write was costly.
pub fn same_ignoring_bookkeeping(a: &Value, b: &Value) -> bool {
    let (Some(am), Some(bm)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    same_except(am, bm, &["metadata"]) && {
        match (am.get("metadata"), bm.get("metadata")) {
            (Some(Value::Object(ma)), Some(Value::Object(mb))) => {
                same_except(ma, mb, &["resourceVersion", "managedFields"])
                    && same_managed_fields(ma.get("managedFields"), mb.get("managedFields"))
            }
            (x, y) => x == y,
        }
    }
}

/// Equal managedFields lists, ignoring each entry's `time`.
fn same_managed_fields(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(ex, ey)| match (ex, ey) {
                    (Value::Object(mx), Value::Object(my)) => same_except(mx, my, &["time"]),
                    _ => ex == ey,
                })
        }
        _ => a == b,
    }
}

/// Whether two objects, both with `metadata`, are equal apart from `status` and
/// `metadata.managedFields`.
pub fn same_apart_from_status(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(am), Some(bm)) => {
            same_except(am, bm, &["status", "metadata"])
                && match (metadata(a), metadata(b)) {
                    (Some(ma), Some(mb)) => same_except(ma, mb, &["managedFields"]),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// Whether two maps are equal once the keys in `skip` are left out of both.
fn same_except(a: &Map<String, Value>, b: &Map<String, Value>, skip: &[&str]) -> bool {
    let kept = |m: &Map<String, Value>| m.keys().filter(|k| !skip.contains(&k.as_str())).count();
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// Whether two versions of an object are equal without `metadata`, `apiVersion` and `kind`
/// (and `status` when `ignore_status`), i.e. whether `metadata.generation` must stay.
pub fn same_spec(a: &Value, b: &Value, ignore_status: bool) -> bool {
    let skip: &[&str] = if ignore_status {
        &["metadata", "apiVersion", "kind", "status"]
    } else {
        &["metadata", "apiVersion", "kind"]
    };
    match (a.as_object(), b.as_object()) {
        (Some(am), Some(bm)) => same_except(am, bm, skip),
        _ => a == b,
    }
}

/// Validates a DNS-1123 subdomain (most object names). Returns the problem, if any.
pub fn check_dns_subdomain(name: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    if name.len() > 253 {
        return Some("must be no more than 253 characters".to_string());
    }
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok { None } else { Some(MSG.to_string()) }
}

/// Validates a DNS-1123 label (namespace names). Returns the problem, if any.
pub fn check_dns_label(name: &str) -> Option<String> {
    const MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    if name.len() > 63 {
        return Some("must be no more than 63 characters".to_string());
    }
    if name.contains('.') {
        return Some(MSG.to_string());
    }
    check_dns_subdomain(name).map(|_| MSG.to_string())
}

/// Renders a JSON value the way the real server shows it in `Invalid value: X` messages.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Array(_) => "\"array\"".to_string(),
        Value::Object(_) => "\"object\"".to_string(),
    }
}
