//! Where a write's time goes, stage by stage, as running totals: each stage counts its
//! events and the nanoseconds they took, so a reader takes two readings and divides the
//! differences (`rostractl bench put` prints the breakdown). Recording is two relaxed
//! atomic adds and a clock read, cheap enough to stay on in production.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// One stage's totals.
#[derive(Debug, Default)]
pub struct Stage {
    count: AtomicU64,
    total_ns: AtomicU64,
    /// The fastest and slowest event (`/v1/agent/metrics`' Min and Max); 0 before any.
    min_ns: AtomicU64,
    max_ns: AtomicU64,
}

impl Stage {
    pub fn record(&self, took: Duration) {
        let ns = took.as_nanos() as u64;
        if self.count.fetch_add(1, Relaxed) == 0 {
            self.min_ns.store(ns, Relaxed);
        }
        self.total_ns.fetch_add(ns, Relaxed);
        self.min_ns.fetch_min(ns, Relaxed);
        self.max_ns.fetch_max(ns, Relaxed);
    }

    /// Records the time since `since`.
    pub fn since(&self, since: Instant) {
        self.record(since.elapsed());
    }
}

/// The stages of the write path on the server that proposes and applies it.
#[derive(Debug, Default)]
pub struct WriteTimings {
    /// A write from `RaftNode::write` to its result (handler-side, per write).
    pub write: Stage,
    /// A write waiting in the proposer's queue until its batch is formed (per write).
    pub queue: Stage,
    /// Waiting for a free in-flight slot before forming a batch (per batch).
    pub slot: Stage,
    /// Handing a batch to openraft (`client_write_ff`, per batch).
    pub submit: Stage,
    /// From handing a batch to openraft to its applied result (per batch): log append,
    /// fsync, commit and apply.
    pub commit: Stage,
    /// Writing appended entries to RocksDB, unsynced (per append call).
    pub append: Stage,
    /// One WAL fsync (per fsync).
    pub fsync: Stage,
    /// From an append call to its entries being durable (per append call).
    pub durable: Stage,
    /// Applying committed entries to the tables, one RocksDB batch (per apply call).
    pub apply: Stage,
    /// Telling watchers about the applied entries (per apply call).
    pub publish: Stage,
    /// On a leader: one AppendEntries round trip to a follower, entries or heartbeat.
    pub replicate: Stage,
    /// On a follower: handling one AppendEntries (decode, append, wait for durable).
    pub follow: Stage,
}

impl WriteTimings {
    /// (stage, events, total nanoseconds) for every stage.
    pub fn readings(&self) -> Vec<(&'static str, u64, u64)> {
        self.stages()
            .into_iter()
            .map(|(name, st)| (name, st.count.load(Relaxed), st.total_ns.load(Relaxed)))
            .collect()
    }

    /// (stage, fastest, slowest) in nanoseconds for every stage.
    pub fn extremes(&self) -> Vec<(&'static str, u64, u64)> {
        self.stages()
            .into_iter()
            .map(|(name, st)| (name, st.min_ns.load(Relaxed), st.max_ns.load(Relaxed)))
            .collect()
    }

    fn stages(&self) -> Vec<(&'static str, &Stage)> {
        let s = |name, st| (name, st);
        vec![
            s("write", &self.write),
            s("queue", &self.queue),
            s("slot", &self.slot),
            s("submit", &self.submit),
            s("commit", &self.commit),
            s("append", &self.append),
            s("fsync", &self.fsync),
            s("durable", &self.durable),
            s("apply", &self.apply),
            s("publish", &self.publish),
            s("replicate", &self.replicate),
            s("follow", &self.follow),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_sums_its_events() {
        let t = WriteTimings::default();
        t.fsync.record(Duration::from_micros(200));
        t.fsync.record(Duration::from_micros(100));
        t.apply.record(Duration::from_nanos(7));
        let r = t.readings();
        let get = |name| *r.iter().find(|(n, _, _)| *n == name).unwrap();
        assert_eq!(get("fsync"), ("fsync", 2, 300_000));
        assert_eq!(get("apply"), ("apply", 1, 7));
        assert_eq!(get("commit"), ("commit", 0, 0));
        assert_eq!(r.len(), 12, "every stage is reported");
    }
}
