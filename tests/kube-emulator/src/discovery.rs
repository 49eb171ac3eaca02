//! Discovery and OpenAPI documents: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{g}`,
//! `/apis/{g}/{v}`, `/openapi/v2` and `/openapi/v3`.
//!
//! Discovery is the legacy (unaggregated) form; kubectl asks for aggregated discovery first,
//! gets plain JSON back and falls back, as it does with older servers. OpenAPI v3 publishes
//! one document per group/version with a PATCH operation per resource that declares the
//! `fieldValidation` parameter (so kubectl uses server-side field validation and needs no
//! client-side schema) and the patch media types the resource accepts (no strategic merge for
//! custom resources). `/openapi/v2` answers with an empty protobuf document: kubectl then
//! computes strategic merge patches for built-in types from its compiled-in types, as it does
//! when a type is missing from the server's v2 document.

use crate::registry::{Registry, ResourceType};
use serde_json::{Map, Value, json};

/// The Kubernetes version the emulator claims.
pub const MAJOR: &str = "1";
/// Minor version.
pub const MINOR: &str = "35";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "emulationMajor": MAJOR,
        "emulationMinor": MINOR,
        "gitVersion": format!("v{MAJOR}.{MINOR}.0-kube-emulator"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// `/api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = list.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": list, "preferredVersion": preferred})
}

/// `/apis`.
pub fn groups(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(name, versions)| group_json(name, versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn group(reg: &Registry, name: &str) -> Option<Value> {
    let groups = reg.groups();
    let versions = groups.get(name)?;
    let mut g = group_json(name, versions);
    if let Some(m) = g.as_object_mut() {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    Some(g)
}

/// The verbs a resource supports.
pub fn verbs(rt: &ResourceType) -> Vec<&'static str> {
    let mut v = vec![
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    if rt.plural == "namespaces" {
        v.retain(|x| *x != "deletecollection");
    }
    v
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for rt in reg.in_group_version(group, version) {
        let mut r = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": verbs(rt),
        });
        if let Some(m) = r.as_object_mut() {
            if !rt.short_names.is_empty() {
                m.insert("shortNames".into(), json!(rt.short_names));
            }
            if !rt.categories.is_empty() {
                m.insert("categories".into(), json!(rt.categories));
            }
        }
        resources.push(r);
        if rt.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        if rt.group.is_empty() && rt.plural == "serviceaccounts" {
            resources.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// The hash kubectl caches OpenAPI v3 documents under (changes with the registry).
fn doc_hash(reg: &Registry, gv: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325 ^ reg.generation;
    for b in gv.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_v3_index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = reg
        .all()
        .map(|t| (t.group.clone(), t.version.clone()))
        .collect();
    gvs.sort();
    gvs.dedup();
    for (g, v) in gvs {
        let key = if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        };
        let url = format!("/openapi/v3/{key}?hash={}", doc_hash(reg, &key));
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

fn schema_name(rt: &ResourceType) -> String {
    let group: Vec<&str> = if rt.group.is_empty() {
        vec!["io", "k8s", "api", "core"]
    } else {
        rt.group.split('.').rev().collect()
    };
    format!("{}.{}.{}", group.join("."), rt.version, rt.kind)
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{g}/{v}`.
pub fn openapi_v3_doc(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for rt in reg.in_group_version(group, version) {
        let gvk = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
        let name = schema_name(rt);
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        let mut content = Map::new();
        for ct in [
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/apply-patch+yaml",
        ] {
            content.insert(ct.to_string(), json!({"schema": {"type": "object"}}));
        }
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
            {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
        ]);
        let prefix = if rt.group.is_empty() {
            format!("/api/{}", rt.version)
        } else {
            format!("/apis/{}/{}", rt.group, rt.version)
        };
        let item_path = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
        } else {
            format!("{prefix}/{}/{{name}}", rt.plural)
        };
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}});
        paths.insert(
            item_path,
            json!({
                "get": {"operationId": format!("read{}", rt.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
                "put": {"operationId": format!("replace{}", rt.kind), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk, "parameters": params, "requestBody": {"content": {"application/json": {"schema": reference}}}, "responses": ok},
                "patch": {"operationId": format!("patch{}", rt.kind), "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk, "parameters": params, "requestBody": {"content": content}, "responses": ok},
            }),
        );
        let mut schema = rt.raw_schema().cloned().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        if let Some(m) = schema.as_object_mut() {
            m.insert("x-kubernetes-group-version-kind".into(), json!([gvk]));
        }
        schemas.insert(name, schema);
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{MAJOR}.{MINOR}.0")},
        "paths": paths,
        "components": {"schemas": schemas}
    }))
}
