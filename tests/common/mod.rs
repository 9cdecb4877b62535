//! Shared test harness: in-process servers on ephemeral ports, and `rostra agent` child
//! processes that report their bound addresses through the "agent ready" log line.
#![allow(dead_code)]

pub mod dns;
pub mod faults;
pub mod handlers;
pub mod http;
pub mod linearizability;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rostra::client::Client;
use rostra::config::AgentConfig;
use rostra::server::Server;

pub const DEADLINE: Duration = Duration::from_secs(60);

/// A dev server in this process on ephemeral loopback ports with its own data dir.
pub async fn dev_server() -> (Server, tempfile::TempDir) {
    dev_server_with(|_| {}).await
}

/// Like `dev_server`, with `configure` applied to the config first (limits, say).
pub async fn dev_server_with(
    configure: impl FnOnce(&mut AgentConfig),
) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AgentConfig::dev();
    configure(&mut config);
    config.node_name = "test-node".into();
    config.data_dir = Some(dir.path().to_path_buf());
    config.server_port = 0;
    config.grpc_port = 0;
    config.http_port = 0;
    config.dns_port = 0;
    let server = Server::start(&config).await.expect("server starts");
    let client = Client::connect(&server.grpc_addr.to_string())
        .await
        .unwrap();
    wait_until("the dev server elects itself", || {
        let c = client.clone();
        async move { c.leader().await.map(|l| l.leader_id != 0).unwrap_or(false) }
    })
    .await;
    // Sessions need the node's serfHealth, which the leader registers on the agent's
    // first heartbeat.
    wait_until("the dev server's node is alive", || async {
        let opts = rostra::service::QueryOptions::default();
        server
            .service
            .health_node("test-node", &opts)
            .await
            .is_ok_and(|(_, checks)| checks.iter().any(|c| c.check.check_id == "serfHealth"))
    })
    .await;
    // The agent follows exec events with a watch of its own; tests that wait for their
    // own watchers count from here.
    wait_until("the agent's exec watch is up", || async {
        server.service.watcher_count() >= 1
    })
    .await;
    (server, dir)
}

/// Retries `check` until it holds or the deadline passes (then panics naming `what`).
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A catalog registration of `service` (port 8080, tag `v1`) on `node` (10.1.2.3) with
/// one service check `<service>-check` in `status` with `output`.
pub fn web_registration(
    node: &str,
    service: &str,
    status: rostra::pb::HealthStatus,
    output: &str,
) -> rostra::pb::RegisterRequest {
    use rostra::pb;
    pb::RegisterRequest {
        node: Some(pb::Node {
            name: node.into(),
            address: "10.1.2.3".into(),
            ..Default::default()
        }),
        skip_node_update: false,
        service: Some(pb::ServiceInstance {
            name: service.into(),
            port: 8080,
            tags: vec!["v1".into()],
            ..Default::default()
        }),
        checks: vec![pb::HealthCheck {
            check_id: format!("{service}-check"),
            name: "alive".into(),
            status: status as i32,
            service_id: service.into(),
            output: output.into(),
            ..Default::default()
        }],
    }
}

/// The next message of a gRPC stream, within the deadline; panics if it ends or fails.
pub async fn next_message<T>(s: &mut tonic::Streaming<T>) -> T {
    tokio::time::timeout(DEADLINE, s.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("open")
}

/// `rostractl watch <args>` against `addr`, with its stdout as a channel of lines (a
/// watch prints one line per handler run in the tests).
pub fn watch_lines(addr: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(rostractl_bin())
        .arg("watch")
        .args(args)
        .env("ROSTRA_ADDR", addr)
        .stdout(Stdio::piped())
        .spawn()
        .expect("rostractl watch starts");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// A `rostra agent` child process.
pub struct Agent {
    pub child: Child,
    pub grpc_addr: String,
    pub http_addr: String,
    pub dns_addr: String,
    pub raft_addr: String,
    pub data_dir: PathBuf,
    pub args: Vec<String>,
}

pub fn rostra_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rostra")
}

pub fn rostractl_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rostractl")
}

impl Agent {
    /// Starts `rostra agent ARGS -log-json` and waits for its "agent ready" line.
    pub fn spawn(data_dir: &Path, args: &[String]) -> Agent {
        Self::spawn_on(data_dir, args, "0", "0")
    }

    /// Like `spawn` with given gRPC and server ports ("0" picks free ones).
    pub fn spawn_on(data_dir: &Path, args: &[String], grpc_port: &str, server_port: &str) -> Agent {
        Self::spawn_in(data_dir, args, grpc_port, server_port, None)
    }

    /// Like `spawn_on`, running in `cwd` (config files name scripts relative to it).
    pub fn spawn_in(
        data_dir: &Path,
        args: &[String],
        grpc_port: &str,
        server_port: &str,
        cwd: Option<&Path>,
    ) -> Agent {
        let mut full: Vec<String> = vec!["agent".into(), "-log-json".into(), "-data-dir".into()];
        full.push(data_dir.display().to_string());
        full.extend([
            "-http-port".into(),
            "0".into(),
            "-dns-port".into(),
            "0".into(),
            "-grpc-port".into(),
            grpc_port.into(),
            "-server-port".into(),
            server_port.into(),
        ]);
        full.extend(args.iter().cloned());
        let mut command = Command::new(rostra_bin());
        // As on a machine where Rostra is installed: what the agent runs (exec jobs,
        // handlers) finds `rostractl` on its PATH.
        let bin_dir = Path::new(rostractl_bin()).parent().unwrap().to_path_buf();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path =
            std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(&path)))
                .unwrap();
        command.env("PATH", path);
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let mut child = command
            .args(&full)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rostra");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if v["fields"]["message"] == "agent ready" {
                            let f = &v["fields"];
                            let field = |k: &str| f[k].as_str().unwrap_or_default().to_string();
                            let _ = tx.send((
                                field("grpc_addr"),
                                field("http_addr"),
                                field("dns_addr"),
                                field("raft_addr"),
                            ));
                            sent = true;
                        }
                    }
                }
                if std::env::var_os("ROSTRA_TEST_LOGS").is_some() {
                    eprintln!("[agent] {line}");
                }
            }
        });
        let (grpc_addr, http_addr, dns_addr, raft_addr) =
            rx.recv_timeout(DEADLINE).expect("agent reports ready");
        Agent {
            child,
            grpc_addr,
            http_addr,
            dns_addr,
            raft_addr,
            data_dir: data_dir.to_path_buf(),
            args: args.to_vec(),
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.grpc_addr).await.expect("connect")
    }

    /// SIGKILL: a crash, nothing flushed on the way out.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        self.stop_with(libc::SIGTERM).success()
    }

    /// Sends `signal` and waits (with the deadline) for the process to exit.
    pub fn stop_with(&mut self, signal: libc::c_int) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped yet (try_wait
        // below is the only reaper), so the pid cannot have been reused.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(
            sent,
            0,
            "sending signal {signal}: {}",
            std::io::Error::last_os_error()
        );
        self.wait_exit()
    }

    /// Waits (with the deadline) for the process to exit on its own account.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(start.elapsed() < DEADLINE, "the agent did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the same server again on the same ports and data.
    pub fn restart(&mut self) {
        let grpc_port = self.grpc_addr.rsplit(':').next().unwrap().to_string();
        // A client agent has no server port.
        let raft_port = match self.raft_addr.rsplit(':').next() {
            Some(p) if !p.is_empty() => p.to_string(),
            _ => "0".to_string(),
        };
        let again = Agent::spawn_on(&self.data_dir, &self.args, &grpc_port, &raft_port);
        // The old process is already gone; dropping its handle only reaps it.
        drop(std::mem::replace(self, again));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of `agent` once it knows a leader (a lone server has elected itself).
pub async fn elected(agent: &Agent) -> Client {
    let c = agent.client().await;
    wait_until("the server knows a leader", || {
        let c = c.clone();
        async move { c.leader().await.map(|l| l.leader_id != 0).unwrap_or(false) }
    })
    .await;
    c
}

/// Runs `rostractl ARGS` against the agent at `addr`.
pub fn ctl(addr: &str, args: &[&str]) -> std::process::Output {
    Command::new(rostractl_bin())
        .args(args)
        .env("ROSTRA_ADDR", addr)
        .output()
        .expect("run rostractl")
}

/// `names.len()` servers bootstrapping one cluster, each on its own loopback address
/// (127.0.0.2, .3, ...) as separate machines would be, with data in `dirs[i]` and
/// `extra(i)` added to each command line; the later ones join the first.
pub fn spawn_servers(
    dirs: &[tempfile::TempDir],
    names: &[&str],
    extra: impl Fn(usize) -> Vec<String>,
) -> Vec<Agent> {
    let mut servers: Vec<Agent> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let ip = format!("127.0.0.{}", i + 2);
        let expect = names.len().to_string();
        let mut args: Vec<String> = [
            "-server",
            "-bootstrap-expect",
            &expect,
            "-node",
            name,
            "-bind",
            &ip,
            "-client",
            &ip,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra(i));
        if let Some(first) = servers.first() {
            args.extend(["-retry-join".to_string(), first.raft_addr.clone()]);
        }
        servers.push(Agent::spawn(dirs[i].path(), &args));
    }
    servers
}
