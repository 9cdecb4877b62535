//! `/v1/catalog/*` (spec §5): register/deregister and blocking reads.

use std::collections::{BTreeMap, BTreeSet};

use crate::service::ServiceError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use serde_json::Value;

use super::catalog_json as cj;
use super::error::HttpError;
use super::filter::{self, Filter};
use super::kv::read_body;
use super::params::Params;
use super::reply;
use super::HttpState;
use crate::agent::definition::CheckStatus;
use crate::config::consul_json::{DecodeError, Obj};
use crate::state::catalog::{
    CheckSpec, Deregistration, HealthCheck, Node, Registration, ServiceInstance, Weights,
};

/// Registration bodies are small; this matches Consul's default request limit.
const MAX_BODY: usize = 1024 * 1024;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/catalog/register", put(register))
        .route("/v1/catalog/deregister", put(deregister))
        .route("/v1/catalog/nodes", get(nodes))
        .route("/v1/catalog/services", get(services))
        .route("/v1/catalog/service/{name}", get(service))
        .route("/v1/catalog/node/{node}", get(node))
        .route("/v1/catalog/node-services/{node}", get(node_services))
}

/// A decoding failure that Consul answers with its own text rather than
/// `Request decode failed`.
fn consul_error(message: &str) -> DecodeError {
    DecodeError {
        path: String::new(),
        message: message.into(),
    }
}

/// Consul's 400 for a body that does not decode: its own text for the errors it names
/// (`Missing service name`, `Bad check status`, `Invalid check: ...`), otherwise
/// `Request decode failed: <err>`.
pub(super) fn definition_err(e: DecodeError) -> HttpError {
    let consul_text = ["Missing ", "Bad check status", "Invalid check"];
    if consul_text.iter().any(|p| e.message.starts_with(p)) {
        HttpError::BadRequest(e.message)
    } else {
        decode_err(e)
    }
}

pub(super) fn decode_err(e: impl std::fmt::Display) -> HttpError {
    HttpError::BadRequest(format!("Request decode failed: {e}"))
}

pub(super) async fn json_body(headers: &HeaderMap, body: Body) -> Result<Value, HttpError> {
    let bytes = read_body(headers, body, MAX_BODY, |n, max| {
        HttpError::TooLarge(format!(
            "Request body({n} bytes) too large, max size: {max} bytes."
        ))
    })
    .await?;
    serde_json::from_slice(&bytes).map_err(decode_err)
}

/// Consul's registration JSON to a `Registration`, shape only: what is required, the
/// defaults and the limits are the service layer's (`Service::catalog_register`), the
/// same for gRPC. The port is the exception only in where it is checked: it must be
/// checked before it is narrowed to the stored type.
fn decode_registration(v: &Value) -> Result<Result<Registration, ServiceError>, DecodeError> {
    let mut o = Obj::new(v, "")?;
    let node_name = o.string(&["Node"])?.unwrap_or_default();
    let node = Node {
        id: o.string(&["ID"])?.unwrap_or_default(),
        name: node_name.clone(),
        address: o.string(&["Address"])?.unwrap_or_default(),
        datacenter: o.string(&["Datacenter"])?.unwrap_or_default(),
        tagged_addresses: o.string_map(&["TaggedAddresses"])?.unwrap_or_default(),
        meta: o.string_map(&["NodeMeta"])?.unwrap_or_default(),
        create_index: 0,
        modify_index: 0,
    };
    let skip_node_update = o.bool(&["SkipNodeUpdate"])?.unwrap_or(false);
    let service = match o.object(&["Service"])? {
        None => None,
        Some(mut s) => {
            let name = s.string(&["Service"])?.unwrap_or_default();
            let weights = match s.object(&["Weights"])? {
                None => Weights::default(),
                Some(mut w) => {
                    let d = Weights::default();
                    let weight = |v: Option<u64>, default: u32| {
                        v.map_or(default, |n| n.min(u32::MAX as u64) as u32)
                    };
                    Weights {
                        passing: weight(w.u64(&["Passing"])?, d.passing),
                        warning: weight(w.u64(&["Warning"])?, d.warning),
                    }
                }
            };
            let port = match crate::service::catalog::service_port(s.u64(&["Port"])?.unwrap_or(0)) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            Some(ServiceInstance {
                node: node_name.clone(),
                id: s.string(&["ID"])?.unwrap_or_default(),
                tags: s.string_list(&["Tags"])?.unwrap_or_default(),
                address: s.string(&["Address"])?.unwrap_or_default(),
                port,
                meta: s.string_map(&["Meta"])?.unwrap_or_default(),
                enable_tag_override: s.bool(&["EnableTagOverride"])?.unwrap_or(false),
                weights,
                name,
                create_index: 0,
                modify_index: 0,
                extra: crate::agent::definition::decode_service_extra(&mut s, false)?,
            })
        }
    };
    let mut check_objs = o.objects(&["Check"])?;
    check_objs.extend(o.objects(&["Checks"])?);
    let mut checks = Vec::new();
    for mut c in check_objs {
        let name = c.string(&["Name"])?.unwrap_or_default();
        let id = c.string(&["CheckID", "ID"])?.unwrap_or_default();
        let status = match c.string(&["Status"])?.as_deref() {
            None | Some("") => CheckStatus::Critical,
            Some(s) => CheckStatus::parse(s).ok_or_else(|| consul_error("Bad check status"))?,
        };
        let mut spec = CheckSpec::default();
        if let Some(mut d) = c.object(&["Definition"])? {
            spec.http = d.string(&["HTTP"])?.unwrap_or_default();
            spec.tcp = d.string(&["TCP"])?.unwrap_or_default();
            let ns = |x: Option<std::time::Duration>| x.map(|d| d.as_nanos() as u64).unwrap_or(0);
            spec.interval_ns = ns(d.duration(&["Interval"])?);
            spec.timeout_ns = ns(d.duration(&["Timeout"])?);
            spec.deregister_critical_service_after_ns =
                ns(d.duration(&["DeregisterCriticalServiceAfter"])?);
        }
        checks.push(HealthCheck {
            node: node_name.clone(),
            check_id: id,
            name,
            status,
            notes: c.string(&["Notes"])?.unwrap_or_default(),
            output: c.string(&["Output"])?.unwrap_or_default(),
            service_id: c.string(&["ServiceID"])?.unwrap_or_default(),
            spec,
            create_index: 0,
            modify_index: 0,
        });
    }
    Ok(Ok(Registration {
        node,
        skip_node_update,
        service,
        checks,
    }))
}

async fn register(
    State(state): State<HttpState>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let v = json_body(&headers, body).await?;
    let reg = decode_registration(&v).map_err(definition_err)??;
    state.service.catalog_register(reg).await?;
    Ok(reply::json(&state, &params, StatusCode::OK, &true))
}

async fn deregister(
    State(state): State<HttpState>,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let v = json_body(&headers, body).await?;
    let mut o = Obj::new(&v, "").map_err(decode_err)?;
    let node = o.string(&["Node"]).map_err(decode_err)?.unwrap_or_default();
    if node.is_empty() {
        return Err(HttpError::BadRequest("Missing node name".into()));
    }
    let d = Deregistration {
        node,
        service_id: o
            .string(&["ServiceID"])
            .map_err(decode_err)?
            .filter(|s| !s.is_empty()),
        check_id: o
            .string(&["CheckID"])
            .map_err(decode_err)?
            .filter(|s| !s.is_empty()),
    };
    state.service.catalog_deregister(d).await?;
    Ok(reply::json(&state, &params, StatusCode::OK, &true))
}

/// Repeated `?tag=` values.
pub(super) fn tags(params: &Params) -> Vec<String> {
    params.all("tag")
}

async fn nodes(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let opts = params.query_options()?;
    let (meta, nodes) = state.service.catalog_nodes(&opts).await?;
    let items = nodes.iter().map(cj::node).collect();
    reply::filtered_list(&state, &params, &meta, items, cj::templates::node())
}

async fn services(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let opts = params.query_options()?;
    let filter = filter::from_param(params.get("filter"), &cj::templates::catalog_service())?;
    let (meta, mut services) = state.service.catalog_services(&opts).await?;
    if params.names_peer() {
        services.clear();
    }
    if let Some(f) = filter {
        services = filter_instances(&state, &f, services).await?;
    }
    let map: serde_json::Map<String, Value> = services
        .into_iter()
        .map(|(name, tags)| (name, Value::from(tags.into_iter().collect::<Vec<_>>())))
        .collect();
    Ok(reply::query_headers(
        reply::json(&state, &params, StatusCode::OK, &map),
        &meta,
    ))
}

/// Consul evaluates `/v1/catalog/services?filter=` on each instance (a `ServiceNode`,
/// rendered as `/v1/catalog/service/<name>` renders it) and answers with the services
/// that have a matching instance, each with the tags of its matching instances only.
/// The instances are read after the (possibly blocking) list, without blocking, so the
/// answer is at least as new as the index it carries.
async fn filter_instances(
    state: &HttpState,
    filter: &Filter,
    services: BTreeMap<String, BTreeSet<String>>,
) -> Result<BTreeMap<String, BTreeSet<String>>, HttpError> {
    let now = crate::service::QueryOptions::default();
    let mut kept = BTreeMap::new();
    for name in services.into_keys() {
        let (_, instances) = state.service.catalog_service(&name, &[], &now).await?;
        let mut matched = None;
        for (node, instance) in &instances {
            if filter.matches(&cj::catalog_service(node, instance)) {
                matched
                    .get_or_insert_with(BTreeSet::new)
                    .extend(instance.tags.iter().cloned());
            }
        }
        if let Some(tags) = matched {
            kept.insert(name, tags);
        }
    }
    Ok(kept)
}

async fn service(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    params.check_scope(&state.agent.datacenter)?;
    let opts = params.query_options()?;
    let (meta, entries) = state
        .service
        .catalog_service(&name, &tags(&params), &opts)
        .await?;
    let items = entries
        .iter()
        .map(|(n, s)| cj::catalog_service(n, s))
        .collect();
    reply::filtered_list(
        &state,
        &params,
        &meta,
        items,
        cj::templates::catalog_service(),
    )
}

/// A node's services as Consul renders them under `Services`, the filter (evaluated on
/// each of them, as Consul does) applied: what `node` and `node-services` share.
async fn node_and_services(
    state: &HttpState,
    name: &str,
    params: &Params,
) -> Result<
    (
        crate::service::QueryMeta,
        Option<(Value, Vec<(String, Value)>)>,
    ),
    HttpError,
> {
    params.check_scope(&state.agent.datacenter)?;
    let opts = params.query_options()?;
    let filter = filter::from_param(params.get("filter"), &cj::templates::agent_service())?;
    let (meta, found) = state.service.catalog_node(name, &opts).await?;
    let found = found.filter(|_| !params.names_peer()).map(|(n, services)| {
        let services = services
            .iter()
            .map(|s| (s.id.clone(), cj::agent_service(s, &n.datacenter)))
            .filter(|(_, v)| filter.as_ref().is_none_or(|f| f.matches(v)))
            .collect();
        (cj::node(&n), services)
    });
    Ok((meta, found))
}

/// `/v1/catalog/node/<node>`: `{"Node":…,"Services":{"<id>":…}}`, `null` when unknown.
async fn node(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    let (meta, found) = node_and_services(&state, &name, &params).await?;
    let body = match found {
        None => Value::Null,
        Some((node, services)) => {
            let services: serde_json::Map<String, Value> = services.into_iter().collect();
            serde_json::json!({"Node": node, "Services": services})
        }
    };
    Ok(reply::query_headers(
        reply::json(&state, &params, StatusCode::OK, &body),
        &meta,
    ))
}

/// `/v1/catalog/node-services/<node>`: `{"Node":…,"Services":[…]}`, `null` when unknown.
async fn node_services(
    State(state): State<HttpState>,
    Path(name): Path<String>,
    params: Params,
) -> Result<Response, HttpError> {
    let (meta, found) = node_and_services(&state, &name, &params).await?;
    let body = match found {
        None => Value::Null,
        Some((node, services)) => {
            let services: Vec<Value> = services.into_iter().map(|(_, v)| v).collect();
            serde_json::json!({"Node": node, "Services": services})
        }
    };
    Ok(reply::query_headers(
        reply::json(&state, &params, StatusCode::OK, &body),
        &meta,
    ))
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::config::arbitrary;

    const KEYS: &[&str] = &[
        "Node",
        "ID",
        "Address",
        "Datacenter",
        "TaggedAddresses",
        "NodeMeta",
        "SkipNodeUpdate",
        "Service",
        "Weights",
        "Passing",
        "Warning",
        "Port",
        "Tags",
        "Meta",
        "EnableTagOverride",
        "Check",
        "Checks",
        "Name",
        "CheckID",
        "Status",
        "Definition",
        "HTTP",
        "TCP",
        "Interval",
        "Timeout",
        "DeregisterCriticalServiceAfter",
        "Notes",
        "Output",
        "ServiceID",
    ];

    proptest! {
        #![proptest_config(arbitrary::config())]

        /// Any registration body decodes, is refused by the port rule, or is a 400 that
        /// says why; none panics.
        #[test]
        fn any_registration_decodes_or_says_why(v in arbitrary::object(KEYS)) {
            match decode_registration(&v) {
                Ok(Ok(reg)) => {
                    let has_service = v.as_object().unwrap().keys().any(|k| {
                        k.replace(['_', '-'], "").eq_ignore_ascii_case("service")
                    });
                    prop_assert!(reg.service.is_none() || has_service);
                }
                Ok(Err(ServiceError::InvalidArgument(m))) => prop_assert!(m.contains("port")),
                Ok(Err(other)) => prop_assert!(false, "{other:?}"),
                Err(e) => prop_assert!(
                    matches!(definition_err(e), HttpError::BadRequest(m) if !m.is_empty())
                ),
            }
        }

        #[test]
        fn ports_are_kept_or_refused_never_clamped(port in any::<u64>()) {
            let v = json!({"Node": "n", "Service": {"Service": "web", "Port": port}});
            match decode_registration(&v).unwrap() {
                Ok(reg) => prop_assert_eq!(u64::from(reg.service.unwrap().port), port),
                Err(_) => prop_assert!(port > u64::from(u16::MAX)),
            }
        }

        #[test]
        fn registration_fields_round_trip(
            node in any::<String>(),
            name in any::<String>(),
            tags in prop::collection::vec(any::<String>(), 0..4),
            meta in prop::collection::btree_map(any::<String>(), any::<String>(), 0..4),
            port in any::<u16>(),
            interval_ms in 0u64..100_000_000,
        ) {
            let v = json!({
                "Node": node,
                "Service": {"Service": name, "Tags": tags, "Meta": meta, "Port": port},
                "Check": {"Name": "c", "Status": "passing",
                          "Definition": {"Interval": format!("{interval_ms}ms")}},
            });
            let reg = decode_registration(&v).unwrap().unwrap();
            let s = reg.service.unwrap();
            prop_assert_eq!((&reg.node.name, &s.name, &s.tags, &s.meta, s.port),
                (&node, &name, &tags, &meta, port));
            prop_assert_eq!(reg.checks[0].spec.interval_ns, interval_ms * 1_000_000);
        }
    }
}
