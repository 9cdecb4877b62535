//! Consensus: openraft on RocksDB, the gRPC peer transport, bootstrap, and the two things
//! the service layer needs from raft — a write that lands on the leader wherever it is
//! submitted, and a linearizable read barrier.
//!
//! Only this module imports openraft. Writes submitted to a follower are forwarded to the
//! leader over the peer transport (openraft itself never forwards); during an election
//! they wait on raft metrics for a leader, with a deadline, instead of failing.

mod bootstrap;
pub mod log_store;
pub mod network;
mod proposer;
pub mod space;
pub mod state_machine;
pub mod timing;
mod transport;
pub mod types;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::RaftError;
use rocksdb::DB;
use tokio::sync::watch;

use self::log_store::LogStore;
use self::network::{PeerChannels, PeerNetwork};
use self::proposer::ProposeError;
use self::state_machine::StateMachine;
use self::transport::{TransportService, TryAsForwardToLeader};
use self::types::Raft;
pub use self::types::{NodeId, NodeInfo, RaftMetrics, TypeConfig};
use self::wire::{ForwardError, ForwardWriteReply, ReadIndexReply};
use crate::config::RaftTuning;
use crate::db::{cf, Db, CF_RAFT_META};
use crate::pb_internal::raft_transport_server::RaftTransportServer;
use crate::state::{ChangeFeed, Command, CommandResult, StateStore};

/// How long a write or read barrier may wait for a leader before giving up.
const LEADER_WAIT: Duration = Duration::from_secs(10);
const NODE_ID_KEY: &[u8] = b"node_id";
/// An AppendEntries carries at most `max_payload_entries` proposals of about 1 MiB each.
const MAX_PEER_MESSAGE: usize = 256 * 1024 * 1024;

/// What can go wrong getting something through consensus.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// No leader could be reached before the deadline (election, partition, no quorum).
    #[error("No cluster leader: {0}")]
    NoLeader(String),
    /// The request reached the leader but the answer was lost; it may or may not have been
    /// applied.
    #[error("leader unreachable while the write was in flight; its outcome is unknown: {0}")]
    OutcomeUnknown(String),
    /// The leader's disk is below its free-space reserve; the write was not proposed.
    #[error("{0}")]
    NoSpace(String),
    /// Raft stopped or storage failed.
    #[error("raft failure: {0}")]
    Fatal(String),
}

/// Whether this node is the raft leader, following raft's metrics channel (no polling).
pub struct LeaderWatch {
    id: NodeId,
    metrics: watch::Receiver<RaftMetrics>,
}

impl crate::service::leader::Leadership for LeaderWatch {
    fn leading_term(&self) -> Option<u64> {
        let m = self.metrics.borrow();
        (m.current_leader == Some(self.id) && m.state.is_leader()).then_some(m.current_term)
    }

    async fn changed(&mut self) -> bool {
        self.metrics.changed().await.is_ok()
    }
}

/// When this server last heard from a leader (milliseconds on a monotonic clock).
pub struct LastContact {
    start: Instant,
    last_ms: AtomicU64,
}

impl LastContact {
    fn new() -> Self {
        LastContact {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn since_ms(&self) -> u64 {
        (self.start.elapsed().as_millis() as u64)
            .saturating_sub(self.last_ms.load(Ordering::Relaxed))
    }
}

/// Counters that show how well writes are batched (see `rostractl bench`).
#[derive(Debug, Default)]
pub struct RaftStats {
    /// Client writes proposed on this server.
    pub writes: AtomicU64,
    /// Raft entries those writes were batched into.
    pub proposals: AtomicU64,
    /// Entries appended to this server's log (its own and replicated ones).
    pub log_entries: AtomicU64,
    /// WAL fsyncs that made appended entries durable.
    pub wal_fsyncs: AtomicU64,
    /// The highest log index this server knows is committed (`save_committed`).
    pub committed: AtomicU64,
    /// Where writes spend their time.
    pub timings: timing::WriteTimings,
}

/// One server's view of the cluster, for headers and the Status service.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ClusterStatus {
    pub id: NodeId,
    pub term: u64,
    pub leader: Option<(NodeId, NodeInfo)>,
    /// 0 on the leader.
    pub last_contact_ms: u64,
    /// (id, node, voter) for every member.
    pub servers: Vec<(NodeId, NodeInfo, bool)>,
    pub membership_index: u64,
    /// Where this server's log and state machine are (Consul's `Stats.raft`).
    pub progress: RaftProgress,
}

/// One server's log positions, as Consul's `/v1/agent/self` reports them under
/// `Stats.raft`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RaftProgress {
    /// `Leader`, `Follower`, `Candidate` or `Shutdown`, Consul's names (a non-voter is a
    /// follower there too).
    pub state: String,
    pub last_log_index: u64,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_snapshot_index: u64,
    pub last_snapshot_term: u64,
}

/// A running raft server.
pub struct RaftNode {
    pub id: NodeId,
    pub node: NodeInfo,
    raft: Raft,
    proposer: proposer::Proposer,
    /// Taken and joined by `shutdown`.
    proposer_task: Mutex<Option<proposer::ProposerTask>>,
    stats: Arc<RaftStats>,
    channels: PeerChannels,
    discovered: Arc<Mutex<BTreeMap<NodeId, NodeInfo>>>,
    last_contact: Arc<LastContact>,
    /// A handle on the state machine's tables, for snapshot files.
    tables: StateMachine,
}

/// Timings: short enough for a quick failover, long enough that a loaded 2-core CI
/// machine does not trigger spurious elections.
fn raft_config(tuning: RaftTuning) -> openraft::Config {
    let m = u64::from(tuning.multiplier.clamp(1, 10));
    openraft::Config {
        cluster_name: "rostra".into(),
        // At Consul's default multiplier (5): 100 ms heartbeats, 500-1000 ms elections.
        heartbeat_interval: 20 * m,
        election_timeout_min: 100 * m,
        election_timeout_max: 200 * m,
        install_snapshot_timeout: 5_000,
        // Proposals batch up to ~1 MiB of writes; keep one AppendEntries bounded.
        max_payload_entries: 64,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(tuning.snapshot_threshold),
        max_in_snapshot_log_to_keep: tuning.logs_to_keep,
        ..Default::default()
    }
}

/// This server's raft id: random on first start, then persisted.
fn load_or_create_node_id(db: &DB) -> Result<NodeId, rocksdb::Error> {
    let meta = cf(db, CF_RAFT_META);
    if let Some(bytes) = db.get_cf(meta, NODE_ID_KEY)? {
        if let Ok(arr) = <[u8; 8]>::try_from(bytes.as_slice()) {
            return Ok(u64::from_be_bytes(arr));
        }
    }
    // Zero is avoided so "no leader" can be reported as 0 on the wire.
    let id = rand::random::<u64>().max(1);
    let mut opts = rocksdb::WriteOptions::default();
    opts.set_sync(true);
    db.put_cf_opt(meta, NODE_ID_KEY, id.to_be_bytes(), &opts)?;
    Ok(id)
}

impl RaftNode {
    /// Opens raft over `db` (which also holds the state tables) and starts it. Does not
    /// bootstrap; see `bootstrap`.
    pub async fn start(
        db: Arc<Db>,
        state: Arc<StateStore>,
        feed: Arc<ChangeFeed>,
        node: NodeInfo,
        tuning: RaftTuning,
        bind: std::net::IpAddr,
        space: space::SpaceGuard,
    ) -> Result<Arc<Self>, ConsensusError> {
        let id = load_or_create_node_id(&db).map_err(|e| ConsensusError::Fatal(e.to_string()))?;
        let config = Arc::new(
            raft_config(tuning)
                .validate()
                .map_err(|e| ConsensusError::Fatal(e.to_string()))?,
        );
        let channels = PeerChannels::new(bind);
        let stats = Arc::new(RaftStats::default());
        let network = PeerNetwork {
            channels: channels.clone(),
            stats: stats.clone(),
        };
        let log_store = LogStore::new(db.clone(), stats.clone());
        let sm = StateMachine::new(state, feed, stats.clone());
        let tables = sm.clone();
        let raft = Raft::new(id, config, network, log_store, sm)
            .await
            .map_err(|e| ConsensusError::Fatal(e.to_string()))?;
        tracing::info!(id, node = %node, "raft started");
        let (proposer, proposer_task) =
            proposer::Proposer::start(raft.clone(), stats.clone(), space);
        Ok(Arc::new(RaftNode {
            id,
            node,
            proposer,
            proposer_task: Mutex::new(Some(proposer_task)),
            stats,
            raft,
            channels,
            discovered: Arc::default(),
            last_contact: Arc::new(LastContact::new()),
            tables,
        }))
    }

    /// Every state table as applied here, with the index and term of the last entry
    /// they reflect (one consistent view; for snapshot files).
    pub async fn dump_tables(
        &self,
    ) -> Result<(u64, u64, crate::state::store::TablesDump), ConsensusError> {
        let sm = self.tables.clone();
        let (last, _, dump) = tokio::task::spawn_blocking(move || sm.consistent_dump())
            .await
            .map_err(|e| ConsensusError::Fatal(e.to_string()))?
            .map_err(|e| ConsensusError::Fatal(e.to_string()))?;
        let (index, term) = last.map_or((0, 0), |l| (l.index, l.leader_id.term));
        Ok((index, term, dump))
    }

    /// The internal gRPC service peers call; serve it on the server (raft) port.
    pub fn transport_service(&self) -> RaftTransportServer<TransportService> {
        RaftTransportServer::new(TransportService {
            raft: self.raft.clone(),
            proposer: self.proposer.clone(),
            id: self.id,
            node: self.node.clone(),
            discovered: self.discovered.clone(),
            last_contact: self.last_contact.clone(),
            channels: self.channels.clone(),
            stats: self.stats.clone(),
        })
        .max_decoding_message_size(MAX_PEER_MESSAGE)
    }

    pub fn stats(&self) -> &RaftStats {
        &self.stats
    }

    /// Raft metrics, for waiting on conditions (leader known, index applied).
    pub fn metrics(&self) -> watch::Receiver<RaftMetrics> {
        self.raft.metrics()
    }

    /// The cheap subset of `status` every response header needs:
    /// (term, leader known, milliseconds since leader contact).
    pub fn header_view(&self) -> (u64, bool, u64) {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        let last_contact = if m.current_leader == Some(self.id) {
            0
        } else {
            self.last_contact.since_ms()
        };
        (m.current_term, m.current_leader.is_some(), last_contact)
    }

    /// The channel to another server's server port (shared with raft's own traffic).
    pub fn peer_channel(&self, addr: &str) -> Result<tonic::transport::Channel, tonic::Status> {
        self.channels.channel(addr)
    }

    /// Removes server `id` from the raft configuration (through the leader).
    pub async fn remove_server(&self, id: NodeId) -> Result<(), ConsensusError> {
        let mut client = self
            .channels
            .client(&self.node.raft_addr)
            .map_err(|e| ConsensusError::Fatal(e.message().to_string()))?;
        let reply = client
            .remove_server(wire::encode(&id))
            .await
            .map_err(|e| ConsensusError::Fatal(e.message().to_string()))?;
        let reply: wire::AddServerReply = wire::decode(reply.get_ref())
            .map_err(|e| ConsensusError::Fatal(e.message().to_string()))?;
        reply.map_err(ConsensusError::Fatal)
    }

    /// Whether this server is the leader right now.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics();
        let m = m.borrow();
        m.current_leader == Some(self.id) && m.state.is_leader()
    }

    pub fn status(&self) -> ClusterStatus {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        let membership = m.membership_config.membership();
        let leader = m.current_leader.map(|id| {
            let info = membership.get_node(&id).cloned().unwrap_or_default();
            (id, info)
        });
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let servers = membership
            .nodes()
            .map(|(id, info)| (*id, info.clone(), voters.contains(id)))
            .collect();
        ClusterStatus {
            id: self.id,
            term: m.current_term,
            last_contact_ms: if m.current_leader == Some(self.id) {
                0
            } else {
                self.last_contact.since_ms()
            },
            leader,
            servers,
            membership_index: (*m.membership_config.log_id())
                .map(|l| l.index)
                .unwrap_or(0),
            progress: RaftProgress {
                state: match m.state {
                    openraft::ServerState::Leader => "Leader",
                    openraft::ServerState::Candidate => "Candidate",
                    openraft::ServerState::Shutdown => "Shutdown",
                    openraft::ServerState::Follower | openraft::ServerState::Learner => "Follower",
                }
                .into(),
                last_log_index: m.last_log_index.unwrap_or(0),
                // Committed is at least applied, whichever this server heard of last.
                commit_index: self
                    .stats
                    .committed
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .max(m.last_applied.map_or(0, |l| l.index)),
                applied_index: m.last_applied.map_or(0, |l| l.index),
                last_snapshot_index: m.snapshot.map_or(0, |l| l.index),
                last_snapshot_term: m.snapshot.map_or(0, |l| l.leader_id.term),
            },
        }
    }

    /// Proposes `command` through whichever server is leader and returns its log index and
    /// result once applied (on the leader).
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn write(&self, command: Command) -> Result<(u64, CommandResult), ConsensusError> {
        let started = std::time::Instant::now();
        let written = self.write_via_leader(command).await;
        self.stats.timings.write.since(started);
        written
    }

    async fn write_via_leader(
        &self,
        command: Command,
    ) -> Result<(u64, CommandResult), ConsensusError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let (leader_id, leader_node) = match self.proposer.propose(command.clone()).await {
                Ok(done) => return Ok(done),
                Err(ProposeError::ForwardToLeader {
                    leader_id,
                    leader_node,
                }) => (leader_id, leader_node),
                Err(ProposeError::NoSpace(e)) => return Err(ConsensusError::NoSpace(e)),
                Err(ProposeError::TimedOut) => {
                    return Err(ConsensusError::OutcomeUnknown(format!(
                        "not committed within {:?}",
                        proposer::COMMIT_WAIT
                    )))
                }
                Err(ProposeError::Fatal(e)) => return Err(ConsensusError::Fatal(e)),
            };
            let leader = match (leader_id, leader_node) {
                (Some(id), Some(node)) if id != self.id => (id, node),
                _ => {
                    self.wait_for_leader_other_than(None, deadline).await?;
                    continue;
                }
            };
            let reply: Result<ForwardWriteReply, tonic::Status> = self
                .call_leader(&leader.1, &command, |mut c, r| {
                    Box::pin(async move { c.forward_write(r).await })
                })
                .await;
            match reply {
                Ok(Ok(done)) => return Ok(done),
                Ok(Err(ForwardError::NotLeader { .. })) => {
                    self.wait_for_leader_other_than(Some(leader.0), deadline)
                        .await?;
                }
                Ok(Err(ForwardError::Failed(msg))) => return Err(ConsensusError::Fatal(msg)),
                Ok(Err(ForwardError::NoSpace(msg))) => return Err(ConsensusError::NoSpace(msg)),
                Err(status) if never_sent(&status) => {
                    self.wait_for_leader_other_than(Some(leader.0), deadline)
                        .await?;
                }
                Err(status) => {
                    return Err(ConsensusError::OutcomeUnknown(status.message().to_string()))
                }
            }
        }
    }

    /// Waits until this server's state reflects every write committed before the call
    /// (read-index: the leader confirms leadership with a quorum, then this server applies
    /// up to the leader's commit index). Returns that index.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn read_barrier(&self) -> Result<u64, ConsensusError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            let target = match leader {
                Some(id) if id == self.id => match self.raft.ensure_linearizable().await {
                    Ok(read) => return Ok(read.map(|l| l.index).unwrap_or(0)),
                    Err(RaftError::APIError(e)) if e.forward_leader().is_some() => {
                        self.wait_for_leader_other_than(Some(self.id), deadline)
                            .await?;
                        continue;
                    }
                    Err(e) => return Err(ConsensusError::NoLeader(e.to_string())),
                },
                Some(id) => id,
                None => {
                    self.wait_for_leader_other_than(None, deadline).await?;
                    continue;
                }
            };
            let Some(node) = self.member(target) else {
                self.wait_for_leader_other_than(Some(target), deadline)
                    .await?;
                continue;
            };
            let reply: Result<ReadIndexReply, tonic::Status> = self
                .call_leader(&node, &(), |mut c, r| {
                    Box::pin(async move { c.read_index(r).await })
                })
                .await;
            match reply {
                Ok(Ok(index)) => {
                    let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.raft
                        .wait(Some(remaining))
                        .applied_index_at_least(Some(index), "read barrier")
                        .await
                        .map_err(|e| {
                            ConsensusError::NoLeader(format!("catching up to the leader: {e}"))
                        })?;
                    return Ok(index);
                }
                Ok(Err(ForwardError::NotLeader { .. })) | Err(_) => {
                    // Reads are idempotent: retry on any failure until the deadline.
                    self.wait_for_leader_other_than(Some(target), deadline)
                        .await?;
                }
                Ok(Err(ForwardError::Failed(msg) | ForwardError::NoSpace(msg))) => {
                    return Err(ConsensusError::NoLeader(msg))
                }
            }
        }
    }

    fn member(&self, id: NodeId) -> Option<NodeInfo> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .cloned()
    }

    async fn call_leader<Req: serde::Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        leader: &NodeInfo,
        req: &Req,
        method: fn(
            crate::pb_internal::raft_transport_client::RaftTransportClient<
                tonic::transport::Channel,
            >,
            tonic::Request<crate::pb_internal::RaftPayload>,
        ) -> futures::future::BoxFuture<
            'static,
            Result<tonic::Response<crate::pb_internal::RaftPayload>, tonic::Status>,
        >,
    ) -> Result<Resp, tonic::Status> {
        let client = self.channels.client(&leader.raft_addr)?;
        let mut request = tonic::Request::new(wire::encode(req));
        request.set_timeout(LEADER_WAIT);
        let reply = method(client, request).await?;
        wire::decode(reply.get_ref())
    }

    /// Waits (on raft metrics, no polling) until a leader other than `not` is known.
    /// After the deadline, even `not` is accepted once more, so a leader that was briefly
    /// unreachable is retried rather than abandoned early.
    async fn wait_for_leader_other_than(
        &self,
        not: Option<NodeId>,
        deadline: tokio::time::Instant,
    ) -> Result<NodeId, ConsensusError> {
        let mut rx = self.raft.metrics();
        // A short grace lets a stale leader be retried (it may just have been restarting)
        // without spinning.
        let grace = tokio::time::Instant::now() + Duration::from_millis(300);
        loop {
            let now = tokio::time::Instant::now();
            {
                let m = rx.borrow_and_update();
                if let Some(l) = m.current_leader {
                    if Some(l) != not || now >= grace {
                        return Ok(l);
                    }
                }
            }
            if now >= deadline {
                return Err(ConsensusError::NoLeader(
                    "no leader elected before the deadline".into(),
                ));
            }
            let wake = if not.is_some() {
                grace.min(deadline)
            } else {
                deadline
            };
            let wake = if wake <= now { deadline } else { wake };
            match tokio::time::timeout_at(wake, rx.changed()).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(_)) => return Err(ConsensusError::Fatal("raft stopped".into())),
            }
        }
    }

    /// Starts the cluster if it is not yet initialized; see `bootstrap.rs`.
    pub async fn bootstrap(
        self: Arc<Self>,
        expect: usize,
        join: Vec<String>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), ConsensusError> {
        bootstrap::run(&self, expect, join, shutdown).await
    }

    /// Stops raft, then the proposer (whose in-flight writes raft has just answered).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        let task = self
            .proposer_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            task.stop().await;
        }
    }

    /// Follows this node's leadership: starts where it is now, then reports each change.
    pub fn leadership(&self) -> LeaderWatch {
        LeaderWatch {
            id: self.id,
            metrics: self.raft.metrics(),
        }
    }
}

/// True when a transport error proves the request never reached the peer (connection
/// refused or not established), so resending cannot apply it twice.
fn never_sent(status: &tonic::Status) -> bool {
    use std::error::Error;
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source = status.source();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::NotConnected
                    | std::io::ErrorKind::AddrNotAvailable
            );
        }
        if err.to_string().contains("tcp connect error") {
            return true;
        }
        source = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consul's `performance.raft_multiplier`: 5 (its default) gives Rostra's own timings,
    /// 1 the fastest, and the timeouts scale in step.
    #[test]
    fn raft_timing_scales_with_the_multiplier() {
        let at = |multiplier| {
            let c = raft_config(RaftTuning {
                multiplier,
                ..RaftTuning::default()
            });
            (
                c.heartbeat_interval,
                c.election_timeout_min,
                c.election_timeout_max,
            )
        };
        assert_eq!(at(5), (100, 500, 1000));
        assert_eq!(at(1), (20, 100, 200));
        assert_eq!(at(10), (200, 1000, 2000));
        assert_eq!(at(0), at(1), "out-of-range values are clamped");
    }
}
