//! `/v1/agent/*` (spec §6): the local agent's services and checks, TTL updates, members.
//! Writes answer 200 with an empty body, as Consul's do.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde_json::{json, Value};

use super::catalog::{decode_err, definition_err, json_body};
use super::catalog_json as cj;
use super::error::HttpError;
use super::filter;
use super::params::Params;
use super::reply;
use super::HttpState;
use crate::agent::definition::{CheckDefinition, CheckStatus, ServiceDefinition};
use crate::agent::AgentError;
use crate::config::consul_json::Obj;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/agent/services", get(services))
        .route("/v1/agent/service/register", put(register_service))
        .route("/v1/agent/service/{id}", get(service))
        .route("/v1/agent/service/deregister/{id}", put(deregister_service))
        .route("/v1/agent/checks", get(checks))
        .route("/v1/agent/check/register", put(register_check))
        .route("/v1/agent/check/deregister/{id}", put(deregister_check))
        .route("/v1/agent/check/pass/{id}", put(pass))
        .route("/v1/agent/check/warn/{id}", put(warn))
        .route("/v1/agent/check/fail/{id}", put(fail))
        .route("/v1/agent/check/update/{id}", put(update))
        .route(
            "/v1/agent/force-leave/{node}",
            axum::routing::put(force_leave),
        )
        .route("/v1/agent/leave", axum::routing::put(leave))
        .route("/v1/agent/maintenance", put(node_maintenance))
        .route("/v1/agent/reload", put(reload))
        .route(
            "/v1/agent/service/maintenance/{id}",
            put(service_maintenance),
        )
}

/// `PUT /v1/agent/reload`: the config files again, applied without a restart; a file
/// that no longer loads is a 500 naming the file and key, and nothing changes.
async fn reload(State(state): State<HttpState>) -> Result<Response, HttpError> {
    let agent = state.local.clone();
    // Reading files and restarting checks is blocking work.
    tokio::task::spawn_blocking(move || agent.reload())
        .await
        .map_err(|e| HttpError::Status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(empty_ok())
}

/// Consul's `?enable=` of the maintenance endpoints: required, parsed as Go's
/// `strconv.ParseBool`.
fn enable_param(params: &Params) -> Result<bool, HttpError> {
    let raw = params
        .get("enable")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| HttpError::BadRequest("Missing value for enable".into()))?;
    match raw {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(HttpError::BadRequest(format!(
            "Invalid value for enable: {raw:?}"
        ))),
    }
}

/// `PUT /v1/agent/maintenance?enable=true|false&reason=`.
async fn node_maintenance(
    State(state): State<HttpState>,
    params: Params,
) -> Result<Response, HttpError> {
    let enable = enable_param(&params)?;
    let reason = params.get("reason").unwrap_or("");
    state.local.set_node_maintenance(enable, reason)?;
    Ok(empty_ok())
}

/// `PUT /v1/agent/service/maintenance/<id>?enable=true|false&reason=`.
async fn service_maintenance(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    let enable = enable_param(&params)?;
    let reason = params.get("reason").unwrap_or("");
    state.local.set_service_maintenance(&id, enable, reason)?;
    Ok(empty_ok())
}

impl From<AgentError> for HttpError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::Invalid(m) => HttpError::BadRequest(m),
            AgentError::UnknownService(_) => {
                HttpError::Status(StatusCode::NOT_FOUND, e.to_string())
            }
            AgentError::Refused(_) | AgentError::NotTtl(_) | AgentError::Persist(_) => {
                HttpError::Status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

async fn services(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    let dc = &state.agent.datacenter;
    let mut items: Vec<(String, Value)> = state
        .local
        .services()
        .iter()
        .map(|d| (d.id.clone(), cj::local_service(d, dc)))
        .collect();
    let template = cj::local_service(&ServiceDefinition::default(), dc);
    if let Some(f) = filter::from_param(params.get("filter"), &template)? {
        items.retain(|(_, v)| f.matches(v));
    }
    let map: serde_json::Map<String, Value> = items.into_iter().collect();
    Ok(reply::json(&state, &params, StatusCode::OK, &map))
}

/// `GET /v1/agent/service/<id>`: one local service with its `ContentHash`, and Consul's
/// hash-based blocking (spec §2.3): with `?hash=` equal to the current hash, the answer
/// waits (up to `?wait`) for the definition to change.
async fn service(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    let wait = match params.get("wait").filter(|w| !w.is_empty()) {
        None => None,
        Some(w) => Some(
            super::params::parse_go_duration(w)
                .ok_or_else(|| HttpError::BadRequest("Invalid wait time".into()))?,
        ),
    };
    let deadline = tokio::time::Instant::now() + crate::service::query::blocking_wait(wait);
    let wanted = params
        .get("hash")
        .filter(|h| !h.is_empty())
        .map(String::from);
    let mut changes = state.local.service_changes();
    loop {
        changes.borrow_and_update();
        let def = state.local.services().into_iter().find(|d| d.id == id);
        let mut body = def
            .map(|d| cj::local_service(&d, &state.agent.datacenter))
            .ok_or_else(|| {
                HttpError::Status(StatusCode::NOT_FOUND, format!("unknown service ID: {id}"))
            })?;
        let hash = format!("{:016x}", crate::watch::payload::digest(&body));
        let expired = tokio::time::Instant::now() >= deadline || state.shutdown.is_cancelled();
        if wanted.as_deref() != Some(hash.as_str()) || expired {
            body["ContentHash"] = Value::String(hash.clone());
            let mut resp = reply::json(&state, &params, StatusCode::OK, &body);
            if let Ok(v) = axum::http::HeaderValue::from_str(&hash) {
                resp.headers_mut().insert("X-Consul-ContentHash", v);
            }
            return Ok(resp);
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = state.shutdown.cancelled() => {}
        }
    }
}

async fn register_service(
    State(state): State<HttpState>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let v = json_body(&headers, body).await?;
    let obj = Obj::new(&v, "").map_err(decode_err)?;
    let def = ServiceDefinition::decode(obj, false).map_err(definition_err)?;
    state
        .local
        .register_service(def, params.has("replace-existing-checks"))?;
    Ok(empty_ok())
}

async fn deregister_service(
    State(state): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    state.local.deregister_service(&id)?;
    Ok(empty_ok())
}

async fn checks(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    let services = state.local.services();
    let node = &state.local.node.name;
    let mut items: Vec<(String, Value)> = state
        .local
        .checks()
        .iter()
        .map(|c| {
            let svc = services.iter().find(|s| s.id == c.def.service_id);
            let d = &c.def;
            let interval = if matches!(d.kind, crate::agent::definition::CheckKind::Ttl { .. }) {
                String::new()
            } else {
                cj::go_duration(d.interval().as_nanos() as u64)
            };
            let v = json!({
                "Node": node,
                "CheckID": d.id,
                "Name": d.name,
                "Status": c.status.as_str(),
                "Notes": d.notes,
                "Output": c.output,
                "ServiceID": d.service_id,
                "ServiceName": svc.map(|s| s.name.clone()).unwrap_or_default(),
                "ServiceTags": svc.map(|s| s.tags.clone()).unwrap_or_default(),
                "Type": d.kind.type_name(),
                "Interval": interval,
                "Timeout": d.timeout.map(|t| cj::go_duration(t.as_nanos() as u64)).unwrap_or_default(),
                "ExposedPort": 0,
                "Definition": {},
                "CreateIndex": 0,
                "ModifyIndex": 0,
            });
            (d.id.clone(), v)
        })
        .collect();
    if let Some(f) = params.get("filter").filter(|f| !f.is_empty()) {
        let f = filter::Filter::parse(f)?;
        items.retain(|(_, v)| f.matches(v));
    }
    let map: serde_json::Map<String, Value> = items.into_iter().collect();
    Ok(reply::json(&state, &params, StatusCode::OK, &map))
}

async fn register_check(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let v = json_body(&headers, body).await?;
    let obj = Obj::new(&v, "").map_err(decode_err)?;
    let def = CheckDefinition::decode(obj, false, None).map_err(definition_err)?;
    state.local.register_check(def)?;
    Ok(empty_ok())
}

async fn deregister_check(
    State(state): State<HttpState>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    state.local.deregister_check(&id)?;
    Ok(empty_ok())
}

fn ttl_update(
    state: &HttpState,
    id: &str,
    status: CheckStatus,
    params: &Params,
) -> Result<Response, HttpError> {
    let note = params.get("note").unwrap_or("").to_string();
    state.local.update_ttl(id, status, note)?;
    Ok(empty_ok())
}

async fn pass(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    ttl_update(&state, &id, CheckStatus::Passing, &params)
}

async fn warn(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    ttl_update(&state, &id, CheckStatus::Warning, &params)
}

async fn fail(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    ttl_update(&state, &id, CheckStatus::Critical, &params)
}

async fn update(
    State(state): State<HttpState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let v = json_body(&headers, body).await?;
    let mut o = Obj::new(&v, "").map_err(decode_err)?;
    let status = o
        .string(&["Status"])
        .map_err(decode_err)?
        .unwrap_or_default();
    let status = CheckStatus::parse(&status)
        .ok_or_else(|| HttpError::BadRequest(format!("Invalid check status: {status:?}")))?;
    let output = o
        .string(&["Output"])
        .map_err(decode_err)?
        .unwrap_or_default();
    state.local.update_ttl(&id, status, output)?;
    Ok(empty_ok())
}

/// Consul's `PUT /v1/agent/leave`: this agent leaves gracefully and stops.
async fn leave(State(state): State<HttpState>) -> Result<Response, HttpError> {
    state.local.graceful_leave().await?;
    Ok(axum::response::IntoResponse::into_response(StatusCode::OK))
}

/// Consul's `PUT /v1/agent/force-leave/<node>[?prune]`.
async fn force_leave(
    State(state): State<HttpState>,
    axum::extract::Path(node): axum::extract::Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    state
        .service
        .force_leave(&node, params.has("prune"))
        .await?;
    Ok(axum::response::IntoResponse::into_response(StatusCode::OK))
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::arbitrary;

    const KEYS: &[&str] = &[
        "Name",
        "ID",
        "Tags",
        "Address",
        "Port",
        "Meta",
        "EnableTagOverride",
        "Weights",
        "Passing",
        "Warning",
        "Check",
        "Checks",
        "CheckID",
        "ServiceID",
        "Status",
        "Notes",
        "TTL",
        "HTTP",
        "TCP",
        "Args",
        "Interval",
        "Timeout",
        "Method",
        "Header",
        "Body",
        "TLSSkipVerify",
        "DeregisterCriticalServiceAfter",
        "OutputMaxSize",
    ];

    proptest! {
        #![proptest_config(arbitrary::config())]

        /// `PUT /v1/agent/service/register` and `/check/register` bodies: any JSON
        /// decodes or is a 400 with a reason, leniently (unknown keys ignored).
        #[test]
        fn any_registration_body_decodes_or_says_why(v in arbitrary::json(KEYS)) {
            let decoded = Obj::new(&v, "").map_err(decode_err).and_then(|o| {
                ServiceDefinition::decode(o, false).map(drop).map_err(definition_err)
            });
            if let Err(e) = decoded {
                prop_assert!(matches!(e, HttpError::BadRequest(m) if !m.is_empty()));
            }
            let decoded = Obj::new(&v, "").map_err(decode_err).and_then(|o| {
                CheckDefinition::decode(o, false, None).map(drop).map_err(definition_err)
            });
            if let Err(e) = decoded {
                prop_assert!(matches!(e, HttpError::BadRequest(m) if !m.is_empty()));
            }
        }

        #[test]
        fn services_keep_their_fields(
            name in "[a-z][a-z0-9-]{0,20}",
            tags in prop::collection::vec(any::<String>(), 0..4),
            port in any::<u16>(),
            ttl_s in 1u64..100_000,
        ) {
            let v = serde_json::json!({"Name": name, "Tags": tags, "Port": port,
                                       "Check": {"TTL": format!("{ttl_s}s")}});
            let d = ServiceDefinition::decode(Obj::new(&v, "").unwrap(), false).unwrap();
            prop_assert_eq!((&d.name, &d.tags, d.port), (&name, &tags, port));
            let ttl = match d.checks[0].kind {
                crate::agent::definition::CheckKind::Ttl { ttl } => Some(ttl),
                _ => None,
            };
            prop_assert_eq!(ttl, Some(std::time::Duration::from_secs(ttl_s)));
        }
    }
}
