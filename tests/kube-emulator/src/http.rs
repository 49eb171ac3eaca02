//! HTTP front end: authentication, routing of Kubernetes API paths, authorization, content
//! negotiation (JSON, YAML bodies, `as=Table`), and the wire form of responses and errors.
//!
//! The request path is: authenticate the bearer token → resolve the path to a non-resource
//! endpoint or a (group, version, resource, namespace, name, subresource) target → ask the
//! [`Authorizer`](crate::auth::Authorizer) → run the verb in [`crate::api`] under the store
//! lock → encode. Everything but a watch's streaming body runs synchronously under one lock.

use crate::api::{self, DeleteOptions, FieldValidation, ListParams, WriteParams};
use crate::auth::{Attributes, Authorizer, UserInfo};
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::patch::PatchType;
use crate::registry::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector, Selectors};
use crate::store::{IntoShared, Store, Stored};
use crate::table;
use crate::watch::{self, WatchRequest};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// State shared by all requests.
#[derive(Debug)]
pub struct Shared {
    /// The store.
    pub store: Arc<Mutex<Store>>,
    /// The authorizer.
    pub authorizer: Arc<dyn Authorizer>,
    /// `host:port` for `/api`'s serverAddressByClientCIDRs.
    pub server_address: String,
    /// Bookmark period for watches.
    pub bookmark_interval: Duration,
    /// Watch timeout when the client gives none.
    pub default_watch_timeout: Duration,
    /// Whether requests without a token are served (as `system:anonymous`).
    pub allow_anonymous: bool,
    /// Fires once at shutdown so open watches end.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The axum router serving the whole API.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

enum Outcome {
    /// Serialized after the store lock is released; often a stored object, shared.
    Json {
        code: u16,
        body: Arc<Stored>,
        warnings: Vec<String>,
    },
    List(api::ListBody),
    Raw {
        content_type: &'static str,
        body: Bytes,
    },
    Watch(Box<WatchRequest>),
}

fn json_outcome(code: u16, body: impl IntoShared) -> Outcome {
    Outcome::Json {
        code,
        body: body.into_shared(),
        warnings: Vec::new(),
    }
}

fn response(code: u16, content_type: &str, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn error_response(e: &ApiError) -> Response {
    response(
        e.code(),
        "application/json",
        Body::from(e.to_status().to_string()),
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match handle_sync(&shared, &method, &uri, &headers, &body) {
        Ok(Outcome::Json {
            code,
            body,
            warnings,
        }) => {
            let mut resp = response(code, "application/json", Body::from(body.json().clone()));
            for w in warnings {
                let text = format!("299 - {:?}", w);
                if let Ok(v) = HeaderValue::from_str(&text) {
                    resp.headers_mut().append(header::WARNING, v);
                }
            }
            resp
        }
        Ok(Outcome::List(list)) => match serde_json::to_vec(&list) {
            Ok(bytes) => response(200, "application/json", Body::from(bytes)),
            Err(e) => error_response(&ApiError::Internal(e.to_string())),
        },
        Ok(Outcome::Raw { content_type, body }) => response(200, content_type, Body::from(body)),
        Ok(Outcome::Watch(req)) => {
            match watch::start(shared.store.clone(), *req, shared.shutdown.clone()) {
                Ok(rx) => {
                    let stream = futures::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
                    });
                    response(200, "application/json", Body::from_stream(stream))
                }
                Err(e) => error_response(&e),
            }
        }
        Err(e) => error_response(&e),
    }
}

fn query_map(uri: &Uri) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(q) = uri.query() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
    }
    out
}

fn authenticate(store: &Store, headers: &HeaderMap, allow_anonymous: bool) -> ApiResult<UserInfo> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match auth.strip_prefix("Bearer ") {
        Some(token) => store
            .tokens
            .get(token.trim())
            .cloned()
            .ok_or(ApiError::Unauthorized),
        None if allow_anonymous => Ok(UserInfo::anonymous()),
        None => Err(ApiError::Unauthorized),
    }
}

/// A parsed resource path.
#[derive(Debug, Clone, Default)]
struct Target {
    group: String,
    version: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route {
    NonResource(Outcome),
    Resource(Target),
}

fn decode(seg: &str) -> String {
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = seg
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(store: &Store, shared: &Shared, path: &str) -> ApiResult<Route> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let reg = &store.registry;
    let non = |o: Outcome| Ok(Route::NonResource(o));
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return non(json_outcome(200, discovery::version())),
        ["healthz"] | ["livez"] | ["readyz"] => {
            return non(Outcome::Raw {
                content_type: "text/plain",
                body: Bytes::from_static(b"ok"),
            });
        }
        ["api"] => {
            return non(json_outcome(
                200,
                discovery::core_versions(&shared.server_address),
            ));
        }
        ["apis"] => return non(json_outcome(200, discovery::groups(reg))),
        ["openapi", "v2"] => {
            // An empty protobuf message is a valid, empty OpenAPI v2 document.
            return non(Outcome::Raw {
                content_type: "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                body: Bytes::new(),
            });
        }
        ["openapi", "v3"] => return non(json_outcome(200, discovery::openapi_v3_index(reg))),
        ["openapi", "v3", "api", v] => {
            return discovery::openapi_v3_doc(reg, "", v)
                .map(|d| Route::NonResource(json_outcome(200, d)))
                .ok_or(ApiError::NoRoute);
        }
        ["openapi", "v3", "apis", g, v] => {
            return discovery::openapi_v3_doc(reg, g, v)
                .map(|d| Route::NonResource(json_outcome(200, d)))
                .ok_or(ApiError::NoRoute);
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g] => {
            return discovery::group(reg, g)
                .map(|d| Route::NonResource(json_outcome(200, d)))
                .ok_or(ApiError::NoRoute);
        }
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::NoRoute),
    };
    if rest.is_empty() {
        return discovery::resource_list(reg, group, version)
            .map(|d| Route::NonResource(json_outcome(200, d)))
            .ok_or(ApiError::NoRoute);
    }
    let s = |x: &str| Some(x.to_string());
    let mut t = Target {
        group: group.to_string(),
        version: version.to_string(),
        ..Target::default()
    };
    match rest {
        [plural] => t.plural = plural.to_string(),
        [plural, name] => {
            t.plural = plural.to_string();
            t.name = s(name);
        }
        ["namespaces", name, sub] if matches!(*sub, "status" | "finalize") => {
            t.plural = "namespaces".to_string();
            t.name = s(name);
            t.subresource = s(sub);
        }
        ["namespaces", ns, plural] => {
            t.namespace = s(ns);
            t.plural = plural.to_string();
        }
        ["namespaces", ns, plural, name] => {
            t.namespace = s(ns);
            t.plural = plural.to_string();
            t.name = s(name);
        }
        ["namespaces", ns, plural, name, sub] => {
            t.namespace = s(ns);
            t.plural = plural.to_string();
            t.name = s(name);
            t.subresource = s(sub);
        }
        [plural, name, sub] => {
            t.plural = plural.to_string();
            t.name = s(name);
            t.subresource = s(sub);
        }
        _ => return Err(ApiError::NoRoute),
    }
    Ok(Route::Resource(t))
}

fn verb_of(method: &Method, t: &Target, q: &HashMap<String, String>) -> ApiResult<&'static str> {
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    Ok(match (method.as_str(), t.name.is_some()) {
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", false) => "create",
        ("POST", true) if t.subresource.is_some() => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return Err(ApiError::MethodNotAllowed),
    })
}

fn selectors(q: &HashMap<String, String>) -> ApiResult<Selectors> {
    Ok(Selectors {
        labels: LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?,
        fields: FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?,
    })
}

fn write_params(q: &HashMap<String, String>, headers: &HeaderMap) -> ApiResult<WriteParams> {
    let explicit = q.get("fieldManager").filter(|m| !m.is_empty()).cloned();
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    let default_manager = ua.split('/').next().unwrap_or("unknown").to_string();
    let field_validation = match q.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "fieldValidation instance value \"{other}\" is invalid, must be one of \"Ignore\", \"Warn\", or \"Strict\""
            )));
        }
    };
    Ok(WriteParams {
        dry_run: q.get("dryRun").is_some_and(|d| d == "All"),
        explicit_manager: explicit.is_some(),
        field_manager: explicit.unwrap_or(default_manager),
        field_validation,
        force: q.get("force").is_some_and(|f| f == "true"),
    })
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if crate::protobuf::is_protobuf(body) {
        return crate::protobuf::decode(body);
    }
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {ct})"
        )));
    }
    if ct.contains("yaml") {
        let text = std::str::from_utf8(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        return serde_saphyr::from_str(text)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding JSON body: {e}")))
}

fn handle_sync(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Outcome> {
    let q = query_map(uri);
    let mut store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
    let user = authenticate(&store, headers, shared.allow_anonymous)?;
    let target = match route(&store, shared, uri.path())? {
        Route::NonResource(outcome) => {
            let attrs = Attributes {
                verb: method.as_str().to_ascii_lowercase(),
                group: String::new(),
                resource: String::new(),
                subresource: String::new(),
                namespace: String::new(),
                name: String::new(),
                path: uri.path().to_string(),
            };
            if shared.authorizer.authorize(&store, &user, &attrs).is_err() {
                return Err(ApiError::Forbidden {
                    subject: Default::default(),
                    message: crate::auth::forbidden_message(&user, &attrs),
                });
            }
            return Ok(outcome);
        }
        Route::Resource(t) => t,
    };
    let rt: Arc<ResourceType> = store
        .registry
        .get(&target.group, &target.version, &target.plural)
        .cloned()
        .ok_or(ApiError::NoRoute)?;
    if target.namespace.is_some() && !rt.namespaced {
        return Err(ApiError::NoRoute);
    }
    if target.namespace.is_none() && rt.namespaced && target.name.is_some() {
        return Err(ApiError::NoRoute);
    }
    let sub = target.subresource.clone().unwrap_or_default();
    match sub.as_str() {
        "" => {}
        "status" if rt.status_subresource => {}
        "token" if rt.group.is_empty() && rt.plural == "serviceaccounts" => {}
        _ => return Err(ApiError::NoRoute),
    }
    let verb = verb_of(method, &target, &q)?;
    let ns = target.namespace.clone().unwrap_or_default();
    let name = target.name.clone().unwrap_or_default();
    let attrs = Attributes {
        verb: verb.to_string(),
        group: rt.group.clone(),
        resource: rt.plural.clone(),
        subresource: sub.clone(),
        namespace: ns.clone(),
        name: name.clone(),
        path: uri.path().to_string(),
    };
    if shared.authorizer.authorize(&store, &user, &attrs).is_err() {
        return Err(ApiError::Forbidden {
            subject: rt.subject(&name),
            message: crate::auth::forbidden_message(&user, &attrs),
        });
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let include = q
        .get("includeObject")
        .map(String::as_str)
        .unwrap_or("Metadata");
    let ns_opt = target.namespace.as_deref();
    match verb {
        "get" => {
            let obj = api::get(&store, &rt, &ns, &name)?;
            if table::wants_table(accept) && sub.is_empty() {
                let meta =
                    serde_json::json!({"resourceVersion": crate::meta::resource_version(&obj)});
                let items = [obj.into_value()];
                return Ok(json_outcome(200, table::build(&rt, &items, meta, include)));
            }
            if table::wants_metadata(accept) && sub.is_empty() {
                return Ok(json_outcome(200, table::partial(&obj)));
            }
            Ok(json_outcome(200, obj))
        }
        "list" => {
            let lp = ListParams {
                selectors: selectors(&q)?,
                limit: q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(0),
                continue_token: q.get("continue").filter(|c| !c.is_empty()).cloned(),
            };
            if table::wants_table(accept) {
                let (items, meta) = api::list_items(&store, &rt, ns_opt, &lp)?;
                let items: Vec<Value> = items.into_iter().map(Stored::into_value).collect();
                return Ok(json_outcome(
                    200,
                    table::build(&rt, &items, Value::Object(meta), include),
                ));
            }
            if table::wants_metadata(accept) {
                let (items, meta) = api::list_items(&store, &rt, ns_opt, &lp)?;
                let items: Vec<Value> = items.iter().map(|i| table::partial(i)).collect();
                return Ok(json_outcome(
                    200,
                    serde_json::json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
                ));
            }
            Ok(Outcome::List(api::list(&store, &rt, ns_opt, &lp)?))
        }
        "watch" => {
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(shared.default_watch_timeout);
            Ok(Outcome::Watch(Box::new(WatchRequest {
                rt: (*rt).clone(),
                namespace: target.namespace.clone(),
                selectors: selectors(&q)?,
                resource_version: q.get("resourceVersion").cloned().unwrap_or_default(),
                bookmarks: q.get("allowWatchBookmarks").is_some_and(|b| b == "true"),
                send_initial_events: q.get("sendInitialEvents").is_some_and(|b| b == "true"),
                timeout,
                bookmark_interval: shared.bookmark_interval,
                table: table::wants_table(accept).then(|| include.to_string()),
                metadata_only: table::wants_metadata(accept),
            })))
        }
        "create" if sub == "token" => {
            let value = if body.is_empty() {
                Value::Null
            } else {
                parse_body(headers, body)?
            };
            let w = api::create_token(&mut store, &ns, &name, &value)?;
            Ok(json_outcome(w.code, w.body))
        }
        "create" => {
            let p = write_params(&q, headers)?;
            let manager = api::Managed::Update(p.field_manager.clone());
            let w = api::create(
                &mut store,
                &rt,
                &ns,
                parse_body(headers, body)?,
                &p,
                manager,
            )?;
            Ok(Outcome::Json {
                code: w.code,
                body: w.body,
                warnings: w.warnings,
            })
        }
        "update" => {
            let p = write_params(&q, headers)?;
            let w = api::update(
                &mut store,
                &rt,
                &ns,
                &name,
                parse_body(headers, body)?,
                &p,
                &sub,
            )?;
            Ok(Outcome::Json {
                code: w.code,
                body: w.body,
                warnings: w.warnings,
            })
        }
        "patch" => {
            let p = write_params(&q, headers)?;
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let ptype = PatchType::from_content_type(ct)
                .ok_or_else(|| crate::patch::unsupported(rt.is_custom()))?;
            let w = api::patch(&mut store, &rt, &ns, &name, ptype, body, &p, &sub)?;
            Ok(Outcome::Json {
                code: w.code,
                body: w.body,
                warnings: w.warnings,
            })
        }
        "delete" => {
            let mut opts = if crate::protobuf::is_protobuf(body) {
                DeleteOptions::from_value(&crate::protobuf::decode(body)?)
            } else {
                DeleteOptions::from_body(body)?
            };
            if q.get("dryRun").is_some_and(|d| d == "All") {
                opts.dry_run = true;
            }
            let w = api::delete(&mut store, &rt, &ns, &name, &opts)?;
            Ok(json_outcome(w.code, w.body))
        }
        "deletecollection" => {
            let lp = ListParams {
                selectors: selectors(&q)?,
                ..ListParams::default()
            };
            let w = api::delete_collection(&mut store, &rt, ns_opt, &lp)?;
            Ok(json_outcome(w.code, w.body))
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}
