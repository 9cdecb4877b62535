//! Outgoing side of the raft transport: one lazily connected gRPC channel per peer
//! address, shared by openraft's replication and by request forwarding.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tonic::transport::{Channel, Endpoint};

use super::types::{NodeId, NodeInfo, TypeConfig};
use super::wire;
use crate::pb_internal::raft_transport_client::RaftTransportClient;
use crate::pb_internal::RaftPayload;

/// Channels to peers by raft address. `Channel` reconnects by itself, so one per address
/// lives for the server's lifetime.
#[derive(Clone, Default)]
pub struct PeerChannels {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// The local address outgoing connections are made from: the `-bind` address when
    /// it is a specific one (as Consul's RPC source address), so a multi-homed server
    /// reaches its peers from the address they know it by, and firewalls (or the chaos
    /// test's partitioning proxy) can tell servers apart by source.
    source: Option<IpAddr>,
}

impl PeerChannels {
    pub fn new(bind: IpAddr) -> Self {
        PeerChannels {
            channels: Arc::default(),
            source: (!bind.is_unspecified()).then_some(bind),
        }
    }

    /// A client for `addr`; never dials here (openraft requires `new_client` not to block).
    pub fn client(&self, addr: &str) -> Result<RaftTransportClient<Channel>, tonic::Status> {
        let ch = self.channel(addr)?;
        Ok(RaftTransportClient::new(ch).max_decoding_message_size(usize::MAX))
    }

    /// The lazily connected channel to `addr`'s server port (every internal service on
    /// that port shares it).
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::Status> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = map.get(addr) {
            return Ok(ch.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| tonic::Status::invalid_argument(format!("bad peer address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .local_address(self.source)
            .tcp_nodelay(true);
        let ch = endpoint.connect_lazy();
        map.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }
}

/// openraft's factory: hands out a `PeerClient` per target.
#[derive(Clone)]
pub struct PeerNetwork {
    pub channels: PeerChannels,
    pub stats: Arc<super::RaftStats>,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> PeerClient {
        PeerClient {
            target,
            client: self.channels.client(&node.raft_addr),
            stats: self.stats.clone(),
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    /// An unparsable address is reported on every call as unreachable.
    client: Result<RaftTransportClient<Channel>, tonic::Status>,
    stats: Arc<super::RaftStats>,
}

type RpcResult<R, E = openraft::error::Infallible> =
    Result<R, RPCError<NodeId, NodeInfo, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        method: fn(
            RaftTransportClient<Channel>,
            tonic::Request<RaftPayload>,
        ) -> futures::future::BoxFuture<
            'static,
            Result<tonic::Response<RaftPayload>, tonic::Status>,
        >,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: serde::Serialize,
        Resp: serde::de::DeserializeOwned,
        E: serde::de::DeserializeOwned + std::error::Error,
    {
        let client = match &self.client {
            Ok(c) => c.clone(),
            Err(status) => return Err(RPCError::Unreachable(Unreachable::new(status))),
        };
        let mut request = tonic::Request::new(wire::encode(req));
        request.set_timeout(option.hard_ttl());
        let reply = method(client, request)
            .await
            .map_err(|status| RPCError::Unreachable(Unreachable::new(&status)))?;
        let result: Result<Resp, RaftError<NodeId, E>> =
            wire::decode(reply.get_ref()).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let started = std::time::Instant::now();
        let r = self
            .call(
                |mut c, r| Box::pin(async move { c.append_entries(r).await }),
                &rpc,
                &option,
            )
            .await;
        self.stats.timings.replicate.since(started);
        r
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(
            |mut c, r| Box::pin(async move { c.install_snapshot(r).await }),
            &rpc,
            &option,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        self.call(
            |mut c, r| Box::pin(async move { c.vote(r).await }),
            &rpc,
            &option,
        )
        .await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // Short enough that a restarted peer is picked up quickly, long enough not to spin.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
