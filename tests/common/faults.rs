//! Fault injection for multi-process tests: a TCP proxy in front of every server's raft
//! port that can cut any pair of servers apart, and process pauses (SIGSTOP/SIGCONT).
//!
//! Each server binds its raft port on a "back" address (127.0.0.1x) and advertises a
//! "front" address (127.0.0.x) where the proxy listens on the same port. Servers dial
//! peers from their bind address (as Consul's RPC source address), so the proxy knows
//! which server a connection comes from by its source IP and can refuse, or cut, the
//! connections between a partitioned pair in both directions. Connections from any
//! other address (the test itself, rostractl) are never cut.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// An unordered pair of server indexes.
fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

struct Shared {
    back: Vec<SocketAddr>,
    sources: Vec<IpAddr>,
    blocked: Mutex<HashSet<(usize, usize)>>,
    /// Live proxied connections by pair, cancelled when the pair is cut.
    conns: Mutex<HashMap<(usize, usize), Vec<CancellationToken>>>,
}

/// The proxy for `n` servers; dropping it stops every listener and connection.
pub struct PeerProxy {
    shared: Arc<Shared>,
    pub fronts: Vec<SocketAddr>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl PeerProxy {
    /// Listens on `front_ip(i):port` for each server, forwarding to `back_ip(i):port`
    /// (the same port, picked free on the front address).
    pub async fn start(
        n: usize,
        front_ip: impl Fn(usize) -> IpAddr,
        back_ip: impl Fn(usize) -> IpAddr,
    ) -> PeerProxy {
        let mut listeners = Vec::new();
        for i in 0..n {
            let l = TcpListener::bind(SocketAddr::new(front_ip(i), 0))
                .await
                .expect("bind the proxy");
            listeners.push(l);
        }
        let fronts: Vec<SocketAddr> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let shared = Arc::new(Shared {
            back: (0..n)
                .map(|i| SocketAddr::new(back_ip(i), fronts[i].port()))
                .collect(),
            sources: (0..n).map(&back_ip).collect(),
            blocked: Mutex::default(),
            conns: Mutex::default(),
        });
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for (target, listener) in listeners.into_iter().enumerate() {
            let shared = shared.clone();
            let stop = stop.clone();
            tasks.spawn(async move { accept_loop(shared, target, listener, stop).await });
        }
        PeerProxy {
            shared,
            fronts,
            stop,
            tasks,
        }
    }

    /// Cuts `a` and `b` apart: their connections are closed and new ones refused.
    pub fn cut(&self, a: usize, b: usize) {
        self.shared.blocked.lock().unwrap().insert(pair(a, b));
        for token in self
            .shared
            .conns
            .lock()
            .unwrap()
            .remove(&pair(a, b))
            .unwrap_or_default()
        {
            token.cancel();
        }
    }

    /// Cuts `i` from every other server.
    pub fn isolate(&self, i: usize) {
        for j in 0..self.shared.back.len() {
            if j != i {
                self.cut(i, j);
            }
        }
    }

    pub fn heal_all(&self) {
        self.shared.blocked.lock().unwrap().clear();
    }

    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    target: usize,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
            // Reap finished connections so the set stays bounded.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok((inbound, from)) = accepted else {
            continue;
        };
        let source = shared.sources.iter().position(|ip| *ip == from.ip());
        let token = stop.child_token();
        if let Some(s) = source {
            let key = pair(s, target);
            if shared.blocked.lock().unwrap().contains(&key) {
                drop(inbound);
                continue;
            }
            let mut all = shared.conns.lock().unwrap();
            let live = all.entry(key).or_default();
            // A finished connection cancels its own token (the guard below).
            live.retain(|t| !t.is_cancelled());
            live.push(token.clone());
        }
        let back = shared.back[target];
        conns.spawn(async move {
            let _done = token.clone().drop_guard();
            let Ok(Ok(outbound)) =
                tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(back)).await
            else {
                return;
            };
            let (mut inbound, mut outbound) = (inbound, outbound);
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            tokio::select! {
                _ = token.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
            }
        });
    }
    conns.shutdown().await;
}

/// Sends `signal` to a child process that has not been reaped.
pub fn signal(child: &std::process::Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own unreaped child's pid, which cannot have been reused.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(
        sent,
        0,
        "signal {signal}: {}",
        std::io::Error::last_os_error()
    );
}
