//! `rostra agent`: flags to an [`AgentConfig`], then run until SIGINT or SIGTERM.

use anyhow::{bail, Context};

use super::args::AgentArgs;
use crate::config::{default_node_name, AgentConfig};
use crate::server::Server;

/// Resolves flag interactions into a configuration.
pub fn config_from_args(a: &AgentArgs) -> anyhow::Result<AgentConfig> {
    let mut config = AgentConfig::dev();
    config.dev = a.dev;
    config.node_name = a.node.clone().unwrap_or_else(default_node_name);
    config.datacenter = a.datacenter.clone();
    config.data_dir = a.data_dir.clone();
    config.bind = a.bind;
    config.advertise = a.advertise;
    config.client_addr = a.client_addr;
    config.server_port = a.server_port;
    config.grpc_port = a.grpc_port;
    config.http_port = a.http_port;
    config.retry_join = a.retry_join.clone();
    if let Some(n) = a.raft_snapshot_threshold {
        config.raft.snapshot_threshold = n;
    }
    if let Some(n) = a.raft_logs_to_keep {
        config.raft.logs_to_keep = n;
    }
    if a.dev {
        config.bootstrap_expect = a.bootstrap_expect.unwrap_or(1);
    } else {
        if !a.server {
            bail!("client agents (without -server) are not available yet; use -server or -dev");
        }
        if a.data_dir.is_none() {
            bail!("Must specify -data-dir (or use -dev)");
        }
        config.bootstrap_expect = a.bootstrap_expect.unwrap_or(0);
    }
    Ok(config)
}

/// Runs the agent until a shutdown signal.
pub async fn run(a: AgentArgs) -> anyhow::Result<()> {
    let config = config_from_args(&a)?;
    let server = Server::start(&config).await.context("starting the agent")?;
    eprintln!(
        "==> Rostra agent running: node {:?}, HTTP {}, gRPC {}, server {}, data {}",
        config.node_name,
        server.http_addr,
        server.grpc_addr,
        server.raft_addr,
        server.data_dir.display()
    );
    wait_for_signal().await;
    tracing::info!("shutdown signal received");
    // Graceful shutdown waits for open streams to end; a stuck peer must not keep the
    // process alive forever (everything acknowledged is already durable).
    if tokio::time::timeout(std::time::Duration::from_secs(15), server.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown took longer than 15s; exiting anyway");
    }
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
