//! Agent configuration: what `rostra agent` was asked to run. Built by `cli::agent` from
//! defaults, then Consul-format JSON config files (`file`), then flags.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::agent::definition::{CheckDefinition, ServiceDefinition};
use crate::agent::watches::WatchDefinition;
use crate::service::Limits;

#[cfg(test)]
pub(crate) mod arbitrary;
pub mod consul_json;
pub mod file;

/// Consul's defaults: server RPC (raft) on 8300, gRPC on 8502.
pub const DEFAULT_SERVER_PORT: u16 = 8300;
pub const DEFAULT_GRPC_PORT: u16 = 8502;
/// Consul's HTTP API port.
pub const DEFAULT_HTTP_PORT: u16 = 8500;
/// Consul's DNS port (UDP and TCP).
pub const DEFAULT_DNS_PORT: u16 = 8600;

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_name: String,
    pub datacenter: String,
    /// None: a temporary directory removed at exit (dev mode without `-data-dir`).
    pub data_dir: Option<PathBuf>,
    pub dev: bool,
    /// A raft server (dev mode is one); false: a client agent that reaches the servers in
    /// `retry_join` through the API seam.
    pub server: bool,
    /// Servers expected before the cluster bootstraps (1 in dev mode).
    pub bootstrap_expect: usize,
    /// Address the server (raft) port binds to.
    pub bind: IpAddr,
    /// Address peers use to reach this server; defaults to `bind`.
    pub advertise: Option<IpAddr>,
    /// Address the client-facing APIs bind to (Consul's `-client`).
    pub client_addr: IpAddr,
    pub server_port: u16,
    pub grpc_port: u16,
    /// Consul-compatible HTTP API port.
    pub http_port: u16,
    /// Raft addresses of other servers to find at bootstrap.
    pub retry_join: Vec<String>,
    pub limits: Limits,
    pub raft: RaftTuning,
    /// DNS interface port (UDP and TCP) on `client_addr`.
    pub dns_port: u16,
    /// Upstream DNS servers for names outside `.consul`; none: such queries are refused.
    pub recursors: Vec<String>,
    /// Services defined in config files (Consul's `service`/`services`).
    pub services: Vec<ServiceDefinition>,
    /// Node-level checks defined in config files (Consul's `check`/`checks`).
    pub checks: Vec<CheckDefinition>,
    /// Script checks registered over the HTTP API may run (Consul's `enable_script_checks`).
    pub enable_script_checks: bool,
    /// Script checks from config files may run (Consul's `enable_local_script_checks`).
    pub enable_local_script_checks: bool,
    /// Watches defined in config files (Consul's `watches`).
    pub watches: Vec<WatchDefinition>,
    /// Remote exec jobs may run on this agent: Consul's `disable_remote_exec` false (it
    /// is true by default, so exec is off unless asked for).
    pub enable_remote_exec: bool,
    /// Consul's `node_meta`: the node's metadata in the catalog (and DNS TXT records).
    pub node_meta: std::collections::BTreeMap<String, String>,
    /// Reads the configuration again (files and flags) for `/v1/agent/reload`; None for
    /// an agent built in code, which has no files.
    pub reloader: Option<Reloader>,
}

/// Builds the agent's configuration again from where it first came from.
#[derive(Clone)]
pub struct Reloader(pub std::sync::Arc<dyn Fn() -> Result<AgentConfig, String> + Send + Sync>);

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloader")
    }
}

/// Raft knobs that tests turn down to exercise snapshots quickly.
#[derive(Debug, Clone, Copy)]
pub struct RaftTuning {
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot, for followers that lag a little.
    pub logs_to_keep: u64,
    /// Consul's `performance.raft_multiplier` (1 to 10): heartbeat and election timeouts
    /// scale with it. 5, Consul's default, gives Rostra's own timings.
    pub multiplier: u32,
}

/// Consul's default `performance.raft_multiplier`.
pub const DEFAULT_RAFT_MULTIPLIER: u32 = 5;

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            snapshot_threshold: 10_000,
            logs_to_keep: 1_000,
            multiplier: DEFAULT_RAFT_MULTIPLIER,
        }
    }
}

impl AgentConfig {
    /// `rostra agent -dev`: one self-bootstrapping server, everything on 127.0.0.1.
    pub fn dev() -> Self {
        AgentConfig {
            node_name: default_node_name(),
            datacenter: "dc1".into(),
            data_dir: None,
            dev: true,
            server: true,
            bootstrap_expect: 1,
            bind: IpAddr::from([127, 0, 0, 1]),
            advertise: None,
            client_addr: IpAddr::from([127, 0, 0, 1]),
            server_port: DEFAULT_SERVER_PORT,
            grpc_port: DEFAULT_GRPC_PORT,
            http_port: DEFAULT_HTTP_PORT,
            retry_join: Vec::new(),
            limits: Limits::default(),
            raft: RaftTuning::default(),
            dns_port: DEFAULT_DNS_PORT,
            recursors: Vec::new(),
            services: Vec::new(),
            checks: Vec::new(),
            enable_script_checks: false,
            enable_local_script_checks: false,
            watches: Vec::new(),
            enable_remote_exec: false,
            node_meta: Default::default(),
            reloader: None,
        }
    }
}

/// Consul names a node after the host.
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "rostra".into())
}
