//! `/v1/kv/<key>`: Consul's KV endpoint (spec §3) over the shared service layer.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt;

use super::error::HttpError;
use super::params::Params;
use super::reply::{self, KvPairJson};
use super::HttpState;
use crate::service::kv::PutArgs;
use crate::state::kv::LockOp;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/kv", get(get_root).put(put_root).delete(delete_root))
        .route("/v1/kv/", get(get_root).put(put_root).delete(delete_root))
        .route("/v1/kv/{*key}", get(kv_get).put(kv_put).delete(kv_delete))
}

async fn get_root(state: State<HttpState>, params: Params) -> Result<Response, HttpError> {
    read(state, String::new(), params).await
}

async fn put_root(
    state: State<HttpState>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    write(state, String::new(), params, headers, body).await
}

async fn delete_root(state: State<HttpState>, params: Params) -> Result<Response, HttpError> {
    remove(state, String::new(), params).await
}

async fn kv_get(
    state: State<HttpState>,
    Path(key): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    read(state, key, params).await
}

async fn kv_put(
    state: State<HttpState>,
    Path(key): Path<String>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    write(state, key, params, headers, body).await
}

async fn kv_delete(
    state: State<HttpState>,
    Path(key): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    remove(state, key, params).await
}

/// GET: one key (`?raw` for the bare value), `?recurse` or `?keys` for a prefix.
async fn read(
    State(state): State<HttpState>,
    key: String,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let opts = params.query_options()?;
    let service = &state.service;
    if params.has("keys") {
        let separator = params
            .get("separator")
            .or(params.get("seperator"))
            .unwrap_or("");
        let (meta, keys) = service.kv_keys(&key, separator, &opts).await?;
        if keys.is_empty() && !key.is_empty() {
            return Ok(reply::not_found(&meta));
        }
        return Ok(reply::query_headers(
            reply::json(&state, &params, StatusCode::OK, &keys),
            &meta,
        ));
    }
    if params.has("recurse") {
        let (meta, entries) = service.kv_list(&key, &opts).await?;
        if entries.is_empty() {
            return Ok(reply::not_found(&meta));
        }
        let pairs: Vec<KvPairJson> = entries.iter().map(KvPairJson::from).collect();
        return Ok(reply::query_headers(
            reply::json(&state, &params, StatusCode::OK, &pairs),
            &meta,
        ));
    }
    if key.is_empty() {
        return Err(HttpError::BadRequest("Missing key name".into()));
    }
    let (meta, entry) = service.kv_get(&key, &opts).await?;
    let Some(entry) = entry else {
        return Ok(reply::not_found(&meta));
    };
    if params.has("raw") {
        let mut resp = (StatusCode::OK, entry.value).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.insert(
            "X-Content-Type-Options",
            HeaderValue::from_static("nosniff"),
        );
        h.insert(
            "Content-Security-Policy",
            HeaderValue::from_static("sandbox"),
        );
        return Ok(reply::query_headers(resp, &meta));
    }
    let pairs = [KvPairJson::from(&entry)];
    Ok(reply::query_headers(
        reply::json(&state, &params, StatusCode::OK, &pairs),
        &meta,
    ))
}

fn too_large(size: u64, max: usize) -> HttpError {
    HttpError::TooLarge(format!(
        "Request body({size} bytes) too large, max size: {max} bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size."
    ))
}

/// Oversized bodies up to this size are drained before answering 413.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;

/// A body that delivers nothing for this long is given up on (408, connection closed):
/// a client that declares a length and stalls would otherwise hold its request permit
/// and connection until it went away.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// However it trickles, a whole body must arrive within this long, so a client sending
/// a byte every few seconds cannot hold a permit for days either.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a body could not be read.
enum BodyError {
    /// More than the limit arrived (this many bytes so far).
    TooLarge(u64),
    Stalled,
    /// The client closed early, or sent a malformed chunked encoding.
    Broken(axum::Error),
}

/// Collects at most `max` bytes of `body`, within the timeouts above; with `keep`
/// false only counts them (draining a body that will be refused).
async fn collect(body: Body, max: usize, keep: bool) -> Result<Vec<u8>, BodyError> {
    let mut chunks = body.into_data_stream();
    let deadline = tokio::time::Instant::now() + BODY_TIMEOUT;
    let mut out = Vec::new();
    let mut seen = 0;
    loop {
        let idle = tokio::time::Instant::now() + BODY_IDLE_TIMEOUT;
        match tokio::time::timeout_at(idle.min(deadline), chunks.next()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => return Err(BodyError::Broken(e)),
            Ok(Some(Ok(chunk))) => {
                seen += chunk.len();
                if seen > max {
                    return Err(BodyError::TooLarge(seen as u64));
                }
                if keep {
                    out.extend_from_slice(&chunk);
                }
            }
        }
    }
}

/// Reads a request body of at most `max` bytes; `too_large` builds the 413 otherwise.
/// A stalled body is a 408 and a truncated or garbled one a 400, each saying so.
pub(super) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    too_large: impl Fn(u64, usize) -> HttpError,
) -> Result<Vec<u8>, HttpError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > max as u64) {
        // Read (and drop) a moderately oversized body so the client, still sending, sees
        // the 413 rather than a reset connection; a huge one is refused unread.
        if n <= DRAIN_LIMIT {
            let _ = collect(body, DRAIN_LIMIT as usize, false).await;
        }
        return Err(too_large(n, max));
    }
    // A body without a (truthful) length is cut off one byte past the limit.
    match collect(body, max, true).await {
        Ok(bytes) => Ok(bytes),
        Err(BodyError::TooLarge(n)) => Err(too_large(n, max)),
        Err(BodyError::Stalled) => Err(HttpError::Status(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "Request body not received: nothing arrived for {}s, or it took over {}s",
                BODY_IDLE_TIMEOUT.as_secs(),
                BODY_TIMEOUT.as_secs()
            ),
        )),
        Err(BodyError::Broken(e)) => Err(HttpError::BadRequest(format!(
            "Failed to read the request body: {e}"
        ))),
    }
}

/// PUT: `?flags`, `?cas`; the body is the value. Answers `true` or `false`.
async fn write(
    State(state): State<HttpState>,
    key: String,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    if key.is_empty() {
        return Err(HttpError::BadRequest("Missing key name".into()));
    }
    let conditions = ["cas", "acquire", "release"]
        .iter()
        .filter(|p| params.has(p))
        .count();
    if conditions > 1 {
        return Err(HttpError::BadRequest(format!(
            "Conflicting flags: {}\n",
            params.raw
        )));
    }
    let flags = params.u64("flags")?.unwrap_or(0);
    let cas = params.u64("cas")?;
    let max = state.service.limits().max_value_size;
    let value = read_body(&headers, body, max, too_large).await?;
    let lock = [("acquire", LockOp::Acquire), ("release", LockOp::Release)]
        .into_iter()
        .find_map(|(name, op)| params.get(name).map(|session| (op, session.to_string())));

    let (_, ok) = state
        .service
        .kv_put(PutArgs {
            key,
            value,
            flags,
            cas,
            lock,
        })
        .await?;
    Ok(reply::json(&state, &params, StatusCode::OK, &ok))
}

/// DELETE: one key, `?recurse` for a prefix, `?cas` for a conditional delete.
async fn remove(
    State(state): State<HttpState>,
    key: String,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let recurse = params.has("recurse");
    if recurse && params.has("cas") {
        return Err(HttpError::BadRequest(format!(
            "Conflicting flags: {}\n",
            params.raw
        )));
    }
    if key.is_empty() && !recurse {
        return Err(HttpError::BadRequest("Missing key name".into()));
    }
    let cas = params.u64("cas")?;
    let (_, ok) = state.service.kv_delete(&key, recurse, cas).await?;
    Ok(reply::json(&state, &params, StatusCode::OK, &ok))
}
