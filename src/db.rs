//! The one RocksDB database of a server: raft log, raft metadata and the state machine's
//! tables live in column families of a single DB, so a state-machine write batch and the
//! log share one WAL and one fsync discipline.
//!
//! This module only opens and closes the database and names the column families; what
//! goes in them belongs to `raft/` (log, vote, snapshots) and `state/` (tables).
//!
//! Closing is the part that is easy to get wrong: RocksDB closes when the last `Arc<Db>`
//! is dropped, on whichever thread drops it, and closing touches C++ statics (the
//! periodic-task timer). If that happens while the process is exiting, after those
//! statics are destroyed, the process aborts with `pthread lock: Invalid argument`. So
//! whoever owns the database waits on [`Db::closed`] before it lets the process exit.

use std::future::Future;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Raft log entries, keyed by big-endian index so iteration order is log order.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Vote, committed log id, last purged log id, this server's node id.
pub const CF_RAFT_META: &str = "raft_meta";
/// State machine metadata: last applied log id, membership, the current snapshot.
pub const CF_SM_META: &str = "sm_meta";
/// The KV table: key bytes to an encoded `KvEntry`.
pub const CF_KV: &str = "kv";
/// Deleted keys to the index of their deletion, so a prefix's index never goes backwards
/// when its newest key is deleted (Consul's tombstones); reaped by the leader after a TTL.
pub const CF_KV_TOMBSTONES: &str = "kv_tombstones";

/// Catalog: node name to node record.
pub const CF_NODES: &str = "nodes";
/// Catalog: `node \0 service id` to service instance.
pub const CF_SERVICES: &str = "services";
/// Catalog: `node \0 check id` to health check.
pub const CF_CHECKS: &str = "checks";
/// Catalog index: `service name \0 node \0 service id` (empty values), so reading one
/// service's instances costs the size of the answer. Derived from `services`: kept in
/// step by apply, rebuilt when a snapshot is installed, never part of a snapshot.
pub const CF_SERVICE_NAMES: &str = "service_names";

/// Sessions: session id to an encoded `Session`.
pub const CF_SESSIONS: &str = "sessions";
/// `node \0 session id` (empty values): the sessions tied to a node, so deregistering
/// the node or failing one of its checks finds them without a scan.
pub const CF_NODE_SESSIONS: &str = "node_sessions";
/// `session id \0 key` (empty values): the keys a session holds, so invalidating it
/// releases or deletes exactly those.
pub const CF_SESSION_LOCKS: &str = "session_locks";
/// KV key to the leader time (unix nanoseconds, big-endian) until which it may not be
/// acquired: the lock-delay armed when its holder's session was invalidated.
pub const CF_LOCK_DELAYS: &str = "lock_delays";

/// User events: big-endian Lamport time to an encoded `Event`, oldest first; trimmed by
/// the leader to the retention limit.
pub const CF_EVENTS: &str = "events";

const ALL_CFS: [&str; 14] = [
    CF_RAFT_LOG,
    CF_RAFT_META,
    CF_SM_META,
    CF_KV,
    CF_KV_TOMBSTONES,
    CF_NODES,
    CF_SERVICES,
    CF_CHECKS,
    CF_SERVICE_NAMES,
    CF_SESSIONS,
    CF_NODE_SESSIONS,
    CF_SESSION_LOCKS,
    CF_LOCK_DELAYS,
    CF_EVENTS,
];

/// Column families that hold state-machine data; a snapshot covers exactly these (plus
/// the state keys of `sm_meta`, which `state::store` dumps itself). The two session
/// indexes travel with the snapshot rather than being rebuilt from it.
pub const STATE_CFS: [&str; 10] = [
    CF_KV,
    CF_KV_TOMBSTONES,
    CF_NODES,
    CF_SERVICES,
    CF_CHECKS,
    CF_SESSIONS,
    CF_NODE_SESSIONS,
    CF_SESSION_LOCKS,
    CF_LOCK_DELAYS,
    CF_EVENTS,
];

/// The open database, shared by the raft log, the state machine and the readers.
pub struct Db {
    // Field order is drop order: RocksDB closes (joining its background work) first,
    // and only then does `closed` fire.
    db: DB,
    _closed: DropGuard,
    closed_token: CancellationToken,
}

impl Deref for Db {
    type Target = DB;

    fn deref(&self) -> &DB {
        &self.db
    }
}

impl Db {
    /// Resolves once the database has closed, i.e. every `Arc<Db>` was dropped and
    /// RocksDB's own close finished. Take it before dropping your handle.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        self.closed_token.clone().cancelled_owned()
    }
}

/// Memtable bytes across every column family before RocksDB flushes.
pub const MEMTABLES_BYTES: usize = 64 * 1024 * 1024;

/// Opens (creating if needed) the database at `path` with every column family.
pub fn open(path: &Path) -> Result<Arc<Db>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // Writes are acknowledged only after raft has synced the WAL, so RocksDB's own
    // background syncing adds nothing.
    opts.set_manual_wal_flush(false);
    // Bounded memtables (all column families together) and WAL: what a flush, or the
    // replay when a crashed server reopens, must write is at most this, which the
    // free-space reserve (`raft::space`) covers. A server killed on a nearly full disk
    // otherwise could not reopen: the test in tests/disk_full.rs showed the replay of two
    // unbounded memtables running out of space.
    opts.set_db_write_buffer_size(MEMTABLES_BYTES);
    opts.set_max_total_wal_size(2 * MEMTABLES_BYTES as u64);
    let cfs = ALL_CFS.iter().map(|name| {
        let mut cf_opts = Options::default();
        cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        ColumnFamilyDescriptor::new(*name, cf_opts)
    });
    let db = DB::open_cf_descriptors(&opts, path, cfs)?;
    let token = CancellationToken::new();
    Ok(Arc::new(Db {
        db,
        _closed: token.clone().drop_guard(),
        closed_token: token,
    }))
}

/// Column family handle by name; every name used here was created by `open`.
pub fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    db.cf_handle(name)
        .unwrap_or_else(|| panic!("column family {name} is created when the database opens"))
}
