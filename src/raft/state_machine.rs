//! openraft's state-machine side on RocksDB: applies committed entries through
//! `crate::state`, keeps raft's own metadata (last applied log id, membership) in the same
//! write batch as the data, builds snapshots from a consistent RocksDB view and installs
//! received ones atomically.

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError};
use rocksdb::{ReadOptions, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use super::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use crate::db::{cf, Db, CF_SM_META};
use crate::state::feed::ResetReason;
use crate::state::store::TablesDump;
use crate::state::{ChangeBatch, ChangeFeed, ProposalResult, StateStore};

const LAST_APPLIED_KEY: &[u8] = b"last_applied_log";
const MEMBERSHIP_KEY: &[u8] = b"membership";
const SNAPSHOT_KEY: &[u8] = b"current_snapshot";

/// A built or received snapshot as kept on disk, so it survives restarts and can be sent
/// to lagging followers.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The state machine handle; clones share everything (one is the snapshot builder).
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Db>,
    store: Arc<StateStore>,
    feed: Arc<ChangeFeed>,
    stats: Arc<super::RaftStats>,
    /// Makes snapshot ids unique even when two are built at the same index.
    snapshot_seq: Arc<AtomicU64>,
}

impl StateMachine {
    pub fn new(
        store: Arc<StateStore>,
        feed: Arc<ChangeFeed>,
        stats: Arc<super::RaftStats>,
    ) -> Self {
        StateMachine {
            db: store.db().clone(),
            store,
            feed,
            stats,
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
        opts: &ReadOptions,
    ) -> Result<Option<T>, StorageError> {
        let bytes = self
            .db
            .get_cf_opt(cf(&self.db, CF_SM_META), key, opts)
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        Ok(bytes
            .map(|b| postcard::from_bytes(&b))
            .transpose()
            .map_err(|e| StorageIOError::read_state_machine(&e))?)
    }

    fn put_meta<T: Serialize>(&self, batch: &mut WriteBatch, key: &[u8], value: &T) {
        let bytes = postcard::to_stdvec(value).expect("raft metadata always encodes");
        batch.put_cf(cf(&self.db, CF_SM_META), key, bytes);
    }

    fn applied(
        &self,
        opts: &ReadOptions,
    ) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let last = self.read_meta::<LogId>(LAST_APPLIED_KEY, opts)?;
        let membership = self
            .read_meta::<StoredMembership>(MEMBERSHIP_KEY, opts)?
            .unwrap_or_default();
        Ok((last, membership))
    }

    /// Applies every entry of one `apply` call in a single write batch: data, last applied
    /// log id and membership commit together, so after a crash state and index agree.
    /// Watchers are told only after the batch is committed, entry by entry.
    fn apply_entries(&self, entries: Vec<Entry>) -> Result<Vec<ProposalResult>, StorageError> {
        let mut results = Vec::with_capacity(entries.len());
        let mut start = 0;
        // A restore replaces every table: the entries before it are committed first, it
        // is applied on its own, and the rest follow in a new batch.
        while start < entries.len() {
            let restore = entries[start..]
                .iter()
                .position(|e| restore_of(e).is_some());
            let end = restore.map_or(entries.len(), |r| start + r);
            if end > start {
                results.extend(self.apply_batch(&entries[start..end])?);
            }
            if end < entries.len() {
                results.push(self.apply_restore(&entries[end])?);
            }
            start = end + 1;
        }
        Ok(results)
    }

    /// Applies a snapshot restore entry (see `StateStore::restore`); every watcher resyncs.
    fn apply_restore(&self, entry: &Entry) -> Result<ProposalResult, StorageError> {
        let tables = restore_of(entry).expect("a restore entry");
        let index = entry.log_id.index;
        let mut batch = WriteBatch::default();
        self.store
            .restore(&mut batch, tables, index)
            .map_err(|e| StorageIOError::apply(entry.log_id, &e))?;
        self.put_meta(&mut batch, LAST_APPLIED_KEY, &entry.log_id);
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::apply(entry.log_id, &e))?;
        self.feed.reset_all(index, ResetReason::SnapshotRestored);
        tracing::info!(index, records = tables.records.len(), "restored a snapshot");
        Ok(ProposalResult {
            results: vec![crate::state::CommandResult::None],
        })
    }

    fn apply_batch(&self, entries: &[Entry]) -> Result<Vec<ProposalResult>, StorageError> {
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(Vec::new());
        };
        let started = std::time::Instant::now();
        let mut ab = self.store.begin();
        let mut results = Vec::with_capacity(entries.len());
        let mut published = Vec::with_capacity(entries.len());
        for entry in entries {
            let index = entry.log_id.index;
            let mut changes = Vec::new();
            let mut result = ProposalResult::default();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(proposal) => {
                    for command in &proposal.commands {
                        let applied = self
                            .store
                            .apply(&mut ab, index, proposal.time_ns, command)
                            .map_err(|e| StorageIOError::apply(entry.log_id, &e))?;
                        result.results.push(applied.result);
                        changes.extend(applied.changes);
                    }
                }
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(entry.log_id), m.clone());
                    self.put_meta(ab.write_batch(), MEMBERSHIP_KEY, &stored);
                }
            }
            results.push(result);
            published.push(ChangeBatch::new(index, changes));
        }
        self.put_meta(ab.write_batch(), LAST_APPLIED_KEY, &last);
        self.store.put_applied_index(ab.write_batch(), last.index);
        // Not synced: the log is durable, and a crash re-applies from the last applied id.
        self.db
            .write(ab.into_write_batch())
            .map_err(|e| StorageIOError::apply(last, &e))?;
        let applied = std::time::Instant::now();
        self.stats.timings.apply.record(applied - started);
        for batch in published {
            self.feed.publish(batch);
        }
        self.stats.timings.publish.since(applied);
        Ok(results)
    }
}

/// The tables of a restore entry.
fn restore_of(entry: &Entry) -> Option<&TablesDump> {
    match &entry.payload {
        EntryPayload::Normal(p) => p.commands.iter().find_map(|c| match c {
            crate::state::Command::Restore { tables } => Some(tables),
            _ => None,
        }),
        _ => None,
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.build_snapshot_blocking())
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?
    }
}

impl StateMachine {
    /// Every table and the log id they reflect, from one RocksDB snapshot: apply keeps
    /// running, this view does not move. Blocking.
    pub fn consistent_dump(
        &self,
    ) -> Result<(Option<LogId>, StoredMembership, TablesDump), StorageError> {
        let snap = self.db.snapshot();
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        let (last_log_id, last_membership) = self.applied(&opts)?;
        let dump = self
            .store
            .dump(&snap)
            .map_err(|e| StorageIOError::read_state_machine(&e))?;
        Ok((last_log_id, last_membership, dump))
    }

    fn build_snapshot_blocking(&self) -> Result<Snapshot, StorageError> {
        let (last_log_id, last_membership, dump) = self.consistent_dump()?;
        let data =
            postcard::to_stdvec(&dump).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let seq = self.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{seq}", id.leader_id.term, id.index),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        let mut batch = WriteBatch::default();
        self.put_meta(&mut batch, SNAPSHOT_KEY, &stored);
        self.db
            .write(batch)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        tracing::info!(snapshot = %meta.snapshot_id, records = dump.records.len(), "built raft snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.applied(&ReadOptions::default())
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ProposalResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.apply_entries(entries.into_iter().collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let dump: TablesDump = postcard::from_bytes(&data)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let index = meta.last_log_id.map(|id| id.index).unwrap_or(0);
        let mut batch = WriteBatch::default();
        self.store
            .replace_all(&mut batch, &dump, index)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        if let Some(last) = meta.last_log_id {
            self.put_meta(&mut batch, LAST_APPLIED_KEY, &last);
        }
        self.put_meta(&mut batch, MEMBERSHIP_KEY, &meta.last_membership);
        self.put_meta(
            &mut batch,
            SNAPSHOT_KEY,
            &StoredSnapshot {
                meta: meta.clone(),
                data,
            },
        );
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db
            .write_opt(batch, &opts)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        // Watchers cannot be told exactly what changed: every one resyncs.
        self.feed.reset_all(index, ResetReason::SnapshotInstalled);
        tracing::info!(snapshot = %meta.snapshot_id, index, "installed raft snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let stored: Option<StoredSnapshot> =
            self.read_meta(SNAPSHOT_KEY, &ReadOptions::default())?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
