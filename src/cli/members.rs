//! `rostractl members`: Consul's `consul members` table (Node, Address, Status, Type,
//! Build, Protocol, DC, Partition, Segment), from the leader's view of liveness.

use std::io::Write;

use anyhow::anyhow;

use super::args::MembersArgs;
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
            crate::http::status::CONSUL_COMPAT_VERSION.to_string(),
            "2".to_string(),
            m.datacenter.clone(),
            "default".to_string(),
            if m.server { "<all>" } else { "<default>" }.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    Ok(())
}
