//! Crash consistency: a server killed with SIGKILL in the middle of heavy writes, again
//! and again, restarts with exactly the acknowledged history, plus possibly writes that
//! committed but whose answer was lost, and never a corrupt store.
//!
//! Writers append: each writes `crash/<w>/<seq>` in order and waits for the answer
//! before the next, so after any crash writer `w`'s keys must be exactly `1..=k` for
//! some `k` between its last acknowledged and its last attempted seq. Raft snapshots
//! (every 200 entries here) and log purges happen during the writes, so crashes land
//! in the middle of those too. `ROSTRA_CRASH_ROUNDS` sets the number of kills (20).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{elected, wait_until, Agent};
use rand::Rng;
use rostra::client::Client;
use rostra::pb;

const WRITERS: usize = 16;

/// Acknowledged and attempted seq of one writer (attempted ≥ acknowledged).
#[derive(Default)]
struct Progress {
    acked: AtomicU64,
    attempted: AtomicU64,
}

/// Writes until the server goes away.
async fn writer(c: Client, w: usize, progress: Arc<Progress>) {
    loop {
        let seq = progress.acked.load(Ordering::SeqCst) + 1;
        progress.attempted.store(seq, Ordering::SeqCst);
        let key = format!("crash/{w:02}/{seq:08}");
        // A bigger value every few writes keeps RocksDB flushing.
        let value = vec![b'x'; if seq % 8 == 0 { 16 * 1024 } else { 64 }];
        match c.put(&key, value, seq, None).await {
            Ok(_) => progress.acked.store(seq, Ordering::SeqCst),
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_heavy_writes_keeps_exactly_the_acknowledged_history() {
    let rounds: usize = std::env::var("ROSTRA_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::spawn(
        dir.path(),
        &[
            "-server".into(),
            "-bootstrap-expect".into(),
            "1".into(),
            "-node".into(),
            "crashy".into(),
            "-raft-snapshot-threshold".into(),
            "200".into(),
        ],
    );
    let progress: Vec<Arc<Progress>> = (0..WRITERS).map(|_| Arc::default()).collect();
    let mut total_acked = 0;
    let mut committed_unacked = 0;
    for round in 0..rounds {
        let c = elected(&agent).await;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(c.clone(), w, progress[w].clone())))
            .collect();
        // Let the writes get going (at least a few acknowledged), then crash at a
        // random moment.
        let start: u64 = progress
            .iter()
            .map(|p| p.acked.load(Ordering::SeqCst))
            .sum();
        wait_until("writes are acknowledged", || async {
            progress
                .iter()
                .map(|p| p.acked.load(Ordering::SeqCst))
                .sum::<u64>()
                > start + 50
        })
        .await;
        let run = rand::rng().random_range(50..400);
        tokio::time::sleep(Duration::from_millis(run)).await;
        agent.kill();
        for w in writers {
            w.await.unwrap();
        }

        agent.restart();
        let c = elected(&agent).await;
        for (w, p) in progress.iter().enumerate() {
            let listed = c
                .list(pb::ListRequest {
                    prefix: format!("crash/{w:02}/"),
                    consistency: pb::Consistency::Default as i32,
                    ..Default::default()
                })
                .await
                .expect("the restarted store answers");
            let header = listed.header.unwrap();
            let seqs: BTreeSet<u64> = listed
                .kvs
                .iter()
                .map(|kv| {
                    assert!(kv.modify_index <= header.index, "an index ahead of the log");
                    let seq: u64 = kv.key.rsplit('/').next().unwrap().parse().unwrap();
                    assert_eq!(kv.flags, seq, "{} holds another write's flags", kv.key);
                    let expect = if seq % 8 == 0 { 16 * 1024 } else { 64 };
                    assert_eq!(kv.value.len(), expect, "{} is damaged", kv.key);
                    seq
                })
                .collect();
            let acked = p.acked.load(Ordering::SeqCst);
            let attempted = p.attempted.load(Ordering::SeqCst);
            let k = seqs.len() as u64;
            assert_eq!(
                seqs,
                (1..=k).collect::<BTreeSet<u64>>(),
                "round {round}: writer {w}'s history has a hole"
            );
            assert!(
                k >= acked && k <= attempted,
                "round {round}: writer {w} has {k} writes; {acked} acknowledged, {attempted} attempted"
            );
            // A write that committed without an answer is history now.
            if k > acked {
                committed_unacked += 1;
            }
            p.acked.store(k, Ordering::SeqCst);
        }
        total_acked = progress
            .iter()
            .map(|p| p.acked.load(Ordering::SeqCst))
            .sum();
    }
    eprintln!(
        "crash: {rounds} SIGKILLs, {total_acked} writes kept, {committed_unacked} committed \
         without an answer"
    );
    assert!(
        agent.terminate(),
        "the server shuts down cleanly after the crashes"
    );
}
