//! Batches client writes into raft entries. openraft 0.9 appends one entry per
//! `client_write`, and every entry costs a log append, a commit round and an apply; under
//! load that per-entry cost, not the disk, is the limit. The proposer takes whatever
//! writes are waiting, proposes them as one `Proposal`, and keeps a few proposals in
//! flight: a lone client pays nothing extra, many clients share one entry and one fsync.
//! Two writes of one key never share an entry, so a `ModifyIndex` names one value (the
//! chaos test found CAS lost updates when they did).
//!
//! The proposer is one task owned by [`ProposerTask`]; the tasks waiting for each
//! proposal's commit live in a `JoinSet` inside it, so stopping the proposer joins them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::ClientWriteError;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::types::{NodeId, NodeInfo, Raft};
use super::RaftStats;
use crate::state::{Command, CommandResult, Proposal};

/// Most writes in one entry.
const MAX_BATCH_COMMANDS: usize = 512;
/// Stop adding writes once an entry holds this many bytes of keys and values (a single
/// write may exceed it on its own; the value limit bounds that).
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Proposals awaiting commit at once: two, so one entry's fsync overlaps the next one's
/// forming, and few enough that waiting writes pile up into the next batch. Every entry
/// costs an fsync and several task hops whatever it holds, so on a machine whose cores
/// the clients share, fewer and fuller entries win: measured on 2 cores (dev build),
/// 16 clients wrote 6,600/s with 4 in flight (2.4 writes per entry) and 9,100/s with 2
/// (4.3 per entry); 64 clients 12,600/s and 18,900/s. With 1 in flight the fsync no
/// longer overlaps anything and 64 clients fell back to 15,400/s.
const MAX_IN_FLIGHT: usize = 2;
/// Writes queued for the proposer before submitters wait.
const QUEUE: usize = 4096;

/// Why a write was not applied here.
#[derive(Debug, Clone)]
pub enum ProposeError {
    /// This server is not the leader; nothing was proposed.
    ForwardToLeader {
        leader_id: Option<NodeId>,
        leader_node: Option<NodeInfo>,
    },
    /// The data directory's disk is below its free-space reserve; nothing was proposed.
    NoSpace(String),
    /// Proposed, but not committed within [`COMMIT_WAIT`]: this server may have lost its
    /// quorum, or its leadership without noticing yet. The write may still commit later.
    TimedOut,
    Fatal(String),
}

/// How long a proposal may wait to be committed and applied. Without a bound, a write
/// to a leader that can no longer reach a quorum (or that removed itself from the
/// configuration and has not yet stepped down) would wait forever, and its caller with
/// it.
pub const COMMIT_WAIT: Duration = Duration::from_secs(30);

pub type ProposeReply = Result<(u64, CommandResult), ProposeError>;

/// A write, who waits for its result, and when it was queued.
type Pending = (Command, oneshot::Sender<ProposeReply>, Instant);

/// Handle to the proposer task; cheap to clone.
#[derive(Clone)]
pub struct Proposer {
    tx: mpsc::Sender<Pending>,
}

/// The proposer task itself, held by its one owner (the raft node).
pub struct ProposerTask {
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl ProposerTask {
    /// Stops taking writes (queued ones are refused), waits for the proposals in flight
    /// to be answered, and joins the task. Call after raft has stopped, so those answers
    /// come at once.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "the proposer task failed");
        }
    }
}

impl Proposer {
    pub fn start(
        raft: Raft,
        stats: Arc<RaftStats>,
        space: super::space::SpaceGuard,
    ) -> (Proposer, ProposerTask) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let stop = CancellationToken::new();
        let handle = tokio::spawn(run(raft, rx, stats, space, stop.clone()));
        (Proposer { tx }, ProposerTask { stop, handle })
    }

    /// Proposes `command` on this server; returns its log index and result once applied.
    pub async fn propose(&self, command: Command) -> ProposeReply {
        let (reply, rx) = oneshot::channel();
        let stopped = || ProposeError::Fatal("raft stopped".into());
        self.tx
            .send((command, reply, Instant::now()))
            .await
            .map_err(|_| stopped())?;
        match tokio::time::timeout(COMMIT_WAIT, rx).await {
            Ok(reply) => reply.map_err(|_| stopped())?,
            Err(_) => Err(ProposeError::TimedOut),
        }
    }
}

fn size(command: &Command) -> usize {
    match command {
        Command::KvPut { key, value, .. } => key.len() + value.len(),
        Command::KvDelete { key, .. } => key.len(),
        Command::KvDeleteTree { prefix } => prefix.len(),
        Command::KvTxn { ops } => ops.iter().map(|op| op.key.len() + op.value.len()).sum(),
        Command::KvLock {
            key,
            value,
            session,
            ..
        } => key.len() + value.len() + session.len(),
        Command::KvReapTombstones { .. } => 0,
        // Catalog records are small, a few hundred bytes, but for a service's `Proxy`.
        Command::CatalogRegister(r) => {
            256 + r.service.as_ref().map_or(0, |s| s.extra.proxy.len())
        }
        Command::CatalogRegisterV1(_) | Command::CatalogDeregister(_) => 256,
        Command::SessionCreate(_)
        | Command::SessionDestroy { .. }
        | Command::SessionRenew { .. }
        | Command::SessionExpire { .. } => 128,
        Command::EventFire(e) => 128 + e.name.len() + e.payload.len(),
        Command::EventTrim { .. } => 16,
        Command::Restore { tables } => tables
            .records
            .iter()
            .map(|(t, k, v)| t.len() + k.len() + v.len())
            .sum(),
    }
}

fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = fnv::FnvHasher::default();
    key.hash(&mut h);
    h.finish()
}

async fn run(
    raft: Raft,
    mut rx: mpsc::Receiver<Pending>,
    stats: Arc<RaftStats>,
    space: super::space::SpaceGuard,
    stop: CancellationToken,
) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    // One task per proposal awaiting its commit (at most MAX_IN_FLIGHT running).
    let mut waiting = JoinSet::new();
    // A write taken from the queue that had to wait for the next entry.
    let mut carried: Option<Pending> = None;
    // Hashes of the keys the batch being built sets.
    let mut keys: std::collections::HashSet<u64> = std::collections::HashSet::new();
    loop {
        while waiting.try_join_next().is_some() {}
        // Take the permit first: while all are busy, writes accumulate for the next batch.
        let waited = Instant::now();
        let permit = tokio::select! {
            p = in_flight.clone().acquire_owned() => p,
            _ = stop.cancelled() => break,
        };
        let Ok(permit) = permit else { break };
        stats.timings.slot.since(waited);
        let first = match carried.take() {
            Some(p) => Some(p),
            None => tokio::select! {
                p = rx.recv() => p,
                _ = stop.cancelled() => break,
            },
        };
        let Some(first) = first else { break };
        let mut bytes = size(&first.0);
        keys.clear();
        keys.extend(first.0.value_keys().into_iter().map(key_hash));
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    let written: Vec<u64> = p.0.value_keys().into_iter().map(key_hash).collect();
                    // A second write of a key waits for the next entry (see
                    // `Command::value_keys`); a hash collision only splits a batch.
                    if written.iter().any(|h| keys.contains(h))
                        || p.0.exclusive()
                        || batch[0].0.exclusive()
                    {
                        carried = Some(p);
                        break;
                    }
                    keys.extend(written);
                    bytes += size(&p.0);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let formed = Instant::now();
        let mut commands = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        for (command, reply, queued) in batch {
            stats.timings.queue.record(formed - queued);
            commands.push(command);
            replies.push(reply);
        }
        // Checked per batch, on the leader (a follower's proposal is refused as not
        // leader before reaching the log anyway).
        if let Err(why) = space.check() {
            tracing::warn!(%why, "write refused");
            for reply in replies {
                let _ = reply.send(Err(ProposeError::NoSpace(why.clone())));
            }
            continue;
        }
        stats
            .writes
            .fetch_add(commands.len() as u64, Ordering::Relaxed);
        stats.proposals.fetch_add(1, Ordering::Relaxed);
        // Stamped here, on the leader: the entry's one time for every replica's apply.
        let time_ns = crate::state::command::now_ns();
        let submitted = Instant::now();
        match raft.client_write_ff(Proposal { commands, time_ns }).await {
            Ok(pending) => {
                let committing = Instant::now();
                stats.timings.submit.record(committing - submitted);
                let stats = stats.clone();
                waiting.spawn(async move {
                    let outcome = pending.await;
                    stats.timings.commit.since(committing);
                    drop(permit);
                    let replies = replies.into_iter();
                    match outcome {
                        Ok(Ok(resp)) => {
                            let index = resp.log_id.index;
                            let mut results = resp.data.results.into_iter();
                            for reply in replies {
                                let r = results.next().map(|r| (index, r)).ok_or_else(|| {
                                    ProposeError::Fatal("missing result for a batched write".into())
                                });
                                let _ = reply.send(r);
                            }
                        }
                        Ok(Err(ClientWriteError::ForwardToLeader(f))) => {
                            let e = ProposeError::ForwardToLeader {
                                leader_id: f.leader_id,
                                leader_node: f.leader_node,
                            };
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                        Ok(Err(e)) => {
                            for reply in replies {
                                let _ = reply.send(Err(ProposeError::Fatal(e.to_string())));
                            }
                        }
                        Err(_) => {
                            for reply in replies {
                                let _ = reply.send(Err(ProposeError::Fatal(
                                    "raft stopped before answering".into(),
                                )));
                            }
                        }
                    }
                });
            }
            Err(fatal) => {
                for reply in replies {
                    let _ = reply.send(Err(ProposeError::Fatal(fatal.to_string())));
                }
            }
        }
    }
    // Stopped: refuse what is still queued (nothing of it was proposed), then let the
    // proposals in flight answer their writers.
    rx.close();
    if let Some((_, reply, _)) = carried.take() {
        let _ = reply.send(Err(ProposeError::Fatal("shutting down".into())));
    }
    while let Ok((_, reply, _)) = rx.try_recv() {
        let _ = reply.send(Err(ProposeError::Fatal("shutting down".into())));
    }
    while waiting.join_next().await.is_some() {}
}
