//! The verbs: get, list, create, update, patch, delete, deletecollection.
//!
//! Each function takes the locked [`Store`] and a resolved [`ResourceType`] and returns the
//! response body, keeping the real server's rules: namespaces must exist, names are generated
//! from `generateName`, `uid`/`creationTimestamp`/`generation` are set on create, stale
//! `resourceVersion`s conflict, `generation` grows only with the spec, the status subresource
//! splits writes, finalizers delay deletion, and custom resources are pruned, defaulted and
//! validated against their schema.

use crate::error::{ApiError, ApiResult, Cause, Subject};
use crate::fields;
use crate::meta;
use crate::patch::{self, PatchType};
use crate::registry::{ResourceType, StorageKey};
use crate::selectors::Selectors;
use crate::store::{IntoShared, Store, Stored};
use crate::validation;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop unknown fields and warn (the server default).
    #[default]
    Warn,
    /// Refuse unknown fields with 400.
    Strict,
}

/// Parameters of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteParams {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`, or the User-Agent's product name.
    pub field_manager: String,
    /// Whether the client named a field manager itself.
    pub explicit_manager: bool,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// `force` (apply only).
    pub force: bool,
}

/// A successful write.
#[derive(Debug, Clone)]
pub struct Written {
    /// HTTP status.
    pub code: u16,
    /// Response body (often the stored object itself, shared).
    pub body: Arc<Stored>,
    /// `Warning` headers.
    pub warnings: Vec<String>,
}

fn ok(code: u16, body: impl IntoShared) -> Written {
    Written {
        code,
        body: body.into_shared(),
        warnings: Vec::new(),
    }
}

/// The object as served through `rt`'s version.
pub fn present(rt: &ResourceType, obj: &Value) -> Value {
    present_owned(rt, obj.clone())
}

/// [`present`] for an object the caller owns (no copy).
pub fn present_owned(rt: &ResourceType, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    obj
}

/// Whether `obj` already reads as `rt`'s version (the usual case: it is stored in that one).
pub fn presents_as_is(rt: &ResourceType, obj: &Value) -> bool {
    let field = |k: &str| obj.get(k).and_then(Value::as_str);
    field("kind") == Some(rt.kind.as_str()) && field("apiVersion") == Some(&*rt.api_version())
}

/// [`present`] for a stored object: shared as is when nothing changes, copied otherwise.
pub fn present_shared(rt: &ResourceType, obj: &Arc<Stored>) -> Arc<Stored> {
    if presents_as_is(rt, obj) {
        obj.clone()
    } else {
        Arc::new(Stored::new(present(rt, obj)))
    }
}

fn ns_key() -> StorageKey {
    StorageKey {
        group: String::new(),
        resource: "namespaces".to_string(),
    }
}

fn is_crd_type(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions"
}

fn is_namespace_type(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

/// GET one object.
pub fn get(store: &Store, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Arc<Stored>> {
    store
        .get_shared(&rt.storage_key(), ns, name)
        .map(|o| present_shared(rt, o))
        .ok_or_else(|| ApiError::NotFound(rt.subject(name)))
}

/// LIST parameters.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// Selectors.
    pub selectors: Selectors,
    /// `limit` (0 = none).
    pub limit: usize,
    /// `continue` token.
    pub continue_token: Option<String>,
}

fn encode_token(rv: u64, ns: &str, name: &str) -> String {
    let raw = json!({"rv": rv, "ns": ns, "name": name}).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str) -> Option<(u64, String, String)> {
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    let v: Value = serde_json::from_slice(&bytes?).ok()?;
    Some((
        v.get("rv")?.as_u64()?,
        v.get("ns")?.as_str()?.to_string(),
        v.get("name")?.as_str()?.to_string(),
    ))
}

/// The items of a list and its `metadata`.
pub type Items = (Vec<Arc<Stored>>, Map<String, Value>);

/// The matching objects in key order (for LIST and Table).
pub fn list_items(
    store: &Store,
    rt: &ResourceType,
    ns: Option<&str>,
    lp: &ListParams,
) -> ApiResult<Items> {
    let mut list_rv = store.current_rv();
    let after = match &lp.continue_token {
        Some(t) => {
            let (rv, ns, name) = decode_token(t).ok_or_else(|| {
                ApiError::BadRequest("continue key is not valid: illegal base64 data".to_string())
            })?;
            if rv < store.compacted_rv() {
                return Err(ApiError::Gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".to_string(),
                ));
            }
            list_rv = rv;
            Some((ns, name))
        }
        None => None,
    };
    let mut items = Vec::new();
    let mut remaining = 0usize;
    let mut last_key = None;
    let mut truncated = false;
    for (key, obj) in store.list(&rt.storage_key(), ns) {
        if after.as_ref().is_some_and(|a| key <= a) {
            continue;
        }
        if !lp.selectors.matches(obj) {
            continue;
        }
        if lp.limit > 0 && items.len() >= lp.limit {
            truncated = true;
            remaining += 1;
            continue;
        }
        last_key = Some(key.clone());
        items.push(present_shared(rt, obj));
    }
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), json!(list_rv.to_string()));
    if truncated && let Some((lns, lname)) = last_key {
        meta.insert(
            "continue".into(),
            json!(encode_token(list_rv, &lns, &lname)),
        );
        if lp.selectors.is_empty() {
            meta.insert("remainingItemCount".into(), json!(remaining));
        }
    }
    Ok((items, meta))
}

/// A LIST response. Its items are the stored objects themselves, serialized (after the store
/// lock is released) without being copied into one big `Value` first.
#[derive(Debug)]
pub struct ListBody {
    /// `apiVersion`.
    pub api_version: String,
    /// `items`.
    pub items: Vec<Arc<Stored>>,
    /// `kind`.
    pub kind: String,
    /// `metadata`.
    pub metadata: Map<String, Value>,
}

impl Serialize for ListBody {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Items<'a>(&'a [Arc<Stored>]);
        impl Serialize for Items<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.iter().map(|v| &***v))
            }
        }
        // Keys in sorted order, as serde_json writes a `Value` object.
        let mut st = serializer.serialize_struct("List", 4)?;
        st.serialize_field("apiVersion", &self.api_version)?;
        st.serialize_field("items", &Items(&self.items))?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("metadata", &self.metadata)?;
        st.end()
    }
}

/// LIST.
pub fn list(
    store: &Store,
    rt: &ResourceType,
    ns: Option<&str>,
    lp: &ListParams,
) -> ApiResult<ListBody> {
    let (items, metadata) = list_items(store, rt, ns, lp)?;
    Ok(ListBody {
        api_version: rt.api_version(),
        items,
        kind: format!("{}List", rt.kind),
        metadata,
    })
}

fn check_type_meta(rt: &ResourceType, body: &Value) -> ApiResult<()> {
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or("");
    if !api_version.is_empty() && api_version != rt.api_version() {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            rt.api_version()
        )));
    }
    if !kind.is_empty() && kind != rt.kind {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            rt.kind
        )));
    }
    Ok(())
}

fn check_namespace_exists(
    store: &Store,
    ns: &str,
    creating: bool,
    subject: &Subject,
) -> ApiResult<()> {
    match store.get(&ns_key(), "", ns) {
        None => Err(ApiError::NotFound(Box::new(Subject {
            group: String::new(),
            resource: "namespaces".to_string(),
            kind: "Namespace".to_string(),
            name: ns.to_string(),
        }))),
        Some(n) if creating && meta::is_deleting(n) => Err(ApiError::NamespaceTerminating {
            subject: Box::new(subject.clone()),
            namespace: ns.to_string(),
        }),
        Some(_) => Ok(()),
    }
}

const GENERATE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generate_suffix() -> String {
    let id = uuid::Uuid::new_v4();
    id.as_bytes()
        .iter()
        .take(5)
        .map(|b| GENERATE_CHARS[(*b as usize) % GENERATE_CHARS.len()] as char)
        .collect()
}

/// Prunes, defaults and validates a custom resource. Returns warnings.
fn admit_custom(
    rt: &ResourceType,
    obj: &mut Value,
    old: Option<&Value>,
    p: &WriteParams,
) -> ApiResult<Vec<String>> {
    let Some(schema) = rt.schema.as_ref() else {
        return Ok(Vec::new());
    };
    let mut pruned = Vec::new();
    validation::prune(schema.raw(), obj, "", true, &mut pruned);
    let mut warnings = Vec::new();
    if !pruned.is_empty() {
        match p.field_validation {
            FieldValidation::Strict => {
                let list: Vec<String> = pruned
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "strict decoding error: {}",
                    list.join(", ")
                )));
            }
            FieldValidation::Warn => {
                warnings.extend(pruned.iter().map(|f| format!("unknown field \"{f}\"")));
            }
            FieldValidation::Ignore => {}
        }
    }
    validation::apply_defaults(schema.raw(), obj);
    let mut causes = Vec::new();
    validation::validate(schema, obj, &mut causes);
    if causes.is_empty() {
        validation::validate_cel(schema, obj, old, &mut causes);
    }
    if !causes.is_empty() {
        return Err(ApiError::Invalid {
            subject: rt.subject(meta::name(obj)),
            causes,
        });
    }
    Ok(warnings)
}

/// Checks and completes a CRD: its name, and the status a real server's CRD controller sets
/// (NamesAccepted and Established at once).
fn admit_crd(obj: &mut Value) -> ApiResult<()> {
    let spec = obj.get("spec").cloned().unwrap_or(Value::Null);
    let group = spec.get("group").and_then(Value::as_str).unwrap_or("");
    let plural = spec
        .pointer("/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = spec
        .pointer("/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = meta::name(obj).to_string();
    let subject = Box::new(Subject {
        group: "apiextensions.k8s.io".to_string(),
        resource: "customresourcedefinitions".to_string(),
        kind: "CustomResourceDefinition".to_string(),
        name: name.clone(),
    });
    let mut causes = Vec::new();
    if group.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.group",
            "Required value",
        ));
    }
    if plural.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if kind.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::new(
            "FieldValueRequired",
            "spec.versions",
            "Required value: must have exactly one version marked as storage version",
        ));
    }
    let storage: Vec<&Value> = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .collect();
    if !versions.is_empty() && storage.len() != 1 {
        causes.push(Cause::new(
            "FieldValueInvalid",
            "spec.versions",
            format!(
                "Invalid value: {:?}: must have exactly one version marked as storage version",
                "array"
            ),
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            for (path, message) in validation::cel_compile_errors(schema) {
                causes.push(Cause::new(
                    "FieldValueInvalid",
                    format!("spec.versions[{i}].schema.openAPIV3Schema{path}"),
                    message,
                ));
            }
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::Invalid { subject, causes });
    }
    let now = meta::now_rfc3339();
    let condition = |t: &str, reason: &str, message: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message});
    let stored: Vec<Value> = storage
        .iter()
        .filter_map(|v| v.get("name").cloned())
        .collect();
    if let Some(m) = obj.as_object_mut() {
        m.insert(
            "status".into(),
            json!({
                "conditions": [
                    condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                    condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                ],
                "acceptedNames": spec.get("names").cloned().unwrap_or(json!({})),
                "storedVersions": stored,
            }),
        );
    }
    Ok(())
}

/// How managedFields are maintained by a write.
#[derive(Debug, Clone)]
pub enum Managed {
    /// Record a non-apply write by this manager.
    Update(String),
    /// Already computed by server-side apply.
    Precomputed,
}

/// CREATE (also the create half of server-side apply).
pub fn create(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    mut body: Value,
    p: &WriteParams,
    managed: Managed,
) -> ApiResult<Written> {
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".to_string(),
        ));
    }
    check_type_meta(rt, &body)?;
    let body_ns = meta::namespace(&body).to_string();
    if rt.namespaced {
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".to_string(),
            ));
        }
        meta::set_meta(&mut body, "namespace", Some(json!(ns)));
    } else {
        meta::set_meta(&mut body, "namespace", None);
    }
    let mut name = meta::name(&body).to_string();
    if name.is_empty() {
        let prefix = meta::meta_str(&body, "generateName").to_string();
        if prefix.is_empty() {
            return Err(ApiError::Invalid {
                subject: rt.subject(""),
                causes: vec![Cause::new(
                    "FieldValueRequired",
                    "metadata.name",
                    "Required value: name or generateName is required",
                )],
            });
        }
        name = format!("{prefix}{}", generate_suffix());
        meta::set_meta(&mut body, "name", Some(json!(name)));
    }
    let subject = rt.subject(&name);
    let name_problem = if is_namespace_type(rt) {
        meta::check_dns_label(&name)
    } else if rt.plural == "roles"
        || rt.plural == "clusterroles"
        || rt.plural == "rolebindings"
        || rt.plural == "clusterrolebindings"
    {
        (name.contains('/') || name.contains('%')).then(|| "may not contain '/' or '%'".to_string())
    } else {
        meta::check_dns_subdomain(&name)
    };
    if let Some(problem) = name_problem {
        return Err(ApiError::Invalid {
            subject,
            causes: vec![Cause::new(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: {name:?}: {problem}"),
            )],
        });
    }
    if rt.namespaced {
        check_namespace_exists(store, ns, true, &subject)?;
    }
    if !meta::resource_version(&body).is_empty() {
        return Err(ApiError::Internal(
            "resourceVersion should not be set on objects to be created".to_string(),
        ));
    }
    if store
        .get(
            &rt.storage_key(),
            if rt.namespaced { ns } else { "" },
            &name,
        )
        .is_some()
    {
        return Err(ApiError::AlreadyExists(subject));
    }
    if rt.status_subresource
        && let Some(m) = body.as_object_mut()
    {
        m.remove("status");
    }
    let mut warnings = Vec::new();
    if rt.is_custom() {
        warnings = admit_custom(rt, &mut body, None, p)?;
    }
    if is_crd_type(rt) {
        admit_crd(&mut body)?;
    }
    if is_namespace_type(rt)
        && let Some(m) = body.as_object_mut()
    {
        m.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
        m.insert("status".into(), json!({"phase": "Active"}));
    }
    if let Some(m) = body.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    meta::set_meta(
        &mut body,
        "uid",
        Some(json!(uuid::Uuid::new_v4().to_string())),
    );
    meta::set_meta(
        &mut body,
        "creationTimestamp",
        Some(json!(meta::now_rfc3339())),
    );
    meta::set_meta(&mut body, "deletionTimestamp", None);
    meta::set_meta(&mut body, "deletionGracePeriodSeconds", None);
    meta::set_meta(
        &mut body,
        "generation",
        rt.tracks_generation.then(|| json!(1)),
    );
    if let Managed::Update(manager) = &managed {
        meta::set_meta(&mut body, "managedFields", None);
        fields::record_update(
            None,
            &mut body,
            manager,
            "",
            &rt.api_version(),
            rt.raw_schema(),
        );
    }
    if p.dry_run {
        return Ok(Written {
            code: 201,
            body: body.into_shared(),
            warnings,
        });
    }
    let stored = store.put(&rt.storage_key(), body);
    if is_crd_type(rt) {
        store.registry.register_crd(&stored);
    }
    Ok(Written {
        code: 201,
        body: present_shared(rt, &stored),
        warnings,
    })
}

/// UPDATE (PUT) of the object or its status.
pub fn update(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    body: Value,
    p: &WriteParams,
    subresource: &str,
) -> ApiResult<Written> {
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON object".to_string(),
        ));
    }
    check_type_meta(rt, &body)?;
    let body_name = meta::name(&body);
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = meta::namespace(&body);
    if rt.namespaced && !body_ns.is_empty() && body_ns != ns {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .to_string(),
        ));
    }
    let old = store
        .get_shared(&rt.storage_key(), ns, name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(rt.subject(name)))?;
    let rv_missing = meta::resource_version(&body).is_empty();
    if rv_missing && rt.is_custom() {
        return Err(ApiError::Invalid {
            subject: rt.subject(name),
            causes: vec![Cause::new(
                "FieldValueInvalid",
                "metadata.resourceVersion",
                "Invalid value: 0: must be specified for an update",
            )],
        });
    }
    let mut body = body;
    if rv_missing {
        meta::set_meta(
            &mut body,
            "resourceVersion",
            Some(json!(meta::resource_version(&old))),
        );
    }
    commit_update(
        store,
        rt,
        old,
        body,
        p,
        subresource,
        Managed::Update(p.field_manager.clone()),
    )
}

fn conflict(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::Conflict {
        subject: rt.subject(name),
        message: "the object has been modified; please apply your changes to the latest version and try again".to_string(),
    }
}

/// The common tail of PUT and PATCH: merges subresource rules, validates, bumps generation,
/// records managed fields and stores (or deletes, when the last finalizer went away).
pub fn commit_update(
    store: &mut Store,
    rt: &ResourceType,
    old: Arc<Stored>,
    mut candidate: Value,
    p: &WriteParams,
    subresource: &str,
    managed: Managed,
) -> ApiResult<Written> {
    let name = meta::name(&old).to_string();
    let ns = meta::namespace(&old).to_string();
    // A client may rewrite managedFields itself (kubectl does, to hand client-side-apply
    // ownership over to server-side apply); changed managedFields are taken as given.
    let managed_base = match &managed {
        Managed::Update(_) => {
            let old_managed = meta::metadata(&old).and_then(|m| m.get("managedFields"));
            match meta::metadata(&candidate).and_then(|m| m.get("managedFields")) {
                Some(incoming) if Some(incoming) != old_managed => Some(incoming.clone()),
                _ => old_managed.cloned(),
            }
        }
        Managed::Precomputed => None,
    };
    if meta::resource_version(&candidate) != meta::resource_version(&old) {
        return Err(conflict(rt, &name));
    }
    let mut new = if subresource == "status"
        && matches!(managed, Managed::Precomputed)
        && meta::same_apart_from_status(&candidate, &old)
    {
        // Server-side apply merged into a copy of `old`: taking it as is gives the same object
        // as rebuilding it below, without copying `old` a second time.
        candidate
    } else if subresource == "status" {
        // The old object with the candidate's status moved in (old's status is not copied).
        let mut n: Map<String, Value> = old
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| k.as_str() != "status")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(s) = candidate.as_object_mut().and_then(|m| m.remove("status")) {
            n.insert("status".into(), s);
        }
        let mut n = Value::Object(n);
        if matches!(managed, Managed::Precomputed) {
            let incoming =
                meta::metadata_mut(&mut candidate).and_then(|m| m.remove("managedFields"));
            meta::set_meta(&mut n, "managedFields", incoming);
        }
        n
    } else {
        let mut n = candidate;
        if rt.status_subresource
            && let Some(m) = n.as_object_mut()
        {
            match old.get("status") {
                Some(s) => {
                    m.insert("status".into(), s.clone());
                }
                None => {
                    m.remove("status");
                }
            }
        }
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "name",
            "namespace",
        ] {
            meta::set_meta(
                &mut n,
                field,
                meta::metadata(&old).and_then(|m| m.get(field)).cloned(),
            );
        }
        if let Some(m) = n.as_object_mut() {
            m.insert("apiVersion".into(), json!(rt.api_version()));
            m.insert("kind".into(), json!(rt.kind));
        }
        n
    };
    if meta::is_deleting(&old) {
        let before = meta::finalizers(&old);
        let added: Vec<String> = meta::finalizers(&new)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
            return Err(ApiError::Invalid {
                subject: rt.subject(&name),
                causes: vec![Cause::new(
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    format!(
                        "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        list.join(", ")
                    ),
                )],
            });
        }
    }
    let mut warnings = Vec::new();
    if rt.is_custom() {
        warnings = admit_custom(rt, &mut new, Some(&old), p)?;
    }
    if is_crd_type(rt) && subresource != "status" {
        admit_crd(&mut new)?;
    }
    let generation = meta::generation(&old);
    if rt.tracks_generation {
        let bump = !meta::same_spec(&new, &old, rt.status_subresource);
        meta::set_meta(
            &mut new,
            "generation",
            Some(json!(if bump {
                generation + 1
            } else {
                generation.max(1)
            })),
        );
    }
    if let Managed::Update(manager) = &managed {
        meta::set_meta(&mut new, "managedFields", managed_base);
        fields::record_update(
            Some(&old),
            &mut new,
            manager,
            subresource,
            &rt.api_version(),
            rt.raw_schema(),
        );
    }
    let key = rt.storage_key();
    if meta::same_ignoring_bookkeeping(&new, &old) {
        return Ok(Written {
            code: 200,
            body: present_shared(rt, &old),
            warnings,
        });
    }
    if p.dry_run {
        return Ok(Written {
            code: 200,
            body: present_owned(rt, new).into_shared(),
            warnings,
        });
    }
    if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() {
        let removed = store
            .remove(&key, &ns, &name, Some(new))
            .unwrap_or_else(|| Value::Null.into_shared());
        after_removal(store, rt, &removed);
        return Ok(Written {
            code: 200,
            body: present_shared(rt, &removed),
            warnings,
        });
    }
    let stored = store.put(&key, new);
    if is_crd_type(rt) {
        store.registry.register_crd(&stored);
    }
    Ok(Written {
        code: 200,
        body: present_shared(rt, &stored),
        warnings,
    })
}

/// PATCH of any type, on the object or its status.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    ptype: PatchType,
    body: &[u8],
    p: &WriteParams,
    subresource: &str,
) -> ApiResult<Written> {
    if ptype == PatchType::Strategic && rt.is_custom() {
        return Err(patch::unsupported(true));
    }
    let existing = store
        .get_shared(&rt.storage_key(), ns, name)
        .map(|o| present_shared(rt, o));
    if ptype == PatchType::Apply {
        return server_side_apply(store, rt, ns, name, existing, body, p, subresource);
    }
    let old = existing.ok_or_else(|| ApiError::NotFound(rt.subject(name)))?;
    let patched = match ptype {
        PatchType::Json => patch::json_patch(&old, body, &rt.subject(name))?,
        PatchType::Merge => patch::merge_patch(&old, body)?,
        PatchType::Strategic => patch::strategic_merge(&old, body)?,
        PatchType::Apply => (**old).clone(),
    };
    let mut patched = patched;
    if meta::resource_version(&patched).is_empty() {
        // A patch that removed resourceVersion applies to the latest object.
        meta::set_meta(
            &mut patched,
            "resourceVersion",
            Some(json!(meta::resource_version(&old))),
        );
    }
    commit_update(
        store,
        rt,
        old,
        patched,
        p,
        subresource,
        Managed::Update(p.field_manager.clone()),
    )
}

fn parse_apply_body(body: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))
}

#[allow(clippy::too_many_arguments)]
fn server_side_apply(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    existing: Option<Arc<Stored>>,
    body: &[u8],
    p: &WriteParams,
    subresource: &str,
) -> ApiResult<Written> {
    if !p.explicit_manager {
        return Err(ApiError::BadRequest(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".to_string(),
        ));
    }
    let mut applied = parse_apply_body(body)?;
    if !applied.is_object() {
        return Err(ApiError::BadRequest(
            "the applied configuration must be an object".to_string(),
        ));
    }
    if applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
        || applied
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
    {
        return Err(ApiError::BadRequest(
            "invalid object type: apiVersion and kind must be set in an apply configuration"
                .to_string(),
        ));
    }
    check_type_meta(rt, &applied)?;
    // A resourceVersion in an apply configuration is a precondition, as on the real server.
    let wanted_version = meta::resource_version(&applied);
    if !wanted_version.is_empty()
        && let Some(live) = existing.as_ref()
        && meta::resource_version(live) != wanted_version
    {
        return Err(conflict(rt, name));
    }
    let applied_name = meta::name(&applied);
    if !applied_name.is_empty() && applied_name != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({applied_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(m) = applied.as_object_mut() {
        if subresource == "status" {
            m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"));
            if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.retain(|k, _| k == "name" || k == "namespace");
            }
        } else if rt.status_subresource {
            m.remove("status");
        }
    }
    if rt.is_custom()
        && let Some(schema) = rt.raw_schema()
    {
        // Unknown fields in an apply configuration are refused or pruned before ownership is
        // computed, so nobody ends up owning a field that cannot be stored.
        let mut pruned = Vec::new();
        validation::prune(schema, &mut applied, "", true, &mut pruned);
        if !pruned.is_empty() && p.field_validation == FieldValidation::Strict {
            let list: Vec<String> = pruned
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            return Err(ApiError::BadRequest(format!(
                "strict decoding error: {}",
                list.join(", ")
            )));
        }
    }
    let req = fields::ApplyRequest {
        manager: &p.field_manager,
        subresource,
        force: p.force,
        api_version: &rt.api_version(),
        schema: rt.raw_schema(),
        subject: rt.subject(name),
    };
    match existing {
        None => {
            if subresource == "status" {
                return Err(ApiError::NotFound(rt.subject(name)));
            }
            let mut live = json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}});
            if rt.namespaced {
                meta::set_meta(&mut live, "namespace", Some(json!(ns)));
            }
            let merged = fields::apply(&live, &applied, &req)?;
            create(store, rt, ns, merged, p, Managed::Precomputed)
        }
        Some(old) => {
            let merged = fields::apply(&old, &applied, &req)?;
            commit_update(store, rt, old, merged, p, subresource, Managed::Precomputed)
        }
    }
}

/// DELETE options.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Reads a DeleteOptions body (empty body = defaults).
    pub fn from_body(body: &[u8]) -> ApiResult<Self> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("error decoding DeleteOptions: {e}")))?;
        Ok(Self::from_value(&v))
    }

    /// Reads DeleteOptions from a decoded object.
    pub fn from_value(v: &Value) -> Self {
        let pre = v.get("preconditions");
        let s = |k: &str| {
            pre.and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Self {
            uid: s("uid"),
            resource_version: s("resourceVersion"),
            dry_run: v
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "All")),
        }
    }
}

/// DELETE one object.
pub fn delete(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Written> {
    let key = rt.storage_key();
    let old = store
        .get_shared(&key, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(rt.subject(name)))?;
    let uid = meta::meta_str(&old, "uid");
    if let Some(want) = &opts.uid
        && want != uid
    {
        return Err(ApiError::Conflict {
            subject: rt.subject(name),
            message: format!(
                "Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"
            ),
        });
    }
    let rv = meta::resource_version(&old);
    if let Some(want) = &opts.resource_version
        && want != rv
    {
        return Err(ApiError::Conflict {
            subject: rt.subject(name),
            message: format!(
                "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"
            ),
        });
    }
    if opts.dry_run {
        return Ok(ok(200, present(rt, &old)));
    }
    if is_namespace_type(rt) {
        return delete_namespace(store, rt, old);
    }
    if !meta::finalizers(&old).is_empty() {
        if meta::is_deleting(&old) {
            return Ok(ok(200, present(rt, &old)));
        }
        let mut new = (**old).clone();
        meta::set_meta(
            &mut new,
            "deletionTimestamp",
            Some(json!(meta::now_rfc3339())),
        );
        meta::set_meta(&mut new, "deletionGracePeriodSeconds", Some(json!(0)));
        let generation = meta::generation(&old);
        if generation > 0 {
            meta::set_meta(&mut new, "generation", Some(json!(generation + 1)));
        }
        let stored = store.put(&key, new);
        return Ok(ok(200, present_shared(rt, &stored)));
    }
    let removed = store
        .remove(&key, ns, name, None)
        .unwrap_or_else(|| Value::Null.into_shared());
    after_removal(store, rt, &removed);
    if rt.is_custom() || is_crd_type(rt) {
        Ok(ok(200, present_shared(rt, &removed)))
    } else {
        let mut details = json!({"name": name, "kind": rt.plural, "uid": uid});
        if !rt.group.is_empty()
            && let Some(d) = details.as_object_mut()
        {
            d.insert("group".into(), json!(rt.group));
        }
        Ok(ok(
            200,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
        ))
    }
}

fn delete_namespace(store: &mut Store, rt: &ResourceType, old: Arc<Stored>) -> ApiResult<Written> {
    let name = meta::name(&old).to_string();
    let stored = if meta::is_deleting(&old) {
        old
    } else {
        let mut new = old.into_value();
        meta::set_meta(
            &mut new,
            "deletionTimestamp",
            Some(json!(meta::now_rfc3339())),
        );
        meta::set_meta(&mut new, "deletionGracePeriodSeconds", Some(json!(0)));
        if let Some(m) = new.as_object_mut() {
            m.insert("status".into(), json!({"phase": "Terminating"}));
        }
        store.put(&ns_key(), new)
    };
    // The namespace controller's job: delete everything inside.
    for (key, obj_name) in store.keys_in_namespace(&name) {
        if let Some(obj_rt) = store.registry.storage_type(&key).cloned() {
            let _ = delete(store, &obj_rt, &name, &obj_name, &DeleteOptions::default());
        }
    }
    sweep_namespaces(store);
    let body = store
        .get_shared(&ns_key(), "", &name)
        .cloned()
        .unwrap_or(stored);
    Ok(ok(200, present_shared(rt, &body)))
}

/// Removes terminating namespaces that have become empty.
fn sweep_namespaces(store: &mut Store) {
    let terminating: Vec<String> = store
        .list(&ns_key(), None)
        .filter(|(_, o)| meta::is_deleting(o))
        .map(|((_, n), _)| n.clone())
        .collect();
    for ns in terminating {
        if store.namespace_is_empty(&ns) {
            store.remove(&ns_key(), "", &ns, None);
        }
    }
}

/// Follow-ups after an object left the store: a CRD takes its resources and objects with it;
/// a namespace whose last object went away finishes terminating.
fn after_removal(store: &mut Store, rt: &ResourceType, removed: &Value) {
    if is_crd_type(rt) {
        let types = crate::registry::types_from_crd(removed);
        for t in &types {
            store.remove_all(&t.storage_key());
        }
        store.registry.unregister_crd(meta::name(removed));
    }
    if rt.namespaced {
        sweep_namespaces(store);
    }
}

/// DELETE collection: deletes every matching object; answers with the deleted list.
pub fn delete_collection(
    store: &mut Store,
    rt: &ResourceType,
    ns: Option<&str>,
    lp: &ListParams,
) -> ApiResult<Written> {
    let (items, _) = list_items(
        store,
        rt,
        ns,
        &ListParams {
            selectors: lp.selectors.clone(),
            limit: 0,
            continue_token: None,
        },
    )?;
    let mut deleted = Vec::new();
    for item in items {
        let ins = meta::namespace(&item).to_string();
        let iname = meta::name(&item).to_string();
        if let Ok(w) = delete(store, rt, &ins, &iname, &DeleteOptions::default()) {
            deleted.push(if w.body.get("kind") == Some(&json!("Status")) {
                item.into_value()
            } else {
                w.body.into_value()
            });
        }
    }
    Ok(ok(
        200,
        json!({"kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": {"resourceVersion": store.current_rv().to_string()}, "items": deleted}),
    ))
}

/// POST serviceaccounts/{name}/token: issues a bearer token for the service account.
pub fn create_token(store: &mut Store, ns: &str, name: &str, body: &Value) -> ApiResult<Written> {
    let key = StorageKey {
        group: String::new(),
        resource: "serviceaccounts".to_string(),
    };
    if store.get(&key, ns, name).is_none() {
        return Err(ApiError::NotFound(Box::new(Subject {
            group: String::new(),
            resource: "serviceaccounts".to_string(),
            kind: "ServiceAccount".to_string(),
            name: name.to_string(),
        })));
    }
    let token = format!("emu-sa-{}", uuid::Uuid::new_v4().simple());
    store.tokens.insert(
        token.clone(),
        crate::auth::UserInfo::service_account(ns, name),
    );
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(1))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    Ok(ok(
        201,
        json!({
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": meta::now_rfc3339()},
            "spec": body.get("spec").cloned().unwrap_or(json!({})),
            "status": {"token": token, "expirationTimestamp": expires},
        }),
    ))
}
