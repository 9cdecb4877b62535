//! The sessions table (Consul's `/v1/session`): a session ties locks to a node and its
//! health. It is invalidated when it is destroyed, its TTL lapses (decided by the
//! leader and carried in a command), its node is deregistered, or one of its checks goes
//! critical or away; then every key it holds is released or deleted (its `Behavior`) and
//! enters the session's lock-delay. Time comes from the raft entry (`Proposal::time_ns`,
//! stamped by the leader), never from a clock read in apply.

use serde::{Deserialize, Serialize};

use super::apply::{ApplyBatch, RawRead};
use super::change::Change;
use super::kv::{KvChange, KvRead, KvWrite};
use super::store::StoreError;
use crate::db::{CF_LOCK_DELAYS, CF_NODES, CF_NODE_SESSIONS, CF_SESSIONS, CF_SESSION_LOCKS};

/// What happens to a session's keys when it is invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Behavior {
    /// Keys stay, unlocked.
    Release,
    /// Keys are deleted.
    Delete,
}

impl Behavior {
    pub fn as_str(self) -> &'static str {
        match self {
            Behavior::Release => "release",
            Behavior::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay_ns: u64,
    pub behavior: Behavior,
    /// The TTL as the client wrote it (Consul echoes the string); empty for none.
    pub ttl: String,
    pub ttl_ns: u64,
    /// Node-level check IDs whose failure invalidates the session.
    pub node_checks: Vec<String>,
    /// Service-level check IDs (on the same node) whose failure invalidates it.
    pub service_checks: Vec<String>,
    pub create_index: u64,
    pub modify_index: u64,
    /// Raft index of the create or the last renew: a TTL expiry decided before a renew
    /// was applied must not take effect (see `Command::SessionExpire`).
    pub renewed_index: u64,
}

impl Session {
    /// Every check whose failure invalidates the session.
    pub fn checks(&self) -> impl Iterator<Item = &String> {
        self.node_checks.iter().chain(&self.service_checks)
    }
}

/// Topic of every session change (list watchers).
pub const SESSIONS_TOPIC: &str = "session";

/// Topic of session creates, invalidations and renews: what the leader's TTL timers follow.
pub const SESSION_TTL_TOPIC: &str = "session/ttl";

/// Topic of the sessions of one node.
pub fn node_sessions_topic(node: &str) -> String {
    format!("session/node/{node}")
}

fn child_key(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len() + 1);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

fn prefix(a: &str) -> Vec<u8> {
    let mut k = a.as_bytes().to_vec();
    k.push(0);
    k
}

/// The part of a `a \0 b` key after the NUL.
fn second(key: &[u8]) -> Option<String> {
    let split = key.iter().position(|b| *b == 0)?;
    String::from_utf8(key[split + 1..].to_vec()).ok()
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).expect("session records always encode")
}

/// Session reads over any raw view (a snapshot, or the apply batch).
pub struct SessionRead<'r, R: RawRead>(pub &'r R);

impl<R: RawRead> SessionRead<'_, R> {
    pub fn get(&self, id: &str) -> Result<Option<Session>, StoreError> {
        match self.0.get_raw(CF_SESSIONS, id.as_bytes())? {
            Some(v) => Ok(Some(postcard::from_bytes(&v)?)),
            None => Ok(None),
        }
    }

    /// Every session, by id.
    pub fn list(&self) -> Result<Vec<Session>, StoreError> {
        self.0
            .scan_raw(CF_SESSIONS, b"")?
            .into_iter()
            .map(|(_, v)| Ok(postcard::from_bytes(&v)?))
            .collect()
    }

    /// The sessions of `node`, by id.
    pub fn node(&self, node: &str) -> Result<Vec<Session>, StoreError> {
        let mut out = Vec::new();
        for (k, _) in self.0.scan_raw(CF_NODE_SESSIONS, &prefix(node))? {
            if let Some(s) = second(&k).map(|id| self.get(&id)).transpose()?.flatten() {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// The keys `id` holds, in order.
    pub fn held_keys(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .0
            .scan_raw(CF_SESSION_LOCKS, &prefix(id))?
            .iter()
            .filter_map(|(k, _)| second(k))
            .collect())
    }

    /// Until when (leader time, unix ns) `key` may not be acquired; 0 when free.
    pub fn lock_delay_until(&self, key: &str) -> Result<u64, StoreError> {
        Ok(self
            .0
            .get_raw(CF_LOCK_DELAYS, key.as_bytes())?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }
}

/// Keeps `session_locks` in step with a key's holder, for every KV write path.
pub(super) fn track_holder(ab: &mut ApplyBatch<'_>, key: &str, old: &str, new: &str) {
    if old == new {
        return;
    }
    if !old.is_empty() {
        ab.delete_raw(CF_SESSION_LOCKS, child_key(old, key));
    }
    if !new.is_empty() {
        ab.put_raw(CF_SESSION_LOCKS, child_key(new, key), Vec::new());
    }
}

/// Applies session commands into an apply batch and collects the changes they make.
pub struct SessionWrite<'b, 'a> {
    pub ab: &'b mut ApplyBatch<'a>,
    pub index: u64,
    /// Leader time of the entry (unix ns): when lock-delays start.
    pub time_ns: u64,
    pub changes: Vec<Change>,
}

impl<'b, 'a> SessionWrite<'b, 'a> {
    pub fn new(ab: &'b mut ApplyBatch<'a>, index: u64, time_ns: u64) -> Self {
        SessionWrite {
            ab,
            index,
            time_ns,
            changes: Vec::new(),
        }
    }

    fn read(&self) -> SessionRead<'_, ApplyBatch<'_>> {
        SessionRead(&*self.ab)
    }

    /// Creates a session; Consul's error text if its node or a check forbids it.
    pub fn create(&mut self, session: &Session) -> Result<Result<(), String>, StoreError> {
        if self
            .ab
            .get_raw(CF_NODES, session.node.as_bytes())?
            .is_none()
        {
            return Ok(Err(format!(
                "Missing node registration for node '{}'",
                session.node
            )));
        }
        let catalog = super::catalog::CatalogRead(&*self.ab);
        for check_id in session.checks() {
            match catalog.check(&session.node, check_id)? {
                None => return Ok(Err(format!("Missing check '{check_id}' registration"))),
                Some(c) if c.status == super::catalog::CheckStatus::Critical => {
                    return Ok(Err(format!("Check '{check_id}' is in critical state")))
                }
                Some(_) => {}
            }
        }
        if self.read().get(&session.id)?.is_some() {
            return Ok(Err(format!("Session '{}' already exists", session.id)));
        }
        let record = Session {
            create_index: self.index,
            modify_index: self.index,
            renewed_index: self.index,
            ..session.clone()
        };
        self.ab
            .put_raw(CF_SESSIONS, record.id.as_bytes().to_vec(), enc(&record));
        self.ab.put_raw(
            CF_NODE_SESSIONS,
            child_key(&record.node, &record.id),
            Vec::new(),
        );
        self.ab.bump_sessions_index(self.index);
        self.changes.push(Change::Session {
            id: record.id.clone(),
            node: record.node.clone(),
            session: Some(record),
        });
        Ok(Ok(()))
    }

    /// Renews a TTL session; `None` if it does not exist (any more).
    pub fn renew(&mut self, id: &str) -> Result<Option<Session>, StoreError> {
        let Some(mut s) = self.read().get(id)? else {
            return Ok(None);
        };
        s.renewed_index = self.index;
        self.ab
            .put_raw(CF_SESSIONS, id.as_bytes().to_vec(), enc(&s));
        // Not a change clients see (Consul's renew moves no index), but the leader's TTL
        // timers learn of it through the feed.
        self.changes.push(Change::SessionRenewed {
            id: id.to_string(),
            ttl_ns: s.ttl_ns,
        });
        Ok(Some(s))
    }

    /// The leader found the TTL lapsed, having seen renews up to `renewed_index`: expire
    /// unless a later renew has been applied since.
    pub fn expire(&mut self, id: &str, renewed_index: u64) -> Result<(), StoreError> {
        match self.read().get(id)? {
            Some(s) if s.renewed_index <= renewed_index => self.invalidate(id),
            _ => Ok(()),
        }
    }

    /// Invalidates sessions affected by catalog `changes`: those of a deregistered node,
    /// and those naming a check that was deregistered or became critical.
    pub fn on_catalog(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        for change in changes {
            let (node, failed_check) = match change {
                Change::Node {
                    name, node: None, ..
                } => (name, None),
                Change::Check {
                    node,
                    check_id,
                    check,
                    ..
                } if check
                    .as_ref()
                    .is_none_or(|c| c.status == super::catalog::CheckStatus::Critical) =>
                {
                    (node, Some(check_id))
                }
                _ => continue,
            };
            for s in self.read().node(node)? {
                if failed_check.is_none_or(|id| s.checks().any(|c| c == id)) {
                    self.invalidate(&s.id)?;
                }
            }
        }
        Ok(())
    }

    /// Destroys a session: releases or deletes what it holds, arms their lock-delay.
    pub fn invalidate(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(s) = self.read().get(id)? else {
            return Ok(());
        };
        let index = self.index;
        for key in self.read().held_keys(id)? {
            let Some(entry) = self.ab.kv_get(&key)? else {
                continue;
            };
            if entry.session != s.id {
                continue;
            }
            let new = match s.behavior {
                Behavior::Release => {
                    let released = super::kv::KvEntry {
                        session: String::new(),
                        modify_index: index,
                        ..entry
                    };
                    self.ab.kv_put(released.clone())?;
                    Some(released)
                }
                Behavior::Delete => {
                    self.ab.kv_delete(&key, index)?;
                    None
                }
            };
            if s.lock_delay_ns > 0 {
                let until = self.time_ns.saturating_add(s.lock_delay_ns);
                self.ab.put_raw(
                    CF_LOCK_DELAYS,
                    key.as_bytes().to_vec(),
                    until.to_be_bytes().to_vec(),
                );
            }
            self.changes.push(Change::Kv(KvChange { key, entry: new }));
        }
        self.ab.delete_raw(CF_SESSIONS, id.as_bytes().to_vec());
        self.ab.delete_raw(CF_NODE_SESSIONS, child_key(&s.node, id));
        self.ab.bump_sessions_index(index);
        self.changes.push(Change::Session {
            id: id.to_string(),
            node: s.node,
            session: None,
        });
        Ok(())
    }
}
