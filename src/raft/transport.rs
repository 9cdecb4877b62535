//! Incoming side of the raft transport: the internal `RaftTransport` gRPC service that
//! peers call. Cluster members only; it is served on the server (raft) port, never on the
//! public API port.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use openraft::error::{ClientWriteError, RaftError};
use tonic::{Request, Response, Status};

use super::types::{NodeId, NodeInfo, Raft};
use super::wire::{self, ForwardError, ForwardWriteReply, PeerIntro, ReadIndexReply};
use super::LastContact;
use crate::pb_internal::raft_transport_server::RaftTransport;
use crate::pb_internal::RaftPayload;
use crate::state::Command;

pub struct TransportService {
    pub(super) raft: Raft,
    pub(super) proposer: super::proposer::Proposer,
    pub(super) id: NodeId,
    pub(super) node: NodeInfo,
    /// Servers that introduced themselves (bootstrap discovery works in both directions).
    pub(super) discovered: Arc<Mutex<BTreeMap<NodeId, NodeInfo>>>,
    pub(super) last_contact: Arc<LastContact>,
    pub(super) channels: super::network::PeerChannels,
    pub(super) stats: Arc<super::RaftStats>,
}

impl TransportService {
    /// The leader this server knows of, with its address.
    fn leader(&self) -> Option<(NodeId, NodeInfo)> {
        let m = self.raft.metrics();
        let m = m.borrow();
        let l = m.current_leader?;
        let node = m.membership_config.membership().get_node(&l).cloned()?;
        Some((l, node))
    }
}

/// Maps "this server is not the leader" to a retryable answer.
fn not_leader<E>(err: &RaftError<NodeId, E>) -> Option<ForwardError>
where
    E: TryAsForwardToLeader,
{
    match err {
        RaftError::APIError(e) => e
            .forward_leader()
            .map(|leader| ForwardError::NotLeader { leader }),
        RaftError::Fatal(_) => None,
    }
}

/// The API errors that can say "go to the leader".
pub trait TryAsForwardToLeader {
    fn forward_leader(&self) -> Option<Option<NodeId>>;
}

impl TryAsForwardToLeader for ClientWriteError<NodeId, NodeInfo> {
    fn forward_leader(&self) -> Option<Option<NodeId>> {
        match self {
            ClientWriteError::ForwardToLeader(f) => Some(f.leader_id),
            ClientWriteError::ChangeMembershipError(_) => None,
        }
    }
}

impl TryAsForwardToLeader for openraft::error::CheckIsLeaderError<NodeId, NodeInfo> {
    fn forward_leader(&self) -> Option<Option<NodeId>> {
        match self {
            openraft::error::CheckIsLeaderError::ForwardToLeader(f) => Some(f.leader_id),
            openraft::error::CheckIsLeaderError::QuorumNotEnough(_) => None,
        }
    }
}

#[tonic::async_trait]
impl RaftTransport for TransportService {
    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let started = std::time::Instant::now();
        let req = wire::decode(request.get_ref())?;
        let res = self.raft.append_entries(req).await;
        if res.is_ok() {
            self.last_contact.touch();
        }
        let reply = Response::new(wire::encode(&res));
        self.stats.timings.follow.since(started);
        Ok(reply)
    }

    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let req = wire::decode(request.get_ref())?;
        Ok(Response::new(wire::encode(&self.raft.vote(req).await)))
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let req = wire::decode(request.get_ref())?;
        let res = self.raft.install_snapshot(req).await;
        if res.is_ok() {
            self.last_contact.touch();
        }
        Ok(Response::new(wire::encode(&res)))
    }

    async fn forward_write(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let command: Command = wire::decode(request.get_ref())?;
        let reply: ForwardWriteReply = match self.proposer.propose(command).await {
            Ok(done) => Ok(done),
            Err(super::proposer::ProposeError::ForwardToLeader { leader_id, .. }) => {
                Err(ForwardError::NotLeader { leader: leader_id })
            }
            Err(super::proposer::ProposeError::NoSpace(e)) => Err(ForwardError::NoSpace(e)),
            Err(super::proposer::ProposeError::TimedOut) => Err(ForwardError::Failed(format!(
                "not committed within {:?}; its outcome is unknown",
                super::proposer::COMMIT_WAIT
            ))),
            Err(super::proposer::ProposeError::Fatal(e)) => Err(ForwardError::Failed(e)),
        };
        Ok(Response::new(wire::encode(&reply)))
    }

    async fn read_index(
        &self,
        _request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let reply: ReadIndexReply = match self.raft.get_read_log_id().await {
            Ok((read, _applied)) => Ok(read.map(|id| id.index).unwrap_or(0)),
            Err(e) => Err(not_leader(&e).unwrap_or_else(|| ForwardError::Failed(e.to_string()))),
        };
        Ok(Response::new(wire::encode(&reply)))
    }

    async fn add_server(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let (id, node): wire::AddServerRequest = wire::decode(request.get_ref())?;
        let leader = self.leader();
        let reply: wire::AddServerReply = match leader {
            None => Err("No cluster leader".into()),
            Some((l, _)) if l == self.id => {
                tracing::info!(id, node = %node, "adding a server: learner first");
                match self.raft.add_learner(id, node.clone(), true).await {
                    Err(e) => Err(e.to_string()),
                    Ok(_) => {
                        let voters = std::collections::BTreeSet::from([id]);
                        match self
                            .raft
                            .change_membership(openraft::ChangeMembers::AddVoterIds(voters), false)
                            .await
                        {
                            Ok(_) => {
                                tracing::info!(id, node = %node, "server caught up: now a voter");
                                Ok(())
                            }
                            Err(e) => Err(e.to_string()),
                        }
                    }
                }
            }
            Some((_, leader)) => {
                let mut client = self.channels.client(&leader.raft_addr)?;
                let reply = client.add_server(wire::encode(&(id, node))).await?;
                wire::decode(reply.get_ref())?
            }
        };
        Ok(Response::new(wire::encode(&reply)))
    }

    async fn remove_server(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let id: NodeId = wire::decode(request.get_ref())?;
        let leader = self.leader();
        let reply: wire::AddServerReply = match leader {
            None => Err("No cluster leader".into()),
            Some((l, _)) if l == self.id => {
                tracing::info!(id, "removing a server from the raft configuration");
                let ids = std::collections::BTreeSet::from([id]);
                let voter = self
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == id);
                // One change either way: a voter leaves with `retain` false (not kept
                // as a learner), a learner is removed as a node. Never two: when the
                // leader removes itself, it is no longer leader for a second change
                // (openraft 0.9 asserts on that).
                let change = if voter {
                    openraft::ChangeMembers::RemoveVoters(ids)
                } else {
                    openraft::ChangeMembers::RemoveNodes(ids)
                };
                self.raft
                    .change_membership(change, false)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Some((_, leader)) => {
                let mut client = self.channels.client(&leader.raft_addr)?;
                let reply = client.remove_server(wire::encode(&id)).await?;
                wire::decode(reply.get_ref())?
            }
        };
        Ok(Response::new(wire::encode(&reply)))
    }

    async fn describe(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let caller: PeerIntro = wire::decode(request.get_ref())?;
        let peers = {
            let mut discovered = self.discovered.lock().unwrap_or_else(|p| p.into_inner());
            if caller.id != self.id {
                discovered.insert(caller.id, caller.node);
            }
            discovered.iter().map(|(id, n)| (*id, n.clone())).collect()
        };
        let initialized = self
            .raft
            .is_initialized()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Response::new(wire::encode(&PeerIntro {
            id: self.id,
            node: self.node.clone(),
            initialized,
            peers,
        })))
    }
}
