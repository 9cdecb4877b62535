//! The receiving half of the watch protocol for subscribers inside the process (a
//! stream-held lock following its queue, the agent's `watches`): a [`Follower`] keeps
//! the watched items by key from a service-layer watch stream and yields at each
//! consistent point, the initial `SYNCED` and then every `CHANGES`. A `RESET` drops the
//! items and the snapshot that follows rebuilds them. `client::Watcher` is the same
//! over gRPC.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{CatalogDelta, CatalogItem, ItemKey, WatchMessage, WatchReceiver};
use crate::state::{Change, KvEntry};

/// How one kind of watch stream's items are keyed and its deltas applied.
pub trait Followed: Send + 'static {
    type Key: Ord + Clone + Send + 'static;
    type Item: Clone + Send + 'static;
    type Delta: Send + 'static;
    fn key(item: &Self::Item) -> Self::Key;
    fn apply(state: &mut BTreeMap<Self::Key, Self::Item>, delta: Self::Delta);
}

/// KV watches: pairs by key.
pub struct Kv;

impl Followed for Kv {
    type Key = String;
    type Item = KvEntry;
    type Delta = Vec<Arc<Change>>;

    fn key(item: &KvEntry) -> String {
        item.key.clone()
    }

    fn apply(state: &mut BTreeMap<String, KvEntry>, delta: Vec<Arc<Change>>) {
        for change in delta.iter().filter_map(|c| c.as_kv()) {
            match &change.entry {
                Some(e) => state.insert(change.key.clone(), e.clone()),
                None => state.remove(&change.key),
            };
        }
    }
}

/// Catalog, health and event watches: items by [`ItemKey`].
pub struct Catalog;

impl Followed for Catalog {
    type Key = ItemKey;
    type Item = CatalogItem;
    type Delta = CatalogDelta;

    fn key(item: &CatalogItem) -> ItemKey {
        item.key()
    }

    fn apply(state: &mut BTreeMap<ItemKey, CatalogItem>, delta: CatalogDelta) {
        for key in delta.removed {
            state.remove(&key);
        }
        state.extend(delta.upserted.into_iter().map(|i| (i.key(), i)));
    }
}

/// Follows one watch stream and keeps its items.
pub struct Follower<F: Followed> {
    rx: WatchReceiver<F::Item, F::Delta>,
    state: BTreeMap<F::Key, F::Item>,
    synced: bool,
    index: u64,
}

impl<F: Followed> Follower<F> {
    pub fn new(rx: WatchReceiver<F::Item, F::Delta>) -> Self {
        Follower {
            rx,
            state: BTreeMap::new(),
            synced: false,
            index: 0,
        }
    }

    /// The watched items by key, as of the last consistent point.
    pub fn state(&self) -> &BTreeMap<F::Key, F::Item> {
        &self.state
    }

    /// Where a reopened stream should start: the index held, or 0 (the whole state) when
    /// nothing consistent is held.
    pub fn resume_index(&self) -> u64 {
        if self.synced {
            self.index
        } else {
            0
        }
    }

    /// Continues on a reopened stream (opened from [`Self::resume_index`]).
    pub fn reattach(&mut self, rx: WatchReceiver<F::Item, F::Delta>) {
        if !self.synced {
            self.state.clear();
        }
        self.rx = rx;
    }

    /// Waits for the next consistent point and returns its index; `None` when the stream
    /// ended (the server is stopping, or the watch failed). Cancel-safe: a message is
    /// applied whole between awaits.
    pub async fn next(&mut self) -> Option<u64> {
        loop {
            match self.rx.recv().await? {
                WatchMessage::Reset { .. } => {
                    self.state.clear();
                    self.synced = false;
                }
                WatchMessage::Snapshot { items, .. } => {
                    self.state
                        .extend(items.into_iter().map(|i| (F::key(&i), i)));
                }
                WatchMessage::Synced { index } => {
                    self.synced = true;
                    self.index = index;
                    return Some(index);
                }
                WatchMessage::Changes { index, delta } => {
                    F::apply(&mut self.state, delta);
                    self.index = index;
                    if self.synced {
                        return Some(index);
                    }
                }
            }
        }
    }
}
