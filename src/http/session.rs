//! `/v1/session/*` (spec §9): sessions as Consul's JSON. Decoding only: defaults, ranges
//! and what a session may be are the service layer's (`service::session`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use serde_json::{json, Value};

use super::error::HttpError;
use super::kv::read_body;
use super::params::Params;
use super::reply;
use super::HttpState;
use crate::service::session::{SessionArgs, SessionFilter};
use crate::state::session::Session;

/// Session bodies are a few fields.
const MAX_BODY: usize = 64 * 1024;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/session/create", put(create))
        .route("/v1/session/destroy/{id}", put(destroy))
        .route("/v1/session/renew/{id}", put(renew))
        .route("/v1/session/info/{id}", get(info))
        .route("/v1/session/node/{node}", get(node))
        .route("/v1/session/list", get(list))
}

/// Consul's Session JSON.
pub fn session_json(s: &Session) -> Value {
    let service_checks: Value = if s.service_checks.is_empty() {
        Value::Null
    } else {
        s.service_checks
            .iter()
            .map(|id| json!({"ID": id, "Namespace": ""}))
            .collect()
    };
    json!({
        "ID": s.id,
        "Name": s.name,
        "Node": s.node,
        "LockDelay": s.lock_delay_ns,
        "Behavior": s.behavior.as_str(),
        "TTL": s.ttl,
        "NodeChecks": s.node_checks,
        "ServiceChecks": service_checks,
        "CreateIndex": s.create_index,
        "ModifyIndex": s.modify_index,
    })
}

fn bad(message: String) -> HttpError {
    HttpError::BadRequest(format!("Request decode failed: {message}"))
}

/// `v`'s member `name`, matched as Go's JSON decoder matches keys.
fn member<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.as_object().and_then(|o| crate::json::field(o, name))
}

fn string(v: &Value, name: &str) -> Result<Option<String>, HttpError> {
    match member(v, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(format!("{name}: expected a string, got {other}"))),
    }
}

fn strings(v: &Value, name: &str) -> Result<Option<Vec<String>>, HttpError> {
    match member(v, name) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad(format!("{name}: expected strings, got {other}"))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(bad(format!("{name}: expected a list, got {other}"))),
    }
}

/// Consul's `LockDelay`: a duration string or a number; either below 1000 is seconds,
/// otherwise nanoseconds.
fn lock_delay(v: &Value) -> Result<Option<Duration>, HttpError> {
    let as_delay = |n: u64| {
        if n < 1000 {
            Duration::from_secs(n)
        } else {
            Duration::from_nanos(n)
        }
    };
    match member(v, "LockDelay") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| Some(as_delay(n)))
            .ok_or_else(|| bad(format!("LockDelay: invalid number {n}"))),
        Some(Value::String(s)) => match super::params::parse_go_duration(s) {
            Some(d) if d.as_nanos() < 1000 => Ok(Some(Duration::from_secs(d.as_nanos() as u64))),
            Some(d) => Ok(Some(d)),
            None => Err(bad(format!("LockDelay: invalid duration {s:?}"))),
        },
        Some(other) => Err(bad(format!("LockDelay: expected a duration, got {other}"))),
    }
}

fn decode(v: &Value) -> Result<SessionArgs, HttpError> {
    if !v.is_object() && !v.is_null() {
        return Err(bad("expected a JSON object".into()));
    }
    // Sending `Checks` at all (even `[]`) replaces the default, as `NodeChecks` does.
    let mut node_checks = strings(v, "NodeChecks")?;
    if let Some(legacy) = strings(v, "Checks")? {
        node_checks.get_or_insert_with(Vec::new).extend(legacy);
    }
    let service_checks = match member(v, "ServiceChecks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| string(i, "ID")?.ok_or_else(|| bad("ServiceChecks: each needs an ID".into())))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad(format!("ServiceChecks: expected a list, got {other}"))),
    };
    Ok(SessionArgs {
        name: string(v, "Name")?.unwrap_or_default(),
        node: string(v, "Node")?,
        lock_delay: lock_delay(v)?,
        behavior: string(v, "Behavior")?,
        ttl: string(v, "TTL")?,
        node_checks,
        service_checks,
    })
}

async fn create(
    State(state): State<HttpState>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    // The body is optional: an empty one is a session with every default.
    let bytes = read_body(&headers, body, MAX_BODY, |n, max| {
        HttpError::TooLarge(format!(
            "Request body({n} bytes) too large, max size: {max} bytes."
        ))
    })
    .await?;
    let v = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?
    };
    let args = decode(&v)?;
    let (_, id) = state.service.session_create(args).await?;
    Ok(reply::json(
        &state,
        &params,
        StatusCode::OK,
        &json!({"ID": id}),
    ))
}

async fn destroy(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    state.service.session_destroy(&id).await?;
    Ok(reply::json(&state, &params, StatusCode::OK, &true))
}

async fn renew(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let (_, session) = state.service.session_renew(&id).await?;
    let body = Value::Array(vec![session_json(&session)]);
    Ok(reply::json(&state, &params, StatusCode::OK, &body))
}

async fn read(
    state: HttpState,
    params: Params,
    filter: SessionFilter,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let opts = params.query_options()?;
    let (meta, sessions) = state.service.session_list(filter, &opts).await?;
    let body: Value = sessions.iter().map(session_json).collect();
    Ok(reply::query_headers(
        reply::json(&state, &params, StatusCode::OK, &body),
        &meta,
    ))
}

async fn info(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    read(state, params, SessionFilter::Id(id)).await
}

async fn node(
    State(state): State<HttpState>,
    Path(node): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    read(state, params, SessionFilter::Node(node)).await
}

async fn list(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    read(state, params, SessionFilter::All).await
}
