//! The `as=Table` response format used by `kubectl get`.
//!
//! Custom resources get their CRD's `additionalPrinterColumns` (after the Name column),
//! evaluated with a small JSONPath subset (`.a.b`, `[n]`, `[*]`, `['key']`,
//! `[?(@.field=="value")]`); date columns become ages (`5m`, `3h`) as on the real server.
//! Built-in types get Name and Age only (the real server has a hand-written printer per type).

use crate::registry::ResourceType;
use serde_json::{Value, json};

/// Whether the Accept header asks for metadata only (`as=PartialObjectMetadata[List]`).
pub fn wants_metadata(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
}

/// An object reduced to `PartialObjectMetadata`.
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

#[derive(Debug)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn parse_path(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let s = path.trim().trim_start_matches('{').trim_end_matches('}');
    let s = s.strip_prefix('$').unwrap_or(s);
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let start = i + 1;
                let mut depth = 1;
                i += 1;
                while i < chars.len() && depth > 0 {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                let inner: String = chars[start..i.saturating_sub(1)].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
                {
                    if let Some((k, v)) = f.split_once("==") {
                        let v = v.trim().trim_matches(['"', '\'']);
                        steps.push(Step::Filter(k.trim().to_string(), v.to_string()));
                    }
                } else {
                    steps.push(Step::Field(inner.trim_matches(['"', '\'']).to_string()));
                }
            }
            _ => i += 1,
        }
    }
    steps
}

/// Evaluates a JSONPath subset; returns every match.
pub fn eval(obj: &Value, path: &str) -> Vec<Value> {
    let mut cur = vec![obj.clone()];
    for step in parse_path(path) {
        let mut next = Vec::new();
        for v in cur {
            match &step {
                Step::Field(f) => {
                    if let Some(x) = v.get(f) {
                        next.push(x.clone());
                    }
                }
                Step::Index(n) => {
                    if let Some(x) = v.get(*n) {
                        next.push(x.clone());
                    }
                }
                Step::All => match v {
                    Value::Array(a) => next.extend(a),
                    Value::Object(m) => next.extend(m.into_iter().map(|(_, x)| x)),
                    _ => {}
                },
                Step::Filter(k, want) => {
                    if let Some(a) = v.as_array() {
                        for item in a {
                            let got = item.get(k).map(|g| match g {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            });
                            if got.as_deref() == Some(want.as_str()) {
                                next.push(item.clone());
                            }
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

/// A Kubernetes-style short age: `45s`, `3m20s`, `15m`, `2h5m`, `5h`, `3d4h`, `20d`, `2y`.
pub fn human_age(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 730 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age_of(ts: &str) -> Value {
    match crate::meta::parse_time(ts) {
        Some(t) => {
            let secs = jiff::Timestamp::now().as_second() - t.as_second();
            json!(human_age(secs))
        }
        None => json!("<invalid>"),
    }
}

fn cell(type_: &str, values: Vec<Value>) -> Value {
    let Some(first) = values.first() else {
        return Value::Null;
    };
    match type_ {
        "date" => match first.as_str() {
            Some(ts) => age_of(ts),
            None => Value::Null,
        },
        "integer" | "number" | "boolean" if values.len() == 1 => first.clone(),
        _ => {
            let parts: Vec<String> = values
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            json!(parts.join(" "))
        }
    }
}

/// Builds a Table from objects; `include` is the `includeObject` parameter.
pub fn build(rt: &ResourceType, items: &[Value], list_meta: Value, include: &str) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace. Cannot be updated.", "priority": 0}),
    ];
    let custom: Vec<&crate::registry::PrinterColumn> = rt.printer_columns.iter().collect();
    let use_age = custom.is_empty();
    for c in &custom {
        columns.push(json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}));
    }
    if use_age {
        columns.push(json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|obj| {
            let mut cells = vec![json!(crate::meta::name(obj))];
            for c in &custom {
                cells.push(cell(&c.type_, eval(obj, &c.json_path)));
            }
            if use_age {
                cells.push(age_of(crate::meta::meta_str(obj, "creationTimestamp")));
            }
            let mut row = json!({"cells": cells});
            let object = match include {
                "None" => None,
                "Object" => Some(obj.clone()),
                _ => Some(partial(obj)),
            };
            if let (Some(o), Some(m)) = (object, row.as_object_mut()) {
                m.insert("object".into(), o);
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}
