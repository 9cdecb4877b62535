//! `/v1/event/*` (spec §8): fire and list, as Consul's JSON.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use super::error::HttpError;
use super::kv::read_body;
use super::params::Params;
use super::reply;
use super::HttpState;
use crate::service::event::FireArgs;
use crate::state::event::Event;

pub fn routes() -> Router<HttpState> {
    Router::new()
        // A wildcard, so that a name with `/` reaches the service layer and is refused
        // with the reason rather than a bare 404.
        .route("/v1/event/fire/{*name}", put(fire))
        .route("/v1/event/fire/", put(fire_unnamed))
        .route("/v1/event/list", get(list))
}

/// Consul's UserEvent JSON (`Payload` base64, `null` when empty).
pub fn event_json(e: &Event) -> Value {
    let payload = (!e.payload.is_empty())
        .then(|| base64::engine::general_purpose::STANDARD.encode(&e.payload));
    json!({
        "ID": e.id,
        "Name": e.name,
        "Payload": payload,
        "NodeFilter": e.node_filter,
        "ServiceFilter": e.service_filter,
        "TagFilter": e.tag_filter,
        "Version": 1,
        "LTime": e.ltime,
    })
}

async fn fire_unnamed() -> Result<Response, HttpError> {
    Err(HttpError::BadRequest("Missing name".into()))
}

async fn fire(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    // Read a little past the limit so an oversized payload is refused by the service
    // layer's rule (with its text), not cut short here.
    let max = state.service.limits().event_max_payload + 1;
    let payload = read_body(&headers, body, max, |n, max| {
        HttpError::TooLarge(format!(
            "user event exceeds configured limit of {} bytes before encoding ({n} byte payload)",
            max - 1
        ))
    })
    .await?;
    let args = FireArgs {
        name,
        payload,
        node_filter: params.get("node").unwrap_or_default().to_string(),
        service_filter: params.get("service").unwrap_or_default().to_string(),
        tag_filter: params.get("tag").unwrap_or_default().to_string(),
    };
    let (_, event) = state.service.event_fire(args).await?;
    Ok(reply::json(
        &state,
        &params,
        StatusCode::OK,
        &event_json(&event),
    ))
}

async fn list(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let opts = params.query_options()?;
    let name = params
        .get("name")
        .filter(|n| !n.is_empty())
        .map(String::from);
    let (index, events) = state.service.event_list(name, &opts).await?;
    let body: Value = events.iter().map(event_json).collect();
    let mut resp = reply::json(&state, &params, StatusCode::OK, &body);
    if let Ok(v) = HeaderValue::from_str(&index.to_string()) {
        resp.headers_mut().insert("X-Consul-Index", v);
    }
    Ok(resp)
}
