//! The catalog tables: nodes, service instances and health checks (Consul's catalog),
//! replicated through raft. Registration is an upsert that leaves indexes alone when
//! nothing changed (anti-entropy re-registers the same thing often); every change
//! publishes feed topics so blocking catalog/health queries wake only for their node or
//! service.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::apply::{ApplyBatch, RawRead};
use super::change::Change;
use super::store::StoreError;
use crate::db::{CF_CHECKS, CF_NODES, CF_SERVICES, CF_SERVICE_NAMES};

/// A check's status, as Consul spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CheckStatus {
    Passing,
    Warning,
    Critical,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }
}

/// DNS SRV weights by health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Weights {
    pub passing: u32,
    pub warning: u32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Node {
    /// Consul's node ID (a UUID string).
    pub id: String,
    pub name: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceInstance {
    pub node: String,
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    /// Empty: the node's address.
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub weights: Weights,
    pub enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
    /// Consul's mesh and topology fields. Last, so that a record written before they
    /// existed is exactly a prefix of today's encoding and fails to decode as one (see
    /// [`decode_service`]).
    pub extra: ServiceExtra,
}

/// Consul's `TaggedAddresses`, `Kind`, `Proxy` and `Locality` of a service: Rostra has
/// no service mesh, so it stores them as registered and returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceExtra {
    /// `{"lan": {"Address": …, "Port": …}, "wan_ipv4": …}`.
    pub tagged_addresses: BTreeMap<String, (String, u16)>,
    /// "" for a plain service, or one of Consul's proxy and gateway kinds.
    pub kind: String,
    /// The `Proxy` object as given, compact JSON ("" when none).
    pub proxy: String,
    /// `Locality`: (region, zone).
    pub locality: Option<(String, String)>,
}

/// Consul's service kinds (`structs.ServiceKind`).
pub const SERVICE_KINDS: &[&str] = &[
    "",
    "typical",
    "connect-proxy",
    "mesh-gateway",
    "terminating-gateway",
    "ingress-gateway",
    "api-gateway",
];

impl ServiceExtra {
    /// Why these fields cannot be registered (Consul's text for an unknown `Kind`), or
    /// None.
    pub fn invalid(&self) -> Option<String> {
        if !SERVICE_KINDS.contains(&self.kind.as_str()) {
            return Some(format!("Invalid service kind {:?}", self.kind));
        }
        let object = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>;
        if !self.proxy.is_empty() && object(&self.proxy).is_err() {
            return Some("Proxy must be a JSON object".into());
        }
        None
    }
}

/// A service record as Rostra wrote it before [`ServiceExtra`] existed: how records in
/// older data directories, raft logs and snapshots decode. Frozen: never change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInstanceV1 {
    pub node: String,
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub weights: Weights,
    pub enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

impl From<ServiceInstanceV1> for ServiceInstance {
    fn from(s: ServiceInstanceV1) -> Self {
        ServiceInstance {
            node: s.node,
            id: s.id,
            name: s.name,
            tags: s.tags,
            address: s.address,
            port: s.port,
            meta: s.meta,
            weights: s.weights,
            enable_tag_override: s.enable_tag_override,
            create_index: s.create_index,
            modify_index: s.modify_index,
            extra: ServiceExtra::default(),
        }
    }
}

/// Decodes a stored service record of either layout. An older record is today's minus
/// the trailing `extra`, so it ends early as today's layout and decodes as the old one.
pub fn decode_service(bytes: &[u8]) -> Result<ServiceInstance, postcard::Error> {
    postcard::from_bytes(bytes)
        .or_else(|_| postcard::from_bytes::<ServiceInstanceV1>(bytes).map(Into::into))
}

/// How a check was defined, for Consul's `Definition` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckSpec {
    /// Consul's `Type`: script, http, tcp, ttl, or "" (serfHealth, catalog checks).
    pub check_type: String,
    pub interval_ns: u64,
    pub timeout_ns: u64,
    pub http: String,
    pub tcp: String,
    pub deregister_critical_service_after_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HealthCheck {
    pub node: String,
    pub check_id: String,
    pub name: String,
    pub status: CheckStatus,
    pub notes: String,
    pub output: String,
    /// Empty for a node-level check.
    pub service_id: String,
    pub spec: CheckSpec,
    pub create_index: u64,
    pub modify_index: u64,
}

/// `PUT /v1/catalog/register` and agent anti-entropy: a node, optionally one service,
/// and checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub node: Node,
    /// Leave an existing node record alone (Consul's `SkipNodeUpdate`).
    pub skip_node_update: bool,
    pub service: Option<ServiceInstance>,
    pub checks: Vec<HealthCheck>,
}

/// A registration as raft entries written before [`ServiceExtra`] carry it (the payload
/// of `Command::CatalogRegisterV1`). Frozen: never change it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationV1 {
    pub node: Node,
    pub skip_node_update: bool,
    pub service: Option<ServiceInstanceV1>,
    pub checks: Vec<HealthCheck>,
}

impl From<RegistrationV1> for Registration {
    fn from(r: RegistrationV1) -> Self {
        Registration {
            node: r.node,
            skip_node_update: r.skip_node_update,
            service: r.service.map(Into::into),
            checks: r.checks,
        }
    }
}

/// `PUT /v1/catalog/deregister`: the node, or one of its services, or one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deregistration {
    pub node: String,
    pub service_id: Option<String>,
    pub check_id: Option<String>,
}

fn child_key(node: &str, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(node.len() + id.len() + 1);
    k.extend_from_slice(node.as_bytes());
    k.push(0);
    k.extend_from_slice(id.as_bytes());
    k
}

/// The service-name index key of instance `id` of `name` on `node`.
pub(super) fn name_key(name: &str, node: &str, id: &str) -> Vec<u8> {
    let mut k = node_prefix(name);
    k.extend_from_slice(&child_key(node, id));
    k
}

/// (node, service id) from an index key under `name`'s prefix.
fn parse_name_key<'k>(key: &'k [u8], name: &str) -> Option<(&'k str, &'k str)> {
    let rest = key.get(name.len() + 1..)?;
    let split = rest.iter().position(|b| *b == 0)?;
    let node = std::str::from_utf8(&rest[..split]).ok()?;
    let id = std::str::from_utf8(&rest[split + 1..]).ok()?;
    Some((node, id))
}

fn node_prefix(node: &str) -> Vec<u8> {
    let mut k = node.as_bytes().to_vec();
    k.push(0);
    k
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("catalog records always encode")
}

fn decode_all<T: serde::de::DeserializeOwned>(
    rows: Vec<(Vec<u8>, Vec<u8>)>,
) -> Result<Vec<T>, StoreError> {
    rows.into_iter()
        .map(|(_, v)| Ok(postcard::from_bytes(&v)?))
        .collect()
}

fn decode_services(rows: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<ServiceInstance>, StoreError> {
    rows.into_iter()
        .map(|(_, v)| Ok(decode_service(&v)?))
        .collect()
}

/// Catalog reads over any raw view: a snapshot for queries, the apply batch in apply.
pub struct CatalogRead<'r, R: RawRead>(pub &'r R);

impl<R: RawRead> CatalogRead<'_, R> {
    pub fn node(&self, name: &str) -> Result<Option<Node>, StoreError> {
        match self.0.get_raw(CF_NODES, name.as_bytes())? {
            Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
            None => Ok(None),
        }
    }

    pub fn nodes(&self) -> Result<Vec<Node>, StoreError> {
        decode_all(self.0.scan_raw(CF_NODES, b"")?)
    }

    pub fn services(&self) -> Result<Vec<ServiceInstance>, StoreError> {
        decode_services(self.0.scan_raw(CF_SERVICES, b"")?)
    }

    /// Every instance of the service `name`, through the name index.
    pub fn service_instances(&self, name: &str) -> Result<Vec<ServiceInstance>, StoreError> {
        let mut out = Vec::new();
        for (key, _) in self.0.scan_raw(CF_SERVICE_NAMES, &node_prefix(name))? {
            let Some((node, id)) = parse_name_key(&key, name) else {
                continue;
            };
            // The index is derived data; trust the record over it.
            if let Some(svc) = self.service(node, id)?.filter(|s| s.name == name) {
                out.push(svc);
            }
        }
        Ok(out)
    }

    /// One instance by node and service id.
    pub fn service(&self, node: &str, id: &str) -> Result<Option<ServiceInstance>, StoreError> {
        match self.0.get_raw(CF_SERVICES, &child_key(node, id))? {
            Some(v) => Ok(Some(decode_service(&v)?)),
            None => Ok(None),
        }
    }

    pub fn node_services(&self, node: &str) -> Result<Vec<ServiceInstance>, StoreError> {
        decode_services(self.0.scan_raw(CF_SERVICES, &node_prefix(node))?)
    }

    pub fn checks(&self) -> Result<Vec<HealthCheck>, StoreError> {
        decode_all(self.0.scan_raw(CF_CHECKS, b"")?)
    }

    pub fn node_checks(&self, node: &str) -> Result<Vec<HealthCheck>, StoreError> {
        decode_all(self.0.scan_raw(CF_CHECKS, &node_prefix(node))?)
    }

    /// One check by node and check id.
    pub fn check(&self, node: &str, id: &str) -> Result<Option<HealthCheck>, StoreError> {
        match self.0.get_raw(CF_CHECKS, &child_key(node, id))? {
            Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
            None => Ok(None),
        }
    }
}

/// Applies catalog commands into an apply batch and collects the changes they make.
pub struct CatalogWrite<'b, 'a> {
    pub ab: &'b mut ApplyBatch<'a>,
    pub index: u64,
    /// What was written or deleted so far, in order.
    pub changes: Vec<Change>,
}

/// Topic for everything about one node (its record, services and checks).
pub fn node_topic(node: &str) -> String {
    format!("catalog/node/{node}")
}

/// Topic for the instances (and their health) of one service name.
pub fn service_topic(name: &str) -> String {
    format!("catalog/service/{name}")
}

/// Topic for any catalog change (list endpoints).
pub const CATALOG_TOPIC: &str = "catalog";

impl CatalogWrite<'_, '_> {
    fn read(&self) -> CatalogRead<'_, ApplyBatch<'_>> {
        CatalogRead(&*self.ab)
    }

    /// Records a change; every catalog change moves the catalog table index.
    fn changed(&mut self, change: Change) {
        self.ab.bump_catalog_index(self.index);
        self.changes.push(change);
    }

    /// Names of the services on `node` as the batch sees them now.
    fn service_names(&self, node: &str) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .read()
            .node_services(node)?
            .into_iter()
            .map(|s| s.name)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Upserts; returns an error text (Consul's) when the registration is refused.
    pub fn register(&mut self, reg: &Registration) -> Result<Result<(), String>, StoreError> {
        let index = self.index;
        let name = reg.node.name.as_str();
        let existing = self.read().node(name)?;
        let mut node_services: BTreeMap<String, ServiceInstance> = self
            .read()
            .node_services(name)?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        if let Some(svc) = &reg.service {
            node_services.insert(svc.id.clone(), svc.clone());
        }
        for check in &reg.checks {
            if !check.service_id.is_empty() && !node_services.contains_key(&check.service_id) {
                return Ok(Err(format!(
                    "Unknown service ID '{}' for check ID '{}'",
                    check.service_id, check.check_id
                )));
            }
        }
        // Node record.
        let write_node = match &existing {
            None => true,
            Some(_) if reg.skip_node_update => false,
            Some(old) => {
                old.id != reg.node.id
                    || old.address != reg.node.address
                    || old.datacenter != reg.node.datacenter
                    || old.tagged_addresses != reg.node.tagged_addresses
                    || old.meta != reg.node.meta
            }
        };
        if write_node {
            let node = Node {
                create_index: existing.as_ref().map(|n| n.create_index).unwrap_or(index),
                modify_index: index,
                ..reg.node.clone()
            };
            self.ab
                .put_raw(CF_NODES, name.as_bytes().to_vec(), enc(&node));
            let mut services: Vec<String> =
                node_services.values().map(|s| s.name.clone()).collect();
            services.sort();
            services.dedup();
            self.changed(Change::Node {
                name: name.to_string(),
                node: Some(node),
                services,
            });
        }
        // Service.
        if let Some(svc) = &reg.service {
            let key = child_key(name, &svc.id);
            let old: Option<ServiceInstance> = match self.ab.get_raw(CF_SERVICES, &key)? {
                Some(v) => Some(decode_service(&v)?),
                None => None,
            };
            let same = old.as_ref().is_some_and(|o| {
                ServiceInstance {
                    create_index: 0,
                    modify_index: 0,
                    ..o.clone()
                } == ServiceInstance {
                    create_index: 0,
                    modify_index: 0,
                    node: name.to_string(),
                    ..svc.clone()
                }
            });
            if !same {
                let record = ServiceInstance {
                    node: name.to_string(),
                    create_index: old.as_ref().map(|o| o.create_index).unwrap_or(index),
                    modify_index: index,
                    ..svc.clone()
                };
                self.ab.put_raw(CF_SERVICES, key, enc(&record));
                if let Some(o) = old.as_ref().filter(|o| o.name != svc.name) {
                    self.ab
                        .delete_raw(CF_SERVICE_NAMES, name_key(&o.name, name, &o.id));
                }
                self.ab.put_raw(
                    CF_SERVICE_NAMES,
                    name_key(&svc.name, name, &svc.id),
                    Vec::new(),
                );
                self.changed(Change::Service {
                    node: name.to_string(),
                    id: svc.id.clone(),
                    name: svc.name.clone(),
                    old_name: old.map(|o| o.name).filter(|n| *n != svc.name),
                    instance: Some(record),
                });
            }
        }
        // Checks: status, output and definition; an identical check keeps its index.
        for check in &reg.checks {
            let key = child_key(name, &check.check_id);
            let old: Option<HealthCheck> = match self.ab.get_raw(CF_CHECKS, &key)? {
                Some(v) => Some(postcard::from_bytes(&v)?),
                None => None,
            };
            let normalized = HealthCheck {
                node: name.to_string(),
                create_index: 0,
                modify_index: 0,
                ..check.clone()
            };
            let same = old.as_ref().is_some_and(|o| {
                HealthCheck {
                    create_index: 0,
                    modify_index: 0,
                    ..o.clone()
                } == normalized
            });
            if !same {
                let record = HealthCheck {
                    create_index: old.as_ref().map(|o| o.create_index).unwrap_or(index),
                    modify_index: index,
                    ..normalized
                };
                self.ab.put_raw(CF_CHECKS, key, enc(&record));
                // The services whose health the check decides, before and after: a node
                // check decides every service on the node, and a check that moves from
                // one service to another (or to or from the node) changes both answers.
                let decides = |service_id: &str| match node_services.get(service_id) {
                    Some(svc) => vec![svc.name.clone()],
                    None => node_services.values().map(|s| s.name.clone()).collect(),
                };
                let mut services = decides(&check.service_id);
                if let Some(o) = old.as_ref().filter(|o| o.service_id != check.service_id) {
                    services.extend(decides(&o.service_id));
                }
                services.sort();
                services.dedup();
                self.changed(Change::Check {
                    node: name.to_string(),
                    check_id: check.check_id.clone(),
                    services,
                    check: Some(record),
                });
            }
        }
        Ok(Ok(()))
    }

    pub fn deregister(&mut self, d: &Deregistration) -> Result<(), StoreError> {
        let node = d.node.as_str();
        let services = self.read().node_services(node)?;
        let checks = self.read().node_checks(node)?;
        let all_names = self.service_names(node)?;
        let check_services = |c: &HealthCheck| match services.iter().find(|s| s.id == c.service_id)
        {
            Some(s) => vec![s.name.clone()],
            None => all_names.clone(),
        };
        let mut gone = Vec::new();
        match (&d.service_id, &d.check_id) {
            (None, None) => {
                let record = self.read().node(node)?;
                if record.is_none() && services.is_empty() && checks.is_empty() {
                    return Ok(());
                }
                self.ab.delete_raw(CF_NODES, node.as_bytes().to_vec());
                for c in &checks {
                    self.ab.delete_raw(CF_CHECKS, child_key(node, &c.check_id));
                    gone.push(check_gone(c, check_services(c)));
                }
                for s in &services {
                    self.ab.delete_raw(CF_SERVICES, child_key(node, &s.id));
                    self.ab
                        .delete_raw(CF_SERVICE_NAMES, name_key(&s.name, node, &s.id));
                    gone.push(service_gone(s));
                }
                if record.is_some() {
                    gone.push(Change::Node {
                        name: node.to_string(),
                        node: None,
                        services: all_names.clone(),
                    });
                }
            }
            (Some(sid), _) => {
                let Some(svc) = services.iter().find(|s| &s.id == sid) else {
                    return Ok(());
                };
                for c in checks.iter().filter(|c| &c.service_id == sid) {
                    self.ab.delete_raw(CF_CHECKS, child_key(node, &c.check_id));
                    gone.push(check_gone(c, vec![svc.name.clone()]));
                }
                self.ab.delete_raw(CF_SERVICES, child_key(node, sid));
                self.ab
                    .delete_raw(CF_SERVICE_NAMES, name_key(&svc.name, node, sid));
                gone.push(service_gone(svc));
            }
            (None, Some(cid)) => {
                let Some(c) = checks.iter().find(|c| &c.check_id == cid) else {
                    return Ok(());
                };
                self.ab.delete_raw(CF_CHECKS, child_key(node, cid));
                gone.push(check_gone(c, check_services(c)));
            }
        }
        for change in gone {
            self.changed(change);
        }
        Ok(())
    }
}

fn service_gone(s: &ServiceInstance) -> Change {
    Change::Service {
        node: s.node.clone(),
        id: s.id.clone(),
        name: s.name.clone(),
        old_name: None,
        instance: None,
    }
}

fn check_gone(c: &HealthCheck, services: Vec<String>) -> Change {
    Change::Check {
        node: c.node.clone(),
        check_id: c.check_id.clone(),
        services,
        check: None,
    }
}
