//! openraft's type configuration for Rostra and short aliases bound to it.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::state::{Command, CommandResult};

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
    /// Rostra's raft types: log entries carry a `Command`, applying one yields a
    /// `CommandResult`.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
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
