//! The state machine's tables as a whole: applying a command into a write batch, reading
//! a consistent view together with the index it reflects, and dumping or replacing every
//! table for raft snapshots.

use std::sync::Arc;

use rocksdb::{IteratorMode, ReadOptions, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use super::apply::{db_get, db_scan, ApplyBatch, RawRead};
use super::catalog::{CatalogRead, CatalogWrite, Registration};
use super::change::{Applied, Change};
use super::command::{Command, CommandResult};
use super::kv::{self, KvChange, KvEntry, KvRead};
use super::session::{SessionRead, SessionWrite};
use super::txn;
use crate::db::{
    cf, Db, CF_KV_TOMBSTONES, CF_LOCK_DELAYS, CF_SERVICES, CF_SERVICE_NAMES, CF_SM_META, STATE_CFS,
};

/// Key in `sm_meta` holding the index of the last applied entry, written in the same batch
/// as the data it describes.
const APPLIED_INDEX_KEY: &[u8] = b"applied_index";
/// Key in `sm_meta` holding the highest index that changed the KV table (puts and
/// deletes): Consul's KV table index, reported for reads that find nothing.
pub(super) const KV_INDEX_KEY: &[u8] = b"kv_index";
/// Key in `sm_meta` holding the highest index that changed the catalog (Consul reports
/// table indexes for catalog and health reads).
pub(super) const CATALOG_INDEX_KEY: &[u8] = b"catalog_index";
/// Key in `sm_meta` holding the highest index that changed the sessions table.
pub(super) const SESSIONS_INDEX_KEY: &[u8] = b"sessions_index";
/// Key in `sm_meta` holding the version of the derived indexes (`service_names`) the
/// tables carry; data written before an index existed gets it built at startup.
const INDEX_VERSION_KEY: &[u8] = b"index_version";
const INDEX_VERSION: u64 = 1;
/// `sm_meta` keys that belong to the state (and so to snapshots).
const STATE_META_KEYS: [&[u8]; 4] = [
    KV_INDEX_KEY,
    CATALOG_INDEX_KEY,
    SESSIONS_INDEX_KEY,
    super::event::EVENTS_LTIME_KEY,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record: {0}")]
    Decode(#[from] postcard::Error),
}

/// Every table's contents, as carried inside a raft snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablesDump {
    /// One (column family, key, value) triple per record, raw.
    pub records: Vec<(String, Vec<u8>, Vec<u8>)>,
}

/// Owns the state tables inside the shared database.
pub struct StateStore {
    db: Arc<Db>,
}

impl StateStore {
    pub fn new(db: Arc<Db>) -> Self {
        StateStore { db }
    }

    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// Starts a batch of applies that commit together.
    pub fn begin(&self) -> ApplyBatch<'_> {
        ApplyBatch::new(self)
    }

    /// Applies `command` at log `index` into `ab` (which the caller commits together with
    /// raft's own metadata) and reports its result and every change it made.
    pub fn apply(
        &self,
        ab: &mut ApplyBatch<'_>,
        index: u64,
        time_ns: u64,
        command: &Command,
    ) -> Result<Applied, StoreError> {
        let kv = |succeeded: bool, changes: Vec<KvChange>| Applied {
            result: CommandResult::Kv { succeeded },
            changes: changes.into_iter().map(Change::Kv).collect(),
        };
        Ok(match command {
            Command::KvPut {
                key,
                value,
                flags,
                cas,
            } => {
                let (ok, change) = kv::apply_put(ab, index, key, value, *flags, *cas)?;
                kv(ok, change.into_iter().collect())
            }
            Command::KvDelete { key, cas } => {
                let (ok, change) = kv::apply_delete(ab, index, key, *cas)?;
                kv(ok, change.into_iter().collect())
            }
            Command::KvDeleteTree { prefix } => kv(true, kv::apply_delete_tree(ab, index, prefix)?),
            Command::KvLock {
                op,
                key,
                value,
                flags,
                session,
            } => {
                let (result, change) =
                    kv::apply_lock(ab, index, time_ns, *op, key, value, *flags, session)?;
                Applied {
                    result: CommandResult::Lock(result),
                    changes: change.into_iter().map(Change::Kv).collect(),
                }
            }
            Command::KvTxn { ops } => {
                let (outcome, changes) = txn::apply(ab, index, time_ns, ops)?;
                Applied {
                    result: CommandResult::Txn(outcome),
                    changes: changes.into_iter().map(Change::Kv).collect(),
                }
            }
            Command::CatalogRegister(reg) => register(ab, index, time_ns, reg)?,
            Command::CatalogRegisterV1(old) => {
                register(ab, index, time_ns, &Registration::from(old.clone()))?
            }
            Command::CatalogDeregister(d) => {
                let mut w = CatalogWrite {
                    ab,
                    index,
                    changes: Vec::new(),
                };
                w.deregister(d)?;
                let changes = with_sessions_invalidated(w.ab, index, time_ns, w.changes)?;
                Applied {
                    result: CommandResult::Catalog(Ok(())),
                    changes,
                }
            }
            Command::EventFire(e) => {
                let (stored, change) = super::event::fire(ab, e)?;
                Applied {
                    result: CommandResult::Event(stored),
                    changes: vec![change],
                }
            }
            Command::EventTrim { up_to } => Applied {
                result: CommandResult::None,
                changes: super::event::trim(ab, *up_to)?,
            },
            Command::Restore { .. } => {
                unreachable!("the state machine applies a restore in an entry of its own")
            }
            Command::SessionCreate(session) => {
                let mut w = SessionWrite::new(ab, index, time_ns);
                let result = w.create(session)?.map(|()| None);
                Applied {
                    result: CommandResult::Session(result),
                    changes: w.changes,
                }
            }
            Command::SessionDestroy { id } => {
                let mut w = SessionWrite::new(ab, index, time_ns);
                w.invalidate(id)?;
                Applied {
                    result: CommandResult::Session(Ok(None)),
                    changes: w.changes,
                }
            }
            Command::SessionRenew { id } => {
                let mut w = SessionWrite::new(ab, index, time_ns);
                let renewed = w.renew(id)?;
                Applied {
                    result: CommandResult::Session(Ok(renewed)),
                    changes: w.changes,
                }
            }
            Command::SessionExpire { id, renewed_index } => {
                let mut w = SessionWrite::new(ab, index, time_ns);
                w.expire(id, *renewed_index)?;
                Applied {
                    result: CommandResult::Session(Ok(None)),
                    changes: w.changes,
                }
            }
            Command::KvReapTombstones { up_to } => {
                ab.reap_tombstones(*up_to)?;
                // The same housekeeping pass forgets lock-delays that have passed.
                ab.sweep_lock_delays(time_ns)?;
                kv(true, Vec::new())
            }
        })
    }

    /// Records `index` as applied; part of every apply batch.
    pub fn put_applied_index(&self, batch: &mut WriteBatch, index: u64) {
        batch.put_cf(
            cf(&self.db, CF_SM_META),
            APPLIED_INDEX_KEY,
            index.to_be_bytes(),
        );
    }

    /// The index of the last applied entry, from committed state.
    pub fn applied_index(&self) -> Result<u64, StoreError> {
        Ok(read_applied(&self.db, &ReadOptions::default())?)
    }

    /// A consistent read-only view of every table.
    pub fn view(&self) -> ReadView<'_> {
        ReadView {
            db: &self.db,
            snap: self.db.snapshot(),
        }
    }

    /// One key, with Consul's index for it: its ModifyIndex, or the KV table index when
    /// it does not exist (so a blocking read can wait for its creation).
    pub fn kv_get(&self, key: &str) -> Result<KvQuery<Option<KvEntry>>, StoreError> {
        let view = self.view();
        let entry = view.kv_get(key)?;
        let index = match &entry {
            Some(e) => e.modify_index,
            None => view.kv_index()?,
        };
        Ok(KvQuery {
            applied: view.applied_index()?,
            index: index.max(1),
            value: entry,
        })
    }

    /// Every entry under `prefix`, with Consul's index for it: the highest ModifyIndex
    /// under the prefix including tombstones of deleted keys, else the KV table index.
    pub fn kv_list(&self, prefix: &str) -> Result<KvQuery<Vec<KvEntry>>, StoreError> {
        let view = self.view();
        let entries = kv::scan(&self.db, view.opts(), prefix)?;
        let newest = entries.iter().map(|e| e.modify_index).max().unwrap_or(0);
        let index = newest.max(kv::max_tombstone(&self.db, view.opts(), prefix)?);
        let index = if index == 0 { view.kv_index()? } else { index };
        Ok(KvQuery {
            applied: view.applied_index()?,
            index: index.max(1),
            value: entries,
        })
    }

    /// Whether any tombstone was created at or before `index` (so reaping has work).
    pub fn has_tombstones_through(&self, index: u64) -> Result<bool, StoreError> {
        let db = &self.db;
        for item in db.iterator_cf(cf(db, CF_KV_TOMBSTONES), IteratorMode::Start) {
            let (_, v) = item?;
            if kv::decode_index(&v) <= index {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Whether any lock-delay is recorded (the reaper's pass also sweeps ended ones).
    pub fn has_lock_delays(&self) -> Result<bool, StoreError> {
        let db = &self.db;
        match db
            .iterator_cf(cf(db, CF_LOCK_DELAYS), IteratorMode::Start)
            .next()
        {
            Some(item) => item.map(|_| true).map_err(StoreError::from),
            None => Ok(false),
        }
    }

    /// Dumps every table as seen by `snap`, for a raft snapshot built concurrently with
    /// apply.
    pub fn dump(&self, snap: &rocksdb::Snapshot<'_>) -> Result<TablesDump, StoreError> {
        let mut dump = TablesDump::default();
        let mut opts = ReadOptions::default();
        opts.set_snapshot(snap);
        for key in STATE_META_KEYS {
            if let Some(v) = self.db.get_cf_opt(cf(&self.db, CF_SM_META), key, &opts)? {
                dump.records.push((CF_SM_META.to_string(), key.to_vec(), v));
            }
        }
        for name in STATE_CFS {
            let mut opts = ReadOptions::default();
            opts.set_snapshot(snap);
            for item in self
                .db
                .iterator_cf_opt(cf(&self.db, name), opts, IteratorMode::Start)
            {
                let (k, v) = item?;
                dump.records
                    .push((name.to_string(), k.to_vec(), v.to_vec()));
            }
        }
        Ok(dump)
    }

    /// Adds to `batch` the writes that replace every table with `dump` at `index`.
    pub fn replace_all(
        &self,
        batch: &mut WriteBatch,
        dump: &TablesDump,
        index: u64,
    ) -> Result<(), StoreError> {
        for name in STATE_CFS {
            let handle = cf(&self.db, name);
            for item in self.db.iterator_cf(handle, IteratorMode::Start) {
                let (k, _) = item?;
                batch.delete_cf(handle, k);
            }
        }
        for key in STATE_META_KEYS {
            batch.delete_cf(cf(&self.db, CF_SM_META), key);
        }
        for (name, k, v) in &dump.records {
            let state_meta = name == CF_SM_META && STATE_META_KEYS.contains(&k.as_slice());
            if STATE_CFS.contains(&name.as_str()) || state_meta {
                batch.put_cf(cf(&self.db, name), k, v);
            }
        }
        let services = dump
            .records
            .iter()
            .filter(|(name, _, _)| name == CF_SERVICES)
            .map(|(_, _, v)| v.clone());
        self.rebuild_indexes(batch, services)?;
        self.put_applied_index(batch, index);
        Ok(())
    }

    /// Whether a snapshot file's record belongs to the state (anything else, say a raft
    /// log record, makes the file foreign).
    pub fn is_state_record(table: &str, key: &[u8]) -> bool {
        STATE_CFS.contains(&table) || (table == CF_SM_META && STATE_META_KEYS.contains(&key))
    }

    /// Adds to `batch` the writes of a snapshot restore applied at raft `index`: every
    /// table replaced by `dump`'s, as a change made at `index`. Objects keep their indexes
    /// unless the snapshot comes from a cluster further along than this one; those above
    /// `index` are lowered to it, so no index runs ahead of the log. Every table's index
    /// becomes `index` (the restore changed them all; blocking queries never see an index
    /// go back), and tombstones are dropped (the restore supersedes every deletion).
    pub fn restore(
        &self,
        batch: &mut WriteBatch,
        dump: &TablesDump,
        index: u64,
    ) -> Result<(), StoreError> {
        let mut records = Vec::with_capacity(dump.records.len());
        for (table, k, v) in &dump.records {
            let v = match table.as_str() {
                CF_KV_TOMBSTONES => continue,
                CF_SM_META if k.as_slice() != super::event::EVENTS_LTIME_KEY => continue,
                _ => clamp_indexes(table, v, index)?,
            };
            records.push((table.clone(), k.clone(), v));
        }
        for key in [KV_INDEX_KEY, CATALOG_INDEX_KEY, SESSIONS_INDEX_KEY] {
            records.push((
                CF_SM_META.to_string(),
                key.to_vec(),
                index.to_be_bytes().to_vec(),
            ));
        }
        self.replace_all(batch, &TablesDump { records }, index)
    }

    /// Builds the derived indexes if the tables predate them (an older data directory).
    pub fn ensure_indexes(&self) -> Result<(), StoreError> {
        if read_u64(&self.db, &ReadOptions::default(), INDEX_VERSION_KEY)? == INDEX_VERSION {
            return Ok(());
        }
        let mut services = Vec::new();
        for item in self
            .db
            .iterator_cf(cf(&self.db, CF_SERVICES), IteratorMode::Start)
        {
            services.push(item?.1.to_vec());
        }
        let mut batch = WriteBatch::default();
        self.rebuild_indexes(&mut batch, services.into_iter())?;
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        tracing::info!("catalog indexes built");
        Ok(())
    }

    /// Adds to `batch` the writes that replace the derived indexes with ones built from
    /// `services` (encoded instances), and records their version.
    fn rebuild_indexes(
        &self,
        batch: &mut WriteBatch,
        services: impl Iterator<Item = Vec<u8>>,
    ) -> Result<(), StoreError> {
        let handle = cf(&self.db, CF_SERVICE_NAMES);
        for item in self.db.iterator_cf(handle, IteratorMode::Start) {
            batch.delete_cf(handle, item?.0);
        }
        for bytes in services {
            let svc = super::catalog::decode_service(&bytes)?;
            batch.put_cf(
                handle,
                super::catalog::name_key(&svc.name, &svc.node, &svc.id),
                [],
            );
        }
        batch.put_cf(
            cf(&self.db, CF_SM_META),
            INDEX_VERSION_KEY,
            INDEX_VERSION.to_be_bytes(),
        );
        Ok(())
    }
}

fn read_applied(db: &DB, opts: &ReadOptions) -> Result<u64, rocksdb::Error> {
    read_u64(db, opts, APPLIED_INDEX_KEY)
}

fn read_u64(db: &DB, opts: &ReadOptions, key: &[u8]) -> Result<u64, rocksdb::Error> {
    Ok(db
        .get_cf_opt(cf(db, CF_SM_META), key, opts)?
        .map(|v| kv::decode_index(&v))
        .unwrap_or(0))
}

/// Catalog `changes`, followed by what invalidating the sessions they end adds (a
/// deregistered node's sessions, those of a check that failed or went away).
fn with_sessions_invalidated(
    ab: &mut ApplyBatch<'_>,
    index: u64,
    time_ns: u64,
    mut changes: Vec<Change>,
) -> Result<Vec<Change>, StoreError> {
    let mut w = SessionWrite::new(ab, index, time_ns);
    w.on_catalog(&changes)?;
    changes.append(&mut w.changes);
    Ok(changes)
}

/// Applies a catalog register, with the sessions its check changes invalidate.
fn register(
    ab: &mut ApplyBatch<'_>,
    index: u64,
    time_ns: u64,
    reg: &Registration,
) -> Result<Applied, StoreError> {
    let mut w = CatalogWrite {
        ab,
        index,
        changes: Vec::new(),
    };
    let result = w.register(reg)?;
    let changes = with_sessions_invalidated(w.ab, index, time_ns, w.changes)?;
    Ok(Applied {
        result: CommandResult::Catalog(result),
        changes,
    })
}

/// `value` (a record of `table`) with its create/modify indexes at most `ceiling`.
fn clamp_indexes(table: &str, value: &[u8], ceiling: u64) -> Result<Vec<u8>, StoreError> {
    use super::catalog::{HealthCheck, Node, ServiceInstance};
    use super::session::Session;
    fn clamp<T: Serialize + serde::de::DeserializeOwned>(
        value: &[u8],
        fix: impl FnOnce(&mut T),
    ) -> Result<Vec<u8>, StoreError> {
        let mut record: T = postcard::from_bytes(value)?;
        fix(&mut record);
        Ok(postcard::to_stdvec(&record)?)
    }
    let c = |i: &mut u64| *i = (*i).min(ceiling);
    match table {
        crate::db::CF_KV => clamp(value, |e: &mut KvEntry| {
            c(&mut e.create_index);
            c(&mut e.modify_index);
        }),
        crate::db::CF_NODES => clamp(value, |n: &mut Node| {
            c(&mut n.create_index);
            c(&mut n.modify_index);
        }),
        // Either layout (a snapshot from an older build); written back as today's.
        CF_SERVICES => {
            let mut s: ServiceInstance = super::catalog::decode_service(value)?;
            c(&mut s.create_index);
            c(&mut s.modify_index);
            Ok(postcard::to_stdvec(&s)?)
        }
        crate::db::CF_CHECKS => clamp(value, |h: &mut HealthCheck| {
            c(&mut h.create_index);
            c(&mut h.modify_index);
        }),
        crate::db::CF_SESSIONS => clamp(value, |s: &mut Session| {
            c(&mut s.create_index);
            c(&mut s.modify_index);
            c(&mut s.renewed_index);
        }),
        // The rest carry no raft index: derived indexes, lock-delay times, events
        // (ordered by Lamport time).
        _ => Ok(value.to_vec()),
    }
}

/// A consistent snapshot of the tables: every read through it sees the same applied
/// index, however many writes are applied meanwhile.
pub struct ReadView<'a> {
    db: &'a DB,
    snap: rocksdb::Snapshot<'a>,
}

impl ReadView<'_> {
    fn opts(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&self.snap);
        opts
    }

    pub fn applied_index(&self) -> Result<u64, StoreError> {
        Ok(read_applied(self.db, &self.opts())?)
    }

    pub fn kv_index(&self) -> Result<u64, StoreError> {
        Ok(read_u64(self.db, &self.opts(), KV_INDEX_KEY)?)
    }

    /// Consul's catalog table index.
    pub fn catalog_index(&self) -> Result<u64, StoreError> {
        Ok(read_u64(self.db, &self.opts(), CATALOG_INDEX_KEY)?)
    }

    /// Consul's sessions table index.
    pub fn sessions_index(&self) -> Result<u64, StoreError> {
        Ok(read_u64(self.db, &self.opts(), SESSIONS_INDEX_KEY)?)
    }

    pub fn catalog(&self) -> CatalogRead<'_, Self> {
        CatalogRead(self)
    }

    pub fn sessions(&self) -> SessionRead<'_, Self> {
        SessionRead(self)
    }

    pub fn events(&self) -> super::event::EventRead<'_, Self> {
        super::event::EventRead(self)
    }
}

impl RawRead for ReadView<'_> {
    fn get_raw(&self, cf_name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        db_get(self.db, &self.opts(), cf_name, key)
    }

    fn scan_raw(
        &self,
        cf_name: &'static str,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        db_scan(self.db, self.opts(), cf_name, prefix)
    }
}

impl KvRead for ReadView<'_> {
    fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, StoreError> {
        kv::get(self.db, &self.opts(), key)
    }

    fn kv_keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        kv::keys_with_prefix(self.db, self.opts(), prefix)
    }
}

/// A KV read with the indexes it reflects.
#[derive(Debug, Clone)]
pub struct KvQuery<T> {
    /// The state machine's applied index at the read.
    pub applied: u64,
    /// Consul's `X-Consul-Index` for this query (never 0).
    pub index: u64,
    pub value: T,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::kv::LockOp;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(dir.path()).unwrap();
        (dir, StateStore::new(db))
    }

    fn apply(s: &StateStore, index: u64, c: Command) -> (CommandResult, Vec<KvChange>) {
        let mut ab = s.begin();
        let Applied { result, changes } = s.apply(&mut ab, index, 0, &c).unwrap();
        let changes = changes.iter().filter_map(|c| c.as_kv().cloned()).collect();
        s.put_applied_index(ab.write_batch(), index);
        s.db().write(ab.into_write_batch()).unwrap();
        (result, changes)
    }

    /// A check on node `n1` (node-level when `service_id` is empty).
    fn n1_check(
        id: &str,
        service_id: &str,
        status: crate::state::catalog::CheckStatus,
    ) -> crate::state::catalog::HealthCheck {
        crate::state::catalog::HealthCheck {
            node: "n1".into(),
            check_id: id.into(),
            name: id.into(),
            status,
            notes: String::new(),
            output: String::new(),
            service_id: service_id.into(),
            spec: Default::default(),
            create_index: 0,
            modify_index: 0,
        }
    }

    fn put(key: &str, value: &str, cas: Option<u64>) -> Command {
        Command::KvPut {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            flags: 0,
            cas,
        }
    }

    #[test]
    fn cas_create_only_and_modify_index() {
        let (_d, s) = store();
        assert!(apply(&s, 1, put("a", "1", Some(0))).0.succeeded());
        assert!(!apply(&s, 2, put("a", "2", Some(0))).0.succeeded());
        assert!(!apply(&s, 3, put("a", "2", Some(7))).0.succeeded());
        assert!(apply(&s, 4, put("a", "2", Some(1))).0.succeeded());
        let q = s.kv_get("a").unwrap();
        let (idx, e) = (q.applied, q.value.unwrap());
        assert_eq!(
            (idx, e.create_index, e.modify_index, e.value.as_slice()),
            (4, 1, 4, &b"2"[..])
        );
    }

    #[test]
    fn identical_put_keeps_index_and_emits_nothing() {
        let (_d, s) = store();
        apply(&s, 1, put("a", "x", None));
        let (res, changes) = apply(&s, 2, put("a", "x", None));
        assert!(res.succeeded());
        assert!(changes.is_empty());
        assert_eq!(s.kv_get("a").unwrap().value.unwrap().modify_index, 1);
    }

    #[test]
    fn delete_cas_and_tree() {
        let (_d, s) = store();
        apply(&s, 1, put("p/a", "1", None));
        apply(&s, 2, put("p/b", "1", None));
        apply(&s, 3, put("q", "1", None));
        assert!(!apply(
            &s,
            4,
            Command::KvDelete {
                key: "p/a".into(),
                cas: Some(0)
            }
        )
        .0
        .succeeded());
        assert!(apply(
            &s,
            5,
            Command::KvDelete {
                key: "missing".into(),
                cas: Some(3)
            }
        )
        .0
        .succeeded());
        let (_, changes) = apply(
            &s,
            6,
            Command::KvDeleteTree {
                prefix: "p/".into(),
            },
        );
        assert_eq!(changes.len(), 2);
        let rest = s.kv_list("").unwrap().value;
        assert_eq!(
            rest.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            vec!["q"]
        );
    }

    #[test]
    fn commands_in_one_batch_see_each_other() {
        let (_d, s) = store();
        let mut ab = s.begin();
        assert!(s
            .apply(&mut ab, 1, 0, &put("k", "a", Some(0)))
            .unwrap()
            .result
            .succeeded());
        // Same batch: the create-only put must now fail, and a CAS on index 1 succeed.
        assert!(!s
            .apply(&mut ab, 1, 0, &put("k", "b", Some(0)))
            .unwrap()
            .result
            .succeeded());
        assert!(s
            .apply(&mut ab, 2, 0, &put("k", "c", Some(1)))
            .unwrap()
            .result
            .succeeded());
        s.apply(&mut ab, 2, 0, &put("t/x", "1", None)).unwrap();
        let deleted = s
            .apply(
                &mut ab,
                3,
                0,
                &Command::KvDeleteTree {
                    prefix: "t/".into(),
                },
            )
            .unwrap()
            .changes;
        assert_eq!(deleted.len(), 1);
        s.put_applied_index(ab.write_batch(), 3);
        s.db().write(ab.into_write_batch()).unwrap();
        let q = s.kv_get("k").unwrap();
        assert_eq!((q.applied, q.value.unwrap().value), (3, b"c".to_vec()));
        assert!(s.kv_list("t/").unwrap().value.is_empty());
    }

    #[test]
    fn dump_and_replace_round_trip() {
        let (_d, s) = store();
        apply(&s, 1, put("a", "1", None));
        apply(&s, 2, put("b", "2", None));
        let dump = {
            let snap = s.db().snapshot();
            s.dump(&snap).unwrap()
        };
        let (_d2, t) = store();
        apply(&t, 1, put("zzz", "old", None));
        let mut b = WriteBatch::default();
        t.replace_all(&mut b, &dump, 2).unwrap();
        t.db().write(b).unwrap();
        let q = t.kv_list("").unwrap();
        let (idx, all) = (q.applied, q.value);
        assert_eq!(idx, 2);
        assert_eq!(
            all.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }

    /// Apply reports typed changes, each naming the services whose health it decides.
    #[test]
    fn catalog_applies_report_typed_changes() {
        use crate::state::catalog::{
            CheckStatus, Deregistration, Node, Registration, ServiceInstance,
        };
        let (_d, s) = store();
        let check = |id: &str, service_id: &str| n1_check(id, service_id, CheckStatus::Passing);
        let reg = Registration {
            node: Node {
                name: "n1".into(),
                address: "10.0.0.1".into(),
                ..Default::default()
            },
            skip_node_update: false,
            service: Some(ServiceInstance {
                id: "web1".into(),
                name: "web".into(),
                ..Default::default()
            }),
            checks: vec![check("web-alive", "web1"), check("node-alive", "")],
        };
        let mut ab = s.begin();
        let applied = s
            .apply(&mut ab, 5, 0, &Command::CatalogRegister(reg))
            .unwrap();
        let kinds: Vec<(String, Vec<String>)> = applied
            .changes
            .iter()
            .map(|c| match c {
                Change::Node { name, services, .. } => (format!("node {name}"), services.clone()),
                Change::Service { name, instance, .. } => {
                    assert_eq!(instance.as_ref().unwrap().modify_index, 5);
                    (format!("service {name}"), vec![])
                }
                Change::Check {
                    check_id, services, ..
                } => (format!("check {check_id}"), services.clone()),
                other => panic!("a registration changed {other:?}"),
            })
            .collect();
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            kinds,
            vec![
                ("node n1".to_string(), v(&["web"])),
                ("service web".to_string(), vec![]),
                ("check web-alive".to_string(), v(&["web"])),
                ("check node-alive".to_string(), v(&["web"])),
            ]
        );
        assert!(applied.changes[1]
            .topics()
            .contains(&"catalog/service/web".to_string()));
        s.db().write(ab.into_write_batch()).unwrap();

        // Deregistering the service deletes it and its check, and reports both.
        let mut ab = s.begin();
        let applied = s
            .apply(
                &mut ab,
                6,
                0,
                &Command::CatalogDeregister(Deregistration {
                    node: "n1".into(),
                    service_id: Some("web1".into()),
                    check_id: None,
                }),
            )
            .unwrap();
        assert!(matches!(
            &applied.changes[..],
            [
                Change::Check { check_id, check: None, .. },
                Change::Service { id, instance: None, .. },
            ] if check_id == "web-alive" && id == "web1"
        ));
    }

    /// The service-name index follows registrations, renames and deregistrations, is
    /// rebuilt from the services of an installed snapshot, and is built for data that
    /// predates it.
    /// An instance as every build before `ServiceExtra` encoded it (postcard, by hand:
    /// strings and lists are a length then the items, integers varints): node "n", id and
    /// name "w", tags ["t"], no address, port 80, no meta, weights 1/1, no tag override,
    /// create index 5, modify index 6.
    const V1_SERVICE: &[u8] = &[
        1, b'n', 1, b'w', 1, b'w', 1, 1, b't', 0, 80, 0, 1, 1, 0, 5, 6,
    ];

    fn v1_instance() -> crate::state::catalog::ServiceInstance {
        crate::state::catalog::ServiceInstance {
            node: "n".into(),
            id: "w".into(),
            name: "w".into(),
            tags: vec!["t".into()],
            port: 80,
            create_index: 5,
            modify_index: 6,
            ..Default::default()
        }
    }

    #[test]
    fn service_records_of_the_older_layout_still_decode() {
        use crate::state::catalog::{decode_service, ServiceExtra, ServiceInstanceV1};
        // The frozen type is the old layout, byte for byte.
        let v1: ServiceInstanceV1 = postcard::from_bytes(V1_SERVICE).unwrap();
        assert_eq!(postcard::to_stdvec(&v1).unwrap(), V1_SERVICE);
        assert_eq!(decode_service(V1_SERVICE).unwrap(), v1_instance());
        // Today's layout is the old one plus the extras, and decodes as itself.
        let mut now = v1_instance();
        now.extra = ServiceExtra {
            tagged_addresses: [("wan".to_string(), ("198.51.100.1".to_string(), 8080))].into(),
            kind: "connect-proxy".into(),
            proxy: r#"{"DestinationServiceName":"w"}"#.into(),
            locality: Some(("eu-west-1".into(), "a".into())),
        };
        let bytes = postcard::to_stdvec(&now).unwrap();
        assert!(bytes.starts_with(V1_SERVICE));
        assert_eq!(decode_service(&bytes).unwrap(), now);
        // Without extras too: the older decode must not win on a prefix.
        let plain = postcard::to_stdvec(&v1_instance()).unwrap();
        assert_ne!(plain, V1_SERVICE);
        assert_eq!(decode_service(&plain).unwrap(), v1_instance());
    }

    #[test]
    fn raft_entries_of_the_older_layout_apply() {
        use crate::state::catalog::ServiceExtra;
        // `Command::CatalogRegister` as older builds wrote it: variant 6, a node (no id,
        // name "n", address "a", datacenter "dc1", no tagged addresses or meta, indexes
        // 0), no SkipNodeUpdate, the service above, no checks.
        let mut entry = vec![6, 0, 1, b'n', 1, b'a', 3, b'd', b'c', b'1', 0, 0, 0, 0, 0, 1];
        entry.extend_from_slice(V1_SERVICE);
        entry.push(0);
        let command: Command = postcard::from_bytes(&entry).unwrap();
        assert!(matches!(command, Command::CatalogRegisterV1(_)), "{command:?}");
        let (_d, s) = store();
        assert!(apply(&s, 9, command).0.succeeded());
        let got = s.view().catalog().service("n", "w").unwrap().unwrap();
        assert_eq!((got.tags, got.port, got.modify_index), (vec!["t".to_string()], 80, 9));
        // Today's register carries the extras through raft into the table, and a change
        // to them alone is a change.
        let mut reg = crate::state::catalog::Registration {
            node: crate::state::catalog::Node {
                name: "n".into(),
                address: "a".into(),
                datacenter: "dc1".into(),
                ..Default::default()
            },
            skip_node_update: false,
            service: Some(v1_instance()),
            checks: vec![],
        };
        reg.service.as_mut().unwrap().extra = ServiceExtra {
            kind: "mesh-gateway".into(),
            ..ServiceExtra::default()
        };
        let wire = postcard::to_stdvec(&Command::CatalogRegister(reg)).unwrap();
        let command: Command = postcard::from_bytes(&wire).unwrap();
        apply(&s, 10, command);
        let got = s.view().catalog().service("n", "w").unwrap().unwrap();
        assert_eq!((got.extra.kind.as_str(), got.modify_index), ("mesh-gateway", 10));
    }

    #[test]
    fn service_name_index_follows_the_catalog() {
        use crate::state::catalog::{Deregistration, Node, Registration, ServiceInstance};
        let (_d, s) = store();
        let register = |index: u64, node: &str, id: &str, name: &str| {
            let mut ab = s.begin();
            let reg = Registration {
                node: Node {
                    name: node.into(),
                    address: "10.0.0.1".into(),
                    ..Default::default()
                },
                skip_node_update: false,
                service: Some(ServiceInstance {
                    id: id.into(),
                    name: name.into(),
                    ..Default::default()
                }),
                checks: vec![],
            };
            s.apply(&mut ab, index, 0, &Command::CatalogRegister(reg))
                .unwrap();
            s.put_applied_index(ab.write_batch(), index);
            s.db().write(ab.into_write_batch()).unwrap();
        };
        let instances = |s: &StateStore, name: &str| -> Vec<(String, String)> {
            let view = s.view();
            view.catalog()
                .service_instances(name)
                .unwrap()
                .into_iter()
                .map(|i| (i.node, i.id))
                .collect()
        };
        let pair = |n: &str, i: &str| (n.to_string(), i.to_string());
        register(1, "n1", "web1", "web");
        register(2, "n2", "web2", "web");
        register(3, "n1", "db1", "db");
        assert_eq!(
            instances(&s, "web"),
            vec![pair("n1", "web1"), pair("n2", "web2")]
        );
        // "we" is a prefix of "web" but a different service.
        assert!(instances(&s, "we").is_empty());
        // Renaming an instance moves it in the index.
        register(4, "n2", "web2", "api");
        assert_eq!(instances(&s, "web"), vec![pair("n1", "web1")]);
        assert_eq!(instances(&s, "api"), vec![pair("n2", "web2")]);
        // Deregistering a node removes its instances.
        let mut ab = s.begin();
        s.apply(
            &mut ab,
            5,
            0,
            &Command::CatalogDeregister(Deregistration {
                node: "n1".into(),
                service_id: None,
                check_id: None,
            }),
        )
        .unwrap();
        s.db().write(ab.into_write_batch()).unwrap();
        assert!(instances(&s, "web").is_empty());
        assert!(instances(&s, "db").is_empty());

        // A snapshot installed elsewhere carries no index; it is rebuilt from services.
        let dump = {
            let snap = s.db().snapshot();
            s.dump(&snap).unwrap()
        };
        assert!(dump.records.iter().all(|(cf, _, _)| cf != CF_SERVICE_NAMES));
        let (_d2, t) = store();
        let mut b = WriteBatch::default();
        t.replace_all(&mut b, &dump, 5).unwrap();
        t.db().write(b).unwrap();
        assert_eq!(instances(&t, "api"), vec![pair("n2", "web2")]);

        // Data from before the index: built once at startup.
        let handle = cf(t.db(), CF_SERVICE_NAMES);
        let keys: Vec<_> = t
            .db()
            .iterator_cf(handle, IteratorMode::Start)
            .map(|i| i.unwrap().0)
            .collect();
        for k in keys {
            t.db().delete_cf(handle, k).unwrap();
        }
        t.db()
            .delete_cf(cf(t.db(), CF_SM_META), INDEX_VERSION_KEY)
            .unwrap();
        assert!(instances(&t, "api").is_empty());
        t.ensure_indexes().unwrap();
        assert_eq!(instances(&t, "api"), vec![pair("n2", "web2")]);
    }

    /// A check that moves from the node to one service changes the health answers of
    /// every service it decided before, so its change names them all.
    #[test]
    fn a_check_moving_between_services_names_both() {
        use crate::state::catalog::{
            CheckStatus, HealthCheck, Node, Registration, ServiceInstance,
        };
        let (_d, s) = store();
        let node = Node {
            name: "n1".into(),
            address: "10.0.0.1".into(),
            ..Default::default()
        };
        let mem = |service_id: &str| n1_check("mem", service_id, CheckStatus::Critical);
        let svc = |id: &str, name: &str| ServiceInstance {
            id: id.into(),
            name: name.into(),
            ..Default::default()
        };
        let run = |index: u64, service: Option<ServiceInstance>, checks: Vec<HealthCheck>| {
            let mut ab = s.begin();
            let reg = Registration {
                node: node.clone(),
                skip_node_update: false,
                service,
                checks,
            };
            let applied = s
                .apply(&mut ab, index, 0, &Command::CatalogRegister(reg))
                .unwrap();
            s.db().write(ab.into_write_batch()).unwrap();
            applied
        };
        run(1, Some(svc("api1", "api")), vec![]);
        run(2, Some(svc("web1", "web")), vec![mem("")]);
        let moved = run(3, None, vec![mem("web1")]);
        let services = moved
            .changes
            .iter()
            .find_map(|c| match c {
                Change::Check { services, .. } => Some(services.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(services, vec!["api".to_string(), "web".to_string()]);
    }

    fn at(s: &StateStore, index: u64, time_ns: u64, c: Command) -> CommandResult {
        let mut ab = s.begin();
        let applied = s.apply(&mut ab, index, time_ns, &c).unwrap();
        s.put_applied_index(ab.write_batch(), index);
        s.db().write(ab.into_write_batch()).unwrap();
        applied.result
    }

    /// Lock-delay is leader time carried by the entries: an acquire inside the window is
    /// refused, one after it succeeds, and the reaper's pass forgets ended windows. A
    /// release by a session that is gone is a plain false.
    #[test]
    fn lock_delay_runs_on_entry_time_and_is_swept() {
        let (_d, s) = store();
        let reg = crate::state::catalog::Registration {
            node: crate::state::catalog::Node {
                name: "n1".into(),
                address: "10.0.0.1".into(),
                ..Default::default()
            },
            skip_node_update: false,
            service: None,
            checks: vec![],
        };
        at(&s, 1, 0, Command::CatalogRegister(reg));
        let session = |id: &str| crate::state::session::Session {
            id: id.into(),
            name: String::new(),
            node: "n1".into(),
            lock_delay_ns: 10,
            behavior: crate::state::session::Behavior::Release,
            ttl: String::new(),
            ttl_ns: 0,
            node_checks: vec![],
            service_checks: vec![],
            create_index: 0,
            modify_index: 0,
            renewed_index: 0,
        };
        let lock = |op, id: &str| Command::KvLock {
            op,
            key: "k".into(),
            value: vec![],
            flags: 0,
            session: id.into(),
        };
        assert_eq!(
            at(&s, 2, 0, Command::SessionCreate(session("a"))),
            CommandResult::Session(Ok(None))
        );
        assert_eq!(
            at(&s, 3, 0, Command::SessionCreate(session("b"))),
            CommandResult::Session(Ok(None))
        );
        assert_eq!(
            at(&s, 4, 100, lock(LockOp::Acquire, "a")),
            CommandResult::Lock(Ok(true))
        );
        // a is destroyed at leader time 100: k may not be taken before 110.
        at(&s, 5, 100, Command::SessionDestroy { id: "a".into() });
        assert_eq!(
            at(&s, 6, 109, lock(LockOp::Acquire, "b")),
            CommandResult::Lock(Ok(false))
        );
        assert_eq!(
            at(&s, 7, 109, lock(LockOp::Release, "a")),
            CommandResult::Lock(Ok(false))
        );
        assert!(s.has_lock_delays().unwrap());
        at(&s, 8, 109, Command::KvReapTombstones { up_to: 0 });
        assert!(s.has_lock_delays().unwrap(), "not yet ended");
        at(&s, 9, 110, Command::KvReapTombstones { up_to: 0 });
        assert!(!s.has_lock_delays().unwrap(), "swept once ended");
        assert_eq!(
            at(&s, 10, 110, lock(LockOp::Acquire, "b")),
            CommandResult::Lock(Ok(true))
        );
        let held = s.kv_get("k").unwrap().value.unwrap();
        assert_eq!((held.session.as_str(), held.lock_index), ("b", 2));
        // b's held-key index lets invalidation find k without a scan.
        let view = s.view();
        assert_eq!(
            view.sessions().held_keys("b").unwrap(),
            vec!["k".to_string()]
        );
        assert!(view.sessions().held_keys("a").unwrap().is_empty());
    }
}
