//! Leader housekeeping: KV tombstones (kept so a prefix's index never goes backwards when
//! its newest key is deleted) are reaped once they are older than the tombstone TTL, as
//! Consul's leader does, and lock-delays that have ended are forgotten in the same pass. It is a leader duty (`service::leader`): it runs only while this
//! server leads, and every server applies the same reap.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Service;
use crate::state::Command;

/// Consul's `tombstone_ttl` default.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(15);

/// Runs until `leading` is cancelled. Each tick remembers the applied index; tombstones
/// at or below the index remembered one tick earlier are at least one TTL old and are
/// reaped. A new leader starts with no mark, so it waits a full TTL before its first reap.
pub async fn run_tombstone_reaper(
    service: Arc<Service>,
    ttl: Duration,
    leading: CancellationToken,
) {
    let mut ticker = tokio::time::interval(ttl);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mark: Option<u64> = None;
    loop {
        tokio::select! {
            _ = leading.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = service.state.applied_index().unwrap_or(0);
        if let Some(up_to) = mark {
            let due = service
                .blocking_read(
                    move |s| Ok(s.has_tombstones_through(up_to)? || s.has_lock_delays()?),
                )
                .await
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
