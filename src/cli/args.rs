//! Every flag of `rostra` and `rostractl`, as clap structs; doc comments are the help.
//! Flags follow Consul's names so a Consul user's commands carry over (Go's single-dash
//! syntax is accepted, see `goflags`). Boolean flags accept `-flag`, `-flag=true` and
//! `-flag=false`, as Go's do.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The Rostra daemon.
#[derive(Debug, Parser)]
#[command(
    name = "rostra",
    version,
    about = "Rostra: gRPC-native service discovery and control plane"
)]
pub struct DaemonArgs {
    #[command(subcommand)]
    pub command: DaemonCommand,
}

// Parsed once per process: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Run an agent (a server, or with -dev a self-contained development server).
    Agent(AgentArgs),
    /// Check configuration files without starting an agent (Consul's `validate`).
    Validate(ValidateArgs),
    /// Print Rostra's version and the Consul API version it implements.
    Version,
}

/// `rostra agent`. Settings that config files can also give are `Option`s without clap
/// defaults, so that a flag overrides a file only when it was typed; the defaults are
/// applied in `cli::agent::config_from_args` (defaults, then files, then flags).
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Development mode: one self-bootstrapping server on 127.0.0.1, data in a temporary
    /// directory unless -data-dir is given.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub dev: bool,
    /// Run as a server (a raft member); config key `server`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub server: Option<bool>,
    #[command(flatten)]
    pub config: ConfigPaths,
    /// Number of servers to wait for before bootstrapping the cluster.
    #[arg(long = "bootstrap-expect", value_name = "N")]
    pub bootstrap_expect: Option<usize>,
    /// Directory for raft and state data; required unless -dev.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Node name; defaults to the host name.
    #[arg(long, value_name = "NAME")]
    pub node: Option<String>,
    /// Datacenter name [default: dc1].
    #[arg(long)]
    pub datacenter: Option<String>,
    /// Address the server (raft) port binds to [default: 127.0.0.1].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
    /// Address other servers use to reach this one; defaults to -bind.
    #[arg(long, value_name = "ADDR")]
    pub advertise: Option<IpAddr>,
    /// Address the client APIs (HTTP, gRPC, DNS) bind to [default: 127.0.0.1].
    #[arg(long = "client", value_name = "ADDR")]
    pub client_addr: Option<IpAddr>,
    /// Server (raft and forwarding) port; 0 picks a free one [default: 8300].
    #[arg(long = "server-port", value_name = "PORT")]
    pub server_port: Option<u16>,
    /// Consul-compatible HTTP API port; 0 picks a free one [default: 8500].
    #[arg(long = "http-port", value_name = "PORT")]
    pub http_port: Option<u16>,
    /// Public gRPC API port; 0 picks a free one [default: 8502].
    #[arg(long = "grpc-port", value_name = "PORT")]
    pub grpc_port: Option<u16>,
    /// DNS interface port (UDP and TCP); 0 picks a free one [default: 8600].
    #[arg(long = "dns-port", value_name = "PORT")]
    pub dns_port: Option<u16>,
    /// Server address (host:port of its server port) to contact at bootstrap, or for a
    /// client agent the servers to use; repeatable (`-join` is the same), added to the
    /// config files' `retry_join`.
    #[arg(long = "retry-join", alias = "join", value_name = "ADDR")]
    pub retry_join: Vec<String>,
    /// Upstream DNS server for names outside `.consul`; repeatable, added to the config
    /// files' `recursors`.
    #[arg(long = "recursor", value_name = "ADDR")]
    pub recursors: Vec<String>,
    /// Let script checks registered over the HTTP API run (and those in config files).
    #[arg(long = "enable-script-checks", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enable_script_checks: Option<bool>,
    /// Let script checks defined in config files run.
    #[arg(long = "enable-local-script-checks", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub enable_local_script_checks: Option<bool>,
    /// Raft: entries between snapshots (tests turn this down).
    #[arg(long = "raft-snapshot-threshold", hide = true)]
    pub raft_snapshot_threshold: Option<u64>,
    /// Raft: entries kept behind a snapshot (tests turn this down).
    #[arg(long = "raft-logs-to-keep", hide = true)]
    pub raft_logs_to_keep: Option<u64>,
    /// Log level: trace, debug, info, warn or error (or a tracing filter directive)
    /// [default: info].
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log as JSON lines.
    #[arg(long = "log-json", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub log_json: Option<bool>,
}

/// `-config-file` and `-config-dir`, in the order they were typed: Consul loads both
/// into one list, so later sources override earlier ones whichever flag named them.
/// Each may name a JSON file or a directory (every `*.json` in it, by name), as in
/// Consul. clap's derive keeps two flags' values apart, so this is assembled by hand
/// from the argument indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigPaths {
    pub paths: Vec<PathBuf>,
}

const CONFIG_FILE: &str = "config_file";
const CONFIG_DIR: &str = "config_dir";

impl clap::FromArgMatches for ConfigPaths {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut indexed: Vec<(usize, PathBuf)> = Vec::new();
        for id in [CONFIG_FILE, CONFIG_DIR] {
            if let (Some(values), Some(indices)) =
                (matches.get_many::<PathBuf>(id), matches.indices_of(id))
            {
                indexed.extend(indices.zip(values.cloned()));
            }
        }
        indexed.sort_by_key(|(i, _)| *i);
        Ok(ConfigPaths {
            paths: indexed.into_iter().map(|(_, p)| p).collect(),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for ConfigPaths {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let path =
            |id: &'static str, long: &'static str, name: &'static str, help: &'static str| {
                clap::Arg::new(id)
                    .long(long)
                    .value_name(name)
                    .action(clap::ArgAction::Append)
                    .value_parser(clap::value_parser!(PathBuf))
                    .help(help)
            };
        cmd.arg(path(
            CONFIG_FILE,
            "config-file",
            "FILE",
            "Consul-format JSON config file to load; repeatable, later ones override earlier ones",
        ))
        .arg(path(
            CONFIG_DIR,
            "config-dir",
            "DIR",
            "Directory whose *.json files are loaded in name order; repeatable",
        ))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// `rostra validate`: Consul's `consul validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Print nothing on success.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub quiet: bool,
    /// Config files and directories, loaded as `rostra agent -config-file` would.
    #[arg(value_name = "FILE_OR_DIRECTORY")]
    pub paths: Vec<PathBuf>,
}

/// The Rostra command-line client.
#[derive(Debug, Parser)]
#[command(
    name = "rostractl",
    version,
    about = "Command-line client for Rostra (Consul-style commands over gRPC)"
)]
pub struct CtlArgs {
    /// gRPC address of a Rostra agent.
    #[arg(
        long,
        global = true,
        env = "ROSTRA_ADDR",
        default_value = "127.0.0.1:8502"
    )]
    pub addr: String,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Read and write the key/value store.
    #[command(subcommand)]
    Kv(KvCommand),
    /// Watch a key or prefix and print it, or run a handler, on every change.
    Watch(WatchArgs),
    /// Run a command while holding a lock (or one of N semaphore slots) at a KV prefix.
    Lock(LockArgs),
    /// Fire a user event.
    Event(EventArgs),
    /// List the cluster's servers and client agents with their status.
    Members(MembersArgs),
    /// Run a command on the cluster's nodes (those with remote exec enabled).
    Exec(ExecArgs),
    /// Make the agent leave the cluster gracefully and stop (Consul's `consul leave`).
    Leave,
    /// Mark a member left without waiting for it (Consul's `consul force-leave`).
    ForceLeave(ForceLeaveArgs),
    /// Cluster operations (Consul's `operator raft list-peers` / `remove-peer`).
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Save, restore and inspect snapshots of the whole state (Consul's `consul snapshot`).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Measure throughput and latency against a running agent.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print Rostra's version and the Consul API version it implements.
    Version,
    /// Query the catalog (Consul's `consul catalog datacenters|nodes|services`).
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Register or deregister services with the local agent (Consul's `consul services`).
    #[command(subcommand)]
    Services(ServicesCommand),
    /// Put the node or one service into maintenance mode, take it out, or list it.
    Maint(MaintArgs),
    /// Make the agent re-read its configuration files.
    Reload(HttpAddr),
    /// Stream the agent's log.
    Monitor(MonitorArgs),
    /// Print the agent's statistics (`Stats` of `/v1/agent/self`).
    Info(InfoArgs),
}

/// The agent's HTTP API, for the commands that use it (Consul's `-http-addr`).
#[derive(Debug, Clone, Args)]
pub struct HttpAddr {
    /// HTTP API address of the agent (host:port or http://host:port).
    #[arg(
        long = "http-addr",
        env = "CONSUL_HTTP_ADDR",
        default_value = "127.0.0.1:8500"
    )]
    pub http_addr: String,
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List the known datacenters.
    Datacenters(HttpAddr),
    /// List the nodes in the catalog.
    Nodes(CatalogNodesArgs),
    /// List the services in the catalog.
    Services(CatalogServicesArgs),
}

#[derive(Debug, Args)]
pub struct CatalogNodesArgs {
    #[command(flatten)]
    pub http: HttpAddr,
    /// Only nodes that provide this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Full node IDs, tagged addresses and metadata.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub detailed: bool,
    /// A filter expression (Consul's grammar) over the nodes.
    #[arg(long, default_value = "")]
    pub filter: String,
    /// Sort by round-trip time from this node (accepted; Rostra has no coordinates).
    #[arg(long, default_value = "")]
    pub near: String,
    /// Datacenter to query (only this cluster's is served).
    #[arg(long, default_value = "")]
    pub datacenter: String,
}

#[derive(Debug, Args)]
pub struct CatalogServicesArgs {
    #[command(flatten)]
    pub http: HttpAddr,
    /// Only the services on this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Show each service's tags.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub tags: bool,
    /// A filter expression (Consul's grammar) over the service instances.
    #[arg(long, default_value = "")]
    pub filter: String,
    /// Datacenter to query (only this cluster's is served).
    #[arg(long, default_value = "")]
    pub datacenter: String,
}

#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// Register a service from flags or from definition files.
    Register(ServicesRegisterArgs),
    /// Deregister a service by ID or by the definition files that registered it.
    Deregister(ServicesDeregisterArgs),
}

#[derive(Debug, Args)]
pub struct ServicesRegisterArgs {
    #[command(flatten)]
    pub http: HttpAddr,
    /// The service's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The service's ID (default: its name).
    #[arg(long)]
    pub id: Option<String>,
    /// The service's address (default: the node's).
    #[arg(long)]
    pub address: Option<String>,
    /// The service's port.
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// A tag (repeatable).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Metadata as key=value (repeatable).
    #[arg(long)]
    pub meta: Vec<String>,
    /// Service definition files (JSON, as in config files).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServicesDeregisterArgs {
    #[command(flatten)]
    pub http: HttpAddr,
    /// The ID of the service to deregister.
    #[arg(long)]
    pub id: Option<String>,
    /// Service definition files whose services to deregister.
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MaintArgs {
    #[command(flatten)]
    pub http: HttpAddr,
    /// Enable maintenance mode.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub enable: bool,
    /// Disable maintenance mode.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub disable: bool,
    /// Why (shown as the maintenance check's notes).
    #[arg(long)]
    pub reason: Option<String>,
    /// The service ID to act on instead of the whole node.
    #[arg(long)]
    pub service: Option<String>,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    #[command(flatten)]
    pub http: HttpAddr,
    /// Lowest level to show: trace, debug, info, warn or error.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    /// hclog JSON lines instead of text.
    #[arg(long = "log-json", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub log_json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub http: HttpAddr,
}

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Write a value: `kv put KEY [VALUE]`; VALUE may be `-` (stdin) or `@FILE`.
    Put(KvPut),
    /// Read a key (or, with -recurse or -keys, a prefix).
    Get(KvGet),
    /// Delete a key (or, with -recurse, a prefix).
    Delete(KvDelete),
    /// List key names under a prefix.
    Keys(KvKeys),
    /// Export a prefix as JSON (Consul's `kv export` format).
    Export(KvExport),
    /// Import JSON produced by `kv export`: inline, `-` (stdin) or `@FILE`.
    Import(KvImport),
}

#[derive(Debug, Args)]
pub struct KvPut {
    pub key: String,
    pub value: Option<String>,
    /// Unsigned integer stored with the value.
    #[arg(long, default_value_t = 0)]
    pub flags: u64,
    /// Check-and-set: write only if the key's modify index equals -modify-index (0: only
    /// if the key does not exist).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub cas: bool,
    /// The modify index -cas compares against.
    #[arg(long = "modify-index", value_name = "N")]
    pub modify_index: Option<u64>,
    /// The given value is base64; decode it before storing.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub base64: bool,
}

#[derive(Debug, Args)]
pub struct KvGet {
    pub key: Option<String>,
    /// Every key with KEY as prefix, as `key:value` lines.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub recurse: bool,
    /// Only key names under the prefix.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub keys: bool,
    /// With -keys: cut names after this separator.
    #[arg(long, default_value = "/")]
    pub separator: String,
    /// Show every field of the pair.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub detailed: bool,
    /// Print values base64-encoded.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub base64: bool,
    /// Let any server answer from local state.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub stale: bool,
}

#[derive(Debug, Args)]
pub struct KvDelete {
    pub key: Option<String>,
    /// Delete every key with KEY as prefix.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub recurse: bool,
    /// Delete only if the key's modify index equals -modify-index.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub cas: bool,
    #[arg(long = "modify-index", value_name = "N")]
    pub modify_index: Option<u64>,
}

#[derive(Debug, Args)]
pub struct KvKeys {
    pub prefix: Option<String>,
    #[arg(long, default_value = "/")]
    pub separator: String,
}

#[derive(Debug, Args)]
pub struct KvExport {
    pub prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct KvImport {
    pub data: Option<String>,
    /// Prepend this to every imported key.
    #[arg(long, default_value = "")]
    pub prefix: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Watch type: key, keyprefix, services, nodes, service, checks or event.
    #[arg(long = "type")]
    pub watch_type: Option<String>,
    /// Key to watch (-type key).
    #[arg(long)]
    pub key: Option<String>,
    /// Prefix to watch (-type keyprefix).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Service to watch (-type service, or -type checks).
    #[arg(long)]
    pub service: Option<String>,
    /// Only instances with this tag (-type service; repeatable).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only instances whose checks all pass (-type service).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub passingonly: String,
    /// Check state to watch: any, passing, warning or critical (-type checks).
    #[arg(long)]
    pub state: Option<String>,
    /// Event name to watch (-type event; empty: every event).
    #[arg(long)]
    pub name: Option<String>,
    /// Run the handler through `sh -c` (default) rather than directly.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true")]
    pub shell: bool,
    /// Let any server answer from local state (every watch already reads the state of
    /// the server it is connected to).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub stale: bool,
    /// Datacenter to watch; must be the cluster's own (Rostra has no WAN federation).
    #[arg(long)]
    pub datacenter: Option<String>,
    /// ACL token (accepted as Consul's flag; Rostra has no ACLs yet, so it grants nothing).
    #[arg(long)]
    pub token: Option<String>,
    /// Handler command line; without one, the first result is printed and the watch ends.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub handler: Vec<String>,
}

/// Which nodes an event or an exec job is for (Consul's `-node`, `-service`, `-tag`).
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Regular expression for the node names it is for.
    #[arg(long, default_value = "")]
    pub node: String,
    /// Regular expression for the services whose nodes it is for.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Regular expression for tags of those services (needs -service).
    #[arg(long, default_value = "")]
    pub tag: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// KV prefix of the job (Consul's; only `_rexec` is used).
    #[arg(long, default_value = "_rexec")]
    pub prefix: String,
    /// Run the command through `sh -c` (default) rather than as an argument vector.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true")]
    pub shell: bool,
    /// End after this long without any node saying anything (Go duration).
    #[arg(long, default_value = "2s")]
    pub wait: String,
    /// Consul's replication pause before the event; accepted (the job is committed
    /// before the event is fired, so nothing needs to wait).
    #[arg(long = "wait-repl", default_value = "200ms")]
    pub wait_repl: String,
    /// Also print acknowledgements and timing.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub verbose: bool,
    /// The command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save the state to FILE (written atomically, verified first).
    Save(SnapshotSaveArgs),
    /// Replace the cluster's state with FILE's (refused, changing nothing, if FILE is
    /// corrupt or truncated).
    Restore(SnapshotFileArgs),
    /// Print what FILE holds (index, term, checksum, records per table), after checking it.
    Inspect(SnapshotFileArgs),
}

#[derive(Debug, Args)]
pub struct SnapshotSaveArgs {
    /// Save the answering server's state without a read barrier (Consul's -stale).
    #[arg(long)]
    pub stale: bool,
    /// Where to write the snapshot.
    pub file: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct SnapshotFileArgs {
    /// The snapshot file.
    pub file: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct ForceLeaveArgs {
    /// Remove the member from the member list and the catalog now.
    #[arg(long)]
    pub prune: bool,
    /// The member's node name.
    pub node: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct MembersArgs {
    /// Only members whose status matches this regular expression (alive, failed, left).
    #[arg(long)]
    pub status: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventArgs {
    /// The event's name.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// The payload (at most one argument).
    pub payload: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Holders at once: 1 is a lock, more a semaphore.
    #[arg(long = "n", default_value_t = 1, allow_negative_numbers = true)]
    pub n: i64,
    /// Session name (default: names the command and the prefix).
    #[arg(long)]
    pub name: Option<String>,
    /// Run the child through `sh -c` (default) rather than directly.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true")]
    pub shell: bool,
    /// Longest wait to acquire (e.g. 10s); 0 waits forever.
    #[arg(long, default_value = "0s", allow_negative_numbers = true)]
    pub timeout: String,
    /// Deprecated alias of -timeout.
    #[arg(long, allow_negative_numbers = true)]
    pub r#try: Option<String>,
    /// Consecutive server errors tolerated while holding the lock.
    #[arg(
        long = "monitor-retry",
        default_value_t = 3,
        allow_negative_numbers = true
    )]
    pub monitor_retry: i64,
    /// Exit 2 when the child fails (instead of 0).
    #[arg(long = "child-exit-code", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub child_exit_code: bool,
    /// Forward this command's stdin to the child.
    #[arg(long = "pass-stdin", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub pass_stdin: bool,
    /// Print what the lock is doing.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub verbose: bool,
    /// The KV prefix, then the child command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// The raft configuration.
    #[command(subcommand)]
    Raft(RaftCommand),
}

#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// List the raft servers: node, id, address, state, voter.
    ListPeers,
    /// Remove a server from the raft configuration, by -id or -address.
    RemovePeer(RemovePeerArgs),
}

#[derive(Debug, Args)]
pub struct RemovePeerArgs {
    /// The server's raft ID (as list-peers shows it).
    #[arg(long)]
    pub id: Option<String>,
    /// The server's address (host:port of its server port).
    #[arg(long)]
    pub address: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Concurrent writes of distinct keys.
    Put(BenchArgs),
    /// Concurrent default-consistency reads of one key.
    Get(BenchArgs),
    /// Time for one write to reach every one of -watchers watchers.
    Watch(BenchArgs),
    /// Health and DNS reads of one service with a small and with a large catalog.
    Catalog(CatalogBenchArgs),
    /// How soon a lock holder learns its session was invalidated (-requests rounds).
    Lock(BenchArgs),
    /// README's benchmark table: starts Rostra (and etcd, when on the PATH) and runs
    /// every scenario against both in one run, printing the ratios.
    Compare(super::compare::CompareArgs),
    /// The do-nothing HTTP server `bench compare` measures blocking queries against.
    #[command(hide = true)]
    Floor {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

#[derive(Debug, Args)]
pub struct CatalogBenchArgs {
    /// Services in the large catalog.
    #[arg(long, default_value_t = 1000)]
    pub services: usize,
    /// Instances of each service.
    #[arg(long, default_value_t = 10)]
    pub instances: usize,
    /// Nodes the instances are spread over (each with one node check).
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Reads per measurement.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Concurrent readers.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// HTTP API address.
    #[arg(
        long = "http-addr",
        env = "CONSUL_HTTP_ADDR",
        default_value = "127.0.0.1:8500"
    )]
    pub http_addr: String,
    /// DNS address (UDP).
    #[arg(long = "dns-addr", default_value = "127.0.0.1:8600")]
    pub dns_addr: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Concurrent clients (each with its own connection).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Total requests (for watch: writes to fan out).
    #[arg(long, default_value_t = 10_000)]
    pub requests: usize,
    /// Value size in bytes.
    #[arg(long = "value-size", default_value_t = 128)]
    pub value_size: usize,
    /// Concurrent watchers (watch mode).
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Drive the Consul HTTP API (blocking queries for watch) instead of gRPC.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub http: bool,
    /// HTTP API address for -http.
    #[arg(
        long = "http-addr",
        env = "CONSUL_HTTP_ADDR",
        default_value = "127.0.0.1:8500"
    )]
    pub http_addr: String,
}
