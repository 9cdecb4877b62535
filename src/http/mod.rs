//! The Consul-compatible HTTP shim (port 8500): Consul's HTTP/JSON API, exact enough
//! that curl/jq scripts and Consul client libraries work unchanged. One file per
//! endpoint group; handlers decode Consul's parameters, call `crate::service` (the same
//! calls the gRPC front end makes), and encode Consul's JSON and headers. Blocking
//! queries ride on the service layer's change-feed waits.

pub mod agent;
pub mod agent_self;
pub mod catalog;
pub mod catalog_json;
pub mod error;
pub mod event;
pub mod filter;
pub mod health;
pub mod kv;
pub mod metrics;
pub mod monitor;
pub mod params;
pub mod reply;
pub mod session;
pub mod snapshot;
pub mod status;
pub mod txn;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tokio::net::TcpListener;

use crate::service::Api;

/// What the shim says about the agent it runs in.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    pub datacenter: String,
    pub node_name: String,
    /// Dev mode: every JSON response is pretty-printed, as Consul's `-dev` does.
    pub dev: bool,
    /// A raft server (false: a client agent).
    pub server: bool,
    pub bootstrap_expect: usize,
    /// `/v1/agent/self`'s `DebugConfig`, made once from the config at start.
    pub debug_config: serde_json::Value,
}

#[derive(Clone)]
pub struct HttpState {
    pub service: Api,
    pub agent: Arc<AgentInfo>,
    /// The local agent: its services, checks and TTL updates.
    pub local: Arc<crate::agent::Agent>,
    /// Fires when the agent stops: long-lived answers (`/v1/agent/monitor`) end then.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// The whole API as a router (tests drive it with `oneshot`; `serve` binds it).
pub fn router(state: HttpState) -> Router {
    let in_flight = crate::limit::InFlightLimit::new(
        state.service.limits().http_max_in_flight,
        too_many_requests,
        is_blocking_query,
    );
    let api = Router::new()
        .merge(kv::routes())
        .merge(txn::routes())
        .merge(status::routes())
        .merge(catalog::routes())
        .merge(session::routes())
        .merge(event::routes())
        .merge(snapshot::routes())
        .merge(health::routes())
        .merge(agent::routes())
        .merge(agent_self::routes())
        .merge(monitor::routes())
        .merge(metrics::routes())
        .route("/v1/acl/{*path}", axum::routing::any(acl_disabled))
        // Only matched routes are counted (by their template, never the raw path).
        .route_layer(middleware::from_fn_with_state(state.clone(), count_request))
        .fallback(unknown_path)
        .with_state(state);
    // Wrapped from outside: axum adds `Allow` to a 405 only as the whole router's
    // response completes, and this layer rewrites that response.
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn(consul_method_errors))
        .layer(in_flight)
}

/// Counts one request by method, route template and status (`/v1/agent/metrics`).
async fn count_request(
    axum::extract::State(state): axum::extract::State<HttpState>,
    route: axum::extract::MatchedPath,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let resp = next.run(req).await;
    state
        .local
        .telemetry
        .http_request(method.as_str(), route.as_str(), resp.status().as_u16());
    resp
}

fn too_many_requests(limit: usize) -> Response {
    error::text(
        StatusCode::TOO_MANY_REQUESTS,
        crate::limit::too_many_message(limit) + "\n",
    )
}

/// A Consul blocking query (a read with `?index=N`, N > 0) waits by design; it holds a
/// stream permit in the service layer (`Limits::max_streams`) instead of a request
/// permit. Writes never block, whatever their query string says.
fn is_blocking_query(req: &Request) -> bool {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    read && req.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes())
            .any(|(k, v)| k == "index" && v.parse::<u64>().is_ok_and(|n| n > 0))
    })
}

/// With ACLs off (Rostra has no ACL system yet), every `/v1/acl/*` endpoint answers as
/// Consul's do with `acl.enabled = false`: 401 `ACL support disabled`, which client
/// libraries map to their "ACLs disabled" error (py-consul's `ACLDisabled`).
async fn acl_disabled() -> Response {
    error::text(StatusCode::UNAUTHORIZED, "ACL support disabled".into())
}

async fn unknown_path() -> Response {
    error::text(
        StatusCode::NOT_FOUND,
        "Invalid URL path: not a recognized HTTP API endpoint\n".into(),
    )
}

/// Consul answers a wrong method with `method <VERB> not allowed` and an `Allow` header
/// that includes OPTIONS, and answers OPTIONS itself with that header.
async fn consul_method_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let resp = next.run(req).await;
    if resp.status() != StatusCode::METHOD_NOT_ALLOWED {
        return resp;
    }
    let mut allow: Vec<String> = resp
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !allow.iter().any(|m| m == "OPTIONS") {
        allow.push("OPTIONS".into());
    }
    let allow =
        HeaderValue::from_str(&allow.join(",")).unwrap_or(HeaderValue::from_static("OPTIONS"));
    let mut out = if method == Method::OPTIONS {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::OK;
        r
    } else {
        error::text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} not allowed"),
        )
    };
    out.headers_mut().insert(header::ALLOW, allow);
    out
}

/// A client must have sent a whole request head within this long of connecting, and
/// on a kept-alive connection within this long of the previous response; otherwise the
/// connection is closed. Without it a client that opens connections and withholds or
/// trickles its headers (slowloris) holds each one, and its read buffer, until shutdown.
/// Idle keep-alive connections close after it too; HTTP clients reopen them as needed.
/// (Bodies have their own limits: `kv::BODY_IDLE_TIMEOUT`.) Header size and count are
/// hyper's limits: a head over ~400 KiB or 100 headers is refused with 431.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long in-flight HTTP requests get to finish once shutdown begins.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the shim on `listener` until `shutdown`; blocking queries return at once when
/// it fires (the service layer watches the same token).
///
/// HTTP/1 header names go out in Go's canonical case (`X-Consul-Index`,
/// `X-Consul-Knownleader`), byte for byte what Consul sends, because scripts grep for
/// them case-sensitively; that is why this is not `axum::serve`.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let app = router(state);
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper enforces its header read timeout only with a timer.
    builder
        .http1()
        .title_case_headers(true)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // Connection tasks hold the router (and through it the service); they are joined
    // here. (Per-stream tasks that hyper spawns for HTTP/2 clients are not; Consul's
    // clients speak HTTP/1.1, and the storage close deadline bounds the rest.)
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections so the set only holds live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // hyper's header timeout starts once the protocol is known; before that (no byte
        // sent, or half an HTTP/2 preface) only this first-request deadline applies.
        let first_request = Arc::new(tokio::sync::Notify::new());
        let seen = first_request.clone();
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |req: Request<hyper::body::Incoming>| {
                seen.notify_one();
                req
            },
        ));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        connections.spawn(async move {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let conn = watcher.watch(conn);
            tokio::pin!(conn);
            let deadline = tokio::time::timeout(HEADER_READ_TIMEOUT, first_request.notified());
            let ended = tokio::select! {
                ended = &mut conn => Some(ended),
                first = deadline => match first {
                    Ok(()) => None,
                    Err(_) => {
                        tracing::debug!("HTTP client sent no request in {HEADER_READ_TIMEOUT:?}");
                        return;
                    }
                },
            };
            let ended = match ended {
                Some(ended) => ended,
                None => conn.await,
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    // In-flight requests finish (blocking queries answer at once on shutdown); idle
    // keep-alive connections are closed. A client that will not finish its request in
    // time has its connection dropped.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "HTTP connections still open after {SHUTDOWN_GRACE:?}; closing them"
        );
        connections.abort_all();
    }
    while connections.join_next().await.is_some() {}
    Ok(())
}
