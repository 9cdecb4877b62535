//! One Rostra server process put together: storage, raft, the change feed, the service
//! layer and its listeners, all under one cancellation token. `shutdown` stops the
//! listeners, waits for their tasks, stops raft, and only then lets RocksDB close.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::raft::{NodeInfo, RaftNode};
use crate::service::Service;
use crate::state::{ChangeFeed, StateStore};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("opening the database: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("reading state: {0}")]
    State(#[from] crate::state::store::StoreError),
    #[error("binding {what} on {addr} (is another agent already running?)")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Raft(#[from] crate::raft::ConsensusError),
    #[error("{0}")]
    Config(String),
}

/// How long each shutdown stage waits for its tasks before cutting them off.
const TASK_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// How long shutdown waits for the last holder of the database to let go.
const CLOSE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    #[error("the database was still open {0:?} after shutdown (a task kept it)")]
    StorageStillOpen(std::time::Duration),
}

/// A running server.
pub struct Server {
    pub service: Arc<Service>,
    pub raft: Arc<RaftNode>,
    /// The local agent (services, checks, anti-entropy).
    pub agent: Arc<crate::agent::Agent>,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub dns_addr: SocketAddr,
    pub raft_addr: SocketAddr,
    pub data_dir: std::path::PathBuf,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    /// Kept alive so a dev agent's temporary data outlives the server, not the process.
    _temp_dir: Option<tempfile::TempDir>,
    /// Held so shutdown can close the database deterministically.
    db: Arc<crate::db::Db>,
}

/// DNS answers on UDP and TCP on the same port; with port 0 both must land on one free
/// port, so pick it with UDP and retry if TCP finds it taken.
async fn bind_dns(addr: SocketAddr) -> Result<(tokio::net::UdpSocket, TcpListener), StartError> {
    let err = |source: std::io::Error| StartError::Bind {
        what: "the DNS port",
        addr: addr.to_string(),
        source,
    };
    let mut attempts = 0;
    loop {
        let udp = tokio::net::UdpSocket::bind(addr).await.map_err(err)?;
        let bound = udp.local_addr().map_err(err)?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && attempts < 10 => {
                attempts += 1;
                tracing::debug!(error = %e, "DNS port taken for TCP; picking another");
            }
            Err(e) => return Err(err(e)),
        }
    }
}

/// The client-facing listeners every agent has (server or client): gRPC, HTTP, DNS.
pub(crate) struct FrontListeners {
    grpc: TcpListener,
    http: TcpListener,
    dns_udp: tokio::net::UdpSocket,
    dns_tcp: TcpListener,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub dns_addr: SocketAddr,
}

impl FrontListeners {
    pub(crate) async fn bind(config: &AgentConfig) -> Result<Self, StartError> {
        let local = |l: &TcpListener| {
            l.local_addr()
                .map_err(|e| StartError::Config(e.to_string()))
        };
        let grpc = bind(
            "the gRPC port",
            SocketAddr::new(config.client_addr, config.grpc_port),
        )
        .await?;
        let http = bind(
            "the HTTP port",
            SocketAddr::new(config.client_addr, config.http_port),
        )
        .await?;
        let (dns_udp, dns_tcp) =
            bind_dns(SocketAddr::new(config.client_addr, config.dns_port)).await?;
        let dns_addr = dns_udp
            .local_addr()
            .map_err(|e| StartError::Config(e.to_string()))?;
        Ok(FrontListeners {
            grpc_addr: local(&grpc)?,
            http_addr: local(&http)?,
            dns_addr,
            grpc,
            http,
            dns_udp,
            dns_tcp,
        })
    }

    /// Starts the local agent on `api` and serves gRPC, HTTP and DNS through it; the
    /// tasks end when `shutdown` fires.
    pub(crate) fn serve(
        self,
        config: &AgentConfig,
        api: crate::service::Api,
        identity: crate::agent::NodeIdentity,
        data_dir: &std::path::Path,
        shutdown: &CancellationToken,
    ) -> Result<(Arc<crate::agent::Agent>, Vec<JoinHandle<()>>), StartError> {
        let mut tasks = Vec::new();
        let local = crate::agent::Agent::start(
            api.clone(),
            identity,
            crate::agent::AgentOptions {
                services: config.services.clone(),
                checks: config.checks.clone(),
                enable_script_checks: config.enable_script_checks,
                enable_local_script_checks: config.enable_local_script_checks,
                data_dir: data_dir.to_path_buf(),
                watches: config.watches.clone(),
                enable_remote_exec: config.enable_remote_exec,
                api_addrs: Some((self.grpc_addr, self.http_addr)),
                reloader: config.reloader.clone(),
                node_meta: config.node_meta.clone(),
            },
            shutdown.clone(),
        )
        .map_err(|e| StartError::Config(e.to_string()))?;
        let (token, grpc_api, grpc) = (shutdown.clone(), api.clone(), self.grpc);
        let grpc_agent = local.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) =
                crate::grpc::serve(grpc, grpc_api, grpc_agent, token.cancelled_owned()).await
            {
                tracing::error!(error = %e, "gRPC server failed");
            }
        }));
        let http_state = crate::http::HttpState {
            shutdown: shutdown.clone(),
            local: local.clone(),
            service: api.clone(),
            agent: Arc::new(crate::http::AgentInfo {
                datacenter: config.datacenter.clone(),
                node_name: config.node_name.clone(),
                dev: config.dev,
                server: config.server,
                bootstrap_expect: config.bootstrap_expect,
                debug_config: crate::http::agent_self::debug_config(config),
            }),
        };
        let (token, http) = (shutdown.clone(), self.http);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::http::serve(http, http_state, token.cancelled_owned()).await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        }));
        let dns_config = crate::dns::DnsConfig {
            datacenter: config.datacenter.clone(),
            recursors: config.recursors.clone(),
            ..Default::default()
        };
        let (token, udp, tcp) = (shutdown.clone(), self.dns_udp, self.dns_tcp);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::dns::serve(udp, tcp, api, dns_config, token).await {
                tracing::error!(error = %e, "DNS server failed");
            }
        }));
        Ok((local, tasks))
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            what,
            addr: addr.to_string(),
            source,
        })
}

impl Server {
    pub async fn start(config: &AgentConfig) -> Result<Server, StartError> {
        let (data_dir, temp_dir) = match &config.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("rostra-dev-")
                    .tempdir()
                    .map_err(|source| StartError::DataDir {
                        path: std::env::temp_dir().display().to_string(),
                        source,
                    })?;
                (tmp.path().to_path_buf(), Some(tmp))
            }
        };
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;

        let raft_listener = bind(
            "the server (raft) port",
            SocketAddr::new(config.bind, config.server_port),
        )
        .await?;
        let fronts = FrontListeners::bind(config).await?;
        let (grpc_addr, http_addr, dns_addr) =
            (fronts.grpc_addr, fronts.http_addr, fronts.dns_addr);
        let raft_addr = raft_listener
            .local_addr()
            .map_err(|e| StartError::Config(e.to_string()))?;
        let advertise = match (config.advertise, raft_addr.ip().is_unspecified()) {
            (Some(ip), _) => SocketAddr::new(ip, raft_addr.port()),
            (None, false) => raft_addr,
            (None, true) => {
                return Err(StartError::Config(format!(
                    "-bind {} is not an address peers can reach; give -advertise",
                    raft_addr.ip()
                )))
            }
        };

        let db = crate::db::open(&data_dir.join("rocksdb"))?;
        let db_handle = db.clone();
        let state = Arc::new(StateStore::new(db.clone()));
        state.ensure_indexes()?;
        let feed = ChangeFeed::with_limits(
            state.applied_index()?,
            config.limits.watch_history_bytes,
            crate::state::feed::DEFAULT_SUBSCRIBER_BUFFER,
        );
        let node = NodeInfo {
            name: config.node_name.clone(),
            raft_addr: advertise.to_string(),
            grpc_addr: grpc_addr.to_string(),
        };
        let raft = RaftNode::start(
            db,
            state.clone(),
            feed.clone(),
            node,
            config.raft,
            config.bind,
            crate::raft::space::SpaceGuard::new(&data_dir, config.limits.min_free_disk_bytes),
        )
        .await?;
        let shutdown = CancellationToken::new();
        let service = Service::new(
            raft.clone(),
            state,
            feed,
            config.limits.clone(),
            config.datacenter.clone(),
            config.node_name.clone(),
            shutdown.clone(),
        );

        let mut tasks = Vec::new();
        let transport = raft.transport_service();
        let seam = service.clone();
        let token = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .tcp_nodelay(true)
                .add_service(transport)
                // Client agents' seam calls, on the same (server) port.
                .add_service(crate::grpc::agent_transport::server(seam))
                .serve_with_incoming_shutdown(
                    crate::grpc::incoming(raft_listener),
                    token.cancelled_owned(),
                )
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "raft transport server failed");
            }
        }));
        // Front ends and the agent see the control plane only through the API seam.
        let front: crate::service::Api = service.clone();
        let identity = crate::agent::NodeIdentity {
            name: config.node_name.clone(),
            id: crate::agent::node_uuid(raft.id),
            address: advertise.ip().to_string(),
            datacenter: config.datacenter.clone(),
            server_port: Some(advertise.port()),
        };
        let (local, front_tasks) = fronts.serve(config, front, identity, &data_dir, &shutdown)?;
        tasks.extend(front_tasks);
        let boot = raft.clone();
        let token = shutdown.clone();
        let (expect, join) = (config.bootstrap_expect, config.retry_join.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = boot.bootstrap(expect, join, token).await {
                tracing::error!(error = %e, "bootstrap failed");
            }
        }));

        // Leader-only duties, started on gaining leadership and joined on losing it.
        let (reaper, ttls, events) = (service.clone(), service.clone(), service.clone());
        let members = service.clone();
        let duties = vec![
            crate::service::leader::duty(move |leading| {
                crate::service::reaper::run_tombstone_reaper(
                    reaper.clone(),
                    crate::service::reaper::TOMBSTONE_TTL,
                    leading,
                )
            }),
            crate::service::leader::duty(move |leading| {
                crate::service::session_ttl::run_session_ttls(ttls.clone(), leading)
            }),
            crate::service::leader::duty(move |leading| {
                crate::service::event::run_event_trimmer(events.clone(), leading)
            }),
            crate::service::leader::duty(move |leading| {
                crate::service::membership::run_failure_detector(members.clone(), leading)
            }),
        ];
        tasks.push(tokio::spawn(crate::service::leader::supervise(
            raft.leadership(),
            duties,
            shutdown.clone(),
        )));

        tracing::info!(
            node = %config.node_name,
            id = raft.id,
            grpc_addr = %grpc_addr,
            http_addr = %http_addr,
            dns_addr = %dns_addr,
            raft_addr = %advertise,
            data_dir = %data_dir.display(),
            "agent ready"
        );
        Ok(Server {
            service,
            raft,
            agent: local,
            grpc_addr,
            http_addr,
            dns_addr,
            raft_addr: advertise,
            data_dir,
            shutdown,
            tasks,
            _temp_dir: temp_dir,
            db: db_handle,
        })
    }

    /// Stops serving, waits for every task, stops raft, and returns once RocksDB has
    /// closed: after it returns the process may exit (or reopen the data directory).
    ///
    /// Everything acknowledged is already durable, so the only thing at stake here is
    /// an orderly close; a holder of the database that does not let go within
    /// `CLOSE_DEADLINE` is a bug, reported as an error rather than waited on forever.
    pub async fn shutdown(self) -> Result<(), ShutdownError> {
        self.shutdown.cancel();
        // Raft first: a write waiting for a quorum that is gone (the agent's sync, a
        // client's put) would otherwise hold up every task below. From here on writes
        // fail at once; nothing unacknowledged is lost, nothing acknowledged is undone.
        self.raft.shutdown().await;
        // Listeners and their connections, then watch streams, blocking reads and the
        // agent's check runners: all saw the token. A peer that will not let go of its
        // connection (a request whose body never arrives) is cut off after the grace.
        for mut task in self.tasks {
            if tokio::time::timeout(TASK_GRACE, &mut task).await.is_err() {
                tracing::warn!("a server task did not stop within {TASK_GRACE:?}; aborting it");
                task.abort();
                let _ = task.await;
            }
        }
        if tokio::time::timeout(TASK_GRACE, self.service.join_tasks())
            .await
            .is_err()
        {
            tracing::warn!("service tasks did not stop within {TASK_GRACE:?}");
        }
        // openraft's state-machine worker and replication tasks end on their own once
        // raft has stopped; they are the last holders of the database, and `closed`
        // fires when the last of them lets go and RocksDB has finished closing.
        let closed = self.db.closed();
        drop((self.service, self.agent, self.raft, self.db));
        if tokio::time::timeout(CLOSE_DEADLINE, closed).await.is_err() {
            tracing::error!("storage still open {CLOSE_DEADLINE:?} after shutdown");
            return Err(ShutdownError::StorageStillOpen(CLOSE_DEADLINE));
        }
        tracing::info!("agent stopped");
        Ok(())
    }
}
