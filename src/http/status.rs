//! Status and agent-identity endpoints that clients probe: `/v1/status/leader`,
//! `/v1/status/peers`, `/v1/operator/raft/configuration`,
//! `/v1/catalog/datacenters` (spec §14.1).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

use super::error::HttpError;
use super::params::Params;
use super::reply;
use super::HttpState;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/status/leader", get(leader))
        .route("/v1/status/peers", get(peers))
        .route("/v1/operator/raft/configuration", get(raft_configuration))
        .route("/v1/operator/raft/peer", axum::routing::delete(remove_peer))
        .route("/v1/catalog/datacenters", get(datacenters))
}

pub use crate::agent::node_uuid;

async fn leader(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let status = state.service.cluster_status();
    let addr = status
        .leader
        .map(|(_, node)| node.raft_addr)
        .unwrap_or_default();
    Ok(reply::json(&state, &params, StatusCode::OK, &addr))
}

async fn peers(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let status = state.service.cluster_status();
    let voters: Vec<String> = status
        .servers
        .into_iter()
        .filter(|(_, _, voter)| *voter)
        .map(|(_, node, _)| node.raft_addr)
        .collect();
    Ok(reply::json(&state, &params, StatusCode::OK, &voters))
}

/// Consul's `DELETE /v1/operator/raft/peer?id=|address=`: 200 with an empty body.
async fn remove_peer(
    State(state): State<HttpState>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    // Consul's raft ids are node UUIDs; Rostra's map to one (see `node_uuid`).
    let id = match params.get("id").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(
            state
                .service
                .cluster_status()
                .servers
                .iter()
                .map(|(id, _, _)| *id)
                .find(|id| node_uuid(*id) == v || id.to_string() == v)
                .ok_or_else(|| {
                    HttpError::from(crate::service::ServiceError::NotFound(format!(
                        "id {v:?} was not found in the Raft configuration"
                    )))
                })?,
        ),
    };
    let address = params
        .get("address")
        .filter(|v| !v.is_empty())
        .map(String::from);
    state.service.raft_remove_peer(id, address).await?;
    Ok(axum::response::IntoResponse::into_response(StatusCode::OK))
}

async fn raft_configuration(
    State(state): State<HttpState>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let status = state.service.cluster_status();
    let leader = status.leader.as_ref().map(|(id, _)| *id);
    let servers: Vec<_> = status
        .servers
        .iter()
        .map(|(id, node, voter)| {
            json!({
                "ID": node_uuid(*id),
                "Node": if node.name.is_empty() { "(unknown)" } else { node.name.as_str() },
                "Address": node.raft_addr,
                "Leader": Some(*id) == leader,
                "Voter": voter,
                "ProtocolVersion": "3",
            })
        })
        .collect();
    let body = json!({ "Servers": servers, "Index": status.membership_index });
    Ok(reply::json(&state, &params, StatusCode::OK, &body))
}

async fn datacenters(
    State(state): State<HttpState>,
    params: Params,
) -> Result<Response, HttpError> {
    Ok(reply::json(
        &state,
        &params,
        StatusCode::OK,
        &[state.agent.datacenter.as_str()],
    ))
}
