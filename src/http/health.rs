//! `/v1/health/*` (spec §7.1): checks and instances with their health, all blocking.

use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::catalog::tags;
use super::catalog_json as cj;
use super::error::HttpError;
use super::params::Params;
use super::reply;
use super::HttpState;
use crate::agent::definition::CheckStatus;
use crate::config::consul_json::parse_go_bool;
use crate::service::catalog::CheckView;
use crate::service::QueryMeta;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/health/node/{node}", get(node))
        .route("/v1/health/checks/{service}", get(checks))
        .route("/v1/health/service/{service}", get(service))
        .route("/v1/health/state/{state}", get(state_checks))
        .route("/v1/health/connect/{service}", get(no_mesh_instances))
        .route("/v1/health/ingress/{service}", get(no_mesh_instances))
}

/// `/v1/health/connect/<svc>` and `/v1/health/ingress/<svc>`: the instances that are
/// mesh-capable or behind an ingress gateway. Rostra has no service mesh, so there are
/// none; the answer is Consul's with the feature unused: `[]`, with the blocking headers
/// of the service's health, so a blocking client waits instead of spinning.
async fn no_mesh_instances(
    State(state): State<HttpState>,
    Path(service): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let (meta, _) = state
        .service
        .health_service(&service, &[], false, &params.query_options()?)
        .await?;
    reply::filtered_list(
        &state,
        &params,
        &meta,
        Vec::new(),
        cj::templates::service_entry(),
    )
}

async fn node(
    State(state): State<HttpState>,
    Path(node): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let (meta, checks) = state
        .service
        .health_node(&node, &params.query_options()?)
        .await?;
    checks_reply(&state, &params, &meta, &checks)
}

async fn checks(
    State(state): State<HttpState>,
    Path(service): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let (meta, checks) = state
        .service
        .health_checks(&service, &params.query_options()?)
        .await?;
    checks_reply(&state, &params, &meta, &checks)
}

/// `?passing` is a flag, but `?passing=false` turns it off and junk is an error.
fn passing(params: &Params) -> Result<bool, HttpError> {
    match params.get("passing") {
        None => Ok(false),
        Some("") => Ok(true),
        Some(v) => parse_go_bool(v)
            .ok_or_else(|| HttpError::BadRequest("Invalid value for ?passing".into())),
    }
}

/// Every list of checks answers the same way.
fn checks_reply(
    state: &HttpState,
    params: &Params,
    meta: &QueryMeta,
    checks: &[CheckView],
) -> Result<Response, HttpError> {
    let items = checks.iter().map(cj::check_view).collect();
    reply::filtered_list(state, params, meta, items, cj::templates::check())
}

async fn service(
    State(state): State<HttpState>,
    Path(service): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let passing = passing(&params)?;
    let (meta, entries) = state
        .service
        .health_service(&service, &tags(&params), passing, &params.query_options()?)
        .await?;
    reply::filtered_list(
        &state,
        &params,
        &meta,
        entries.iter().map(cj::service_entry).collect(),
        cj::templates::service_entry(),
    )
}

async fn state_checks(
    State(state): State<HttpState>,
    Path(which): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let status = match which.as_str() {
        "any" => None,
        s => Some(
            CheckStatus::parse(s)
                .ok_or_else(|| HttpError::BadRequest(format!("Unsupported state: {s}")))?,
        ),
    };
    let (meta, checks) = state
        .service
        .health_state(status, &params.query_options()?)
        .await?;
    checks_reply(&state, &params, &meta, &checks)
}
