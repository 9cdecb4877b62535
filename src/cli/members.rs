//! `rostractl members`: Consul's `consul members` table (Node, Address, Status, Type,
//! Build, Protocol, DC, Partition, Segment), from the leader's view of liveness; and
//! `rostractl operator raft list-peers|remove-peer`, the raft side of membership.

use std::io::Write;

use anyhow::anyhow;

use super::args::{MembersArgs, RaftCommand};
use super::table;
use crate::client::Client;
use crate::pb;

pub async fn run(
    client: &Client,
    args: MembersArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let filter = args
        .status
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .map_err(|e| anyhow!("Failed to compile status regexp: {e}"))?;
    let members = pb::status_client::StatusClient::new(client.channel())
        .members(pb::MembersRequest {})
        .await
        .map_err(|e| anyhow!("Error retrieving members: {}", e.message()))?
        .into_inner()
        .members;
    let status = |m: &pb::Member| match pb::MemberStatus::try_from(m.status) {
        Ok(pb::MemberStatus::Alive) => "alive",
        Ok(pb::MemberStatus::Failed) => "failed",
        Ok(pb::MemberStatus::Left) => "left",
        _ => "unknown",
    };
    let mut rows = vec![[
        "Node",
        "Address",
        "Status",
        "Type",
        "Build",
        "Protocol",
        "DC",
        "Partition",
        "Segment",
    ]
    .map(String::from)];
    for m in members
        .iter()
        .filter(|m| filter.as_ref().is_none_or(|f| f.is_match(status(m))))
    {
        rows.push([
            m.name.clone(),
            format!("{}:8301", m.address),
            status(m).to_string(),
            if m.server { "server" } else { "client" }.to_string(),
            crate::version::CONSUL_API_VERSION.to_string(),
            "2".to_string(),
            m.datacenter.clone(),
            "default".to_string(),
            if m.server { "<all>" } else { "<default>" }.to_string(),
        ]);
    }
    table(&rows, out)
}

pub async fn raft(
    client: &Client,
    cmd: RaftCommand,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let mut status = pb::status_client::StatusClient::new(client.channel());
    match cmd {
        RaftCommand::ListPeers => {
            let conf = status
                .raft_configuration(pb::RaftConfigurationRequest {})
                .await
                .map_err(|e| anyhow!("Failed to retrieve raft configuration: {}", e.message()))?
                .into_inner();
            let mut rows =
                vec![["Node", "ID", "Address", "State", "Voter", "RaftProtocol"].map(String::from)];
            for s in conf.servers {
                rows.push([
                    s.node,
                    crate::agent::node_uuid(s.id),
                    s.address,
                    if s.leader { "leader" } else { "follower" }.to_string(),
                    s.voter.to_string(),
                    "3".to_string(),
                ]);
            }
            table(&rows, out)
        }
        RaftCommand::RemovePeer(a) => {
            let (id, address) = match (a.id, a.address) {
                (Some(_), Some(_)) | (None, None) => {
                    anyhow::bail!("Must specify either -id or -address, but not both")
                }
                (Some(id), None) => {
                    let conf = status
                        .raft_configuration(pb::RaftConfigurationRequest {})
                        .await
                        .map_err(|e| {
                            anyhow!("Failed to retrieve raft configuration: {}", e.message())
                        })?
                        .into_inner();
                    let found = conf
                        .servers
                        .iter()
                        .find(|s| crate::agent::node_uuid(s.id) == id || s.id.to_string() == id)
                        .ok_or_else(|| anyhow!("Error removing peer: id {id:?} was not found in the Raft configuration"))?;
                    (found.id, String::new())
                }
                (None, Some(address)) => (0, address),
            };
            status
                .remove_peer(pb::RemovePeerRequest {
                    id,
                    address: address.clone(),
                })
                .await
                .map_err(|e| anyhow!("Error removing peer: {}", e.message()))?;
            if address.is_empty() {
                writeln!(
                    out,
                    "Removed peer with id {:?}",
                    crate::agent::node_uuid(id)
                )?;
            } else {
                writeln!(out, "Removed peer with address {address:?}")?;
            }
            Ok(())
        }
    }
}
