//! The service layer: the only place that knows what a request means. Every front end
//! (gRPC, Consul's HTTP shim, DNS, the agent) reaches it through the [`ControlPlane`]
//! seam (`api`), decodes into its calls and encodes what they return. It validates,
//! applies defaults, picks the read consistency, proposes writes through raft, and runs
//! the one watch protocol (`watch`, with KV and catalog views) on the change feed.
//!
//! It sees no tonic or axum types and no openraft types.

pub mod api;
pub mod attach;
pub mod call;
pub mod catalog;
pub mod catalog_watch;
pub mod error;
pub mod event;
pub mod exec;
pub mod follow;
pub mod kv;
pub mod leader;
pub mod lock;
pub mod membership;
pub mod query;
pub mod reaper;
pub mod remote;
pub mod session;
pub mod session_ttl;
pub mod snapshot;
pub mod txn;
pub mod watch;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::api::{Api, ControlPlane};
pub use self::catalog_watch::{CatalogDelta, CatalogItem, CatalogWatch, ItemKey};
pub use self::error::ServiceError;
pub use self::query::{QueryMeta, QueryOptions};
pub use self::watch::{
    CatalogWatchMessage, CatalogWatchReceiver, KvWatchMessage, KvWatchReceiver, WatchMessage,
    WatchReceiver,
};
use crate::raft::{ClusterStatus, RaftNode};
use crate::state::{ChangeFeed, StateStore};

/// Consul's `kv_max_value_size` default.
pub const DEFAULT_MAX_VALUE_SIZE: usize = 512 * 1024;
/// Keys are paths, not payloads; this keeps one key from bloating every index entry.
pub const DEFAULT_MAX_KEY_SIZE: usize = 8 * 1024;

/// Default cap on concurrent watch streams and blocking queries.
pub const DEFAULT_MAX_STREAMS: usize = 20_000;

/// Default cap on requests in flight per front end (HTTP, gRPC), blocking queries and
/// watch streams aside; well above what a closed-loop load of 1,000 clients needs.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// Consul's documented transaction limit (newer releases raised it to 128).
pub const DEFAULT_MAX_TXN_OPS: usize = 64;

/// Request limits, enforced before anything reaches raft.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_value_size: usize,
    pub max_key_size: usize,
    pub max_txn_ops: usize,
    /// Watch streams plus waiting blocking queries at once; past it new ones are refused
    /// (each holds a task and a feed subscription, so this bounds memory).
    pub max_streams: usize,
    /// Requests being served at once on the HTTP port, blocking queries aside; one more
    /// is answered 429 (`limits.http_max_in_flight`).
    pub http_max_in_flight: usize,
    /// The same on the gRPC port, answered `RESOURCE_EXHAUSTED`.
    pub grpc_max_in_flight: usize,
    /// Bytes of change history the feed keeps so watches can resume from an index
    /// (`limits.watch_history_bytes`); an older index gets `RESET` and a fresh snapshot.
    pub watch_history_bytes: usize,
    /// Shortest session TTL accepted (Consul's `session_ttl_min`, 10s).
    pub session_ttl_min: std::time::Duration,
    /// A member not heard from for this long is marked failed (`service::membership`).
    pub member_failed_after: std::time::Duration,
    /// Failed and left members are deregistered after this long (Consul's
    /// `reconnect_timeout`, 72h).
    pub reconnect_timeout: std::time::Duration,
    /// Largest user event payload in bytes (Consul's 512-byte event limit).
    pub event_max_payload: usize,
    /// User events kept for `/v1/event/list` and for agents catching up (Consul's 256).
    pub event_retention: usize,
    /// Writes are refused while the data directory's file system has less free
    /// (`limits.min_free_disk_bytes`; see `raft::space`).
    pub min_free_disk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_value_size: DEFAULT_MAX_VALUE_SIZE,
            max_key_size: DEFAULT_MAX_KEY_SIZE,
            max_txn_ops: DEFAULT_MAX_TXN_OPS,
            max_streams: DEFAULT_MAX_STREAMS,
            http_max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            grpc_max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            watch_history_bytes: crate::state::feed::DEFAULT_RETAINED_BYTES,
            session_ttl_min: session::MIN_TTL,
            member_failed_after: membership::DEFAULT_FAILED_AFTER,
            reconnect_timeout: membership::DEFAULT_RECONNECT_TIMEOUT,
            event_max_payload: event::DEFAULT_MAX_PAYLOAD,
            event_retention: event::DEFAULT_RETENTION,
            min_free_disk_bytes: crate::raft::space::DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// How fresh a read must be (see `proto/rostra/v1/common.proto`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Consistency {
    #[default]
    Default,
    Stale,
    Consistent,
}

impl Consistency {
    /// The value of Consul's `X-Consul-Effective-Consistency`.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Default => "leader",
            Consistency::Stale => "stale",
            Consistency::Consistent => "consistent",
        }
    }
}

/// What every response carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResponseMeta {
    pub index: u64,
    pub node_id: u64,
    pub term: u64,
    pub known_leader: bool,
    pub last_contact_ms: u64,
}

/// Server counters (see `Status.Metrics`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Metrics {
    pub writes: u64,
    pub proposals: u64,
    pub log_entries: u64,
    pub wal_fsyncs: u64,
    pub watchers: u64,
    pub query_wakeups: u64,
    /// Blocking queries waiting now.
    pub blocking_queries: u64,
    /// (stage, events, total ns) of the write path (see `raft::timing`).
    pub stages: Vec<(String, u64, u64)>,
    /// (stage, fastest ns, slowest ns), in the same order.
    pub stage_extremes: Vec<(String, u64, u64)>,
}

/// Shared by every front end; cheap to clone behind an `Arc`.
pub struct Service {
    raft: Arc<RaftNode>,
    state: Arc<StateStore>,
    feed: Arc<ChangeFeed>,
    limits: Limits,
    /// This server's datacenter: the default for registrations, the only one served.
    datacenter: String,
    /// This agent's node: the default node of a session.
    node_name: String,
    shutdown: CancellationToken,
    /// One permit per open watch stream or waiting blocking query.
    stream_permits: Arc<tokio::sync::Semaphore>,
    /// Blocked queries woken by a change to what they read (never by unrelated writes).
    query_wakeups: std::sync::atomic::AtomicU64,
    /// Blocking queries waiting now.
    blocking_queries: std::sync::atomic::AtomicU64,
    /// When the leader last heard from each member.
    liveness: membership::Liveness,
    /// Every task the service layer (and the agent on top of it) spawns: watch streams,
    /// storage reads, check runners. The server joins them all at shutdown, before it
    /// closes storage, so no task outlives the database it reads.
    tasks: TaskTracker,
}

impl Service {
    pub fn new(
        raft: Arc<RaftNode>,
        state: Arc<StateStore>,
        feed: Arc<ChangeFeed>,
        limits: Limits,
        datacenter: String,
        node_name: String,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Service {
            raft,
            state,
            feed,
            stream_permits: Arc::new(tokio::sync::Semaphore::new(limits.max_streams)),
            limits,
            datacenter,
            node_name,
            shutdown,
            query_wakeups: Default::default(),
            blocking_queries: Default::default(),
            liveness: Default::default(),
            tasks: TaskTracker::new(),
        })
    }

    /// Spawns a background task owned by this service (joined by [`Service::join_tasks`]).
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Waits for every task spawned through the service to end. Call after the shutdown
    /// token fired: the tasks watch it and stop at their next await point.
    pub async fn join_tasks(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Batching and durability counters plus the number of watchers.
    pub fn metrics(&self) -> Metrics {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.raft.stats();
        Metrics {
            writes: s.writes.load(Relaxed),
            proposals: s.proposals.load(Relaxed),
            log_entries: s.log_entries.load(Relaxed),
            wal_fsyncs: s.wal_fsyncs.load(Relaxed),
            watchers: self.watcher_count() as u64,
            query_wakeups: self.query_wakeups.load(Relaxed),
            blocking_queries: self.blocking_queries.load(Relaxed),
            stages: s
                .timings
                .readings()
                .into_iter()
                .map(|(name, count, ns)| (name.to_string(), count, ns))
                .collect(),
            stage_extremes: s
                .timings
                .extremes()
                .into_iter()
                .map(|(name, min, max)| (name.to_string(), min, max))
                .collect(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A permit for one long-lived stream or blocking query, or Unavailable when the
    /// server already serves `max_streams` of them.
    pub(crate) fn stream_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ServiceError> {
        self.stream_permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                ServiceError::Unavailable(format!(
                    "too many concurrent watches and blocking queries (limit {})",
                    self.limits.max_streams
                ))
            })
    }

    /// True once the server began shutting down (streams should end).
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Live watch subscriptions on this server.
    pub fn watcher_count(&self) -> usize {
        self.feed.subscriber_count()
    }

    pub fn cluster_status(&self) -> ClusterStatus {
        self.raft.status()
    }

    /// The header for an answer reflecting `index`.
    pub fn meta(&self, index: u64) -> ResponseMeta {
        let (term, known_leader, last_contact_ms) = self.raft.header_view();
        ResponseMeta {
            index,
            node_id: self.raft.id,
            term,
            known_leader,
            last_contact_ms,
        }
    }

    /// Makes local state fresh enough for `consistency` before a read.
    async fn read_barrier(&self, consistency: Consistency) -> Result<(), ServiceError> {
        match consistency {
            Consistency::Stale => Ok(()),
            Consistency::Default | Consistency::Consistent => {
                self.raft.read_barrier().await?;
                Ok(())
            }
        }
    }

    /// Runs a blocking storage read off the async executor.
    async fn blocking_read<T, F>(&self, f: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce(&StateStore) -> Result<T, crate::state::store::StoreError> + Send + 'static,
    {
        let state = self.state.clone();
        self.tasks
            .spawn_blocking(move || f(&state))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .map_err(ServiceError::from)
    }
}
