//! Locks held by a stream (gRPC `Lock.Hold`), built from the seam's own calls (sessions,
//! locked KV writes, a KV watch), so any `ControlPlane` can serve them. A hold is a
//! session plus a queue entry `<name>/.queue/<session>` acquired with that session; the
//! `limit` live entries with the lowest create index hold the lock, so waiters are served
//! in the order they arrived at the cluster, whichever server they reached. A grant is
//! written (the holder re-acquires its entry), and that write's raft index is the fencing
//! token, which only grows. The server renews the session while the
//! stream is open; when the client goes away (closed stream, or HTTP/2 keepalive failure)
//! it destroys the session, and `Behavior` delete takes the entry with it. If the server
//! itself dies, the session's TTL ends the hold.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::mpsc;

use super::follow::{self, Follower};
use super::kv::PutArgs;
use super::session::SessionArgs;
use super::{Api, ServiceError};
use crate::state::kv::LockOp;
use crate::state::{KvEntry, WatchTarget};

/// Flags of a queue entry, so a key of another use is never taken for one.
pub const QUEUE_FLAG: u64 = 0x5a4b_1e0c_7f3d_9a21;
/// The hold's session TTL, renewed by the server every half of it.
const HOLD_TTL: Duration = Duration::from_secs(15);
/// Events buffered towards the client (a hold sends a handful).
const EVENTS: usize = 8;

/// What a hold tells its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockEvent {
    Queued {
        ahead: u32,
    },
    Acquired {
        token: u64,
        session: String,
        key: String,
    },
    Lost {
        reason: String,
    },
}

/// Starts a hold of `name` with `limit` slots (0 means 1). Errors (a bad name, no node
/// registration for the session) are returned here; after that, events arrive on the
/// receiver, and dropping it gives the lock up.
pub async fn hold(
    api: Api,
    name: &str,
    limit: u32,
    session_name: String,
) -> Result<mpsc::Receiver<LockEvent>, ServiceError> {
    let name = name.trim_end_matches('/');
    if name.is_empty() {
        return Err(ServiceError::InvalidArgument("Missing lock name".into()));
    }
    let limit = limit.max(1) as usize;
    let ttl = HOLD_TTL.max(api.limits().session_ttl_min);
    let (_, session) = api
        .session_create(SessionArgs {
            name: session_name,
            lock_delay: Some(Duration::ZERO),
            behavior: Some("delete".into()),
            ttl: Some(format!("{}s", ttl.as_secs())),
            ..Default::default()
        })
        .await?;
    let queue = format!("{name}/.queue/");
    let key = format!("{queue}{session}");
    let joined = api
        .kv_put(PutArgs {
            key: key.clone(),
            value: Vec::new(),
            flags: QUEUE_FLAG,
            cas: None,
            lock: Some((LockOp::Acquire, session.clone())),
        })
        .await;
    let watch = match joined {
        Ok((_, true)) => api.watch_kv(WatchTarget::Prefix(queue), 0),
        Ok((_, false)) => Err(ServiceError::Internal(
            "could not join the lock queue".into(),
        )),
        Err(e) => Err(e),
    };
    let watch = match watch {
        Ok(w) => w,
        Err(e) => {
            let _ = api.session_destroy(&session).await;
            return Err(e);
        }
    };
    let (tx, rx) = mpsc::channel(EVENTS);
    let owner = api.clone();
    owner.spawn(Box::pin(async move {
        let reason = follow(&api, watch, &tx, &session, &key, limit, ttl).await;
        if let Some(reason) = reason {
            let _ = tx.send(LockEvent::Lost { reason }).await;
        }
        // Give the place up (a no-op if the session is already gone).
        if let Err(e) = api.session_destroy(&session).await {
            tracing::debug!(error = %e, %session, "ending a lock hold's session");
        }
    }));
    Ok(rx)
}

/// Follows the queue until the client leaves (`None`) or the hold is lost (the reason).
async fn follow(
    api: &Api,
    watch: super::KvWatchReceiver,
    tx: &mpsc::Sender<LockEvent>,
    session: &str,
    key: &str,
    limit: usize,
    ttl: Duration,
) -> Option<String> {
    let mut queue = Follower::<follow::Kv>::new(watch);
    let mut last: Option<LockEvent> = None;
    let every = ttl / 3;
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tx.closed() => return None,
            _ = renew.tick() => {
                match tokio::time::timeout(every, api.session_renew(session)).await {
                    Ok(Ok(_)) => renewed = tokio::time::Instant::now(),
                    Ok(Err(ServiceError::NotFound(_))) => {
                        return Some("session invalidated".into())
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "renewing a lock hold's session"),
                    Err(_) => tracing::debug!("renewing a lock hold's session timed out"),
                }
                // Cut off from the cluster for a whole TTL: the leader may have expired
                // the session and handed the lock on, so this hold can no longer claim it.
                if renewed.elapsed() >= ttl {
                    return Some("session could not be renewed".into());
                }
            }
            synced = queue.next() => {
                // The stream ended: the server is stopping.
                synced?;
                let acquired = matches!(last, Some(LockEvent::Acquired { .. }));
                let event = match position(queue.state(), session, key) {
                    None => return Some("session invalidated".into()),
                    Some(_) if acquired => continue,
                    Some((rank, _)) if rank < limit => match grant(api, session, key).await {
                        Some(token) => LockEvent::Acquired {
                            token,
                            session: session.to_string(),
                            key: key.to_string(),
                        },
                        None => return Some("session invalidated".into()),
                    },
                    Some((rank, _)) => LockEvent::Queued {
                        ahead: (rank + 1 - limit) as u32,
                    },
                };
                if last.as_ref() != Some(&event) && tx.send(event.clone()).await.is_ok() {
                    last = Some(event);
                }
            }
        }
    }
}

/// Records the grant with a write of its own (the holder re-acquiring its entry): the
/// raft index of that write is the fencing token. Grants of one lock are one at a time
/// (the next comes only after the holder's entry is gone), so their indexes strictly
/// increase, even for holds that joined the queue in the same raft entry. `None` when the
/// session is gone.
async fn grant(api: &Api, session: &str, key: &str) -> Option<u64> {
    let put = PutArgs {
        key: key.to_string(),
        value: b"held".to_vec(),
        flags: QUEUE_FLAG,
        cas: None,
        lock: Some((LockOp::Acquire, session.to_string())),
    };
    match api.kv_put(put).await {
        Ok((meta, true)) => Some(meta.index),
        Ok((_, false)) => None,
        Err(e) => {
            tracing::debug!(error = %e, "granting a lock hold");
            None
        }
    }
}

/// This hold's rank among the live entries (by create index) and its token; `None` when
/// its entry is gone or no longer held by its session.
fn position(queue: &BTreeMap<String, KvEntry>, session: &str, key: &str) -> Option<(usize, u64)> {
    let own = queue.get(key).filter(|e| e.session == session)?;
    let ahead = queue
        .values()
        .filter(|e| !e.session.is_empty() && e.flags == super::lock::QUEUE_FLAG)
        .filter(|e| (e.create_index, &e.key) < (own.create_index, &own.key))
        .count();
    Some((ahead, own.create_index))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, session: &str, create: u64) -> (String, KvEntry) {
        (
            key.to_string(),
            KvEntry {
                key: key.into(),
                value: vec![],
                flags: QUEUE_FLAG,
                create_index: create,
                modify_index: create,
                lock_index: 1,
                session: session.into(),
            },
        )
    }

    #[test]
    fn rank_is_arrival_order_among_live_entries() {
        let q: BTreeMap<_, _> = [
            entry("l/.queue/z", "z", 5),
            entry("l/.queue/a", "a", 9),
            entry("l/.queue/dead", "", 3),
        ]
        .into_iter()
        .collect();
        assert_eq!(position(&q, "z", "l/.queue/z"), Some((0, 5)));
        assert_eq!(position(&q, "a", "l/.queue/a"), Some((1, 9)));
        assert_eq!(position(&q, "x", "l/.queue/x"), None);
        assert_eq!(
            position(&q, "b", "l/.queue/a"),
            None,
            "not held by its session"
        );
    }
}
