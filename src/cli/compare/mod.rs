//! `rostractl bench compare`: the scenarios of README's benchmark table, run against a
//! Rostra it starts itself and, when an `etcd` binary is on the PATH, against etcd
//! started beside it in the same run, with the ratios printed. Everything is on
//! loopback, every server is a child process with a temporary data directory, and every
//! scenario is bounded in time (`-seconds` of closed-loop load, watch and blocking-query
//! rounds bounded by count). It reports figures; it never passes or fails.

mod drivers;
pub mod floor;
mod procs;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::sync::mpsc;

use drivers::{Conn, System};
use procs::{EtcdNode, RostraNode};

/// Watch streams per gRPC connection (HTTP/2 servers commonly cap concurrent streams).
const STREAMS_PER_CONNECTION: usize = 100;
/// How long setting up (servers, leaders, streams, waiters) may take.
const SETUP: Duration = Duration::from_secs(120);

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The Rostra daemon to start (default: `rostra` beside this rostractl).
    #[arg(long = "rostra-bin")]
    pub rostra_bin: Option<PathBuf>,
    /// The etcd to start beside it (default: `etcd` on the PATH; none: Rostra alone).
    #[arg(long = "etcd-bin")]
    pub etcd_bin: Option<PathBuf>,
    /// Seconds of load per put/get figure (after one second of warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Value size in bytes for puts.
    #[arg(long = "value-size", default_value_t = 128)]
    pub value_size: usize,
    /// Largest watch and blocking-query fan-out (the watch figures use 1,000 and this).
    #[arg(long, default_value_t = 10_000)]
    pub fanout: usize,
    /// Writes per fan-out figure.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Leave out the 3-server figures.
    #[arg(long = "no-cluster", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub no_cluster: bool,
}

/// Which way a figure is better.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

struct Row {
    figure: String,
    etcd: Option<f64>,
    rostra: f64,
    unit: &'static str,
    better: Better,
    /// What the etcd column holds when it is not etcd (the blocking-query floor).
    baseline: Option<&'static str>,
}

impl Row {
    /// Rostra's advantage: above 1 is better than the other column, whichever way the
    /// figure goes.
    fn ratio(&self) -> Option<f64> {
        let other = self.etcd?;
        Some(match self.better {
            Better::Higher => self.rostra / other,
            Better::Lower => other / self.rostra,
        })
    }
}

struct Report<'a> {
    rows: Vec<Row>,
    out: &'a mut (dyn Write + Send),
}

impl Report<'_> {
    /// A figure measured on both systems (`etcd` is `None` when etcd is not run).
    fn pair(
        &mut self,
        figure: impl Into<String>,
        etcd: Option<f64>,
        rostra: f64,
        unit: &'static str,
        better: Better,
    ) -> std::io::Result<()> {
        self.add(Row {
            figure: figure.into(),
            etcd,
            rostra,
            unit,
            better,
            baseline: None,
        })
    }

    fn add(&mut self, row: Row) -> std::io::Result<()> {
        let fmt = |v: f64| format_value(v, row.unit);
        let other = row.etcd.map(fmt).unwrap_or_else(|| "-".into());
        let ratio = row
            .ratio()
            .map(|r| format!("{r:.2}×"))
            .unwrap_or_else(|| "-".into());
        writeln!(
            self.out,
            "  {}: Rostra {} | {} {} | Rostra's advantage {}",
            row.figure,
            fmt(row.rostra),
            row.baseline.unwrap_or("etcd"),
            other,
            ratio
        )?;
        self.rows.push(row);
        Ok(())
    }

    fn table(&mut self) -> std::io::Result<()> {
        writeln!(self.out)?;
        writeln!(
            self.out,
            "| figure | etcd (or floor) | Rostra | Rostra's advantage |"
        )?;
        writeln!(self.out, "|---|---:|---:|---:|")?;
        for row in &self.rows {
            let fmt = |v: f64| format_value(v, row.unit);
            let other = match (row.etcd, row.baseline) {
                (Some(v), Some(b)) => format!("{b}: {}", fmt(v)),
                (Some(v), None) => fmt(v),
                (None, _) => "-".into(),
            };
            let ratio = row
                .ratio()
                .map(|r| format!("{r:.2}×"))
                .unwrap_or_else(|| "-".into());
            writeln!(
                self.out,
                "| {} | {} | {} | {} |",
                row.figure,
                other,
                fmt(row.rostra),
                ratio
            )?;
        }
        Ok(())
    }
}

fn format_value(v: f64, unit: &str) -> String {
    match unit {
        "ops/s" => format!("{}/s", thousands(v.round() as u64)),
        "ms" => format!("{v:.2} ms"),
        "KB" => format!("{v:.1} KB"),
        _ => format!("{v:.2} {unit}"),
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub async fn run(a: CompareArgs, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    if a.seconds <= 0.0 || a.fanout == 0 || a.rounds == 0 {
        bail!("-seconds, -fanout and -rounds must be positive");
    }
    let rostra_bin = match &a.rostra_bin {
        Some(b) => b.clone(),
        None => procs::sibling_rostra()?,
    };
    let etcd_bin = a.etcd_bin.clone().or_else(procs::etcd_on_path);
    writeln!(
        out,
        "rostra: {}; etcd: {}; {} cores; {} s per load figure, {} B values",
        rostra_bin.display(),
        etcd_bin
            .as_ref()
            .map(|b| b.display().to_string())
            .unwrap_or_else(|| "none on the PATH (Rostra alone)".into()),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        a.seconds,
        a.value_size
    )?;
    let mut report = Report {
        rows: Vec::new(),
        out,
    };
    single_node(&a, &rostra_bin, etcd_bin.as_deref(), &mut report).await?;
    if !a.no_cluster {
        cluster(&a, &rostra_bin, etcd_bin.as_deref(), &mut report).await?;
    }
    report.table()?;
    Ok(())
}

async fn single_node(
    a: &CompareArgs,
    rostra_bin: &std::path::Path,
    etcd_bin: Option<&std::path::Path>,
    report: &mut Report<'_>,
) -> anyhow::Result<()> {
    writeln!(
        report.out,
        "single server (rostra agent -dev; etcd, one member):"
    )?;
    let rostra = procs::rostra_dev(rostra_bin)?;
    let etcd = etcd_bin.map(|b| procs::etcd(b, 1)).transpose()?;
    let rostra_leader = leader(System::Rostra, std::slice::from_ref(&rostra.grpc)).await?;
    let etcd_leader = etcd_leader(etcd.as_deref()).await?;
    puts(
        a,
        "gRPC put",
        &rostra_leader,
        etcd_leader.as_deref(),
        report,
    )
    .await?;
    // Reads: etcd's default range is linearizable; Rostra's default read is served by
    // the leader (Consul's default), which on one server is the same guarantee.
    let rostra_get = load(System::Rostra, &rostra_leader, 64, a, Op::Get).await?;
    let etcd_get = match &etcd_leader {
        Some(addr) => Some(load(System::Etcd, addr, 64, a, Op::Get).await?),
        None => None,
    };
    report.pair(
        "gRPC get (default vs linearizable), 64 clients",
        etcd_get.as_ref().map(|l| l.rate),
        rostra_get.rate,
        "ops/s",
        Better::Higher,
    )?;
    // 1,000 streams, then the full fan-out (once, if it is no larger).
    let sizes = if a.fanout > 1000 {
        vec![1000, a.fanout]
    } else {
        vec![a.fanout]
    };
    for n in sizes {
        let r = fanout(
            System::Rostra,
            &rostra_leader,
            Some(&rostra as &dyn HasRss),
            n,
            a.rounds,
        )
        .await?;
        let e = match (&etcd_leader, &etcd) {
            (Some(addr), Some(nodes)) => Some(
                fanout(
                    System::Etcd,
                    addr,
                    Some(&nodes[0].proc as &dyn HasRss),
                    n,
                    a.rounds,
                )
                .await?,
            ),
            _ => None,
        };
        report.pair(
            format!("one write → {n} watch streams, delivery p50"),
            e.as_ref().map(|e| e.delivery_p50),
            r.delivery_p50,
            "ms",
            Better::Lower,
        )?;
        report.pair(
            format!("one write → {n} watch streams, all received p50"),
            e.as_ref().map(|e| e.all_p50),
            r.all_p50,
            "ms",
            Better::Lower,
        )?;
        if n == a.fanout {
            report.pair(
                format!("memory per idle watch stream ({n} streams)"),
                e.as_ref().and_then(|e| e.kb_per_stream),
                r.kb_per_stream.unwrap_or(0.0),
                "KB",
                Better::Lower,
            )?;
        }
    }
    let bq = blocking(&rostra, a.fanout, Target::Rostra).await?;
    let floor_proc = spawn_floor()?;
    let floor = blocking(&rostra, a.fanout, Target::Floor(&floor_proc.1)).await?;
    drop(floor_proc);
    for (what, floor, rostra) in [("p50", floor.p50, bq.p50), ("max", floor.max, bq.max)] {
        report.add(Row {
            figure: format!(
                "HTTP blocking queries, {} waiters, all answered {what}",
                a.fanout
            ),
            etcd: Some(floor),
            rostra,
            unit: "ms",
            better: Better::Lower,
            baseline: Some("do-nothing axum floor"),
        })?;
    }
    drop(etcd);
    drop(rostra);
    Ok(())
}

async fn cluster(
    a: &CompareArgs,
    rostra_bin: &std::path::Path,
    etcd_bin: Option<&std::path::Path>,
    report: &mut Report<'_>,
) -> anyhow::Result<()> {
    writeln!(
        report.out,
        "3 servers on 127.0.0.2-4 (clients on the leader):"
    )?;
    let rostra = procs::rostra_cluster(rostra_bin, 3)?;
    let etcd = etcd_bin.map(|b| procs::etcd(b, 3)).transpose()?;
    let grpc: Vec<String> = rostra.iter().map(|n| n.grpc.clone()).collect();
    let rostra_leader = leader(System::Rostra, &grpc).await?;
    let etcd_leader = etcd_leader(etcd.as_deref()).await?;
    puts(
        a,
        "3 servers, gRPC put",
        &rostra_leader,
        etcd_leader.as_deref(),
        report,
    )
    .await?;
    Ok(())
}

/// The put figures at 1, 16 and 64 clients, each labelled `label, N client(s)`.
async fn puts(
    a: &CompareArgs,
    label: &str,
    rostra_leader: &str,
    etcd_leader: Option<&str>,
    report: &mut Report<'_>,
) -> anyhow::Result<()> {
    for clients in [1, 16, 64] {
        let name = format!("{label}, {clients} client(s)");
        put_figure(a, &name, clients, rostra_leader, etcd_leader, report).await?;
    }
    Ok(())
}

/// The etcd member that is leader, when etcd runs at all.
async fn etcd_leader(nodes: Option<&[EtcdNode]>) -> anyhow::Result<Option<String>> {
    match nodes {
        Some(nodes) => {
            let addrs: Vec<String> = nodes.iter().map(|n| n.client.clone()).collect();
            Ok(Some(leader(System::Etcd, &addrs).await?))
        }
        None => Ok(None),
    }
}

/// The address of the member that is leader, once there is one.
async fn leader(system: System, addrs: &[String]) -> anyhow::Result<String> {
    let deadline = Instant::now() + SETUP;
    loop {
        for addr in addrs {
            if let Ok(conn) = Conn::open(system, addr).await {
                if conn.is_leader().await.unwrap_or(false)
                    && conn.put("bench/ready", b"1".to_vec()).await.is_ok()
                {
                    return Ok(addr.clone());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("{system:?}: no leader among {addrs:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn put_figure(
    a: &CompareArgs,
    figure: &str,
    clients: usize,
    rostra: &str,
    etcd: Option<&str>,
    report: &mut Report<'_>,
) -> anyhow::Result<()> {
    let r = load(System::Rostra, rostra, clients, a, Op::Put).await?;
    let e = match etcd {
        Some(addr) => Some(load(System::Etcd, addr, clients, a, Op::Put).await?),
        None => None,
    };
    report.pair(
        format!("{figure}, throughput"),
        e.as_ref().map(|e| e.rate),
        r.rate,
        "ops/s",
        Better::Higher,
    )?;
    report.pair(
        format!("{figure}, p50"),
        e.as_ref().map(|e| e.p50),
        r.p50,
        "ms",
        Better::Lower,
    )?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Op {
    Put,
    Get,
}

#[derive(Default)]
struct Load {
    rate: f64,
    p50: f64,
}

/// Closed-loop load: `clients` clients, each on its own connection, one request at a
/// time, for one second of warm-up and then `a.seconds`.
async fn load(
    system: System,
    addr: &str,
    clients: usize,
    a: &CompareArgs,
    op: Op,
) -> anyhow::Result<Load> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Conn::open(system, addr).await?);
    }
    if let Op::Get = op {
        conns[0].put("bench/get", vec![b'x'; a.value_size]).await?;
    }
    let warm = Instant::now() + Duration::from_secs(1);
    let end = warm + Duration::from_secs_f64(a.seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for (c, conn) in conns.into_iter().enumerate() {
        let value = vec![b'x'; a.value_size];
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                match op {
                    Op::Put => {
                        conn.put(&format!("bench/put/{c}/{i}"), value.clone())
                            .await?;
                    }
                    Op::Get => conn.get("bench/get").await?,
                }
                if t >= warm {
                    latencies.push(t.elapsed());
                }
                i += 1;
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(r) = tasks.join_next().await {
        latencies.extend(r??);
    }
    latencies.sort();
    Ok(Load {
        rate: latencies.len() as f64 / a.seconds,
        p50: ms(percentile(&latencies, 0.5)),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Fanout {
    /// Median time from a write to one stream's delivery, over every delivery.
    delivery_p50: f64,
    /// Median over writes of the time until the last stream had it.
    all_p50: f64,
    kb_per_stream: Option<f64>,
}

/// `n` watch streams on one key (one watch per stream), then `rounds` writes of it, one
/// at a time, each timed until every stream has delivered it. The server's resident
/// memory is read before the streams open and once they are all established and idle.
async fn fanout(
    system: System,
    addr: &str,
    proc: Option<&dyn HasRss>,
    n: usize,
    rounds: usize,
) -> anyhow::Result<Fanout> {
    let key = "bench/fanout";
    let writer = Conn::open(system, addr).await?;
    writer.put(key, b"0".to_vec()).await?;
    let before = proc.map(|p| p.rss()).transpose()?;
    let (tx, mut rx) = mpsc::channel(n * 2);
    let mut conns = Vec::new();
    for _ in 0..n.div_ceil(STREAMS_PER_CONNECTION) {
        conns.push(Conn::open(system, addr).await?);
    }
    let mut readers = Vec::with_capacity(n);
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..n {
        let conn = conns[i / STREAMS_PER_CONNECTION].clone();
        let tx = tx.clone();
        opening.spawn(async move { conn.watch(key, tx).await });
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + SETUP;
    while let Some(r) = tokio::time::timeout_at(deadline, opening.join_next())
        .await
        .map_err(|_| anyhow!("{system:?}: {n} watch streams not open in time"))?
    {
        readers.push(r??);
    }
    let kb_per_stream = match (proc, before) {
        (Some(p), Some(before)) => {
            Some((p.rss()?.saturating_sub(before)) as f64 / n as f64 / 1024.0)
        }
        _ => None,
    };
    let mut deliveries = Vec::with_capacity(n * rounds);
    let mut all = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let t = Instant::now();
        let index = writer.put(key, format!("v{round}").into_bytes()).await?;
        let mut reached = 0;
        let mut last = t;
        while reached < n {
            let (seen, at) = tokio::time::timeout(SETUP, rx.recv())
                .await
                .map_err(|_| anyhow!("{system:?}: a write did not reach every stream"))?
                .ok_or_else(|| anyhow!("{system:?}: watch streams ended"))?;
            if seen >= index {
                reached += 1;
                deliveries.push(at.saturating_duration_since(t));
                last = last.max(at);
            }
        }
        all.push(last.saturating_duration_since(t));
    }
    for r in readers {
        r.abort();
    }
    deliveries.sort();
    all.sort();
    Ok(Fanout {
        delivery_p50: ms(percentile(&deliveries, 0.5)),
        all_p50: ms(percentile(&all, 0.5)),
        kb_per_stream,
    })
}

trait HasRss {
    fn rss(&self) -> anyhow::Result<u64>;
}

impl HasRss for procs::Proc {
    fn rss(&self) -> anyhow::Result<u64> {
        self.rss_bytes()
    }
}

impl HasRss for RostraNode {
    fn rss(&self) -> anyhow::Result<u64> {
        self.proc.rss_bytes()
    }
}

enum Target<'a> {
    Rostra,
    Floor(&'a str),
}

struct Blocking {
    p50: f64,
    max: f64,
}

/// `n` HTTP blocking queries (`GET /v1/kv/KEY?index=I&wait=60s`, each on its own
/// connection) parked on one key, then one write (for the floor: its release), timed
/// until each is answered.
async fn blocking(rostra: &RostraNode, n: usize, target: Target<'_>) -> anyhow::Result<Blocking> {
    let key = "bench/blocking";
    let base = match target {
        Target::Rostra => format!("http://{}", rostra.http),
        Target::Floor(addr) => format!("http://{addr}"),
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(n)
        .timeout(Duration::from_secs(120))
        .build()?;
    let writer = Conn::open(System::Rostra, &rostra.grpc).await?;
    let index = match target {
        Target::Rostra => writer.put(key, b"0".to_vec()).await?,
        Target::Floor(_) => 1,
    };
    let parked_before = parked(&http, &base, &writer, &target).await?;
    let mut waiters = tokio::task::JoinSet::new();
    for _ in 0..n {
        let http = http.clone();
        let url = format!("{base}/v1/kv/{key}?index={index}&wait=60s");
        waiters.spawn(async move {
            let r = http.get(&url).send().await?;
            if !r.status().is_success() {
                bail!("{url}: {}", r.status());
            }
            r.bytes().await?;
            Ok::<_, anyhow::Error>(Instant::now())
        });
    }
    let deadline = Instant::now() + SETUP;
    while parked(&http, &base, &writer, &target).await? < parked_before + n {
        if Instant::now() > deadline {
            bail!("{n} blocking queries not parked in time");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    match target {
        Target::Rostra => {
            writer.put(key, b"1".to_vec()).await?;
        }
        Target::Floor(_) => {
            http.put(format!("{base}/release"))
                .send()
                .await?
                .error_for_status()?;
        }
    }
    let mut answered = Vec::with_capacity(n);
    while let Some(r) = waiters.join_next().await {
        answered.push(r??.saturating_duration_since(t));
    }
    answered.sort();
    Ok(Blocking {
        p50: ms(percentile(&answered, 0.5)),
        max: ms(answered.last().copied().unwrap_or_default()),
    })
}

/// How many requests the target holds parked now (Rostra: its open subscriptions).
async fn parked(
    http: &reqwest::Client,
    base: &str,
    rostra: &Conn,
    target: &Target<'_>,
) -> anyhow::Result<usize> {
    Ok(match target {
        Target::Rostra => rostra.watchers().await? as usize,
        Target::Floor(_) => http
            .get(format!("{base}/waiting"))
            .send()
            .await?
            .text()
            .await?
            .trim()
            .parse()?,
    })
}

/// Starts `rostractl bench floor` (this binary) and reads the address it bound.
fn spawn_floor() -> anyhow::Result<(FloorProc, String)> {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["bench", "floor", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the floor server")?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let addr = line.trim().to_string();
    if addr.is_empty() {
        let _ = child.kill();
        bail!("the floor server did not start");
    }
    Ok((FloorProc(child), addr))
}

struct FloorProc(std::process::Child);

impl Drop for FloorProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(etcd: f64, rostra: f64, better: Better) -> Row {
        Row {
            figure: String::new(),
            etcd: Some(etcd),
            rostra,
            unit: "ms",
            better,
            baseline: None,
        }
    }

    #[test]
    fn the_advantage_is_above_one_when_rostra_is_better_either_way() {
        assert_eq!(row(1000.0, 1500.0, Better::Higher).ratio(), Some(1.5));
        assert_eq!(row(3.0, 1.5, Better::Lower).ratio(), Some(2.0));
        assert_eq!(row(1.5, 3.0, Better::Lower).ratio(), Some(0.5));
    }

    #[test]
    fn figures_read_as_in_the_readme() {
        assert_eq!(format_value(17094.4, "ops/s"), "17,094/s");
        assert_eq!(format_value(999.0, "ops/s"), "999/s");
        assert_eq!(format_value(1234567.0, "ops/s"), "1,234,567/s");
        assert_eq!(format_value(0.436, "ms"), "0.44 ms");
        assert_eq!(format_value(12.26, "KB"), "12.3 KB");
    }

    #[test]
    fn percentiles_pick_from_the_sorted_list() {
        let l: Vec<Duration> = (1..=5).map(Duration::from_millis).collect();
        assert_eq!(percentile(&l, 0.5), Duration::from_millis(3));
        assert_eq!(percentile(&l, 1.0), Duration::from_millis(5));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
