//! The API seam as messages, so a client agent (no raft, no tables) can reach it through
//! a server: every [`ControlPlane`](super::ControlPlane) call is a [`Call`] answered by
//! a [`Reply`], every watch a [`WatchCall`] answered by a stream of [`WireWatch`]
//! messages. `grpc::agent_transport` carries them (postcard, on the server port);
//! `service::remote` is the client half. The server answers each with the very
//! `Service` method its own front ends use, so nothing is decided twice, and a blocking
//! read blocks on the server, up to the wait it carries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::catalog::{CheckView, ServiceEntry};
use super::catalog_watch::CatalogWatch;
use super::event::FireArgs;
use super::kv::PutArgs;
use super::query::{QueryMeta, QueryOptions};
use super::session::{SessionArgs, SessionFilter};
use super::txn::TxnReply;
use super::{
    CatalogDelta, CatalogItem, Consistency, ResponseMeta, Service, ServiceError, WatchMessage,
};
use crate::state::catalog::{CheckStatus, Deregistration, Node, Registration, ServiceInstance};
use crate::state::event::Event;
use crate::state::session::Session;
use crate::state::txn::KvTxnOp;
use crate::state::{Change, KvEntry, WatchTarget};

/// One call of the seam, with its arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Call {
    KvGet(String, QueryOptions),
    KvList(String, QueryOptions),
    KvKeys(String, String, QueryOptions),
    KvPut(PutArgs),
    KvDelete(String, bool, Option<u64>),
    KvTxn(Vec<KvTxnOp>, Consistency),
    CatalogRegister(Box<Registration>),
    CatalogDeregister(Deregistration),
    CatalogNodes(QueryOptions),
    CatalogServices(QueryOptions),
    CatalogService(String, Vec<String>, QueryOptions),
    CatalogNode(String, QueryOptions),
    HealthNode(String, QueryOptions),
    HealthChecks(String, QueryOptions),
    HealthService(String, Vec<String>, bool, QueryOptions),
    HealthState(Option<CheckStatus>, QueryOptions),
    SessionCreate(SessionArgs),
    SessionDestroy(String),
    SessionRenew(String),
    SessionList(SessionFilter, QueryOptions),
    EventFire(FireArgs),
    /// Events as the agent on `node` receives them (its filters, not the server's).
    EventList {
        name: Option<String>,
        node: String,
        opts: QueryOptions,
    },
    /// An agent is alive (handed to the leader).
    Heartbeat(super::membership::Heartbeat),
    /// An agent leaves the cluster.
    Leave(super::membership::Heartbeat),
    Members,
    RemovePeer(Option<u64>, Option<String>),
    ForceLeave(String, bool),
    SnapshotSave(Consistency),
    SnapshotRestore(Vec<u8>),
}

impl Call {
    /// Whether the call only reads (so it may be retried on another server).
    pub fn is_read(&self) -> bool {
        !matches!(
            self,
            Call::KvPut(_)
                | Call::KvDelete(..)
                | Call::KvTxn(..)
                | Call::CatalogRegister(_)
                | Call::CatalogDeregister(_)
                | Call::SessionCreate(_)
                | Call::SessionDestroy(_)
                | Call::SessionRenew(_)
                | Call::EventFire(_)
                | Call::Leave(_)
                | Call::RemovePeer(..)
                | Call::ForceLeave(..)
                | Call::SnapshotRestore(_)
        )
    }
}

/// What each call returns (the variant matches the call).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Reply {
    Pair(QueryMeta, Option<KvEntry>),
    Pairs(QueryMeta, Vec<KvEntry>),
    Keys(QueryMeta, Vec<String>),
    Written(ResponseMeta, bool),
    Txn(TxnReply),
    Index(u64),
    Nodes(QueryMeta, Vec<Node>),
    Services(QueryMeta, BTreeMap<String, BTreeSet<String>>),
    ServiceNodes(QueryMeta, Vec<(Node, ServiceInstance)>),
    NodeServices(QueryMeta, Option<(Node, Vec<ServiceInstance>)>),
    Checks(QueryMeta, Vec<CheckView>),
    Health(QueryMeta, Vec<ServiceEntry>),
    SessionCreated(u64, String),
    SessionRenewed(u64, Session),
    Sessions(QueryMeta, Vec<Session>),
    Fired(ResponseMeta, Event),
    Events(u64, Vec<Event>),
    Members(Vec<super::membership::Member>),
    Snapshot(ResponseMeta, Vec<u8>),
    Restored(ResponseMeta, u64),
    Done,
}

/// The envelope of every answer.
pub type Answer = Result<Reply, ServiceError>;

/// One watch of the seam.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WatchCall {
    Kv { target: WatchTarget, start: u64 },
    Catalog { watch: CatalogWatch, start: u64 },
}

impl WatchCall {
    /// Reopens from `start` (0: the whole state).
    pub fn set_start(&mut self, index: u64) {
        match self {
            WatchCall::Kv { start, .. } | WatchCall::Catalog { start, .. } => *start = index,
        }
    }
}

/// A watch message on the wire: a KV watch's changes travel by value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireWatch {
    Kv(WatchMessage<KvEntry, Vec<Change>>),
    Catalog(WatchMessage<CatalogItem, CatalogDelta>),
    /// The watch could not be opened (sent alone, then the stream ends).
    Refused(ServiceError),
}

/// Answers `call` on this server, with the same methods its own front ends call.
pub async fn dispatch(s: &Arc<Service>, call: Call) -> Answer {
    Ok(match call {
        Call::KvGet(k, o) => s.kv_get(&k, &o).await.map(|(m, e)| Reply::Pair(m, e))?,
        Call::KvList(k, o) => s.kv_list(&k, &o).await.map(|(m, e)| Reply::Pairs(m, e))?,
        Call::KvKeys(k, sep, o) => s
            .kv_keys(&k, &sep, &o)
            .await
            .map(|(m, e)| Reply::Keys(m, e))?,
        Call::KvPut(args) => s.kv_put(args).await.map(|(m, ok)| Reply::Written(m, ok))?,
        Call::KvDelete(k, recurse, cas) => s
            .kv_delete(&k, recurse, cas)
            .await
            .map(|(m, ok)| Reply::Written(m, ok))?,
        Call::KvTxn(ops, c) => Reply::Txn(s.kv_txn(ops, c).await?),
        Call::CatalogRegister(r) => Reply::Index(s.catalog_register(*r).await?),
        Call::CatalogDeregister(d) => Reply::Index(s.catalog_deregister(d).await?),
        Call::CatalogNodes(o) => s.catalog_nodes(&o).await.map(|(m, n)| Reply::Nodes(m, n))?,
        Call::CatalogServices(o) => s
            .catalog_services(&o)
            .await
            .map(|(m, v)| Reply::Services(m, v))?,
        Call::CatalogService(n, tags, o) => s
            .catalog_service(&n, &tags, &o)
            .await
            .map(|(m, v)| Reply::ServiceNodes(m, v))?,
        Call::CatalogNode(n, o) => s
            .catalog_node(&n, &o)
            .await
            .map(|(m, v)| Reply::NodeServices(m, v))?,
        Call::HealthNode(n, o) => s
            .health_node(&n, &o)
            .await
            .map(|(m, v)| Reply::Checks(m, v))?,
        Call::HealthChecks(n, o) => s
            .health_checks(&n, &o)
            .await
            .map(|(m, v)| Reply::Checks(m, v))?,
        Call::HealthService(n, tags, passing, o) => s
            .health_service(&n, &tags, passing, &o)
            .await
            .map(|(m, v)| Reply::Health(m, v))?,
        Call::HealthState(st, o) => s
            .health_state(st, &o)
            .await
            .map(|(m, v)| Reply::Checks(m, v))?,
        Call::SessionCreate(a) => s
            .session_create(a)
            .await
            .map(|(i, id)| Reply::SessionCreated(i, id))?,
        Call::SessionDestroy(id) => Reply::Index(s.session_destroy(&id).await?),
        Call::SessionRenew(id) => s
            .session_renew(&id)
            .await
            .map(|(i, v)| Reply::SessionRenewed(i, v))?,
        Call::SessionList(f, o) => s
            .session_list(f, &o)
            .await
            .map(|(m, v)| Reply::Sessions(m, v))?,
        Call::EventFire(a) => s.event_fire(a).await.map(|(m, e)| Reply::Fired(m, e))?,
        Call::EventList { name, node, opts } => s
            .event_list_for(name, node, &opts)
            .await
            .map(|(i, v)| Reply::Events(i, v))?,
        Call::Heartbeat(hb) => s.heartbeat(hb).await.map(|()| Reply::Done)?,
        Call::Leave(hb) => s.leave(hb).await.map(|()| Reply::Done)?,
        Call::Members => Reply::Members(s.members().await?),
        Call::RemovePeer(id, addr) => s.raft_remove_peer(id, addr).await.map(|()| Reply::Done)?,
        Call::ForceLeave(node, prune) => s.force_leave(&node, prune).await.map(|()| Reply::Done)?,
        Call::SnapshotSave(c) => s
            .snapshot_save(c)
            .await
            .map(|(m, f)| Reply::Snapshot(m, f))?,
        Call::SnapshotRestore(f) => s
            .snapshot_restore(f)
            .await
            .map(|(m, i)| Reply::Restored(m, i))?,
    })
}

/// Opens `call`'s watch on this server, its messages ready for the wire.
pub fn dispatch_watch(
    s: &Arc<Service>,
    call: WatchCall,
) -> Result<mpsc::Receiver<WireWatch>, ServiceError> {
    let (tx, rx) = mpsc::channel(16);
    match call {
        WatchCall::Kv { target, start } => {
            let mut watch = s.watch_kv(target, start)?;
            s.spawn(async move {
                while let Some(msg) = watch.recv().await {
                    let msg = match msg {
                        WatchMessage::Changes { index, delta } => WatchMessage::Changes {
                            index,
                            delta: delta.iter().map(|c| Change::clone(c)).collect(),
                        },
                        WatchMessage::Snapshot { index, items } => {
                            WatchMessage::Snapshot { index, items }
                        }
                        WatchMessage::Synced { index } => WatchMessage::Synced { index },
                        WatchMessage::Reset { index, reason } => {
                            WatchMessage::Reset { index, reason }
                        }
                    };
                    if tx.send(WireWatch::Kv(msg)).await.is_err() {
                        return;
                    }
                }
            });
        }
        WatchCall::Catalog { watch, start } => {
            let mut watch = s.watch_catalog(watch, start)?;
            s.spawn(async move {
                while let Some(msg) = watch.recv().await {
                    if tx.send(WireWatch::Catalog(msg)).await.is_err() {
                        return;
                    }
                }
            });
        }
    }
    Ok(rx)
}

/// The KV changes of a wire message, shared again as the seam's type.
pub fn shared(changes: Vec<Change>) -> Vec<Arc<Change>> {
    changes.into_iter().map(Arc::new).collect()
}
