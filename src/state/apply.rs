//! One apply batch: every entry openraft hands to `apply` in one call is applied into a
//! single RocksDB `WriteBatch`, committed once together with the last applied index.
//! Reads during the batch go through an overlay of what the batch has written so far, so
//! a command sees the effect of every command before it (a CAS right after a put of the
//! same key, in the same raft entry or the next one).

use std::collections::BTreeMap;

use rocksdb::WriteBatch;

use super::kv::{self, KvEntry, KvRead, KvWrite};
use super::store::{StateStore, StoreError, KV_INDEX_KEY};
use crate::db::{cf, CF_KV, CF_KV_TOMBSTONES, CF_SM_META};

pub struct ApplyBatch<'a> {
    store: &'a StateStore,
    batch: WriteBatch,
    /// Keys written by this batch: `Some` = current entry, `None` = deleted.
    kv_overlay: BTreeMap<String, Option<KvEntry>>,
    /// Highest index that changed the KV table in this batch.
    kv_index: Option<u64>,
}

impl<'a> ApplyBatch<'a> {
    pub(super) fn new(store: &'a StateStore) -> Self {
        ApplyBatch {
            store,
            batch: WriteBatch::default(),
            kv_overlay: BTreeMap::new(),
            kv_index: None,
        }
    }

    /// The write batch, for the raft layer to add its own metadata.
    pub fn write_batch(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    /// Finishes the batch for the caller to commit.
    pub fn into_write_batch(mut self) -> WriteBatch {
        if let Some(index) = self.kv_index {
            let db = self.store.db();
            self.batch
                .put_cf(cf(db, CF_SM_META), KV_INDEX_KEY, index.to_be_bytes());
        }
        self.batch
    }

    /// Removes tombstones created at or before `up_to`.
    pub fn reap_tombstones(&mut self, up_to: u64) -> Result<usize, StoreError> {
        let db = self.store.db();
        let handle = cf(db, CF_KV_TOMBSTONES);
        let mut reaped = 0;
        for item in db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
            let (k, v) = item?;
            if kv::decode_index(&v) <= up_to {
                self.batch.delete_cf(handle, k);
                reaped += 1;
            }
        }
        Ok(reaped)
    }
}

impl KvRead for ApplyBatch<'_> {
    fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, StoreError> {
        match self.kv_overlay.get(key) {
            Some(entry) => Ok(entry.clone()),
            None => kv::get(self.store.db(), &rocksdb::ReadOptions::default(), key),
        }
    }

    fn kv_keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let committed =
            kv::keys_with_prefix(self.store.db(), rocksdb::ReadOptions::default(), prefix)?;
        Ok(kv::merge_overlay(committed, &self.kv_overlay, prefix))
    }
}

impl KvWrite for ApplyBatch<'_> {
    fn kv_put(&mut self, entry: KvEntry) {
        let db = self.store.db();
        self.batch
            .put_cf(cf(db, CF_KV), entry.key.as_bytes(), kv::encode(&entry));
        self.batch
            .delete_cf(cf(db, CF_KV_TOMBSTONES), entry.key.as_bytes());
        self.kv_index = Some(self.kv_index.unwrap_or(0).max(entry.modify_index));
        self.kv_overlay.insert(entry.key.clone(), Some(entry));
    }

    fn kv_delete(&mut self, key: &str, index: u64) {
        let db = self.store.db();
        self.batch.delete_cf(cf(db, CF_KV), key.as_bytes());
        self.batch.put_cf(
            cf(db, CF_KV_TOMBSTONES),
            key.as_bytes(),
            index.to_be_bytes(),
        );
        self.kv_index = Some(self.kv_index.unwrap_or(0).max(index));
        self.kv_overlay.insert(key.to_string(), None);
    }
}
