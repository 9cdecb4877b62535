//! Writes as they travel through raft: one `Command` per log entry.

use serde::{Deserialize, Serialize};

use super::catalog::{Deregistration, Registration, RegistrationV1};
use super::event::Event;
use super::kv::LockOp;
use super::session::Session;
use super::txn::{KvTxnOp, TxnOutcome};

/// A write proposed to raft. Every variant is validated by the service layer before it is
/// proposed; apply only checks conditions that depend on the state (CAS indexes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Create or replace a key. `cas`: None = unconditional, Some(0) = create only,
    /// Some(n) = only if the key's modify index is n.
    KvPut {
        key: String,
        value: Vec<u8>,
        flags: u64,
        cas: Option<u64>,
    },
    /// Delete one key; with `cas`, only if its modify index matches (a missing key
    /// succeeds).
    KvDelete { key: String, cas: Option<u64> },
    /// Delete every key starting with `prefix`.
    KvDeleteTree { prefix: String },
    /// Consul's `?acquire=<session>` / `?release=<session>`: write the value and take or
    /// give up the lock.
    KvLock {
        op: LockOp,
        key: String,
        value: Vec<u8>,
        flags: u64,
        session: String,
    },
    /// Consul's KV transaction: all operations apply, or none.
    KvTxn { ops: Vec<KvTxnOp> },
    /// Leader housekeeping: forget tombstones created at or before `up_to`.
    KvReapTombstones { up_to: u64 },
    /// A catalog register as entries written before services carried `ServiceExtra`;
    /// only ever decoded from older logs, never proposed. Keeps its place in the enum,
    /// since postcard encodes a variant by its position.
    CatalogRegisterV1(RegistrationV1),
    /// Remove a node, one of its services, or one check.
    CatalogDeregister(Deregistration),
    /// Create a session (its id chosen by the service layer).
    SessionCreate(Session),
    /// Invalidate a session: release or delete its keys, arm their lock-delay.
    SessionDestroy { id: String },
    /// Restart a TTL session's timer.
    SessionRenew { id: String },
    /// Leader housekeeping: the TTL of `id` lapsed with no renew after `renewed_index`.
    SessionExpire { id: String, renewed_index: u64 },
    /// Fire a user event (its Lamport time is assigned in apply).
    EventFire(Event),
    /// Leader housekeeping: drop events with Lamport time at or below `up_to`.
    EventTrim { up_to: u64 },
    /// Replace every table with a verified snapshot file's (`rostractl snapshot
    /// restore`). Always alone in its raft entry; applied by the state machine, not
    /// through `StateStore::apply`.
    Restore { tables: super::store::TablesDump },
    /// Upsert a node, optionally a service, and checks (Consul's catalog register).
    /// Appended, so every older entry still decodes as what it was.
    CatalogRegister(Registration),
}

/// What one raft entry carries: client writes that arrived together, batched by the
/// proposer so that one log append, one fsync and one apply serve all of them. They are
/// applied in order at the entry's index, each seeing the effect of those before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub commands: Vec<Command>,
    /// The leader's wall clock when it proposed the entry (unix nanoseconds): the one
    /// time every replica's apply uses (lock-delays), so apply never reads a clock.
    pub time_ns: u64,
}

/// One result per command of a `Proposal`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalResult {
    pub results: Vec<CommandResult>,
}

/// What applying a command produced; returned to the proposer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Entries that carry no command (blank or membership entries).
    #[default]
    None,
    /// Whether a KV write's condition held (always true for unconditional writes).
    Kv { succeeded: bool },
    /// A transaction's results or errors.
    Txn(TxnOutcome),
    /// A catalog write, or Consul's error text for a refused one.
    Catalog(Result<(), String>),
    /// A lock operation: whether it took effect, or Consul's error text (an invalid
    /// session).
    Lock(Result<bool, String>),
    /// A session write, or Consul's error text; a renew carries the renewed session
    /// (`None`: no such session).
    Session(Result<Option<Session>, String>),
    /// A fired event as stored (with its Lamport time).
    Event(Event),
}

impl Command {
    /// The KV keys whose value this command may set. Two such writes to one key must not
    /// share a raft entry: both would get the entry's index as `ModifyIndex`, so a
    /// client that wrote the first (and was told that index) could CAS over the second
    /// without ever having seen it.
    pub fn value_keys(&self) -> Vec<&str> {
        match self {
            Command::KvPut { key, .. } | Command::KvLock { key, .. } => vec![key.as_str()],
            Command::KvTxn { ops } => ops
                .iter()
                .filter(|op| {
                    use super::txn::KvTxnVerb as V;
                    matches!(op.verb, V::Set | V::Cas | V::Lock | V::Unlock)
                })
                .map(|op| op.key.as_str())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the command must have a raft entry to itself.
    pub fn exclusive(&self) -> bool {
        matches!(self, Command::Restore { .. })
    }
}

impl CommandResult {
    /// True unless a condition failed.
    pub fn succeeded(&self) -> bool {
        match self {
            CommandResult::None => true,
            CommandResult::Kv { succeeded } => *succeeded,
            CommandResult::Txn(outcome) => outcome.errors.is_empty(),
            CommandResult::Catalog(r) => r.is_ok(),
            CommandResult::Lock(r) => matches!(r, Ok(true)),
            CommandResult::Session(r) => r.is_ok(),
            CommandResult::Event(_) => true,
        }
    }
}

/// This machine's wall clock in unix nanoseconds (for stamping proposals).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
