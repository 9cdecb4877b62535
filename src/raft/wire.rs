//! Payloads of the internal `RaftTransport` service. openraft's own request/response
//! types travel as postcard bytes; these are the ones Rostra adds for forwarding and
//! discovery.

use serde::{Deserialize, Serialize};

use super::types::{NodeId, NodeInfo};
use crate::pb_internal::RaftPayload;
use crate::state::CommandResult;

/// Why the leader-side half of a forwarded request did not run it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardError {
    /// The callee is not (or no longer) the leader; nothing was proposed, so retrying
    /// elsewhere is safe.
    NotLeader { leader: Option<NodeId> },
    /// Proposed or attempted and failed; the text says why.
    Failed(String),
    /// Refused unproposed: the leader's disk is below its free-space reserve.
    NoSpace(String),
}

pub type ForwardWriteReply = Result<(u64, CommandResult), ForwardError>;
pub type ReadIndexReply = Result<u64, ForwardError>;
/// A server asking to join: its id and address.
pub type AddServerRequest = (NodeId, NodeInfo);
pub type AddServerReply = Result<(), String>;

/// A server introducing itself during bootstrap discovery.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerIntro {
    pub id: NodeId,
    pub node: NodeInfo,
    /// Whether it already belongs to an initialized cluster.
    pub initialized: bool,
    /// Other servers it has heard from, so discovery is transitive: with B and C both
    /// joining A, B learns of C through A.
    pub peers: Vec<(NodeId, NodeInfo)>,
}

pub fn encode<T: Serialize>(value: &T) -> RaftPayload {
    RaftPayload {
        data: postcard::to_stdvec(value).expect("wire payloads always encode"),
    }
}

pub fn decode<T: serde::de::DeserializeOwned>(payload: &RaftPayload) -> Result<T, tonic::Status> {
    postcard::from_bytes(&payload.data)
        .map_err(|e| tonic::Status::invalid_argument(format!("undecodable raft payload: {e}")))
}
