//! `rostra.v1.Session`: decode, call `crate::service`, encode.

use std::time::Duration;

use tonic::{Request, Response, Status};

use super::convert;
use super::watch::{self, catalog_response, WatchStream};
use crate::pb;
use crate::pb::session_server::Session as SessionRpc;
use crate::service::session::{SessionArgs, SessionFilter};
use crate::service::{Api, CatalogItem, CatalogWatch, ItemKey};
use crate::state::session::{Behavior, Session};

pub struct SessionService {
    pub service: Api,
}

pub fn session_out(s: Session) -> pb::SessionInfo {
    let behavior = match s.behavior {
        Behavior::Release => pb::SessionBehavior::Release,
        Behavior::Delete => pb::SessionBehavior::Delete,
    };
    pb::SessionInfo {
        id: s.id,
        name: s.name,
        node: s.node,
        lock_delay_ns: s.lock_delay_ns,
        behavior: behavior as i32,
        ttl: s.ttl,
        node_checks: s.node_checks,
        service_checks: s.service_checks,
        create_index: s.create_index,
        modify_index: s.modify_index,
    }
}

use convert::{query_header as header, query_opts as opts};

fn session_item(item: CatalogItem) -> Option<pb::SessionInfo> {
    match item {
        CatalogItem::Session(s) => Some(session_out(s)),
        _ => None,
    }
}

fn session_key(key: ItemKey) -> Option<String> {
    match key {
        ItemKey::Session(id) => Some(id),
        _ => None,
    }
}

#[tonic::async_trait]
impl SessionRpc for SessionService {
    async fn create(
        &self,
        request: Request<pb::SessionCreateRequest>,
    ) -> Result<Response<pb::SessionCreateResponse>, Status> {
        let req = request.into_inner();
        let behavior = match pb::SessionBehavior::try_from(req.behavior) {
            Ok(pb::SessionBehavior::Unspecified) => None,
            Ok(pb::SessionBehavior::Release) => Some("release".to_string()),
            Ok(pb::SessionBehavior::Delete) => Some("delete".to_string()),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown session behavior {}",
                    req.behavior
                )))
            }
        };
        let args = SessionArgs {
            name: req.name,
            node: Some(req.node).filter(|n| !n.is_empty()),
            lock_delay: req.lock_delay_ns.map(Duration::from_nanos),
            behavior,
            ttl: Some(req.ttl),
            node_checks: req.node_checks.map(|c| c.ids),
            service_checks: req.service_checks,
        };
        let (index, id) = self.service.session_create(args).await?;
        Ok(Response::new(pb::SessionCreateResponse {
            header: Some(convert::header(&self.service.meta(index))),
            id,
        }))
    }

    async fn destroy(
        &self,
        request: Request<pb::SessionDestroyRequest>,
    ) -> Result<Response<pb::SessionDestroyResponse>, Status> {
        let index = self.service.session_destroy(&request.get_ref().id).await?;
        Ok(Response::new(pb::SessionDestroyResponse {
            header: Some(convert::header(&self.service.meta(index))),
        }))
    }

    async fn renew(
        &self,
        request: Request<pb::SessionRenewRequest>,
    ) -> Result<Response<pb::SessionRenewResponse>, Status> {
        let (index, session) = self.service.session_renew(&request.get_ref().id).await?;
        Ok(Response::new(pb::SessionRenewResponse {
            header: Some(convert::header(&self.service.meta(index))),
            session: Some(session_out(session)),
        }))
    }

    async fn info(
        &self,
        request: Request<pb::SessionInfoRequest>,
    ) -> Result<Response<pb::SessionInfoResponse>, Status> {
        let req = request.into_inner();
        let (meta, found) = self
            .service
            .session_list(SessionFilter::Id(req.id), &opts(req.consistency)?)
            .await?;
        Ok(Response::new(pb::SessionInfoResponse {
            header: header(&meta),
            session: found.into_iter().next().map(session_out),
        }))
    }

    async fn list(
        &self,
        request: Request<pb::SessionListRequest>,
    ) -> Result<Response<pb::SessionListResponse>, Status> {
        let o = opts(request.get_ref().consistency)?;
        let (meta, sessions) = self.service.session_list(SessionFilter::All, &o).await?;
        Ok(Response::new(pb::SessionListResponse {
            header: header(&meta),
            sessions: sessions.into_iter().map(session_out).collect(),
        }))
    }

    async fn node(
        &self,
        request: Request<pb::SessionNodeRequest>,
    ) -> Result<Response<pb::SessionNodeResponse>, Status> {
        let req = request.into_inner();
        let (meta, sessions) = self
            .service
            .session_list(SessionFilter::Node(req.node), &opts(req.consistency)?)
            .await?;
        Ok(Response::new(pb::SessionNodeResponse {
            header: header(&meta),
            sessions: sessions.into_iter().map(session_out).collect(),
        }))
    }

    type WatchStream = WatchStream<pb::SessionWatchResponse>;

    async fn watch(
        &self,
        request: Request<pb::SessionWatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let start = request.get_ref().start_index;
        let rx = self.service.watch_catalog(CatalogWatch::Sessions, start)?;
        let encode = catalog_response!(pb::SessionWatchResponse, session_item, session_key);
        Ok(Response::new(watch::stream(
            self.service.clone(),
            rx,
            encode,
        )))
    }
}
