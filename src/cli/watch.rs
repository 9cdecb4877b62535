//! `rostractl watch`: Consul's `consul watch` built on streaming watches instead of
//! blocking-query polling. The handler gets exactly what Consul would give it on stdin
//! (a KVPair object for `key`, arrays for `keyprefix`, `nodes`, `service`, `checks`, an
//! object for `services`; `CONSUL_INDEX` in its environment), once at start and once
//! per change; a change that leaves the result deep-equal to the last one delivered does
//! not fire it, as in Consul. Plans, payloads and firing rules are `crate::watch`'s,
//! shared with the agent's `watches`. A broken stream is reopened from the last index,
//! so nothing is missed or repeated.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{anyhow, bail};
use serde_json::Value;

use super::args::WatchArgs;
use super::consul_json::to_pretty_json;
use crate::client::{
    Client, EventsWatch, HealthServiceWatch, KvWatch, NodesWatch, ServiceChecksWatch,
    ServicesWatch, StateChecksWatch, WatchSpec, Watcher,
};
use crate::grpc::catalog_convert as cc;
use crate::grpc::convert::kv_entry_in;
use crate::grpc::event::event_in;
use crate::service::CatalogItem;
use crate::watch::{catalog_payload, kv_payload, Firing, Handler, Output, WatchParams, WatchPlan};

/// Validates the flags with Consul's messages, before anything touches the network.
pub fn plan(w: &WatchArgs) -> anyhow::Result<WatchPlan> {
    let passing_only = match crate::config::consul_json::parse_go_bool(&w.passingonly) {
        Some(b) => b,
        None => bail!(
            "Failed to parse passingonly flag: strconv.ParseBool: parsing {:?}: invalid syntax",
            w.passingonly
        ),
    };
    let params = WatchParams {
        watch_type: w.watch_type.clone(),
        key: w.key.clone(),
        prefix: w.prefix.clone(),
        service: w.service.clone(),
        tags: w.tag.clone(),
        passing_only,
        state: w.state.clone(),
        name: w.name.clone(),
    };
    crate::watch::plan(&params).map_err(|e| anyhow!(e))
}

/// Renders a watch's items as Consul's JSON.
type Render<K, V> = Box<dyn Fn(&BTreeMap<K, V>) -> Result<Value, tonic::Status> + Send>;

/// A followed watch and how its state renders as Consul's JSON.
struct Followed<S: WatchSpec> {
    watcher: Watcher<S>,
    render: Render<S::Key, S::Item>,
}

/// Consistent views of any watch, as (index, Consul JSON).
#[async_trait::async_trait]
trait Views: Send {
    async fn next(&mut self) -> anyhow::Result<(u64, Value)>;
}

#[async_trait::async_trait]
impl<S: WatchSpec> Views for Followed<S> {
    async fn next(&mut self) -> anyhow::Result<(u64, Value)> {
        let index = self
            .watcher
            .next()
            .await
            .map_err(|e| anyhow!("Error querying Rostra agent: {e}"))?;
        let view = (self.render)(self.watcher.state())
            .map_err(|e| anyhow!("Error querying Rostra agent: {}", e.message()))?;
        Ok((index, view))
    }
}

/// Follows `spec`, rendering its items (converted to the service layer's types) with
/// the payload rules the agent's watches use too.
async fn follow<S: WatchSpec>(
    client: &Client,
    spec: S,
    plan: &WatchPlan,
    item: fn(S::Item) -> Result<CatalogItem, tonic::Status>,
) -> anyhow::Result<Box<dyn Views>> {
    let watcher = client
        .follow(spec)
        .await
        .map_err(|e| anyhow!("Error querying Rostra agent: {e}"))?;
    let plan = plan.clone();
    let render = move |state: &BTreeMap<S::Key, S::Item>| {
        let items = state
            .values()
            .map(|i| item(i.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(catalog_payload(&plan, &items))
    };
    Ok(Box::new(Followed {
        watcher,
        render: Box::new(render),
    }))
}

/// Opens the watch a plan follows.
async fn open(client: &Client, plan: &WatchPlan) -> anyhow::Result<Box<dyn Views>> {
    match plan.clone() {
        WatchPlan::Key(key) | WatchPlan::KeyPrefix(key) => {
            let prefix = matches!(plan, WatchPlan::KeyPrefix(_));
            let watcher = client
                .follow(KvWatch { key, prefix })
                .await
                .map_err(|e| anyhow!("Error querying Rostra agent: {e}"))?;
            let plan = plan.clone();
            let render = move |state: &BTreeMap<String, crate::pb::KvPair>| {
                let entries: Vec<_> = state.values().cloned().map(kv_entry_in).collect();
                Ok(kv_payload(&plan, &entries))
            };
            Ok(Box::new(Followed {
                watcher,
                render: Box::new(render),
            }))
        }
        WatchPlan::Services => {
            follow(client, ServicesWatch, plan, |s| {
                Ok(CatalogItem::Service {
                    name: s.name,
                    tags: s.tags.into_iter().collect(),
                })
            })
            .await
        }
        WatchPlan::Nodes => {
            follow(client, NodesWatch, plan, |n| {
                Ok(CatalogItem::Node(cc::node_in(n)))
            })
            .await
        }
        WatchPlan::Service {
            name,
            tags,
            passing_only,
        } => {
            let spec = HealthServiceWatch {
                service: name,
                tags,
                passing_only,
            };
            follow(client, spec, plan, |e| {
                cc::entry_in(e).map(CatalogItem::Health)
            })
            .await
        }
        WatchPlan::ServiceChecks(service) => {
            follow(client, ServiceChecksWatch { service }, plan, |c| {
                cc::check_view_in(c).map(CatalogItem::Check)
            })
            .await
        }
        WatchPlan::StateChecks(state) => {
            let state = state.map_or(crate::pb::HealthStatus::Unspecified, cc::status_out);
            follow(client, StateChecksWatch { state }, plan, |c| {
                cc::check_view_in(c).map(CatalogItem::Check)
            })
            .await
        }
        WatchPlan::Event(name) => {
            follow(client, EventsWatch { name }, plan, |e| {
                Ok(CatalogItem::Event(event_in(e)))
            })
            .await
        }
    }
}

/// Runs the watch: prints the view once without a handler, else feeds the handler every
/// view Consul's firing rules let through (`watch::Firing`). Every watch reads the state
/// of the server it is connected to (so `-stale` changes nothing); a broken stream
/// resumes from the last index, with nothing missed or repeated.
pub async fn run(
    client: &Client,
    plan: WatchPlan,
    w: WatchArgs,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    // Consul asks for the leader first, and fails the same way when there is no agent.
    let leader = client
        .leader()
        .await
        .map_err(|e| anyhow!("Error querying Rostra agent: {e}"))?;
    if let Some(dc) = w.datacenter.as_deref().filter(|dc| !dc.is_empty()) {
        if dc != leader.datacenter {
            bail!(
                "Error querying Rostra agent: No path to datacenter {dc:?} (this cluster is {:?}; Rostra has no WAN federation)",
                leader.datacenter
            );
        }
    }
    let mut views = open(client, &plan).await?;
    let handler = Handler::Script {
        args: w.handler.clone(),
        shell: w.shell,
    };
    let mut firing = Firing::new(&plan, None);
    loop {
        let (index, view) = views.next().await?;
        if w.handler.is_empty() {
            writeln!(out, "{}", to_pretty_json(&view, b"    "))?;
            return Ok(());
        }
        if let Some(payload) = firing.offer(index, view) {
            handler
                .run(&payload, index, Output::Inherit)
                .await
                .map_err(|e| anyhow!(e))?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(t: &str) -> WatchArgs {
        WatchArgs {
            watch_type: Some(t.into()),
            key: None,
            prefix: None,
            service: Some("web".into()),
            tag: Vec::new(),
            passingonly: "false".into(),
            state: None,
            name: None,
            shell: true,
            stale: false,
            datacenter: None,
            token: None,
            handler: vec![],
        }
    }

    #[test]
    fn flags_become_a_plan_with_consuls_messages() {
        let mut a = args("service");
        a.passingonly = "maybe".into();
        assert!(plan(&a)
            .unwrap_err()
            .to_string()
            .starts_with("Failed to parse passingonly flag"));
        a.passingonly = "true".into();
        assert!(matches!(
            plan(&a).unwrap(),
            WatchPlan::Service {
                passing_only: true,
                ..
            }
        ));
        assert_eq!(
            plan(&args("key")).unwrap_err().to_string(),
            "Must specify a single key to watch"
        );
    }
}
