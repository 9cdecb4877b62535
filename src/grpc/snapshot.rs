//! `rostra.v1.Snapshot`: a snapshot file out as a stream of chunks, and in the same way.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use crate::pb;
use crate::pb::snapshot_server::Snapshot as SnapshotRpc;
use crate::service::snapshot::{CHUNK_BYTES, MAX_SNAPSHOT_BYTES};
use crate::service::{Api, ServiceError};

pub struct SnapshotService {
    pub service: Api,
}

type Chunks = Pin<Box<dyn Stream<Item = Result<pb::SnapshotSaveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl SnapshotRpc for SnapshotService {
    type SaveStream = Chunks;

    async fn save(
        &self,
        request: Request<pb::SnapshotSaveRequest>,
    ) -> Result<Response<Chunks>, Status> {
        let consistency = convert::consistency(request.into_inner().consistency)?;
        let (_, file) = self.service.snapshot_save(consistency).await?;
        let chunks: Vec<Result<pb::SnapshotSaveResponse, Status>> = file
            .chunks(CHUNK_BYTES)
            .map(|c| Ok(pb::SnapshotSaveResponse { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn restore(
        &self,
        request: Request<Streaming<pb::SnapshotRestoreRequest>>,
    ) -> Result<Response<pb::SnapshotRestoreResponse>, Status> {
        let mut stream = request.into_inner();
        let mut file = Vec::new();
        while let Some(chunk) = stream.message().await? {
            // Refused as soon as it is too large, not after buffering all of it.
            if file.len() + chunk.data.len() > MAX_SNAPSHOT_BYTES {
                return Err(ServiceError::TooLarge(format!(
                    "snapshot exceeds the {MAX_SNAPSHOT_BYTES}-byte limit"
                ))
                .into());
            }
            file.extend_from_slice(&chunk.data);
        }
        let (meta, snapshot_index) = self.service.snapshot_restore(file).await?;
        Ok(Response::new(pb::SnapshotRestoreResponse {
            header: Some(convert::header(&meta)),
            snapshot_index,
        }))
    }
}
