//! The KV table: Consul's KVPair semantics (create/modify/lock indexes, flags, CAS) as
//! applied by the state machine, plus the reads that serve `GET /v1/kv` and `KV.Get/List`.

use rocksdb::DB;
use serde::{Deserialize, Serialize};

use super::apply::ApplyBatch;
use super::store::StoreError;
use crate::db::{cf, CF_KV};

/// One stored key, as persisted in the `kv` column family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvEntry {
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    pub create_index: u64,
    pub modify_index: u64,
    pub lock_index: u64,
    /// Lock holder; empty when unlocked.
    pub session: String,
}

/// One key changed by one raft entry: the new entry, or `None` when it was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvChange {
    pub key: String,
    pub entry: Option<KvEntry>,
}

pub(super) fn encode(entry: &KvEntry) -> Vec<u8> {
    postcard::to_stdvec(entry).expect("KvEntry always encodes")
}

/// Decodes a stored entry. A value that does not decode means the database is corrupt.
pub fn decode(bytes: &[u8]) -> Result<KvEntry, postcard::Error> {
    postcard::from_bytes(bytes)
}

/// Reads one key from committed state.
pub fn get(db: &DB, key: &str) -> Result<Option<KvEntry>, StoreError> {
    match db.get_cf(cf(db, CF_KV), key.as_bytes())? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// Applies a put at `index`; returns whether the CAS condition held and the change, if
/// any. A put identical to the stored entry changes nothing, so its index stays and no
/// watcher wakes (Consul does the same).
pub fn apply_put(
    ab: &mut ApplyBatch<'_>,
    index: u64,
    key: &str,
    value: &[u8],
    flags: u64,
    cas: Option<u64>,
) -> Result<(bool, Option<KvChange>), StoreError> {
    let current = ab.kv_get(key)?;
    let allowed = match (cas, &current) {
        (None, _) => true,
        (Some(0), existing) => existing.is_none(),
        (Some(n), Some(existing)) => existing.modify_index == n,
        (Some(_), None) => false,
    };
    if !allowed {
        return Ok((false, None));
    }
    let entry = match current {
        Some(existing) => {
            if existing.value == value && existing.flags == flags {
                return Ok((true, None));
            }
            KvEntry {
                value: value.to_vec(),
                flags,
                modify_index: index,
                ..existing
            }
        }
        None => KvEntry {
            key: key.to_string(),
            value: value.to_vec(),
            flags,
            create_index: index,
            modify_index: index,
            lock_index: 0,
            session: String::new(),
        },
    };
    ab.kv_put(entry.clone());
    Ok((
        true,
        Some(KvChange {
            key: key.to_string(),
            entry: Some(entry),
        }),
    ))
}

/// Applies a single-key delete; with `cas`, only if the modify index matches. Deleting a
/// missing key succeeds and changes nothing.
pub fn apply_delete(
    ab: &mut ApplyBatch<'_>,
    key: &str,
    cas: Option<u64>,
) -> Result<(bool, Option<KvChange>), StoreError> {
    let Some(existing) = ab.kv_get(key)? else {
        return Ok((true, None));
    };
    if let Some(n) = cas {
        if existing.modify_index != n {
            return Ok((false, None));
        }
    }
    ab.kv_delete(key);
    Ok((
        true,
        Some(KvChange {
            key: key.to_string(),
            entry: None,
        }),
    ))
}

/// Applies a prefix delete; one change per deleted key.
pub fn apply_delete_tree(
    ab: &mut ApplyBatch<'_>,
    prefix: &str,
) -> Result<Vec<KvChange>, StoreError> {
    let keys = ab.kv_keys_with_prefix(prefix)?;
    Ok(keys
        .into_iter()
        .map(|key| {
            ab.kv_delete(&key);
            KvChange { key, entry: None }
        })
        .collect())
}

/// Consul's `?keys&separator=`: each key is cut just after the first separator that
/// follows the prefix; duplicates collapse. Input must be sorted; output stays sorted.
pub fn keys_with_separator(
    keys: impl IntoIterator<Item = String>,
    prefix: &str,
    separator: &str,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        let cut = if separator.is_empty() {
            key
        } else {
            match key[prefix.len()..].find(separator) {
                Some(pos) => key[..prefix.len() + pos + separator.len()].to_string(),
                None => key,
            }
        };
        if out.last() != Some(&cut) {
            out.push(cut);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_cuts_after_prefix_and_dedups() {
        let keys = ["web/bar", "web/foo", "web/subdir/a", "web/subdir/b"].map(String::from);
        assert_eq!(
            keys_with_separator(keys.clone(), "web/", "/"),
            vec!["web/bar", "web/foo", "web/subdir/"]
        );
        assert_eq!(keys_with_separator(keys, "web/", "").len(), 4);
    }

    #[test]
    fn entry_round_trips() {
        let e = KvEntry {
            key: "a/b".into(),
            value: vec![0, 1, 255],
            flags: u64::MAX,
            create_index: 3,
            modify_index: 9,
            lock_index: 1,
            session: "s".into(),
        };
        assert_eq!(decode(&encode(&e)).unwrap(), e);
    }
}
