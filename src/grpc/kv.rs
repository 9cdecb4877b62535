//! `rostra.v1.KV`: decodes, calls the service layer, encodes.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::convert;
use crate::pb;
use crate::pb::kv_server::Kv;
use crate::service::kv::PutArgs;
use crate::service::{Api, QueryOptions};
use crate::state::kv::LockOp;
use crate::state::WatchTarget;

pub struct KvService {
    pub service: Api,
}

#[tonic::async_trait]
impl Kv for KvService {
    #[tracing::instrument(level = "debug", skip_all, fields(key = %request.get_ref().key))]
    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let req = request.into_inner();
        let (meta, entry) = self
            .service
            .kv_get(
                &req.key,
                &QueryOptions::with_consistency(convert::consistency(req.consistency)?),
            )
            .await?;
        Ok(Response::new(pb::GetResponse {
            header: Some(convert::header(&meta.meta)),
            kv: entry.map(convert::kv_pair),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(prefix = %request.get_ref().prefix))]
    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let req = request.into_inner();
        let opts = QueryOptions::with_consistency(convert::consistency(req.consistency)?);
        if req.keys_only {
            let (meta, keys) = self
                .service
                .kv_keys(&req.prefix, &req.separator, &opts)
                .await?;
            return Ok(Response::new(pb::ListResponse {
                header: Some(convert::header(&meta.meta)),
                kvs: Vec::new(),
                keys,
            }));
        }
        if !req.separator.is_empty() {
            return Err(Status::invalid_argument(
                "separator is only allowed with keys_only",
            ));
        }
        let (meta, entries) = self.service.kv_list(&req.prefix, &opts).await?;
        Ok(Response::new(pb::ListResponse {
            header: Some(convert::header(&meta.meta)),
            kvs: entries.into_iter().map(convert::kv_pair).collect(),
            keys: Vec::new(),
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key = %request.get_ref().key))]
    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = request.into_inner();
        let (meta, succeeded) = self
            .service
            .kv_put(PutArgs {
                key: req.key,
                value: req.value,
                flags: req.flags,
                cas: req.cas,
                lock: req.lock.map(|l| match l {
                    pb::put_request::Lock::Acquire(s) => (LockOp::Acquire, s),
                    pb::put_request::Lock::Release(s) => (LockOp::Release, s),
                }),
            })
            .await?;
        Ok(Response::new(pb::PutResponse {
            header: Some(convert::header(&meta)),
            succeeded,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(key = %request.get_ref().key))]
    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        let req = request.into_inner();
        let (meta, succeeded) = self
            .service
            .kv_delete(&req.key, req.recurse, req.cas)
            .await?;
        Ok(Response::new(pb::DeleteResponse {
            header: Some(convert::header(&meta)),
            succeeded,
        }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(ops = request.get_ref().ops.len()))]
    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let req = request.into_inner();
        let consistency = convert::consistency(req.consistency)?;
        let ops = req
            .ops
            .into_iter()
            .map(convert::txn_op)
            .collect::<Result<Vec<_>, _>>()?;
        let reply = self.service.kv_txn(ops, consistency).await?;
        Ok(Response::new(convert::txn_response(reply)))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

    #[tracing::instrument(level = "debug", skip_all, fields(key = %request.get_ref().key))]
    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = request.into_inner();
        let target = if req.prefix {
            WatchTarget::Prefix(req.key)
        } else {
            WatchTarget::Key(req.key)
        };
        let rx = self.service.watch_kv(target, req.start_index)?;
        Ok(Response::new(super::watch::stream(
            self.service.clone(),
            rx,
            convert::watch_response,
        )))
    }
}
