//! The change feed: after each applied raft entry the state machine publishes the typed
//! changes it made (`state::change`); watchers subscribe to one KV key, a KV prefix or a
//! topic (a node, a service, the catalog) and are woken only by changes to what they look
//! at (Consul's complaint #1244: unrelated writes waking blocked queries).
//!
//! Three promises, which every watch stream and HTTP blocking query builds on:
//! - **No polling, no task of its own**: publishing is a few hash lookups per changed key
//!   under one short std mutex; each subscriber gets a bounded channel.
//! - **Never blocks apply**: a subscriber whose buffer is full is dropped from the feed and
//!   told why (`ResetReason::Lagged`) once it drains what it has; it then resyncs.
//! - **Resumable**: the feed keeps a log of recent batches of every table, bounded in
//!   bytes, so a watcher can resume from an index and receive exactly what happened after
//!   it, or learn that the index is older than what is retained (etcd's "compacted").
//!   Changes are shared (`Arc`) between the log and every subscriber, never copied.
//!
//! The feed knows no table: a change tells it its KV key, its topics and its size.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::change::Change;

/// Change history kept for resuming watchers, in bytes of changes.
pub const DEFAULT_RETAINED_BYTES: usize = 64 * 1024 * 1024;
/// Per-subscriber buffer, in batches, before it is considered lagging.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 1024;

/// What a watcher looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WatchTarget {
    Key(String),
    Prefix(String),
    /// A topic of the non-KV tables (e.g. `catalog/service/web`, see `Change::topics`).
    Topic(String),
}

impl WatchTarget {
    pub fn matches(&self, change: &Change) -> bool {
        match self {
            WatchTarget::Key(k) => change.kv_key() == Some(k.as_str()),
            WatchTarget::Prefix(p) => change
                .kv_key()
                .is_some_and(|key| key.starts_with(p.as_str())),
            WatchTarget::Topic(t) => change.topics().iter().any(|x| x == t),
        }
    }
}

/// Everything one raft entry changed.
#[derive(Debug, Clone, Default)]
pub struct ChangeBatch {
    pub index: u64,
    pub changes: Vec<Arc<Change>>,
    /// Sum of the changes' sizes, for the retention limit.
    bytes: usize,
}

impl ChangeBatch {
    pub fn new(index: u64, changes: Vec<Change>) -> Self {
        let bytes = changes.iter().map(Change::size).sum();
        ChangeBatch {
            index,
            changes: changes.into_iter().map(Arc::new).collect(),
            bytes,
        }
    }
}

/// What a subscriber receives: the changes of one entry that match its target.
#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub index: u64,
    pub changes: Vec<Arc<Change>>,
}

/// Why a subscriber's channel closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// It did not keep up and its buffer filled.
    Lagged,
    /// The state was replaced wholesale by a raft snapshot.
    SnapshotInstalled,
    /// The server is shutting down.
    Shutdown,
    /// A snapshot file was restored (`rostractl snapshot restore`).
    SnapshotRestored,
}

impl ResetReason {
    fn code(self) -> u8 {
        match self {
            ResetReason::Lagged => 1,
            ResetReason::SnapshotInstalled => 2,
            ResetReason::Shutdown => 3,
            ResetReason::SnapshotRestored => 4,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(ResetReason::Lagged),
            2 => Some(ResetReason::SnapshotInstalled),
            3 => Some(ResetReason::Shutdown),
            4 => Some(ResetReason::SnapshotRestored),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::Lagged => "lagged",
            ResetReason::SnapshotInstalled => "snapshot_installed",
            ResetReason::Shutdown => "shutdown",
            ResetReason::SnapshotRestored => "snapshot_restored",
        }
    }
}

/// A resume index older than the retained change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted {
    /// Changes at or below this index are no longer retained.
    pub compacted_through: u64,
}

/// A live subscription; dropping it unsubscribes.
pub struct Subscription {
    pub id: u64,
    /// The feed's applied index when the subscription was registered: every change above
    /// it arrives on `rx`, every change at or below it is already in committed state.
    pub registered_at: u64,
    rx: mpsc::Receiver<FeedEvent>,
    reason: Arc<AtomicU8>,
    feed: Arc<ChangeFeed>,
}

impl Subscription {
    /// The next matching batch, or the reason the feed dropped this subscriber.
    pub async fn recv(&mut self) -> Result<FeedEvent, ResetReason> {
        match self.rx.recv().await {
            Some(ev) => Ok(ev),
            None => Err(ResetReason::from_code(self.reason.load(Ordering::Acquire))
                .unwrap_or(ResetReason::Shutdown)),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feed.unsubscribe(self.id);
    }
}

struct Subscriber {
    target: WatchTarget,
    tx: mpsc::Sender<FeedEvent>,
    reason: Arc<AtomicU8>,
    /// False for the server's own followers (leader duties): not a client's watcher.
    counted: bool,
}

struct FeedInner {
    next_id: u64,
    applied_index: u64,
    /// Highest index whose changes may have been dropped from `retained`.
    compacted_through: u64,
    retained: VecDeque<Arc<ChangeBatch>>,
    retained_bytes: usize,
    subscribers: HashMap<u64, Subscriber>,
    /// Subscriber ids per watched key, prefix and topic. Sets, not lists: when one write
    /// answers 10,000 blocking queries of one key, each drops its subscription, and
    /// removing from a list under the feed's lock cost 10,000 x 10,000 comparisons
    /// (a profile put it at the top of the user-space time). Ids only grow, so the
    /// set's order is subscription order, as the list's was.
    by_key: HashMap<String, BTreeSet<u64>>,
    by_prefix: HashMap<String, BTreeSet<u64>>,
    by_topic: HashMap<String, BTreeSet<u64>>,
}

/// The in-process hub between apply and every watcher.
pub struct ChangeFeed {
    inner: Mutex<FeedInner>,
    /// Bytes of changes retained for resuming watchers.
    retain_limit: usize,
    buffer: usize,
}

impl ChangeFeed {
    /// A feed whose history starts at `applied_index` (nothing before it can be replayed).
    pub fn new(applied_index: u64) -> Arc<Self> {
        Self::with_limits(
            applied_index,
            DEFAULT_RETAINED_BYTES,
            DEFAULT_SUBSCRIBER_BUFFER,
        )
    }

    /// A feed keeping `retain_bytes` of change history and `buffer` batches per
    /// subscriber.
    pub fn with_limits(applied_index: u64, retain_bytes: usize, buffer: usize) -> Arc<Self> {
        Arc::new(ChangeFeed {
            inner: Mutex::new(FeedInner {
                next_id: 1,
                applied_index,
                compacted_through: applied_index,
                retained: VecDeque::new(),
                retained_bytes: 0,
                subscribers: HashMap::new(),
                by_key: HashMap::new(),
                by_prefix: HashMap::new(),
                by_topic: HashMap::new(),
            }),
            retain_limit: retain_bytes,
            buffer: buffer.max(1),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FeedInner> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters more than losing every watcher, so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The index of the last published entry.
    pub fn applied_index(&self) -> u64 {
        self.lock().applied_index
    }

    /// Publishes what entry `batch.index` changed. Called by apply after the batch is
    /// committed, for every entry (an entry with no changes just advances the index).
    pub fn publish(&self, batch: ChangeBatch) {
        let mut inner = self.lock();
        inner.applied_index = inner.applied_index.max(batch.index);
        if batch.changes.is_empty() {
            return;
        }
        let batch = Arc::new(batch);

        // Route each change to the subscribers that look at it: a KV change to watchers
        // of its exact key and of every prefix of it (at char boundaries, which is where
        // any prefix string ends); any change to the watchers of each of its topics.
        let mut routed: HashMap<u64, Vec<Arc<Change>>> = HashMap::new();
        let mut route = |ids: Option<&BTreeSet<u64>>, change: &Arc<Change>| {
            for id in ids.into_iter().flatten() {
                let to = routed.entry(*id).or_default();
                // A change reaches a subscriber once, even through two of its topics.
                if !to.last().is_some_and(|c| Arc::ptr_eq(c, change)) {
                    to.push(change.clone());
                }
            }
        };
        for change in &batch.changes {
            if let Some(key) = change.kv_key() {
                route(inner.by_key.get(key), change);
                let boundaries = key
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain(std::iter::once(key.len()));
                for end in boundaries {
                    route(inner.by_prefix.get(&key[..end]), change);
                }
            }
            for topic in change.topics() {
                route(inner.by_topic.get(&topic), change);
            }
        }
        let mut dropped = Vec::new();
        for (id, changes) in routed {
            let Some(sub) = inner.subscribers.get(&id) else {
                continue;
            };
            let event = FeedEvent {
                index: batch.index,
                changes,
            };
            match sub.tx.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.reason
                        .store(ResetReason::Lagged.code(), Ordering::Release);
                    dropped.push(id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => dropped.push(id),
            }
        }
        for id in dropped {
            remove(&mut inner, id);
        }

        inner.retained_bytes += batch.bytes;
        inner.retained.push_back(batch);
        while inner.retained_bytes > self.retain_limit {
            let Some(old) = inner.retained.pop_front() else {
                break;
            };
            inner.retained_bytes -= old.bytes;
            inner.compacted_through = old.index;
        }
    }

    /// Subscribes to `target`. With `resume_after = Some(n)` also returns the retained
    /// changes after `n` that match, or `Compacted` if some of them are gone; the
    /// subscription is registered either way, atomically with that replay, so nothing
    /// falls between the two.
    pub fn subscribe(
        self: &Arc<Self>,
        target: WatchTarget,
        resume_after: Option<u64>,
    ) -> (Subscription, Option<Result<Vec<FeedEvent>, Compacted>>) {
        self.subscribe_as(target, resume_after, true)
    }

    /// A subscription of the server itself (a leader duty following a table): like
    /// `subscribe`, but not counted among the watchers clients hold.
    pub fn subscribe_internal(self: &Arc<Self>, target: WatchTarget) -> Subscription {
        self.subscribe_as(target, None, false).0
    }

    fn subscribe_as(
        self: &Arc<Self>,
        target: WatchTarget,
        resume_after: Option<u64>,
        counted: bool,
    ) -> (Subscription, Option<Result<Vec<FeedEvent>, Compacted>>) {
        let (tx, rx) = mpsc::channel(self.buffer);
        let reason = Arc::new(AtomicU8::new(0));
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        match &target {
            WatchTarget::Key(k) => inner.by_key.entry(k.clone()).or_default().insert(id),
            WatchTarget::Prefix(p) => inner.by_prefix.entry(p.clone()).or_default().insert(id),
            WatchTarget::Topic(t) => inner.by_topic.entry(t.clone()).or_default().insert(id),
        };
        inner.subscribers.insert(
            id,
            Subscriber {
                target: target.clone(),
                tx,
                reason: reason.clone(),
                counted,
            },
        );
        let replay = resume_after.map(|after| {
            if after < inner.compacted_through {
                return Err(Compacted {
                    compacted_through: inner.compacted_through,
                });
            }
            Ok(inner
                .retained
                .iter()
                .filter(|b| b.index > after)
                .filter_map(|b| {
                    let changes: Vec<Arc<Change>> = b
                        .changes
                        .iter()
                        .filter(|c| target.matches(c))
                        .cloned()
                        .collect();
                    (!changes.is_empty()).then_some(FeedEvent {
                        index: b.index,
                        changes,
                    })
                })
                .collect())
        });
        let registered_at = inner.applied_index;
        drop(inner);
        (
            Subscription {
                id,
                registered_at,
                rx,
                reason,
                feed: self.clone(),
            },
            replay,
        )
    }

    /// Drops every subscriber with `reason` and forgets the retained history: used when a
    /// raft snapshot replaces the state at `index`, after which no replay is exact.
    pub fn reset_all(&self, index: u64, reason: ResetReason) {
        let mut inner = self.lock();
        for sub in inner.subscribers.values() {
            sub.reason.store(reason.code(), Ordering::Release);
        }
        inner.subscribers.clear();
        inner.by_key.clear();
        inner.by_prefix.clear();
        inner.by_topic.clear();
        inner.retained.clear();
        inner.retained_bytes = 0;
        inner.applied_index = index;
        inner.compacted_through = index;
    }

    /// How many clients' subscribers are registered (for metrics and tests).
    pub fn subscriber_count(&self) -> usize {
        self.lock()
            .subscribers
            .values()
            .filter(|s| s.counted)
            .count()
    }

    fn unsubscribe(&self, id: u64) {
        remove(&mut self.lock(), id);
    }
}

fn remove(inner: &mut FeedInner, id: u64) {
    let Some(sub) = inner.subscribers.remove(&id) else {
        return;
    };
    let (map, key) = match &sub.target {
        WatchTarget::Key(k) => (&mut inner.by_key, k),
        WatchTarget::Prefix(p) => (&mut inner.by_prefix, p),
        WatchTarget::Topic(t) => (&mut inner.by_topic, t),
    };
    if let Some(ids) = map.get_mut(key) {
        ids.remove(&id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::kv::{KvChange, KvEntry};

    fn change(key: &str, index: u64) -> Change {
        Change::Kv(KvChange {
            key: key.into(),
            entry: Some(KvEntry {
                key: key.into(),
                value: vec![],
                flags: 0,
                create_index: index,
                modify_index: index,
                lock_index: 0,
                session: String::new(),
            }),
        })
    }

    fn publish(feed: &ChangeFeed, index: u64, keys: &[&str]) {
        feed.publish(ChangeBatch::new(
            index,
            keys.iter().map(|k| change(k, index)).collect(),
        ));
    }

    fn service(node: &str, name: &str) -> Change {
        Change::Service {
            node: node.into(),
            id: name.into(),
            name: name.into(),
            old_name: None,
            instance: None,
        }
    }

    #[tokio::test]
    async fn topics_wake_only_their_subscribers() {
        let feed = ChangeFeed::new(0);
        let (mut web, _) = feed.subscribe(WatchTarget::Topic("catalog/service/web".into()), None);
        let (mut db, _) = feed.subscribe(WatchTarget::Topic("catalog/service/db".into()), None);
        feed.publish(ChangeBatch::new(3, vec![service("n1", "web")]));
        let ev = web.recv().await.unwrap();
        assert_eq!((ev.index, ev.changes.len()), (3, 1));
        assert_eq!(*ev.changes[0], service("n1", "web"));
        assert!(db.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn routes_only_matching_changes() {
        let feed = ChangeFeed::new(0);
        let (mut key_sub, _) = feed.subscribe(WatchTarget::Key("a/b".into()), None);
        let (mut prefix_sub, _) = feed.subscribe(WatchTarget::Prefix("a/".into()), None);
        publish(&feed, 1, &["zzz"]);
        publish(&feed, 2, &["a/c", "a/b", "other"]);
        let ev = key_sub.recv().await.unwrap();
        assert_eq!((ev.index, ev.changes.len()), (2, 1));
        let ev = prefix_sub.recv().await.unwrap();
        assert_eq!(
            ev.changes
                .iter()
                .filter_map(|c| c.kv_key())
                .collect::<Vec<_>>(),
            vec!["a/c", "a/b"]
        );
        assert!(key_sub.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn slow_subscriber_is_dropped_with_lagged() {
        let feed = ChangeFeed::with_limits(0, 1000, 2);
        let (mut sub, _) = feed.subscribe(WatchTarget::Prefix(String::new()), None);
        for i in 1..=5 {
            publish(&feed, i, &["k"]);
        }
        assert_eq!(feed.subscriber_count(), 0);
        assert_eq!(sub.recv().await.unwrap().index, 1);
        assert_eq!(sub.recv().await.unwrap().index, 2);
        assert_eq!(sub.recv().await.unwrap_err(), ResetReason::Lagged);
    }

    #[tokio::test]
    async fn retention_is_in_bytes_and_changes_are_shared() {
        let size = change("k", 1).size();
        // Room for exactly three one-key batches.
        let feed = ChangeFeed::with_limits(0, 3 * size, 16);
        let (mut a, _) = feed.subscribe(WatchTarget::Key("k".into()), None);
        let (mut b, _) = feed.subscribe(WatchTarget::Prefix("".into()), None);
        for i in 1..=4 {
            publish(&feed, i, &["k"]);
        }
        let (ea, eb) = (a.recv().await.unwrap(), b.recv().await.unwrap());
        assert!(
            Arc::ptr_eq(&ea.changes[0], &eb.changes[0]),
            "one copy for all"
        );
        let (_s, replay) = feed.subscribe(WatchTarget::Key("k".into()), Some(1));
        let idx: Vec<u64> = replay.unwrap().unwrap().iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![2, 3, 4]);
        // A big value pushes older batches out.
        let big = Change::Kv(KvChange {
            key: "big".into(),
            entry: Some(KvEntry {
                key: "big".into(),
                value: vec![0; size],
                flags: 0,
                create_index: 5,
                modify_index: 5,
                lock_index: 0,
                session: String::new(),
            }),
        });
        feed.publish(ChangeBatch::new(5, vec![big]));
        let (_s, replay) = feed.subscribe(WatchTarget::Key("k".into()), Some(2));
        assert_eq!(replay.unwrap().unwrap_err().compacted_through, 4);
    }

    #[tokio::test]
    async fn catalog_changes_are_retained_for_resume() {
        let feed = ChangeFeed::new(0);
        feed.publish(ChangeBatch::new(1, vec![service("n1", "web")]));
        feed.publish(ChangeBatch::new(2, vec![service("n1", "db")]));
        let (_s, replay) =
            feed.subscribe(WatchTarget::Topic("catalog/service/web".into()), Some(0));
        let events = replay.unwrap().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].index, 1);
        let (_s, replay) = feed.subscribe(WatchTarget::Topic("catalog".into()), Some(1));
        assert_eq!(replay.unwrap().unwrap()[0].index, 2);
    }

    #[tokio::test]
    async fn resume_replays_exactly_or_reports_compacted() {
        let feed = ChangeFeed::with_limits(10, 3 * change("k", 11).size(), 16);
        for i in 11..=15 {
            publish(&feed, i, &["k"]);
        }
        let (_s, replay) = feed.subscribe(WatchTarget::Key("k".into()), Some(13));
        let idx: Vec<u64> = replay.unwrap().unwrap().iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![14, 15]);
        let (_s, replay) = feed.subscribe(WatchTarget::Key("k".into()), Some(11));
        assert_eq!(replay.unwrap().unwrap_err().compacted_through, 12);
    }

    #[tokio::test]
    async fn dropping_subscription_unregisters() {
        let feed = ChangeFeed::new(0);
        let (sub, _) = feed.subscribe(WatchTarget::Key("x".into()), None);
        assert_eq!(feed.subscriber_count(), 1);
        drop(sub);
        assert_eq!(feed.subscriber_count(), 0);
        publish(&feed, 1, &["x"]);
    }

    #[tokio::test]
    async fn dropping_one_of_many_watchers_of_a_key_leaves_the_others() {
        let feed = ChangeFeed::new(0);
        let mut subs: Vec<Subscription> = (0..5)
            .map(|_| feed.subscribe(WatchTarget::Key("x".into()), None).0)
            .collect();
        let (mut prefix, _) = feed.subscribe(WatchTarget::Prefix("x".into()), None);
        // Drop one in the middle and the first: the rest still hear the key, once each.
        drop(subs.remove(2));
        drop(subs.remove(0));
        publish(&feed, 1, &["x"]);
        // Publishing queues synchronously, so a missing change is a failure, not a wait.
        let heard = |sub: &mut Subscription| {
            let ev = futures::FutureExt::now_or_never(sub.recv())
                .expect("the change should already be queued")
                .unwrap();
            (ev.index, ev.changes.len())
        };
        for sub in &mut subs {
            assert_eq!(heard(sub), (1, 1));
            assert!(sub.rx.try_recv().is_err());
        }
        assert_eq!(heard(&mut prefix), (1, 1));
        // The last watcher of a key or prefix takes its entry with it.
        drop(subs);
        drop(prefix);
        let inner = feed.lock();
        assert!(inner.by_key.is_empty() && inner.by_prefix.is_empty());
        assert!(inner.subscribers.is_empty());
    }
}
