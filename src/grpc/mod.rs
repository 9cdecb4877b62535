//! The public gRPC front end (`rostra.v1` on the gRPC port, 8502 in dev mode): one file
//! per proto service, each a thin translation onto `crate::service`.

pub mod agent_transport;
mod calls;
pub mod catalog;
pub mod catalog_convert;
pub mod codec;
pub mod convert;
pub mod error;
pub mod event;
pub mod exec;
pub mod kv;
pub mod lock;
pub mod session;
pub mod snapshot;
pub mod status;
pub mod watch;

use tokio::net::TcpListener;

use crate::pb::kv_server::KvServer;
use crate::pb::status_server::StatusServer;
use crate::service::Api;

/// Generous enough for a 512 KiB value plus framing; large lists are the client's choice.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Accepted connections with Nagle off. tonic's `Server::tcp_nodelay` only applies to
/// listeners it binds itself; without this a stream's first frames wait for a delayed
/// ACK (tens of milliseconds per watch).
pub fn incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// A refused call: `RESOURCE_EXHAUSTED`, which gRPC clients treat as "retry later".
fn too_many_requests(limit: usize) -> http::Response<tonic::body::Body> {
    tonic::Status::resource_exhausted(crate::limit::too_many_message(limit)).into_http()
}

/// How often the server pings an idle client connection (HTTP/2 PING).
pub const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a ping may go unanswered before the connection is closed.
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves the public API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    service: Api,
    agent: std::sync::Arc<crate::agent::Agent>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let kv = KvServer::new(kv::KvService {
        service: service.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE)
    .max_encoding_message_size(MAX_MESSAGE);
    let catalog = crate::pb::catalog_server::CatalogServer::new(catalog::CatalogService {
        service: service.clone(),
    });
    let health = crate::pb::health_server::HealthServer::new(catalog::HealthService {
        service: service.clone(),
    });
    let session = crate::pb::session_server::SessionServer::new(session::SessionService {
        service: service.clone(),
    });
    let lock = crate::pb::lock_server::LockServer::new(lock::LockService {
        service: service.clone(),
    });
    let exec = crate::pb::exec_server::ExecServer::new(exec::ExecService {
        service: service.clone(),
    });
    let event = crate::pb::event_server::EventServer::new(event::EventService {
        service: service.clone(),
    });
    let snapshot = crate::pb::snapshot_server::SnapshotServer::new(snapshot::SnapshotService {
        service: service.clone(),
    });
    let in_flight = crate::limit::InFlightLimit::new(
        service.limits().grpc_max_in_flight,
        too_many_requests,
        |_| false,
    );
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the compiled-in descriptors are valid");
    let (reporter, grpc_health) = tonic_health::server::health_reporter();
    let health_of = report_health(service.clone(), reporter);
    let agent_telemetry = agent.telemetry.clone();
    let status = StatusServer::new(status::StatusService { service, agent });
    let server = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // A client that vanished without closing its connection (a dead machine, a cut
        // cable) is noticed within KEEPALIVE + KEEPALIVE_TIMEOUT, which ends its watch
        // streams and so everything they hold.
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(in_flight)
        .layer(calls::CountCalls(agent_telemetry))
        .add_service(kv)
        .add_service(status)
        .add_service(catalog)
        .add_service(health)
        .add_service(session)
        .add_service(lock)
        .add_service(event)
        .add_service(exec)
        .add_service(snapshot)
        .add_service(reflection)
        .add_service(grpc_health)
        .serve_with_incoming_shutdown(incoming(listener), shutdown);
    // The health reporter lives as long as the server it reports on.
    tokio::select! {
        r = server => r,
        never = health_of => match never {},
    }
}

/// How often the node's leader knowledge is read for `grpc.health.v1` (a local read).
const HEALTH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// The services `grpc.health.v1` reports on: the whole server ("") and each public one.
const HEALTH_SERVICES: [&str; 10] = [
    "",
    "rostra.v1.KV",
    "rostra.v1.Status",
    "rostra.v1.Catalog",
    "rostra.v1.Health",
    "rostra.v1.Session",
    "rostra.v1.Lock",
    "rostra.v1.Event",
    "rostra.v1.Exec",
    "rostra.v1.Snapshot",
];

/// Keeps `grpc.health.v1` at SERVING while this node knows a leader (it can answer
/// consistent reads and take writes), NOT_SERVING otherwise. Never returns.
async fn report_health(
    service: Api,
    reporter: tonic_health::server::HealthReporter,
) -> std::convert::Infallible {
    use tonic_health::ServingStatus;
    let mut reported = None;
    loop {
        let serving = service.cluster_status().leader.is_some();
        if reported != Some(serving) {
            let status = if serving {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for name in HEALTH_SERVICES {
                reporter.set_service_status(name, status).await;
            }
            tracing::info!(serving, "gRPC health");
            reported = Some(serving);
        }
        tokio::time::sleep(HEALTH_EVERY).await;
    }
}
