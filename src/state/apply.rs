//! One apply batch: every entry openraft hands to `apply` in one call is applied into a
//! single RocksDB `WriteBatch`, committed once together with the last applied index.
//! Reads during the batch go through an overlay of what the batch has written so far (for
//! every column family), so a command sees the effect of every command before it: a CAS
//! right after a put of the same key, a check registered right after its service.

use std::collections::BTreeMap;

use rocksdb::{Direction, IteratorMode, ReadOptions, WriteBatch};

use super::kv::{self, KvEntry, KvRead, KvWrite};
use super::session;
use super::store::{StateStore, StoreError, CATALOG_INDEX_KEY, KV_INDEX_KEY, SESSIONS_INDEX_KEY};
use crate::db::{cf, CF_KV, CF_KV_TOMBSTONES, CF_LOCK_DELAYS, CF_SM_META};

/// Raw reads, from committed state plus (for a batch) its own writes.
pub trait RawRead {
    fn get_raw(&self, cf_name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every (key, value) whose key starts with `prefix`, in key order.
    fn scan_raw(
        &self,
        cf_name: &'static str,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;
}

/// Committed reads through `opts` (which may carry a snapshot).
pub(super) fn db_get(
    db: &rocksdb::DB,
    opts: &ReadOptions,
    cf_name: &str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(db.get_cf_opt(cf(db, cf_name), key, opts)?)
}

pub(super) fn db_scan(
    db: &rocksdb::DB,
    opts: ReadOptions,
    cf_name: &str,
    prefix: &[u8],
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for item in db.iterator_cf_opt(
        cf(db, cf_name),
        opts,
        IteratorMode::From(prefix, Direction::Forward),
    ) {
        let (k, v) = item?;
        if !k.starts_with(prefix) {
            break;
        }
        out.push((k.to_vec(), v.to_vec()));
    }
    Ok(out)
}

pub struct ApplyBatch<'a> {
    store: &'a StateStore,
    batch: WriteBatch,
    /// What this batch wrote: `Some` = value, `None` = deleted.
    overlay: BTreeMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
    /// Highest index that changed the KV table in this batch.
    kv_index: Option<u64>,
    /// Highest index that changed the catalog in this batch.
    catalog_index: Option<u64>,
    /// Highest index that changed the sessions table in this batch.
    sessions_index: Option<u64>,
}

impl<'a> ApplyBatch<'a> {
    pub(super) fn new(store: &'a StateStore) -> Self {
        ApplyBatch {
            store,
            batch: WriteBatch::default(),
            overlay: BTreeMap::new(),
            kv_index: None,
            catalog_index: None,
            sessions_index: None,
        }
    }

    /// The write batch, for the raft layer to add its own metadata.
    pub fn write_batch(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    /// Finishes the batch for the caller to commit.
    pub fn into_write_batch(mut self) -> WriteBatch {
        let db = self.store.db();
        if let Some(index) = self.kv_index {
            self.batch
                .put_cf(cf(db, CF_SM_META), KV_INDEX_KEY, index.to_be_bytes());
        }
        if let Some(index) = self.catalog_index {
            self.batch
                .put_cf(cf(db, CF_SM_META), CATALOG_INDEX_KEY, index.to_be_bytes());
        }
        if let Some(index) = self.sessions_index {
            self.batch
                .put_cf(cf(db, CF_SM_META), SESSIONS_INDEX_KEY, index.to_be_bytes());
        }
        self.batch
    }

    pub fn put_raw(&mut self, cf_name: &'static str, key: Vec<u8>, value: Vec<u8>) {
        self.batch
            .put_cf(cf(self.store.db(), cf_name), &key, &value);
        self.overlay.insert((cf_name, key), Some(value));
    }

    pub fn delete_raw(&mut self, cf_name: &'static str, key: Vec<u8>) {
        self.batch.delete_cf(cf(self.store.db(), cf_name), &key);
        self.overlay.insert((cf_name, key), None);
    }

    /// Records that the catalog changed at `index`.
    pub fn bump_catalog_index(&mut self, index: u64) {
        self.catalog_index = Some(self.catalog_index.unwrap_or(0).max(index));
    }

    /// Records that the sessions table changed at `index`.
    pub fn bump_sessions_index(&mut self, index: u64) {
        self.sessions_index = Some(self.sessions_index.unwrap_or(0).max(index));
    }

    /// Removes the lock-delays that ended at or before leader time `time_ns`.
    pub fn sweep_lock_delays(&mut self, time_ns: u64) -> Result<usize, StoreError> {
        let mut swept = 0;
        for (k, v) in self.scan_raw(CF_LOCK_DELAYS, b"")? {
            if kv::decode_index(&v) <= time_ns {
                self.delete_raw(CF_LOCK_DELAYS, k);
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Removes tombstones created at or before `up_to`.
    pub fn reap_tombstones(&mut self, up_to: u64) -> Result<usize, StoreError> {
        let mut reaped = 0;
        for (k, v) in self.scan_raw(CF_KV_TOMBSTONES, b"")? {
            if kv::decode_index(&v) <= up_to {
                self.delete_raw(CF_KV_TOMBSTONES, k);
                reaped += 1;
            }
        }
        Ok(reaped)
    }
}

impl RawRead for ApplyBatch<'_> {
    fn get_raw(&self, cf_name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.overlay.get(&(cf_name, key.to_vec())) {
            Some(v) => Ok(v.clone()),
            None => db_get(self.store.db(), &ReadOptions::default(), cf_name, key),
        }
    }

    fn scan_raw(
        &self,
        cf_name: &'static str,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            db_scan(self.store.db(), ReadOptions::default(), cf_name, prefix)?
                .into_iter()
                .collect();
        for ((c, k), v) in self.overlay.range((cf_name, prefix.to_vec())..) {
            if *c != cf_name || !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }
}

impl KvRead for ApplyBatch<'_> {
    fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, StoreError> {
        match self.get_raw(CF_KV, key.as_bytes())? {
            Some(v) => Ok(Some(kv::decode(&v)?)),
            None => Ok(None),
        }
    }

    fn kv_keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .scan_raw(CF_KV, prefix.as_bytes())?
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
            .collect())
    }
}

impl KvWrite for ApplyBatch<'_> {
    fn kv_put(&mut self, entry: KvEntry) -> Result<(), StoreError> {
        let old = self
            .kv_get(&entry.key)?
            .map(|e| e.session)
            .unwrap_or_default();
        session::track_holder(self, &entry.key, &old, &entry.session);
        self.kv_index = Some(self.kv_index.unwrap_or(0).max(entry.modify_index));
        let key = entry.key.as_bytes().to_vec();
        self.put_raw(CF_KV, key.clone(), kv::encode(&entry));
        self.delete_raw(CF_KV_TOMBSTONES, key);
        Ok(())
    }

    fn kv_delete(&mut self, key: &str, index: u64) -> Result<(), StoreError> {
        let old = self.kv_get(key)?.map(|e| e.session).unwrap_or_default();
        session::track_holder(self, key, &old, "");
        self.kv_index = Some(self.kv_index.unwrap_or(0).max(index));
        self.delete_raw(CF_KV, key.as_bytes().to_vec());
        self.put_raw(
            CF_KV_TOMBSTONES,
            key.as_bytes().to_vec(),
            index.to_be_bytes().to_vec(),
        );
        Ok(())
    }
}

impl kv::LockContext for ApplyBatch<'_> {
    fn session_exists(&self, id: &str) -> Result<bool, StoreError> {
        Ok(session::SessionRead(self).get(id)?.is_some())
    }

    fn lock_delay_until(&self, key: &str) -> Result<u64, StoreError> {
        session::SessionRead(self).lock_delay_until(key)
    }
}
