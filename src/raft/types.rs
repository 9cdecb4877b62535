//! openraft's type configuration for Rostra and short aliases bound to it.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::state::{Proposal, ProposalResult};

/// A server as recorded in the raft membership: enough for any member to reach it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Node name (Consul's `-node`).
    pub name: String,
    /// Server-to-server address: raft transport and forwarding.
    pub raft_addr: String,
    /// Public gRPC API address.
    pub grpc_addr: String,
}

impl std::fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.name, self.raft_addr)
    }
}

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// Rostra's raft types: a log entry carries a `Proposal` (one or more batched client
    /// writes); applying it yields one result per write.
    pub TypeConfig:
        D = Proposal,
        R = ProposalResult,
        NodeId = NodeId,
        Node = NodeInfo,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, NodeInfo>;
