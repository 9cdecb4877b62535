//! Cluster membership without gossip: every agent (server or client) sends a heartbeat
//! every second through the seam; the leader keeps, in memory, when it last heard from
//! each node, and owns each node's `serfHealth` check (Consul's leader does the same from
//! serf's view). A heartbeat from a node whose check is not passing registers the node
//! and marks it passing (alive); a node not heard from for `limits.member_failed_after`
//! is marked critical (failed), which drops its services from DNS and `?passing` and
//! invalidates its sessions, releasing their locks. An agent that leaves (SIGTERM on a
//! client agent) is marked left; failed and left nodes are deregistered after
//! `limits.reconnect_timeout`, Consul's name for that reap time.
//!
//! A new leader gives every node a full `member_failed_after` from its first moment (the
//! heartbeats went to the old leader until then), so a failover never fails a live node.
//! A follower that receives a heartbeat hands it to the leader.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Service, ServiceError};
use crate::state::catalog::{
    CheckSpec, CheckStatus, Deregistration, HealthCheck, Node, Registration,
};
use crate::state::Command;

/// The check the leader owns on every agent's node.
pub const SERF_HEALTH: &str = "serfHealth";
/// How often agents send heartbeats.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
pub const DEFAULT_FAILED_AFTER: Duration = Duration::from_secs(10);
/// Consul's `reconnect_timeout` default.
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(72 * 3600);

const ALIVE: &str = "Agent alive and reachable";
const FAILED: &str = "Agent not live or unreachable";
const LEFT: &str = "Agent left the cluster";

/// An agent saying it is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    pub id: String,
    pub address: String,
}

/// A member's state, from its `serfHealth` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberStatus {
    Alive,
    Failed,
    Left,
}

impl MemberStatus {
    /// Consul's serf status number (`/v1/agent/members`).
    pub fn serf_code(self) -> u8 {
        match self {
            MemberStatus::Alive => 1,
            MemberStatus::Left => 3,
            MemberStatus::Failed => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Alive => "alive",
            MemberStatus::Failed => "failed",
            MemberStatus::Left => "left",
        }
    }

    fn of(check: &HealthCheck) -> MemberStatus {
        match check.status {
            CheckStatus::Passing => MemberStatus::Alive,
            _ if check.output == LEFT => MemberStatus::Left,
            _ => MemberStatus::Failed,
        }
    }
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node: Node,
    pub status: MemberStatus,
    /// A raft server, with its server (raft) address.
    pub server: Option<String>,
}

/// What the leader heard, by node.
#[derive(Default)]
pub(crate) struct Liveness {
    heard: Mutex<HashMap<String, (Instant, Heartbeat)>>,
}

fn serf_health(node: &str, status: CheckStatus, output: &str) -> HealthCheck {
    HealthCheck {
        node: node.to_string(),
        check_id: SERF_HEALTH.into(),
        name: "Serf Health Status".into(),
        status,
        notes: String::new(),
        output: output.into(),
        service_id: String::new(),
        spec: CheckSpec::default(),
        create_index: 0,
        modify_index: 0,
    }
}

impl Service {
    /// Records `hb` on the leader (registering the node as alive if it is not), or hands
    /// it to the leader.
    pub async fn heartbeat(&self, hb: Heartbeat) -> Result<(), ServiceError> {
        if hb.node.is_empty() || hb.address.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "a heartbeat names its node and address".into(),
            ));
        }
        if !self.raft.is_leader() {
            return self
                .forward_to_leader(super::call::Call::Heartbeat(hb))
                .await;
        }
        let first = {
            let mut heard = lock(&self.liveness.heard);
            heard
                .insert(hb.node.clone(), (Instant::now(), hb.clone()))
                .is_none_or(|(_, before)| before != hb)
        };
        // The check is read only on a node's first heartbeat to this leader (or a
        // changed one); later ones cost a map update.
        if first {
            let node = hb.node.clone();
            let checks = self
                .blocking_read(move |s| s.view().catalog().node_checks(&node))
                .await?;
            let alive = checks
                .iter()
                .any(|c| c.check_id == SERF_HEALTH && c.status == CheckStatus::Passing);
            if !alive {
                tracing::info!(node = %hb.node, address = %hb.address, "member alive");
                self.mark(&hb, CheckStatus::Passing, ALIVE).await?;
            }
        }
        Ok(())
    }

    /// A graceful leave: the node is marked left and no longer expected.
    pub async fn leave(&self, hb: Heartbeat) -> Result<(), ServiceError> {
        if !self.raft.is_leader() {
            return self.forward_to_leader(super::call::Call::Leave(hb)).await;
        }
        lock(&self.liveness.heard).remove(&hb.node);
        tracing::info!(node = %hb.node, "member left");
        self.mark(&hb, CheckStatus::Critical, LEFT).await
    }

    async fn mark(
        &self,
        hb: &Heartbeat,
        status: CheckStatus,
        output: &str,
    ) -> Result<(), ServiceError> {
        let reg = Registration {
            node: Node {
                id: hb.id.clone(),
                name: hb.node.clone(),
                address: hb.address.clone(),
                ..Node::default()
            },
            // Creates the node if it is not registered yet; never overwrites what the
            // agent's anti-entropy wrote.
            skip_node_update: true,
            service: None,
            checks: vec![serf_health(&hb.node, status, output)],
        };
        self.catalog_register(reg).await.map(|_| ())
    }

    /// Every member: nodes with a `serfHealth` check, plus raft servers not registered
    /// yet (alive as far as raft knows).
    pub async fn members(&self) -> Result<Vec<Member>, ServiceError> {
        let (nodes, checks) = self
            .blocking_read(|s| {
                let v = s.view();
                Ok((v.catalog().nodes()?, v.catalog().checks()?))
            })
            .await?;
        let servers: HashMap<String, String> = self
            .cluster_status()
            .servers
            .into_iter()
            .map(|(_, n, _)| (n.name, n.raft_addr))
            .collect();
        let status: HashMap<&str, MemberStatus> = checks
            .iter()
            .filter(|c| c.check_id == SERF_HEALTH)
            .map(|c| (c.node.as_str(), MemberStatus::of(c)))
            .collect();
        let mut members: Vec<Member> = nodes
            .iter()
            .filter_map(|n| {
                Some(Member {
                    status: *status.get(n.name.as_str())?,
                    server: servers.get(&n.name).cloned(),
                    node: n.clone(),
                })
            })
            .collect();
        for (name, addr) in &servers {
            if !members.iter().any(|m| &m.node.name == name) {
                let ip = addr.rsplit_once(':').map_or(addr.as_str(), |(ip, _)| ip);
                members.push(Member {
                    node: Node {
                        name: name.clone(),
                        address: ip.to_string(),
                        datacenter: self.datacenter.clone(),
                        ..Node::default()
                    },
                    status: MemberStatus::Alive,
                    server: Some(addr.clone()),
                });
            }
        }
        members.sort_by(|a, b| a.node.name.cmp(&b.node.name));
        Ok(members)
    }

    /// Consul's `PUT /v1/agent/force-leave/<node>`: marks a (failed) member left, or
    /// with `prune` deregisters it at once. An agent still running comes back alive with
    /// its next heartbeat, as in Consul.
    pub async fn force_leave(&self, node: &str, prune: bool) -> Result<(), ServiceError> {
        let name = node.to_string();
        let found = self
            .blocking_read(move |s| {
                let v = s.view();
                Ok((v.catalog().node(&name)?, v.catalog().node_checks(&name)?))
            })
            .await?;
        let (Some(n), checks) = found else {
            return Err(ServiceError::NotFound(format!(
                "agent: No node found with name '{node}'"
            )));
        };
        if !checks.iter().any(|c| c.check_id == SERF_HEALTH) {
            return Err(ServiceError::NotFound(format!(
                "agent: No node found with name '{node}'"
            )));
        }
        lock(&self.liveness.heard).remove(node);
        if prune {
            let d = Deregistration {
                node: node.to_string(),
                service_id: None,
                check_id: None,
            };
            return self.catalog_deregister(d).await.map(|_| ());
        }
        let hb = Heartbeat {
            node: n.name,
            id: n.id,
            address: n.address,
        };
        self.mark(&hb, CheckStatus::Critical, LEFT).await
    }

    /// Consul's `DELETE /v1/operator/raft/peer`: removes the server with raft `id` or at
    /// (server-port) `address` from the raft configuration.
    pub async fn raft_remove_peer(
        &self,
        id: Option<u64>,
        address: Option<String>,
    ) -> Result<(), ServiceError> {
        let servers = self.cluster_status().servers;
        let found = match (&id, &address) {
            (Some(id), _) => servers.iter().find(|(i, _, _)| i == id),
            (None, Some(a)) => servers.iter().find(|(_, n, _)| &n.raft_addr == a),
            (None, None) => {
                return Err(ServiceError::InvalidArgument(
                    "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove".into(),
                ))
            }
        };
        let Some((id, _, _)) = found else {
            let what = match (id, address) {
                (Some(id), _) => format!("id {id:?}"),
                (_, a) => format!("address {:?}", a.unwrap_or_default()),
            };
            return Err(ServiceError::NotFound(format!(
                "{what} was not found in the Raft configuration"
            )));
        };
        Ok(self.raft.remove_server(*id).await?)
    }

    async fn forward_to_leader(&self, call: super::call::Call) -> Result<(), ServiceError> {
        let Some((_, leader)) = self.cluster_status().leader else {
            return Err(ServiceError::Unavailable("No cluster leader".into()));
        };
        let channel = self
            .raft
            .peer_channel(&leader.raft_addr)
            .map_err(|e| ServiceError::Internal(e.message().to_string()))?;
        let mut client =
            crate::pb_internal::agent_transport_client::AgentTransportClient::new(channel);
        let mut request = tonic::Request::new(crate::raft::wire::encode(&call));
        request.set_timeout(Duration::from_secs(5));
        let reply = client.call(request).await.map_err(|e| {
            ServiceError::Unavailable(format!("reaching the leader: {}", e.message()))
        })?;
        let answer: super::call::Answer = crate::raft::wire::decode(reply.get_ref())
            .map_err(|e| ServiceError::Internal(e.message().to_string()))?;
        answer.map(|_| ())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The failure detector, a leader duty: marks failed the alive nodes not heard from in
/// `member_failed_after`, and deregisters the nodes failed or left for longer than
/// `reconnect_timeout`.
pub async fn run_failure_detector(service: Arc<Service>, leading: CancellationToken) {
    let since = Instant::now();
    let failed_after = service.limits.member_failed_after;
    let reap_after = service.limits.reconnect_timeout;
    // Since when this leader has seen each node failed or left.
    let mut down_since: HashMap<String, Instant> = HashMap::new();
    let tick = (failed_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = leading.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
        let Ok(checks) = service.blocking_read(|s| s.view().catalog().checks()).await else {
            continue;
        };
        let now = Instant::now();
        for c in checks.iter().filter(|c| c.check_id == SERF_HEALTH) {
            let status = MemberStatus::of(c);
            if status != MemberStatus::Alive {
                let down = *down_since.entry(c.node.clone()).or_insert(now);
                if now.duration_since(down) >= reap_after {
                    tracing::info!(node = %c.node, status = status.as_str(), "reaping member");
                    let d = Deregistration {
                        node: c.node.clone(),
                        service_id: None,
                        check_id: None,
                    };
                    if let Err(e) = service.raft.write(Command::CatalogDeregister(d)).await {
                        tracing::warn!(error = %e, "reaping a member");
                    }
                }
                continue;
            }
            down_since.remove(&c.node);
            let last = lock(&service.liveness.heard)
                .get(&c.node)
                .map(|(at, hb)| (*at, hb.clone()));
            let heard = last.as_ref().map_or(since, |(at, _)| (*at).max(since));
            if now.duration_since(heard) < failed_after {
                continue;
            }
            tracing::warn!(node = %c.node, "member failed: no heartbeat for {failed_after:?}");
            let hb = last.map(|(_, hb)| hb).unwrap_or(Heartbeat {
                node: c.node.clone(),
                id: String::new(),
                address: String::new(),
            });
            lock(&service.liveness.heard).remove(&c.node);
            let reg = Registration {
                node: Node {
                    name: hb.node.clone(),
                    ..Node::default()
                },
                skip_node_update: true,
                service: None,
                checks: vec![serf_health(&hb.node, CheckStatus::Critical, FAILED)],
            };
            if let Err(e) = service.raft.write(Command::CatalogRegister(reg)).await {
                tracing::warn!(error = %e, "marking a member failed");
            }
        }
    }
}
