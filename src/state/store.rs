//! The state machine's tables as a whole: applying a command into a write batch, reading
//! a consistent view together with the index it reflects, and dumping or replacing every
//! table for raft snapshots.

use std::sync::Arc;

use rocksdb::{IteratorMode, ReadOptions, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use super::apply::ApplyBatch;
use super::command::{Command, CommandResult};
use super::kv::{self, KvChange, KvEntry};
use crate::db::{cf, CF_SM_META, STATE_CFS};

/// Key in `sm_meta` holding the index of the last applied entry, written in the same batch
/// as the data it describes.
const APPLIED_INDEX_KEY: &[u8] = b"applied_index";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record: {0}")]
    Decode(#[from] postcard::Error),
}

/// Every table's contents, as carried inside a raft snapshot.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TablesDump {
    /// One (column family, key, value) triple per record, raw.
    pub records: Vec<(String, Vec<u8>, Vec<u8>)>,
}

/// Owns the state tables inside the shared database.
pub struct StateStore {
    db: Arc<DB>,
}

impl StateStore {
    pub fn new(db: Arc<DB>) -> Self {
        StateStore { db }
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    /// Starts a batch of applies that commit together.
    pub fn begin(&self) -> ApplyBatch<'_> {
        ApplyBatch::new(self)
    }

    /// Applies `command` at log `index` into `ab` (which the caller commits together with
    /// raft's own metadata) and reports the result and the keys it changed.
    pub fn apply(
        &self,
        ab: &mut ApplyBatch<'_>,
        index: u64,
        command: &Command,
    ) -> Result<(CommandResult, Vec<KvChange>), StoreError> {
        let (succeeded, changes) = match command {
            Command::KvPut {
                key,
                value,
                flags,
                cas,
            } => {
                let (ok, change) = kv::apply_put(ab, index, key, value, *flags, *cas)?;
                (ok, change.into_iter().collect())
            }
            Command::KvDelete { key, cas } => {
                let (ok, change) = kv::apply_delete(ab, key, *cas)?;
                (ok, change.into_iter().collect())
            }
            Command::KvDeleteTree { prefix } => (true, kv::apply_delete_tree(ab, prefix)?),
        };
        Ok((CommandResult::Kv { succeeded }, changes))
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

    /// One key and the index the read reflects, from a single consistent view.
    pub fn get(&self, key: &str) -> Result<(u64, Option<KvEntry>), StoreError> {
        let snap = self.db.snapshot();
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        let index = read_applied(&self.db, &opts)?;
        let value = self
            .db
            .get_cf_opt(cf(&self.db, crate::db::CF_KV), key.as_bytes(), &opts)?;
        let entry = value.map(|v| kv::decode(&v)).transpose()?;
        Ok((index, entry))
    }

    /// Every entry under `prefix` and the index the read reflects, from one view.
    pub fn list(&self, prefix: &str) -> Result<(u64, Vec<KvEntry>), StoreError> {
        let snap = self.db.snapshot();
        let mut opts = ReadOptions::default();
        opts.set_snapshot(&snap);
        let index = read_applied(&self.db, &opts)?;
        let mut iter_opts = ReadOptions::default();
        iter_opts.set_snapshot(&snap);
        let iter = self.db.iterator_cf_opt(
            cf(&self.db, crate::db::CF_KV),
            iter_opts,
            IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push(kv::decode(&v)?);
        }
        Ok((index, out))
    }

    /// Dumps every table as seen by `snap`, for a raft snapshot built concurrently with
    /// apply.
    pub fn dump(&self, snap: &rocksdb::Snapshot<'_>) -> Result<TablesDump, StoreError> {
        let mut dump = TablesDump::default();
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
        for (name, k, v) in &dump.records {
            if STATE_CFS.contains(&name.as_str()) {
                batch.put_cf(cf(&self.db, name), k, v);
            }
        }
        self.put_applied_index(batch, index);
        Ok(())
    }
}

fn read_applied(db: &DB, opts: &ReadOptions) -> Result<u64, rocksdb::Error> {
    Ok(db
        .get_cf_opt(cf(db, CF_SM_META), APPLIED_INDEX_KEY, opts)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(dir.path()).unwrap();
        (dir, StateStore::new(db))
    }

    fn apply(s: &StateStore, index: u64, c: Command) -> (CommandResult, Vec<KvChange>) {
        let mut ab = s.begin();
        let out = s.apply(&mut ab, index, &c).unwrap();
        s.put_applied_index(ab.write_batch(), index);
        s.db().write(ab.into_write_batch()).unwrap();
        out
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
        let (idx, e) = s.get("a").unwrap();
        let e = e.unwrap();
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
        assert_eq!(s.get("a").unwrap().1.unwrap().modify_index, 1);
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
        let (_, rest) = s.list("").unwrap();
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
            .apply(&mut ab, 1, &put("k", "a", Some(0)))
            .unwrap()
            .0
            .succeeded());
        // Same batch: the create-only put must now fail, and a CAS on index 1 succeed.
        assert!(!s
            .apply(&mut ab, 1, &put("k", "b", Some(0)))
            .unwrap()
            .0
            .succeeded());
        assert!(s
            .apply(&mut ab, 2, &put("k", "c", Some(1)))
            .unwrap()
            .0
            .succeeded());
        s.apply(&mut ab, 2, &put("t/x", "1", None)).unwrap();
        let (_, deleted) = s
            .apply(
                &mut ab,
                3,
                &Command::KvDeleteTree {
                    prefix: "t/".into(),
                },
            )
            .unwrap();
        assert_eq!(deleted.len(), 1);
        s.put_applied_index(ab.write_batch(), 3);
        s.db().write(ab.into_write_batch()).unwrap();
        let (idx, e) = s.get("k").unwrap();
        assert_eq!((idx, e.unwrap().value), (3, b"c".to_vec()));
        assert!(s.list("t/").unwrap().1.is_empty());
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
        let (idx, all) = t.list("").unwrap();
        assert_eq!(idx, 2);
        assert_eq!(
            all.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
    }
}
