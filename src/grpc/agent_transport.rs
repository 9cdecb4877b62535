//! The server half of `rostra.internal.v1.AgentTransport`: client agents' seam calls
//! (`service::call`), answered by this server's service layer. Served on the server port
//! next to the raft transport, with each client agent's attachment (`service::attach`).

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::pb_internal::agent_transport_server::{AgentTransport, AgentTransportServer};
use crate::pb_internal::RaftPayload;
use crate::raft::wire;
use crate::service::attach::{self, Up};
use crate::service::call::{self, Answer, Call, WatchCall, WireWatch};
use crate::service::{Service, ServiceError};

/// Seam calls carry at most one write's worth of data; replies may hold a large list.
/// Room for a snapshot file (`service::snapshot::MAX_SNAPSHOT_BYTES`) in one call.
const MAX_MESSAGE: usize = 160 * 1024 * 1024;

pub struct AgentTransportService {
    pub service: Arc<Service>,
}

pub fn server(service: Arc<Service>) -> AgentTransportServer<AgentTransportService> {
    AgentTransportServer::new(AgentTransportService { service })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

type PayloadStream = Pin<Box<dyn Stream<Item = Result<RaftPayload, Status>> + Send>>;

#[tonic::async_trait]
impl AgentTransport for AgentTransportService {
    async fn call(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let call: Call = wire::decode(request.get_ref())?;
        let answer: Answer = call::dispatch(&self.service, call).await;
        Ok(Response::new(wire::encode(&answer)))
    }

    type WatchStream = PayloadStream;

    async fn watch(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let call: WatchCall = wire::decode(request.get_ref())?;
        let stream: PayloadStream = match call::dispatch_watch(&self.service, call) {
            Ok(rx) => Box::pin(ReceiverStream::new(rx).map(|m| Ok(wire::encode(&m)))),
            Err(e) => Box::pin(futures::stream::iter([Ok(wire::encode(
                &WireWatch::Refused(e),
            ))])),
        };
        Ok(Response::new(stream))
    }

    type AttachStream = PayloadStream;

    async fn attach(
        &self,
        request: Request<Streaming<RaftPayload>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let up = request.into_inner().map(|m| match m {
            Ok(payload) => wire::decode::<Up>(&payload)
                .map_err(|e| ServiceError::InvalidArgument(e.message().to_string())),
            // The agent went away (or its stream broke): the attachment ends.
            Err(status) => Err(ServiceError::Unavailable(status.message().to_string())),
        });
        let down = attach::serve(self.service.clone(), up);
        Ok(Response::new(Box::pin(
            ReceiverStream::new(down).map(|m| Ok(wire::encode(&m))),
        )))
    }
}
