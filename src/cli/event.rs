//! `rostractl event [-name] [-node] [-service] [-tag] [payload]`: Consul's `consul event`,
//! with its messages: prints `Event ID: <id>`.

use std::io::Write;

use anyhow::{anyhow, bail};

use super::args::{EventArgs, FilterArgs};
use crate::client::Client;
use crate::pb;

/// The node/service/tag filters `event` and `exec` share, with Consul's messages.
pub fn check_filters(f: &FilterArgs) -> anyhow::Result<()> {
    let (node, service, tag) = (&f.node, &f.service, &f.tag);
    for (kind, re) in [("node", node), ("service", service), ("tag", tag)] {
        if !re.is_empty() {
            regex::Regex::new(re)
                .map_err(|e| anyhow!("Failed to compile {kind} filter regexp: {e}"))?;
        }
    }
    if !tag.is_empty() && service.is_empty() {
        bail!("Cannot provide tag filter without service filter.");
    }
    Ok(())
}

/// Checks the flags with Consul's messages, before anything touches the network.
pub fn check(a: &EventArgs) -> anyhow::Result<()> {
    if a.name.as_deref().is_none_or(str::is_empty) {
        bail!("Event name must be specified");
    }
    check_filters(&a.filters)?;
    if a.payload.len() > 1 {
        bail!("Too many command line arguments.");
    }
    Ok(())
}

pub async fn run(
    client: &Client,
    a: EventArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    check(&a)?;
    let req = pb::EventFireRequest {
        name: a.name.unwrap_or_default(),
        payload: a
            .payload
            .into_iter()
            .next()
            .unwrap_or_default()
            .into_bytes(),
        node_filter: a.filters.node,
        service_filter: a.filters.service,
        tag_filter: a.filters.tag,
    };
    let fired = pb::event_client::EventClient::new(client.channel())
        .fire(req)
        .await
        .map_err(|e| anyhow!("Error firing event: {}", e.message()))?
        .into_inner();
    let id = fired.event.map(|e| e.id).unwrap_or_default();
    writeln!(out, "Event ID: {id}")?;
    Ok(())
}
