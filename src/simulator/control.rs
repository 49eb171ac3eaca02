//! Test control under `/_sim/` (the contract in
//! docs/architecture.md, "Command-line and test-control contract"): inspect sessions and their
//! notification deliveries, end a session from the network side, inject faults, revoke tokens,
//! read counters and reset. Never subject to faults or authentication: it is a test harness,
//! bind the simulator to a trusted interface.
//!
//! - `GET /_sim/sessions[?removed=true]`: array of sessions (removed ones only on request), each
//!   with the `GET`s of it answered so far (`reads`)
//! - `POST /_sim/sessions/{id}/terminate`: UNAVAILABLE + NETWORK_TERMINATED; answers the session
//! - `GET|PUT /_sim/faults`: the [`Faults`] JSON
//! - `POST /_sim/tokens/revoke`: `{"revoked": n}`
//! - `PUT /_sim/auth`: `{"bearerToken": "..."}` replaces the static bearer token (`null` removes
//!   it): the provider's side of a credential rotation; answers `{"bearerToken": true|false}`
//! - `GET /_sim/profiles`: the QoS profiles on offer, as the QoS Profiles API shows them
//! - `PUT /_sim/profiles/{name}`: adds (201) or replaces (200) a profile; the body is a CAMARA
//!   `QosProfile` (`name` may be left out); answers the profile. From then on both APIs use it;
//!   sessions already created keep the profile they were created with.
//! - `PUT /_sim/profiles/{name}/status`: `{"status": "ACTIVE|INACTIVE|DEPRECATED"}`; answers the
//!   profile
//! - `DELETE /_sim/profiles/{name}`: 204; the profile is gone from both APIs
//! - `GET /_sim/stats`: [`super::stats::StatsSnapshot`]
//! - `POST /_sim/reset`: 204; forgets sessions (without notifications), faults and counters,
//!   and restores the built-in profiles

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    SimulatorState,
    api::{parse_session_id, session_not_found},
    faults::Faults,
    format_name,
    notifier::Delivery,
    profiles::QosProfile,
    reply::{ApiError, ApiVersion, Dialect, code},
    store::Session,
    validation::parse_json,
};
use crate::qod::{
    model::{ApplicationServer, Device, PortsSpec, QosStatus, StatusInfo},
    profiles::{ProfileStatus, wire},
};

pub(super) fn routes() -> Router<Arc<SimulatorState>> {
    Router::new()
        .route("/sessions", get(list_sessions))
        .route("/sessions/{session_id}/terminate", post(terminate))
        .route("/faults", get(get_faults).put(put_faults))
        .route("/tokens/revoke", post(revoke_tokens))
        .route("/auth", axum::routing::put(put_auth))
        .route("/profiles", get(list_profiles))
        .route(
            "/profiles/{name}",
            axum::routing::put(put_profile).delete(delete_profile),
        )
        .route(
            "/profiles/{name}/status",
            axum::routing::put(put_profile_status),
        )
        .route("/stats", get(stats))
        .route("/reset", post(reset))
}

/// A session as the test harness sees it: everything, including what the API hides.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionView<'a> {
    session_id: String,
    api_version: ApiVersion,
    flavour: Dialect,
    qos_status: &'a QosStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_info: Option<&'a StatusInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a Device>,
    application_server: &'a ApplicationServer,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_ports: Option<&'a PortsSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    application_server_ports: Option<&'a PortsSpec>,
    qos_profile: &'a str,
    duration: u32,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<Timestamp>,
    /// Where notifications go (`sink` or `webhook.notificationUrl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    sink: Option<String>,
    /// Whether notifications carry an `Authorization` header (the token itself is not shown).
    sink_authorization: bool,
    notification_format: &'static str,
    removed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed_at: Option<Timestamp>,
    deliveries: &'a [Delivery],
    /// `GET`s of the session answered so far.
    reads: u64,
}

impl<'a> SessionView<'a> {
    fn of(session: &'a Session) -> Self {
        Self {
            session_id: session.id.to_string(),
            api_version: session.version,
            flavour: session.dialect,
            qos_status: &session.status,
            status_info: session.status_info.as_ref(),
            device: session.device.as_ref(),
            application_server: &session.application_server,
            device_ports: session.device_ports.as_ref(),
            application_server_ports: session.application_server_ports.as_ref(),
            qos_profile: session.profile.name(),
            duration: session.reported_duration(),
            created_at: session.created_at,
            started_at: session.started_at,
            expires_at: session.expires_at(),
            sink: session.callback.as_ref().map(|c| c.url.to_string()),
            sink_authorization: session
                .callback
                .as_ref()
                .is_some_and(|c| c.authorization.is_some()),
            notification_format: format_name(session.format),
            removed: session.removed_at.is_some(),
            removed_at: session.removed_at,
            deliveries: &session.deliveries,
            reads: session.reads,
        }
    }
}

fn control_error(error: &ApiError) -> Response {
    error.render(ApiVersion::V1, Dialect::Camara, None)
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    removed: bool,
}

async fn list_sessions(
    State(shared): State<Arc<SimulatorState>>,
    Query(query): Query<ListQuery>,
) -> Response {
    let store = shared.store();
    let views: Vec<SessionView<'_>> = store
        .all(query.removed)
        .into_iter()
        .map(SessionView::of)
        .collect();
    Json(views).into_response()
}

async fn terminate(
    State(shared): State<Arc<SimulatorState>>,
    Path(raw_id): Path<String>,
) -> Response {
    let id = match parse_session_id(&raw_id) {
        Ok(id) => id,
        Err(error) => return control_error(&error),
    };
    let mut store = shared.store();
    let Some(session) = store.get_mut(&id) else {
        return control_error(&session_not_found(&id));
    };
    let retention = shared.config.terminated_retention;
    if !session.terminate(shared.clock.now(), &shared.clock, retention) {
        return control_error(&ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            format!("session {id} is already UNAVAILABLE"),
        ));
    }
    tracing::info!(session_id = %id, "session terminated by the network (test control)");
    let response = Json(SessionView::of(session)).into_response();
    drop(store);
    shared.wake.notify_one();
    response
}

async fn get_faults(State(shared): State<Arc<SimulatorState>>) -> Response {
    Json(shared.faults()).into_response()
}

async fn put_faults(State(shared): State<Arc<SimulatorState>>, body: Bytes) -> Response {
    let faults: Faults = match parse_json(&body) {
        Ok(faults) => faults,
        Err(error) => return control_error(&error),
    };
    if let Err(message) = faults.validate() {
        return control_error(&ApiError::invalid(message));
    }
    tracing::info!(?faults, "faults set");
    shared.set_faults(faults.clone());
    Json(faults).into_response()
}

async fn revoke_tokens(State(shared): State<Arc<SimulatorState>>) -> Response {
    let revoked = shared.tokens().revoke_all(shared.clock.now());
    shared.stats.tokens_revoked(revoked);
    tracing::info!(revoked, "access tokens revoked");
    Json(json!({ "revoked": revoked })).into_response()
}

/// The body of `PUT /_sim/auth`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AuthChange {
    bearer_token: Option<String>,
}

async fn put_auth(State(shared): State<Arc<SimulatorState>>, body: Bytes) -> Response {
    let change: AuthChange = match parse_json(&body) {
        Ok(change) => change,
        Err(error) => return control_error(&error),
    };
    let token = change
        .bearer_token
        .filter(|t| !t.trim().is_empty())
        .map(|t| secrecy::SecretString::from(t.trim().to_owned()));
    let set = token.is_some();
    shared.set_bearer_token(token);
    // The token itself is never logged.
    tracing::info!(bearer_token = set, "static bearer token replaced");
    Json(json!({ "bearerToken": set })).into_response()
}

async fn list_profiles(State(shared): State<Arc<SimulatorState>>) -> Response {
    let table = shared.profiles();
    let wires: Vec<&wire::QosProfile> = table.all().iter().map(|p| &p.wire).collect();
    Json(wires).into_response()
}

fn profile_not_found(name: &str) -> Response {
    control_error(&ApiError::not_found(format!(
        "QoS profile {name} not found"
    )))
}

async fn put_profile(
    State(shared): State<Arc<SimulatorState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let mut value: serde_json::Value = match parse_json(&body) {
        Ok(value) => value,
        Err(error) => return control_error(&error),
    };
    let Some(object) = value.as_object_mut() else {
        return control_error(&ApiError::invalid("the body must be a QosProfile object"));
    };
    match object.get("name") {
        None => {
            object.insert("name".to_owned(), name.clone().into());
        }
        Some(given) if *given == *name => {}
        Some(given) => {
            return control_error(&ApiError::invalid(format!(
                "name: {given} differs from the path's `{name}`"
            )));
        }
    }
    let checked = serde_json::from_value::<wire::QosProfile>(value)
        .map_err(|e| e.to_string())
        .and_then(QosProfile::from_wire);
    let profile = match checked {
        Ok(profile) => profile,
        Err(message) => return control_error(&ApiError::invalid(message)),
    };
    let answer = Json(&profile.wire).into_response();
    let replaced = shared.profiles().put(profile);
    tracing::info!(profile = %name, replaced, "QoS profile set (test control)");
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, answer).into_response()
}

/// The body of `PUT /_sim/profiles/{name}/status`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: ProfileStatus,
}

async fn put_profile_status(
    State(shared): State<Arc<SimulatorState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let change: StatusChange = match parse_json(&body) {
        Ok(change) => change,
        Err(error) => return control_error(&error),
    };
    let mut table = shared.profiles();
    let Some(current) = table.find(&name) else {
        return profile_not_found(&name);
    };
    let mut changed = (*current).clone();
    changed.wire.status = change.status;
    let changed = match QosProfile::from_wire(changed.wire) {
        Ok(changed) => changed,
        Err(message) => return control_error(&ApiError::invalid(message)),
    };
    tracing::info!(profile = %name, status = %changed.status(), "QoS profile status set (test control)");
    let answer = Json(&changed.wire).into_response();
    table.put(changed);
    answer
}

async fn delete_profile(
    State(shared): State<Arc<SimulatorState>>,
    Path(name): Path<String>,
) -> Response {
    if !shared.profiles().remove(&name) {
        return profile_not_found(&name);
    }
    tracing::info!(profile = %name, "QoS profile removed (test control)");
    StatusCode::NO_CONTENT.into_response()
}

async fn stats(State(shared): State<Arc<SimulatorState>>) -> Response {
    let mut snapshot = shared.stats.snapshot();
    snapshot.live_sessions = shared.store().live_count();
    Json(snapshot).into_response()
}

async fn reset(State(shared): State<Arc<SimulatorState>>) -> Response {
    shared.reset();
    tracing::info!("simulator reset");
    StatusCode::NO_CONTENT.into_response()
}
