//! Forming a cluster (Consul's `-bootstrap-expect N` with `-retry-join`): servers
//! introduce themselves to the addresses they were given, and also learn of everyone who
//! introduced themselves to them. Once a server knows N servers (itself included), the one
//! with the lowest raft id initializes raft with all of them; the rest are brought in by
//! its first heartbeat. A server whose raft is already initialized (a restart) skips all
//! of this.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::wire::{self, PeerIntro};
use super::{ConsensusError, NodeId, NodeInfo, RaftNode};

/// Pause between discovery rounds while peers are still starting.
const RETRY_INTERVAL: Duration = Duration::from_millis(500);

pub(super) async fn run(
    node: &RaftNode,
    expect: usize,
    join: Vec<String>,
    shutdown: CancellationToken,
) -> Result<(), ConsensusError> {
    let initialized = || async {
        node.raft
            .is_initialized()
            .await
            .map_err(|e| ConsensusError::Fatal(e.to_string()))
    };
    if initialized().await? {
        tracing::info!("raft state found on disk; rejoining the existing cluster");
        return Ok(());
    }
    if expect == 0 && join.is_empty() {
        tracing::info!(
            "no -bootstrap-expect and nothing to join; waiting to be added to a cluster"
        );
        return Ok(());
    }
    let me = PeerIntro {
        id: node.id,
        node: node.node.clone(),
        initialized: false,
        peers: Vec::new(),
    };
    let mut warned_existing = false;
    loop {
        if initialized().await? {
            tracing::info!("cluster formed by a peer");
            return Ok(());
        }
        let mut known: BTreeMap<NodeId, NodeInfo> = node
            .discovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        known.insert(node.id, node.node.clone());
        for addr in &join {
            if *addr == node.node.raft_addr {
                continue;
            }
            match describe(node, addr, &me).await {
                Ok(peer) => {
                    if peer.initialized {
                        // A running cluster: ask to be added (as a learner, then a voter
                        // once caught up); raft initializes this server when the leader
                        // first replicates to it.
                        if !warned_existing {
                            warned_existing = true;
                            tracing::info!(peer = %peer.node, "joining a running cluster");
                        }
                        match add_me(node, addr).await {
                            Ok(()) => {
                                tracing::info!("joined the running cluster");
                                return Ok(());
                            }
                            Err(e) => tracing::warn!(error = %e, "asking to join the cluster"),
                        }
                    }
                    known.insert(peer.id, peer.node);
                    let mut discovered = node.discovered.lock().unwrap_or_else(|p| p.into_inner());
                    for (id, info) in peer.peers {
                        if id != node.id {
                            known.insert(id, info.clone());
                            discovered.insert(id, info);
                        }
                    }
                }
                Err(status) => {
                    tracing::debug!(addr, error = %status.message(), "peer not reachable yet")
                }
            }
        }
        if expect > 0 && known.len() >= expect {
            let lowest = *known.keys().next().expect("known contains this server");
            if lowest == node.id {
                tracing::info!(servers = known.len(), "bootstrapping the cluster");
                match node.raft.initialize(known).await {
                    Ok(()) => return Ok(()),
                    // Someone initialized us meanwhile (a vote or heartbeat arrived).
                    Err(openraft::error::RaftError::APIError(
                        openraft::error::InitializeError::NotAllowed(_),
                    )) => return Ok(()),
                    Err(e) => return Err(ConsensusError::Fatal(e.to_string())),
                }
            }
        } else {
            tracing::info!(
                known = known.len(),
                expect,
                "waiting for servers to bootstrap"
            );
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(RETRY_INTERVAL) => {}
        }
    }
}

/// Asks the cluster `addr` belongs to to add this server; returns once it is a voter.
async fn add_me(node: &RaftNode, addr: &str) -> Result<(), String> {
    let mut client = node
        .channels
        .client(addr)
        .map_err(|e| e.message().to_string())?;
    // Catching up may take a while on a big state: the leader answers once it has.
    let mut request = tonic::Request::new(wire::encode(&(node.id, node.node.clone())));
    request.set_timeout(Duration::from_secs(600));
    let reply = client
        .add_server(request)
        .await
        .map_err(|e| e.message().to_string())?;
    let reply: wire::AddServerReply =
        wire::decode(reply.get_ref()).map_err(|e| e.message().to_string())?;
    reply
}

async fn describe(node: &RaftNode, addr: &str, me: &PeerIntro) -> Result<PeerIntro, tonic::Status> {
    let mut client = node.channels.client(addr)?;
    let mut request = tonic::Request::new(wire::encode(me));
    request.set_timeout(Duration::from_secs(2));
    let reply = client.describe(request).await?;
    wire::decode(reply.get_ref())
}
