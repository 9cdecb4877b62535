//! `GET /v1/agent/metrics` (Consul's): JSON by default; Prometheus's scrape format with
//! `?format=prometheus` or an `Accept` naming OpenMetrics, as Consul negotiates it.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::HttpError;
use super::params::Params;
use super::reply;
use super::HttpState;

pub fn routes() -> Router<HttpState> {
    Router::new().route("/v1/agent/metrics", get(metrics))
}

async fn metrics(
    State(state): State<HttpState>,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    // A client agent's service layer is a server's, over the network: its raft figures
    // are that server's, not this agent's, so only servers report them.
    let server = state.agent.server.then(|| state.service.metrics());
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if params.get("format") == Some("prometheus") || openmetrics {
        let text = state.local.telemetry.prometheus(server.as_ref());
        let mut resp = (StatusCode::OK, text).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        return Ok(resp);
    }
    let body = state.local.telemetry.json(server.as_ref());
    Ok(reply::json(&state, &params, StatusCode::OK, &body))
}
