//! `rostra.v1.Catalog` and `rostra.v1.Health`: decode, call `crate::service`, encode.

use tonic::{Request, Response, Status};

use super::catalog_convert as cc;
use super::convert;
use super::watch::{self, WatchStream};
use crate::pb;
use crate::pb::catalog_server::Catalog;
use crate::pb::health_server::Health;
use crate::service::{Api, QueryMeta, QueryOptions};
use crate::state::catalog::{Deregistration, Registration};

pub struct CatalogService {
    pub service: Api,
}

pub struct HealthService {
    pub service: Api,
}

fn header(meta: &QueryMeta) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        index: meta.index,
        ..convert::header(&meta.meta)
    })
}

fn opts(consistency: i32) -> Result<QueryOptions, Status> {
    Ok(QueryOptions::with_consistency(convert::consistency(
        consistency,
    )?))
}

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

    type WatchNodesStream = WatchStream<pb::NodesResponse>;

    async fn watch_nodes(
        &self,
        request: Request<pb::NodesRequest>,
    ) -> Result<Response<Self::WatchNodesStream>, Status> {
        let consistency = convert::consistency(request.get_ref().consistency)?;
        let stream = watch::stream(
            self.service.clone(),
            consistency,
            |s, o| async move { s.catalog_nodes(&o).await },
            nodes_response,
        );
        Ok(Response::new(stream))
    }

    type WatchServicesStream = WatchStream<pb::ServicesResponse>;

    async fn watch_services(
        &self,
        request: Request<pb::ServicesRequest>,
    ) -> Result<Response<Self::WatchServicesStream>, Status> {
        let consistency = convert::consistency(request.get_ref().consistency)?;
        let stream = watch::stream(
            self.service.clone(),
            consistency,
            |s, o| async move { s.catalog_services(&o).await },
            services_response,
        );
        Ok(Response::new(stream))
    }

    type WatchServiceStream = WatchStream<pb::ServiceResponse>;

    async fn watch_service(
        &self,
        request: Request<pb::ServiceRequest>,
    ) -> Result<Response<Self::WatchServiceStream>, Status> {
        let req = request.into_inner();
        let consistency = convert::consistency(req.consistency)?;
        let (name, tags) = (req.name, req.tags);
        let stream = watch::stream(
            self.service.clone(),
            consistency,
            move |s, o| {
                let (name, tags) = (name.clone(), tags.clone());
                async move { s.catalog_service(&name, &tags, &o).await }
            },
            service_response,
        );
        Ok(Response::new(stream))
    }
}

fn checks_response(
    meta: QueryMeta,
    checks: Vec<crate::service::catalog::CheckView>,
) -> pb::ChecksResponse {
    pb::ChecksResponse {
        header: header(&meta),
        checks: checks.into_iter().map(cc::check_out).collect(),
    }
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
    ) -> Result<Response<pb::ChecksResponse>, Status> {
        let req = request.into_inner();
        let (meta, checks) = self
            .service
            .health_node(&req.node, &opts(req.consistency)?)
            .await?;
        Ok(Response::new(checks_response(meta, checks)))
    }

    async fn checks(
        &self,
        request: Request<pb::HealthChecksRequest>,
    ) -> Result<Response<pb::ChecksResponse>, Status> {
        let req = request.into_inner();
        let (meta, checks) = self
            .service
            .health_checks(&req.service, &opts(req.consistency)?)
            .await?;
        Ok(Response::new(checks_response(meta, checks)))
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
    ) -> Result<Response<pb::ChecksResponse>, Status> {
        let req = request.into_inner();
        let state = cc::status_in(req.state)?;
        let (meta, checks) = self
            .service
            .health_state(state, &opts(req.consistency)?)
            .await?;
        Ok(Response::new(checks_response(meta, checks)))
    }

    type WatchServiceStream = WatchStream<pb::HealthServiceResponse>;

    async fn watch_service(
        &self,
        request: Request<pb::HealthServiceRequest>,
    ) -> Result<Response<Self::WatchServiceStream>, Status> {
        let req = request.into_inner();
        let consistency = convert::consistency(req.consistency)?;
        let (name, tags, passing) = (req.service, req.tags, req.passing_only);
        let stream = watch::stream(
            self.service.clone(),
            consistency,
            move |s, o| {
                let (name, tags) = (name.clone(), tags.clone());
                async move { s.health_service(&name, &tags, passing, &o).await }
            },
            health_service_response,
        );
        Ok(Response::new(stream))
    }

    type WatchChecksStream = WatchStream<pb::ChecksResponse>;

    async fn watch_checks(
        &self,
        request: Request<pb::HealthChecksRequest>,
    ) -> Result<Response<Self::WatchChecksStream>, Status> {
        let req = request.into_inner();
        let consistency = convert::consistency(req.consistency)?;
        let name = req.service;
        let stream = watch::stream(
            self.service.clone(),
            consistency,
            move |s, o| {
                let name = name.clone();
                async move { s.health_checks(&name, &o).await }
            },
            checks_response,
        );
        Ok(Response::new(stream))
    }

    type WatchStateStream = WatchStream<pb::ChecksResponse>;

    async fn watch_state(
        &self,
        request: Request<pb::HealthStateRequest>,
    ) -> Result<Response<Self::WatchStateStream>, Status> {
        let req = request.into_inner();
        let consistency = convert::consistency(req.consistency)?;
        let state = cc::status_in(req.state)?;
        let stream = watch::stream(
            self.service.clone(),
            consistency,
            move |s, o| async move { s.health_state(state, &o).await },
            checks_response,
        );
        Ok(Response::new(stream))
    }
}
