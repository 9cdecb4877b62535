//! The public gRPC front end (`rostra.v1` on the gRPC port, 8502 in dev mode): one file
//! per proto service, each a thin translation onto `crate::service`.

pub mod convert;
pub mod error;
pub mod kv;
pub mod status;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::pb::kv_server::KvServer;
use crate::pb::status_server::StatusServer;
use crate::service::Service;

/// Generous enough for a 512 KiB value plus framing; large lists are the client's choice.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Serves the public API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let kv = KvServer::new(kv::KvService {
        service: service.clone(),
    })
    .max_decoding_message_size(MAX_MESSAGE)
    .max_encoding_message_size(MAX_MESSAGE);
    let status = StatusServer::new(status::StatusService { service });
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(kv)
        .add_service(status)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}
