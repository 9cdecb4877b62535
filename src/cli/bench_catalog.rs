//! `rostractl bench catalog`: does reading one service cost the size of the answer, or
//! the size of the catalog? Registers `-instances` instances of one service, measures
//! `/v1/health/service/<name>` over HTTP and an SRV lookup over DNS, then registers
//! `-services` services in all (the same number of instances each) and measures again.
//! Prints both figures and their ratio; a ratio near 1 means indexed reads. Everything it
//! registered is deregistered at the end.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

use super::args::CatalogBenchArgs;
use super::bench::Summary;

const NODE_PREFIX: &str = "bench-node-";

fn service_name(s: usize) -> String {
    format!("bench-svc-{s}")
}

fn node_name(n: usize) -> String {
    format!("{NODE_PREFIX}{n}")
}

pub async fn run(a: CatalogBenchArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    if a.services == 0 || a.instances == 0 || a.nodes == 0 || a.requests == 0 || a.clients == 0 {
        bail!("-services, -instances, -nodes, -requests and -clients must be at least 1");
    }
    let base = if a.http_addr.starts_with("http") {
        a.http_addr.clone()
    } else {
        format!("http://{}", a.http_addr)
    };
    let http = reqwest::Client::new();
    let target = service_name(0);

    register(&http, &base, &a, 0..1).await?;
    let small_health = health_reads(&http, &base, &target, &a).await?;
    let small_dns = dns_reads(&a.dns_addr, &target, &a).await?;
    let small = a.instances;

    register(&http, &base, &a, 1..a.services).await?;
    let large_health = health_reads(&http, &base, &target, &a).await?;
    let large_dns = dns_reads(&a.dns_addr, &target, &a).await?;
    let large = a.services * a.instances;

    let label = |what: &str, n: usize| {
        format!(
            "{what} of {target} ({} instances) with {n} instances registered",
            a.instances
        )
    };
    let (sh, sd) = (small_health.p50(), small_dns.p50());
    let (lh, ld) = (large_health.p50(), large_dns.p50());
    small_health.print(&label("GET /v1/health/service", small), out)?;
    large_health.print(&label("GET /v1/health/service", large), out)?;
    small_dns.print(&label("DNS SRV", small), out)?;
    large_dns.print(&label("DNS SRV", large), out)?;
    let ratio = |l: Duration, s: Duration| l.as_secs_f64() / s.as_secs_f64().max(f64::EPSILON);
    writeln!(
        out,
        "p50 with {large} instances / with {small}: health {:.2}x, DNS SRV {:.2}x",
        ratio(lh, sh),
        ratio(ld, sd)
    )?;
    cleanup(&http, &base, &a).await
}

/// Registers every instance of services `range` (instance `i` of service `s` on node
/// `(s * instances + i) % nodes`), 16 requests at a time.
async fn register(
    http: &reqwest::Client,
    base: &str,
    a: &CatalogBenchArgs,
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let mut jobs = Vec::new();
    for s in range {
        for i in 0..a.instances {
            let n = (s * a.instances + i) % a.nodes;
            jobs.push(serde_json::json!({
                "Node": node_name(n),
                "Address": format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255),
                "Service": {"ID": format!("{}-{i}", service_name(s)), "Service": service_name(s), "Port": 8000 + i},
                "Check": {"CheckID": "bench-node-alive", "Name": "node alive", "Status": "passing"},
            }));
        }
    }
    let started = Instant::now();
    let total = jobs.len();
    let mut pending = futures::stream::iter(jobs.into_iter().map(|body| {
        let (http, url) = (http.clone(), format!("{base}/v1/catalog/register"));
        async move {
            let r = http.put(url).json(&body).send().await?;
            if !r.status().is_success() {
                bail!(
                    "catalog register: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
            Ok(())
        }
    }))
    .buffer_unordered(16);
    while let Some(done) = pending.next().await {
        done?;
    }
    tracing::debug!(total, elapsed = ?started.elapsed(), "registered");
    Ok(())
}

async fn health_reads(
    http: &reqwest::Client,
    base: &str,
    service: &str,
    a: &CatalogBenchArgs,
) -> anyhow::Result<Summary> {
    let url = format!("{base}/v1/health/service/{service}");
    let expected = a.instances;
    let http = http.clone();
    timed(a, move || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.get(&url).send().await?;
            let entries: Vec<serde_json::Value> = r.json().await?;
            if entries.len() != expected {
                bail!("{url}: {} entries, expected {expected}", entries.len());
            }
            Ok(())
        }
    })
    .await
}

async fn dns_reads(addr: &str, service: &str, a: &CatalogBenchArgs) -> anyhow::Result<Summary> {
    let name = Name::from_ascii(format!("{service}.service.consul."))?;
    let addr: std::net::SocketAddr = addr.parse().context("-dns-addr")?;
    timed(a, move || {
        let name = name.clone();
        async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
            socket.connect(addr).await?;
            let mut q = Message::query();
            q.metadata.id = rand::random();
            q.metadata.recursion_desired = true;
            q.add_query(Query::query(name, RecordType::SRV));
            socket.send(&q.to_vec()?).await?;
            let mut buf = vec![0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
                .await
                .context("no DNS answer within 5s")??;
            let reply = Message::from_vec(&buf[..n])?;
            if reply.answers.is_empty() {
                bail!("SRV lookup answered no records");
            }
            Ok(())
        }
    })
    .await
}

/// Runs `read` `a.requests` times from `a.clients` concurrent loops.
async fn timed<F, Fut>(a: &CatalogBenchArgs, read: F) -> anyhow::Result<Summary>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let per_client = a.requests.div_ceil(a.clients);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..a.clients {
        let n = per_client.min(a.requests.saturating_sub(c * per_client));
        let read = read.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                read().await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(a.requests);
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    Ok(Summary {
        ops: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    })
}

async fn cleanup(http: &reqwest::Client, base: &str, a: &CatalogBenchArgs) -> anyhow::Result<()> {
    for n in 0..a.nodes.min(a.services * a.instances) {
        let r = http
            .put(format!("{base}/v1/catalog/deregister"))
            .json(&serde_json::json!({"Node": node_name(n)}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("catalog deregister: {}", r.status());
        }
    }
    Ok(())
}
