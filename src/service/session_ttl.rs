//! Session TTLs, a leader duty (`service::leader`): one deadline per TTL session, armed
//! for `TTL × 2` (Consul's `SessionTTLMultiplier`) at create and at every renew, and
//! nothing else running: the task sleeps until the earliest deadline or until the change
//! feed reports a create, renew or invalidation. A new leader arms every timer afresh
//! with the full TTL, so a failover never expires a session early. The expiry itself is
//! a raft command naming the last renew this leader saw, so a renew that raced it wins.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::session::TTL_MULTIPLIER;
use super::Service;
use crate::state::feed::ResetReason;
use crate::state::session::SESSION_TTL_TOPIC;
use crate::state::{Change, Command, WatchTarget};

/// When a proposed expiry fails (no quorum), try again after this long.
const RETRY: Duration = Duration::from_secs(1);

/// Deadlines by session, and in time order.
#[derive(Default)]
struct Timers {
    by_id: HashMap<String, (Instant, u64)>,
    by_time: BTreeSet<(Instant, String)>,
}

impl Timers {
    fn arm(&mut self, id: &str, ttl_ns: u64, renewed_index: u64, now: Instant) {
        self.disarm(id);
        if ttl_ns == 0 {
            return;
        }
        let at = now + Duration::from_nanos(ttl_ns) * TTL_MULTIPLIER;
        self.by_id.insert(id.to_string(), (at, renewed_index));
        self.by_time.insert((at, id.to_string()));
    }

    fn disarm(&mut self, id: &str) {
        if let Some((at, _)) = self.by_id.remove(id) {
            self.by_time.remove(&(at, id.to_string()));
        }
    }

    fn next(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// Removes and returns the sessions due at `now`, with the renew each was armed at.
    fn due(&mut self, now: Instant) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        while let Some((at, id)) = self.by_time.first().cloned() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            if let Some((_, renewed)) = self.by_id.remove(&id) {
                out.push((id, renewed));
            }
        }
        out
    }

    fn apply(&mut self, change: &Change, index: u64, now: Instant) {
        match change {
            Change::Session {
                id,
                session: Some(s),
                ..
            } => self.arm(id, s.ttl_ns, s.renewed_index, now),
            Change::Session {
                id, session: None, ..
            } => self.disarm(id),
            Change::SessionRenewed { id, ttl_ns } => self.arm(id, *ttl_ns, index, now),
            _ => {}
        }
    }
}

/// Runs until `leading` is cancelled.
pub async fn run_session_ttls(service: Arc<Service>, leading: CancellationToken) {
    let target = WatchTarget::Topic(SESSION_TTL_TOPIC.into());
    'load: loop {
        // Subscribe before reading, so no create or renew falls between the two.
        let mut sub = service.feed.subscribe_internal(target.clone());
        let sessions = match service.blocking_read(|s| s.view().sessions().list()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading sessions for their TTLs");
                tokio::select! {
                    _ = leading.cancelled() => return,
                    _ = tokio::time::sleep(RETRY) => continue 'load,
                }
            }
        };
        let mut timers = Timers::default();
        let now = Instant::now();
        for s in &sessions {
            timers.arm(&s.id, s.ttl_ns, s.renewed_index, now);
        }
        tracing::debug!(armed = timers.by_id.len(), "session TTL timers armed");
        loop {
            let next = timers.next();
            tokio::select! {
                _ = leading.cancelled() => return,
                event = sub.recv() => match event {
                    Ok(ev) => {
                        let now = Instant::now();
                        for change in &ev.changes {
                            timers.apply(change, ev.index, now);
                        }
                    }
                    Err(ResetReason::Shutdown) => return,
                    // Dropped from the feed or state replaced: start over (every timer
                    // gets its full TTL again, which never expires anything early).
                    Err(_) => continue 'load,
                },
                _ = async { tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await },
                    if next.is_some() =>
                {
                    for (id, renewed_index) in timers.due(Instant::now()) {
                        let command = Command::SessionExpire {
                            id: id.clone(),
                            renewed_index,
                        };
                        match service.raft.write(command).await {
                            Ok(_) => tracing::info!(session = %id, "session TTL expired"),
                            Err(e) => {
                                tracing::warn!(session = %id, error = %e, "expiring session");
                                let at = Instant::now() + RETRY;
                                timers.by_id.insert(id.clone(), (at, renewed_index));
                                timers.by_time.insert((at, id));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_are_twice_the_ttl_and_renews_restart_them() {
        let mut t = Timers::default();
        let start = Instant::now();
        t.arm("a", 10_000_000_000, 5, start);
        t.arm("b", 30_000_000_000, 6, start);
        t.arm("none", 0, 7, start);
        assert_eq!(t.next(), Some(start + Duration::from_secs(20)));
        assert!(t.due(start + Duration::from_secs(19)).is_empty());
        // A renew of `a` at 15s pushes it to 35s.
        t.apply(
            &Change::SessionRenewed {
                id: "a".into(),
                ttl_ns: 10_000_000_000,
            },
            9,
            start + Duration::from_secs(15),
        );
        assert!(t.due(start + Duration::from_secs(21)).is_empty());
        assert_eq!(
            t.due(start + Duration::from_secs(60)),
            vec![("a".to_string(), 9), ("b".to_string(), 6)]
        );
        assert_eq!(t.next(), None);
    }
}
