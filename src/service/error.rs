//! The one error type of the service layer. Front ends map it once: `grpc/error.rs` to a
//! `tonic::Status`, `http/error.rs` to Consul's status codes and texts.

use crate::raft::ConsensusError;
use crate::state::store::StoreError;

#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ServiceError {
    /// The request is malformed; the text says what to fix.
    #[error("{0}")]
    InvalidArgument(String),
    /// The request names a datacenter this cluster is not (Consul would forward it to
    /// that datacenter; Rostra serves one). The text is Consul's.
    #[error("No path to datacenter")]
    NoPathToDatacenter,
    /// A value or request over a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// No leader, no quorum, or the leader could not be reached in time.
    #[error("{0}")]
    Unavailable(String),
    /// The leader may or may not have applied the write.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// The thing the request names does not exist; the text is Consul's.
    #[error("{0}")]
    NotFound(String),
    /// The state machine refused a write; the text is Consul's.
    #[error("{0}")]
    Rejected(String),
    /// The leader's disk is below its free-space reserve: the write was refused, nothing
    /// changed; reads go on. The text says how much is free and needed.
    #[error("{0}")]
    NoSpace(String),
    /// A storage or raft failure; details are logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ConsensusError> for ServiceError {
    fn from(e: ConsensusError) -> Self {
        match e {
            ConsensusError::NoLeader(_) => ServiceError::Unavailable(e.to_string()),
            ConsensusError::OutcomeUnknown(_) => ServiceError::OutcomeUnknown(e.to_string()),
            ConsensusError::NoSpace(m) => ServiceError::NoSpace(m),
            ConsensusError::Fatal(_) => ServiceError::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}
