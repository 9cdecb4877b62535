//! KV transactions (Consul's `PUT /v1/txn` KV verbs): every operation is checked and
//! applied against a scratch view; only if all succeed do their writes reach the apply
//! batch, so a transaction is all or nothing inside one raft entry. Read-only
//! transactions run the same code against a snapshot view without raft.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::kv::{self, KvChange, KvEntry, KvRead, KvWrite, LockContext, LockOp};
use super::store::StoreError;

/// Consul's KV transaction verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvTxnVerb {
    Set,
    Cas,
    Lock,
    Unlock,
    Get,
    GetOrEmpty,
    CheckSession,
    GetTree,
    CheckIndex,
    CheckNotExists,
    Delete,
    DeleteTree,
    DeleteCas,
}

impl KvTxnVerb {
    /// Consul's spelling, e.g. `get-tree`.
    pub fn parse(verb: &str) -> Option<Self> {
        Some(match verb {
            "set" => KvTxnVerb::Set,
            "cas" => KvTxnVerb::Cas,
            "lock" => KvTxnVerb::Lock,
            "unlock" => KvTxnVerb::Unlock,
            "get" => KvTxnVerb::Get,
            "get-or-empty" => KvTxnVerb::GetOrEmpty,
            "check-session" => KvTxnVerb::CheckSession,
            "get-tree" => KvTxnVerb::GetTree,
            "check-index" => KvTxnVerb::CheckIndex,
            "check-not-exists" => KvTxnVerb::CheckNotExists,
            "delete" => KvTxnVerb::Delete,
            "delete-tree" => KvTxnVerb::DeleteTree,
            "delete-cas" => KvTxnVerb::DeleteCas,
            _ => return None,
        })
    }

    /// Whether the verb only reads (a transaction of only reads bypasses raft).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            KvTxnVerb::Get
                | KvTxnVerb::GetOrEmpty
                | KvTxnVerb::GetTree
                | KvTxnVerb::CheckIndex
                | KvTxnVerb::CheckSession
                | KvTxnVerb::CheckNotExists
        )
    }
}

/// One KV operation of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvTxnOp {
    pub verb: KvTxnVerb,
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    /// The index `cas`, `check-index` and `delete-cas` compare against.
    pub index: u64,
    /// The session `lock`, `unlock` and `check-session` name.
    pub session: String,
}

/// Why an operation failed; the transaction rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnError {
    pub op_index: usize,
    pub what: String,
}

/// A transaction's outcome: results (entries; values only for reads) on success,
/// errors on rollback.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnOutcome {
    pub results: Vec<KvEntry>,
    pub errors: Vec<TxnError>,
}

/// Buffers a transaction's writes over a base view.
struct Scratch<'b, B: KvRead> {
    base: &'b B,
    locks: &'b dyn LockContext,
    writes: BTreeMap<String, Option<KvEntry>>,
    /// Writes in order, with the index of each delete, for replay onto the batch.
    log: Vec<(String, Option<KvEntry>, u64)>,
}

impl<B: KvRead> KvRead for Scratch<'_, B> {
    fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, StoreError> {
        match self.writes.get(key) {
            Some(e) => Ok(e.clone()),
            None => self.base.kv_get(key),
        }
    }

    fn kv_keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(kv::merge_overlay(
            self.base.kv_keys_with_prefix(prefix)?,
            &self.writes,
            prefix,
        ))
    }
}

impl<B: KvRead> KvWrite for Scratch<'_, B> {
    fn kv_put(&mut self, entry: KvEntry) -> Result<(), StoreError> {
        self.writes.insert(entry.key.clone(), Some(entry.clone()));
        self.log.push((entry.key.clone(), Some(entry), 0));
        Ok(())
    }

    fn kv_delete(&mut self, key: &str, index: u64) -> Result<(), StoreError> {
        self.writes.insert(key.to_string(), None);
        self.log.push((key.to_string(), None, index));
        Ok(())
    }
}

impl<B: KvRead> LockContext for Scratch<'_, B> {
    fn session_exists(&self, id: &str) -> Result<bool, StoreError> {
        self.locks.session_exists(id)
    }

    fn lock_delay_until(&self, key: &str) -> Result<u64, StoreError> {
        self.locks.lock_delay_until(key)
    }
}

/// Sessions for a read-only transaction: its verbs never lock, so nothing asks.
struct NoLocks;

impl LockContext for NoLocks {
    fn session_exists(&self, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }

    fn lock_delay_until(&self, _: &str) -> Result<u64, StoreError> {
        Ok(u64::MAX)
    }
}

fn without_value(mut e: KvEntry) -> KvEntry {
    e.value.clear();
    e
}

/// Runs `ops` at `index` against `base`. On success returns the outcome and the writes
/// to apply (in order); on failure the outcome carries the errors and nothing is written.
fn evaluate<B: KvRead>(
    base: &B,
    locks: &dyn LockContext,
    index: u64,
    time_ns: u64,
    ops: &[KvTxnOp],
) -> Result<(TxnOutcome, Vec<(String, Option<KvEntry>, u64)>), StoreError> {
    let mut scratch = Scratch {
        base,
        locks,
        writes: BTreeMap::new(),
        log: Vec::new(),
    };
    let mut outcome = TxnOutcome::default();
    for (op_index, op) in ops.iter().enumerate() {
        let key = op.key.as_str();
        let fail = |what: String| TxnError { op_index, what };
        let result: Result<Vec<KvEntry>, TxnError> = match op.verb {
            KvTxnVerb::Set | KvTxnVerb::Cas => {
                let cas = (op.verb == KvTxnVerb::Cas).then_some(op.index);
                let (ok, _) = kv::apply_put(&mut scratch, index, key, &op.value, op.flags, cas)?;
                if ok {
                    Ok(scratch
                        .kv_get(key)?
                        .map(without_value)
                        .into_iter()
                        .collect())
                } else {
                    Err(fail(format!("failed to set key {key:?}, index is stale")))
                }
            }
            KvTxnVerb::Lock | KvTxnVerb::Unlock => {
                let lock = if op.verb == KvTxnVerb::Lock {
                    LockOp::Acquire
                } else {
                    LockOp::Release
                };
                let (result, _) = kv::apply_lock(
                    &mut scratch,
                    index,
                    time_ns,
                    lock,
                    key,
                    &op.value,
                    op.flags,
                    &op.session,
                )?;
                match result {
                    Ok(true) => Ok(scratch
                        .kv_get(key)?
                        .map(without_value)
                        .into_iter()
                        .collect()),
                    Ok(false) if lock == LockOp::Acquire => {
                        let unheld = scratch.kv_get(key)?.is_none_or(|e| e.session.is_empty());
                        if unheld && time_ns < scratch.lock_delay_until(key)? {
                            Err(fail(format!("failed to lock key {key:?} due to lock delay")))
                        } else {
                            Err(fail(format!(
                                "failed to lock key {key:?}, lock is already held"
                            )))
                        }
                    }
                    Ok(false) => Err(fail(format!(
                        "failed to unlock key {key:?}, lock isn't held, or is held by another session"
                    ))),
                    // Consul's text as it is (`invalid session "<id>"`).
                    Err(text) => Err(fail(text)),
                }
            }
            KvTxnVerb::Get => match scratch.kv_get(key)? {
                Some(e) => Ok(vec![e]),
                None => Err(fail(format!("key {key:?} doesn't exist"))),
            },
            // Consul answers a missing key with an entry carrying only the key.
            KvTxnVerb::GetOrEmpty => Ok(vec![scratch.kv_get(key)?.unwrap_or(KvEntry {
                key: key.to_string(),
                value: Vec::new(),
                flags: 0,
                create_index: 0,
                modify_index: 0,
                lock_index: 0,
                session: String::new(),
            })]),
            KvTxnVerb::CheckSession => match scratch.kv_get(key)? {
                None => Err(fail(format!(
                    "failed to check session, key {key:?} doesn't exist"
                ))),
                Some(e) if e.session != op.session => Err(fail(format!(
                    "failed session check for key {key:?}, current session {:?} != {:?}",
                    e.session, op.session
                ))),
                Some(e) => Ok(vec![without_value(e)]),
            },
            KvTxnVerb::GetTree => {
                let mut entries = Vec::new();
                for k in scratch.kv_keys_with_prefix(key)? {
                    entries.extend(scratch.kv_get(&k)?);
                }
                Ok(entries)
            }
            KvTxnVerb::CheckIndex => match scratch.kv_get(key)? {
                None => Err(fail(format!(
                    "failed to check index, key {key:?} doesn't exist"
                ))),
                Some(e) if e.modify_index != op.index => Err(fail(format!(
                    "failed index check for key {key:?}, current modify index {} != {}",
                    e.modify_index, op.index
                ))),
                Some(e) => Ok(vec![without_value(e)]),
            },
            KvTxnVerb::CheckNotExists => match scratch.kv_get(key)? {
                Some(_) => Err(fail(format!("key {key:?} exists"))),
                None => Ok(Vec::new()),
            },
            KvTxnVerb::Delete => {
                kv::apply_delete(&mut scratch, index, key, None)?;
                Ok(Vec::new())
            }
            KvTxnVerb::DeleteTree => {
                kv::apply_delete_tree(&mut scratch, index, key)?;
                Ok(Vec::new())
            }
            KvTxnVerb::DeleteCas => {
                let (ok, _) = kv::apply_delete(&mut scratch, index, key, Some(op.index))?;
                if ok {
                    Ok(Vec::new())
                } else {
                    Err(fail(format!(
                        "failed to delete key {key:?}, index is stale"
                    )))
                }
            }
        };
        match result {
            Ok(entries) => outcome.results.extend(entries),
            Err(e) => outcome.errors.push(e),
        }
    }
    if !outcome.errors.is_empty() {
        outcome.results.clear();
        return Ok((outcome, Vec::new()));
    }
    Ok((outcome, scratch.log))
}

/// Applies a transaction at `index` (leader time `time_ns`) into `table`: all of it, or
/// (with errors) nothing.
pub fn apply<T: KvWrite + LockContext>(
    table: &mut T,
    index: u64,
    time_ns: u64,
    ops: &[KvTxnOp],
) -> Result<(TxnOutcome, Vec<KvChange>), StoreError> {
    let (outcome, writes) = evaluate(&*table, &*table, index, time_ns, ops)?;
    let mut changes = Vec::with_capacity(writes.len());
    for (key, entry, delete_index) in writes {
        match &entry {
            Some(e) => table.kv_put(e.clone())?,
            None => table.kv_delete(&key, delete_index)?,
        }
        changes.push(KvChange { key, entry });
    }
    Ok((outcome, changes))
}

/// Runs a read-only transaction against a view.
pub fn read_only(view: &impl KvRead, ops: &[KvTxnOp]) -> Result<TxnOutcome, StoreError> {
    Ok(evaluate(view, &NoLocks, 0, 0, ops)?.0)
}
