//! The CAMARA QoS Profiles API (v1.1, `/qos-profiles/v1`): `POST /retrieve-qos-profiles` and
//! `GET /qos-profiles/{name}` over the profiles the QoD API enforces.
//!
//! Requests go through the QoD API's pipeline (`api::serve`): the same credential check,
//! faults, `x-correlator` echo and counters (operations `retrieve_qos_profiles` and
//! `get_qos_profile` in `/_sim/stats`). Every profile is available to every device, so a device
//! filter is checked but narrows nothing. Network as Code has no such API: its clients get 404.

use std::sync::Arc;

use super::{
    SimulatorState,
    api::{Reply, serve},
    reply::{ApiError, ApiVersion, Dialect},
    validation::{check_device, parse_json},
};
use crate::qod::{
    Operation,
    profiles::{ProfileStatus, valid_profile_name, wire},
};
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};

pub(super) fn routes() -> Router<Arc<SimulatorState>> {
    Router::new()
        .route(
            "/retrieve-qos-profiles",
            post(
                |State(shared): State<Arc<SimulatorState>>, headers: HeaderMap, body: Bytes| async move {
                    serve(
                        &shared,
                        ApiVersion::V1,
                        Operation::RetrieveProfiles,
                        &headers,
                        |dialect| retrieve(&shared, dialect, &body),
                    )
                    .await
                },
            ),
        )
        .route(
            "/qos-profiles/{name}",
            get(
                |State(shared): State<Arc<SimulatorState>>,
                 Path(name): Path<String>,
                 headers: HeaderMap| async move {
                    serve(
                        &shared,
                        ApiVersion::V1,
                        Operation::GetProfile,
                        &headers,
                        |dialect| get_one(&shared, dialect, &name),
                    )
                    .await
                },
            ),
        )
}

fn no_such_api(dialect: Dialect) -> Result<(), ApiError> {
    match dialect {
        Dialect::Nac => Err(ApiError::not_found(
            "Network as Code has no QoS Profiles API",
        )),
        Dialect::Camara => Ok(()),
    }
}

fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    if valid_profile_name(name) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{field}: `{name}` does not match ^[a-zA-Z0-9_.-]+$ (3 to 256 characters)"
        )))
    }
}

fn json(value: &impl serde::Serialize) -> Result<Reply, ApiError> {
    serde_json::to_value(value)
        .map(|body| Reply::Json(StatusCode::OK, body))
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                format!("the profile could not be rendered: {e}"),
            )
        })
}

fn retrieve(shared: &SimulatorState, dialect: Dialect, body: &[u8]) -> Result<Reply, ApiError> {
    no_such_api(dialect)?;
    let request: wire::QosProfileDeviceRequest = parse_json(body)?;
    if let Some(device) = &request.device {
        check_device(ApiVersion::V1, "device", device)?;
    }
    if let Some(name) = &request.name {
        check_name("name", name)?;
    }
    if let Some(ProfileStatus::Other(word)) = &request.status {
        return Err(ApiError::invalid(format!(
            "status: `{word}` is not ACTIVE, INACTIVE or DEPRECATED"
        )));
    }
    let table = shared.profiles();
    let matching: Vec<&wire::QosProfile> = table
        .all()
        .iter()
        .filter(|p| request.name.as_deref().is_none_or(|name| p.name() == name))
        .filter(|p| request.status.as_ref().is_none_or(|s| p.status() == s))
        .map(|p| &p.wire)
        .collect();
    json(&matching)
}

fn get_one(shared: &SimulatorState, dialect: Dialect, name: &str) -> Result<Reply, ApiError> {
    no_such_api(dialect)?;
    check_name("name", name)?;
    let profile = shared
        .profiles()
        .find(name)
        .ok_or_else(|| ApiError::not_found(format!("QoS profile {name} not found")))?;
    json(&profile.wire)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::simulator::profiles::Table;

    #[test]
    fn the_built_in_list_renders_as_spec_profiles() {
        let table = Table::builtin();
        let wires: Vec<&wire::QosProfile> = table.all().iter().map(|p| &p.wire).collect();
        let Ok(Reply::Json(status, Value::Array(list))) = json(&wires) else {
            panic!("a JSON array");
        };
        assert_eq!(status, StatusCode::OK);
        let qos_e = list.iter().find(|p| p["name"] == "QOS_E").unwrap();
        assert_eq!(qos_e["status"], "ACTIVE");
        assert_eq!(
            qos_e["maxDuration"],
            serde_json::json!({"value": 1, "unit": "Hours"})
        );
        assert_eq!(
            qos_e["packetDelayBudget"],
            serde_json::json!({"value": 10, "unit": "Milliseconds"})
        );
    }
}
