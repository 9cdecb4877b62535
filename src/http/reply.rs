//! Response encoding as Consul does it: JSON (indented with 4 spaces and a trailing
//! newline with `?pretty` or in dev mode), the `X-Consul-*` headers of blocking reads,
//! and the KVPair shape with Consul's field order.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;

use super::params::Params;
use super::HttpState;
use crate::service::{QueryMeta, ResponseMeta};
use crate::state::KvEntry;

/// Consul's `structs.DirEntry` JSON, field for field and in order.
#[derive(Debug, Serialize)]
pub struct KvPairJson<'a> {
    #[serde(rename = "LockIndex")]
    pub lock_index: u64,
    #[serde(rename = "Key")]
    pub key: &'a str,
    #[serde(rename = "Flags")]
    pub flags: u64,
    /// Base64, or null for an empty value (py-consul decodes only non-null values).
    #[serde(rename = "Value")]
    pub value: Option<String>,
    #[serde(rename = "Session", skip_serializing_if = "str::is_empty")]
    pub session: &'a str,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

impl<'a> From<&'a KvEntry> for KvPairJson<'a> {
    fn from(e: &'a KvEntry) -> Self {
        KvPairJson {
            lock_index: e.lock_index,
            key: &e.key,
            flags: e.flags,
            value: (!e.value.is_empty())
                .then(|| base64::engine::general_purpose::STANDARD.encode(&e.value)),
            session: &e.session,
            create_index: e.create_index,
            modify_index: e.modify_index,
        }
    }
}

/// Encodes `value` as Consul would for this request.
pub fn json<T: Serialize>(
    state: &HttpState,
    params: &Params,
    status: StatusCode,
    value: &T,
) -> Response {
    let pretty = state.agent.dev || params.has("pretty");
    let body = if pretty {
        let mut s = crate::json::to_pretty_json(value, b"    ");
        s.push('\n');
        s
    } else {
        serde_json::to_string(value).expect("JSON encoding of plain data")
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn set(headers: &mut HeaderMap, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

/// Leader knowledge and contact time, on every server-backed read.
pub fn leader_headers(resp: &mut Response, meta: &ResponseMeta) {
    let h = resp.headers_mut();
    set(h, "X-Consul-KnownLeader", meta.known_leader.to_string());
    set(h, "X-Consul-LastContact", meta.last_contact_ms.to_string());
}

/// Every header of a blocking read (spec §1.3); the index is never 0.
pub fn query_headers(mut resp: Response, meta: &QueryMeta) -> Response {
    leader_headers(&mut resp, &meta.meta);
    let h = resp.headers_mut();
    set(h, "X-Consul-Index", meta.index.max(1).to_string());
    set(
        h,
        "X-Consul-Effective-Consistency",
        meta.consistency.as_str().to_string(),
    );
    resp
}

/// 404 with an empty body, as Consul answers a KV miss (headers still set).
pub fn not_found(meta: &QueryMeta) -> Response {
    query_headers(StatusCode::NOT_FOUND.into_response(), meta)
}

/// A blocking list read's answer: `?filter` applied to the rendered items, Consul's
/// JSON and the query headers.
pub fn filtered_list(
    state: &HttpState,
    params: &Params,
    meta: &QueryMeta,
    items: Vec<serde_json::Value>,
    template: serde_json::Value,
) -> Result<Response, super::error::HttpError> {
    let mut items = super::filter::apply(params.get("filter"), items, Some(&template))?;
    if params.names_peer() {
        items.clear();
    }
    Ok(query_headers(
        json(state, params, StatusCode::OK, &items),
        meta,
    ))
}
