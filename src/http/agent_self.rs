//! Who this agent is: `/v1/agent/self` and `/v1/agent/members` (spec §6). Clients compare
//! the `Member` of `/v1/agent/self` with the entries of `/v1/agent/members`, so both are
//! built by one function from one record, and both carry every field Consul's do.
//!
//! Rostra has no gossip: membership is the leader's view of heartbeats
//! (`service::membership`), reported in serf's shape (LAN port 8301, serf status numbers,
//! serf protocol versions) because that is what clients parse.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::error::HttpError;
use super::params::Params;
use super::reply;
use super::HttpState;
use crate::version::{CONSUL_API_VERSION, ROSTRA_VERSION};

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/agent/self", get(agent_self))
        .route("/v1/agent/members", get(members))
}

/// Consul's `ErrSegmentsNotSupported`: only the default segment exists without Enterprise.
const SEGMENTS_NOT_SUPPORTED: &str = "Network segments are not supported in this version of Consul";

/// Serf's LAN and WAN ports: where Consul's members live. Rostra has no gossip pool; the
/// numbers are what clients expect to see.
const SERF_LAN_PORT: u16 = 8301;
const SERF_WAN_PORT: u16 = 8302;

/// One member as `/v1/agent/members` lists it (and `/v1/agent/self` names itself).
pub struct MemberView<'a> {
    pub name: &'a str,
    pub address: &'a str,
    /// A server's raft address (`host:port`); None for a client agent.
    pub server: Option<&'a str>,
    pub id: &'a str,
    pub datacenter: &'a str,
    /// Serf's status number: 1 alive, 2 leaving, 3 left, 4 failed.
    pub status: u8,
    /// The WAN pool's view: `node.dc` names and the WAN port.
    pub wan: bool,
}

impl MemberView<'_> {
    pub fn to_json(&self) -> Value {
        let mut tags = Map::new();
        let mut tag = |k: &str, v: &str| {
            tags.insert(k.into(), Value::String(v.into()));
        };
        tag(
            "role",
            if self.server.is_some() {
                "consul"
            } else {
                "node"
            },
        );
        tag("dc", self.datacenter);
        tag("id", self.id);
        tag("segment", "");
        tag("build", CONSUL_API_VERSION);
        tag("vsn", "2");
        tag("vsn_min", "2");
        tag("vsn_max", "3");
        tag("acls", "0");
        tag("ft_fs", "1");
        if let Some(raft) = self.server {
            if let Some((_, port)) = raft.rsplit_once(':') {
                tag("port", port);
            }
            tag("raft_vsn", "3");
            tag("wan_join_port", "8302");
        }
        let name = if self.wan {
            format!("{}.{}", self.name, self.datacenter)
        } else {
            self.name.to_string()
        };
        json!({
            "Name": name,
            "Addr": self.address,
            "Port": if self.wan { SERF_WAN_PORT } else { SERF_LAN_PORT },
            "Tags": tags,
            "Status": self.status,
            "ProtocolMin": 1,
            "ProtocolMax": 5,
            "ProtocolCur": 2,
            "DelegateMin": 2,
            "DelegateMax": 5,
            "DelegateCur": 4,
        })
    }
}

/// The members `?wan` and `?segment` select: the LAN pool (every agent), or the WAN pool
/// (servers only); a segment other than the default one (or `_all`) is Consul OSS's error.
async fn member_list(state: &HttpState, params: &Params) -> Result<Vec<Value>, HttpError> {
    let wan = params.has("wan");
    if let Some(segment) = params.get("segment") {
        if !segment.is_empty() && segment != "_all" && !wan {
            return Err(HttpError::Status(
                StatusCode::INTERNAL_SERVER_ERROR,
                SEGMENTS_NOT_SUPPORTED.into(),
            ));
        }
    }
    let dc = &state.agent.datacenter;
    Ok(state
        .service
        .members()
        .await?
        .iter()
        .filter(|m| !wan || m.server.is_some())
        .map(|m| {
            MemberView {
                name: &m.node.name,
                address: &m.node.address,
                server: m.server.as_deref(),
                id: &m.node.id,
                datacenter: dc,
                status: m.status.serf_code(),
                wan,
            }
            .to_json()
        })
        .collect())
}

async fn members(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    let members = member_list(&state, &params).await?;
    Ok(reply::json(&state, &params, StatusCode::OK, &members))
}

/// Consul's `/v1/agent/self`: exactly its top-level keys (`Config`, `DebugConfig`,
/// `Coord`, `Member`, `Meta`, `Stats`, `xDS`).
async fn agent_self(State(state): State<HttpState>, params: Params) -> Result<Response, HttpError> {
    let agent = &state.agent;
    let node = &state.local.node;
    let status = state.service.cluster_status();
    let server = agent.server;
    let raft_addr = server
        .then(|| {
            status
                .servers
                .iter()
                .find(|(id, _, _)| *id == status.id)
                .map(|(_, n, _)| n.raft_addr.clone())
        })
        .flatten();
    // The leader's list, when it has us; otherwise ourselves as alive (we are answering).
    let listed = state.service.members().await.ok().and_then(|ms| {
        ms.iter()
            .find(|m| m.node.name == node.name)
            .map(|m| m.status.serf_code())
    });
    let member = MemberView {
        name: &node.name,
        address: &node.address,
        server: raft_addr.as_deref().or(server.then_some("")),
        id: &node.id,
        datacenter: &agent.datacenter,
        status: listed.unwrap_or(1),
        wan: false,
    }
    .to_json();
    let leader_addr = status
        .leader
        .as_ref()
        .map(|(_, n)| n.raft_addr.clone())
        .unwrap_or_default();
    let local_services = state.local.services();
    let local_checks = state.local.checks();
    let ttl_checks = local_checks
        .iter()
        .filter(|c| matches!(c.def.kind, crate::agent::definition::CheckKind::Ttl { .. }))
        .count();
    let monitors = local_checks
        .iter()
        .filter(|c| {
            matches!(
                c.def.kind,
                crate::agent::definition::CheckKind::Script { .. }
            )
        })
        .count();
    let mut consul = json!({
        "acl": "disabled",
        "server": server.to_string(),
        "known_datacenters": "1",
        "leader_addr": leader_addr,
        "leader": status.leader.as_ref().is_some_and(|(l, _)| server && *l == status.id).to_string(),
        "bootstrap": (agent.bootstrap_expect == 1 && server).to_string(),
    });
    if !server {
        consul = json!({
            "acl": "disabled",
            "server": "false",
            "known_servers": status.servers.len().to_string(),
            "leader_addr": leader_addr,
        });
    }
    let mut stats = json!({
        "agent": {
            "check_monitors": monitors.to_string(),
            "check_ttls": ttl_checks.to_string(),
            "checks": local_checks.len().to_string(),
            "services": local_services.len().to_string(),
        },
        "build": {
            "prerelease": "",
            "revision": "",
            "version": CONSUL_API_VERSION,
            "version_metadata": "",
        },
        "consul": consul,
        "runtime": {
            "arch": std::env::consts::ARCH,
            "os": std::env::consts::OS,
            "cpu_count": std::thread::available_parallelism().map_or(1, |n| n.get()).to_string(),
            "version": format!("rostra {ROSTRA_VERSION}"),
        },
    });
    if server {
        stats["raft"] = raft_stats(&status);
    }
    let body = json!({
        "Config": {
            "Datacenter": agent.datacenter,
            "PrimaryDatacenter": agent.datacenter,
            "NodeName": node.name,
            "NodeID": node.id,
            "Server": server,
            "Version": CONSUL_API_VERSION,
            "Revision": "",
            "BuildDate": "",
            "RostraVersion": ROSTRA_VERSION,
        },
        "DebugConfig": agent.debug_config,
        // Rostra has no network coordinates; this is Consul's coordinate for a node that
        // has not measured any (the origin, with Vivaldi's initial error and height).
        "Coord": {
            "Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "Error": 1.5,
            "Adjustment": 0.0,
            "Height": 1.0e-5,
        },
        "Member": member,
        "Stats": stats,
        "Meta": state.local.node_meta(),
        // No xDS server (no service mesh): Consul's answer when its gRPC xDS port is off.
        "xDS": {
            "SupportedProxies": {"envoy": []},
            "Port": -1,
            "Ports": {"Plaintext": -1, "TLS": -1},
        },
    });
    Ok(reply::json(&state, &params, StatusCode::OK, &body))
}

/// `Stats.raft` as Consul prints it: every value a string.
fn raft_stats(status: &crate::raft::ClusterStatus) -> Value {
    let p = &status.progress;
    let voters = status.servers.iter().filter(|(_, _, voter)| *voter);
    let peers = voters.clone().filter(|(id, _, _)| *id != status.id).count();
    // hashicorp/raft's `Configuration` printed with %+v.
    let configuration: Vec<String> = status
        .servers
        .iter()
        .map(|(id, node, voter)| {
            format!(
                "{{Suffrage:{} ID:{} Address:{}}}",
                if *voter { "Voter" } else { "Nonvoter" },
                crate::agent::node_uuid(*id),
                node.raft_addr
            )
        })
        .collect();
    json!({
        "state": p.state,
        "term": status.term.to_string(),
        "last_log_index": p.last_log_index.to_string(),
        "commit_index": p.commit_index.to_string(),
        "applied_index": p.applied_index.to_string(),
        "fsm_pending": p.commit_index.saturating_sub(p.applied_index).to_string(),
        "last_snapshot_index": p.last_snapshot_index.to_string(),
        "last_snapshot_term": p.last_snapshot_term.to_string(),
        "last_contact": if p.state == "Leader" { "0".to_string() } else { format!("{}ms", status.last_contact_ms) },
        "num_peers": peers.to_string(),
        "latest_configuration": format!("[{}]", configuration.join(" ")),
        "latest_configuration_index": status.membership_index.to_string(),
        "protocol_version": "3",
        "protocol_version_min": "0",
        "protocol_version_max": "3",
        "snapshot_version_min": "0",
        "snapshot_version_max": "1",
    })
}

/// Consul's `DebugConfig`: the agent's effective configuration under Consul's runtime
/// names, so tools that read it (to find the data dir, ports, retry-join list) find them.
pub fn debug_config(config: &crate::config::AgentConfig) -> Value {
    let port = |p: u16| p as i64;
    json!({
        "Datacenter": config.datacenter,
        "PrimaryDatacenter": config.datacenter,
        "NodeName": config.node_name,
        "ServerMode": config.server,
        "DevMode": config.dev,
        "BootstrapExpect": config.bootstrap_expect,
        "BindAddr": config.bind.to_string(),
        "AdvertiseAddrLAN": config.advertise.unwrap_or(config.bind).to_string(),
        "ClientAddrs": [config.client_addr.to_string()],
        "DataDir": config.data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
        "HTTPPort": port(config.http_port),
        "HTTPSPort": -1,
        "GRPCPort": port(config.grpc_port),
        "GRPCTLSPort": -1,
        "DNSPort": port(config.dns_port),
        "ServerPort": port(config.server_port),
        "SerfPortLAN": SERF_LAN_PORT,
        "SerfPortWAN": -1,
        "RetryJoinLAN": config.retry_join,
        "DNSRecursors": config.recursors,
        "EnableRemoteScriptChecks": config.enable_script_checks,
        "EnableLocalScriptChecks": config.enable_local_script_checks,
        "DisableRemoteExec": !config.enable_remote_exec,
        "ACLsEnabled": false,
        "ConnectEnabled": false,
        "UIConfig": {"Enabled": false},
        "Watches": config.watches.len(),
    })
}
