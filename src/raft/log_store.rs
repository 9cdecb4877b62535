//! The raft log on RocksDB (`raft_log` and `raft_meta` column families).
//!
//! Durability rules (see shared/raft-notes.md): a vote is synced before `save_vote`
//! returns; appended entries are readable when `append` returns and durable when the
//! `LogFlushed` callback fires. The sync happens on one flusher thread that drains every
//! callback queued meanwhile and covers them with a single WAL fsync: many client writes,
//! one fsync (group commit), and callbacks fire in append order.

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{mpsc, Arc};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageIOError};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use super::RaftStats;
use crate::db::{cf, Db, CF_RAFT_LOG, CF_RAFT_META};

const VOTE_KEY: &[u8] = b"vote";
const COMMITTED_KEY: &[u8] = b"committed";
const LAST_PURGED_KEY: &[u8] = b"last_purged";

/// Log keys are big-endian so RocksDB's byte order is log order.
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

pub fn parse_log_key(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

/// Handle to the log; cheap to clone (it is also its own log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Db>,
    stats: Arc<RaftStats>,
    flusher: Arc<Flusher>,
}

/// The flusher thread and the queue feeding it. Owned by the log store's clones: when
/// the last one goes, the queue closes and the thread is joined, so the thread never
/// outlives the log and never holds the database past its owner's shutdown.
struct Flusher {
    queue: Option<mpsc::Sender<Flush>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // At most one WAL fsync is in flight; the thread ends after it.
            if thread.join().is_err() {
                tracing::error!("the raft log flusher thread panicked");
            }
        }
    }
}

impl LogStore {
    pub fn new(db: Arc<Db>, stats: Arc<RaftStats>) -> Self {
        let (tx, rx) = mpsc::channel::<Flush>();
        let flush_db = db.clone();
        let flush_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush_loop(flush_db, rx, flush_stats))
            .expect("spawning the log flusher thread");
        LogStore {
            db,
            stats,
            flusher: Arc::new(Flusher {
                queue: Some(tx),
                thread: Some(thread),
            }),
        }
    }

    fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StorageIOError<u64>> {
        let bytes = self
            .db
            .get_cf(cf(&self.db, CF_RAFT_META), key)
            .map_err(|e| StorageIOError::read(&e))?;
        bytes
            .map(|b| postcard::from_bytes(&b).map_err(|e| StorageIOError::read(&e)))
            .transpose()
    }

    /// Writes a metadata record; `sync` makes it durable before returning, off the async
    /// executor.
    async fn put_meta<T: Serialize>(
        &self,
        key: &'static [u8],
        value: &T,
        sync: bool,
    ) -> Result<(), StorageIOError<u64>> {
        let bytes = postcard::to_stdvec(value).map_err(|e| StorageIOError::write(&e))?;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut opts = WriteOptions::default();
            opts.set_sync(sync);
            db.put_cf_opt(cf(&db, CF_RAFT_META), key, bytes, &opts)
        })
        .await
        .map_err(|e| StorageIOError::write(&e))?
        .map_err(|e| StorageIOError::write(&e))
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, StorageIOError<u64>> {
        let mut iter = self
            .db
            .iterator_cf(cf(&self.db, CF_RAFT_LOG), IteratorMode::End);
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (_, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                let entry: Entry =
                    postcard::from_bytes(&v).map_err(|e| StorageIOError::read_logs(&e))?;
                Ok(Some(entry.log_id))
            }
        }
    }

    /// Deletes log keys in `[from, to)` durably.
    async fn delete_range(&self, from: u64, to: u64) -> Result<(), StorageIOError<u64>> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut batch = WriteBatch::default();
            batch.delete_range_cf(cf(&db, CF_RAFT_LOG), log_key(from), log_key(to));
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(batch, &opts)
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e))?
        .map_err(|e| StorageIOError::write_logs(&e))
    }
}

/// An append waiting for its fsync: openraft's callback and when the append began.
type Flush = (LogFlushed<TypeConfig>, std::time::Instant);

fn flush_loop(db: Arc<Db>, rx: mpsc::Receiver<Flush>, stats: Arc<RaftStats>) {
    while let Ok(first) = rx.recv() {
        let mut pending = vec![first];
        pending.extend(rx.try_iter());
        let synced = std::time::Instant::now();
        let result = db.flush_wal(true);
        stats.timings.fsync.since(synced);
        stats
            .wal_fsyncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (callback, appended) in pending {
            stats.timings.durable.since(appended);
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(r);
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        use std::ops::Bound;
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let iter = self.db.iterator_cf(
            cf(&self.db, CF_RAFT_LOG),
            IteratorMode::From(&log_key(start), Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index = parse_log_key(&k)
                .ok_or_else(|| StorageIOError::read_logs(&std::io::Error::other("bad log key")))?;
            if !range.contains(&index) {
                break;
            }
            let entry: Entry =
                postcard::from_bytes(&v).map_err(|e| StorageIOError::read_logs(&e))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(LAST_PURGED_KEY)?;
        let last = self.last_entry_log_id()?.or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_meta(VOTE_KEY, vote, true)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.get_meta(VOTE_KEY)?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced (losing it only means re-applying from the last applied entry), so a
        // plain memtable write on this thread is cheaper than a hop to the blocking pool.
        let bytes = postcard::to_stdvec(&committed).map_err(|e| StorageIOError::write(&e))?;
        if let Some(c) = committed {
            self.stats
                .committed
                .fetch_max(c.index, std::sync::atomic::Ordering::Relaxed);
        }
        self.db
            .put_cf(cf(&self.db, CF_RAFT_META), COMMITTED_KEY, bytes)
            .map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED_KEY)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let started = std::time::Instant::now();
        let handle = cf(&self.db, CF_RAFT_LOG);
        let mut batch = WriteBatch::default();
        let mut count = 0;
        for entry in entries {
            count += 1;
            let bytes = postcard::to_stdvec(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.put_cf(handle, log_key(entry.log_id.index), bytes);
        }
        self.stats
            .log_entries
            .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
        // Unsynced write: visible to readers now; the flusher makes it durable.
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.stats.timings.append.since(started);
        let queue = self
            .flusher
            .queue
            .as_ref()
            .expect("the queue lives as long as the store");
        queue
            .send((callback, started))
            .map_err(|e| StorageIOError::write_logs(&std::io::Error::other(e.to_string())))?;
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        Ok(self.delete_range(log_id.index, u64::MAX).await?)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge first: a restart must never find entries missing without it.
        self.put_meta(LAST_PURGED_KEY, &log_id, true).await?;
        Ok(self.delete_range(0, log_id.index + 1).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_keys_round_trip_and_sort() {
        for i in [0u64, 1, 255, 256, u64::MAX - 1] {
            assert_eq!(parse_log_key(&log_key(i)), Some(i));
        }
        assert!(log_key(255) < log_key(256));
    }

    /// The flusher thread holds the database too; dropping the last store clone joins
    /// it, so the database is closed when the drop returns, not some time later on
    /// another thread (which, at process exit, aborts).
    #[test]
    fn dropping_the_store_joins_the_flusher_and_closes_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(dir.path()).unwrap();
        let closed = db.closed();
        let store = LogStore::new(db, Default::default());
        let reader = store.clone();
        drop(store);
        // RocksDB locks an open database, even against the process that opened it.
        assert!(
            crate::db::open(dir.path()).is_err(),
            "a live clone keeps the database open"
        );
        drop(reader);
        assert!(futures::FutureExt::now_or_never(closed).is_some());
        crate::db::open(dir.path()).expect("the closed database opens again");
    }
}

/// openraft's own storage conformance suite, run against the RocksDB log store and state
/// machine together.
#[cfg(test)]
mod conformance {
    use std::sync::Arc;

    use openraft::testing::{StoreBuilder, Suite};

    use super::super::state_machine::StateMachine;
    use super::super::types::{StorageError, TypeConfig};
    use super::LogStore;
    use crate::state::{ChangeFeed, StateStore};

    struct RocksBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RocksBuilder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("temp dir");
            let db = crate::db::open(dir.path()).expect("open db");
            let state = Arc::new(StateStore::new(db.clone()));
            let sm = StateMachine::new(state, ChangeFeed::new(0), Default::default());
            Ok((dir, LogStore::new(db, Default::default()), sm))
        }
    }

    #[test]
    fn openraft_storage_suite() {
        Suite::test_all(RocksBuilder).expect("openraft storage suite");
    }
}
