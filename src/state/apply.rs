//! One apply batch: every entry openraft hands to `apply` in one call is applied into a
//! single RocksDB `WriteBatch`, committed once together with the last applied index.
//! Reads during the batch go through an overlay of what the batch has written so far, so
//! a command sees the effect of every command before it (a CAS right after a put of the
//! same key, in the same raft entry or the next one).

use std::collections::{BTreeMap, BTreeSet};

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::kv::{self, KvEntry};
use super::store::{StateStore, StoreError};
use crate::db::{cf, CF_KV};

pub struct ApplyBatch<'a> {
    store: &'a StateStore,
    batch: WriteBatch,
    /// Keys written by this batch: `Some` = current entry, `None` = deleted.
    kv_overlay: BTreeMap<String, Option<KvEntry>>,
}

impl<'a> ApplyBatch<'a> {
    pub(super) fn new(store: &'a StateStore) -> Self {
        ApplyBatch {
            store,
            batch: WriteBatch::default(),
            kv_overlay: BTreeMap::new(),
        }
    }

    /// The write batch, for the raft layer to add its own metadata and commit.
    pub fn write_batch(&mut self) -> &mut WriteBatch {
        &mut self.batch
    }

    pub fn into_write_batch(self) -> WriteBatch {
        self.batch
    }

    pub fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, StoreError> {
        match self.kv_overlay.get(key) {
            Some(entry) => Ok(entry.clone()),
            None => kv::get(self.store.db(), key),
        }
    }

    pub fn kv_put(&mut self, entry: KvEntry) {
        let db = self.store.db();
        self.batch
            .put_cf(cf(db, CF_KV), entry.key.as_bytes(), kv::encode(&entry));
        self.kv_overlay.insert(entry.key.clone(), Some(entry));
    }

    pub fn kv_delete(&mut self, key: &str) {
        let db = self.store.db();
        self.batch.delete_cf(cf(db, CF_KV), key.as_bytes());
        self.kv_overlay.insert(key.to_string(), None);
    }

    /// Keys that currently exist under `prefix`, committed state merged with this batch.
    pub fn kv_keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let db = self.store.db();
        let mut keys = BTreeSet::new();
        for item in db.iterator_cf(
            cf(db, CF_KV),
            IteratorMode::From(prefix.as_bytes(), Direction::Forward),
        ) {
            let (k, _) = item?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            keys.insert(String::from_utf8_lossy(&k).into_owned());
        }
        for (k, v) in self.kv_overlay.range(prefix.to_string()..) {
            if !k.starts_with(prefix) {
                break;
            }
            if v.is_some() {
                keys.insert(k.clone());
            } else {
                keys.remove(k);
            }
        }
        Ok(keys.into_iter().collect())
    }
}
