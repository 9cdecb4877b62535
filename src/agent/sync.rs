//! Anti-entropy: make the catalog entry of this node match the agent's local state.
//! Each round hands the node's whole state to the control plane
//! (`ControlPlane::sync_node`: a client agent's goes up its attachment), which writes
//! only what differs; it runs after every local change and every 30 s, which also
//! repairs anything a failed write or a `/v1/catalog` call left behind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{lock, Agent};
use crate::service::attach::NodeState;
use crate::service::ServiceError;
use crate::state::catalog::{CheckSpec, HealthCheck, Node, ServiceInstance};

/// Full resync period (also the reaper's period, as in Consul).
const SYNC_INTERVAL: Duration = Duration::from_secs(30);

/// First retry after a failed sync (no leader yet, say); doubles up to the sync interval.
const RETRY_MIN: Duration = Duration::from_millis(250);

pub(super) async fn run(agent: Arc<Agent>) {
    let mut ticker = tokio::time::interval(SYNC_INTERVAL);
    let mut retry: Option<Duration> = None;
    loop {
        let retry_sleep = async {
            match retry {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            _ = agent.sync_needed.notified() => {}
            _ = retry_sleep => {}
            _ = ticker.tick() => {
                for id in agent.overdue_services() {
                    tracing::info!(service = %id, "deregistering service critical for too long");
                    if let Err(e) = agent.deregister_service(&id) {
                        tracing::warn!(error = %e, "reaping critical service");
                    }
                }
            }
        }
        match sync_once(&agent).await {
            Ok(()) => retry = None,
            Err(e) => {
                let next = retry
                    .map(|d| (d * 2).min(SYNC_INTERVAL))
                    .unwrap_or(RETRY_MIN);
                tracing::warn!(error = %e, retry_in = ?next, "anti-entropy sync failed");
                retry = Some(next);
            }
        }
    }
}

fn ns(d: Option<Duration>) -> u64 {
    d.map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// What the catalog should hold for this node.
fn desired(
    agent: &Agent,
) -> (
    Node,
    BTreeMap<String, ServiceInstance>,
    BTreeMap<String, HealthCheck>,
) {
    let n = &agent.node;
    let node = Node {
        id: n.id.clone(),
        name: n.name.clone(),
        address: n.address.clone(),
        datacenter: n.datacenter.clone(),
        tagged_addresses: [
            ("lan", &n.address),
            ("lan_ipv4", &n.address),
            ("wan", &n.address),
            ("wan_ipv4", &n.address),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect(),
        meta: BTreeMap::new(),
        create_index: 0,
        modify_index: 0,
    };
    let state = lock(&agent.state);
    let node = Node {
        meta: state
            .node_meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([("consul-network-segment".to_string(), String::new())])
            .collect(),
        ..node
    };
    let mut services: BTreeMap<String, ServiceInstance> = state
        .services
        .values()
        .map(|s| {
            let d = &s.def;
            (
                d.id.clone(),
                ServiceInstance {
                    node: n.name.clone(),
                    id: d.id.clone(),
                    name: d.name.clone(),
                    tags: d.tags.clone(),
                    address: d.address.clone(),
                    port: d.port,
                    meta: d.meta.clone(),
                    weights: d.weights,
                    enable_tag_override: d.enable_tag_override,
                    create_index: 0,
                    modify_index: 0,
                    extra: d.extra.clone(),
                },
            )
        })
        .collect();
    if let Some(port) = n.server_port {
        // Servers appear as service `consul`: DNS `consul.service.consul` and tools rely on it.
        services.insert(
            "consul".into(),
            ServiceInstance {
                node: n.name.clone(),
                id: "consul".into(),
                name: "consul".into(),
                port,
                ..Default::default()
            },
        );
    }
    let checks: BTreeMap<String, HealthCheck> = state
        .checks
        .values()
        .map(|c| {
            let d = &c.def;
            let (http, tcp) = match &d.kind {
                super::definition::CheckKind::Http { url, .. } => (url.clone(), String::new()),
                super::definition::CheckKind::Tcp { addr } => (String::new(), addr.clone()),
                _ => (String::new(), String::new()),
            };
            let ttl_like = matches!(d.kind, super::definition::CheckKind::Ttl { .. });
            (
                d.id.clone(),
                HealthCheck {
                    node: n.name.clone(),
                    check_id: d.id.clone(),
                    name: d.name.clone(),
                    status: c.status,
                    notes: d.notes.clone(),
                    output: c.output.clone(),
                    service_id: d.service_id.clone(),
                    spec: CheckSpec {
                        check_type: d.kind.type_name().into(),
                        interval_ns: if ttl_like {
                            0
                        } else {
                            d.interval().as_nanos() as u64
                        },
                        timeout_ns: if ttl_like { 0 } else { ns(d.timeout) },
                        http,
                        tcp,
                        deregister_critical_service_after_ns: ns(
                            d.deregister_critical_service_after
                        ),
                    },
                    create_index: 0,
                    modify_index: 0,
                },
            )
        })
        .collect();
    (node, services, checks)
}

async fn sync_once(agent: &Agent) -> Result<(), ServiceError> {
    let (node, services, checks) = desired(agent);
    let state = NodeState {
        node,
        services: services.into_values().collect(),
        checks: checks.into_values().collect(),
    };
    agent.service.sync_node(state).await
}
