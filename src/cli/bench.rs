//! `rostractl bench put|get|watch`: a load generator that prints throughput and latency
//! percentiles, over gRPC or (with `-http`) over the Consul HTTP shim. Figures, never
//! assertions: performance is reported, not tested.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use super::args::{BenchArgs, BenchCommand};
use crate::client::Client;
use crate::pb;

/// Streams per connection for watchers; HTTP/2 servers commonly cap concurrent streams.
const WATCHERS_PER_CONNECTION: usize = 100;

pub async fn run(
    addr: &str,
    cmd: BenchCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Put(a) => put_or_get(addr, a, true, out).await,
        BenchCommand::Get(a) => put_or_get(addr, a, false, out).await,
        BenchCommand::Watch(a) => watch(addr, a, out).await,
        BenchCommand::Catalog(a) => super::bench_catalog::run(a, out).await,
        BenchCommand::Lock(a) => lock_loss(addr, a, out).await,
        BenchCommand::Compare(a) => super::compare::run(a, out).await,
        BenchCommand::Floor { listen } => super::compare::floor::serve(&listen).await,
    }
}

/// One benchmark connection: a gRPC client, or an HTTP client speaking Consul's API.
#[derive(Clone)]
enum Conn {
    Grpc(Client),
    Http {
        client: reqwest::Client,
        base: String,
    },
}

impl Conn {
    async fn open(grpc_addr: &str, a: &BenchArgs) -> anyhow::Result<Conn> {
        if a.http {
            let base = if a.http_addr.starts_with("http") {
                a.http_addr.clone()
            } else {
                format!("http://{}", a.http_addr)
            };
            // Separate pools, so each client really has its own connection.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()?;
            Ok(Conn::Http { client, base })
        } else {
            Ok(Conn::Grpc(
                Client::connect(grpc_addr)
                    .await
                    .map_err(|e| anyhow!("{e}"))?,
            ))
        }
    }

    /// Writes `key` and returns the write's raft index (gRPC) or 0 (HTTP answers `true`).
    async fn put(&self, key: &str, value: Vec<u8>) -> anyhow::Result<u64> {
        match self {
            Conn::Grpc(c) => Ok(c
                .put(key, value, 0, None)
                .await?
                .header
                .map(|h| h.index)
                .unwrap_or(0)),
            Conn::Http { client, base } => {
                let r = client
                    .put(format!("{base}/v1/kv/{key}"))
                    .body(value)
                    .send()
                    .await?;
                let status = r.status();
                let body = r.text().await?;
                if !status.is_success() || body.trim() != "true" {
                    bail!("PUT {key}: {status} {body}");
                }
                Ok(0)
            }
        }
    }

    async fn get(&self, key: &str) -> anyhow::Result<()> {
        match self {
            Conn::Grpc(c) => {
                c.get(key, pb::Consistency::Default).await?;
            }
            Conn::Http { client, base } => {
                let r = client.get(format!("{base}/v1/kv/{key}")).send().await?;
                if !r.status().is_success() {
                    bail!("GET {key}: {}", r.status());
                }
                r.bytes().await?;
            }
        }
        Ok(())
    }
}

pub(super) struct Summary {
    pub ops: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Summary {
    /// The median latency.
    pub fn p50(&self) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(l.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or_default()
    }

    pub fn print(mut self, label: &str, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        writeln!(
            out,
            "{label}: {} ops in {:.2}s = {:.0} ops/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.ops,
            self.elapsed.as_secs_f64(),
            self.ops as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON),
            ms(pct(0.50)),
            ms(pct(0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
        )
    }
}

async fn metrics(addr: &str) -> anyhow::Result<pb::MetricsResponse> {
    let client = Client::connect(addr).await?;
    Ok(client
        .status()
        .metrics(pb::MetricsRequest {})
        .await?
        .into_inner())
}

fn transport(a: &BenchArgs) -> &'static str {
    if a.http {
        "HTTP"
    } else {
        "gRPC"
    }
}

async fn put_or_get(
    addr: &str,
    a: BenchArgs,
    write: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    if a.clients == 0 || a.requests == 0 {
        bail!("-clients and -requests must be at least 1");
    }
    let mut conns = Vec::with_capacity(a.clients);
    for _ in 0..a.clients {
        conns.push(Conn::open(addr, &a).await?);
    }
    let value = vec![b'x'; a.value_size];
    // Batching counters come from the gRPC Status service, which the HTTP mode may not
    // reach (a different -addr); then they are left out.
    let before = metrics(addr).await.ok();
    if !write {
        conns[0].put("bench/get", value.clone()).await?;
    }
    let per_client = a.requests.div_ceil(a.clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, conn) in conns.into_iter().enumerate() {
        let value = value.clone();
        let n = per_client.min(a.requests.saturating_sub(c * per_client));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n);
            for i in 0..n {
                let t = Instant::now();
                if write {
                    conn.put(&format!("bench/put/{c}/{i}"), value.clone())
                        .await?;
                } else {
                    conn.get("bench/get").await?;
                }
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(a.requests);
    for t in tasks {
        latencies.extend(t.await??);
    }
    let summary = Summary {
        ops: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    };
    let label = format!(
        "{} over {} (clients {}, value {} B)",
        if write { "put" } else { "get" },
        transport(&a),
        a.clients,
        a.value_size
    );
    summary.print(&label, out)?;
    if write {
        if let (Some(before), Ok(after)) = (before, metrics(addr).await) {
            let writes = after.writes.saturating_sub(before.writes);
            let proposals = after.proposals.saturating_sub(before.proposals);
            let fsyncs = after.wal_fsyncs.saturating_sub(before.wal_fsyncs);
            let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
            writeln!(
                out,
                "  batching on the answering server: {writes} writes in {proposals} raft entries ({:.1} writes/entry), {fsyncs} WAL fsyncs ({:.1} writes/fsync)",
                ratio(writes, proposals),
                ratio(writes, fsyncs),
            )?;
            print_stages(&before, &after, writes, out)?;
        }
        // Clean up so repeated runs measure the same thing.
        Client::connect(addr)
            .await?
            .delete("bench/put/", true, None)
            .await?;
    }
    Ok(())
}

/// The write path's stages between two readings: mean time per event, and events per
/// write (batching makes the per-batch stages rarer than writes).
fn print_stages(
    before: &pb::MetricsResponse,
    after: &pb::MetricsResponse,
    writes: u64,
    out: &mut (dyn Write + Send),
) -> std::io::Result<()> {
    writeln!(
        out,
        "  where the time goes on that server (mean per event, events per write):"
    )?;
    for stage in &after.stages {
        let earlier = before.stages.iter().find(|s| s.name == stage.name);
        let count = stage.count - earlier.map_or(0, |s| s.count);
        let ns = stage.total_ns - earlier.map_or(0, |s| s.total_ns);
        if count == 0 {
            continue;
        }
        writeln!(
            out,
            "    {:<8} {:>8.3} ms  x{:.2}",
            stage.name,
            ns as f64 / count as f64 / 1e6,
            count as f64 / writes.max(1) as f64
        )?;
    }
    Ok(())
}

/// Follows `key` with a blocking-query loop (Consul's `?index=` protocol), reporting
/// each new index.
async fn http_watcher(
    client: reqwest::Client,
    base: String,
    key: String,
    tx: tokio::sync::mpsc::Sender<u64>,
) -> anyhow::Result<()> {
    let mut index = 0u64;
    loop {
        let r = client
            .get(format!("{base}/v1/kv/{key}?index={index}&wait=60s"))
            .send()
            .await?;
        let new: u64 = r
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .context("response without X-Consul-Index")?;
        r.bytes().await?;
        if new != index {
            index = new;
            if tx.send(index).await.is_err() {
                return Ok(());
            }
        }
    }
}

async fn watch(addr: &str, a: BenchArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    if a.watchers == 0 || a.requests == 0 {
        bail!("-watchers and -requests must be at least 1");
    }
    let key = "bench/watch";
    let writer = Client::connect(addr).await?;
    writer.put(key, b"0".to_vec(), 0, None).await?;
    // Each watcher reports the index of every view it sees.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::channel::<u64>(a.watchers * 4);
    let setup = Instant::now();
    let mut tasks = Vec::new();
    let connections = a.watchers.div_ceil(WATCHERS_PER_CONNECTION);
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Conn::open(addr, &a).await?);
    }
    for w in 0..a.watchers {
        let tx = seen_tx.clone();
        match conns[w / WATCHERS_PER_CONNECTION].clone() {
            Conn::Grpc(client) => {
                let mut watcher = client.watch(key, false).await?;
                tasks.push(tokio::spawn(async move {
                    while let Ok(index) = watcher.next().await {
                        if tx.send(index).await.is_err() {
                            break;
                        }
                    }
                }));
            }
            Conn::Http { client, base } => {
                let key = key.to_string();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = http_watcher(client, base, key, tx).await {
                        eprintln!("watcher: {e:#}");
                    }
                }));
            }
        }
    }
    drop(seen_tx);
    for _ in 0..a.watchers {
        seen_rx
            .recv()
            .await
            .ok_or_else(|| anyhow!("watchers ended early"))?;
    }
    writeln!(
        out,
        "watch over {}: {} watchers synced in {:.2}s",
        transport(&a),
        a.watchers,
        setup.elapsed().as_secs_f64()
    )?;
    let requests = a.requests.min(1000);
    let value = vec![b'x'; a.value_size];
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(requests);
    for i in 0..requests {
        let mut v = value.clone();
        v.extend_from_slice(i.to_string().as_bytes());
        let t = Instant::now();
        let index = writer
            .put(key, v, 0, None)
            .await?
            .header
            .map(|h| h.index)
            .unwrap_or(0);
        let mut reached = 0;
        while reached < a.watchers {
            let seen = seen_rx
                .recv()
                .await
                .ok_or_else(|| anyhow!("watchers ended early"))?;
            if seen >= index {
                reached += 1;
            }
        }
        latencies.push(t.elapsed());
    }
    for t in tasks {
        t.abort();
    }
    Summary {
        ops: requests,
        elapsed: started.elapsed(),
        latencies,
    }
    .print(
        &format!(
            "watch fan-out over {} (write to all {} watchers, value {} B)",
            transport(&a),
            a.watchers,
            a.value_size
        ),
        out,
    )?;
    Ok(())
}

/// `bench lock`: how long after a lock holder's session is invalidated its holder learns
/// it lost the lock, through the watch `rostractl lock` follows (the moment it signals
/// its child). Each round: a session acquires the lock key, its watcher syncs, another
/// client destroys the session, and the time until the watcher's view shows the lock gone
/// is recorded.
async fn lock_loss(addr: &str, a: BenchArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    if a.requests == 0 {
        bail!("-requests must be at least 1");
    }
    let rounds = a.requests.min(1000);
    let client = Client::connect(addr).await?;
    let mut sessions = pb::session_client::SessionClient::new(client.channel());
    let key = "bench/lock/.lock";
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let id = sessions
            .create(pb::SessionCreateRequest {
                name: "bench lock".into(),
                lock_delay_ns: Some(0),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("creating a session: {}", e.message()))?
            .into_inner()
            .id;
        let acquired = client
            .kv()
            .put(pb::PutRequest {
                key: key.into(),
                flags: super::lock::LOCK_FLAG,
                lock: Some(pb::put_request::Lock::Acquire(id.clone())),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("acquiring: {}", e.message()))?
            .into_inner();
        if !acquired.succeeded {
            bail!("{key} is held by someone else; run the bench on an idle agent");
        }
        let mut watcher = client.watch(key, false).await?;
        watcher.next().await?;
        let t = Instant::now();
        sessions
            .destroy(pb::SessionDestroyRequest { id: id.clone() })
            .await
            .map_err(|e| anyhow!("destroying: {}", e.message()))?;
        loop {
            watcher.next().await?;
            if watcher.state().get(key).is_none_or(|kv| kv.session != id) {
                break;
            }
        }
        latencies.push(t.elapsed());
    }
    Summary {
        ops: rounds,
        elapsed: started.elapsed(),
        latencies,
    }
    .print(
        "lock loss noticed by the holder (session destroyed to watch showing the lock gone; Consul's lock monitor: up to its blocking-query wait)",
        out,
    )?;
    Ok(())
}
