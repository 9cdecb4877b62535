//! `/v1/snapshot`: Consul's backup endpoint. GET answers the snapshot file (with the
//! index it was taken at in `X-Consul-Index`); PUT restores one sent as the body.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::HttpError;
use super::kv::read_body;
use super::params::Params;
use super::reply;
use super::HttpState;
use crate::service::snapshot::MAX_SNAPSHOT_BYTES;

pub fn routes() -> Router<HttpState> {
    Router::new().route("/v1/snapshot", get(save).put(restore))
}

async fn save(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let (meta, file) = state.service.snapshot_save(params.consistency()?).await?;
    let mut resp = (StatusCode::OK, file).into_response();
    reply::leader_headers(&mut resp, &meta);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&meta.index.to_string()) {
        h.insert("X-Consul-Index", v);
    }
    Ok(resp)
}

async fn restore(
    State(state): State<HttpState>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let file = read_body(&headers, body, MAX_SNAPSHOT_BYTES, |n, max| {
        HttpError::TooLarge(format!(
            "snapshot of {n} bytes exceeds the {max}-byte limit"
        ))
    })
    .await?;
    let (meta, _) = state.service.snapshot_restore(file).await?;
    let mut resp = StatusCode::OK.into_response();
    reply::leader_headers(&mut resp, &meta);
    Ok(resp)
}
