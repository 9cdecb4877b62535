//! The watchable catalog, health and session answers, as views for the watch protocol
//! (`service::watch`): the nodes list, the services list, one service's instances (with
//! or without their health), checks by service or by state, and the sessions.
//!
//! Each answer is a set of items with a key (a node, a service name, an instance, a
//! check). For every raft entry the feed delivers, the view works out which keys the
//! entry may have touched, re-reads just those, and sends what is different from what
//! the client holds: items upserted and keys removed, never the whole answer. A catalog
//! change carries only the record it wrote, while an answer joins several records (an
//! instance with its node and checks, a check with its service's tags), so re-reading is
//! what keeps one code path for every answer; the items sent are the current ones, at or
//! after the entry's index, and every later entry that touches them is delivered too.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};

use super::catalog::{
    check_view, health_entry, instance_entry, read_health, read_nodes, read_service,
    read_service_checks, read_services, read_state, service_tags, CheckView, ServiceEntry,
};
use super::watch::View;
use super::ServiceError;
use crate::state::catalog::{service_topic, CheckStatus, Node, ServiceInstance, CATALOG_TOPIC};
use crate::state::event::{Event, EVENTS_TOPIC};
use crate::state::session::{Session, SESSIONS_TOPIC};
use crate::state::store::StoreError;
use crate::state::{Change, FeedEvent, ReadView, StateStore, WatchTarget};

/// A watchable catalog or health answer and its filters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CatalogWatch {
    /// `/v1/catalog/nodes`.
    Nodes,
    /// `/v1/catalog/services`: each service name with the union of its tags.
    Services,
    /// `/v1/catalog/service/<name>`: instances carrying every one of `tags`.
    Service { name: String, tags: Vec<String> },
    /// `/v1/health/service/<service>`: instances with their node and checks.
    Health {
        service: String,
        tags: Vec<String>,
        passing_only: bool,
    },
    /// `/v1/health/checks/<service>`: the service-level checks of its instances.
    ServiceChecks { service: String },
    /// `/v1/health/state/<state>` (`None`: any).
    ChecksInState { state: Option<CheckStatus> },
    /// `/v1/session/list`.
    Sessions,
    /// User events, optionally of one name.
    Events { name: Option<String> },
}

/// What identifies one item of an answer.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ItemKey {
    Node(String),
    Service(String),
    /// (node, service id).
    Instance(String, String),
    /// (node, check id).
    Check(String, String),
    Session(String),
    /// An event's Lamport time.
    Event(u64),
}

/// One item of an answer.
#[derive(Debug, Clone, PartialEq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CatalogItem {
    Node(Node),
    Service {
        name: String,
        tags: BTreeSet<String>,
    },
    Instance {
        node: Node,
        service: ServiceInstance,
    },
    Health(ServiceEntry),
    Check(CheckView),
    Session(Session),
    Event(Event),
}

impl CatalogItem {
    pub fn key(&self) -> ItemKey {
        match self {
            CatalogItem::Node(n) => ItemKey::Node(n.name.clone()),
            CatalogItem::Service { name, .. } => ItemKey::Service(name.clone()),
            CatalogItem::Instance { service, .. } => {
                ItemKey::Instance(service.node.clone(), service.id.clone())
            }
            CatalogItem::Health(e) => {
                ItemKey::Instance(e.service.node.clone(), e.service.id.clone())
            }
            CatalogItem::Check(c) => ItemKey::Check(c.check.node.clone(), c.check.check_id.clone()),
            CatalogItem::Session(s) => ItemKey::Session(s.id.clone()),
            CatalogItem::Event(e) => ItemKey::Event(e.ltime),
        }
    }

    /// About how many bytes the item encodes to, for cutting snapshots into messages.
    fn size(&self) -> usize {
        fn encoded<T: serde::Serialize>(v: &T) -> usize {
            postcard::to_stdvec(v).map_or(0, |b| b.len())
        }
        let check = |c: &CheckView| {
            encoded(&c.check)
                + c.service_name.len()
                + c.service_tags.iter().map(String::len).sum::<usize>()
        };
        match self {
            CatalogItem::Node(n) => encoded(n),
            CatalogItem::Service { name, tags } => {
                name.len() + tags.iter().map(String::len).sum::<usize>()
            }
            CatalogItem::Instance { node, service } => encoded(node) + encoded(service),
            CatalogItem::Health(e) => {
                encoded(&e.node) + encoded(&e.service) + e.checks.iter().map(check).sum::<usize>()
            }
            CatalogItem::Check(c) => check(c),
            CatalogItem::Session(s) => encoded(s),
            CatalogItem::Event(e) => encoded(e),
        }
    }
}

/// What one raft entry changed in an answer.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CatalogDelta {
    /// Items that are new or different, in key order.
    pub upserted: Vec<CatalogItem>,
    /// Keys of items that left the answer, in key order.
    pub removed: Vec<ItemKey>,
}

impl CatalogWatch {
    /// The one check of a watch's parameters, for its blocking query and its stream.
    pub fn validate(&self) -> Result<(), ServiceError> {
        match self {
            CatalogWatch::Service { name: s, .. }
            | CatalogWatch::Health { service: s, .. }
            | CatalogWatch::ServiceChecks { service: s }
                if s.is_empty() =>
            {
                Err(ServiceError::InvalidArgument("Missing service name".into()))
            }
            _ => Ok(()),
        }
    }

    /// The feed target whose changes can alter this answer.
    pub fn target(&self) -> WatchTarget {
        match self {
            CatalogWatch::Nodes | CatalogWatch::Services | CatalogWatch::ChecksInState { .. } => {
                WatchTarget::Topic(CATALOG_TOPIC.into())
            }
            CatalogWatch::Sessions => WatchTarget::Topic(SESSIONS_TOPIC.into()),
            CatalogWatch::Events { .. } => WatchTarget::Topic(EVENTS_TOPIC.into()),
            CatalogWatch::Service { name: s, .. }
            | CatalogWatch::Health { service: s, .. }
            | CatalogWatch::ServiceChecks { service: s } => WatchTarget::Topic(service_topic(s)),
        }
    }

    /// The whole answer, in the order its read returns it.
    fn read_all(&self, view: &ReadView<'_>) -> Result<Vec<CatalogItem>, StoreError> {
        Ok(match self {
            CatalogWatch::Nodes => read_nodes(view)?
                .into_iter()
                .map(CatalogItem::Node)
                .collect(),
            CatalogWatch::Services => read_services(view)?
                .into_iter()
                .map(|(name, tags)| CatalogItem::Service { name, tags })
                .collect(),
            CatalogWatch::Service { name, tags } => read_service(view, name, tags)?
                .into_iter()
                .map(|(node, service)| CatalogItem::Instance { node, service })
                .collect(),
            CatalogWatch::Health {
                service,
                tags,
                passing_only,
            } => read_health(view, service, tags, *passing_only)?
                .into_iter()
                .map(CatalogItem::Health)
                .collect(),
            CatalogWatch::ServiceChecks { service } => read_service_checks(view, service)?
                .into_iter()
                .map(CatalogItem::Check)
                .collect(),
            CatalogWatch::ChecksInState { state } => read_state(view, *state)?
                .into_iter()
                .map(CatalogItem::Check)
                .collect(),
            CatalogWatch::Sessions => view
                .sessions()
                .list()?
                .into_iter()
                .map(CatalogItem::Session)
                .collect(),
            CatalogWatch::Events { name } => view
                .events()
                .list()?
                .into_iter()
                .filter(|e| name.as_ref().is_none_or(|n| &e.name == n))
                .map(CatalogItem::Event)
                .collect(),
        })
    }

    /// The item under `key` if it is in the answer now.
    fn read_one(
        &self,
        view: &ReadView<'_>,
        key: &ItemKey,
    ) -> Result<Option<CatalogItem>, StoreError> {
        let catalog = view.catalog();
        Ok(match (self, key) {
            (CatalogWatch::Nodes, ItemKey::Node(n)) => catalog.node(n)?.map(CatalogItem::Node),
            (CatalogWatch::Services, ItemKey::Service(name)) => {
                service_tags(view, name)?.map(|tags| CatalogItem::Service {
                    name: name.clone(),
                    tags,
                })
            }
            (CatalogWatch::Service { name, tags }, ItemKey::Instance(n, id)) => {
                match catalog.service(n, id)? {
                    Some(svc) => instance_entry(view, svc, name, tags)?
                        .map(|(node, service)| CatalogItem::Instance { node, service }),
                    None => None,
                }
            }
            (
                CatalogWatch::Health {
                    service,
                    tags,
                    passing_only,
                },
                ItemKey::Instance(n, id),
            ) => match catalog.service(n, id)? {
                Some(svc) => {
                    health_entry(view, svc, service, tags, *passing_only)?.map(CatalogItem::Health)
                }
                None => None,
            },
            (CatalogWatch::ServiceChecks { service }, ItemKey::Check(n, id)) => {
                check_view(view, n, id)?
                    .filter(|c| !c.check.service_id.is_empty() && c.service_name == *service)
                    .map(CatalogItem::Check)
            }
            (CatalogWatch::ChecksInState { state }, ItemKey::Check(n, id)) => {
                check_view(view, n, id)?
                    .filter(|c| state.is_none_or(|s| c.check.status == s))
                    .map(CatalogItem::Check)
            }
            (CatalogWatch::Sessions, ItemKey::Session(id)) => {
                view.sessions().get(id)?.map(CatalogItem::Session)
            }
            (CatalogWatch::Events { name }, ItemKey::Event(ltime)) => view
                .events()
                .get(*ltime)?
                .filter(|e| name.as_ref().is_none_or(|n| &e.name == n))
                .map(CatalogItem::Event),
            _ => None,
        })
    }

    /// Keys whose items `change` may have altered. `known_on` lists the keys the client
    /// holds on a node (as far as the view knows), for changes that reach every item on
    /// a node (its record, a node-level check).
    fn affected(
        &self,
        view: &ReadView<'_>,
        change: &Change,
        known_on: &dyn Fn(&str) -> Vec<ItemKey>,
    ) -> Result<Vec<ItemKey>, StoreError> {
        let catalog = view.catalog();
        // Instances of `name` on `node`, now and as the client may hold them.
        let instances_on = |node: &str, name: &str| -> Result<Vec<ItemKey>, StoreError> {
            let mut keys = known_on(node);
            keys.extend(
                catalog
                    .node_services(node)?
                    .into_iter()
                    .filter(|s| s.name == name)
                    .map(|s| ItemKey::Instance(s.node, s.id)),
            );
            Ok(keys)
        };
        // Checks of instance `id` on `node` (their items carry its name and tags).
        let checks_of = |node: &str, id: &str| -> Result<Vec<ItemKey>, StoreError> {
            Ok(catalog
                .node_checks(node)?
                .into_iter()
                .filter(|c| c.service_id == id)
                .map(|c| ItemKey::Check(c.node, c.check_id))
                .collect())
        };
        Ok(match (self, change) {
            (CatalogWatch::Nodes, Change::Node { name, .. }) => vec![ItemKey::Node(name.clone())],
            (CatalogWatch::Services, Change::Service { name, old_name, .. }) => {
                std::iter::once(name)
                    .chain(old_name)
                    .map(|n| ItemKey::Service(n.clone()))
                    .collect()
            }
            // Routed here by topic: the instance is, or was, an instance of the service.
            (
                CatalogWatch::Service { .. } | CatalogWatch::Health { .. },
                Change::Service { node, id, .. },
            ) => vec![ItemKey::Instance(node.clone(), id.clone())],
            (
                CatalogWatch::Service { name: w, .. } | CatalogWatch::Health { service: w, .. },
                Change::Node { name: node, .. },
            ) => instances_on(node, w)?,
            // A check decides the instances on its node: a node-level one all of them, a
            // service's its own, and one that moved off an instance (the change carries
            // only where it is now) the one it left. Every instance on the node covers
            // all three.
            (CatalogWatch::Health { service: w, .. }, Change::Check { node, .. }) => {
                instances_on(node, w)?
            }
            (
                CatalogWatch::ServiceChecks { .. } | CatalogWatch::ChecksInState { .. },
                Change::Check { node, check_id, .. },
            ) => vec![ItemKey::Check(node.clone(), check_id.clone())],
            (
                CatalogWatch::ServiceChecks { .. } | CatalogWatch::ChecksInState { .. },
                Change::Service { node, id, .. },
            ) => checks_of(node, id)?,
            (CatalogWatch::Sessions, Change::Session { id, .. }) => {
                vec![ItemKey::Session(id.clone())]
            }
            (CatalogWatch::Events { name }, Change::Event { ltime, name: n, .. })
                if name.as_ref().is_none_or(|w| w == n) =>
            {
                vec![ItemKey::Event(*ltime)]
            }
            _ => Vec::new(),
        })
    }
}

/// A catalog watch as the watch protocol runs it: what the client holds, as key → hash
/// of the item, so a re-read that finds nothing new sends nothing and memory stays at
/// one word per item.
pub(super) struct CatalogView {
    watch: CatalogWatch,
    hasher: RandomState,
    held: BTreeMap<ItemKey, u64>,
    /// True when `held` is everything the client holds (after a snapshot). After a resume
    /// the server does not know what the client holds, so a key that is absent now is
    /// reported removed even if this view never sent it.
    complete: bool,
}

impl CatalogView {
    pub(super) fn new(watch: CatalogWatch) -> Self {
        CatalogView {
            watch,
            hasher: RandomState::new(),
            held: BTreeMap::new(),
            complete: false,
        }
    }
}

impl View for CatalogView {
    type Item = CatalogItem;
    type Delta = CatalogDelta;
    const READS_ON_CHANGE: bool = true;

    fn target(&self) -> WatchTarget {
        self.watch.target()
    }

    fn snapshot(&mut self, state: &StateStore) -> Result<(u64, Vec<CatalogItem>), StoreError> {
        let view = state.view();
        let items = self.watch.read_all(&view)?;
        self.held = items
            .iter()
            .map(|i| (i.key(), self.hasher.hash_one(i)))
            .collect();
        self.complete = true;
        Ok((view.applied_index()?, items))
    }

    fn resumed(&mut self) {
        self.held.clear();
        self.complete = false;
    }

    fn item_size(item: &CatalogItem) -> usize {
        item.size()
    }

    fn delta(
        &mut self,
        state: &StateStore,
        event: &FeedEvent,
    ) -> Result<Option<CatalogDelta>, StoreError> {
        let view = state.view();
        let held = &self.held;
        let known_on = |node: &str| -> Vec<ItemKey> {
            held.keys()
                .filter(|k| matches!(k, ItemKey::Instance(n, _) if n == node))
                .cloned()
                .collect()
        };
        let mut keys = BTreeSet::new();
        for change in &event.changes {
            keys.extend(self.watch.affected(&view, change, &known_on)?);
        }
        let mut delta = CatalogDelta::default();
        for key in keys {
            match self.watch.read_one(&view, &key)? {
                Some(item) => {
                    let hash = self.hasher.hash_one(&item);
                    if self.held.insert(key, hash) != Some(hash) {
                        delta.upserted.push(item);
                    }
                }
                None => {
                    if self.held.remove(&key).is_some() || !self.complete {
                        delta.removed.push(key);
                    }
                }
            }
        }
        Ok((!delta.upserted.is_empty() || !delta.removed.is_empty()).then_some(delta))
    }
}
