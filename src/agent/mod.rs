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

/// Maintenance mode's check IDs and texts, Consul's (`structs.NodeMaint`,
/// `structs.ServiceMaintPrefix`).
pub const NODE_MAINTENANCE: &str = "_node_maintenance";
pub const SERVICE_MAINTENANCE_PREFIX: &str = "_service_maintenance:";
const NODE_MAINTENANCE_REASON: &str =
    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";
const SERVICE_MAINTENANCE_REASON: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";

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
    /// Consul answers this with 404.
    #[error("No service registered with ID {0:?}")]
    UnknownService(String),
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
    /// This agent's request and check counters (`/v1/agent/metrics`).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    reloader: Option<crate::config::Reloader>,
    data_dir: PathBuf,
    /// The config files' watches and the token that stops them (a reload replaces both).
    watches: Mutex<CancellationToken>,
    /// One reload at a time.
    reloading: Mutex<()>,
    /// Bumped whenever a local service definition changes, for the hash-blocking
    /// `/v1/agent/service/<id>`.
    services_changed: tokio::sync::watch::Sender<u64>,
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
    /// Where `reload` reads the configuration again.
    pub reloader: Option<crate::config::Reloader>,
    /// Consul's `node_meta` (a reload may change it).
    pub node_meta: std::collections::BTreeMap<String, String>,
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
        let mut state = LocalState {
            node_meta: opts.node_meta,
            ..LocalState::default()
        };
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
        let shutdown_child = shutdown.child_token();
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
            telemetry: Arc::new(crate::telemetry::Telemetry::new()),
            reloader: opts.reloader,
            data_dir: opts.data_dir.clone(),
            watches: Mutex::new(shutdown_child.clone()),
            reloading: Mutex::new(()),
            services_changed: tokio::sync::watch::channel(0).0,
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
        watches::start(&agent, opts.watches, &opts.data_dir, shutdown_child)?;
        Ok(agent)
    }

    /// `PUT /v1/agent/reload` (and SIGHUP): reads the configuration files again and
    /// applies what changed in their services, checks and watches, without a restart.
    /// A file that no longer loads is refused with its error (file and key), and the
    /// running configuration is kept. API registrations are untouched.
    pub fn reload(self: &Arc<Self>) -> Result<(), AgentError> {
        let _one = lock(&self.reloading);
        let reloader = self.reloader.as_ref().ok_or_else(|| {
            AgentError::Refused("this agent was not started from configuration files and flags; there is nothing to reload".into())
        })?;
        let config = (reloader.0)()
            .map_err(|e| AgentError::Refused(format!("Failed reloading config: {e}")))?;
        let scripts_allowed = config.enable_script_checks || config.enable_local_script_checks;
        let wanted_checks: Vec<CheckDefinition> = config
            .services
            .iter()
            .flat_map(|s| s.checks.iter().cloned())
            .chain(config.checks.iter().cloned())
            .collect();
        if !scripts_allowed
            && wanted_checks
                .iter()
                .any(|c| matches!(c.kind, CheckKind::Script { .. }))
        {
            return Err(AgentError::Refused(format!(
                "Failed reloading config: {SCRIPTS_DISABLED}"
            )));
        }
        let (stopped, started) = {
            let mut state = lock(&self.state);
            let mut stopped = Vec::new();
            let mut started = Vec::new();
            // Services the files no longer define go, with every check on them.
            let gone: Vec<String> = state
                .services
                .values()
                .filter(|s| {
                    s.source == Source::Config && !config.services.iter().any(|n| n.id == s.def.id)
                })
                .map(|s| s.def.id.clone())
                .collect();
            for id in gone {
                stopped.extend(state.remove_service(&id).unwrap_or_default());
            }
            // Config checks no longer defined go.
            let dropped: Vec<String> = state
                .checks
                .values()
                .filter(|c| {
                    c.source == Source::Config && !wanted_checks.iter().any(|w| w.id == c.def.id)
                })
                .map(|c| c.def.id.clone())
                .collect();
            for id in dropped {
                state.checks.remove(&id);
                stopped.push(id);
            }
            state.node_meta = config.node_meta.clone();
            for s in &config.services {
                let mut bare = s.clone();
                bare.checks.clear();
                let same = state.services.get(&s.id).is_some_and(|old| old.def == bare);
                if !same {
                    state.services.insert(
                        s.id.clone(),
                        local::LocalService {
                            def: bare,
                            source: Source::Config,
                        },
                    );
                }
            }
            for c in wanted_checks {
                let same = state
                    .checks
                    .get(&c.id)
                    .is_some_and(|old| old.def == c && old.source == Source::Config);
                if !same {
                    started.push(c.id.clone());
                    state.add_check(c, Source::Config);
                }
            }
            (stopped, started)
        };
        for id in &stopped {
            self.stop_check(id);
        }
        for id in &started {
            self.start_check(id);
        }
        self.save()?;
        self.sync_needed.notify_one();
        self.services_changed();
        // Watches start over, as Consul's do on a reload.
        let token = self.shutdown.child_token();
        let old = std::mem::replace(&mut *lock(&self.watches), token.clone());
        old.cancel();
        watches::start(self, config.watches, &self.data_dir, token)?;
        tracing::info!(
            removed_checks = stopped.len(),
            changed_checks = started.len(),
            "configuration reloaded"
        );
        Ok(())
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
    ///
    /// The node is marked left first, while this server is still a voter (and perhaps the
    /// leader), so that write has a quorum; only then does it leave the configuration. The
    /// other order left a leader that had removed itself proposing the mark on its own,
    /// quorum-less log.
    pub async fn graceful_leave(&self) -> Result<(), crate::service::ServiceError> {
        let left = self.leave().await;
        if let Some(port) = self.node.server_port {
            let me = format!("{}:{port}", self.node.address);
            if let Err(e) = self.service.raft_remove_peer(None, Some(me)).await {
                tracing::warn!(error = %e, "leaving the raft configuration");
            }
        }
        self.leave_requested.cancel();
        left
    }

    /// Fires when a graceful leave asked the process to stop.
    pub fn leave_requested(&self) -> CancellationToken {
        self.leave_requested.clone()
    }

    /// Consul's `node_meta` as configured now.
    pub fn node_meta(&self) -> std::collections::BTreeMap<String, String> {
        lock(&self.state).node_meta.clone()
    }

    pub fn services(&self) -> Vec<ServiceDefinition> {
        lock(&self.state)
            .services
            .values()
            .map(|s| s.def.clone())
            .collect()
    }

    /// Ticks whenever a local service is registered, changed or removed.
    pub fn service_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.services_changed.subscribe()
    }

    fn services_changed(&self) {
        self.services_changed.send_modify(|n| *n += 1);
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
        self.services_changed();
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
            self.services_changed();
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

    /// `PUT /v1/agent/maintenance`: while enabled, the node carries Consul's critical
    /// `_node_maintenance` check, so every service on it drops out of `?passing` and DNS.
    /// Kept across restarts like any API registration.
    pub fn set_node_maintenance(
        self: &Arc<Self>,
        enable: bool,
        reason: &str,
    ) -> Result<(), AgentError> {
        self.set_maintenance(NODE_MAINTENANCE.into(), String::new(), enable, reason)
    }

    /// `PUT /v1/agent/service/maintenance/<id>`: the same for one service instance
    /// (`_service_maintenance:<id>`); an unknown service is Consul's 404.
    pub fn set_service_maintenance(
        self: &Arc<Self>,
        service_id: &str,
        enable: bool,
        reason: &str,
    ) -> Result<(), AgentError> {
        if !lock(&self.state).services.contains_key(service_id) {
            return Err(AgentError::UnknownService(service_id.into()));
        }
        self.set_maintenance(
            format!("{SERVICE_MAINTENANCE_PREFIX}{service_id}"),
            service_id.into(),
            enable,
            reason,
        )
    }

    fn set_maintenance(
        self: &Arc<Self>,
        check_id: String,
        service_id: String,
        enable: bool,
        reason: &str,
    ) -> Result<(), AgentError> {
        if !enable {
            return self.deregister_check(&check_id);
        }
        let (name, default_reason) = if service_id.is_empty() {
            ("Node Maintenance Mode", NODE_MAINTENANCE_REASON)
        } else {
            ("Service Maintenance Mode", SERVICE_MAINTENANCE_REASON)
        };
        let def = CheckDefinition {
            id: check_id,
            name: name.into(),
            notes: if reason.is_empty() {
                default_reason
            } else {
                reason
            }
            .into(),
            service_id,
            status: CheckStatus::Critical,
            kind: CheckKind::Maintenance,
            interval: None,
            timeout: None,
            deregister_critical_service_after: None,
            output_max_size: None,
        };
        {
            let mut state = lock(&self.state);
            if let Some(c) = state.checks.get(&def.id) {
                if c.def == def {
                    return Ok(());
                }
            }
            state.add_check(def.clone(), Source::Api);
        }
        // Its result is fixed: critical, as added; no runner.
        self.report(
            &def.id,
            CheckResult {
                status: CheckStatus::Critical,
                output: String::new(),
            },
        );
        self.save()?;
        self.sync_needed.notify_one();
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
        self.telemetry.check_run(status.as_str());
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
        if def.kind == CheckKind::Maintenance {
            return;
        }
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
                        agent.telemetry.check_run(CheckStatus::Critical.as_str());
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
                        a.telemetry.check_run(result.status.as_str());
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
