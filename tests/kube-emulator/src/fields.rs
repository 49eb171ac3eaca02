//! Managed fields and server-side apply.
//!
//! Ownership is tracked per field manager in `metadata.managedFields` using the real
//! `FieldsV1` encoding (`f:spec`, `k:{"type":"Ready"}`, `.`), so kubectl and kube show the same
//! shape as on a cluster. What is kept: applying only the fields you send, removing fields
//! your manager applied before but no longer sends (unless someone else owns them), keyed-list
//! merging (conditions by `type`), shared ownership when two managers apply the same value,
//! `409 Conflict` when you apply a different value to a field another manager owns (unless
//! `force=true`, which takes the field over), and updates (PUT, merge/JSON patch) taking
//! ownership of the fields they change.
//!
//! Simplifications (not faithful): ownership is tracked at leaf and keyed-item granularity
//! only (no ownership of whole maps), lists without list-map keys are atomic leaves, `set`
//! lists are atomic, metadata fields other than labels, annotations, finalizers and
//! ownerReferences are not tracked, and managers are told apart by (manager, operation,
//! subresource) but not by apiVersion.

use crate::error::{ApiError, Cause, Subject};
use crate::listkeys;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// A path in `FieldsV1` element encoding: `f:name` or `k:{...}`.
pub type FieldPath = Vec<String>;
/// A set of owned paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Manager name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// apiVersion it was written through.
    pub api_version: String,
    /// Time of the last write.
    pub time: String,
    /// "" or "status".
    pub subresource: String,
    /// Owned fields.
    pub fields: FieldSet,
    /// The `fieldsV1` JSON this entry was read from, while `fields` is unchanged and encoding
    /// them again would give exactly this JSON: re-encoding every manager's fields on every
    /// write was a large part of a server-side apply.
    pub encoded: Option<Value>,
}

impl Entry {
    /// Replaces the owned fields, forgetting the encoded form only if they change.
    fn set_fields(&mut self, fields: FieldSet) {
        if self.fields != fields {
            self.fields = fields;
            self.encoded = None;
        }
    }

    /// Keeps only the fields `keep` accepts.
    fn retain_fields(&mut self, keep: impl FnMut(&FieldPath) -> bool) {
        let before = self.fields.len();
        self.fields.retain(keep);
        if self.fields.len() != before {
            self.encoded = None;
        }
    }
}

const UNTRACKED_META: &[&str] = &[
    "name",
    "namespace",
    "generateName",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The paths set in `value` (leaves and keyed items). At the root, `apiVersion`, `kind` and
/// identity metadata are skipped.
pub fn field_set(value: &Value, schema: Option<&Value>) -> FieldSet {
    let mut out = FieldSet::new();
    collect(value, schema, &mut Vec::new(), &mut out, true);
    out
}

fn collect(
    value: &Value,
    schema: Option<&Value>,
    prefix: &mut FieldPath,
    out: &mut FieldSet,
    root: bool,
) {
    let Some(map) = value.as_object() else {
        out.insert(prefix.clone());
        return;
    };
    if map.is_empty() && !root {
        out.insert(prefix.clone());
        return;
    }
    for (k, v) in map {
        if root && (k == "apiVersion" || k == "kind") {
            continue;
        }
        let child_schema = listkeys::child(schema, k);
        if root && k == "metadata" {
            if let Some(meta) = v.as_object() {
                prefix.push("f:metadata".to_string());
                for (mk, mv) in meta {
                    if UNTRACKED_META.contains(&mk.as_str()) {
                        continue;
                    }
                    prefix.push(format!("f:{mk}"));
                    collect_child(mv, None, mk, prefix, out);
                    prefix.pop();
                }
                prefix.pop();
            }
            continue;
        }
        prefix.push(format!("f:{k}"));
        collect_child(v, child_schema, k, prefix, out);
        prefix.pop();
    }
}

fn collect_child(
    v: &Value,
    schema: Option<&Value>,
    field: &str,
    prefix: &mut FieldPath,
    out: &mut FieldSet,
) {
    match v {
        Value::Object(m) if !m.is_empty() => collect(v, schema, prefix, out, false),
        // An empty keyed list owns nothing (an empty atomic list is a leaf).
        Value::Array(items)
            if items.is_empty() && listkeys::map_keys(schema, field, items).is_some() => {}
        Value::Array(items) if !items.is_empty() => {
            match listkeys::map_keys(schema, field, items) {
                Some(keys) => {
                    let item_schema = listkeys::items(schema);
                    for item in items {
                        let key = listkeys::item_key(item, &keys);
                        prefix.push(format!("k:{}", Value::Object(key)));
                        out.insert(prefix.clone());
                        collect(item, item_schema, prefix, out, false);
                        prefix.pop();
                    }
                }
                None => {
                    out.insert(prefix.clone());
                }
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Encodes a set as `FieldsV1` JSON.
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        insert_path(&mut root, path);
    }
    Value::Object(root)
}

fn insert_path(node: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let next = node
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if !next.is_object() {
        *next = Value::Object(Map::new());
    }
    if let Some(m) = next.as_object_mut() {
        if rest.is_empty() {
            if first.starts_with("k:") {
                m.insert(".".to_string(), json!({}));
            }
        } else {
            insert_path(m, rest);
        }
    }
}

/// Decodes `FieldsV1` JSON.
pub fn from_fields_v1(value: &Value) -> FieldSet {
    fn walk(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        for (k, child) in m {
            if k == "." {
                out.insert(prefix.clone());
                continue;
            }
            prefix.push(k.clone());
            if child.as_object().is_none_or(Map::is_empty) {
                out.insert(prefix.clone());
            } else {
                walk(child, prefix, out);
            }
            prefix.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// Whether `to_fields_v1(&from_fields_v1(v))` gives `v` back: objects all the way down, `.`
/// (as `{}`) only directly under a `k:` element, and no empty `k:` element.
fn is_canonical(v: &Value) -> bool {
    fn node(m: &Map<String, Value>, keyed: bool) -> bool {
        if keyed && m.is_empty() {
            return false;
        }
        m.iter().all(|(k, child)| {
            if k == "." {
                return keyed && child.as_object().is_some_and(Map::is_empty);
            }
            child
                .as_object()
                .is_some_and(|c| node(c, k.starts_with("k:")))
        })
    }
    v.as_object().is_some_and(|m| node(m, false))
}

/// Takes `metadata.managedFields` out of `obj`, decoded (the JSON is moved into the entries,
/// not copied, and goes back with [`set_entries`]).
pub fn take_entries(obj: &mut Value) -> Vec<Entry> {
    let Some(Value::Array(list)) =
        crate::meta::metadata_mut(obj).and_then(|m| m.remove("managedFields"))
    else {
        return Vec::new();
    };
    list.into_iter()
        .map(|mut e| {
            let mut text = |k: &str| match e.get_mut(k) {
                Some(Value::String(s)) => std::mem::take(s),
                _ => String::new(),
            };
            let (manager, operation, api_version, time, subresource) = (
                text("manager"),
                text("operation"),
                text("apiVersion"),
                text("time"),
                text("subresource"),
            );
            let raw = e.get_mut("fieldsV1").map(Value::take);
            let fields = raw.as_ref().map(from_fields_v1).unwrap_or_default();
            Entry {
                manager,
                operation,
                api_version,
                time,
                subresource,
                fields,
                encoded: raw.filter(is_canonical),
            }
        })
        .collect()
}

/// Writes `metadata.managedFields` (entries with no fields are dropped).
pub fn set_entries(obj: &mut Value, list: Vec<Entry>) {
    let encoded: Vec<Value> = list
        .into_iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let fields_v1 = match e.encoded {
                Some(v) => v,
                None => to_fields_v1(&e.fields),
            };
            let mut m = Map::new();
            m.insert("manager".into(), Value::String(e.manager));
            m.insert("operation".into(), Value::String(e.operation));
            m.insert("apiVersion".into(), Value::String(e.api_version));
            m.insert("time".into(), Value::String(e.time));
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), fields_v1);
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), Value::String(e.subresource));
            }
            Value::Object(m)
        })
        .collect();
    crate::meta::set_meta(
        obj,
        "managedFields",
        if encoded.is_empty() {
            None
        } else {
            Some(Value::Array(encoded))
        },
    );
}

fn parse_key(elem: &str) -> Option<Map<String, Value>> {
    elem.strip_prefix("k:")
        .and_then(|k| serde_json::from_str::<Map<String, Value>>(k).ok())
}

/// The value at a path.
pub fn get_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for elem in path {
        if let Some(f) = elem.strip_prefix("f:") {
            cur = cur.get(f)?;
        } else {
            let key = parse_key(elem)?;
            let keys: Vec<String> = key.keys().cloned().collect();
            cur = cur
                .as_array()?
                .iter()
                .find(|i| listkeys::item_matches(i, &keys, &key))?;
        }
    }
    Some(cur)
}

fn get_at_mut<'a>(obj: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let mut cur = obj;
    for elem in path {
        if let Some(f) = elem.strip_prefix("f:") {
            cur = cur.get_mut(f)?;
        } else {
            let key = parse_key(elem)?;
            let keys: Vec<String> = key.keys().cloned().collect();
            cur = cur
                .as_array_mut()?
                .iter_mut()
                .find(|i| listkeys::item_matches(i, &keys, &key))?;
        }
    }
    Some(cur)
}

/// Removes the field or keyed item at a path (no-op when absent).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let Some(parent) = get_at_mut(obj, parent_path) else {
        return;
    };
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = parent.as_object_mut() {
            m.remove(f);
        }
    } else if let (Some(key), Some(list)) = (parse_key(last), parent.as_array_mut()) {
        let keys: Vec<String> = key.keys().cloned().collect();
        list.retain(|i| !listkeys::item_matches(i, &keys, &key));
    }
}

fn owns_under(set: &FieldSet, path: &FieldPath) -> bool {
    set.iter().any(|p| p.starts_with(path))
}

/// Merges an applied configuration into the live object: maps recursively, keyed lists by
/// key, anything else replaced.
pub fn merge_applied(live: &mut Value, applied: &Value, schema: Option<&Value>, field: &str) {
    match (live.as_object_mut(), applied.as_object()) {
        (Some(lmap), Some(amap)) => {
            for (k, av) in amap {
                let child_schema = listkeys::child(schema, k);
                match lmap.get_mut(k) {
                    Some(lv) => merge_applied(lv, av, child_schema, k),
                    None => {
                        lmap.insert(k.clone(), av.clone());
                    }
                }
            }
            return;
        }
        (None, Some(_)) => {
            *live = applied.clone();
            return;
        }
        _ => {}
    }
    if let (Some(litems), Some(aitems)) = (live.as_array_mut(), applied.as_array())
        && let Some(keys) = listkeys::map_keys(schema, field, aitems)
    {
        let item_schema = listkeys::items(schema);
        for aitem in aitems {
            let key = listkeys::item_key(aitem, &keys);
            match litems
                .iter_mut()
                .find(|l| listkeys::item_matches(l, &keys, &key))
            {
                Some(litem) => merge_applied(litem, aitem, item_schema, ""),
                None => litems.push(aitem.clone()),
            }
        }
        return;
    }
    *live = applied.clone();
}

/// Changed paths between two versions of an object (leaf/keyed-item granularity).
pub fn changed_paths(old: &Value, new: &Value, schema: Option<&Value>) -> FieldSet {
    let old_set = field_set(old, schema);
    let new_set = field_set(new, schema);
    new_set
        .into_iter()
        .filter(|p| !old_set.contains(p) || get_at(old, p) != get_at(new, p))
        .collect()
}

/// Records a non-apply write by `manager`: it owns what it changed; others lose those fields
/// and anything that no longer exists.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    schema: Option<&Value>,
) {
    // Start from what the caller put on `new` (the stored entries, or ones the client rewrote).
    let mut list = take_entries(new);
    let changed = match old {
        Some(o) => changed_paths(o, new, schema),
        None => field_set(new, schema),
    };
    let present = field_set(new, schema);
    for e in &mut list {
        e.retain_fields(|p| present.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        let now = crate::meta::now_rfc3339();
        match list.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        }) {
            Some(e) => {
                let mut fields = std::mem::take(&mut e.fields);
                fields.extend(changed);
                e.fields = fields;
                e.encoded = None;
                e.time = now;
                e.api_version = api_version.to_string();
            }
            None => list.push(Entry {
                manager: manager.to_string(),
                operation: "Update".to_string(),
                api_version: api_version.to_string(),
                time: now,
                subresource: subresource.to_string(),
                fields: changed,
                encoded: None,
            }),
        }
    }
    set_entries(new, list);
}

/// Inputs of one server-side apply.
pub struct ApplyRequest<'a> {
    /// Field manager.
    pub manager: &'a str,
    /// "" or "status".
    pub subresource: &'a str,
    /// `force=true`.
    pub force: bool,
    /// apiVersion used.
    pub api_version: &'a str,
    /// Schema of the type (custom resources).
    pub schema: Option<&'a Value>,
    /// For error messages.
    pub subject: Box<Subject>,
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Whether `path` was set by client-side apply (it is in the last-applied annotation) and the
/// live value still equals what was applied then.
fn last_applied_allows(live: &Value, path: &FieldPath, schema: Option<&Value>) -> bool {
    let Some(text) = crate::meta::metadata(live)
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
    else {
        return false;
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    field_set(&last, schema).contains(path) && get_at(&last, path) == get_at(live, path)
}

/// Applies `applied` to `live` (an empty object when creating) and returns the merged object
/// with updated managedFields, or a 409 naming every conflicting field.
pub fn apply(live: &Value, applied: &Value, req: &ApplyRequest<'_>) -> Result<Value, ApiError> {
    let applied_set = field_set(applied, req.schema);
    // managedFields move from the copy into `list` and back; the copy is also the result.
    let mut merged = live.clone();
    let mut list = take_entries(&mut merged);
    let is_self = |e: &Entry| {
        e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource
    };
    let mut conflicts: Vec<(String, String, FieldPath)> = Vec::new();
    for e in list.iter().filter(|e| !is_self(e)) {
        for p in applied_set.intersection(&e.fields) {
            if p.last().is_some_and(|l| l.starts_with("k:")) {
                continue;
            }
            if get_at(live, p) != get_at(applied, p) {
                conflicts.push((e.manager.clone(), e.api_version.clone(), p.clone()));
            }
        }
    }
    // The real server's "last applied manager": `kubectl apply --server-side` may take over
    // fields that client-side apply set, when the live value still equals the
    // last-applied-configuration annotation.
    let csa_takeover = !conflicts.is_empty()
        && req.manager == "kubectl"
        && conflicts
            .iter()
            .all(|(_, _, p)| last_applied_allows(live, p, req.schema));
    let force = req.force || csa_takeover;
    if !conflicts.is_empty() && !force {
        let render = |p: &FieldPath| {
            let mut s = String::new();
            for elem in p {
                if let Some(f) = elem.strip_prefix("f:") {
                    s.push('.');
                    s.push_str(f);
                } else if let Some(k) = elem.strip_prefix("k:") {
                    s.push('[');
                    s.push_str(k);
                    s.push(']');
                }
            }
            s
        };
        let causes: Vec<Cause> = conflicts
            .iter()
            .map(|(m, v, p)| {
                Cause::new(
                    "FieldManagerConflict",
                    render(p),
                    format!("conflict with \"{m}\" using {v}"),
                )
            })
            .collect();
        let n = causes.len();
        let body: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.message, c.field))
            .collect();
        return Err(ApiError::ApplyConflict {
            subject: req.subject.clone(),
            message: format!(
                "Apply failed with {n} conflict{}: {}",
                if n == 1 { "" } else { "s" },
                body.join("\n")
            ),
            causes,
        });
    }
    // Fields this manager applied before and no longer sends are removed, unless another
    // manager still owns them (or something beneath them).
    let previous: FieldSet = list
        .iter()
        .find(|e| is_self(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut dropped: Vec<&FieldPath> = previous.difference(&applied_set).collect();
    // Shallow paths first: a keyed item is matched by its key fields, so it must go before
    // those fields do (removing a child of an already removed item is a no-op).
    dropped.sort_by_key(|p| p.len());
    for p in dropped {
        let owned_by_other = list
            .iter()
            .filter(|e| !is_self(e))
            .any(|e| owns_under(&e.fields, p));
        if !owned_by_other {
            remove_at(&mut merged, p);
        }
    }
    merge_applied(&mut merged, applied, req.schema, "");
    if force {
        let taken: BTreeSet<&FieldPath> = conflicts.iter().map(|(_, _, p)| p).collect();
        for e in list.iter_mut().filter(|e| !is_self(e)) {
            e.retain_fields(|p| !taken.contains(p));
        }
    }
    let now = crate::meta::now_rfc3339();
    match list.iter_mut().find(|e| is_self(e)) {
        Some(e) => {
            e.set_fields(applied_set);
            e.time = now;
            e.api_version = req.api_version.to_string();
        }
        None => list.push(Entry {
            manager: req.manager.to_string(),
            operation: "Apply".to_string(),
            api_version: req.api_version.to_string(),
            time: now,
            subresource: req.subresource.to_string(),
            fields: applied_set,
            encoded: None,
        }),
    }
    set_entries(&mut merged, list);
    Ok(merged)
}
