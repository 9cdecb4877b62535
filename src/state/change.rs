//! What applying a raft entry changed, typed by table. Apply returns an [`Applied`]; the
//! change feed retains and routes its [`Change`]s without knowing any table: it asks a
//! change for its KV key (key and prefix watchers), its topics (catalog watchers; a
//! sessions or events table adds its own) and its size (retention is bounded in bytes). A new table
//! is a new variant here, with its answers to those three questions, and nothing else.

use super::catalog::{
    node_topic, service_topic, HealthCheck, Node, ServiceInstance, CATALOG_TOPIC,
};
use super::command::CommandResult;
use super::event::{Event, EVENTS_TOPIC};
use super::kv::KvChange;
use super::session::{node_sessions_topic, Session, SESSIONS_TOPIC, SESSION_TTL_TOPIC};

/// The result of applying one command and every change it made, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub result: CommandResult,
    pub changes: Vec<Change>,
}

/// One record written or deleted. `None` as the new value means deleted.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    Kv(KvChange),
    /// A node record. `services` are the names of the services on the node, whose
    /// health answers include the node (and so change with it).
    Node {
        name: String,
        node: Option<Node>,
        services: Vec<String>,
    },
    /// A service instance on `node`. `old_name` is set when a re-registration renamed it.
    Service {
        node: String,
        id: String,
        name: String,
        old_name: Option<String>,
        instance: Option<ServiceInstance>,
    },
    /// A health check on `node`. `services` are the services whose health it decides:
    /// its own, or every service on the node for a node-level check.
    Check {
        node: String,
        check_id: String,
        services: Vec<String>,
        check: Option<HealthCheck>,
    },
    /// A session created or invalidated (`None`).
    Session {
        id: String,
        node: String,
        session: Option<Session>,
    },
    /// A session's TTL was renewed: nothing a client sees changes, but the leader's TTL
    /// timers restart.
    SessionRenewed {
        id: String,
        ttl_ns: u64,
    },
    /// A user event fired, or trimmed (`None`).
    Event {
        ltime: u64,
        name: String,
        event: Option<Event>,
    },
}

impl Change {
    /// The KV key this change is to, for key and prefix watchers.
    pub fn kv_key(&self) -> Option<&str> {
        match self {
            Change::Kv(c) => Some(&c.key),
            _ => None,
        }
    }

    pub fn as_kv(&self) -> Option<&KvChange> {
        match self {
            Change::Kv(c) => Some(c),
            _ => None,
        }
    }

    /// The topics whose watchers this change concerns.
    pub fn topics(&self) -> Vec<String> {
        let catalog = |node: &str, services: &mut dyn Iterator<Item = &String>| {
            let mut t = vec![CATALOG_TOPIC.to_string(), node_topic(node)];
            t.extend(services.map(|s| service_topic(s)));
            t
        };
        match self {
            Change::Kv(_) => Vec::new(),
            Change::Node { name, services, .. } => catalog(name, &mut services.iter()),
            Change::Service {
                node,
                name,
                old_name,
                ..
            } => catalog(node, &mut std::iter::once(name).chain(old_name.iter())),
            Change::Check { node, services, .. } => catalog(node, &mut services.iter()),
            Change::Session { node, .. } => vec![
                SESSIONS_TOPIC.to_string(),
                node_sessions_topic(node),
                SESSION_TTL_TOPIC.to_string(),
            ],
            Change::SessionRenewed { .. } => vec![SESSION_TTL_TOPIC.to_string()],
            Change::Event { .. } => vec![EVENTS_TOPIC.to_string()],
        }
    }

    /// About how many bytes this change holds (for the feed's retention limit): the
    /// encoded size of the record it carries, plus the names that route it.
    pub fn size(&self) -> usize {
        fn encoded<T: serde::Serialize>(record: &Option<T>) -> usize {
            record
                .as_ref()
                .and_then(|r| postcard::to_stdvec(r).ok())
                .map_or(0, |b| b.len())
        }
        let names = |v: &[String]| v.iter().map(String::len).sum::<usize>();
        const OVERHEAD: usize = 64;
        OVERHEAD
            + match self {
                Change::Kv(c) => {
                    c.key.len()
                        + c.entry
                            .as_ref()
                            .map_or(0, |e| e.value.len() + e.key.len() + e.session.len())
                }
                Change::Node {
                    name,
                    node,
                    services,
                } => name.len() + encoded(node) + names(services),
                Change::Service {
                    node,
                    id,
                    name,
                    instance,
                    ..
                } => node.len() + id.len() + name.len() + encoded(instance),
                Change::Check {
                    node,
                    check_id,
                    services,
                    check,
                } => node.len() + check_id.len() + names(services) + encoded(check),
                Change::Session { id, node, session } => id.len() + node.len() + encoded(session),
                Change::SessionRenewed { id, .. } => id.len(),
                Change::Event { name, event, .. } => name.len() + encoded(event),
            }
    }
}

impl From<KvChange> for Change {
    fn from(c: KvChange) -> Self {
        Change::Kv(c)
    }
}
