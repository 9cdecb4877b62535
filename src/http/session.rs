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
use crate::config::consul_json::{DecodeError, Obj};
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

/// Consul's session body, decoded with the shared Consul-JSON reader (`Obj`: keys matched
/// as Go matches them, so py-consul's `lockdelay` is `LockDelay`). Unknown keys are
/// ignored, as Consul's decoder does.
fn decode(v: &Value) -> Result<SessionArgs, DecodeError> {
    if v.is_null() {
        return Ok(SessionArgs::default());
    }
    let mut o = Obj::new(v, "")?;
    // Sending `Checks` at all (even `[]`) replaces the default, as `NodeChecks` does.
    let mut node_checks = o.string_list(&["NodeChecks"])?;
    if let Some(legacy) = o.string_list(&["Checks"])? {
        node_checks.get_or_insert_with(Vec::new).extend(legacy);
    }
    let service_checks = o
        .objects(&["ServiceChecks"])?
        .into_iter()
        .map(|mut c| {
            c.string(&["ID"])?
                .ok_or_else(|| c.err("ID", "each service check needs an ID"))
        })
        .collect::<Result<_, _>>()?;
    // Consul's `LockDelay`: below 1000 (as a number or a parsed duration) is seconds.
    let lock_delay = o.duration(&["LockDelay"])?.map(|d| match d.as_nanos() {
        n @ 0..1000 => Duration::from_secs(n as u64),
        _ => d,
    });
    Ok(SessionArgs {
        name: o.string(&["Name"])?.unwrap_or_default(),
        node: o.string(&["Node"])?,
        lock_delay,
        behavior: o.string(&["Behavior"])?,
        ttl: o.string(&["TTL"])?,
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
    let args = decode(&v).map_err(|e| bad(e.to_string()))?;
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

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::arbitrary;

    proptest! {
        #![proptest_config(arbitrary::config())]

        /// Any session body decodes or is a decode error naming the key; none panics.
        #[test]
        fn any_session_body_decodes_or_says_why(
            v in arbitrary::json(&["Name", "Node", "LockDelay", "Behavior", "TTL",
                                   "NodeChecks", "Checks", "ServiceChecks", "ID"]),
        ) {
            if let Err(e) = decode(&v) {
                prop_assert!(!e.message.is_empty());
            }
        }

        #[test]
        fn lock_delays_below_1000_are_seconds(n in 0u64..2_000_000) {
            let v = serde_json::json!({"LockDelay": n});
            let want = if n < 1000 { Duration::from_secs(n) } else { Duration::from_nanos(n) };
            prop_assert_eq!(decode(&v).unwrap().lock_delay, Some(want));
        }
    }
}
