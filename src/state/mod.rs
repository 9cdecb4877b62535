//! The state machine's business logic, free of raft: the commands a write can carry, how
//! each is applied to the tables, how tables are read, and the change feed that tells
//! watchers what changed.
//!
//! Apply is deterministic: it reads no clock, randomness or environment. Anything such a
//! decision needs is chosen by the proposer and carried inside the `Command`. The raft
//! layer (`crate::raft`) decides *when* a command is applied and persists its own metadata
//! in the same write batch; this module decides *what* applying means.

pub mod apply;
pub mod backup;
pub mod catalog;
pub mod change;
pub mod command;
pub mod event;
pub mod feed;
pub mod kv;
pub mod session;
pub mod store;
pub mod txn;

pub use apply::ApplyBatch;
pub use change::{Applied, Change};
pub use command::{Command, CommandResult, Proposal, ProposalResult};
pub use feed::{ChangeBatch, ChangeFeed, FeedEvent, Subscription, WatchTarget};
pub use kv::{KvChange, KvEntry};
pub use store::{KvQuery, ReadView, StateStore};
