//! Anti-entropy: make the catalog entry of this node match the agent's local state.
//! Each round reads the node's catalog entry (local, stale is fine) and writes only what
//! differs; it runs after every local change and every 30 s, which also repairs
//! anything a failed write or a `/v1/catalog` call left behind.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::{lock, Agent};
use crate::service::membership::SERF_HEALTH;
use crate::service::{Consistency, QueryOptions, ServiceError};
use crate::state::catalog::{
    CheckSpec, Deregistration, HealthCheck, Node, Registration, ServiceInstance,
};

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
        meta: [("consul-network-segment".to_string(), String::new())]
            .into_iter()
            .collect(),
        create_index: 0,
        modify_index: 0,
    };
    let state = lock(&agent.state);
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

fn same_service(a: &ServiceInstance, b: &ServiceInstance) -> bool {
    ServiceInstance {
        create_index: 0,
        modify_index: 0,
        ..a.clone()
    } == ServiceInstance {
        create_index: 0,
        modify_index: 0,
        ..b.clone()
    }
}

fn same_check(a: &HealthCheck, b: &HealthCheck) -> bool {
    HealthCheck {
        create_index: 0,
        modify_index: 0,
        ..a.clone()
    } == HealthCheck {
        create_index: 0,
        modify_index: 0,
        ..b.clone()
    }
}

async fn sync_once(agent: &Agent) -> Result<(), ServiceError> {
    let (node, services, checks) = desired(agent);
    let service = &agent.service;
    let opts = QueryOptions::with_consistency(Consistency::Stale);
    let (_, current) = service.catalog_node(&node.name, &opts).await?;
    let (_, current_checks) = service.health_node(&node.name, &opts).await?;
    let (current_node, current_services) = match current {
        Some((n, s)) => (Some(n), s),
        None => (None, Vec::new()),
    };
    let current_services: BTreeMap<String, ServiceInstance> = current_services
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    let current_checks: BTreeMap<String, HealthCheck> = current_checks
        .into_iter()
        .map(|c| (c.check.check_id.clone(), c.check))
        .collect();

    let node_differs = current_node.as_ref().is_none_or(|c| {
        c.address != node.address
            || c.id != node.id
            || c.datacenter != node.datacenter
            || c.tagged_addresses != node.tagged_addresses
    });
    let registration =
        |service: Option<ServiceInstance>, checks: Vec<HealthCheck>, skip: bool| Registration {
            node: node.clone(),
            skip_node_update: skip,
            service,
            checks,
        };
    if node_differs {
        service
            .catalog_register(registration(None, Vec::new(), false))
            .await?;
    }
    // Services that differ, each with all of its checks.
    for (id, svc) in &services {
        if current_services
            .get(id)
            .is_some_and(|c| same_service(c, svc))
        {
            continue;
        }
        let own: Vec<HealthCheck> = checks
            .values()
            .filter(|c| &c.service_id == id)
            .cloned()
            .collect();
        service
            .catalog_register(registration(Some(svc.clone()), own, true))
            .await?;
    }
    // Checks that differ (status, output, definition).
    for (id, check) in &checks {
        if current_checks.get(id).is_some_and(|c| same_check(c, check)) {
            continue;
        }
        if !check.service_id.is_empty()
            && current_services
                .get(&check.service_id)
                .is_none_or(|c| !same_service(c, &services[&check.service_id]))
        {
            continue; // written above together with its service
        }
        let svc = services.get(&check.service_id).cloned();
        service
            .catalog_register(registration(svc, vec![check.clone()], true))
            .await?;
    }
    // What the catalog has for this node but the agent does not.
    for id in current_services
        .keys()
        .filter(|id| !services.contains_key(*id))
    {
        service
            .catalog_deregister(Deregistration {
                node: node.name.clone(),
                service_id: Some(id.clone()),
                check_id: None,
            })
            .await?;
    }
    for (id, c) in &current_checks {
        // serfHealth is the leader's (`service::membership`), not this agent's.
        if checks.contains_key(id)
            || id == SERF_HEALTH
            || (!c.service_id.is_empty() && !services.contains_key(&c.service_id))
        {
            continue;
        }
        service
            .catalog_deregister(Deregistration {
                node: node.name.clone(),
                service_id: None,
                check_id: Some(id.clone()),
            })
            .await?;
    }
    Ok(())
}
