//! A client agent: what runs on every machine that is not a server. No raft and no
//! tables: its front ends (HTTP, gRPC, DNS) and its local agent (services, checks,
//! watches) reach the control plane through [`Remote`], the API seam over the network,
//! exactly as a server's reach its own service layer. Its local registrations are in its
//! data dir and survive a restart; anti-entropy writes them to the catalog through a
//! server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::server::{FrontListeners, StartError};
use crate::service::remote::Remote;

/// How long shutdown waits for each group of tasks.
const TASK_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

pub struct ClientAgent {
    pub agent: Arc<crate::agent::Agent>,
    pub remote: Arc<Remote>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub dns_addr: SocketAddr,
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// The node's UUID: made once, kept in the data dir (Consul's `node-id` file).
fn node_id(data_dir: &std::path::Path) -> Result<String, StartError> {
    let path = data_dir.join("node-id");
    let err = |source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        Ok(_) => Err(StartError::Config(format!("{} is empty", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = crate::service::session::random_uuid();
            std::fs::write(&path, &id).map_err(err)?;
            Ok(id)
        }
        Err(e) => Err(err(e)),
    }
}

impl ClientAgent {
    pub async fn start(config: &AgentConfig) -> Result<ClientAgent, StartError> {
        let data_dir = config
            .data_dir
            .clone()
            .ok_or_else(|| StartError::Config("a client agent needs -data-dir".into()))?;
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let address = config.advertise.unwrap_or(config.bind);
        if address.is_unspecified() {
            return Err(StartError::Config(format!(
                "-bind {address} is not an address others can reach; give -advertise"
            )));
        }
        let fronts = FrontListeners::bind(config).await?;
        let (grpc_addr, http_addr, dns_addr) =
            (fronts.grpc_addr, fronts.http_addr, fronts.dns_addr);
        let shutdown = CancellationToken::new();
        let identity = crate::agent::NodeIdentity {
            name: config.node_name.clone(),
            id: node_id(&data_dir)?,
            address: address.to_string(),
            datacenter: config.datacenter.clone(),
            server_port: None,
        };
        let remote = Remote::start(
            config.retry_join.clone(),
            identity.heartbeat(),
            config.datacenter.clone(),
            config.limits.clone(),
            shutdown.clone(),
        );
        let (agent, tasks) =
            fronts.serve(config, remote.clone(), identity, &data_dir, &shutdown)?;
        tracing::info!(
            node = %config.node_name,
            grpc_addr = %grpc_addr,
            http_addr = %http_addr,
            dns_addr = %dns_addr,
            raft_addr = "",
            servers = ?config.retry_join,
            data_dir = %data_dir.display(),
            "agent ready"
        );
        Ok(ClientAgent {
            agent,
            remote,
            grpc_addr,
            http_addr,
            dns_addr,
            data_dir,
            shutdown,
            tasks,
        })
    }

    /// Stops the listeners, the local agent's tasks and the seam's, and waits for them.
    pub async fn shutdown(self) {
        // A client agent leaves on SIGTERM (Consul's `leave_on_terminate` default).
        match tokio::time::timeout(TASK_GRACE, self.agent.leave()).await {
            Ok(Ok(())) => tracing::info!("left the cluster"),
            Ok(Err(e)) => tracing::warn!(error = %e, "leaving the cluster"),
            Err(_) => tracing::warn!("leaving the cluster timed out"),
        }
        self.shutdown.cancel();
        for mut task in self.tasks {
            if tokio::time::timeout(TASK_GRACE, &mut task).await.is_err() {
                tracing::warn!("a client agent task did not stop within {TASK_GRACE:?}");
                task.abort();
                let _ = task.await;
            }
        }
        if tokio::time::timeout(TASK_GRACE, self.remote.join_tasks())
            .await
            .is_err()
        {
            tracing::warn!("the seam's tasks did not stop within {TASK_GRACE:?}");
        }
        tracing::info!("agent stopped");
    }
}
