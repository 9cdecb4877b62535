//! Leader-only duties under one supervisor. Some work must happen exactly once in the
//! cluster, on the leader: reaping KV tombstones now; session TTLs, node liveness and
//! event trimming as they arrive. Each duty is a task that runs while this server leads
//! and is cancelled and joined the moment it stops leading (or the server shuts down),
//! so two servers never run the same duty at once for longer than raft itself allows.
//!
//! The supervisor is driven by raft's metrics channel: it sleeps until leadership
//! changes; duties themselves never ask "am I the leader?" on a timer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Where leadership comes from: raft's metrics for a server (`raft::LeaderWatch`), a
/// plain watch channel in tests.
pub trait Leadership: Send {
    /// The term this node leads in right now, or `None` when it does not lead. A new
    /// term is a new leadership even without a visible gap: duties restart.
    fn leading_term(&self) -> Option<u64>;
    /// Waits until something that may change `is_leader` happened; false when the
    /// source is gone (raft stopped).
    fn changed(&mut self) -> impl Future<Output = bool> + Send;
}

/// A leader duty: given a token cancelled when leadership ends, runs until it fires.
pub type Duty =
    Arc<dyn Fn(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Makes a [`Duty`] from an async function of the cancellation token.
pub fn duty<F, Fut>(f: F) -> Duty
where
    F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |token| Box::pin(f(token)))
}

/// Runs `duties` while this node leads, until `shutdown`. Returns only after every duty
/// it started has ended.
pub async fn supervise<L: Leadership>(
    mut leadership: L,
    duties: Vec<Duty>,
    shutdown: CancellationToken,
) {
    // The term the running duties were started in, their token and their tasks.
    let mut running: Option<(u64, CancellationToken, JoinSet<()>)> = None;
    loop {
        let term = leadership.leading_term();
        if running.as_ref().map(|(t, _, _)| *t) != term {
            if let Some((old, token, set)) = running.take() {
                stop(token, set).await;
                tracing::info!(term = old, "leadership lost: leader duties stopped");
            }
            if let Some(term) = term {
                let token = shutdown.child_token();
                let mut set = JoinSet::new();
                for d in &duties {
                    set.spawn(d(token.clone()));
                }
                tracing::info!(
                    term,
                    duties = duties.len(),
                    "leadership gained: leader duties started"
                );
                running = Some((term, token, set));
            }
        }
        let more = tokio::select! {
            _ = shutdown.cancelled() => false,
            more = leadership.changed() => more,
        };
        if !more {
            break;
        }
    }
    if let Some((_, token, set)) = running.take() {
        stop(token, set).await;
    }
}

async fn stop(token: CancellationToken, mut set: JoinSet<()>) {
    token.cancel();
    while let Some(done) = set.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a leader duty failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::watch;

    use super::*;

    /// `Some(term)` while leading.
    impl Leadership for watch::Receiver<Option<u64>> {
        fn leading_term(&self) -> Option<u64> {
            *self.borrow()
        }

        async fn changed(&mut self) -> bool {
            watch::Receiver::changed(self).await.is_ok()
        }
    }

    fn counters() -> (Arc<AtomicUsize>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        Default::default()
    }

    /// A duty that counts starts, live instances and ticks (once a second).
    fn counting(
        started: Arc<AtomicUsize>,
        live: Arc<AtomicUsize>,
        ticks: Arc<AtomicUsize>,
    ) -> Duty {
        duty(move |token: CancellationToken| {
            let (started, live, ticks) = (started.clone(), live.clone(), ticks.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                live.fetch_add(1, Ordering::SeqCst);
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tick.tick() => { ticks.fetch_add(1, Ordering::SeqCst); }
                    }
                }
                live.fetch_sub(1, Ordering::SeqCst);
            }
        })
    }

    #[tokio::test(start_paused = true)]
    async fn duties_run_only_while_leading_and_are_joined() {
        let (tx, rx) = watch::channel(None);
        let (started, live, ticks) = counters();
        let shutdown = CancellationToken::new();
        let supervisor = tokio::spawn(supervise(
            rx,
            vec![counting(started.clone(), live.clone(), ticks.clone())],
            shutdown.clone(),
        ));
        // A follower runs nothing, however long it waits.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(started.load(Ordering::SeqCst), 0);
        assert_eq!(ticks.load(Ordering::SeqCst), 0);

        tx.send(Some(1)).unwrap();
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        assert_eq!(live.load(Ordering::SeqCst), 1);
        let ticks_while_leading = ticks.load(Ordering::SeqCst);
        assert!(
            (5..=7).contains(&ticks_while_leading),
            "{ticks_while_leading}"
        );

        // Losing leadership stops the duty: no tick after that.
        tx.send(None).unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(live.load(Ordering::SeqCst), 0);
        assert_eq!(ticks.load(Ordering::SeqCst), ticks_while_leading);

        // Regaining it starts the duty afresh; a repeated "still leader" does not.
        tx.send(Some(3)).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send(Some(3)).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(started.load(Ordering::SeqCst), 2);
        assert_eq!(live.load(Ordering::SeqCst), 1);

        // Losing and regaining leadership between two looks (term 3 to term 5, the
        // follower phase never seen) still restarts the duty: it belongs to its term.
        tx.send(Some(5)).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(started.load(Ordering::SeqCst), 3);
        assert_eq!(live.load(Ordering::SeqCst), 1);

        // Shutdown joins the running duty before the supervisor returns.
        shutdown.cancel();
        supervisor.await.unwrap();
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_vanished_leadership_source_stops_the_duties() {
        let (tx, rx) = watch::channel(Some(1));
        let (started, live, ticks) = counters();
        let supervisor = tokio::spawn(supervise(
            rx,
            vec![counting(started.clone(), live.clone(), ticks)],
            CancellationToken::new(),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(live.load(Ordering::SeqCst), 1);
        drop(tx);
        supervisor.await.unwrap();
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }
}
