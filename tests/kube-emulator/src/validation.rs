//! Custom resource validation against the CRD's `openAPIV3Schema`.
//!
//! The order follows the real API server: unknown fields are pruned (unless the schema says
//! `x-kubernetes-preserve-unknown-fields`), `default`s are applied, the structural schema is
//! checked (types, required, enum, pattern, formats, bounds, list-map keys), and finally the
//! `x-kubernetes-validations` CEL rules run through the `kube-cel` crate (with `oldSelf` on
//! updates). Every problem becomes one [`Cause`] with the field path and message the real
//! server uses, e.g. `spec.duration: Invalid value: 0: spec.duration in body should be greater
//! than or equal to 1`.

use crate::error::Cause;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Compiled `pattern`s by their text.
type Patterns = HashMap<String, Result<regex::Regex, String>>;

/// A CRD version's `openAPIV3Schema` with the expensive parts of validation prepared once, when
/// the CRD is registered: compiling every `pattern` regex and CEL rule on every write was most
/// of the emulator's CPU. A CRD change registers new types, so nothing here goes stale.
#[derive(Debug)]
pub struct Schema {
    raw: Value,
    /// `None` when the schema has no `x-kubernetes-validations` at all.
    cel: Option<kube_cel::CompiledSchema>,
    /// Every `pattern` in the schema, compiled (or why it does not compile).
    patterns: Patterns,
}

impl Schema {
    /// Prepares `raw` (an `openAPIV3Schema`).
    pub fn new(raw: Value) -> Self {
        let cel = has_cel_rules(&raw).then(|| kube_cel::compile_schema(&raw));
        let mut patterns = HashMap::new();
        collect_patterns(&raw, &mut patterns);
        Self { raw, cel, patterns }
    }

    /// The schema as the CRD gives it.
    pub fn raw(&self) -> &Value {
        &self.raw
    }
}

fn has_cel_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => {
            m.contains_key("x-kubernetes-validations") || m.values().any(has_cel_rules)
        }
        Value::Array(items) => items.iter().any(has_cel_rules),
        _ => false,
    }
}

fn collect_patterns(schema: &Value, out: &mut Patterns) {
    match schema {
        Value::Object(m) => {
            if let Some(p) = m.get("pattern").and_then(Value::as_str)
                && !out.contains_key(p)
            {
                out.insert(
                    p.to_string(),
                    regex::Regex::new(p).map_err(|e| e.to_string()),
                );
            }
            for v in m.values() {
                collect_patterns(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_patterns(v, out)),
        _ => {}
    }
}

/// What pruning removed: the paths of unknown fields (`spec.foo`).
pub type Pruned = Vec<String>;

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes fields the schema does not declare. `root` keeps `apiVersion`, `kind` and
/// `metadata` (the real server prunes metadata to ObjectMeta itself).
pub fn prune(schema: &Value, value: &mut Value, path: &str, root: bool, pruned: &mut Pruned) {
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields")
                || schema.get("additionalProperties").and_then(Value::as_bool) == Some(true);
            let embedded = is_true(schema, "x-kubernetes-embedded-resource");
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = join(path, &key);
                let keep_meta = (root || embedded)
                    && matches!(key.as_str(), "apiVersion" | "kind" | "metadata");
                if let Some(child_schema) = props.and_then(|p| p.get(&key)) {
                    if keep_meta && key == "metadata" {
                        continue;
                    }
                    if let Some(child) = map.get_mut(&key) {
                        prune(child_schema, child, &child_path, false, pruned);
                    }
                } else if let Some(add) = additional {
                    if let Some(child) = map.get_mut(&key) {
                        prune(add, child, &child_path, false, pruned);
                    }
                } else if keep_meta || preserve {
                    continue;
                } else {
                    map.remove(&key);
                    pruned.push(child_path);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &format!("{path}[{i}]"), false, pruned);
                }
            }
        }
        _ => {}
    }
}

/// Applies `default` values where a field is absent (or null and not nullable) inside an
/// object that exists, recursively.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (key, prop) in props {
                    let nullable = is_true(prop, "nullable");
                    let missing = match map.get(key) {
                        None => true,
                        Some(Value::Null) => !nullable,
                        Some(_) => false,
                    };
                    if missing && let Some(default) = prop.get("default") {
                        map.insert(key.clone(), default.clone());
                    }
                }
                for (key, prop) in props {
                    if let Some(child) = map.get_mut(key) {
                        apply_defaults(prop, child);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child in map.values_mut() {
                    apply_defaults(add, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items.iter_mut() {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => is_integer(value),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    }
}

/// Formats a number the way Go's `%v` does for the limits in messages (`1`, not `1.0`).
fn num(value: &Value) -> String {
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => f.to_string(),
        None => value.to_string(),
    }
}

fn invalid(causes: &mut Vec<Cause>, path: &str, value: &Value, msg: String) {
    causes.push(Cause::new(
        "FieldValueInvalid",
        path,
        format!(
            "Invalid value: {}: {path} in body {msg}",
            crate::meta::render_value(value)
        ),
    ));
}

fn check_format(format: &str, s: &str) -> bool {
    use std::net::{Ipv4Addr, Ipv6Addr};
    match format {
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            let bits: Option<u8> = bits.parse().ok();
            match (ip.parse::<Ipv4Addr>(), ip.parse::<Ipv6Addr>(), bits) {
                (Ok(_), _, Some(b)) => b <= 32,
                (_, Ok(_), Some(b)) => b <= 128,
                _ => false,
            }
        }),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => uuid::Uuid::parse_str(s).is_ok() && s.len() == 36,
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10,
        "byte" => {
            s.len().is_multiple_of(4)
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=')
        }
        "hostname" => crate::meta::check_dns_subdomain(&s.to_ascii_lowercase()).is_none(),
        "email" => s
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.')),
        "mac" => {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            parts.len() == 6
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        "uri" => s.split_once(':').is_some_and(|(scheme, _)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }),
        _ => true,
    }
}

/// Checks `value` against `schema`, pushing one cause per problem.
pub fn validate(schema: &Schema, value: &Value, causes: &mut Vec<Cause>) {
    check(&schema.patterns, &schema.raw, value, "", causes);
}

/// [`validate`] for one schema node, with the schema's compiled patterns at hand.
fn check(patterns: &Patterns, schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() {
        if is_true(schema, "nullable") {
            return;
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!("Invalid value: \"null\": {path} in body must be of type {t}: \"null\""),
            ));
        }
        return;
    }
    if is_true(schema, "x-kubernetes-int-or-string") {
        if !(is_integer(value) || value.is_string()) {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{t}\": {path} in body must be of type integer,string: \"{t}\"",
                    t = type_name(value)
                ),
            ));
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str)
        && !type_matches(t, value)
    {
        causes.push(Cause::new(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"{given}\": {path} in body must be of type {t}: \"{given}\"",
                given = type_name(value)
            ),
        ));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(crate::meta::render_value).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {}: supported values: {}",
                crate::meta::render_value(value),
                list.join(", ")
            ),
        ));
    }
    validate_combinators(patterns, schema, value, path, causes);
    match value {
        Value::String(s) => validate_string(patterns, schema, value, s, path, causes),
        Value::Number(_) => validate_number(schema, value, path, causes),
        Value::Array(items) => validate_array(patterns, schema, value, items, path, causes),
        Value::Object(map) => validate_object(patterns, schema, map, path, causes),
        _ => {}
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not` (structural schemas use them for validation only; their
/// properties are hoisted to the parent, so they never affect pruning).
fn validate_combinators(
    patterns: &Patterns,
    schema: &Value,
    value: &Value,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let passes = |sub: &Value| {
        let mut tmp = Vec::new();
        check(patterns, sub, value, path, &mut tmp);
        tmp.is_empty()
    };
    let shown = format!("\"{}\"", type_name(value));
    let mut fail = |what: &str| {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {shown}: {path} in body {what}"),
        ));
    };
    if let Some(all) = schema.get("allOf").and_then(Value::as_array)
        && !all.iter().all(passes)
    {
        fail("must validate all the schemas (allOf)");
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(passes)
    {
        fail("must validate at least one schema (anyOf)");
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array)
        && one.iter().filter(|s| passes(s)).count() != 1
    {
        fail("must validate one and only one schema (oneOf)");
    }
    if let Some(not) = schema.get("not")
        && passes(not)
    {
        fail("must not validate the schema (not)");
    }
}

fn validate_string(
    patterns: &Patterns,
    schema: &Value,
    value: &Value,
    s: &str,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        invalid(
            causes,
            path,
            value,
            format!("should be at least {min} chars long"),
        );
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        causes.push(Cause::new(
            "FieldValueTooLong",
            path,
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        // Every pattern of the schema was compiled up front; a miss cannot happen, but is
        // handled by compiling on the spot. Borrowed, not cloned: a cloned Regex starts with
        // empty search caches.
        let fallback;
        let compiled = match patterns.get(pattern) {
            Some(c) => c,
            None => {
                fallback = regex::Regex::new(pattern).map_err(|e| e.to_string());
                &fallback
            }
        };
        match compiled {
            Ok(re) if !re.is_match(s) => {
                invalid(causes, path, value, format!("should match '{pattern}'"));
            }
            Ok(_) => {}
            Err(e) => invalid(causes, path, value, format!("has an unusable pattern: {e}")),
        }
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !check_format(format, s)
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {s:?}: {path} in body must be of type {format}: {s:?}"),
        ));
    }
}

fn validate_number(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(v) = value.as_f64() else { return };
    if let Some(min) = schema.get("minimum") {
        let exclusive = is_true(schema, "exclusiveMinimum");
        let m = min.as_f64().unwrap_or(f64::MIN);
        if exclusive && v <= m {
            invalid(
                causes,
                path,
                value,
                format!("should be greater than {}", num(min)),
            );
        } else if !exclusive && v < m {
            invalid(
                causes,
                path,
                value,
                format!("should be greater than or equal to {}", num(min)),
            );
        }
    }
    if let Some(max) = schema.get("maximum") {
        let exclusive = is_true(schema, "exclusiveMaximum");
        let m = max.as_f64().unwrap_or(f64::MAX);
        if exclusive && v >= m {
            invalid(
                causes,
                path,
                value,
                format!("should be less than {}", num(max)),
            );
        } else if !exclusive && v > m {
            invalid(
                causes,
                path,
                value,
                format!("should be less than or equal to {}", num(max)),
            );
        }
    }
    if let Some(step) = schema.get("multipleOf").and_then(Value::as_f64)
        && step != 0.0
        && (v / step).fract() != 0.0
    {
        invalid(
            causes,
            path,
            value,
            format!("should be a multiple of {}", num(&Value::from(step))),
        );
    }
}

fn validate_array(
    patterns: &Patterns,
    schema: &Value,
    value: &Value,
    items: &[Value],
    path: &str,
    causes: &mut Vec<Cause>,
) {
    let len = items.len() as u64;
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && len < min
    {
        let _ = value;
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {len}: {path} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && len > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {len}: must have at most {max} items"),
        ));
    }
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("map") {
        let keys: Vec<String> = schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|k| {
                k.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut seen: Vec<Value> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key: Map<String, Value> = keys
                .iter()
                .filter_map(|k| item.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            let key = Value::Object(key);
            if seen.contains(&key) {
                causes.push(Cause::new(
                    "FieldValueDuplicate",
                    format!("{path}[{i}]"),
                    format!("Duplicate value: {key}"),
                ));
            }
            seen.push(key);
        }
    }
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) == Some("set") {
        for (i, item) in items.iter().enumerate() {
            if items[..i].contains(item) {
                causes.push(Cause::new(
                    "FieldValueDuplicate",
                    format!("{path}[{i}]"),
                    format!("Duplicate value: {}", crate::meta::render_value(item)),
                ));
            }
        }
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(patterns, item_schema, item, &format!("{path}[{i}]"), causes);
        }
    }
}

fn validate_object(
    patterns: &Patterns,
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    causes: &mut Vec<Cause>,
) {
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                causes.push(Cause::new(
                    "FieldValueRequired",
                    join(path, key),
                    "Required value",
                ));
            }
        }
    }
    let count = map.len() as u64;
    if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
        && count < min
    {
        causes.push(Cause::new(
            "FieldValueInvalid",
            path,
            format!("Invalid value: {count}: {path} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && count > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path,
            format!("Too many: {count}: must have at most {max} items"),
        ));
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind") {
            continue;
        }
        if let Some(child_schema) = props.and_then(|p| p.get(key)) {
            check(patterns, child_schema, child, &join(path, key), causes);
        } else if let Some(add) = additional {
            check(patterns, add, child, &join(path, key), causes);
        }
    }
}

/// Resolves a kube-cel field path (`spec.items[0].name`) inside `obj`.
fn lookup<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = obj;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (field, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            cur = cur.get(field)?;
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let idx = idx.trim_end_matches(']');
            cur = match idx.parse::<usize>() {
                Ok(i) => cur.get(i)?,
                Err(_) => cur.get(idx.trim_matches(['\'', '"']))?,
            };
        }
    }
    Some(cur)
}

/// Evaluates the schema's `x-kubernetes-validations` rules (CEL) on `obj` (and `old` for
/// transition rules). Rules the CEL crate cannot evaluate reject the object (fail closed) with
/// a message that says so.
pub fn validate_cel(schema: &Schema, obj: &Value, old: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(compiled) = schema.cel.as_ref() else {
        return;
    };
    let mut errors = Vec::new();
    cel_from_rules(compiled, obj, old, String::new(), &mut errors);
    if errors.is_empty() {
        return;
    }
    // The compiled tree keeps properties in a HashMap, so errors come in no fixed order; sort
    // them into the schema walk's order (parents first, then fields by name, items by index).
    errors.sort_by_cached_key(|e| path_key(e.field_path.trim_start_matches('.')));
    for e in &errors {
        let path = e.field_path.trim_start_matches('.').to_string();
        let shown = lookup(obj, &path)
            .map(|v| format!("\"{}\"", type_name(v)))
            .unwrap_or_else(|| "\"object\"".to_string());
        let message = match e.kind {
            kube_cel::ErrorKind::ValidationFailure => e.message.clone(),
            _ => format!(
                "rule {:?} could not be evaluated by kube-emulator's CEL engine: {}",
                e.rule, e.message
            ),
        };
        let reason = e
            .reason
            .clone()
            .unwrap_or_else(|| "FieldValueInvalid".to_string());
        let (reason, text) = match reason.as_str() {
            "FieldValueRequired" => (reason.clone(), format!("Required value: {message}")),
            "FieldValueForbidden" => (reason.clone(), format!("Forbidden: {message}")),
            "FieldValueDuplicate" => (reason.clone(), format!("Duplicate value: {message}")),
            _ => (
                "FieldValueInvalid".to_string(),
                format!("Invalid value: {shown}: {message}"),
            ),
        };
        causes.push(Cause::new(&reason, path, text));
    }
}

/// Runs kube-cel from the topmost schema nodes that carry rules, each on its own part of the
/// object. kube-cel converts the whole value below every node it walks into CEL, so starting at
/// the root converted the entire object (managedFields, status, ...) several times over for
/// rules deep in `spec`. Above those nodes this walk follows kube-cel's own: declared
/// properties, array items, additionalProperties (unless unknown fields are preserved) and
/// allOf/oneOf/anyOf branches, with an absent property of `old` taking its schema default as
/// kube-cel's defaulting would give it (`obj` arrives already defaulted).
fn cel_from_rules(
    node: &kube_cel::CompiledSchema,
    value: &Value,
    old: Option<&Value>,
    path: String,
    out: &mut Vec<kube_cel::ValidationError>,
) {
    if !node.validations.is_empty() {
        if let Err(errors) = kube_cel::validate_compiled(node, value, old) {
            for mut e in errors.into_vec() {
                e.field_path = under(&path, &e.field_path);
                out.push(e);
            }
        }
        return;
    }
    if let Some(map) = value.as_object() {
        for (key, child) in &node.properties {
            if let Some(v) = field(Some(value), key, child) {
                let o = field(old, key, child);
                cel_from_rules(child, v, o, join(&path, key), out);
            }
        }
        if !node.preserve_unknown_fields
            && let Some(add) = node.additional_properties.as_deref()
        {
            for (key, v) in map {
                if !node.properties.contains_key(key) {
                    let o = old.and_then(|o| o.get(key));
                    cel_from_rules(add, v, o, join(&path, key), out);
                }
            }
        }
    }
    if let (Some(items), Some(list)) = (node.items.as_deref(), value.as_array()) {
        for (i, v) in list.iter().enumerate() {
            let o = old.and_then(Value::as_array).and_then(|a| a.get(i));
            cel_from_rules(items, v, o, format!("{path}[{i}]"), out);
        }
    }
    for branch in node.all_of.iter().chain(&node.one_of).chain(&node.any_of) {
        cel_from_rules(branch, value, old, path.clone(), out);
    }
}

/// Property `key` of `parent` as kube-cel sees it after defaulting.
fn field<'a>(
    parent: Option<&'a Value>,
    key: &str,
    child: &'a kube_cel::CompiledSchema,
) -> Option<&'a Value> {
    parent
        .and_then(Value::as_object)
        .and_then(|m| m.get(key).or(child.default.as_ref()))
}

/// A field path kube-cel reported relative to the node at `base`, made absolute the way
/// kube-cel joins paths itself.
fn under(base: &str, rel: &str) -> String {
    if base.is_empty() {
        rel.to_string()
    } else if rel.is_empty() {
        base.to_string()
    } else if rel.starts_with('.') || rel.starts_with('[') {
        format!("{base}{rel}")
    } else {
        format!("{base}.{rel}")
    }
}

/// One step of a field path (`spec`, `items`, `[3]`), ordered as the schema walk visits them.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Field(String),
    Index(usize),
}

/// `spec.ports[2].name` as steps, for ordering.
fn path_key(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (field, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            out.push(Step::Field(field.to_string()));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let idx = idx.trim_end_matches(']');
            out.push(match idx.parse() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Field(idx.to_string()),
            });
        }
    }
    out
}

/// Every `x-kubernetes-validations` rule in a CRD version's schema that does not compile, as
/// (field path below the schema, message). The real server refuses such a CRD.
pub fn cel_compile_errors(schema: &Value) -> Vec<(String, String)> {
    fn walk(
        node: &kube_cel::CompiledSchema,
        path: &str,
        raw: &Value,
        out: &mut Vec<(String, String)>,
    ) {
        let rules = raw
            .get("x-kubernetes-validations")
            .and_then(Value::as_array);
        for (i, result) in node.validations.iter().enumerate() {
            if let Err(e) = result {
                let rule = rules
                    .and_then(|r| r.get(i))
                    .and_then(|r| r.get("rule"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                out.push((
                    format!("{path}.x-kubernetes-validations[{i}].rule"),
                    format!("Invalid value: {rule:?}: compilation failed: {e}"),
                ));
            }
        }
        for (name, child) in &node.properties {
            let child_raw = raw
                .get("properties")
                .and_then(|p| p.get(name))
                .unwrap_or(&Value::Null);
            walk(child, &format!("{path}.properties[{name}]"), child_raw, out);
        }
        if let Some(items) = &node.items {
            walk(
                items,
                &format!("{path}.items"),
                raw.get("items").unwrap_or(&Value::Null),
                out,
            );
        }
        if let Some(add) = &node.additional_properties {
            let add_raw = raw.get("additionalProperties").unwrap_or(&Value::Null);
            walk(add, &format!("{path}.additionalProperties"), add_raw, out);
        }
    }
    if !has_cel_rules(schema) {
        return Vec::new();
    }
    let compiled = kube_cel::compile_schema(schema);
    let mut out = Vec::new();
    walk(&compiled, "", schema, &mut out);
    out.sort();
    out
}
