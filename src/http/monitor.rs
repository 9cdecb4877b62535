//! `GET /v1/agent/monitor?loglevel=&logjson` (Consul's): the agent's log, streamed as it
//! is written, one line per event, until the client goes away or the agent stops.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::error::HttpError;
use super::params::Params;
use super::HttpState;

pub fn routes() -> Router<HttpState> {
    Router::new().route("/v1/agent/monitor", get(monitor))
}

async fn monitor(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    let name = params
        .get("loglevel")
        .filter(|l| !l.is_empty())
        .unwrap_or("INFO");
    let level = crate::logs::parse_level(name)
        .ok_or_else(|| HttpError::BadRequest(format!("Unknown log level: {name}")))?;
    let json = params.has("logjson");
    let listener = crate::logs::listen(level);
    let shutdown = state.shutdown.clone();
    let lines = futures::stream::unfold(
        (listener, shutdown),
        move |(mut listener, shutdown)| async move {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return None,
                next = listener.next() => next?,
            };
            let mut line = match next {
                Ok(l) if json => l.json.to_string(),
                Ok(l) => l.text.to_string(),
                // Too slow a reader misses lines rather than holding the agent's memory.
                Err(missed) => format!(
                    "[WARN] monitor: {missed} log lines dropped: the client reads too slowly"
                ),
            };
            line.push('\n');
            Some((
                Ok::<_, std::convert::Infallible>(line),
                (listener, shutdown),
            ))
        },
    );
    let mut resp = (StatusCode::OK, Body::from_stream(lines)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(resp)
}
