//! `rostra.v1.Catalog` and `rostra.v1.Health`: decode, call `crate::service`, encode.

use tonic::{Request, Response, Status};

use super::catalog_convert as cc;
use super::convert;
use super::watch::{self, catalog_response, WatchStream};
use crate::pb;
use crate::pb::catalog_server::Catalog;
use crate::pb::health_server::Health;
use crate::service::catalog::CheckView;
use crate::service::{Api, CatalogItem, CatalogWatch, ItemKey, QueryMeta};
use crate::state::catalog::{Deregistration, Registration};

pub struct CatalogService {
    pub service: Api,
}

pub struct HealthService {
    pub service: Api,
}

use convert::{query_header as header, query_opts as opts};

fn nodes_response(meta: QueryMeta, nodes: Vec<crate::state::catalog::Node>) -> pb::NodesResponse {
    pb::NodesResponse {
        header: header(&meta),
        nodes: nodes.into_iter().map(cc::node_out).collect(),
    }
}

fn services_response(
    meta: QueryMeta,
    services: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> pb::ServicesResponse {
    pb::ServicesResponse {
        header: header(&meta),
        services: services
            .into_iter()
            .map(|(name, tags)| {
                (
                    name,
                    pb::ServiceTags {
                        tags: tags.into_iter().collect(),
                    },
                )
            })
            .collect(),
    }
}

fn service_response(
    meta: QueryMeta,
    instances: Vec<(
        crate::state::catalog::Node,
        crate::state::catalog::ServiceInstance,
    )>,
) -> pb::ServiceResponse {
    pb::ServiceResponse {
        header: header(&meta),
        instances: instances
            .into_iter()
            .map(|(n, s)| pb::CatalogServiceEntry {
                node: Some(cc::node_out(n)),
                service: Some(cc::service_out(s)),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl Catalog for CatalogService {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let req = request.into_inner();
        let node = cc::node_in(
            req.node
                .ok_or_else(|| Status::invalid_argument("Missing node"))?,
        );
        let name = node.name.clone();
        let reg = Registration {
            node,
            skip_node_update: req.skip_node_update,
            service: req.service.map(|s| cc::service_in(s, &name)).transpose()?,
            checks: req
                .checks
                .into_iter()
                .map(|c| cc::check_in(c, &name))
                .collect::<Result<_, _>>()?,
        };
        let index = self.service.catalog_register(reg).await?;
        Ok(Response::new(pb::RegisterResponse {
            header: Some(convert::header(&self.service.meta(index))),
        }))
    }

    async fn deregister(
        &self,
        request: Request<pb::DeregisterRequest>,
    ) -> Result<Response<pb::DeregisterResponse>, Status> {
        let req = request.into_inner();
        let d = Deregistration {
            node: req.node,
            service_id: Some(req.service_id).filter(|s| !s.is_empty()),
            check_id: Some(req.check_id).filter(|s| !s.is_empty()),
        };
        let index = self.service.catalog_deregister(d).await?;
        Ok(Response::new(pb::DeregisterResponse {
            header: Some(convert::header(&self.service.meta(index))),
        }))
    }

    async fn nodes(
        &self,
        request: Request<pb::NodesRequest>,
    ) -> Result<Response<pb::NodesResponse>, Status> {
        let (meta, nodes) = self
            .service
            .catalog_nodes(&opts(request.get_ref().consistency)?)
            .await?;
        Ok(Response::new(nodes_response(meta, nodes)))
    }

    async fn services(
        &self,
        request: Request<pb::ServicesRequest>,
    ) -> Result<Response<pb::ServicesResponse>, Status> {
        let (meta, services) = self
            .service
            .catalog_services(&opts(request.get_ref().consistency)?)
            .await?;
        Ok(Response::new(services_response(meta, services)))
    }

    async fn service(
        &self,
        request: Request<pb::ServiceRequest>,
    ) -> Result<Response<pb::ServiceResponse>, Status> {
        let req = request.into_inner();
        let (meta, instances) = self
            .service
            .catalog_service(&req.name, &req.tags, &opts(req.consistency)?)
            .await?;
        Ok(Response::new(service_response(meta, instances)))
    }

    async fn node(
        &self,
        request: Request<pb::NodeRequest>,
    ) -> Result<Response<pb::NodeResponse>, Status> {
        let req = request.into_inner();
        let (meta, found) = self
            .service
            .catalog_node(&req.name, &opts(req.consistency)?)
            .await?;
        let (node, services) = match found {
            Some((n, s)) => (
                Some(cc::node_out(n)),
                s.into_iter().map(cc::service_out).collect(),
            ),
            None => (None, Vec::new()),
        };
        Ok(Response::new(pb::NodeResponse {
            header: header(&meta),
            node,
            services,
        }))
    }

    type WatchNodesStream = WatchStream<pb::WatchNodesResponse>;

    async fn watch_nodes(
        &self,
        request: Request<pb::WatchNodesRequest>,
    ) -> Result<Response<Self::WatchNodesStream>, Status> {
        let start = request.get_ref().start_index;
        let rx = self.service.watch_catalog(CatalogWatch::Nodes, start)?;
        let encode = catalog_response!(pb::WatchNodesResponse, node_item, node_key);
        Ok(Response::new(watch::stream(
            self.service.clone(),
            rx,
            encode,
        )))
    }

    type WatchServicesStream = WatchStream<pb::WatchServicesResponse>;

    async fn watch_services(
        &self,
        request: Request<pb::WatchServicesRequest>,
    ) -> Result<Response<Self::WatchServicesStream>, Status> {
        let start = request.get_ref().start_index;
        let rx = self.service.watch_catalog(CatalogWatch::Services, start)?;
        let encode = catalog_response!(pb::WatchServicesResponse, summary_item, service_key);
        Ok(Response::new(watch::stream(
            self.service.clone(),
            rx,
            encode,
        )))
    }

    type WatchServiceStream = WatchStream<pb::WatchServiceResponse>;

    async fn watch_service(
        &self,
        request: Request<pb::WatchServiceRequest>,
    ) -> Result<Response<Self::WatchServiceStream>, Status> {
        let req = request.into_inner();
        let watch = CatalogWatch::Service {
            name: req.name,
            tags: req.tags,
        };
        let rx = self.service.watch_catalog(watch, req.start_index)?;
        let encode = catalog_response!(pb::WatchServiceResponse, instance_item, instance_key);
        Ok(Response::new(watch::stream(
            self.service.clone(),
            rx,
            encode,
        )))
    }
}

fn node_item(item: CatalogItem) -> Option<pb::Node> {
    match item {
        CatalogItem::Node(n) => Some(cc::node_out(n)),
        _ => None,
    }
}

fn node_key(key: ItemKey) -> Option<String> {
    match key {
        ItemKey::Node(n) => Some(n),
        _ => None,
    }
}

fn summary_item(item: CatalogItem) -> Option<pb::ServiceSummary> {
    match item {
        CatalogItem::Service { name, tags } => Some(pb::ServiceSummary {
            name,
            tags: tags.into_iter().collect(),
        }),
        _ => None,
    }
}

fn service_key(key: ItemKey) -> Option<String> {
    match key {
        ItemKey::Service(n) => Some(n),
        _ => None,
    }
}

fn instance_item(item: CatalogItem) -> Option<pb::CatalogServiceEntry> {
    match item {
        CatalogItem::Instance { node, service } => Some(pb::CatalogServiceEntry {
            node: Some(cc::node_out(node)),
            service: Some(cc::service_out(service)),
        }),
        _ => None,
    }
}

fn instance_key(key: ItemKey) -> Option<pb::InstanceRef> {
    match key {
        ItemKey::Instance(node, service_id) => Some(pb::InstanceRef { node, service_id }),
        _ => None,
    }
}

fn entry_item(item: CatalogItem) -> Option<pb::ServiceEntry> {
    match item {
        CatalogItem::Health(e) => Some(cc::entry_out(e)),
        _ => None,
    }
}

fn check_item(item: CatalogItem) -> Option<pb::HealthCheck> {
    match item {
        CatalogItem::Check(c) => Some(cc::check_out(c)),
        _ => None,
    }
}

fn check_key(key: ItemKey) -> Option<pb::CheckRef> {
    match key {
        ItemKey::Check(node, check_id) => Some(pb::CheckRef { node, check_id }),
        _ => None,
    }
}

fn checks_out(checks: Vec<CheckView>) -> Vec<pb::HealthCheck> {
    checks.into_iter().map(cc::check_out).collect()
}

fn health_service_response(
    meta: QueryMeta,
    entries: Vec<crate::service::catalog::ServiceEntry>,
) -> pb::HealthServiceResponse {
    pb::HealthServiceResponse {
        header: header(&meta),
        entries: entries.into_iter().map(cc::entry_out).collect(),
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn node(
        &self,
        request: Request<pb::HealthNodeRequest>,
    ) -> Result<Response<pb::HealthNodeResponse>, Status> {
        let req = request.into_inner();
        let (meta, checks) = self
            .service
            .health_node(&req.node, &opts(req.consistency)?)
            .await?;
        Ok(Response::new(pb::HealthNodeResponse {
            header: header(&meta),
            checks: checks_out(checks),
        }))
    }

    async fn checks(
        &self,
        request: Request<pb::HealthChecksRequest>,
    ) -> Result<Response<pb::HealthChecksResponse>, Status> {
        let req = request.into_inner();
        let (meta, checks) = self
            .service
            .health_checks(&req.service, &opts(req.consistency)?)
            .await?;
        Ok(Response::new(pb::HealthChecksResponse {
            header: header(&meta),
            checks: checks_out(checks),
        }))
    }

    async fn service(
        &self,
        request: Request<pb::HealthServiceRequest>,
    ) -> Result<Response<pb::HealthServiceResponse>, Status> {
        let req = request.into_inner();
        let (meta, entries) = self
            .service
            .health_service(
                &req.service,
                &req.tags,
                req.passing_only,
                &opts(req.consistency)?,
            )
            .await?;
        Ok(Response::new(health_service_response(meta, entries)))
    }

    async fn state(
        &self,
        request: Request<pb::HealthStateRequest>,
    ) -> Result<Response<pb::HealthStateResponse>, Status> {
        let req = request.into_inner();
        let state = cc::status_in(req.state)?;
        let (meta, checks) = self
            .service
            .health_state(state, &opts(req.consistency)?)
            .await?;
        Ok(Response::new(pb::HealthStateResponse {
            header: header(&meta),
            checks: checks_out(checks),
        }))
    }

    type WatchServiceStream = WatchStream<pb::HealthWatchServiceResponse>;

    async fn watch_service(
        &self,
        request: Request<pb::HealthWatchServiceRequest>,
    ) -> Result<Response<Self::WatchServiceStream>, Status> {
        let req = request.into_inner();
        let watch = CatalogWatch::Health {
            service: req.service,
            tags: req.tags,
            passing_only: req.passing_only,
        };
        let rx = self.service.watch_catalog(watch, req.start_index)?;
        let encode = catalog_response!(pb::HealthWatchServiceResponse, entry_item, instance_key);
        Ok(Response::new(watch::stream(
            self.service.clone(),
            rx,
            encode,
        )))
    }

    type WatchChecksStream = WatchStream<pb::HealthWatchChecksResponse>;

    async fn watch_checks(
        &self,
        request: Request<pb::HealthWatchChecksRequest>,
    ) -> Result<Response<Self::WatchChecksStream>, Status> {
        let req = request.into_inner();
        let watch = CatalogWatch::ServiceChecks {
            service: req.service,
        };
        let rx = self.service.watch_catalog(watch, req.start_index)?;
        let encode = catalog_response!(pb::HealthWatchChecksResponse, check_item, check_key);
        Ok(Response::new(watch::stream(
            self.service.clone(),
            rx,
            encode,
        )))
    }

    type WatchStateStream = WatchStream<pb::HealthWatchStateResponse>;

    async fn watch_state(
        &self,
        request: Request<pb::HealthWatchStateRequest>,
    ) -> Result<Response<Self::WatchStateStream>, Status> {
        let req = request.into_inner();
        let watch = CatalogWatch::ChecksInState {
            state: cc::status_in(req.state)?,
        };
        let rx = self.service.watch_catalog(watch, req.start_index)?;
        let encode = catalog_response!(pb::HealthWatchStateResponse, check_item, check_key);
        Ok(Response::new(watch::stream(
            self.service.clone(),
            rx,
            encode,
        )))
    }
}
