//! `rostractl bench put|get|watch`: a load generator that prints throughput and latency
//! percentiles. Figures, never assertions: performance is reported, not tested.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};

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
    }
}

struct Summary {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Summary {
    fn print(mut self, label: &str, out: &mut (dyn Write + Send)) -> std::io::Result<()> {
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

async fn metrics(client: &Client) -> anyhow::Result<pb::MetricsResponse> {
    Ok(client
        .status()
        .metrics(pb::MetricsRequest {})
        .await?
        .into_inner())
}

async fn connect_many(addr: &str, n: usize) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Client::connect(addr).await.map_err(|e| anyhow!("{e}"))?);
    }
    Ok(clients)
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
    let clients = connect_many(addr, a.clients).await?;
    let value = vec![b'x'; a.value_size];
    let before = metrics(&clients[0]).await?;
    if !write {
        clients[0].put("bench/get", value.clone(), 0, None).await?;
    }
    let per_client = a.requests.div_ceil(a.clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().enumerate() {
        let value = value.clone();
        let n = per_client.min(a.requests.saturating_sub(c * per_client));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(n);
            for i in 0..n {
                let t = Instant::now();
                if write {
                    client
                        .put(&format!("bench/put/{c}/{i}"), value.clone(), 0, None)
                        .await?;
                } else {
                    client.get("bench/get", pb::Consistency::Default).await?;
                }
                latencies.push(t.elapsed());
            }
            Ok::<_, crate::client::ClientError>(latencies)
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
        "{} (clients {}, value {} B)",
        if write { "put" } else { "get" },
        a.clients,
        a.value_size
    );
    summary.print(&label, out)?;
    if write {
        let after = metrics(&Client::connect(addr).await?).await?;
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
        // Clean up so repeated runs measure the same thing.
        Client::connect(addr)
            .await?
            .delete("bench/put/", true, None)
            .await?;
    }
    Ok(())
}

async fn watch(addr: &str, a: BenchArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    if a.watchers == 0 || a.requests == 0 {
        bail!("-watchers and -requests must be at least 1");
    }
    let key = "bench/watch";
    let writer = Client::connect(addr).await?;
    writer.put(key, b"0".to_vec(), 0, None).await?;
    let connections = connect_many(addr, a.watchers.div_ceil(WATCHERS_PER_CONNECTION)).await?;
    // Each watcher reports the index of every view it sees.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::channel::<u64>(a.watchers * 4);
    let setup = Instant::now();
    let mut watchers = Vec::new();
    for w in 0..a.watchers {
        let client = connections[w / WATCHERS_PER_CONNECTION].clone();
        watchers.push(client.watch(key, false).await?);
    }
    let mut synced = 0;
    let mut tasks = Vec::new();
    for mut watcher in watchers {
        let tx = seen_tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Ok(index) = watcher.next().await {
                if tx.send(index).await.is_err() {
                    break;
                }
            }
        }));
    }
    while synced < a.watchers {
        seen_rx
            .recv()
            .await
            .ok_or_else(|| anyhow!("watchers ended early"))?;
        synced += 1;
    }
    writeln!(
        out,
        "watch: {} watchers synced in {:.2}s",
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
            "watch fan-out (write to all {} watchers, value {} B)",
            a.watchers, a.value_size
        ),
        out,
    )?;
    Ok(())
}
