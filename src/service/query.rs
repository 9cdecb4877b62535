//! Reads with Consul's blocking-query semantics, built on the change feed: a read with
//! `min_index > 0` subscribes to exactly what it reads (one key or one prefix), runs, and
//! if its index has not passed `min_index` sleeps until the feed reports a change there or
//! the wait ends. Writes elsewhere never wake it (Consul's #1244 complaint).

use std::time::Duration;

use rand::Rng;

use super::{Consistency, ResponseMeta, Service, ServiceError};
use crate::state::feed::ResetReason;
use crate::state::store::{KvQuery, StoreError};
use crate::state::{StateStore, WatchTarget};

/// Consul's `default_query_time`.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Consul's `max_query_time`.
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// How a read is served.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueryOptions {
    pub consistency: Consistency,
    /// 0: answer at once. N: wait until the query's index is greater than N.
    pub min_index: u64,
    /// Longest wait when blocking (already clamped and jittered; see `blocking_wait`).
    pub wait: Duration,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            consistency: Consistency::Default,
            min_index: 0,
            wait: DEFAULT_WAIT,
        }
    }
}

impl QueryOptions {
    pub fn with_consistency(consistency: Consistency) -> Self {
        QueryOptions {
            consistency,
            ..Default::default()
        }
    }
}

/// Consul's wait rules: absent or non-positive means 5m, capped at 10m, plus a random
/// jitter of up to wait/16 so many watchers do not return in lockstep.
pub fn blocking_wait(requested: Option<Duration>) -> Duration {
    let wait = match requested {
        Some(d) if !d.is_zero() => d.min(MAX_WAIT),
        _ => DEFAULT_WAIT,
    };
    let jitter_ns = (wait.as_nanos() / 16) as u64;
    let jitter = if jitter_ns == 0 {
        0
    } else {
        rand::rng().random_range(0..jitter_ns)
    };
    wait + Duration::from_nanos(jitter)
}

/// What a query's answer reflects.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueryMeta {
    /// Consul's `X-Consul-Index` for this query (never 0).
    pub index: u64,
    /// Applied index, node, term, leader contact (the gRPC header).
    pub meta: ResponseMeta,
    pub consistency: Consistency,
}

/// One blocking query counted as waiting until it answers (or is dropped).
struct Waiting<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Waiting<'a> {
    fn new(count: &'a std::sync::atomic::AtomicU64) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Service {
    /// Runs `read` under `opts`, blocking as Consul does when `opts.min_index > 0`.
    pub(super) async fn query<T, F>(
        &self,
        target: WatchTarget,
        opts: &QueryOptions,
        read: F,
    ) -> Result<(QueryMeta, T), ServiceError>
    where
        T: Send + 'static,
        F: Fn(&StateStore) -> Result<KvQuery<T>, StoreError> + Send + Sync + Clone + 'static,
    {
        // A waiting query holds a permit, like a watch stream, and is counted while it
        // waits (`/v1/agent/metrics`).
        let _permit = if opts.min_index > 0 {
            Some((self.stream_permit()?, Waiting::new(&self.blocking_queries)))
        } else {
            None
        };
        // Subscribe before the first read so nothing between the read and the wait is lost.
        let mut sub = (opts.min_index > 0).then(|| self.feed.subscribe(target.clone(), None).0);
        let deadline = tokio::time::Instant::now() + opts.wait;
        let mut first = true;
        loop {
            // The first read meets the requested consistency. A woken query re-reads local
            // state, which already holds the change that woke it; only `consistent`
            // confirms leadership again on every pass, as Consul's does. (A wake is
            // usually one write waking a crowd: 10,000 waiters each asking raft for a
            // read index cost more than answering them.) A query woken by shutdown
            // answers from local state: raft is already stopping, and local state has
            // only moved forward since the first read.
            let again =
                opts.consistency == Consistency::Consistent && !self.shutdown.is_cancelled();
            if first || again {
                self.read_barrier(opts.consistency).await?;
            }
            let f = read.clone();
            // A woken point read runs here: a key from RocksDB's memtable or block
            // cache takes microseconds, less than the hop to the blocking pool that a
            // crowd of woken queries would otherwise queue on. Other reads (prefixes,
            // catalog scans) and every first read go to the pool.
            let q = if !first && matches!(target, WatchTarget::Key(_)) {
                f(&self.state)?
            } else {
                self.blocking_read(move |s| f(s)).await?
            };
            first = false;
            let expired = tokio::time::Instant::now() >= deadline || self.shutdown.is_cancelled();
            let Some(subscription) = sub
                .as_mut()
                .filter(|_| q.index <= opts.min_index && !expired)
            else {
                let meta = QueryMeta {
                    index: q.index,
                    meta: self.meta(q.applied),
                    consistency: opts.consistency,
                };
                return Ok((meta, q.value));
            };
            tokio::select! {
                woke = subscription.recv() => match woke {
                    Ok(_) => {
                        self.query_wakeups.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    // Dropped from the feed: re-read (an early answer is allowed) after
                    // subscribing again so the next wait misses nothing.
                    Err(
                        ResetReason::Lagged
                        | ResetReason::SnapshotInstalled
                        | ResetReason::SnapshotRestored,
                    ) => {
                        *subscription = self.feed.subscribe(target.clone(), None).0;
                    }
                    Err(ResetReason::Shutdown) => {}
                },
                _ = tokio::time::sleep_until(deadline) => {}
                _ = self.shutdown.cancelled() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_defaults_caps_and_jitters() {
        for _ in 0..100 {
            let w = blocking_wait(None);
            assert!(w >= DEFAULT_WAIT && w < DEFAULT_WAIT + DEFAULT_WAIT / 16);
            let w = blocking_wait(Some(Duration::from_secs(3600)));
            assert!(w >= MAX_WAIT && w < MAX_WAIT + MAX_WAIT / 16);
            let w = blocking_wait(Some(Duration::from_millis(1600)));
            assert!(w >= Duration::from_millis(1600) && w < Duration::from_millis(1700));
        }
        assert!(blocking_wait(Some(Duration::ZERO)) >= DEFAULT_WAIT);
    }
}
