//! Watches: the current state, a sync marker, then every change, resumable from an index.
//! One task per watcher, woken only by the change feed (no polling); a watcher that falls
//! behind is reset and resynced rather than allowed to slow down writes.

use tokio::sync::mpsc;

use super::{Service, ServiceError};
use crate::state::feed::{ResetReason, Subscription};
use std::sync::Arc;

use crate::state::{Change, KvEntry, WatchTarget};

/// Messages of a watch stream, in protocol order (see `proto/rostra/v1/kv.proto`).
#[derive(Debug, Clone)]
pub enum WatchMessage {
    /// Part of the current state at `index`.
    Snapshot { index: u64, entries: Vec<KvEntry> },
    /// The client now holds the state as of `index`.
    Synced { index: u64 },
    /// What the raft entry at `index` changed under the watched key(s), shared with the
    /// feed's history and every other watcher (all KV changes: the target is KV).
    Changes {
        index: u64,
        changes: Vec<Arc<Change>>,
    },
    /// Drop what you hold; a fresh snapshot follows.
    Reset { index: u64, reason: &'static str },
}

/// Buffer between a watcher's task and its stream; the feed's own buffer absorbs bursts.
const STREAM_BUFFER: usize = 16;
/// Snapshot messages are cut at about this many bytes of values (gRPC's default message
/// limit is 4 MiB).
const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

impl Service {
    /// Starts a watch on `target`. `start_index` 0 means "send the full state"; N means
    /// "I have everything through N". The returned receiver ends when the server shuts
    /// down; dropping it ends the watch.
    pub fn watch(
        &self,
        target: WatchTarget,
        start_index: u64,
    ) -> Result<mpsc::Receiver<WatchMessage>, ServiceError> {
        match &target {
            WatchTarget::Key(k) => self.validate_key(k)?,
            WatchTarget::Topic(_) => {
                return Err(ServiceError::InvalidArgument(
                    "a KV watch takes a key or a prefix".into(),
                ))
            }
            WatchTarget::Prefix(p) => self.validate_prefix(p)?,
        }
        let permit = self.stream_permit()?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let state = self.state.clone();
        let feed = self.feed.clone();
        let shutdown = self.shutdown.clone();
        self.spawn(async move {
            // Held for the stream's life.
            let _permit = permit;
            let run = run_watch(&state, &feed, target, start_index, &tx);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = run => if let Err(e) = result {
                    tracing::debug!(error = %e, "watch ended");
                }
            }
        });
        Ok(rx)
    }
}

#[derive(Debug, thiserror::Error)]
enum WatchEnd {
    #[error("watcher went away")]
    Closed,
    #[error("{0}")]
    Store(#[from] crate::state::store::StoreError),
}

impl<T> From<mpsc::error::SendError<T>> for WatchEnd {
    fn from(_: mpsc::error::SendError<T>) -> Self {
        WatchEnd::Closed
    }
}

async fn run_watch(
    state: &std::sync::Arc<crate::state::StateStore>,
    feed: &std::sync::Arc<crate::state::ChangeFeed>,
    target: WatchTarget,
    start_index: u64,
    out: &mpsc::Sender<WatchMessage>,
) -> Result<(), WatchEnd> {
    let mut resume = (start_index > 0).then_some(start_index);
    // Why the previous subscription ended, if it did: reported only if a resync is needed.
    let mut interrupted: Option<ResetReason> = None;
    loop {
        let (mut sub, replay) = feed.subscribe(target.clone(), resume);
        let mut last = match replay {
            // Resumable: exactly the retained changes after `resume`, no reset needed.
            Some(Ok(events)) => {
                let mut last = resume.unwrap_or(0);
                for ev in events {
                    last = ev.index;
                    out.send(WatchMessage::Changes {
                        index: ev.index,
                        changes: ev.changes,
                    })
                    .await?;
                }
                if interrupted.is_none() {
                    let synced = last.max(sub.registered_at);
                    out.send(WatchMessage::Synced { index: synced }).await?;
                    last = synced;
                }
                last
            }
            Some(Err(compacted)) => {
                let reason = interrupted.map(ResetReason::as_str).unwrap_or("compacted");
                out.send(WatchMessage::Reset {
                    index: compacted.compacted_through,
                    reason,
                })
                .await?;
                send_snapshot(state, &target, out).await?
            }
            None => send_snapshot(state, &target, out).await?,
        };
        let reason = follow(&mut sub, &mut last, out).await?;
        if reason == ResetReason::Shutdown {
            return Ok(());
        }
        // Lagged or state replaced: try to catch up from the retained changes first.
        interrupted = Some(reason);
        resume = Some(last);
    }
}

/// Forwards live changes after `last` until the feed drops this subscriber.
async fn follow(
    sub: &mut Subscription,
    last: &mut u64,
    out: &mpsc::Sender<WatchMessage>,
) -> Result<ResetReason, WatchEnd> {
    loop {
        // A watcher of a quiet key must still notice its client leaving, or its task,
        // subscription and permit would live until the next change.
        let received = tokio::select! {
            r = sub.recv() => r,
            _ = out.closed() => return Err(WatchEnd::Closed),
        };
        match received {
            Ok(ev) if ev.index <= *last => continue,
            Ok(ev) => {
                *last = ev.index;
                out.send(WatchMessage::Changes {
                    index: ev.index,
                    changes: ev.changes,
                })
                .await?;
            }
            Err(reason) => return Ok(reason),
        }
    }
}

/// Sends the current state in chunks, then `Synced`; returns the state's index. Must run
/// after subscribing so that nothing between the read and the live feed is lost.
async fn send_snapshot(
    state: &std::sync::Arc<crate::state::StateStore>,
    target: &WatchTarget,
    out: &mpsc::Sender<WatchMessage>,
) -> Result<u64, WatchEnd> {
    let reader = state.clone();
    let t = target.clone();
    let (index, entries) = tokio::task::spawn_blocking(move || match t {
        WatchTarget::Key(k) => reader
            .kv_get(&k)
            .map(|q| (q.applied, q.value.into_iter().collect::<Vec<_>>())),
        WatchTarget::Prefix(p) => reader.kv_list(&p).map(|q| (q.applied, q.value)),
        WatchTarget::Topic(_) => reader.applied_index().map(|i| (i, Vec::new())),
    })
    .await
    .map_err(|_| WatchEnd::Closed)??;
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        bytes += entry.value.len() + entry.key.len();
        chunk.push(entry);
        if bytes >= SNAPSHOT_CHUNK_BYTES {
            out.send(WatchMessage::Snapshot {
                index,
                entries: std::mem::take(&mut chunk),
            })
            .await?;
            bytes = 0;
        }
    }
    if !chunk.is_empty() {
        out.send(WatchMessage::Snapshot {
            index,
            entries: chunk,
        })
        .await?;
    }
    out.send(WatchMessage::Synced { index }).await?;
    Ok(index)
}
