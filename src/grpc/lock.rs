//! `rostra.v1.Lock`: a hold's events (`service::lock`) as a response stream. Dropping the
//! stream (the client left, or its connection failed keepalive) ends the hold.

use futures::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::watch::WatchStream;
use crate::pb;
use crate::pb::lock_hold_response::Event;
use crate::pb::lock_server::Lock;
use crate::service::lock::{self, LockEvent};
use crate::service::Api;

pub struct LockService {
    pub service: Api,
}

#[tonic::async_trait]
impl Lock for LockService {
    type HoldStream = WatchStream<pb::LockHoldResponse>;

    #[tracing::instrument(level = "debug", skip_all, fields(name = %request.get_ref().name))]
    async fn hold(
        &self,
        request: Request<pb::LockHoldRequest>,
    ) -> Result<Response<Self::HoldStream>, Status> {
        let req = request.into_inner();
        let rx = lock::hold(self.service.clone(), &req.name, req.limit, req.session_name).await?;
        let stream = ReceiverStream::new(rx).map(|event| {
            let event = match event {
                LockEvent::Queued { ahead } => Event::Queued(pb::LockQueued { ahead }),
                LockEvent::Acquired {
                    token,
                    session,
                    key,
                } => Event::Acquired(pb::LockAcquired {
                    token,
                    session,
                    key,
                }),
                LockEvent::Lost { reason } => Event::Lost(pb::LockLost { reason }),
            };
            Ok(pb::LockHoldResponse { event: Some(event) })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
