//! The KV table: Consul's KVPair semantics (create/modify/lock indexes, flags, CAS) as
//! applied by the state machine, plus the reads that serve `GET /v1/kv` and `KV.Get/List`.

use std::collections::{BTreeMap, BTreeSet};

use rocksdb::{Direction, IteratorMode, ReadOptions, DB};
use serde::{Deserialize, Serialize};

use super::store::StoreError;
use crate::db::{cf, CF_KV, CF_KV_TOMBSTONES};

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Tombstone values are big-endian indexes; anything else reads as 0 (reapable).
pub(super) fn decode_index(bytes: &[u8]) -> u64 {
    <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// Reading the KV table: committed state, a snapshot view, or a batch in progress.
pub trait KvRead {
    fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, StoreError>;
    /// Existing keys starting with `prefix`, sorted.
    fn kv_keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
}

/// Writing the KV table at some raft index.
pub trait KvWrite: KvRead {
    fn kv_put(&mut self, entry: KvEntry) -> Result<(), StoreError>;
    /// Deletes `key`, leaving a tombstone at `index`.
    fn kv_delete(&mut self, key: &str, index: u64) -> Result<(), StoreError>;
}

/// What a lock operation needs besides the KV table: the sessions and the lock-delays.
pub trait LockContext {
    fn session_exists(&self, id: &str) -> Result<bool, StoreError>;
    /// Until when (leader time, unix ns) `key` may not be acquired; 0 when free.
    fn lock_delay_until(&self, key: &str) -> Result<u64, StoreError>;
}

/// Acquire (Consul's `?acquire=`) or release (`?release=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockOp {
    Acquire,
    Release,
}

/// Applies `?acquire=<session>` or `?release=<session>` at `index`, at leader time
/// `time_ns`. `Err` carries Consul's text for a session that does not exist; `Ok(false)`
/// a lock held by another session, inside its lock-delay, or (release) not held by this
/// session.
#[allow(clippy::too_many_arguments)]
pub fn apply_lock<T: KvWrite + LockContext>(
    table: &mut T,
    index: u64,
    time_ns: u64,
    op: LockOp,
    key: &str,
    value: &[u8],
    flags: u64,
    session: &str,
) -> Result<(Result<bool, String>, Option<KvChange>), StoreError> {
    // Consul checks the session only to acquire: releasing with a session that is gone
    // (the lock went with it) is a plain `false`.
    if op == LockOp::Acquire && !table.session_exists(session)? {
        return Ok((Err(format!("invalid session {session:?}")), None));
    }
    let current = table.kv_get(key)?;
    let entry = match op {
        LockOp::Acquire => match current {
            // Re-acquired by its holder: the value may change, the lock index does not.
            Some(e) if e.session == session => KvEntry {
                value: value.to_vec(),
                flags,
                modify_index: index,
                ..e
            },
            Some(e) if !e.session.is_empty() => return Ok((Ok(false), None)),
            current => {
                if time_ns < table.lock_delay_until(key)? {
                    return Ok((Ok(false), None));
                }
                // A new holder: the lock index counts acquisitions.
                match current {
                    Some(e) => KvEntry {
                        value: value.to_vec(),
                        flags,
                        modify_index: index,
                        lock_index: e.lock_index + 1,
                        session: session.to_string(),
                        ..e
                    },
                    None => KvEntry {
                        key: key.to_string(),
                        value: value.to_vec(),
                        flags,
                        create_index: index,
                        modify_index: index,
                        lock_index: 1,
                        session: session.to_string(),
                    },
                }
            }
        },
        LockOp::Release => match current {
            Some(e) if e.session == session => KvEntry {
                value: value.to_vec(),
                flags,
                modify_index: index,
                session: String::new(),
                ..e
            },
            _ => return Ok((Ok(false), None)),
        },
    };
    table.kv_put(entry.clone())?;
    Ok((
        Ok(true),
        Some(KvChange {
            key: key.to_string(),
            entry: Some(entry),
        }),
    ))
}

/// Reads one key.
pub fn get(db: &DB, opts: &ReadOptions, key: &str) -> Result<Option<KvEntry>, StoreError> {
    match db.get_cf_opt(cf(db, CF_KV), key.as_bytes(), opts)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// Every entry under `prefix`, in key order.
pub fn scan(db: &DB, opts: ReadOptions, prefix: &str) -> Result<Vec<KvEntry>, StoreError> {
    let mut out = Vec::new();
    for item in db.iterator_cf_opt(
        cf(db, CF_KV),
        opts,
        IteratorMode::From(prefix.as_bytes(), Direction::Forward),
    ) {
        let (k, v) = item?;
        if !k.starts_with(prefix.as_bytes()) {
            break;
        }
        out.push(decode(&v)?);
    }
    Ok(out)
}

/// Every key under `prefix`, in order.
pub fn keys_with_prefix(
    db: &DB,
    opts: ReadOptions,
    prefix: &str,
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for item in db.iterator_cf_opt(
        cf(db, CF_KV),
        opts,
        IteratorMode::From(prefix.as_bytes(), Direction::Forward),
    ) {
        let (k, _) = item?;
        if !k.starts_with(prefix.as_bytes()) {
            break;
        }
        out.push(String::from_utf8_lossy(&k).into_owned());
    }
    Ok(out)
}

/// The highest tombstone index under `prefix` (0 if none).
pub fn max_tombstone(db: &DB, opts: ReadOptions, prefix: &str) -> Result<u64, StoreError> {
    let mut max = 0;
    for item in db.iterator_cf_opt(
        cf(db, CF_KV_TOMBSTONES),
        opts,
        IteratorMode::From(prefix.as_bytes(), Direction::Forward),
    ) {
        let (k, v) = item?;
        if !k.starts_with(prefix.as_bytes()) {
            break;
        }
        max = max.max(decode_index(&v));
    }
    Ok(max)
}

/// `committed` keys under `prefix` with a batch's own writes applied on top.
pub(super) fn merge_overlay(
    committed: Vec<String>,
    overlay: &BTreeMap<String, Option<KvEntry>>,
    prefix: &str,
) -> Vec<String> {
    let mut keys: BTreeSet<String> = committed.into_iter().collect();
    for (k, v) in overlay.range(prefix.to_string()..) {
        if !k.starts_with(prefix) {
            break;
        }
        if v.is_some() {
            keys.insert(k.clone());
        } else {
            keys.remove(k);
        }
    }
    keys.into_iter().collect()
}

/// Applies a put at `index`; returns whether the CAS condition held and the change, if
/// any. A put identical to the stored entry changes nothing, so its index stays and no
/// watcher wakes (Consul does the same).
pub fn apply_put(
    table: &mut impl KvWrite,
    index: u64,
    key: &str,
    value: &[u8],
    flags: u64,
    cas: Option<u64>,
) -> Result<(bool, Option<KvChange>), StoreError> {
    let current = table.kv_get(key)?;
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
    table.kv_put(entry.clone())?;
    Ok((
        true,
        Some(KvChange {
            key: key.to_string(),
            entry: Some(entry),
        }),
    ))
}

/// Applies a single-key delete at `index`; with `cas`, only if the modify index matches.
/// Deleting a missing key succeeds and changes nothing.
pub fn apply_delete(
    table: &mut impl KvWrite,
    index: u64,
    key: &str,
    cas: Option<u64>,
) -> Result<(bool, Option<KvChange>), StoreError> {
    let Some(existing) = table.kv_get(key)? else {
        return Ok((true, None));
    };
    if let Some(n) = cas {
        if existing.modify_index != n {
            return Ok((false, None));
        }
    }
    table.kv_delete(key, index)?;
    Ok((
        true,
        Some(KvChange {
            key: key.to_string(),
            entry: None,
        }),
    ))
}

/// Applies a prefix delete at `index`; one change per deleted key.
pub fn apply_delete_tree(
    table: &mut impl KvWrite,
    index: u64,
    prefix: &str,
) -> Result<Vec<KvChange>, StoreError> {
    let keys = table.kv_keys_with_prefix(prefix)?;
    keys.into_iter()
        .map(|key| {
            table.kv_delete(&key, index)?;
            Ok(KvChange { key, entry: None })
        })
        .collect()
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
