//! The servers a comparison runs: Rostra agents and etcd members as child processes on
//! loopback, each with its own temporary data directory, killed and removed on drop.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// How long a server may take to report ready.
const START: Duration = Duration::from_secs(60);

/// A child server process and its data directory.
pub struct Proc {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, from /proc (Linux).
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc/PID/status")?;
        Ok(kb * 1024)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct RostraNode {
    pub proc: Proc,
    pub grpc: String,
    pub http: String,
    pub raft: String,
}

/// The `rostra` binary installed beside this `rostractl`.
pub fn sibling_rostra() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("rostra");
    if !bin.exists() {
        bail!("no rostra binary beside {}; pass -rostra-bin", me.display());
    }
    Ok(bin)
}

/// `rostra agent -dev` on 127.0.0.1 with ephemeral ports.
pub fn rostra_dev(bin: &Path) -> anyhow::Result<RostraNode> {
    spawn_rostra(bin, &["-dev"], "127.0.0.1")
}

/// `n` servers bootstrapping one cluster, on 127.0.0.2, .3, ... as separate machines.
pub fn rostra_cluster(bin: &Path, n: usize) -> anyhow::Result<Vec<RostraNode>> {
    let mut nodes: Vec<RostraNode> = Vec::new();
    for i in 0..n {
        let ip = format!("127.0.0.{}", i + 2);
        let name = format!("bench-{}", i + 1);
        let expect = n.to_string();
        let mut args = vec![
            "-server",
            "-bootstrap-expect",
            &expect,
            "-node",
            &name,
            "-bind",
            &ip,
            "-client",
            &ip,
        ];
        let join;
        if let Some(first) = nodes.first() {
            join = first.raft.clone();
            args.extend(["-retry-join", &join]);
        }
        nodes.push(spawn_rostra(bin, &args, &ip)?);
    }
    Ok(nodes)
}

fn spawn_rostra(bin: &Path, extra: &[&str], ip: &str) -> anyhow::Result<RostraNode> {
    let dir = tempfile::tempdir()?;
    let mut cmd = Command::new(bin);
    cmd.args(["agent", "-log-json", "-data-dir"])
        .arg(dir.path())
        .args(["-http-port", "0", "-dns-port", "0", "-grpc-port", "0"])
        .args(["-server-port", &free_port(ip)?.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    // Reads the "agent ready" line, then keeps draining the log so the agent never
    // blocks on a full pipe.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Some(sender) = tx.as_ref() else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["fields"]["message"] == "agent ready" {
                let f = &v["fields"];
                let field = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                let _ = sender.send((field("grpc_addr"), field("http_addr"), field("raft_addr")));
                tx = None;
            }
        }
    });
    let proc = Proc { child, _dir: dir };
    let (grpc, http, raft) = rx
        .recv_timeout(START)
        .map_err(|_| anyhow!("{} did not report ready", bin.display()))?;
    Ok(RostraNode {
        proc,
        grpc,
        http,
        raft,
    })
}

pub struct EtcdNode {
    pub proc: Proc,
    /// host:port of its client (gRPC) listener.
    pub client: String,
}

/// One etcd member on 127.0.0.1, or `n` members on 127.0.0.2, .3, ...; ready once every
/// member answers (the caller waits for a leader).
pub fn etcd(bin: &Path, n: usize) -> anyhow::Result<Vec<EtcdNode>> {
    let ips: Vec<String> = if n == 1 {
        vec!["127.0.0.1".into()]
    } else {
        (0..n).map(|i| format!("127.0.0.{}", i + 2)).collect()
    };
    let mut peers = Vec::new();
    let mut clients = Vec::new();
    for ip in &ips {
        peers.push(format!("http://{ip}:{}", free_port(ip)?));
        clients.push(format!("{ip}:{}", free_port(ip)?));
    }
    let cluster: Vec<String> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("e{i}={p}"))
        .collect();
    let cluster = cluster.join(",");
    let mut nodes = Vec::new();
    for i in 0..n {
        let dir = tempfile::tempdir()?;
        let client_url = format!("http://{}", clients[i]);
        let child = Command::new(bin)
            .args(["--name", &format!("e{i}"), "--data-dir"])
            .arg(dir.path())
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peers[i]])
            .args(["--initial-advertise-peer-urls", &peers[i]])
            .args(["--initial-cluster", &cluster])
            .args(["--initial-cluster-state", "new"])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        nodes.push(EtcdNode {
            proc: Proc { child, _dir: dir },
            client: clients[i].clone(),
        });
    }
    Ok(nodes)
}

/// `etcd` on the PATH, if there is one.
pub fn etcd_on_path() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

/// A port free on `ip` now (taken by the server a moment later; a clash fails its start).
fn free_port(ip: &str) -> anyhow::Result<u16> {
    let ip: Ipv4Addr = ip.parse()?;
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}
