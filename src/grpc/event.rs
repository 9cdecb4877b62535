//! `rostra.v1.Event`: decode, call `crate::service`, encode.

use tonic::{Request, Response, Status};

use super::convert;
use super::watch::{self, catalog_response, WatchStream};
use crate::pb;
use crate::pb::event_server::Event as EventRpc;
use crate::service::event::FireArgs;
use crate::service::{Api, CatalogItem, CatalogWatch, ItemKey, QueryOptions};
use crate::state::event::Event;

pub struct EventService {
    pub service: Api,
}

pub fn event_out(e: Event) -> pb::UserEvent {
    pb::UserEvent {
        id: e.id,
        name: e.name,
        payload: e.payload,
        node_filter: e.node_filter,
        service_filter: e.service_filter,
        tag_filter: e.tag_filter,
        ltime: e.ltime,
    }
}

pub fn event_in(e: pb::UserEvent) -> Event {
    Event {
        id: e.id,
        name: e.name,
        payload: e.payload,
        node_filter: e.node_filter,
        service_filter: e.service_filter,
        tag_filter: e.tag_filter,
        ltime: e.ltime,
    }
}

fn event_item(item: CatalogItem) -> Option<pb::UserEvent> {
    match item {
        CatalogItem::Event(e) => Some(event_out(e)),
        _ => None,
    }
}

fn event_key(key: ItemKey) -> Option<u64> {
    match key {
        ItemKey::Event(ltime) => Some(ltime),
        _ => None,
    }
}

#[tonic::async_trait]
impl EventRpc for EventService {
    async fn fire(
        &self,
        request: Request<pb::EventFireRequest>,
    ) -> Result<Response<pb::EventFireResponse>, Status> {
        let r = request.into_inner();
        let args = FireArgs {
            name: r.name,
            payload: r.payload,
            node_filter: r.node_filter,
            service_filter: r.service_filter,
            tag_filter: r.tag_filter,
        };
        let (meta, event) = self.service.event_fire(args).await?;
        Ok(Response::new(pb::EventFireResponse {
            header: Some(convert::header(&meta)),
            event: Some(event_out(event)),
        }))
    }

    async fn list(
        &self,
        request: Request<pb::EventListRequest>,
    ) -> Result<Response<pb::EventListResponse>, Status> {
        let name = Some(request.into_inner().name).filter(|n| !n.is_empty());
        let (_, events) = self
            .service
            .event_list(name, &QueryOptions::default())
            .await?;
        Ok(Response::new(pb::EventListResponse {
            header: Some(convert::header(&self.service.meta(0))),
            events: events.into_iter().map(event_out).collect(),
        }))
    }

    type WatchStream = WatchStream<pb::EventWatchResponse>;

    async fn watch(
        &self,
        request: Request<pb::EventWatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = request.into_inner();
        let watch = CatalogWatch::Events {
            name: Some(r.name).filter(|n| !n.is_empty()),
        };
        let rx = self.service.watch_catalog(watch, r.start_index)?;
        let encode = catalog_response!(pb::EventWatchResponse, event_item, event_key);
        Ok(Response::new(watch::stream(
            self.service.clone(),
            rx,
            encode,
        )))
    }
}
