//! Catalog and health (Consul's `/v1/catalog/*` and `/v1/health/*`, gRPC `Catalog` and
//! `Health`, DNS): registrations go through raft; reads are blocking queries that wake on
//! the feed topic of the node or service they read, never on unrelated catalog churn.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog_watch::CatalogWatch;
use super::query::{QueryMeta, QueryOptions};
use super::{Service, ServiceError};
use crate::state::catalog::{
    node_topic, CheckStatus, Deregistration, HealthCheck, Node, Registration, ServiceInstance,
};
use crate::state::store::{KvQuery, StoreError};
use crate::state::{Command, CommandResult, ReadView, WatchTarget};

/// A check with the name and tags of its service filled in (Consul's HealthCheck JSON).
#[derive(Debug, Clone, PartialEq, Hash, serde::Serialize, serde::Deserialize)]
pub struct CheckView {
    pub check: HealthCheck,
    pub service_name: String,
    pub service_tags: Vec<String>,
}

/// One instance of a service with its node and every check that bears on it (the node's
/// own checks and the instance's): Consul's `/v1/health/service` entry.
#[derive(Debug, Clone, PartialEq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ServiceEntry {
    pub node: Node,
    pub service: ServiceInstance,
    pub checks: Vec<CheckView>,
}

impl ServiceEntry {
    /// Worst status among the checks (passing when there are none).
    pub fn status(&self) -> CheckStatus {
        self.checks
            .iter()
            .map(|c| c.check.status)
            .max()
            .unwrap_or(CheckStatus::Passing)
    }
}

/// The one port rule for registrations from every front end: a port is 0 to 65535;
/// anything else is refused, never clamped.
pub fn service_port(raw: u64) -> Result<u16, ServiceError> {
    u16::try_from(raw).map_err(|_| {
        ServiceError::InvalidArgument(format!("Invalid service port {raw}: a port is 0 to 65535"))
    })
}

/// Whether an instance carries every one of `tags` (Consul's repeated `?tag=`).
fn has_tags(service: &ServiceInstance, tags: &[String]) -> bool {
    tags.iter().all(|t| service.tags.iter().any(|s| s == t))
}

/// Checks with the name and tags of the service each belongs to (one point read per
/// service-level check, so the cost is the answer's size).
fn views(view: &ReadView<'_>, checks: Vec<HealthCheck>) -> Result<Vec<CheckView>, StoreError> {
    let catalog = view.catalog();
    let mut services: BTreeMap<(String, String), Option<ServiceInstance>> = BTreeMap::new();
    let mut out = Vec::with_capacity(checks.len());
    for check in checks {
        let svc = if check.service_id.is_empty() {
            None
        } else {
            let key = (check.node.clone(), check.service_id.clone());
            if !services.contains_key(&key) {
                let found = catalog.service(&check.node, &check.service_id)?;
                services.insert(key.clone(), found);
            }
            services.get(&key).and_then(Option::as_ref)
        };
        out.push(CheckView {
            service_name: svc.map(|s| s.name.clone()).unwrap_or_default(),
            service_tags: svc.map(|s| s.tags.clone()).unwrap_or_default(),
            check,
        });
    }
    Ok(out)
}

fn query<T>(view: &ReadView<'_>, value: T) -> Result<KvQuery<T>, StoreError> {
    Ok(KvQuery {
        applied: view.applied_index()?,
        index: view.catalog_index()?.max(1),
        value,
    })
}

impl Service {
    async fn catalog_write(&self, command: Command) -> Result<u64, ServiceError> {
        let (index, result) = self.raft.write(command).await?;
        match result {
            CommandResult::Catalog(Ok(())) => Ok(index),
            CommandResult::Catalog(Err(text)) => Err(ServiceError::Rejected(text)),
            other => Err(ServiceError::Internal(format!(
                "catalog write applied as {other:?}"
            ))),
        }
    }

    /// Consul's catalog register: node, optional service, checks. Every rule for what a
    /// registration may say is here, whichever front end (or the agent) sent it: required
    /// fields, defaults (datacenter, service and check IDs, weights), and that indexes
    /// are the server's to assign.
    pub async fn catalog_register(&self, mut reg: Registration) -> Result<u64, ServiceError> {
        let invalid = |m: &str| Err(ServiceError::InvalidArgument(m.to_string()));
        // Names are joined with NUL in the tables' keys.
        let names = std::iter::once(reg.node.name.as_str())
            .chain(
                reg.service
                    .iter()
                    .flat_map(|s| [s.id.as_str(), s.name.as_str()]),
            )
            .chain(
                reg.checks
                    .iter()
                    .flat_map(|c| [c.check_id.as_str(), c.service_id.as_str()]),
            );
        if names.into_iter().any(|n| n.contains('\0')) {
            return invalid("Names and IDs must not contain NUL characters");
        }
        let node = &mut reg.node;
        if node.name.is_empty() {
            return invalid("Missing node name");
        }
        if node.address.is_empty() {
            return invalid("Missing node address");
        }
        if node.datacenter.is_empty() {
            node.datacenter = self.datacenter.clone();
        } else if node.datacenter != self.datacenter {
            return Err(ServiceError::NoPathToDatacenter);
        }
        (node.create_index, node.modify_index) = (0, 0);
        let name = node.name.clone();
        if let Some(s) = &mut reg.service {
            if s.name.is_empty() {
                return invalid("Missing service name");
            }
            if s.id.is_empty() {
                s.id = s.name.clone();
            }
            if let Some(why) = s.extra.invalid() {
                return invalid(&why);
            }
            s.node = name.clone();
            // A passing instance always gets an SRV share (Consul requires Passing >= 1);
            // Warning may be 0.
            s.weights.passing = s.weights.passing.max(1);
            (s.create_index, s.modify_index) = (0, 0);
        }
        for c in &mut reg.checks {
            if c.check_id.is_empty() {
                c.check_id = c.name.clone();
            }
            if c.check_id.is_empty() {
                return invalid("Missing check ID");
            }
            c.node = name.clone();
            (c.create_index, c.modify_index) = (0, 0);
        }
        self.catalog_write(Command::CatalogRegister(reg)).await
    }

    pub async fn catalog_deregister(&self, d: Deregistration) -> Result<u64, ServiceError> {
        if d.node.is_empty() {
            return Err(ServiceError::InvalidArgument("Missing node name".into()));
        }
        self.catalog_write(Command::CatalogDeregister(d)).await
    }

    pub async fn catalog_nodes(
        &self,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<Node>), ServiceError> {
        self.catalog_query(CatalogWatch::Nodes, opts, read_nodes)
            .await
    }

    /// Service name to the union of its instances' tags.
    pub async fn catalog_services(
        &self,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, BTreeMap<String, BTreeSet<String>>), ServiceError> {
        self.catalog_query(CatalogWatch::Services, opts, read_services)
            .await
    }

    /// Every instance of `name` carrying all of `tags`, with its node.
    pub async fn catalog_service(
        &self,
        name: &str,
        tags: &[String],
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<(Node, ServiceInstance)>), ServiceError> {
        let watch = CatalogWatch::Service {
            name: name.to_string(),
            tags: tags.to_vec(),
        };
        let (name, tags) = (name.to_string(), tags.to_vec());
        self.catalog_query(watch, opts, move |v| read_service(v, &name, &tags))
            .await
    }

    /// A node and its services; `None` for an unknown node.
    pub async fn catalog_node(
        &self,
        name: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Option<(Node, Vec<ServiceInstance>)>), ServiceError> {
        let name = name.to_string();
        self.query(WatchTarget::Topic(node_topic(&name)), opts, move |s| {
            let view = s.view();
            let catalog = view.catalog();
            let found = match catalog.node(&name)? {
                Some(node) => Some((node, catalog.node_services(&name)?)),
                None => None,
            };
            query(&view, found)
        })
        .await
    }

    /// Every check on a node (node-level and its services').
    pub async fn health_node(
        &self,
        node: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError> {
        let node = node.to_string();
        self.query(WatchTarget::Topic(node_topic(&node)), opts, move |s| {
            let view = s.view();
            let checks = views(&view, view.catalog().node_checks(&node)?)?;
            query(&view, checks)
        })
        .await
    }

    /// The service-level checks of every instance of `service`.
    pub async fn health_checks(
        &self,
        service: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError> {
        let watch = CatalogWatch::ServiceChecks {
            service: service.to_string(),
        };
        let service = service.to_string();
        self.catalog_query(watch, opts, move |v| read_service_checks(v, &service))
            .await
    }

    /// Instances of `service` with all `tags`, each with its node and checks. With
    /// `passing_only`, an instance with any non-passing check (node or service) is left out.
    pub async fn health_service(
        &self,
        service: &str,
        tags: &[String],
        passing_only: bool,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<ServiceEntry>), ServiceError> {
        let watch = CatalogWatch::Health {
            service: service.to_string(),
            tags: tags.to_vec(),
            passing_only,
        };
        let (service, tags) = (service.to_string(), tags.to_vec());
        self.catalog_query(watch, opts, move |v| {
            read_health(v, &service, &tags, passing_only)
        })
        .await
    }

    /// Checks in `state` (`None`: any state).
    pub async fn health_state(
        &self,
        state: Option<CheckStatus>,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError> {
        self.catalog_query(CatalogWatch::ChecksInState { state }, opts, move |v| {
            read_state(v, state)
        })
        .await
    }

    /// A blocking read of one watchable answer: it waits on the same feed target the
    /// answer's watch stream subscribes to.
    async fn catalog_query<T, F>(
        &self,
        watch: CatalogWatch,
        opts: &QueryOptions,
        read: F,
    ) -> Result<(QueryMeta, T), ServiceError>
    where
        T: Send + 'static,
        F: Fn(&ReadView<'_>) -> Result<T, StoreError> + Send + Sync + Clone + 'static,
    {
        watch.validate()?;
        self.query(watch.target(), opts, move |s| {
            let view = s.view();
            let value = read(&view)?;
            query(&view, value)
        })
        .await
    }
}

// The reads behind every catalog and health answer, over one consistent snapshot. The
// blocking queries above and the watch views (`catalog_watch`) share them, so an answer
// and its watch can never disagree.

pub(super) fn read_nodes(view: &ReadView<'_>) -> Result<Vec<Node>, StoreError> {
    view.catalog().nodes()
}

pub(super) fn read_services(
    view: &ReadView<'_>,
) -> Result<BTreeMap<String, BTreeSet<String>>, StoreError> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for svc in view.catalog().services()? {
        out.entry(svc.name).or_default().extend(svc.tags);
    }
    Ok(out)
}

/// The union of one service's tags; `None` when it has no instances.
pub(super) fn service_tags(
    view: &ReadView<'_>,
    name: &str,
) -> Result<Option<BTreeSet<String>>, StoreError> {
    let instances = view.catalog().service_instances(name)?;
    Ok((!instances.is_empty()).then(|| instances.into_iter().flat_map(|s| s.tags).collect()))
}

pub(super) fn read_service(
    view: &ReadView<'_>,
    name: &str,
    tags: &[String],
) -> Result<Vec<(Node, ServiceInstance)>, StoreError> {
    let mut out = Vec::new();
    for svc in view.catalog().service_instances(name)? {
        out.extend(instance_entry(view, svc, name, tags)?);
    }
    Ok(out)
}

/// One instance with its node, if it is an instance of `name` with every one of `tags`.
pub(super) fn instance_entry(
    view: &ReadView<'_>,
    svc: ServiceInstance,
    name: &str,
    tags: &[String],
) -> Result<Option<(Node, ServiceInstance)>, StoreError> {
    if svc.name != name || !has_tags(&svc, tags) {
        return Ok(None);
    }
    Ok(view.catalog().node(&svc.node)?.map(|node| (node, svc)))
}

pub(super) fn read_health(
    view: &ReadView<'_>,
    service: &str,
    tags: &[String],
    passing_only: bool,
) -> Result<Vec<ServiceEntry>, StoreError> {
    let mut out = Vec::new();
    for svc in view.catalog().service_instances(service)? {
        out.extend(health_entry(view, svc, service, tags, passing_only)?);
    }
    Ok(out)
}

/// One instance with its node and checks, if it belongs in `/v1/health/service/<service>`
/// with these filters.
pub(super) fn health_entry(
    view: &ReadView<'_>,
    svc: ServiceInstance,
    service: &str,
    tags: &[String],
    passing_only: bool,
) -> Result<Option<ServiceEntry>, StoreError> {
    let Some((node, svc)) = instance_entry(view, svc, service, tags)? else {
        return Ok(None);
    };
    let checks = view
        .catalog()
        .node_checks(&svc.node)?
        .into_iter()
        .filter(|c| c.service_id.is_empty() || c.service_id == svc.id)
        .collect();
    let entry = ServiceEntry {
        checks: views(view, checks)?,
        node,
        service: svc,
    };
    Ok((!passing_only || entry.status() == CheckStatus::Passing).then_some(entry))
}

pub(super) fn read_service_checks(
    view: &ReadView<'_>,
    service: &str,
) -> Result<Vec<CheckView>, StoreError> {
    let catalog = view.catalog();
    let mut checks = Vec::new();
    for svc in catalog.service_instances(service)? {
        checks.extend(
            catalog
                .node_checks(&svc.node)?
                .into_iter()
                .filter(|c| c.service_id == svc.id),
        );
    }
    // In table order (node, check id), as a scan of the checks gives.
    checks.sort_by(|a, b| (&a.node, &a.check_id).cmp(&(&b.node, &b.check_id)));
    views(view, checks)
}

pub(super) fn read_state(
    view: &ReadView<'_>,
    state: Option<CheckStatus>,
) -> Result<Vec<CheckView>, StoreError> {
    Ok(views(view, view.catalog().checks()?)?
        .into_iter()
        .filter(|c| state.is_none_or(|st| c.check.status == st))
        .collect())
}

/// One check with its service's name and tags.
pub(super) fn check_view(
    view: &ReadView<'_>,
    node: &str,
    check_id: &str,
) -> Result<Option<CheckView>, StoreError> {
    let Some(check) = view.catalog().check(node, check_id)? else {
        return Ok(None);
    };
    Ok(views(view, vec![check])?.pop())
}
