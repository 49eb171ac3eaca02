//! Patch types other than server-side apply: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902, including `test`), and strategic merge patch for built-in types.
//!
//! Strategic merge is a simplification of the real one: maps merge recursively, lists known to
//! be keyed (see [`crate::listkeys`]) merge by key, other lists are replaced, and the
//! `$patch: delete|replace`, `$retainKeys`, `$deleteFromPrimitiveList/…` and
//! `$setElementOrder/…` directives are honoured (the last only by being ignored).

use crate::error::{ApiError, Cause, Subject};
use crate::listkeys;
use serde_json::{Map, Value};

/// The patch types the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml` (and `+cbor` is refused).
    Apply,
}

impl PatchType {
    /// From the request Content-Type.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }
}

/// The 415 the real server returns for a patch type a resource does not support.
pub fn unsupported(custom: bool) -> ApiError {
    let types = if custom {
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    } else {
        "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    };
    ApiError::UnsupportedMediaType(format!(
        "the body of the request was in an unknown format - accepted media types include: {types}"
    ))
}

fn patch_invalid(subject: &Subject, patch: &str, err: String) -> ApiError {
    ApiError::Invalid {
        subject: Box::new(Subject {
            group: String::new(),
            resource: subject.resource.clone(),
            kind: String::new(),
            name: String::new(),
        }),
        causes: vec![Cause::new(
            "FieldValueInvalid",
            "patch",
            format!("Invalid value: {patch:?}: {err}"),
        )],
    }
}

/// Applies an RFC 6902 JSON patch. Like the real server (evanphx/json-patch), a `test` for
/// `null` passes when the path is absent. A failed operation is `422 Invalid`.
pub fn json_patch(target: &Value, body: &[u8], subject: &Subject) -> Result<Value, ApiError> {
    let ops: Vec<json_patch::PatchOperation> = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
    let raw = String::from_utf8_lossy(body).to_string();
    let mut doc = target.clone();
    for op in &ops {
        if let json_patch::PatchOperation::Test(t) = op
            && t.value.is_null()
        {
            let found = doc.pointer(t.path.as_str());
            if found.is_none_or(Value::is_null) {
                continue;
            }
            return Err(patch_invalid(
                subject,
                &raw,
                format!("testing value {} failed: test failed", t.path),
            ));
        }
        json_patch::patch(&mut doc, std::slice::from_ref(op))
            .map_err(|e| patch_invalid(subject, &raw, e.to_string()))?;
    }
    Ok(doc)
}

/// Applies an RFC 7386 JSON merge patch.
pub fn merge_patch(target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::BadRequest(
            "json: cannot unmarshal non-object into Go value of type map[string]interface {}"
                .to_string(),
        ));
    }
    let mut doc = target.clone();
    json_patch::merge(&mut doc, &patch);
    Ok(doc)
}

/// Applies a strategic merge patch (built-in types only; see the module docs).
pub fn strategic_merge(target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding patch: {e}")))?;
    let mut doc = target.clone();
    smp_object(&mut doc, &patch);
    Ok(doc)
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn smp_object(target: &mut Value, patch: &Value) {
    let Some(pmap) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if pmap.get("$patch").and_then(Value::as_str) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(tmap) = target.as_object_mut() else {
        return;
    };
    for (k, v) in pmap {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) = (tmap.get_mut(field), v.as_array()) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                tmap.remove(k);
            }
            Value::Object(_) => {
                if v.get("$patch").and_then(Value::as_str) == Some("delete") {
                    tmap.remove(k);
                } else {
                    smp_object(tmap.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
            Value::Array(items) => {
                let keys = listkeys::map_keys(None, k, items);
                match (keys, tmap.get_mut(k)) {
                    (Some(keys), Some(Value::Array(existing))) => {
                        merge_keyed_list(existing, items, &keys);
                    }
                    _ => {
                        tmap.insert(
                            k.clone(),
                            Value::Array(
                                items
                                    .iter()
                                    .filter(|i| i.get("$patch").is_none())
                                    .map(strip_directives)
                                    .collect(),
                            ),
                        );
                    }
                }
            }
            other => {
                tmap.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(retain)) = pmap.get("$retainKeys") {
        tmap.retain(|k, _| retain.iter().any(|r| r.as_str() == Some(k)));
    }
}

fn merge_keyed_list(existing: &mut Vec<Value>, patch_items: &[Value], keys: &[String]) {
    for item in patch_items {
        let key = listkeys::item_key(item, keys);
        let pos = existing
            .iter()
            .position(|e| listkeys::item_matches(e, keys, &key));
        let directive = item.get("$patch").and_then(Value::as_str);
        match (pos, directive) {
            (Some(i), Some("delete")) => {
                existing.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), Some("replace")) => existing[i] = strip_directives(item),
            (Some(i), _) => smp_object(&mut existing[i], item),
            (None, _) => existing.push(strip_directives(item)),
        }
    }
}
