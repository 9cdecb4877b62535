//! An agent's attachment to the control plane: what every agent, server or client, keeps
//! up for its own node. Three things travel on it:
//!
//! - **heartbeats** (`service::membership`): the agent is alive;
//! - **anti-entropy**: the agent's whole view of its node (node, services, checks) as a
//!   [`NodeState`]; [`Service::sync_node`] compares it with the catalog and writes only
//!   what differs;
//! - **the node's events**: [`Service::watch_node_events`] follows the event table and
//!   passes on only the events whose node filter matches the node, remote exec's
//!   `_rexec` jobs among them; the agent matches service and tag filters against its
//!   own services (Consul's `shouldProcessUserEvent`).
//!
//! A server's agent calls these on its own service layer. A client agent carries them on
//! one long-lived gRPC stream to a server (`AgentTransport.Attach`, [`serve`]): requests
//! go up with a sequence number and are answered in order, the server pushes its status
//! every second (the agent's check that its server is there) and the node's events as a
//! resumable watch. When the stream breaks, the agent attaches to another server and
//! resumes the events from the last index it holds (`service::remote`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::catalog_watch::CatalogWatch;
use super::event::node_matches;
use super::membership::{Heartbeat, SERF_HEALTH};
use super::{
    CatalogDelta, CatalogItem, CatalogWatchReceiver, Consistency, QueryOptions, Service,
    ServiceError, WatchMessage,
};
use super::{Metrics, ResponseMeta};
use crate::raft::ClusterStatus;
use crate::state::catalog::{Deregistration, HealthCheck, Node, Registration, ServiceInstance};

/// How often a server tells an attached agent its status.
pub const STATUS_EVERY: Duration = Duration::from_secs(1);
/// Messages buffered towards one attached agent.
const DOWN_BUFFER: usize = 64;
/// Requests an agent may have outstanding on one attachment before it waits.
const REQUESTS: usize = 16;
/// Messages buffered per node-events watch.
const EVENTS_BUFFER: usize = 16;

/// What the catalog should hold for one node, as its agent sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub node: Node,
    pub services: Vec<ServiceInstance>,
    pub checks: Vec<HealthCheck>,
}

/// What a server tells an attached agent every second: what the agent's front ends
/// answer without a round trip (response headers, `/v1/status/*`), and the servers it
/// can fail over to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReply {
    pub cluster: ClusterStatus,
    pub metrics: Metrics,
    pub datacenter: String,
    /// The answering server's response header fields (index 0).
    pub meta: ResponseMeta,
}

/// Agent to server.
#[derive(Debug, Serialize, Deserialize)]
pub enum Up {
    /// The first message: who is attached (it counts as a heartbeat).
    Hello(Heartbeat),
    /// Answered by `Down::Done` with the same `seq`, in order.
    Request { seq: u64, request: Request },
    /// Follow the node's events from `from` (0: the retained ones, then every new one);
    /// replaces an earlier follow on this stream.
    FollowEvents { from: u64 },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Heartbeat(Heartbeat),
    Sync(Box<NodeState>),
}

/// Server to agent.
#[derive(Debug, Serialize, Deserialize)]
pub enum Down {
    Status(Box<StatusReply>),
    Done {
        seq: u64,
        result: Result<(), ServiceError>,
    },
    Events(WatchMessage<CatalogItem, CatalogDelta>),
}

fn same_service(a: &ServiceInstance, b: &ServiceInstance) -> bool {
    let bare = |s: &ServiceInstance| ServiceInstance {
        create_index: 0,
        modify_index: 0,
        ..s.clone()
    };
    bare(a) == bare(b)
}

fn same_check(a: &HealthCheck, b: &HealthCheck) -> bool {
    let bare = |c: &HealthCheck| HealthCheck {
        create_index: 0,
        modify_index: 0,
        ..c.clone()
    };
    bare(a) == bare(b)
}

impl Service {
    /// Anti-entropy for one node: reads its catalog entry (local, stale is fine: the
    /// next round repairs a write this one missed) and writes only what differs from
    /// `want`. `serfHealth` is the leader's (`service::membership`) and never touched.
    pub async fn sync_node(&self, want: NodeState) -> Result<(), ServiceError> {
        let NodeState {
            node,
            services,
            checks,
        } = want;
        if node.name.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "a node state names its node".into(),
            ));
        }
        let services: BTreeMap<String, ServiceInstance> =
            services.into_iter().map(|s| (s.id.clone(), s)).collect();
        let checks: BTreeMap<String, HealthCheck> = checks
            .into_iter()
            .map(|c| (c.check_id.clone(), c))
            .collect();
        let opts = QueryOptions::with_consistency(Consistency::Stale);
        let (_, current) = self.catalog_node(&node.name, &opts).await?;
        let (_, current_checks) = self.health_node(&node.name, &opts).await?;
        let (current_node, current_services) = match current {
            Some((n, s)) => (Some(n), s),
            None => (None, Vec::new()),
        };
        let current_services: BTreeMap<String, ServiceInstance> = current_services
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let current_checks: BTreeMap<String, HealthCheck> = current_checks
            .into_iter()
            .map(|c| (c.check.check_id.clone(), c.check))
            .collect();

        let node_differs = current_node.as_ref().is_none_or(|c| {
            c.address != node.address
                || c.id != node.id
                || c.datacenter != node.datacenter
                || c.tagged_addresses != node.tagged_addresses
                || c.meta != node.meta
        });
        let registration =
            |service: Option<ServiceInstance>, checks: Vec<HealthCheck>, skip: bool| Registration {
                node: node.clone(),
                skip_node_update: skip,
                service,
                checks,
            };
        if node_differs {
            self.catalog_register(registration(None, Vec::new(), false))
                .await?;
        }
        // Services that differ, each with all of its checks.
        for (id, svc) in &services {
            if current_services
                .get(id)
                .is_some_and(|c| same_service(c, svc))
            {
                continue;
            }
            let own: Vec<HealthCheck> = checks
                .values()
                .filter(|c| &c.service_id == id)
                .cloned()
                .collect();
            self.catalog_register(registration(Some(svc.clone()), own, true))
                .await?;
        }
        // Checks that differ (status, output, definition).
        for (id, check) in &checks {
            if current_checks.get(id).is_some_and(|c| same_check(c, check)) {
                continue;
            }
            let svc = if check.service_id.is_empty() {
                None
            } else {
                let Some(svc) = services.get(&check.service_id) else {
                    return Err(ServiceError::InvalidArgument(format!(
                        "check {id} belongs to service {}, which the node state does not hold",
                        check.service_id
                    )));
                };
                if current_services
                    .get(&check.service_id)
                    .is_none_or(|c| !same_service(c, svc))
                {
                    continue; // written above together with its service
                }
                Some(svc.clone())
            };
            self.catalog_register(registration(svc, vec![check.clone()], true))
                .await?;
        }
        // What the catalog has for this node but the agent does not.
        for id in current_services
            .keys()
            .filter(|id| !services.contains_key(*id))
        {
            self.catalog_deregister(Deregistration {
                node: node.name.clone(),
                service_id: Some(id.clone()),
                check_id: None,
            })
            .await?;
        }
        for (id, c) in &current_checks {
            if checks.contains_key(id)
                || id == SERF_HEALTH
                || (!c.service_id.is_empty() && !services.contains_key(&c.service_id))
            {
                continue;
            }
            self.catalog_deregister(Deregistration {
                node: node.name.clone(),
                service_id: None,
                check_id: Some(id.clone()),
            })
            .await?;
        }
        Ok(())
    }

    /// The events that may be aimed at `node`, as a watch (the retained ones, then
    /// each new one), resumable from `start` like any catalog watch. Events whose node
    /// filter excludes the node are dropped here; service and tag filters are the
    /// agent's to match against its own services (`agent::events`), as Consul's agent
    /// does: the catalog may not have them yet when an event fires.
    pub fn watch_node_events(
        &self,
        node: &str,
        start: u64,
    ) -> Result<CatalogWatchReceiver, ServiceError> {
        if node.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "node events need a node".into(),
            ));
        }
        let mut events = self.watch_catalog(CatalogWatch::Events { name: None }, start)?;
        let (tx, rx) = mpsc::channel(EVENTS_BUFFER);
        let node = node.to_string();
        let for_node = move |items: Vec<CatalogItem>| -> Vec<CatalogItem> {
            items
                .into_iter()
                .filter(|i| matches!(i, CatalogItem::Event(e) if node_matches(e, &node)))
                .collect()
        };
        self.spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = tx.closed() => return,
                    m = events.recv() => match m {
                        Some(m) => m,
                        None => return,
                    },
                };
                let msg = match msg {
                    WatchMessage::Snapshot { index, items } => WatchMessage::Snapshot {
                        index,
                        items: for_node(items),
                    },
                    WatchMessage::Changes { index, delta } => WatchMessage::Changes {
                        index,
                        delta: CatalogDelta {
                            upserted: for_node(delta.upserted),
                            // Removing an event the agent never got is harmless.
                            removed: delta.removed,
                        },
                    },
                    other => other,
                };
                if tx.send(msg).await.is_err() {
                    return;
                }
            }
        });
        Ok(CatalogWatchReceiver::from_channel(rx))
    }

    fn status_reply(&self) -> StatusReply {
        StatusReply {
            cluster: self.cluster_status(),
            metrics: self.metrics(),
            datacenter: super::ControlPlane::datacenter(self).to_string(),
            meta: self.meta(0),
        }
    }
}

/// The server's half of one attachment: reads the agent's messages from `up` and
/// answers on the returned channel until either side goes away. The task is the
/// service's, joined at shutdown.
pub fn serve<S>(service: Arc<Service>, up: S) -> mpsc::Receiver<Result<Down, ServiceError>>
where
    S: Stream<Item = Result<Up, ServiceError>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(DOWN_BUFFER);
    let me = service.clone();
    service.spawn(async move {
        if let Err(e) = attachment(me, up, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

/// One attachment until it ends: `Ok` when either side went away, `Err` for a protocol
/// error the agent is told about.
async fn attachment<S>(
    me: Arc<Service>,
    mut up: S,
    tx: &mpsc::Sender<Result<Down, ServiceError>>,
) -> Result<(), ServiceError>
where
    S: Stream<Item = Result<Up, ServiceError>> + Send + Unpin + 'static,
{
    let hb = match up.next().await {
        Some(Ok(Up::Hello(hb))) => hb,
        Some(Ok(other)) => {
            return Err(ServiceError::InvalidArgument(format!(
                "an attachment starts with Hello, not {other:?}"
            )))
        }
        Some(Err(e)) => return Err(e),
        None => return Ok(()),
    };
    let span = tracing::info_span!("attachment", node = %hb.node);
    attached(me, hb, up, tx).instrument(span).await
}

async fn attached<S>(
    me: Arc<Service>,
    hb: Heartbeat,
    mut up: S,
    tx: &mpsc::Sender<Result<Down, ServiceError>>,
) -> Result<(), ServiceError>
where
    S: Stream<Item = Result<Up, ServiceError>> + Send + Unpin + 'static,
{
    let node = hb.node.clone();
    tracing::debug!("agent attached");
    if let Err(e) = me.heartbeat(hb).await {
        tracing::debug!(error = %e, "the attaching heartbeat");
    }
    let not_mine = |other: &str| {
        ServiceError::InvalidArgument(format!("this attachment is node {node}'s, not {other}'s"))
    };
    // Requests are answered in order by a worker of their own, so a slow one (a write
    // waiting for a new leader) holds up neither the status nor the events.
    let (requests, mut queued) = mpsc::channel::<(u64, Request)>(REQUESTS);
    let worker = async {
        while let Some((seq, request)) = queued.recv().await {
            let result = match request {
                Request::Heartbeat(hb) if hb.node != node => Err(not_mine(&hb.node)),
                Request::Heartbeat(hb) => me.heartbeat(hb).await,
                Request::Sync(s) if s.node.name != node => Err(not_mine(&s.node.name)),
                Request::Sync(s) => me.sync_node(*s).await,
            };
            if tx.send(Ok(Down::Done { seq, result })).await.is_err() {
                return;
            }
        }
    };
    let main = async {
        let mut events: Option<CatalogWatchReceiver> = None;
        let mut status = tokio::time::interval(STATUS_EVERY);
        loop {
            let next_event = async {
                match events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let down = tokio::select! {
                _ = tx.closed() => return Ok(()),
                _ = me.shutdown.cancelled() => return Ok(()),
                _ = status.tick() => Down::Status(Box::new(me.status_reply())),
                m = next_event => match m {
                    Some(m) => Down::Events(m),
                    // The event watch ended (the server is stopping): the agent attaches
                    // elsewhere.
                    None => return Ok(()),
                },
                m = up.next() => match m {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(Up::Hello(_))) => {
                        return Err(ServiceError::InvalidArgument(
                            "Hello sent twice on one attachment".into(),
                        ))
                    }
                    Some(Ok(Up::FollowEvents { from })) => {
                        events = Some(me.watch_node_events(&node, from)?);
                        continue;
                    }
                    Some(Ok(Up::Request { seq, request })) => {
                        if requests.send((seq, request)).await.is_err() {
                            return Ok(());
                        }
                        continue;
                    }
                },
            };
            if tx.send(Ok(down)).await.is_err() {
                return Ok(());
            }
        }
    };
    tokio::select! {
        r = main => r,
        () = worker => Ok(()),
    }
}
