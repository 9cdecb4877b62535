//! Leader housekeeping: KV tombstones (kept so a prefix's index never goes backwards when
//! its newest key is deleted) are reaped once they are older than the tombstone TTL, as
//! Consul's leader does. Only the leader proposes; every server applies the same reap.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Service;
use crate::state::Command;

/// Consul's `tombstone_ttl` default.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(15);

/// Runs until `shutdown`. Each tick remembers the applied index; tombstones at or below
/// the index remembered one tick earlier are at least one TTL old and are reaped.
pub async fn run_tombstone_reaper(
    service: Arc<Service>,
    ttl: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(ttl);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mark: Option<u64> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let status = service.raft.status();
        if status.leader.as_ref().map(|(id, _)| *id) != Some(status.id) {
            mark = None;
            continue;
        }
        let now = service.state.applied_index().unwrap_or(0);
        if let Some(up_to) = mark {
            let state = service.state.clone();
            let due = tokio::task::spawn_blocking(move || state.has_tombstones_through(up_to))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(false);
            if due {
                match service
                    .raft
                    .write(Command::KvReapTombstones { up_to })
                    .await
                {
                    Ok(_) => tracing::debug!(up_to, "reaped KV tombstones"),
                    Err(e) => tracing::warn!(error = %e, "reaping KV tombstones"),
                }
            }
        }
        mark = Some(now);
    }
}
