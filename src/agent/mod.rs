//! The agent: what runs on every node besides the server. It owns the node's local
//! services and checks (from config files and `/v1/agent/*`), runs the checks, and keeps
//! the catalog in step with them. Anti-entropy (see `sync`) writes only differences, so a
//! check that keeps passing with the same output costs no raft write per interval.

pub mod checks;
pub mod definition;
pub mod events;
pub mod exec;
pub mod local;
mod persist;
mod sync;
pub mod watches;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use self::checks::CheckResult;
use self::definition::{CheckDefinition, CheckKind, CheckStatus, ServiceDefinition};
use self::local::{LocalState, Source};
use crate::service::Api;

/// Consul's text when script checks are off.
pub const SCRIPTS_DISABLED: &str =
    "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true";

/// Consul node IDs are UUIDs; a raft id maps to one deterministically.
pub fn node_uuid(id: u64) -> String {
    let h = id.to_be_bytes();
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-0000-000000000000",
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]
    )
}

/// Who this agent is in the catalog.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    /// Consul-style node UUID.
    pub id: String,
    pub address: String,
    pub datacenter: String,
    /// Servers register service `consul` on their server port.
    pub server_port: Option<u16>,
}

impl NodeIdentity {
    /// This node as its heartbeats name it.
    pub fn heartbeat(&self) -> crate::service::membership::Heartbeat {
        crate::service::membership::Heartbeat {
            node: self.name.clone(),
            id: self.id.clone(),
            address: self.address.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Invalid(String),
    /// Consul answers these with 500 and this text.
    #[error("{0}")]
    Refused(String),
    #[error("CheckID {0:?} does not have associated TTL")]
    NotTtl(String),
    #[error("saving agent state: {0}")]
    Persist(#[from] std::io::Error),
}

/// The running agent; shared by the HTTP endpoints and its own tasks.
pub struct Agent {
    service: Api,
    pub node: NodeIdentity,
    state: Mutex<LocalState>,
    persist_path: PathBuf,
    enable_script_checks: bool,
    /// Remote exec jobs may run here (Consul's `disable_remote_exec` false).
    enable_remote_exec: bool,
    api_addrs: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    /// One task per running check; cancelling the token stops it.
    runners: Mutex<HashMap<String, CancellationToken>>,
    /// Wakes a TTL check's timer when it is updated.
    ttl_resets: Mutex<HashMap<String, Arc<Notify>>>,
    /// When each check turned critical, for `deregister_critical_service_after`.
    critical_since: Mutex<HashMap<String, Instant>>,
    sync_needed: Notify,
    shutdown: CancellationToken,
    /// Fired by `rostractl leave` / `PUT /v1/agent/leave`: the process should stop.
    leave_requested: CancellationToken,
    /// True once this agent has left. Held across each heartbeat and across the leave,
    /// so no heartbeat is in flight when the leave lands or sent after it: one that
    /// reached the leader after the leave marked the node alive again.
    departed: tokio::sync::Mutex<bool>,
    /// The events aimed at this node (`events`), for exec and event watches.
    node_events: tokio::sync::watch::Sender<events::View>,
}

/// Options from the agent configuration.
pub struct AgentOptions {
    pub services: Vec<ServiceDefinition>,
    pub checks: Vec<CheckDefinition>,
    pub enable_script_checks: bool,
    pub enable_local_script_checks: bool,
    pub data_dir: PathBuf,
    /// Consul's `watches`.
    pub watches: Vec<watches::WatchDefinition>,
    pub enable_remote_exec: bool,
    /// This agent's own gRPC and HTTP addresses, given to exec'd commands
    /// (`ROSTRA_ADDR`, `CONSUL_HTTP_ADDR`) so their `rostractl` talks to this agent.
    pub api_addrs: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Agent {
    /// Loads config-file and persisted definitions, starts every check and the
    /// anti-entropy loop.
    pub fn start(
        service: Api,
        node: NodeIdentity,
        opts: AgentOptions,
        shutdown: CancellationToken,
    ) -> Result<Arc<Agent>, AgentError> {
        let scripts_allowed = opts.enable_script_checks || opts.enable_local_script_checks;
        let mut state = LocalState::default();
        for s in opts.services {
            if !scripts_allowed
                && s.checks
                    .iter()
                    .any(|c| matches!(c.kind, CheckKind::Script { .. }))
            {
                return Err(AgentError::Refused(SCRIPTS_DISABLED.into()));
            }
            state.add_service(s, Source::Config);
        }
        for c in opts.checks {
            if !scripts_allowed && matches!(c.kind, CheckKind::Script { .. }) {
                return Err(AgentError::Refused(SCRIPTS_DISABLED.into()));
            }
            state.add_check(c, Source::Config);
        }
        let persist_path = opts.data_dir.join("agent").join("registrations.json");
        state.load(&persist_path)?;
        let agent = Arc::new(Agent {
            service,
            node,
            state: Mutex::new(state),
            persist_path,
            enable_script_checks: opts.enable_script_checks,
            enable_remote_exec: opts.enable_remote_exec,
            api_addrs: opts.api_addrs,
            runners: Mutex::default(),
            ttl_resets: Mutex::default(),
            critical_since: Mutex::default(),
            sync_needed: Notify::new(),
            shutdown,
            leave_requested: CancellationToken::new(),
            departed: tokio::sync::Mutex::new(false),
            node_events: events::channel(),
        });
        let ids: Vec<String> = lock(&agent.state).checks.keys().cloned().collect();
        for id in ids {
            agent.start_check(&id);
        }
        agent.service.spawn(Box::pin(sync::run(agent.clone())));
        agent.service.spawn(Box::pin(heartbeats(agent.clone())));
        agent.service.spawn(Box::pin(events::run(agent.clone())));
        agent.service.spawn(Box::pin(exec::run(agent.clone())));
        agent.sync_needed.notify_one();
        watches::start(&agent, opts.watches, &opts.data_dir)?;
        Ok(agent)
    }

    fn heartbeat(&self) -> crate::service::membership::Heartbeat {
        self.node.heartbeat()
    }

    /// Leaves the cluster gracefully (a client agent on SIGTERM): the leader marks the
    /// node left rather than waiting to find it failed.
    pub async fn leave(&self) -> Result<(), crate::service::ServiceError> {
        let mut departed = self.departed.lock().await;
        *departed = true;
        self.service.leave(self.heartbeat()).await
    }

    /// Consul's `consul leave`: leaves the cluster (a server also leaves the raft
    /// configuration), then asks the process to stop (see [`Self::leave_requested`]).
    pub async fn graceful_leave(&self) -> Result<(), crate::service::ServiceError> {
        if let Some(port) = self.node.server_port {
            let me = format!("{}:{port}", self.node.address);
            if let Err(e) = self.service.raft_remove_peer(None, Some(me)).await {
                tracing::warn!(error = %e, "leaving the raft configuration");
            }
        }
        let left = self.leave().await;
        self.leave_requested.cancel();
        left
    }

    /// Fires when a graceful leave asked the process to stop.
    pub fn leave_requested(&self) -> CancellationToken {
        self.leave_requested.clone()
    }

    pub fn services(&self) -> Vec<ServiceDefinition> {
        lock(&self.state)
            .services
            .values()
            .map(|s| s.def.clone())
            .collect()
    }

    /// Local checks with their latest results.
    pub fn checks(&self) -> Vec<local::LocalCheck> {
        lock(&self.state).checks.values().cloned().collect()
    }

    fn save(&self) -> Result<(), AgentError> {
        lock(&self.state).save(&self.persist_path)?;
        Ok(())
    }

    fn check_script_allowed(&self, c: &CheckDefinition) -> Result<(), AgentError> {
        if matches!(c.kind, CheckKind::Script { .. }) && !self.enable_script_checks {
            return Err(AgentError::Refused(SCRIPTS_DISABLED.into()));
        }
        Ok(())
    }

    /// `/v1/agent/service/register`.
    pub fn register_service(
        self: &Arc<Self>,
        def: ServiceDefinition,
        replace_existing_checks: bool,
    ) -> Result<(), AgentError> {
        for c in &def.checks {
            self.check_script_allowed(c)?;
        }
        let new_ids: Vec<String> = def.checks.iter().map(|c| c.id.clone()).collect();
        let dropped: Vec<String> = {
            let mut state = lock(&self.state);
            let dropped = if replace_existing_checks {
                let old: Vec<String> = state
                    .checks
                    .values()
                    .filter(|c| c.def.service_id == def.id && !new_ids.contains(&c.def.id))
                    .map(|c| c.def.id.clone())
                    .collect();
                for id in &old {
                    state.checks.remove(id);
                }
                old
            } else {
                Vec::new()
            };
            state.add_service(def, Source::Api);
            dropped
        };
        for id in dropped {
            self.stop_check(&id);
        }
        for id in new_ids {
            self.start_check(&id);
        }
        self.save()?;
        self.sync_needed.notify_one();
        Ok(())
    }

    /// `/v1/agent/service/deregister/<id>`; unknown IDs are a no-op, as in Consul.
    pub fn deregister_service(&self, id: &str) -> Result<(), AgentError> {
        let removed = lock(&self.state).remove_service(id);
        if let Some(checks) = removed {
            for c in checks {
                self.stop_check(&c);
            }
            self.save()?;
            self.sync_needed.notify_one();
        }
        Ok(())
    }

    /// `/v1/agent/check/register`.
    pub fn register_check(self: &Arc<Self>, def: CheckDefinition) -> Result<(), AgentError> {
        self.check_script_allowed(&def)?;
        {
            let mut state = lock(&self.state);
            if !def.service_id.is_empty() && !state.services.contains_key(&def.service_id) {
                return Err(AgentError::Refused(format!(
                    "ServiceID {:?} does not exist",
                    def.service_id
                )));
            }
            state.add_check(def.clone(), Source::Api);
        }
        self.start_check(&def.id);
        self.save()?;
        self.sync_needed.notify_one();
        Ok(())
    }

    /// `/v1/agent/check/deregister/<id>`.
    pub fn deregister_check(&self, id: &str) -> Result<(), AgentError> {
        if lock(&self.state).checks.remove(id).is_some() {
            self.stop_check(id);
            self.save()?;
            self.sync_needed.notify_one();
        }
        Ok(())
    }

    /// `/v1/agent/check/pass|warn|fail|update/<id>`: TTL checks only.
    pub fn update_ttl(
        &self,
        id: &str,
        status: CheckStatus,
        output: String,
    ) -> Result<(), AgentError> {
        let max = {
            let state = lock(&self.state);
            match state.checks.get(id) {
                Some(c) if matches!(c.def.kind, CheckKind::Ttl { .. }) => c.def.output_max_size,
                _ => return Err(AgentError::NotTtl(id.to_string())),
            }
        };
        let output = checks::cap_output(
            output.as_bytes(),
            max.unwrap_or(definition::DEFAULT_OUTPUT_MAX_SIZE),
        );
        if let Some(reset) = lock(&self.ttl_resets).get(id) {
            reset.notify_one();
        }
        self.report(id, CheckResult { status, output });
        // TTL results survive restarts.
        self.save()
    }

    /// Records a check result; only a change of status or output reaches the catalog.
    fn report(&self, id: &str, result: CheckResult) {
        let changed = {
            let mut state = lock(&self.state);
            match state.checks.get_mut(id) {
                Some(c) if c.status != result.status || c.output != result.output => {
                    c.status = result.status;
                    c.output = result.output;
                    true
                }
                _ => false,
            }
        };
        {
            let mut since = lock(&self.critical_since);
            if result.status == CheckStatus::Critical {
                since.entry(id.to_string()).or_insert_with(Instant::now);
            } else {
                since.remove(id);
            }
        }
        if changed {
            self.sync_needed.notify_one();
        }
    }

    fn stop_check(&self, id: &str) {
        if let Some(token) = lock(&self.runners).remove(id) {
            token.cancel();
        }
        lock(&self.ttl_resets).remove(id);
        lock(&self.critical_since).remove(id);
    }

    /// (Re)starts the runner of check `id`.
    fn start_check(self: &Arc<Self>, id: &str) {
        self.stop_check(id);
        let Some(def) = lock(&self.state).checks.get(id).map(|c| c.def.clone()) else {
            return;
        };
        let token = self.shutdown.child_token();
        lock(&self.runners).insert(id.to_string(), token.clone());
        let agent = Arc::downgrade(self);
        match def.kind.clone() {
            CheckKind::Ttl { ttl } => {
                let reset = Arc::new(Notify::new());
                lock(&self.ttl_resets).insert(id.to_string(), reset.clone());
                self.service.spawn(Box::pin(async move {
                    loop {
                        tokio::select! {
                            _ = token.cancelled() => return,
                            _ = reset.notified() => continue,
                            _ = tokio::time::sleep(ttl) => {}
                        }
                        let Some(agent) = agent.upgrade() else { return };
                        let last = lock(&agent.state)
                            .checks
                            .get(&def.id)
                            .map(|c| c.output.clone())
                            .unwrap_or_default();
                        let output = if last.is_empty() || last.starts_with("TTL expired") {
                            "TTL expired".to_string()
                        } else {
                            format!("TTL expired (last output before timeout follows): {last}")
                        };
                        agent.report(
                            &def.id,
                            CheckResult {
                                status: CheckStatus::Critical,
                                output,
                            },
                        );
                        if let Err(e) = agent.save() {
                            tracing::warn!(error = %e, "saving TTL check state");
                        }
                        // Stay critical until the next update resets the timer.
                        tokio::select! {
                            _ = token.cancelled() => return,
                            _ = reset.notified() => {}
                        }
                    }
                }));
            }
            kind => {
                // Consul staggers the first run randomly within an interval; Rostra runs
                // it at once so a new service shows its real health immediately.
                self.service.spawn(Box::pin(async move {
                    loop {
                        let result = tokio::select! {
                            _ = token.cancelled() => return,
                            r = checks::run_once(&kind, def.timeout(), def.output_max_size) => r,
                        };
                        let Some(a) = agent.upgrade() else { return };
                        a.report(&def.id, result);
                        drop(a);
                        tokio::select! {
                            _ = token.cancelled() => return,
                            _ = tokio::time::sleep(def.interval()) => {}
                        }
                    }
                }));
            }
        }
    }

    /// Services whose check has been critical longer than its
    /// `deregister_critical_service_after` (Consul's reaper).
    fn overdue_services(&self) -> Vec<String> {
        let since = lock(&self.critical_since);
        let state = lock(&self.state);
        state
            .checks
            .values()
            .filter_map(|c| {
                let after = c.def.deregister_critical_service_after?;
                let t = since.get(&c.def.id)?;
                (!c.def.service_id.is_empty() && t.elapsed() >= after.max(Duration::from_secs(60)))
                    .then(|| c.def.service_id.clone())
            })
            .collect()
    }
}

/// Tells the leader, every second, that this agent is alive (`service::membership`).
/// Until the first heartbeat lands (no leader yet) it retries quickly, so a node is
/// alive, and can hold sessions, moments after its cluster has a leader.
async fn heartbeats(agent: Arc<Agent>) {
    let every = crate::service::membership::HEARTBEAT_EVERY;
    let mut landed = false;
    let mut failing = false;
    loop {
        let pause = if landed { every } else { every / 20 };
        let departed = agent.departed.lock().await;
        if *departed {
            return;
        }
        let sent =
            tokio::time::timeout(every * 5, agent.service.heartbeat(agent.heartbeat())).await;
        drop(departed);
        match sent {
            Ok(Ok(())) => (landed, failing) = (true, false),
            // No leader yet, or a server being replaced: log once per outage.
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::debug!(error = %e, "sending a heartbeat");
            }
            Err(_) if !failing => {
                failing = true;
                tracing::debug!("a heartbeat timed out");
            }
            _ => {}
        }
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}
