//! The watch protocol, one for everything watchable: the current state, a sync marker,
//! then what each raft entry changed, resumable from an index (see `WatchResponse` in
//! `proto/rostra/v1/kv.proto` and `WatchKind` in `common.proto`).
//!
//! A `View` says what a watch looks at and how a feed event becomes a delta: a KV view
//! forwards the changed pairs as they are, a catalog view (`catalog_watch`) re-reads the
//! items an entry touched. The runner here does the rest for every view alike: subscribe
//! before reading so nothing falls between, replay from the feed's history on resume,
//! `RESET` when that history no longer reaches back, resync when the feed drops a
//! watcher that fell behind. One task per watcher, woken only by the feed (no polling),
//! owned by the service and joined at shutdown.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::catalog_watch::{CatalogDelta, CatalogItem, CatalogView, CatalogWatch};
use super::{Service, ServiceError};
use crate::state::feed::{FeedEvent, ResetReason, Subscription};
use crate::state::store::StoreError;
use crate::state::{Change, ChangeFeed, KvEntry, StateStore, WatchTarget};

/// Messages of a watch stream, in protocol order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum WatchMessage<I, D> {
    /// Part of the current state at `index`.
    Snapshot { index: u64, items: Vec<I> },
    /// The client now holds the state as of `index`.
    Synced { index: u64 },
    /// What the raft entry at `index` changed in the watched state.
    Changes { index: u64, delta: D },
    /// Drop what you hold; a fresh snapshot follows.
    Reset { index: u64, reason: String },
}

/// A KV watch's messages: pairs, and the feed's own changes (shared with its history and
/// every other watcher, never copied).
pub type KvWatchMessage = WatchMessage<KvEntry, Vec<Arc<Change>>>;
/// A catalog or health watch's messages.
pub type CatalogWatchMessage = WatchMessage<CatalogItem, CatalogDelta>;

/// What a watch looks at, and how it turns state and changes into messages.
pub(super) trait View: Send + 'static {
    type Item: Send + 'static;
    type Delta: Send + 'static;
    /// Whether `delta` reads the state (then it runs on the blocking pool).
    const READS_ON_CHANGE: bool;

    fn target(&self) -> WatchTarget;
    /// The whole current state and the index it reflects.
    fn snapshot(&mut self, state: &StateStore) -> Result<(u64, Vec<Self::Item>), StoreError>;
    /// The stream resumes from an index the client gave: the view no longer knows what
    /// the client holds.
    fn resumed(&mut self);
    /// About how many bytes an item takes in a message.
    fn item_size(item: &Self::Item) -> usize;
    /// What `event` changed, or `None` when nothing the client sees did.
    fn delta(
        &mut self,
        state: &StateStore,
        event: &FeedEvent,
    ) -> Result<Option<Self::Delta>, StoreError>;
}

/// A KV key or prefix.
struct KvView {
    target: WatchTarget,
}

impl View for KvView {
    type Item = KvEntry;
    type Delta = Vec<Arc<Change>>;
    const READS_ON_CHANGE: bool = false;

    fn target(&self) -> WatchTarget {
        self.target.clone()
    }

    fn snapshot(&mut self, state: &StateStore) -> Result<(u64, Vec<KvEntry>), StoreError> {
        match &self.target {
            WatchTarget::Key(k) => state
                .kv_get(k)
                .map(|q| (q.applied, q.value.into_iter().collect())),
            WatchTarget::Prefix(p) => state.kv_list(p).map(|q| (q.applied, q.value)),
            WatchTarget::Topic(_) => state.applied_index().map(|i| (i, Vec::new())),
        }
    }

    fn resumed(&mut self) {}

    fn item_size(entry: &KvEntry) -> usize {
        entry.key.len() + entry.value.len()
    }

    fn delta(
        &mut self,
        _: &StateStore,
        event: &FeedEvent,
    ) -> Result<Option<Vec<Arc<Change>>>, StoreError> {
        // The feed routed only this key's (or prefix's) changes here.
        Ok(Some(event.changes.clone()))
    }
}

/// Buffer between a watcher's task and its stream; the feed's own buffer absorbs bursts.
const STREAM_BUFFER: usize = 16;
/// Snapshot messages are cut at about this many bytes (gRPC's default message limit is
/// 4 MiB).
const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

impl Service {
    /// Starts a KV watch on a key or prefix. `start_index` 0 means "send the full state";
    /// N means "I have everything through N". The receiver ends when the server shuts
    /// down; dropping it ends the watch.
    pub fn watch_kv(
        &self,
        target: WatchTarget,
        start_index: u64,
    ) -> Result<mpsc::Receiver<KvWatchMessage>, ServiceError> {
        match &target {
            WatchTarget::Key(k) => self.validate_key(k)?,
            WatchTarget::Prefix(p) => self.validate_prefix(p)?,
            WatchTarget::Topic(_) => {
                return Err(ServiceError::InvalidArgument(
                    "a KV watch takes a key or a prefix".into(),
                ))
            }
        }
        self.start_watch(KvView { target }, start_index)
    }

    /// Starts a catalog or health watch, with the same protocol as a KV watch.
    pub fn watch_catalog(
        &self,
        watch: CatalogWatch,
        start_index: u64,
    ) -> Result<mpsc::Receiver<CatalogWatchMessage>, ServiceError> {
        watch.validate()?;
        self.start_watch(CatalogView::new(watch), start_index)
    }

    fn start_watch<V: View>(
        &self,
        view: V,
        start_index: u64,
    ) -> Result<mpsc::Receiver<WatchMessage<V::Item, V::Delta>>, ServiceError> {
        let permit = self.stream_permit()?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let watcher = Watcher {
            state: self.state.clone(),
            feed: self.feed.clone(),
            out: tx,
        };
        let shutdown = self.shutdown.clone();
        self.spawn(async move {
            // Held for the stream's life.
            let _permit = permit;
            tokio::select! {
                _ = shutdown.cancelled() => {}
                result = watcher.run(view, start_index) => if let Err(e) = result {
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
    Store(#[from] StoreError),
}

impl<T> From<mpsc::error::SendError<T>> for WatchEnd {
    fn from(_: mpsc::error::SendError<T>) -> Self {
        WatchEnd::Closed
    }
}

/// One watcher's task state.
struct Watcher<I, D> {
    state: Arc<StateStore>,
    feed: Arc<ChangeFeed>,
    out: mpsc::Sender<WatchMessage<I, D>>,
}

impl<I: Send + 'static, D: Send + 'static> Watcher<I, D> {
    async fn run<V: View<Item = I, Delta = D>>(
        &self,
        mut view: V,
        start_index: u64,
    ) -> Result<(), WatchEnd> {
        let mut resume = (start_index > 0).then_some(start_index);
        if resume.is_some() {
            view.resumed();
        }
        // Why the previous subscription ended, if it did: reported only if a resync is
        // needed.
        let mut interrupted: Option<ResetReason> = None;
        loop {
            let (mut sub, replay) = self.feed.subscribe(view.target(), resume);
            let mut last = match replay {
                // Resumable: exactly the retained changes after `resume`, no reset needed.
                Some(Ok(events)) => {
                    let mut last = resume.unwrap_or(0);
                    for ev in events {
                        last = ev.index;
                        view = self.send_delta(view, ev).await?;
                    }
                    if interrupted.is_none() {
                        let synced = last.max(sub.registered_at);
                        self.out
                            .send(WatchMessage::Synced { index: synced })
                            .await?;
                        last = synced;
                    }
                    last
                }
                Some(Err(compacted)) => {
                    let reason = interrupted.map(ResetReason::as_str).unwrap_or("compacted");
                    self.out
                        .send(WatchMessage::Reset {
                            index: compacted.compacted_through,
                            reason: reason.to_string(),
                        })
                        .await?;
                    let (v, index) = self.send_snapshot(view).await?;
                    view = v;
                    index
                }
                None => {
                    let (v, index) = self.send_snapshot(view).await?;
                    view = v;
                    index
                }
            };
            let (v, reason) = self.follow(view, &mut sub, &mut last).await?;
            view = v;
            if reason == ResetReason::Shutdown {
                return Ok(());
            }
            // Lagged or state replaced: try to catch up from the retained changes first.
            interrupted = Some(reason);
            resume = Some(last);
        }
    }

    /// Forwards live changes after `last` until the feed drops this subscriber.
    async fn follow<V: View<Item = I, Delta = D>>(
        &self,
        mut view: V,
        sub: &mut Subscription,
        last: &mut u64,
    ) -> Result<(V, ResetReason), WatchEnd> {
        loop {
            // A watcher of a quiet key must still notice its client leaving, or its task,
            // subscription and permit would live until the next change.
            let received = tokio::select! {
                r = sub.recv() => r,
                _ = self.out.closed() => return Err(WatchEnd::Closed),
            };
            match received {
                Ok(ev) if ev.index <= *last => continue,
                Ok(ev) => {
                    *last = ev.index;
                    view = self.send_delta(view, ev).await?;
                }
                Err(reason) => return Ok((view, reason)),
            }
        }
    }

    /// Sends what `event` changed, if the client sees any of it.
    async fn send_delta<V: View<Item = I, Delta = D>>(
        &self,
        view: V,
        event: FeedEvent,
    ) -> Result<V, WatchEnd> {
        let (view, delta) = if V::READS_ON_CHANGE {
            let state = self.state.clone();
            let mut view = view;
            tokio::task::spawn_blocking(move || {
                let d = view.delta(&state, &event).map(|d| (event.index, d));
                (view, d)
            })
            .await
            .map_err(|_| WatchEnd::Closed)?
        } else {
            let mut view = view;
            let d = view.delta(&self.state, &event).map(|d| (event.index, d));
            (view, d)
        };
        if let (index, Some(delta)) = delta? {
            self.out
                .send(WatchMessage::Changes { index, delta })
                .await?;
        }
        Ok(view)
    }

    /// Sends the current state in chunks, then `Synced`; returns the state's index. Runs
    /// after subscribing so that nothing between the read and the live feed is lost.
    async fn send_snapshot<V: View<Item = I, Delta = D>>(
        &self,
        mut view: V,
    ) -> Result<(V, u64), WatchEnd> {
        let state = self.state.clone();
        let (view, read) = tokio::task::spawn_blocking(move || {
            let r = view.snapshot(&state);
            (view, r)
        })
        .await
        .map_err(|_| WatchEnd::Closed)?;
        let (index, items) = read?;
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for item in items {
            bytes += V::item_size(&item);
            chunk.push(item);
            if bytes >= SNAPSHOT_CHUNK_BYTES {
                let items = std::mem::take(&mut chunk);
                self.out
                    .send(WatchMessage::Snapshot { index, items })
                    .await?;
                bytes = 0;
            }
        }
        if !chunk.is_empty() {
            self.out
                .send(WatchMessage::Snapshot {
                    index,
                    items: chunk,
                })
                .await?;
        }
        self.out.send(WatchMessage::Synced { index }).await?;
        Ok((view, index))
    }
}
