//! The events aimed at this agent's node, followed once for the agent's life and shared
//! by what consumes them: remote exec (`agent::exec`) and `event` watches
//! (`agent::watches`). Which events are aimed here is decided twice over: by the server
//! by node filter (`ControlPlane::watch_node_events`; a client agent receives them on its
//! attachment); by service and tag, here, against the agent's own services.
//!
//! Consumers see the whole retained list at each consistent point, through a watch
//! channel that keeps only the newest view: a slow consumer skips views, never events,
//! since each view holds every retained event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Agent;
use crate::service::event::event_matches;
use crate::service::follow::{self, Follower};
use crate::service::{CatalogItem, ItemKey};
use crate::state::event::Event;

/// Wait before reopening after the stream ended while the agent runs.
const REOPEN_BACKOFF: Duration = Duration::from_secs(1);

/// The node's retained events as of one index.
#[derive(Debug, Default)]
pub struct NodeEvents {
    pub index: u64,
    /// By Lamport time.
    pub items: BTreeMap<ItemKey, CatalogItem>,
}

impl NodeEvents {
    /// The events aimed at `agent`, oldest first: the server dropped those for other
    /// nodes; service and tag filters are matched here against the agent's own
    /// services, which the catalog may not hold yet when an event fires.
    pub fn aimed_at<'a>(&'a self, agent: &Agent) -> impl Iterator<Item = &'a Event> + 'a {
        let services = agent.services();
        let node = agent.node.name.clone();
        self.items.values().filter_map(move |i| match i {
            CatalogItem::Event(e)
                if event_matches(
                    e,
                    &node,
                    services.iter().map(|s| (s.name.as_str(), &s.tags[..])),
                ) =>
            {
                Some(e)
            }
            _ => None,
        })
    }
}

/// `None` until the first consistent view.
pub type View = Option<Arc<NodeEvents>>;

pub fn channel() -> watch::Sender<View> {
    watch::Sender::new(None)
}

/// Follows the node's events into `agent.node_events` until the agent stops.
pub(super) async fn run(agent: Arc<Agent>) {
    let mut follower: Option<Follower<follow::Catalog>> = None;
    loop {
        let start = follower.as_ref().map_or(0, |f| f.resume_index());
        match agent.service.watch_node_events(&agent.node.name, start) {
            Ok(rx) => match follower.as_mut() {
                Some(f) => f.reattach(rx),
                None => follower = Some(Follower::new(rx)),
            },
            Err(e) => tracing::warn!(error = %e, "following the node's events"),
        }
        if let Some(f) = follower.as_mut() {
            loop {
                let index = tokio::select! {
                    _ = agent.shutdown.cancelled() => return,
                    i = f.next() => i,
                };
                let Some(index) = index else { break };
                agent.node_events.send_replace(Some(Arc::new(NodeEvents {
                    index,
                    items: f.state().clone(),
                })));
            }
        }
        if agent.service.is_shutting_down() {
            return;
        }
        tokio::select! {
            _ = agent.shutdown.cancelled() => return,
            _ = tokio::time::sleep(REOPEN_BACKOFF) => {}
        }
    }
}
