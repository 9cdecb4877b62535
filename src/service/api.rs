//! The API seam. The HTTP shim, the gRPC services, DNS and the agent reach the control
//! plane only through [`ControlPlane`]: reads (with Consul's blocking semantics), writes,
//! watch subscriptions and a few facts about the server. A server implements it locally
//! ([`Service`]). It is the one place an agent without raft or tables plugs in (a client
//! agent forwarding to a server over gRPC), with every front end unchanged on top of it.
//!
//! Rules live behind the seam, not in front of it: validation, defaults and limits are
//! decided by the implementation, so two front ends can never disagree about them.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::attach::NodeState;
use super::catalog::{CheckView, ServiceEntry};
use super::catalog_watch::CatalogWatch;
use super::event::FireArgs;
use super::kv::PutArgs;
use super::membership::{Heartbeat, Member};
use super::query::{QueryMeta, QueryOptions};
use super::session::{SessionArgs, SessionFilter};
use super::txn::TxnReply;
use super::{
    CatalogWatchReceiver, Consistency, KvWatchReceiver, Limits, Metrics, ResponseMeta, Service,
    ServiceError,
};
use crate::raft::ClusterStatus;
use crate::state::catalog::{CheckStatus, Deregistration, Node, Registration, ServiceInstance};
use crate::state::event::Event;
use crate::state::session::Session;
use crate::state::txn::KvTxnOp;
use crate::state::{KvEntry, WatchTarget};

/// What front ends hold.
pub type Api = Arc<dyn ControlPlane>;

/// A task a front end hands over so that it is owned (and joined at shutdown).
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Everything a front end may ask of the control plane.
#[async_trait::async_trait]
pub trait ControlPlane: Send + Sync + 'static {
    // --- KV ---
    async fn kv_get(
        &self,
        key: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Option<KvEntry>), ServiceError>;
    async fn kv_list(
        &self,
        prefix: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<KvEntry>), ServiceError>;
    async fn kv_keys(
        &self,
        prefix: &str,
        separator: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<String>), ServiceError>;
    async fn kv_put(&self, args: PutArgs) -> Result<(ResponseMeta, bool), ServiceError>;
    async fn kv_delete(
        &self,
        key: &str,
        recurse: bool,
        cas: Option<u64>,
    ) -> Result<(ResponseMeta, bool), ServiceError>;
    async fn kv_txn(
        &self,
        ops: Vec<KvTxnOp>,
        consistency: Consistency,
    ) -> Result<TxnReply, ServiceError>;
    /// A KV watch stream (see `service::watch`).
    fn watch_kv(
        &self,
        target: WatchTarget,
        start_index: u64,
    ) -> Result<KvWatchReceiver, ServiceError>;

    // --- catalog and health ---
    async fn catalog_register(&self, reg: Registration) -> Result<u64, ServiceError>;
    async fn catalog_deregister(&self, d: Deregistration) -> Result<u64, ServiceError>;
    async fn catalog_nodes(
        &self,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<Node>), ServiceError>;
    async fn catalog_services(
        &self,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, BTreeMap<String, BTreeSet<String>>), ServiceError>;
    async fn catalog_service(
        &self,
        name: &str,
        tags: &[String],
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<(Node, ServiceInstance)>), ServiceError>;
    async fn catalog_node(
        &self,
        name: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Option<(Node, Vec<ServiceInstance>)>), ServiceError>;
    async fn health_node(
        &self,
        node: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError>;
    async fn health_checks(
        &self,
        service: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError>;
    async fn health_service(
        &self,
        service: &str,
        tags: &[String],
        passing_only: bool,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<ServiceEntry>), ServiceError>;
    async fn health_state(
        &self,
        state: Option<CheckStatus>,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError>;
    /// A catalog or health watch stream, on the same protocol as a KV watch.
    fn watch_catalog(
        &self,
        watch: CatalogWatch,
        start_index: u64,
    ) -> Result<CatalogWatchReceiver, ServiceError>;

    // --- sessions and locks ---
    async fn session_create(&self, args: SessionArgs) -> Result<(u64, String), ServiceError>;
    async fn session_destroy(&self, id: &str) -> Result<u64, ServiceError>;
    async fn session_renew(&self, id: &str) -> Result<(u64, Session), ServiceError>;
    async fn session_list(
        &self,
        filter: SessionFilter,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<Session>), ServiceError>;

    // --- user events ---
    async fn event_fire(&self, args: FireArgs) -> Result<(ResponseMeta, Event), ServiceError>;
    /// Consul's index is derived from the newest event's ID (see `service::event`).
    async fn event_list(
        &self,
        name: Option<String>,
        opts: &QueryOptions,
    ) -> Result<(u64, Vec<Event>), ServiceError>;

    // --- membership ---
    /// An agent is alive; the leader marks a node failed without these.
    async fn heartbeat(&self, hb: Heartbeat) -> Result<(), ServiceError>;
    /// Anti-entropy for an agent's own node (`service::attach`): writes only what
    /// differs from `state`.
    async fn sync_node(&self, state: NodeState) -> Result<(), ServiceError>;
    /// The events aimed at `node` (its filters decided by the server), as a watch.
    fn watch_node_events(
        &self,
        node: &str,
        start: u64,
    ) -> Result<CatalogWatchReceiver, ServiceError>;
    /// An agent leaves the cluster gracefully.
    async fn leave(&self, hb: Heartbeat) -> Result<(), ServiceError>;
    /// Every server and agent, with its status.
    async fn members(&self) -> Result<Vec<Member>, ServiceError>;
    /// Marks a member left (`prune`: deregisters it at once).
    async fn force_leave(&self, node: &str, prune: bool) -> Result<(), ServiceError>;
    /// The state as a snapshot file (`service::snapshot`).
    async fn snapshot_save(
        &self,
        consistency: Consistency,
    ) -> Result<(ResponseMeta, Vec<u8>), ServiceError>;
    /// Replaces the state with a snapshot file; returns the index it was taken at.
    async fn snapshot_restore(&self, file: Vec<u8>) -> Result<(ResponseMeta, u64), ServiceError>;
    /// Removes a server (by raft id or server-port address) from the raft configuration.
    async fn raft_remove_peer(
        &self,
        id: Option<u64>,
        address: Option<String>,
    ) -> Result<(), ServiceError>;

    // --- the server itself ---
    /// The response header for an answer reflecting `index`.
    fn meta(&self, index: u64) -> ResponseMeta;
    fn cluster_status(&self) -> ClusterStatus;
    /// The one datacenter this cluster serves.
    fn datacenter(&self) -> &str;
    fn metrics(&self) -> Metrics;
    fn limits(&self) -> &Limits;
    /// True once shutdown began (long-lived streams should end).
    fn is_shutting_down(&self) -> bool;
    /// Hands `task` to the control plane, which owns it and joins it at shutdown.
    fn spawn(&self, task: Task);
}

#[async_trait::async_trait]
impl ControlPlane for Service {
    async fn kv_get(
        &self,
        key: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Option<KvEntry>), ServiceError> {
        Service::kv_get(self, key, opts).await
    }
    async fn kv_list(
        &self,
        prefix: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<KvEntry>), ServiceError> {
        Service::kv_list(self, prefix, opts).await
    }
    async fn kv_keys(
        &self,
        prefix: &str,
        separator: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<String>), ServiceError> {
        Service::kv_keys(self, prefix, separator, opts).await
    }
    async fn kv_put(&self, args: PutArgs) -> Result<(ResponseMeta, bool), ServiceError> {
        Service::kv_put(self, args).await
    }
    async fn kv_delete(
        &self,
        key: &str,
        recurse: bool,
        cas: Option<u64>,
    ) -> Result<(ResponseMeta, bool), ServiceError> {
        Service::kv_delete(self, key, recurse, cas).await
    }
    async fn kv_txn(
        &self,
        ops: Vec<KvTxnOp>,
        consistency: Consistency,
    ) -> Result<TxnReply, ServiceError> {
        Service::kv_txn(self, ops, consistency).await
    }
    fn watch_kv(
        &self,
        target: WatchTarget,
        start_index: u64,
    ) -> Result<KvWatchReceiver, ServiceError> {
        Service::watch_kv(self, target, start_index)
    }
    async fn catalog_register(&self, reg: Registration) -> Result<u64, ServiceError> {
        Service::catalog_register(self, reg).await
    }
    async fn catalog_deregister(&self, d: Deregistration) -> Result<u64, ServiceError> {
        Service::catalog_deregister(self, d).await
    }
    async fn catalog_nodes(
        &self,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<Node>), ServiceError> {
        Service::catalog_nodes(self, opts).await
    }
    async fn catalog_services(
        &self,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, BTreeMap<String, BTreeSet<String>>), ServiceError> {
        Service::catalog_services(self, opts).await
    }
    async fn catalog_service(
        &self,
        name: &str,
        tags: &[String],
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<(Node, ServiceInstance)>), ServiceError> {
        Service::catalog_service(self, name, tags, opts).await
    }
    async fn catalog_node(
        &self,
        name: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Option<(Node, Vec<ServiceInstance>)>), ServiceError> {
        Service::catalog_node(self, name, opts).await
    }
    async fn health_node(
        &self,
        node: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError> {
        Service::health_node(self, node, opts).await
    }
    async fn health_checks(
        &self,
        service: &str,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError> {
        Service::health_checks(self, service, opts).await
    }
    async fn health_service(
        &self,
        service: &str,
        tags: &[String],
        passing_only: bool,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<ServiceEntry>), ServiceError> {
        Service::health_service(self, service, tags, passing_only, opts).await
    }
    async fn health_state(
        &self,
        state: Option<CheckStatus>,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<CheckView>), ServiceError> {
        Service::health_state(self, state, opts).await
    }
    fn watch_catalog(
        &self,
        watch: CatalogWatch,
        start_index: u64,
    ) -> Result<CatalogWatchReceiver, ServiceError> {
        Service::watch_catalog(self, watch, start_index)
    }
    async fn session_create(&self, args: SessionArgs) -> Result<(u64, String), ServiceError> {
        Service::session_create(self, args).await
    }
    async fn session_destroy(&self, id: &str) -> Result<u64, ServiceError> {
        Service::session_destroy(self, id).await
    }
    async fn session_renew(&self, id: &str) -> Result<(u64, Session), ServiceError> {
        Service::session_renew(self, id).await
    }
    async fn session_list(
        &self,
        filter: SessionFilter,
        opts: &QueryOptions,
    ) -> Result<(QueryMeta, Vec<Session>), ServiceError> {
        Service::session_list(self, filter, opts).await
    }
    async fn event_fire(&self, args: FireArgs) -> Result<(ResponseMeta, Event), ServiceError> {
        Service::event_fire(self, args).await
    }
    async fn event_list(
        &self,
        name: Option<String>,
        opts: &QueryOptions,
    ) -> Result<(u64, Vec<Event>), ServiceError> {
        Service::event_list(self, name, opts).await
    }
    async fn heartbeat(&self, hb: Heartbeat) -> Result<(), ServiceError> {
        Service::heartbeat(self, hb).await
    }
    async fn sync_node(&self, state: NodeState) -> Result<(), ServiceError> {
        Service::sync_node(self, state).await
    }
    fn watch_node_events(
        &self,
        node: &str,
        start: u64,
    ) -> Result<CatalogWatchReceiver, ServiceError> {
        Service::watch_node_events(self, node, start)
    }
    async fn leave(&self, hb: Heartbeat) -> Result<(), ServiceError> {
        Service::leave(self, hb).await
    }
    async fn members(&self) -> Result<Vec<Member>, ServiceError> {
        Service::members(self).await
    }
    async fn raft_remove_peer(
        &self,
        id: Option<u64>,
        address: Option<String>,
    ) -> Result<(), ServiceError> {
        Service::raft_remove_peer(self, id, address).await
    }
    async fn snapshot_save(
        &self,
        consistency: Consistency,
    ) -> Result<(ResponseMeta, Vec<u8>), ServiceError> {
        Service::snapshot_save(self, consistency).await
    }
    async fn snapshot_restore(&self, file: Vec<u8>) -> Result<(ResponseMeta, u64), ServiceError> {
        Service::snapshot_restore(self, file).await
    }
    async fn force_leave(&self, node: &str, prune: bool) -> Result<(), ServiceError> {
        Service::force_leave(self, node, prune).await
    }
    fn meta(&self, index: u64) -> ResponseMeta {
        Service::meta(self, index)
    }
    fn cluster_status(&self) -> ClusterStatus {
        Service::cluster_status(self)
    }
    fn datacenter(&self) -> &str {
        &self.datacenter
    }
    fn metrics(&self) -> Metrics {
        Service::metrics(self)
    }
    fn limits(&self) -> &Limits {
        Service::limits(self)
    }
    fn is_shutting_down(&self) -> bool {
        Service::is_shutting_down(self)
    }
    fn spawn(&self, task: Task) {
        Service::spawn(self, task)
    }
}
