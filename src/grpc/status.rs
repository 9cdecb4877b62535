//! `rostra.v1.Status`: the cluster as this server sees it.

use tonic::{Request, Response, Status};

use super::convert;
use crate::pb;
use crate::pb::status_server::Status as StatusApi;
use crate::service::Api;

pub struct StatusService {
    pub service: Api,
    /// The local agent, for `Leave`.
    pub agent: std::sync::Arc<crate::agent::Agent>,
}

#[tonic::async_trait]
impl StatusApi for StatusService {
    async fn leader(
        &self,
        _: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        let status = self.service.cluster_status();
        let (leader_id, node) = status.leader.unwrap_or_default();
        Ok(Response::new(pb::LeaderResponse {
            header: Some(convert::header(&self.service.meta(0))),
            address: node.raft_addr,
            leader_id,
            node_name: node.name,
            datacenter: self.service.datacenter().to_string(),
        }))
    }

    async fn members(
        &self,
        _: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        use crate::service::membership::MemberStatus as S;
        let members = self.service.members().await?;
        Ok(Response::new(pb::MembersResponse {
            header: Some(convert::header(&self.service.meta(0))),
            members: members
                .into_iter()
                .map(|m| pb::Member {
                    name: m.node.name,
                    address: m.node.address,
                    status: match m.status {
                        S::Alive => pb::MemberStatus::Alive,
                        S::Failed => pb::MemberStatus::Failed,
                        S::Left => pb::MemberStatus::Left,
                    } as i32,
                    server: m.server.is_some(),
                    datacenter: m.node.datacenter,
                    id: m.node.id,
                })
                .collect(),
        }))
    }

    async fn leave(
        &self,
        _: Request<pb::LeaveRequest>,
    ) -> Result<Response<pb::LeaveResponse>, Status> {
        self.agent.graceful_leave().await?;
        Ok(Response::new(pb::LeaveResponse {
            header: Some(convert::header(&self.service.meta(0))),
        }))
    }

    async fn force_leave(
        &self,
        request: Request<pb::ForceLeaveRequest>,
    ) -> Result<Response<pb::ForceLeaveResponse>, Status> {
        let r = request.into_inner();
        self.service.force_leave(&r.node, r.prune).await?;
        Ok(Response::new(pb::ForceLeaveResponse {
            header: Some(convert::header(&self.service.meta(0))),
        }))
    }

    async fn remove_peer(
        &self,
        request: Request<pb::RemovePeerRequest>,
    ) -> Result<Response<pb::RemovePeerResponse>, Status> {
        let r = request.into_inner();
        let id = (r.id != 0).then_some(r.id);
        let address = (!r.address.is_empty()).then_some(r.address);
        self.service.raft_remove_peer(id, address).await?;
        Ok(Response::new(pb::RemovePeerResponse {
            header: Some(convert::header(&self.service.meta(0))),
        }))
    }

    async fn peers(
        &self,
        _: Request<pb::PeersRequest>,
    ) -> Result<Response<pb::PeersResponse>, Status> {
        let status = self.service.cluster_status();
        Ok(Response::new(pb::PeersResponse {
            header: Some(convert::header(&self.service.meta(0))),
            addresses: status
                .servers
                .into_iter()
                .filter(|(_, _, voter)| *voter)
                .map(|(_, node, _)| node.raft_addr)
                .collect(),
        }))
    }

    async fn raft_configuration(
        &self,
        _: Request<pb::RaftConfigurationRequest>,
    ) -> Result<Response<pb::RaftConfigurationResponse>, Status> {
        let status = self.service.cluster_status();
        let leader = status.leader.as_ref().map(|(id, _)| *id);
        Ok(Response::new(pb::RaftConfigurationResponse {
            header: Some(convert::header(&self.service.meta(0))),
            index: status.membership_index,
            servers: status
                .servers
                .into_iter()
                .map(|(id, node, voter)| pb::RaftServer {
                    id,
                    node: node.name,
                    address: node.raft_addr,
                    grpc_address: node.grpc_addr,
                    leader: Some(id) == leader,
                    voter,
                })
                .collect(),
        }))
    }

    async fn metrics(
        &self,
        _: Request<pb::MetricsRequest>,
    ) -> Result<Response<pb::MetricsResponse>, Status> {
        let m = self.service.metrics();
        Ok(Response::new(pb::MetricsResponse {
            header: Some(convert::header(&self.service.meta(0))),
            writes: m.writes,
            proposals: m.proposals,
            log_entries: m.log_entries,
            wal_fsyncs: m.wal_fsyncs,
            watchers: m.watchers,
            query_wakeups: m.query_wakeups,
            stages: m
                .stages
                .into_iter()
                .map(|(name, count, total_ns)| pb::StageTiming {
                    name,
                    count,
                    total_ns,
                })
                .collect(),
        }))
    }
}
