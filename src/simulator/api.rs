//! The QoD API handlers: `POST /sessions`, `GET`/`DELETE /sessions/{id}`,
//! `POST /sessions/{id}/extend` and `POST /retrieve-sessions`, served once per path family
//! (`/quality-on-demand/v1`, `/quality-on-demand/v0.11`, `/qod/v0`) for both dialects.
//!
//! Every request goes through [`serve`]: injected latency, the credential check, the
//! rate-limit and error faults, then the operation; the answer echoes `x-correlator` and is
//! counted in the stats. The operations themselves are synchronous on the store.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::Value;
use uuid::Uuid;

use super::{
    SimulatorState, client_auth, notifier, render,
    reply::{ApiError, ApiVersion, Dialect, X_CORRELATOR, code},
    store::{NewSession, Session},
    validation::{self, V0_10_MAX_DURATION},
};
use crate::qod::{Operation, event::NotificationFormat, model::QosStatus};

/// A successful answer.
pub(super) enum Reply {
    Json(StatusCode, Value),
    NoContent,
}

/// The routes of one path family, to be nested under `version.base_path()`.
pub(super) fn routes(version: ApiVersion) -> Router<Arc<SimulatorState>> {
    Router::new()
        .route(
            "/sessions",
            post(
                move |State(shared): State<Arc<SimulatorState>>,
                      headers: HeaderMap,
                      body: Bytes| async move {
                    serve(&shared, version, Operation::Create, &headers, |dialect| {
                        create(&shared, version, dialect, &body)
                    })
                    .await
                },
            ),
        )
        .route(
            "/sessions/{session_id}",
            axum::routing::get(
                move |State(shared): State<Arc<SimulatorState>>,
                      Path(id): Path<String>,
                      headers: HeaderMap| async move {
                    serve(&shared, version, Operation::Get, &headers, |_| {
                        get(&shared, version, &id)
                    })
                    .await
                },
            )
            .delete(
                move |State(shared): State<Arc<SimulatorState>>,
                      Path(id): Path<String>,
                      headers: HeaderMap| async move {
                    serve(&shared, version, Operation::Delete, &headers, |_| {
                        delete(&shared, &id)
                    })
                    .await
                },
            ),
        )
        .route(
            "/sessions/{session_id}/extend",
            post(
                move |State(shared): State<Arc<SimulatorState>>,
                      Path(id): Path<String>,
                      headers: HeaderMap,
                      body: Bytes| async move {
                    serve(&shared, version, Operation::Extend, &headers, |_| {
                        extend(&shared, version, &id, &body)
                    })
                    .await
                },
            ),
        )
        .route(
            "/retrieve-sessions",
            post(
                move |State(shared): State<Arc<SimulatorState>>,
                      headers: HeaderMap,
                      body: Bytes| async move {
                    serve(
                        &shared,
                        version,
                        Operation::RetrieveSessions,
                        &headers,
                        |dialect| retrieve(&shared, version, dialect, &body),
                    )
                    .await
                },
            ),
        )
}

/// The request pipeline shared by every operation (of the QoS Profiles API too).
pub(super) async fn serve(
    shared: &SimulatorState,
    version: ApiVersion,
    operation: Operation,
    headers: &HeaderMap,
    work: impl FnOnce(Dialect) -> Result<Reply, ApiError>,
) -> Response {
    let dialect = Dialect::of(headers);
    let correlator = headers.get(X_CORRELATOR);
    let echoed = correlator.filter(|value| valid_correlator(value));
    // Counts the request as abandoned if its client leaves first: the server then drops this
    // future, so the guard's drop is the only code that runs.
    let mut abandoned = Abandoned {
        shared,
        operation,
        armed: true,
    };
    let faults = shared.faults();
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let result = if correlator.is_some() && echoed.is_none() {
        Err(ApiError::invalid(
            "x-correlator: must match ^[a-zA-Z0-9-_:;.\\/<>{}]{0,256}$",
        ))
    } else {
        client_auth::authorize(shared, dialect, headers)
            .and_then(|()| faults.admit())
            .and_then(|()| work(dialect))
    };
    let answer_delay = faults.answer_delay();
    if !answer_delay.is_zero() {
        tokio::time::sleep(answer_delay).await;
    }
    if faults.hold_answers {
        shared.answers_released().await;
    }
    let mut response = match result {
        Ok(Reply::Json(status, body)) => (status, Json(body)).into_response(),
        Ok(Reply::NoContent) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => {
            tracing::debug!(operation = %operation, api_version = version.as_str(),
                status = error.status.as_u16(), code = error.code, message = %error.message,
                "request refused");
            error.render(version, dialect, None)
        }
    };
    if let Some(correlator) = echoed {
        response
            .headers_mut()
            .insert(HeaderName::from_static(X_CORRELATOR), correlator.clone());
    }
    abandoned.armed = false;
    shared
        .stats
        .api_request(operation, response.status().as_u16());
    response
}

/// Counts a request whose handling was dropped before its answer.
struct Abandoned<'a> {
    shared: &'a SimulatorState,
    operation: Operation,
    armed: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.stats.api_request_abandoned(self.operation);
        }
    }
}

/// `^[a-zA-Z0-9-_:;.\/<>{}]{0,256}$` (v1.1).
fn valid_correlator(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    bytes.len() <= 256
        && bytes.iter().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'_' | b':' | b';' | b'.' | b'/' | b'<' | b'>' | b'{' | b'}'
                )
        })
}

/// The notification format of a new session when `--notification-format` is not given: the
/// one matching the path (Nokia's hybrid for NaC clients on `/qod/v0`).
pub(super) fn default_format(version: ApiVersion, dialect: Dialect) -> NotificationFormat {
    match (version, dialect) {
        (ApiVersion::V1, _) => NotificationFormat::V1,
        (ApiVersion::V0_11, _) => NotificationFormat::V0_11,
        (ApiVersion::V0_10, Dialect::Camara) => NotificationFormat::V0_10,
        (ApiVersion::V0_10, Dialect::Nac) => NotificationFormat::NacHybrid,
    }
}

pub(super) fn parse_session_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::invalid(format!("sessionId: `{text}` is not a UUID")))
}

pub(super) fn session_not_found(id: &Uuid) -> ApiError {
    ApiError::not_found(format!("session {id} not found"))
}

fn create(
    shared: &Arc<SimulatorState>,
    version: ApiVersion,
    dialect: Dialect,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let valid = validation::create(version, dialect, body, &shared.profiles())?;
    let id = Uuid::new_v4();
    let format = shared
        .config
        .notification_format
        .unwrap_or_else(|| default_format(version, dialect));
    let mut store = shared.store();
    if let Some(existing) = store.conflicting(
        valid.device.as_ref(),
        &valid.application_server,
        valid.device_ports.as_ref(),
        valid.application_server_ports.as_ref(),
    ) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            code::CONFLICT,
            format!(
                "Conflict with an existing session for the same device: session {} covers an \
                 overlapping flow",
                existing.id
            ),
        ));
    }
    let outbox = valid.callback.clone().map(|callback| {
        let source = render::session_url(&shared.base_url, version, &id);
        notifier::start(shared, id, callback, format, source)
    });
    let session = Session::create(
        NewSession {
            id,
            version,
            dialect,
            device: valid.device,
            application_server: valid.application_server,
            device_ports: valid.device_ports,
            application_server_ports: valid.application_server_ports,
            profile: valid.profile,
            duration: valid.duration,
            callback: valid.callback,
            format,
            outbox,
        },
        shared.clock.now(),
        &shared.clock,
        shared.config.available_after,
    );
    tracing::info!(session_id = %id, api_version = version.as_str(), dialect = dialect.as_str(),
        qos_profile = session.profile.name(), duration = session.duration,
        qos_status = %session.status, "session created");
    let body = render::session_info(&session, version);
    store.insert(session);
    drop(store);
    shared.stats.session_created();
    shared.wake.notify_one();
    Ok(Reply::Json(StatusCode::CREATED, body))
}

fn get(shared: &SimulatorState, version: ApiVersion, raw_id: &str) -> Result<Reply, ApiError> {
    let id = parse_session_id(raw_id)?;
    let mut store = shared.store();
    let session = store.get_mut(&id).ok_or_else(|| session_not_found(&id))?;
    session.reads += 1;
    Ok(Reply::Json(
        StatusCode::OK,
        render::session_info(session, version),
    ))
}

fn delete(shared: &SimulatorState, raw_id: &str) -> Result<Reply, ApiError> {
    let id = parse_session_id(raw_id)?;
    let mut store = shared.store();
    let session = store.get_mut(&id).ok_or_else(|| session_not_found(&id))?;
    session.delete(&shared.clock);
    store.remove(&id, shared.clock.wall_now());
    drop(store);
    shared.wake.notify_one();
    tracing::info!(session_id = %id, "session deleted");
    Ok(Reply::NoContent)
}

fn extend(
    shared: &SimulatorState,
    version: ApiVersion,
    raw_id: &str,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let id = parse_session_id(raw_id)?;
    let requested = validation::extend(version, body)?;
    let now = shared.clock.now();
    let mut store = shared.store();
    let session = store.get_mut(&id).ok_or_else(|| session_not_found(&id))?;
    if session.status != QosStatus::Available {
        return Err(match version {
            ApiVersion::V0_10 => ApiError::invalid("The target session is inactive"),
            _ => ApiError::new(
                StatusCode::CONFLICT,
                code::SESSION_EXTENSION_NOT_ALLOWED,
                format!(
                    "Extending the session duration is not allowed in the current state ({}). \
                     The session must be in the AVAILABLE state.",
                    session.status
                ),
            ),
        });
    }
    let granted = match version {
        // v0.10: the remaining time after the extension is capped at 86 400 s.
        ApiVersion::V0_10 => {
            let remaining = session
                .deadline
                .map(|deadline| deadline.saturating_duration_since(now))
                .unwrap_or_default();
            let remaining = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
            let room = u64::from(V0_10_MAX_DURATION).saturating_sub(remaining);
            requested.min(u32::try_from(room).unwrap_or(u32::MAX))
        }
        // v0.11+: the total is capped at the profile's maximum, silently.
        _ => requested.min(
            session
                .profile
                .max_duration
                .saturating_sub(session.duration),
        ),
    };
    session.extend_by(granted);
    tracing::info!(session_id = %id, requested, granted, duration = session.duration,
        "session extended");
    let body = render::session_info(session, version);
    drop(store);
    shared.wake.notify_one();
    Ok(Reply::Json(StatusCode::OK, body))
}

fn retrieve(
    shared: &SimulatorState,
    version: ApiVersion,
    dialect: Dialect,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let device = validation::retrieve(version, body)?;
    let store = shared.store();
    let sessions: Vec<Value> = store
        .of_device(&device)
        .into_iter()
        .map(|session| render::session_info(session, version))
        .collect();
    // Nokia answers 404 instead of an empty list (its SDK maps that back to []).
    if sessions.is_empty() && dialect == Dialect::Nac {
        return Err(ApiError::not_found("QoS subscription not found"));
    }
    Ok(Reply::Json(StatusCode::OK, Value::Array(sessions)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlator_pattern() {
        for good in [
            "b4333c46-49c0-4f62-80d7-f0ef930f1c46",
            "",
            "a:b;c.d/e<f>{g}_h",
        ] {
            assert!(valid_correlator(&HeaderValue::from_static(good)), "{good}");
        }
        for bad in ["with space", "quote\"", "percent%"] {
            assert!(!valid_correlator(&HeaderValue::from_static(bad)), "{bad}");
        }
        let long = HeaderValue::from_str(&"a".repeat(257)).unwrap();
        assert!(!valid_correlator(&long));
    }

    #[test]
    fn default_formats_follow_the_path() {
        assert_eq!(
            default_format(ApiVersion::V1, Dialect::Nac),
            NotificationFormat::V1
        );
        assert_eq!(
            default_format(ApiVersion::V0_11, Dialect::Camara),
            NotificationFormat::V0_11
        );
        assert_eq!(
            default_format(ApiVersion::V0_10, Dialect::Camara),
            NotificationFormat::V0_10
        );
        assert_eq!(
            default_format(ApiVersion::V0_10, Dialect::Nac),
            NotificationFormat::NacHybrid
        );
    }
}
