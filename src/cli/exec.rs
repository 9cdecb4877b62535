//! `rostractl exec [-node R] [-service S] [-tag T] [-wait 2s] [-shell=true] <command>`:
//! Consul's `consul exec` output (`    node: line`, `==> node: finished with exit code
//! N`, `N / M node(s) completed / acknowledged`) over one streamed `Exec.Run`. Nodes
//! that declined (exec disabled) or never answered are named. Exit 2 when a node exited
//! non-zero, acknowledged without finishing, or did not answer. Ctrl-C ends the call,
//! which ends the run and stops the remote processes.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{anyhow, bail};

use super::args::ExecArgs;
use crate::client::Client;
use crate::pb;

pub enum ExecExit {
    AllOk,
    SomeFailed,
}

/// Checks the flags with Consul's messages, before anything touches the network.
pub fn plan(a: &ExecArgs) -> anyhow::Result<pb::ExecRunRequest> {
    if a.command.is_empty() {
        bail!("Must specify a command to execute");
    }
    if a.command == ["-"] {
        if !a.shell {
            bail!("Cannot configure -shell=false when reading from stdin");
        }
        bail!("Reading the command from stdin (-) is not supported; give it as arguments");
    }
    if a.prefix != crate::service::exec::PREFIX {
        bail!(
            "Only the default -prefix {:?} is supported",
            crate::service::exec::PREFIX
        );
    }
    super::event::check_filters(&a.filters)?;
    let wait = crate::http::params::parse_go_duration(&a.wait)
        .ok_or_else(|| anyhow!("invalid value {:?} for flag -wait: parse error", a.wait))?;
    crate::http::params::parse_go_duration(&a.wait_repl).ok_or_else(|| {
        anyhow!(
            "invalid value {:?} for flag -wait-repl: parse error",
            a.wait_repl
        )
    })?;
    let (command, args) = if a.shell {
        (a.command.join(" "), Vec::new())
    } else {
        (String::new(), a.command.clone())
    };
    Ok(pb::ExecRunRequest {
        command,
        args,
        node_filter: a.filters.node.clone(),
        service_filter: a.filters.service.clone(),
        tag_filter: a.filters.tag.clone(),
        wait_ms: wait.as_millis() as u64,
    })
}

pub async fn run(
    client: &Client,
    req: pb::ExecRunRequest,
    verbose: bool,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExecExit> {
    let started = Instant::now();
    let mut stream = pb::exec_client::ExecClient::new(client.channel())
        .run(req)
        .await
        .map_err(|e| anyhow!("Failed to start remote execution: {}", e.message()))?
        .into_inner();
    // Partial lines per node, printed once complete.
    let mut partial: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut failed = false;
    let flush = |node: &str, bytes: &mut Vec<u8>, all: bool, out: &mut (dyn Write + Send)| {
        while let Some(at) = bytes.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = bytes.drain(..=at).collect();
            writeln!(
                out,
                "    {node}: {}",
                String::from_utf8_lossy(&line[..line.len() - 1])
            )?;
        }
        if all && !bytes.is_empty() {
            writeln!(out, "    {node}: {}", String::from_utf8_lossy(bytes))?;
            bytes.clear();
        }
        std::io::Result::Ok(())
    };
    while let Some(msg) = stream
        .message()
        .await
        .map_err(|e| anyhow!("Error during remote execution: {}", e.message()))?
    {
        let node = msg.node.clone();
        match pb::ExecEventKind::try_from(msg.kind).unwrap_or(pb::ExecEventKind::Unspecified) {
            pb::ExecEventKind::Ack => {
                if verbose {
                    writeln!(out, "==> {node}: acknowledged")?;
                }
            }
            pb::ExecEventKind::Output => {
                let buf = partial.entry(node.clone()).or_default();
                buf.extend_from_slice(&msg.output);
                flush(&node, buf, false, out)?;
            }
            pb::ExecEventKind::Exit => {
                if let Some(buf) = partial.get_mut(&node) {
                    flush(&node, buf, true, out)?;
                }
                failed |= msg.exit_code != 0;
                writeln!(out, "==> {node}: finished with exit code {}", msg.exit_code)?;
            }
            pb::ExecEventKind::Declined => {
                writeln!(out, "==> {node}: declined: {}", msg.reason)?;
            }
            pb::ExecEventKind::NoAnswer => {
                failed = true;
                writeln!(out, "==> {node}: did not answer")?;
            }
            pb::ExecEventKind::Done => {
                failed |= msg.completed < msg.acknowledged;
                writeln!(
                    out,
                    "{} / {} node(s) completed / acknowledged",
                    msg.completed, msg.acknowledged
                )?;
                if verbose {
                    writeln!(
                        out,
                        "Completed in {:.2} seconds",
                        started.elapsed().as_secs_f64()
                    )?;
                }
            }
            pb::ExecEventKind::Unspecified => {}
        }
        out.flush()?;
    }
    Ok(if failed {
        ExecExit::SomeFailed
    } else {
        ExecExit::AllOk
    })
}
